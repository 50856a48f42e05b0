//! What sync needs of its node, and nothing more.

use std::sync::Arc;

use ironcore_chunkstore::CryptKey;
use ironcore_raft::{MetaCommand, MetaView, RaftNode};
use ironcore_types::AuthId;

use crate::Result;
use crate::node::Node;
use crate::node::proposer::Proposer;
use crate::replication::peers::ChunkPeers;
use crate::stores::NodeStores;

/// The chunk peers a sync stores and replicates through, the metadata it reads and commits to,
/// and the node's project key (encrypt on push). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Syncer {
    chunks: ChunkPeers,
    proposer: Proposer,
    project_key: Option<CryptKey>,
}

impl Syncer {
    /// The handle of `node`.
    pub fn of(node: &Node) -> Self {
        Self {
            chunks: node.chunk_peers().clone(),
            proposer: node.proposer().clone(),
            project_key: node.project_key().cloned(),
        }
    }

    /// The Raft handle (linearize).
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

    /// This node's name (for errors that tell the operator which node to configure).
    pub fn name(&self) -> &str {
        &self.chunks.name
    }

    /// The project key, when the node's configuration names one.
    pub fn project_key(&self) -> Option<&CryptKey> {
        self.project_key.as_ref()
    }
}
