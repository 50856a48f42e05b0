//! Builds snapshots of the state machine.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use openraft::RaftSnapshotBuilder;
use rocksdb::{Direction, IteratorMode};

use crate::rocks::Rocks;
use crate::snapshot_file::SnapshotWriter;
use crate::state_machine::{DATA_PREFIX, StoredSnapshot, lock, read_applied};
use crate::{Error, Snapshot, SnapshotData, SnapshotMeta, TypeConfig};

/// Builds a snapshot of a [`crate::RocksStateMachine`] from one consistent RocksDB snapshot
/// (data keys, applied log id and membership all read at the same instant), streamed into a
/// file of the machine's snapshot directory, and keeps it as the machine's current snapshot
/// unless a newer one was installed meanwhile.
#[derive(Clone, Debug)]
pub struct RocksSnapshotBuilder {
    rocks: Rocks,
    dir: Arc<PathBuf>,
    snapshot_lock: Arc<Mutex<()>>,
}

impl RocksSnapshotBuilder {
    pub(crate) fn new(rocks: Rocks, dir: Arc<PathBuf>, snapshot_lock: Arc<Mutex<()>>) -> Self {
        Self {
            rocks,
            dir,
            snapshot_lock,
        }
    }

    fn build(&self) -> Result<Snapshot, Error> {
        let view = self.rocks.db.snapshot();
        let (last_log_id, last_membership) = read_applied(&self.rocks, |k| view.get(k))?;
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
        };
        std::fs::create_dir_all(self.dir.as_ref()).map_err(Error::file(&self.dir))?;
        let name = StoredSnapshot::file_name(&meta);
        let path = self.dir.join(&name);
        let mut out = SnapshotWriter::create(&path).map_err(Error::file(&path))?;
        for item in view.iterator(IteratorMode::From(DATA_PREFIX, Direction::Forward)) {
            let (key, value) = item.map_err(|e| self.rocks.err(e))?;
            if !key.starts_with(DATA_PREFIX) {
                break;
            }
            out.put(&key, &value).map_err(Error::file(&path))?;
        }
        let file = out.finish().map_err(Error::file(&path))?;
        let _guard = lock(&self.snapshot_lock);
        let current = StoredSnapshot::read(&self.rocks)?;
        if current.is_none_or(|c| c.meta.last_log_id <= meta.last_log_id) {
            StoredSnapshot::new(meta.clone(), name, &file).make_current(&self.rocks, &self.dir)?;
        } else {
            // A newer snapshot was installed meanwhile; this one is still handed out (the open
            // file outlives its name) but not kept.
            let _ = std::fs::remove_file(&path);
        }
        Ok(Snapshot {
            meta,
            snapshot: file,
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
