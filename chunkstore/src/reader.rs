//! Reading an archive back: random access with a one-chunk cache, and an in-order stream of
//! chunks read and decoded in parallel (a bounded window ahead of the consumer).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use ironcore_types::{ChunkId, SnapshotRef};

use crate::crypto::CryptKey;
use crate::datastore::Datastore;
use crate::envelope::decode_chunk;
use crate::index::ArchiveIndex;
use crate::manifest::{Manifest, ManifestFile};
use crate::sink::ChunkSource;
use crate::{Error, Result};

/// An archive of a committed snapshot, opened for reading.
#[derive(Debug)]
pub struct ArchiveReader {
    source: Arc<dyn ChunkSource>,
    index: Arc<ArchiveIndex>,
    key: Option<CryptKey>,
    cache: Option<(usize, Vec<u8>)>,
}

fn read_one(
    source: &dyn ChunkSource,
    index: &ArchiveIndex,
    key: Option<&CryptKey>,
    i: usize,
) -> Result<Vec<u8>> {
    let (start, end, id) = index
        .chunk(i)
        .ok_or_else(|| Error::corrupt("index", format!("chunk {i} is past the end")))?;
    let plain = decode_chunk(&source.read_chunk(&id)?, &id, key)?;
    if plain.len() as u64 != end - start {
        return Err(Error::corrupt(
            "chunk",
            format!(
                "chunk {id} holds {} bytes, the index expects {}",
                plain.len(),
                end - start
            ),
        ));
    }
    Ok(plain)
}

impl Datastore {
    /// Opens archive `name` of snapshot `s`. An encrypted snapshot needs its key:
    /// `encryption key not found` without one, `fingerprint mismatch` with another.
    pub fn open_archive(
        self: &Arc<Self>,
        s: &SnapshotRef,
        name: &str,
        key: Option<&CryptKey>,
    ) -> Result<ArchiveReader> {
        let manifest = self.open_manifest(s, key)?;
        let source: Arc<dyn ChunkSource> = self.clone();
        ArchiveReader::open(source, &manifest, name, key)
    }

    /// A snapshot's manifest, with its signature checked against `key` when it is encrypted
    /// (see [`open_manifest_bytes`]).
    pub fn open_manifest(&self, s: &SnapshotRef, key: Option<&CryptKey>) -> Result<Manifest> {
        open_manifest_bytes(s, &self.snapshot(s)?.manifest, key)
    }

    /// Loads and checks an archive's index.
    pub fn load_index(&self, file: &ManifestFile) -> Result<ArchiveIndex> {
        load_index(self, file)
    }
}

/// Loads and checks an archive's index from `source`: an unencrypted chunk whose size must
/// match the manifest's.
fn load_index(source: &dyn ChunkSource, file: &ManifestFile) -> Result<ArchiveIndex> {
    let bytes = source.read_chunk(&file.index)?;
    let plain = decode_chunk(&bytes, &file.index, None)?;
    let index = ArchiveIndex::decode(file.kind, &plain)?;
    if index.size() != file.size {
        return Err(Error::corrupt(
            "index",
            format!(
                "archive '{}' is {} bytes but its index covers {}",
                file.name,
                file.size,
                index.size()
            ),
        ));
    }
    Ok(index)
}

/// Parses the stored manifest `bytes` of snapshot `s` and checks it: integrity always, and for
/// an encrypted snapshot the key — `encryption key not found` without one, `fingerprint
/// mismatch` with another — and the signature. A manifest of another snapshot is refused.
pub fn open_manifest_bytes(
    s: &SnapshotRef,
    bytes: &[u8],
    key: Option<&CryptKey>,
) -> Result<Manifest> {
    let (manifest, _) = Manifest::decode(bytes)?;
    if manifest.snapshot != *s {
        return Err(Error::corrupt(
            "manifest",
            format!("manifest of {s} describes snapshot {}", manifest.snapshot),
        ));
    }
    match (manifest.key_fingerprint, key) {
        (None, _) => Ok(manifest),
        (Some(fingerprint), None) => Err(Error::EncryptionKeyNotFound {
            what: format!("snapshot {s}"),
            fingerprint,
        }),
        (Some(_), Some(k)) => Manifest::verify_signature(bytes, k),
    }
}

