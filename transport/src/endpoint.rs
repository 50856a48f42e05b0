//! The node's QUIC endpoint: identity, pinned connections on two paths, and RPC.
//!
//! Control traffic (votes, heartbeats, appends, admin calls) and bulk traffic (chunk streams)
//! use separate QUIC connections to each peer, told apart by ALPN. Each has its own congestion
//! and flow control state, so a bulk transfer filling the link never queues a heartbeat behind
//! its data. Bulk connections get flow-control windows sized for a 50 ms round trip at well
//! over a gigabit.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ironcore_types::{Fingerprint, NodeId};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, VarInt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument, debug, warn};

use crate::chunks::{ChunkFault, ChunkStore};
use crate::frame::{ClusterId, Kind, MAX_BULK_PAYLOAD, MAX_CONTROL_PAYLOAD};
use crate::identity::{NodeIdentity, fingerprint_of};
use crate::limit::RateLimiter;
use crate::pins::{PinSet, PinnedClients, PinnedServer, Seen, provider};
use crate::wire::{read_answer, read_opening, write_frame};
use crate::{Result, TransportError};

/// ALPN of control connections.
pub(crate) const ALPN_CONTROL: &[u8] = b"ironcore-ctl/1";
/// ALPN of bulk connections.
pub(crate) const ALPN_BULK: &[u8] = b"ironcore-bulk/1";
const SERVER_NAME: &str = "ironcore-node";

/// Settings of a node's transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node.
    pub node: NodeId,
    /// The cluster it belongs to.
    pub cluster: ClusterId,
    /// The cluster epoch it is at.
    pub epoch: u64,
    /// How long an RPC may take (WAN round trips included).
    pub rpc_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// Keep-alive interval (must be well below `idle_timeout`).
    pub keep_alive: Duration,
    /// Flow-control window of bulk connections in bytes (bandwidth × round trip).
    pub bulk_window: u64,
    /// Bulk bandwidth limit per peer link in MiB/s (0 = unlimited). Never applies to control.
    pub link_limit_mib: u64,
    /// Congestion controller of bulk connections (control connections always use cubic).
    pub bulk_congestion: Congestion,
}

/// A congestion controller for bulk connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// Loss-based; grows slowly on long round trips.
    Cubic,
    /// Paces to the measured bottleneck; fills long fat inter-site links much sooner (measured
    /// here through the fault proxy at 50 ms RTT: 76 MB/s against cubic's 20 MB/s).
    Bbr,
}

impl TransportConfig {
    /// Defaults for a node of `cluster`: 10 s RPC timeout, 30 s idle timeout, 64 MiB windows,
    /// BBR on bulk connections.
    pub fn new(node: NodeId, cluster: ClusterId, epoch: u64) -> Self {
        Self {
            node,
            cluster,
            epoch,
            rpc_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            bulk_window: 64 << 20,
            link_limit_mib: 0,
            bulk_congestion: Congestion::Bbr,
        }
    }
}

/// Another node, as this node dials it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its id (selects its pins).
    pub node: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Who sent a request, as the handshake proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node its certificate is pinned for.
    pub node: NodeId,
    /// Its certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// Its address.
    pub addr: SocketAddr,
}

/// A boxed future, for handlers.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Answers RPC requests. Payloads are opaque bytes; callers put their own typed, versioned
/// messages in them (see [`Transport::call`]).
pub trait RpcHandler: Send + Sync + 'static {
    /// Handles one request; an `Err` string goes back to the caller as its error.
    fn handle(
        &self,
        from: PeerInfo,
        request: Vec<u8>,
    ) -> BoxFuture<std::result::Result<Vec<u8>, String>>;

    /// Serves a message stream a peer opened with [`Transport::open_stream`]: `opening` says
    /// what it is for; `stream` reads the peer's messages and writes answers, both in order.
    /// An `Err` ends the stream with that message to the peer. By default no stream is served.
    fn handle_stream(
        &self,
        from: PeerInfo,
        opening: Vec<u8>,
        stream: crate::MessageStream,
    ) -> BoxFuture<std::result::Result<(), String>> {
        let _ = (from, opening, stream);
        Box::pin(async { Err("this node serves no message streams".to_string()) })
    }
}

