//! The chunk pipeline of a backup: cut → (workers: hash → dedup check → compress → encrypt →
//! write) → index.
//!
//! The caller's thread cuts the stream (FastCDC for streams, see `cdc`; fixed pieces for images; along the
//! previous stream's chunks where it has a [`CutGuide`]) and hands chunks to one worker per core
//! through a bounded queue, so memory stays bounded and a slow
//! disk slows the client instead of filling RAM. Workers only compress and encrypt chunks the
//! datastore does not hold. Results come back out of order and are put in stream order when the
//! archive is finished.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use ironcore_types::ChunkId;

use crate::cdc::Cdc;
use crate::chunk_dir::Inserted;
use crate::cut_guide::CutGuide;
use crate::dynamic_index::IndexChunk;
use crate::envelope::{chunk_id, chunk_id_pair};
use crate::index::{ArchiveIndex, IndexKind};
use crate::manifest::ManifestFile;
use crate::quick_hash::QuickHash;
use crate::stream_session::Shared;
use crate::{DynamicIndex, Error, FixedIndex, Result};

/// FastCDC bounds for file archives: 256 KiB minimum, 1 MiB average, 4 MiB maximum.
pub const CDC_MIN: usize = 256 << 10;
/// See [`CDC_MIN`].
pub const CDC_AVG: usize = 1 << 20;
/// See [`CDC_MIN`].
pub const CDC_MAX: usize = 4 << 20;

/// The chunker of file archives.
static CDC: LazyLock<Cdc> = LazyLock::new(|| Cdc::new(CDC_MIN, CDC_AVG, CDC_MAX));

/// How an archive is cut.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Chunking {
    Dynamic,
    Fixed(u32),
}

/// Bytes [`ArchiveWriter::read_from`] reads at a time.
const READ_SIZE: usize = 1 << 20;
/// Buffers whose chunks are out with the workers, kept for reuse.
const SPENT_KEPT: usize = 3;
/// A stream archive's buffer is cut once it holds this much. The piece after the last cut
/// point is copied into the next buffer and scanned again there, so the buffer is many chunks
/// long: with chunks of 1 MiB on average, about one in 33 is scanned twice (one in 9 when the
/// buffer was cut at 8 MiB; the change was too small to show in timed runs here).
const DYNAMIC_CUT_AT: usize = 8 * CDC_MAX;

/// A chunk cut from the buffer: its span, and what the cutter knows of it already.
struct Piece {
    start: usize,
    end: usize,
    /// Its id, when the guide gave it.
    id: Option<ChunkId>,
    quick: Option<QuickHash>,
}

struct Job {
    seq: usize,
    /// A slice of the buffer it was cut from (no copy).
    data: Bytes,
    /// Its id, when the cutter knows it already.
    id: Option<ChunkId>,
    /// Its quick hash, when the cutter took it already.
    quick: Option<QuickHash>,
    /// Whether the index records quick hashes (stream archives do).
    wants_quick: bool,
}

/// Writes one archive of a backup session. Feed it with [`ArchiveWriter::append`] (or as an
/// [`io::Write`]), then call [`ArchiveWriter::finish`].
pub struct ArchiveWriter<'a> {
    shared: Arc<Shared>,
    name: String,
    chunking: Chunking,
    files: &'a mut Vec<ManifestFile>,
    buf: Vec<u8>,
    /// Earlier buffers, each reusable once the workers dropped its chunks.
    spent: Vec<Bytes>,
    /// The previous stream's chunks to cut along ([`ArchiveWriter::guide`]).
    guide: Option<Arc<CutGuide>>,
    /// The chunk the guide expects next.
    expect: Option<IndexChunk>,
    jobs: Option<Sender<Job>>,
    results: Receiver<Result<(usize, IndexChunk)>>,
    workers: Vec<JoinHandle<()>>,
    sent: usize,
    received: usize,
    done: Vec<Option<IndexChunk>>,
    failed: Option<Error>,
}

impl std::fmt::Debug for ArchiveWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArchiveWriter({}, {} chunks sent)", self.name, self.sent)
    }
}

fn worker(shared: Arc<Shared>, jobs: Receiver<Job>, results: Sender<Result<(usize, IndexChunk)>>) {
    while let Ok(first) = jobs.recv() {
        // A chunk to hash takes a second one along when one is waiting: two are hashed
        // together about 1.25 times as fast as one after the other (`sha256`).
        let second = match first.id {
            None => jobs.try_recv().ok(),
            Some(_) => None,
        };
        let key = shared.key.as_ref();
        let ids = match &second {
            Some(s) if s.id.is_none() => {
                let (a, b) = chunk_id_pair(&first.data, &s.data, key);
                [Some(a), Some(b)]
            }
            _ => [None, None],
        };
        for (job, id) in std::iter::once(first).chain(second).zip(ids) {
            let out = process(&shared, &job, id);
            let failed = out.is_err();
            if results.send(out).is_err() || failed {
                // The writer is gone or this session failed: stop taking work.
                return;
            }
        }
    }
}

