//! The dynamic index: the chunks of a content-defined stream (file archives), with offsets.
//!
//! ```text
//! offset size field
//!      0    4 magic "ICDI"
//!      4    2 version (2, u16 LE; 1 is still read)
//!      6    2 reserved, zero
//!      8    8 entry count (u64 LE)
//!     16    8 stream size (u64 LE) = end offset of the last entry
//!     24   32 checksum: SHA-256 of header bytes 0..24 and the entry bytes
//!     56 72*n entries: end offset (u64 LE, strictly increasing), chunk id (32 bytes) and the
//!             chunk's quick hash (32 bytes, all zero if none; version 1 entries end before it)
//! ```

use ironcore_types::ChunkId;
use sha2::{Digest, Sha256};

use crate::quick_hash::QuickHash;
use crate::{Error, Result};

const MAGIC: [u8; 4] = *b"ICDI";
const VERSION: u16 = 2;
const HEADER: usize = 56;
/// Bytes of an entry of `version`.
const fn entry_len(version: u16) -> usize {
    if version == 1 { 40 } else { 72 }
}

/// One chunk of a stream as an index lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexChunk {
    /// Its length in bytes.
    pub len: u64,
    /// Its id.
    pub id: ChunkId,
    /// Its quick hash, if the writer recorded one.
    pub quick: Option<QuickHash>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    end: u64,
    id: ChunkId,
    quick: Option<QuickHash>,
}

/// The ordered chunks of one stream, each with the offset where it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicIndex {
    entries: Vec<Entry>,
}

impl DynamicIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a chunk of `len` bytes without a quick hash.
    pub fn push(&mut self, len: u64, id: ChunkId) {
        self.push_chunk(IndexChunk {
            len,
            id,
            quick: None,
        });
    }

    /// Appends a chunk.
    pub fn push_chunk(&mut self, c: IndexChunk) {
        let end = self.size() + c.len;
        self.entries.push(Entry {
            end,
            id: c.id,
            quick: c.quick,
        });
    }

    /// The stream's total size.
    pub fn size(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.end)
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
        let e = self.entries.get(i)?;
        Some((self.start(i), e.end, e.id))
    }

    /// Chunk `i` with its quick hash.
    pub fn index_chunk(&self, i: usize) -> Option<IndexChunk> {
        let e = self.entries.get(i)?;
        Some(IndexChunk {
            len: e.end - self.start(i),
            id: e.id,
            quick: e.quick,
        })
    }

    fn start(&self, i: usize) -> u64 {
        if i == 0 { 0 } else { self.entries[i - 1].end }
    }

    /// The index of the chunk holding byte `offset`, if it is inside the stream.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|e| e.end <= offset);
        (i < self.entries.len()).then_some(i)
    }

    /// Every chunk id, in stream order (with repeats).
    pub fn chunk_ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.entries.iter().map(|e| e.id)
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.entries.len() * entry_len(VERSION));
        for e in &self.entries {
            body.extend_from_slice(&e.end.to_le_bytes());
            body.extend_from_slice(e.id.as_bytes());
            body.extend_from_slice(&QuickHash::stored(e.quick));
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
        if !(1..=VERSION).contains(&version) {
            return Err(Error::corrupt(
                WHAT,
                format!("version {version} is not supported"),
            ));
        }
        let entry = entry_len(version);
        let count = u64_at(bytes, 8);
        let size = u64_at(bytes, 16);
        let body = &bytes[HEADER..];
        if !body.len().is_multiple_of(entry) || (body.len() / entry) as u64 != count {
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
        let mut entries = Vec::with_capacity(body.len() / entry);
        let mut last = 0u64;
        for e in body.chunks_exact(entry) {
            let end = u64_at(e, 0);
            if end <= last {
                return Err(Error::corrupt(
                    WHAT,
                    format!("offset {end} does not increase past {last}"),
                ));
            }
            last = end;
            let quick = match e.get(40..72) {
                Some(q) => QuickHash::from_stored(q.try_into().unwrap_or([0; 32])),
                None => None,
            };
            entries.push(Entry {
                end,
                id: ChunkId::from_bytes(e[8..40].try_into().unwrap_or([0; 32])),
                quick,
            });
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
        idx.push_chunk(IndexChunk {
            len: 50,
            id: ChunkId::from_bytes([2; 32]),
            quick: Some(QuickHash::of(b"two", None)),
        });
        idx.push(7, ChunkId::from_bytes([1; 32]));
        idx
    }

    #[test]
    fn quick_hashes_round_trip_and_version_1_reads_without_them() {
        let idx = sample();
        let back = DynamicIndex::decode(&idx.encode()).unwrap();
        assert_eq!(back.index_chunk(0).unwrap().quick, None);
        assert_eq!(
            back.index_chunk(1).unwrap(),
            IndexChunk {
                len: 50,
                id: ChunkId::from_bytes([2; 32]),
                quick: Some(QuickHash::of(b"two", None))
            }
        );
        // The same chunks as version 1 wrote them: 40-byte entries, no quick hashes.
        let mut v1 = idx.encode()[..24].to_vec();
        v1[4] = 1;
        let mut body = Vec::new();
        for i in 0..idx.len() {
            let (_, end, id) = idx.chunk(i).unwrap();
            body.extend_from_slice(&end.to_le_bytes());
            body.extend_from_slice(id.as_bytes());
        }
        let sum = checksum(&v1, &body);
        v1.extend_from_slice(&sum);
        v1.extend_from_slice(&body);
        let old = DynamicIndex::decode(&v1).unwrap();
        assert_eq!(old.len(), 3);
        assert_eq!(old.chunk(1), idx.chunk(1));
        assert!((0..3).all(|i| old.index_chunk(i).unwrap().quick.is_none()));
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
