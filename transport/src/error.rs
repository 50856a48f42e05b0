//! The one error type of the transport. The manuals' `TLS fingerprint mismatch` opens its
//! message word for word.

use ironcore_types::{ChunkId, Fingerprint};

/// Everything that can go wrong between two nodes.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer presented a certificate whose fingerprint is not pinned for it.
    #[error(
        "TLS fingerprint mismatch: expected {expected} but the peer presented {presented}; if the \
         peer's certificate was renewed, verify the new fingerprint out of band and update the pin \
         (`ironcore-backup remote update --name <peer> --fingerprint <new-fingerprint>`)"
    )]
    FingerprintMismatch {
        /// The pinned fingerprints, comma separated.
        expected: String,
        /// The fingerprint the peer presented.
        presented: Fingerprint,
    },
    /// The TLS or QUIC handshake failed for another reason (no client certificate, an
    /// unknown peer, a protocol mismatch).
    #[error("handshake with {peer} failed: {reason}")]
    Handshake {
        /// The peer's address or name.
        peer: String,
        /// What failed.
        reason: String,
    },
    /// The peer belongs to another cluster.
    #[error(
        "peer {peer} belongs to cluster {theirs}, this node to {ours}; it cannot join this cluster"
    )]
    ForeignCluster {
        /// The peer.
        peer: String,
        /// Its cluster id.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// The peer is from an older cluster epoch (fenced by a failover) and must rejoin.
    #[error(
        "peer {peer} is at cluster epoch {theirs}, older than this node's {ours}: it was fenced by a \
         failover and must rejoin the cluster"
    )]
    StaleEpoch {
        /// The peer.
        peer: String,
        /// Its epoch.
        theirs: u64,
        /// Ours.
        ours: u64,
    },
    /// A frame broke the protocol: bad magic or version, oversized, truncated, or undecodable.
    #[error("protocol error from {peer}: {detail}")]
    Protocol {
        /// The peer.
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// The peer answered a request with an error.
    #[error("{peer} refused the request: {reason}")]
    Remote {
        /// The peer.
        peer: String,
        /// Its message.
        reason: String,
    },
    /// A chunk kept failing verification on arrival.
    #[error(
        "chunk {id} failed verification at {peer} {attempts} times; the copy at the sender may be \
         damaged: run `ironcore-backup verify start` on the source datastore"
    )]
    ChunkRejected {
        /// The peer.
        peer: String,
        /// The chunk.
        id: ChunkId,
        /// How many attempts were made.
        attempts: u32,
    },
    /// The connection failed or was closed.
    #[error("connection to {peer} failed: {detail}")]
    Connection {
        /// The peer.
        peer: String,
        /// What happened.
        detail: String,
    },
    /// The node's identity (key pair and certificate) could not be loaded or created.
    #[error("node identity at '{path}': {detail}")]
    Identity {
        /// The identity directory.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// A local I/O error (binding the UDP socket, reading a chunk).
    #[error("I/O error while {action}: {source}")]
    Io {
        /// What the transport was doing.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The request did not complete in time.
    #[error("request to {peer} timed out after {millis} ms")]
    Timeout {
        /// The peer.
        peer: String,
        /// The timeout.
        millis: u64,
    },
}

impl TransportError {
    /// Whether trying again later may help without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Connection { .. }
                | TransportError::Timeout { .. }
                | TransportError::Io { .. }
        )
    }
}

/// The result type of this crate.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
