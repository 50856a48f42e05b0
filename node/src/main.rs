//! `ironcore-node`: the daemon of one Ironcore Backup node.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ironcore_node::cluster::join::JoinToken;
use ironcore_node::cluster::state::ClusterState;
use ironcore_node::config::NodeConfig;
use ironcore_types::records::NodeRole;

#[derive(Parser)]
#[command(
    name = "ironcore-node",
    version,
    about = "The Ironcore Backup node daemon"
)]
struct Cli {
    /// The node's TOML configuration.
    #[arg(long, short, default_value = "/etc/ironcore-backup/node.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node until SIGTERM or Ctrl-C.
    Run,
    /// Make this node the first member of a new cluster (its first run bootstraps it and
    /// writes the admin token to <data-dir>/admin.token).
    Init,
    /// Join an existing cluster with a one-time token from `ironcore-backup cluster join-token`.
    Join {
        /// The token (SECRET@HOST:PORT/FINGERPRINT).
        #[arg(long)]
        token: String,
        /// Join as a learner (tape node, extra storage) instead of a voter.
        #[arg(long)]
        learner: bool,
    },
    /// Print this node's certificate fingerprint (for pinning in clients).
    Fingerprint,
    /// Print the API's OpenAPI description (what `GET /api2/json/openapi.json` serves); needs
    /// no configuration.
    Openapi,
}

fn main() -> anyhow::Result<()> {
    // Before any file or thread exists: everything this process creates is its user's alone.
    ironcore_node::private::restrict_umask();
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{}", ironcore_node::api::document().to_pretty_json()?);
        return Ok(());
    }
    let config = NodeConfig::load(&cli.config)?;
    ironcore_node::private::private_dir(&config.data_dir, "data directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Openapi => unreachable!("answered before the configuration is read"),
        Command::Fingerprint => {
            println!(
                "{}",
                ironcore_node::cluster::identity::identity(&config)?
                    .fingerprint()
                    .to_hex()
            );
        }
        Command::Init => {
            if ClusterState::exists(&config.data_dir) {
                anyhow::bail!("{} already belongs to a cluster", config.data_dir.display());
            }
            let identity = ironcore_node::cluster::identity::identity(&config)?;
            let state = ClusterState {
                version: 1,
                cluster_id: hex::encode(rand::random::<[u8; 16]>()),
                raft_id: rand::random::<u64>() >> 1,
                epoch: 1,
                bootstrap_pending: true,
                peers: vec![ironcore_node::cluster::identity::self_record(
                    &config, 0, &identity,
                )],
            };
            state.save(&config.data_dir)?;
            println!(
                "cluster {} created; start the node with `ironcore-node --config {} run`",
                state.cluster_id,
                cli.config.display()
            );
        }
        Command::Join { token, learner } => {
            let token: JoinToken = token.parse()?;
            let role = if learner {
                NodeRole::Learner
            } else {
                NodeRole::Voter
            };
            let state = rt.block_on(ironcore_node::cluster::join::join(&config, &token, role))?;
            println!(
                "joined cluster {} as raft id {}; start the node with `ironcore-node --config {} run`",
                state.cluster_id,
                state.raft_id,
                cli.config.display()
            );
        }
        Command::Run => {
            ironcore_node::logging::init(&config.log_dir)?;
            rt.block_on(async {
                let shutdown = async {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .expect("installing a SIGTERM handler cannot fail in a fresh process");
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = tokio::signal::ctrl_c() => {},
                    }
                };
                ironcore_node::runtime::run(config, shutdown).await
            })
            .context("the node stopped with an error")?;
        }
    }
    // Blocking work still running (a chunk write, a sweep) must not hold the exit: what it
    // did not finish was never acknowledged.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}
