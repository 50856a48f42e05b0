//! `verify start|status`: verification of a datastore's snapshots. `start` runs a task on the
//! answering node that the CLI follows to the end (unless `--no-wait`) and whose log it prints.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::Value;

use crate::api::store_path;
use crate::follow::follow;
use crate::output::{Output, table};

/// `verify …`.
#[derive(Subcommand)]
pub enum VerifyCmd {
    /// Re-read and re-hash every chunk of every snapshot on every node; repair copies that
    /// are short; record each snapshot's verdict.
    Start {
        store: DatastoreName,
        /// Which notification targets get the result: always, error (their own rules) or
        /// never.
        #[arg(long)]
        notification_mode: Option<String>,
        /// Print the task's UPID and return instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Verification state per datastore: OK, CORRUPT, or STALE (snapshots not verified within
    /// the window).
    Status {
        /// One datastore (default: all).
        store: Option<DatastoreName>,
        /// Days within which every snapshot should have been verified.
        #[arg(long, default_value_t = 30)]
        window_days: i64,
    },
}

/// Runs `verify start|status`.
pub fn run(api: &ApiClient, cmd: VerifyCmd, out: Output) -> Result<()> {
    match cmd {
        VerifyCmd::Start {
            store,
            notification_mode,
            no_wait,
        } => {
            let query = notification_mode
                .map(|m| format!("?notification-mode={}", encode_segment(&m)))
                .unwrap_or_default();
            let started: Value = api.blocking(api.json::<(), Value>(
                Method::POST,
                &format!("{}{query}", store_path(&store, "verify")),
                None,
            ))?;
            follow(api, &started, no_wait, out)
        }
        VerifyCmd::Status { store, window_days } => status(api, store, window_days, out),
    }
}

/// `verify status`: the state of `store`, or of every datastore.
fn status(
    api: &ApiClient,
    store: Option<DatastoreName>,
    window_days: i64,
    out: Output,
) -> Result<()> {
    let stores: Vec<DatastoreName> = match store {
        Some(s) => vec![s],
        None => {
            let list: Value = api.blocking(api.get("/api2/json/datastore"))?;
            list["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str()?.parse().ok())
                .collect()
        }
    };
    let mut rows = Vec::new();
    for s in &stores {
        let mut v: Value = api.blocking(api.get(&format!(
            "{}?window-days={window_days}",
            store_path(s, "verify")
        )))?;
        v["last-state"] = v["last-task"]["state"].clone();
        rows.push(v);
    }
    table(
        out,
        &rows,
        &[
            ("datastore", "DATASTORE"),
            ("state", "STATE"),
            ("snapshots", "SNAPSHOTS"),
            ("ok", "OK"),
            ("failed", "FAILED"),
            ("unverified", "NEVER"),
            ("stale", "STALE"),
            ("oldest-verified", "OLDEST VERIFIED"),
            ("last-state", "LAST RUN"),
        ],
    );
    Ok(())
}
