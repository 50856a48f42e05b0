//! Restoring a tree snapshot: the whole tree, or one file or subtree, into a new directory.
//!
//! Content is written first (directories, files, links, special files in archive order), then
//! metadata is applied children-before-parents so that setting a directory's time is not undone
//! by writing into it. A whole-tree restore streams the payload once, decoded in parallel; a
//! partial restore reads only the ranges it needs. Runs of zero blocks become holes again.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Permissions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use ironcore_chunkstore::{ArchiveReader, ChunkSource, ChunkStream, CryptKey, Datastore, Manifest};
use ironcore_types::SnapshotRef;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, UTIME_OMIT};
use serde::Serialize;
use tracing::warn;

use crate::tree::{META_ARCHIVE, PAYLOAD_ARCHIVE};
use crate::tree_format::{Entry, EntryKind, decode_entries};
use crate::{ClientError, Result};

const HOLE_BLOCK: usize = 4096;

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
    /// Non-fatal problems (owners or devices that need root, and the like).
    pub warnings: Vec<String>,
}

fn dest_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
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

/// Writes `size` bytes from `next` (a source of byte slices) into a new file, leaving holes for
/// whole zero blocks.
struct Sink {
    file: File,
    written: u64,
    pending_hole: bool,
}

impl Sink {
    /// Writes `data`: each run of whole zero blocks is skipped (a hole), each run of other
    /// blocks is written with one call (block by block, a full restore of the reference set
    /// made half a million write calls).
    fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        let is_hole = |b: &[u8]| b.len() == HOLE_BLOCK && b.iter().all(|x| *x == 0);
        let mut rest = data;
        while !rest.is_empty() {
            let hole = is_hole(&rest[..rest.len().min(HOLE_BLOCK)]);
            let run = rest
                .chunks(HOLE_BLOCK)
                .take_while(|b| is_hole(b) == hole)
                .map(<[u8]>::len)
                .sum::<usize>();
            if hole {
                self.file.seek(SeekFrom::Current(run as i64))?;
            } else {
                self.file.write_all(&rest[..run])?;
            }
            self.pending_hole = hole;
            self.written += run as u64;
            rest = &rest[run..];
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        if self.pending_hole {
            self.file.set_len(self.written)?;
        }
        Ok(())
    }
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
/// just that file or subtree (a path relative to the backed-up root).
pub fn restore_tree(
    ds: &Arc<Datastore>,
    snapshot: &SnapshotRef,
    target: &Path,
    key: Option<&CryptKey>,
    only: Option<&str>,
) -> Result<RestoreReport> {
    prepare_target(target)?;
    let manifest = ds.open_manifest(snapshot, key)?;
    restore_prepared(ds.clone(), &manifest, target, key, only, &mut |_, _| {})
}

/// Restores the tree snapshot `manifest` describes, reading chunks from `source`, into
/// `target` as [`restore_tree`] does. The manifest must have been checked against `key` (see
/// [`ironcore_chunkstore::open_manifest_bytes`]).
pub fn restore_tree_from(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    target: &Path,
    key: Option<&CryptKey>,
    only: Option<&str>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    prepare_target(target)?;
    restore_prepared(source, manifest, target, key, only, progress)
}

fn restore_prepared(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    target: &Path,
    key: Option<&CryptKey>,
    only: Option<&str>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport> {
    let entries = read_entries_from(source.clone(), manifest, key)?;
    let selected: Vec<&Entry> = match only {
        None => entries.iter().collect(),
        Some(p) => {
            let p = p.trim_matches('/').as_bytes();
            let sel: Vec<&Entry> = entries
                .iter()
                .filter(|e| {
                    e.path == p || (e.path.starts_with(p) && e.path.get(p.len()) == Some(&b'/'))
                })
                .collect();
            if sel.is_empty() {
                return Err(ClientError::NotInSnapshot(
                    String::from_utf8_lossy(p).into_owned(),
                ));
            }
            sel
        }
    };
    // (bytes of file content restored so far, of all selected files)
    let total: u64 = selected
        .iter()
        .map(|e| match e.kind {
            EntryKind::File { size, .. } => size,
            _ => 0,
        })
        .sum();
    let mut done = 0u64;
    let by_path: HashMap<&[u8], &Entry> = entries.iter().map(|e| (e.path.as_slice(), e)).collect();
    let mut payload = ArchiveReader::open(source, manifest, PAYLOAD_ARCHIVE, key)?;
    let mut report = RestoreReport::default();
    let path_of = |e: &Entry| -> PathBuf {
        if e.path.is_empty() {
            target.to_path_buf()
        } else {
            target.join(OsStr::from_bytes(&e.path))
        }
    };

    // Whole tree: one sequential, parallel-decoded pass over the payload.
    let mut cursor = only.is_none().then(|| PayloadCursor {
        stream: payload.stream(),
        carry: Bytes::new(),
        at: 0,
        pos: 0,
    });

    for e in &selected {
        let path = path_of(e);
        if let Some(parent) = path.parent()
            && only.is_some()
            && !parent.exists()
        {
            fs::create_dir_all(parent).map_err(dest_err(parent))?;
        }
        match &e.kind {
            EntryKind::Dir => {
                if path != target {
                    fs::create_dir(&path).map_err(dest_err(&path))?;
                }
                report.dirs += 1;
            }
            EntryKind::File { offset, size } => {
                let file = File::create(&path).map_err(dest_err(&path))?;
                let mut sink = Sink {
                    file,
                    written: 0,
                    pending_hole: false,
                };
                match cursor.as_mut() {
                    // Files are laid out in entry order, but a backup that reused unchanged
                    // files leaves bytes between them that no entry names: skip those.
                    Some(c) if *offset >= c.pos => {
                        c.take(*offset - c.pos, |_| Ok(()))?;
                        c.take(*size, |b| {
                            done += b.len() as u64;
                            progress(done, total);
                            sink.write(b).map_err(dest_err(&path))
                        })?;
                    }
                    _ => {
                        copy_range(&mut payload, *offset, *size, &mut sink, &path)?;
                        done += *size;
                        progress(done, total);
                    }
                }
                sink.finish().map_err(dest_err(&path))?;
                report.files += 1;
                report.bytes += size;
            }
            EntryKind::Symlink { target: t } => {
                std::os::unix::fs::symlink(OsStr::from_bytes(t), &path).map_err(dest_err(&path))?;
                report.others += 1;
            }
            EntryKind::HardLink { target: t } => {
                let first = target.join(OsStr::from_bytes(t));
                if first.exists() {
                    fs::hard_link(&first, &path).map_err(dest_err(&path))?;
                } else if let Some(EntryKind::File { offset, size }) =
                    by_path.get(t.as_slice()).map(|x| &x.kind)
                {
                    // Partial restore without the first name: write the content instead.
                    let file = File::create(&path).map_err(dest_err(&path))?;
                    let mut sink = Sink {
                        file,
                        written: 0,
                        pending_hole: false,
                    };
                    copy_range(&mut payload, *offset, *size, &mut sink, &path)?;
                    sink.finish().map_err(dest_err(&path))?;
                }
                report.others += 1;
            }
            EntryKind::Fifo | EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                let (ft, dev) = match e.kind {
                    EntryKind::CharDevice { rdev } => (FileType::CharacterDevice, rdev),
                    EntryKind::BlockDevice { rdev } => (FileType::BlockDevice, rdev),
                    _ => (FileType::Fifo, 0),
                };
                match rustix::fs::mknodat(CWD, &path, ft, Mode::from_bits_truncate(e.mode), dev) {
                    Ok(()) => report.others += 1,
                    Err(err) => report
                        .warnings
                        .push(format!("could not create '{}': {err}", path.display())),
                }
            }
        }
    }

    // Metadata, children before parents.
    let is_root = rustix::process::geteuid().is_root();
    for e in selected.iter().rev() {
        let path = path_of(e);
        if matches!(e.kind, EntryKind::HardLink { .. }) {
            continue; // shares the inode of its first name
        }
        if is_root && let Err(err) = std::os::unix::fs::lchown(&path, Some(e.uid), Some(e.gid)) {
            report.warnings.push(format!(
                "could not set owner of '{}': {err}",
                path.display()
            ));
        }
        if !matches!(e.kind, EntryKind::Symlink { .. }) {
            fs::set_permissions(&path, Permissions::from_mode(e.mode)).map_err(dest_err(&path))?;
        }
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            },
            last_modification: Timespec {
                tv_sec: e.mtime_sec,
                tv_nsec: i64::from(e.mtime_nsec),
            },
        };
        if let Err(err) = rustix::fs::utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW) {
            report
                .warnings
                .push(format!("could not set time of '{}': {err}", path.display()));
        }
    }
    if !is_root && selected.iter().any(|e| e.uid != selected[0].uid) {
        report
            .warnings
            .push("owners were not restored: that needs root".to_string());
    }
    for w in &report.warnings {
        warn!("{w}");
    }
    Ok(report)
}