/// The connection to one peer on one path, dialled on first use.
type ConnSlot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// Which connection to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Path {
    Control,
    Bulk,
}

pub(crate) struct Inner {
    pub config: TransportConfig,
    pub epoch: AtomicU64,
    pub endpoint: Endpoint,
    pub identity: NodeIdentity,
    pub pins: PinSet,
    pub handler: Arc<dyn RpcHandler>,
    pub store: Arc<dyn ChunkStore>,
    /// One slot per peer and path: dialling a peer locks only its own slot, so a dead or
    /// partitioned peer never holds up calls to the others.
    conns: Mutex<HashMap<(SocketAddr, Path), ConnSlot>>,
    links: Mutex<HashMap<SocketAddr, RateLimiter>>,
    pub fault: Mutex<Option<ChunkFault>>,
    /// Bounds how many chunks are verified and stored at once, so hashing never starves the
    /// threads that drive the connections.
    pub verify_slots: Arc<tokio::sync::Semaphore>,
    /// Chunk bytes written to bulk streams since the transport started, resends and
    /// transfers that failed halfway included.
    pub chunk_bytes_sent: AtomicU64,
}

/// A node's transport. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Transport({} at {:?})",
            self.inner.config.node,
            self.local_addr().ok()
        )
    }
}

fn transport_config(cfg: &TransportConfig, bulk: bool) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(cfg.keep_alive));
    if let Ok(idle) = quinn::IdleTimeout::try_from(cfg.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    if bulk {
        let window = VarInt::from_u64(cfg.bulk_window).unwrap_or(VarInt::MAX);
        t.receive_window(window);
        t.stream_receive_window(window);
        t.send_window(cfg.bulk_window);
        match cfg.bulk_congestion {
            Congestion::Bbr => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()))
            }
            Congestion::Cubic => {
                t.congestion_controller_factory(Arc::new(quinn::congestion::CubicConfig::default()))
            }
        };
    } else {
        // Control traffic uses BBR too: Raft catch-up streams megabytes of appends on this
        // path, and over a 40 ms round trip Cubic's backing off on every lost packet held it
        // to 3.8 MiB/s where BBR does 12.8 MiB/s (raft's commits bench, catch-up row);
        // latency of small RPCs was the same with either.
        t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    }
    Arc::new(t)
}

