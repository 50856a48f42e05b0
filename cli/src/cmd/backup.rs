//! `backup` and `restore`: the client pipeline on this machine, chunks to and from a node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hyper::Method;
use ironcore_chunkstore::{ChunkSource, CryptKey, StreamSession, open_manifest_bytes};
use ironcore_client::api_client::encode_segment;
use ironcore_client::{ApiClient, META_ARCHIVE, PreviousTree, RemoteSink, RemoteSource, TreeScan};
use ironcore_types::{BackupGroup, DatastoreName, Namespace, SnapshotRef};
use serde_json::{Value, json};

use crate::output::{Output, object};
use crate::progress::Progress;
use crate::select::{load_key, parse_ns, resolve};

/// What to back up.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// The directory, image file or block device.
    source: PathBuf,
    /// Datastore.
    #[arg(long)]
    store: DatastoreName,
    /// Backup group, TYPE/ID (host/web01, vm/100, ct/101).
    #[arg(long)]
    group: BackupGroup,
    /// Namespace (a/b).
    #[arg(long)]
    ns: Option<String>,
    /// Back up SOURCE as a disk image (fixed 4 MiB chunks).
    #[arg(long)]
    image: bool,
    /// Encrypt with this key file (passphrase from IRONCORE_KEY_PASSPHRASE).
    #[arg(long)]
    keyfile: Option<PathBuf>,
    /// Read every file, even those the previous snapshot shows unchanged (same size,
    /// mtime, mode and owner).
    #[arg(long)]
    reread: bool,
}

/// What to restore, and where.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// GROUP/TIME (host/web01/2026-11-23T14:00:00Z) or GROUP.
    snapshot: String,
    /// Where to restore (a new or empty directory; a file for images).
    target: PathBuf,
    /// Datastore.
    #[arg(long)]
    store: DatastoreName,
    /// Namespace.
    #[arg(long)]
    ns: Option<String>,
    /// Use the newest snapshot at or before this ISO-8601 time.
    #[arg(long)]
    at: Option<String>,
    /// Restore only this file or subtree (path inside the backup).
    #[arg(long)]
    file: Option<String>,
    /// Key file of an encrypted snapshot.
    #[arg(long)]
    keyfile: Option<PathBuf>,
    /// Through a node of a Backup site: read a snapshot not yet complete there from this site
    /// (the Primary), over the link between the sites.
    #[arg(long)]
    from_site: Option<String>,
}

/// The time of a new snapshot of a group.
#[derive(Debug, PartialEq, Eq)]
enum BackupTime {
    /// This machine's clock.
    Now(i64),
    /// Just after the group's newest snapshot, once the clock has passed it.
    After { wait_secs: u64, time: i64 },
    /// The newest snapshot is too far ahead of this machine's clock to wait for.
    ClockBehind { newest: i64, now: i64 },
}

/// Seconds a backup waits at most for the clock to pass the group's newest snapshot (a backup
/// of the same second, or a client whose clock was slightly ahead).
const MAX_CLOCK_WAIT: i64 = 5;

