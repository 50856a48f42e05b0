//! `snapshot list|protect|forget`: the snapshots of a datastore.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_types::DatastoreName;
use serde_json::{Value, json};

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};
use crate::select::{parse_ns, resolve};

/// `snapshot …`.
#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// List snapshots of a datastore.
    List {
        #[arg(long)]
        store: DatastoreName,
    },
    /// Protect a snapshot (GROUP/TIME) from prune and forget, or lift it with --off.
    Protect {
        snapshot: String,
        #[arg(long)]
        store: DatastoreName,
        #[arg(long)]
        ns: Option<String>,
        #[arg(long)]
        off: bool,
    },
    /// Forget a snapshot (GROUP/TIME).
    Forget {
        snapshot: String,
        #[arg(long)]
        store: DatastoreName,
        #[arg(long)]
        ns: Option<String>,
    },
}

/// Runs a `snapshot` command.
pub fn run(api: &ApiClient, cmd: SnapshotCmd, out: Output) -> Result<()> {
    match cmd {
        SnapshotCmd::List { store } => {
            table(
                out,
                &rows(&get(
                    api,
                    &format!("/api2/json/datastore/{store}/snapshots"),
                )?),
                &[
                    ("snapshot", "SNAPSHOT"),
                    ("size", "SIZE"),
                    ("owner", "OWNER"),
                    ("protected", "PROTECTED"),
                    ("verify", "VERIFY"),
                    ("sites", "RESTORABLE AT"),
                    ("key-fingerprint", "KEY"),
                ],
            );
        }
        SnapshotCmd::Protect {
            snapshot,
            store,
            ns,
            off,
        } => {
            let nsv = parse_ns(ns.as_deref())?;
            let s = resolve(api, &store, &nsv, &snapshot, None)?;
            let body = json!({ "ns": s.ns.to_string(), "group": s.group.to_string(), "time": s.time, "protected": !off });
            object(
                out,
                &send(
                    api,
                    Method::PUT,
                    &format!("/api2/json/datastore/{store}/protect"),
                    body,
                )?,
            );
        }
        SnapshotCmd::Forget {
            snapshot,
            store,
            ns,
        } => {
            let ns = parse_ns(ns.as_deref())?;
            let s = resolve(api, &store, &ns, &snapshot, None)?;
            let path = format!(
                "/api2/json/datastore/{store}/snapshot?ns={}&group={}&time={}",
                encode_segment(&s.ns.to_string()),
                encode_segment(&s.group.to_string()),
                s.time
            );
            object(
                out,
                &api.blocking(api.json::<(), Value>(Method::DELETE, &path, None))?,
            );
        }
    }
    Ok(())
}
