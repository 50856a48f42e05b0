//! `cluster status|join-token|add|promote|demote|remove|transfer|site`: the cluster's members
//! and its sites.

use anyhow::Result;
use clap::Subcommand;
use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use serde_json::json;

use crate::api::{get, rows, send};
use crate::output::{Output, object, table};

/// `cluster …`.
#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Members, roles and the leader.
    Status,
    /// A one-time token for `ironcore-node join --token` (valid for --ttl seconds).
    JoinToken {
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Add a node: prints a one-time token and the command to run on the new node.
    Add {
        /// Join it as a learner (tape node, extra storage) instead of a voter.
        #[arg(long)]
        learner: bool,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
    /// Make a learner a voter.
    Promote {
        /// Node name or Raft id.
        node: String,
    },
    /// Make a voter a learner (it keeps the log and its chunks, but no longer votes).
    Demote {
        /// Node name or Raft id.
        node: String,
    },
    /// Remove a node from the cluster.
    Remove {
        /// Node name or Raft id.
        node: String,
    },
    /// Hand Raft leadership to a voter.
    Transfer {
        /// Node name or Raft id.
        node: String,
    },
    /// The sites and their roles.
    #[command(subcommand)]
    Site(SiteCmd),
}

/// `cluster site …`.
#[derive(Subcommand)]
pub enum SiteCmd {
    /// Every site with its role and nodes.
    List,
    /// Record a site or change its role or link limit. Add a site before its first node joins.
    Set {
        /// The site's name, as its nodes' configuration names it (`site = "..."`).
        name: String,
        /// primary (takes the backups; one site at most), backup (holds copies, takes over
        /// when the Primary is lost) or witness (its nodes vote and hold no data). Needed for
        /// a new site; an existing site keeps its role when it is left out.
        #[arg(long, value_parser = ["primary", "backup", "witness"])]
        role: Option<String>,
        /// The most mirroring into this site may use of the link from the other sites, in
        /// MiB/s, shared by the site's storage nodes (0 = unlimited, the default). Backups at
        /// the Primary never wait for mirroring, whatever the limit.
        #[arg(long, value_name = "MIB_PER_S")]
        bwlimit: Option<u64>,
    },
}

/// Runs a `cluster` command.
pub fn run(api: &ApiClient, cmd: ClusterCmd, out: Output) -> Result<()> {
    match cmd {
        ClusterCmd::Status => status(api, out),
        ClusterCmd::JoinToken { ttl } => {
            object(
                out,
                &send(
                    api,
                    Method::POST,
                    "/api2/json/cluster/join-token",
                    json!({ "ttl_secs": ttl }),
                )?,
            );
            Ok(())
        }
        ClusterCmd::Add { learner, ttl } => add(api, learner, ttl, out),
        ClusterCmd::Promote { node } => membership(api, "promote", node, out),
        ClusterCmd::Demote { node } => membership(api, "demote", node, out),
        ClusterCmd::Remove { node } => membership(api, "remove", node, out),
        ClusterCmd::Transfer { node } => membership(api, "transfer", node, out),
        ClusterCmd::Site(SiteCmd::List) => {
            let v = get(api, "/api2/json/cluster/sites")?;
            if out == Output::Json {
                object(out, &v["data"]);
                return Ok(());
            }
            let list: Vec<serde_json::Value> = rows(&v)
                .into_iter()
                .map(|mut s| {
                    let nodes: Vec<&str> = s["nodes"]
                        .as_array()
                        .map(|l| l.iter().filter_map(|n| n.as_str()).collect())
                        .unwrap_or_default();
                    s["node-list"] = json!(nodes.join(", "));
                    if s["role"].is_null() {
                        s["role"] = json!("(not set)");
                    }
                    s["link"] = match s["bwlimit"].as_u64() {
                        Some(n) if n > 0 => json!(format!("{n} MiB/s")),
                        _ => json!("unlimited"),
                    };
                    s
                })
                .collect();
            table(
                out,
                &list,
                &[
                    ("name", "SITE"),
                    ("role", "ROLE"),
                    ("link", "MIRROR LINK LIMIT"),
                    ("node-list", "NODES"),
                ],
            );
            Ok(())
        }
        ClusterCmd::Site(SiteCmd::Set {
            name,
            role,
            bwlimit,
        }) => {
            let mut body = json!({});
            if let Some(r) = role {
                body["role"] = json!(r);
            }
            if let Some(b) = bwlimit {
                body["bwlimit"] = json!(b);
            }
            let v = send(
                api,
                Method::PUT,
                &format!("/api2/json/cluster/sites/{}", encode_segment(&name)),
                body,
            )?;
            object(out, &v);
            Ok(())
        }
    }
}

/// `cluster status`: the cluster, then each site with its role and its nodes.
fn status(api: &ApiClient, out: Output) -> Result<()> {
    let s = get(api, "/api2/json/cluster/status")?;
    if out == Output::Json {
        object(out, &s);
        return Ok(());
    }
    println!(
        "cluster {} epoch {} term {} (last log index {}; progress from {})",
        s["cluster-id"].as_str().unwrap_or("-"),
        s["epoch"],
        s["term"],
        s["last-log-index"],
        s["progress-from"].as_str().unwrap_or("-"),
    );
    let nodes = rows(&json!({ "data": s["nodes"] }));
    for site in rows(&json!({ "data": s["sites"] })) {
        let name = site["name"].as_str().unwrap_or_default();
        println!(
            "\nsite {name} ({})",
            site["role"].as_str().unwrap_or("role not set")
        );
        let here: Vec<serde_json::Value> = nodes
            .iter()
            .filter(|n| n["site"] == name)
            .cloned()
            .collect();
        table(
            out,
            &here,
            &[
                ("name", "NODE"),
                ("id", "RAFT ID"),
                ("role", "ROLE"),
                ("voter", "VOTER"),
                ("leader", "LEADER"),
                ("health", "HEALTH"),
                ("match-index", "MATCH"),
                ("lag", "LAG"),
                ("last-contact-ms", "CONTACT MS"),
                ("api-address", "API"),
            ],
        );
    }
    Ok(())
}

/// `cluster add`: a join token and the command that uses it.
fn add(api: &ApiClient, learner: bool, ttl: i64, out: Output) -> Result<()> {
    let t = send(
        api,
        Method::POST,
        "/api2/json/cluster/join-token",
        json!({ "ttl_secs": ttl }),
    )?;
    let token = t["token"].as_str().unwrap_or_default();
    let command = format!(
        "ironcore-node --config /etc/ironcore-backup/node.toml join --token '{token}'{}",
        if learner { " --learner" } else { "" }
    );
    if out == Output::Json {
        object(out, &json!({ "token": token, "command": command }));
    } else {
        println!(
            "On the new node, with its config written (see deploy/ironcore-node.toml), run within {ttl} s:\n\n  {command}\n\nthen start it (`ironcore-node run`) and check `ironcore-backup cluster status`. The token works once."
        );
    }
    Ok(())
}

/// `cluster promote|demote|remove|transfer`: membership change `op` of `node`.
fn membership(api: &ApiClient, op: &str, node: String, out: Output) -> Result<()> {
    let v = send(
        api,
        Method::POST,
        "/api2/json/cluster/membership",
        json!({ "op": op, "node": node }),
    )?;
    if out == Output::Json {
        object(out, &v);
    } else {
        println!("{}", v["result"].as_str().unwrap_or_default());
    }
    Ok(())
}
