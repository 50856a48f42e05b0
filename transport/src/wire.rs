//! Reading and writing frames on QUIC streams, with the cluster checks every frame gets.

use quinn::{RecvStream, SendStream};

use crate::frame::{ClusterId, HEADER_LEN, Header, Kind, Refusal, decode_header, encode_header};
use crate::{Result, TransportError};

/// Writes one frame.
pub(crate) async fn write_frame(
    send: &mut SendStream,
    peer: &str,
    kind: Kind,
    cluster: ClusterId,
    epoch: u64,
    payload: &[u8],
) -> Result<()> {
    let header = encode_header(kind, cluster, epoch, payload.len());
    let io = |e: quinn::WriteError| TransportError::Connection {
        peer: peer.to_string(),
        detail: e.to_string(),
    };
    send.write_all(&header).await.map_err(io)?;
    send.write_all(payload).await.map_err(io)?;
    Ok(())
}

/// Writes a chunk frame (id, then the bytes) without copying the bytes.
pub(crate) async fn write_chunk_frame(
    send: &mut SendStream,
    peer: &str,
    cluster: ClusterId,
    epoch: u64,
    id: &[u8; 32],
    bytes: bytes::Bytes,
) -> Result<()> {
    let header = encode_header(Kind::ChunkData, cluster, epoch, 32 + bytes.len());
    let io = |e: quinn::WriteError| TransportError::Connection {
        peer: peer.to_string(),
        detail: e.to_string(),
    };
    let mut head = Vec::with_capacity(HEADER_LEN + 32);
    head.extend_from_slice(&header);
    head.extend_from_slice(id);
    send.write_chunk(bytes::Bytes::from(head))
        .await
        .map_err(io)?;
    send.write_chunk(bytes).await.map_err(io)?;
    Ok(())
}

/// Reads one frame header (`Ok(None)` at a clean end of stream).
pub(crate) async fn read_header(
    recv: &mut RecvStream,
    peer: &str,
    max: usize,
) -> Result<Option<Header>> {
    let mut header = [0u8; HEADER_LEN];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => {
            return Err(TransportError::Connection {
                peer: peer.to_string(),
                detail: e.to_string(),
            });
        }
    }
    decode_header(&header, max)
        .map(Some)
        .map_err(|detail| TransportError::Protocol {
            peer: peer.to_string(),
            detail,
        })
}

/// Reads exactly `n` payload bytes, copying quinn's received buffers once (no zero-fill).
pub(crate) async fn read_payload(recv: &mut RecvStream, peer: &str, n: usize) -> Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(n);
    while payload.len() < n {
        let chunk = recv
            .read_chunk(n - payload.len(), true)
            .await
            .map_err(|e| TransportError::Protocol {
                peer: peer.to_string(),
                detail: format!("payload of {n} bytes: {e}"),
            })?
            .ok_or_else(|| TransportError::Protocol {
                peer: peer.to_string(),
                detail: format!(
                    "stream ended {} bytes into a {n}-byte payload",
                    payload.len()
                ),
            })?;
        payload.extend_from_slice(&chunk.bytes);
    }
    Ok(payload)
}

/// Reads one frame whose payload may be at most `max` bytes. `Ok(None)` at a clean end of
/// stream before any header byte.
pub(crate) async fn read_frame(
    recv: &mut RecvStream,
    peer: &str,
    max: usize,
) -> Result<Option<(Header, Vec<u8>)>> {
    let Some(h) = read_header(recv, peer, max).await? else {
        return Ok(None);
    };
    Ok(Some((h, read_payload(recv, peer, h.len).await?)))
}

/// Reads the answer to something this node sent: a refusal (or an answer from another
/// cluster or epoch) becomes its error; a missing answer is a protocol error.
pub(crate) async fn read_answer(
    recv: &mut RecvStream,
    peer: &str,
    max: usize,
    cluster: ClusterId,
    epoch: u64,
    missing: &str,
) -> Result<(Header, Vec<u8>)> {
    let (h, payload) =
        read_frame(recv, peer, max)
            .await?
            .ok_or_else(|| TransportError::Protocol {
                peer: peer.to_string(),
                detail: missing.to_string(),
            })?;
    if h.kind == Kind::Refused {
        let refusal: Refusal =
            postcard::from_bytes(&payload).map_err(|e| TransportError::Protocol {
                peer: peer.to_string(),
                detail: format!("refusal does not parse: {e}"),
            })?;
        return Err(refusal_error(peer, refusal, cluster, epoch));
    }
    if let Some(refusal) = admit(&h, cluster, epoch) {
        return Err(refusal_error(peer, refusal, cluster, epoch));
    }
    Ok((h, payload))
}

/// Reads the first frame of a stream a peer opened and checks it: a frame from another cluster
/// or epoch is answered with a refusal (and `Ok(None)` is returned); a frame of a kind not in
/// `expected` is a protocol error.
pub(crate) async fn read_opening(
    send: &mut SendStream,
    recv: &mut RecvStream,
    peer: &str,
    max: usize,
    cluster: ClusterId,
    epoch: u64,
    expected: &[Kind],
) -> Result<Option<(Kind, Vec<u8>)>> {
    let Some((h, payload)) = read_frame(recv, peer, max).await? else {
        return Ok(None);
    };
    if let Some(refusal) = admit(&h, cluster, epoch) {
        tracing::warn!(peer, ?refusal, "refused a peer's stream");
        let bytes = postcard::to_allocvec(&refusal).map_err(|e| TransportError::Protocol {
            peer: peer.to_string(),
            detail: format!("cannot encode a refusal: {e}"),
        })?;
        write_frame(send, peer, Kind::Refused, cluster, epoch, &bytes).await?;
        let _ = send.finish();
        return Ok(None);
    }
    if !expected.contains(&h.kind) {
        return Err(TransportError::Protocol {
            peer: peer.to_string(),
            detail: format!("expected one of {expected:?}, got {:?}", h.kind),
        });
    }
    Ok(Some((h.kind, payload)))
}

/// Whether a frame from another node may be accepted here.
pub(crate) fn admit(h: &Header, cluster: ClusterId, epoch: u64) -> Option<Refusal> {
    if h.cluster != cluster {
        Some(Refusal::ForeignCluster { ours: cluster })
    } else if h.epoch < epoch {
        Some(Refusal::StaleEpoch { ours: epoch })
    } else if h.epoch > epoch {
        Some(Refusal::NewerEpoch { ours: epoch })
    } else {
        None
    }
}

/// The error a sender gets for a refusal.
pub(crate) fn refusal_error(
    peer: &str,
    refusal: Refusal,
    cluster: ClusterId,
    epoch: u64,
) -> TransportError {
    match refusal {
        Refusal::ForeignCluster { ours } => TransportError::ForeignCluster {
            peer: peer.to_string(),
            theirs: ours.to_string(),
            ours: cluster.to_string(),
        },
        // The peer is ahead: this node is the stale one.
        Refusal::StaleEpoch { ours: theirs } => TransportError::StaleEpoch {
            peer: format!("this node (as seen by {peer})"),
            theirs: epoch,
            ours: theirs,
        },
        Refusal::NewerEpoch { ours: theirs } => TransportError::StaleEpoch {
            peer: peer.to_string(),
            theirs,
            ours: epoch,
        },
    }
}
