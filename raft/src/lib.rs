//! Raft control plane of Ironcore Backup (layer 2).
//!
//! This crate owns the one openraft group that spans the sites: the Raft log and the replicated
//! state machine on RocksDB ([`RocksLogStore`], [`RocksStateMachine`]), the typed, versioned
//! [`Command`]s every piece of cluster metadata changes through, and — in later issues — the Raft
//! network over the `transport` crate and membership changes. It must never touch chunk data:
//! chunks stream peer to peer between nodes, and only what they hold is agreed here. It does
//! not know `chunkstore`; `node` connects the two.
//!
//! Everything it stores starts with a format version byte followed by postcard; votes and log
//! writes are synced before they are acknowledged.

mod codec;
mod command;
mod error;
mod log_store;
mod node;
mod rocks;
mod snapshot_builder;
mod state_machine;
mod types;

pub use command::{Command, CommandResult};
pub use error::Error;
pub use log_store::RocksLogStore;
pub use node::ClusterNode;
pub use snapshot_builder::RocksSnapshotBuilder;
pub use state_machine::RocksStateMachine;
pub use types::{
    Entry, LogId, NodeId, Snapshot, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};
