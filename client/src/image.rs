//! Backing up and restoring a disk image (a raw file or a block device) as one archive of
//! fixed-size chunks (4 MiB by default), so an unchanged region of the disk is an unchanged
//! chunk and the image can be read at any offset.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use ironcore_chunkstore::{
    ArchiveReader, ChunkSource, CryptKey, DEFAULT_FIXED_CHUNK, Datastore, Manifest, SessionStats,
    StreamSession,
};
use ironcore_types::SnapshotRef;

use crate::{ClientError, Result};

/// What an image backup did.
#[derive(Clone, Debug)]
pub struct ImageReport {
    /// The committed manifest.
    pub manifest: Manifest,
    /// Chunk counters.
    pub stats: SessionStats,
}

/// Writes the image at `source` into `session` as archive `name` (for example
/// `drive-scsi0.img`) in [`DEFAULT_FIXED_CHUNK`]-byte chunks; the caller commits. Returns the
/// bytes read.
pub fn write_image(
    session: &mut StreamSession,
    source: &Path,
    name: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let file = File::open(source).map_err(unreachable(source))?;
    write_image_file(session, file, source, name, progress)
}

fn unreachable(source: &Path) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |e| ClientError::SourceNotReachable {
        path: source.to_path_buf(),
        source: e,
    }
}

fn write_image_file(
    session: &mut StreamSession,
    mut file: File,
    source: &Path,
    name: &str,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let mut writer = session.fixed_writer(name, DEFAULT_FIXED_CHUNK)?;
    let mut buf = vec![0u8; DEFAULT_FIXED_CHUNK as usize];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(unreachable(source)(e)),
        };
        writer.append(&buf[..n])?;
        total += n as u64;
        progress(n as u64);
    }
    writer.finish()?;
    Ok(total)
}

/// Backs up the image at `source` as archive `name` (for example `drive-scsi0.img`).
pub fn backup_image(
    ds: &Arc<Datastore>,
    source: &Path,
    name: &str,
    snapshot: SnapshotRef,
    key: Option<CryptKey>,
) -> Result<ImageReport> {
    let file = File::open(source).map_err(unreachable(source))?;
    let mut session = ds.begin_backup(snapshot, key)?;
    write_image_file(session.stream(), file, source, name, &mut |_| {})?;
    let stats = session.stats();
    Ok(ImageReport {
        manifest: session.commit()?,
        stats,
    })
}

/// Restores archive `name` of `snapshot` to `target` (a new file, or an existing block device
/// or file that is overwritten from the start). Zero chunks become holes in a new file.
pub fn restore_image(
    ds: &Arc<Datastore>,
    snapshot: &SnapshotRef,
    name: &str,
    target: &Path,
    key: Option<&CryptKey>,
) -> Result<u64> {
    let manifest = ds.open_manifest(snapshot, key)?;
    restore_image_from(ds.clone(), &manifest, name, target, key, &mut |_| {})
}

/// Restores archive `name` of the snapshot `manifest` describes, reading chunks from `source`,
/// to `target` as [`restore_image`] does. The manifest must have been checked against `key`
/// (see [`ironcore_chunkstore::open_manifest_bytes`]). Returns the bytes written.
pub fn restore_image_from(
    source: Arc<dyn ChunkSource>,
    manifest: &Manifest,
    name: &str,
    target: &Path,
    key: Option<&CryptKey>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let not_writable = |e| ClientError::DestinationNotWritable {
        path: target.to_path_buf(),
        source: e,
    };
    let reader = ArchiveReader::open(source, manifest, name, key)?;
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map_err(not_writable)?;
    let mut written = 0u64;
    for chunk in reader.stream() {
        let chunk = chunk?;
        if chunk.iter().all(|b| *b == 0) {
            out.seek(SeekFrom::Current(chunk.len() as i64))
                .map_err(not_writable)?;
        } else {
            out.write_all(&chunk).map_err(not_writable)?;
        }
        written += chunk.len() as u64;
        progress(chunk.len() as u64);
    }
    let is_regular = out.metadata().map(|m| m.is_file()).unwrap_or(false);
    if is_regular {
        out.set_len(written).map_err(not_writable)?;
    }
    out.sync_all().map_err(not_writable)?;
    Ok(written)
}
