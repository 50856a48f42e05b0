//! One view over both index kinds, for readers, GC and verification.

use ironcore_types::ChunkId;
use serde::{Deserialize, Serialize};

use crate::{DynamicIndex, FixedIndex, IndexChunk, Result};

/// How an archive was chunked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndexKind {
    /// Content-defined chunks (FastCDC) of a stream: file archives.
    Dynamic,
    /// Equal chunks of an image: disk images.
    Fixed,
}

/// A decoded index of either kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveIndex {
    /// See [`DynamicIndex`].
    Dynamic(DynamicIndex),
    /// See [`FixedIndex`].
    Fixed(FixedIndex),
}

impl ArchiveIndex {
    /// Decodes stored bytes of the given kind.
    pub fn decode(kind: IndexKind, bytes: &[u8]) -> Result<Self> {
        Ok(match kind {
            IndexKind::Dynamic => ArchiveIndex::Dynamic(DynamicIndex::decode(bytes)?),
            IndexKind::Fixed => ArchiveIndex::Fixed(FixedIndex::decode(bytes)?),
        })
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            ArchiveIndex::Dynamic(i) => i.encode(),
            ArchiveIndex::Fixed(i) => i.encode(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> IndexKind {
        match self {
            ArchiveIndex::Dynamic(_) => IndexKind::Dynamic,
            ArchiveIndex::Fixed(_) => IndexKind::Fixed,
        }
    }

    /// The archive's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            ArchiveIndex::Dynamic(i) => i.size(),
            ArchiveIndex::Fixed(i) => i.size(),
        }
    }

    /// How many chunks.
    pub fn len(&self) -> usize {
        match self {
            ArchiveIndex::Dynamic(i) => i.len(),
            ArchiveIndex::Fixed(i) => i.len(),
        }
    }

    /// Whether the archive is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Chunk `i` as (start, end, id).
    pub fn chunk(&self, i: usize) -> Option<(u64, u64, ChunkId)> {
        match self {
            ArchiveIndex::Dynamic(idx) => idx.chunk(i),
            ArchiveIndex::Fixed(idx) => idx.chunk(i),
        }
    }

    /// Chunk `i` with its quick hash (a fixed index records none).
    pub fn index_chunk(&self, i: usize) -> Option<IndexChunk> {
        match self {
            ArchiveIndex::Dynamic(idx) => idx.index_chunk(i),
            ArchiveIndex::Fixed(idx) => idx.chunk(i).map(|(start, end, id)| IndexChunk {
                len: end - start,
                id,
                quick: None,
            }),
        }
    }

    /// The chunk holding byte `offset`.
    pub fn find(&self, offset: u64) -> Option<usize> {
        match self {
            ArchiveIndex::Dynamic(i) => i.find(offset),
            ArchiveIndex::Fixed(i) => i.find(offset),
        }
    }

    /// The same layout with every chunk id replaced by `rename(id)` — what re-encrypting an
    /// archive under another key needs (chunk boundaries stay, ids change). Quick hashes are
    /// dropped: they were taken under the old key.
    pub fn with_ids(&self, mut rename: impl FnMut(&ChunkId) -> Result<ChunkId>) -> Result<Self> {
        Ok(match self {
            ArchiveIndex::Dynamic(idx) => {
                let mut out = DynamicIndex::new();
                for i in 0..idx.len() {
                    let (start, end, id) = idx.chunk(i).expect("i < len");
                    out.push(end - start, rename(&id)?);
                }
                ArchiveIndex::Dynamic(out)
            }
            ArchiveIndex::Fixed(idx) => {
                let mut out = FixedIndex::new(idx.chunk_size())?;
                for i in 0..idx.len() {
                    let (start, end, id) = idx.chunk(i).expect("i < len");
                    out.push(end - start, rename(&id)?)?;
                }
                ArchiveIndex::Fixed(out)
            }
        })
    }

    /// Every chunk id, in order, with repeats.
    pub fn chunk_ids(&self) -> Box<dyn Iterator<Item = ChunkId> + '_> {
        match self {
            ArchiveIndex::Dynamic(i) => Box::new(i.chunk_ids()),
            ArchiveIndex::Fixed(i) => Box::new(i.chunk_ids()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[test]
    fn with_ids_keeps_the_layout_and_renames_every_chunk() {
        let mut dynamic = DynamicIndex::new();
        for (len, n) in [(100, 1), (50, 2), (100, 1)] {
            dynamic.push(len, id(n));
        }
        let mut fixed = FixedIndex::new(4096).unwrap();
        for (len, n) in [(4096, 3), (10, 4)] {
            fixed.push(len, id(n)).unwrap();
        }
        for index in [ArchiveIndex::Dynamic(dynamic), ArchiveIndex::Fixed(fixed)] {
            let renamed = index
                .with_ids(|old| Ok(id(old.as_bytes()[0] + 10)))
                .unwrap();
            assert_eq!(renamed.kind(), index.kind());
            assert_eq!(renamed.len(), index.len());
            for i in 0..index.len() {
                let (s, e, old) = index.chunk(i).unwrap();
                assert_eq!(
                    renamed.chunk(i).unwrap(),
                    (s, e, id(old.as_bytes()[0] + 10))
                );
            }
            let failed = index.with_ids(|_| {
                Err(crate::Error::InvalidInput {
                    what: "chunk",
                    detail: "refused".into(),
                })
            });
            assert!(failed.is_err());
        }
    }
}
