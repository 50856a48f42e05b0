//! Verification: re-read and re-hash every chunk of the chosen snapshots, record ok/corrupt per
//! snapshot, move corrupt chunks aside, and report which snapshots each bad chunk affects.
//!
//! Every chunk is checked once per run however many snapshots share it. The check needs no
//! key: the stored digest covers every byte of the envelope; unencrypted chunks are also
//! decoded and their plaintext re-hashed against the chunk id. A corrupt chunk is renamed into
//! `.bad/`, so the next backup holding that data stores it afresh and a healthy copy can
//! replace it; a snapshot that failed verification is never used as an incremental base.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use ironcore_types::{ChunkId, SnapshotRef};
use serde::Serialize;
use tracing::{info, warn};

use crate::catalog::VerifyState;
use crate::chunk_dir::ChunkDir;
use crate::datastore::Datastore;
use crate::envelope::{decode_chunk, verify_stored};
use crate::manifest::Manifest;
use crate::reader::distinct_ids;
use crate::session::now_secs;
use crate::{Error, Result};

/// A chunk that failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadChunk {
    /// What is wrong (missing, truncated, digest mismatch…).
    pub reason: String,
    /// Where the damaged file was moved, if it existed.
    pub moved_to: Option<PathBuf>,
    /// The snapshots that reference it.
    pub snapshots: Vec<SnapshotRef>,
}

/// The verdict on one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotVerdict {
    /// Which snapshot.
    pub snapshot: SnapshotRef,
    /// The recorded result.
    pub state: VerifyState,
}

/// What a verification run found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// One verdict per snapshot checked.
    pub snapshots: Vec<SnapshotVerdict>,
    /// Every bad chunk, with the snapshots it affects.
    pub bad_chunks: BTreeMap<ChunkId, BadChunk>,
    /// Distinct chunks checked.
    pub chunks_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
}

impl VerifyReport {
    /// Whether everything checked was fine.
    pub fn is_ok(&self) -> bool {
        self.bad_chunks.is_empty()
    }
}

/// The state of one chunk file, checked without a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkCheck {
    /// Not in this directory.
    Missing,
    /// Intact; this many stored bytes.
    Ok(u64),
    /// Present but damaged (why).
    Bad(String),
}

impl ChunkDir {
    /// Checks chunk `id`: the stored digest over the whole envelope, and for unencrypted
    /// chunks the plaintext against the id.
    pub fn check(&self, id: &ChunkId) -> std::io::Result<ChunkCheck> {
        let bytes = match self.read(id) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ChunkCheck::Missing),
            Err(e) => return Err(e),
        };
        let header = match verify_stored(&bytes, id) {
            Ok(h) => h,
            Err(e) => return Ok(ChunkCheck::Bad(e.to_string())),
        };
        if !header.encrypted
            && let Err(e) = decode_chunk(&bytes, id, None)
        {
            return Ok(ChunkCheck::Bad(e.to_string()));
        }
        Ok(ChunkCheck::Ok(bytes.len() as u64))
    }
}

impl Datastore {
    fn check_chunk(&self, id: &ChunkId) -> Result<ChunkCheck> {
        self.ensure_online()?;
        let path = self.chunks.path(id);
        match self.chunks.check(id) {
            // A chunk is only missing if the datastore is still there (not unmounted meanwhile).
            Ok(ChunkCheck::Missing) if !self.probe().is_online() => {
                let e = std::io::Error::from(std::io::ErrorKind::NotFound);
                Err(self.classify("reading chunk", &path, e))
            }
            Ok(c) => Ok(c),
            Err(e) => Err(self.classify("reading chunk", &path, e)),
        }
    }

