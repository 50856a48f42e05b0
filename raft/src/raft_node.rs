//! One member of the Raft group: stores, transport, network and openraft wired together.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ironcore_transport::{ChunkStore, NodeIdentity, Peer, PinSet, RpcHandler, Transport};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::linearizable_read::Linearizer;
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use tokio::time::Instant;

use crate::MetaView;
use crate::server::serve;
use crate::{
    AddressBook, ClusterNode, Command, LogId, NodeError, NodeId, RaftHandle, RaftNetwork,
    RaftNodeConfig, RaftRequest, RaftResponse, RaftServer, Refusal, RocksLogStore,
    RocksStateMachine, SendError, TypeConfig, WriteReply,
};

/// A running Raft node: its RocksDB stores under one directory, its QUIC transport and its
/// openraft instance. Every node accepts writes and linearizable reads: a follower forwards a
/// How far a follower is, as its leader sees it ([`RaftNode::followers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The index of the last log entry it holds (`None`: not known to hold any).
    pub matched: Option<u64>,
    /// Since when it last acknowledged the leader (`None`: not since this leader began).
    pub last_contact: Option<Duration>,
}

/// write to the leader, and for a read asks the leader how far it must apply first.
#[derive(Clone)]
pub struct RaftNode {
    id: NodeId,
    raft: RaftHandle,
    transport: Transport,
    network: RaftNetwork,
    server: Arc<RaftServer>,
    book: AddressBook,
    heartbeat: Duration,
    request_timeout: Duration,
    meta: MetaView,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RaftNode({} via {:?})", self.id, self.transport)
    }
}

fn stopped(e: impl std::fmt::Display) -> NodeError {
    NodeError::Stopped(e.to_string())
}

fn refused(e: impl std::fmt::Display) -> NodeError {
    NodeError::Refused(e.to_string())
}

/// The largest command [`RaftNode::write`] accepts (metadata only; data never goes through the
/// log).
pub const MAX_COMMAND_BYTES: usize = 1 << 20;

impl RaftNode {
    /// Opens the stores in `config.dir` (creating them on first start), binds the transport
    /// with `identity` and `pins` (bulk traffic goes to `chunks`), and starts openraft. Peers
    /// are reached at the addresses in `book`.
    pub async fn start(
        config: RaftNodeConfig,
        identity: NodeIdentity,
        pins: PinSet,
        chunks: Arc<dyn ChunkStore>,
        book: AddressBook,
    ) -> Result<Self, NodeError> {
        let raft_config = Arc::new(config.openraft()?);
        let log = RocksLogStore::open(&config.dir.join("log"))?;
        let sm = RocksStateMachine::open(&config.dir.join("sm"))?;
        let meta = sm.view();
        let server = RaftServer::new();
        let transport = Transport::bind(
            config.transport.clone(),
            config.listen,
            identity,
            pins,
            server.clone(),
            chunks,
        )
        .await?;
        let network = RaftNetwork::new(transport.clone(), book.clone(), config.probe);
        let raft = RaftHandle::new(config.id, raft_config, network.clone(), log, sm)
            .await
            .map_err(stopped)?;
        server.attach(
            raft.clone(),
            crate::snapshot_inbox::SnapshotInbox::new(&config.dir.join("snapshot-in")),
        );
        let server_handle = server.clone();
        tracing::info!(id = config.id, node = %config.node, "raft node started");
        Ok(Self {
            id: config.id,
            raft,
            transport,
            network,
            server: server_handle,
            book,
            heartbeat: config.heartbeat_interval,
            request_timeout: config.request_timeout,
            meta,
        })
    }

    /// This node's Raft id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft instance.
    pub fn raft(&self) -> &RaftHandle {
        &self.raft
    }

    /// The transport (shared with other users of the node's endpoint).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The UDP address the transport is bound to.
    pub fn local_addr(&self) -> Result<SocketAddr, NodeError> {
        Ok(self.transport.local_addr()?)
    }

    /// Where this node reaches its peers.
    pub fn address_book(&self) -> &AddressBook {
        &self.book
    }

    /// How long ago this node was last in touch with a leader: at once when it leads and a
    /// quorum acknowledged it lately, else since a leader's appends were last accepted here.
    /// `None` if never since it started.
    pub fn leader_contact(&self) -> Option<Duration> {
        let m = self.metrics();
        if m.state == ServerState::Leader {
            if m.membership_config.membership().voter_ids().count() <= 1 {
                return Some(Duration::ZERO); // its own quorum
            }
            return m
                .last_quorum_acked
                .map(|at| openraft::Instant::elapsed(&*at));
        }
        self.server.last_leader_contact().map(|at| at.elapsed())
    }

