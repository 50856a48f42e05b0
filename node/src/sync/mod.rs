//! Sync with a remote (`ironcore-backup sync create|run|diff`, see the replication manual):
//! pull copies the snapshots of a remote's datastore that a local one lacks; push copies the
//! local snapshots the remote's datastore lacks, through the remote's backup API (the remote
//! commits each only once all its chunks arrived, exactly as for a client's backup).
//!
//! The remote is another cluster (or site) registered with a pinned fingerprint and a token
//! ([`ironcore_types::records::RemoteRecord`]); everything goes through its HTTPS API. For each
//! snapshot to pull: its manifest, then its index chunks, then every chunk those name that no
//! storage node here holds — each verified against its id on arrival, three attempts, under the
//! job's bandwidth limit — are stored and replicated to their copies, and only then is the
//! snapshot committed here. A run that breaks off commits nothing half-way; the next run
//! fetches only the chunks still missing.

pub mod project_key;
pub mod push;
pub mod syncer;

use std::collections::HashSet;

use ironcore_chunkstore::envelope::verify_stored;
use ironcore_chunkstore::prune::{PruneCandidate, parse_timezone, plan_prune};
use ironcore_chunkstore::{CryptKey, Manifest};
use ironcore_client::ApiClient;
use ironcore_client::api_client::encode_segment;
use ironcore_raft::{MetaCommand, MetaView};
use ironcore_transport::limit::RateLimiter;
use ironcore_types::records::{
    JobKind, JobRecord, RemoteRecord, SnapshotEntry, TaskState, VerifyStatus,
};
use ironcore_types::{
    BackupGroup, ChunkId, DatastoreName, Fingerprint, KeepOptions, Namespace, SnapshotRef,
};
use serde_json::Value;

use crate::replication::index::load_index;
use crate::replication::{pull, replicate, staging};
use crate::sync::push::{ATTEMPTS, PushTarget, push_snapshot};
use crate::sync::syncer::Syncer;
use crate::tasks::RunningTask;
use crate::{NodeError, Result};

/// One include filter (OR-combined with the others).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `backup-id:TYPE/ID`: one group.
    Group(BackupGroup),
    /// `namespace:NS`: a namespace and everything below it.
    Namespace(Namespace),
    /// `keep-weekly=*`, `keep-daily=7`, …: the snapshots such a retention window keeps in
    /// each group of the sending side (`*` = every window; buckets in UTC).
    Keep(KeepOptions),
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(g) = s.strip_prefix("backup-id:") {
            return g
                .parse()
                .map(Filter::Group)
                .map_err(|e| format!("include filter '{s}': {e}"));
        }
        if let Some(ns) = s.strip_prefix("namespace:") {
            return ns
                .parse()
                .map(Filter::Namespace)
                .map_err(|e| format!("include filter '{s}': {e}"));
        }
        if let Some((key, n)) = s.split_once('=') {
            let n: u32 = match n {
                "*" => u32::MAX,
                n => n
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("include filter '{s}': use a count above 0 or *"))?,
            };
            let mut keep = KeepOptions::default();
            let slot = match key {
                "keep-last" => &mut keep.keep_last,
                "keep-hourly" => &mut keep.keep_hourly,
                "keep-daily" => &mut keep.keep_daily,
                "keep-weekly" => &mut keep.keep_weekly,
                "keep-monthly" => &mut keep.keep_monthly,
                "keep-yearly" => &mut keep.keep_yearly,
                _ => return Err(unsupported(s)),
            };
            *slot = n;
            return Ok(Filter::Keep(keep));
        }
        Err(unsupported(s))
    }
}

fn unsupported(s: &str) -> String {
    format!(
        "include filter '{s}' is not supported: use backup-id:TYPE/ID, namespace:NS or keep-{{last,hourly,daily,weekly,monthly,yearly}}=N|*"
    )
}

impl Filter {
    /// Whether `s` passes, `kept` being what the keep filters retain (see [`retained`]).
    fn matches(&self, s: &SnapshotRef, kept: &HashSet<SnapshotRef>) -> bool {
        match self {
            Filter::Keep(_) => kept.contains(s),
            Filter::Group(g) => &s.group == g,
            Filter::Namespace(ns) => {
                let (want, have) = (ns.to_string(), s.ns.to_string());
                have == want || want.is_empty() || have.starts_with(&format!("{want}/"))
            }
        }
    }
}

