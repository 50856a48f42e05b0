//! The chunk directories of this node's datastores, and the transport's view of them.
//!
//! Every chunk transfer names its datastore as its scope ([`TransferOptions::scope`]), which
//! the transport hands to [`ChunkStore`] with each chunk: two transfers of the same id into
//! different datastores at once each find their own directory.
//!
//! [`TransferOptions::scope`]: ironcore_transport::TransferOptions::scope

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use ironcore_chunkstore::ChunkBuf;
use ironcore_chunkstore::envelope::{StoredCheck, verify_stored};
use ironcore_chunkstore::{ChunkDir, Inserted};
use ironcore_raft::MetaView;
use ironcore_transport::ChunkStore;
use ironcore_types::{ChunkId, DatastoreName};

use crate::config::NodeConfig;
use crate::{NodeError, Result};

/// The datastore directories on this node.
#[derive(Debug)]
pub struct NodeStores {
    config: NodeConfig,
    meta: MetaView,
    dirs: RwLock<HashMap<DatastoreName, Arc<ChunkDir>>>,
}

impl NodeStores {
    /// Stores of the node described by `config`, reading datastore settings from `meta`.
    pub fn new(config: NodeConfig, meta: MetaView) -> Arc<Self> {
        Arc::new(Self {
            config,
            meta,
            dirs: RwLock::new(HashMap::new()),
        })
    }

    /// Where datastore `ds` lives on this node.
    pub fn path_of(&self, ds: &DatastoreName) -> Result<PathBuf> {
        let config = self
            .meta
            .datastore(ds)?
            .ok_or_else(|| NodeError::NotFound(format!("datastore {ds} does not exist")))?;
        Ok(self.config.local_datastore_path(&config.path))
    }

    /// The chunk directory of `ds`, created on first use.
    pub fn dir(&self, ds: &DatastoreName) -> Result<Arc<ChunkDir>> {
        if let Some(d) = self.dirs.read().unwrap_or_else(|p| p.into_inner()).get(ds) {
            return Ok(d.clone());
        }
        let root = self.path_of(ds)?;
        ChunkDir::create(&root).map_err(NodeError::io(format!(
            "creating datastore {ds} at {}",
            root.display()
        )))?;
        let dir = Arc::new(ChunkDir::new(&root));
        self.dirs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ds.clone(), dir.clone());
        Ok(dir)
    }

    /// Whether chunk `id` of `ds` is here.
    pub fn has(&self, ds: &DatastoreName, id: &ChunkId) -> Result<bool> {
        let dir = self.dir(ds)?;
        dir.touch_if_present(id)
            .map_err(NodeError::io(format!("checking chunk {id} of {ds}")))
    }

    /// Whether each of `ids` of `ds` is here, in order. Each check waits for the disk when
    /// the chunk directory is cold, so several threads check slices of a long list at once.
    pub fn has_many(&self, ds: &DatastoreName, ids: &[ChunkId]) -> Result<Vec<bool>> {
        const THREADS: usize = 8;
        const MIN_SLICE: usize = 64;
        let dir = self.dir(ds)?;
        let slice = ids.len().div_ceil(THREADS).max(MIN_SLICE);
        let check = |part: &[ChunkId]| -> Result<Vec<bool>> {
            part.iter()
                .map(|id| {
                    dir.touch_if_present(id)
                        .map_err(NodeError::io(format!("checking chunk {id} of {ds}")))
                })
                .collect()
        };
        if ids.len() <= slice {
            return check(ids);
        }
        let parts: Vec<Result<Vec<bool>>> = std::thread::scope(|scope| {
            let running: Vec<_> = ids
                .chunks(slice)
                .map(|part| scope.spawn(|| check(part)))
                .collect();
            running
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let mut held = Vec::with_capacity(ids.len());
        for part in parts {
            held.extend(part?);
        }
        Ok(held)
    }

    /// Verifies and stores chunk `id` of `ds` (its envelope's stored digest and id must match).
    pub fn put(&self, ds: &DatastoreName, id: &ChunkId, bytes: &[u8]) -> Result<Inserted> {
        verify_stored(bytes, id)?;
        let dir = self.dir(ds)?;
        dir.insert(id, bytes).map_err(|e| storing_failed(e, ds, id))
    }

    /// [`NodeStores::put`] of a chunk received in pieces: `check` hashed them as they came and
    /// `buf` holds them, ready to be written without another copy.
    pub fn put_received(
        &self,
        ds: &DatastoreName,
        id: &ChunkId,
        check: StoredCheck,
        buf: ChunkBuf,
    ) -> Result<Inserted> {
        // The client's bytes, not the node, are at fault: a 4xx that names the failed check.
        check.finish(id).map_err(|e| {
            NodeError::BadRequest(format!(
                "chunk upload rejected, nothing was stored: the bytes sent are not chunk {id} ({e})"
            ))
        })?;
        let dir = self.dir(ds)?;
        dir.insert_buf(id, buf)
            .map_err(|e| storing_failed(e, ds, id))
    }

    /// Reads chunk `id` of `ds` from this node (`chunk not found` if it is not here).
    pub fn get(&self, ds: &DatastoreName, id: &ChunkId) -> Result<Vec<u8>> {
        let dir = self.dir(ds)?;
        dir.read(id).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NodeError::ChunkNotFound(format!("{id} of datastore {ds} is not on this node"))
            } else {
                NodeError::Io {
                    what: format!("reading chunk {id} of {ds}"),
                    source: e,
                }
            }
        })
    }

    /// Deletes this node's copy of chunk `id` of `ds`; `false` if it held none.
    pub fn remove(&self, ds: &DatastoreName, id: &ChunkId) -> Result<bool> {
        self.dir(ds)?
            .remove(id)
            .map_err(NodeError::io(format!("deleting chunk {id} of {ds}")))
    }

    /// Makes every chunk written so far durable.
    pub fn sync(&self, ds: &DatastoreName) -> Result<()> {
        self.dir(ds)?
            .sync()
            .map_err(NodeError::io(format!("syncing datastore {ds}")))
    }
}

