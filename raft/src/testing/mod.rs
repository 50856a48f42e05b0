//! An in-process cluster for tests and benchmarks, not for production.
//!
//! [`Cluster`] runs real [`crate::RaftNode`]s in one process: real RocksDB in temporary
//! directories, real QUIC on loopback, one transport per node, and every ordered link between
//! two nodes through its own [`FaultProxy`](ironcore_transport::fault::FaultProxy), so a test
//! can partition any link and a benchmark can add delay between sites. A checker watches every
//! node's metrics for two leaders in one term.
//!
//! Nothing here is hardened: timeouts are short, identities are throwaway, and everything is
//! deleted when the [`Cluster`] is dropped.

mod cluster;

pub use cluster::{Cluster, WAIT};

use ironcore_transport::TransportError;
use ironcore_types::ParseError;

use crate::{NodeError, NodeId};

/// Why a [`Cluster`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The temporary directory could not be created.
    #[error("cluster temporary directory: {0}")]
    Io(#[from] std::io::Error),
    /// A generated node name did not parse.
    #[error("cluster node name: {0}")]
    Name(#[from] ParseError),
    /// An identity or a fault proxy could not be set up.
    #[error("cluster transport: {0}")]
    Transport(#[from] TransportError),
    /// A node failed to start, stop or answer.
    #[error("cluster node: {0}")]
    Node(#[from] NodeError),
    /// A condition was not reached within [`WAIT`] (or a node stopped while waiting).
    #[error("waiting for {what}: {detail}")]
    Wait {
        /// What was awaited.
        what: &'static str,
        /// Why the wait ended.
        detail: String,
    },
    /// Two nodes led in the same term.
    #[error("two leaders: {0:?}")]
    TwoLeaders(Vec<String>),
    /// The node is not running (or never existed).
    #[error("node {0} is not running")]
    NotRunning(NodeId),
}
