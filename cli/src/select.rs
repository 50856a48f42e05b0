//! What a command names: a key file, a namespace (`a/b`), a snapshot (`GROUP/TIME`, `GROUP`
//! for the newest, or `GROUP` with `--at`).

use std::path::Path;

use anyhow::{Context, Result};
use ironcore_chunkstore::{CryptKey, KeyFile};
use ironcore_client::ApiClient;
use ironcore_types::{BackupGroup, DatastoreName, Namespace, SnapshotRef};
use serde_json::Value;

/// Loads the key file (passphrase from `IRONCORE_KEY_PASSPHRASE`).
pub fn load_key(path: Option<&Path>) -> Result<Option<CryptKey>> {
    let Some(path) = path else { return Ok(None) };
    let file = KeyFile::load(path).map_err(|e| {
        anyhow::anyhow!("encryption key not found: {e}; check the key file path, or ask your administrator for the project key file")
    })?;
    let pass = std::env::var("IRONCORE_KEY_PASSPHRASE").unwrap_or_default();
    Ok(Some(file.unlock(&pass, path)?))
}

/// The namespace `a/b` (none or empty: the root).
pub fn parse_ns(ns: Option<&str>) -> Result<Namespace> {
    let mut out = Namespace::root();
    for part in ns.unwrap_or("").split('/').filter(|p| !p.is_empty()) {
        out = out.child(part)?;
    }
    Ok(out)
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
