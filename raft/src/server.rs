//! Answers Raft RPCs from peers by handing them to the local openraft instance.

use std::sync::{Arc, OnceLock};

use futures_util::StreamExt;
use ironcore_transport::{BoxFuture, MessageStream, PeerInfo, RpcHandler};
use openraft::ReadPolicy;
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};

use crate::append_stream::APPEND_STREAM;
use crate::snapshot_inbox::{Accepted, SnapshotInbox};
use crate::{
    Command, RaftHandle, RaftRequest, RaftResponse, Refusal, Snapshot, TypeConfig, WriteReply,
};

/// The transport's request handler for Raft traffic.
///
/// The transport must be bound before openraft starts (openraft's network sends through it), and
/// the handler must exist before the transport is bound, so the Raft instance is attached after
/// both exist; until then every request is refused and the caller backs off.
#[derive(Default)]
pub struct RaftServer {
    raft: OnceLock<RaftHandle>,
    inbox: OnceLock<Arc<SnapshotInbox>>,
    service: OnceLock<Arc<dyn RpcHandler>>,
    stopping: std::sync::atomic::AtomicBool,
    /// When a leader's appends (heartbeats included) were last accepted here.
    contact: LeaderContact,
}

/// When this node last accepted a leader's appends.
#[derive(Clone, Debug, Default)]
struct LeaderContact(Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl LeaderContact {
    fn now(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    }

    fn last(&self) -> Option<std::time::Instant> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for RaftServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RaftServer(attached: {}, service: {})",
            self.raft.get().is_some(),
            self.service.get().is_some()
        )
    }
}

/// The first byte of a request meant for the node's own service rather than Raft (Raft
/// requests start with their format version, 1).
pub const SERVICE_TAG: u8 = 0xA0;

impl RaftServer {
    /// A server with no Raft instance attached yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// When this node last accepted appends (or heartbeats) from a leader; `None` if never
    /// since it started.
    pub fn last_leader_contact(&self) -> Option<std::time::Instant> {
        self.contact.last()
    }

    /// Hands requests tagged `SERVICE_TAG` (tag stripped) to `service`. A second call is
    /// ignored.
    pub fn set_service(&self, service: Arc<dyn RpcHandler>) {
        if self.service.set(service).is_err() {
            tracing::warn!("raft server already has a service; ignoring the new one");
        }
    }

    /// From now on, forwarded writes are refused as never proposed (the node is shutting
    /// down), so callers retry them with the next leader instead of counting them as maybe
    /// applied.
    pub fn stop_accepting(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Starts serving `raft`, staging incoming snapshots in `inbox`. A second call is ignored
    /// (one server serves one instance).
    pub fn attach(&self, raft: RaftHandle, inbox: SnapshotInbox) {
        if self.raft.set(raft).is_err() {
            tracing::warn!("raft server already has an instance; ignoring the new one");
        }
        let _ = self.inbox.set(Arc::new(inbox));
    }
}

impl RpcHandler for RaftServer {
    fn handle(&self, from: PeerInfo, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        if request.first() == Some(&SERVICE_TAG) {
            return match self.service.get() {
                Some(service) => service.handle(from, request[1..].to_vec()),
                None => Box::pin(async { Err("this node serves no node requests yet".into()) }),
            };
        }
        let raft = self.raft.get().cloned();
        let inbox = self.inbox.get().cloned();
        let stopping = self.stopping.load(std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let request = RaftRequest::decode(&request).map_err(|e| e.to_string())?;
            if let RaftRequest::Ping = request {
                return RaftResponse::Pong.encode().map_err(|e| e.to_string());
            }
            if matches!(request, RaftRequest::ClientWrite(_)) && stopping {
                let refused = RaftResponse::ClientWrite(Err(Refusal::NotLeader { leader: None }));
                return refused.encode().map_err(|e| e.to_string());
            }
            let raft = raft.ok_or_else(|| "raft is not running on this node yet".to_string())?;
            let kind = request.kind();
            if let RaftRequest::SnapshotSegment {
                vote,
                meta,
                digest,
                total,
                offset,
                data,
            } = request
            {
                let inbox = inbox.ok_or("this node has no snapshot inbox")?;
                let accepted = tokio::task::spawn_blocking(move || {
                    inbox.accept(&digest, total, offset, &data)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("staging a snapshot segment: {e}"))?;
                let response = match accepted {
                    Accepted::Have(n) => RaftResponse::SnapshotHave(n),
                    Accepted::Complete(file) => {
                        tracing::info!(peer = %from.node, bytes = file.len(), "snapshot received; installing");
                        let staged = file.path().to_path_buf();
                        let snapshot = Snapshot {
                            meta,
                            snapshot: file,
                        };
                        let answer = raft.install_full_snapshot(vote, snapshot).await;
                        // Installed (the state machine keeps its own link) or refused: the
                        // staged copy has served either way.
                        let _ = std::fs::remove_file(&staged);
                        RaftResponse::Snapshot(answer.map_err(|e| e.to_string())?)
                    }
                };
                return response.encode().map_err(|e| e.to_string());
            }
            let response = serve(&raft, request).await.map_err(|e| {
                tracing::debug!(peer = %from.node, kind, error = %e, "raft request failed");
                e
            })?;
            response.encode().map_err(|e| e.to_string())
        })
    }

