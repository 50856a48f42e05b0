//! `job list|create|remove`: scheduled verify, GC and prune jobs, run by the cluster's leader.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::output::{Output, object, table};

/// `job …`.
#[derive(Subcommand)]
pub enum JobCmd {
    /// Jobs with their schedules, last and next runs.
    List,
    /// Schedule a job. SCHEDULE (UTC): daily, hourly, weekly, 02:30, mon..fri 22:00, *:0/15.
    Create {
        /// A name for the job.
        id: String,
        #[arg(long)]
        store: DatastoreName,
        /// verify, gc or prune.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        schedule: String,
        /// Namespace whose groups a prune job prunes.
        #[arg(long)]
        ns: Option<String>,
        #[command(flatten)]
        keep: crate::keep::KeepArgs,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Remove a job (a run in progress finishes).
    Remove { id: String },
}

/// Runs a `job` command.
pub fn run(api: &ApiClient, cmd: JobCmd, out: Output) -> Result<()> {
    match cmd {
        JobCmd::List => list(api, out)?,
        JobCmd::Create {
            id,
            store,
            kind,
            schedule,
            ns,
            keep,
            comment,
        } => {
            let v: Value = api.blocking(api.json(
                Method::POST,
                "/api2/json/jobs",
                Some(&{
                    let mut body = json!({
                        "id": id, "store": store, "kind": kind, "schedule": schedule, "ns": ns,
                        "comment": comment,
                    });
                    // Only a prune job takes keep options.
                    if kind == "prune" {
                        body["keep"] = json!(keep.options());
                    }
                    body
                }),
            ))?;
            object(out, &v);
        }
        JobCmd::Remove { id } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::DELETE,
                &format!("/api2/json/jobs/{}", encode_segment(&id)),
                None,
            ))?;
            object(out, &v);
        }
    }
    Ok(())
}

/// `job list`.
fn list(api: &ApiClient, out: Output) -> Result<()> {
    let v: Value = api.blocking(api.get("/api2/json/jobs"))?;
    let rows: Vec<Value> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|j| {
            let mut j = j.clone();
            // {"prune": {...}} or "verify": the kind's name for the table.
            j["kind-name"] = match &j["kind"] {
                Value::String(s) => json!(s),
                Value::Object(m) => json!(m.keys().next().cloned().unwrap_or_default()),
                _ => Value::Null,
            };
            j
        })
        .collect();
    table(
        out,
        &rows,
        &[
            ("id", "JOB"),
            ("store", "DATASTORE"),
            ("kind-name", "KIND"),
            ("schedule", "SCHEDULE"),
            ("last-run", "LAST RUN"),
            ("next-run", "NEXT RUN"),
            ("owner", "OWNER"),
        ],
    );
    Ok(())
}