    /// On the leader, how far each other member is: the index of the last entry it holds (as
    /// the leader last learned it) and how long since it last acknowledged the leader. `None`
    /// on a follower, which does not know.
    pub fn followers(&self) -> Option<BTreeMap<NodeId, FollowerProgress>> {
        let m = self.metrics();
        let replication = m.replication.as_ref()?;
        let heartbeat = m.heartbeat.as_ref();
        Some(
            replication
                .iter()
                .filter(|(id, _)| **id != m.id)
                .map(|(id, matched)| {
                    let contact = heartbeat
                        .and_then(|h| h.get(id).cloned().flatten())
                        .map(|at| openraft::Instant::elapsed(&*at));
                    let progress = FollowerProgress {
                        matched: matched.as_ref().map(|l| l.index),
                        last_contact: contact,
                    };
                    (*id, progress)
                })
                .collect(),
        )
    }

    /// A snapshot of openraft's metrics (state, term, leader, log and applied ids, membership).
    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Makes `members` the first voters of a new cluster. Call it on one pristine node.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, ClusterNode>,
    ) -> Result<(), NodeError> {
        self.raft.initialize(members).await.map_err(refused)
    }

    /// Adds `id` as a learner and waits until it has caught up (call on the leader).
    pub async fn add_learner(&self, id: NodeId, node: ClusterNode) -> Result<LogId, NodeError> {
        self.book.learn(id, &node);
        let r = self.raft.add_learner(id, node, true).await;
        r.map(|r| r.log_id).map_err(refused)
    }

    /// Makes `voters` the voting members; others become learners (call on the leader).
    pub async fn change_membership(&self, voters: BTreeSet<NodeId>) -> Result<LogId, NodeError> {
        self.change(ChangeMembers::ReplaceAllVoters(voters)).await
    }

    /// Makes learner `id` a voter (call on the leader).
    pub async fn promote(&self, id: NodeId) -> Result<LogId, NodeError> {
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    /// Makes voter `id` a learner: it keeps receiving the log but no longer votes (call on the
    /// leader).
    pub async fn demote(&self, id: NodeId) -> Result<LogId, NodeError> {
        self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
            .await
    }

    /// Removes `id` from the cluster, demoting it first if it votes (call on the leader).
    pub async fn remove(&self, id: NodeId) -> Result<LogId, NodeError> {
        let votes = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id);
        if votes {
            self.demote(id).await?;
        }
        self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
            .await
    }

    async fn change(
        &self,
        changes: ChangeMembers<NodeId, ClusterNode>,
    ) -> Result<LogId, NodeError> {
        let r = self.raft.change_membership(changes, true).await;
        r.map(|r| r.log_id).map_err(|e| match e {
            RaftError::APIError(ClientWriteError::LogEntryDiscarded(f)) => {
                NodeError::Indeterminate(f.to_string())
            }
            e => refused(e),
        })
    }

    /// Asks the leader to hand leadership to `to` (call on the leader).
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), NodeError> {
        if !self.raft.is_leader() {
            let leader = self.metrics().current_leader;
            return Err(NodeError::Refused(format!(
                "node {} is not the leader (leader: {leader:?})",
                self.id
            )));
        }
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(stopped)
    }

    /// Proposes `cmd` and waits until it is committed and applied, forwarding it to the leader
    /// if this node is not the leader; then until this node has applied it too, so what the
    /// caller wrote is in this node's [`Self::meta`] when the call returns (a follower applies
    /// a committed entry a moment after the leader).
    pub async fn write(&self, cmd: Command) -> Result<WriteReply, NodeError> {
        // A command must fit one append request with room to spare, or followers could never
        // receive it.
        let size = postcard::to_allocvec(&cmd).map_or(usize::MAX, |b| b.len());
        if size > MAX_COMMAND_BYTES {
            return Err(NodeError::Refused(format!(
                "a {size} byte command exceeds the {MAX_COMMAND_BYTES} byte limit of the Raft log"
            )));
        }
        let deadline = Instant::now() + self.request_timeout;
        loop {
            let asked = self.ask_leader(RaftRequest::ClientWrite(cmd.clone()), deadline);
            let Some((leader, answer)) = self.unless_not_sent(asked.await, deadline).await? else {
                continue;
            };
            match answer {
                RaftResponse::ClientWrite(Ok(reply)) => {
                    self.await_applied(reply.log_id, deadline).await?;
                    return Ok(reply);
                }
                RaftResponse::ClientWrite(Err(Refusal::NotLeader { .. })) => {
                    self.await_leader_change(leader, deadline).await;
                }
                RaftResponse::ClientWrite(Err(Refusal::Failed(e))) => {
                    return Err(NodeError::Refused(e));
                }
                RaftResponse::ClientWrite(Err(Refusal::Indeterminate(e))) => {
                    return Err(NodeError::Indeterminate(e));
                }
                other => return Err(unexpected(leader, "client-write", &other)),
            }
        }
    }

    /// Serves the node's own requests (those sent with [`Self::call_service`]) with `handler`.
    pub fn set_service(&self, handler: Arc<dyn RpcHandler>) {
        self.server.set_service(handler);
    }

    /// Sends `request` to the service of member `id` on the control path and returns its
    /// answer.
    pub async fn call_service(&self, id: NodeId, request: &[u8]) -> Result<Vec<u8>, NodeError> {
        self.call_service_within(id, request, None).await
    }

    /// [`Self::call_service`] with its own time limit (`None`: the transport's RPC timeout),
    /// for a request whose answer waits on long work.
    pub async fn call_service_within(
        &self,
        id: NodeId,
        request: &[u8],
        timeout: Option<std::time::Duration>,
    ) -> Result<Vec<u8>, NodeError> {
        let membership = self.metrics().membership_config;
        let node = membership
            .membership()
            .get_node(&id)
            .cloned()
            .ok_or_else(|| NodeError::Refused(format!("node {id} is not a member")))?;
        let addr = self
            .book
            .resolve(id, &node)
            .ok_or_else(|| NodeError::Refused(format!("no address for node {id} ({node})")))?;
        let peer = Peer {
            node: node.name.parse().map_err(refused)?,
            addr,
        };
        let mut tagged = Vec::with_capacity(request.len() + 1);
        tagged.push(crate::server::SERVICE_TAG);
        tagged.extend_from_slice(request);
        Ok(match timeout {
            Some(t) => self.transport.call_raw_within(&peer, &tagged, t).await?,
            None => self.transport.call_raw(&peer, &tagged).await?,
        })
    }

    /// This node's copy of the typed metadata (local reads; see [`Self::linearize`]).
    pub fn meta(&self) -> &MetaView {
        &self.meta
    }

    /// Reads `key` linearizably (see [`Self::linearize`]).
    pub async fn read(&self, key: &str) -> Result<Option<Vec<u8>>, NodeError> {
        self.linearize().await?;
        let key = key.to_string();
        self.raft
            .with_state_machine(move |sm: &mut RocksStateMachine| {
                Box::pin(async move { sm.get(&key) })
            })
            .await
            .map_err(stopped)?
            .map_err(NodeError::from)
    }

    /// Waits until a local read sees every write acknowledged before the call: the leader
    /// confirms it still leads (ReadIndex) and names the log index that covers them; this
    /// node waits until it has applied that far.
    pub async fn linearize(&self) -> Result<(), NodeError> {
        let deadline = Instant::now() + self.request_timeout;
        let read_log_id = loop {
            let asked = self.ask_leader(RaftRequest::ReadIndex, deadline).await;
            // A read changes nothing, so any failure to reach the leader (it may just have
            // died) is retried until the deadline, once a new leader is known.
            let asked = match asked {
                Err(NodeError::Send(e)) if Instant::now() < deadline => {
                    let leader = self.metrics().current_leader.unwrap_or_default();
                    tracing::debug!(leader, error = %e, "read index not answered; retrying");
                    self.await_leader_change(leader, deadline).await;
                    continue;
                }
                other => other,
            };
            let Some((leader, answer)) = self.unless_not_sent(asked, deadline).await? else {
                continue;
            };
            match answer {
                RaftResponse::ReadIndex(Ok(id)) => break id,
                RaftResponse::ReadIndex(Err(Refusal::NotLeader { .. })) => {
                    self.await_leader_change(leader, deadline).await;
                }
                // The leader could not confirm a quorum in time (a peer just failed, a
                // heartbeat was lost): reads change nothing, so ask again until the deadline.
                RaftResponse::ReadIndex(Err(e)) if Instant::now() < deadline => {
                    tracing::debug!(leader, error = %e, "read index refused; retrying");
                    self.await_leader_change(leader, deadline).await;
                }
                RaftResponse::ReadIndex(Err(e)) => return Err(refused(e)),
                other => return Err(unexpected(leader, "read-index", &other)),
            }
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let linearizer = Linearizer::new(self.id, read_log_id, None);
        match linearizer
            .try_await_ready(&self.raft, Some(remaining))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                return Err(NodeError::Timeout {
                    waited: self.request_timeout,
                });
            }
            Err(e) => return Err(stopped(e)),
        }
        Ok(())
    }

    /// Waits until this node's state machine has applied `log_id` (or the deadline passes).
    async fn await_applied(
        &self,
        log_id: crate::LogId,
        deadline: Instant,
    ) -> Result<(), NodeError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(Some(log_id.index), "a write of this node applied here")
            .await
            .map(|_| ())
            .map_err(|_| NodeError::Timeout {
                waited: self.request_timeout,
            })
    }

    /// Stops openraft and closes the transport. The stores are released once openraft's tasks
    /// have ended, so the node can be started again from the same directory.
    pub async fn shutdown(&self) -> Result<(), NodeError> {
        self.server.stop_accepting();
        let result = self.raft.shutdown().await.map_err(stopped);
        self.transport.close();
        result
    }

    /// Waits for a known leader and hands it `request` (served in place if it is this node).
    async fn ask_leader(
        &self,
        request: RaftRequest,
        deadline: Instant,
    ) -> Result<(NodeId, RaftResponse), NodeError> {
        let (leader, node) = self.leader(deadline).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timed_out = |_| NodeError::Timeout {
            waited: self.request_timeout,
        };
        let answer = if leader == self.id {
            tokio::time::timeout(remaining, serve(&self.raft, request))
                .await
                .map_err(timed_out)?
                .map_err(stopped)?
        } else {
            let link = self.network.link(leader, &node);
            link.send(&request, remaining).await?
        };
        Ok((leader, answer))
    }

    /// Passes `asked` on, except a request that was not sent while time is left: then waits a
    /// little (for a probe to find the leader, or for another leader) and says to try again.
    async fn unless_not_sent(
        &self,
        asked: Result<(NodeId, RaftResponse), NodeError>,
        deadline: Instant,
    ) -> Result<Option<(NodeId, RaftResponse)>, NodeError> {
        match asked {
            Err(NodeError::Send(SendError::NotSent { node, .. })) if Instant::now() < deadline => {
                self.await_leader_change(node, deadline).await;
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// The current leader and its membership entry, waiting until `deadline` for one.
    async fn leader(&self, deadline: Instant) -> Result<(NodeId, ClusterNode), NodeError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let metrics = self
            .raft
            .wait(Some(remaining))
            // A node that just joined may hear from the leader before it has applied the
            // membership naming it: wait for both.
            .metrics(
                |m| {
                    m.current_leader
                        .is_some_and(|l| m.membership_config.membership().get_node(&l).is_some())
                },
                "a known leader in this node's membership",
            )
            .await
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => NodeError::NoLeader {
                    waited: self.request_timeout,
                },
                e => stopped(e),
            })?;
        let leader = metrics.current_leader.ok_or(NodeError::NoLeader {
            waited: self.request_timeout,
        })?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
            .ok_or_else(|| NodeError::Refused(format!("leader {leader} is not in membership")))?;
        Ok((leader, node))
    }

    /// After `leader` refused as not leading: waits (at most a heartbeat, and not past
    /// `deadline`) for this node to learn of another leader, so retries do not spin.
    async fn await_leader_change(&self, leader: NodeId, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(self.heartbeat);
        let _ = self
            .raft
            .wait(Some(wait))
            .metrics(
                |m| m.current_leader != Some(leader) || m.state == ServerState::Leader,
                "another leader",
            )
            .await;
        if Instant::now() >= deadline {
            tracing::debug!(leader, "gave up waiting for a new leader");
        }
    }
}

fn unexpected(node: NodeId, request: &'static str, answer: &RaftResponse) -> NodeError {
    NodeError::Unexpected {
        node,
        request,
        answer: format!("{answer:?}"),
    }
}