/// Snapshot times are whole seconds, unique and increasing within a group: a backup started in
/// the same second as the previous one waits for the next.
fn backup_time(now: i64, newest: Option<i64>) -> BackupTime {
    match newest {
        Some(n) if n >= now && n - now < MAX_CLOCK_WAIT => BackupTime::After {
            wait_secs: (n + 1 - now) as u64,
            time: n + 1,
        },
        Some(n) if n >= now => BackupTime::ClockBehind { newest: n, now },
        _ => BackupTime::Now(now),
    }
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// Runs `backup`: the tree or image through the chunk pipeline to a node, which commits the
/// snapshot once it holds every chunk.
pub fn backup(api: &Arc<ApiClient>, a: BackupArgs, out: Output) -> Result<()> {
    let key = load_key(a.keyfile.as_deref())?;
    if let Some(k) = &key {
        check_registered(api, k, a.keyfile.as_deref())?;
    }
    // Directories are read ahead from here on, while the session is prepared.
    let scan = if a.image {
        None
    } else {
        Some(TreeScan::start(&a.source)?)
    };
    let ns = parse_ns(a.ns.as_deref())?;
    let previous: Value =
        api.blocking(api.get(&format!("/api2/json/datastore/{}/snapshots", a.store)))?;
    let (base, newest) = group_times(&previous, &a.group, &ns);
    let incremental = base.is_some();
    let prev_tree = match (base, a.image || a.reread) {
        (Some(t), false) => load_base(
            api,
            &a.store,
            &SnapshotRef {
                ns: ns.clone(),
                group: a.group.clone(),
                time: t,
            },
            key.as_ref(),
        ),
        _ => None,
    };
    let snapshot = SnapshotRef {
        time: snapshot_time(newest, &a.group)?,
        ns,
        group: a.group.clone(),
    };
    let upid = begin(api, &a.store, &snapshot)?;
    let begun = std::time::Instant::now();
    let sink = RemoteSink::new(api.clone(), &upid);
    let sink = if prev_tree.is_some() {
        sink.upload_without_asking()
    } else {
        sink
    };
    let mut session = StreamSession::new(Arc::new(sink), key.clone());
    let (what, warnings) = if let Some(scan) = &scan {
        write_tree(&mut session, scan, prev_tree.as_ref(), out)?
    } else {
        write_image(&mut session, &a.source, out)?
    };
    let stats = session.stats();
    let done = finish(api, &upid, &session, &snapshot, key.as_ref())?;
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    let hit = stats.dedup_hit_rate();
    if incremental && hit < 0.30 {
        eprintln!(
            "WARNING: deduplication hit rate {:.0}% on an incremental backup (below 30%): the source changed substantially",
            hit * 100.0
        );
    }
    let secs = begun.elapsed().as_secs_f64();
    object(
        out,
        &json!({
            "snapshot": snapshot.to_string(),
            "upid": upid,
            "content": what,
            "chunks": stats.chunks,
            "new-chunks": stats.new_chunks,
            "uploaded-bytes": stats.stored_bytes,
            "dedup-hit-rate": format!("{:.1}%", hit * 100.0),
            "nodes": done["nodes"],
            "key-fingerprint": key.as_ref().map(|k| k.fingerprint().to_hex()),
            "seconds": format!("{secs:.2}"),
            "warnings": warnings.len(),
        }),
    );
    Ok(())
}

/// Starts the backup session of `snapshot` on the node; its task's UPID.
fn begin(api: &ApiClient, store: &DatastoreName, snapshot: &SnapshotRef) -> Result<String> {
    let started: Value = api.blocking(api.json(
        Method::POST,
        "/api2/json/backup",
        Some(&json!({ "store": store, "ns": snapshot.ns.to_string(), "group": snapshot.group.to_string(), "time": snapshot.time })),
    ))?;
    Ok(started["upid"]
        .as_str()
        .context("node answered without a UPID")?
        .to_string())
}

/// Sends the manifest of what `session` wrote as `snapshot`, which the node then commits; the
/// node's answer.
fn finish(
    api: &ApiClient,
    upid: &str,
    session: &StreamSession,
    snapshot: &SnapshotRef,
    key: Option<&CryptKey>,
) -> Result<Value> {
    let manifest = session.manifest(snapshot.clone(), chrono::Utc::now().timestamp());
    let encoded = manifest.encode(key)?;
    Ok(api.blocking(api.json(
        Method::POST,
        &format!("/api2/json/backup/{}/finish", encode_segment(upid)),
        Some(&json!({ "manifest": hex::encode(encoded) })),
    ))?)
}

/// Fails unless `key`'s fingerprint is registered in the cluster.
fn check_registered(api: &ApiClient, key: &CryptKey, keyfile: Option<&Path>) -> Result<()> {
    let keys: Value = api.blocking(api.get("/api2/json/keys"))?;
    let fp = key.fingerprint().to_hex();
    let known = keys["data"].as_array().is_some_and(|l| {
        l.iter()
            .any(|r| r["fingerprint"].as_str() == Some(fp.as_str()))
    });
    if !known {
        bail!(
            "encryption key not registered: the cluster does not know key {fp}; register it with `ironcore-backup key register --keyfile {}` or use the project's registered key",
            keyfile.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    Ok(())
}

/// Of the snapshots listed in `previous`, the times of `group` in `ns`: the newest that did
/// not fail verification (the base of an incremental backup), and the newest of all.
fn group_times(
    previous: &Value,
    group: &BackupGroup,
    ns: &Namespace,
) -> (Option<i64>, Option<i64>) {
    // The newest earlier snapshot of the group that did not fail verification: the base of an
    // incremental backup.
    let base: Option<i64> = previous["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["group"].as_str() == Some(&group.to_string())
                && s["ns"].as_str() == Some(&ns.to_string())
                && s["verify"].as_str() != Some("failed")
        })
        .filter_map(|s| s["time"].as_i64())
        .max();
    let newest: Option<i64> = previous["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["group"].as_str() == Some(&group.to_string())
                && s["ns"].as_str() == Some(&ns.to_string())
        })
        .filter_map(|s| s["time"].as_i64())
        .max();
    (base, newest)
}

/// The new snapshot's time (see [`backup_time`]), after waiting for the clock if need be.
fn snapshot_time(newest: Option<i64>, group: &BackupGroup) -> Result<i64> {
    Ok(match backup_time(chrono::Utc::now().timestamp(), newest) {
        BackupTime::Now(t) => t,
        BackupTime::After { wait_secs, time } => {
            // The group's newest snapshot is from this second (a backup just ran) or a moment
            // ahead of this machine's clock: snapshot times are unique and increasing.
            std::thread::sleep(std::time::Duration::from_secs(wait_secs));
            time
        }
        BackupTime::ClockBehind { newest, now } => bail!(
            "the newest snapshot of {} is from {}, later than this machine's clock ({}); a new snapshot must be newer: fix the clock (NTP) of this machine or of the client that made that snapshot",
            group,
            iso(newest),
            iso(now)
        ),
    })
}

/// Writes the tree `scan` walks into `session`, reusing unchanged files of `previous`; what
/// was written, and the warnings.
fn write_tree(
    session: &mut StreamSession,
    scan: &TreeScan,
    previous: Option<&PreviousTree>,
    out: Output,
) -> Result<(Value, Vec<String>)> {
    let mut bar = Progress::new("backup", None, out);
    let w = ironcore_client::write_tree(session, scan, previous, &mut |n| bar.add(n))?;
    bar.finish();
    Ok((
        json!({ "files": w.files, "dirs": w.dirs, "others": w.others, "bytes": w.bytes,
                "reused-files": w.reused_files, "reused-bytes": w.reused_bytes }),
        w.warnings,
    ))
}

/// Writes the image file or block device `source` into `session`; what was written, and the
/// warnings (none).
fn write_image(
    session: &mut StreamSession,
    source: &Path,
    out: Output,
) -> Result<(Value, Vec<String>)> {
    let name = format!(
        "{}.img",
        source
            .file_name()
            .map(|n| n.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                "_"
            ))
            .unwrap_or_else(|| "drive".into())
    );
    let size = std::fs::metadata(source)
        .map(|m| m.len())
        .ok()
        .filter(|n| *n > 0);
    let mut bar = Progress::new("backup", size, out);
    let bytes = ironcore_client::write_image(session, source, &name, &mut |n| bar.add(n))?;
    bar.finish();
    Ok((json!({ "archive": name, "bytes": bytes }), Vec::new()))
}

