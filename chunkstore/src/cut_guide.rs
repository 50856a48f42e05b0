//! Cutting a re-read stream along the previous snapshot's chunks.
//!
//! An incremental backup re-reads changed files, and most of a changed file is usually as it
//! was: content-defined cutting finds the previous chunks again, but it must scan every byte to
//! do so. With a guide, the writer hashes the chunk that followed the last one in the previous
//! stream at the same length; if the bytes give that chunk's id, they are that chunk and the
//! scan is skipped. Otherwise the writer cuts by content from there, and the first chunk it
//! cuts that the previous stream had puts it back on the guide. Any cut is a valid cut (an index
//! lists chunk lengths), so a wrong guess costs one hash and never changes what is stored.

use std::collections::HashMap;

use ironcore_types::ChunkId;

/// The previous stream's chunks, in order, by id.
#[derive(Debug, Default)]
pub struct CutGuide {
    chunks: Vec<(u64, ChunkId)>,
    first_at: HashMap<ChunkId, usize>,
}

impl CutGuide {
    /// A guide along `chunks`: the previous stream's (length, id) in order.
    pub fn new(chunks: impl IntoIterator<Item = (u64, ChunkId)>) -> Self {
        let chunks: Vec<(u64, ChunkId)> = chunks.into_iter().collect();
        let mut first_at = HashMap::with_capacity(chunks.len());
        for (i, (_, id)) in chunks.iter().enumerate() {
            first_at.entry(*id).or_insert(i);
        }
        Self { chunks, first_at }
    }

    /// The chunk that followed chunk `id` in the previous stream (after its first occurrence),
    /// if any. An empty chunk (which no writer cuts, but a damaged index may list) is never
    /// expected: cutting it would not move the cutter on.
    pub fn after(&self, id: &ChunkId) -> Option<(u64, ChunkId)> {
        let i = *self.first_at.get(id)?;
        self.chunks.get(i + 1).copied().filter(|(len, _)| *len > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ChunkId {
        ChunkId::from_bytes([b; 32])
    }

    #[test]
    fn the_next_chunk_follows_the_first_occurrence() {
        let g = CutGuide::new([(10, id(1)), (20, id(2)), (30, id(1)), (40, id(3))]);
        assert_eq!(g.after(&id(1)), Some((20, id(2))));
        assert_eq!(g.after(&id(2)), Some((30, id(1))));
        assert_eq!(g.after(&id(3)), None, "the last chunk has no successor");
        assert_eq!(g.after(&id(9)), None, "an unknown chunk has none");
        let g = CutGuide::new([(10, id(1)), (0, id(1))]);
        assert_eq!(g.after(&id(1)), None, "an empty chunk is not expected");
    }
}
