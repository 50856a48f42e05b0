//! The Ironcore Backup node daemon (layer 3).
//!
//! It wires the parts into one process per node: the chunk directories of its datastores
//! (`chunkstore`), the Raft control plane (`raft`) over the QUIC transport (`transport`), the
//! peer service that moves chunks between nodes, tasks, and the HTTPS API on TCP 8007. It only
//! wires: formats live in `chunkstore`, protocols in `transport` and `raft`, placement is a pure
//! function ([`placement::place`]).
//!
//! Where to start: [`daemon::run`] (what a start does), [`api::router`] (every route),
//! [`crate::core::Node`] (replication and fetch), [`api`]'s backup module (the commit order).

pub mod api;
pub mod auth;
pub mod cluster_state;
pub mod config;
pub mod core;
pub mod daemon;
mod error;
pub mod gc;
pub mod https;
pub mod jobs;
pub mod join;
pub mod lease;
pub mod logging;
pub mod mark;
pub mod membership;
pub mod notify;
pub mod peer;
pub mod placement;
pub mod project_key;
pub mod prune;
pub mod schedule;
pub mod scheduler;
pub mod stores;
pub mod sync;
pub mod sync_push;
pub mod tasks;
pub mod ticket;
pub mod verify;

pub use error::{NodeError, Result};