/// What the two sides hold: snapshots only on the remote (to copy), only here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// On the remote (and passing the filters), not here.
    pub only_remote: Vec<SnapshotRef>,
    /// Here, not on the remote (passing the filters).
    pub only_local: Vec<SnapshotRef>,
}

/// The snapshots of `from` that a keep filter retains: each group planned as a prune would
/// (UTC buckets), for each keep filter.
pub fn retained(from: &[SnapshotRef], filters: &[Filter]) -> HashSet<SnapshotRef> {
    let mut groups: std::collections::BTreeMap<(String, String), Vec<&SnapshotRef>> =
        Default::default();
    for s in from {
        groups
            .entry((s.ns.to_string(), s.group.to_string()))
            .or_default()
            .push(s);
    }
    let mut kept = HashSet::new();
    for keep in filters.iter().filter_map(|f| match f {
        Filter::Keep(k) => Some(k),
        _ => None,
    }) {
        for snaps in groups.values() {
            let candidates: Vec<PruneCandidate> = snaps
                .iter()
                .map(|s| PruneCandidate {
                    time: s.time,
                    protected: false,
                })
                .collect();
            // Times are unique within a group, so the plan cannot fail; keep nothing if it did.
            let Ok(plan) = parse_timezone("UTC").and_then(|tz| plan_prune(&candidates, keep, tz))
            else {
                continue;
            };
            for d in plan.iter().filter(|d| d.is_kept()) {
                if let Some(s) = snaps.iter().find(|s| s.time == d.time) {
                    kept.insert((*s).clone());
                }
            }
        }
    }
    kept
}

/// The snapshots of `from` that `to` lacks and the filters pass, oldest first (pure).
pub fn missing(from: &[SnapshotRef], to: &[SnapshotRef], filters: &[Filter]) -> Vec<SnapshotRef> {
    let kept = retained(from, filters);
    let wanted =
        |s: &SnapshotRef| filters.is_empty() || filters.iter().any(|f| f.matches(s, &kept));
    let have: HashSet<&SnapshotRef> = to.iter().collect();
    let mut out: Vec<SnapshotRef> = from
        .iter()
        .filter(|s| wanted(s) && !have.contains(s))
        .cloned()
        .collect();
    out.sort_by_key(|s| (s.time, s.to_string()));
    out
}

/// Compares the snapshot lists (pure).
pub fn diff(remote: &[SnapshotRef], local: &[SnapshotRef], filters: &[Filter]) -> Diff {
    Diff {
        only_remote: missing(remote, local, filters),
        only_local: missing(local, remote, filters),
    }
}

/// A client of `remote` as registered.
pub fn client(remote: &RemoteRecord) -> Result<ApiClient> {
    let addr = if remote.host.contains(':') && !remote.host.starts_with('[') {
        format!("[{}]:{}", remote.host, remote.port)
    } else {
        format!("{}:{}", remote.host, remote.port)
    };
    let token = format!("{}:{}", remote.auth_id, remote.secret);
    ApiClient::new(&addr, remote.fingerprint, Some(token))
        .map_err(|e| NodeError::BadRequest(format!("remote {}: {e}", remote.name)))
}

/// An error of remote `name`'s API, naming the remote.
pub(crate) fn remote_err(name: &str) -> impl Fn(ironcore_client::ApiError) -> NodeError + '_ {
    move |e| NodeError::BadRequest(format!("remote {name}: {e}"))
}

/// The snapshots of `store` on the remote.
pub async fn remote_snapshots(
    api: &ApiClient,
    remote: &str,
    store: &DatastoreName,
) -> Result<Vec<SnapshotRef>> {
    let list: Value = api
        .get(&format!("/api2/json/datastore/{store}/snapshots"))
        .await
        .map_err(remote_err(remote))?;
    let mut out = Vec::new();
    for s in list["data"].as_array().into_iter().flatten() {
        let bad = || NodeError::BadRequest(format!("remote {remote}: unexpected snapshot {s}"));
        out.push(SnapshotRef {
            ns: s["ns"]
                .as_str()
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?,
            group: s["group"]
                .as_str()
                .ok_or_else(bad)?
                .parse()
                .map_err(|_| bad())?,
            time: s["time"].as_i64().ok_or_else(bad)?,
        });
    }
    Ok(out)
}

/// The snapshots of `ds` here.
pub fn local_snapshots(meta: &MetaView, ds: &DatastoreName) -> Result<Vec<SnapshotRef>> {
    Ok(meta
        .snapshots(ds)?
        .into_iter()
        .map(|e| e.snapshot)
        .collect())
}

