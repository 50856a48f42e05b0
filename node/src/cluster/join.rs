//! The joining side of `ironcore-node join --token`: ask the leader's API to admit this node,
//! then remember the cluster (id, epoch, members and their pins) for the first start.

use std::sync::Arc;

use hyper::Method;
use ironcore_client::ApiClient;
use ironcore_types::Fingerprint;
use ironcore_types::records::{NodeRecord, NodeRole};
use serde::{Deserialize, Serialize};

use crate::cluster::identity::{identity, self_record};
use crate::cluster::state::ClusterState;
use crate::config::NodeConfig;
use crate::{NodeError, Result};

/// What a joining node sends (`POST /api2/json/cluster/join`, authenticated by the token).
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct JoinRequest {
    /// The token's secret.
    pub secret: String,
    /// The joining node.
    #[schema(value_type = Member)]
    pub node: NodeRecord,
}

/// A cluster member as a joining node describes itself (`NodeRecord`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Member {
    /// Its Raft id.
    id: u64,
    /// Its name.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: String,
    /// Its site.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    site: String,
    /// Voter, learner or witness.
    #[schema(pattern = r"^(voter|learner|witness)$")]
    role: String,
    /// Its QUIC address (`HOST:PORT`).
    address: String,
    /// Its API address (`HOST:PORT`).
    api_address: String,
    /// Its certificate fingerprints, at least one.
    #[schema(min_items = 1)]
    fingerprints: Vec<FingerprintHex>,
    /// When it joined (epoch seconds).
    joined: i64,
}

/// A certificate's SHA-256 fingerprint: 64 hex digits, colons allowed between them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(pattern = r"^(:*[0-9a-fA-F]){64}:*$")]
#[allow(dead_code)]
pub struct FingerprintHex(String);

/// A parsed join token: `SECRET@HOST:PORT/FINGERPRINT`.
#[derive(Debug)]
pub struct JoinToken {
    secret: String,
    api: String,
    fingerprint: Fingerprint,
}

impl std::str::FromStr for JoinToken {
    type Err = NodeError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            NodeError::BadRequest("join token not valid: it looks like SECRET@HOST:PORT/FINGERPRINT; create one with `ironcore-backup cluster join-token`".into())
        };
        let (secret, rest) = s.trim().split_once('@').ok_or_else(bad)?;
        let (api, fp) = rest.rsplit_once('/').ok_or_else(bad)?;
        Ok(Self {
            secret: secret.to_string(),
            api: api.to_string(),
            fingerprint: fp.parse().map_err(|_| bad())?,
        })
    }
}

#[derive(Deserialize)]
struct JoinAnswer {
    #[serde(rename = "cluster-id")]
    cluster_id: String,
    epoch: u64,
    nodes: Vec<NodeRecord>,
}

/// Joins the cluster named by `token` as a node of `role`; writes `cluster.json`.
pub async fn join(config: &NodeConfig, token: &JoinToken, role: NodeRole) -> Result<ClusterState> {
    if ClusterState::exists(&config.data_dir) {
        return Err(NodeError::State {
            path: ClusterState::path(&config.data_dir),
            detail: "this node already belongs to a cluster".into(),
        });
    }
    let identity = identity(config)?;
    let raft_id = rand::random::<u64>() >> 1;
    let mut me = self_record(config, raft_id, &identity);
    me.role = role;
    let api = Arc::new(
        ApiClient::new(&token.api, token.fingerprint, None)
            .map_err(|e| NodeError::BadRequest(e.to_string()))?,
    );
    let answer: JoinAnswer = api
        .json(
            Method::POST,
            "/api2/json/cluster/join",
            Some(&JoinRequest {
                secret: token.secret.clone(),
                node: me,
            }),
        )
        .await
        .map_err(|e| NodeError::BadRequest(format!("join refused: {e}")))?;
    let state = ClusterState {
        version: 1,
        cluster_id: answer.cluster_id,
        raft_id,
        epoch: answer.epoch,
        bootstrap_pending: false,
        peers: answer.nodes,
    };
    state.save(&config.data_dir)?;
    Ok(state)
}
