//! Garbage collection: frees chunks no committed snapshot references.
//!
//! Two phases. **Mark** collects every chunk (and index) referenced by a committed manifest;
//! if any index cannot be read, GC stops before sweeping, because an unreadable index could
//! hide live chunks. **Sweep** deletes an unreferenced chunk only if it was last written or
//! re-used before the *cutoff*: the earlier of the GC start and the start of the oldest backup
//! session with a fresh lease, minus a grace period. A running backup writes or touches every
//! chunk it references after its start, so none of its chunks can be older than the cutoff;
//! the per-chunk lock in the chunk directory closes the race between "touch" and "delete".
//!
//! The planner ([`plan_cutoff`], [`plan_sweep`]) is pure; the cluster can feed it leases from
//! Raft instead of the local catalog without changing it.

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ironcore_types::ChunkId;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::catalog::SessionLease;
use crate::chunk_dir::{ChunkDir, ChunkFile};
use crate::datastore::Datastore;
use crate::manifest::Manifest;
use crate::reader::distinct_ids;
use crate::session::{LEASE_TTL_SECS, now_secs};
use crate::{Error, Result};

/// Settings of one GC run.
#[derive(Clone, Copy, Debug)]
pub struct GcOptions {
    /// Unreferenced chunks younger than this (before the oldest running backup) are kept.
    /// Covers clock skew between writers and this node.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
        }
    }
}

/// What a GC run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Distinct chunks referenced by committed snapshots.
    pub referenced_chunks: u64,
    /// Chunks deleted.
    pub removed_chunks: u64,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// Unreferenced chunks kept because they are newer than the cutoff.
    pub kept_recent: u64,
    /// Leftover temporary files deleted.
    pub removed_temp_files: u64,
    /// The cutoff used (epoch seconds).
    pub cutoff: i64,
}

/// The time before which an unreferenced chunk may be deleted: the earlier of `now` and the
/// start of the oldest live lease, minus `grace`. Leases not renewed within the TTL are dead.
pub fn plan_cutoff(now: i64, leases: &[SessionLease], lease_ttl_secs: i64, grace_secs: i64) -> i64 {
    let oldest_live = leases
        .iter()
        .filter(|l| now - l.renewed < lease_ttl_secs)
        .map(|l| l.started)
        .min()
        .unwrap_or(now);
    oldest_live.min(now) - grace_secs
}

/// The chunks to delete: unreferenced and last touched before `cutoff` (epoch seconds).
pub fn plan_sweep(
    referenced: &HashSet<ChunkId>,
    files: &[ChunkFile],
    cutoff: i64,
) -> (Vec<ChunkId>, u64) {
    let mut remove = Vec::new();
    let mut kept_recent = 0;
    for f in files.iter().filter(|f| !referenced.contains(&f.id)) {
        if epoch(f.mtime) < cutoff {
            remove.push(f.id);
        } else {
            kept_recent += 1;
        }
    }
    (remove, kept_recent)
}

fn epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64) - 1,
    }
}

impl Datastore {
    /// Every chunk (and index) referenced by a committed snapshot.
    pub(crate) fn referenced_chunks(&self) -> Result<HashSet<ChunkId>> {
        let mut live = HashSet::new();
        for rec in self.snapshots()? {
            let (manifest, _) = Manifest::decode(&rec.manifest)?;
            for file in &manifest.files {
                live.insert(file.index);
                let index = self.load_index(file).map_err(|e| Error::InvalidInput {
                    what: "garbage collection",
                    detail: format!(
                        "stopped before deleting anything: the index of {} / {} cannot be read ({e}); \
                         run `ironcore-backup verify start {}` and repair or forget that snapshot",
                        rec.snapshot,
                        file.name,
                        self.name()
                    ),
                })?;
                live.extend(distinct_ids(&index));
            }
        }
        Ok(live)
    }

    /// Runs GC. Refused on a quarantined or offline datastore. `progress` gets
    /// (chunks removed, chunks to remove) as the sweep goes.
    pub fn gc(&self, options: GcOptions, progress: &mut dyn FnMut(u64, u64)) -> Result<GcReport> {
        if self.is_quarantined() {
            return Err(Error::Quarantined {
                datastore: self.name().to_string(),
            });
        }
        self.ensure_online_now()?;
        let now = now_secs();
        let leases = self.catalog.leases(self.name())?;
        let cutoff = plan_cutoff(now, &leases, LEASE_TTL_SECS, options.grace.as_secs() as i64);
        let referenced = self.referenced_chunks()?;
        let swept = self
            .chunks
            .sweep(&referenced, cutoff, progress)
            .map_err(|e| self.classify("sweeping chunks", self.chunks.base(), e))?;
        let report = GcReport {
            referenced_chunks: referenced.len() as u64,
            removed_chunks: swept.removed_chunks,
            removed_bytes: swept.removed_bytes,
            kept_recent: swept.kept_recent,
            removed_temp_files: swept.removed_temp_files,
            cutoff,
        };
        info!(
            datastore = %self.name(),
            removed = report.removed_chunks,
            freed = report.removed_bytes,
            kept_recent = report.kept_recent,
            "garbage collection finished"
        );
        Ok(report)
    }
}

