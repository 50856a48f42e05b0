//! The chunk pipeline benchmark: ingests a data set through the whole pipeline (walk, FastCDC,
//! SHA-256/HMAC, zstd-1, AES-256-GCM, durable write with one syncfs before the commit) on all
//! cores, reads it back (decrypt, decompress, verify), and prints MB/s beside this machine's own
//! limits measured in the same run: SHA-256, AES-256-GCM, zstd-1, FastCDC, and disk write+fsync.
//!
//!   cargo bench -p ironcore-client --bench pipeline -- DATASET_DIR WORK_DIR
//!
//! `scripts/bench-chunkstore.sh` generates the reference data set and runs this.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use ironcore_chunkstore::{Catalog, CryptKey, Datastore, DatastoreOptions};
use ironcore_client::tree::PAYLOAD_ARCHIVE;
use ironcore_client::{backup_tree, compare_trees, restore_tree};
use ironcore_types::SnapshotRef;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

const MB: f64 = 1e6;

fn rate(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / MB / secs.max(1e-9)
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(42).fill(&mut v[..]);
    v
}

fn text(len: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut out = Vec::with_capacity(len + 200);
    while out.len() < len {
        let line = format!(
            "{} web{:02}.site-a.example 10.{}.{}.{} \"GET /api/v1/chunks/{:016x} HTTP/1.1\" 200 {} rt={:.4}\n",
            1_700_000_000 + out.len() / 100,
            rng.random_range(0..20),
            rng.random_range(0..255),
            rng.random_range(0..255),
            rng.random_range(1..254),
            rng.random::<u64>(),
            rng.random_range(0..10_000_000),
            rng.random::<f64>()
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

struct Limits {
    sha256: f64,
    sha256_ours: f64,
    sha256_pair: f64,
    aes_gcm: f64,
    zstd_text: f64,
    zstd_random: f64,
    fastcdc: f64,
    cdc_ours: f64,
}

fn measure_cpu() -> Limits {
    let buf = random(256 << 20);
    let (_, t) = time(|| {
        for c in buf.chunks(1 << 20) {
            std::hint::black_box(Sha256::digest(c));
        }
    });
    let sha256 = rate(buf.len() as u64, t);
    let (_, t) = time(|| {
        for c in buf.chunks(1 << 20) {
            std::hint::black_box(ironcore_chunkstore::sha256::Sha256::digest(c));
        }
    });
    let sha256_ours = rate(buf.len() as u64, t);
    let (_, t) = time(|| {
        for c in buf.chunks(2 << 20) {
            let (a, b) = c.split_at(c.len() / 2);
            std::hint::black_box(ironcore_chunkstore::sha256::Sha256::digest_pair(a, b));
        }
    });
    let sha256_pair = rate(buf.len() as u64, t);
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("32-byte key");
    let mut piece = buf[..1 << 20].to_vec();
    let (_, t) = time(|| {
        for i in 0..256u32 {
            piece.truncate(1 << 20);
            let mut nonce = [0u8; 12];
            nonce[..4].copy_from_slice(&i.to_le_bytes());
            cipher
                .encrypt_in_place(&Nonce::from(nonce), b"", &mut piece)
                .expect("in-memory encryption");
        }
    });
    let aes_gcm = rate(256 << 20, t);
    let txt = text(64 << 20);
    let mut zc = zstd::bulk::Compressor::new(1).expect("zstd level 1");
    let (_, t) = time(|| {
        for c in txt.chunks(1 << 20) {
            std::hint::black_box(zc.compress(c).expect("zstd"));
        }
    });
    let zstd_text = rate(txt.len() as u64, t);
    let (_, t) = time(|| {
        for c in buf[..64 << 20].chunks(1 << 20) {
            std::hint::black_box(zc.compress(c).expect("zstd"));
        }
    });
    let zstd_random = rate(64 << 20, t);
    let (_, t) = time(|| {
        std::hint::black_box(
            fastcdc::v2020::FastCDC::new(&buf, 256 << 10, 1 << 20, 4 << 20).count(),
        )
    });
    let fastcdc = rate(buf.len() as u64, t);
    let cdc = ironcore_chunkstore::cdc::Cdc::new(256 << 10, 1 << 20, 4 << 20);
    let (_, t) = time(|| std::hint::black_box(cdc.chunks(&buf).count()));
    let cdc_ours = rate(buf.len() as u64, t);

    Limits {
        sha256,
        sha256_ours,
        sha256_pair,
        aes_gcm,
        zstd_text,
        zstd_random,
        fastcdc,
        cdc_ours,
    }
}

/// The disk's write+fsync rate (1 GiB file) and the chunk store's pattern (512 files of 1 MiB,
/// one syncfs), in MB/s.
fn measure_disk(work: &Path) -> (f64, f64) {
    let buf = random(4 << 20);
    // Disk: 1 GiB written sequentially in 4 MiB pieces, then fsync.
    let path = work.join("disk-probe.bin");
    let total: u64 = 1 << 30;
    let (_, t) = time(|| {
        let mut f = File::create(&path).expect("create probe file");
        for _ in 0..(total >> 22) {
            f.write_all(&buf[..4 << 20]).expect("write probe file");
        }
        f.sync_all().expect("fsync probe file");
    });
    let disk_fsync = rate(total, t);
    let _ = fs::remove_file(&path);
    // The chunk store's pattern: many 1 MiB files, one syncfs at the end.
    let dir = work.join("disk-probe-files");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("probe dir");
    let (_, t) = time(|| {
        for i in 0..512 {
            let mut f = File::create(dir.join(format!("{i}"))).expect("create");
            let at = i % 4;
            f.write_all(&buf[(at % 4) << 20..((at % 4) + 1) << 20])
                .expect("write");
        }
        let d = File::open(&dir).expect("open dir");
        rustix::fs::syncfs(&d).expect("syncfs");
    });
    let disk_files_syncfs = rate(512 << 20, t);
    let _ = fs::remove_dir_all(&dir);
    (disk_fsync, disk_files_syncfs)
}

/// Flushes pending writes and lets the (virtual) disk settle, so one measurement's write
/// burst does not slow the next.
fn settle(work: &Path) -> anyhow::Result<()> {
    rustix::fs::syncfs(&File::open(work)?)?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (Some(dataset), Some(work)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: pipeline DATASET_DIR WORK_DIR (scripts/bench-chunkstore.sh runs it)");
    };
    let dataset = PathBuf::from(dataset);
    // Only ever delete what this run created: a fresh subdirectory of WORK_DIR.
    let work = PathBuf::from(work).join("ironcore-pipeline-bench");
    if work.exists() {
        anyhow::bail!(
            "{} exists (a previous run was interrupted?); remove it first",
            work.display()
        );
    }
    if !dataset.is_dir() {
        anyhow::bail!("data set {} is not a directory", dataset.display());
    }
    fs::create_dir_all(&work)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores; data set {}", dataset.display());

    let l = measure_cpu();
    settle(&work)?;
    let disk_before = measure_disk(&work);
    settle(&work)?;
    println!("\n== machine limits (measured now; hashing/crypto/compression on one core)");
    println!("SHA-256 (sha2 crate)        {:>8.0} MB/s", l.sha256);
    println!("SHA-256 (ours, one chunk)   {:>8.0} MB/s", l.sha256_ours);
    println!("SHA-256 (ours, two at once) {:>8.0} MB/s", l.sha256_pair);
    println!("AES-256-GCM (aes-gcm)       {:>8.0} MB/s", l.aes_gcm);
    println!("zstd-1, log text            {:>8.0} MB/s", l.zstd_text);
    println!("zstd-1, random data         {:>8.0} MB/s", l.zstd_random);
    println!("FastCDC (fastcdc crate)     {:>8.0} MB/s", l.fastcdc);
    println!("FastCDC (ours, two lanes)   {:>8.0} MB/s", l.cdc_ours);

    println!(
        "\n== pipeline (walk, FastCDC, hash, zstd-1, AES-256-GCM, durable write; {cores} workers)"
    );
    let mut ingest_rates = Vec::new();
    for (label, key) in [("encrypted", Some(CryptKey::generate())), ("plain", None)] {
        let root = work.join(label);
        let catalog = Arc::new(Catalog::open(&root.join("catalog"))?);
        let ds = Datastore::create(
            catalog,
            &"bench".parse()?,
            &root.join("store"),
            DatastoreOptions::default(),
        )?;
        let snap = SnapshotRef {
            ns: Default::default(),
            group: "host/bench".parse()?,
            time: 1,
        };
        settle(&work)?;
        let (report, t) =
            time(|| backup_tree(&ds, &dataset, snap.clone(), key.clone(), &mut |_| {}));
        let report = report?;
        let stats = ds.stats()?;
        let ingest = rate(report.bytes, t);
        ingest_rates.push((label, ingest));
        println!(
            "ingest {label:<9}  {:>8.0} MB/s  ({:.0} MB, {} files in {t:.1} s; stored {:.0} MB in {} chunks)",
            ingest,
            report.bytes as f64 / MB,
            report.files,
            stats.stored_bytes as f64 / MB,
            stats.chunks
        );
        let reader = ds.open_archive(&snap, PAYLOAD_ARCHIVE, key.as_ref())?;
        let (n, t) = time(|| reader.copy_to(&mut std::io::sink()));
        let n = n?;
        println!(
            "read back {label:<9}{:>8.0} MB/s  (payload decoded and verified, discarded)",
            rate(n, t)
        );
        if label == "encrypted" {
            let target = work.join("restore");
            let (r, t) = time(|| restore_tree(&ds, &snap, &target, key.as_ref(), None));
            let r = r?;
            println!(
                "restore to disk    {:>8.0} MB/s  ({} files in {t:.1} s)",
                rate(r.bytes, t),
                r.files
            );
            let entries = compare_trees(&dataset, &target).map_err(anyhow::Error::msg)?;
            println!("restore identical to the source: {entries} entries compared");
            fs::remove_dir_all(&target)?;
        }
        fs::remove_dir_all(&root)?;
    }
    settle(&work)?;
    let disk_after = measure_disk(&work);
    fs::remove_dir_all(&work)?;
    let disk = (disk_before.0 + disk_after.0) / 2.0;
    let files = (disk_before.1 + disk_after.1) / 2.0;
    println!("\n== disk (measured before and after the pipeline runs)");
    println!(
        "disk write+fsync (1 GiB)    {:>8.0} MB/s  (before {:.0}, after {:.0})",
        disk, disk_before.0, disk_after.0
    );
    println!(
        "disk 1 MiB files + syncfs   {:>8.0} MB/s  (before {:.0}, after {:.0})",
        files, disk_before.1, disk_after.1
    );
    println!("\n== ratios");
    for (label, r) in ingest_rates {
        println!(
            "ingest {label:<9} / disk write+fsync = {:.2}   (/ 1 MiB files + syncfs = {:.2})",
            r / disk,
            r / files
        );
    }
    Ok(())
}
