//! The replicated state machine on RocksDB.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::rocks::Rocks;
use crate::snapshot_file::SnapshotFile;
use crate::{
    Command, CommandResult, Error, LogId, RocksSnapshotBuilder, Snapshot, SnapshotData,
    SnapshotMeta, StoredMembership, TypeConfig,
};

/// The id of the last applied entry.
pub(crate) const APPLIED_KEY: &[u8] = b"m/applied";
/// The last applied membership.
pub(crate) const MEMBERSHIP_KEY: &[u8] = b"m/membership";
/// The current snapshot ([`StoredSnapshot`]).
pub(crate) const SNAPSHOT_KEY: &[u8] = b"m/snapshot-file";
/// Everything the commands create lives under `d/`; a snapshot carries exactly these keys.
pub(crate) const DATA_PREFIX: &[u8] = b"d/";
/// The first key after every data key (`'0'` follows `'/'`).
pub(crate) const DATA_END: &[u8] = b"d0";
/// The generic metadata key space of [`Command::SetKey`] / [`Command::DeleteKey`].
const KV_PREFIX: &[u8] = b"d/kv/";

fn kv_key(key: &str) -> Vec<u8> {
    let mut k = KV_PREFIX.to_vec();
    k.extend_from_slice(key.as_bytes());
    k
}

/// The current snapshot as recorded in the database: its meta and the file in the snapshot
/// directory that holds its data (see [`crate::snapshot_file`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    /// Its meta.
    pub(crate) meta: SnapshotMeta,
    /// The file's name in the snapshot directory.
    file: String,
    /// The file's size.
    len: u64,
    /// The file's SHA-256.
    digest: [u8; 32],
}

impl StoredSnapshot {
    pub(crate) fn new(meta: SnapshotMeta, file: String, data: &SnapshotFile) -> Self {
        Self {
            meta,
            file,
            len: data.len(),
            digest: data.digest(),
        }
    }

    /// A fresh file name for a snapshot with `meta` (never reused, so a file once written is
    /// never overwritten while a sender may still read it).
    pub(crate) fn file_name(meta: &SnapshotMeta) -> String {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        format!("snapshot-{index}-{nanos}-{seq}.snap")
    }

    /// The current snapshot's record, if there is one.
    pub(crate) fn read(rocks: &Rocks) -> Result<Option<Self>, Error> {
        rocks
            .get(SNAPSHOT_KEY)?
            .map(|b| decode("snapshot", &b))
            .transpose()
    }

    /// Opens its file in `dir`, checking it is still the file recorded.
    fn open(&self, dir: &Path) -> Result<SnapshotFile, Error> {
        let path = dir.join(&self.file);
        let file = SnapshotFile::open(&path).map_err(Error::file(&path))?;
        if file.len() != self.len || file.digest() != self.digest {
            return Err(Error::corrupt(
                "snapshot file",
                format!(
                    "{} no longer matches the snapshot recorded ({} bytes, SHA-256 {})",
                    path.display(),
                    self.len,
                    hex(&self.digest)
                ),
            ));
        }
        Ok(file)
    }

    /// Records this as the current snapshot (synced) and removes every other snapshot file.
    pub(crate) fn make_current(&self, rocks: &Rocks, dir: &Path) -> Result<(), Error> {
        let mut batch = WriteBatch::default();
        batch.put(SNAPSHOT_KEY, encode("snapshot", self)?);
        rocks.write_synced_blocking(batch)?;
        self.remove_others(dir);
        Ok(())
    }

