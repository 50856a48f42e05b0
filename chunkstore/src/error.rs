//! The one error type of the chunk store. Each variant says what happened, to what, and what
//! to do; the texts the product manuals name (`no space left on datastore`, `chunk not found`,
//! `decryption failed`, `fingerprint mismatch`, `encryption key not found`, `source busy`) open
//! their messages word for word.

use std::io;
use std::path::PathBuf;

use ironcore_types::{ChunkId, Fingerprint};

/// Everything that can go wrong in the chunk store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call failed for a reason other than the ones below.
    #[error("I/O error while {action} '{}': {source}", path.display())]
    Io {
        /// What the store was doing (`writing chunk`, `reading index`).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The datastore's file system is full; nothing half-written was left referenced.
    #[error(
        "no space left on datastore '{datastore}': prune old snapshots and run \
         `ironcore-backup gc start {datastore}`, or expand the storage"
    )]
    NoSpace {
        /// The full datastore.
        datastore: String,
    },
    /// The datastore's directory vanished, went stale, or is not the datastore it was.
    #[error(
        "datastore '{datastore}' is offline: {reason}; remount or restore the path — the store \
         comes back by itself, or force the check with `ironcore-backup datastore probe {datastore}`"
    )]
    Offline {
        /// The unreachable datastore.
        datastore: String,
        /// Why it is offline, as the last probe found it.
        reason: String,
    },
    /// The datastore is quarantined: new writes and garbage collection are refused.
    #[error(
        "datastore '{datastore}' is quarantined: new writes and garbage collection are disabled \
         until the root cause is established; lift it with \
         `ironcore-backup datastore quarantine {datastore} --clear`"
    )]
    Quarantined {
        /// The quarantined datastore.
        datastore: String,
    },
    /// A chunk that an index references is absent from the datastore.
    #[error(
        "chunk not found: {id} is referenced but missing from the datastore; run \
         `ironcore-backup verify start` to find every affected snapshot, and restore from the \
         Backup site replica"
    )]
    ChunkNotFound {
        /// The missing chunk.
        id: ChunkId,
    },
    /// An encrypted chunk failed authentication: it was modified or the key is wrong.
    #[error(
        "decryption failed: chunk {id} does not authenticate under the loaded key — its bytes \
         were modified, or this is the wrong key; check the snapshot's key fingerprint"
    )]
    DecryptionFailed {
        /// The chunk that failed.
        id: ChunkId,
    },
    /// The loaded key is not the key the data was encrypted with.
    #[error(
        "fingerprint mismatch: the data was encrypted with key {expected} but the loaded key is \
         {actual}; load the key file whose fingerprint is {expected}"
    )]
    FingerprintMismatch {
        /// The fingerprint recorded with the data.
        expected: Fingerprint,
        /// The fingerprint of the key that was offered.
        actual: Fingerprint,
    },
    /// Encrypted data was read without any key.
    #[error(
        "encryption key not found: {what} is encrypted with key {fingerprint}; pass the key file \
         with that fingerprint (--keyfile)"
    )]
    EncryptionKeyNotFound {
        /// What needed the key.
        what: String,
        /// The fingerprint of the key needed.
        fingerprint: Fingerprint,
    },
    /// A second backup of a group started while one was running.
    #[error(
        "source busy: a backup of {group} is already in progress (started {since}); wait for it \
         to finish, and do not schedule overlapping backups of the same source"
    )]
    SourceBusy {
        /// The busy group, with its namespace.
        group: String,
        /// When the running backup started (RFC 3339).
        since: String,
    },
    /// Stored or received bytes do not parse: bad magic, version, length or checksum.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// What was being decoded (`chunk`, `dynamic index`, `manifest`, `key file`).
        what: &'static str,
        /// What exactly is wrong.
        detail: String,
    },
    /// A key file's passphrase is wrong (or the file was altered).
    #[error("wrong passphrase for key file '{}' (or the file was altered)", path.display())]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// A paper key block was mistyped.
    #[error(
        "paper key block {block} is mistyped ({detail}); re-type block {block} from the printout"
    )]
    PaperKey {
        /// The 1-based block number, as printed.
        block: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// A snapshot named by the caller does not exist.
    #[error("snapshot {snapshot} not found; list snapshots with `ironcore-backup snapshot list`")]
    SnapshotNotFound {
        /// The missing snapshot.
        snapshot: String,
    },
    /// A snapshot with the same group and time is already committed.
    #[error("snapshot {snapshot} already exists; backup times are unique per group")]
    SnapshotExists {
        /// The existing snapshot.
        snapshot: String,
    },
    /// A protected snapshot cannot be removed.
    #[error("snapshot {snapshot} is protected; remove the protection first if it must go")]
    Protected {
        /// The protected snapshot.
        snapshot: String,
    },
    /// A timezone name is not in the IANA database.
    #[error("unknown timezone '{tz}': use an IANA name such as UTC or Europe/Berlin")]
    InvalidTimezone {
        /// The rejected name.
        tz: String,
    },
    /// A parameter given by the caller is invalid.
    #[error("invalid {what}: {detail}")]
    InvalidInput {
        /// Which parameter.
        what: &'static str,
        /// Why, and what a valid value looks like.
        detail: String,
    },
    /// The directory is not a datastore (no marker file) or belongs to another datastore.
    #[error("'{}' is not the datastore '{datastore}': {detail}", path.display())]
    NotADatastore {
        /// The expected datastore.
        datastore: String,
        /// The directory.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
    /// The metadata database (RocksDB) failed.
    #[error("metadata database error at '{}': {detail}", path.display())]
    Catalog {
        /// The database directory.
        path: PathBuf,
        /// RocksDB's message.
        detail: String,
    },
    /// A node's API refused or could not be reached (remote sinks and sources).
    #[error("{detail}")]
    Remote {
        /// What the remote end (a node's API) said or why it could not be reached.
        detail: String,
    },
    /// The running operation was cancelled by its caller.
    #[error("task cancelled: the operation was cancelled before it committed anything; re-run it")]
    Cancelled,
}

impl Error {
    /// Whether trying again later may succeed without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            Error::Offline { .. } | Error::SourceBusy { .. } => true,
            _ => false,
        }
    }

    /// Builds an [`Error::Io`].
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