/// Snapshot `s`'s manifest from the cluster, checked against `key` (see
/// [`open_manifest_bytes`]), and a source of its chunks (through the reader session the node
/// opened for it).
fn fetch_manifest(
    api: &Arc<ApiClient>,
    store: &DatastoreName,
    s: &SnapshotRef,
    key: Option<&CryptKey>,
    from_site: Option<&str>,
) -> Result<(ironcore_chunkstore::Manifest, Arc<dyn ChunkSource>)> {
    let mut q = format!(
        "/api2/json/datastore/{store}/snapshot?ns={}&group={}&time={}",
        encode_segment(&s.ns.to_string()),
        encode_segment(&s.group.to_string()),
        s.time
    );
    if let Some(site) = from_site {
        q.push_str(&format!("&from-site={}", encode_segment(site)));
    }
    let entry: Value = api.blocking(api.get(&q))?;
    crate::api::warn_stale(&entry);
    let bytes = hex::decode(
        entry["manifest"]
            .as_str()
            .context("no manifest in answer")?,
    )?;
    let reader = entry["reader"]
        .as_str()
        .context("the node opened no reader session for the snapshot")?;
    let source: Arc<dyn ChunkSource> = Arc::new(RemoteSource::new(
        api.clone(),
        store.clone(),
        reader.to_string(),
    ));
    Ok((open_manifest_bytes(s, &bytes, key)?, source))
}