    /// Removes the snapshot files in `dir` other than this one's (best effort: a sender still
    /// reading one keeps its open file).
    fn remove_others(&self, dir: &Path) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".snap") && name != self.file {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Where the snapshot files of the state machine database at `path` live: beside it, in
/// `<name>-snapshots`.
fn snapshot_dir(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push("-snapshots");
    path.with_file_name(name)
}

/// Reads the applied log id and membership through `get` (the live database or a snapshot).
pub(crate) fn read_applied(
    rocks: &Rocks,
    get: impl Fn(&[u8]) -> Result<Option<Vec<u8>>, rocksdb::Error>,
) -> Result<(Option<LogId>, StoredMembership), Error> {
    let applied = get(APPLIED_KEY)
        .map_err(|e| rocks.err(e))?
        .map(|b| decode("applied log id", &b))
        .transpose()?;
    let membership = get(MEMBERSHIP_KEY)
        .map_err(|e| rocks.err(e))?
        .map(|b| decode("applied membership", &b))
        .transpose()?
        .unwrap_or_default();
    Ok((applied, membership))
}

/// Locks the mutex that orders writes of [`SNAPSHOT_KEY`].
pub(crate) fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The guarded state lives in RocksDB, which stays consistent if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// openraft's state machine on RocksDB, in a database of its own.
///
/// Each entry is applied as one atomic write batch holding its data changes together with the
/// new last-applied log id (and membership, for a membership entry); the batches of one
/// `apply` call are made durable by one WAL sync before any response is sent. A crash can
/// therefore only lose a suffix of applied entries, never split one, and openraft re-applies
/// that suffix from the log (the log store persists the committed id).
///
/// A snapshot is a file (see [`crate::snapshot_file`]) of every key under `d/`, raw, read from
/// one RocksDB snapshot together with the applied id and membership (the meta). Snapshot files
/// live beside the database in `<dir>-snapshots/`; the database records which one is current.
/// Installing one replaces all data keys, the applied state and the current-snapshot record in
/// one synced batch.
#[derive(Debug)]
pub struct RocksStateMachine {
    pub(crate) rocks: Rocks,
    /// Where snapshot files live.
    snapshots: Arc<PathBuf>,
    /// Orders writes of the current snapshot between builders and installs.
    snapshot_lock: Arc<Mutex<()>>,
}

impl RocksStateMachine {
    /// Opens (or creates) the state machine database in the directory `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            rocks: Rocks::open(path)?,
            snapshots: Arc::new(snapshot_dir(path)),
            snapshot_lock: Arc::new(Mutex::new(())),
        })
    }

    /// The value of `key` in the generic metadata key space.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.rocks
            .get(&kv_key(key))?
            .map(|b| decode("metadata value", &b))
            .transpose()
    }

    /// A read handle on the typed metadata.
    pub fn view(&self) -> crate::MetaView {
        crate::MetaView {
            rocks: self.rocks.clone(),
        }
    }

    /// Adds `cmd`'s changes to `batch` and says what they do.
    pub(crate) fn apply_command(
        &self,
        cmd: &Command,
        batch: &mut WriteBatch,
    ) -> Result<CommandResult, Error> {
        Ok(match cmd {
            Command::SetKey { key, value } => {
                let k = kv_key(key);
                let replaced = self.rocks.get(&k)?.is_some();
                batch.put(k, encode("metadata value", value)?);
                CommandResult::Set { replaced }
            }
            Command::DeleteKey { key } => {
                let k = kv_key(key);
                let existed = self.rocks.get(&k)?.is_some();
                batch.delete(k);
                CommandResult::Deleted { existed }
            }
            Command::Meta(req) => {
                CommandResult::Meta(crate::meta::apply(&self.view(), batch, req)?)
            }
        })
    }
}

