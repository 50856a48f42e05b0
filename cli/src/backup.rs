//! `backup` and `restore`: the client pipeline on this machine, chunks to and from a node.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use hyper::Method;
use ironcore_chunkstore::{ChunkSource, CryptKey, KeyFile, StreamSession, open_manifest_bytes};
use ironcore_client::api_client::encode_segment;
use ironcore_client::{ApiClient, META_ARCHIVE, PreviousTree, RemoteSink, RemoteSource};
use ironcore_types::{BackupGroup, DatastoreName, Namespace, SnapshotRef};
use serde_json::{Value, json};

use crate::output::{Output, object};
use crate::progress::Progress;

/// Loads the key file (passphrase from `IRONCORE_KEY_PASSPHRASE`).
pub fn load_key(path: Option<&Path>) -> Result<Option<CryptKey>> {
    let Some(path) = path else { return Ok(None) };
    let file = KeyFile::load(path).map_err(|e| {
        anyhow::anyhow!("encryption key not found: {e}; check the key file path, or ask your administrator for the project key file")
    })?;
    let pass = std::env::var("IRONCORE_KEY_PASSPHRASE").unwrap_or_default();
    Ok(Some(file.unlock(&pass, path)?))
}

pub fn parse_ns(ns: Option<&str>) -> Result<Namespace> {
    let mut out = Namespace::root();
    for part in ns.unwrap_or("").split('/').filter(|p| !p.is_empty()) {
        out = out.child(part)?;
    }
    Ok(out)
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

/// What to back up.
pub struct BackupArgs<'a> {
    pub source: &'a Path,
    pub store: &'a DatastoreName,
    pub ns: Option<&'a str>,
    pub group: &'a BackupGroup,
    pub image: bool,
    /// Read every file even if the previous snapshot says it is unchanged.
    pub reread: bool,
    pub keyfile: Option<&'a Path>,
}

