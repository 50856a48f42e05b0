//! The sink-based part of a backup session: archive writers, counters and the archive list,
//! with chunks going to any [`ChunkSink`].
//!
//! A [`BackupSession`](crate::BackupSession) on a local datastore wraps one of these and adds
//! the lease and the commit. A client backing up to a node over the network uses one directly
//! and sends the finished [`Manifest`] to the node itself.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use ironcore_types::{ChunkId, SnapshotRef};

use crate::crypto::CryptKey;
use crate::manifest::{Manifest, ManifestFile};
use crate::session::{CancelToken, Counters, SessionStats};
use crate::sink::ChunkSink;
use crate::writer::{ArchiveWriter, Chunking};
use crate::{Error, FixedIndex, Result};

/// State the writers share with the session.
#[derive(Debug)]
pub(crate) struct Shared {
    pub sink: Arc<dyn ChunkSink>,
    pub key: Option<CryptKey>,
    pub known: Mutex<HashSet<ChunkId>>,
    pub counters: Counters,
    pub cancel: CancelToken,
}

/// The archives of one snapshot being written into a [`ChunkSink`].
#[derive(Debug)]
pub struct StreamSession {
    shared: Arc<Shared>,
    files: Vec<ManifestFile>,
}

impl StreamSession {
    /// A session writing into `sink`, encrypting with `key` when given.
    pub fn new(sink: Arc<dyn ChunkSink>, key: Option<CryptKey>) -> Self {
        Self {
            shared: Arc::new(Shared {
                sink,
                key,
                known: Mutex::new(HashSet::new()),
                counters: Counters::default(),
                cancel: CancelToken::default(),
            }),
            files: Vec::new(),
        }
    }

