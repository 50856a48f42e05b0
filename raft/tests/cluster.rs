//! Raft clusters over real QUIC and RocksDB: elections, replication, failover, partitions,
//! restarts and leadership transfer, with a checker that no term ever has two leaders.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ironcore_raft::testing::{Cluster, WAIT};
use ironcore_raft::{Command, NodeError, NodeId};
use tokio::sync::watch;

fn set(key: &str, value: &str) -> Command {
    Command::SetKey {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

/// Makes `node` take a snapshot up to at least `last` and purge its log up to it, so entries
/// up to `last` can only reach another node inside a snapshot.
async fn snapshot_and_purge(node: &ironcore_raft::RaftNode, last: u64) {
    node.raft().trigger().snapshot().await.unwrap();
    node.raft()
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= last), "snapshot")
        .await
        .unwrap();
    node.raft().trigger().purge_log(last).await.unwrap();
    node.raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index >= last), "purged")
        .await
        .unwrap();
}

/// A 3-node cluster whose follower applied `before = 1` and was then stopped: the cluster, its
/// leader, the stopped node, and the last log index that node had applied.
async fn follower_stopped_after_a_write() -> (Cluster, NodeId, NodeId, Option<u64>) {
    let mut cluster = Cluster::start(3).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let down = follower_of(&cluster, leader);
    let first = cluster
        .node(leader)
        .write(set("before", "1"))
        .await
        .unwrap();
    cluster.applied(down, first.log_id.index).await.unwrap();
    let applied = cluster.node(down).metrics().last_applied.map(|l| l.index);
    cluster.stop(down).await.unwrap();
    (cluster, leader, down, applied)
}

