//! Builds snapshots of the state machine.

use std::io::{self, Cursor};
use std::sync::{Arc, Mutex};

use openraft::RaftSnapshotBuilder;
use rocksdb::{Direction, IteratorMode};

use crate::codec::{decode, encode};
use crate::rocks::Rocks;
use crate::state_machine::{DATA_PREFIX, SNAPSHOT_KEY, StoredSnapshot, lock, read_applied};
use crate::{Error, Snapshot, SnapshotData, SnapshotMeta, TypeConfig};

/// Builds a snapshot of a [`crate::RocksStateMachine`] from one consistent RocksDB snapshot
/// (data keys, applied log id and membership all read at the same instant), and keeps it as
/// the machine's current snapshot unless a newer one was installed meanwhile.
#[derive(Clone, Debug)]
pub struct RocksSnapshotBuilder {
    rocks: Rocks,
    snapshot_lock: Arc<Mutex<()>>,
}

impl RocksSnapshotBuilder {
    pub(crate) fn new(rocks: Rocks, snapshot_lock: Arc<Mutex<()>>) -> Self {
        Self {
            rocks,
            snapshot_lock,
        }
    }

    /// Reads the meta and the encoded data from one RocksDB snapshot.
    fn capture(&self) -> Result<(SnapshotMeta, Vec<u8>), Error> {
        let view = self.rocks.db.snapshot();
        let (last_log_id, last_membership) = read_applied(&self.rocks, |k| view.get(k))?;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for item in view.iterator(IteratorMode::From(DATA_PREFIX, Direction::Forward)) {
            let (key, value) = item.map_err(|e| self.rocks.err(e))?;
            if !key.starts_with(DATA_PREFIX) {
                break;
            }
            pairs.push((key.into_vec(), value.into_vec()));
        }
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        Ok((meta, encode("snapshot data", &pairs)?))
    }

    fn build(&self) -> Result<Snapshot, Error> {
        let (meta, data) = self.capture()?;
        let _guard = lock(&self.snapshot_lock);
        let current: Option<StoredSnapshot> = self
            .rocks
            .get(SNAPSHOT_KEY)?
            .map(|b| decode("snapshot", &b))
            .transpose()?;
        if current.is_none_or(|c| c.meta.last_log_id <= meta.last_log_id) {
            let stored = StoredSnapshot {
                meta: meta.clone(),
                data: data.clone(),
            };
            let mut batch = rocksdb::WriteBatch::default();
            batch.put(SNAPSHOT_KEY, encode("snapshot", &stored)?);
            self.rocks.write_synced_blocking(batch)?;
        }
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for RocksSnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let this = self.clone();
        Ok(self.rocks.off_thread(move |_| this.build()).await?)
    }
}
