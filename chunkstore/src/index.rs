//! One view over both index kinds, for readers, GC and verification.

use ironcore_types::ChunkId;
use serde::{Deserialize, Serialize};

use crate::{DynamicIndex, FixedIndex, Result};

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

    /// The chunk holding byte `offset`.
    pub fn find(&self, offset: u64) -> Option<usize> {
        match self {
            ArchiveIndex::Dynamic(i) => i.find(offset),
            ArchiveIndex::Fixed(i) => i.find(offset),
        }
    }

    /// Every chunk id, in order, with repeats.
    pub fn chunk_ids(&self) -> Box<dyn Iterator<Item = ChunkId> + '_> {
        match self {
            ArchiveIndex::Dynamic(i) => Box::new(i.chunk_ids()),
            ArchiveIndex::Fixed(i) => Box::new(i.chunk_ids()),
        }
    }
}
