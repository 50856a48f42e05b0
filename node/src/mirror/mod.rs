//! Continuous mirroring: every storage node of a datastore's mirror site pulls, by itself, its
//! share of each snapshot committed at the datastore's site (placement over its own site's
//! nodes, as many copies as the site keeps), verified on arrival; once its share and its site
//! fellows' shares are all present, it records the snapshot as complete at the site through
//! Raft. A restore there then needs nothing from elsewhere.
//!
//! Oldest snapshot first; a pass that cannot get a chunk leaves that snapshot (and, to keep
//! the order, the later ones of that datastore) for the next pass, so what is marked complete
//! is always a prefix of the datastore's history at that site.
//!
//! A node pulls its share from several holders at once (at most
//! [`crate::replication::pull::MAX_SOURCES`], one push per holder at a time, so the Primary's
//! nodes serve a bounded amount of mirroring and backups there never wait for it), within its
//! part of the site's link limit (`cluster site set SITE --bwlimit`, split evenly between the
//! site's storage nodes). Everything that arrives is verified; what arrived before a restart is
//! not sent again. A chunk that fails its third attempt is reported in `mirror status` and by
//! one notification, and is tried again every 10 s until it arrives.

pub mod status;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ironcore_chunkstore::Manifest;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{NodeRecord, Severity, SnapshotEntry};
use ironcore_types::{AuthId, ChunkId, DatastoreName, SiteId, SnapshotRef};

use crate::node::proposer::Proposer;
use crate::notify::{Event, NotifyMode};
use crate::protocol::{self, PeerRequest, PeerResponse};
use crate::replication::index::snapshot_chunks;
use crate::replication::peers::{ChunkPeers, SiteShare};
use crate::replication::placement::place;
use crate::replication::progress::ATTEMPTS;
use crate::replication::pull::pull_limited;
use crate::{NodeError, Result};
use serde_json::json;

/// How long between two passes when there was nothing to do.
const IDLE: Duration = Duration::from_secs(1);
/// How long between two passes while some chunk keeps failing (its source site may be down).
const FAILING: Duration = Duration::from_secs(10);

/// Who completion marks are recorded as.
fn system() -> AuthId {
    "root@pam".parse().expect("a valid auth id")
}

/// How often an idle loop looks for news (a commit, a fellow's completion mark).
const LOOK: Duration = Duration::from_millis(50);

/// Runs mirroring passes until the node stops. Between passes it waits for news in the
/// metadata (a new snapshot, a fellow marking one complete), or at most `IDLE` (`FAILING`
/// while chunks keep failing) to retry what it could not get.
pub async fn run(peers: ChunkPeers, proposer: Proposer, site: SiteId) {
    let mut lists = Lists::new();
    loop {
        let seen = applied(&proposer);
        match pass(&peers, &proposer, &site, &mut lists).await {
            Ok(0) if peers.progress().any_failing() => news(&proposer, seen, FAILING).await,
            Ok(0) => news(&proposer, seen, IDLE).await,
            Ok(marked) => tracing::debug!(marked, "mirror pass"),
            Err(e) => {
                tracing::warn!(error = %e, "mirror pass failed; retrying");
                tokio::time::sleep(IDLE * 5).await;
            }
        }
    }
}

/// The index of the last metadata entry this node applied.
fn applied(proposer: &Proposer) -> u64 {
    proposer
        .raft()
        .metrics()
        .last_applied
        .map_or(0, |l| l.index)
}

/// Waits until this node applies an entry after `seen`, or `limit` has passed.
async fn news(proposer: &Proposer, seen: u64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline && applied(proposer) == seen {
        tokio::time::sleep(LOOK).await;
    }
}

/// One pass over every datastore this node mirrors; how many snapshots it marked complete.
pub async fn pass(
    peers: &ChunkPeers,
    proposer: &Proposer,
    site: &SiteId,
    lists: &mut Lists,
) -> Result<usize> {
    let mut marked = 0;
    let mut pending = HashSet::new();
    for config in proposer.meta().datastores()? {
        if !config.mirrors.iter().any(|m| &m.site == site) {
            continue;
        }
        let sites = peers.copy_sites(&config.name)?;
        let Some(mine) = sites.iter().find(|s| &s.site == site) else {
            continue;
        };
        if !mine.nodes.iter().any(|n| n.id == peers.raft.id()) {
            continue;
        }
        let mut todo: Vec<SnapshotEntry> = proposer
            .meta()
            .snapshots(&config.name)?
            .into_iter()
            .filter(|e| !e.complete_at.contains(site))
            .collect();
        todo.sort_by_key(|e| e.snapshot.time);
        pending.extend(
            todo.iter()
                .map(|e| (config.name.clone(), e.snapshot.clone())),
        );
        let limit = site_limit(proposer, site, mine.nodes.len())?;
        for entry in todo {
            let key = (config.name.clone(), entry.snapshot.clone());
            if !lists.contains_key(&key) {
                let (manifest, _) = Manifest::decode(&entry.manifest)?;
                let chunks = snapshot_chunks(peers, &config.name, &manifest).await?;
                lists.insert(key.clone(), chunks.into_iter().collect());
            }
            let chunks = &lists[&key];
            if !mirror_snapshot(peers, proposer, &config.name, mine, &entry, chunks, limit).await? {
                break; // keep the order: later snapshots wait for this one
            }
            proposer
                .propose(
                    &system(),
                    MetaCommand::MarkComplete {
                        datastore: config.name.clone(),
                        snapshot: entry.snapshot.clone(),
                        site: site.clone(),
                    },
                )
                .await?;
            tracing::info!(datastore = %config.name, snapshot = %entry.snapshot, %site, "snapshot complete at this site");
            marked += 1;
        }
    }
    // Chunk lists are kept only for snapshots still to mirror.
    lists.retain(|k, _| pending.contains(k));
    Ok(marked)
}

