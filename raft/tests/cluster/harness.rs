//! An in-process Raft cluster for tests: real RocksDB in temporary directories, real QUIC on
//! loopback, one transport per node, and every ordered link between two nodes through its own
//! fault proxy, so a test can partition or delay any link. A checker watches every node's
//! metrics for two leaders in one term.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ironcore_raft::{AddressBook, ClusterNode, NodeId, ProbePolicy, RaftNode, RaftNodeConfig};
use ironcore_transport::fault::{Direction, FaultProxy};
use ironcore_transport::testing::MemChunks;
use ironcore_transport::{ClusterId, NodeIdentity, PinSet, TransportConfig};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use tempfile::TempDir;

/// How long a test waits for any condition.
pub const WAIT: Duration = Duration::from_secs(30);

fn name(id: NodeId) -> String {
    format!("n{id}")
}

/// Who led in which term, as seen by the checker.
#[derive(Default)]
struct Leaders {
    by_term: HashMap<u64, NodeId>,
    violations: Vec<String>,
}

/// A cluster of `n` nodes with ids 1..=n.
pub struct Cluster {
    _dir: TempDir,
    root: std::path::PathBuf,
    identities: BTreeMap<NodeId, NodeIdentity>,
    pins: PinSet,
    books: BTreeMap<NodeId, AddressBook>,
    nodes: BTreeMap<NodeId, RaftNode>,
    infos: BTreeMap<NodeId, ClusterNode>,
    /// `(from, to)` → the proxy `from` sends to `to` through.
    proxies: HashMap<(NodeId, NodeId), FaultProxy>,
    leaders: Arc<Mutex<Leaders>>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// Starts `n` nodes, links them through proxies and initializes the cluster on node 1.
    pub async fn start(n: u64) -> Self {
        Self::start_with_voters(n, n).await
    }

    /// Starts `n` nodes and initializes a cluster of the first `voters` of them; the others
    /// run but are not members yet.
    pub async fn start_with_voters(n: u64, voters: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pins = PinSet::new();
        let mut identities = BTreeMap::new();
        for id in 1..=n {
            let identity = NodeIdentity::generate(&name(id).parse().unwrap()).unwrap();
            pins.pin(&name(id).parse().unwrap(), identity.fingerprint());
            identities.insert(id, identity);
        }
        let mut cluster = Cluster {
            root: dir.path().to_path_buf(),
            _dir: dir,
            identities,
            pins,
            books: BTreeMap::new(),
            nodes: BTreeMap::new(),
            infos: BTreeMap::new(),
            proxies: HashMap::new(),
            leaders: Arc::default(),
            watchers: Vec::new(),
        };
        for id in 1..=n {
            cluster.books.insert(id, AddressBook::new());
            cluster.boot(id).await;
        }
        let mut members = cluster.infos.clone();
        members.retain(|id, _| *id <= voters);
        cluster.node(1).initialize(members).await.unwrap();
        cluster
    }

    fn config(&self, id: NodeId) -> RaftNodeConfig {
        let info = ClusterNode {
            name: name(id),
            site: if id % 2 == 1 { "primary" } else { "backup" }.into(),
            address: String::new(),
        };
        let mut transport = TransportConfig::new(name(id).parse().unwrap(), ClusterId([7; 16]), 1);
        transport.rpc_timeout = Duration::from_secs(5);
        transport.idle_timeout = Duration::from_secs(10);
        transport.keep_alive = Duration::from_secs(1);
        let mut c = RaftNodeConfig::new(
            id,
            info,
            self.root.join(name(id)),
            "127.0.0.1:0".parse().unwrap(),
            transport,
        );
        c.heartbeat_interval = Duration::from_millis(100);
        c.election_timeout_min = Duration::from_millis(800);
        c.election_timeout_max = Duration::from_millis(1600);
        c.snapshot_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_secs(5);
        c.probe = ProbePolicy {
            timeout: Duration::from_millis(100),
            interval: Duration::from_millis(200),
        };
        c
    }