impl Transport {
    /// Binds the endpoint at `addr` (port 0 picks a free port) and starts accepting peers.
    /// Must be called inside a tokio runtime.
    pub async fn bind(
        config: TransportConfig,
        addr: SocketAddr,
        identity: NodeIdentity,
        pins: PinSet,
        handler: Arc<dyn RpcHandler>,
        store: Arc<dyn ChunkStore>,
    ) -> Result<Self> {
        let tls_err = |e: rustls::Error| TransportError::Identity {
            path: "<tls>".into(),
            detail: e.to_string(),
        };
        let mut server_tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_client_cert_verifier(Arc::new(PinnedClients { pins: pins.clone() }))
            .with_single_cert(vec![identity.cert()], identity.key())
            .map_err(tls_err)?;
        server_tls.alpn_protocols = vec![ALPN_CONTROL.to_vec(), ALPN_BULK.to_vec()];
        let quic =
            QuicServerConfig::try_from(server_tls).map_err(|e| TransportError::Identity {
                path: "<tls>".into(),
                detail: e.to_string(),
            })?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server.transport_config(transport_config(&config, true));
        let io_err = |action| move |source| TransportError::Io { action, source };
        let socket =
            std::net::UdpSocket::bind(addr).map_err(io_err("binding the QUIC endpoint"))?;
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(identity.reset_key()));
        let cid_key = identity.cid_key();
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = Endpoint::new(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(io_err("starting the QUIC endpoint"))?;
        let inner = Arc::new(Inner {
            epoch: AtomicU64::new(config.epoch),
            config,
            endpoint,
            identity,
            pins,
            handler,
            store,
            conns: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            fault: Mutex::new(None),
            verify_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .saturating_sub(1)
                    .max(1),
            )),
            chunk_bytes_sent: AtomicU64::new(0),
        });
        tokio::spawn(accept_loop(inner.endpoint.clone(), Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.inner
            .endpoint
            .local_addr()
            .map_err(|source| TransportError::Io {
                action: "reading the local address",
                source,
            })
    }

    /// This node's certificate fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.identity.fingerprint()
    }

    /// The pins this transport checks (shared: changes apply to new connections).
    pub fn pins(&self) -> &PinSet {
        &self.inner.pins
    }

    /// The cluster epoch this node is at.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }

    /// Moves this node to a new cluster epoch (after a failover).
    pub fn set_epoch(&self, epoch: u64) {
        self.inner.epoch.store(epoch, Ordering::SeqCst);
    }

    /// Closes every connection and the endpoint.
    pub fn close(&self) {
        self.inner.endpoint.close(VarInt::from_u32(0), b"shutdown");
    }

    pub(crate) fn link_limiter(&self, addr: SocketAddr) -> RateLimiter {
        let mut links = self.inner.links.lock().unwrap_or_else(|p| p.into_inner());
        links
            .entry(addr)
            .or_insert_with(|| RateLimiter::new(self.inner.config.link_limit_mib))
            .clone()
    }

    /// The open connection to `peer` on `path`, dialling it if needed.
    pub(crate) async fn connection(&self, peer: &Peer, path: Path) -> Result<Connection> {
        let slot = {
            let mut conns = self.inner.conns.lock().unwrap_or_else(|p| p.into_inner());
            conns.entry((peer.addr, path)).or_default().clone()
        };
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref()
            && c.close_reason().is_none()
        {
            return Ok(c.clone());
        }
        let fresh = self.dial(peer, path).await?;
        *conn = Some(fresh.clone());
        Ok(fresh)
    }

    async fn dial(&self, peer: &Peer, path: Path) -> Result<Connection> {
        let name = peer.node.to_string();
        let expected = self.inner.pins.pins_of(&peer.node);
        if expected.is_empty() {
            return Err(TransportError::Handshake {
                peer: name,
                reason: "no certificate fingerprint is pinned for this node; add it to the cluster first".into(),
            });
        }
        let seen = Seen::default();
        let verifier = PinnedServer {
            expected: expected.clone(),
            seen: seen.clone(),
        };
        let tls_err = |e: rustls::Error| TransportError::Identity {
            path: "<tls>".into(),
            detail: e.to_string(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(vec![self.inner.identity.cert()], self.inner.identity.key())
            .map_err(tls_err)?;
        tls.alpn_protocols = vec![match path {
            Path::Control => ALPN_CONTROL.to_vec(),
            Path::Bulk => ALPN_BULK.to_vec(),
        }];
        let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Identity {
            path: "<tls>".into(),
            detail: e.to_string(),
        })?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(transport_config(&self.inner.config, path == Path::Bulk));
        let connecting = self
            .inner
            .endpoint
            .connect_with(client, peer.addr, SERVER_NAME)
            .map_err(|e| TransportError::Connection {
                peer: name.clone(),
                detail: e.to_string(),
            })?;
        match connecting.await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                let presented = *seen.0.lock().unwrap_or_else(|p| p.into_inner());
                match presented {
                    Some(fp) if !expected.contains(&fp) => {
                        metrics::counter!("ironcore_transport_handshake_failures_total", "reason" => "fingerprint_mismatch")
                            .increment(1);
                        Err(TransportError::FingerprintMismatch {
                            expected: expected
                                .iter()
                                .map(|f| f.to_string())
                                .collect::<Vec<_>>()
                                .join(", "),
                            presented: fp,
                        })
                    }
                    _ => {
                        metrics::counter!("ironcore_transport_handshake_failures_total", "reason" => "refused").increment(1);
                        Err(TransportError::Handshake {
                            peer: name,
                            reason: e.to_string(),
                        })
                    }
                }
            }
        }
    }

    /// Sends `request` to `peer` on the control path and returns its answer (raw bytes).
    pub async fn call_raw(&self, peer: &Peer, request: &[u8]) -> Result<Vec<u8>> {
        self.call_on(peer, Path::Control, request).await
    }

    /// [`Self::call_raw`] with its own time limit instead of the configured RPC timeout: for
    /// a request whose answer waits on long work (a rate-limited chunk push). A peer that dies
    /// meanwhile still fails the call once its connection times out.
    pub async fn call_raw_within(
        &self,
        peer: &Peer,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>> {
        let out = tokio::time::timeout(timeout, self.call_inner(peer, Path::Control, request));
        out.await.map_err(|_| TransportError::Timeout {
            peer: peer.node.to_string(),
            millis: timeout.as_millis() as u64,
        })?
    }

    /// Sends `request` to `peer` on the bulk path and returns its answer (raw bytes): for
    /// requests that carry bulk data (up to [`MAX_BULK_PAYLOAD`] bytes each way, such as a
    /// segment of a Raft snapshot), so they never hold up control traffic. The handler is the
    /// same as for [`Self::call_raw`].
    pub async fn call_bulk_raw(&self, peer: &Peer, request: &[u8]) -> Result<Vec<u8>> {
        self.call_on(peer, Path::Bulk, request).await
    }

    async fn call_on(&self, peer: &Peer, path: Path, request: &[u8]) -> Result<Vec<u8>> {
        let name = peer.node.to_string();
        let timeout = self.inner.config.rpc_timeout;
        let started = Instant::now();
        let out = tokio::time::timeout(timeout, self.call_inner(peer, path, request)).await;
        let out = out.map_err(|_| TransportError::Timeout {
            peer: name,
            millis: timeout.as_millis() as u64,
        })?;
        metrics::histogram!("ironcore_transport_rpc_seconds")
            .record(started.elapsed().as_secs_f64());
        out
    }

    async fn call_inner(&self, peer: &Peer, path: Path, request: &[u8]) -> Result<Vec<u8>> {
        let name = peer.node.to_string();
        let max = match path {
            Path::Control => MAX_CONTROL_PAYLOAD,
            Path::Bulk => MAX_BULK_PAYLOAD,
        };
        if request.len() > max {
            return Err(TransportError::Protocol {
                peer: name,
                detail: format!(
                    "request of {} bytes exceeds the {max}-byte frame limit of the {path:?} path",
                    request.len()
                ),
            });
        }
        let (mut send, mut recv) = self.open_bi(peer, path).await?;
        let (cluster, epoch) = (self.inner.config.cluster, self.epoch());
        write_frame(&mut send, &name, Kind::Request, cluster, epoch, request).await?;
        let _ = send.finish();
        let (h, payload) = read_answer(
            &mut recv,
            &name,
            max,
            cluster,
            epoch,
            "stream ended without an answer",
        )
        .await?;
        match h.kind {
            Kind::Response => Ok(payload),
            Kind::Error => Err(TransportError::Remote {
                peer: name,
                reason: String::from_utf8_lossy(&payload).into_owned(),
            }),
            other => Err(TransportError::Protocol {
                peer: name,
                detail: format!("unexpected {other:?} frame in answer to a request"),
            }),
        }
    }

    /// A new bidirectional QUIC stream to `peer` on `path`.
    async fn open_bi(
        &self,
        peer: &Peer,
        path: Path,
    ) -> Result<(quinn::SendStream, quinn::RecvStream)> {
        let conn = self.connection(peer, path).await?;
        conn.open_bi()
            .await
            .map_err(|e| TransportError::Connection {
                peer: peer.node.to_string(),
                detail: e.to_string(),
            })
    }

    /// Opens an ordered message stream to `peer` on the control path: `opening` tells the
    /// peer's [`RpcHandler::handle_stream`] what it is for; then messages go both ways in
    /// order, each in its own frame, so many requests can be in flight at once.
    pub async fn open_stream(&self, peer: &Peer, opening: &[u8]) -> Result<crate::MessageStream> {
        let name = peer.node.to_string();
        let (mut send, recv) = self.open_bi(peer, Path::Control).await?;
        let (cluster, epoch) = (self.inner.config.cluster, self.epoch());
        write_frame(&mut send, &name, Kind::StreamOpen, cluster, epoch, opening).await?;
        Ok(crate::MessageStream::new(
            &name,
            cluster,
            epoch,
            MAX_CONTROL_PAYLOAD,
            send,
            recv,
        ))
    }

    /// Sends a typed request (postcard-encoded) and decodes the typed answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        peer: &Peer,
        request: &Req,
    ) -> Result<Resp> {
        let bytes = postcard::to_allocvec(request).map_err(|e| TransportError::Protocol {
            peer: peer.node.to_string(),
            detail: format!("cannot encode request: {e}"),
        })?;
        let answer = self.call_raw(peer, &bytes).await?;
        postcard::from_bytes(&answer).map_err(|e| TransportError::Protocol {
            peer: peer.node.to_string(),
            detail: format!("answer does not parse: {e}"),
        })
    }
}