/// The previous tree snapshot `s` as a base for reusing unchanged files; `None` (with a note)
/// when it cannot serve — another key, not a tree, unreadable — so the backup reads everything.
fn load_base(
    api: &Arc<ApiClient>,
    store: &DatastoreName,
    s: &SnapshotRef,
    key: Option<&CryptKey>,
) -> Option<PreviousTree> {
    let load = || -> Result<Option<PreviousTree>> {
        let (manifest, source) = fetch_manifest(api, store, s, key, None)?;
        Ok(PreviousTree::load(source, &manifest, key, key)?)
    };
    match load() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("note: not reusing files of {s}: {e:#}; reading every file");
            None
        }
    }
}

/// Runs `restore`: finds the snapshot, then [`restore_snapshot`].
pub fn restore(api: &Arc<ApiClient>, a: RestoreArgs, out: Output) -> Result<()> {
    let ns = parse_ns(a.ns.as_deref())?;
    let s = resolve(api, &a.store, &ns, &a.snapshot, a.at.as_deref())?;
    restore_snapshot(api, &a, &s, out)
}

/// Restores snapshot `s` as `a` asks (all of it, or the file or subtree `a.file`, to
/// `a.target`).
fn restore_snapshot(
    api: &Arc<ApiClient>,
    a: &RestoreArgs,
    s: &SnapshotRef,
    out: Output,
) -> Result<()> {
    let (store, target, only) = (&a.store, a.target.as_path(), a.file.as_deref());
    let key = load_key(a.keyfile.as_deref())?;
    let (manifest, source) = fetch_manifest(api, store, s, key.as_ref(), a.from_site.as_deref())?;
    let begun = std::time::Instant::now();
    let report = if manifest.file(META_ARCHIVE).is_some() {
        let mut bar = Progress::new("restore", None, out);
        let r = ironcore_client::restore_tree_from(
            source,
            &manifest,
            target,
            key.as_ref(),
            only,
            &mut |done, total| bar.set(done, total),
        )?;
        bar.finish();
        for w in &r.warnings {
            eprintln!("WARNING: {w}");
        }
        json!({ "files": r.files, "dirs": r.dirs, "others": r.others, "bytes": r.bytes, "warnings": r.warnings.len() })
    } else {
        let file = manifest.files.first().context("snapshot has no archives")?;
        let mut bar = Progress::new("restore", Some(file.size), out);
        let bytes = ironcore_client::restore_image_from(
            source,
            &manifest,
            &file.name,
            target,
            key.as_ref(),
            &mut |n| bar.add(n),
        )?;
        bar.finish();
        json!({ "archive": file.name, "bytes": bytes })
    };
    object(
        out,
        &json!({
            "snapshot": s.to_string(),
            "target": target.display().to_string(),
            "restored": report,
            "seconds": format!("{:.2}", begun.elapsed().as_secs_f64()),
        }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_snapshot_is_newer_than_the_groups_newest() {
        assert_eq!(backup_time(100, None), BackupTime::Now(100));
        assert_eq!(backup_time(100, Some(99)), BackupTime::Now(100));
        assert_eq!(
            backup_time(100, Some(100)),
            BackupTime::After {
                wait_secs: 1,
                time: 101
            },
            "a backup in the same second waits for the next"
        );
        assert_eq!(
            backup_time(100, Some(103)),
            BackupTime::After {
                wait_secs: 4,
                time: 104
            }
        );
        assert_eq!(
            backup_time(100, Some(105)),
            BackupTime::ClockBehind {
                newest: 105,
                now: 100
            }
        );
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }
}
