//! Verification of a datastore across its storage nodes (`ironcore-backup verify start`).
//!
//! The coordinating node marks what every snapshot references, then asks each storage node to
//! check its copies of those chunks in batches ([`LocalJob::Check`]): the stored digest over
//! the whole envelope, and the plaintext against the id when unencrypted. A damaged copy is
//! logged as `CORRUPT` and moved aside on its node. Then:
//! - a chunk with no intact copy anywhere is lost (`chunk not found`); the snapshots using it
//!   are recorded as failed;
//! - a chunk with fewer intact copies at a site than the site keeps is repaired from an intact
//!   one anywhere (pulled here, then replicated to its placement nodes at that site). A mirror
//!   site is checked for the chunks of the snapshots complete there (the others are still
//!   being mirrored);
//! - every other snapshot is recorded as verified.
//!
//! When a storage node does not answer, chunks only it might hold cannot be judged: nothing is
//! repaired and no snapshot touching such a chunk gets a verdict; the task ends with warnings.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{NodeRecord, TaskState, VerifyStatus};
use ironcore_types::{AuthId, ChunkId, DatastoreName, SiteId, SnapshotRef};

use crate::Result;
use crate::maintenance::Upkeep;
use crate::maintenance::jobs::run_on;
use crate::maintenance::mark::{Marked, mark};
use crate::protocol::{CopyState, JobOutput, LocalJob};
use crate::replication::peers::SiteShare;
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
    let sites = up.chunk_peers().copy_sites(ds)?;
    let complete_at: HashMap<SnapshotRef, Vec<SiteId>> = up
        .meta()
        .snapshots(ds)?
        .into_iter()
        .map(|e| (e.snapshot, e.complete_at))
        .collect();
    let home = up.storage_nodes(ds)?.0;
    task.log(&format!(
        "{} snapshots ({} with unreadable indexes), {} distinct chunks, at {} sites",
        marked.snapshots.len() + marked.unreadable.len(),
        marked.unreadable.len(),
        unique.len(),
        sites.len()
    ));
    // Each site is checked for the chunks it should hold: the datastore's own site all of
    // them, a mirror site those of the snapshots complete there (the rest are in flight).
    let mut checks: Vec<SiteCheck> = Vec::new();
    let (mut damaged, mut silent) = (0u64, Vec::new());
    for site in sites {
        let is_home = site.nodes.iter().any(|n| home.iter().any(|h| h.id == n.id));
        let expected: Vec<ChunkId> = if is_home {
            unique.clone()
        } else {
            let mut ids: Vec<ChunkId> = marked
                .snapshots
                .iter()
                .filter(|(s, _)| complete_at.get(s).is_some_and(|c| c.contains(&site.site)))
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        let wanted = site.copies.min(site.nodes.len()).max(1);
        task.log(&format!(
            "site {}: {} chunks expected, {} storage nodes, {wanted} copies wanted",
            site.site,
            expected.len(),
            site.nodes.len()
        ));
        let census = census(up, task, ds, &site.nodes, &expected).await?;
        damaged += census.damaged;
        silent.extend(census.silent);
        let intact = expected.iter().copied().zip(census.intact).collect();
        checks.push(SiteCheck {
            site,
            wanted,
            intact,
        });
    }
    let total = |id: &ChunkId| -> usize {
        checks
            .iter()
            .map(|c| c.intact.get(id).copied().unwrap_or(0))
            .sum()
    };
    let lost: HashSet<ChunkId> = unique.iter().filter(|id| total(id) == 0).copied().collect();
    let complete = silent.is_empty();
    let mut repaired = 0usize;
    for check in &checks {
        let mut short: Vec<ChunkId> = check
            .intact
            .iter()
            .filter(|(id, n)| **n < check.wanted && !lost.contains(id))
            .map(|(id, _)| *id)
            .collect();
        short.sort_unstable();
        if short.is_empty() {
            continue;
        }
        if !complete {
            task.log(&format!(
                "{} chunks have fewer than {} intact copies at site {} on the nodes that answered; \
                 not repaired while {} cannot be checked",
                short.len(),
                check.wanted,
                check.site.site,
                silent.join(", ")
            ));
            continue;
        }
        task.log(&format!(
            "{} chunks have fewer than {} intact copies at site {}; repairing",
            short.len(),
            check.wanted,
            check.site.site
        ));
        for batch in short.chunks(REPAIR_BATCH) {
            task.check()?;
            let staged = up.chunk_peers().staging().read().await;
            for id in batch {
                fetch::fetch(up.chunk_peers(), ds, id).await?;
            }
            replicate::replicate_at(up.chunk_peers(), ds, &check.site, batch).await?;
            drop(staged);
            staging::drop_staged(up.chunk_peers(), ds, batch).await?;
            repaired += batch.len();
        }
        task.log(&format!(
            "repaired {} chunks at site {}",
            short.len(),
            check.site.site
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

/// One site's copies: the chunks it should hold and how many intact copies of each it has.
struct SiteCheck {
    site: SiteShare,
    wanted: usize,
    intact: HashMap<ChunkId, usize>,
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
