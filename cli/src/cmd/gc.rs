//! `gc start`: garbage collection of a datastore, a task on the answering node that the CLI
//! follows to the end (unless `--no-wait`) and whose log it prints.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::api::store_path;
use crate::follow::follow;
use crate::output::Output;

/// `gc …`.
#[derive(Subcommand)]
pub enum GcCmd {
    /// Delete the chunks no snapshot references, on every storage node of the datastore.
    Start {
        store: DatastoreName,
        /// Keep unreferenced chunks touched within this many seconds (clock skew between
        /// nodes; default 3600).
        #[arg(long)]
        grace_secs: Option<i64>,
        /// Which notification targets get the result: always, error (their own rules) or
        /// never.
        #[arg(long)]
        notification_mode: Option<String>,
        /// Print the task's UPID and return instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
}

/// Runs `gc start`.
pub fn run(api: &ApiClient, cmd: GcCmd, out: Output) -> Result<()> {
    let GcCmd::Start {
        store,
        grace_secs,
        notification_mode,
        no_wait,
    } = cmd;
    let started: Value = api.blocking(api.json(
        Method::POST,
        &store_path(&store, "gc"),
        Some(&json!({ "grace-secs": grace_secs, "notification-mode": notification_mode })),
    ))?;
    follow(api, &started, no_wait, out)
}
