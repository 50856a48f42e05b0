//! A backup session: writes the archives of one new snapshot and commits its manifest.
//!
//! The session holds a lease in the catalog from start to commit: it makes a second backup of
//! the same group `source busy`, and it tells GC that chunks written or re-used since the
//! lease started may be referenced soon. Commit order: every chunk and index stored → one
//! sync of the datastore → the manifest committed with a synced write. A session dropped or
//! cancelled before commit leaves no snapshot, only unreferenced chunks that GC frees.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ironcore_types::{ChunkId, SnapshotRef};
use serde::Serialize;
use tracing::{info, warn};

use crate::catalog::{SessionLease, SnapshotRecord, VerifyState};
use crate::chunk_dir::Inserted;
use crate::crypto::CryptKey;
use crate::datastore::Datastore;
use crate::manifest::Manifest;
use crate::sink::ChunkSink;
use crate::stream_session::StreamSession;
use crate::writer::ArchiveWriter;
use crate::{Error, Result};

/// A lease not renewed for this long belongs to a dead session.
pub const LEASE_TTL_SECS: i64 = 600;
/// How often a live session renews its lease.
pub(crate) const LEASE_RENEW_SECS: i64 = 60;

/// Cancels a running session from another thread.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// Asks the session to stop; it fails with `task cancelled` and commits nothing.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Counters of a session, shared with its workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub chunks: AtomicU64,
    pub new_chunks: AtomicU64,
    pub bytes: AtomicU64,
    pub new_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
}

/// What a session did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionStats {
    /// Chunks written by the client, new or not.
    pub chunks: u64,
    /// Chunks the datastore did not have.
    pub new_chunks: u64,
    /// Plaintext bytes written by the client.
    pub bytes: u64,
    /// Plaintext bytes of new chunks.
    pub new_bytes: u64,
    /// Bytes stored on disk for new chunks (after compression and encryption).
    pub stored_bytes: u64,
}

impl SessionStats {
    /// The share of chunks the datastore already had (0.0 to 1.0).
    pub fn dedup_hit_rate(&self) -> f64 {
        if self.chunks == 0 {
            return 0.0;
        }
        (self.chunks - self.new_chunks) as f64 / self.chunks as f64
    }
}

/// The sink of a local backup session: the datastore, plus the session's lease, renewed when
/// the writers call [`ChunkSink::keep_alive`].
#[derive(Debug)]
struct LeasedDatastore {
    ds: Arc<Datastore>,
    lease: Mutex<SessionLease>,
}

impl ChunkSink for LeasedDatastore {
    fn store_chunk(&self, id: &ChunkId, plain: &Bytes, key: Option<&CryptKey>) -> Result<Inserted> {
        self.ds.store_chunk(id, plain, key)
    }

    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        self.ds.has_chunk(id)
    }

    /// Renews the lease when it is due.
    fn keep_alive(&self) -> Result<()> {
        let now = now_secs();
        let mut lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        if now - lease.renewed >= LEASE_RENEW_SECS {
            lease.renewed = now;
            self.ds.catalog.renew_lease(self.ds.name(), &lease)?;
        }
        Ok(())
    }
}

impl LeasedDatastore {
    fn release(&self) {
        let id = self.lease.lock().unwrap_or_else(|p| p.into_inner()).id;
        if let Err(e) = self.ds.catalog.release_lease(self.ds.name(), id) {
            warn!(error = %e, "could not release backup lease; it expires by itself");
        }
    }
}

/// A backup of one snapshot in progress.
#[derive(Debug)]
pub struct BackupSession {
    leased: Arc<LeasedDatastore>,
    stream: StreamSession,
    snapshot: SnapshotRef,
    committed: bool,
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl BackupSession {
    /// Starts a session (see [`Datastore::begin_backup`]).
    pub(crate) fn start(
        ds: Arc<Datastore>,
        snapshot: SnapshotRef,
        key: Option<CryptKey>,
    ) -> Result<Self> {
        ds.ensure_writable()?;
        if ds.catalog.snapshot(ds.name(), &snapshot)?.is_some() {
            return Err(Error::SnapshotExists {
                snapshot: snapshot.to_string(),
            });
        }
        let now = now_secs();
        let lease = SessionLease {
            id: rand::random(),
            snapshot: snapshot.clone(),
            started: now,
            renewed: now,
        };
        ds.catalog
            .acquire_lease(ds.name(), &lease, LEASE_TTL_SECS)?;
        info!(datastore = %ds.name(), snapshot = %snapshot, "backup session started");
        let leased = Arc::new(LeasedDatastore {
            ds,
            lease: Mutex::new(lease),
        });
        Ok(Self {
            stream: StreamSession::new(leased.clone(), key),
            leased,
            snapshot,
            committed: false,
        })
    }

    /// The snapshot being written.
    pub fn snapshot(&self) -> &SnapshotRef {
        &self.snapshot
    }

    /// A token that cancels this session from another thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.stream.cancel_token()
    }

    /// What the session did so far.
    pub fn stats(&self) -> SessionStats {
        self.stream.stats()
    }

    /// The sink-based part of the session, for code that writes archives into any sink.
    pub fn stream(&mut self) -> &mut StreamSession {
        &mut self.stream
    }

    /// A writer for a stream cut into content-defined chunks (file archives).
    pub fn dynamic_writer(&mut self, name: &str) -> Result<ArchiveWriter<'_>> {
        self.stream.dynamic_writer(name)
    }

    /// A writer for an image cut into `chunk_size`-byte chunks (disk images).
    pub fn fixed_writer(&mut self, name: &str, chunk_size: u32) -> Result<ArchiveWriter<'_>> {
        self.stream.fixed_writer(name, chunk_size)
    }

    /// Commits the snapshot: sync, then the manifest. Returns it.
    pub fn commit(mut self) -> Result<Manifest> {
        let ds = self.leased.ds.clone();
        if self.stream.is_cancelled() {
            return Err(Error::Cancelled);
        }
        ds.ensure_writable()?;
        ds.sync()?;
        let manifest = self.stream.manifest(self.snapshot.clone(), now_secs());
        let record = SnapshotRecord {
            snapshot: self.snapshot.clone(),
            manifest: manifest.encode(self.stream.key())?,
            size: manifest.size(),
            protected: false,
            verify: VerifyState::NotVerified,
        };
        ds.catalog.insert_snapshot(ds.name(), &record)?;
        self.committed = true;
        self.leased.release();
        let stats = self.stats();
        info!(
            datastore = %ds.name(),
            snapshot = %self.snapshot,
            bytes = stats.bytes,
            new_bytes = stats.new_bytes,
            stored_bytes = stats.stored_bytes,
            "snapshot committed"
        );
        Ok(manifest)
    }
}

impl Drop for BackupSession {
    fn drop(&mut self) {
        if !self.committed {
            warn!(snapshot = %self.snapshot, "backup session ended without commit; nothing was committed");
            self.leased.release();
        }
    }
}

impl Datastore {
    /// Starts a backup of a new snapshot. `source busy` if the group has a backup running;
    /// refused on a quarantined or offline datastore.
    pub fn begin_backup(
        self: &Arc<Self>,
        snapshot: SnapshotRef,
        key: Option<CryptKey>,
    ) -> Result<BackupSession> {
        BackupSession::start(self.clone(), snapshot, key)
    }
}
