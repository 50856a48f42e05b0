//! Garbage collection of a datastore across its storage nodes (`ironcore-backup gc start`).
//!
//! The coordinating node fixes one cutoff for the whole run — the earlier of now and the start
//! of the oldest backup of the datastore still running anywhere in the cluster (task records in
//! Raft; a backup of a node that lost its lease is ended first, see [`crate::cluster::lease`]), minus a
//! grace period for clock skew — and asks every member to sweep its own chunk directory
//! ([`LocalJob::Sweep`]): each storage node marks from its own linearized copy of the metadata,
//! so a snapshot committed after the mark started was written after the cutoff and none of its
//! chunks can go, and a node that cannot read some index deletes nothing; a node that does not
//! store the datastore deletes whatever it staged before the cutoff (uploads of backups that
//! never committed; see [`crate::replication::staging`]).

use futures_util::future::join_all;
use ironcore_types::DatastoreName;
use ironcore_types::records::TaskState;

use crate::maintenance::Upkeep;
use crate::maintenance::jobs::run_on;
use crate::protocol::{JobOutput, LocalJob};
use crate::tasks::RunningTask;
use crate::{NodeError, Result};

/// The default grace period: unreferenced chunks younger than this are kept.
pub const DEFAULT_GRACE_SECS: i64 = 3600;

/// The cutoff of a run at `now`: nothing touched at or after it is deleted. `running` holds
/// the start times of the datastore's running backups.
pub fn plan_cutoff(now: i64, running: &[i64], grace_secs: i64) -> i64 {
    running.iter().copied().fold(now, i64::min) - grace_secs
}

/// Runs GC of `ds` as `task`.
pub async fn run(
    up: &Upkeep,
    task: &RunningTask,
    ds: &DatastoreName,
    grace_secs: i64,
) -> Result<TaskState> {
    up.raft().linearize().await?;
    let config = up
        .meta()
        .datastore(ds)?
        .ok_or_else(|| NodeError::NotFound(format!("datastore {ds} does not exist")))?;
    if config.quarantined {
        return Err(NodeError::Quarantined(ds.clone()));
    }
    let prefix = format!("{ds}:");
    // Backups of nodes that lost their lease are ended first (and can no longer commit), so
    // their starts need not hold the cutoff back.
    let running: Vec<i64> = up
        .live_tasks(|t| t.kind == "backup" && t.worker_id.starts_with(&prefix))
        .await?
        .into_iter()
        .map(|t| t.start)
        .collect();
    let now = chrono::Utc::now().timestamp();
    let cutoff = plan_cutoff(now, &running, grace_secs);
    task.log(&format!(
        "cutoff {} (grace {grace_secs} s, {} backups of {ds} running)",
        time(cutoff),
        running.len()
    ));
    // Every member sweeps: the storage nodes what no snapshot references, the others what
    // they staged for backups that never committed (replication::staging).
    let nodes = up.meta().nodes()?;
    let sweeps = nodes.iter().map(|n| {
        run_on(
            up,
            n,
            LocalJob::Sweep {
                datastore: ds.clone(),
                cutoff,
            },
        )
    });
    let results = join_all(sweeps).await;
    task.check()?;
    let (mut removed, mut freed, mut failed) = (0u64, 0u64, Vec::new());
    for (n, r) in nodes.iter().zip(results) {
        match r {
            Ok(JobOutput::Swept { referenced, report }) => {
                removed += report.removed_chunks;
                freed += report.removed_bytes;
                task.log(&format!(
                    "node {}: {referenced} chunks referenced; removed {} chunks ({} bytes), \
                     kept {} recent unreferenced, {} temporary files removed, {} chunks remain",
                    n.name,
                    report.removed_chunks,
                    report.removed_bytes,
                    report.kept_recent,
                    report.removed_temp_files,
                    report.remaining_chunks
                ));
            }
            Ok(other) => failed.push(format!("node {}: unexpected answer {other:?}", n.name)),
            Err(e) => failed.push(format!("node {}: {e}", n.name)),
        }
    }
    for f in &failed {
        task.log(&format!("FAILED {f}"));
    }
    task.log(&format!(
        "removed {removed} chunks, {freed} bytes freed on {} of {} nodes",
        nodes.len() - failed.len(),
        nodes.len()
    ));
    Ok(match failed.len() {
        0 => TaskState::Ok,
        n if n == nodes.len() => TaskState::Error(format!(
            "garbage collection failed on every node: {}",
            failed.join("; ")
        )),
        n => TaskState::Warnings(n as u32),
    })
}

pub(crate) fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_before_the_oldest_running_backup_and_now() {
        assert_eq!(plan_cutoff(1000, &[], 100), 900);
        assert_eq!(plan_cutoff(1000, &[700, 800], 100), 600);
        // A backup "started" in the future (clock skew) never moves the cutoff past now.
        assert_eq!(plan_cutoff(1000, &[5000], 0), 1000);
    }
}
