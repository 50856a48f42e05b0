//! The cluster itself: nodes, their proxies, and the two-leaders checker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ironcore_transport::fault::{Direction, FaultProxy};
use ironcore_transport::testing::MemChunks;
use ironcore_transport::{ClusterId, NodeIdentity, PinSet, TransportConfig};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::metrics::WaitError;
use tempfile::TempDir;

use super::ClusterError;
use crate::{AddressBook, ClusterNode, NodeId, ProbePolicy, RaftNode, RaftNodeConfig};

/// How long a cluster operation waits for any condition.
pub const WAIT: Duration = Duration::from_secs(30);

fn name(id: NodeId) -> String {
    format!("n{id}")
}

fn waited(what: &'static str) -> impl FnOnce(WaitError) -> ClusterError {
    move |e| ClusterError::Wait {
        what,
        detail: e.to_string(),
    }
}

/// Who led in which term, as seen by the checker.
#[derive(Default)]
struct Leaders {
    by_term: HashMap<u64, NodeId>,
    violations: Vec<String>,
}

/// A cluster of nodes with ids `1..=n` in one process (see the [module](super) docs).
///
/// Every method must be called inside a multi-threaded tokio runtime.
pub struct Cluster {
    _dir: TempDir,
    root: PathBuf,
    sites: BTreeMap<NodeId, String>,
    identities: BTreeMap<NodeId, NodeIdentity>,
    pins: PinSet,
    books: BTreeMap<NodeId, AddressBook>,
    nodes: BTreeMap<NodeId, RaftNode>,
    infos: BTreeMap<NodeId, ClusterNode>,
    /// `(from, to)` → the proxy `from` sends to `to` through.
    proxies: HashMap<(NodeId, NodeId), FaultProxy>,
    leaders: Arc<Mutex<Leaders>>,
    watchers: Vec<tokio::task::JoinHandle<()>>,
    /// Nodes that claim another cluster id or epoch than the cluster's (`[7; 16]`, epoch 1).
    strangers: BTreeMap<NodeId, (ClusterId, u64)>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("root", &self.root)
            .field("sites", &self.sites)
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts `n` nodes (odd ids in site `primary`, even ids in `backup`), links them through
    /// proxies and initializes the cluster on node 1 with all of them as voters.
    pub async fn start(n: u64) -> Result<Self, ClusterError> {
        Self::start_with_voters(n, n).await
    }

    /// Starts `n` nodes like [`Self::start`] and initializes a cluster of the first `voters` of
    /// them; the others run but are not members yet.
    pub async fn start_with_voters(n: u64, voters: u64) -> Result<Self, ClusterError> {
        let sites = (1..=n).map(|id| if id % 2 == 1 { "primary" } else { "backup" });
        Self::launch(sites.map(String::from).collect(), voters, BTreeMap::new()).await
    }

    /// Like [`Self::start_with_voters`], but node `stranger` runs with cluster id `cluster` and
    /// epoch `epoch` (the others: `[7; 16]`, epoch 1), to show it cannot join.
    pub async fn start_with_stranger(
        n: u64,
        voters: u64,
        stranger: NodeId,
        cluster: [u8; 16],
        epoch: u64,
    ) -> Result<Self, ClusterError> {
        let sites = (1..=n).map(|id| if id % 2 == 1 { "primary" } else { "backup" });
        let strangers = BTreeMap::from([(stranger, (ClusterId(cluster), epoch))]);
        Self::launch(sites.map(String::from).collect(), voters, strangers).await
    }

    /// Starts one node per entry of `sites` (node `i + 1` stands in `sites[i]`), links them
    /// through proxies and initializes the cluster on node 1 with all of them as voters.
    pub async fn start_in_sites(sites: &[&str]) -> Result<Self, ClusterError> {
        let voters = u64::try_from(sites.len()).unwrap_or(u64::MAX);
        Self::launch(
            sites.iter().map(|s| s.to_string()).collect(),
            voters,
            BTreeMap::new(),
        )
        .await
    }

