//! Giving every chunk of a commit its copies: each goes to its placement nodes at the site, or
//! — when one cannot be reached — to the next nodes in its rendezvous order, one verified
//! transfer per target node; fewer copies than the datastore keeps is an error, never a silent
//! success.

use std::collections::{BTreeMap, HashMap};

use ironcore_transport::TransferOptions;
use ironcore_types::records::NodeRecord;
use ironcore_types::{ChunkId, DatastoreName, SiteId};

use crate::protocol::{self, PeerRequest};
use crate::replication::peers::{ChunkPeers, SiteShare};
use crate::replication::placement::place;
use crate::{NodeError, Result};

/// Where the copies of one [`replicate`] call went so far.
#[derive(Debug, Default)]
struct Placing {
    /// Nodes that failed (or are passed over as recently down).
    failed: Vec<String>,
    /// Nodes a transfer was attempted to.
    tried: Vec<String>,
    /// Nodes that hold copies (this node first).
    holders: Vec<String>,
    /// Which nodes got which chunk.
    done: HashMap<ChunkId, Vec<String>>,
}

/// Makes sure every chunk of `ids` (held here) is on `copies` nodes: its placement nodes,
/// or — when one of them cannot be reached — the next nodes in its rendezvous order, so a
/// dead node never costs a copy. One verified transfer per target node. Returns the names
/// of the nodes that hold copies; fails with [`NodeError::UnderReplicated`] when fewer
/// storage nodes than the datastore's copies could take them (never a silent short copy).
pub async fn replicate(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    ids: &[ChunkId],
) -> Result<Vec<String>> {
    let (nodes, copies) = peers.storage_nodes(ds)?;
    replicate_to(peers, ds, &nodes, copies, ids).await
}

/// For a datastore mirrored synchronously: gives every chunk of `ids` (held here) its copies
/// at each mirror site now, as [`replicate`] does at the datastore's own site; returns the
/// sites that hold them all. Fails, naming the site and its nodes, when one cannot take them.
pub async fn replicate_to_mirrors(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    ids: &[ChunkId],
) -> Result<Vec<SiteId>> {
    let home = peers.storage_nodes(ds)?.0;
    let mut done = Vec::new();
    for site in peers.copy_sites(ds)? {
        if site.nodes.iter().any(|n| home.iter().any(|h| h.id == n.id)) {
            continue;
        }
        if site.nodes.is_empty() {
            return Err(NodeError::UnderReplicated(format!(
                "datastore {ds} mirrors synchronously to site {}, which has no storage node; nothing was committed — add nodes there (see `ironcore-backup cluster site list`)",
                site.site
            )));
        }
        replicate_to(peers, ds, &site.nodes, site.copies, ids).await?;
        done.push(site.site);
    }
    Ok(done)
}

/// [`replicate`] onto the storage nodes of `site` (a repair there).
pub async fn replicate_at(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    site: &SiteShare,
    ids: &[ChunkId],
) -> Result<Vec<String>> {
    replicate_to(peers, ds, &site.nodes, site.copies, ids).await
}

