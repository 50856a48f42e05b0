//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the Raft storage layer.
///
/// openraft's storage traits speak [`io::Error`]; [`From<Error> for io::Error`] keeps the
/// detail (and marks decoding failures as [`io::ErrorKind::InvalidData`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// RocksDB refused an operation.
    #[error("raft store {path}: {source}")]
    Rocks {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A value could not be encoded (never expected for the types stored here).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },
    /// Stored or received bytes do not decode.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded.
        what: &'static str,
        /// Why it was refused.
        detail: String,
    },
    /// Stored or received bytes carry a format version this build does not read.
    #[error("{what} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version byte found.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// A snapshot file could not be written or read (a damaged file is
    /// [`io::ErrorKind::InvalidData`]).
    #[error("snapshot file {path}: {source}")]
    SnapshotFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
    /// A storage task on the blocking pool did not finish (it panicked, or the runtime is
    /// shutting down).
    #[error("raft storage task failed: {detail}")]
    Background {
        /// The join error.
        detail: String,
    },
}

impl Error {
    pub(crate) fn file(path: &std::path::Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |source| Self::SnapshotFile {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::SnapshotFile { source, .. } => source.kind(),
            Error::Corrupt { .. } | Error::UnsupportedVersion { .. } => io::ErrorKind::InvalidData,
            Error::Rocks { .. } | Error::Encode { .. } | Error::Background { .. } => {
                io::ErrorKind::Other
            }
        };
        io::Error::new(kind, e)
    }
}
