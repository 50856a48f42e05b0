//! `ironcore-backup`: the admin and backup CLI of Ironcore Backup. It talks to a node's HTTPS
//! API only (pinned fingerprint, API token); it never links the daemon.
//!
//! Exit codes: 0 success · 1 error · 2 usage · 3 authentication or permission denied ·
//! 4 not found · 5 node unreachable or TLS fingerprint mismatch.

mod backup;
mod conn;
mod datastore_ops;
mod jobs;
mod keep;
mod notifications;
mod output;
mod progress;
mod remotes;
mod sync;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use hyper::Method;
use ironcore_client::ApiError;
use ironcore_client::api_client::encode_segment;
use ironcore_types::{BackupGroup, DatastoreName};
use serde_json::{Value, json};

use crate::output::{Output, object, table};

#[derive(Parser)]
#[command(
    name = "ironcore-backup",
    version,
    about = "Ironcore Backup: back up, restore and administer a cluster"
)]
struct Cli {
    #[command(flatten)]
    conn: conn::ConnArgs,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t)]
    output: Output,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// This node, the cluster, and (with --services) each service's health.
    Status {
        /// List the services.
        #[arg(long)]
        services: bool,
    },
    /// Cluster membership.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Datastores.
    #[command(subcommand)]
    Datastore(DatastoreCmd),
    /// Back up a directory tree (host, container root) or a disk image.
    Backup {
        /// The directory, image file or block device.
        source: PathBuf,
        /// Datastore.
        #[arg(long)]
        store: DatastoreName,
        /// Backup group, TYPE/ID (host/web01, vm/100, ct/101).
        #[arg(long)]
        group: BackupGroup,
        /// Namespace (a/b).
        #[arg(long)]
        ns: Option<String>,
        /// Back up SOURCE as a disk image (fixed 4 MiB chunks).
        #[arg(long)]
        image: bool,
        /// Encrypt with this key file (passphrase from IRONCORE_KEY_PASSPHRASE).
        #[arg(long)]
        keyfile: Option<PathBuf>,
        /// Read every file, even those the previous snapshot shows unchanged (same size,
        /// mtime, mode and owner).
        #[arg(long)]
        reread: bool,
    },
    /// Restore a snapshot (GROUP/TIME, or GROUP for the newest) to a directory or image file.
    Restore {
        /// GROUP/TIME (host/web01/2026-11-23T14:00:00Z) or GROUP.
        snapshot: String,
        /// Where to restore (a new or empty directory; a file for images).
        target: PathBuf,
        /// Datastore.
        #[arg(long)]
        store: DatastoreName,
        /// Namespace.
        #[arg(long)]
        ns: Option<String>,
        /// Use the newest snapshot at or before this ISO-8601 time.
        #[arg(long)]
        at: Option<String>,
        /// Restore only this file or subtree (path inside the backup).
        #[arg(long)]
        file: Option<String>,
        /// Key file of an encrypted snapshot.
        #[arg(long)]
        keyfile: Option<PathBuf>,
    },
    /// Snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Remove a group's snapshots that no keep option holds (PBS retention semantics;
    /// protected snapshots always stay).
    Prune {
        /// The group (TYPE/ID).
        group: BackupGroup,
        #[arg(long)]
        store: DatastoreName,
        #[arg(long)]
        ns: Option<String>,
        #[command(flatten)]
        keep: keep::KeepArgs,
        /// IANA timezone of the day/week/month buckets.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Namespaces of a datastore.
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Garbage collection.
    #[command(subcommand)]
    Gc(datastore_ops::GcCmd),
    /// Verification.
    #[command(subcommand)]
    Verify(datastore_ops::VerifyCmd),
    /// Scheduled jobs (verify, gc, prune), run by the cluster's leader.
    #[command(subcommand)]
    Job(jobs::JobCmd),
    /// Remotes: other clusters or sites, for sync.
    #[command(subcommand)]
    Remote(remotes::RemoteCmd),
    /// Sync jobs: pull a remote's snapshots into a datastore here.
    #[command(subcommand)]
    Sync(sync::SyncCmd),
    /// Notifications: webhook targets for the cluster's events.
    #[command(subcommand)]
    Notification(notifications::NotificationCmd),
    /// Tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Worker slots and queued work of this node.
    Worker {
        #[command(subcommand)]
        cmd: WorkerCmd,
    },
    /// Users.
    #[command(subcommand)]
    User(UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Access control.
    #[command(subcommand)]
    Acl(AclCmd),
    /// Encryption key fingerprints known to the cluster.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Compare two directory trees entry by entry (content, mode, owner, mtime, links); exit 1
    /// if they differ. Used to prove a restore identical.
    Compare {
        /// The original.
        a: PathBuf,
        /// The restored copy.
        b: PathBuf,
    },
    /// The cluster's audit log: every metadata change, who asked, when, and the result.
    Audit,
    /// Log in with a user's password (from IRONCORE_PASSWORD, or asked); prints
    /// `export IRONCORE_TICKET=…` for `eval` (the ticket is valid 2 hours on every node).
    Login {
        /// USER@REALM.
        userid: String,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, …
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
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
}

#[derive(Subcommand)]
enum DatastoreCmd {
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

#[derive(Subcommand)]
enum SnapshotCmd {
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

#[derive(Subcommand)]
enum NamespaceCmd {
    /// List namespaces.
    List {
        #[arg(long)]
        store: DatastoreName,
    },
    /// Create a namespace (a/b; its parent must exist).
    Create {
        ns: String,
        #[arg(long)]
        store: DatastoreName,
    },
}

#[derive(Subcommand)]
enum TaskCmd {
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

#[derive(Subcommand)]
enum WorkerCmd {
    /// Slots in use and queued work.
    Status,
}

#[derive(Subcommand)]
enum UserCmd {
    /// List users.
    List,
    /// Create a user (USER@REALM).
    Create {
        userid: String,
        /// Give it a password for `login` (from IRONCORE_PASSWORD, or asked).
        #[arg(long)]
        password: bool,
    },
    /// Set a user's password (from IRONCORE_PASSWORD, or asked).
    Password { userid: String },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// List tokens.
    List,
    /// Create a token (USER@REALM!NAME); the secret is shown once.
    Create { tokenid: String },
}

#[derive(Subcommand)]
enum AclCmd {
    /// List ACL entries.
    List,
    /// Grant ROLE on PATH to a user or token.
    Set {
        path: String,
        auth_id: String,
        role: String,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// List registered key fingerprints.
    List,
    /// Create a new encryption key file (passphrase from IRONCORE_KEY_PASSPHRASE; Argon2id).
    /// Keep a copy (and a paper key) somewhere safe: without it nothing encrypted can be read.
    Create {
        #[arg(long)]
        keyfile: PathBuf,
    },
    /// Register a key file's fingerprint (the key itself never leaves this machine).
    Register {
        #[arg(long)]
        keyfile: PathBuf,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

fn exit_code(e: &anyhow::Error) -> i32 {
    for cause in e.chain() {
        if let Some(api) = cause.downcast_ref::<ApiError>() {
            return match api {
                ApiError::Status {
                    status: 401 | 403, ..
                } => 3,
                ApiError::Status { status: 404, .. } => 4,
                ApiError::ConnectionRefused { .. } | ApiError::FingerprintMismatch { .. } => 5,
                _ => 1,
            };
        }
    }
    1
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

fn run(cli: Cli) -> Result<()> {
    let out = cli.output;
    if let Cmd::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "ironcore-backup",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if let Cmd::Compare { a, b } = &cli.command {
        let n = ironcore_client::compare_trees(a, b)
            .map_err(|d| anyhow::anyhow!("trees differ: {d}"))?;
        println!("identical: {n} entries compared (content, mode, owner, mtime, links)");
        return Ok(());
    }
    if let Cmd::Key(KeyCmd::Create { keyfile }) = &cli.command {
        let pass = std::env::var("IRONCORE_KEY_PASSPHRASE").unwrap_or_default();
        if pass.len() < 8 {
            anyhow::bail!("set IRONCORE_KEY_PASSPHRASE to a passphrase of at least 8 characters");
        }
        let key = ironcore_chunkstore::CryptKey::generate();
        let file = ironcore_chunkstore::KeyFile::protect(&key, &pass, Default::default())?;
        file.save(keyfile)?;
        object(
            out,
            &json!({ "keyfile": keyfile.display().to_string(), "fingerprint": key.fingerprint().to_hex() }),
        );
        return Ok(());
    }
    let api = cli.conn.client()?;
    let get = |path: &str| -> Result<Value> { Ok(api.blocking(api.get(path))?) };
    let send = |m: Method, path: &str, body: Value| -> Result<Value> {
        Ok(api.blocking(api.json(m, path, Some(&body)))?)
    };
    let rows = |v: &Value| v["data"].as_array().cloned().unwrap_or_default();
    match cli.command {
        Cmd::Completions { .. } | Cmd::Compare { .. } | Cmd::Key(KeyCmd::Create { .. }) => {}
        Cmd::Status { services } => {
            let s = get("/api2/json/status")?;
            if services && out == Output::Text {
                table(
                    out,
                    &rows(&json!({ "data": s["services"] })),
                    &[
                        ("service", "SERVICE"),
                        ("state", "STATE"),
                        ("detail", "DETAIL"),
                    ],
                );
            } else {
                object(out, &s);
            }
        }
        Cmd::Cluster(ClusterCmd::Status) => {
            let s = get("/api2/json/cluster/status")?;
            if out == Output::Json {
                object(out, &s);
            } else {
                println!(
                    "cluster {} epoch {} term {}",
                    s["cluster-id"].as_str().unwrap_or("-"),
                    s["epoch"],
                    s["term"]
                );
                table(
                    out,
                    &rows(&json!({ "data": s["nodes"] })),
                    &[
                        ("name", "NODE"),
                        ("id", "RAFT ID"),
                        ("site", "SITE"),
                        ("role", "ROLE"),
                        ("voter", "VOTER"),
                        ("leader", "LEADER"),
                        ("api-address", "API"),
                    ],
                );
            }
        }
        Cmd::Cluster(ClusterCmd::JoinToken { ttl }) => {
            object(
                out,
                &send(
                    Method::POST,
                    "/api2/json/cluster/join-token",
                    json!({ "ttl_secs": ttl }),
                )?,
            );
        }
        Cmd::Cluster(ClusterCmd::Add { learner, ttl }) => {
            let t = send(
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
        }
        Cmd::Cluster(
            c @ (ClusterCmd::Promote { .. }
            | ClusterCmd::Demote { .. }
            | ClusterCmd::Remove { .. }
            | ClusterCmd::Transfer { .. }),
        ) => {
            let (op, node) = match c {
                ClusterCmd::Promote { node } => ("promote", node),
                ClusterCmd::Demote { node } => ("demote", node),
                ClusterCmd::Remove { node } => ("remove", node),
                ClusterCmd::Transfer { node } => ("transfer", node),
                _ => unreachable!("matched above"),
            };
            let v = send(
                Method::POST,
                "/api2/json/cluster/membership",
                json!({ "op": op, "node": node }),
            )?;
            if out == Output::Json {
                object(out, &v);
            } else {
                println!("{}", v["result"].as_str().unwrap_or_default());
            }
        }
        Cmd::Datastore(DatastoreCmd::List) => {
            table(
                out,
                &rows(&get("/api2/json/datastore")?),
                &[
                    ("name", "NAME"),
                    ("site", "SITE"),
                    ("path", "PATH"),
                    ("copies", "COPIES"),
                ],
            );
        }
        Cmd::Datastore(DatastoreCmd::Create {
            name,
            path,
            site,
            copies,
        }) => {
            object(
                out,
                &send(
                    Method::POST,
                    "/api2/json/datastore",
                    json!({ "name": name, "path": path, "site": site, "copies": copies }),
                )?,
            );
        }
        Cmd::Datastore(DatastoreCmd::Probe { name }) => datastore_ops::probe(&api, &name, out)?,
        Cmd::Datastore(DatastoreCmd::Stats { name }) => datastore_ops::stats(&api, &name, out)?,
        Cmd::Datastore(DatastoreCmd::Quarantine { name, clear }) => {
            datastore_ops::quarantine(&api, &name, clear, out)?
        }
        Cmd::Gc(cmd) => datastore_ops::gc(&api, cmd, out)?,
        Cmd::Verify(cmd) => datastore_ops::verify(&api, cmd, out)?,
        Cmd::Job(cmd) => jobs::run(&api, cmd, out)?,
        Cmd::Remote(cmd) => remotes::run(&api, cmd, out)?,
        Cmd::Notification(cmd) => notifications::run(&api, cmd, out)?,
        Cmd::Sync(cmd) => sync::run(&api, cmd, out)?,
        Cmd::Backup {
            source,
            store,
            group,
            ns,
            image,
            keyfile,
            reread,
        } => {
            backup::backup(
                &api,
                backup::BackupArgs {
                    source: &source,
                    store: &store,
                    ns: ns.as_deref(),
                    group: &group,
                    image,
                    reread,
                    keyfile: keyfile.as_deref(),
                },
                out,
            )?;
        }
        Cmd::Restore {
            snapshot,
            target,
            store,
            ns,
            at,
            file,
            keyfile,
        } => {
            let ns = backup::parse_ns(ns.as_deref())?;
            let s = backup::resolve(&api, &store, &ns, &snapshot, at.as_deref())?;
            backup::restore(
                &api,
                &store,
                &s,
                &target,
                keyfile.as_deref(),
                file.as_deref(),
                out,
            )?;
        }
        Cmd::Snapshot(SnapshotCmd::List { store }) => {
            table(
                out,
                &rows(&get(&format!("/api2/json/datastore/{store}/snapshots"))?),
                &[
                    ("snapshot", "SNAPSHOT"),
                    ("size", "SIZE"),
                    ("owner", "OWNER"),
                    ("protected", "PROTECTED"),
                    ("verify", "VERIFY"),
                    ("key-fingerprint", "KEY"),
                ],
            );
        }
        Cmd::Snapshot(SnapshotCmd::Protect {
            snapshot,
            store,
            ns,
            off,
        }) => {
            let nsv = backup::parse_ns(ns.as_deref())?;
            let s = backup::resolve(&api, &store, &nsv, &snapshot, None)?;
            let body = json!({ "ns": s.ns.to_string(), "group": s.group.to_string(), "time": s.time, "protected": !off });
            object(
                out,
                &send(
                    Method::PUT,
                    &format!("/api2/json/datastore/{store}/protect"),
                    body,
                )?,
            );
        }
        Cmd::Snapshot(SnapshotCmd::Forget {
            snapshot,
            store,
            ns,
        }) => {
            let ns = backup::parse_ns(ns.as_deref())?;
            let s = backup::resolve(&api, &store, &ns, &snapshot, None)?;
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
        Cmd::Prune {
            group,
            store,
            ns,
            keep,
            timezone,
            dry_run,
        } => {
            let mut body = json!({
                "ns": ns, "group": group.to_string(), "timezone": timezone, "dry-run": dry_run,
            });
            if let (Some(b), Value::Object(k)) =
                (body.as_object_mut(), serde_json::to_value(keep.options())?)
            {
                b.extend(k);
            }
            let v = send(
                Method::POST,
                &format!("/api2/json/datastore/{store}/prune"),
                body,
            )?;
            let mut list = rows(&v);
            for r in &mut list {
                r["action"] = json!(match &r["mark"] {
                    Value::String(s) if s == "remove" =>
                        if dry_run { "would remove" } else { "removed" }.to_string(),
                    Value::Object(m) => format!(
                        "keep ({})",
                        m.get("keep").and_then(Value::as_str).unwrap_or("-")
                    ),
                    other => other.to_string(),
                });
            }
            table(
                out,
                &list,
                &[("snapshot", "SNAPSHOT"), ("action", "ACTION")],
            );
        }
        Cmd::Namespace(NamespaceCmd::List { store }) => {
            let v = get(&format!("/api2/json/datastore/{store}/namespace"))?;
            let list: Vec<Value> = rows(&v)
                .into_iter()
                .map(|n| json!({ "namespace": n }))
                .collect();
            table(out, &list, &[("namespace", "NAMESPACE")]);
        }
        Cmd::Namespace(NamespaceCmd::Create { ns, store }) => {
            object(
                out,
                &send(
                    Method::POST,
                    &format!(
                        "/api2/json/datastore/{store}/namespace?ns={}",
                        encode_segment(&ns)
                    ),
                    json!({}),
                )?,
            );
        }
        Cmd::Task(TaskCmd::List { state }) => {
            let q = state.map(|s| format!("?state={s}")).unwrap_or_default();
            let mut list = rows(&get(&format!("/api2/json/tasks{q}"))?);
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
        Cmd::Task(TaskCmd::Log { upid }) => {
            let (_, body) = api.blocking(api.raw(
                Method::GET,
                &format!("/api2/json/tasks/{}/log", encode_segment(&upid)),
                ironcore_client::Pieces::default(),
                "text/plain",
                &[],
            ))?;
            print!("{}", String::from_utf8_lossy(&body));
        }
        Cmd::Task(TaskCmd::Cancel { upid }) => {
            object(
                out,
                &api.blocking(api.json::<(), Value>(
                    Method::DELETE,
                    &format!("/api2/json/tasks/{}", encode_segment(&upid)),
                    None,
                ))?,
            );
        }
        Cmd::Worker {
            cmd: WorkerCmd::Status,
        } => {
            let s = get("/api2/json/status")?;
            let running = rows(&get("/api2/json/tasks?state=running")?);
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
        }
        Cmd::User(UserCmd::List) => table(
            out,
            &rows(&get("/api2/json/access/users")?),
            &[
                ("userid", "USER"),
                ("enabled", "ENABLED"),
                ("comment", "COMMENT"),
            ],
        ),
        Cmd::User(UserCmd::Create { userid, password }) => {
            let password = if password {
                Some(conn::read_password(
                    &format!("password for {userid}: "),
                    true,
                )?)
            } else {
                None
            };
            object(
                out,
                &send(
                    Method::POST,
                    "/api2/json/access/users",
                    json!({ "userid": userid, "password": password }),
                )?,
            )
        }
        Cmd::User(UserCmd::Password { userid }) => {
            let password = conn::read_password(&format!("new password for {userid}: "), true)?;
            object(
                out,
                &send(
                    Method::PUT,
                    "/api2/json/access/password",
                    json!({ "userid": userid, "password": password }),
                )?,
            )
        }
        Cmd::Login { userid } => {
            let password = conn::read_password(&format!("password for {userid}: "), false)?;
            let t = send(
                Method::POST,
                "/api2/json/access/ticket",
                json!({ "username": userid, "password": password }),
            )?;
            if out == Output::Json {
                object(out, &t);
            } else {
                println!(
                    "export IRONCORE_TICKET='{}'",
                    t["ticket"].as_str().unwrap_or_default()
                );
            }
        }
        Cmd::Token(TokenCmd::List) => table(
            out,
            &rows(&get("/api2/json/access/tokens")?),
            &[
                ("tokenid", "TOKEN"),
                ("expires", "EXPIRES"),
                ("comment", "COMMENT"),
            ],
        ),
        Cmd::Token(TokenCmd::Create { tokenid }) => {
            let t = send(
                Method::POST,
                "/api2/json/access/tokens",
                json!({ "tokenid": tokenid }),
            )?;
            if out == Output::Text {
                println!(
                    "token {} created; its secret is shown only now:",
                    t["tokenid"].as_str().unwrap_or("-")
                );
                println!(
                    "{}:{}",
                    t["tokenid"].as_str().unwrap_or("-"),
                    t["secret"].as_str().unwrap_or("-")
                );
            } else {
                object(out, &t);
            }
        }
        Cmd::Acl(AclCmd::List) => table(
            out,
            &rows(&get("/api2/json/access/acl")?),
            &[
                ("path", "PATH"),
                ("auth_id", "USER/TOKEN"),
                ("role", "ROLE"),
            ],
        ),
        Cmd::Acl(AclCmd::Set {
            path,
            auth_id,
            role,
        }) => {
            let role: ironcore_types::Role = role.parse()?;
            object(
                out,
                &send(
                    Method::PUT,
                    "/api2/json/access/acl",
                    json!({ "path": path, "auth_id": auth_id, "role": role }),
                )?,
            );
        }
        Cmd::Audit => {
            let mut list = rows(&get("/api2/json/audit")?);
            for r in &mut list {
                r["when"] = json!(ironcore_types::format_time(
                    r["at"].as_i64().unwrap_or_default()
                ));
            }
            table(
                out,
                &list,
                &[
                    ("seq", "SEQ"),
                    ("when", "WHEN"),
                    ("actor", "WHO"),
                    ("what", "WHAT"),
                    ("result", "RESULT"),
                ],
            );
        }
        Cmd::Key(KeyCmd::List) => table(
            out,
            &rows(&get("/api2/json/keys")?),
            &[
                ("fingerprint", "FINGERPRINT"),
                ("comment", "COMMENT"),
                ("added", "ADDED"),
            ],
        ),
        Cmd::Key(KeyCmd::Register { keyfile, comment }) => {
            let key = backup::load_key(Some(&keyfile))?.context("no key")?;
            object(
                out,
                &send(
                    Method::POST,
                    "/api2/json/keys",
                    json!({ "fingerprint": key.fingerprint().to_hex(), "comment": comment }),
                )?,
            );
        }
    }
    Ok(())
}
