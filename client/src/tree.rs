//! Backing up a directory tree (a host, or a container's root filesystem) as a tree snapshot.
//!
//! The walk is depth-first with names sorted, stays on the root's file system (so `/proc` and
//! other mounts are not followed), and streams every regular file's content into the payload
//! archive, then writes the entry list into the metadata archive and commits. A file that
//! cannot be read or that changes while it is read is a warning, not a failure, as the manuals
//! describe for backups that complete "with WARNING".

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironcore_chunkstore::{
    ArchiveWriter, ChunkSink, CryptKey, Datastore, IndexChunk, Manifest, SessionStats,
    StreamSession,
};
use ironcore_types::{ChunkId, SnapshotRef};
use serde::Serialize;
use tracing::warn;

use crate::direct_read::{DIRECT_MIN, DirectFile};
use crate::tree_format::{Entry, EntryKind, encode_entry, header};
use crate::tree_reuse::{PrevFile, PreviousTree, Run};
use crate::tree_scan::{TreeScan, will_need};
use crate::{ClientError, Result};

/// The payload archive's name.
pub const PAYLOAD_ARCHIVE: &str = "root.payload";
/// The metadata archive's name.
pub const META_ARCHIVE: &str = "root.meta";

/// What a tree backup did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The committed manifest.
    pub manifest: Manifest,
    /// Chunk counters (new vs re-used).
    pub stats: SessionStats,
    /// Regular files backed up.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (links, devices, FIFOs).
    pub others: u64,
    /// Bytes of file content read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Non-fatal problems, one line each.
    pub warnings: Vec<String>,
}

struct Walker<'w, 'a> {
    scan: &'w TreeScan,
    root_dev: u64,
    payload: &'w mut ArchiveWriter<'a>,
    offset: u64,
    entries: Vec<Entry>,
    inodes: HashMap<(u64, u64), Vec<u8>>,
    warnings: Vec<String>,
    files: u64,
    dirs: u64,
    others: u64,
    progress: &'w mut dyn FnMut(u64),
    /// The previous snapshot, when unchanged files may be reused from it.
    prev: Option<&'w PreviousTree>,
    run: Run,
    /// Whether the sink holds a chunk of the previous payload (asked once per chunk).
    present: HashMap<ChunkId, bool>,
    sink: Arc<dyn ChunkSink>,
    read_bytes: u64,
    reused_files: u64,
    reused_bytes: u64,
}