    async fn launch(
        sites: Vec<String>,
        voters: u64,
        strangers: BTreeMap<NodeId, (ClusterId, u64)>,
    ) -> Result<Self, ClusterError> {
        let dir = tempfile::tempdir()?;
        let sites: BTreeMap<NodeId, String> = (1..).zip(sites).collect();
        let pins = PinSet::new();
        let mut identities = BTreeMap::new();
        for &id in sites.keys() {
            let identity = NodeIdentity::generate(&name(id).parse()?)?;
            pins.pin(&name(id).parse()?, identity.fingerprint());
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
            sites,
            strangers,
        };
        let ids: Vec<NodeId> = cluster.sites.keys().copied().collect();
        for id in ids {
            cluster.books.insert(id, AddressBook::new());
            cluster.boot(id).await?;
        }
        let mut members = cluster.infos.clone();
        members.retain(|id, _| *id <= voters);
        cluster.running_node(1)?.initialize(members).await?;
        Ok(cluster)
    }

    fn config(&self, id: NodeId) -> Result<RaftNodeConfig, ClusterError> {
        let info = ClusterNode {
            name: name(id),
            site: self.site(id).to_string(),
            address: String::new(),
        };
        let (cluster, epoch) = self
            .strangers
            .get(&id)
            .copied()
            .unwrap_or((ClusterId([7; 16]), 1));
        let mut transport = TransportConfig::new(name(id).parse()?, cluster, epoch);
        transport.rpc_timeout = Duration::from_secs(5);
        transport.idle_timeout = Duration::from_secs(10);
        transport.keep_alive = Duration::from_secs(1);
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut c = RaftNodeConfig::new(id, info, self.dir(id), listen, transport);
        c.heartbeat_interval = Duration::from_millis(100);
        c.election_timeout_min = Duration::from_millis(800);
        c.election_timeout_max = Duration::from_millis(1600);
        c.snapshot_timeout = Duration::from_secs(5);
        c.request_timeout = Duration::from_secs(5);
        c.probe = ProbePolicy {
            timeout: Duration::from_millis(100),
            interval: Duration::from_millis(200),
        };
        Ok(c)
    }

