//! Reusing unchanged files of the previous snapshot without reading them.
//!
//! A file whose path, size, modification time (to the nanosecond), mode and owners equal its
//! entry in the previous snapshot is taken as unchanged. Runs of such files that were adjacent
//! in the previous payload are added to the new payload by reference: the previous payload's
//! chunks covering the run are appended as they are (`ArchiveWriter::append_known`), and
//! the files' offsets point into them. The chunks' edges may carry bytes of neighbouring files;
//! those bytes are never referenced by an entry (at most two chunks of logical padding per run,
//! no new stored bytes). Only a previous snapshot written with the same key (or both
//! unencrypted) is used, and only chunks the datastore confirms it holds are referenced; every
//! other file is read.

use std::collections::HashMap;
use std::sync::Arc;

use ironcore_chunkstore::{ArchiveReader, ChunkSource, CryptKey, CutGuide, IndexChunk, Manifest};
use ironcore_types::ChunkId;

use crate::tree::{META_ARCHIVE, PAYLOAD_ARCHIVE};
use crate::tree_format::{Entry, EntryKind};
use crate::tree_restore::read_entries_from;
use crate::{ClientError, Result};

/// One chunk of the previous payload, and where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrevChunk {
    pub start: u64,
    pub chunk: IndexChunk,
}

impl PrevChunk {
    pub(crate) fn end(&self) -> u64 {
        self.start + self.chunk.len
    }
}

/// What a previous file looked like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PrevFile {
    pub offset: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl PrevFile {
    /// Whether `now` (this backup's entry, kind not yet set) of `size` bytes is this file
    /// unchanged.
    pub(crate) fn matches(&self, now: &Entry, size: u64) -> bool {
        self.size == size
            && self.mtime_sec == now.mtime_sec
            && self.mtime_nsec == now.mtime_nsec
            && self.mode == now.mode
            && self.uid == now.uid
            && self.gid == now.gid
    }
}

/// The previous snapshot of a tree, as far as reuse needs it.
#[derive(Debug, Default)]
pub struct PreviousTree {
    files: Arc<HashMap<Vec<u8>, PrevFile>>,
    /// The payload's chunks, in stream order.
    chunks: Vec<PrevChunk>,
}

impl PreviousTree {
    /// Loads the file list and payload index of the tree snapshot `manifest` (opened with
    /// `key`), or `None` when it cannot serve as a base for a session encrypting with
    /// `session_key` (another key, or not a tree snapshot).
    pub fn load(
        source: Arc<dyn ChunkSource>,
        manifest: &Manifest,
        key: Option<&CryptKey>,
        session_key: Option<&CryptKey>,
    ) -> Result<Option<Self>> {
        let same_key = manifest.key_fingerprint == session_key.map(CryptKey::fingerprint);
        if !same_key
            || manifest.file(META_ARCHIVE).is_none()
            || manifest.file(PAYLOAD_ARCHIVE).is_none()
        {
            return Ok(None);
        }
        let entries = read_entries_from(source.clone(), manifest, key)?;
        let payload = ArchiveReader::open(source, manifest, PAYLOAD_ARCHIVE, key)?;
        let index = payload.index();
        let mut start = 0;
        let chunks = (0..index.len())
            .map(|i| {
                let chunk = index.index_chunk(i).ok_or_else(|| {
                    ClientError::Format(format!("payload index ends before chunk {i}"))
                })?;
                let prev = PrevChunk { start, chunk };
                start = prev.end();
                Ok(prev)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Self::from_parts(&entries, chunks)))
    }

    pub(crate) fn from_parts(entries: &[Entry], chunks: Vec<PrevChunk>) -> Self {
        let files = entries
            .iter()
            .filter_map(|e| match e.kind {
                EntryKind::File { offset, size } => Some((
                    e.path.clone(),
                    PrevFile {
                        offset,
                        size,
                        mtime_sec: e.mtime_sec,
                        mtime_nsec: e.mtime_nsec,
                        mode: e.mode,
                        uid: e.uid,
                        gid: e.gid,
                    },
                )),
                _ => None,
            })
            .collect();
        Self {
            files: Arc::new(files),
            chunks,
        }
    }

    /// The previous files by path, to be shared with other threads.
    pub(crate) fn files(&self) -> Arc<HashMap<Vec<u8>, PrevFile>> {
        self.files.clone()
    }

    /// The previous file at `path` if `now` (this backup's entry, kind not yet set) and `size`
    /// match it.
    pub(crate) fn unchanged(&self, path: &[u8], now: &Entry, size: u64) -> Option<PrevFile> {
        let p = self.files.get(path)?;
        p.matches(now, size).then_some(*p)
    }

    /// The previous payload's chunks as a guide for cutting re-read files.
    pub(crate) fn cut_guide(&self) -> Arc<CutGuide> {
        Arc::new(CutGuide::new(self.chunks.iter().map(|c| c.chunk)))
    }

    /// The distinct chunks of the previous payload.
    pub(crate) fn chunk_ids(&self) -> Vec<ChunkId> {
        let mut ids: Vec<ChunkId> = self.chunks.iter().map(|c| c.chunk.id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The chunks covering bytes `start..end` of the previous payload, and the first one's
    /// start.
    pub(crate) fn covering(&self, start: u64, end: u64) -> Option<(u64, &[PrevChunk])> {
        if end <= start {
            return None;
        }
        let i = self.chunks.partition_point(|c| c.end() <= start);
        let j = self.chunks.partition_point(|c| c.end() < end);
        let run = self.chunks.get(i..=j)?;
        Some((run.first()?.start, run))
    }
}

/// Unchanged files waiting to be added by reference: (entry index, previous offset, size).
#[derive(Debug, Default)]
pub(crate) struct Run {
    pub items: Vec<(usize, u64, u64)>,
}

impl Run {
    /// Whether a file at previous offset `offset` continues this run.
    pub fn continues(&self, offset: u64) -> bool {
        self.items.last().is_none_or(|(_, o, s)| o + s == offset)
    }

    /// Previous payload bytes this run covers.
    pub fn span(&self) -> Option<(u64, u64)> {
        let first = self.items.first()?;
        let last = self.items.last()?;
        Some((first.1, last.1 + last.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> ChunkId {
        ChunkId::from_bytes([b; 32])
    }

    #[test]
    fn covering_finds_the_chunks_of_a_byte_range() {
        let chunk = |start, end, b| PrevChunk {
            start,
            chunk: IndexChunk {
                len: end - start,
                id: id(b),
                quick: None,
            },
        };
        let p = PreviousTree::from_parts(
            &[],
            vec![chunk(0, 10, 1), chunk(10, 25, 2), chunk(25, 40, 3)],
        );
        let ids = |r: &[PrevChunk]| r.iter().map(|c| c.chunk.id).collect::<Vec<_>>();
        let (start, run) = p.covering(0, 10).unwrap();
        assert_eq!((start, ids(run)), (0, vec![id(1)]));
        let (start, run) = p.covering(12, 26).unwrap();
        assert_eq!((start, ids(run)), (10, vec![id(2), id(3)]));
        let (start, run) = p.covering(9, 11).unwrap();
        assert_eq!((start, ids(run)), (0, vec![id(1), id(2)]));
        assert!(p.covering(5, 5).is_none());
        assert!(
            p.covering(39, 41).is_none(),
            "a range past the end has no covering"
        );
    }
}
