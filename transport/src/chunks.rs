//! Chunk streams: sending a set of chunks to a peer, verified on arrival.
//!
//! On one bulk stream: the sender offers ids; the receiver answers with the ids it lacks (so a
//! transfer interrupted halfway and started again does not resend what arrived); the sender
//! streams each wanted chunk, paced by the transfer's and the link's bandwidth limits; the
//! receiver verifies every chunk with its store's check and acknowledges it good or bad; a bad
//! or lost chunk is resent, at most 3 attempts in all, then the transfer fails naming it.
//!
//! What a valid chunk is belongs to the caller ([`ChunkStore::accept`], which checks and stores
//! a chunk in one pass over its bytes): the transport only knows an id and bytes. Each transfer
//! names its scope ([`TransferOptions::scope`], the node's datastore), which both stores see
//! with every call, so two transfers of the same id into different datastores never mix.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ironcore_types::ChunkId;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::endpoint::{Inner, Path, Peer, PeerInfo, Transport};
use crate::frame::{Kind, MAX_BULK_PAYLOAD};
use crate::limit::RateLimiter;
use crate::wire::{
    read_answer, read_frame, read_header, read_payload, write_chunk_frame, write_frame,
};
use crate::{Result, TransportError};

/// How many attempts a chunk gets before the transfer fails.
pub const MAX_ATTEMPTS: u32 = 3;
/// Ids per offer; larger sets go in several rounds.
const OFFER_BATCH: usize = 65_536;

/// Where chunks come from and go to, on both ends of a transfer. `scope` is the transfer's
/// ([`TransferOptions::scope`]): which set of chunks it moves.
pub trait ChunkStore: Send + Sync + 'static {
    /// Whether the chunk is held here already.
    fn has(&self, scope: &str, id: &ChunkId) -> bool;
    /// Checks that `bytes` are a genuine copy of chunk `id` and, if so, stores them (one pass
    /// over the bytes): `Ok(true)` stored, `Ok(false)` not genuine (the sender resends it),
    /// `Err` the store failed.
    fn accept(
        &self,
        scope: &str,
        id: &ChunkId,
        bytes: Vec<u8>,
    ) -> std::result::Result<bool, String>;
    /// Reads a chunk to send (as `Bytes`, so a store that holds chunks in memory hands them
    /// over without a copy).
    fn get(&self, scope: &str, id: &ChunkId) -> std::result::Result<bytes::Bytes, String>;
}

/// A test hook that may alter a chunk's bytes on the wire: (id, bytes, attempt starting at 1).
pub type ChunkFault = Arc<dyn Fn(&ChunkId, &mut Vec<u8>, u32) + Send + Sync>;

/// Options of one transfer.
#[derive(Clone, Debug, Default)]
pub struct TransferOptions {
    /// Limit of this transfer in bytes per second (0 = unlimited); the link's limit applies
    /// too.
    pub limit_bytes: u64,
    /// Which chunks the transfer moves, as both ends' stores know them (the node's datastore
    /// name); at most [`MAX_SCOPE`] bytes.
    pub scope: String,
}

/// What a transfer did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransferReport {
    /// Chunks offered.
    pub offered: usize,
    /// Chunks the receiver lacked (and that were sent).
    pub wanted: usize,
    /// Chunk bytes sent, resends included.
    pub bytes: u64,
    /// Resends after a refused chunk.
    pub retries: u32,
}

/// The longest scope a transfer may name.
pub const MAX_SCOPE: usize = 255;

/// An offer: the scope's length (one byte), the scope, then the ids.
fn offer_payload(scope: &str, ids: &[ChunkId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + scope.len() + ids.len() * 32);
    out.push(scope.len() as u8);
    out.extend_from_slice(scope.as_bytes());
    out.extend(ids.iter().flat_map(|id| *id.as_bytes()));
    out
}

fn parse_offer(peer: &str, bytes: &[u8]) -> Result<(String, Vec<ChunkId>)> {
    let bad = |detail: String| TransportError::Protocol {
        peer: peer.to_string(),
        detail,
    };
    let (&len, rest) = bytes
        .split_first()
        .ok_or_else(|| bad("empty chunk offer".into()))?;
    let len = usize::from(len);
    if rest.len() < len {
        return Err(bad(format!("chunk offer cut inside its {len}-byte scope")));
    }
    let scope = std::str::from_utf8(&rest[..len])
        .map_err(|_| bad("chunk offer's scope is not UTF-8".into()))?
        .to_string();
    Ok((scope, parse_ids(peer, &rest[len..])?))
}

fn ids_payload(ids: &[ChunkId]) -> Vec<u8> {
    ids.iter().flat_map(|id| *id.as_bytes()).collect()
}

fn parse_ids(peer: &str, bytes: &[u8]) -> Result<Vec<ChunkId>> {
    if !bytes.len().is_multiple_of(32) {
        return Err(TransportError::Protocol {
            peer: peer.to_string(),
            detail: format!("id list of {} bytes is not a multiple of 32", bytes.len()),
        });
    }
    Ok(bytes.chunks_exact(32).map(id_at).collect())
}