    /// Starts node `id` from its directory and routes every other node's link to it through a
    /// fresh proxy (its address changes on each start).
    async fn boot(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let config = self.config(id)?;
        let identity = self
            .identities
            .get(&id)
            .ok_or(ClusterError::NotRunning(id))?
            .clone();
        let book = self
            .books
            .get(&id)
            .ok_or(ClusterError::NotRunning(id))?
            .clone();
        let node = RaftNode::start(
            config.clone(),
            identity,
            self.pins.clone(),
            Arc::new(MemChunks::default()),
            book,
        )
        .await?;
        let addr = node.local_addr()?;
        let mut info = config.node;
        info.address = addr.to_string();
        self.infos.insert(id, info);
        self.watch(&node);
        self.nodes.insert(id, node);
        let others: Vec<NodeId> = self.infos.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            self.link(other, id, addr).await?;
            if !self.proxies.contains_key(&(id, other)) {
                let to_other = self.running_node(other)?.local_addr()?;
                self.link(id, other, to_other).await?;
            }
        }
        Ok(())
    }

    async fn link(
        &mut self,
        from: NodeId,
        to: NodeId,
        target: SocketAddr,
    ) -> Result<(), ClusterError> {
        let proxy = FaultProxy::start(target).await?;
        self.books
            .get(&from)
            .ok_or(ClusterError::NotRunning(from))?
            .set_override(to, proxy.addr());
        self.proxies.insert((from, to), proxy);
        Ok(())
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
                        let mut l = leaders.lock().unwrap_or_else(PoisonError::into_inner);
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

    /// Fails if two nodes ever led in one term; otherwise returns how many terms had a leader.
    pub fn check(&self) -> Result<usize, ClusterError> {
        let l = self.leaders.lock().unwrap_or_else(PoisonError::into_inner);
        if !l.violations.is_empty() {
            return Err(ClusterError::TwoLeaders(l.violations.clone()));
        }
        Ok(l.by_term.len())
    }

    /// How node `id` is described in membership.
    ///
    /// # Panics
    ///
    /// If node `id` was never started.
    pub fn info(&self, id: NodeId) -> ClusterNode {
        self.infos[&id].clone()
    }

    /// The site node `id` stands in (empty for an unknown id).
    pub fn site(&self, id: NodeId) -> &str {
        self.sites.get(&id).map_or("", String::as_str)
    }

    /// A running node.
    ///
    /// # Panics
    ///
    /// If node `id` is not running; see [`Self::running_node`] for the fallible form.
    pub fn node(&self, id: NodeId) -> &RaftNode {
        &self.nodes[&id]
    }

    /// A running node, or [`ClusterError::NotRunning`].
    pub fn running_node(&self, id: NodeId) -> Result<&RaftNode, ClusterError> {
        self.nodes.get(&id).ok_or(ClusterError::NotRunning(id))
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Waits until every node in `among` names the same leader, which is one of `among` and
    /// leads; returns it.
    pub async fn leader_among(&self, among: &[NodeId]) -> Result<NodeId, ClusterError> {
        let first = among.first().ok_or(ClusterError::Wait {
            what: "a leader in the group",
            detail: "the group is empty".into(),
        })?;
        let in_group = |l: Option<NodeId>| l.is_some_and(|l| among.contains(&l));
        let m = self
            .running_node(*first)?
            .raft()
            .wait(Some(WAIT))
            .metrics(|m| in_group(m.current_leader), "a leader in the group")
            .await
            .map_err(waited("a leader in the group"))?;
        let mut leader = m.current_leader.ok_or(ClusterError::NotRunning(*first))?;
        // Wait until everyone agrees (a new election may move it; follow it).
        loop {
            let mut agreed = true;
            for &id in among {
                let m = self
                    .running_node(id)?
                    .raft()
                    .wait(Some(WAIT))
                    .metrics(|m| in_group(m.current_leader), "leader")
                    .await
                    .map_err(waited("leader"))?;
                if m.current_leader != Some(leader) {
                    leader = m.current_leader.ok_or(ClusterError::NotRunning(id))?;
                    agreed = false;
                }
            }
            let m = self
                .running_node(leader)?
                .raft()
                .wait(Some(WAIT))
                .metrics(
                    |m| m.state == ServerState::Leader || m.current_leader != Some(leader),
                    "leads",
                )
                .await
                .map_err(waited("leads"))?;
            if agreed && m.state == ServerState::Leader {
                return Ok(leader);
            }
        }
    }

    /// Waits for one leader agreed on by every running node.
    pub async fn leader(&self) -> Result<NodeId, ClusterError> {
        self.leader_among(&self.running()).await
    }

    /// Waits until node `id` has applied up to `index`.
    pub async fn applied(&self, id: NodeId, index: u64) -> Result<(), ClusterError> {
        self.running_node(id)?
            .raft()
            .wait(Some(WAIT))
            .applied_index_at_least(Some(index), "applied")
            .await
            .map_err(waited("applied"))?;
        Ok(())
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

    /// Sets the one-way delay of every packet, both ways, on every link between a node in
    /// site `a` and a node in site `b` (`Duration::ZERO` removes it); other links keep theirs.
    /// Returns how many links (ordered pairs of nodes) it changed.
    pub fn delay_between_sites(&self, a: &str, b: &str, delay: Duration) -> usize {
        let mut changed = 0;
        for (&(from, to), proxy) in &self.proxies {
            let (f, t) = (self.site(from), self.site(to));
            if (f == a && t == b) || (f == b && t == a) {
                proxy.set_delay(Direction::Both, delay);
                changed += 1;
            }
        }
        changed
    }

    /// The directory node `id` keeps its state in.
    pub fn dir(&self, id: NodeId) -> PathBuf {
        self.root.join(name(id))
    }

    /// Stops node `id` (its directory stays).
    pub async fn stop(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let node = self.nodes.remove(&id).ok_or(ClusterError::NotRunning(id))?;
        node.shutdown().await?;
        Ok(())
    }

    /// Starts node `id` again from its directory.
    pub async fn restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        self.boot(id).await
    }

    /// Runs the final check, then stops every node. Fails (without stopping anything) if two
    /// nodes ever led in one term.
    pub async fn finish(mut self) -> Result<(), ClusterError> {
        self.check()?;
        for id in self.running() {
            self.stop(id).await?;
        }
        for w in &self.watchers {
            w.abort();
        }
        Ok(())
    }
}
