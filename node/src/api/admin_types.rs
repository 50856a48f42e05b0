//! Request bodies shared with callers outside the API module.

use ironcore_types::records::NodeRecord;
use serde::{Deserialize, Serialize};

/// What a joining node sends (`POST /api2/json/cluster/join`, authenticated by the token).
#[derive(Debug, Deserialize, Serialize)]
pub struct JoinRequest {
    /// The token's secret.
    pub secret: String,
    /// The joining node.
    pub node: NodeRecord,
}
