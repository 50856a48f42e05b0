//! `datastore list|create|probe|stats|quarantine`: datastores and their state on every
//! storage node.

use anyhow::{Result, bail};
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::api::{get, rows, send, store_path};
use crate::output::{Output, object, table};

/// `datastore …`.
#[derive(Subcommand)]
pub enum DatastoreCmd {
    /// List datastores.
    List,
    /// Create a datastore on the storage nodes of a site.
    Create {
        name: DatastoreName,
        /// Absolute directory on each storage node.
        #[arg(long)]
        path: String,
        /// Site (default: the answering node's).
        #[arg(long)]
        site: Option<String>,
        /// Nodes holding each chunk.
        #[arg(long, default_value_t = 2)]
        copies: u8,
    },
    /// Probe the datastore's directory on every storage node (write, sync, read back).
    Probe { name: DatastoreName },
    /// Snapshots, sizes, and each node's chunks, free space and inodes.
    Stats { name: DatastoreName },
    /// Quarantine a datastore: new backups and garbage collection are refused until lifted.
    Quarantine {
        name: DatastoreName,
        /// Lift the quarantine.
        #[arg(long)]
        clear: bool,
    },
}

/// Runs a `datastore` command.
pub fn run(api: &ApiClient, cmd: DatastoreCmd, out: Output) -> Result<()> {
    match cmd {
        DatastoreCmd::List => {
            table(
                out,
                &rows(&get(api, "/api2/json/datastore")?),
                &[
                    ("name", "NAME"),
                    ("site", "SITE"),
                    ("path", "PATH"),
                    ("copies", "COPIES"),
                ],
            );
            Ok(())
        }
        DatastoreCmd::Create {
            name,
            path,
            site,
            copies,
        } => {
            object(
                out,
                &send(
                    api,
                    Method::POST,
                    "/api2/json/datastore",
                    json!({ "name": name, "path": path, "site": site, "copies": copies }),
                )?,
            );
            Ok(())
        }
        DatastoreCmd::Probe { name } => probe(api, &name, out),
        DatastoreCmd::Stats { name } => stats(api, &name, out),
        DatastoreCmd::Quarantine { name, clear } => quarantine(api, &name, clear, out),
    }
}

/// `datastore probe`.
fn probe(api: &ApiClient, store: &DatastoreName, out: Output) -> Result<()> {
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
fn stats(api: &ApiClient, store: &DatastoreName, out: Output) -> Result<()> {
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
fn quarantine(api: &ApiClient, store: &DatastoreName, clear: bool, out: Output) -> Result<()> {
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

/// `n` bytes for humans (`-` when unknown).
fn bytes(n: Option<u64>) -> String {
    n.map_or_else(|| "-".into(), crate::progress::bytes)
}
