//! `gc start`, `verify start|status`, `datastore probe|stats|quarantine`: the datastore
//! maintenance commands of the admin manual. GC and verify start a task on the answering node;
//! the CLI follows it to the end (unless `--no-wait`) and prints its log.

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use ironcore_types::records::{TaskRecord, TaskState};
use serde_json::{Value, json};

use crate::output::{Output, object, table};

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

fn store_path(store: &DatastoreName, rest: &str) -> String {
    format!(
        "/api2/json/datastore/{}/{rest}",
        encode_segment(store.as_str())
    )
}

/// Runs `gc start`.
pub fn gc(api: &ApiClient, cmd: GcCmd, out: Output) -> Result<()> {
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

/// Runs `verify start|status`.
pub fn verify(api: &ApiClient, cmd: VerifyCmd, out: Output) -> Result<()> {
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
        VerifyCmd::Status { store, window_days } => {
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
    }
}

/// Waits for the task whose UPID `started` names, prints its log, and fails if it failed.
pub(crate) fn follow(api: &ApiClient, started: &Value, no_wait: bool, out: Output) -> Result<()> {
    let Some(upid) = started["upid"].as_str() else {
        bail!("the node did not return a task: {started}");
    };
    if no_wait {
        object(out, started);
        return Ok(());
    }
    let record = loop {
        let list: Value = api.blocking(api.get("/api2/json/tasks"))?;
        let found = list["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["upid"] == upid)
            .cloned();
        if let Some(t) = found {
            let t: TaskRecord = serde_json::from_value(t)?;
            if t.state != TaskState::Running {
                break t;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let (_, log) = api.blocking(api.raw(
        Method::GET,
        &format!("/api2/json/tasks/{}/log", encode_segment(upid)),
        ironcore_client::Pieces::default(),
        "text/plain",
        &[],
    ))?;
    if out == Output::Json {
        object(
            out,
            &json!({ "upid": upid, "state": record.state, "log": String::from_utf8_lossy(&log) }),
        );
    } else {
        print!("{}", String::from_utf8_lossy(&log));
    }
    match record.state {
        TaskState::Error(e) => bail!("{e} (task {upid})"),
        _ => Ok(()),
    }
}

/// `datastore probe`.
pub fn probe(api: &ApiClient, store: &DatastoreName, out: Output) -> Result<()> {
    let v: Value = api.blocking(api.get(&store_path(store, "probe")))?;
    if out == Output::Json {
        object(out, &v);
    } else {
        println!(
            "datastore {store}: {}{}",
            if v["online"] == json!(true) {
                "online"
            } else {
                "OFFLINE"
            },
            if v["quarantined"] == json!(true) {
                " (quarantined)"
            } else {
                ""
            }
        );
        table(
            out,
            v["nodes"].as_array().map(Vec::as_slice).unwrap_or_default(),
            &[
                ("node", "NODE"),
                ("path", "PATH"),
                ("online", "ONLINE"),
                ("error", "ERROR"),
            ],
        );
    }
    if v["online"] != json!(true) {
        bail!(
            "datastore {store} is offline on some node: remount or repair its directory, then probe again"
        );
    }
    Ok(())
}

/// `datastore stats`.
pub fn stats(api: &ApiClient, store: &DatastoreName, out: Output) -> Result<()> {
    let v: Value = api.blocking(api.get(&store_path(store, "stats")))?;
    if out == Output::Json {
        object(out, &v);
        return Ok(());
    }
    println!(
        "datastore {store}: {} snapshots in {} groups, {} logical, {} stored on all nodes (copies {}){}",
        v["snapshots"],
        v["groups"],
        bytes(v["logical-bytes"].as_u64()),
        bytes(v["stored-bytes"].as_u64()),
        v["copies"],
        if v["quarantined"] == json!(true) {
            ", QUARANTINED"
        } else {
            ""
        }
    );
    let rows: Vec<Value> = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let u = &n["usage"];
            let pct = |used: Option<u64>, total: Option<u64>| match (used, total) {
                (Some(u), Some(t)) if t > 0 => {
                    json!(format!("{:.1}%", 100.0 * u as f64 / t as f64))
                }
                _ => Value::Null,
            };
            let total = u["fs_total_bytes"].as_u64();
            let free = u["fs_free_bytes"].as_u64();
            json!({
                "node": n["node"],
                "online": n["online"],
                "chunks": u["chunks"],
                "stored": u["stored_bytes"].as_u64().map(|b| bytes(Some(b))),
                "free": free.map(|b| bytes(Some(b))),
                "used": pct(total.zip(free).map(|(t, f)| t - f), total),
                "inodes": pct(u["inodes_used"].as_u64(), u["inodes_total"].as_u64()),
                "error": n["error"],
            })
        })
        .collect();
    table(
        out,
        &rows,
        &[
            ("node", "NODE"),
            ("online", "ONLINE"),
            ("chunks", "CHUNKS"),
            ("stored", "STORED"),
            ("free", "FS FREE"),
            ("used", "FS USED"),
            ("inodes", "INODES USED"),
            ("error", "ERROR"),
        ],
    );
    Ok(())
}

/// `datastore quarantine`.
pub fn quarantine(api: &ApiClient, store: &DatastoreName, clear: bool, out: Output) -> Result<()> {
    let v: Value = api.blocking(api.json(
        Method::PUT,
        &store_path(store, "quarantine"),
        Some(&json!({ "quarantined": !clear })),
    ))?;
    if out == Output::Json {
        object(out, &v);
    } else if clear {
        println!("datastore {store}: quarantine lifted; backups and garbage collection run again");
    } else {
        println!(
            "datastore {store}: quarantined; new backups and garbage collection are refused \
             (reads, restores and verify still work). Lift it with \
             `ironcore-backup datastore quarantine {store} --clear`"
        );
    }
    Ok(())
}

fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), crate::progress::bytes)
}
