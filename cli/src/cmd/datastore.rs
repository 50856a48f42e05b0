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
        /// Site (default: the first site of --copies, else the answering node's).
        #[arg(long)]
        site: Option<String>,
        /// Nodes holding each chunk: N at the datastore's site, or per site
        /// (`primary=2,backup=1`). A backup is acknowledged once its site holds its copies; the
        /// other sites' nodes then pull theirs by themselves (continuous mirroring).
        #[arg(long, default_value = "2", value_parser = parse_copies)]
        copies: Copies,
        /// When a backup is acknowledged: `async` (once the datastore's site holds its copies;
        /// the other sites follow within the mirror lag) or `sync` (once every site of
        /// --copies holds its copies: nothing acknowledged is lost with the whole Primary
        /// site, RPO 0 for data, but every backup waits for the link between the sites, its
        /// round trips and its rate, and fails when that link is down).
        #[arg(long, default_value = "async", value_parser = ["async", "sync"])]
        mirror: String,
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
                &rows(&get(api, "/api2/json/datastore")?)
                    .into_iter()
                    .map(|mut d| {
                        let m: Vec<String> = d["mirrors"]
                            .as_array()
                            .map(|l| {
                                l.iter()
                                    .map(|m| {
                                        format!(
                                            "{}={}",
                                            m["site"].as_str().unwrap_or("?"),
                                            m["copies"]
                                        )
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        d["mirror-sites"] = if m.is_empty() {
                            json!("-")
                        } else {
                            json!(format!(
                                "{} ({})",
                                m.join(","),
                                d["mirror"].as_str().unwrap_or("async")
                            ))
                        };
                        d
                    })
                    .collect::<Vec<_>>(),
                &[
                    ("name", "NAME"),
                    ("site", "SITE"),
                    ("path", "PATH"),
                    ("copies", "COPIES"),
                    ("mirror-sites", "MIRRORS"),
                ],
            );
            Ok(())
        }
        DatastoreCmd::Create {
            name,
            path,
            site,
            copies,
            mirror,
        } => {
            let (site, copies, mirrors) = copies.split(site)?;
            object(
                out,
                &send(
                    api,
                    Method::POST,
                    "/api2/json/datastore",
                    json!({ "name": name, "path": path, "site": site, "copies": copies,
                        "mirrors": mirrors, "mirror": mirror }),
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

/// `--copies`: a count at the datastore's site, or counts per site in the order given.
#[derive(Clone, Debug, PartialEq)]
pub enum Copies {
    /// N at the datastore's site.
    Here(u8),
    /// `SITE=N` for each site.
    PerSite(Vec<(String, u8)>),
}

fn parse_copies(s: &str) -> Result<Copies, String> {
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Copies::Here(n));
    }
    let mut sites = Vec::new();
    for part in s.split(',') {
        let (site, n) = part.split_once('=').ok_or_else(|| {
            format!("'{part}' is not SITE=N; give a count, or counts per site such as primary=2,backup=1")
        })?;
        let n = n
            .parse::<u8>()
            .map_err(|_| format!("'{n}' in '{part}' is not a count from 1 to 255"))?;
        sites.push((site.to_string(), n));
    }
    Ok(Copies::PerSite(sites))
}

impl Copies {
    /// The datastore's site (`site`, else the first of the list, else the answering node's),
    /// its copies, and the other sites as `{site, copies}`.
    fn split(
        self,
        site: Option<String>,
    ) -> Result<(
        Option<String>,
        u8,
        serde_json::Map<String, serde_json::Value>,
    )> {
        let list = match self {
            Copies::Here(n) => return Ok((site, n, serde_json::Map::new())),
            Copies::PerSite(list) => list,
        };
        let own = site.unwrap_or_else(|| list[0].0.clone());
        let copies = list
            .iter()
            .find(|(s, _)| *s == own)
            .map(|(_, n)| *n)
            .ok_or_else(|| {
                anyhow::anyhow!("--copies names no count for the datastore's site {own}")
            })?;
        let mirrors = list
            .into_iter()
            .filter(|(s, _)| *s != own)
            .map(|(s, n)| (s, json!(n)))
            .collect();
        Ok((Some(own), copies, mirrors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_a_count_or_counts_per_site() {
        assert_eq!(parse_copies("3").unwrap(), Copies::Here(3));
        let per = parse_copies("primary=2,backup=1").unwrap();
        let (site, n, mirrors) = per.clone().split(None).unwrap();
        assert_eq!((site.as_deref(), n), (Some("primary"), 2));
        assert_eq!(json!(mirrors), json!({"backup": 1}));
        let (site, n, _) = per.clone().split(Some("backup".into())).unwrap();
        assert_eq!((site.as_deref(), n), (Some("backup"), 1));
        assert!(per.split(Some("elsewhere".into())).is_err());
        assert!(parse_copies("primary=x").is_err());
        assert!(parse_copies("primary").is_err());
    }
}