/// The fingerprint of this node's project key, for a push job created with `--encrypt`; the
/// key must be registered in the cluster.
pub fn project_key_fingerprint(node: &Syncer) -> Result<Fingerprint> {
    let key = node.project_key().ok_or_else(|| {
        NodeError::KeyNotFound(format!(
            "node {} has no project key to encrypt on push; add a [project-key] section (keyfile, passphrase-file) to its configuration — the same key on every node that runs sync jobs — and restart it",
            node.name()
        ))
    })?;
    let fp = key.fingerprint();
    if !node.meta().keys()?.iter().any(|k| k.fingerprint == fp) {
        return Err(NodeError::KeyNotRegistered(format!(
            "the project key {fp} is not registered in this cluster; register it with `ironcore-backup key register --keyfile FILE`"
        )));
    }
    Ok(fp)
}

/// The key a push job encrypting with `fp` uses: this node's project key, which must be that
/// one, and which the remote must have registered too (its restores need the same key).
async fn encrypt_key(
    node: &Syncer,
    api: &ApiClient,
    remote: &str,
    fp: &Fingerprint,
) -> Result<CryptKey> {
    let key = node
        .project_key()
        .filter(|k| k.fingerprint() == *fp)
        .ok_or_else(|| {
            NodeError::KeyNotFound(format!(
                "this job encrypts with project key {fp}, which node {} does not hold; give it that key in its [project-key] configuration section and restart it",
                node.name()
            ))
        })?;
    let keys: Value = api
        .get("/api2/json/keys")
        .await
        .map_err(remote_err(remote))?;
    let registered = keys["data"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|k| k["fingerprint"].as_str().and_then(|s| s.parse().ok()) == Some(*fp));
    if !registered {
        return Err(NodeError::KeyNotRegistered(format!(
            "remote {remote} has not registered project key {fp}; register the same key file there (`ironcore-backup key register`) before pushing encrypted snapshots to it"
        )));
    }
    Ok(key.clone())
}

/// Runs sync job `job` as `task`.
pub async fn run(node: &Syncer, task: &RunningTask, job: &JobRecord) -> Result<TaskState> {
    let JobKind::Sync {
        push,
        remote,
        remote_store,
        include,
        limit_mib,
        encrypt,
    } = &job.kind
    else {
        return Err(NodeError::BadRequest(format!(
            "job {} is not a sync job",
            job.id
        )));
    };
    let filters = include
        .iter()
        .map(|f| f.parse())
        .collect::<std::result::Result<Vec<Filter>, String>>()
        .map_err(NodeError::BadRequest)?;
    let record = node.meta().remote(remote)?.ok_or_else(|| {
        NodeError::NotFound(format!(
            "remote {remote} does not exist; see `ironcore-backup remote list`"
        ))
    })?;
    let api = client(&record)?;
    let key = match encrypt {
        Some(fp) => Some(encrypt_key(node, &api, remote, fp).await?),
        None => None,
    };
    node.raft().linearize().await?;
    let ds = &job.datastore;
    let theirs = remote_snapshots(&api, remote, remote_store).await?;
    let ours = local_snapshots(node.meta(), ds)?;
    let limit = RateLimiter::new(*limit_mib);
    let (from, to) = if *push {
        (&ours, &theirs)
    } else {
        (&theirs, &ours)
    };
    let (source, target) = (format!("{remote}:{remote_store}"), ds.to_string());
    let (source, target) = if *push {
        (target, source)
    } else {
        (source, target)
    };
    let plan = missing(from, to, &filters);
    task.log(&format!(
        "{source} has {} snapshots; {} to copy to {target}",
        from.len(),
        plan.len()
    ));
    let (mut copied, mut moved, mut bytes) = (0usize, 0usize, 0u64);
    for s in &plan {
        task.check()?;
        let (n, b) = if *push {
            let to = PushTarget {
                api: &api,
                remote,
                store: remote_store,
                limit: &limit,
            };
            let p = push_snapshot(node, task, &to, ds, s, key.as_ref()).await?;
            (p.sent, p.bytes)
        } else {
            copy_snapshot(node, task, &api, remote, remote_store, ds, s, job, &limit).await?
        };
        copied += 1;
        moved += n;
        bytes += b;
    }
    task.log(&format!(
        "copied {copied} snapshots; {moved} chunks ({bytes} bytes) went from {source} to {target}"
    ));
    Ok(TaskState::Ok)
}