    /// Starts node `id` from its directory and routes every other node's link to it through a
    /// fresh proxy (its address changes on each start).
    async fn boot(&mut self, id: NodeId) {
        let config = self.config(id);
        let node = RaftNode::start(
            config.clone(),
            self.identities[&id].clone(),
            self.pins.clone(),
            Arc::new(MemChunks::default()),
            self.books[&id].clone(),
        )
        .await
        .unwrap();
        let addr = node.local_addr().unwrap();
        let mut info = config.node;
        info.address = addr.to_string();
        self.infos.insert(id, info);
        self.watch(&node);
        self.nodes.insert(id, node);
        let others: Vec<NodeId> = self.infos.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            self.link(other, id, addr).await;
            let to_other = self.nodes[&other].local_addr().unwrap();
            if !self.proxies.contains_key(&(id, other)) {
                self.link(id, other, to_other).await;
            }
        }
    }

    async fn link(&mut self, from: NodeId, to: NodeId, target: SocketAddr) {
        let proxy = FaultProxy::start(target).await.unwrap();
        self.books[&from].set_override(to, proxy.addr());
        self.proxies.insert((from, to), proxy);
    }

    /// Records every metrics change of `node`: a node that leads in a term another node led in
    /// is a violation.
    fn watch(&mut self, node: &RaftNode) {
        let mut rx = node.raft().metrics();
        let leaders = self.leaders.clone();
        self.watchers.push(tokio::spawn(async move {
            loop {
                {
                    let m = rx.borrow_watched();
                    if m.state == ServerState::Leader {
                        let mut l = leaders.lock().unwrap();
                        let first = *l.by_term.entry(m.current_term).or_insert(m.id);
                        if first != m.id {
                            let v = format!(
                                "term {}: node {} leads but node {first} led it",
                                m.current_term, m.id
                            );
                            l.violations.push(v);
                        }
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }));
    }

    /// Fails the test if two nodes ever led in one term; returns how many terms had a leader.
    pub fn check(&self) -> usize {
        let l = self.leaders.lock().unwrap();
        assert!(l.violations.is_empty(), "two leaders: {:?}", l.violations);
        l.by_term.len()
    }

    /// How node `id` is described in membership.
    pub fn info(&self, id: NodeId) -> ClusterNode {
        self.infos[&id].clone()
    }

    /// A running node.
    pub fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[&id]
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Waits until every node in `among` names the same leader, which is one of `among` and
    /// leads; returns it.
    pub async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        let first = self.node(among[0]);
        let m = first
            .raft()
            .wait(Some(WAIT))
            .metrics(
                |m| m.current_leader.is_some_and(|l| among.contains(&l)),
                "a leader in the group",
            )
            .await
            .unwrap();
        let mut leader = m.current_leader.unwrap();
        // Wait until everyone agrees (a new election may move it; follow it).
        loop {
            let mut agreed = true;
            for &id in among {
                let m = self
                    .node(id)
                    .raft()
                    .wait(Some(WAIT))
                    .metrics(
                        |m| m.current_leader.is_some_and(|l| among.contains(&l)),
                        "leader",
                    )
                    .await
                    .unwrap();
                if m.current_leader != Some(leader) {
                    leader = m.current_leader.unwrap();
                    agreed = false;
                }
            }
            let m = self
                .node(leader)
                .raft()
                .wait(Some(WAIT))
                .metrics(
                    |m| m.state == ServerState::Leader || m.current_leader != Some(leader),
                    "leads",
                )
                .await
                .unwrap();
            if agreed && m.state == ServerState::Leader {
                return leader;
            }
        }
    }

    /// Waits for one leader agreed on by every running node.
    pub async fn leader(&self) -> NodeId {
        self.leader_among(&self.running()).await
    }

    /// Waits until node `id` has applied up to `index`.
    pub async fn applied(&self, id: NodeId, index: u64) {
        self.node(id)
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), "applied")
            .await
            .unwrap();
    }

    /// Cuts every link between `group` and the other nodes, both ways.
    pub fn isolate(&self, group: &BTreeSet<NodeId>) {
        for (&(from, to), proxy) in &self.proxies {
            if group.contains(&from) != group.contains(&to) {
                proxy.partition(Direction::Both);
            }
        }
    }

    /// Ends every partition.
    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    /// Stops node `id` (its directory stays).
    pub async fn stop(&mut self, id: NodeId) {
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await.unwrap();
    }

    /// Starts node `id` again from its directory.
    pub async fn restart(&mut self, id: NodeId) {
        self.boot(id).await;
    }

    /// Stops every node and runs the final check.
    pub async fn finish(mut self) {
        self.check();
        for id in self.running() {
            self.stop(id).await;
        }
        for w in &self.watchers {
            w.abort();
        }
    }
}