fn peer_info(inner: &Inner, conn: &Connection) -> Option<PeerInfo> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    let fingerprint = fingerprint_of(certs.first()?);
    Some(PeerInfo {
        node: inner.pins.node_of(&fingerprint)?,
        fingerprint,
        addr: conn.remote_address(),
    })
}

fn alpn(conn: &Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// Background tasks hold only a weak reference: when the last [`Transport`] handle is dropped,
/// its state (and the chunk store it references) is freed and the endpoint closes.
async fn accept_loop(endpoint: Endpoint, weak: Weak<Inner>) {
    while let Some(incoming) = endpoint.accept().await {
        if weak.strong_count() == 0 {
            break;
        }
        let weak = weak.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    debug!(error = %e, "incoming connection failed its handshake");
                    return;
                }
            };
            let Some(peer) = weak.upgrade().and_then(|inner| peer_info(&inner, &conn)) else {
                conn.close(VarInt::from_u32(1), b"unknown peer");
                return;
            };
            let bulk = alpn(&conn).as_deref() == Some(ALPN_BULK);
            let span = tracing::info_span!("peer", node = %peer.node, fingerprint = %peer.fingerprint, bulk);
            loop {
                let (send, recv) = match conn.accept_bi().await {
                    Ok(s) => s,
                    Err(_) => return,
                };
                let Some(inner) = weak.upgrade() else {
                    conn.close(VarInt::from_u32(0), b"shutdown");
                    return;
                };
                let peer = peer.clone();
                tokio::spawn(
                    async move {
                        let result = serve_stream(&inner, &peer, bulk, send, recv).await;
                        if let Err(e) = result {
                            warn!(error = %e, "stream failed");
                        }
                    }
                    .instrument(span.clone()),
                );
            }
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.endpoint.close(VarInt::from_u32(0), b"shutdown");
    }
}