/// Replaces the data keys, the applied state and the current snapshot with `meta` and the
/// records of `data` in one synced batch (blocking; runs on the blocking pool). The file is
/// linked into `dir` first, so the caller may remove its own name for it.
fn install(
    rocks: &Rocks,
    snapshot_lock: &Mutex<()>,
    dir: &Path,
    meta: &SnapshotMeta,
    data: SnapshotFile,
) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(Error::file(dir))?;
    let name = StoredSnapshot::file_name(meta);
    let path = dir.join(&name);
    let kept = data.link_to(&path).map_err(Error::file(&path))?;
    let written = (|| {
        let mut batch = WriteBatch::default();
        batch.delete_range(DATA_PREFIX, DATA_END);
        for record in kept.records().map_err(Error::file(&path))? {
            let (key, value) = record.map_err(Error::file(&path))?;
            if !key.starts_with(DATA_PREFIX) {
                return Err(Error::corrupt(
                    "snapshot data",
                    format!("key {key:?} outside the data key space"),
                ));
            }
            batch.put(key, value);
        }
        match &meta.last_log_id {
            Some(id) => batch.put(APPLIED_KEY, encode("applied log id", id)?),
            None => batch.delete(APPLIED_KEY),
        }
        batch.put(
            MEMBERSHIP_KEY,
            encode("applied membership", &meta.last_membership)?,
        );
        let stored = StoredSnapshot::new(meta.clone(), name, &kept);
        batch.put(SNAPSHOT_KEY, encode("snapshot", &stored)?);
        let _guard = lock(snapshot_lock);
        rocks.write_synced_blocking(batch)?;
        stored.remove_others(dir);
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(&path);
    }
    written?;
    tracing::info!(meta = %meta, bytes = kept.len(), "installed raft snapshot");
    Ok(())
}

