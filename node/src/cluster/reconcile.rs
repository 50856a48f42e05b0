//! Raft membership follows the member records: one source of truth for who belongs to the
//! cluster and who votes.
//!
//! A member record (in the Raft state machine, written in one atomic command) says which nodes
//! belong and whether each should vote ([`NodeRole::Voter`] and [`NodeRole::Witness`]) or
//! only follow ([`NodeRole::Learner`]). Raft's own membership is derived from the records: the
//! leader compares the two ([`plan`], a pure function) and changes Raft's membership one step at
//! a time until they agree. A join, promote, demote or remove writes the record first and then
//! asks for a pass; a leader that dies between the two leaves a record its successor carries
//! out, never two answers to "does this node vote".

use std::collections::BTreeSet;
use std::time::Duration;

use ironcore_raft::ClusterNode;
use ironcore_types::records::{NodeRecord, NodeRole};

use crate::cluster::members::Members;
use crate::{NodeError, Result};

/// One change to Raft's membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add a node that has a record but is not in Raft's membership, as a learner.
    AddLearner(NodeRecord),
    /// Make a learner whose record says it votes a voter.
    Promote(u64),
    /// Make a voter whose record says it only follows a learner.
    Demote(u64),
    /// Take a member without a record out of Raft's membership.
    Remove(u64),
    /// This leader's own record says it should not vote (or not belong): hand the leadership
    /// to another voter first, which then carries out the change.
    StepAside(u64),
}

/// Whether a record's node should vote.
pub fn votes(record: &NodeRecord) -> bool {
    matches!(record.role, NodeRole::Voter | NodeRole::Witness)
}

/// What is left to do for Raft's membership (`voters`, `learners`) to match `records`, seen by
/// leader `me`, in the order to do it. Changes that concern `me` come last and hand the lead
/// to another voter first.
pub fn plan(
    records: &[NodeRecord],
    voters: &BTreeSet<u64>,
    learners: &BTreeSet<u64>,
    me: u64,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut about_me = false;
    for r in records {
        let (is_voter, is_learner) = (voters.contains(&r.id), learners.contains(&r.id));
        if !is_voter && !is_learner {
            steps.push(Step::AddLearner(r.clone()));
        } else if is_learner && votes(r) {
            steps.push(Step::Promote(r.id));
        } else if is_voter && !votes(r) {
            if r.id == me {
                about_me = true;
            } else if voters.len() > 1 {
                steps.push(Step::Demote(r.id));
            }
        }
    }
    for id in voters.iter().chain(learners) {
        if !records.iter().any(|r| r.id == *id) {
            if *id == me {
                about_me = true;
            } else {
                steps.push(Step::Remove(*id));
            }
        }
    }
    if about_me {
        let successor = records
            .iter()
            .find(|r| r.id != me && votes(r) && voters.contains(&r.id));
        if let Some(r) = successor {
            steps.push(Step::StepAside(r.id));
        }
    }
    steps
}

/// How often the leader compares the records with Raft's membership.
const EVERY: Duration = Duration::from_secs(1);
/// How long one step may take (a learner being added must answer and catch up).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Compares on the leader every second, until the node stops.
pub async fn run(node: Members) {
    loop {
        tokio::time::sleep(EVERY).await;
        if node.raft().metrics().current_leader != Some(node.raft().id()) {
            continue;
        }
        if let Err(e) = pass(&node).await {
            tracing::debug!(error = %e, "membership not reconciled yet");
        }
    }
}

/// One pass on the leader: carries out every step of [`plan`] (one at a time, under the node's
/// membership lock); the first that fails ends the pass with its error.
pub async fn pass(node: &Members) -> Result<()> {
    let _one_at_a_time = node.membership_lock().lock().await;
    let m = node.raft().metrics();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let learners: BTreeSet<u64> = membership.learner_ids().collect();
    let records = node.meta().nodes()?;
    for step in plan(&records, &voters, &learners, node.raft().id()) {
        tracing::info!(
            ?step,
            "changing Raft membership to match the member records"
        );
        let raft = node.raft();
        let done = tokio::time::timeout(STEP_TIMEOUT, async {
            match &step {
                Step::AddLearner(r) => raft.add_learner(r.id, cluster_node(r)).await.map(|_| ()),
                Step::Promote(id) => raft.promote(*id).await.map(|_| ()),
                Step::Demote(id) => raft.demote(*id).await.map(|_| ()),
                Step::Remove(id) => raft.remove(*id).await.map(|_| ()),
                Step::StepAside(to) => raft.transfer_leader(*to).await,
            }
        })
        .await;
        match done {
            Ok(result) => result?,
            Err(_) => {
                return Err(NodeError::Unavailable(format!(
                    "{step:?} did not finish within {} s; the leader tries again",
                    STEP_TIMEOUT.as_secs()
                )));
            }
        }
    }
    Ok(())
}

fn cluster_node(r: &NodeRecord) -> ClusterNode {
    ClusterNode {
        name: r.name.clone(),
        site: r.site.to_string(),
        address: r.address.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, role: NodeRole) -> NodeRecord {
        NodeRecord {
            id,
            name: format!("n{id}"),
            site: "primary".parse().unwrap(),
            role,
            address: format!("127.0.0.1:{}", 7000 + id),
            api_address: String::new(),
            fingerprints: Vec::new(),
            joined: 0,
        }
    }

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn agreeing_records_and_membership_need_nothing() {
        let records = [
            record(1, NodeRole::Voter),
            record(2, NodeRole::Voter),
            record(3, NodeRole::Learner),
        ];
        assert!(plan(&records, &set(&[1, 2]), &set(&[3]), 1).is_empty());
    }

    #[test]
    fn a_joined_voter_is_added_as_a_learner_then_promoted() {
        let records = [record(1, NodeRole::Voter), record(2, NodeRole::Voter)];
        let steps = plan(&records, &set(&[1]), &set(&[]), 1);
        assert_eq!(steps, vec![Step::AddLearner(records[1].clone())]);
        assert_eq!(
            plan(&records, &set(&[1]), &set(&[2]), 1),
            vec![Step::Promote(2)]
        );
    }

    #[test]
    fn a_record_changed_before_a_crash_is_carried_out_by_the_next_leader() {
        // The old leader (1) wrote "2 is a learner" and died before demoting it in Raft.
        let records = [
            record(1, NodeRole::Voter),
            record(2, NodeRole::Learner),
            record(3, NodeRole::Voter),
        ];
        assert_eq!(
            plan(&records, &set(&[1, 2, 3]), &set(&[]), 3),
            vec![Step::Demote(2)]
        );
        // A removed record: the member leaves Raft too.
        let kept = [record(1, NodeRole::Voter), record(3, NodeRole::Voter)];
        assert_eq!(
            plan(&kept, &set(&[1, 3]), &set(&[2]), 3),
            vec![Step::Remove(2)]
        );
    }

    #[test]
    fn a_leader_that_should_not_vote_hands_over_first_and_the_last_voter_stays() {
        let records = [record(1, NodeRole::Learner), record(2, NodeRole::Voter)];
        assert_eq!(
            plan(&records, &set(&[1, 2]), &set(&[]), 1),
            vec![Step::StepAside(2)]
        );
        let alone = [record(1, NodeRole::Learner)];
        assert!(plan(&alone, &set(&[1]), &set(&[]), 1).is_empty());
        let tie = [record(1, NodeRole::Voter), record(2, NodeRole::Witness)];
        assert!(plan(&tie, &set(&[1, 2]), &set(&[]), 1).is_empty());
    }
}