/// Copies one snapshot: manifest, index chunks, missing data chunks, replication, commit.
/// Returns the chunks fetched from the remote and their bytes.
#[allow(clippy::too_many_arguments)]
async fn copy_snapshot(
    node: &Syncer,
    task: &RunningTask,
    api: &ApiClient,
    remote: &str,
    remote_store: &DatastoreName,
    ds: &DatastoreName,
    s: &SnapshotRef,
    job: &JobRecord,
    limit: &RateLimiter,
) -> Result<(usize, u64)> {
    if !node.meta().namespace_exists(ds, &s.ns)? {
        return Err(NodeError::NotFound(format!(
            "namespace '{}' does not exist in {ds}; create it (`ironcore-backup namespace create`) and run the sync again",
            s.ns
        )));
    }
    let query = format!(
        "/api2/json/datastore/{remote_store}/snapshot?group={}&time={}{}",
        encode_segment(&s.group.to_string()),
        s.time,
        if s.ns.is_root() {
            String::new()
        } else {
            format!("&ns={}", encode_segment(&s.ns.to_string()))
        }
    );
    let v: Value = api.get(&query).await.map_err(remote_err(remote))?;
    let manifest_bytes = hex::decode(v["manifest"].as_str().unwrap_or_default()).map_err(|e| {
        NodeError::BadRequest(format!("remote {remote}: manifest of {s} is not hex: {e}"))
    })?;
    let (manifest, _) = Manifest::decode(&manifest_bytes)?;
    let from = Source {
        api,
        remote,
        store: remote_store,
        reader: v["reader"]
            .as_str()
            .ok_or_else(|| NodeError::BadPeerAnswer {
                node: format!("remote {remote}"),
                detail: format!(
                    "it opened no reader session for {s}; upgrade it to a version that does"
                ),
            })?,
    };
    let (mut fetched, mut bytes) = (0usize, 0u64);
    let mut ids: Vec<ChunkId> = Vec::new();
    for file in &manifest.files {
        let (n, b) = ensure(node, &from, ds, &[file.index], limit).await?;
        fetched += n;
        bytes += b;
        let index = load_index(node.chunk_peers(), ds, file).await?;
        ids.push(file.index);
        ids.extend(index.chunk_ids());
    }
    ids.sort_unstable();
    ids.dedup();
    task.check()?;
    // Staged chunks stay until the replication ends (replication::staging).
    let staged = node.chunk_peers().staging().read().await;
    let (n, b) = ensure(node, &from, ds, &ids, limit).await?;
    fetched += n;
    bytes += b;
    let (n2, d2) = (node.clone(), ds.clone());
    tokio::task::spawn_blocking(move || n2.stores().sync(&d2))
        .await
        .map_err(NodeError::join("a chunk store call"))??;
    let nodes = replicate::replicate(node.chunk_peers(), ds, &ids).await?;
    drop(staged);
    staging::drop_staged(node.chunk_peers(), ds, &ids).await?;
    task.check()?;
    let entry = SnapshotEntry {
        datastore: ds.clone(),
        snapshot: s.clone(),
        manifest: manifest_bytes,
        size: manifest.size(),
        key_fingerprint: manifest.key_fingerprint,
        protected: false,
        verify: VerifyStatus::None,
        verified_at: None,
        owner: job.owner.clone(),
        nodes,
        complete_at: Vec::new(),
    };
    node.propose(
        &job.owner,
        MetaCommand::CommitSnapshot {
            entry,
            admin_override: true,
        },
    )
    .await?;
    task.log(&format!(
        "{s}: {} chunks referenced, {n} fetched ({b} bytes); committed",
        ids.len()
    ));
    Ok((fetched, bytes))
}

/// Where a pulled snapshot's chunks come from: the remote's datastore, through the reader
/// session its snapshot answer opened.
struct Source<'a> {
    api: &'a ApiClient,
    remote: &'a str,
    store: &'a DatastoreName,
    reader: &'a str,
}

