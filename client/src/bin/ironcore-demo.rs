//! `ironcore-demo`: the chunk store end to end on this machine, until the cluster lands.
//!
//! Creates (or reuses) a datastore under `--state`, backs up `--source` twice (the second run
//! shows deduplication), restores the newest snapshot into a new directory under
//! `--restore-to`, proves the restore identical to the source (content and metadata), verifies
//! every chunk, and prints statistics and a prune dry run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Parser;
use ironcore_chunkstore::prune::{KeepOptions, parse_timezone};
use ironcore_chunkstore::{Catalog, CryptKey, Datastore, DatastoreOptions, KdfParams, KeyFile};
use ironcore_client::{backup_tree, compare_trees, restore_tree};
use ironcore_types::{BackupGroup, BackupType, DatastoreName, SnapshotRef};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Back up a real directory into a local Ironcore datastore, restore it, and prove it identical"
)]
struct Args {
    /// Directory to back up.
    #[arg(long, default_value = "/usr/share/doc")]
    source: PathBuf,
    /// Where the datastore and its metadata live.
    #[arg(long, default_value = "/tmp/ironcore-demo/state")]
    state: PathBuf,
    /// Where restores go (a new subdirectory per run).
    #[arg(long, default_value = "/tmp/ironcore-demo/restore")]
    restore_to: PathBuf,
    /// Encrypt the backup with a key file kept in the state directory.
    #[arg(long)]
    encrypt: bool,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.state)
        .with_context(|| format!("creating {}", args.state.display()))?;
    let catalog = Arc::new(Catalog::open(&args.state.join("catalog"))?);
    let name: DatastoreName = "demo".parse()?;
    let ds = match catalog.datastore(name.as_str())? {
        Some(_) => Datastore::open(catalog.clone(), &name)?,
        None => Datastore::create(
            catalog.clone(),
            &name,
            &args.state.join("datastore"),
            DatastoreOptions::default(),
        )?,
    };
    println!(
        "datastore 'demo' at {} ({:?})",
        ds.root().display(),
        ds.health()
    );

    let key = if args.encrypt {
        Some(load_or_create_key(&args)?)
    } else {
        None
    };
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "localhost".into());
    let group = BackupGroup::new(BackupType::Host, host.trim())
        .unwrap_or(BackupGroup::new(BackupType::Host, "localhost")?);
    let mut time = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;

    let mut last = None;
    for run in ["initial", "unchanged re-run"] {
        let snapshot = loop {
            let s = SnapshotRef {
                ns: Default::default(),
                group: group.clone(),
                time,
            };
            time += 1;
            if ds.snapshot(&s).is_err() {
                break s;
            }
        };
        let started = Instant::now();
        let report = backup_tree(
            &ds,
            &args.source,
            snapshot.clone(),
            key.clone(),
            &mut |_| {},
        )?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "backup ({run}) {snapshot}: {} files, {:.1} MB in {secs:.2} s ({:.0} MB/s); {} of {} chunks new, {:.1} MB stored, dedup hit rate {:.0}%",
            report.files,
            mb(report.bytes),
            mb(report.bytes) / secs.max(1e-6),
            report.stats.new_chunks,
            report.stats.chunks,
            mb(report.stats.stored_bytes),
            report.stats.dedup_hit_rate() * 100.0
        );
        for w in report.warnings.iter().take(5) {
            println!("  WARNING: {w}");
        }
        last = Some(snapshot);
    }
    let Some(snapshot) = last else {
        bail!("no backup ran")
    };

    let target = args.restore_to.join(format!("{}", snapshot.time));
    let started = Instant::now();
    let restored = restore_tree(&ds, &snapshot, &target, key.as_ref(), None)?;
    println!(
        "restore {snapshot} -> {}: {} files, {:.1} MB in {:.2} s",
        target.display(),
        restored.files,
        mb(restored.bytes),
        started.elapsed().as_secs_f64()
    );
    match compare_trees(&args.source, &target) {
        Ok(n) => println!(
            "restore is identical to the source: {n} entries compared (content, mode, owner, mtime, links)"
        ),
        Err(diff) => bail!("restore differs from the source: {diff}"),
    }

    let verify = ds.verify(None)?;
    println!(
        "verify: {} snapshots, {} chunks, {:.1} MB re-hashed, {} bad",
        verify.snapshots.len(),
        verify.chunks_checked,
        mb(verify.bytes_checked),
        verify.bad_chunks.len()
    );
    let stats = ds.stats()?;
    println!(
        "stats: {} snapshots, {:.1} MB logical, {:.1} MB stored in {} chunks, dedup factor {:.2}, {:.1} GB free",
        stats.snapshots,
        mb(stats.logical_bytes),
        mb(stats.stored_bytes),
        stats.chunks,
        stats.dedup_factor,
        stats.fs_free_bytes as f64 / 1e9
    );
    let keep = KeepOptions {
        keep_last: 2,
        ..KeepOptions::default()
    };
    let plan = ds.prune(&snapshot.ns, &group, &keep, parse_timezone("UTC")?, true)?;
    let removable = plan.iter().filter(|(_, d)| !d.is_kept()).count();
    println!(
        "prune dry run (keep-last 2): {} snapshots kept, {removable} would be removed",
        plan.len() - removable
    );
    println!(
        "\nrun again to add snapshots; data lives in {}; remove it with: rm -rf {} {}",
        args.state.display(),
        args.state.display(),
        args.restore_to.display()
    );
    Ok(())
}

fn load_or_create_key(args: &Args) -> Result<CryptKey> {
    let path = args.state.join("demo-key.json");
    let passphrase =
        std::env::var("IRONCORE_DEMO_PASSPHRASE").unwrap_or_else(|_| "demo passphrase".into());
    if path.exists() {
        return Ok(KeyFile::load(&path)?.unlock(&passphrase, &path)?);
    }
    let key = CryptKey::generate();
    let kf = KeyFile::protect(&key, &passphrase, KdfParams::default())?;
    kf.save(&path)?;
    println!(
        "created key file {} (fingerprint {}); paper key:\n{}",
        path.display(),
        key.fingerprint(),
        ironcore_chunkstore::paperkey::export(&kf)
    );
    Ok(key)
}
