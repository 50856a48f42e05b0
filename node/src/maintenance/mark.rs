//! The mark phase shared by GC and verify: which chunks each committed snapshot of a datastore
//! references, read from this node's Raft state and the snapshots' indexes (fetched from any
//! node holding them). Indexes are unencrypted, so no key is needed.

use std::collections::HashSet;

use ironcore_chunkstore::Manifest;
use ironcore_types::{ChunkId, DatastoreName, SnapshotRef};

use crate::Result;
use crate::maintenance::Upkeep;
use crate::replication::index::load_index;

/// What the snapshots of a datastore reference.
#[derive(Debug, Default)]
pub struct Marked {
    /// Each readable snapshot and its chunks (indexes included).
    pub snapshots: Vec<(SnapshotRef, Vec<ChunkId>)>,
    /// Snapshots with an index that could not be read, and why. Their chunks are unknown, so
    /// a sweep must not run.
    pub unreadable: Vec<(SnapshotRef, String)>,
}

impl Marked {
    /// Every referenced chunk, once.
    pub fn all(&self) -> HashSet<ChunkId> {
        self.snapshots
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }
}

/// Marks the chunks of every committed snapshot of `ds` as this node's state has them.
pub async fn mark(up: &Upkeep, ds: &DatastoreName) -> Result<Marked> {
    let mut out = Marked::default();
    for entry in up.meta().snapshots(ds)? {
        let (manifest, _) = Manifest::decode(&entry.manifest)?;
        let mut ids = Vec::new();
        let mut failed = None;
        for file in &manifest.files {
            ids.push(file.index);
            match load_index(up.chunk_peers(), ds, file).await {
                Ok(index) => ids.extend(index.chunk_ids()),
                Err(e) => {
                    failed = Some(format!("archive {}: {e}", file.name));
                    break;
                }
            }
        }
        match failed {
            Some(why) => out.unreadable.push((entry.snapshot, why)),
            None => {
                ids.sort_unstable();
                ids.dedup();
                out.snapshots.push((entry.snapshot, ids));
            }
        }
    }
    Ok(out)
}
