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
    /// Emulate a WAN link for tests and benches (needs no configuration): a UDP proxy per
    /// route, each direction delayed, rate-capped and lossy as asked, until SIGTERM or Ctrl-C.
    /// Point the nodes of the other sites at LISTEN with `[peer-addresses]`.
    FaultProxy {
        /// LISTEN=TARGET over UDP (the nodes' QUIC), e.g. 127.0.0.1:8301=127.0.0.1:8101;
        /// repeat for several nodes.
        #[arg(long, required_unless_present = "tcp_route")]
        route: Vec<String>,
        /// LISTEN=TARGET over TCP (a tool to compare with, such as an rsync daemon), over the
        /// same link.
        #[arg(long)]
        tcp_route: Vec<String>,
        /// One-way delay in milliseconds, each direction.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Rate cap of the link each way in Mbit/s, shared by every route (0 = none).
        #[arg(long, default_value_t = 0.0)]
        rate_mbit: f64,
        /// Probability of dropping a packet, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
    },
}

fn main() -> anyhow::Result<()> {
    // Before any file or thread exists: everything this process creates is its user's alone.
    ironcore_node::private::restrict_umask();
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            println!("{}", ironcore_node::api::document().to_pretty_json()?);
            return Ok(());
        }
        Command::FaultProxy {
            route,
            tcp_route,
            delay_ms,
            rate_mbit,
            loss,
        } => return fault_proxy(&route, &tcp_route, delay_ms, rate_mbit, loss),
        _ => {}
    }
    let config = NodeConfig::load(&cli.config)?;
    ironcore_node::private::private_dir(&config.data_dir, "data directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Openapi | Command::FaultProxy { .. } => {
            unreachable!("answered before the configuration is read")
        }
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

/// `fault-proxy`: one [`FaultProxy`] per route and one [`TcpFaultProxy`] per TCP route, until
/// SIGTERM or Ctrl-C.
///
/// [`FaultProxy`]: ironcore_transport::fault::FaultProxy
/// [`TcpFaultProxy`]: ironcore_transport::fault_tcp::TcpFaultProxy
fn fault_proxy(
    routes: &[String],
    tcp_routes: &[String],
    delay_ms: u64,
    rate_mbit: f64,
    loss: f64,
) -> anyhow::Result<()> {
    use ironcore_transport::fault::{Direction, FaultProxy};
    use ironcore_transport::fault_tcp::TcpFaultProxy;
    anyhow::ensure!(
        rate_mbit.is_finite() && rate_mbit >= 0.0,
        "--rate-mbit {rate_mbit} must be 0 (no cap) or more"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&loss),
        "--loss {loss} must be between 0 and 1"
    );
    let parse = |r: &String| -> anyhow::Result<(std::net::SocketAddr, std::net::SocketAddr)> {
        let (listen, target) = r
            .split_once('=')
            .with_context(|| format!("route '{r}' is not LISTEN=TARGET"))?;
        Ok((
            listen
                .parse()
                .with_context(|| format!("route '{r}': LISTEN"))?,
            target
                .parse()
                .with_context(|| format!("route '{r}': TARGET"))?,
        ))
    };
    let udp = routes
        .iter()
        .map(parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tcp = tcp_routes
        .iter()
        .map(parse)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (delay, rate) = (
        std::time::Duration::from_millis(delay_ms),
        (rate_mbit * 1e6 / 8.0) as u64,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        // Every route shares one link: the first UDP proxy's (or an unused one's).
        let link = FaultProxy::bind("127.0.0.1:0".parse()?, "127.0.0.1:9".parse()?).await?;
        link.set_delay(Direction::Both, delay);
        link.set_rate(Direction::Both, rate);
        link.set_loss(Direction::Both, loss);
        let mut udp_proxies = Vec::new();
        for (listen, target) in udp {
            let p = FaultProxy::bind_sharing(listen, target, &link)
                .await
                .with_context(|| format!("binding {listen}"))?;
            udp_proxies.push(p);
        }
        let mut tcp_proxies = Vec::new();
        for (listen, target) in tcp {
            let p = TcpFaultProxy::bind_sharing(listen, target, &link)
                .await
                .with_context(|| format!("binding {listen}"))?;
            tcp_proxies.push(p);
        }
        println!(
            "fault-proxy: {} UDP and {} TCP routes over one link, {delay_ms} ms one way, {rate_mbit} Mbit/s each way (0: no cap), loss {loss}",
            udp_proxies.len(),
            tcp_proxies.len()
        );
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
        Ok(())
    })
}