/// Serves one stream a peer opened: a request (on either path, with the path's frame limit)
/// or, on the bulk path, a chunk transfer.
async fn serve_stream(
    inner: &Inner,
    peer: &PeerInfo,
    bulk: bool,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> Result<()> {
    let name = peer.node.to_string();
    let (cluster, epoch) = (inner.config.cluster, inner.epoch.load(Ordering::SeqCst));
    let (max, kinds): (usize, &[Kind]) = if bulk {
        (MAX_BULK_PAYLOAD, &[Kind::Offer, Kind::Request])
    } else {
        (MAX_CONTROL_PAYLOAD, &[Kind::Request, Kind::StreamOpen])
    };
    let Some((kind, payload)) =
        read_opening(&mut send, &mut recv, &name, max, cluster, epoch, kinds).await?
    else {
        return Ok(());
    };
    if kind == Kind::Offer {
        return crate::chunks::serve_transfer(inner, peer, send, recv, payload).await;
    }
    if kind == Kind::StreamOpen {
        let stream = crate::MessageStream::new(&name, cluster, epoch, max, send, recv);
        let sender = stream.sender();
        match inner
            .handler
            .handle_stream(peer.clone(), payload, stream)
            .await
        {
            Ok(()) => sender.finish().await,
            Err(msg) => sender.fail(&msg).await?,
        }
        return Ok(());
    }
    let (kind, body) = match inner.handler.handle(peer.clone(), payload).await {
        Ok(b) => (Kind::Response, b),
        Err(msg) => (Kind::Error, msg.into_bytes()),
    };
    write_frame(&mut send, &name, kind, cluster, epoch, &body).await?;
    let _ = send.finish();
    Ok(())
}
