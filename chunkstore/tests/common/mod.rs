//! Helpers shared by the datastore tests: a datastore in a temp dir, deterministic data, and
//! one-call backup and restore.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironcore_chunkstore::{Catalog, CryptKey, Datastore, DatastoreOptions, Manifest, Result};
use ironcore_types::SnapshotRef;
use rand::{Rng, SeedableRng};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub catalog: Arc<Catalog>,
    pub ds: Arc<Datastore>,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        Self::at(dir, root)
    }

    pub fn at(dir: tempfile::TempDir, root: PathBuf) -> Self {
        let catalog = Arc::new(Catalog::open(&dir.path().join("catalog")).unwrap());
        let ds = Datastore::create(
            catalog.clone(),
            &"test".parse().unwrap(),
            &root,
            DatastoreOptions::default(),
        )
        .unwrap();
        Self { dir, catalog, ds }
    }

    pub fn root(&self) -> &Path {
        self.ds.root()
    }
}

/// Incompressible bytes from a seed.
pub fn random_data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v[..]);
    v
}

/// Compressible, log-like bytes from a seed.
pub fn text_data(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(len + 100);
    while out.len() < len {
        let line = format!(
            "{} web{:02} GET /api/v1/item/{} 200 {}\n",
            1_700_000_000 + out.len(),
            rng.random_range(0..20),
            rng.random_range(0..5000),
            rng.random_range(0..100_000)
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

pub fn snap(group: &str, time: i64) -> SnapshotRef {
    SnapshotRef {
        ns: "prod".parse().unwrap(),
        group: group.parse().unwrap(),
        time,
    }
}

/// Backs `data` up as archive `data.bin` (dynamic chunks) and commits.
pub fn backup(
    ds: &Arc<Datastore>,
    s: &SnapshotRef,
    data: &[u8],
    key: Option<&CryptKey>,
) -> Result<Manifest> {
    let mut session = ds.begin_backup(s.clone(), key.cloned())?;
    let mut w = session.dynamic_writer("data.bin")?;
    for piece in data.chunks(1 << 20) {
        w.append(piece)?;
    }
    w.finish()?;
    session.commit()
}

/// Restores archive `data.bin`.
pub fn restore(ds: &Arc<Datastore>, s: &SnapshotRef, key: Option<&CryptKey>) -> Result<Vec<u8>> {
    let reader = ds.open_archive(s, "data.bin", key)?;
    let mut out = Vec::new();
    reader.copy_to(&mut out)?;
    Ok(out)
}

/// Every chunk file path under the datastore.
pub fn chunk_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // The shard directories (`.chunks` also holds the datastore's layout file).
    let shards = std::fs::read_dir(root.join(".chunks")).unwrap();
    for prefix in shards.map(|e| e.unwrap().path()).filter(|p| p.is_dir()) {
        for f in std::fs::read_dir(prefix).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}
