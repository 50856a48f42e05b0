//! openraft's network over the node's QUIC transport.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::Stream;
use ironcore_transport::{MessageStream, Peer, Transport, TransportError};
use openraft::OptionalSend;
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};

/// One answer of an append stream, as openraft takes it.
type AppendAnswer = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

use crate::append_stream::{APPEND_STREAM, AppendSession, StreamFault};
use crate::reachability::{Gate, ProbePolicy, Reachability};
use crate::snapshot_inbox::SEGMENT;
use crate::{
    AddressBook, ClusterNode, NodeId, RaftRequest, RaftResponse, Snapshot, TypeConfig, Vote,
};

/// Why a request to a peer got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The peer cannot be reached now (no address, no connection, no answer in time, refused,
    /// or it is stopping); openraft backs off before trying again.
    #[error("node {node} is unreachable: {detail}")]
    Unreachable {
        /// The peer.
        node: NodeId,
        /// Why.
        detail: String,
    },
    /// The request was not sent: the peer did not answer recently and is not due for a probe,
    /// or its probe failed. Safe to retry; openraft backs off.
    #[error("node {node} is unreachable, request not sent: {detail}")]
    NotSent {
        /// The peer.
        node: NodeId,
        /// Why.
        detail: String,
    },
    /// The exchange broke (an answer that does not decode or does not fit the request); worth
    /// retrying at once.
    #[error("raft rpc to node {node} failed: {detail}")]
    Network {
        /// The peer.
        node: NodeId,
        /// Why.
        detail: String,
    },
}

impl SendError {
    fn into_rpc(self) -> RPCError<TypeConfig> {
        match self {
            SendError::Unreachable { .. } | SendError::NotSent { .. } => {
                Unreachable::from_string(self).into()
            }
            SendError::Network { .. } => NetworkError::from_string(self).into(),
        }
    }
}

/// Creates the [`RaftLink`]s openraft sends through (openraft's network factory).
///
/// A peer that stops answering is marked down: calls to it then fail at once, and one short
/// probe per interval finds out when it is back (see [`ProbePolicy`]).
#[derive(Clone, Debug)]
pub struct RaftNetwork {
    transport: Transport,
    book: AddressBook,
    reach: Reachability,
}

impl RaftNetwork {
    /// A network sending through `transport` to the addresses in `book`, probing dead peers
    /// as `probe` says.
    pub fn new(transport: Transport, book: AddressBook, probe: ProbePolicy) -> Self {
        Self {
            transport,
            book,
            reach: Reachability::new(probe),
        }
    }