fn follower_of(cluster: &Cluster, leader: NodeId) -> NodeId {
    cluster
        .running()
        .into_iter()
        .find(|&id| id != leader)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_exactly_one_leader_and_a_write_is_applied_on_every_node() {
    let cluster = Cluster::start(3).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    // A follower accepts the write and forwards it.
    let via = follower_of(&cluster, leader);
    let reply = cluster
        .node(via)
        .write(set("greeting", "hello"))
        .await
        .unwrap();
    for id in cluster.running() {
        cluster.applied(id, reply.log_id.index).await.unwrap();
        let value = cluster.node(id).read("greeting").await.unwrap();
        assert_eq!(value.as_deref(), Some(&b"hello"[..]), "node {id}");
    }
    let leaders: Vec<_> = cluster
        .running()
        .into_iter()
        .filter(|&id| cluster.node(id).raft().is_leader())
        .collect();
    assert_eq!(leaders, [leader]);
    assert!(cluster.check().unwrap() >= 1);
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_elect_exactly_one_leader() {
    let cluster = Cluster::start(5).await.unwrap();
    let leader = cluster.leader().await.unwrap();
    let reply = cluster.node(leader).write(set("k", "v")).await.unwrap();
    for id in cluster.running() {
        cluster.applied(id, reply.log_id.index).await.unwrap();
        let m = cluster.node(id).metrics();
        assert_eq!(m.current_leader, Some(leader), "node {id}");
    }
    cluster.finish().await.unwrap();
}

/// What the writer saw for each key it tried.
#[derive(Clone, Debug, Default)]
struct Outcomes {
    acked: Vec<String>,
    /// Failed, but the command may still have been applied.
    unknown: Vec<String>,
    /// Failed before the command was proposed.
    refused: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shut_down_mid_writes_is_replaced_and_every_acknowledged_write_survives() {
    let mut cluster = Cluster::start(3).await.unwrap();
    let old = cluster.leader().await.unwrap();
    let via = follower_of(&cluster, old);
    let writer_node = cluster.node(via).clone();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = watch::channel(Outcomes::default());
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("key-{i:04}");
                i += 1;
                let result = writer_node.write(set(&key, &key)).await;
                tx.send_modify(|o| match result {
                    Ok(_) => o.acked.push(key),
                    Err(e) if e.may_have_applied() => o.unknown.push(key),
                    Err(_) => o.refused.push(key),
                });
            }
            i
        })
    };
    rx.wait_for(|o| o.acked.len() >= 5).await.unwrap();
    cluster.stop(old).await.unwrap();
    let before = rx.borrow().acked.len();
    let survivors = cluster.running();
    let new = cluster.leader_among(&survivors).await.unwrap();
    assert_ne!(new, old);
    // Writes go on through the new leader.
    rx.wait_for(|o| o.acked.len() >= before + 5).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let attempted = writer.await.unwrap();
    let outcomes = rx.borrow().clone();
    for &id in &survivors {
        let node = cluster.node(id);
        for key in &outcomes.acked {
            assert_eq!(
                node.read(key).await.unwrap(),
                Some(key.clone().into_bytes()),
                "node {id}"
            );
        }
        for key in &outcomes.refused {
            assert_eq!(
                node.read(key).await.unwrap(),
                None,
                "node {id}: refused {key}"
            );
        }
        // Nothing that was never proposed exists.
        assert_eq!(
            node.read(&format!("key-{attempted:04}")).await.unwrap(),
            None
        );
    }
    // An unacknowledged write whose outcome is unknown is applied on all survivors or none.
    for key in &outcomes.unknown {
        let a = cluster.node(survivors[0]).read(key).await.unwrap();
        let b = cluster.node(survivors[1]).read(key).await.unwrap();
        assert_eq!(a, b, "{key}");
    }
    assert!(
        outcomes.unknown.len() <= 3,
        "the follower retried into the dead leader too often: {outcomes:?}"
    );
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_minority_cannot_commit_while_the_majority_can() {
    let cluster = Cluster::start(3).await.unwrap();
    let old = cluster.leader().await.unwrap();
    let minority = BTreeSet::from([old]);
    cluster.isolate(&minority);
    // The isolated leader cannot commit.
    let err = cluster
        .node(old)
        .write(set("minority", "lost"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NodeError::Timeout { .. }
                | NodeError::Indeterminate(_)
                | NodeError::NoLeader { .. }
                | NodeError::Send(_)
        ),
        "{err}"
    );
    // The majority elects a leader and commits.
    let majority: Vec<NodeId> = cluster
        .running()
        .into_iter()
        .filter(|id| *id != old)
        .collect();
    let new = cluster.leader_among(&majority).await.unwrap();
    assert_ne!(new, old);
    let reply = cluster
        .node(majority[0])
        .write(set("majority", "kept"))
        .await
        .unwrap();
    // Back together, the old leader drops its uncommitted entry and catches up.
    cluster.heal();
    cluster.applied(old, reply.log_id.index).await.unwrap();
    for id in cluster.running() {
        let node = cluster.node(id);
        assert_eq!(
            node.read("majority").await.unwrap().as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(node.read("minority").await.unwrap(), None, "node {id}");
    }
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_from_its_disk_keeps_its_state_and_catches_up() {
    let (mut cluster, leader, down, applied_before) = follower_stopped_after_a_write().await;
    let second = cluster
        .node(leader)
        .write(set("while-down", "2"))
        .await
        .unwrap();
    cluster.restart(down).await.unwrap();
    // Its own disk has everything it had applied before it stopped.
    let m = cluster
        .node(down)
        .raft()
        .wait(Some(WAIT))
        .applied_index_at_least(applied_before, "recovered")
        .await
        .unwrap();
    assert!(m.last_applied.map(|l| l.index) >= applied_before);
    let local = cluster
        .node(down)
        .raft()
        .with_state_machine(|sm: &mut ironcore_raft::RocksStateMachine| {
            Box::pin(async move { sm.get("before").unwrap() })
        })
        .await
        .unwrap();
    assert_eq!(local.as_deref(), Some(&b"1"[..]));
    // And it catches up with what it missed.
    cluster.applied(down, second.log_id.index).await.unwrap();
    assert_eq!(
        cluster
            .node(down)
            .read("while-down")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"2"[..])
    );
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_transfer_moves_the_leader_to_the_chosen_node() {
    let cluster = Cluster::start(3).await.unwrap();
    let old = cluster.leader().await.unwrap();
    let target = follower_of(&cluster, old);
    cluster.node(old).transfer_leader(target).await.unwrap();
    for id in cluster.running() {
        cluster
            .node(id)
            .raft()
            .wait(Some(WAIT))
            .current_leader(target, "transferred")
            .await
            .unwrap();
    }
    assert_eq!(cluster.leader().await.unwrap(), target);
    let err = cluster.node(old).transfer_leader(old).await.unwrap_err();
    assert!(matches!(err, NodeError::Refused(_)), "{err}");
    cluster
        .node(old)
        .write(set("after", "transfer"))
        .await
        .unwrap();
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_offline_while_the_log_was_compacted_catches_up_by_snapshot() {
    let (mut cluster, leader, down, _) = follower_stopped_after_a_write().await;
    // While it is offline: more state than one snapshot segment, then a snapshot and a purge,
    // so the entries it missed exist nowhere but in the snapshot.
    let big = "y".repeat(600 << 10);
    let mut last = 0;
    for i in 0..10 {
        last = cluster
            .node(leader)
            .write(set(&format!("while-down/{i}"), &big))
            .await
            .unwrap()
            .log_id
            .index;
    }
    snapshot_and_purge(cluster.node(leader), last).await;
    cluster.restart(down).await.unwrap();
    cluster
        .node(down)
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= last), "installed")
        .await
        .unwrap();
    cluster.applied(down, last).await.unwrap();
    let local = cluster
        .node(down)
        .raft()
        .with_state_machine(|sm: &mut ironcore_raft::RocksStateMachine| {
            Box::pin(async move { (sm.get("before").unwrap(), sm.get("while-down/9").unwrap()) })
        })
        .await
        .unwrap();
    assert_eq!(local.0.as_deref(), Some(&b"1"[..]));
    assert_eq!(local.1.map(|v| v.len()), Some(600 << 10));
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_member_behind_a_purged_log_gets_a_snapshot_and_joins() {
    let cluster = Cluster::start_with_voters(4, 3).await.unwrap();
    let leader = cluster.leader_among(&[1, 2, 3]).await.unwrap();
    let node = cluster.node(leader);
    let mut last = 0;
    // 6 MiB of state: more than one segment (4 MiB), so the snapshot file travels in parts.
    let big = "x".repeat(300 << 10);
    for i in 0..20 {
        let value = if i == 7 { "v" } else { big.as_str() };
        last = node
            .write(set(&format!("k{i}"), value))
            .await
            .unwrap()
            .log_id
            .index;
    }
    snapshot_and_purge(node, last).await;
    // Node 4 can only catch up from the snapshot: the entries it lacks are gone.
    node.add_learner(4, cluster.info(4)).await.unwrap();
    let m = cluster
        .node(4)
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.snapshot.is_some_and(|s| s.index >= last), "installed")
        .await
        .unwrap();
    assert!(m.last_applied.is_some_and(|l| l.index >= last));
    // The snapshot arrived as a file: node 4 keeps exactly one, as large as the state, and
    // nothing is left staged in its inbox.
    let files = |dir: std::path::PathBuf| -> Vec<std::fs::Metadata> {
        std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().metadata().unwrap()).collect())
            .unwrap_or_default()
    };
    let kept = files(cluster.dir(4).join("sm-snapshots"));
    assert_eq!(kept.len(), 1, "one snapshot file on node 4");
    assert!(kept[0].len() > 19 * (300 << 10), "{} bytes", kept[0].len());
    // (The staged copy goes once the install call returns, just after the metrics show it.)
    let inbox = cluster.dir(4).join("snapshot-in");
    let deadline = std::time::Instant::now() + WAIT;
    while !files(inbox.clone()).is_empty() {
        assert!(std::time::Instant::now() < deadline, "snapshot left staged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(files(cluster.dir(leader).join("sm-snapshots")).len(), 1);
    node.change_membership(BTreeSet::from([1, 2, 3, 4]))
        .await
        .unwrap();
    let reply = cluster.node(4).write(set("joined", "yes")).await.unwrap();
    for id in cluster.running() {
        cluster.applied(id, reply.log_id.index).await.unwrap();
    }
    assert_eq!(
        cluster.node(4).read("k7").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        cluster
            .node(4)
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .count(),
        4
    );
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_is_promoted_demoted_and_removed() {
    let cluster = Cluster::start_with_voters(4, 3).await.unwrap();
    let leader = cluster.leader_among(&[1, 2, 3]).await.unwrap();
    let node = cluster.node(leader);
    let membership = |id| {
        let m = cluster.node(id).metrics().membership_config;
        let voters: BTreeSet<u64> = m.membership().voter_ids().collect();
        let learners: BTreeSet<u64> = m.membership().learner_ids().collect();
        (voters, learners)
    };
    // A membership change needs the leader's initial membership committed: write once first.
    node.write(set("first", "1")).await.unwrap();
    node.add_learner(4, cluster.info(4)).await.unwrap();
    assert_eq!(
        membership(leader),
        (BTreeSet::from([1, 2, 3]), BTreeSet::from([4]))
    );
    node.promote(4).await.unwrap();
    assert_eq!(
        membership(leader),
        (BTreeSet::from([1, 2, 3, 4]), BTreeSet::new())
    );
    // A promoted node votes: a write must now be applied on it as on the others.
    let reply = cluster
        .node(4)
        .write(set("after-promote", "1"))
        .await
        .unwrap();
    cluster.applied(4, reply.log_id.index).await.unwrap();
    node.demote(4).await.unwrap();
    assert_eq!(
        membership(leader),
        (BTreeSet::from([1, 2, 3]), BTreeSet::from([4]))
    );
    // A demoted node still follows the log.
    let reply = node.write(set("after-demote", "1")).await.unwrap();
    cluster.applied(4, reply.log_id.index).await.unwrap();
    node.remove(4).await.unwrap();
    assert_eq!(
        membership(leader),
        (BTreeSet::from([1, 2, 3]), BTreeSet::new())
    );
    cluster.finish().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_on_entries_larger_than_one_frame_and_oversized_commands_are_refused()
{
    let cluster = Cluster::start_with_voters(4, 3).await.unwrap();
    let leader = cluster.leader_among(&[1, 2, 3]).await.unwrap();
    let node = cluster.node(leader);
    // 12 entries of 600 KiB: one append of them all would be 7 MiB, more than a frame.
    let big = "y".repeat(600 << 10);
    let mut last = 0;
    for i in 0..12 {
        last = node
            .write(set(&format!("b{i}"), &big))
            .await
            .unwrap()
            .log_id
            .index;
    }
    node.add_learner(4, cluster.info(4)).await.unwrap();
    cluster.applied(4, last).await.unwrap();
    assert_eq!(
        cluster.node(4).read("b11").await.unwrap().map(|v| v.len()),
        Some(600 << 10)
    );
    let huge = "z".repeat(2 << 20);
    match node.write(set("huge", &huge)).await {
        Err(NodeError::Refused(e)) => assert!(e.contains("exceeds"), "{e}"),
        other => panic!("a 2 MiB command was not refused: {other:?}"),
    }
    cluster.finish().await.unwrap();
}

/// A node of another cluster (other id) or left behind by a forced failover (older epoch) is
/// refused by the transport on every exchange: it never becomes a member that receives the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_foreign_cluster_id_or_an_old_epoch_cannot_join() {
    for (cluster_id, epoch, what) in [
        ([9u8; 16], 1, "foreign cluster id"),
        ([7u8; 16], 0, "old epoch"),
    ] {
        let cluster = Cluster::start_with_stranger(4, 3, 4, cluster_id, epoch)
            .await
            .unwrap();
        let leader = cluster.leader_among(&[1, 2, 3]).await.unwrap();
        let reply = cluster
            .node(leader)
            .write(set("before", "1"))
            .await
            .unwrap();
        // The leader may list it (membership is the leader's decision), but every exchange
        // with it is refused, so it never receives the log.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            cluster.node(leader).add_learner(4, cluster.info(4)),
        )
        .await;
        let after = cluster.node(leader).write(set("after", "2")).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let applied = cluster.node(4).metrics().last_applied;
        assert!(
            applied.is_none_or(|l| l.index < reply.log_id.index),
            "{what}: the stranger received the log ({applied:?})"
        );
        let matched = cluster
            .node(leader)
            .metrics()
            .replication
            .and_then(|r| r.get(&4).cloned().flatten());
        assert!(
            matched.is_none_or(|m| m.index < after.log_id.index),
            "{what}: the leader replicated to the stranger ({matched:?})"
        );
        cluster.finish().await.unwrap();
    }
}
