//! An in-memory [`ChunkStore`] whose chunk ids are the SHA-256 of their bytes: for tests and
//! benchmarks of the transport and of the layers above it. Not for production data.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use ironcore_types::ChunkId;
use sha2::{Digest, Sha256};

use crate::ChunkStore;

/// Chunks in memory, verified by SHA-256.
#[derive(Debug, Default)]
pub struct MemChunks {
    chunks: Mutex<HashMap<ChunkId, Bytes>>,
}

impl MemChunks {
    /// Adds bytes; returns their id.
    pub fn add(&self, bytes: Vec<u8>) -> ChunkId {
        let id = ChunkId::from_bytes(Sha256::digest(&bytes).into());
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Bytes::from(bytes));
        id
    }

    /// How many chunks are held.
    pub fn len(&self) -> usize {
        self.chunks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no chunk is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ChunkStore for MemChunks {
    fn has(&self, id: &ChunkId) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn verify(&self, id: &ChunkId, bytes: &[u8]) -> bool {
        Sha256::digest(bytes)[..] == id.as_bytes()[..]
    }

    fn put(&self, id: &ChunkId, bytes: Vec<u8>) -> Result<(), String> {
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id, Bytes::from(bytes));
        Ok(())
    }

    fn get(&self, id: &ChunkId) -> Result<Bytes, String> {
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| format!("chunk {id} is not held"))
    }
}
