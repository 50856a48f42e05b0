//! The Ironcore Backup node daemon (layer 3).
//!
//! It wires the parts into one process per node: the chunk directories of its datastores
//! (`chunkstore`), the Raft control plane (`raft`) over the QUIC transport (`transport`), the
//! peer service that moves chunks between nodes, tasks, and the HTTPS API on TCP 8007. Formats
//! live in `chunkstore`, protocols in `transport` and `raft`; placement is a pure function
//! ([`replication::placement::place`]).
//!
//! Subsystems sit in folders and depend downwards only (the gate's layout check refuses an
//! import cycle between them):
//!
//! ```text
//! runtime      starts and stops the node, answers peers (peer_service), serves the API
//! api          HTTPS routes                                  (everything below)
//! scheduler    jobs on their schedule                        -> maintenance, sync, node
//! sync         pull and push with remote clusters            -> replication, node, tasks
//! maintenance  GC, verify + repair, prune, local jobs         -> replication, cluster, node
//! cluster      state on disk, join, membership, task leases  -> node, notify, protocol
//! node         the shared state (`Node`) and running tasks   -> replication, stores, tasks, notify
//! replication  placement, replicate, fetch/pull, indexes      -> stores, protocol (takes ChunkPeers)
//! leaves       config, error, logging, stores, tasks, notify, protocol, auth
//! ```
//!
//! Where to start: [`runtime::run`] (what a start does), [`api::router`] (every route),
//! [`replication`] (where copies go), [`api`]'s backup module (the commit order).

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
mod error;
pub mod failpoint;
pub mod logging;
pub mod maintenance;
pub mod mirror;
pub mod node;
pub mod notify;
pub mod private;
pub mod protocol;
pub mod replication;
pub mod runtime;
pub mod scheduler;
pub mod stores;
pub mod sync;
pub mod tasks;

pub use error::{NodeError, Result};
