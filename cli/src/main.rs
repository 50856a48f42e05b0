//! `ironcore-backup`: the admin and backup CLI of Ironcore Backup. It talks to a node's HTTPS
//! API only (pinned fingerprint, API token); it never links the daemon.
//!
//! Exit codes: 0 success · 1 error · 2 usage · 3 authentication or permission denied ·
//! 4 not found · 5 node unreachable or TLS fingerprint mismatch.

mod api;
mod cmd;
mod conn;
mod follow;
mod keep;
mod output;
mod progress;
mod select;

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use ironcore_client::ApiError;

use crate::cmd::{
    acl, audit, backup, cluster, compare, datastore, gc, job, key, mirror, namespace, notification,
    prune, remote, snapshot, status, sync, task, token, user, verify, worker,
};
use crate::output::Output;

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
    Cluster(cluster::ClusterCmd),
    /// Datastores.
    #[command(subcommand)]
    Datastore(datastore::DatastoreCmd),
    /// Back up a directory tree (host, container root) or a disk image.
    Backup(backup::BackupArgs),
    /// Restore a snapshot (GROUP/TIME, or GROUP for the newest) to a directory or image file.
    Restore(backup::RestoreArgs),
    /// Snapshots.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Remove a group's snapshots that no keep option holds (PBS retention semantics;
    /// protected snapshots always stay).
    Prune(prune::PruneArgs),
    /// Namespaces of a datastore.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCmd),
    /// Garbage collection.
    #[command(subcommand)]
    Gc(gc::GcCmd),
    /// Verification.
    #[command(subcommand)]
    Verify(verify::VerifyCmd),
    /// Scheduled jobs (verify, gc, prune), run by the cluster's leader.
    #[command(subcommand)]
    Job(job::JobCmd),
    /// Continuous mirroring to the backup sites of this cluster.
    #[command(subcommand)]
    Mirror(mirror::MirrorCmd),
    /// Remotes: other clusters or sites, for sync.
    #[command(subcommand)]
    Remote(remote::RemoteCmd),
    /// Sync jobs: pull a remote's snapshots into a datastore here.
    #[command(subcommand)]
    Sync(sync::SyncCmd),
    /// Notifications: webhook targets for the cluster's events.
    #[command(subcommand)]
    Notification(notification::NotificationCmd),
    /// Tasks.
    #[command(subcommand)]
    Task(task::TaskCmd),
    /// Worker slots and queued work of this node.
    Worker {
        #[command(subcommand)]
        cmd: worker::WorkerCmd,
    },
    /// Users.
    #[command(subcommand)]
    User(user::UserCmd),
    /// API tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Access control.
    #[command(subcommand)]
    Acl(acl::AclCmd),
    /// Encryption key fingerprints known to the cluster.
    #[command(subcommand)]
    Key(key::KeyCmd),
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

/// The exit code for `e` (see the crate documentation).
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

/// Parses the command line and runs it; on an error, prints it and exits with its code.
fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(exit_code(&e));
    }
}

/// Runs the command. Commands that need no node (`completions`, `compare`, `key create`)
/// connect to none; the others connect first.
fn run(cli: Cli) -> Result<()> {
    let Cli {
        conn,
        output: out,
        command,
    } = cli;
    // Connects when called. Most commands take the client (`&*`); backup and restore take
    // the `Arc` their chunk pipelines share.
    let api = || conn.client();
    match command {
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "ironcore-backup",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Cmd::Compare { a, b } => compare::run(&a, &b),
        Cmd::Key(cmd) => key::run(cmd, &conn, out),
        Cmd::Status { services } => status::run(&*api()?, services, out),
        Cmd::Cluster(cmd) => cluster::run(&*api()?, cmd, out),
        Cmd::Datastore(cmd) => datastore::run(&*api()?, cmd, out),
        Cmd::Backup(args) => backup::backup(&api()?, args, out),
        Cmd::Restore(args) => backup::restore(&api()?, args, out),
        Cmd::Snapshot(cmd) => snapshot::run(&*api()?, cmd, out),
        Cmd::Prune(args) => prune::run(&*api()?, args, out),
        Cmd::Namespace(cmd) => namespace::run(&*api()?, cmd, out),
        Cmd::Gc(cmd) => gc::run(&*api()?, cmd, out),
        Cmd::Verify(cmd) => verify::run(&*api()?, cmd, out),
        Cmd::Job(cmd) => job::run(&*api()?, cmd, out),
        Cmd::Mirror(cmd) => mirror::run(&*api()?, cmd, out),
        Cmd::Remote(cmd) => remote::run(&*api()?, cmd, out),
        Cmd::Sync(cmd) => sync::run(&*api()?, cmd, out),
        Cmd::Notification(cmd) => notification::run(&*api()?, cmd, out),
        Cmd::Task(cmd) => task::run(&*api()?, cmd, out),
        Cmd::Worker { cmd } => worker::run(&*api()?, cmd, out),
        Cmd::User(cmd) => user::run(&*api()?, cmd, out),
        Cmd::Token(cmd) => token::run(&*api()?, cmd, out),
        Cmd::Acl(cmd) => acl::run(&*api()?, cmd, out),
        Cmd::Audit => audit::run(&*api()?, out),
        Cmd::Login { userid } => user::login(&*api()?, userid, out),
    }
}
