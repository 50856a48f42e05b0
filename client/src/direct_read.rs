//! Reading large files around the page cache (`O_DIRECT`), a few blocks ahead of the walker.
//!
//! A backup reads each file once, and a buffered read of a cold file costs the kernel more
//! than the copy: it allocates a page-cache page for every 4 KiB, fills it, copies it out, and
//! later reclaims it. On the reference machine a cold 1 GiB read took 0.98–1.15 s of system
//! CPU buffered and 0.02–0.08 s direct (`cat` / `dd iflag=direct`), and a backup there is bound
//! by CPU. Direct reads also leave the page cache to the machine's own work.
//!
//! A [`DirectFile`] reads on a thread of its own into a few aligned blocks taken from a
//! [`DirectPool`] (so their memory is mapped once per backup, not once per file) and hands them
//! to the walker in order, which copies them into the archive. When the file system refuses
//! `O_DIRECT` (tmpfs, some FUSE file systems) or a read comes back unaligned, reading goes on
//! through the page cache from the same offset: the bytes are the same either way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Files this large and larger are read direct; smaller ones are read ahead by the scan's
/// helpers through the page cache, many at a time.
pub const DIRECT_MIN: u64 = 1 << 20;
/// Bytes of one direct read.
const BLOCK: usize = 2 << 20;
/// Blocks per file in flight: read, being read, waiting for the walker.
const BLOCKS: usize = 4;
/// Alignment of direct reads' memory, offsets and lengths: a page, which every block device's
/// logical block size divides.
const ALIGN: usize = 4096;

/// A block of memory whose `BLOCK` bytes from `off` are aligned to `ALIGN`.
#[derive(Debug)]
struct Block {
    mem: Vec<u8>,
    off: usize,
}

impl Block {
    fn new() -> Self {
        let mem = vec![0u8; BLOCK + ALIGN];
        let off = mem.as_ptr().align_offset(ALIGN);
        Self { mem, off }
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[self.off..self.off + BLOCK]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.off..self.off + BLOCK]
    }
}

/// Blocks kept between files of one backup.
#[derive(Clone, Debug, Default)]
pub struct DirectPool {
    free: Arc<Mutex<Vec<Block>>>,
}

impl DirectPool {
    /// Opens `path` for direct reading; `Ok(None)` when its file system refuses `O_DIRECT`
    /// (read it through the page cache then).
    pub fn open(&self, path: &Path) -> io::Result<Option<DirectFile>> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::DIRECT;
        let file = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::INVAL) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let blocks: Vec<Block> = {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            (0..BLOCKS)
                .map(|_| free.pop().unwrap_or_else(Block::new))
                .collect()
        };
        // Every block fits in either channel, so neither side ever blocks on a send.
        let (full_tx, full_rx) = sync_channel(BLOCKS);
        let (empty_tx, empty_rx) = sync_channel(BLOCKS);
        for b in blocks {
            let _ = empty_tx.send(b);
        }
        let fallback = path.to_path_buf();
        let reader = std::thread::Builder::new()
            .name("direct-read".into())
            .spawn(move || {
                let held = read_ahead(file, &fallback, &empty_rx, &full_tx);
                // The receiver lives on until the walker is done, so the blocks it still sends
                // back are not lost.
                (held, empty_rx)
            })?;
        Ok(Some(DirectFile {
            full: full_rx,
            empty: Some(empty_tx),
            current: None,
            at: 0,
            len: 0,
            done: false,
            reader: Some(reader),
            pool: self.clone(),
        }))
    }

    fn give_back(&self, blocks: impl IntoIterator<Item = Block>) {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(blocks);
    }
}

/// A filled block: `len` bytes, fewer than `BLOCK` only at the end of the file.
type Filled = io::Result<(Block, usize)>;

