//! Who this node is: its key pair and certificate (kept under `data-dir/identity`), and its
//! member record.

use ironcore_transport::NodeIdentity;
use ironcore_types::records::{NodeRecord, NodeRole};

use crate::Result;
use crate::config::NodeConfig;

/// This node as a member record.
pub fn self_record(config: &NodeConfig, id: u64, identity: &NodeIdentity) -> NodeRecord {
    NodeRecord {
        id,
        name: config.name.to_string(),
        site: config.site.clone(),
        role: NodeRole::Voter,
        address: config.advertise.clone(),
        api_address: config.api_advertise.clone(),
        fingerprints: vec![identity.fingerprint()],
        joined: chrono::Utc::now().timestamp(),
    }
}

/// Loads (or creates) the node's identity.
pub fn identity(config: &NodeConfig) -> Result<NodeIdentity> {
    Ok(NodeIdentity::load_or_generate(
        &config.data_dir.join("identity"),
        &config.name,
    )?)
}