/// Stores `job`'s chunk; `hashed` is its id when the worker computed it already.
fn process(shared: &Shared, job: &Job, hashed: Option<ChunkId>) -> Result<(usize, IndexChunk)> {
    if shared.cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    let key = shared.key.as_ref();
    let id = job
        .id
        .or(hashed)
        .unwrap_or_else(|| chunk_id(&job.data, key));
    let quick = match job.quick {
        None if job.wants_quick => Some(QuickHash::of(&job.data, key)),
        known => known,
    };
    let len = job.data.len() as u64;
    let c = &shared.counters;
    c.chunks.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(len, Ordering::Relaxed);
    let first_in_session = shared
        .known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id);
    if first_in_session {
        match shared.sink.store_chunk(&id, &job.data, key) {
            Ok(Inserted::New(stored)) => {
                c.new_chunks.fetch_add(1, Ordering::Relaxed);
                c.new_bytes.fetch_add(len, Ordering::Relaxed);
                c.stored_bytes.fetch_add(stored, Ordering::Relaxed);
            }
            Ok(Inserted::Existing) => {}
            Err(e) => {
                shared
                    .known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                return Err(e);
            }
        }
    }
    Ok((job.seq, IndexChunk { len, id, quick }))
}

impl<'a> ArchiveWriter<'a> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        name: &str,
        chunking: Chunking,
        files: &'a mut Vec<ManifestFile>,
    ) -> Self {
        // A worker waiting for a remote sink's answer (a presence query, an upload the node
        // hashes and writes before it answers) uses no CPU, and for incompressible data that
        // wait is longer than the hashing: twice as many workers as cores, and four more.
        // On the reference set at 2 cores the CPUs were idle or waiting 13-15% of an initial
        // backup with 4 workers, 8-12% with 6, and 6-9% with 8.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let n = 2 * cores + 4;
        // Chunks waiting for a worker keep the workers going while the walker waits for a
        // disk (its next block, a file's first bytes). With 64 the CPUs were idle or waiting
        // 6.4-8.6% of the initial backup above, against 7.8-10.7% with 16 (six runs each).
        let (jobs_tx, jobs_rx) = bounded::<Job>((n * 2).max(64));
        let (res_tx, res_rx) = unbounded();
        let workers = (0..n)
            .map(|_| {
                let (s, j, r) = (shared.clone(), jobs_rx.clone(), res_tx.clone());
                std::thread::spawn(move || worker(s, j, r))
            })
            .collect();
        Self {
            shared,
            name: name.to_string(),
            chunking,
            files,
            buf: Vec::new(),
            spent: Vec::new(),
            guide: None,
            expect: None,
            jobs: Some(jobs_tx),
            results: res_rx,
            workers,
            sent: 0,
            received: 0,
            done: Vec::new(),
            failed: None,
        }
    }

    /// Appends bytes to the archive.
    pub fn append(&mut self, data: &[u8]) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.buf.extend_from_slice(data);
        self.cut_ready()
    }

    /// Reads the next bytes of `src` (at most a MiB) straight into the archive's buffer;
    /// `Ok(0)` at its end. Errors are the source's: call [`ArchiveWriter::cut_ready`] after
    /// each read to send what is ready.
    pub fn read_from(&mut self, src: impl io::Read) -> io::Result<usize> {
        self.buf.reserve(READ_SIZE);
        io::Read::read_to_end(&mut src.take(READ_SIZE as u64), &mut self.buf)
    }

    /// Lets `add` append at most the given number of bytes (a MiB) to the archive's buffer
    /// directly, for a source that copies from memory of its own; returns what `add` returns.
    /// Call [`ArchiveWriter::cut_ready`] after.
    pub fn append_with(
        &mut self,
        add: impl FnOnce(&mut Vec<u8>, usize) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.buf.reserve(READ_SIZE);
        let before = self.buf.len();
        let added = add(&mut self.buf, READ_SIZE);
        debug_assert!(self.buf.len() - before <= READ_SIZE);
        added
    }

    /// Sends the chunks the buffer holds once it holds enough to cut.
    pub fn cut_ready(&mut self) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let threshold = match self.chunking {
            Chunking::Dynamic => DYNAMIC_CUT_AT,
            Chunking::Fixed(size) => size as usize,
        };
        if self.buf.len() >= threshold {
            self.cut(false)?;
        }
        Ok(())
    }

    /// Cuts what is appended from now on along the previous stream's chunks where the bytes are
    /// the same (see [`CutGuide`]): chunks found again by their quick hash skip the
    /// content-defined scan and the hashing of their id. Only stream archives take a guide.
    pub fn guide(&mut self, guide: Arc<CutGuide>) {
        if matches!(self.chunking, Chunking::Dynamic) {
            self.guide = Some(guide);
        }
    }

    /// Appends chunks the sink already holds, by reference, without their bytes (an unchanged
    /// file of the previous snapshot). The bytes appended before end here as chunks of their
    /// own. Each must be a chunk of this session's key that the sink holds (check with
    /// [`crate::ChunkSink::has_chunk`]), as the previous index lists it; only dynamic (stream)
    /// archives take them.
    pub fn append_known(&mut self, chunks: &[IndexChunk]) -> Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if !matches!(self.chunking, Chunking::Dynamic) {
            return Err(Error::InvalidInput {
                what: "archive",
                detail: "only stream archives take known chunks".into(),
            });
        }
        if !self.buf.is_empty() {
            self.cut(true)?;
        }
        // What follows starts a new cut; the chunk after these in the previous stream is
        // rarely what comes next (the next file read is a changed one).
        self.expect = None;
        let c = &self.shared.counters;
        for chunk in chunks {
            let seq = self.sent;
            self.sent += 1;
            if self.done.len() <= seq {
                self.done.resize(seq + 1, None);
            }
            self.done[seq] = Some(*chunk);
            self.received += 1;
            c.chunks.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(chunk.len, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Cuts the buffer into chunks and sends them; keeps an incomplete tail unless `last`.
    fn cut(&mut self, last: bool) -> Result<()> {
        let mut pieces: Vec<Piece> = Vec::new();
        let piece = |start, end| Piece {
            start,
            end,
            id: None,
            quick: None,
        };
        let consumed = match self.chunking {
            Chunking::Fixed(size) => {
                let size = size as usize;
                let mut at = 0;
                while self.buf.len() - at >= size || (last && at < self.buf.len()) {
                    let end = (at + size).min(self.buf.len());
                    pieces.push(piece(at, end));
                    at = end;
                }
                at
            }
            Chunking::Dynamic if self.guide.is_some() => self.cut_guided(last, &mut pieces),
            Chunking::Dynamic => {
                let cuts = CDC
                    .chunks(&self.buf)
                    .map(|(offset, len)| piece(offset, offset + len));
                pieces.extend(cuts);
                // The last piece ends where the buffer ends, not at a content-defined point;
                // keep it for the next round unless the stream is complete.
                if !last {
                    pieces.pop();
                }
                pieces.last().map_or(0, |p| p.end)
            }
        };
        if consumed > 0 {
            // The pieces become slices of the buffer as it is; only the uncut tail is copied
            // into a fresh buffer for what comes next.
            let whole = Bytes::from(std::mem::take(&mut self.buf));
            self.buf = self.fresh_buffer();
            self.buf.extend_from_slice(&whole[consumed..]);
            for p in pieces {
                self.send(whole.slice(p.start..p.end), p.id, p.quick)?;
            }
            if self.spent.len() == SPENT_KEPT {
                self.spent.remove(0);
            }
            self.spent.push(whole);
        }
        self.shared.sink.keep_alive()
    }

    /// [`ArchiveWriter::cut`] along the guide: each piece is the chunk the guide expects when
    /// the bytes give its quick hash, else the next content-defined chunk. Every piece's quick
    /// hash is taken here (5.6 GB/s); ids of chunks not found again are left to the workers.
    /// Returns the bytes cut.
    fn cut_guided(&mut self, last: bool, pieces: &mut Vec<Piece>) -> usize {
        let (Some(guide), key) = (self.guide.clone(), self.shared.key.as_ref()) else {
            return 0;
        };
        let mut at = 0;
        while at < self.buf.len() {
            let rest = &self.buf[at..];
            if let Some(want) = self.expect {
                let len = usize::try_from(want.len).unwrap_or(usize::MAX);
                if rest.len() < len {
                    if !last {
                        break; // the expected chunk is not all here yet
                    }
                    self.expect = None;
                } else {
                    let quick = QuickHash::of(&rest[..len], key);
                    self.expect = None;
                    if Some(quick) == want.quick {
                        pieces.push(Piece {
                            start: at,
                            end: at + len,
                            id: Some(want.id),
                            quick: Some(quick),
                        });
                        at += len;
                        self.expect = guide.after(&quick);
                        continue;
                    }
                }
            }
            let len = CDC.cut(rest);
            if len == rest.len() && !last {
                break; // ends where the buffer ends, not at a content-defined point
            }
            let quick = QuickHash::of(&rest[..len], key);
            pieces.push(Piece {
                start: at,
                end: at + len,
                id: None,
                quick: Some(quick),
            });
            at += len;
            self.expect = guide.after(&quick);
        }
        at
    }

    /// An empty buffer with room to fill: one whose chunks the workers are done with, or a
    /// new one. (A reused buffer's memory is already mapped: a new one costs a page fault per
    /// 4 KiB as it fills.)
    fn fresh_buffer(&mut self) -> Vec<u8> {
        let room = self.room();
        while let Some(i) = self.spent.iter().position(Bytes::is_unique) {
            if let Ok(mut done) = self.spent.swap_remove(i).try_into_mut() {
                done.clear();
                let buf = Vec::from(done);
                if buf.capacity() >= room {
                    return buf;
                }
            }
        }
        Vec::with_capacity(room)
    }

    /// The buffer's capacity: enough to cut, and one read more.
    fn room(&self) -> usize {
        match self.chunking {
            Chunking::Dynamic => DYNAMIC_CUT_AT + READ_SIZE,
            Chunking::Fixed(size) => size as usize + READ_SIZE,
        }
    }

    fn send(&mut self, data: Bytes, id: Option<ChunkId>, quick: Option<QuickHash>) -> Result<()> {
        self.collect(false)?;
        let job = Job {
            seq: self.sent,
            data,
            id,
            quick,
            wants_quick: matches!(self.chunking, Chunking::Dynamic),
        };
        self.sent += 1;
        let jobs = self.jobs.as_ref().ok_or(Error::Cancelled)?;
        if jobs.send(job).is_err() {
            // Every worker stopped: one of them failed; its error is in the results.
            self.collect(true)?;
            return Err(Error::Cancelled);
        }
        Ok(())
    }

    /// Takes finished results; with `all`, waits for every chunk sent.
    fn collect(&mut self, all: bool) -> Result<()> {
        loop {
            let got = if all {
                if self.received == self.sent {
                    return Ok(());
                }
                self.results.recv().ok()
            } else {
                self.results.try_recv().ok()
            };
            let Some(result) = got else {
                return if all { Err(Error::Cancelled) } else { Ok(()) };
            };
            let (seq, chunk) = result?;
            if self.done.len() <= seq {
                self.done.resize(seq + 1, None);
            }
            self.done[seq] = Some(chunk);
            self.received += 1;
        }
    }

    /// Flushes the last chunks, waits for the workers, stores the index and adds the archive to
    /// the snapshot.
    pub fn finish(mut self) -> Result<ManifestFile> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.cut(true)?;
        self.collect(true)?;
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let index = match self.chunking {
            Chunking::Dynamic => {
                let mut idx = DynamicIndex::new();
                for chunk in self.done.iter().flatten() {
                    idx.push_chunk(*chunk);
                }
                ArchiveIndex::Dynamic(idx)
            }
            Chunking::Fixed(size) => {
                let mut idx = FixedIndex::new(size)?;
                for chunk in self.done.iter().flatten() {
                    idx.push(chunk.len, chunk.id)?;
                }
                ArchiveIndex::Fixed(idx)
            }
        };
        // An index is an unencrypted chunk named by its plain SHA-256.
        let bytes = Bytes::from(index.encode());
        let index_id = chunk_id(&bytes, None);
        self.shared.sink.store_chunk(&index_id, &bytes, None)?;
        let file = ManifestFile {
            name: self.name.clone(),
            kind: match self.chunking {
                Chunking::Dynamic => IndexKind::Dynamic,
                Chunking::Fixed(_) => IndexKind::Fixed,
            },
            size: index.size(),
            index: index_id,
        };
        self.files.push(file.clone());
        Ok(file)
    }
}

impl Drop for ArchiveWriter<'_> {
    fn drop(&mut self) {
        self.jobs = None;
        // Unblock and stop workers of an abandoned writer.
        while self.results.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl io::Write for ArchiveWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.append(data) {
            Ok(()) => Ok(data.len()),
            Err(e) => {
                let msg = e.to_string();
                self.failed = Some(e);
                Err(io::Error::other(msg))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
