//! Cutting a re-read stream along the previous snapshot's chunks.
//!
//! An incremental backup re-reads changed files, and most of a changed file is usually as it
//! was: content-defined cutting finds the previous chunks again, but it must scan every byte to
//! do so and every chunk must be hashed for its id. With a guide, the writer takes the quick
//! hash ([`QuickHash`]) of the bytes where the chunk that followed the last one in the previous
//! stream would be; if it is that chunk's, the bytes are that chunk: its id is known and the
//! scan is skipped. Otherwise the writer cuts by content from there, and the first chunk it
//! cuts whose quick hash the previous stream had puts it back on the guide. Any cut is a valid
//! cut (an index lists chunk lengths), so a wrong guess costs one quick hash and never changes
//! what is stored.

use std::collections::HashMap;

use crate::dynamic_index::IndexChunk;
use crate::quick_hash::QuickHash;

/// The previous stream's chunks, in order, found by quick hash.
#[derive(Debug, Default)]
pub struct CutGuide {
    chunks: Vec<IndexChunk>,
    first_at: HashMap<QuickHash, usize>,
}

impl CutGuide {
    /// A guide along `chunks`: the previous stream's chunks in order. Chunks without a quick
    /// hash (an index written before they were recorded) are never expected.
    pub fn new(chunks: impl IntoIterator<Item = IndexChunk>) -> Self {
        let chunks: Vec<IndexChunk> = chunks.into_iter().collect();
        let mut first_at = HashMap::with_capacity(chunks.len());
        for (i, c) in chunks.iter().enumerate() {
            if let Some(q) = c.quick {
                first_at.entry(q).or_insert(i);
            }
        }
        Self { chunks, first_at }
    }

    /// The chunk that followed the chunk with quick hash `quick` in the previous stream (after
    /// its first occurrence), if any and if it has a quick hash. An empty chunk (which no
    /// writer cuts, but a damaged index may list) is never expected: cutting it would not move
    /// the cutter on.
    pub fn after(&self, quick: &QuickHash) -> Option<IndexChunk> {
        let i = *self.first_at.get(quick)?;
        self.chunks
            .get(i + 1)
            .copied()
            .filter(|c| c.len > 0 && c.quick.is_some())
    }
}

#[cfg(test)]
mod tests {
    use ironcore_types::ChunkId;

    use super::*;

    fn chunk(len: u64, b: u8) -> IndexChunk {
        IndexChunk {
            len,
            id: ChunkId::from_bytes([b; 32]),
            quick: Some(QuickHash::of(&[b], None)),
        }
    }

    fn q(b: u8) -> QuickHash {
        QuickHash::of(&[b], None)
    }

    #[test]
    fn the_next_chunk_follows_the_first_occurrence() {
        let g = CutGuide::new([chunk(10, 1), chunk(20, 2), chunk(30, 1), chunk(40, 3)]);
        assert_eq!(g.after(&q(1)), Some(chunk(20, 2)));
        assert_eq!(g.after(&q(2)), Some(chunk(30, 1)));
        assert_eq!(g.after(&q(3)), None, "the last chunk has no successor");
        assert_eq!(g.after(&q(9)), None, "an unknown chunk has none");
        let g = CutGuide::new([chunk(10, 1), chunk(0, 1)]);
        assert_eq!(g.after(&q(1)), None, "an empty chunk is not expected");
        let unhashed = IndexChunk {
            quick: None,
            ..chunk(20, 2)
        };
        let g = CutGuide::new([chunk(10, 1), unhashed, chunk(30, 3)]);
        assert_eq!(
            g.after(&q(1)),
            None,
            "a chunk without quick hash is not expected"
        );
        assert_eq!(g.after(&q(2)), None);
    }
}
