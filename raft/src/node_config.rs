//! Settings of a [`crate::RaftNode`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ironcore_transport::TransportConfig;

use crate::{ClusterNode, NodeError, NodeId, ProbePolicy};

/// Where a Raft node keeps its state, how it is reached and how it times elections.
///
/// The defaults of [`RaftNodeConfig::new`] suit sites joined by a WAN (round trips up to about
/// 100 ms): a heartbeat every 250 ms and elections after 1.5–3 s of silence. Tests on loopback
/// shorten them.
#[derive(Clone, Debug)]
pub struct RaftNodeConfig {
    /// This node's Raft id; stable for the node's lifetime.
    pub id: NodeId,
    /// This node as the membership records it.
    pub node: ClusterNode,
    /// The directory holding the log (`log/`) and the state machine (`sm/`).
    pub dir: PathBuf,
    /// The UDP address the transport binds (port 0 picks one).
    pub listen: SocketAddr,
    /// The transport's settings (its node name should be `node.name`).
    pub transport: TransportConfig,
    /// How often the leader sends heartbeats; also the timeout of one AppendEntries RPC.
    pub heartbeat_interval: Duration,
    /// A follower that hears nothing from a leader for a random time between these two bounds
    /// starts an election.
    pub election_timeout_min: Duration,
    /// See [`Self::election_timeout_min`].
    pub election_timeout_max: Duration,
    /// Run a Pre-Vote round before a real election, so a node coming back from a partition
    /// does not depose a healthy leader by inflating its term.
    pub pre_vote: bool,
    /// How long sending and installing one snapshot may take.
    pub snapshot_timeout: Duration,
    /// How long [`crate::RaftNode::write`] and [`crate::RaftNode::read`] may take in all,
    /// waiting for a leader and forwarding included.
    pub request_timeout: Duration,
    /// How a peer that stopped answering is probed until it is back.
    pub probe: ProbePolicy,
}

impl RaftNodeConfig {
    /// WAN defaults for node `id` described by `node`, stored in `dir`, bound at `listen`.
    pub fn new(
        id: NodeId,
        node: ClusterNode,
        dir: PathBuf,
        listen: SocketAddr,
        transport: TransportConfig,
    ) -> Self {
        Self {
            id,
            node,
            dir,
            listen,
            transport,
            heartbeat_interval: Duration::from_millis(250),
            election_timeout_min: Duration::from_millis(1500),
            election_timeout_max: Duration::from_millis(3000),
            pre_vote: true,
            snapshot_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            probe: ProbePolicy {
                timeout: Duration::from_millis(500),
                interval: Duration::from_secs(1),
            },
        }
    }

    /// openraft's configuration for these settings, validated.
    pub fn openraft(&self) -> Result<openraft::Config, NodeError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let config = openraft::Config {
            cluster_name: "ironcore".into(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.snapshot_timeout),
            enable_pre_vote: Some(self.pre_vote),
            ..Default::default()
        };
        if config.heartbeat_interval >= config.election_timeout_min {
            return Err(NodeError::Config(format!(
                "heartbeat interval ({} ms) must be shorter than the minimum election timeout \
                 ({} ms)",
                config.heartbeat_interval, config.election_timeout_min
            )));
        }
        config
            .validate()
            .map_err(|e| NodeError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RaftNodeConfig {
        let node = ClusterNode {
            name: "a1".into(),
            site: "primary".into(),
            address: "127.0.0.1:8007".into(),
        };
        let transport = TransportConfig::new(
            "a1".parse().unwrap(),
            ironcore_transport::ClusterId([1; 16]),
            1,
        );
        RaftNodeConfig::new(
            1,
            node,
            "/tmp".into(),
            "127.0.0.1:0".parse().unwrap(),
            transport,
        )
    }

    #[test]
    fn wan_defaults_validate_and_bad_timeouts_are_refused() {
        let c = config().openraft().unwrap();
        assert_eq!(c.heartbeat_interval, 250);
        assert_eq!(c.enable_pre_vote, Some(true));
        let mut bad = config();
        bad.heartbeat_interval = Duration::from_secs(2);
        assert!(matches!(bad.openraft(), Err(NodeError::Config(_))));
        let mut bad = config();
        bad.election_timeout_max = bad.election_timeout_min;
        assert!(matches!(bad.openraft(), Err(NodeError::Config(_))));
    }
}