fn id_at(b: &[u8]) -> ChunkId {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[..32]);
    ChunkId::from_bytes(a)
}

impl Transport {
    /// Chunk bytes this transport wrote to bulk streams since it started: every attempt,
    /// including resends and transfers cut off halfway (what the link carried).
    pub fn chunk_bytes_sent(&self) -> u64 {
        self.inner.chunk_bytes_sent.load(Ordering::Relaxed)
    }

    /// Replaces the fault hook applied to outgoing chunk bytes (tests only).
    pub fn set_chunk_fault(&self, fault: Option<ChunkFault>) {
        *self.inner.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
    }

    /// Sends the chunks `ids` (read from this node's store) to `peer`, which keeps those it
    /// lacks after verifying each.
    pub async fn send_chunks(
        &self,
        peer: &Peer,
        ids: &[ChunkId],
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        if options.scope.len() > MAX_SCOPE {
            return Err(TransportError::Remote {
                peer: "this node".into(),
                reason: format!(
                    "a transfer's scope is at most {MAX_SCOPE} bytes, not {}",
                    options.scope.len()
                ),
            });
        }
        let limits = [
            RateLimiter::bytes_per_sec(options.limit_bytes),
            self.link_limiter(peer.addr),
        ];
        let mut report = TransferReport::default();
        for batch in ids.chunks(OFFER_BATCH) {
            let r = self
                .send_batch(peer, &options.scope, batch, &limits)
                .await?;
            report.offered += r.offered;
            report.wanted += r.wanted;
            report.bytes += r.bytes;
            report.retries += r.retries;
        }
        Ok(report)
    }

