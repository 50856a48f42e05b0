//! [`ChunkStore`]s whose chunk ids are the SHA-256 of their bytes, for tests and benchmarks of
//! the transport and of the layers above it: one in memory, one that keeps only ids. Not for
//! production data.

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
    fn has(&self, _scope: &str, id: &ChunkId) -> bool {
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    fn accept(&self, _scope: &str, id: &ChunkId, bytes: Vec<u8>) -> Result<bool, String> {
        if Sha256::digest(&bytes)[..] != id.as_bytes()[..] {
            return Ok(false);
        }
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id, Bytes::from(bytes));
        Ok(true)
    }

    fn get(&self, _scope: &str, id: &ChunkId) -> Result<Bytes, String> {
        self.chunks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| format!("chunk {id} is not held"))
    }
}

/// A receiving store that verifies each chunk's SHA-256 and keeps only its id: for benchmarks
/// of the transport itself, where storing the bytes (memory or disk) is measured separately.
/// It cannot send chunks.
#[derive(Debug, Default)]
pub struct VerifyingSink {
    ids: Mutex<std::collections::HashSet<ChunkId>>,
}

impl VerifyingSink {
    /// How many chunks arrived and passed verification.
    pub fn len(&self) -> usize {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether none did.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ChunkStore for VerifyingSink {
    fn has(&self, _scope: &str, id: &ChunkId) -> bool {
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn accept(&self, _scope: &str, id: &ChunkId, bytes: Vec<u8>) -> Result<bool, String> {
        if Sha256::digest(&bytes)[..] != id.as_bytes()[..] {
            return Ok(false);
        }
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id);
        Ok(true)
    }

    fn get(&self, _scope: &str, id: &ChunkId) -> Result<Bytes, String> {
        Err(format!("chunk {id}: a verifying sink keeps no bytes"))
    }
}
