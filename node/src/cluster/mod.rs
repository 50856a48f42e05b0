//! The cluster's membership: the node's cluster state on disk, joining with a one-time token,
//! membership changes on the leader, and the task leases that tell live nodes from dead ones.

pub mod identity;
pub mod join;
pub mod lease;
pub mod members;
pub mod membership;
pub mod reconcile;
pub mod state;
