//! What nodes ask each other over the transport's control path (chunks themselves always move
//! on the bulk path with `send_chunks`): every request and answer, and the job and membership
//! payloads they carry. Types only, so every subsystem may speak it; the runtime's peer
//! service answers it.

use ironcore_chunkstore::{DirUsage, SweepReport};
use ironcore_types::{ChunkId, DatastoreName};
use serde::{Deserialize, Serialize};

use crate::auth::Credential;

/// The version of [`PeerRequest`] and [`PeerResponse`] this build speaks (2: forwarded work
/// carries the caller's credential, not a name; 3: pushes carry a rate limit and say how many
/// bytes they sent, and mirroring reports its progress).
pub const VERSION: u8 = 3;

/// A request to another node's service. Versioned by the enclosing `[VERSION] ++ postcard` encoding.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    /// The chunks `ids` of `datastore` are about to be sent to you: see the metadata the
    /// sender saw (the datastore may be new) before they arrive.
    Expect {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
    },
    /// Send me (Raft id `to`) those of `ids` you hold.
    PushTo {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
        /// The asking node.
        to: u64,
        /// Bytes per second this push may use (0 = unlimited): the asker's share of a site
        /// link's limit.
        limit_bytes: u64,
    },
    /// Which of `ids` of `datastore` do you hold? (Held ones are refreshed for GC.)
    Has {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
    },
    /// Cancel task `upid` running on you, as `by` (the asking node checked the rights).
    CancelTask {
        /// The task.
        upid: String,
        /// What the caller authenticated with on the asking node (checked again here).
        credential: Credential,
    },
    /// Send the log of task `upid`, which ran on you.
    TaskLog {
        /// The task.
        upid: String,
    },
    /// Start work on your chunk directory (see [`crate::maintenance::jobs`]).
    StartJob(LocalJob),
    /// Where is job `id`?
    PollJob(u64),
    /// Change membership (sent to the leader; the asking node checked `actor`'s rights).
    Membership {
        /// What the caller authenticated with on the asking node (checked again here).
        credential: Credential,
        /// What to do.
        op: MembershipOp,
        /// To which member.
        target: u64,
    },
    /// How is your mirroring going (one report per datastore you mirror)?
    MirrorProgress,
}

/// The answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    /// Done; how many chunks were sent.
    Done(usize),
    /// The job was started with this id.
    Started(u64),
    /// Where the job is.
    Job(JobStatus),
    /// The membership change's outcome.
    Changed(Result<String, String>),
    /// One answer per id asked with [`PeerRequest::Has`].
    Held(Vec<bool>),
    /// A text answer (a task log, a confirmation) or why not.
    Text(Result<String, String>),
    /// A push ([`PeerRequest::PushTo`]) is done: how many chunks and bytes it sent.
    Pushed {
        /// Chunks sent (those the asker lacked).
        chunks: usize,
        /// Their bytes, resends included.
        bytes: u64,
    },
    /// This node's mirroring, per datastore ([`PeerRequest::MirrorProgress`]).
    Mirror(Vec<MirrorReport>),
}

/// What one node's mirroring of one datastore has done since the node started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct MirrorReport {
    /// The node.
    pub node: String,
    /// The datastore.
    pub datastore: String,
    /// Chunk bytes pulled since the node started.
    pub pulled_bytes: u64,
    /// Bytes per second over the last few seconds.
    pub rate: u64,
    /// Chunks that failed 3 attempts or more and are still missing.
    pub failing_chunks: usize,
    /// The latest of their errors, in words.
    pub error: Option<String>,
}

/// Encodes a message: a version byte ([`VERSION`]), then postcard.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    let mut out = vec![VERSION];
    postcard::to_io(v, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes a message [`encode`] made; other versions are refused, naming theirs.
pub fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, String> {
    match b.split_first() {
        Some((&VERSION, rest)) => postcard::from_bytes(rest).map_err(|e| e.to_string()),
        Some((v, _)) => Err(format!(
            "peer message version {v} is not supported (this build reads {VERSION}); run the same version on every node"
        )),
        None => Err("empty peer message".into()),
    }
}

/// What a node is asked to do with its chunk directory of `datastore`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LocalJob {
    /// Mark what the datastore's snapshots reference (from this node's Raft state) and delete
    /// the other chunks last touched before `cutoff` (epoch seconds).
    Sweep {
        /// The datastore.
        datastore: DatastoreName,
        /// Nothing touched at or after this is deleted.
        cutoff: i64,
    },
    /// Check these chunks; damaged ones are moved aside.
    Check {
        /// The datastore.
        datastore: DatastoreName,
        /// The chunks.
        ids: Vec<ChunkId>,
    },
    /// Probe the directory (write, sync, read back) and, with `usage`, count what it holds.
    Inspect {
        /// The datastore.
        datastore: DatastoreName,
        /// Also walk the directory and read the file system's usage.
        usage: bool,
    },
}

/// One chunk's state on one node, as [`LocalJob::Check`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyState {
    /// Not on this node.
    Missing,
    /// Intact.
    Intact,
    /// Damaged; moved aside.
    Damaged,
}

/// A node's directory as [`LocalJob::Inspect`] saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DirInfo {
    /// The directory.
    pub path: String,
    /// Whether the probe succeeded.
    pub online: bool,
    /// Why not.
    pub error: Option<String>,
    /// What it holds (when asked and online).
    pub usage: Option<DirUsage>,
}

/// What a job produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JobOutput {
    /// The sweep's report and how many chunks were referenced.
    Swept {
        /// Distinct chunks the snapshots reference.
        referenced: u64,
        /// What the sweep did.
        report: SweepReport,
    },
    /// One state per id asked, in order.
    Checked(Vec<CopyState>),
    /// The directory.
    Inspected(DirInfo),
}

/// Where a job is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum JobStatus {
    /// Still running.
    Running,
    /// Finished.
    Done(JobOutput),
    /// Failed, with why.
    Failed(String),
    /// No such job (the node restarted, or it was already collected).
    Unknown,
}

/// What to do with a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipOp {
    /// Learner → voter.
    Promote,
    /// Voter → learner.
    Demote,
    /// Out of the cluster.
    Remove,
    /// Make it the leader.
    Transfer,
}
