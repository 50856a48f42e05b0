//! What the Raft membership records about each node.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A cluster member as stored in Raft membership (openraft's `Node` type).
///
/// openraft identifies nodes by a plain `u64` ([`crate::NodeId`]); the human name, the site and
/// the address the transport dials live here. `Default` (all empty) exists because openraft's
/// test suite builds memberships with default nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterNode {
    /// The node's name, unique in the cluster (`pbs-a1`).
    pub name: String,
    /// The site it stands in (`primary`, `backup`, `tiebreaker`...).
    pub site: String,
    /// The address peers reach it at (`host:port`).
    pub address: String,
}

impl fmt::Display for ClusterNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} ({})", self.name, self.site, self.address)
    }
}