pub fn backup(api: &Arc<ApiClient>, a: BackupArgs<'_>, out: Output) -> Result<()> {
    let key = load_key(a.keyfile)?;
    if let Some(k) = &key {
        let keys: Value = api.blocking(api.get("/api2/json/keys"))?;
        let fp = k.fingerprint().to_hex();
        let known = keys["data"].as_array().is_some_and(|l| {
            l.iter()
                .any(|r| r["fingerprint"].as_str() == Some(fp.as_str()))
        });
        if !known {
            bail!(
                "encryption key not registered: the cluster does not know key {fp}; register it with `ironcore-backup key register --keyfile {}` or use the project's registered key",
                a.keyfile
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
    // Directories are read ahead from here on, while the session is prepared.
    let scan = if a.image {
        None
    } else {
        Some(ironcore_client::TreeScan::start(a.source)?)
    };
    let ns = parse_ns(a.ns)?;
    let previous: Value =
        api.blocking(api.get(&format!("/api2/json/datastore/{}/snapshots", a.store)))?;
    // The newest earlier snapshot of the group that did not fail verification: the base of an
    // incremental backup.
    let base: Option<i64> = previous["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["group"].as_str() == Some(&a.group.to_string())
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
            s["group"].as_str() == Some(&a.group.to_string())
                && s["ns"].as_str() == Some(&ns.to_string())
        })
        .filter_map(|s| s["time"].as_i64())
        .max();
    let incremental = base.is_some();
    let prev_tree = match (base, a.image || a.reread) {
        (Some(t), false) => load_base(
            api,
            a.store,
            &SnapshotRef {
                ns: ns.clone(),
                group: a.group.clone(),
                time: t,
            },
            key.as_ref(),
        ),
        _ => None,
    };
    let time = match backup_time(chrono::Utc::now().timestamp(), newest) {
        BackupTime::Now(t) => t,
        BackupTime::After { wait_secs, time } => {
            // The group's newest snapshot is from this second (a backup just ran) or a moment
            // ahead of this machine's clock: snapshot times are unique and increasing.
            std::thread::sleep(std::time::Duration::from_secs(wait_secs));
            time
        }
        BackupTime::ClockBehind { newest, now } => bail!(
            "the newest snapshot of {} is from {}, later than this machine's clock ({}); a new snapshot must be newer: fix the clock (NTP) of this machine or of the client that made that snapshot",
            a.group,
            iso(newest),
            iso(now)
        ),
    };
    let started: Value = api.blocking(api.json(
        Method::POST,
        "/api2/json/backup",
        Some(&json!({ "store": a.store, "ns": ns.to_string(), "group": a.group.to_string(), "time": time })),
    ))?;
    let upid = started["upid"]
        .as_str()
        .context("node answered without a UPID")?
        .to_string();
    let begun = std::time::Instant::now();
    let sink = RemoteSink::new(api.clone(), &upid);
    let sink = if prev_tree.is_some() {
        sink.upload_without_asking()
    } else {
        sink
    };
    let mut session = StreamSession::new(Arc::new(sink), key.clone());
    let (what, warnings) = if let Some(scan) = &scan {
        let mut bar = Progress::new("backup", None, out);
        let w = ironcore_client::write_tree(&mut session, scan, prev_tree.as_ref(), &mut |n| {
            bar.add(n)
        })?;
        bar.finish();
        (
            json!({ "files": w.files, "dirs": w.dirs, "others": w.others, "bytes": w.bytes,
                    "reused-files": w.reused_files, "reused-bytes": w.reused_bytes }),
            w.warnings,
        )
    } else {
        let name = format!(
            "{}.img",
            a.source
                .file_name()
                .map(|n| n.to_string_lossy().replace(
                    |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
                    "_"
                ))
                .unwrap_or_else(|| "drive".into())
        );
        let size = std::fs::metadata(a.source)
            .map(|m| m.len())
            .ok()
            .filter(|n| *n > 0);
        let mut bar = Progress::new("backup", size, out);
        let bytes =
            ironcore_client::write_image(&mut session, a.source, &name, &mut |n| bar.add(n))?;
        bar.finish();
        (json!({ "archive": name, "bytes": bytes }), Vec::new())
    };
    let stats = session.stats();
    let snapshot = SnapshotRef {
        ns,
        group: a.group.clone(),
        time,
    };
    let manifest = session.manifest(snapshot.clone(), chrono::Utc::now().timestamp());
    let encoded = manifest.encode(key.as_ref())?;
    let done: Value = api.blocking(api.json(
        Method::POST,
        &format!("/api2/json/backup/{}/finish", encode_segment(&upid)),
        Some(&json!({ "manifest": hex::encode(encoded) })),
    ))?;
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

/// Snapshot `s`'s manifest from the cluster, checked against `key` (see
/// [`open_manifest_bytes`]).
fn fetch_manifest(
    api: &ApiClient,
    store: &DatastoreName,
    s: &SnapshotRef,
    key: Option<&CryptKey>,
) -> Result<ironcore_chunkstore::Manifest> {
    let q = format!(
        "/api2/json/datastore/{store}/snapshot?ns={}&group={}&time={}",
        encode_segment(&s.ns.to_string()),
        encode_segment(&s.group.to_string()),
        s.time
    );
    let entry: Value = api.blocking(api.get(&q))?;
    let bytes = hex::decode(
        entry["manifest"]
            .as_str()
            .context("no manifest in answer")?,
    )?;
    Ok(open_manifest_bytes(s, &bytes, key)?)
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
        let manifest = fetch_manifest(api, store, s, key)?;
        let source: Arc<dyn ChunkSource> = Arc::new(RemoteSource::new(api.clone(), store.clone()));
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

/// Finds the snapshot: `GROUP/TIME`, `GROUP` (newest), or `GROUP` with `--at`.
pub fn resolve(
    api: &ApiClient,
    store: &DatastoreName,
    ns: &Namespace,
    spec: &str,
    at: Option<&str>,
) -> Result<SnapshotRef> {
    let list: Value = api.blocking(api.get(&format!("/api2/json/datastore/{store}/snapshots")))?;
    let all = list["data"].as_array().cloned().unwrap_or_default();
    let (group_s, time_s) = match spec.splitn(3, '/').collect::<Vec<_>>().as_slice() {
        [t, id, time] => (format!("{t}/{id}"), Some(time.to_string())),
        _ => (spec.to_string(), None),
    };
    let group: BackupGroup = group_s.parse()?;
    let mut candidates: Vec<i64> = all
        .iter()
        .filter(|s| {
            s["group"].as_str() == Some(&group.to_string())
                && s["ns"].as_str() == Some(&ns.to_string())
        })
        .filter_map(|s| s["time"].as_i64())
        .collect();
    candidates.sort();
    let time = if let Some(t) = time_s {
        chrono::DateTime::parse_from_rfc3339(&t)
            .with_context(|| format!("snapshot time '{t}' is not RFC 3339"))?
            .timestamp()
    } else if let Some(at) = at {
        let limit = chrono::DateTime::parse_from_rfc3339(at)
            .with_context(|| {
                format!("--at '{at}' is not an ISO-8601 time such as 2026-11-23T14:00:00Z")
            })?
            .timestamp();
        let t = candidates
            .iter()
            .rev()
            .find(|t| **t <= limit)
            .copied()
            .with_context(|| format!("no snapshot of {group} at or before {at}"))?;
        eprintln!(
            "using snapshot {group}/{} (the newest at or before {at})",
            ironcore_types::format_time(t)
        );
        t
    } else {
        *candidates
            .last()
            .with_context(|| format!("{group} has no snapshots in {store}"))?
    };
    Ok(SnapshotRef {
        ns: ns.clone(),
        group,
        time,
    })
}

pub fn restore(
    api: &Arc<ApiClient>,
    store: &DatastoreName,
    s: &SnapshotRef,
    target: &Path,
    keyfile: Option<&Path>,
    only: Option<&str>,
    out: Output,
) -> Result<()> {
    let key = load_key(keyfile)?;
    let manifest = fetch_manifest(api, store, s, key.as_ref())?;
    let source: Arc<dyn ChunkSource> = Arc::new(RemoteSource::new(api.clone(), store.clone()));
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
