//! The dynamic index: the chunks of a content-defined stream (file archives), with offsets.
//!
//! ```text
//! offset size field
//!      0    4 magic "ICDI"
//!      4    2 version (1, u16 LE)
//!      6    2 reserved, zero
//!      8    8 entry count (u64 LE)
//!     16    8 stream size (u64 LE) = end offset of the last entry
//!     24   32 checksum: SHA-256 of header bytes 0..24 and the entry bytes
//!     56 40*n entries: end offset (u64 LE, strictly increasing) and chunk id (32 bytes)
//! ```

use ironcore_types::ChunkId;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

const MAGIC: [u8; 4] = *b"ICDI";
const VERSION: u16 = 1;
const HEADER: usize = 56;
const ENTRY: usize = 40;

/// The ordered chunks of one stream, each with the offset where it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicIndex {
    entries: Vec<(u64, ChunkId)>,
}

impl DynamicIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of `len` bytes.
    pub fn push(&mut self, len: u64, id: ChunkId) {
        let end = self.size() + len;
        self.entries.push((end, id));
    }

    /// The stream's total size.
    pub fn size(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.0)
    }

    /// How many chunks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the stream is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Chunk `i` as (start offset, end offset, id).
    pub fn chunk(&self, i: usize) -> Option<(u64, u64, ChunkId)> {
        let (end, id) = *self.entries.get(i)?;
        let start = if i == 0 { 0 } else { self.entries[i - 1].0 };
        Some((start, end, id))
    }

    /// The index of the chunk holding byte `offset`, if it is inside the stream.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|e| e.0 <= offset);
        (i < self.entries.len()).then_some(i)
    }

    /// Every chunk id, in stream order (with repeats).
    pub fn chunk_ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.entries.iter().map(|e| e.1)
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.entries.len() * ENTRY);
        for (end, id) in &self.entries {
            body.extend_from_slice(&end.to_le_bytes());
            body.extend_from_slice(id.as_bytes());
        }
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.size().to_le_bytes());
        let sum = checksum(&out[..24], &body);
        out.extend_from_slice(&sum);
        out.extend_from_slice(&body);
        out
    }

    /// Parses stored bytes, checking magic, version, length, checksum and offset order.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "dynamic index";
        if bytes.len() < HEADER {
            return Err(Error::corrupt(
                WHAT,
                format!("{} bytes is shorter than its header", bytes.len()),
            ));
        }
        if bytes[0..4] != MAGIC {
            return Err(Error::corrupt(WHAT, "bad magic"));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(Error::corrupt(
                WHAT,
                format!("version {version} is not supported"),
            ));
        }
        let count = u64_at(bytes, 8);
        let size = u64_at(bytes, 16);
        let body = &bytes[HEADER..];
        if !body.len().is_multiple_of(ENTRY) || (body.len() / ENTRY) as u64 != count {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "header says {count} entries but {} bytes of entries follow",
                    body.len()
                ),
            ));
        }
        if checksum(&bytes[..24], body)[..] != bytes[24..56] {
            return Err(Error::corrupt(
                WHAT,
                "checksum over the entries does not match",
            ));
        }
        let mut entries = Vec::with_capacity(body.len() / ENTRY);
        let mut last = 0u64;
        for e in body.chunks_exact(ENTRY) {
            let end = u64_at(e, 0);
            if end <= last {
                return Err(Error::corrupt(
                    WHAT,
                    format!("offset {end} does not increase past {last}"),
                ));
            }
            last = end;
            let mut id = [0u8; 32];
            id.copy_from_slice(&e[8..40]);
            entries.push((end, ChunkId::from_bytes(id)));
        }
        if last != size {
            return Err(Error::corrupt(
                WHAT,
                format!("entries end at {last} but the header says {size}"),
            ));
        }
        Ok(Self { entries })
    }
}

/// SHA-256 over the fixed header fields and the entries, so no header byte can change unseen.
pub(crate) fn checksum(header: &[u8], body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(header);
    h.update(body);
    h.finalize().into()
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DynamicIndex {
        let mut idx = DynamicIndex::new();
        idx.push(100, ChunkId::from_bytes([1; 32]));
        idx.push(50, ChunkId::from_bytes([2; 32]));
        idx.push(7, ChunkId::from_bytes([1; 32]));
        idx
    }

    #[test]
    fn round_trips_and_finds_offsets() {
        let idx = sample();
        let back = DynamicIndex::decode(&idx.encode()).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.size(), 157);
        assert_eq!(back.find(0), Some(0));
        assert_eq!(back.find(99), Some(0));
        assert_eq!(back.find(100), Some(1));
        assert_eq!(back.find(156), Some(2));
        assert_eq!(back.find(157), None);
        assert_eq!(
            back.chunk(1),
            Some((100, 150, ChunkId::from_bytes([2; 32])))
        );
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert!(DynamicIndex::decode(&bad).is_err(), "byte {i} accepted");
        }
        assert!(DynamicIndex::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
