//! The commands, one module per family: each holds its clap subcommand enum (or arguments)
//! and runs it. Only `main.rs` uses these modules; they share the helpers `api`, `conn`,
//! `follow`, `keep`, `output`, `progress` and `select`, which know none of them.

pub mod acl;
pub mod audit;
pub mod backup;
pub mod cluster;
pub mod compare;
pub mod datastore;
pub mod gc;
pub mod job;
pub mod key;
pub mod mirror;
pub mod namespace;
pub mod notification;
pub mod prune;
pub mod remote;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod task;
pub mod token;
pub mod user;
pub mod verify;
pub mod worker;
