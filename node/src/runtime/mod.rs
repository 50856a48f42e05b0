//! Starting and stopping a node: identity, cluster state, Raft and transport, the peer
//! service, the membership watcher that keeps pins and addresses in step with Raft, and the
//! HTTPS API.

pub mod https;
mod peer_service;

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironcore_raft::{AddressBook, ClusterNode, MetaCommand, RaftNode, RaftNodeConfig};
use ironcore_transport::{ClusterId, NodeIdentity, PinSet, TransportConfig, https_server_config};
use ironcore_types::AuthId;
use ironcore_types::records::{ClusterInfo, TaskState, TokenRecord, UserRecord};
use tokio::net::TcpListener;

use crate::auth::{hash_secret, new_secret};
use crate::cluster::identity::{identity, self_record};
use crate::cluster::state::ClusterState;
use crate::config::NodeConfig;
use crate::node::{Node, NodeParts};
use crate::runtime::peer_service::PeerService;
use crate::stores::{NodeStores, TransportStores};
use crate::{NodeError, Result};

/// The file the first admin token is written to on bootstrap (0600).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Runs the node until `shutdown` resolves.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let identity = identity(&config)?;
    let project_key = match &config.project_key {
        Some(k) => Some(crate::sync::project_key::unlock(k)?),
        None => None,
    };
    let mut state = ClusterState::load(&config.data_dir)?;
    let pins = PinSet::new();
    for p in &state.peers {
        if let Ok(name) = p.name.parse() {
            for fp in &p.fingerprints {
                pins.pin(&name, *fp);
            }
        }
    }
    let mut transport = TransportConfig::new(
        config.name.clone(),
        ClusterId(state.cluster_id_bytes()?),
        state.epoch,
    );
    // Chunk requests to a dead peer should fail over to the next copy quickly.
    transport.rpc_timeout = Duration::from_secs(5);
    let cluster_node = ClusterNode {
        name: config.name.to_string(),
        site: config.site.to_string(),
        address: config.advertise.clone(),
    };
    let mut raft_config = RaftNodeConfig::new(
        state.raft_id,
        cluster_node.clone(),
        config.data_dir.join("raft"),
        config.listen,
        transport,
    );
    raft_config.heartbeat_interval = config.heartbeat;
    raft_config.election_timeout_min = config.election_timeout.0;
    raft_config.election_timeout_max = config.election_timeout.1;
    let late_stores = TransportStores::default();
    let book = AddressBook::new();
    let raft = RaftNode::start(
        raft_config,
        identity.clone(),
        pins.clone(),
        Arc::new(late_stores.clone()),
        book.clone(),
    )
    .await?;
    let stores = NodeStores::new(config.clone(), raft.meta().clone());
    let _ = late_stores.0.set(stores.clone());
    let (notifier, notify_queue) = crate::notify::Notifier::new();
    let node = Arc::new(Node::new(NodeParts {
        config: config.clone(),
        raft: raft.clone(),
        stores,
        fingerprint: identity.fingerprint(),
        notifier: Arc::new(notifier),
        project_key,
    }));
    // Every background loop of the node, stopped together at shutdown.
    let mut workers = tokio::task::JoinSet::new();
    workers.spawn(crate::notify::run(
        node.meta().clone(),
        Arc::downgrade(node.notifier()),
        notify_queue,
    ));
    raft.set_service(Arc::new(PeerService::new(Arc::downgrade(&node))));
    tracing::info!(node = %config.name, site = %config.site, raft_id = state.raft_id, fingerprint = %identity.fingerprint(), "node started");

    if state.bootstrap_pending {
        bootstrap(&node, &identity, &cluster_node, &state).await?;
        state.bootstrap_pending = false;
        state.save(&config.data_dir)?;
    }
    workers.spawn(watch_membership(node.clone(), pins, book));
    workers.spawn(fail_stale_tasks(node.clone()));
    workers.spawn(crate::cluster::lease::run(
        node.proposer().clone(),
        node.tasks().clone(),
        config.name.to_string(),
        config.task_lease,
    ));
    workers.spawn(crate::scheduler::run(Arc::downgrade(&node)));
    workers.spawn(crate::mirror::run(
        node.chunk_peers().clone(),
        node.proposer().clone(),
        config.site.clone(),
    ));
    workers.spawn(crate::cluster::reconcile::run(
        crate::cluster::members::Members::of(&node),
    ));
    {
        let node = node.clone();
        workers.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                node.reap_idle_sessions(crate::node::SESSION_IDLE).await;
            }
        });
    }

    let listener = TcpListener::bind(config.api_listen)
        .await
        .map_err(NodeError::io(format!(
            "binding the API on {}",
            config.api_listen
        )))?;
    tracing::info!(api = %config.api_listen, "HTTPS API listening");
    let tls = Arc::new(https_server_config(&identity)?);
    let (stop_api, api_stopping) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::runtime::https::serve(
        listener,
        tls,
        crate::api::router(node.clone()),
        api_stopping,
    ));
    shutdown.await;
    stop(&node, server, stop_api, workers).await;
    raft.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}

/// How long requests in flight get to finish once a shutdown begins.
const API_GRACE: Duration = Duration::from_secs(2);