    async fn send_batch(
        &self,
        peer: &Peer,
        scope: &str,
        ids: &[ChunkId],
        limits: &[RateLimiter; 2],
    ) -> Result<TransferReport> {
        let name = peer.node.to_string();
        let conn_err = |e: quinn::ConnectionError| TransportError::Connection {
            peer: peer.node.to_string(),
            detail: e.to_string(),
        };
        let conn = self.connection(peer, Path::Bulk).await?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(conn_err)?;
        let (cluster, epoch) = (self.inner.config.cluster, self.epoch());
        write_frame(
            &mut send,
            &name,
            Kind::Offer,
            cluster,
            epoch,
            &offer_payload(scope, ids),
        )
        .await?;
        let (h, payload) = read_answer(
            &mut recv,
            &name,
            MAX_BULK_PAYLOAD,
            cluster,
            epoch,
            "stream ended before the want list",
        )
        .await?;
        if h.kind != Kind::Want {
            return Err(TransportError::Protocol {
                peer: name,
                detail: format!("expected a want list, got {:?}", h.kind),
            });
        }
        let wanted = parse_ids(&name, &payload)?;
        let mut report = TransferReport {
            offered: ids.len(),
            wanted: wanted.len(),
            ..TransferReport::default()
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(ChunkId, u32)>();
        for id in &wanted {
            let _ = tx.send((*id, 1));
        }
        let store = self.inner.store.clone();
        let fault = self
            .inner
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let pending_total = wanted.len();
        let inner = self.inner.clone();
        let writer_name = name.clone();
        let scope = scope.to_string();
        let limits = limits.clone();
        // Writer: sends queued chunks (first attempts and resends) until the reader closes the
        // queue, then says Done.
        let writer = async move {
            let mut bytes_sent = 0u64;
            while let Some((id, attempt)) = rx.recv().await {
                let (source, scope) = (store.clone(), scope.clone());
                let mut bytes = tokio::task::spawn_blocking(move || source.get(&scope, &id))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
                    .map_err(|e| TransportError::Remote {
                        peer: "this node".into(),
                        reason: format!("cannot read chunk {id} to send: {e}"),
                    })?;
                if let Some(f) = &fault {
                    let mut altered = bytes.to_vec();
                    f(&id, &mut altered, attempt);
                    bytes = altered.into();
                }
                for l in &limits {
                    l.acquire(bytes.len() as u64).await;
                }
                let len = bytes.len() as u64;
                write_chunk_frame(
                    &mut send,
                    &writer_name,
                    cluster,
                    epoch,
                    id.as_bytes(),
                    bytes,
                )
                .await?;
                bytes_sent += len;
                inner.chunk_bytes_sent.fetch_add(len, Ordering::Relaxed);
                metrics::counter!("ironcore_transport_chunks_sent_total").increment(1);
                metrics::counter!("ironcore_transport_bytes_sent_total").increment(len);
            }
            write_frame(&mut send, &writer_name, Kind::Done, cluster, epoch, &[]).await?;
            let _ = send.finish();
            Ok::<u64, TransportError>(bytes_sent)
        };
        // Reader: collects acknowledgements and queues resends.
        let reader = async {
            let mut attempts: HashMap<ChunkId, u32> = HashMap::new();
            let mut pending = pending_total;
            let mut retries = 0u32;
            while pending > 0 {
                let (h, payload) = read_frame(&mut recv, &name, 64).await?.ok_or_else(|| {
                    TransportError::Connection {
                        peer: name.clone(),
                        detail: format!(
                            "transfer interrupted with {pending} chunks unacknowledged"
                        ),
                    }
                })?;
                if h.kind != Kind::Ack || payload.len() != 33 {
                    return Err(TransportError::Protocol {
                        peer: name.clone(),
                        detail: format!("expected an acknowledgement, got {:?}", h.kind),
                    });
                }
                let id = id_at(&payload);
                if payload[32] == 1 {
                    pending -= 1;
                    continue;
                }
                let n = attempts.entry(id).or_insert(1);
                *n += 1;
                if *n > MAX_ATTEMPTS {
                    return Err(TransportError::ChunkRejected {
                        peer: name.clone(),
                        id,
                        attempts: MAX_ATTEMPTS,
                    });
                }
                retries += 1;
                metrics::counter!("ironcore_transport_chunk_retries_total").increment(1);
                let _ = tx.send((id, *n));
            }
            drop(tx);
            Ok::<u32, TransportError>(retries)
        };
        let (bytes, retries) = tokio::try_join!(writer, reader)?;
        report.bytes = bytes;
        report.retries = retries;
        Ok(report)
    }
}

/// The receiving side of a transfer, from its offer (`payload`, already read and admitted).
pub(crate) async fn serve_transfer(
    inner: &Inner,
    peer: &PeerInfo,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    payload: Vec<u8>,
) -> Result<()> {
    let name = peer.node.to_string();
    let (cluster, epoch) = (inner.config.cluster, inner.epoch.load(Ordering::SeqCst));
    let (scope, offered) = parse_offer(&name, &payload)?;
    let store = inner.store.clone();
    let lookup = scope.clone();
    let wanted: Vec<ChunkId> = tokio::task::spawn_blocking(move || {
        offered
            .into_iter()
            .filter(|id| !store.has(&lookup, id))
            .collect()
    })
    .await
    .map_err(|e| TransportError::Remote {
        peer: "this node".into(),
        reason: format!("chunk lookup failed: {e}"),
    })?;
    write_frame(
        &mut send,
        &name,
        Kind::Want,
        cluster,
        epoch,
        &ids_payload(&wanted),
    )
    .await?;
    // The reader hands chunks to the verifier through a small queue, so reading the next chunk
    // overlaps verifying and storing this one; the store's (blocking) calls run off the async
    // threads that drive the connections.
    let (tx, mut rx) = mpsc::channel::<Option<(ChunkId, Vec<u8>)>>(4);
    let store = inner.store.clone();
    let slots = inner.verify_slots.clone();
    let ack_name = name.clone();
    let acker = async move {
        while let Some(Some((id, bytes))) = rx.recv().await {
            let (store, scope) = (store.clone(), scope.clone());
            let len = bytes.len() as u64;
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| TransportError::Remote {
                    peer: "this node".into(),
                    reason: format!("verification stopped: {e}"),
                })?;
            let ok = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                store.accept(&scope, &id, bytes)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|e| TransportError::Remote {
                peer: "this node".into(),
                reason: format!("cannot store chunk {id}: {e}"),
            })?;
            if ok {
                metrics::counter!("ironcore_transport_chunks_received_total").increment(1);
                metrics::counter!("ironcore_transport_bytes_received_total").increment(len);
            } else {
                metrics::counter!("ironcore_transport_chunks_refused_total").increment(1);
                tracing::warn!(peer = %ack_name, chunk = %id, "refused a chunk that failed verification");
            }
            let mut ack = id.as_bytes().to_vec();
            ack.push(u8::from(ok));
            write_frame(&mut send, &ack_name, Kind::Ack, cluster, epoch, &ack).await?;
        }
        let _ = send.finish();
        Ok::<(), TransportError>(())
    };
    let reader = async move {
        loop {
            let Some(h) = read_header(&mut recv, &name, MAX_BULK_PAYLOAD).await? else {
                break;
            };
            match h.kind {
                Kind::Done => break,
                Kind::ChunkData if h.len >= 32 => {
                    let head = read_payload(&mut recv, &name, 32).await?;
                    let id = id_at(&head);
                    let bytes = read_payload(&mut recv, &name, h.len - 32).await?;
                    if tx.send(Some((id, bytes))).await.is_err() {
                        break; // the acker failed; its error is reported
                    }
                }
                other => {
                    return Err(TransportError::Protocol {
                        peer: name,
                        detail: format!("unexpected {other:?} frame in a transfer"),
                    });
                }
            }
        }
        let _ = tx.send(None).await;
        Ok(())
    };
    tokio::try_join!(acker, reader)?;
    Ok(())
}