/// The transport's view of [`NodeStores`]. The transport is bound before the Raft state
/// (which names the datastores) is open, so the stores are attached once they exist; until
/// then every transfer is refused.
#[derive(Debug, Clone, Default)]
pub struct TransportStores(pub Arc<std::sync::OnceLock<Arc<NodeStores>>>);

impl TransportStores {
    fn stores(&self) -> std::result::Result<&Arc<NodeStores>, String> {
        self.0
            .get()
            .ok_or_else(|| "this node is still starting".to_string())
    }
}

impl TransportStores {
    fn datastore(scope: &str) -> std::result::Result<DatastoreName, String> {
        scope
            .parse()
            .map_err(|e| format!("a chunk transfer names no datastore ({scope:?}): {e}"))
    }
}

impl ChunkStore for TransportStores {
    fn has(&self, scope: &str, id: &ChunkId) -> bool {
        let (Ok(s), Ok(ds)) = (self.stores(), Self::datastore(scope)) else {
            return false;
        };
        s.has(&ds, id).unwrap_or(false)
    }

    /// One hash over the bytes: the envelope's stored digest and id are checked as the chunk
    /// is taken, then it is written.
    fn accept(
        &self,
        scope: &str,
        id: &ChunkId,
        bytes: Vec<u8>,
    ) -> std::result::Result<bool, String> {
        let (s, ds) = (self.stores()?, Self::datastore(scope)?);
        if verify_stored(&bytes, id).is_err() {
            return Ok(false);
        }
        let dir = s.dir(&ds).map_err(|e| e.to_string())?;
        dir.insert(id, &bytes)
            .map(|_| true)
            .map_err(|e| storing_failed(e, &ds, id).to_string())
    }

    fn get(&self, scope: &str, id: &ChunkId) -> std::result::Result<bytes::Bytes, String> {
        let (s, ds) = (self.stores()?, Self::datastore(scope)?);
        s.get(&ds, id).map(Into::into).map_err(|e| e.to_string())
    }
}

/// A chunk that could not be written: `no space left on datastore` when the disk is full.
fn storing_failed(e: std::io::Error, ds: &DatastoreName, id: &ChunkId) -> NodeError {
    if e.raw_os_error() == Some(28) {
        NodeError::NoSpace(ds.to_string())
    } else {
        NodeError::Io {
            what: format!("storing chunk {id} of {ds}"),
            source: e,
        }
    }
}