    /// A link to `target`, described by its membership entry `node`.
    pub fn link(&self, target: NodeId, node: &ClusterNode) -> RaftLink {
        RaftLink {
            transport: self.transport.clone(),
            book: self.book.clone(),
            reach: self.reach.clone(),
            target,
            node: node.clone(),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for RaftNetwork {
    type Network = RaftLink;

    async fn new_client(&mut self, target: NodeId, node: &ClusterNode) -> RaftLink {
        self.book.learn(target, node);
        self.link(target, node)
    }
}

/// The Raft RPC client for one peer. Connections are the transport's (made on first use and
/// shared), so a link is cheap.
#[derive(Clone, Debug)]
pub struct RaftLink {
    transport: Transport,
    book: AddressBook,
    reach: Reachability,
    target: NodeId,
    node: ClusterNode,
}

impl RaftLink {
    fn unreachable(&self, detail: impl ToString) -> SendError {
        SendError::Unreachable {
            node: self.target,
            detail: detail.to_string(),
        }
    }

    fn not_sent(&self, detail: impl ToString) -> SendError {
        SendError::NotSent {
            node: self.target,
            detail: detail.to_string(),
        }
    }

    fn network(&self, detail: impl ToString) -> SendError {
        SendError::Network {
            node: self.target,
            detail: detail.to_string(),
        }
    }

    async fn peer(&self) -> Result<Peer, SendError> {
        let name = self
            .node
            .name
            .parse()
            .map_err(|e| self.unreachable(format!("bad node name in membership: {e}")))?;
        let addr = match self.book.resolve(self.target, &self.node) {
            Some(addr) => addr,
            None => self.lookup().await?,
        };
        Ok(Peer { node: name, addr })
    }

    /// Resolves a `host:port` address through DNS.
    async fn lookup(&self) -> Result<SocketAddr, SendError> {
        let address = &self.node.address;
        let mut addrs = tokio::net::lookup_host(address.as_str())
            .await
            .map_err(|e| self.unreachable(format!("cannot resolve {address:?}: {e}")))?;
        addrs
            .next()
            .ok_or_else(|| self.unreachable(format!("{address:?} resolves to no address")))
    }

    /// Sends `request` and waits at most `timeout` for the answer. A peer marked down is
    /// probed first when its probe is due (or, before then, not tried).
    pub async fn send(
        &self,
        request: &RaftRequest,
        timeout: Duration,
    ) -> Result<RaftResponse, SendError> {
        self.send_via(request, timeout, false).await
    }

    /// The probe of this link's peer: a `Ping`, answered with a `Pong`.
    fn probe(&self) -> BoxFuture<'static, Result<(), String>> {
        let link = self.clone();
        Box::pin(async move {
            let timeout = link.reach.policy().timeout;
            match link.exchange(&RaftRequest::Ping, timeout, false).await {
                Ok(RaftResponse::Pong) => Ok(()),
                Ok(other) => Err(link.mismatch("ping", &other).to_string()),
                Err((e, _)) => Err(e.to_string()),
            }
        })
    }

    /// [`Self::send`], on the transport's bulk path when `bulk` (for requests that carry
    /// bulk data, so they never delay heartbeats and votes).
    async fn send_via(
        &self,
        request: &RaftRequest,
        timeout: Duration,
        bulk: bool,
    ) -> Result<RaftResponse, SendError> {
        let started = tokio::time::Instant::now();
        match self.reach.gate(self.target, || self.probe()) {
            Gate::Send => {}
            Gate::FailFast => {
                return Err(self.not_sent("it did not answer recently; waiting for the next probe"));
            }
            Gate::AwaitProbe => {
                let outcome = tokio::time::timeout(timeout, self.reach.probe_outcome(self.target));
                match outcome.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(self.not_sent(e)),
                    Err(_) => return Err(self.not_sent("its probe did not finish in time")),
                }
            }
        }
        let timeout = timeout.saturating_sub(started.elapsed());
        match self.exchange(request, timeout, bulk).await {
            Ok(answer) => {
                self.reach.up(self.target);
                Ok(answer)
            }
            Err((e, silent)) => {
                if silent {
                    self.reach.down(self.target, &e.to_string());
                }
                Err(e)
            }
        }
    }

    /// One request and its answer; on failure, also whether the peer stayed silent (no
    /// connection or no answer in time) rather than answering with an error.
    async fn exchange(
        &self,
        request: &RaftRequest,
        timeout: Duration,
        bulk: bool,
    ) -> Result<RaftResponse, (SendError, bool)> {
        let peer = self.peer().await.map_err(|e| (e, true))?;
        let bytes = request.encode().map_err(|e| {
            let e = self.network(format!("cannot encode {}: {e}", request.kind()));
            (e, false)
        })?;
        let call = async {
            if bulk {
                self.transport.call_bulk_raw(&peer, &bytes).await
            } else {
                self.transport.call_raw(&peer, &bytes).await
            }
        };
        let answer = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| {
                let e = self.unreachable(format!(
                    "no answer to {} within {} ms",
                    request.kind(),
                    timeout.as_millis()
                ));
                (e, true)
            })?
            .map_err(|e| {
                let silent = matches!(
                    e,
                    TransportError::Timeout { .. }
                        | TransportError::Connection { .. }
                        | TransportError::Handshake { .. }
                        | TransportError::Io { .. }
                );
                match e {
                    TransportError::Protocol { .. } => (self.network(e), false),
                    // Connection, timeout, handshake, refusal, a stopping peer: back off.
                    other => (self.unreachable(other), silent),
                }
            })?;
        RaftResponse::decode(&answer).map_err(|e| (self.network(e), false))
    }

