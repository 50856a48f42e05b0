//! Membership changes an operator asks for: promote a learner, demote a voter, remove a node,
//! transfer leadership. Raft membership changes run on the leader; any other node forwards
//! the request to the leader's peer service (the API node already checked the caller's rights).
//!
//! Raft membership and the node records in the metadata change together: the Raft change
//! first (it is what takes effect), then the record, so a refused change leaves both as they
//! were.

use std::sync::Arc;
use std::time::Duration;

use ironcore_raft::MetaCommand;
use ironcore_types::AuthId;
use ironcore_types::records::{NodeRecord, NodeRole, TaskState};

use crate::auth::Caller;
use crate::node::Node;
use crate::protocol::{self, MembershipOp, PeerRequest, PeerResponse};
use crate::{NodeError, Result};

/// Finds member `who` by name or Raft id.
pub fn member(node: &Node, who: &str) -> Result<NodeRecord> {
    let nodes = node.meta().nodes()?;
    nodes
        .iter()
        .find(|n| n.name == who || n.id.to_string() == who)
        .cloned()
        .ok_or_else(|| {
            NodeError::NotFound(format!(
                "node {who} is not a member (members: {}); see `ironcore-backup cluster status`",
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Applies `op` to member `target` for `caller`, on the leader (forwarded there with the
/// caller's credential if need be). Returns what happened, for the operator.
pub async fn change(
    node: &Arc<Node>,
    caller: &Caller,
    op: MembershipOp,
    target: u64,
) -> Result<String> {
    node.raft().linearize().await?;
    let leader = node.raft().metrics().current_leader;
    match leader {
        Some(l) if l == node.raft().id() => on_leader(node, &caller.auth_id, op, target).await,
        Some(l) => {
            let ask = protocol::encode(&PeerRequest::Membership {
                credential: caller.credential.clone(),
                op,
                target,
            })
            .map_err(NodeError::Internal)?;
            let answer = node.raft().call_service(l, &ask).await?;
            let bad = |detail| NodeError::BadPeerAnswer {
                node: format!("{l} (the leader)"),
                detail,
            };
            match protocol::decode::<PeerResponse>(&answer).map_err(bad)? {
                PeerResponse::Changed(Ok(what)) => Ok(what),
                PeerResponse::Changed(Err(e)) => Err(NodeError::BadRequest(e)),
                other => Err(bad(format!("{other:?}"))),
            }
        }
        None => Err(NodeError::Unavailable(
            "no Raft leader is known; membership cannot change without a quorum".into(),
        )),
    }
}

/// Applies `op` on this node, which must be the leader.
pub async fn on_leader(
    node: &Arc<Node>,
    actor: &AuthId,
    op: MembershipOp,
    target: u64,
) -> Result<String> {
    let record = node
        .meta()
        .node(target)?
        .ok_or_else(|| NodeError::NotFound(format!("node {target} is not a member")))?;
    let name = record.name.clone();
    match op {
        MembershipOp::Promote => {
            if record.role != NodeRole::Learner {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is a {:?}, not a learner; nothing to promote",
                    record.role
                )));
            }
            node.raft().promote(target).await?;
            set_role(node, actor, target, NodeRole::Voter).await?;
            Ok(format!("node {name} is a voter"))
        }
        MembershipOp::Demote => {
            if record.role != NodeRole::Voter {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is a {:?}; only a storage voter can be demoted",
                    record.role
                )));
            }
            let voters = voters(node)?;
            if voters <= 1 {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is the last voter; promote another node first"
                )));
            }
            node.raft().demote(target).await?;
            set_role(node, actor, target, NodeRole::Learner).await?;
            Ok(format!("node {name} is a learner"))
        }
        MembershipOp::Remove => {
            if record.role != NodeRole::Learner && voters(node)? <= 1 {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is the last voter and cannot be removed"
                )));
            }
            node.raft().remove(target).await?;
            node.propose(actor, MetaCommand::RemoveNode { id: target })
                .await?;
            // Its running tasks will never finish: close them, so their groups are not
            // `source busy` forever.
            let now = chrono::Utc::now().timestamp();
            for mut t in node.meta().tasks()? {
                if t.node == name && t.state == TaskState::Running {
                    t.state = TaskState::Error(format!(
                        "node {name} was removed from the cluster while the task ran"
                    ));
                    t.end = Some(now);
                    node.record_task(t).await;
                }
            }
            let stores: Vec<String> = node
                .meta()
                .datastores()?
                .into_iter()
                .filter(|d| d.site == record.site && record.role != NodeRole::TieBreaker)
                .map(|d| d.name.to_string())
                .collect();
            let mut what = format!(
                "node {name} left the cluster; stop its daemon and clear its data directory before reusing the machine"
            );
            if !stores.is_empty() {
                what.push_str(&format!(
                    "; its chunk copies are gone from the cluster: run `ironcore-backup verify start STORE` for {} to restore every chunk's copies",
                    stores.join(", ")
                ));
            }
            Ok(what)
        }
        MembershipOp::Transfer => {
            if target == node.raft().id() {
                return Ok(format!("node {name} is already the leader"));
            }
            if record.role == NodeRole::Learner {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is a learner and cannot lead; promote it first"
                )));
            }
            node.raft().transfer_leader(target).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
            while tokio::time::Instant::now() < deadline {
                if node.raft().metrics().current_leader == Some(target) {
                    return Ok(format!("node {name} is the leader"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(NodeError::BadRequest(format!(
                "node {name} did not take over within 8 s (is it up and caught up?); see `ironcore-backup cluster status`"
            )))
        }
    }
}

fn voters(node: &Node) -> Result<usize> {
    Ok(node
        .raft()
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .count())
}

async fn set_role(node: &Node, actor: &AuthId, id: u64, role: NodeRole) -> Result<()> {
    node.propose(actor, MetaCommand::SetNodeRole { id, role })
        .await
}
