//! Shared ids and wire types of Ironcore Backup.
//!
//! This crate is layer 0: every other crate may depend on it, and it depends on nothing of the
//! project. It owns the newtypes that name things across the cluster — chunks, key
//! fingerprints, namespaces, backup groups, snapshots, nodes and sites — with their parsing and
//! display rules. It must never do I/O, start an async runtime, or know about storage or
//! transport.

mod auth;
mod digest;
mod error;
mod group;
mod keep;
mod namespace;
mod node;
pub mod records;

pub use auth::{AuthId, OwnerScope, Privilege, Role};
pub use digest::{ChunkId, Fingerprint};
pub use error::ParseError;
pub use group::{BackupGroup, BackupType, SnapshotRef, format_time};
pub use keep::KeepOptions;
pub use namespace::Namespace;
pub use node::{DatastoreName, NodeId, SiteId};
