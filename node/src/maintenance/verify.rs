//! Verification of a datastore across its storage nodes (`ironcore-backup verify start`).
//!
//! The coordinating node marks what every snapshot references, then asks each storage node to
//! check its copies of those chunks in batches ([`LocalJob::Check`]): the stored digest over
//! the whole envelope, and the plaintext against the id when unencrypted. A damaged copy is
//! logged as `CORRUPT` and moved aside on its node. Then:
//! - a chunk with no intact copy anywhere is lost (`chunk not found`); the snapshots using it
//!   are recorded as failed;
//! - a chunk with fewer intact copies than the datastore's `copies` is repaired from an intact
//!   one (pulled here, then replicated to its placement nodes);
//! - every other snapshot is recorded as verified.
//!
//! When a storage node does not answer, chunks only it might hold cannot be judged: nothing is
//! repaired and no snapshot touching such a chunk gets a verdict; the task ends with warnings.

use std::collections::HashSet;

use futures_util::future::join_all;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{NodeRecord, TaskState, VerifyStatus};
use ironcore_types::{AuthId, ChunkId, DatastoreName};

use crate::Result;
use crate::maintenance::Upkeep;
use crate::maintenance::jobs::run_on;
use crate::maintenance::mark::{Marked, mark};
use crate::protocol::{CopyState, JobOutput, LocalJob};
use crate::replication::{fetch, replicate, staging};
use crate::tasks::RunningTask;

/// Chunks per check request (32 bytes each on the wire).
const BATCH: usize = 8192;
/// Chunks repaired per replication call.
const REPAIR_BATCH: usize = 256;

/// Runs verification of `ds` as `task`, recording verdicts as `actor`.
pub async fn run(
    up: &Upkeep,
    task: &RunningTask,
    ds: &DatastoreName,
    actor: &AuthId,
) -> Result<TaskState> {
    up.raft().linearize().await?;
    let marked = mark(up, ds).await?;
    let mut unique: Vec<ChunkId> = marked.all().into_iter().collect();
    unique.sort_unstable();
    let (nodes, copies) = up.storage_nodes(ds)?;
    let wanted = copies.min(nodes.len()).max(1);
    task.log(&format!(
        "{} snapshots ({} with unreadable indexes), {} distinct chunks, {} storage nodes, {wanted} copies wanted",
        marked.snapshots.len() + marked.unreadable.len(),
        marked.unreadable.len(),
        unique.len(),
        nodes.len()
    ));
    let Census {
        intact,
        damaged,
        silent,
    } = census(up, task, ds, &nodes, &unique).await?;
    let lost: HashSet<ChunkId> = unique
        .iter()
        .zip(&intact)
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let short: Vec<ChunkId> = unique
        .iter()
        .zip(&intact)
        .filter(|(_, n)| **n > 0 && **n < wanted)
        .map(|(id, _)| *id)
        .collect();
    let complete = silent.is_empty();
    let mut repaired = 0usize;
    if complete && !short.is_empty() {
        task.log(&format!(
            "{} chunks have fewer than {wanted} intact copies; repairing",
            short.len()
        ));
        for batch in short.chunks(REPAIR_BATCH) {
            task.check()?;
            let staged = up.chunk_peers().staging().read().await;
            for id in batch {
                fetch::fetch(up.chunk_peers(), ds, id).await?;
            }
            replicate::replicate(up.chunk_peers(), ds, batch).await?;
            drop(staged);
            staging::drop_staged(up.chunk_peers(), ds, batch).await?;
            repaired += batch.len();
        }
        task.log(&format!("repaired {repaired} chunks"));
    } else if !short.is_empty() {
        task.log(&format!(
            "{} chunks have fewer than {wanted} intact copies on the nodes that answered; \
             not repaired while {} cannot be checked",
            short.len(),
            silent.join(", ")
        ));
    }
    for id in &lost {
        let msg = if complete {
            format!("chunk not found: {id} has no intact copy on any node")
        } else {
            format!("chunk {id} has no intact copy on the nodes that answered; not judged")
        };
        task.log(&msg);
    }
    let failed = record_verdicts(up, task, ds, actor, &marked, &lost, complete).await;
    task.log(&format!(
        "checked {} chunks: {} lost, {damaged} corrupt copies, {repaired} repaired; {} snapshots failed",
        unique.len(),
        lost.len(),
        failed.len()
    ));
    Ok(if !failed.is_empty() {
        TaskState::Error(format!(
            "verification failed: {} snapshots have missing or unreadable chunks ({}); \
             restore them from the Backup site or forget them",
            failed.len(),
            failed.join(", ")
        ))
    } else if !complete || damaged > 0 || !lost.is_empty() {
        TaskState::Warnings((damaged as usize + silent.len() + lost.len()) as u32)
    } else {
        TaskState::Ok
    })
}