impl ArchiveReader {
    /// Opens archive `name` of the snapshot `manifest` describes, reading chunks from
    /// `source`. The manifest must have been checked against `key` (see
    /// [`open_manifest_bytes`]); `key` decrypts the chunks of an encrypted snapshot.
    pub fn open(
        source: Arc<dyn ChunkSource>,
        manifest: &Manifest,
        name: &str,
        key: Option<&CryptKey>,
    ) -> Result<ArchiveReader> {
        let file = manifest.file(name).ok_or_else(|| Error::InvalidInput {
            what: "archive",
            detail: format!(
                "snapshot {} has no archive '{name}'; it has: {}",
                manifest.snapshot,
                manifest
                    .files
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let index = load_index(source.as_ref(), file)?;
        Ok(ArchiveReader {
            source,
            index: Arc::new(index),
            key: manifest.key_fingerprint.and(key.cloned()),
            cache: None,
        })
    }

    /// The archive's size.
    pub fn size(&self) -> u64 {
        self.index.size()
    }

    /// The archive's index.
    pub fn index(&self) -> &ArchiveIndex {
        &self.index
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at the end).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        let Some(i) = self.index.find(offset) else {
            return Ok(0);
        };
        if self.cache.as_ref().map(|c| c.0) != Some(i) {
            let data = read_one(self.source.as_ref(), &self.index, self.key.as_ref(), i)?;
            self.cache = Some((i, data));
        }
        let (start, _, _) = self
            .index
            .chunk(i)
            .ok_or_else(|| Error::corrupt("index", "chunk vanished"))?;
        let data = self.cache.as_ref().map(|c| &c.1[..]).unwrap_or_default();
        let from = (offset - start) as usize;
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }

    /// The chunks in order, read and decoded ahead of the consumer by twice as many threads as
    /// cores, and four more.
    pub fn stream(&self) -> ChunkStream {
        ChunkStream::new(self, read_workers())
    }

    /// Writes the whole archive to `out`, decoding in parallel. Returns the bytes written.
    pub fn copy_to(&self, out: &mut impl Write) -> Result<u64> {
        let mut total = 0;
        for chunk in self.stream() {
            let chunk = chunk?;
            out.write_all(&chunk)
                .map_err(|e| Error::io("writing restored data", "<output>", e))?;
            total += chunk.len() as u64;
        }
        Ok(total)
    }
}

/// Threads that read and decode an archive's chunks ahead of its consumer: twice as many as
/// cores, and four more. A thread waiting for a chunk (a cold disk, a node's answer) uses no
/// CPU; with one per core a full restore of the reference set through a node left the CPUs
/// idle 23% of the time.
pub(crate) fn read_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    2 * cores + 4
}

/// Chunks a stream reads ahead of its consumer, per read thread.
pub(crate) const WINDOW_PER_WORKER: usize = 3;

/// An in-order iterator over an archive's decoded chunks.
///
/// A chunk the index names again within the read-ahead window is read and decoded once: an
/// incremental backup that reuses runs of unchanged files appends the previous chunks covering
/// each run, so a chunk holding the end of one run and the start of the next (a changed file
/// between them) appears twice in a row, give or take a new chunk. On the reference set after
/// its 5% change that is most chunks of the small files' part.
pub struct ChunkStream {
    index: Arc<ArchiveIndex>,
    jobs: Option<Sender<usize>>,
    results: Receiver<(usize, Result<Bytes>)>,
    pending: BTreeMap<usize, Result<Bytes>>,
    /// Positions handed out whose chunk an earlier position in the window reads.
    repeats: HashMap<usize, ChunkId>,
    /// For each chunk being read or kept: the last position handed out that yields it.
    last_use: HashMap<ChunkId, usize>,
    /// Chunks already yielded that a repeat further on yields again.
    kept: HashMap<ChunkId, Bytes>,
    next_send: usize,
    next_yield: usize,
    total: usize,
    window: usize,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkStream({}/{})", self.next_yield, self.total)
    }
}