    /// Verifies `only` (or every snapshot when `None`).
    pub fn verify(&self, only: Option<&[SnapshotRef]>) -> Result<VerifyReport> {
        self.ensure_online_now()?;
        let records: Vec<_> = self
            .snapshots()?
            .into_iter()
            .filter(|r| only.is_none_or(|o| o.contains(&r.snapshot)))
            .collect();
        // Which chunks each snapshot needs; an unreadable index is itself a bad "chunk".
        let mut needs: Vec<(SnapshotRef, Vec<ChunkId>)> = Vec::new();
        let mut early_bad: HashMap<ChunkId, String> = HashMap::new();
        for rec in &records {
            let (manifest, _) = Manifest::decode(&rec.manifest)?;
            let mut ids = Vec::new();
            for file in &manifest.files {
                ids.push(file.index);
                match self.load_index(file) {
                    Ok(index) => ids.extend(distinct_ids(&index)),
                    Err(Error::ChunkNotFound { .. }) => {}
                    Err(Error::Corrupt { detail, .. }) => {
                        early_bad.insert(file.index, format!("index of '{}': {detail}", file.name));
                    }
                    Err(e) => return Err(e),
                }
            }
            needs.push((rec.snapshot.clone(), ids));
        }
        let mut unique: Vec<ChunkId> = needs.iter().flat_map(|n| n.1.iter().copied()).collect();
        unique.sort_unstable();
        unique.dedup();

        let results: Mutex<HashMap<ChunkId, ChunkCheck>> = Mutex::new(HashMap::new());
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per = unique.len().div_ceil(workers).max(1);
        std::thread::scope(|scope| -> Result<()> {
            let handles: Vec<_> = unique
                .chunks(per)
                .map(|part| {
                    let results = &results;
                    scope.spawn(move || -> Result<()> {
                        for id in part {
                            let check = self.check_chunk(id)?;
                            results
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(*id, check);
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| Error::corrupt("verify", "a verify worker panicked"))??;
            }
            Ok(())
        })?;
        let results = results.into_inner().unwrap_or_else(|p| p.into_inner());

        let mut report = VerifyReport::default();
        for (id, check) in &results {
            match check {
                ChunkCheck::Ok(n) => {
                    report.chunks_checked += 1;
                    report.bytes_checked += n;
                }
                ChunkCheck::Missing => {
                    report.chunks_checked += 1;
                    report
                        .bad_chunks
                        .insert(*id, bad(format!("chunk not found: {id} is missing"), None));
                }
                ChunkCheck::Bad(reason) => {
                    report.chunks_checked += 1;
                    let moved_to = match self.chunks.move_aside(id) {
                        Ok(p) => Some(p),
                        Err(e) => {
                            warn!(chunk = %id, error = %e, "could not move corrupt chunk aside");
                            None
                        }
                    };
                    report.bad_chunks.insert(*id, bad(reason.clone(), moved_to));
                }
            }
        }
        for (id, reason) in early_bad {
            report
                .bad_chunks
                .entry(id)
                .or_insert_with(|| bad(reason, None));
        }
        let at = now_secs();
        for (snapshot, ids) in needs {
            let mut bad_count = 0u32;
            for id in &ids {
                if let Some(b) = report.bad_chunks.get_mut(id) {
                    bad_count += 1;
                    if !b.snapshots.contains(&snapshot) {
                        b.snapshots.push(snapshot.clone());
                    }
                }
            }
            let state = if bad_count == 0 {
                VerifyState::Ok { at }
            } else {
                VerifyState::Corrupt {
                    at,
                    bad_chunks: bad_count,
                }
            };
            let mut rec = self.snapshot(&snapshot)?;
            rec.verify = state;
            self.catalog.update_snapshot(self.name(), &rec)?;
            if bad_count > 0 {
                warn!(datastore = %self.name(), snapshot = %snapshot, bad_chunks = bad_count, "snapshot failed verification");
            }
            report.snapshots.push(SnapshotVerdict { snapshot, state });
        }
        info!(
            datastore = %self.name(),
            snapshots = report.snapshots.len(),
            chunks = report.chunks_checked,
            bad = report.bad_chunks.len(),
            "verification finished"
        );
        Ok(report)
    }
}

fn bad(reason: String, moved_to: Option<PathBuf>) -> BadChunk {
    BadChunk {
        reason,
        moved_to,
        snapshots: Vec::new(),
    }
}
