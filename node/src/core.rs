//! The running node: what the API handlers and the peer service share, and the cluster-wide
//! chunk operations (place, replicate, fetch) and metadata proposals built on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ironcore_raft::{Command, CommandResult, MetaCommand, MetaRequest, MetaView, RaftNode};
use ironcore_transport::{Peer, TransferOptions};
use ironcore_types::records::{NodeRecord, NodeRole, TaskRecord, TaskState};
use ironcore_types::{AuthId, ChunkId, DatastoreName, Fingerprint, SnapshotRef};

use crate::config::NodeConfig;
use crate::jobs::Jobs;
use crate::peer::{self, PeerRequest, PeerResponse};
use crate::placement::place;
use crate::stores::NodeStores;
use crate::tasks::{RunningTask, Tasks};
use crate::{NodeError, Result};

/// A backup in progress on this node.
#[derive(Debug)]
pub struct BackupSession {
    /// Its task.
    pub task: Arc<RunningTask>,
    /// The datastore.
    pub datastore: DatastoreName,
    /// The snapshot it will commit.
    pub snapshot: SnapshotRef,
    /// Who runs it (the group's owner if new).
    pub owner: AuthId,
    /// Whether the caller may write to groups of other owners.
    pub admin_override: bool,
    /// When its client last called; an idle session is abandoned (see
    /// [`Node::reap_idle_sessions`]).
    pub last_seen: Mutex<Instant>,
}

/// Everything a running node holds.
#[derive(Debug)]
pub struct Node {
    /// Its configuration.
    pub config: NodeConfig,
    /// Its Raft node (and transport).
    pub raft: RaftNode,
    /// Its datastore directories.
    pub stores: Arc<NodeStores>,
    /// Its tasks.
    pub tasks: Tasks,
    /// Its certificate fingerprint (QUIC and HTTPS).
    pub fingerprint: Fingerprint,
    /// Backups in progress here, by UPID.
    pub sessions: Mutex<HashMap<String, Arc<BackupSession>>>,
    /// When it started.
    pub started: Instant,
    /// Peers that failed a chunk request recently (skipped for a while when others exist).
    pub down: Mutex<HashMap<u64, Instant>>,
    /// Work other nodes started on this node's chunk directories.
    pub jobs: Jobs,
    /// Sends events to the notification targets.
    pub notifier: crate::notify::Notifier,
    /// The project key, unlocked at start, when the configuration names one (encrypt on push).
    pub project_key: Option<ironcore_chunkstore::CryptKey>,
}

/// Where the copies of one [`Node::replicate`] call went so far.
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

