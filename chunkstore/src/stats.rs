//! Datastore statistics: logical and stored bytes, chunks, dedup factor, file system usage.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::chunk_dir::ChunkDir;

use crate::Result;
use crate::datastore::Datastore;

/// A datastore's usage.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DatastoreStats {
    /// Committed snapshots.
    pub snapshots: u64,
    /// Sum of the archive sizes of every snapshot (what restores would produce).
    pub logical_bytes: u64,
    /// Chunk files on disk.
    pub chunks: u64,
    /// Bytes of chunk files on disk (after dedup, compression and encryption).
    pub stored_bytes: u64,
    /// `logical_bytes / stored_bytes`.
    pub dedup_factor: f64,
    /// Size of the file system holding the datastore.
    pub fs_total_bytes: u64,
    /// Free bytes on it (for unprivileged writers).
    pub fs_free_bytes: u64,
    /// Inodes of that file system.
    pub inodes_total: u64,
    /// Inodes in use.
    pub inodes_used: u64,
}

impl Datastore {
    /// Computes the statistics (walks the chunk directory).
    pub fn stats(&self) -> Result<DatastoreStats> {
        self.ensure_online_now()?;
        let snapshots = self.snapshots()?;
        let files = self
            .chunks
            .list()
            .map_err(|e| self.classify("listing chunks", self.chunks.base(), e))?
            .chunks;
        let vfs = rustix::fs::statvfs(self.root())
            .map_err(|e| self.classify("reading file system usage", self.root(), e.into()))?;
        let logical_bytes: u64 = snapshots.iter().map(|r| r.size).sum();
        let stored_bytes: u64 = files.iter().map(|f| f.size).sum();
        Ok(DatastoreStats {
            snapshots: snapshots.len() as u64,
            logical_bytes,
            chunks: files.len() as u64,
            stored_bytes,
            dedup_factor: if stored_bytes == 0 {
                0.0
            } else {
                logical_bytes as f64 / stored_bytes as f64
            },
            fs_total_bytes: vfs.f_blocks * vfs.f_frsize,
            fs_free_bytes: vfs.f_bavail * vfs.f_frsize,
            inodes_total: vfs.f_files,
            inodes_used: vfs.f_files.saturating_sub(vfs.f_ffree),
        })
    }
}

/// What one chunk directory holds and the room left on its file system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirUsage {
    /// Chunk files.
    pub chunks: u64,
    /// Their bytes.
    pub stored_bytes: u64,
    /// Size of the file system.
    pub fs_total_bytes: u64,
    /// Free bytes on it (for unprivileged writers).
    pub fs_free_bytes: u64,
    /// Inodes of that file system.
    pub inodes_total: u64,
    /// Inodes in use.
    pub inodes_used: u64,
}

impl ChunkDir {
    /// Counts the chunk files (walks the directory) and reads the file system's usage.
    pub fn usage(&self) -> io::Result<DirUsage> {
        let files = self.list()?.chunks;
        let vfs = rustix::fs::statvfs(self.base())?;
        Ok(DirUsage {
            chunks: files.len() as u64,
            stored_bytes: files.iter().map(|f| f.size).sum(),
            fs_total_bytes: vfs.f_blocks * vfs.f_frsize,
            fs_free_bytes: vfs.f_bavail * vfs.f_frsize,
            inodes_total: vfs.f_files,
            inodes_used: vfs.f_files.saturating_sub(vfs.f_ffree),
        })
    }

    /// Proves the directory usable: writes, syncs, reads back and removes a probe file. Fails
    /// when the directory is gone (unmounted), read-only or full.
    pub fn probe(&self) -> io::Result<()> {
        let path = self
            .base()
            .join(format!(".probe.{}.tmp", std::process::id()));
        let data = b"ironcore datastore probe";
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            f.write_all(data)?;
            f.sync_all()?;
            if std::fs::read(&path)? != data {
                return Err(io::Error::other("the probe file read back differently"));
            }
            Ok(())
        })();
        let _ = std::fs::remove_file(&path);
        result
    }
}
