//! What replication needs of its node, and nothing more: the narrow handle every function of
//! [`crate::replication`] takes instead of the whole [`crate::node::Node`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ironcore_raft::{MetaView, RaftNode};
use ironcore_transport::Peer;
use ironcore_types::records::{NodeRecord, NodeRole};
use ironcore_types::{ChunkId, DatastoreName, SiteId};

use super::placement::place;
use crate::stores::NodeStores;
use crate::{NodeError, Result};

/// This node's view of the storage nodes it moves chunks between: its Raft handle (peer calls
/// and the transport), its chunk directories, its name, the peers that failed lately, and the
/// lock that guards chunks staged here (see [`super::staging`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ChunkPeers {
    pub(crate) raft: RaftNode,
    pub(crate) stores: Arc<NodeStores>,
    pub(crate) name: String,
    pub(crate) down: Arc<Mutex<HashMap<u64, Instant>>>,
    pub(crate) staging: Arc<tokio::sync::RwLock<()>>,
    /// Reads in flight per chunk that will not keep their copy: the last one out deletes it
    /// (see [`super::fetch::read`]).
    pub(crate) reading: Arc<Mutex<HashMap<ironcore_types::ChunkId, usize>>>,
    /// What this node's mirroring pulled and what keeps failing.
    pub(crate) progress: Arc<super::progress::Progress>,
}

impl ChunkPeers {
    /// The handle of the node named `name`, reaching peers through `raft` and storing in
    /// `stores`.
    pub fn new(raft: RaftNode, stores: Arc<NodeStores>, name: String) -> Self {
        Self {
            raft,
            stores,
            name,
            down: Arc::default(),
            staging: Arc::default(),
            reading: Arc::default(),
            progress: Arc::default(),
        }
    }

    /// What this node's mirroring pulled and what keeps failing.
    pub fn progress(&self) -> &super::progress::Progress {
        &self.progress
    }

    fn meta(&self) -> &MetaView {
        self.raft.meta()
    }

    /// Commits read-lock it while they rely on chunks staged here; removing staged chunks
    /// write-locks it (see [`super::staging`]).
    pub fn staging(&self) -> &tokio::sync::RwLock<()> {
        &self.staging
    }

    /// The transport address of member `id`.
    pub fn peer(&self, id: u64) -> Result<Peer> {
        let record = self
            .meta()
            .node(id)?
            .ok_or_else(|| NodeError::NotFound(format!("node {id} is not a member")))?;
        // The address book's entry wins: `[peer-addresses]` may route this peer elsewhere.
        let addr = match self.raft.address_book().get(id) {
            Some(a) => a,
            None => record.address.parse().map_err(|e| {
                NodeError::Internal(format!(
                    "node {} has a bad address {}: {e}",
                    record.name, record.address
                ))
            })?,
        };
        Ok(Peer {
            node: record
                .name
                .parse()
                .map_err(|e| NodeError::Internal(format!("node record {}: {e}", record.name)))?,
            addr,
        })
    }

    /// The storage nodes of datastore `ds` (its site's voters and learners, never
    /// witnesses), and how many copies it keeps.
    pub fn storage_nodes(&self, ds: &DatastoreName) -> Result<(Vec<NodeRecord>, usize)> {
        let config = self
            .meta()
            .datastore(ds)?
            .ok_or_else(|| NodeError::NotFound(format!("datastore {ds} does not exist")))?;
        let nodes: Vec<NodeRecord> = self
            .meta()
            .nodes()?
            .into_iter()
            .filter(|n| n.site == config.site && n.role != NodeRole::Witness)
            .collect();
        Ok((nodes, usize::from(config.copies)))
    }

    /// Every site that keeps copies of `ds` with its storage nodes and copy count: this node's
    /// own site first when it is one of them, then the datastore's site, then its mirror sites.
    pub fn copy_sites(&self, ds: &DatastoreName) -> Result<Vec<SiteShare>> {
        let config = self
            .meta()
            .datastore(ds)?
            .ok_or_else(|| NodeError::NotFound(format!("datastore {ds} does not exist")))?;
        let all = self.meta().nodes()?;
        let share = |site: &SiteId, copies: u8| SiteShare {
            site: site.clone(),
            nodes: all
                .iter()
                .filter(|n| &n.site == site && n.role != NodeRole::Witness)
                .cloned()
                .collect(),
            copies: usize::from(copies),
        };
        let mut sites = vec![share(&config.site, config.copies)];
        sites.extend(config.mirrors.iter().map(|m| share(&m.site, m.copies)));
        let me = self.raft.id();
        if let Some(i) = sites
            .iter()
            .position(|s| s.nodes.iter().any(|n| n.id == me))
        {
            let mine = sites.remove(i);
            sites.insert(0, mine);
        }
        Ok(sites)
    }
}

impl ChunkPeers {
    /// The peers that failed a request within the last 30 s (`DOWN_FOR`): tried last.
    pub fn recently_down(&self) -> Vec<u64> {
        let d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        d.iter()
            .filter(|(_, at)| at.elapsed() < super::DOWN_FOR)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Peer `id` failed a request just now: it is tried last for a while.
    pub fn mark_down(&self, id: u64) {
        let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        d.insert(id, Instant::now());
    }

    /// The other nodes to ask for chunk `id`, best first: site by site in `sites`' order, each
    /// site's placement nodes before its other storage nodes; the peers in `down` last.
    pub fn holders(&self, sites: &[SiteShare], id: &ChunkId, down: &[u64]) -> Vec<NodeRecord> {
        let me = self.raft.id();
        let mut order: Vec<NodeRecord> = Vec::new();
        for site in sites {
            let names = site.names();
            let placed = place(id, &names, site.copies);
            let others = names.iter().filter(|n| !placed.contains(&n.as_str()));
            for name in placed.iter().copied().chain(others.map(String::as_str)) {
                if let Some(n) = site.nodes.iter().find(|n| n.name == name && n.id != me) {
                    order.push(n.clone());
                }
            }
        }
        order.sort_by_key(|n| down.contains(&n.id));
        order
    }
}

/// The storage nodes of one site for a datastore, and how many of them hold each chunk.
#[derive(Clone, Debug)]
pub struct SiteShare {
    /// The site.
    pub site: SiteId,
    /// Its voters and learners (never witnesses).
    pub nodes: Vec<NodeRecord>,
    /// Copies per chunk at this site.
    pub copies: usize,
}

impl SiteShare {
    /// The nodes' names, for placement.
    pub fn names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}