/// A backup session whose client sent nothing for this long is abandoned (the client died):
/// its task ends with an error and the group is free again. Nothing was committed.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// How long a peer that failed a chunk request is tried last.
const DOWN_FOR: std::time::Duration = std::time::Duration::from_secs(30);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Node {
    /// This node's copy of the metadata.
    pub fn meta(&self) -> &MetaView {
        self.raft.meta()
    }

    /// Proposes a metadata command as `actor`; a refusal by the state machine becomes
    /// `BadRequest` (or `permission denied` when it says so).
    pub async fn propose(&self, actor: &AuthId, command: MetaCommand) -> Result<()> {
        let reply = self
            .raft
            .write(Command::Meta(Box::new(MetaRequest {
                actor: actor.clone(),
                at: now(),
                command,
            })))
            .await?;
        match reply.result {
            CommandResult::Meta(Ok(())) => Ok(()),
            CommandResult::Meta(Err(reason)) => match reason.strip_prefix("permission denied: ") {
                Some(r) => Err(NodeError::PermissionDenied(r.to_string())),
                None => Err(NodeError::BadRequest(reason)),
            },
            other => Err(NodeError::Internal(format!(
                "the state machine answered a metadata command with {other:?}"
            ))),
        }
    }

    /// Records a task in Raft (best effort: a task must not fail because its record could not
    /// be written; the local log has everything).
    pub async fn record_task(&self, record: TaskRecord) {
        if record.state != ironcore_types::records::TaskState::Running {
            self.notifier.task_ended(&record);
        }
        let actor = record.auth_id.clone();
        if let Err(e) = self.propose(&actor, MetaCommand::RecordTask(record)).await {
            tracing::warn!(error = %e, "could not record task in the cluster");
        }
    }

    /// Ends sessions idle for longer than `idle` (their clients died), so their groups are
    /// not `source busy` forever.
    pub async fn reap_idle_sessions(&self, idle: std::time::Duration) {
        let stale: Vec<(String, Arc<BackupSession>)> = {
            let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let ids: Vec<String> = map
                .iter()
                .filter(|(_, s)| {
                    s.last_seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .elapsed()
                        > idle
                })
                .map(|(k, _)| k.clone())
                .collect();
            ids.into_iter()
                .filter_map(|k| map.remove(&k).map(|s| (k, s)))
                .collect()
        };
        for (upid, s) in stale {
            s.task.cancel.cancel();
            let reason = format!(
                "backup session abandoned: its client sent nothing for {} s; nothing was committed",
                idle.as_secs()
            );
            tracing::warn!(%upid, "{reason}");
            let record = self
                .tasks
                .finish(&s.task, ironcore_types::records::TaskState::Error(reason));
            self.record_task(record).await;
        }
    }

    /// The transport address of member `id`.
    pub fn peer(&self, id: u64) -> Result<Peer> {
        let record = self
            .meta()
            .node(id)?
            .ok_or_else(|| NodeError::NotFound(format!("node {id} is not a member")))?;
        let addr = record.address.parse().map_err(|e| {
            NodeError::Internal(format!(
                "node {} has a bad address {}: {e}",
                record.name, record.address
            ))
        })?;
        Ok(Peer {
            node: record
                .name
                .parse()
                .map_err(|e| NodeError::Internal(format!("node record {}: {e}", record.name)))?,
            addr,
        })
    }

    /// The storage nodes of datastore `ds` (its site's voters and learners, never
    /// tie-breakers), by name.
    pub fn storage_nodes(&self, ds: &DatastoreName) -> Result<(Vec<NodeRecord>, usize)> {
        let config = self
            .meta()
            .datastore(ds)?
            .ok_or_else(|| NodeError::NotFound(format!("datastore {ds} does not exist")))?;
        let nodes: Vec<NodeRecord> = self
            .meta()
            .nodes()?
            .into_iter()
            .filter(|n| n.site == config.site && n.role != NodeRole::TieBreaker)
            .collect();
        Ok((nodes, usize::from(config.copies)))
    }

    /// Makes sure every chunk of `ids` (held here) is on `copies` nodes: its placement nodes,
    /// or — when one of them cannot be reached — the next nodes in its rendezvous order, so a
    /// dead node never costs a copy. One verified transfer per target node. Returns the names
    /// of the nodes that hold copies; fails with [`NodeError::UnderReplicated`] when fewer
    /// storage nodes than the datastore's copies could take them (never a silent short copy).
    pub async fn replicate(&self, ds: &DatastoreName, ids: &[ChunkId]) -> Result<Vec<String>> {
        let (nodes, copies) = self.storage_nodes(ds)?;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let copies = copies.min(names.len());
        // Peers that failed recently are passed over first; if that leaves too few nodes,
        // they are tried again before the copies are declared short.
        let recently_down: Vec<String> = {
            let d = self.down.lock().unwrap_or_else(|p| p.into_inner());
            nodes
                .iter()
                .filter(|n| d.get(&n.id).is_some_and(|at| at.elapsed() < DOWN_FOR))
                .map(|n| n.name.clone())
                .collect()
        };
        let mut round = Placing {
            failed: recently_down,
            holders: vec![self.config.name.to_string()],
            ..Placing::default()
        };
        self.place_copies(ds, &nodes, copies, ids, &mut round).await;
        if names.len().saturating_sub(round.failed.len()) < copies {
            round.failed.retain(|f| round.tried.contains(f));
            self.place_copies(ds, &nodes, copies, ids, &mut round).await;
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

    /// One pass of [`Self::replicate`]: sends each chunk of `ids` to its first `copies`
    /// placement nodes not in `round.failed` (this node counts when placement picks it), and
    /// moves a target that fails to `round.failed`, its chunks to the next nodes.
    async fn place_copies(
        &self,
        ds: &DatastoreName,
        nodes: &[NodeRecord],
        copies: usize,
        ids: &[ChunkId],
        round: &mut Placing,
    ) {
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let me = self.config.name.to_string();
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
                match self.send_to(ds, nodes, &target, &chunk_ids).await {
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
                            self.down
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(n.id, Instant::now());
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
        &self,
        ds: &DatastoreName,
        nodes: &[NodeRecord],
        target: &str,
        chunk_ids: &[ChunkId],
    ) -> Result<()> {
        let record = nodes
            .iter()
            .find(|n| n.name == target)
            .ok_or_else(|| NodeError::NotFound(format!("node {target} vanished")))?;
        let ask = peer::encode(&PeerRequest::Expect {
            datastore: ds.clone(),
            ids: chunk_ids.to_vec(),
        })
        .map_err(NodeError::Internal)?;
        self.raft.call_service(record.id, &ask).await?;
        let options = TransferOptions {
            scope: ds.to_string(),
            ..TransferOptions::default()
        };
        let report = self
            .raft
            .transport()
            .send_chunks(&self.peer(record.id)?, chunk_ids, &options)
            .await?;
        tracing::info!(datastore = %ds, target, offered = report.offered, sent = report.wanted, retries = report.retries, "replicated chunks");
        Ok(())
    }

    /// Chunk `id` of `ds`: from this node, else pulled from the nodes that should hold it
    /// (placement order first, then every other storage node of the site).
    pub async fn fetch(&self, ds: &DatastoreName, id: &ChunkId) -> Result<Vec<u8>> {
        match self.stores.get(ds, id) {
            Ok(b) => return Ok(b),
            Err(NodeError::ChunkNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let (nodes, copies) = self.storage_nodes(ds)?;
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        let mut order: Vec<&str> = place(id, &names, copies);
        for n in &names {
            if !order.contains(&n.as_str()) {
                order.push(n);
            }
        }
        let me = self.raft.id();
        // Peers that failed recently go last.
        let down: Vec<u64> = {
            let d = self.down.lock().unwrap_or_else(|p| p.into_inner());
            d.iter()
                .filter(|(_, at)| at.elapsed() < DOWN_FOR)
                .map(|(id, _)| *id)
                .collect()
        };
        order.sort_by_key(|name| {
            nodes
                .iter()
                .find(|n| n.name == *name)
                .is_some_and(|n| down.contains(&n.id))
        });
        let mut tried = Vec::new();
        for name in order {
            let Some(record) = nodes.iter().find(|n| n.name == name) else {
                continue;
            };
            if record.id == me {
                continue;
            }
            let ask = peer::encode(&PeerRequest::PushTo {
                datastore: ds.clone(),
                ids: vec![*id],
                to: me,
            })
            .map_err(NodeError::Internal)?;
            let answer = self.raft.call_service(record.id, &ask).await;
            match answer.map(|a| peer::decode::<PeerResponse>(&a)) {
                Ok(Ok(PeerResponse::Done(n))) if n > 0 => return self.stores.get(ds, id),
                Ok(Ok(_)) => tried.push(format!("{name}: not there")),
                Ok(Err(e)) => tried.push(format!("{name}: {e}")),
                Err(e) => {
                    self.down
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(record.id, Instant::now());
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
    pub async fn held_elsewhere(&self, ds: &DatastoreName, ids: &[ChunkId]) -> Result<Vec<bool>> {
        let mut held = vec![false; ids.len()];
        if ids.is_empty() {
            return Ok(held);
        }
        let (nodes, _) = self.storage_nodes(ds)?;
        let me = self.raft.id();
        let ask = peer::encode(&PeerRequest::Has {
            datastore: ds.clone(),
            ids: ids.to_vec(),
        })
        .map_err(NodeError::Internal)?;
        let others: Vec<&NodeRecord> = nodes.iter().filter(|n| n.id != me).collect();
        let calls = others.iter().map(|n| self.raft.call_service(n.id, &ask));
        for (n, answer) in others
            .iter()
            .zip(futures_util::future::join_all(calls).await)
        {
            match answer.map(|a| peer::decode::<PeerResponse>(&a)) {
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

    /// Pulls the chunks of `ids` this node lacks from the other storage nodes of `ds` (a few
    /// verified bulk transfers per node); returns the ids no node could supply.
    pub async fn pull(&self, ds: &DatastoreName, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        const BATCH: usize = 128;
        let lacking = |ids: &[ChunkId]| -> Vec<ChunkId> {
            ids.iter()
                .filter(|id| !self.stores.has(ds, id).unwrap_or(false))
                .copied()
                .collect()
        };
        let mut missing = lacking(ids);
        let (nodes, _) = self.storage_nodes(ds)?;
        let me = self.raft.id();
        for n in nodes.iter().filter(|n| n.id != me) {
            let mut still = Vec::new();
            for batch in missing.chunks(BATCH) {
                let ask = peer::encode(&PeerRequest::PushTo {
                    datastore: ds.clone(),
                    ids: batch.to_vec(),
                    to: me,
                })
                .map_err(NodeError::Internal)?;
                let answer = self.raft.call_service(n.id, &ask).await;
                if let Err(e) = answer {
                    tracing::warn!(node = %n.name, error = %e, "could not pull chunks");
                }
                still.extend(lacking(batch));
            }
            missing = still;
            if missing.is_empty() {
                break;
            }
        }
        Ok(missing)
    }

    /// Cancels task `upid` running on this node, as `by`. A backup session ends at once (it
    /// committed nothing); other tasks stop at their next check. False if it does not run here.
    pub async fn cancel_local(&self, upid: &str, by: &AuthId) -> bool {
        let Some(task) = self.tasks.get(upid) else {
            return false;
        };
        task.cancel.cancel();
        task.log(&format!("cancel requested by {by}"));
        let is_session = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(upid);
        if is_session {
            let record = self
                .tasks
                .finish(&task, TaskState::Error("task cancelled".into()));
            self.record_task(record).await;
        }
        true
    }

    /// Cancels every task running on this node and ends it with `reason` (its records, to
    /// write to Raft, are returned); backup sessions end with it, having committed nothing.
    pub fn end_local_tasks(&self, reason: &str) -> Vec<TaskRecord> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.tasks
            .running()
            .into_iter()
            .map(|task| {
                task.cancel.cancel();
                self.tasks
                    .finish(&task, TaskState::Error(reason.to_string()))
            })
            .collect()
    }

    /// Asks node `name` (where a task ran) to serve `request`; its text answer.
    pub async fn ask_task_node(&self, name: &str, request: &PeerRequest) -> Result<String> {
        let record = self
            .meta()
            .nodes()?
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| {
                NodeError::NotFound(format!("node {name}, where the task ran, is not a member"))
            })?;
        let ask = peer::encode(request).map_err(NodeError::Internal)?;
        let answer = self.raft.call_service(record.id, &ask).await?;
        let bad = |detail| NodeError::BadPeerAnswer {
            node: name.to_string(),
            detail,
        };
        match peer::decode::<PeerResponse>(&answer).map_err(bad)? {
            PeerResponse::Text(Ok(text)) => Ok(text),
            PeerResponse::Text(Err(e)) => Err(NodeError::NotFound(format!("node {name}: {e}"))),
            other => Err(bad(format!("{other:?}"))),
        }
    }
}