    /// A token that cancels this session's writers from another thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.shared.cancel.clone()
    }

    /// Where the chunks go.
    pub fn sink(&self) -> Arc<dyn ChunkSink> {
        self.shared.sink.clone()
    }

    /// The key chunks are encrypted with, if any.
    pub fn key(&self) -> Option<&CryptKey> {
        self.shared.key.as_ref()
    }

    /// Records that the sink holds `ids` (its own answer to a presence query, such as the
    /// previous snapshot's chunks): when a writer cuts one of them again it is counted as
    /// reused without asking the sink once more.
    pub fn known_present(&self, ids: impl IntoIterator<Item = ChunkId>) {
        self.shared
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ids);
    }

    /// What the session did so far.
    pub fn stats(&self) -> SessionStats {
        let c = &self.shared.counters;
        SessionStats {
            chunks: c.chunks.load(Ordering::Relaxed),
            new_chunks: c.new_chunks.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            new_bytes: c.new_bytes.load(Ordering::Relaxed),
            stored_bytes: c.stored_bytes.load(Ordering::Relaxed),
        }
    }

    /// The archives finished so far.
    pub fn files(&self) -> &[ManifestFile] {
        &self.files
    }

    /// The archives finished, consuming the session.
    pub fn into_files(self) -> Vec<ManifestFile> {
        self.files
    }

    /// The manifest of snapshot `snapshot` with the archives finished so far, finished at
    /// `finished` (epoch seconds). Encode it with `Manifest::encode(session.key())`.
    pub fn manifest(&self, snapshot: SnapshotRef, finished: i64) -> Manifest {
        Manifest {
            snapshot,
            files: self.files.clone(),
            key_fingerprint: self.shared.key.as_ref().map(CryptKey::fingerprint),
            finished,
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    fn check_name(&self, name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(Error::InvalidInput {
                what: "archive name",
                detail: format!("'{name}': use 1-128 characters from A-Z a-z 0-9 - _ ."),
            });
        }
        if self.files.iter().any(|f| f.name == name) {
            return Err(Error::InvalidInput {
                what: "archive name",
                detail: format!("'{name}' is already in this snapshot"),
            });
        }
        Ok(())
    }

    /// A writer for a stream cut into content-defined chunks (file archives).
    pub fn dynamic_writer(&mut self, name: &str) -> Result<ArchiveWriter<'_>> {
        self.check_name(name)?;
        Ok(ArchiveWriter::new(
            self.shared.clone(),
            name,
            Chunking::Dynamic,
            &mut self.files,
        ))
    }

    /// A writer for an image cut into `chunk_size`-byte chunks (disk images).
    pub fn fixed_writer(&mut self, name: &str, chunk_size: u32) -> Result<ArchiveWriter<'_>> {
        self.check_name(name)?;
        FixedIndex::new(chunk_size)?;
        Ok(ArchiveWriter::new(
            self.shared.clone(),
            name,
            Chunking::Fixed(chunk_size),
            &mut self.files,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::test_data::pseudo_random;

    fn data(seed: u64, len: usize) -> Vec<u8> {
        pseudo_random(len, seed)
    }
    use crate::chunk_dir::Inserted;
    use crate::sink::{ChunkSource, encode_for_sink};
    use crate::{ArchiveReader, open_manifest_bytes};

    /// A chunk store in memory, sink and source at once, counting the reads of each chunk.
    #[derive(Debug, Default)]
    struct MemoryStore(
        Mutex<HashMap<ChunkId, Vec<u8>>>,
        Mutex<HashMap<ChunkId, usize>>,
    );

    impl ChunkSink for MemoryStore {
        fn store_chunk(
            &self,
            id: &ChunkId,
            plain: &bytes::Bytes,
            key: Option<&CryptKey>,
        ) -> Result<Inserted> {
            let mut map = self.0.lock().unwrap();
            if map.contains_key(id) {
                return Ok(Inserted::Existing);
            }
            let bytes = encode_for_sink(id, plain, key)?;
            let n = bytes.len() as u64;
            map.insert(*id, bytes);
            Ok(Inserted::New(n))
        }
    }

    impl ChunkSource for MemoryStore {
        fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
            *self.1.lock().unwrap().entry(*id).or_default() += 1;
            self.0
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .ok_or(Error::ChunkNotFound { id: *id })
        }
    }

    fn snap() -> SnapshotRef {
        SnapshotRef {
            ns: Default::default(),
            group: "host/web01".parse().unwrap(),
            time: 1_700_000_000,
        }
    }

    fn round_trip(key: Option<CryptKey>) {
        let store = Arc::new(MemoryStore::default());
        let stream = data(7, 5_000_000);
        let image = data(9, 3 * 65536 + 100);
        let mut session = StreamSession::new(store.clone(), key.clone());
        let mut w = session.dynamic_writer("data.bin").unwrap();
        for piece in stream.chunks(700_000) {
            w.append(piece).unwrap();
        }
        w.finish().unwrap();
        let mut w = session.fixed_writer("disk0.img", 65536).unwrap();
        w.append(&image).unwrap();
        w.finish().unwrap();
        assert!(session.dynamic_writer("data.bin").is_err());
        let stats = session.stats();
        assert_eq!(stats.bytes, (stream.len() + image.len()) as u64);
        assert_eq!(stats.chunks, stats.new_chunks);
        assert_eq!(session.files().len(), 2);

        let manifest = session.manifest(snap(), 1_700_000_100);
        let bytes = manifest.encode(session.key()).unwrap();
        let opened = open_manifest_bytes(&snap(), &bytes, key.as_ref()).unwrap();
        assert_eq!(opened, manifest);
        assert_eq!(session.into_files(), manifest.files);

        let source: Arc<dyn ChunkSource> = store.clone();
        let reader = ArchiveReader::open(source.clone(), &opened, "data.bin", key.as_ref());
        let mut out = Vec::new();
        reader.unwrap().copy_to(&mut out).unwrap();
        assert!(out == stream, "dynamic archive differs");
        let mut reader =
            ArchiveReader::open(source.clone(), &opened, "disk0.img", key.as_ref()).unwrap();
        let mut buf = vec![0u8; 200];
        let n = reader.read_at(65500, &mut buf).unwrap();
        assert_eq!(&buf[..n], &image[65500..65500 + n]);
        let mut out = Vec::new();
        reader.copy_to(&mut out).unwrap();
        assert!(out == image, "fixed archive differs");

        let err = ArchiveReader::open(source, &opened, "nope", key.as_ref()).unwrap_err();
        assert!(err.to_string().contains("data.bin, disk0.img"), "{err}");
    }

    #[test]
    fn plain_archives_round_trip_through_a_memory_store() {
        round_trip(None);
    }

    #[test]
    fn encrypted_archives_round_trip_and_need_their_key() {
        let key = CryptKey::generate();
        round_trip(Some(key.clone()));

        let store = Arc::new(MemoryStore::default());
        let mut session = StreamSession::new(store.clone(), Some(key.clone()));
        let mut w = session.dynamic_writer("data.bin").unwrap();
        w.append(b"secret").unwrap();
        w.finish().unwrap();
        let bytes = session.manifest(snap(), 1).encode(Some(&key)).unwrap();
        let err = open_manifest_bytes(&snap(), &bytes, None).unwrap_err();
        assert!(
            err.to_string().starts_with("encryption key not found"),
            "{err}"
        );
        let other = CryptKey::generate();
        let err = open_manifest_bytes(&snap(), &bytes, Some(&other)).unwrap_err();
        assert!(err.to_string().starts_with("fingerprint mismatch"), "{err}");
        let mut elsewhere = snap();
        elsewhere.time += 1;
        assert!(open_manifest_bytes(&elsewhere, &bytes, Some(&key)).is_err());
        let stored = store.0.lock().unwrap();
        assert!(
            stored
                .values()
                .all(|c| !c.windows(6).any(|w| w == b"secret"))
        );
    }

    #[test]
    fn a_chunk_written_twice_is_stored_once() {
        let store = Arc::new(MemoryStore::default());
        let mut session = StreamSession::new(store.clone(), None);
        let block = data(3, 65536);
        let mut w = session.fixed_writer("disk0.img", 65536).unwrap();
        for _ in 0..4 {
            w.append(&block).unwrap();
        }
        w.finish().unwrap();
        let stats = session.stats();
        assert_eq!((stats.chunks, stats.new_chunks), (4, 1));
        // The chunk and the index.
        assert_eq!(store.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_chunk_named_again_within_the_read_ahead_is_read_once() {
        let store = Arc::new(MemoryStore::default());
        let mut session = StreamSession::new(store.clone(), None);
        let block = |seed: u64| data(seed, 65536);
        // A chunk repeated at once and a few chunks on (as an incremental backup that reuses
        // runs of files leaves them), and once more far beyond any read-ahead window.
        let mut seeds = vec![1, 1, 2, 1, 3, 3, 3, 4, 2];
        let window = crate::reader::WINDOW_PER_WORKER * crate::reader::read_workers();
        let far = 100 + window as u64 + 10;
        seeds.extend(100..far);
        seeds.push(1);
        let mut w = session.fixed_writer("disk0.img", 65536).unwrap();
        for s in &seeds {
            w.append(&block(*s)).unwrap();
        }
        w.finish().unwrap();
        let manifest = session.manifest(snap(), 1);
        let source: Arc<dyn ChunkSource> = store.clone();
        let reader = ArchiveReader::open(source, &manifest, "disk0.img", None).unwrap();
        let mut out = Vec::new();
        reader.copy_to(&mut out).unwrap();
        let want: Vec<u8> = seeds.iter().flat_map(|s| block(*s)).collect();
        assert!(out == want, "the archive reads back in order");
        let reads = store.1.lock().unwrap();
        let of = |s: u64| reads[&crate::envelope::chunk_id(&block(s), None)];
        assert_eq!((of(1), of(2), of(3), of(4)), (2, 1, 1, 1));
        assert!((100..far).all(|s| of(s) == 1));
    }
}
