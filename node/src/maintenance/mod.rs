//! Keeping datastores healthy: the GC (mark, then a sweep on every storage node), verify and
//! repair, prune, and the work a node does on its own chunk directory for them.
//!
//! Every function here takes [`Upkeep`], what maintenance needs of its node, never the whole
//! [`Node`].

pub mod gc;
pub mod jobs;
pub mod mark;
pub mod prune;
pub mod verify;

use std::sync::Arc;

use ironcore_raft::{MetaCommand, MetaView, RaftNode};
use ironcore_types::records::NodeRecord;
use ironcore_types::{AuthId, DatastoreName};

use crate::Result;
use crate::node::Node;
use crate::node::proposer::Proposer;
use crate::replication::peers::ChunkPeers;
use crate::stores::NodeStores;
use crate::tasks::Tasks;

/// What maintenance needs of its node: the chunk peers it checks and repairs through, the
/// metadata it reads and writes, and the tasks running here (alive whatever their lease).
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct Upkeep {
    chunks: ChunkPeers,
    proposer: Proposer,
    local: Arc<Tasks>,
}

impl Upkeep {
    /// The handle of `node`.
    pub fn of(node: &Node) -> Self {
        Self {
            chunks: node.chunk_peers().clone(),
            proposer: node.proposer().clone(),
            local: node.tasks().clone(),
        }
    }

    /// The Raft handle (linearize, peer calls).
    pub fn raft(&self) -> &RaftNode {
        self.proposer.raft()
    }

    /// This node's copy of the metadata.
    pub fn meta(&self) -> &MetaView {
        self.proposer.meta()
    }

    /// Proposes `command` as `actor`.
    pub async fn propose(&self, actor: &AuthId, command: MetaCommand) -> Result<()> {
        self.proposer.propose(actor, command).await
    }

    /// The handle replication's functions take.
    pub fn chunk_peers(&self) -> &ChunkPeers {
        &self.chunks
    }

    /// This node's datastore directories.
    pub fn stores(&self) -> &Arc<NodeStores> {
        &self.chunks.stores
    }

    /// The storage nodes of `ds` and how many copies it keeps.
    pub fn storage_nodes(&self, ds: &DatastoreName) -> Result<(Vec<NodeRecord>, usize)> {
        self.chunks.storage_nodes(ds)
    }

    /// The running tasks `keep` selects that are alive (see [`crate::cluster::lease`]).
    pub async fn live_tasks(
        &self,
        keep: impl Fn(&ironcore_types::records::TaskRecord) -> bool,
    ) -> Result<Vec<ironcore_types::records::TaskRecord>> {
        crate::cluster::lease::live_tasks(&self.proposer, &self.local, keep).await
    }
}
