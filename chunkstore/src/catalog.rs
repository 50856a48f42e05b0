//! The node-local metadata database (RocksDB): datastores, committed snapshots with their
//! manifests, protection and verify state, and the leases of backups in progress.
//!
//! It lives on the node's own disk, not inside a datastore, so a datastore whose mount
//! vanishes never takes its metadata with it. The cluster issues replace the snapshot records
//! with Raft state; the record types are the ones they will agree on. Every value starts with a
//! format version byte, and every commit is a synced write.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ironcore_types::SnapshotRef;
use rocksdb::{DB, Direction, IteratorMode, Options, WriteOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

const VALUE_VERSION: u8 = 1;

/// The result of the last verification of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifyState {
    /// Never verified.
    #[default]
    NotVerified,
    /// Every chunk re-read and re-hashed fine at `at` (epoch seconds).
    Ok {
        /// When.
        at: i64,
    },
    /// Some chunks were missing or damaged at `at`.
    Corrupt {
        /// When.
        at: i64,
        /// How many distinct chunks were bad.
        bad_chunks: u32,
    },
}

/// A committed snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Which snapshot.
    pub snapshot: SnapshotRef,
    /// The stored manifest bytes (see [`crate::Manifest`]).
    pub manifest: Vec<u8>,
    /// Logical size of its archives.
    pub size: u64,
    /// Protected snapshots are never pruned or forgotten.
    pub protected: bool,
    /// Last verification.
    pub verify: VerifyState,
}

/// A backup in progress: GC keeps everything it may reference while the lease is fresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLease {
    /// Unique id of the session.
    pub id: u64,
    /// The snapshot being written.
    pub snapshot: SnapshotRef,
    /// When the session started (epoch seconds).
    pub started: i64,
    /// When the session last proved it was alive (epoch seconds).
    pub renewed: i64,
}

/// A datastore known to this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatastoreRecord {
    /// Its name.
    pub name: String,
    /// Its directory.
    pub path: PathBuf,
    /// The id written in its marker file, to recognise it when it is mounted again.
    pub uuid: String,
    /// zstd level for new chunks (0 = no compression).
    pub zstd_level: i32,
    /// Quarantined: writes and GC refused.
    pub quarantined: bool,
}

/// The node-local metadata database.
pub struct Catalog {
    db: DB,
    path: PathBuf,
    /// Serialises check-then-write commits (snapshot uniqueness, lease exclusivity).
    commit: Mutex<()>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Catalog({})", self.path.display())
    }
}

fn snapshot_prefix(ds: &str) -> Vec<u8> {
    format!("s\0{ds}\0").into_bytes()
}