    fn handle_stream(
        &self,
        from: PeerInfo,
        opening: Vec<u8>,
        stream: MessageStream,
    ) -> BoxFuture<Result<(), String>> {
        let raft = self.raft.get().cloned();
        let stopping = self.stopping.load(std::sync::atomic::Ordering::SeqCst);
        let contact = self.contact.clone();
        Box::pin(async move {
            if opening != APPEND_STREAM {
                return Err(format!(
                    "node {} opened an unknown stream {:?}",
                    from.node,
                    String::from_utf8_lossy(&opening)
                ));
            }
            if stopping {
                return Err("this node is stopping".into());
            }
            let raft = raft.ok_or_else(|| "raft is not running on this node yet".to_string())?;
            Self::serve_appends(raft, stream, contact).await
        })
    }
}

impl RaftServer {
    /// Serves an append stream (see `append_stream.rs`): the leader's requests go to
    /// openraft's `stream_append` as they arrive and its answers go back in order.
    async fn serve_appends(
        raft: RaftHandle,
        stream: MessageStream,
        contact: LeaderContact,
    ) -> Result<(), String> {
        let (sender, receiver) = stream.split();
        let requests = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.next().await {
                Ok(Some(bytes)) => match RaftRequest::decode(&bytes) {
                    Ok(RaftRequest::Append(rpc)) => Some((rpc, receiver)),
                    Ok(other) => {
                        tracing::warn!(
                            kind = other.kind(),
                            "non-append request on an append stream"
                        );
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "undecodable request on an append stream");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    tracing::debug!(error = %e, "append stream ended");
                    None
                }
            }
        });
        let answers = raft.stream_append(requests);
        let mut answers = std::pin::pin!(answers);
        while let Some(answer) = answers.next().await {
            let result = answer.map_err(|fatal| fatal.to_string())?;
            let last = result.is_err();
            if !last {
                contact.now();
            }
            let bytes = RaftResponse::StreamAppend(result)
                .encode()
                .map_err(|e| e.to_string())?;
            sender.send(&bytes).await.map_err(|e| e.to_string())?;
            if last {
                break;
            }
        }
        Ok(())
    }
}

/// The refusal for a forwarded request openraft did not accept.
fn refusal<E>(e: RaftError<TypeConfig, E>) -> Refusal
where
    E: std::fmt::Debug + std::fmt::Display + openraft::TryAsRef<ForwardToLeader<TypeConfig>>,
{
    match e.forward_to_leader() {
        Some(f) => Refusal::NotLeader {
            leader: f.leader_id,
        },
        None => Refusal::Failed(e.to_string()),
    }
}

/// Hands one request to `raft`; an `Err` goes back to the caller as a transport error.
pub(crate) async fn serve(raft: &RaftHandle, request: RaftRequest) -> Result<RaftResponse, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match request {
        RaftRequest::Append(rpc) => {
            RaftResponse::Append(raft.append_entries(rpc).await.map_err(|e| text(&e))?)
        }
        RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await.map_err(|e| text(&e))?),
        RaftRequest::PreVote(rpc) => {
            RaftResponse::Vote(raft.pre_vote(rpc).await.map_err(|e| text(&e))?)
        }
        RaftRequest::TransferLeader(req) => {
            let answer = raft.handle_transfer_leader(req).await;
            RaftResponse::TransferLeader(answer.map_err(|e| text(&e))?)
        }
        RaftRequest::ClientWrite(cmd) => RaftResponse::ClientWrite(client_write(raft, cmd).await),
        RaftRequest::ReadIndex => RaftResponse::ReadIndex(
            raft.get_read_linearizer(ReadPolicy::ReadIndex)
                .await
                .map(|l| *l.read_log_id())
                .map_err(refusal),
        ),
        RaftRequest::Ping => RaftResponse::Pong,
        RaftRequest::SnapshotSegment { .. } => {
            return Err("snapshot segments are staged by the server, not served here".into());
        }
    })
}

/// Proposes `cmd` if this node leads; otherwise says who does.
pub(crate) async fn client_write(raft: &RaftHandle, cmd: Command) -> Result<WriteReply, Refusal> {
    match raft.client_write(cmd).await {
        Ok(r) => Ok(WriteReply {
            log_id: r.log_id,
            result: r.data,
        }),
        Err(RaftError::APIError(ClientWriteError::LogEntryDiscarded(f))) => {
            Err(Refusal::Indeterminate(f.to_string()))
        }
        // A stopped node may have appended the entry before it stopped.
        Err(RaftError::Fatal(f)) => Err(Refusal::Indeterminate(f.to_string())),
        Err(e) => Err(refusal(e)),
    }
}
