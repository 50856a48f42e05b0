//! The node's answer to other nodes' [`PeerRequest`]s: each request is handed to the subsystem
//! that owns it. Only the runtime knows every subsystem, so the service lives here.

use std::sync::{Arc, Weak};

use ironcore_transport::{BoxFuture, PeerInfo, RpcHandler, TransferOptions};
use ironcore_types::ChunkId;

use ironcore_types::Privilege;

use crate::auth::{Caller, Credential, authenticate, check};
use crate::cluster::members::Members;
use crate::cluster::membership;
use crate::maintenance::Upkeep;
use crate::maintenance::jobs::Jobs;
use crate::node::Node;
use crate::protocol::{MembershipOp, PeerRequest, PeerResponse, decode, encode};

/// Serves [`PeerRequest`]s.
#[derive(Debug)]
pub struct PeerService {
    node: Weak<Node>,
    /// Work other nodes started on this node's chunk directories.
    jobs: Arc<Jobs>,
}

impl PeerService {
    /// The service of `node` (weak: the service must not keep a stopped node alive).
    pub fn new(node: Weak<Node>) -> Self {
        Self {
            node,
            jobs: Arc::default(),
        }
    }
}

impl RpcHandler for PeerService {
    fn handle(&self, from: PeerInfo, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        let node = self.node.upgrade();
        let jobs = self.jobs.clone();
        Box::pin(async move {
            let node: Arc<Node> = node.ok_or("node is shutting down")?;
            let request: PeerRequest = decode(&request)?;
            // The sender acts on metadata it has applied (a datastore it just created); see at
            // least as much before touching the datastore.
            // (Jobs linearize themselves when they start; polls read no metadata.)
            match &request {
                PeerRequest::StartJob(_)
                | PeerRequest::PollJob(_)
                | PeerRequest::MirrorProgress => {}
                // Chunk reads are answered from what is here even when this node is cut off
                // from a quorum: a site alone still restores what it holds (a stale answer
                // can only say "not held", never hand out wrong bytes: chunks are verified).
                PeerRequest::PushTo { datastore, .. } | PeerRequest::Has { datastore, .. } => {
                    catch_up(&node, datastore).await
                }
                _ => node.raft().linearize().await.map_err(|e| e.to_string())?,
            }
            let answer = match request {
                // Linearized above: the datastore is known here before its chunks arrive.
                PeerRequest::Expect { .. } => PeerResponse::Done(0),
                PeerRequest::PushTo {
                    datastore,
                    ids,
                    to,
                    limit_bytes,
                } => {
                    let held: Vec<ChunkId> = ids
                        .into_iter()
                        .filter(|id| node.stores().has(&datastore, id).unwrap_or(false))
                        .collect();
                    let peer = node.peer(to).map_err(|e| e.to_string())?;
                    let options = TransferOptions {
                        scope: datastore.to_string(),
                        limit_bytes,
                    };
                    let report = node
                        .raft()
                        .transport()
                        .send_chunks(&peer, &held, &options)
                        .await
                        .map_err(|e| e.to_string())?;
                    tracing::debug!(to = %from.node, chunks = report.wanted, "pushed chunks on request");
                    node.chunk_peers()
                        .progress()
                        .served(&datastore, report.bytes);
                    PeerResponse::Pushed {
                        chunks: report.wanted,
                        bytes: report.bytes,
                    }
                }
                PeerRequest::MirrorProgress => PeerResponse::Mirror(
                    node.chunk_peers()
                        .progress()
                        .reports(node.config().name.as_str(), std::time::Instant::now()),
                ),
                PeerRequest::Has { datastore, ids } => {
                    let stores = node.stores().clone();
                    let held = tokio::task::spawn_blocking(move || {
                        stores
                            .has_many(&datastore, &ids)
                            .unwrap_or_else(|_| vec![false; ids.len()])
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    PeerResponse::Held(held)
                }
                PeerRequest::CancelTask { upid, credential } => {
                    PeerResponse::Text(cancel_task(&node, &upid, &credential).await)
                }
                PeerRequest::TaskLog { upid } => PeerResponse::Text(
                    crate::tasks::read_log(&node.tasks().log_path(&upid))
                        .map_err(|e| e.to_string()),
                ),
                PeerRequest::StartJob(job) => {
                    PeerResponse::Started(jobs.start(Upkeep::of(&node), job))
                }
                PeerRequest::PollJob(id) => PeerResponse::Job(jobs.poll(id)),
                PeerRequest::Membership {
                    credential,
                    op,
                    target,
                } => PeerResponse::Changed(change_membership(&node, &credential, op, target).await),
            };
            encode(&answer)
        })
    }
}

/// Before a chunk request: a datastore this node knows needs nothing more (the answer is about
/// the chunks held here, and a round trip to the leader per request would cost every pull over
/// a WAN). One it does not know yet may just have been created: see every acknowledged write
/// first when a leader is in touch; go on with this node's own replica when none is (no
/// waiting out a Raft timeout per chunk) or the read fails.
async fn catch_up(node: &Node, datastore: &ironcore_types::DatastoreName) {
    if node.meta().datastore(datastore).ok().flatten().is_some() {
        return;
    }
    let fresh = node.config().election_timeout.1 * 2;
    if node.raft().leader_contact().is_some_and(|ago| ago <= fresh)
        && let Err(e) = node.raft().linearize().await
    {
        tracing::debug!(error = %e, "chunk request served from this node's replica");
    }
}

/// The caller behind forwarded work, as this node verifies it (token or ticket against its own
/// copy of the metadata): a peer's word is not taken for who asked.
fn verified(node: &Node, credential: &Credential) -> Result<Caller, String> {
    authenticate(
        node.meta(),
        Some(credential.header()),
        chrono::Utc::now().timestamp(),
    )
    .map_err(|e| format!("forwarded request refused: {e}"))
}

/// Cancels task `upid` running here, if the caller may: its owner, or an administrator.
async fn cancel_task(node: &Node, upid: &str, credential: &Credential) -> Result<String, String> {
    let caller = verified(node, credential)?;
    let record = node
        .meta()
        .task(upid)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no task {upid}"))?;
    if record.auth_id != caller.auth_id {
        check(node.meta(), &caller, "/", Privilege::Manage).map_err(|e| e.to_string())?;
    }
    if node.cancel_local(upid, &caller.auth_id).await {
        Ok(format!("cancelled {upid}"))
    } else {
        Err(format!("task {upid} is not running there"))
    }
}

/// Applies a membership change forwarded to this node (the leader), if the caller may.
async fn change_membership(
    node: &Arc<Node>,
    credential: &Credential,
    op: MembershipOp,
    target: u64,
) -> Result<String, String> {
    let caller = verified(node, credential)?;
    check(node.meta(), &caller, "/", Privilege::Manage).map_err(|e| e.to_string())?;
    membership::on_leader(&Members::of(node), &caller.auth_id, op, target)
        .await
        .map_err(|e| e.to_string())
}