fn snapshot_key(ds: &str, s: &SnapshotRef) -> Vec<u8> {
    let mut k = format!("s\0{ds}\0{}\0{}\0", s.ns, s.group).into_bytes();
    // Sign-flipped big-endian so keys sort by time.
    k.extend_from_slice(&((s.time as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn lease_key(ds: &str, id: u64) -> Vec<u8> {
    let mut k = format!("l\0{ds}\0").into_bytes();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn datastore_key(ds: &str) -> Vec<u8> {
    format!("d\0{ds}").into_bytes()
}

impl Catalog {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path).map_err(|e| Error::Catalog {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            commit: Mutex::new(()),
        })
    }

    fn err(&self, e: rocksdb::Error) -> Error {
        Error::Catalog {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded state lives in RocksDB, which stays consistent if a holder panicked.
        self.commit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put<T: Serialize>(&self, key: &[u8], value: &T) -> Result<()> {
        let mut bytes = vec![VALUE_VERSION];
        bytes.extend(
            postcard::to_allocvec(value)
                .map_err(|e| Error::corrupt("catalog record", format!("cannot encode: {e}")))?,
        );
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.put_opt(key, bytes, &wo).map_err(|e| self.err(e))
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.db.get(key).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some),
        }
    }

    fn delete(&self, key: &[u8]) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.delete_opt(key, &wo).map_err(|e| self.err(e))
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    /// Records a datastore (replacing an earlier record of the same name).
    pub fn put_datastore(&self, rec: &DatastoreRecord) -> Result<()> {
        self.put(&datastore_key(&rec.name), rec)
    }

    /// A datastore's record.
    pub fn datastore(&self, name: &str) -> Result<Option<DatastoreRecord>> {
        self.get(&datastore_key(name))
    }

    /// Every datastore's record.
    pub fn datastores(&self) -> Result<Vec<DatastoreRecord>> {
        self.scan(b"d\0")
    }

    /// Commits a new snapshot; refuses one that already exists.
    pub fn insert_snapshot(&self, ds: &str, rec: &SnapshotRecord) -> Result<()> {
        let key = snapshot_key(ds, &rec.snapshot);
        let _g = self.lock();
        if self.db.get(&key).map_err(|e| self.err(e))?.is_some() {
            return Err(Error::SnapshotExists {
                snapshot: rec.snapshot.to_string(),
            });
        }
        self.put(&key, rec)
    }

    /// Replaces an existing snapshot's record (protection, verify state).
    pub fn update_snapshot(&self, ds: &str, rec: &SnapshotRecord) -> Result<()> {
        self.put(&snapshot_key(ds, &rec.snapshot), rec)
    }

    /// One snapshot's record.
    pub fn snapshot(&self, ds: &str, s: &SnapshotRef) -> Result<Option<SnapshotRecord>> {
        self.get(&snapshot_key(ds, s))
    }

    /// Every snapshot of a datastore, ordered by namespace, group, time.
    pub fn snapshots(&self, ds: &str) -> Result<Vec<SnapshotRecord>> {
        self.scan(&snapshot_prefix(ds))
    }

    /// Forgets a snapshot (its chunks are freed by the next GC).
    pub fn remove_snapshot(&self, ds: &str, s: &SnapshotRef) -> Result<()> {
        self.delete(&snapshot_key(ds, s))
    }

    /// Registers a backup in progress; `source busy` if a fresh lease holds the same group.
    pub fn acquire_lease(&self, ds: &str, lease: &SessionLease, ttl_secs: i64) -> Result<()> {
        let _g = self.lock();
        for other in self.leases(ds)? {
            let fresh = lease.started - other.renewed < ttl_secs;
            if fresh
                && other.snapshot.ns == lease.snapshot.ns
                && other.snapshot.group == lease.snapshot.group
            {
                return Err(Error::SourceBusy {
                    group: format!("{}", other.snapshot.group),
                    since: ironcore_types::format_time(other.started),
                });
            }
        }
        self.put(&lease_key(ds, lease.id), lease)
    }

    /// Refreshes a lease.
    pub fn renew_lease(&self, ds: &str, lease: &SessionLease) -> Result<()> {
        self.put(&lease_key(ds, lease.id), lease)
    }

    /// Ends a lease.
    pub fn release_lease(&self, ds: &str, id: u64) -> Result<()> {
        self.delete(&lease_key(ds, id))
    }

    /// Every lease of a datastore, fresh or not.
    pub fn leases(&self, ds: &str) -> Result<Vec<SessionLease>> {
        self.scan(format!("l\0{ds}\0").as_bytes())
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VALUE_VERSION, body)) => postcard::from_bytes(body)
            .map_err(|e| Error::corrupt("catalog record", format!("does not parse: {e}"))),
        Some((v, _)) => Err(Error::corrupt(
            "catalog record",
            format!("version {v} not supported"),
        )),
        None => Err(Error::corrupt("catalog record", "empty value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(group: &str, time: i64) -> SnapshotRef {
        SnapshotRef {
            ns: "prod".parse().unwrap(),
            group: group.parse().unwrap(),
            time,
        }
    }

    #[test]
    fn snapshots_are_unique_and_listed_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        for t in [30, -5, 10] {
            let rec = SnapshotRecord {
                snapshot: snap("host/a", t),
                manifest: vec![1, 2, 3],
                size: 3,
                protected: false,
                verify: VerifyState::NotVerified,
            };
            cat.insert_snapshot("ds", &rec).unwrap();
        }
        let again = cat.snapshots("ds").unwrap()[0].clone();
        assert!(matches!(
            cat.insert_snapshot("ds", &again),
            Err(Error::SnapshotExists { .. })
        ));
        let times: Vec<i64> = cat
            .snapshots("ds")
            .unwrap()
            .iter()
            .map(|r| r.snapshot.time)
            .collect();
        assert_eq!(times, vec![-5, 10, 30]);
        assert!(cat.snapshots("other").unwrap().is_empty());
    }

    #[test]
    fn a_fresh_lease_makes_the_same_group_busy() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(dir.path()).unwrap();
        let lease = |id, group: &str, started| SessionLease {
            id,
            snapshot: snap(group, started),
            started,
            renewed: started,
        };
        cat.acquire_lease("ds", &lease(1, "host/a", 100), 60)
            .unwrap();
        cat.acquire_lease("ds", &lease(2, "host/b", 100), 60)
            .unwrap();
        let err = cat
            .acquire_lease("ds", &lease(3, "host/a", 120), 60)
            .unwrap_err();
        assert!(err.to_string().starts_with("source busy"), "{err}");
        // An expired lease (its holder died) does not block.
        cat.acquire_lease("ds", &lease(4, "host/a", 500), 60)
            .unwrap();
        cat.release_lease("ds", 1).unwrap();
        assert_eq!(cat.leases("ds").unwrap().len(), 2);
    }
}
