//! The fixed index: the chunks of a disk image cut into equal pieces (4 MiB by default).
//!
//! ```text
//! offset size field
//!      0    4 magic "ICFI"
//!      4    2 version (1, u16 LE)
//!      6    2 reserved, zero
//!      8    8 image size in bytes (u64 LE)
//!     16    4 chunk size (u32 LE, 4 KiB..=16 MiB)
//!     20    4 reserved, zero
//!     24   32 checksum: SHA-256 of header bytes 0..24 and the entry bytes
//!     56 32*n chunk ids; n = ceil(size / chunk size); the last chunk may be short
//! ```

use ironcore_types::ChunkId;

use crate::dynamic_index::{checksum, u64_at};
use crate::envelope::MAX_CHUNK_SIZE;
use crate::{Error, Result};

const MAGIC: [u8; 4] = *b"ICFI";
const VERSION: u16 = 1;
const HEADER: usize = 56;

/// The default chunk size for images.
pub const DEFAULT_FIXED_CHUNK: u32 = 4 << 20;

/// The chunks of one image, all of `chunk_size` bytes except possibly the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedIndex {
    size: u64,
    chunk_size: u32,
    ids: Vec<ChunkId>,
}

impl FixedIndex {
    /// An empty index for chunks of `chunk_size` bytes.
    pub fn new(chunk_size: u32) -> Result<Self> {
        check_chunk_size(chunk_size)?;
        Ok(Self {
            size: 0,
            chunk_size,
            ids: Vec::new(),
        })
    }

    /// Appends the next chunk. Every chunk but the last must be exactly `chunk_size` long.
    pub fn push(&mut self, len: u64, id: ChunkId) -> Result<()> {
        if !self.size.is_multiple_of(u64::from(self.chunk_size))
            || len == 0
            || len > u64::from(self.chunk_size)
        {
            return Err(Error::InvalidInput {
                what: "fixed chunk",
                detail: format!(
                    "chunk of {len} bytes after {} bytes breaks the fixed layout",
                    self.size
                ),
            });
        }
        self.size += len;
        self.ids.push(id);
        Ok(())
    }

    /// The image size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// How many chunks.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the image is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Chunk `i` as (start offset, end offset, id).
    pub fn chunk(&self, i: usize) -> Option<(u64, u64, ChunkId)> {
        let id = *self.ids.get(i)?;
        let start = i as u64 * u64::from(self.chunk_size);
        Some((
            start,
            (start + u64::from(self.chunk_size)).min(self.size),
            id,
        ))
    }

    /// The index of the chunk holding byte `offset`.
    pub fn find(&self, offset: u64) -> Option<usize> {
        (offset < self.size).then(|| (offset / u64::from(self.chunk_size)) as usize)
    }

    /// Every chunk id in image order.
    pub fn chunk_ids(&self) -> impl Iterator<Item = ChunkId> + '_ {
        self.ids.iter().copied()
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let body: Vec<u8> = self.ids.iter().flat_map(|id| *id.as_bytes()).collect();
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let sum = checksum(&out[..24], &body);
        out.extend_from_slice(&sum);
        out.extend_from_slice(&body);
        out
    }

    /// Parses stored bytes, checking magic, version, sizes and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "fixed index";
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
        if version != VERSION || bytes[6..8] != [0, 0] || bytes[20..24] != [0; 4] {
            return Err(Error::corrupt(
                WHAT,
                format!("version {version} or reserved bytes not supported"),
            ));
        }
        let size = u64_at(bytes, 8);
        let chunk_size = u32::from_le_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        check_chunk_size(chunk_size)
            .map_err(|_| Error::corrupt(WHAT, format!("chunk size {chunk_size}")))?;
        let body = &bytes[HEADER..];
        let expected = size.div_ceil(u64::from(chunk_size));
        if !body.len().is_multiple_of(32) || (body.len() / 32) as u64 != expected {
            return Err(Error::corrupt(
                WHAT,
                format!(
                    "an image of {size} bytes needs {expected} entries, {} bytes follow",
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
        let ids = body
            .chunks_exact(32)
            .map(|c| {
                let mut a = [0u8; 32];
                a.copy_from_slice(c);
                ChunkId::from_bytes(a)
            })
            .collect();
        Ok(Self {
            size,
            chunk_size,
            ids,
        })
    }
}

fn check_chunk_size(chunk_size: u32) -> Result<()> {
    if !(4096..=MAX_CHUNK_SIZE as u32).contains(&chunk_size) {
        return Err(Error::InvalidInput {
            what: "chunk size",
            detail: format!("{chunk_size} bytes; use 4 KiB to 16 MiB"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_a_short_last_chunk() {
        let mut idx = FixedIndex::new(4096).unwrap();
        idx.push(4096, ChunkId::from_bytes([1; 32])).unwrap();
        idx.push(100, ChunkId::from_bytes([2; 32])).unwrap();
        assert!(idx.push(10, ChunkId::from_bytes([3; 32])).is_err());
        let back = FixedIndex::decode(&idx.encode()).unwrap();
        assert_eq!(back, idx);
        assert_eq!(
            back.chunk(1),
            Some((4096, 4196, ChunkId::from_bytes([2; 32])))
        );
        assert_eq!(back.find(4195), Some(1));
        assert_eq!(back.find(4196), None);
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let mut idx = FixedIndex::new(4096).unwrap();
        idx.push(4096, ChunkId::from_bytes([1; 32])).unwrap();
        let bytes = idx.encode();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x04;
            assert!(FixedIndex::decode(&bad).is_err(), "byte {i} accepted");
        }
    }
}
