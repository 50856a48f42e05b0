//! Membership changes an operator asks for: promote a learner, demote a voter, remove a node,
//! transfer leadership. Raft membership changes run on the leader; any other node forwards
//! the request to the leader's peer service (the API node already checked the caller's rights).
//!
//! Raft membership and the node records in the metadata change together: the Raft change
//! first (it is what takes effect), then the record, so a refused change leaves both as they
//! were.

use std::time::Duration;

use ironcore_raft::MetaCommand;
use ironcore_types::AuthId;
use ironcore_types::records::{NodeRecord, NodeRole, TaskState};

use crate::auth::Caller;
use crate::cluster::members::Members;
use crate::cluster::reconcile;
use crate::protocol::{self, MembershipOp, PeerRequest, PeerResponse};
use crate::{NodeError, Result};

/// Finds member `who` by name or Raft id.
pub fn member(node: &Members, who: &str) -> Result<NodeRecord> {
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
    node: &Members,
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

/// Applies `op` on this node, which must be the leader: the member record changes first (one
/// atomic command), then Raft's membership follows it ([`reconcile`]).
pub async fn on_leader(
    node: &Members,
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
            set_role(node, actor, target, NodeRole::Voter).await?;
            follow(node, target, Some(true)).await?;
            Ok(format!("node {name} is a voter"))
        }
        MembershipOp::Demote => {
            if record.role != NodeRole::Voter {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is a {:?}; only a storage voter can be demoted",
                    record.role
                )));
            }
            if voters(node)? <= 1 {
                return Err(NodeError::BadRequest(format!(
                    "node {name} is the last voter; promote another node first"
                )));
            }
            set_role(node, actor, target, NodeRole::Learner).await?;
            follow(node, target, Some(false)).await?;
            Ok(format!("node {name} is a learner"))
        }
        MembershipOp::Remove => remove(node, actor, &record).await,
        MembershipOp::Transfer => transfer(node, &record).await,
    }
}

/// Takes `record`'s node out of the cluster: its record goes, Raft's membership follows, and
/// its running tasks are closed.
async fn remove(node: &Members, actor: &AuthId, record: &NodeRecord) -> Result<String> {
    let (name, target) = (record.name.clone(), record.id);
    if record.role != NodeRole::Learner && voters(node)? <= 1 {
        return Err(NodeError::BadRequest(format!(
            "node {name} is the last voter and cannot be removed"
        )));
    }
    node.propose(actor, MetaCommand::RemoveNode { id: target })
        .await?;
    follow(node, target, None).await?;
    // Its running tasks will never finish: close them, so their groups are not `source busy`
    // forever.
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
        .filter(|d| d.site == record.site && record.role != NodeRole::Witness)
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

/// Hands the leadership to `record`'s node.
async fn transfer(node: &Members, record: &NodeRecord) -> Result<String> {
    let (name, target) = (&record.name, record.id);
    if target == node.raft().id() {
        return Ok(format!("node {name} is already the leader"));
    }
    let votes = node
        .raft()
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == target);
    if !votes {
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

/// Runs a reconcile pass after a recorded change to `target` and checks that Raft's membership
/// now has it as a voter (`Some(true)`), a learner (`Some(false)`) or not at all (`None`). If
/// not, the change stays recorded and the leader keeps carrying it out; the caller is told so.
async fn follow(node: &Members, target: u64, voter: Option<bool>) -> Result<()> {
    crate::failpoint::hit("membership-after-record");
    let outcome = reconcile::pass(node).await;
    let m = node.raft().metrics();
    let membership = m.membership_config.membership();
    let now = match (
        membership.voter_ids().any(|v| v == target),
        membership.learner_ids().any(|l| l == target),
    ) {
        (true, _) => Some(true),
        (false, true) => Some(false),
        (false, false) => None,
    };
    if now == voter {
        return Ok(());
    }
    Err(NodeError::Unavailable(format!(
        "the change of node {target} is recorded; the leader keeps applying it to Raft's membership ({}); see `ironcore-backup cluster status`",
        outcome
            .err()
            .map_or_else(|| "not done yet".to_string(), |e| e.to_string())
    )))
}

fn voters(node: &Members) -> Result<usize> {
    Ok(node
        .raft()
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .count())
}

async fn set_role(node: &Members, actor: &AuthId, id: u64, role: NodeRole) -> Result<()> {
    node.propose(actor, MetaCommand::SetNodeRole { id, role })
        .await
}
