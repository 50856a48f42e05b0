//! The node crate's error type, and how each error maps to an HTTP status.

use std::path::PathBuf;

/// Everything the daemon can fail with. API errors carry the manuals' words (`permission
/// denied`, `chunk not found`, …) followed by what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration file is missing, malformed or invalid.
    #[error("config {path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// The node's own state on disk is missing or unreadable.
    #[error("node state {path}: {detail}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No credentials, or wrong ones.
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// Credentials fine, rights missing (the manuals' words).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or does not fit the state.
    #[error("{0}")]
    BadRequest(String),
    /// Another backup of the same group runs.
    #[error("source busy: {0}")]
    SourceBusy(String),
    /// A chunk is missing on every node that should hold it.
    #[error("chunk not found: {0}")]
    ChunkNotFound(String),
    /// The datastore ran out of space.
    #[error(
        "no space left on datastore {0}: prune older snapshots, run `ironcore-backup gc start {0}`, or add capacity"
    )]
    NoSpace(String),
    /// The datastore is quarantined (new backups and GC refused).
    #[error("{}", ironcore_raft::quarantined_message(.0))]
    Quarantined(ironcore_types::DatastoreName),
    /// A key needed to encrypt or decrypt is not held where it is needed.
    #[error("encryption key not found: {0}")]
    KeyNotFound(String),
    /// A key the cluster (or a remote) has not registered.
    #[error("encryption key not registered: {0}")]
    KeyNotRegistered(String),
    /// The task was cancelled.
    #[error("task cancelled")]
    Cancelled,
    /// Raft could not take the request (no quorum, timeout, stopped).
    #[error("cluster: {0}")]
    Cluster(#[from] ironcore_raft::NodeError),
    /// The Raft state machine could not be read.
    #[error("metadata: {0}")]
    Meta(#[from] ironcore_raft::Error),
    /// Chunk store failure.
    #[error("{0}")]
    Store(#[from] ironcore_chunkstore::Error),
    /// Transport failure.
    #[error("transport: {0}")]
    Transport(#[from] ironcore_transport::TransportError),
    /// Local I/O failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl NodeError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            NodeError::Unauthenticated(_) => 401,
            NodeError::PermissionDenied(_) => 403,
            NodeError::NotFound(_) | NodeError::ChunkNotFound(_) => 404,
            NodeError::BadRequest(_)
            | NodeError::KeyNotFound(_)
            | NodeError::KeyNotRegistered(_) => 400,
            NodeError::SourceBusy(_) | NodeError::Quarantined(_) => 409,
            NodeError::NoSpace(_) => 507,
            NodeError::Cancelled => 410,
            NodeError::Store(e) => match e {
                ironcore_chunkstore::Error::ChunkNotFound { .. } => 404,
                ironcore_chunkstore::Error::NoSpace { .. } => 507,
                _ => 500,
            },
            NodeError::Cluster(_) => 503,
            _ => 500,
        }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
        let what = what.into();
        move |source| NodeError::Io { what, source }
    }
}

/// The crate's result type.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;
