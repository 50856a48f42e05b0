//! Work a node does on its own chunk directory for a cluster-wide task: the GC sweep, chunk
//! checks for verify, and probes and usage for `datastore probe|stats`.
//!
//! Such work can outlast one RPC (10 s), so the coordinating node starts it with
//! [`PeerRequest::StartJob`] and polls it with
//! [`PeerRequest::PollJob`]; on the coordinator itself it
//! runs directly. [`run_on`] hides the difference.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ironcore_chunkstore::ChunkCheck;
use ironcore_types::records::NodeRecord;

use crate::maintenance::Upkeep;
use crate::maintenance::mark::mark;
use crate::protocol::{
    self, CopyState, DirInfo, JobOutput, JobStatus, LocalJob, PeerRequest, PeerResponse,
};
use crate::replication::staging;
use crate::{NodeError, Result};

/// Finished results are dropped when nobody polls them for this long.
const KEEP_RESULTS: Duration = Duration::from_secs(3600);
/// How often the coordinator polls.
const POLL_EVERY: Duration = Duration::from_millis(200);

type Slot = (Instant, Option<std::result::Result<JobOutput, String>>);

/// The jobs running (or finished, not yet collected) on this node for other nodes.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    slots: Mutex<HashMap<u64, Slot>>,
}

impl Jobs {
    /// Starts `job` in the background; returns its id for [`Jobs::poll`].
    pub fn start(self: &Arc<Self>, up: Upkeep, job: LocalJob) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.retain(|_, (at, r)| r.is_none() || at.elapsed() < KEEP_RESULTS);
            slots.insert(id, (Instant::now(), None));
        }
        let jobs = self.clone();
        tokio::spawn(async move {
            let out = run_job(&up, job).await.map_err(|e| e.to_string());
            jobs.slots
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, (Instant::now(), Some(out)));
        });
        id
    }

    /// Where job `id` is; a finished job is collected by this call.
    pub fn poll(&self, id: u64) -> JobStatus {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get(&id) {
            None => JobStatus::Unknown,
            Some((_, None)) => JobStatus::Running,
            Some((_, Some(_))) => match slots.remove(&id) {
                Some((_, Some(Ok(out)))) => JobStatus::Done(out),
                Some((_, Some(Err(e)))) => JobStatus::Failed(e),
                _ => JobStatus::Unknown,
            },
        }
    }
}

/// Runs `job` on this node.
pub async fn run_job(up: &Upkeep, job: LocalJob) -> Result<JobOutput> {
    up.raft().linearize().await?;
    match job {
        LocalJob::Sweep { datastore, cutoff } => {
            // A node that does not store the datastore keeps nothing of it past the cutoff:
            // what it staged for backups that never committed (replication::staging).
            let referenced = if staging::stores_here(up.chunk_peers(), &datastore)? {
                let marked = mark(up, &datastore).await?;
                if let Some((s, why)) = marked.unreadable.first() {
                    return Err(NodeError::BadRequest(format!(
                        "stopped before deleting anything: the index of {s} cannot be read ({why}); \
                         run `ironcore-backup verify start {datastore}` and forget that snapshot"
                    )));
                }
                marked.all()
            } else if !up.stores().path_of(&datastore)?.exists() {
                return Ok(JobOutput::Swept {
                    referenced: 0,
                    report: ironcore_chunkstore::SweepReport::default(),
                });
            } else {
                std::collections::HashSet::new()
            };
            let dir = up.stores().dir(&datastore)?;
            let report = tokio::task::spawn_blocking(move || {
                dir.sweep(&referenced, cutoff, &mut |_, _| {})
                    .map(|r| (referenced.len() as u64, r))
            })
            .await
            .map_err(NodeError::join("the sweep worker"))?
            .map_err(NodeError::io(format!("sweeping datastore {datastore}")))?;
            Ok(JobOutput::Swept {
                referenced: report.0,
                report: report.1,
            })
        }
        LocalJob::Check { datastore, ids } => {
            let dir = up.stores().dir(&datastore)?;
            let states = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<CopyState>> {
                let mut out = Vec::with_capacity(ids.len());
                for id in &ids {
                    out.push(match dir.check(id)? {
                        ChunkCheck::Missing => CopyState::Missing,
                        ChunkCheck::Ok(_) => CopyState::Intact,
                        ChunkCheck::Bad(why) => {
                            let moved = dir.move_aside(id);
                            tracing::error!(chunk = %id, reason = %why, moved_to = ?moved, "CORRUPT chunk moved aside");
                            CopyState::Damaged
                        }
                    });
                }
                Ok(out)
            })
            .await
            .map_err(NodeError::join("the check worker"))?
            .map_err(NodeError::io(format!("checking chunks of {datastore}")))?;
            Ok(JobOutput::Checked(states))
        }
        LocalJob::Inspect { datastore, usage } => {
            let path = up.stores().path_of(&datastore)?;
            let dir = up.stores().dir(&datastore);
            let info = tokio::task::spawn_blocking(move || {
                let dir = match dir {
                    Ok(d) => d,
                    Err(e) => {
                        return DirInfo {
                            path: path.display().to_string(),
                            online: false,
                            error: Some(e.to_string()),
                            usage: None,
                        };
                    }
                };
                let probe = dir.probe();
                let usage = match (&probe, usage) {
                    (Ok(()), true) => dir.usage().ok(),
                    _ => None,
                };
                DirInfo {
                    path: path.display().to_string(),
                    online: probe.is_ok(),
                    error: probe.err().map(|e| e.to_string()),
                    usage,
                }
            })
            .await
            .map_err(NodeError::join("the inspect worker"))?;
            Ok(JobOutput::Inspected(info))
        }
    }
}

/// Runs `job` on `target` (directly when it is this node) and waits for its output.
pub async fn run_on(up: &Upkeep, target: &NodeRecord, job: LocalJob) -> Result<JobOutput> {
    if target.id == up.raft().id() {
        return run_job(up, job).await;
    }
    let call = |req: PeerRequest| async move {
        let bytes = protocol::encode(&req).map_err(NodeError::Internal)?;
        let answer = up.raft().call_service(target.id, &bytes).await?;
        protocol::decode::<PeerResponse>(&answer).map_err(|detail| NodeError::BadPeerAnswer {
            node: target.name.clone(),
            detail,
        })
    };
    let id = match call(PeerRequest::StartJob(job)).await? {
        PeerResponse::Started(id) => id,
        other => {
            return Err(NodeError::BadPeerAnswer {
                node: target.name.clone(),
                detail: format!("{other:?} to a job"),
            });
        }
    };
    loop {
        tokio::time::sleep(POLL_EVERY).await;
        match call(PeerRequest::PollJob(id)).await? {
            PeerResponse::Job(JobStatus::Running) => continue,
            PeerResponse::Job(JobStatus::Done(out)) => return Ok(out),
            PeerResponse::Job(JobStatus::Failed(e)) => {
                return Err(NodeError::Internal(format!("on node {}: {e}", target.name)));
            }
            PeerResponse::Job(JobStatus::Unknown) => {
                return Err(NodeError::Unavailable(format!(
                    "node {} lost the job (it restarted?); run it again",
                    target.name
                )));
            }
            other => {
                return Err(NodeError::BadPeerAnswer {
                    node: target.name.clone(),
                    detail: format!("{other:?} to a poll"),
                });
            }
        }
    }
}
