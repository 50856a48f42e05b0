//! `sync create|list|remove|run|diff`: sync jobs between a datastore here and a remote's —
//! pull (copy the remote's snapshots here) or push (copy ours there) — as the replication
//! manual describes.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::output::{Output, object, table};

/// `sync …`.
#[derive(Subcommand)]
pub enum SyncCmd {
    /// Create a sync job. SCHEDULE (UTC): daily, hourly, weekly, sun 04:30, *:0/15, …
    Create {
        #[arg(long)]
        name: String,
        /// The datastore here (receives on pull, sends on push).
        #[arg(long)]
        source: DatastoreName,
        /// The registered remote.
        #[arg(long)]
        remote: String,
        /// The remote's datastore.
        #[arg(long)]
        remote_repository: DatastoreName,
        /// pull (this cluster fetches) or push (this cluster sends).
        #[arg(long, default_value = "pull")]
        direction: String,
        #[arg(long)]
        schedule: String,
        /// backup-id:TYPE/ID, namespace:NS or keep-weekly=* (any keep-{last,hourly,daily,weekly,
        /// monthly,yearly}=N|*); repeat for several (any match passes).
        #[arg(long)]
        include: Vec<String>,
        /// MiB/s, 0 = unlimited.
        #[arg(long, default_value_t = 0)]
        bwlimit: u64,
        /// Push only: encrypt unencrypted snapshots on the way with the project key (the
        /// `[project-key]` of the node configuration; registered here and on the remote).
        #[arg(long)]
        encrypt: bool,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Sync jobs.
    List,
    /// Remove a sync job.
    Remove {
        #[arg(long)]
        name: String,
    },
    /// Run a sync job now and show its log.
    Run {
        #[arg(long)]
        name: String,
        /// Print the task's UPID and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Snapshots present on only one side.
    Diff {
        /// The datastore here.
        #[arg(long)]
        source: DatastoreName,
        #[arg(long)]
        remote: String,
        #[arg(long)]
        remote_repository: DatastoreName,
        #[arg(long)]
        include: Vec<String>,
    },
}

/// Runs a `sync` command.
pub fn run(api: &ApiClient, cmd: SyncCmd, out: Output) -> Result<()> {
    match cmd {
        SyncCmd::Create {
            name,
            source,
            remote,
            remote_repository,
            direction,
            schedule,
            include,
            bwlimit,
            encrypt,
            comment,
        } => {
            let body = json!({ "id": name, "store": source, "kind": "sync", "schedule": schedule,
                "remote": remote, "remote-store": remote_repository, "include": include,
                "bwlimit": bwlimit, "direction": direction, "encrypt": encrypt,
                "comment": comment });
            let v: Value = api.blocking(api.json(Method::POST, "/api2/json/jobs", Some(&body)))?;
            object(out, &v);
        }
        SyncCmd::List => list(api, out)?,
        SyncCmd::Remove { name } => {
            let v: Value = api.blocking(api.json::<(), Value>(
                Method::DELETE,
                &format!("/api2/json/jobs/{}", encode_segment(&name)),
                None,
            ))?;
            object(out, &v);
        }
        SyncCmd::Run { name, no_wait } => {
            let started: Value = api.blocking(api.json::<(), Value>(
                Method::POST,
                &format!("/api2/json/jobs/{}/run", encode_segment(&name)),
                None,
            ))?;
            crate::follow::follow(api, &started, no_wait, out)?;
        }
        SyncCmd::Diff {
            source,
            remote,
            remote_repository,
            include,
        } => diff(api, &source, &remote, &remote_repository, &include, out)?,
    }
    Ok(())
}

/// `sync list`: the sync jobs among the cluster's jobs.
fn list(api: &ApiClient, out: Output) -> Result<()> {
    let v: Value = api.blocking(api.get("/api2/json/jobs"))?;
    let rows: Vec<Value> = v["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| {
            let s = j["kind"].get("sync")?;
            let mut row = j.clone();
            row["remote"] = s["remote"].clone();
            row["direction"] = json!(if s["push"] == true { "push" } else { "pull" });
            row["remote-store"] = s["remote_store"].clone();
            row["encrypt"] = s["encrypt"].clone();
            row["include"] = json!(
                s["include"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|f| f.as_str())
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default()
            );
            Some(row)
        })
        .collect();
    table(
        out,
        &rows,
        &[
            ("id", "NAME"),
            ("store", "STORE"),
            ("direction", "DIRECTION"),
            ("remote", "REMOTE"),
            ("remote-store", "REMOTE-STORE"),
            ("include", "INCLUDE"),
            ("encrypt", "ENCRYPT WITH"),
            ("schedule", "SCHEDULE"),
            ("last-run", "LAST RUN"),
            ("next-run", "NEXT RUN"),
        ],
    );
    Ok(())
}

/// `sync diff`: the snapshots only the remote's datastore or only `source` holds.
fn diff(
    api: &ApiClient,
    source: &DatastoreName,
    remote: &str,
    remote_repository: &DatastoreName,
    include: &[String],
    out: Output,
) -> Result<()> {
    let v: Value = api.blocking(api.get(&format!(
        "/api2/json/sync/diff?store={source}&remote={}&remote-store={remote_repository}&include={}",
        encode_segment(remote),
        encode_segment(&include.join(","))
    )))?;
    if out == Output::Json {
        object(out, &v);
    } else {
        for (key, label) in [
            ("only-remote", "only on the remote"),
            ("only-local", "only here"),
        ] {
            let list = v[key].as_array().cloned().unwrap_or_default();
            println!("{label}: {}", list.len());
            for s in list {
                println!("  {}", s.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}