    /// Opens an append stream to the peer. A peer that is down is waited for until its next
    /// probe has settled (openraft's backoff only paces the requests of an open stream: failing
    /// here at once would make it retry in a tight loop).
    async fn open_append_stream(&self, timeout: Duration) -> Result<MessageStream, SendError> {
        if !self.reach.is_up(self.target) {
            self.reach
                .wait_reachable(self.target, || self.probe())
                .await
                .map_err(|e| self.not_sent(e))?;
        }
        let peer = self.peer().await?;
        let opened =
            tokio::time::timeout(timeout, self.transport.open_stream(&peer, APPEND_STREAM))
                .await
                .map_err(|_| self.unreachable("no append stream opened in time"))?;
        opened.map_err(|e| {
            let e = self.unreachable(e);
            self.reach.down(self.target, &e.to_string());
            e
        })
    }

    /// openraft's error for a broken append stream (a silent peer is marked down).
    fn stream_fault(&self, fault: StreamFault) -> RPCError<TypeConfig> {
        match fault {
            StreamFault::Silent(detail) => {
                let e = self.unreachable(detail);
                self.reach.down(self.target, &e.to_string());
                e.into_rpc()
            }
            StreamFault::Garbled(detail) => self.network(detail).into_rpc(),
        }
    }

    fn mismatch(&self, what: &str, got: &RaftResponse) -> SendError {
        self.network(format!("expected a {what} answer, got {got:?}"))
    }
}

/// The most entry bytes one append request carries: well inside a control frame, and small
/// enough to cross a slow inter-site link quickly.
pub(crate) const MAX_APPEND_BYTES: usize = 1 << 20;

/// Extra time an append gets per byte it carries (openraft's timeout is the heartbeat
/// interval, sized for empty heartbeats): 1 s per 8 MiB.
pub(crate) const APPEND_BYTES_PER_SEC: u64 = 8 << 20;

/// How many of `entries`, from the first, fit in `budget` encoded bytes (at least one: no
/// entry is larger than [`crate::raft_node::MAX_COMMAND_BYTES`], see
/// [`crate::RaftNode::write`]), and their encoded size.
pub(crate) fn fitting_prefix(entries: &[crate::Entry], budget: usize) -> (usize, usize) {
    let mut used = 0usize;
    for (i, e) in entries.iter().enumerate() {
        let size = postcard::to_allocvec(e).map_or(usize::MAX / 2, |b| b.len());
        if used + size > budget && i > 0 {
            return (i, used);
        }
        used += size;
    }
    (entries.len(), used)
}

