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

    /// Sends `event` to the notification targets that want it.
    pub fn notify(&self, event: crate::notify::Event) {
        self.notifier.send(event);
    }

    /// This node's copy of the metadata.
    pub fn meta(&self) -> &MetaView {
        self.raft.meta()
    }

    /// Proposes a metadata command as `actor`; a refusal by the state machine becomes the
    /// error its words name (see [`refusal`]).
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
            CommandResult::Meta(Err(reason)) => Err(refusal(reason)),
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

/// The error a refusal of the state machine is: `permission denied: …` → 403, what names
/// something that does not exist → 404, what exists already or has ended → 409, anything else
/// (the request itself is wrong) → 400. The validators word their refusals so.
pub fn refusal(reason: String) -> NodeError {
    if let Some(r) = reason.strip_prefix("permission denied: ") {
        return NodeError::PermissionDenied(r.to_string());
    }
    // A join is authenticated by its token: a bad token is a refused credential.
    if reason.starts_with("join token ") {
        return NodeError::Unauthenticated(reason);
    }
    let absent = [
        "does not exist",
        "is not a member",
        "has no grant on",
        "is not known to this cluster",
    ];
    // The request is well formed but the cluster's state forbids it.
    let present = [
        "already exists",
        "already ended",
        "exists already",
        "is the primary site",
        "has storage nodes",
        "has witness nodes",
        "is a witness site",
        "is named twice in the copies",
    ];
    if absent.iter().any(|w| reason.contains(w)) {
        NodeError::NotFound(reason)
    } else if present.iter().any(|w| reason.contains(w)) {
        NodeError::Conflict(reason)
    } else {
        NodeError::BadRequest(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_become_the_status_their_words_name() {
        let status = |r: &str| refusal(r.to_string()).status();
        assert_eq!(status("permission denied: group x belongs to y"), 403);
        assert_eq!(status("user a@b does not exist"), 404);
        assert_eq!(status("node 7 is not a member"), 404);
        assert_eq!(
            status("site 'x' is not known to this cluster (known: a (primary))"),
            404
        );
        assert_eq!(
            status("site a is the primary site; make it a backup site first"),
            409
        );
        assert_eq!(status("a@b has no grant on /"), 404);
        assert_eq!(status("token a@b!c already exists"), 409);
        assert_eq!(status("task UPID:x already ended"), 409);
        assert_eq!(status("copies must be at least 1"), 400);
        assert_eq!(status("join token expired; create a new one"), 401);
    }
}
