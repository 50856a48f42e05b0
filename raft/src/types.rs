//! openraft's type configuration for Ironcore and short names for the types it derives.

use openraft::type_config::alias;

use crate::{ClusterNode, Command, CommandResult, RocksStateMachine};

/// openraft's node id: a plain `u64` (names live in [`ClusterNode`]).
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of the Ironcore cluster.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = NodeId,
        Node = ClusterNode,
);

/// A log id (leader id and index).
pub type LogId = alias::LogIdOf<TypeConfig>;
/// A Raft log entry.
pub type Entry = alias::EntryOf<TypeConfig>;
/// A vote (term, candidate, committed flag).
pub type Vote = alias::VoteOf<TypeConfig>;
/// A membership config with the log id that introduced it.
pub type StoredMembership = alias::StoredMembershipOf<TypeConfig>;
/// What describes a snapshot: last included log id and membership.
pub type SnapshotMeta = alias::SnapshotMetaOf<TypeConfig>;
/// The data of a state machine snapshot: a file (see [`crate::snapshot_file`]).
pub type SnapshotData = crate::snapshot_file::SnapshotFile;
/// A snapshot: its meta and its data.
pub type Snapshot = alias::SnapshotOf<TypeConfig, SnapshotData>;
/// A running openraft instance of this crate's types.
pub type RaftHandle = openraft::Raft<TypeConfig, RocksStateMachine>;
