//! The chunk directory: one file per chunk under `.chunks/<first 2 hex>/<64 hex>`.
//!
//! Two hex digits make 256 directories, created as chunks arrive. Datastores created before
//! used four (65,536 directories, PBS' layout) and have no `.chunks/.layout` file; they keep
//! that layout. With four, a datastore of a few thousand chunks had a directory for nearly every
//! chunk: 2,635 directories, 10.8 MB, for the 2,676 chunks of the reference set. Two keep a
//! directory at about 40,000 chunks per 10 million, which ext4's and XFS's hashed directories
//! look up as fast.
//!
//! Write ordering (DESIGN.md §4, "durable before referenced"): a chunk is written to a unique
//! temporary file in its final directory and renamed into place; nothing is synced per chunk.
//! Before anything that references new chunks is committed, [`ChunkDir::sync`] flushes the whole
//! file system once (`syncfs`), which makes every written chunk and every rename durable in one
//! call — far faster than one fsync per chunk, with the same guarantee at the commit point.
//!
//! A chunk file shorter than an envelope header (left by a crash before the sync) counts as
//! absent and is rewritten by the next insert. Inserts and the GC sweep take a per-shard lock
//! around "check and touch" and "check and delete", so a sweep can never delete a chunk that an
//! insert just found and re-used.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use ironcore_types::ChunkId;

use crate::chunk_buf::{ChunkBuf, DIRECT_ALIGN};
use crate::envelope::HEADER_LEN;

const SHARDS: usize = 64;
/// Hex digits of a chunk's id naming its directory in a datastore created by this version.
const PREFIX_HEX: usize = 2;
/// Hex digits naming it in a datastore without a layout file (created by an earlier version).
const LEGACY_PREFIX_HEX: usize = 4;
/// The file in `.chunks` that records [`PREFIX_HEX`] for a new datastore.
const LAYOUT_FILE: &str = ".layout";

/// What an insert did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The chunk was new; this many bytes were written.
    New(u64),
    /// The chunk was already stored (its timestamp was refreshed for GC).
    Existing,
}

/// A chunk file as listed from disk.
#[derive(Clone, Copy, Debug)]
pub struct ChunkFile {
    /// The chunk.
    pub id: ChunkId,
    /// Last write or re-use.
    pub mtime: SystemTime,
    /// Stored bytes.
    pub size: u64,
}

/// What [`ChunkDir::list`] found.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Chunk files.
    pub chunks: Vec<ChunkFile>,
    /// Leftover temporary files and their modification times.
    pub temps: Vec<(PathBuf, SystemTime)>,
}

/// The chunk files of one datastore.
#[derive(Debug)]
pub struct ChunkDir {
    base: PathBuf,
    /// Hex digits of an id naming its directory (see the module documentation).
    prefix_hex: usize,
    bad: PathBuf,
    shards: Vec<Mutex<()>>,
    tmp_counter: AtomicU64,
}

/// Starts writing `file`'s `len` new bytes to the disk now, without waiting for it
/// (`posix_fadvise(DONTNEED)` starts write-back of dirty pages; pages still being written stay
/// cached). Without it the kernel keeps a backup's chunks dirty until the commit's `syncfs`,
/// which then writes them all while the client waits (about 1.5 s of a 9 s initial backup of
/// the reference set here); with it the disk writes them while the backup goes on. Advice only:
/// failures are ignored, and the commit's `syncfs` still makes everything durable.
fn start_writeback(file: &File, len: usize) {
    if let Some(len) = std::num::NonZeroU64::new(len as u64) {
        let _ = rustix::fs::fadvise(file, 0, Some(len), rustix::fs::Advice::DontNeed);
    }
}