/// Makes sure this node holds every chunk of `ids`: from the other storage nodes here first,
/// then from the remote (verified, [`ATTEMPTS`] tries each). Returns what came from the remote.
async fn ensure(
    node: &Syncer,
    from: &Source<'_>,
    ds: &DatastoreName,
    ids: &[ChunkId],
    limit: &RateLimiter,
) -> Result<(usize, u64)> {
    let missing = pull::pull(node.chunk_peers(), ds, ids).await?;
    let (mut fetched, mut bytes) = (0usize, 0u64);
    for id in missing {
        let mut last = String::new();
        let mut got = None;
        for _ in 0..ATTEMPTS {
            match from
                .api
                .raw(
                    hyper::Method::GET,
                    &format!(
                        "/api2/json/datastore/{}/chunk/{id}?reader={}",
                        from.store,
                        encode_segment(from.reader)
                    ),
                    bytes::Bytes::new(),
                    "application/octet-stream",
                    &[],
                )
                .await
            {
                Ok((_, body)) => match verify_stored(&body, &id) {
                    Ok(_) => {
                        got = Some(body);
                        break;
                    }
                    Err(e) => last = format!("failed verification: {e}"),
                },
                Err(e) => last = e.to_string(),
            }
        }
        let Some(body) = got else {
            return Err(NodeError::ChunkNotFound(format!(
                "{id} from remote {} after {ATTEMPTS} attempts ({last}); nothing was committed — run the sync again",
                from.remote
            )));
        };
        limit.acquire(body.len() as u64).await;
        bytes += body.len() as u64;
        fetched += 1;
        let (n, d) = (node.clone(), ds.clone());
        tokio::task::spawn_blocking(move || n.stores().put(&d, &id, &body).map(|_| ()))
            .await
            .map_err(NodeError::join("a chunk store call"))??;
    }
    Ok((fetched, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(ns: &str, group: &str, time: i64) -> SnapshotRef {
        SnapshotRef {
            ns: if ns.is_empty() {
                Namespace::root()
            } else {
                ns.parse().unwrap()
            },
            group: group.parse().unwrap(),
            time,
        }
    }

    #[test]
    fn filters_parse_or_say_what_is_supported() {
        assert_eq!(
            "backup-id:vm/100".parse::<Filter>().unwrap(),
            Filter::Group("vm/100".parse().unwrap())
        );
        assert!(matches!(
            "namespace:prod".parse::<Filter>().unwrap(),
            Filter::Namespace(_)
        ));
        assert!(
            matches!("keep-weekly=*".parse::<Filter>().unwrap(), Filter::Keep(k) if k.keep_weekly == u32::MAX)
        );
        assert!(
            matches!("keep-daily=7".parse::<Filter>().unwrap(), Filter::Keep(k) if k.keep_daily == 7)
        );
        for bad in ["keep-weekly=0", "keep-fortnightly=*", "vm/100"] {
            let e = bad.parse::<Filter>().unwrap_err();
            assert!(
                e.contains("is not supported") || e.contains("above 0"),
                "{bad}: {e}"
            );
        }
        assert!("backup-id:nonsense".parse::<Filter>().is_err());
    }

    #[test]
    fn the_diff_copies_what_is_missing_and_passes_a_filter() {
        let remote = vec![
            snap("", "vm/100", 10),
            snap("", "vm/100", 20),
            snap("", "host/a", 10),
            snap("prod", "vm/7", 5),
            snap("prod/db", "vm/8", 6),
        ];
        let local = vec![snap("", "vm/100", 10), snap("", "host/old", 1)];
        let all = diff(&remote, &local, &[]);
        assert_eq!(all.only_remote.len(), 4);
        assert_eq!(all.only_local, vec![snap("", "host/old", 1)]);
        let vm = diff(&remote, &local, &["backup-id:vm/100".parse().unwrap()]);
        assert_eq!(vm.only_remote, vec![snap("", "vm/100", 20)]);
        assert!(vm.only_local.is_empty());
        // keep-weekly=*: the newest snapshot of each ISO week, per group. 2026-11-16 and -17
        // are one week (Mon, Tue), 2026-11-23 the next.
        let day = |d: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 11, d)
                .unwrap()
                .and_hms_opt(3, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        };
        let weekly_remote = vec![
            snap("", "vm/1", day(16)),
            snap("", "vm/1", day(17)),
            snap("", "vm/1", day(23)),
            snap("", "vm/2", day(16)),
        ];
        let weekly = missing(&weekly_remote, &[], &["keep-weekly=*".parse().unwrap()]);
        assert_eq!(
            weekly,
            vec![
                snap("", "vm/2", day(16)),
                snap("", "vm/1", day(17)),
                snap("", "vm/1", day(23))
            ]
        );
        let prod = diff(&remote, &local, &["namespace:prod".parse().unwrap()]);
        assert_eq!(
            prod.only_remote,
            vec![snap("prod", "vm/7", 5), snap("prod/db", "vm/8", 6)]
        );
    }
}
