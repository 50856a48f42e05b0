//! The versioned envelope of every message between nodes.
//!
//! ```text
//! offset size field
//!      0    4 magic "ICRP"
//!      4    1 protocol version (2: chunk offers name their scope)
//!      5    1 kind (see `Kind`)
//!      6    2 reserved, zero
//!      8   16 cluster id
//!     24    8 cluster epoch (u64 LE)
//!     32    4 payload length (u32 LE)
//!     36    n payload
//! ```
//!
//! The payload limit depends on the path: control frames are small, chunk frames carry up to a
//! chunk plus its id. A frame over the limit, with bad magic, an unknown version or kind, or
//! reserved bits set is refused before its payload is read, so a peer cannot make this node
//! allocate more than the limit.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 2;
/// Bytes of a frame header.
pub const HEADER_LEN: usize = 36;
/// Payload limit of control frames (RPC).
pub const MAX_CONTROL_PAYLOAD: usize = 4 << 20;
/// Payload limit of bulk frames (a chunk of up to 16 MiB plus envelope and id).
pub const MAX_BULK_PAYLOAD: usize = (16 << 20) + 4096;

const MAGIC: [u8; 4] = *b"ICRP";

/// The cluster a message belongs to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClusterId(pub [u8; 16]);

impl ClusterId {
    /// A new random cluster id.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterId({self})")
    }
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// An RPC request.
    Request = 1,
    /// An RPC response.
    Response = 2,
    /// A refusal: the peer's cluster id or epoch is not acceptable (payload: `Refusal`).
    Refused = 3,
    /// Chunk ids offered by a sender.
    Offer = 4,
    /// The subset of offered ids the receiver lacks.
    Want = 5,
    /// One chunk: 32-byte id then its bytes.
    ChunkData = 6,
    /// The receiver's verdict on one chunk.
    Ack = 7,
    /// The sender has nothing more.
    Done = 8,
    /// An error answer to a request (payload: UTF-8 message).
    Error = 9,
    /// Opens a message stream (payload: what the stream is for); requests and responses follow
    /// in order (see [`crate::MessageStream`]).
    StreamOpen = 10,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Kind::Request,
            2 => Kind::Response,
            3 => Kind::Refused,
            4 => Kind::Offer,
            5 => Kind::Want,
            6 => Kind::ChunkData,
            7 => Kind::Ack,
            8 => Kind::Done,
            9 => Kind::Error,
            10 => Kind::StreamOpen,
            _ => return None,
        })
    }
}

/// Why a peer refused a frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Another cluster.
    ForeignCluster {
        /// The refusing node's cluster.
        ours: ClusterId,
    },
    /// The sender is at an older epoch than the refusing node.
    StaleEpoch {
        /// The refusing node's epoch.
        ours: u64,
    },
    /// The refusing node is at an older epoch than the sender (it is the stale one).
    NewerEpoch {
        /// The refusing node's epoch.
        ours: u64,
    },
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// What the frame carries.
    pub kind: Kind,
    /// The sender's cluster.
    pub cluster: ClusterId,
    /// The sender's epoch.
    pub epoch: u64,
    /// Payload bytes that follow.
    pub len: usize,
}

/// Encodes a header for a payload of `len` bytes.
pub fn encode_header(kind: Kind, cluster: ClusterId, epoch: u64, len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4] = PROTOCOL_VERSION;
    h[5] = kind as u8;
    h[8..24].copy_from_slice(&cluster.0);
    h[24..32].copy_from_slice(&epoch.to_le_bytes());
    h[32..36].copy_from_slice(&(len as u32).to_le_bytes());
    h
}

/// Parses a header, refusing anything malformed or over `max_payload`.
pub fn decode_header(h: &[u8], max_payload: usize) -> Result<Header, String> {
    if h.len() < HEADER_LEN {
        return Err(format!("frame header of {} bytes is truncated", h.len()));
    }
    if h[0..4] != MAGIC {
        return Err("bad magic: not an Ironcore frame".into());
    }
    if h[4] != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} is not supported (this node speaks {PROTOCOL_VERSION}); upgrade the older node",
            h[4]
        ));
    }
    let kind = Kind::from_u8(h[5]).ok_or_else(|| format!("unknown frame kind {}", h[5]))?;
    if h[6..8] != [0, 0] {
        return Err("reserved header bits are set".into());
    }
    let mut cluster = [0u8; 16];
    cluster.copy_from_slice(&h[8..24]);
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&h[24..32]);
    let len = u32::from_le_bytes([h[32], h[33], h[34], h[35]]) as usize;
    if len > max_payload {
        return Err(format!(
            "frame of {len} bytes exceeds the {max_payload}-byte limit"
        ));
    }
    Ok(Header {
        kind,
        cluster: ClusterId(cluster),
        epoch: u64::from_le_bytes(epoch),
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_bad_input() {
        let c = ClusterId([9; 16]);
        let h = encode_header(Kind::Offer, c, 42, 1000);
        let d = decode_header(&h, 2000).unwrap();
        assert_eq!(
            (d.kind, d.cluster, d.epoch, d.len),
            (Kind::Offer, c, 42, 1000)
        );
        assert!(decode_header(&h, 999).unwrap_err().contains("exceeds"));
        assert!(decode_header(&h[..10], 2000).is_err());
        for (i, v) in [
            (0, b'X'),
            (4, PROTOCOL_VERSION + 1),
            (4, 1),
            (5, 77),
            (6, 1),
        ] {
            let mut bad = h;
            bad[i] = v;
            assert!(decode_header(&bad, 2000).is_err(), "byte {i}");
        }
    }
}
