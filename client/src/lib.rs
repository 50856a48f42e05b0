//! The backup client of Ironcore Backup (layer 2).
//!
//! It turns what is backed up into archives of the chunk store and back: a directory tree
//! (hosts, container root filesystems) becomes a metadata archive and a payload archive
//! ([`tree`]); a disk image becomes one fixed-chunk archive ([`image`]). It owns the tree
//! format and the restore of metadata (permissions, owners, times, links).
//!
//! It must never reach into a datastore's files directly: it writes and reads only through
//! `chunkstore`'s sessions and readers. Every operation also has a form that works on any
//! chunk store — [`write_tree`], [`write_image`] on a `StreamSession`, and [`restore_tree_from`],
//! [`restore_image_from`], [`read_entries_from`] on a `ChunkSource` — so the same code backs up
//! into and restores from a node over the network.

pub mod api_client;
mod beneath;
pub mod compare;
mod direct_read;
mod error;
pub mod image;
mod pieces;
pub mod remote;
mod restore_payload;
pub mod restore_plan;
mod restorer;
pub mod tree;
mod tree_format;
mod tree_restore;
mod tree_reuse;
mod tree_scan;

pub use api_client::{ApiClient, ApiError};
pub use compare::compare_trees;
pub use error::{ClientError, Result};
pub use image::{restore_image_from, write_image};
pub use pieces::Pieces;
pub use remote::{RemoteSink, RemoteSource};
pub use restore_plan::RestorePlan;
pub use tree::{BackupReport, META_ARCHIVE, PAYLOAD_ARCHIVE, TreeWritten, backup_tree, write_tree};
pub use tree_format::{Entry, EntryKind, decode_entries, encode_entries};
pub use tree_restore::{
    RestoreOptions, RestoreReport, read_entries, read_entries_from, restore_tree,
    restore_tree_from, restore_tree_from_with, restore_tree_with,
};
pub use tree_reuse::PreviousTree;
pub use tree_scan::TreeScan;
