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
    /// A chunk could not be given the copies its datastore keeps at the writing site (storage
    /// nodes down): nothing was committed.
    #[error("{0}")]
    UnderReplicated(String),
    /// Another node answered with something this node cannot read (a version mismatch or a
    /// fault on that node).
    #[error("node {node} answered badly: {detail}")]
    BadPeerAnswer {
        /// The node asked.
        node: String,
        /// What was wrong with its answer.
        detail: String,
    },
    /// The cluster cannot serve this now (no leader known, a node lost its work); try again.
    #[error("{0}")]
    Unavailable(String),
    /// What the request would create exists already, or the state forbids it now.
    #[error("{0}")]
    Conflict(String),
    /// A file or directory of the node is open to other users; the node will not use it.
    #[error("{0}")]
    Insecure(String),
    /// A fault of this node's own (a worker thread that panicked, a state that should not be
    /// possible); its logs say more.
    #[error("internal error: {0}; the node's logs (node.log, worker.log) say more")]
    Internal(String),
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
            NodeError::SourceBusy(_) | NodeError::Quarantined(_) | NodeError::Conflict(_) => 409,
            NodeError::NoSpace(_) => 507,
            NodeError::Cancelled => 410,
            NodeError::Store(e) => match e {
                ironcore_chunkstore::Error::ChunkNotFound { .. } => 404,
                ironcore_chunkstore::Error::SnapshotNotFound { .. } => 404,
                ironcore_chunkstore::Error::NoSpace { .. } => 507,
                ironcore_chunkstore::Error::InvalidTimezone { .. }
                | ironcore_chunkstore::Error::InvalidInput { .. } => 400,
                ironcore_chunkstore::Error::SnapshotExists { .. }
                | ironcore_chunkstore::Error::Protected { .. }
                | ironcore_chunkstore::Error::Quarantined { .. }
                | ironcore_chunkstore::Error::SourceBusy { .. } => 409,
                ironcore_chunkstore::Error::Offline { .. } => 503,
                _ => 500,
            },
            NodeError::Cluster(_) | NodeError::UnderReplicated(_) | NodeError::Unavailable(_) => {
                503
            }
            NodeError::BadPeerAnswer { .. } => 502,
            _ => 500,
        }
    }

    /// For `spawn_blocking(..).await`: a worker that panicked or was cancelled is this
    /// node's fault, not the client's.
    pub(crate) fn join(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> NodeError {
        move |e| NodeError::Internal(format!("{what}: worker thread failed: {e}"))
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
        let what = what.into();
        move |source| NodeError::Io { what, source }
    }
}

/// The crate's result type.
pub type Result<T, E = NodeError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_are_5xx_and_only_client_mistakes_are_4xx() {
        assert_eq!(NodeError::Internal("x".into()).status(), 500);
        assert_eq!(NodeError::UnderReplicated("x".into()).status(), 503);
        let peer = NodeError::BadPeerAnswer {
            node: "node2".into(),
            detail: "garbage".into(),
        };
        assert_eq!(peer.status(), 502);
        assert_eq!(NodeError::BadRequest("x".into()).status(), 400);
        assert_eq!(NodeError::PermissionDenied("x".into()).status(), 403);
    }
}
