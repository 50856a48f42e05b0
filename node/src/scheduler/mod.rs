//! The scheduler: runs the jobs kept in Raft (verify, GC, prune) when their schedule says.
//!
//! Every node runs the loop, only the Raft leader acts. Before it starts a run it proposes
//! `JobStarted` with the run's scheduled time; the state machine refuses a second start of the
//! same or an earlier time, so a leader change can never run a job twice. Missed runs (the
//! cluster was down) collapse into one. A run is a normal task of the job's owner.

pub mod schedule;

use std::sync::{Arc, Weak};
use std::time::Duration;

use ironcore_raft::MetaCommand;
use ironcore_types::records::{JobKind, JobRecord, TaskState};

use crate::maintenance::{Upkeep, gc, prune, verify};
use crate::node::Node;
use crate::node::work;
use crate::scheduler::schedule::Schedule;

/// How often the leader looks for due jobs.
pub const TICK: Duration = Duration::from_secs(1);

/// The scheduled time of the run of `job` due at `now`, if one is: the latest time the
/// schedule names after the job's last run (or its creation) and not after `now`.
pub fn due(job: &JobRecord, schedule: &Schedule, now: i64) -> Option<i64> {
    if !job.enabled {
        return None;
    }
    let mut at = schedule.next_after(job.last_run.unwrap_or(job.created));
    if at > now {
        return None;
    }
    // Several runs missed: only the latest runs.
    loop {
        let next = schedule.next_after(at);
        if next > now {
            return Some(at);
        }
        at = next;
    }
}

/// Runs the scheduler until the node goes away.
pub async fn run(node: Weak<Node>) {
    loop {
        tokio::time::sleep(TICK).await;
        let Some(node) = node.upgrade() else { return };
        if node.raft().metrics().current_leader != Some(node.raft().id()) {
            continue;
        }
        if let Err(e) = tick(&node).await {
            tracing::warn!(error = %e, "scheduler tick failed");
        }
    }
}

async fn tick(node: &Arc<Node>) -> crate::Result<()> {
    let now = chrono::Utc::now().timestamp();
    for job in node.meta().jobs()? {
        let schedule: Schedule = match job.schedule.parse() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job has an invalid schedule; skipped");
                continue;
            }
        };
        let Some(at) = due(&job, &schedule, now) else {
            continue;
        };
        // The claim: refused if another leader started this run already.
        let claim = MetaCommand::JobStarted {
            id: job.id.clone(),
            scheduled: at,
        };
        if let Err(e) = node.propose(&job.owner, claim).await {
            tracing::info!(job = %job.id, error = %e, "job run not started");
            continue;
        }
        match start(node, &job).await {
            Ok(upid) => tracing::info!(job = %job.id, %upid, "scheduled job started"),
            Err(e) => tracing::warn!(job = %job.id, error = %e, "scheduled job could not start"),
        }
    }
    Ok(())
}

/// Starts one run of `job` as a task of its owner.
pub async fn start(node: &Arc<Node>, job: &JobRecord) -> crate::Result<String> {
    let kind = match job.kind {
        JobKind::Verify => "verify",
        JobKind::Gc => "garbage_collection",
        JobKind::Prune { .. } => "prune",
        JobKind::Sync { .. } => "sync",
    };
    let run = job.clone();
    work::spawn(
        node,
        kind,
        job.datastore.as_str(),
        &job.owner,
        move |node, task| async move {
            task.log(&format!("run of job {}", run.id));
            let ds = &run.datastore;
            match &run.kind {
                JobKind::Verify => verify::run(&Upkeep::of(&node), &task, ds, &run.owner).await,
                JobKind::Gc => gc::run(&Upkeep::of(&node), &task, ds, gc::DEFAULT_GRACE_SECS).await,
                JobKind::Sync { .. } => {
                    crate::sync::run(&crate::sync::syncer::Syncer::of(&node), &task, &run).await
                }
                JobKind::Prune { ns, keep } => {
                    let mut removed = 0;
                    let up = Upkeep::of(&node);
                    for group in node.meta().groups(ds, ns)? {
                        task.check()?;
                        let plan =
                            prune::prune_group(&up, &run.owner, ds, ns, &group, keep, "UTC", false)
                                .await?;
                        let gone = plan.iter().filter(|d| d.removed).count();
                        removed += gone;
                        task.log(&format!(
                            "{group}: {} snapshots, {gone} removed",
                            plan.len()
                        ));
                    }
                    task.log(&format!("removed {removed} snapshots"));
                    Ok(TaskState::Ok)
                }
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcore_types::AuthId;

    fn job(created: i64, last_run: Option<i64>) -> JobRecord {
        JobRecord {
            id: "nightly".into(),
            datastore: "store1".parse().unwrap(),
            kind: JobKind::Verify,
            schedule: "02:00".into(),
            enabled: true,
            comment: String::new(),
            owner: "root@pam".parse::<AuthId>().unwrap(),
            created,
            last_run,
        }
    }

    #[test]
    fn a_job_is_due_once_per_scheduled_time_and_missed_runs_collapse() {
        let s: Schedule = "02:00".parse().unwrap();
        let day = 86_400;
        let two = 2 * 3600;
        // Created at 01:00 on day 0: due from 02:00.
        assert_eq!(due(&job(3600, None), &s, two - 1), None);
        assert_eq!(due(&job(3600, None), &s, two), Some(two));
        // Ran at day 0 02:00: not again until day 1 02:00.
        assert_eq!(due(&job(3600, Some(two)), &s, two + 10), None);
        assert_eq!(due(&job(3600, Some(two)), &s, day + two), Some(day + two));
        // Down for three days: one run, for the latest missed time.
        assert_eq!(
            due(&job(3600, Some(two)), &s, 3 * day + two + 5),
            Some(3 * day + two)
        );
        let mut off = job(3600, None);
        off.enabled = false;
        assert_eq!(due(&off, &s, 10 * day), None);
    }
}