thread_local! {
    /// This thread's aligned buffer for direct writes, grown to the largest chunk it wrote.
    static ALIGNED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Creates the new file `tmp` holding `bytes`. Written around the page cache (`O_DIRECT`)
/// where the file system allows it: a chunk is written once and rarely read back soon, and a
/// buffered write costs the kernel a page-cache page per 4 KiB to allocate, fill, write back
/// and reclaim. On the reference machine an initial backup of the reference data set (1.4 GiB
/// of chunks) took 2.60-2.66 s of the node's CPU written direct against 2.88-3.16 s buffered,
/// and 7.3-7.4 s against 7.7-8.2 s in all. Elsewhere (tmpfs) it is written buffered and its
/// write-back started at once. Either way nothing is durable before the commit's `syncfs`.
/// `padded` is `bytes` already padded at an aligned address (see [`ChunkBuf`]), when the
/// caller has it so.
fn write_new(tmp: &Path, bytes: &[u8], padded: Option<&[u8]>) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    match rustix::fs::open(tmp, flags | OFlags::DIRECT, Mode::from_raw_mode(0o666)) {
        Ok(fd) => match write_direct(&File::from(fd), bytes, padded) {
            Ok(()) => return Ok(()),
            // The file system took O_DIRECT at open but not for writing: write it buffered.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(e),
        },
        Err(rustix::io::Errno::INVAL) => {}
        Err(e) => return Err(e.into()),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    file.write_all(bytes)?;
    start_writeback(&file, bytes.len());
    Ok(())
}

/// Writes `bytes` to the empty `file` opened with `O_DIRECT`: from `padded` when given, else
/// through an aligned buffer, padded to the alignment with zeros; then cut back to its length.
fn write_direct(file: &File, bytes: &[u8], padded: Option<&[u8]>) -> io::Result<()> {
    if let Some(block) = padded {
        (&*file).write_all(block)?;
        if block.len() != bytes.len() {
            file.set_len(bytes.len() as u64)?;
        }
        return Ok(());
    }
    let padded = bytes.len().div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    ALIGNED.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < padded + DIRECT_ALIGN {
            *buf = vec![0u8; padded + DIRECT_ALIGN];
        }
        let off = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let block = &mut buf[off..off + padded];
        block[..bytes.len()].copy_from_slice(bytes);
        block[bytes.len()..].fill(0);
        (&*file).write_all(block)?;
        if padded != bytes.len() {
            file.set_len(bytes.len() as u64)?;
        }
        Ok(())
    })
}

impl ChunkDir {
    /// The chunk directory of the datastore at `root` (created by [`ChunkDir::create`]).
    pub fn new(root: &Path) -> Self {
        let base = root.join(".chunks");
        let prefix_hex = fs::read_to_string(base.join(LAYOUT_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|n| (1..=8).contains(n))
            .unwrap_or(LEGACY_PREFIX_HEX);
        Self {
            base,
            prefix_hex,
            bad: root.join(".bad"),
            shards: (0..SHARDS).map(|_| Mutex::new(())).collect(),
            tmp_counter: AtomicU64::new(0),
        }
    }

    /// Creates the directories of a new datastore, with its layout file; an existing one is
    /// left as it is.
    pub fn create(root: &Path) -> io::Result<()> {
        let base = root.join(".chunks");
        if !base.is_dir() {
            fs::create_dir_all(root)?;
            // Written in a directory renamed into place, so no datastore is ever seen without
            // its layout file.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let tmp = root.join(format!(".chunks.new.{}.{n}", std::process::id()));
            fs::create_dir(&tmp)?;
            fs::write(tmp.join(LAYOUT_FILE), format!("{PREFIX_HEX}\n"))?;
            if let Err(e) = fs::rename(&tmp, &base) {
                let _ = fs::remove_dir_all(&tmp);
                // Another process created it first.
                if !base.is_dir() {
                    return Err(e);
                }
            }
        }
        fs::create_dir_all(root.join(".bad"))
    }

    /// The base directory (`.chunks`).
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Where chunk `id` lives.
    pub fn path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.base.join(&hex[..self.prefix_hex]).join(hex)
    }

    fn lock(&self, id: &ChunkId) -> MutexGuard<'_, ()> {
        let shard = id.as_bytes()[0] as usize % SHARDS;
        // A poisoned shard only means another thread panicked while holding it; the guarded
        // state is the file system, which stays consistent, so the lock is still usable.
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// If the chunk is stored (and not a torn leftover), refreshes its timestamp so GC sees it
    /// as in use, and returns true.
    pub fn touch_if_present(&self, id: &ChunkId) -> io::Result<bool> {
        let path = self.path(id);
        let _guard = self.lock(id);
        match fs::metadata(&path) {
            Ok(m) if m.len() >= HEADER_LEN as u64 => {
                File::open(&path)?.set_modified(SystemTime::now())?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `bytes` as chunk `id` unless it is already stored.
    pub fn insert(&self, id: &ChunkId, bytes: &[u8]) -> io::Result<Inserted> {
        self.insert_with(id, bytes, None)
    }

    /// [`ChunkDir::insert`] of a chunk received into a [`ChunkBuf`]: written from where it is,
    /// without another copy, where the file system takes direct writes.
    pub fn insert_buf(&self, id: &ChunkId, mut buf: ChunkBuf) -> io::Result<Inserted> {
        let len = buf.len();
        match buf.pad_for_direct_write() {
            Some(block) => self.insert_with(id, &block[..len], Some(block)),
            None => self.insert_with(id, buf.as_slice(), None),
        }
    }

    fn insert_with(
        &self,
        id: &ChunkId,
        bytes: &[u8],
        padded: Option<&[u8]>,
    ) -> io::Result<Inserted> {
        if self.touch_if_present(id)? {
            return Ok(Inserted::Existing);
        }
        let path = self.path(id);
        let dir = path.parent().unwrap_or(&self.base);
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{}.{}.{n}.tmp", id.to_hex(), std::process::id()));
        let written = match write_new(&tmp, bytes, padded) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Only the prefix directory may be created here, never `.chunks` or the root:
                // if those are gone the datastore is unmounted or removed, and creating them
                // would write backups into the empty mount point.
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                write_new(&tmp, bytes, padded)
            }
            other => other,
        };
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let _guard = self.lock(id);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Inserted::New(bytes.len() as u64))
    }

