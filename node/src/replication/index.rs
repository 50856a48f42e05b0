//! Reading a snapshot's indexes (the chunk lists of its archives) from any node that holds them.

use ironcore_chunkstore::ArchiveIndex;
use ironcore_chunkstore::envelope::decode_chunk;
use std::collections::HashSet;

use ironcore_chunkstore::Manifest;
use ironcore_types::{ChunkId, DatastoreName};

use crate::replication::peers::ChunkPeers;
use crate::{NodeError, Result};

/// Reads and decodes the index of archive `file` of a snapshot of `ds` (from any node holding
/// it), checking it covers the size the manifest says.
pub async fn load_index(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    file: &ironcore_chunkstore::ManifestFile,
) -> Result<ArchiveIndex> {
    let raw = super::fetch::read(peers, ds, &file.index).await?;
    let index = ArchiveIndex::decode(file.kind, &decode_chunk(&raw, &file.index, None)?)?;
    if index.size() != file.size {
        return Err(NodeError::Internal(format!(
            "index {} of datastore {ds} covers {} bytes, its manifest says {}; run `ironcore-backup verify start {ds}`",
            file.index,
            index.size(),
            file.size
        )));
    }
    Ok(index)
}

/// Every chunk a snapshot of `ds` with `manifest` references, its index chunks included.
pub async fn snapshot_chunks(
    peers: &ChunkPeers,
    ds: &DatastoreName,
    manifest: &Manifest,
) -> Result<HashSet<ChunkId>> {
    let mut ids = HashSet::new();
    for file in &manifest.files {
        ids.insert(file.index);
        ids.extend(load_index(peers, ds, file).await?.chunk_ids());
    }
    Ok(ids)
}
