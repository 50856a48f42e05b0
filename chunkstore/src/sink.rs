//! Where a backup's chunks go and where a restore's chunks come from.
//!
//! Writers and readers work against these two traits, so the same pipeline backs up into a
//! local [`Datastore`] or into a node over the network: a remote sink asks the node whether it
//! holds a chunk, and builds and uploads the envelope (see [`encode_for_sink`]) only when it
//! does not.

use bytes::Bytes;
use ironcore_types::ChunkId;

use crate::Result;
use crate::chunk_dir::Inserted;
use crate::crypto::CryptKey;
use crate::datastore::Datastore;
use crate::envelope::{DEFAULT_ZSTD_LEVEL, encode_chunk};

/// Where a backup's chunks go: a local datastore, or a node over the network.
pub trait ChunkSink: Send + Sync + std::fmt::Debug {
    /// Stores chunk `id` (plaintext `plain`) unless the sink already holds it; encodes the
    /// envelope (zstd, encryption with `key`) only when the chunk is new. `plain` is shared, so
    /// a sink may send it on as it is where the envelope holds the plaintext unchanged.
    fn store_chunk(&self, id: &ChunkId, plain: &Bytes, key: Option<&CryptKey>) -> Result<Inserted>;

    /// Called by writers now and then so a sink holding a lease can renew it.
    fn keep_alive(&self) -> Result<()> {
        Ok(())
    }

    /// Whether the sink holds chunk `id` (and keeps it from GC for this session), so a writer
    /// may reference it without its bytes ([`crate::ArchiveWriter::append_known`]). The default
    /// says no: such a sink never has chunks referenced blindly.
    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        let _ = id;
        Ok(false)
    }

    /// [`Self::has_chunk`] for many chunks at once (a remote sink asks in one request).
    fn has_chunks(&self, ids: &[ChunkId]) -> Result<Vec<bool>> {
        ids.iter().map(|id| self.has_chunk(id)).collect()
    }
}

/// Where a restore's chunks come from.
pub trait ChunkSource: Send + Sync + std::fmt::Debug {
    /// The stored envelope bytes of chunk `id`; `Error::ChunkNotFound` when it is missing.
    fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>>;
}

/// The envelope of a new chunk as a datastore with default settings would store it (zstd at
/// [`DEFAULT_ZSTD_LEVEL`], encrypted with `key` when given). `id` must be
/// [`chunk_id`](crate::envelope::chunk_id)`(plain, key)`.
pub fn encode_for_sink(id: &ChunkId, plain: &[u8], key: Option<&CryptKey>) -> Result<Vec<u8>> {
    encode_chunk(id, plain, key, DEFAULT_ZSTD_LEVEL)
}

impl ChunkSink for Datastore {
    fn store_chunk(&self, id: &ChunkId, plain: &Bytes, key: Option<&CryptKey>) -> Result<Inserted> {
        Datastore::store_chunk(self, id, plain, key)
    }

    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Datastore::has_chunk(self, id)
    }
}

impl ChunkSource for Datastore {
    fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        Datastore::read_chunk(self, id)
    }
}
