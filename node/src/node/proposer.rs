//! Writing metadata: the narrow handle a subsystem is given when all it needs of the node is
//! to propose commands to Raft, read its copy of the state, and record its tasks.

use std::sync::Arc;

use ironcore_raft::{Command, CommandResult, MetaCommand, MetaRequest, MetaView, RaftNode};
use ironcore_types::AuthId;
use ironcore_types::records::{TaskRecord, TaskState};

use crate::notify::Notifier;
use crate::{NodeError, Result};

/// Proposes metadata commands through this node's Raft handle and tells the notifier about
/// tasks that end. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Proposer {
    raft: RaftNode,
    notifier: Arc<Notifier>,
}

impl Proposer {
    /// Proposes through `raft`; ended tasks go to `notifier`.
    pub fn new(raft: RaftNode, notifier: Arc<Notifier>) -> Self {
        Self { raft, notifier }
    }

    /// The Raft handle it proposes through (linearize, peer calls).
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// This node's copy of the metadata.
    pub fn meta(&self) -> &MetaView {
        self.raft.meta()
    }

    /// Proposes a metadata command as `actor`; a refusal by the state machine becomes
    /// `BadRequest` (or `permission denied` when it says so).
    pub async fn propose(&self, actor: &AuthId, command: MetaCommand) -> Result<()> {
        let reply = self
            .raft
            .write(Command::Meta(Box::new(MetaRequest {
                actor: actor.clone(),
                at: chrono::Utc::now().timestamp(),
                command,
            })))
            .await?;
        match reply.result {
            CommandResult::Meta(Ok(())) => Ok(()),
            CommandResult::Meta(Err(reason)) => match reason.strip_prefix("permission denied: ") {
                Some(r) => Err(NodeError::PermissionDenied(r.to_string())),
                None => Err(NodeError::BadRequest(reason)),
            },
            other => Err(NodeError::Internal(format!(
                "the state machine answered a metadata command with {other:?}"
            ))),
        }
    }

    /// Ends `task` (already given its end state) in Raft as `actor`, and notifies of it once
    /// that is written; an error if it cannot be (the caller decides whether that matters).
    pub async fn end_task(&self, actor: &AuthId, task: TaskRecord) -> Result<()> {
        self.propose(actor, MetaCommand::RecordTask(task.clone()))
            .await?;
        self.notifier.task_ended(&task);
        Ok(())
    }

    /// Records a task in Raft (best effort: a task must not fail because its record could not
    /// be written; the local log has everything). A task that ended is also notified.
    pub async fn record_task(&self, record: TaskRecord) {
        if record.state != TaskState::Running {
            self.notifier.task_ended(&record);
        }
        let actor = record.auth_id.clone();
        if let Err(e) = self.propose(&actor, MetaCommand::RecordTask(record)).await {
            tracing::warn!(error = %e, "could not record task in the cluster");
        }
    }
}
