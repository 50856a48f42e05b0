//! The running node: what the API handlers and the peer service share, and the cluster-wide
//! chunk operations (place, replicate, fetch) and metadata proposals built on it.

pub mod proposer;
pub mod readers;
pub mod work;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ironcore_raft::{MetaCommand, MetaView, RaftNode};
use ironcore_transport::Peer;
use ironcore_types::records::{NodeRecord, TaskRecord, TaskState};
use ironcore_types::{AuthId, DatastoreName, Fingerprint, SnapshotRef};

use crate::config::NodeConfig;
use crate::node::proposer::Proposer;
use crate::protocol::{self, PeerRequest, PeerResponse};
use crate::replication::peers::ChunkPeers;
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

/// What a node is made of, handed to [`Node::new`] by the runtime that starts it.
#[derive(Debug)]
pub struct NodeParts {
    /// Its configuration.
    pub config: NodeConfig,
    /// Its Raft node (and transport).
    pub raft: RaftNode,
    /// Its datastore directories.
    pub stores: Arc<NodeStores>,
    /// Its certificate fingerprint (QUIC and HTTPS).
    pub fingerprint: Fingerprint,
    /// Sends events to the notification targets.
    pub notifier: Arc<crate::notify::Notifier>,
    /// The project key, unlocked at start, when the configuration names one (encrypt on push).
    pub project_key: Option<ironcore_chunkstore::CryptKey>,
}

/// The state a running node's subsystems share: its configuration, Raft, chunk directories,
/// tasks and backup sessions, reached through its methods.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    raft: RaftNode,
    stores: Arc<NodeStores>,
    tasks: Arc<Tasks>,
    fingerprint: Fingerprint,
    /// Reader sessions open here (see [`readers`]).
    readers: readers::Readers,
    /// Backups in progress here, by UPID.
    sessions: Mutex<HashMap<String, Arc<BackupSession>>>,
    started: Instant,
    /// What replication needs of this node (its narrow handle).
    chunks: ChunkPeers,
    notifier: Arc<crate::notify::Notifier>,
    /// What a subsystem that only writes metadata needs (its narrow handle).
    proposer: Proposer,
    project_key: Option<ironcore_chunkstore::CryptKey>,
    /// Held while Raft's membership is being changed (one change at a time).
    membership_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A backup session whose client sent nothing for this long is abandoned (the client died):
/// its task ends with an error and the group is free again. Nothing was committed.
pub const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

impl Node {
    /// A node of `parts`, started now, with no tasks or sessions yet.
    pub fn new(parts: NodeParts) -> Self {
        let tasks = Arc::new(Tasks::new(
            parts.config.name.as_str(),
            parts.config.log_dir.join("tasks"),
        ));
        let proposer = Proposer::new(parts.raft.clone(), parts.notifier.clone());
        let chunks = ChunkPeers::new(
            parts.raft.clone(),
            parts.stores.clone(),
            parts.config.name.to_string(),
        );
        Self {
            config: parts.config,
            raft: parts.raft,
            stores: parts.stores,
            tasks,
            fingerprint: parts.fingerprint,
            readers: readers::Readers::default(),
            sessions: Mutex::default(),
            started: Instant::now(),
            chunks,
            notifier: parts.notifier,
            proposer,
            project_key: parts.project_key,
            membership_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Its Raft node (and, through it, the transport).
    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// Its datastore directories.
    pub fn stores(&self) -> &Arc<NodeStores> {
        &self.stores
    }

    /// Its tasks.
    pub fn tasks(&self) -> &Arc<Tasks> {
        &self.tasks
    }

    /// Its certificate fingerprint (QUIC and HTTPS).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Backups in progress here, by UPID.
    pub fn sessions(&self) -> &Mutex<HashMap<String, Arc<BackupSession>>> {
        &self.sessions
    }

    /// Reader sessions open here.
    pub fn readers(&self) -> &readers::Readers {
        &self.readers
    }

    /// When it started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Sends events to the notification targets.
    pub fn notifier(&self) -> &Arc<crate::notify::Notifier> {
        &self.notifier
    }

    /// Held while Raft's membership is being changed, so changes go one at a time.
    pub fn membership_lock(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.membership_lock
    }

    /// The project key, when the configuration names one (encrypt on push).
    pub fn project_key(&self) -> Option<&ironcore_chunkstore::CryptKey> {
        self.project_key.as_ref()
    }

    /// This node's copy of the metadata.
    pub fn meta(&self) -> &MetaView {
        self.raft.meta()
    }

    /// Proposes a metadata command as `actor` (see [`Proposer::propose`]).
    pub async fn propose(&self, actor: &AuthId, command: MetaCommand) -> Result<()> {
        self.proposer.propose(actor, command).await
    }

    /// Records a task in Raft, best effort (see [`Proposer::record_task`]).
    pub async fn record_task(&self, record: TaskRecord) {
        self.proposer.record_task(record).await
    }

    /// What a subsystem that only writes metadata and records tasks needs: its narrow handle.
    pub fn proposer(&self) -> &Proposer {
        &self.proposer
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
        self.chunks.peer(id)
    }

    /// The storage nodes of datastore `ds` (its site's voters and learners, never
    /// witnesses), and how many copies it keeps.
    pub fn storage_nodes(&self, ds: &DatastoreName) -> Result<(Vec<NodeRecord>, usize)> {
        self.chunks.storage_nodes(ds)
    }

    /// What replication needs of this node: the handle every [`crate::replication`] function
    /// takes.
    pub fn chunk_peers(&self) -> &ChunkPeers {
        &self.chunks
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
        let ask = protocol::encode(request).map_err(NodeError::Internal)?;
        let answer = self.raft.call_service(record.id, &ask).await?;
        let bad = |detail| NodeError::BadPeerAnswer {
            node: name.to_string(),
            detail,
        };
        match protocol::decode::<PeerResponse>(&answer).map_err(bad)? {
            PeerResponse::Text(Ok(text)) => Ok(text),
            PeerResponse::Text(Err(e)) => Err(NodeError::NotFound(format!("node {name}: {e}"))),
            other => Err(bad(format!("{other:?}"))),
        }
    }
}