fn entry(rel: &[u8], kind: EntryKind, m: &fs::Metadata) -> Entry {
    Entry {
        path: rel.to_vec(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_sec: m.mtime(),
        mtime_nsec: m.mtime_nsec() as u32,
    }
}

impl Walker<'_, '_> {
    fn warn(&mut self, msg: String) {
        warn!("{msg}");
        self.warnings.push(msg);
    }

    fn walk(&mut self, path: &Path, rel: Vec<u8>, meta: &fs::Metadata) -> Result<()> {
        self.entries.push(entry(&rel, EntryKind::Dir, meta));
        self.dirs += 1;
        if meta.dev() != self.root_dev {
            return Ok(()); // another file system: keep the mount point, not its content
        }
        let listing = match self.scan.listing(path) {
            Ok(l) => l,
            Err(e) if rel.is_empty() => {
                return Err(ClientError::SourceNotReachable {
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            Err(e) => {
                self.warn(format!("skipped directory '{}': {e}", path.display()));
                return Ok(());
            }
        };
        for (name, m) in listing {
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name.as_bytes());
            let child = path.join(&name);
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    self.warn(format!("skipped '{}': {e}", child.display()));
                    continue;
                }
            };
            let ft = m.file_type();
            if ft.is_dir() {
                self.walk(&child, child_rel, &m)?;
                continue;
            }
            if m.nlink() > 1 {
                if let Some(first) = self.inodes.get(&(m.dev(), m.ino())) {
                    let kind = EntryKind::HardLink {
                        target: first.clone(),
                    };
                    self.entries.push(entry(&child_rel, kind, &m));
                    self.others += 1;
                    continue;
                }
                self.inodes.insert((m.dev(), m.ino()), child_rel.clone());
            }
            if ft.is_file() {
                if let Some(p) = self.reusable(&child_rel, &m)? {
                    if p.size == 0 {
                        let kind = EntryKind::File {
                            offset: self.offset,
                            size: 0,
                        };
                        self.entries.push(entry(&child_rel, kind, &m));
                        self.files += 1;
                        self.reused_files += 1;
                        continue;
                    }
                    if !self.run.continues(p.offset) {
                        self.flush_run()?;
                    }
                    let kind = EntryKind::File {
                        offset: 0,
                        size: p.size,
                    };
                    self.run.items.push((self.entries.len(), p.offset, p.size));
                    self.entries.push(entry(&child_rel, kind, &m));
                    continue;
                }
                self.flush_run()?;
            }
            let kind = if ft.is_file() {
                match self.file(&child, &m)? {
                    Some(kind) => kind,
                    None => continue,
                }
            } else if ft.is_symlink() {
                match fs::read_link(&child) {
                    Ok(t) => EntryKind::Symlink {
                        target: t.as_os_str().as_bytes().to_vec(),
                    },
                    Err(e) => {
                        self.warn(format!("skipped symlink '{}': {e}", child.display()));
                        continue;
                    }
                }
            } else if ft.is_fifo() {
                EntryKind::Fifo
            } else if ft.is_char_device() {
                EntryKind::CharDevice { rdev: m.rdev() }
            } else if ft.is_block_device() {
                EntryKind::BlockDevice { rdev: m.rdev() }
            } else {
                continue; // sockets belong to running processes
            };
            if !matches!(kind, EntryKind::File { .. }) {
                self.others += 1;
            }
            self.entries.push(entry(&child_rel, kind, &m));
        }
        Ok(())
    }

    /// The previous entry of an unchanged file whose payload chunks the sink still holds.
    fn reusable(&mut self, rel: &[u8], m: &fs::Metadata) -> Result<Option<PrevFile>> {
        let Some(prev) = self.prev else {
            return Ok(None);
        };
        let now = entry(rel, EntryKind::Fifo, m);
        let Some(p) = prev.unchanged(rel, &now, m.len()) else {
            return Ok(None);
        };
        if p.size == 0 {
            return Ok(Some(p));
        }
        let Some((_, chunks)) = prev.covering(p.offset, p.offset + p.size) else {
            return Ok(None);
        };
        for id in chunks.iter().map(|c| &c.chunk.id) {
            let held = match self.present.get(id) {
                Some(h) => *h,
                None => {
                    let h = self.sink.has_chunk(id)?;
                    self.present.insert(*id, h);
                    h
                }
            };
            if !held {
                return Ok(None);
            }
        }
        Ok(Some(p))
    }

    /// Adds the waiting unchanged files by reference to the previous payload's chunks.
    fn flush_run(&mut self) -> Result<()> {
        let (Some(prev), Some((start, end))) = (self.prev, self.run.span()) else {
            return Ok(());
        };
        let (base, chunks) = prev.covering(start, end).ok_or_else(|| {
            ClientError::Format("reused range outside the previous payload".into())
        })?;
        let list: Vec<IndexChunk> = chunks.iter().map(|c| c.chunk).collect();
        let new_base = self.offset;
        self.payload.append_known(&list)?;
        self.offset += list.iter().map(|c| c.len).sum::<u64>();
        for (idx, old, size) in self.run.items.drain(..) {
            if let Some(e) = self.entries.get_mut(idx) {
                e.kind = EntryKind::File {
                    offset: new_base + (old - base),
                    size,
                };
            }
            self.files += 1;
            self.reused_files += 1;
            self.reused_bytes += size;
        }
        Ok(())
    }

    /// Streams one regular file into the payload; `None` if it could not be opened. A
    /// datastore error (full, offline, cancelled) ends the backup.
    fn file(&mut self, path: &Path, meta: &fs::Metadata) -> Result<Option<EntryKind>> {
        let asked = self.scan.reading(path);
        // A large file is read direct (opened ahead by the scan), others through the page cache.
        let opened = if meta.len() >= DIRECT_MIN {
            self.scan.read_direct(path)
        } else {
            Ok(None)
        };
        let opened = match opened {
            Ok(Some(d)) => Ok(Source::Direct(d)),
            Ok(None) => File::open(path).map(|f| Source::Buffered(f, ReadAhead { until: asked })),
            Err(e) => Err(e),
        };
        let mut source = match opened {
            Ok(s) => s,
            Err(e) => {
                self.warn(format!("skipped file '{}': {e}", path.display()));
                return Ok(None);
            }
        };
        let start = self.offset;
        loop {
            let read = match &mut source {
                Source::Direct(d) => self.payload.append_with(|buf, max| d.append_to(buf, max)),
                Source::Buffered(f, ahead) => {
                    ahead.advise(f, self.offset - start, meta.len());
                    self.payload.read_from(&*f)
                }
            };
            let n = match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.warn(format!(
                        "file '{}' could not be read to the end: {e}",
                        path.display()
                    ));
                    break;
                }
            };
            self.payload.cut_ready()?;
            self.offset += n as u64;
            self.read_bytes += n as u64;
            (self.progress)(n as u64);
        }
        let size = self.offset - start;
        if size != meta.len() {
            self.warn(format!(
                "file '{}' changed while it was read ({} bytes expected, {size} read); the bytes read were kept",
                path.display(),
                meta.len()
            ));
        }
        self.files += 1;
        Ok(Some(EntryKind::File {
            offset: start,
            size,
        }))
    }
}

/// Where a file's bytes come from.
enum Source {
    /// Read around the page cache, blocks ahead on a thread of its own.
    Direct(DirectFile),
    /// Read through the page cache, asked for ahead of the walker.
    Buffered(File, ReadAhead),
}

