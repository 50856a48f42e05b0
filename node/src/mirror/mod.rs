//! Continuous mirroring: every storage node of a datastore's mirror site pulls, by itself, its
//! share of each snapshot committed at the datastore's site (placement over its own site's
//! nodes, as many copies as the site keeps), verified on arrival; once its share and its site
//! fellows' shares are all present, it records the snapshot as complete at the site through
//! Raft. A restore there then needs nothing from elsewhere.
//!
//! Oldest snapshot first; a pass that cannot get a chunk leaves that snapshot (and, to keep
//! the order, the later ones of that datastore) for the next pass, so what is marked complete
//! is always a prefix of the datastore's history at that site.

pub mod status;

use std::time::Duration;

use ironcore_chunkstore::Manifest;
use ironcore_raft::MetaCommand;
use ironcore_types::records::{NodeRecord, SnapshotEntry};
use ironcore_types::{AuthId, ChunkId, DatastoreName, SiteId};

use crate::node::proposer::Proposer;
use crate::protocol::{self, PeerRequest, PeerResponse};
use crate::replication::fetch;
use crate::replication::index::snapshot_chunks;
use crate::replication::peers::{ChunkPeers, SiteShare};
use crate::replication::placement::place;
use crate::{NodeError, Result};

/// How long between two passes when there was nothing to do.
const IDLE: Duration = Duration::from_secs(1);

/// Who completion marks are recorded as.
fn system() -> AuthId {
    "root@pam".parse().expect("a valid auth id")
}

/// Runs mirroring passes until the node stops.
pub async fn run(peers: ChunkPeers, proposer: Proposer, site: SiteId) {
    loop {
        match pass(&peers, &proposer, &site).await {
            Ok(0) => tokio::time::sleep(IDLE).await,
            Ok(marked) => tracing::debug!(marked, "mirror pass"),
            Err(e) => {
                tracing::warn!(error = %e, "mirror pass failed; retrying");
                tokio::time::sleep(IDLE * 5).await;
            }
        }
    }
}

/// One pass over every datastore this node mirrors; how many snapshots it marked complete.
pub async fn pass(peers: &ChunkPeers, proposer: &Proposer, site: &SiteId) -> Result<usize> {
    let mut marked = 0;
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
        for entry in todo {
            if !mirror_snapshot(peers, &config.name, mine, &entry).await? {
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
    Ok(marked)
}

/// Pulls this node's share of `entry` and asks its site fellows for theirs: whether the whole
/// snapshot is now present at the site.
async fn mirror_snapshot(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    site: &SiteShare,
    entry: &SnapshotEntry,
) -> Result<bool> {
    let (manifest, _) = Manifest::decode(&entry.manifest)?;
    let chunks: Vec<ChunkId> = snapshot_chunks(peers, ds, &manifest)
        .await?
        .into_iter()
        .collect();
    let names = site.names();
    let me = peers.name.as_str();
    let share = |node: &str| -> Vec<ChunkId> {
        chunks
            .iter()
            .filter(|id| place(id, &names, site.copies).contains(&node))
            .copied()
            .collect()
    };
    let missing = fetch::pull(peers, ds, &share(me)).await?;
    if !missing.is_empty() {
        tracing::warn!(datastore = %ds, snapshot = %entry.snapshot, missing = missing.len(), first = %missing[0], "chunks of a snapshot could not be mirrored yet");
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