/// The payload read once, in order, decoded ahead by worker threads.
struct PayloadCursor {
    stream: ChunkStream,
    carry: Bytes,
    at: usize,
    /// Stream offset of `carry[at]`.
    pos: u64,
}

impl PayloadCursor {
    /// Hands the next `n` bytes to `out`, chunk piece by chunk piece.
    fn take(&mut self, mut n: u64, mut out: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        while n > 0 {
            if self.at == self.carry.len() {
                self.carry = self
                    .stream
                    .next()
                    .ok_or_else(|| ClientError::Format("payload ends early".into()))??;
                self.at = 0;
            }
            let k = (self.carry.len() - self.at).min(usize::try_from(n).unwrap_or(usize::MAX));
            out(&self.carry[self.at..self.at + k])?;
            self.at += k;
            self.pos += k as u64;
            n -= k as u64;
        }
        Ok(())
    }
}

fn copy_range(
    reader: &mut ArchiveReader,
    offset: u64,
    size: u64,
    sink: &mut Sink,
    path: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = offset;
    let end = offset + size;
    while at < end {
        let want = ((end - at) as usize).min(buf.len());
        let n = reader.read_at(at, &mut buf[..want])?;
        if n == 0 {
            return Err(ClientError::Format("payload ends early".into()));
        }
        sink.write(&buf[..n]).map_err(dest_err(path))?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_sink_writes_runs_of_data_and_leaves_whole_zero_blocks_as_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = |n: usize, v: u8| vec![v; n];
        // Data, a 64 KiB hole, data that ends in a partial zero block (written, not a hole),
        // then pieces that end in a hole, so the file is extended to its length at the end.
        let pieces = [
            [
                data(3 * HOLE_BLOCK, 7),
                data(16 * HOLE_BLOCK, 0),
                data(100, 9),
            ]
            .concat(),
            data(HOLE_BLOCK / 2, 0),
            [data(HOLE_BLOCK, 5), data(32 * HOLE_BLOCK, 0)].concat(),
        ];
        let mut sink = Sink {
            file: File::create(&path).unwrap(),
            written: 0,
            pending_hole: false,
        };
        for p in &pieces {
            sink.write(p).unwrap();
        }
        sink.finish().unwrap();
        let want = pieces.concat();
        assert_eq!(fs::read(&path).unwrap(), want);
        let blocks = fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            blocks < want.len() as u64 / 2,
            "{blocks} bytes allocated for {} with 48 hole blocks",
            want.len()
        );
    }
}