/// The chunks of each snapshot still to mirror, read once from its indexes (over the WAN)
/// rather than on every pass.
pub type Lists = HashMap<(DatastoreName, SnapshotRef), Vec<ChunkId>>;

/// This node's share of the limit on mirroring into `site`, in bytes per second (0 =
/// unlimited): the site's limit split evenly between its `nodes` storage nodes.
fn site_limit(proposer: &Proposer, site: &SiteId, nodes: usize) -> Result<u64> {
    let mib = proposer.meta().site(site)?.map_or(0, |s| s.bwlimit);
    Ok((mib << 20) / nodes.max(1) as u64)
}

/// Pulls this node's share of `entry` (at most `limit` bytes per second) and asks its site
/// fellows for theirs: whether the whole snapshot is now present at the site. A chunk that
/// fails its third attempt is reported (`mirror status`, a notification) and tried again later.
async fn mirror_snapshot(
    peers: &ChunkPeers,
    proposer: &Proposer,
    ds: &DatastoreName,
    site: &SiteShare,
    entry: &SnapshotEntry,
    chunks: &[ChunkId],
    limit: u64,
) -> Result<bool> {
    let started = Instant::now();
    let names = site.names();
    let me = peers.name.as_str();
    let share = |node: &str| -> Vec<ChunkId> {
        chunks
            .iter()
            .filter(|id| place(id, &names, site.copies).contains(&node))
            .copied()
            .collect()
    };
    let mine = share(me);
    let progress = peers.progress();
    let arrived = |b: u64| progress.pulled(ds, b, Instant::now());
    let pulled = pull_limited(peers, ds, &mine, limit, &arrived).await?;
    tracing::debug!(datastore = %ds, snapshot = %entry.snapshot, chunks = chunks.len(), mine = mine.len(), bytes = pulled.bytes, took = ?started.elapsed(), "share pulled");
    progress.arrived(ds, &mine);
    if !pulled.missing.is_empty() {
        let gave_up = progress.failed(ds, &pulled.missing);
        let (id, why) = &pulled.missing[0];
        tracing::debug!(datastore = %ds, snapshot = %entry.snapshot, missing = pulled.missing.len(), first = %id, error = %why, "chunks of a snapshot could not be mirrored yet");
        if let Some(first) = gave_up.first() {
            let text = format!(
                "{} chunks of snapshot {} of datastore {ds} could not be mirrored to site {} after {ATTEMPTS} attempts (first: {}: {}); mirroring keeps trying — check the link and the nodes that hold them (`ironcore-backup cluster status`)",
                gave_up.len(),
                entry.snapshot,
                site.site,
                first.id,
                first.error
            );
            tracing::error!(datastore = %ds, snapshot = %entry.snapshot, site = %site.site, chunks = gave_up.len(), error = %first.error, "mirroring failing");
            proposer.notify(Event {
                severity: Severity::Error,
                title: format!("mirroring of {ds} to site {} failing on {me}", site.site),
                fields: json!({
                    "event": "mirror-failed",
                    "datastore": ds.to_string(),
                    "site": site.site.to_string(),
                    "node": me,
                    "snapshot": entry.snapshot.to_string(),
                    "chunks": gave_up.len(),
                    "chunk": first.id.to_string(),
                    "error": text,
                }),
                mode: NotifyMode::Rules,
            });
        }
        return Ok(false);
    }
    for fellow in site.nodes.iter().filter(|n| n.name != me) {
        let theirs = share(&fellow.name);
        if !holds_all(peers, ds, fellow, &theirs).await {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether `node` answers that it holds every chunk of `ids` of `ds`.
async fn holds_all(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    node: &NodeRecord,
    ids: &[ChunkId],
) -> bool {
    if ids.is_empty() {
        return true;
    }
    let ask = match protocol::encode(&PeerRequest::Has {
        datastore: ds.clone(),
        ids: ids.to_vec(),
    }) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %NodeError::Internal(e), "presence query not encoded");
            return false;
        }
    };
    match peers
        .raft
        .call_service(node.id, &ask)
        .await
        .map(|a| protocol::decode::<PeerResponse>(&a))
    {
        Ok(Ok(PeerResponse::Held(h))) => h.len() == ids.len() && h.iter().all(|x| *x),
        other => {
            tracing::debug!(node = %node.name, answer = ?other, "presence query failed");
            false
        }
    }
}
