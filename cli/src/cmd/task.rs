//! `task list|log|cancel`: the cluster's tasks.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use serde_json::{Value, json};

use crate::api::{get, rows};
use crate::output::{Output, object, table};

/// `task …`.
#[derive(Subcommand)]
pub enum TaskCmd {
    /// List tasks.
    List {
        /// running, ok or error.
        #[arg(long)]
        state: Option<String>,
    },
    /// A task's log.
    Log { upid: String },
    /// Cancel a running task (it ends `task cancelled`).
    Cancel { upid: String },
}

/// Runs a `task` command.
pub fn run(api: &ApiClient, cmd: TaskCmd, out: Output) -> Result<()> {
    match cmd {
        TaskCmd::List { state } => {
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            let mut list = rows(&get(api, &format!("/api2/json/tasks{q}"))?);
            for t in &mut list {
                t["state-text"] = json!(match &t["state"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
            table(
                out,
                &list,
                &[
                    ("upid", "UPID"),
                    ("kind", "TYPE"),
                    ("node", "NODE"),
                    ("state-text", "STATE"),
                ],
            );
        }
        TaskCmd::Log { upid } => {
            let (_, body) = api.blocking(api.raw(
                Method::GET,
                &format!("/api2/json/tasks/{}/log", encode_segment(&upid)),
                ironcore_client::Pieces::default(),
                "text/plain",
                &[],
            ))?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        TaskCmd::Cancel { upid } => {
            object(
                out,
                &api.blocking(api.json::<(), Value>(
                    Method::DELETE,
                    &format!("/api2/json/tasks/{}", encode_segment(&upid)),
                    None,
                ))?,
            );
        }
    }
    Ok(())
}
