//! Structured JSON logs, one file per subsystem under the log dir: `api.log`, `raft.log`,
//! `transport.log`, `worker.log` (backups, tasks, replication), `node.log` (everything else).

use std::path::Path;

use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::{NodeError, Result};

fn subsystem(target: &str) -> &'static str {
    if target.starts_with("ironcore_raft") || target.starts_with("openraft") {
        "raft"
    } else if target.starts_with("ironcore_transport") || target.starts_with("quinn") {
        "transport"
    } else if target.starts_with("ironcore_node::api")
        || target.starts_with("ironcore_node::runtime::https")
    {
        "api"
    } else if target == "notify" || target.starts_with("ironcore_node::notify") {
        "notify"
    } else if target.starts_with("ironcore_node::node")
        || target.starts_with("ironcore_node::replication")
        || target.starts_with("ironcore_node::runtime::peer_service")
        || target.starts_with("ironcore_chunkstore")
    {
        "worker"
    } else {
        "node"
    }
}

/// What is logged unless `RUST_LOG` says otherwise. openraft's replication and heartbeat
/// workers warn on every failed RPC (several a second while a voter is down); the network
/// layer logs each peer's changes of state once instead (`ironcore_raft::reachability`), so
/// theirs are kept to errors.
pub const DEFAULT_FILTER: &str =
    "info,quinn=warn,openraft=warn,openraft::replication=error,openraft::core::heartbeat=error";

/// Installs the subscriber (once, in the binary). `RUST_LOG` overrides the default `info`.
pub fn init(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(NodeError::io(format!("creating log dir {}", dir.display())))?;
    let mut layers = Vec::new();
    for name in ["api", "raft", "transport", "worker", "notify", "node"] {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.log")))
            .map_err(NodeError::io(format!("opening {name}.log")))?;
        let layer = fmt::layer()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter_fn(move |m| subsystem(m.target()) == name))
            .boxed();
        layers.push(layer);
    }
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .init();
    Ok(())
}
