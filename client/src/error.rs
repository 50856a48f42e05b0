//! The client's error type. Texts the manuals name (`source not reachable`,
//! `destination not writable`) open their messages word for word.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a backup or restore run by the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The datastore refused or failed.
    #[error(transparent)]
    Store(#[from] ironcore_chunkstore::Error),
    /// The source to back up cannot be read.
    #[error("source not reachable: '{}': {source}; check that the path exists and is readable", path.display())]
    SourceNotReachable {
        /// The source path.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The restore target cannot be written.
    #[error(
        "destination not writable: '{}': {source}; free space, fix permissions, or restore \
         somewhere else", path.display()
    )]
    DestinationNotWritable {
        /// The path that could not be written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The restore target already holds data.
    #[error("destination '{}' already exists and is not empty; restore into a new or empty directory", path.display())]
    DestinationExists {
        /// The target.
        path: PathBuf,
    },
    /// A tree archive does not parse.
    #[error("corrupt tree archive: {0}")]
    Format(String),
    /// A path to restore is not in the snapshot.
    #[error("'{0}' is not in this snapshot; list its files with `ironcore-backup snapshot files`")]
    NotInSnapshot(String),
}

/// The result type of this crate.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