    /// Reads chunk `id`'s stored bytes.
    pub fn read(&self, id: &ChunkId) -> io::Result<Vec<u8>> {
        fs::read(self.path(id))
    }

    /// Deletes chunk `id` (a copy handed on to the nodes that keep it); `false` if it was not
    /// here.
    pub fn remove(&self, id: &ChunkId) -> io::Result<bool> {
        let _guard = self.lock(id);
        match fs::remove_file(self.path(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes chunk `id` if it was last written or re-used before `cutoff`. Returns the bytes
    /// freed, or `None` when it was kept (or was already gone).
    pub fn remove_if_older(&self, id: &ChunkId, cutoff: SystemTime) -> io::Result<Option<u64>> {
        let path = self.path(id);
        let _guard = self.lock(id);
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if meta.modified()? >= cutoff {
            return Ok(None);
        }
        fs::remove_file(&path)?;
        Ok(Some(meta.len()))
    }

    /// Moves a corrupt chunk out of the way (to `.bad/<hex>.<n>.bad`) so the next backup that
    /// has the data stores it afresh. Returns the new path.
    pub fn move_aside(&self, id: &ChunkId) -> io::Result<PathBuf> {
        let path = self.path(id);
        let _guard = self.lock(id);
        fs::create_dir_all(&self.bad)?;
        for n in 0.. {
            let dest = self.bad.join(format!("{}.{n}.bad", id.to_hex()));
            if !dest.exists() {
                fs::rename(&path, &dest)?;
                return Ok(dest);
            }
        }
        unreachable!("the loop above only ends by returning")
    }

    /// Every chunk file, and every leftover temporary file with its age.
    pub(crate) fn list(&self) -> io::Result<Listing> {
        let mut chunks = Vec::new();
        let mut tmps = Vec::new();
        for prefix in fs::read_dir(&self.base)? {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(prefix.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if name.ends_with(".tmp") {
                    tmps.push((entry.path(), meta.modified()?));
                } else if let Ok(id) = name.parse::<ChunkId>() {
                    chunks.push(ChunkFile {
                        id,
                        mtime: meta.modified()?,
                        size: meta.len(),
                    });
                }
            }
        }
        Ok(Listing {
            chunks,
            temps: tmps,
        })
    }

    /// Makes every chunk written so far durable: one `syncfs` of the datastore's file system.
    pub fn sync(&self) -> io::Result<()> {
        let dir = File::open(&self.base)?;
        rustix::fs::syncfs(&dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[test]
    fn new_datastores_use_two_hex_digits_and_earlier_ones_keep_four() {
        let bytes = vec![7u8; 200];
        let new = tempfile::tempdir().unwrap();
        ChunkDir::create(new.path()).unwrap();
        ChunkDir::create(new.path()).unwrap();
        let cd = ChunkDir::new(new.path());
        cd.insert(&id(0xab), &bytes).unwrap();
        let hex = id(0xab).to_hex();
        assert_eq!(cd.path(&id(0xab)), new.path().join(".chunks/ab").join(&hex));
        assert_eq!(ChunkDir::new(new.path()).read(&id(0xab)).unwrap(), bytes);

        // An earlier datastore: `.chunks` without a layout file.
        let old = tempfile::tempdir().unwrap();
        fs::create_dir_all(old.path().join(".chunks").join(&hex[..4])).unwrap();
        fs::write(
            old.path().join(".chunks").join(&hex[..4]).join(&hex),
            &bytes,
        )
        .unwrap();
        ChunkDir::create(old.path()).unwrap();
        let cd = ChunkDir::new(old.path());
        assert_eq!(cd.read(&id(0xab)).unwrap(), bytes);
        assert!(cd.touch_if_present(&id(0xab)).unwrap());
        cd.insert(&id(0xcd), &bytes).unwrap();
        assert!(
            cd.path(&id(0xcd))
                .starts_with(old.path().join(".chunks/cdcd"))
        );
        assert_eq!(cd.list().unwrap().chunks.len(), 2);
        assert!(!old.path().join(".chunks").join(LAYOUT_FILE).exists());
        // Nothing is left beside the directories a datastore has.
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(new.path()), [".bad", ".chunks"]);
    }

    #[test]
    fn insert_is_idempotent_and_rewrites_torn_files() {
        let dir = tempfile::tempdir().unwrap();
        ChunkDir::create(dir.path()).unwrap();
        let cd = ChunkDir::new(dir.path());
        let bytes = vec![7u8; 200];
        assert_eq!(cd.insert(&id(1), &bytes).unwrap(), Inserted::New(200));
        assert_eq!(cd.insert(&id(1), &bytes).unwrap(), Inserted::Existing);
        fs::write(cd.path(&id(1)), b"torn").unwrap();
        assert_eq!(cd.insert(&id(1), &bytes).unwrap(), Inserted::New(200));
        assert_eq!(cd.read(&id(1)).unwrap(), bytes);
        let listing = cd.list().unwrap();
        assert_eq!(listing.chunks.len(), 1);
        assert!(listing.temps.is_empty());
        cd.sync().unwrap();
    }

    #[test]
    fn chunks_of_every_size_are_written_whole_direct_or_buffered() {
        // /var/tmp is on a disk (direct writes); the temp dir may be tmpfs (buffered).
        for base in [Path::new("/var/tmp"), &std::env::temp_dir()] {
            let dir = tempfile::tempdir_in(base).unwrap();
            ChunkDir::create(dir.path()).unwrap();
            let cd = ChunkDir::new(dir.path());
            let sizes = [1, 4095, 4096, 4097, 100_000, 1 << 20, (4 << 20) + 3, 1000];
            for (i, size) in sizes.into_iter().enumerate() {
                let bytes: Vec<u8> = (0..size).map(|j| (j * 7 + i) as u8).collect();
                let id = id(100 + i as u8);
                assert_eq!(cd.insert(&id, &bytes).unwrap(), Inserted::New(size as u64));
                assert!(cd.read(&id).unwrap() == bytes, "size {size}");
                assert_eq!(fs::metadata(cd.path(&id)).unwrap().len(), size as u64);
            }
            assert!(cd.list().unwrap().temps.is_empty());
        }
    }

    #[test]
    fn received_chunks_are_written_whole_from_their_buffer() {
        for base in [Path::new("/var/tmp"), &std::env::temp_dir()] {
            let dir = tempfile::tempdir_in(base).unwrap();
            ChunkDir::create(dir.path()).unwrap();
            let cd = ChunkDir::new(dir.path());
            for (i, size) in [0usize, 1, 4096, 4097, 1 << 20, 300_001]
                .into_iter()
                .enumerate()
            {
                let bytes: Vec<u8> = (0..size).map(|j| (j * 13 + i) as u8).collect();
                // Announced right, announced short (the buffer grows and may move off the
                // alignment: written by copying then).
                for announced in [size, size / 3] {
                    let mut buf = ChunkBuf::with_capacity(announced);
                    for piece in bytes.chunks(16_384) {
                        buf.extend_from_slice(piece);
                    }
                    assert!(buf.as_slice() == bytes);
                    let id = id(200 + i as u8);
                    let _ = fs::remove_file(cd.path(&id));
                    assert_eq!(cd.insert_buf(&id, buf).unwrap(), Inserted::New(size as u64));
                    assert!(cd.read(&id).unwrap() == bytes, "size {size}");
                }
            }
            assert!(cd.list().unwrap().temps.is_empty());
        }
    }

    #[test]
    fn remove_respects_the_cutoff_and_move_aside_frees_the_name() {
        let dir = tempfile::tempdir().unwrap();
        ChunkDir::create(dir.path()).unwrap();
        let cd = ChunkDir::new(dir.path());
        cd.insert(&id(2), &[1u8; 100]).unwrap();
        let past = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(cd.remove_if_older(&id(2), past).unwrap(), None);
        let future = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(cd.remove_if_older(&id(2), future).unwrap(), Some(100));
        cd.insert(&id(3), &[1u8; 100]).unwrap();
        let moved = cd.move_aside(&id(3)).unwrap();
        assert!(moved.exists());
        assert!(!cd.path(&id(3)).exists());
    }
}
