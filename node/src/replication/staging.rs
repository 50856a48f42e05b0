//! Chunks a node holds for a datastore it does not store.
//!
//! Any node takes backups, but a datastore's chunks live on the storage nodes of its site,
//! where placement puts them and where GC and verify look. A node that is not one of them (a
//! witness, a node of another site) keeps an upload only until the commit has given it its
//! copies on the placement nodes; then it deletes its own ([`drop_staged`]). It never counts
//! as a holder, and it does not answer "present" from its staging (the client uploads what the
//! storage nodes lack).
//!
//! A commit holds [`ChunkPeers::staging`] for reading from its presence check to the end of its
//! replication, so its chunks cannot vanish under it; deleting staged chunks holds it for
//! writing, after every commit in flight. A chunk deleted before a later commit's presence
//! check is pulled back from the storage nodes by that commit.

use ironcore_types::{ChunkId, DatastoreName};

use crate::Result;
use crate::replication::peers::ChunkPeers;

/// Whether this node is one of the storage nodes of `ds` at its site or at one of its mirror
/// sites (its copies count and stay).
pub fn stores_here(peers: &ChunkPeers, ds: &DatastoreName) -> Result<bool> {
    let me = peers.raft.id();
    Ok(peers
        .copy_sites(ds)?
        .iter()
        .any(|s| s.nodes.iter().any(|n| n.id == me)))
}

/// Deletes this node's staged copies of `ids` of `ds` once they reached their placement
/// nodes; how many it deleted. Nothing happens on a storage node of `ds`.
pub async fn drop_staged(peers: &ChunkPeers, ds: &DatastoreName, ids: &[ChunkId]) -> Result<usize> {
    if stores_here(peers, ds)? {
        return Ok(0);
    }
    let _no_commit_relies_on_them = peers.staging.write().await;
    let mut dropped = 0;
    for id in ids {
        if peers.stores.remove(ds, id)? {
            dropped += 1;
        }
    }
    tracing::info!(datastore = %ds, dropped, "staged chunks handed on to their storage nodes and deleted here");
    Ok(dropped)
}