impl RaftNetworkV2<TypeConfig> for RaftLink {
    type SnapshotData = crate::SnapshotData;

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // openraft batches up to `max_payload_entries` entries whatever their size; send the
        // longest prefix that fits one control frame and report the rest as not sent yet
        // (a partial success), so large entries never make a request the peer must drop.
        let (kept, bytes) = fitting_prefix(&rpc.entries, MAX_APPEND_BYTES);
        let trimmed = kept < rpc.entries.len();
        if trimmed {
            rpc.entries.truncate(kept);
        }
        let last = rpc.entries.last().map(|e| e.log_id);
        let timeout =
            option.soft_ttl() + Duration::from_millis(bytes as u64 * 1000 / APPEND_BYTES_PER_SEC);
        match self.send(&RaftRequest::Append(rpc), timeout).await {
            Ok(RaftResponse::Append(AppendEntriesResponse::Success)) if trimmed => {
                Ok(AppendEntriesResponse::PartialSuccess(last))
            }
            Ok(RaftResponse::Append(r)) => Ok(r),
            Ok(other) => Err(self.mismatch("append", &other).into_rpc()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    /// Pipelined: see `append_stream.rs`.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, AppendAnswer>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        Box::pin(async move {
            let soft_ttl = option.soft_ttl();
            let stream = self
                .open_append_stream(soft_ttl)
                .await
                .map_err(SendError::into_rpc)?;
            let (sender, receiver) = stream.split();
            let session = AppendSession::start(sender, receiver, input, soft_ttl, self.target);
            let link = self.clone();
            let answers = futures_util::stream::unfold(Some(session), move |state| {
                let link = link.clone();
                async move {
                    let mut session = state?;
                    match session.next().await? {
                        Ok(result) => {
                            link.reach.up(link.target);
                            let go_on = result.is_ok();
                            Some((Ok(result), go_on.then_some(session)))
                        }
                        Err(fault) => Some((Err(link.stream_fault(fault)), None)),
                    }
                }
            });
            Ok(Box::pin(answers) as BoxStream<'s, AppendAnswer>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(&RaftRequest::Vote(rpc), option.soft_ttl()).await {
            Ok(RaftResponse::Vote(r)) => Ok(r),
            Ok(other) => Err(self.mismatch("vote", &other).into_rpc()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .send(&RaftRequest::PreVote(rpc), option.soft_ttl())
            .await
        {
            Ok(RaftResponse::Vote(r)) => Ok(r),
            Ok(other) => Err(self.mismatch("pre-vote", &other).into_rpc()),
            Err(e) => Err(e.into_rpc()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let file = std::sync::Arc::new(snapshot.snapshot);
        let (digest, total) = (file.digest(), file.len());
        let mut offset = 0u64;
        // Segments go one at a time on the bulk path, read from the snapshot file as they go;
        // each answer either completes the snapshot or names where to go on (a receiver that
        // staged part of it earlier resumes there).
        let mut stalls = 0;
        let mut cancel = std::pin::pin!(cancel);
        loop {
            let reader = file.clone();
            let data = tokio::task::spawn_blocking(move || reader.read_at(offset, SEGMENT))
                .await
                .map_err(|e| self.network(format!("reading the snapshot file: {e}")))
                .and_then(|r| {
                    r.map_err(|e| self.network(format!("reading the snapshot file: {e}")))
                })
                .map_err(|e| StreamingError::from(e.into_rpc()))?;
            let sent = data.len();
            let timeout = option.soft_ttl()
                + Duration::from_millis(sent as u64 * 1000 / APPEND_BYTES_PER_SEC);
            let request = RaftRequest::SnapshotSegment {
                vote,
                meta: snapshot.meta.clone(),
                digest,
                total,
                offset,
                data,
            };
            let answer = tokio::select! {
                closed = &mut cancel => return Err(closed.into()),
                answer = self.send_via(&request, timeout, true) => answer,
            };
            match answer {
                Ok(RaftResponse::Snapshot(r)) => return Ok(r),
                Ok(RaftResponse::SnapshotHave(have)) if have <= total => {
                    // Data sent without the receiver moving on, or a start over (its staged
                    // bytes failed the digest): tolerated a few times.
                    if have < offset || (have == offset && sent > 0) {
                        stalls += 1;
                    }
                    if stalls > 3 {
                        let e = self.network(format!(
                            "snapshot transfer makes no progress (receiver at {have} of {total} bytes)"
                        ));
                        return Err(e.into_rpc().into());
                    }
                    offset = have;
                }
                Ok(other) => return Err(self.mismatch("snapshot", &other).into_rpc().into()),
                Err(e) => return Err(e.into_rpc().into()),
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self
            .send(&RaftRequest::TransferLeader(req), option.soft_ttl())
            .await
        {
            Ok(RaftResponse::TransferLeader(r)) => Ok(r),
            Ok(other) => Err(self.mismatch("transfer-leader", &other).into_rpc()),
            Err(e) => Err(e.into_rpc()),
        }
    }
}