impl RaftStateMachine<TypeConfig> for RocksStateMachine {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = RocksSnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok(read_applied(&self.rocks, |k| self.rocks.db.get(k))?)
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut responses = Vec::new();
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let mut batch = WriteBatch::default();
            let result = match &entry.payload {
                EntryPayload::Blank => CommandResult::Applied,
                EntryPayload::Normal(cmd) => self.apply_command(cmd, &mut batch)?,
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    batch.put(MEMBERSHIP_KEY, encode("applied membership", &stored)?);
                    CommandResult::Applied
                }
            };
            batch.put(APPLIED_KEY, encode("applied log id", &entry.log_id)?);
            self.rocks.write_unsynced(batch)?;
            if let Some(responder) = responder {
                responses.push((responder, result));
            }
        }
        self.rocks.sync_wal().await?;
        for (responder, result) in responses {
            responder.send(result);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        RocksSnapshotBuilder::new(
            self.rocks.clone(),
            self.snapshots.clone(),
            self.snapshot_lock.clone(),
        )
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let lock = self.snapshot_lock.clone();
        let meta = meta.clone();
        let dir = self.snapshots.clone();
        self.rocks
            .off_thread(move |rocks| install(rocks, &lock, &dir, &meta, snapshot))
            .await?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let dir = self.snapshots.clone();
        let current = self
            .rocks
            .off_thread(move |rocks| {
                let Some(stored) = StoredSnapshot::read(rocks)? else {
                    return Ok(None);
                };
                let file = stored.open(&dir)?;
                Ok(Some(Snapshot {
                    meta: stored.meta,
                    snapshot: file,
                }))
            })
            .await?;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::{Membership, RaftSnapshotBuilder};

    use super::*;
    use crate::{ClusterNode, Entry};

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id: 1 }, index)
    }

    fn entry(index: u64, payload: EntryPayload<Command, u64, ClusterNode>) -> Entry {
        Entry {
            log_id: log_id(1, index),
            payload,
        }
    }

    fn set(key: &str, value: &[u8]) -> EntryPayload<Command, u64, ClusterNode> {
        EntryPayload::Normal(Command::SetKey {
            key: key.into(),
            value: value.to_vec(),
        })
    }

    fn membership() -> Membership<u64, ClusterNode> {
        let node = |name: &str, site: &str| ClusterNode {
            name: name.into(),
            site: site.into(),
            address: format!("{name}:8007"),
        };
        let nodes = BTreeMap::from([(1, node("a1", "primary")), (2, node("b1", "backup"))]);
        Membership::new(vec![BTreeSet::from([1, 2])], nodes).unwrap()
    }

    async fn apply(sm: &mut RocksStateMachine, entries: Vec<Entry>) {
        let stream = futures_util::stream::iter(entries.into_iter().map(|e| Ok((e, None))));
        sm.apply(stream).await.unwrap();
    }

    #[tokio::test]
    async fn reopened_state_machine_keeps_applied_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut sm = RocksStateMachine::open(dir.path()).unwrap();
            apply(
                &mut sm,
                vec![
                    entry(1, EntryPayload::Blank),
                    entry(2, EntryPayload::Membership(membership())),
                    entry(3, set("a", b"1")),
                    entry(4, set("b", b"2")),
                    entry(5, set("a", b"3")),
                    entry(
                        6,
                        EntryPayload::Normal(Command::DeleteKey { key: "b".into() }),
                    ),
                ],
            )
            .await;
        }
        let mut sm = RocksStateMachine::open(dir.path()).unwrap();
        let (applied, stored) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 6)));
        assert_eq!(stored.log_id(), &Some(log_id(1, 2)));
        assert_eq!(stored.membership(), &membership());
        assert_eq!(sm.get("a").unwrap(), Some(b"3".to_vec()));
        assert_eq!(sm.get("b").unwrap(), None);
    }

    #[tokio::test]
    async fn snapshot_moves_state_and_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let mut leader = RocksStateMachine::open(&dir.path().join("l")).unwrap();
        let mut follower = RocksStateMachine::open(&dir.path().join("f")).unwrap();
        apply(
            &mut leader,
            vec![
                entry(1, EntryPayload::Membership(membership())),
                entry(2, set("kept", b"yes")),
            ],
        )
        .await;
        apply(&mut follower, vec![entry(1, set("stale", b"gone"))]).await;

        let snap = leader
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 2)));
        // Applying more does not change the snapshot already taken.
        apply(&mut leader, vec![entry(3, set("later", b"x"))]).await;
        let current = leader.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, snap.meta);

        follower
            .install_snapshot(&current.meta, current.snapshot)
            .await
            .unwrap();
        assert_eq!(follower.get("kept").unwrap(), Some(b"yes".to_vec()));
        assert_eq!(follower.get("stale").unwrap(), None);
        assert_eq!(follower.get("later").unwrap(), None);
        let (applied, stored) = follower.applied_state().await.unwrap();
        assert_eq!(applied, Some(log_id(1, 2)));
        assert_eq!(stored.membership(), &membership());
        drop(follower);

        // The installed snapshot survives a restart.
        let mut follower = RocksStateMachine::open(&dir.path().join("f")).unwrap();
        let again = follower.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(again.meta, snap.meta);
    }

    #[tokio::test]
    async fn bad_snapshot_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = RocksStateMachine::open(&dir.path().join("sm")).unwrap();
        apply(&mut sm, vec![entry(1, set("a", b"1"))]).await;
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(2, 9)),
            last_membership: StoredMembership::default(),
        };
        let mut outside =
            crate::snapshot_file::SnapshotWriter::create(&dir.path().join("o")).unwrap();
        outside.put(b"m/applied", &[1]).unwrap();
        let outside = std::fs::read(outside.finish().unwrap().path()).unwrap();
        for (i, data) in [vec![], vec![9, 0], b"ICSN\x01\x01".to_vec(), outside]
            .into_iter()
            .enumerate()
        {
            let path = dir.path().join(format!("bad-{i}"));
            std::fs::write(&path, &data).unwrap();
            let err = sm
                .install_snapshot(&meta, SnapshotFile::open(&path).unwrap())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "case {i}: {err}");
        }
        let left: Vec<_> = std::fs::read_dir(&*sm.snapshots)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "a refused snapshot leaves no file: {left:?}"
        );
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1)));
        assert_eq!(sm.get("a").unwrap(), Some(b"1".to_vec()));
        assert!(sm.get_current_snapshot().await.unwrap().is_none());
    }
}
