//! `worker status`: worker slots and queued work of this node.

use anyhow::Result;
use clap::Subcommand;
use ironcore_client::ApiClient;
use serde_json::{Value, json};

use crate::api::{get, rows};
use crate::output::{Output, object, table};

/// `worker …`.
#[derive(Subcommand)]
pub enum WorkerCmd {
    /// Slots in use and queued work.
    Status,
}

/// Runs a `worker` command.
pub fn run(api: &ApiClient, cmd: WorkerCmd, out: Output) -> Result<()> {
    let WorkerCmd::Status = cmd;
    let s = get(api, "/api2/json/status")?;
    let running = rows(&get(api, "/api2/json/tasks?state=running")?);
    let here: Vec<Value> = running
        .into_iter()
        .filter(|t| t["node"] == s["node"])
        .collect();
    let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
    if out == Output::Json {
        object(
            out,
            &json!({ "node": s["node"], "running": here, "queued": 0 }),
        );
    } else {
        println!(
            "node {}: {} task(s) running, 0 queued (sessions run concurrently; the chunk pipeline uses {} worker threads per backup client)",
            s["node"].as_str().unwrap_or("-"),
            here.len(),
            slots
        );
        table(
            out,
            &here,
            &[("upid", "UPID"), ("kind", "TYPE"), ("worker_id", "ON")],
        );
    }
    Ok(())
}
