//! What membership changes need of their node, and nothing more.

use std::sync::Arc;

use ironcore_raft::{MetaCommand, MetaView, RaftNode};
use ironcore_types::AuthId;
use ironcore_types::records::TaskRecord;

use crate::Result;
use crate::node::Node;
use crate::node::proposer::Proposer;

/// The Raft handle whose membership changes, the metadata holding the member records, and the
/// lock that lets one change run at a time. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Members {
    proposer: Proposer,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Members {
    /// The handle of `node`.
    pub fn of(node: &Node) -> Self {
        Self {
            proposer: node.proposer().clone(),
            lock: node.membership_lock().clone(),
        }
    }

    /// The Raft handle.
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

    /// Records a task, best effort.
    pub async fn record_task(&self, record: TaskRecord) {
        self.proposer.record_task(record).await
    }

    /// Held while Raft's membership is being changed.
    pub fn membership_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.lock
    }
}
