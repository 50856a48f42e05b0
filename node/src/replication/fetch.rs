//! Getting one chunk this node lacks from the other storage nodes (a read), and which chunks
//! the others hold; many chunks at once are [`super::pull`]ed.

use ironcore_types::records::NodeRecord;
use ironcore_types::{ChunkId, DatastoreName};

use crate::protocol::{self, PeerRequest, PeerResponse};
use crate::replication::peers::ChunkPeers;
use crate::replication::placement::place;
use crate::{NodeError, Result};

/// Chunk `id` of `ds` to read (a restore, an index, a push): as [`fetch`], but a node outside
/// the datastore's own site that is not one of the chunk's placement nodes at its site keeps
/// no copy of what it pulled (see [`super::staging`]), so a mirror site holds exactly the
/// copies it keeps.
pub async fn read(peers: &ChunkPeers, ds: &DatastoreName, id: &ChunkId) -> Result<Vec<u8>> {
    // A storage node of the datastore's own site keeps what it read (a copy it hands on next,
    // and later presence checks answered here); a mirror site's node keeps only its share.
    let home = peers
        .storage_nodes(ds)?
        .0
        .iter()
        .any(|n| n.id == peers.raft.id());
    if home || placed_here(peers, ds, id)? {
        return fetch(peers, ds, id).await;
    }
    // Counted before looking, so that no other read deletes the copy under this one.
    let reading = Reading::start(peers, id);
    if let Ok(b) = peers.stores.get(ds, id) {
        return Ok(b); // staged by a backup in flight, or a copy this node keeps anyway
    }
    let bytes = fetch(peers, ds, id).await?;
    let _no_commit_relies_on_it = if super::staging::stores_here(peers, ds)? {
        // A storage node drops a copy it is not placed to keep, unless a commit here relies
        // on its chunks right now (it may be the very sync that asked for this chunk through
        // the API); then the copy stays, one more than the site keeps, and harmless.
        match peers.staging.try_write() {
            Ok(guard) => guard,
            Err(_) => return Ok(bytes),
        }
    } else {
        peers.staging.write().await
    };
    reading.drop_copy_if_last(ds)?;
    Ok(bytes)
}

/// One read in flight of a chunk this node does not keep (see [`ChunkPeers::reading`]).
struct Reading<'a> {
    peers: &'a ChunkPeers,
    id: ChunkId,
}

impl<'a> Reading<'a> {
    fn start(peers: &'a ChunkPeers, id: &ChunkId) -> Self {
        let mut r = peers.reading.lock().unwrap_or_else(|p| p.into_inner());
        *r.entry(*id).or_default() += 1;
        Self { peers, id: *id }
    }

    /// Deletes this node's copy unless another read of the chunk is in flight (the last one
    /// out deletes it); under the count's lock, so no read starts between the two.
    fn drop_copy_if_last(&self, ds: &DatastoreName) -> Result<()> {
        let r = self.peers.reading.lock().unwrap_or_else(|p| p.into_inner());
        if r.get(&self.id).is_none_or(|n| *n <= 1) {
            self.peers.stores.remove(ds, &self.id)?;
        }
        Ok(())
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut r = self.peers.reading.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = r.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.id);
            }
        }
    }
}

/// Chunk `id` of `ds`: from this node, else pulled from the nodes that should hold it (this
/// node's site first, each site's placement order before its other storage nodes) and kept
/// here, for a copy this node hands on next (verify's repair).
pub async fn fetch(peers: &ChunkPeers, ds: &DatastoreName, id: &ChunkId) -> Result<Vec<u8>> {
    match peers.stores.get(ds, id) {
        Ok(b) => return Ok(b),
        Err(NodeError::ChunkNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    // This node's own site first (a restore at a mirror site reads there), each site's
    // placement nodes before its others; peers that failed recently last.
    let sites = peers.copy_sites(ds)?;
    let me = peers.raft.id();
    let mut tried = Vec::new();
    for record in peers.holders(&sites, id, &peers.recently_down()) {
        let name = record.name.as_str();
        let ask = protocol::encode(&PeerRequest::PushTo {
            datastore: ds.clone(),
            ids: vec![*id],
            to: me,
            limit_bytes: 0,
        })
        .map_err(NodeError::Internal)?;
        let answer = peers.raft.call_service(record.id, &ask).await;
        match answer.map(|a| protocol::decode::<PeerResponse>(&a)) {
            Ok(Ok(PeerResponse::Pushed { chunks, .. })) if chunks > 0 => {
                return peers.stores.get(ds, id);
            }
            Ok(Ok(_)) => {
                // Nothing sent: the peer lacks it, or this node has it by now (another read
                // of the same chunk fetched it meanwhile, and the transfer was declined).
                if let Ok(b) = peers.stores.get(ds, id) {
                    return Ok(b);
                }
                tried.push(format!("{name}: not there"))
            }
            Ok(Err(e)) => tried.push(format!("{name}: {e}")),
            Err(e) => {
                peers.mark_down(record.id);
                tried.push(format!("{name}: {e}"));
            }
        }
    }
    Err(NodeError::ChunkNotFound(format!(
        "{id} of datastore {ds} is on no reachable node ({}); run `ironcore-backup verify start {ds}` and restore from another snapshot or the Backup site",
        if tried.is_empty() {
            "no other storage node".to_string()
        } else {
            tried.join("; ")
        }
    )))
}

/// Which of `ids` (absent here) another storage node of `ds` holds. Holders refresh them
/// for GC; a node that does not answer counts as holding none.
pub async fn held_elsewhere(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    ids: &[ChunkId],
) -> Result<Vec<bool>> {
    let mut held = vec![false; ids.len()];
    if ids.is_empty() {
        return Ok(held);
    }
    let (nodes, _) = peers.storage_nodes(ds)?;
    let me = peers.raft.id();
    let ask = protocol::encode(&PeerRequest::Has {
        datastore: ds.clone(),
        ids: ids.to_vec(),
    })
    .map_err(NodeError::Internal)?;
    let others: Vec<&NodeRecord> = nodes.iter().filter(|n| n.id != me).collect();
    let calls = others.iter().map(|n| peers.raft.call_service(n.id, &ask));
    for (n, answer) in others
        .iter()
        .zip(futures_util::future::join_all(calls).await)
    {
        match answer.map(|a| protocol::decode::<PeerResponse>(&a)) {
            Ok(Ok(PeerResponse::Held(h))) if h.len() == ids.len() => {
                for (mine, theirs) in held.iter_mut().zip(h) {
                    *mine |= theirs;
                }
            }
            other => {
                tracing::debug!(node = %n.name, answer = ?other, "presence query failed")
            }
        }
    }
    Ok(held)
}

/// Whether this node is one of the placement nodes of chunk `id` of `ds` at its own site.
fn placed_here(peers: &ChunkPeers, ds: &DatastoreName, id: &ChunkId) -> Result<bool> {
    let me = peers.raft.id();
    let sites = peers.copy_sites(ds)?;
    let Some(mine) = sites.iter().find(|s| s.nodes.iter().any(|n| n.id == me)) else {
        return Ok(false);
    };
    let names = mine.names();
    Ok(place(id, &names, mine.copies).contains(&peers.name.as_str()))
}