/// The reading thread: fills free blocks in file order until the end of the file, an error,
/// or the walker dropping the file. Returns the block it held when it stopped, if any.
fn read_ahead(
    mut file: File,
    path: &Path,
    empty: &Receiver<Block>,
    full: &SyncSender<Filled>,
) -> Option<Block> {
    let mut direct = true;
    let mut pos = 0u64;
    while let Ok(mut block) = empty.recv() {
        let mut len = 0;
        let result = loop {
            if len == BLOCK {
                break Ok(());
            }
            match file.read(&mut block.bytes_mut()[len..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    len += n;
                    pos += n as u64;
                    // A read that ends off the alignment is the file's end, or (rarely) a
                    // short read after which a direct read would fail: go on buffered.
                    if direct && !n.is_multiple_of(ALIGN) {
                        match file.metadata() {
                            Ok(m) if m.len() <= pos => break Ok(()),
                            _ => match buffered_from(path, pos) {
                                Ok(f) => (file, direct) = (f, false),
                                Err(e) => break Err(e),
                            },
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The file system took O_DIRECT at open but not for reading.
                Err(e)
                    if direct
                        && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
                {
                    match buffered_from(path, pos) {
                        Ok(f) => (file, direct) = (f, false),
                        Err(e) => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let last = result.is_err() || len < BLOCK;
        let sent = match result {
            Ok(()) => full.send(Ok((block, len))),
            Err(e) => {
                let _ = full.send(Err(e));
                return Some(block);
            }
        };
        if let Err(back) = sent {
            // The walker is gone: keep the block for the pool.
            return back.0.ok().map(|(b, _)| b);
        }
        if last {
            return None;
        }
    }
    None
}

fn buffered_from(path: &Path, pos: u64) -> io::Result<File> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(pos))?;
    Ok(f)
}

/// A file being read direct, block after block; read it with [`io::Read`].
#[derive(Debug)]
pub struct DirectFile {
    full: Receiver<Filled>,
    empty: Option<SyncSender<Block>>,
    current: Option<Block>,
    at: usize,
    len: usize,
    done: bool,
    reader: Option<JoinHandle<(Option<Block>, Receiver<Block>)>>,
    pool: DirectPool,
}

impl DirectFile {
    /// Appends the file's next bytes (at most `max`) to `buf`; `Ok(0)` at the end. Unlike
    /// [`Read::read_to_end`], this does not zero the room in `buf` before copying into it.
    pub(crate) fn append_to(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let bytes = self.next_bytes(max)?;
        buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    /// Up to `max` of the next bytes, taken; empty at the end.
    fn next_bytes(&mut self, max: usize) -> io::Result<&[u8]> {
        loop {
            if self.current.is_some() && self.at < self.len {
                let (from, n) = (self.at, max.min(self.len - self.at));
                self.at += n;
                return Ok(self
                    .current
                    .as_ref()
                    .map_or(&[][..], |b| &b.bytes()[from..from + n]));
            }
            if self.done {
                return Ok(&[]);
            }
            if let (Some(block), Some(empty)) = (self.current.take(), &self.empty) {
                // Cannot block: the channel holds every block.
                let _ = empty.send(block);
            }
            match self.full.recv() {
                Ok(Ok((block, len))) => {
                    self.done = len < BLOCK;
                    (self.current, self.at, self.len) = (Some(block), 0, len);
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the file's reading thread stopped"));
                }
            }
        }
    }
}

impl Read for DirectFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let bytes = self.next_bytes(out.len())?;
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(bytes.len())
    }
}

impl Drop for DirectFile {
    fn drop(&mut self) {
        // Without our sender the reading thread stops at its next free block; then every
        // block is in `full`, in `current`, held by the thread, or back in `empty`.
        drop(self.empty.take());
        let mut blocks: Vec<Block> = self.current.take().into_iter().collect();
        if let Some(Ok((held, empty))) = self.reader.take().map(JoinHandle::join) {
            blocks.extend(held);
            blocks.extend(empty.try_iter());
        }
        blocks.extend(self.full.try_iter().filter_map(|f| f.ok().map(|(b, _)| b)));
        self.pool.give_back(blocks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + i / 4099) as u8).collect()
    }

    fn read_all(pool: &DirectPool, path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        match pool.open(path).unwrap() {
            Some(mut f) => {
                f.read_to_end(&mut out).unwrap();
            }
            // This file system refuses O_DIRECT: what the caller falls back to.
            None => {
                File::open(path).unwrap().read_to_end(&mut out).unwrap();
            }
        }
        out
    }

    #[test]
    fn files_read_direct_come_back_byte_for_byte_at_every_size() {
        // /var/tmp is on a disk (O_DIRECT works there); the temp dir may be tmpfs.
        for base in [Path::new("/var/tmp"), &std::env::temp_dir()] {
            let dir = tempfile::tempdir_in(base).unwrap();
            let pool = DirectPool::default();
            for size in [
                0,
                1,
                ALIGN - 1,
                ALIGN,
                BLOCK - 1,
                BLOCK,
                BLOCK + 1,
                3 * BLOCK + 777,
                9 * BLOCK,
            ] {
                let path = dir.path().join(format!("f{size}"));
                let data = pattern(size);
                std::fs::write(&path, &data).unwrap();
                assert!(
                    read_all(&pool, &path) == data,
                    "size {size} under {}",
                    base.display()
                );
            }
        }
    }

    #[test]
    fn a_file_dropped_half_read_returns_its_blocks_to_the_pool() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("big");
        let data = pattern(10 * BLOCK);
        std::fs::write(&path, &data).unwrap();
        let pool = DirectPool::default();
        let Some(mut f) = pool.open(&path).unwrap() else {
            return; // no O_DIRECT here: nothing to pool
        };
        let mut head = vec![0u8; BLOCK + 5];
        f.read_exact(&mut head).unwrap();
        assert!(head[..] == data[..BLOCK + 5]);
        drop(f);
        assert_eq!(pool.free.lock().unwrap().len(), BLOCKS);
        // The next file reuses them and reads correctly.
        assert!(read_all(&pool, &path) == data);
        assert_eq!(pool.free.lock().unwrap().len(), BLOCKS);
    }

    #[test]
    fn appending_in_pieces_gives_the_same_bytes_as_reading() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("big");
        let data = pattern(3 * BLOCK + 12_345);
        std::fs::write(&path, &data).unwrap();
        let pool = DirectPool::default();
        let Some(mut f) = pool.open(&path).unwrap() else {
            return; // no O_DIRECT here: the caller reads buffered
        };
        let mut out = Vec::new();
        // Pieces that end inside blocks and across their ends.
        for max in [1, 4095, 1 << 20, BLOCK, 3].into_iter().cycle() {
            let before = out.len();
            let n = f.append_to(&mut out, max).unwrap();
            assert!(n <= max && out.len() == before + n);
            if n == 0 {
                break;
            }
        }
        assert!(out == data);
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_fallback() {
        let pool = DirectPool::default();
        let err = pool
            .open(Path::new("/var/tmp/ironcore-no-such-file"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