/// What the storage nodes said of each chunk's copies.
struct Census {
    /// Intact copies per chunk (in the order asked).
    intact: Vec<usize>,
    /// Damaged copies found (and moved aside).
    damaged: u64,
    /// Nodes that did not answer.
    silent: Vec<String>,
}

/// Asks every storage node to check its copies of `unique`, a batch at a time.
async fn census(
    up: &Upkeep,
    task: &RunningTask,
    ds: &DatastoreName,
    nodes: &[NodeRecord],
    unique: &[ChunkId],
) -> Result<Census> {
    let mut intact = vec![0usize; unique.len()];
    let mut damaged = 0u64;
    let mut silent: Vec<String> = Vec::new();
    for (b, batch) in unique.chunks(BATCH).enumerate() {
        task.check()?;
        let asked: Vec<_> = nodes.iter().filter(|n| !silent.contains(&n.name)).collect();
        let checks = asked.iter().map(|n| {
            run_on(
                up,
                n,
                LocalJob::Check {
                    datastore: ds.clone(),
                    ids: batch.to_vec(),
                },
            )
        });
        for (n, r) in asked.iter().zip(join_all(checks).await) {
            match r {
                Ok(JobOutput::Checked(states)) if states.len() == batch.len() => {
                    for (i, s) in states.iter().enumerate() {
                        match s {
                            CopyState::Intact => intact[b * BATCH + i] += 1,
                            CopyState::Damaged => {
                                damaged += 1;
                                task.log(&format!(
                                    "CORRUPT chunk {} on node {}: moved aside",
                                    batch[i], n.name
                                ));
                            }
                            CopyState::Missing => {}
                        }
                    }
                }
                Ok(other) => {
                    task.log(&format!("node {} answered {other:?}", n.name));
                    silent.push(n.name.clone());
                }
                Err(e) => {
                    task.log(&format!("node {} did not answer: {e}", n.name));
                    silent.push(n.name.clone());
                }
            }
        }
    }
    Ok(Census {
        intact,
        damaged,
        silent,
    })
}

/// Records each snapshot's verdict (not those a silent node leaves undecided); the snapshots
/// that failed.
async fn record_verdicts(
    up: &Upkeep,
    task: &RunningTask,
    ds: &DatastoreName,
    actor: &AuthId,
    marked: &Marked,
    lost: &HashSet<ChunkId>,
    complete: bool,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (s, why) in &marked.unreadable {
        task.log(&format!("snapshot {s}: index unreadable ({why})"));
    }
    let verdicts = marked
        .snapshots
        .iter()
        .map(|(s, ids)| (s, ids.iter().any(|id| lost.contains(id))))
        .chain(marked.unreadable.iter().map(|(s, _)| (s, true)));
    for (s, bad) in verdicts {
        if bad && !complete {
            continue;
        }
        let verify = if bad {
            failed.push(s.to_string());
            VerifyStatus::Failed
        } else {
            VerifyStatus::Ok
        };
        let set = MetaCommand::SetVerify {
            datastore: ds.clone(),
            snapshot: s.clone(),
            verify,
        };
        if let Err(e) = up.propose(actor, set).await {
            task.log(&format!("snapshot {s}: verdict not recorded ({e})"));
        }
    }
    failed
}
