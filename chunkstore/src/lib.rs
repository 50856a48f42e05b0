//! The chunk store of Ironcore Backup (layer 1).
//!
//! It owns the bytes on disk: chunk ids and the versioned chunk envelope (zstd, AES-256-GCM),
//! key files and paper keys, fixed and dynamic indexes, signed snapshot manifests, and the
//! datastore engine on a local directory with its maintenance — prune planning, garbage
//! collection, verification, quarantine and the offline/self-heal probe. The metadata it keeps
//! lives in RocksDB (Debian's system library).
//!
//! It must never talk to other nodes or to Raft: the node crate connects this store to the
//! cluster. Every decoder of stored bytes returns an error on bad input and never panics.
//!
//! Where to start: [`Datastore`] (create, open, health), [`BackupSession`] and
//! [`ArchiveWriter`] (writing), [`ArchiveReader`] (reading), [`Datastore::gc`],
//! [`Datastore::verify`], [`prune::plan_prune`]. Writing and reading also work against any
//! [`ChunkSink`] / [`ChunkSource`] (a node over the network): [`StreamSession`],
//! [`ArchiveReader::open`], [`open_manifest_bytes`].

mod catalog;
pub mod cdc;
mod chunk_buf;
mod chunk_dir;
mod crypto;
mod cut_guide;
mod datastore;
mod dynamic_index;
pub mod envelope;
mod error;
mod fixed_index;
pub mod gc;
mod health;
mod index;
pub mod keyfile;
mod manifest;
pub mod paperkey;
pub mod prune;
mod quick_hash;
mod reader;
mod session;
pub mod sha256;
#[cfg(target_arch = "x86_64")]
mod sha256_ni;
mod sink;
mod stats;
mod stream_session;
#[cfg(test)]
mod test_data;
mod verify;
mod writer;

pub use catalog::{Catalog, DatastoreRecord, SessionLease, SnapshotRecord, VerifyState};
pub use chunk_buf::ChunkBuf;
pub use chunk_dir::{ChunkDir, ChunkFile, Inserted};
pub use crypto::CryptKey;
pub use cut_guide::CutGuide;
pub use datastore::{Datastore, DatastoreOptions};
pub use dynamic_index::{DynamicIndex, IndexChunk};
pub use error::{Error, Result};
pub use fixed_index::{DEFAULT_FIXED_CHUNK, FixedIndex};
pub use gc::{GcOptions, GcReport, SweepReport};
pub use health::{Health, MARKER_FILE};
pub use index::{ArchiveIndex, IndexKind};
pub use keyfile::{KdfParams, KeyFile};
pub use manifest::{Manifest, ManifestFile};
pub use quick_hash::QuickHash;
pub use reader::{ArchiveReader, ChunkStream, open_manifest_bytes};
pub use session::{BackupSession, CancelToken, LEASE_TTL_SECS, SessionStats};
pub use sink::{ChunkSink, ChunkSource, encode_for_sink};
pub use stats::{DatastoreStats, DirUsage};
pub use stream_session::StreamSession;
pub use verify::{BadChunk, ChunkCheck, SnapshotVerdict, VerifyReport};
pub use writer::{ArchiveWriter, CDC_AVG, CDC_MAX, CDC_MIN};