/// How long the end of this node's running tasks may take to reach Raft at shutdown.
const RECORD_GRACE: Duration = Duration::from_secs(3);

/// Stops the node's work in order: the API takes no new requests, running tasks are cancelled
/// and recorded as ended (so the cluster does not wait for their lease to run out), requests
/// in flight get [`API_GRACE`] to answer, and every background loop ends.
async fn stop(
    node: &Arc<Node>,
    server: tokio::task::JoinHandle<()>,
    stop_api: tokio::sync::watch::Sender<bool>,
    mut workers: tokio::task::JoinSet<()>,
) {
    tracing::info!("shutting down");
    let _ = stop_api.send(true);
    let ended = node.end_local_tasks("the node shut down while it ran; run it again");
    let count = ended.len();
    let record = async {
        for record in ended {
            node.record_task(record).await;
        }
    };
    if tokio::time::timeout(RECORD_GRACE, record).await.is_err() {
        tracing::warn!(
            "the end of running tasks could not be recorded in the cluster in time; their leases end them"
        );
    }
    if tokio::time::timeout(API_GRACE, server).await.is_err() {
        tracing::warn!("API requests still running after the grace period were cut off");
    }
    workers.shutdown().await;
    tracing::info!(tasks_ended = count, "background work stopped");
}

async fn bootstrap(
    node: &Arc<Node>,
    identity: &NodeIdentity,
    me: &ClusterNode,
    state: &ClusterState,
) -> Result<()> {
    let raft = &node.raft();
    if raft
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .next()
        .is_none()
    {
        raft.initialize(BTreeMap::from([(state.raft_id, me.clone())]))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while raft.metrics().current_leader != Some(state.raft_id) {
        if Instant::now() > deadline {
            return Err(NodeError::BadRequest(
                "the new cluster elected no leader in 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if node.meta().cluster()?.is_some() {
        return Ok(());
    }
    let admin: AuthId = "root@pam"
        .parse()
        .map_err(|e: ironcore_types::ParseError| NodeError::BadRequest(e.to_string()))?;
    let token_id = admin
        .with_token("admin")
        .map_err(|e| NodeError::BadRequest(e.to_string()))?;
    let secret = new_secret();
    let now = chrono::Utc::now().timestamp();
    node.propose(
        &admin,
        MetaCommand::Bootstrap {
            info: ClusterInfo {
                cluster_id: state.cluster_id.clone(),
                epoch: state.epoch,
                created: now,
                ticket_key: hex::encode(rand::random::<[u8; 32]>()),
            },
            node: self_record(node.config(), state.raft_id, identity),
            admin: UserRecord {
                userid: admin.clone(),
                password_hash: None,
                enabled: true,
                comment: "first administrator".into(),
            },
            token: TokenRecord {
                tokenid: token_id.clone(),
                secret_hash: hash_secret(&secret),
                expires: 0,
                comment: "created at bootstrap".into(),
            },
        },
    )
    .await?;
    let path = node.config().data_dir.join(ADMIN_TOKEN_FILE);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(f, "{token_id}:{secret}")?;
        f.sync_all()
    };
    write().map_err(NodeError::io(format!("writing {}", path.display())))?;
    tracing::info!(path = %path.display(), "cluster bootstrapped; the admin token is in the file (keep it secret)");
    Ok(())
}

/// Keeps the transport's pins and the address book in step with the members in Raft.
async fn watch_membership(node: Arc<Node>, pins: PinSet, book: AddressBook) {
    let mut known: BTreeMap<String, Vec<ironcore_types::Fingerprint>> = BTreeMap::new();
    loop {
        if let Ok(nodes) = node.meta().nodes() {
            let now: BTreeMap<String, Vec<_>> = nodes
                .iter()
                .map(|n| (n.name.clone(), n.fingerprints.clone()))
                .collect();
            if now != known {
                for n in &nodes {
                    if let Ok(name) = n.name.parse() {
                        for fp in &n.fingerprints {
                            pins.pin(&name, *fp);
                        }
                    }
                    book.learn(
                        n.id,
                        &ClusterNode {
                            name: n.name.clone(),
                            site: n.site.to_string(),
                            address: n.address.clone(),
                        },
                    );
                    if let Some(addr) = node.config().peer_addresses.get(&n.name) {
                        book.set_override(n.id, *addr);
                    }
                }
                for gone in known.keys().filter(|k| !now.contains_key(*k)) {
                    if let Ok(name) = gone.parse() {
                        pins.revoke(&name);
                    }
                }
                tracing::info!(members = now.len(), "pins updated from the cluster");
                known = now;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Tasks this node recorded as running before a restart cannot still run: end them.
async fn fail_stale_tasks(node: Arc<Node>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.raft().linearize().await.is_err() {
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Ok(tasks) = node.meta().tasks() else {
        return;
    };
    for mut t in tasks {
        if t.node == node.config().name.as_str()
            && t.state == TaskState::Running
            && node.tasks().get(&t.upid).is_none()
        {
            t.state = TaskState::Error("node restarted while the task ran".into());
            t.end = Some(chrono::Utc::now().timestamp());
            node.record_task(t).await;
        }
    }
}