/// What sweeping one chunk directory did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Chunks deleted.
    pub removed_chunks: u64,
    /// Bytes freed.
    pub removed_bytes: u64,
    /// Unreferenced chunks kept because they are newer than the cutoff.
    pub kept_recent: u64,
    /// Leftover temporary files deleted.
    pub removed_temp_files: u64,
    /// Chunks left in the directory.
    pub remaining_chunks: u64,
}

impl ChunkDir {
    /// Deletes the chunks not in `referenced` last written or re-used before `cutoff` (epoch
    /// seconds), and temporary files older than it. Each deletion re-checks the age under the
    /// chunk's lock, so a chunk re-used meanwhile stays. `progress` gets (removed, to remove).
    pub fn sweep(
        &self,
        referenced: &HashSet<ChunkId>,
        cutoff: i64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::io::Result<SweepReport> {
        let listing = self.list()?;
        let (remove, kept_recent) = plan_sweep(referenced, &listing.chunks, cutoff);
        let cutoff_time = UNIX_EPOCH + Duration::from_secs(cutoff.max(0) as u64);
        let mut report = SweepReport {
            kept_recent,
            ..SweepReport::default()
        };
        let total = remove.len() as u64;
        for id in &remove {
            match self.remove_if_older(id, cutoff_time)? {
                Some(bytes) => {
                    report.removed_chunks += 1;
                    report.removed_bytes += bytes;
                }
                None => report.kept_recent += 1,
            }
            if report.removed_chunks.is_multiple_of(1024) {
                progress(report.removed_chunks, total);
            }
        }
        for (path, mtime) in listing.temps {
            if epoch(mtime) < cutoff {
                match fs::remove_file(&path) {
                    Ok(()) => report.removed_temp_files += 1,
                    Err(e) => {
                        warn!(path = %path.display(), error = %e, "could not remove temporary file")
                    }
                }
            }
        }
        progress(report.removed_chunks, total);
        report.remaining_chunks = listing.chunks.len() as u64 - report.removed_chunks;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironcore_types::SnapshotRef;
    use proptest::prelude::*;

    fn lease(started: i64, renewed: i64) -> SessionLease {
        SessionLease {
            id: 1,
            snapshot: SnapshotRef {
                ns: Default::default(),
                group: "host/a".parse().unwrap(),
                time: started,
            },
            started,
            renewed,
        }
    }

    #[test]
    fn cutoff_is_held_back_by_live_leases_only() {
        assert_eq!(plan_cutoff(1000, &[], 600, 10), 990);
        assert_eq!(plan_cutoff(1000, &[lease(500, 990)], 600, 10), 490);
        // A lease not renewed within the TTL belongs to a dead session.
        assert_eq!(plan_cutoff(1000, &[lease(100, 300)], 600, 10), 990);
    }

    proptest! {
        #[test]
        fn sweep_never_removes_referenced_or_recent_chunks(
            files in proptest::collection::vec((0i64..2000, any::<bool>()), 0..60),
            cutoff in 0i64..2000,
        ) {
            let mut referenced = HashSet::new();
            let listed: Vec<ChunkFile> = files.iter().enumerate().map(|(i, (t, r))| {
                let mut bytes = [0u8; 32];
                bytes[0] = i as u8;
                let id = ChunkId::from_bytes(bytes);
                if *r { referenced.insert(id); }
                ChunkFile { id, mtime: UNIX_EPOCH + Duration::from_secs(*t as u64), size: 1 }
            }).collect();
            let (remove, _) = plan_sweep(&referenced, &listed, cutoff);
            for id in &remove {
                prop_assert!(!referenced.contains(id));
                let f = listed.iter().find(|f| f.id == *id).unwrap();
                prop_assert!(epoch(f.mtime) < cutoff);
            }
            // Everything old and unreferenced is removed.
            for f in &listed {
                if !referenced.contains(&f.id) && epoch(f.mtime) < cutoff {
                    prop_assert!(remove.contains(&f.id));
                }
            }
        }
    }
}
