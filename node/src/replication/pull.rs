//! Pulling many chunks this node lacks (a commit's missing copies, a sync's, a mirror site's
//! share): each chunk is asked of the nodes that should hold it, this node's own site first and
//! each site's placement nodes before its other storage nodes; the chunks asked of different
//! nodes are pulled from them at once (several verified bulk transfers in parallel, one per
//! source, each in batches); a chunk a source could not supply is asked of its next candidate.
//! A transfer interrupted halfway and asked again resends only what did not arrive (the
//! transport's have/want offer).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use ironcore_types::records::NodeRecord;
use ironcore_types::{ChunkId, DatastoreName};

use crate::protocol::{self, PeerRequest, PeerResponse};
use crate::replication::peers::ChunkPeers;
use crate::{NodeError, Result};

/// Chunks per push request, at most: each request costs a few round trips, which on a WAN
/// would dominate a pull of many small chunks in small batches.
const BATCH: usize = 2048;
/// How long a limited push request should take at most: batches are sized to it (taking a
/// chunk as 4 MiB), so a pull shows progress and a restart loses little.
const LIMITED_BATCH_SECS: u64 = 4;
/// How long a push request may take before its source counts as failed. Long: a source
/// that dies fails the call sooner, when its connection times out; a source given up on too
/// early would keep sending what the next one is asked for.
const PUSH_TIMEOUT: Duration = Duration::from_secs(600);
/// Sources pulled from at once: what one puller may ask of the cluster at a time.
pub const MAX_SOURCES: usize = 4;

/// What a pull did.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Chunk bytes that arrived (resends included).
    pub bytes: u64,
    /// The chunks no node could supply, each with why (every source tried, in words).
    pub missing: Vec<(ChunkId, String)>,
}

/// Pulls the chunks of `ids` this node lacks; returns the ids no node could supply.
pub async fn pull(peers: &ChunkPeers, ds: &DatastoreName, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
    Ok(pull_limited(peers, ds, ids, 0, &|_| {})
        .await?
        .missing
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// As [`pull`], at most `limit_bytes` per second in all (0 = unlimited), shared evenly by
/// the sources pulled from at once; tells `arrived` the bytes of each push as it ends; says
/// how many bytes arrived and why each missing chunk is.
pub async fn pull_limited(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    ids: &[ChunkId],
    limit_bytes: u64,
    arrived: &(dyn Fn(u64) + Sync),
) -> Result<Pulled> {
    let lacking: Vec<ChunkId> = ids
        .iter()
        .filter(|id| !peers.stores.has(ds, id).unwrap_or(false))
        .copied()
        .collect();
    let sites = peers.copy_sites(ds)?;
    let down = peers.recently_down();
    // Each chunk's candidate sources, best first.
    let mut queue: Vec<(ChunkId, Vec<NodeRecord>)> = lacking
        .iter()
        .map(|id| (*id, peers.holders(&sites, id, &down)))
        .collect();
    let mut out = Pulled::default();
    let mut why: HashMap<ChunkId, Vec<String>> = HashMap::new();
    while !queue.is_empty() {
        // This round: each chunk goes to its best remaining candidate.
        let mut rounds: BTreeMap<u64, (NodeRecord, Vec<ChunkId>)> = BTreeMap::new();
        let mut next = Vec::new();
        let mut asked: HashMap<ChunkId, String> = HashMap::new();
        for (id, mut candidates) in queue {
            if candidates.is_empty() {
                let reasons = why.remove(&id).unwrap_or_default();
                let text = if reasons.is_empty() {
                    "no other storage node holds it".to_string()
                } else {
                    reasons.join("; ")
                };
                out.missing.push((id, text));
                continue;
            }
            let source = candidates.remove(0);
            asked.insert(id, source.name.clone());
            rounds
                .entry(source.id)
                .or_insert_with(|| (source, Vec::new()))
                .1
                .push(id);
            next.push((id, candidates));
        }
        if rounds.is_empty() {
            break;
        }
        let share = match limit_bytes {
            0 => 0,
            l => (l / rounds.len().min(MAX_SOURCES) as u64).max(1),
        };
        let results: Vec<(String, u64, Option<String>)> =
            futures_util::stream::iter(rounds.into_values())
                .map(|(source, ids)| async move {
                    let (bytes, error) =
                        from_source(peers, ds, &source, &ids, share, arrived).await;
                    (source.name, bytes, error)
                })
                .buffer_unordered(MAX_SOURCES)
                .collect()
                .await;
        let mut failed_at: HashMap<String, String> = HashMap::new();
        for (name, bytes, error) in results {
            out.bytes += bytes;
            failed_at.insert(name, error.unwrap_or_else(|| "not there".into()));
        }
        // What arrived is done; the rest goes to its next candidate.
        queue = Vec::new();
        for (id, candidates) in next {
            if peers.stores.has(ds, &id).unwrap_or(false) {
                why.remove(&id);
                continue;
            }
            queue.push((id, candidates));
        }
        // Why each remaining chunk did not come from the source it was asked of.
        for (id, _) in &queue {
            if let Some(source) = asked.get(id) {
                let error = failed_at.get(source).map_or("not there", String::as_str);
                why.entry(*id)
                    .or_default()
                    .push(format!("{source}: {error}"));
            }
        }
    }
    Ok(out)
}

/// Pushes asked of `source` for `ids`, in batches: the bytes that arrived, and the first
/// error (a source that fails is tried last for a while).
async fn from_source(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    source: &NodeRecord,
    ids: &[ChunkId],
    limit_bytes: u64,
    arrived: &(dyn Fn(u64) + Sync),
) -> (u64, Option<String>) {
    let mut bytes = 0;
    let batch_len = match limit_bytes {
        0 => BATCH,
        l => ((l * LIMITED_BATCH_SECS) >> 22).clamp(1, BATCH as u64) as usize,
    };
    for batch in ids.chunks(batch_len) {
        let ask = match protocol::encode(&PeerRequest::PushTo {
            datastore: ds.clone(),
            ids: batch.to_vec(),
            to: peers.raft.id(),
            limit_bytes,
        }) {
            Ok(a) => a,
            Err(e) => return (bytes, Some(NodeError::Internal(e).to_string())),
        };
        let answer = peers
            .raft
            .call_service_within(source.id, &ask, Some(PUSH_TIMEOUT))
            .await;
        match answer {
            Ok(answer) => match protocol::decode::<PeerResponse>(&answer) {
                Ok(PeerResponse::Pushed { bytes: b, .. }) => {
                    bytes += b;
                    arrived(b);
                }
                Ok(other) => return (bytes, Some(format!("unexpected answer {other:?}"))),
                Err(e) => return (bytes, Some(e)),
            },
            Err(e) => {
                tracing::warn!(node = %source.name, error = %e, "could not pull chunks");
                peers.mark_down(source.id);
                return (bytes, Some(e.to_string()));
            }
        }
    }
    (bytes, None)
}
