//! What a node remembers about its cluster between starts (`<data-dir>/cluster.json`): the
//! cluster id, its own Raft id, the epoch, the peers it knew when it joined, and whether the
//! first start must still bootstrap the cluster.

use std::path::{Path, PathBuf};

use ironcore_types::records::NodeRecord;
use serde::{Deserialize, Serialize};

use crate::{NodeError, Result};

/// The file's contents.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterState {
    /// Format version of this file (1).
    pub version: u32,
    /// Hex of the 16-byte cluster id.
    pub cluster_id: String,
    /// This node's Raft id.
    pub raft_id: u64,
    /// The epoch it last saw.
    pub epoch: u64,
    /// True until the first start of a node created by `init` has bootstrapped the cluster.
    pub bootstrap_pending: bool,
    /// Members known when the node joined (later the Raft state is the truth).
    pub peers: Vec<NodeRecord>,
}

impl ClusterState {
    /// Where the file lives.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("cluster.json")
    }

    /// Reads it; a clear error when the node never joined a cluster.
    pub fn load(data_dir: &Path) -> Result<Self> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| NodeError::State {
            path: path.clone(),
            detail: if e.kind() == std::io::ErrorKind::NotFound {
                "this node is not part of a cluster yet: run `ironcore-node init` to create one, or `ironcore-node join --token TOKEN` to join one".into()
            } else {
                e.to_string()
            },
        })?;
        let state: Self = serde_json::from_str(&text).map_err(|e| NodeError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if state.version != 1 {
            return Err(NodeError::State {
                path,
                detail: format!(
                    "format version {} is not supported (this build reads 1)",
                    state.version
                ),
            });
        }
        Ok(state)
    }

    /// Writes it atomically (temporary file, fsync, rename).
    pub fn save(&self, data_dir: &Path) -> Result<()> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| NodeError::State {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let io = NodeError::io(format!("writing {}", path.display()));
        std::fs::create_dir_all(data_dir).map_err(NodeError::io("creating the data dir"))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io)
    }

    /// Whether the file exists.
    pub fn exists(data_dir: &Path) -> bool {
        Self::path(data_dir).exists()
    }

    /// The cluster id as bytes.
    pub fn cluster_id_bytes(&self) -> Result<[u8; 16]> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(&self.cluster_id, &mut out).map_err(|e| NodeError::State {
            path: PathBuf::from("cluster.json"),
            detail: format!("cluster-id: {e}"),
        })?;
        Ok(out)
    }
}
