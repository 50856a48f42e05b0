//! Errors of a running Raft node.

use std::time::Duration;

use ironcore_transport::TransportError;

use crate::{Error, NodeId, SendError};

/// Everything that can go wrong starting, running or asking a [`crate::RaftNode`].
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Raft stores could not be opened or read.
    #[error(transparent)]
    Storage(#[from] Error),
    /// The transport could not be bound.
    #[error("raft transport: {0}")]
    Transport(#[from] TransportError),
    /// The settings were refused.
    #[error("raft configuration: {0}")]
    Config(String),
    /// openraft has stopped (shut down, or a storage failure ended it).
    #[error("raft has stopped: {0}")]
    Stopped(String),
    /// No leader became known in time.
    #[error("no raft leader is known after {} ms", waited.as_millis())]
    NoLeader {
        /// How long the node waited for one.
        waited: Duration,
    },
    /// The request did not complete in time; a write may still be applied later.
    #[error("raft request did not complete within {} ms", waited.as_millis())]
    Timeout {
        /// How long the node waited.
        waited: Duration,
    },
    /// The leader (or another peer) could not be asked.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A write was appended but then discarded by a leader change: it may or may not be applied.
    #[error("write outcome unknown after a leader change: {0}")]
    Indeterminate(String),
    /// openraft refused the request (a membership change in progress, an unknown learner...).
    #[error("raft refused the request: {0}")]
    Refused(String),
    /// The peer answered with something that does not fit the request.
    #[error("node {node} answered a {request} request with {answer}")]
    Unexpected {
        /// The peer.
        node: NodeId,
        /// What was asked.
        request: &'static str,
        /// What came back.
        answer: String,
    },
}

impl NodeError {
    /// Whether a write that failed with this error may still have been (or later be) applied.
    /// Conservative: only errors that prove the command was never proposed say `false`.
    pub fn may_have_applied(&self) -> bool {
        match self {
            NodeError::Storage(_)
            | NodeError::Transport(_)
            | NodeError::Config(_)
            | NodeError::NoLeader { .. }
            | NodeError::Refused(_)
            | NodeError::Unexpected { .. }
            | NodeError::Send(SendError::NotSent { .. }) => false,
            NodeError::Stopped(_)
            | NodeError::Timeout { .. }
            | NodeError::Send(_)
            | NodeError::Indeterminate(_) => true,
        }
    }
}
