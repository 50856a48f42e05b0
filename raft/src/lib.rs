//! Raft control plane of Ironcore Backup (layer 2).
//!
//! This crate owns the one openraft group that spans the sites: the Raft log and the replicated
//! state machine on RocksDB ([`RocksLogStore`], [`RocksStateMachine`]), the typed, versioned
//! [`Command`]s every piece of cluster metadata changes through, the Raft network over the
//! `transport` crate's control path ([`RaftNetwork`], [`RaftServer`], one versioned
//! [`RaftRequest`] enum), and [`RaftNode`], which wires them together and lets every node accept
//! writes and linearizable reads. It must never touch chunk data: chunks stream peer to peer
//! between nodes, and only what they hold is agreed here. It does not know `chunkstore`; `node`
//! connects the two.
//!
//! Everything it stores starts with a format version byte followed by postcard; votes and log
//! writes are synced before they are acknowledged.

mod address_book;
mod append_stream;
mod codec;
mod command;
mod error;
mod log_store;
mod message;
mod meta;
mod network;
mod node;
mod node_config;
mod node_error;
mod raft_node;
mod reachability;
mod rocks;
mod server;
mod snapshot_builder;
pub mod snapshot_file;
pub mod snapshot_inbox;
mod state_machine;
pub mod testing;
mod types;

pub use address_book::AddressBook;
pub use command::{Command, CommandResult};
pub use error::Error;
pub use log_store::RocksLogStore;
pub use message::{RaftRequest, RaftResponse, Refusal, WriteReply};
pub use meta::{MetaCommand, MetaRequest, MetaView, quarantined_message};
pub use network::{RaftLink, RaftNetwork, SendError};
pub use node::ClusterNode;
pub use node_config::RaftNodeConfig;
pub use node_error::NodeError;
pub use raft_node::{FollowerProgress, MAX_COMMAND_BYTES, RaftNode};
pub use reachability::ProbePolicy;
pub use server::{RaftServer, SERVICE_TAG};
pub use snapshot_builder::RocksSnapshotBuilder;
pub use state_machine::RocksStateMachine;
pub use types::{
    Entry, LogId, NodeId, RaftHandle, Snapshot, SnapshotData, SnapshotMeta, StoredMembership,
    TypeConfig, Vote,
};
