//! Requests nodes send each other about chunks (over the transport's control path; the chunks
//! themselves always move on the bulk path with `send_chunks`).

use std::sync::{Arc, Weak};

use ironcore_transport::{BoxFuture, PeerInfo, RpcHandler, TransferOptions};
use ironcore_types::{ChunkId, DatastoreName};
use serde::{Deserialize, Serialize};

use crate::core::Node;
use crate::jobs::{JobStatus, LocalJob};
use crate::membership::{self, MembershipOp};

/// A request to another node's service. Versioned by the enclosing `[1] ++ postcard` encoding.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// The chunks `ids` of `datastore` are about to be sent to you: see the metadata the
    /// sender saw (the datastore may be new) before they arrive.
    Expect {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
    },
    /// Send me (Raft id `to`) those of `ids` you hold.
    PushTo {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
        /// The asking node.
        to: u64,
    },
    /// Which of `ids` of `datastore` do you hold? (Held ones are refreshed for GC.)
    Has {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
    },
    /// Cancel task `upid` running on you, as `by` (the asking node checked the rights).
    CancelTask {
        /// The task.
        upid: String,
        /// Who asked.
        by: ironcore_types::AuthId,
    },
    /// Send the log of task `upid`, which ran on you.
    TaskLog {
        /// The task.
        upid: String,
    },
    /// Start work on your chunk directory (see [`crate::jobs`]).
    StartJob(LocalJob),
    /// Where is job `id`?
    PollJob(u64),
    /// Change membership (sent to the leader; the asking node checked `actor`'s rights).
    Membership {
        /// Who asked.
        actor: ironcore_types::AuthId,
        /// What to do.
        op: MembershipOp,
        /// To which member.
        target: u64,
    },
}

/// The answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Done; how many chunks were sent.
    Done(usize),
    /// The job was started with this id.
    Started(u64),
    /// Where the job is.
    Job(JobStatus),
    /// The membership change's outcome.
    Changed(Result<String, String>),
    /// One answer per id asked with [`PeerRequest::Has`].
    Held(Vec<bool>),
    /// A text answer (a task log, a confirmation) or why not.
    Text(Result<String, String>),
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    let mut out = vec![1u8];
    postcard::to_io(v, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, String> {
    match b.split_first() {
        Some((1, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!(
            "peer message version {v} is not supported (this build reads 1)"
        )),
        None => Err("empty peer message".into()),
    }
}

/// Serves [`PeerRequest`]s.
#[derive(Debug)]
pub struct PeerService(pub Weak<Node>);

impl RpcHandler for PeerService {
    fn handle(&self, from: PeerInfo, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let node = self.0.upgrade();
        Box::pin(async move {
            let node: Arc<Node> = node.ok_or("node is shutting down")?;
            let request: PeerRequest = decode(&request)?;
            // The sender acts on metadata it has applied (a datastore it just created); see at
            // least as much before touching the datastore.
            // (Jobs linearize themselves when they start; polls read no metadata.)
            if !matches!(request, PeerRequest::StartJob(_) | PeerRequest::PollJob(_)) {
                node.raft.linearize().await.map_err(|e| e.to_string())?;
            }
            let answer = match request {
                // Linearized above: the datastore is known here before its chunks arrive.
                PeerRequest::Expect { .. } => PeerResponse::Done(0),
                PeerRequest::PushTo { datastore, ids, to } => {
                    let held: Vec<ChunkId> = ids
                        .into_iter()
                        .filter(|id| node.stores.has(&datastore, id).unwrap_or(false))
                        .collect();
                    let peer = node.peer(to).map_err(|e| e.to_string())?;
                    let options = TransferOptions {
                        scope: datastore.to_string(),
                        ..TransferOptions::default()
                    };
                    let report = node
                        .raft
                        .transport()
                        .send_chunks(&peer, &held, &options)
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::debug!(to = %from.node, chunks = report.wanted, "pushed chunks on request");
                    PeerResponse::Done(report.wanted)
                }
                PeerRequest::Has { datastore, ids } => {
                    let stores = node.stores.clone();
                    let held = tokio::task::spawn_blocking(move || {
                        stores
                            .has_many(&datastore, &ids)
                            .unwrap_or_else(|_| vec![false; ids.len()])
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    PeerResponse::Held(held)
                }
                PeerRequest::CancelTask { upid, by } => {
                    PeerResponse::Text(if node.cancel_local(&upid, &by).await {
                        Ok(format!("cancelled {upid}"))
                    } else {
                        Err(format!("task {upid} is not running there"))
                    })
                }
                PeerRequest::TaskLog { upid } => PeerResponse::Text(
                    crate::tasks::read_log(&node.tasks.log_path(&upid)).map_err(|e| e.to_string()),
                ),
                PeerRequest::StartJob(job) => {
                    PeerResponse::Started(node.jobs.start(node.clone(), job))
                }
                PeerRequest::PollJob(id) => PeerResponse::Job(node.jobs.poll(id)),
                PeerRequest::Membership { actor, op, target } => PeerResponse::Changed(
                    membership::on_leader(&node, &actor, op, target)
                        .await
                        .map_err(|e| e.to_string()),
                ),
            };
            encode(&answer)
        })
    }
}
