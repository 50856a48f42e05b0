//! Where chunks live and how they move between the storage nodes of a site: placement by
//! rendezvous hashing, replication to the placement nodes, fetching and pulling from peers, and
//! reading a snapshot's indexes wherever they are. Every function takes the narrow handle
//! [`peers::ChunkPeers`], not the whole node.

pub mod fetch;
pub mod index;
pub mod peers;
pub mod placement;
pub mod progress;
pub mod pull;
pub mod replicate;
pub mod staging;

/// How long a peer that failed a chunk request is tried last.
pub(crate) const DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(30);
