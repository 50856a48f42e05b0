//! Restoring a tree snapshot: the whole tree, or one file or subtree, into a new directory.
//!
//! The entry list is untrusted: [`RestorePlan`] decides which entries to create and in what
//! order, skipping with a warning every one that could reach outside the target, and the
//! restorer creates them through directory descriptors beneath the target, following no
//! symlink. Content is written first (directories, files, hard links, FIFOs and devices in
//! archive order, then symlinks), directories' metadata last, children before parents, so
//! that setting a directory's time is not undone by writing into it. A whole-tree restore
//! streams the payload once, decoded in parallel; a partial restore reads only the ranges it
//! needs. Runs of zero blocks become holes again.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use ironcore_chunkstore::{ArchiveReader, ChunkSource, CryptKey, Datastore, Manifest};
use ironcore_types::SnapshotRef;
use serde::Serialize;
use tracing::warn;

use crate::beneath::Beneath;
use crate::restore_payload::PayloadCursor;
use crate::restore_plan::RestorePlan;
use crate::restorer::Restorer;
use crate::tree::{META_ARCHIVE, PAYLOAD_ARCHIVE};
use crate::tree_format::{Entry, decode_entries};
use crate::{ClientError, Result};

/// What a tree restore restores, and what it may create.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Just this file or subtree (a path relative to the backed-up root); the whole tree when
    /// `None`.
    pub only: Option<String>,
    /// Create character and block device nodes. Off by default: a device node gives access to
    /// the device to whoever may open it, so an archive (which may come from anyone who could
    /// write the datastore) must not make one unless asked. Takes root as well; without it
    /// each device node is skipped with a warning.
    pub device_nodes: bool,
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Links and special files created.
    pub others: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Non-fatal problems, one line each: entries skipped (naming them and saying why), owners
    /// that need root, metadata that could not be set.
    pub warnings: Vec<String>,
}

/// Maps an I/O error at `path` to [`ClientError::DestinationNotWritable`].
pub(crate) fn dest_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::DestinationNotWritable {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a snapshot's entry list.
pub fn read_entries(
    ds: &Arc<Datastore>,
    snapshot: &SnapshotRef,
    key: Option<&CryptKey>,
) -> Result<Vec<Entry>> {
    let manifest = ds.open_manifest(snapshot, key)?;
    read_entries_from(ds.clone(), &manifest, key)
}

/// Reads the entry list of the tree snapshot `manifest` describes, reading chunks from
/// `source`. The manifest must have been checked against `key` (see
/// [`ironcore_chunkstore::open_manifest_bytes`]).
pub fn read_entries_from(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    key: Option<&CryptKey>,
) -> Result<Vec<Entry>> {
    let reader = ArchiveReader::open(source, manifest, META_ARCHIVE, key)?;
    let mut bytes = Vec::with_capacity(reader.size() as usize);
    reader.copy_to(&mut bytes)?;
    decode_entries(&bytes)
}

/// Checks that `target` is a new or empty directory, and creates it if it is new.
fn prepare_target(target: &Path) -> Result<()> {
    match fs::read_dir(target) {
        Ok(d) => {
            if d.into_iter().next().is_some() {
                return Err(ClientError::DestinationExists {
                    path: target.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(target).map_err(dest_err(target))?;
        }
        Err(e) => return Err(dest_err(target)(e)),
    }
    Ok(())
}

/// Restores `snapshot` into `target`, which must not exist or be empty. With `only`, restores
/// just that file or subtree (a path relative to the backed-up root). Device nodes are not
/// created; see [`restore_tree_with`].
pub fn restore_tree(
    ds: &Arc<Datastore>,
    snapshot: &SnapshotRef,
    target: &Path,
    key: Option<&CryptKey>,
    only: Option<&str>,
) -> Result<RestoreReport> {
    let options = RestoreOptions {
        only: only.map(str::to_string),
        ..RestoreOptions::default()
    };
    restore_tree_with(ds, snapshot, target, key, &options)
}

/// Restores `snapshot` into `target`, which must not exist or be empty, as `options` say.
pub fn restore_tree_with(
    ds: &Arc<Datastore>,
    snapshot: &SnapshotRef,
    target: &Path,
    key: Option<&CryptKey>,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    prepare_target(target)?;
    let manifest = ds.open_manifest(snapshot, key)?;
    restore_prepared(ds.clone(), &manifest, target, key, options, &mut |_, _| {})
}

/// Restores the tree snapshot `manifest` describes, reading chunks from `source`, into
/// `target` as [`restore_tree`] does. The manifest must have been checked against `key` (see
/// [`ironcore_chunkstore::open_manifest_bytes`]). `progress` is called with the bytes of
/// content written so far and in all.
pub fn restore_tree_from(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    target: &Path,
    key: Option<&CryptKey>,
    only: Option<&str>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    let options = RestoreOptions {
        only: only.map(str::to_string),
        ..RestoreOptions::default()
    };
    restore_tree_from_with(source, manifest, target, key, &options, progress)
}

/// Restores the tree snapshot `manifest` describes, reading chunks from `source`, into
/// `target` as [`restore_tree_with`] does; otherwise as [`restore_tree_from`].
pub fn restore_tree_from_with(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    target: &Path,
    key: Option<&CryptKey>,
    options: &RestoreOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    prepare_target(target)?;
    restore_prepared(source, manifest, target, key, options, progress)
}

fn restore_prepared(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    target: &Path,
    key: Option<&CryptKey>,
    options: &RestoreOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    let entries = read_entries_from(source.clone(), manifest, key)?;
    let is_root = rustix::process::geteuid().is_root();
    let plan = RestorePlan::new(&entries, options, is_root)?;
    let payload = ArchiveReader::open(source, manifest, PAYLOAD_ARCHIVE, key)?;
    // Whole tree: one sequential, parallel-decoded pass over the payload.
    let cursor = options
        .only
        .is_none()
        .then(|| PayloadCursor::new(payload.stream()));
    let restorer = Restorer {
        entries: &entries,
        target,
        fs: Beneath::open(target).map_err(|e| dest_err(target)(e.into()))?,
        payload,
        cursor,
        progress,
        is_root,
    };
    let mut report = restorer.run(&plan)?;
    let mut owners = plan.steps().iter().map(|s| entries[s.index].uid);
    let first = owners.next();
    if !is_root && owners.any(|u| Some(u) != first) {
        report
            .warnings
            .push("owners were not restored: that needs root".to_string());
    }
    for w in &report.warnings {
        warn!("{w}");
    }
    Ok(report)
}