impl ChunkStream {
    fn new(reader: &ArchiveReader, workers: usize) -> Self {
        let (jobs_tx, jobs_rx) = unbounded::<usize>();
        let (res_tx, res_rx) = bounded(workers * 4);
        let handles = (0..workers)
            .map(|_| {
                let source = reader.source.clone();
                let index = reader.index.clone();
                let key = reader.key.clone();
                let jobs: Receiver<usize> = jobs_rx.clone();
                let results = res_tx.clone();
                std::thread::spawn(move || {
                    for i in jobs {
                        let out =
                            read_one(source.as_ref(), &index, key.as_ref(), i).map(Bytes::from);
                        if results.send((i, out)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        let mut s = Self {
            index: reader.index.clone(),
            jobs: Some(jobs_tx),
            results: res_rx,
            pending: BTreeMap::new(),
            repeats: HashMap::new(),
            last_use: HashMap::new(),
            kept: HashMap::new(),
            next_send: 0,
            next_yield: 0,
            total: reader.index.len(),
            window: workers * WINDOW_PER_WORKER,
            handles,
        };
        s.fill();
        s
    }

    fn fill(&mut self) {
        while self.next_send < self.total && self.next_send < self.next_yield + self.window {
            let at = self.next_send;
            self.next_send += 1;
            if let Some(id) = self.id_at(at)
                && let Some(last) = self.last_use.insert(id, at)
            {
                debug_assert!(last < at);
                self.repeats.insert(at, id);
                continue;
            }
            if let Some(jobs) = &self.jobs {
                let _ = jobs.send(at);
            }
        }
    }

    fn id_at(&self, at: usize) -> Option<ChunkId> {
        self.index.chunk(at).map(|(_, _, id)| id)
    }

    /// The chunk at `next_yield`, once read (or kept from an earlier position).
    fn take_next(&mut self) -> Result<Bytes> {
        let at = self.next_yield;
        let repeat = self.repeats.remove(&at);
        let data = match repeat {
            Some(id) => self.kept.get(&id).cloned().ok_or_else(|| {
                Error::corrupt("archive stream", format!("chunk {id} was not read"))
            })?,
            None => loop {
                if let Some(r) = self.pending.remove(&at) {
                    break r?;
                }
                match self.results.recv() {
                    Ok((i, r)) => {
                        self.pending.insert(i, r);
                    }
                    Err(_) => {
                        return Err(Error::corrupt("archive stream", "decoder threads stopped"));
                    }
                }
            },
        };
        if let Some(id) = self.id_at(at) {
            if self.last_use.get(&id) == Some(&at) {
                self.last_use.remove(&id);
                self.kept.remove(&id);
            } else if repeat.is_none() {
                self.kept.insert(id, data.clone());
            }
        }
        Ok(data)
    }

    /// The id of every chunk this stream will yield, for callers that report progress.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether the archive has no chunks.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for ChunkStream {
    type Item = Result<Bytes>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next_yield >= self.total {
            return None;
        }
        let r = self.take_next();
        self.next_yield += 1;
        self.fill();
        Some(r)
    }
}

impl Drop for ChunkStream {
    fn drop(&mut self) {
        // Stop handing out work, then disconnect the result queue so a worker blocked on a full
        // queue wakes with an error, and wait for every worker: a detached worker would keep
        // the datastore (and its RocksDB handle) alive past the end of the process.
        self.jobs = None;
        self.results = crossbeam_channel::never();
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// The distinct chunk ids of an index (used by GC and verify).
pub(crate) fn distinct_ids(index: &ArchiveIndex) -> Vec<ChunkId> {
    let mut v: Vec<ChunkId> = index.chunk_ids().collect();
    v.sort_unstable();
    v.dedup();
    v
}
