//! A datastore on a local directory: chunk files plus the snapshot records in the catalog.
//!
//! Every operation checks the datastore's health first. An I/O error that could mean the
//! directory went away (not found, stale handle) triggers a probe: if the probe finds the
//! datastore gone, the error becomes `offline` with the probe's reason; the next operation
//! probes again and carries on by itself once the path is back.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ironcore_types::{BackupGroup, ChunkId, DatastoreName, Namespace, SnapshotRef};
use tracing::{info, warn};

use crate::catalog::{Catalog, DatastoreRecord, SnapshotRecord};
use crate::chunk_dir::{ChunkDir, Inserted};
use crate::crypto::CryptKey;
use crate::envelope;
use crate::health::{self, Health, MARKER_FILE, Marker};
use crate::manifest::Manifest;
use crate::prune::{self, KeepOptions, PruneCandidate, PruneDecision};
use crate::{Error, Result};

const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;
const ESTALE: i32 = 116;

/// Settings of a new datastore.
#[derive(Clone, Copy, Debug)]
pub struct DatastoreOptions {
    /// zstd level for new chunks (0 = store uncompressed). Level 1 is fast and still shrinks
    /// text several times.
    pub zstd_level: i32,
}

impl Default for DatastoreOptions {
    fn default() -> Self {
        Self {
            zstd_level: envelope::DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// One datastore, shared by the sessions, readers and jobs that use it.
#[derive(Debug)]
pub struct Datastore {
    name: String,
    root: PathBuf,
    uuid: String,
    zstd_level: i32,
    pub(crate) chunks: ChunkDir,
    pub(crate) catalog: Arc<Catalog>,
    health: Mutex<Health>,
    quarantined: AtomicBool,
}

impl Datastore {
    /// Creates a datastore in `path` (which must not exist or be empty) and records it.
    pub fn create(
        catalog: Arc<Catalog>,
        name: &DatastoreName,
        path: &Path,
        options: DatastoreOptions,
    ) -> Result<Arc<Self>> {
        if catalog.datastore(name.as_str())?.is_some() {
            return Err(Error::InvalidInput {
                what: "datastore name",
                detail: format!("datastore '{name}' already exists; pick another name"),
            });
        }
        if !(0..=19).contains(&options.zstd_level) {
            return Err(Error::InvalidInput {
                what: "zstd level",
                detail: format!("{} is outside 0 (off) to 19", options.zstd_level),
            });
        }
        match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::NotADatastore {
                        datastore: name.to_string(),
                        path: path.to_path_buf(),
                        detail: "the directory is not empty; a new datastore needs an empty or new directory".into(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("opening datastore directory", path, e)),
        }
        ChunkDir::create(path).map_err(|e| Error::io("creating datastore directories", path, e))?;
        let uuid = hex::encode(rand::random::<[u8; 16]>());
        let marker = Marker {
            version: 1,
            name: name.to_string(),
            uuid: uuid.clone(),
        };
        let marker_bytes = serde_json::to_vec_pretty(&marker)
            .map_err(|e| Error::corrupt("marker", e.to_string()))?;
        write_durable(&path.join(MARKER_FILE), &marker_bytes)?;
        let record = DatastoreRecord {
            name: name.to_string(),
            path: path.to_path_buf(),
            uuid,
            zstd_level: options.zstd_level,
            quarantined: false,
        };
        catalog.put_datastore(&record)?;
        info!(datastore = %name, path = %path.display(), "datastore created");
        Ok(Arc::new(Self::from_record(catalog, record)))
    }

    /// Opens a datastore recorded in the catalog. An unreachable directory does not fail the
    /// open: the datastore starts `offline` and comes online when the path is back.
    pub fn open(catalog: Arc<Catalog>, name: &DatastoreName) -> Result<Arc<Self>> {
        let record = catalog
            .datastore(name.as_str())?
            .ok_or_else(|| Error::InvalidInput {
                what: "datastore",
                detail: format!(
                    "no datastore named '{name}'; list them with `ironcore-backup datastore list`"
                ),
            })?;
        let ds = Self::from_record(catalog, record);
        ds.probe();
        Ok(Arc::new(ds))
    }

    fn from_record(catalog: Arc<Catalog>, r: DatastoreRecord) -> Self {
        let health = health::probe(&r.path, &r.uuid);
        Self {
            chunks: ChunkDir::new(&r.path),
            name: r.name,
            root: r.path,
            uuid: r.uuid,
            zstd_level: r.zstd_level,
            catalog,
            health: Mutex::new(health),
            quarantined: AtomicBool::new(r.quarantined),
        }
    }

    /// The datastore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The datastore's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The catalog it records snapshots in.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Health as of the last probe.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks the directory now, logs any change, and returns the result.
    pub fn probe(&self) -> Health {
        let now = health::probe(&self.root, &self.uuid);
        let mut cur = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if *cur != now {
            match &now {
                Health::Online => info!(datastore = %self.name, "datastore back online"),
                Health::Offline { reason } => {
                    warn!(datastore = %self.name, %reason, "datastore offline")
                }
            }
            *cur = now.clone();
        }
        now
    }

    /// Cheap check for per-chunk work: trusts the last probe while it said online (an I/O
    /// error re-probes), probes again while it said offline.
    pub(crate) fn ensure_online(&self) -> Result<()> {
        let health = match self.health() {
            Health::Online => return Ok(()),
            Health::Offline { .. } => self.probe(),
        };
        match health {
            Health::Online => Ok(()),
            Health::Offline { reason } => Err(self.offline(reason)),
        }
    }

    /// Fresh probe, for the start and the commit point of anything that writes or sweeps.
    pub(crate) fn ensure_online_now(&self) -> Result<()> {
        match self.probe() {
            Health::Online => Ok(()),
            Health::Offline { reason } => Err(self.offline(reason)),
        }
    }

    fn offline(&self, reason: String) -> Error {
        Error::Offline {
            datastore: self.name.clone(),
            reason,
        }
    }

    /// Turns an I/O error on the datastore into the error the operator needs: `no space left
    /// on datastore`, `offline` (after a probe), or the plain I/O error.
    pub(crate) fn classify(&self, action: &'static str, path: &Path, e: io::Error) -> Error {
        match e.raw_os_error() {
            Some(ENOSPC) | Some(EDQUOT) => {
                return Error::NoSpace {
                    datastore: self.name.clone(),
                };
            }
            Some(ESTALE) => {}
            _ if e.kind() == io::ErrorKind::NotFound => {}
            _ => return Error::io(action, path, e),
        }
        match self.probe() {
            Health::Offline { reason } => self.offline(reason),
            Health::Online => Error::io(action, path, e),
        }
    }

    /// Whether the datastore is quarantined.
    pub fn is_quarantined(&self) -> bool {
        self.quarantined.load(Ordering::SeqCst)
    }

    /// Quarantines the datastore (writes and GC refused) or lifts the quarantine.
    pub fn set_quarantined(&self, on: bool) -> Result<()> {
        let mut record =
            self.catalog
                .datastore(&self.name)?
                .ok_or_else(|| Error::InvalidInput {
                    what: "datastore",
                    detail: format!("datastore '{}' is no longer recorded", self.name),
                })?;
        record.quarantined = on;
        self.catalog.put_datastore(&record)?;
        self.quarantined.store(on, Ordering::SeqCst);
        warn!(datastore = %self.name, quarantined = on, "quarantine changed");
        Ok(())
    }

    pub(crate) fn ensure_writable(&self) -> Result<()> {
        if self.is_quarantined() {
            return Err(Error::Quarantined {
                datastore: self.name.clone(),
            });
        }
        self.ensure_online_now()
    }

    /// Stores a plaintext chunk unless the datastore has it; compression and encryption run
    /// only for new chunks.
    pub(crate) fn store_chunk(
        &self,
        id: &ChunkId,
        plain: &[u8],
        key: Option<&CryptKey>,
    ) -> Result<Inserted> {
        let path = self.chunks.path(id);
        if self.is_quarantined() {
            return Err(Error::Quarantined {
                datastore: self.name.clone(),
            });
        }
        if self
            .chunks
            .touch_if_present(id)
            .map_err(|e| self.classify("checking chunk", &path, e))?
        {
            return Ok(Inserted::Existing);
        }
        let bytes = envelope::encode_chunk(id, plain, key, self.zstd_level)?;
        self.chunks
            .insert(id, &bytes)
            .map_err(|e| self.classify("writing chunk", &path, e))
    }

    /// Whether chunk `id` is stored; touches it so GC keeps it for a session that references it.
    pub(crate) fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        let path = self.chunks.path(id);
        self.chunks
            .touch_if_present(id)
            .map_err(|e| self.classify("checking chunk", &path, e))
    }

    /// Where chunk `id` is stored (whether or not it exists).
    pub fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        self.chunks.path(id)
    }

    /// Reads a chunk's stored bytes (`chunk not found` if it is missing while the datastore is
    /// online).
    pub fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        self.ensure_online()?;
        let path = self.chunks.path(id);
        self.chunks.read(id).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound && self.probe().is_online() {
                Error::ChunkNotFound { id: *id }
            } else {
                self.classify("reading chunk", &path, e)
            }
        })
    }

    /// Makes everything written so far durable (before it is referenced).
    pub(crate) fn sync(&self) -> Result<()> {
        self.chunks
            .sync()
            .map_err(|e| self.classify("syncing datastore", self.chunks.base(), e))
    }

    /// Every committed snapshot, ordered by namespace, group and time.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        self.catalog.snapshots(&self.name)
    }

    /// The snapshots of one group, oldest first.
    pub fn group_snapshots(
        &self,
        ns: &Namespace,
        group: &BackupGroup,
    ) -> Result<Vec<SnapshotRecord>> {
        Ok(self
            .snapshots()?
            .into_iter()
            .filter(|r| r.snapshot.ns == *ns && r.snapshot.group == *group)
            .collect())
    }

    /// Every group with a snapshot, with its snapshot count.
    pub fn groups(&self) -> Result<BTreeMap<(Namespace, BackupGroup), usize>> {
        let mut out = BTreeMap::new();
        for r in self.snapshots()? {
            *out.entry((r.snapshot.ns, r.snapshot.group)).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// One snapshot's record.
    pub fn snapshot(&self, s: &SnapshotRef) -> Result<SnapshotRecord> {
        self.catalog
            .snapshot(&self.name, s)?
            .ok_or_else(|| Error::SnapshotNotFound {
                snapshot: s.to_string(),
            })
    }

    /// The newest snapshot of a group at or before `time` (epoch seconds), for `restore --at`.
    pub fn snapshot_at(
        &self,
        ns: &Namespace,
        group: &BackupGroup,
        time: i64,
    ) -> Result<SnapshotRecord> {
        let all = self.group_snapshots(ns, group)?;
        let (first, last) = match (all.first(), all.last()) {
            (Some(f), Some(l)) => (f.snapshot.time, l.snapshot.time),
            _ => {
                return Err(Error::SnapshotNotFound {
                    snapshot: format!("{group} (the group has no snapshots)"),
                });
            }
        };
        all.into_iter()
            .rev()
            .find(|r| r.snapshot.time <= time)
            .ok_or_else(|| Error::SnapshotNotFound {
                snapshot: format!(
                    "{group} at or before {}: the group's snapshots cover {} to {}",
                    ironcore_types::format_time(time),
                    ironcore_types::format_time(first),
                    ironcore_types::format_time(last)
                ),
            })
    }

    /// A snapshot's manifest, checked for integrity.
    pub fn manifest(&self, s: &SnapshotRef) -> Result<Manifest> {
        Ok(Manifest::decode(&self.snapshot(s)?.manifest)?.0)
    }

    /// Marks a snapshot protected (never pruned or forgotten) or lifts that.
    pub fn set_protected(&self, s: &SnapshotRef, protected: bool) -> Result<()> {
        let mut rec = self.snapshot(s)?;
        rec.protected = protected;
        self.catalog.update_snapshot(&self.name, &rec)
    }

    /// Forgets a snapshot; its chunks are freed by the next GC. Protected snapshots are refused.
    pub fn forget(&self, s: &SnapshotRef) -> Result<()> {
        let rec = self.snapshot(s)?;
        if rec.protected {
            return Err(Error::Protected {
                snapshot: s.to_string(),
            });
        }
        self.catalog.remove_snapshot(&self.name, s)?;
        info!(datastore = %self.name, snapshot = %s, "snapshot forgotten");
        Ok(())
    }

    /// Plans a prune of one group and, unless `dry_run`, forgets the snapshots it removes.
    pub fn prune(
        &self,
        ns: &Namespace,
        group: &BackupGroup,
        keep: &KeepOptions,
        tz: chrono_tz::Tz,
        dry_run: bool,
    ) -> Result<Vec<(SnapshotRef, PruneDecision)>> {
        let records = self.group_snapshots(ns, group)?;
        let candidates: Vec<PruneCandidate> = records
            .iter()
            .map(|r| PruneCandidate {
                time: r.snapshot.time,
                protected: r.protected,
            })
            .collect();
        let plan = prune::plan_prune(&candidates, keep, tz)?;
        let mut out = Vec::with_capacity(plan.len());
        for decision in plan {
            let snapshot = SnapshotRef {
                ns: ns.clone(),
                group: group.clone(),
                time: decision.time,
            };
            if !dry_run && !decision.is_kept() {
                self.catalog.remove_snapshot(&self.name, &snapshot)?;
                info!(datastore = %self.name, snapshot = %snapshot, "pruned");
            }
            out.push((snapshot, decision));
        }
        Ok(out)
    }
}

/// Writes a small file durably: temporary file, fsync, rename, directory fsync.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let dir = path.parent().unwrap_or(Path::new("."));
    let run = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    };
    run().map_err(|e| Error::io("writing", path, e))
}
