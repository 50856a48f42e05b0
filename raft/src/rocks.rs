//! Opening RocksDB and the synced writes both stores share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{DB, Options, WriteBatch, WriteOptions};

use crate::Error;

/// One RocksDB database (single default column family, keys separated by prefixes).
#[derive(Clone)]
pub(crate) struct Rocks {
    pub(crate) db: Arc<DB>,
    pub(crate) path: Arc<PathBuf>,
}

impl std::fmt::Debug for Rocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rocks({})", self.path.display())
    }
}

impl Rocks {
    /// Opens (or creates) the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path).map_err(|source| Error::Rocks {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// Wraps a RocksDB error with this database's path.
    pub(crate) fn err(&self, source: rocksdb::Error) -> Error {
        Error::Rocks {
            path: self.path.as_ref().clone(),
            source,
        }
    }

    /// Reads one raw value.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.db.get(key).map_err(|e| self.err(e))
    }

    /// Runs blocking RocksDB work (fsyncs, whole-state scans) on tokio's blocking pool, so it
    /// never stalls the async worker threads that carry heartbeats.
    pub(crate) async fn off_thread<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Rocks) -> Result<T, Error> + Send + 'static,
    {
        let rocks = self.clone();
        tokio::task::spawn_blocking(move || work(&rocks))
            .await
            .map_err(|e| Error::Background {
                detail: e.to_string(),
            })?
    }

    /// Writes `batch` atomically, syncs the WAL, and only then returns (off the async threads).
    pub(crate) async fn write_synced(&self, batch: WriteBatch) -> Result<(), Error> {
        self.off_thread(move |r| r.write_synced_blocking(batch))
            .await
    }

    /// Writes `batch` atomically and syncs the WAL before returning, on the calling thread.
    pub(crate) fn write_synced_blocking(&self, batch: WriteBatch) -> Result<(), Error> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.err(e))
    }

    /// Writes `batch` atomically without waiting for the disk (see [`Self::sync_wal`]).
    pub(crate) fn write_unsynced(&self, batch: WriteBatch) -> Result<(), Error> {
        self.db.write(batch).map_err(|e| self.err(e))
    }

    /// Makes every earlier write durable (off the async threads).
    pub(crate) async fn sync_wal(&self) -> Result<(), Error> {
        self.off_thread(|r| r.db.flush_wal(true).map_err(|e| r.err(e)))
            .await
    }
}
