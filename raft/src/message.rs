//! The Raft RPC messages nodes exchange over the transport's control path.

use openraft::raft::linearizable_read::ReadLogId;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::{Command, CommandResult, Error, LogId, NodeId, SnapshotMeta, TypeConfig, Vote};

/// A request from one Raft node to another.
///
/// On the wire it is `[format version] ++ postcard(RaftRequest)` (see [`RaftRequest::encode`]).
/// postcard encodes a variant by its position, so variants are only ever appended, never
/// removed or reordered; a changed request becomes a new variant.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    /// AppendEntries (replication and heartbeats), for `Raft::append_entries`.
    Append(AppendEntriesRequest<TypeConfig>),
    /// RequestVote, for `Raft::vote`.
    Vote(VoteRequest<TypeConfig>),
    /// Pre-Vote (would you vote for me?), for `Raft::pre_vote`.
    PreVote(VoteRequest<TypeConfig>),
    /// The leader hands leadership over, for `Raft::handle_transfer_leader`.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A client write forwarded by a node that is not the leader.
    ClientWrite(Command),
    /// A follower asks the leader up to where it must apply before a linearizable read.
    ReadIndex,
    /// Is the node reachable? (Answered even before its Raft instance runs.)
    Ping,
    /// One segment of a snapshot file (see [`crate::snapshot_inbox`]), sent on the transport's
    /// bulk path; the last one installs it (`Raft::install_full_snapshot`).
    SnapshotSegment {
        /// The sending leader's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// SHA-256 of the whole snapshot (also its transfer's name).
        digest: [u8; 32],
        /// Its size.
        total: u64,
        /// Where `data` starts.
        offset: u64,
        /// At most [`crate::snapshot_inbox::SEGMENT`] bytes.
        data: Vec<u8>,
    },
}

/// The answer to a [`RaftRequest`], variant for variant (same encoding rules).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    /// Answer to [`RaftRequest::Append`].
    Append(AppendEntriesResponse<TypeConfig>),
    /// Answer to [`RaftRequest::Vote`] and [`RaftRequest::PreVote`].
    Vote(VoteResponse<TypeConfig>),
    /// Answer to the [`RaftRequest::SnapshotSegment`] that completed a snapshot: the install.
    Snapshot(SnapshotResponse<TypeConfig>),
    /// Answer to [`RaftRequest::TransferLeader`].
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// Answer to [`RaftRequest::ClientWrite`].
    ClientWrite(Result<WriteReply, Refusal>),
    /// Answer to [`RaftRequest::ReadIndex`].
    ReadIndex(Result<ReadLogId<TypeConfig>, Refusal>),
    /// Answer to [`RaftRequest::Ping`].
    Pong,
    /// Answer to a [`RaftRequest::SnapshotSegment`] that did not complete the snapshot: go on
    /// from this offset.
    SnapshotHave(u64),
    /// Answer to one [`RaftRequest::Append`] on an append stream (see
    /// `append_stream.rs`).
    StreamAppend(StreamAppendResult<TypeConfig>),
}

/// A write the leader committed and applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteReply {
    /// The log entry that holds it.
    pub log_id: LogId,
    /// What applying it returned.
    pub result: CommandResult,
}

/// Why a node did not serve a forwarded request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The node is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, if known.
        leader: Option<NodeId>,
    },
    /// The request failed on the node; a write was not applied.
    #[error("{0}")]
    Failed(String),
    /// A write was appended, then discarded by a leader change: it may or may not be applied.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
}

impl RaftRequest {
    /// Encodes for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        encode("raft request", self)
    }

    /// Decodes from the wire, refusing unknown format versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        decode("raft request", bytes)
    }

    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Append(_) => "append",
            Self::Vote(_) => "vote",
            Self::PreVote(_) => "pre-vote",
            Self::SnapshotSegment { .. } => "snapshot segment",
            Self::TransferLeader(_) => "transfer-leader",
            Self::ClientWrite(_) => "client-write",
            Self::ReadIndex => "read-index",
            Self::Ping => "ping",
        }
    }
}

impl RaftResponse {
    /// Encodes for the wire.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        encode("raft response", self)
    }

    /// Decodes from the wire, refusing unknown format versions.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        decode("raft response", bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_a_version_byte() {
        let req = RaftRequest::ClientWrite(Command::DeleteKey { key: "k".into() });
        let bytes = req.encode().unwrap();
        assert_eq!(bytes[0], crate::codec::FORMAT_VERSION);
        // Variant 4 (ClientWrite), then the command.
        assert_eq!(&bytes[1..], &[4, 1, 1, b'k']);
        assert!(matches!(
            RaftRequest::decode(&bytes).unwrap(),
            RaftRequest::ClientWrite(Command::DeleteKey { .. })
        ));
        let resp = RaftResponse::ClientWrite(Err(Refusal::NotLeader { leader: Some(3) }));
        let back = RaftResponse::decode(&resp.encode().unwrap()).unwrap();
        assert!(matches!(
            back,
            RaftResponse::ClientWrite(Err(Refusal::NotLeader { leader: Some(3) }))
        ));
        assert!(RaftRequest::decode(&[9, 6]).is_err());
    }
}