/// Keeps the disk reading a file ahead of the walker: the kernel's own read-ahead window is
/// often small (128 KiB by default), so a cold file is otherwise read a request at a time while
/// the chunker waits.
struct ReadAhead {
    /// Asked for up to here.
    until: u64,
}

impl ReadAhead {
    /// How far ahead of the walker the disk is kept reading.
    const WINDOW: u64 = 32 << 20;
    /// Asked for at a time, when the walker has come this close to `until`.
    const STEP: u64 = 4 << 20;

    fn advise(&mut self, f: &File, pos: u64, size: u64) {
        let want = (pos + Self::WINDOW).min(size);
        if want >= self.until + Self::STEP || (want == size && want > self.until) {
            will_need(f, self.until, want - self.until);
            self.until = want;
        }
    }
}

/// What [`write_tree`] wrote: the counts of a tree backup without its session's counters.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TreeWritten {
    /// Regular files backed up.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Other entries (links, devices, FIFOs).
    pub others: u64,
    /// Bytes of file content backed up (read or reused).
    pub bytes: u64,
    /// Unchanged files taken from the previous snapshot without reading them.
    pub reused_files: u64,
    /// Their bytes.
    pub reused_bytes: u64,
    /// Non-fatal problems, one line each.
    pub warnings: Vec<String>,
}

/// Writes the tree `scan` reads into `session` as its payload archive ([`PAYLOAD_ARCHIVE`]) and
/// metadata archive ([`META_ARCHIVE`]); the caller commits. `progress` is called with the
/// bytes read as they are read. Start the scan early ([`TreeScan::start`]): it reads
/// directories ahead while the caller prepares the session.
pub fn write_tree(
    session: &mut StreamSession,
    scan: &TreeScan,
    previous: Option<&PreviousTree>,
    progress: &mut dyn FnMut(u64),
) -> Result<TreeWritten> {
    let meta = scan.root_meta().clone();
    let sink = session.sink();
    // Small files to read are read ahead: every file, or those changed since `previous`.
    match previous.map(PreviousTree::files) {
        None => scan.prefetch_files(Box::new(|_, _| true)),
        Some(files) => scan.prefetch_files(Box::new(move |rel, m| {
            files
                .get(rel)
                .is_none_or(|p| !p.matches(&entry(rel, EntryKind::Fifo, m), m.len()))
        })),
    }
    let mut present = HashMap::new();
    if let Some(prev) = previous {
        // One presence query for every chunk the previous payload has.
        let ids = prev.chunk_ids();
        let held = sink.has_chunks(&ids)?;
        present.extend(ids.into_iter().zip(held));
        // Re-read files are cut into many of the same chunks again: no need to ask about those.
        session.known_present(present.iter().filter(|(_, held)| **held).map(|(id, _)| *id));
    }
    let (entries, written) = {
        let mut payload = session.dynamic_writer(PAYLOAD_ARCHIVE)?;
        if let Some(prev) = previous {
            payload.guide(prev.cut_guide());
        }
        let mut walker = Walker {
            scan,
            root_dev: meta.dev(),
            payload: &mut payload,
            offset: 0,
            entries: Vec::new(),
            inodes: HashMap::new(),
            warnings: Vec::new(),
            files: 0,
            dirs: 0,
            others: 0,
            progress,
            prev: previous,
            run: Run::default(),
            present,
            sink,
            read_bytes: 0,
            reused_files: 0,
            reused_bytes: 0,
        };
        walker.walk(scan.root(), Vec::new(), &meta)?;
        walker.flush_run()?;
        let written = TreeWritten {
            files: walker.files,
            dirs: walker.dirs,
            others: walker.others,
            bytes: walker.read_bytes + walker.reused_bytes,
            reused_files: walker.reused_files,
            reused_bytes: walker.reused_bytes,
            warnings: std::mem::take(&mut walker.warnings),
        };
        let entries = std::mem::take(&mut walker.entries);
        payload.finish()?;
        (entries, written)
    };
    let mut meta_writer = session.dynamic_writer(META_ARCHIVE)?;
    meta_writer.append(&header())?;
    for e in &entries {
        meta_writer.append(&encode_entry(e)?)?;
    }
    meta_writer.finish()?;
    Ok(written)
}

/// Backs up the tree at `source` as snapshot `snapshot`. `progress` is called with the bytes
/// read as they are read.
pub fn backup_tree(
    ds: &Arc<Datastore>,
    source: &Path,
    snapshot: SnapshotRef,
    key: Option<CryptKey>,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupReport> {
    let started = Instant::now();
    let scan = TreeScan::start(source)?;
    let mut session = ds.begin_backup(snapshot, key)?;
    let written = write_tree(session.stream(), &scan, None, progress)?;
    let stats = session.stats();
    let manifest = session.commit()?;
    Ok(BackupReport {
        manifest,
        stats,
        files: written.files,
        dirs: written.dirs,
        others: written.others,
        bytes: written.bytes,
        elapsed: started.elapsed(),
        warnings: written.warnings,
    })
}