/// [`replicate`] onto `nodes` (one site's storage nodes), `copies` of each chunk.
async fn replicate_to(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    nodes: &[NodeRecord],
    copies: usize,
    ids: &[ChunkId],
) -> Result<Vec<String>> {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let copies = copies.min(names.len());
    // Peers that failed recently are passed over first; if that leaves too few nodes,
    // they are tried again before the copies are declared short.
    let down = peers.recently_down();
    let recently_down: Vec<String> = nodes
        .iter()
        .filter(|n| down.contains(&n.id))
        .map(|n| n.name.clone())
        .collect();
    let mut round = Placing {
        failed: recently_down,
        // This node counts only where it is a storage node (see `staging`).
        holders: names
            .iter()
            .filter(|n| **n == peers.name.as_str())
            .cloned()
            .collect(),
        ..Placing::default()
    };
    place_copies(peers, ds, nodes, copies, ids, &mut round).await;
    if names.len().saturating_sub(round.failed.len()) < copies {
        round.failed.retain(|f| round.tried.contains(f));
        place_copies(peers, ds, nodes, copies, ids, &mut round).await;
    }
    let reachable = names.len().saturating_sub(round.failed.len());
    if reachable < copies {
        // Every chunk has a copy on each reachable storage node it was placed on, which
        // is fewer than the datastore keeps: refuse, so nothing is acknowledged short.
        let (site, down) = (
            nodes
                .first()
                .map(|n| n.site.to_string())
                .unwrap_or_default(),
            round.failed.join(", "),
        );
        tracing::warn!(datastore = %ds, copies, reachable, down, "chunks cannot get the copies their datastore keeps");
        return Err(NodeError::UnderReplicated(format!(
            "datastore {ds} keeps {copies} copies of every chunk at site {site}, but only {reachable} of its {} storage nodes could take them ({down} did not answer); nothing was committed — bring {down} back (see `ironcore-backup cluster status`) and run it again",
            names.len()
        )));
    }
    Ok(round.holders)
}

/// One pass of [`replicate`]: sends each chunk of `ids` to its first `copies`
/// placement nodes not in `round.failed` (this node counts when placement picks it), and
/// moves a target that fails to `round.failed`, its chunks to the next nodes.
async fn place_copies(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    nodes: &[NodeRecord],
    copies: usize,
    ids: &[ChunkId],
    round: &mut Placing,
) {
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let me = peers.name.clone();
    let mut pending: Vec<ChunkId> = ids.to_vec();
    while !pending.is_empty() {
        let mut per_target: BTreeMap<String, Vec<ChunkId>> = BTreeMap::new();
        for id in &pending {
            let ranked = place(id, &names, names.len());
            let chosen = ranked
                .into_iter()
                .filter(|n| !round.failed.iter().any(|f| f == n))
                .take(copies);
            for target in chosen {
                let have = round
                    .done
                    .get(id)
                    .is_some_and(|d| d.iter().any(|n| n == target));
                if target != me && !have {
                    per_target.entry(target.to_string()).or_default().push(*id);
                }
            }
        }
        if per_target.is_empty() {
            break;
        }
        let mut retry = Vec::new();
        for (target, chunk_ids) in per_target {
            round.tried.push(target.clone());
            match send_to(peers, ds, nodes, &target, &chunk_ids).await {
                Ok(()) => {
                    for id in &chunk_ids {
                        round.done.entry(*id).or_default().push(target.clone());
                    }
                    if !round.holders.contains(&target) {
                        round.holders.push(target);
                    }
                }
                Err(e) => {
                    tracing::warn!(datastore = %ds, target, error = %e, "replication target failed; placing its copies on the next nodes");
                    if let Some(n) = nodes.iter().find(|n| n.name == target) {
                        peers.mark_down(n.id);
                    }
                    round.failed.push(target);
                    retry.extend(chunk_ids);
                }
            }
        }
        pending = retry;
    }
}

async fn send_to(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    nodes: &[NodeRecord],
    target: &str,
    chunk_ids: &[ChunkId],
) -> Result<()> {
    let record = nodes
        .iter()
        .find(|n| n.name == target)
        .ok_or_else(|| NodeError::NotFound(format!("node {target} vanished")))?;
    let ask = protocol::encode(&PeerRequest::Expect {
        datastore: ds.clone(),
        ids: chunk_ids.to_vec(),
    })
    .map_err(NodeError::Internal)?;
    peers.raft.call_service(record.id, &ask).await?;
    let options = TransferOptions {
        scope: ds.to_string(),
        ..TransferOptions::default()
    };
    let report = peers
        .raft
        .transport()
        .send_chunks(&peers.peer(record.id)?, chunk_ids, &options)
        .await?;
    tracing::info!(datastore = %ds, target, offered = report.offered, sent = report.wanted, retries = report.retries, "replicated chunks");
    Ok(())
}
