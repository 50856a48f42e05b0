//! Read-ahead for the tree walk.
//!
//! A second thread walks the same tree in the same order a bounded distance ahead of the
//! backup: it lists directories and stats entries, so their metadata is cached when the backup
//! reaches them, and asks the kernel to start reading (`POSIX_FADV_WILLNEED`) the files the
//! backup will read (those the previous snapshot does not cover). The backup's own waits on
//! the disk then overlap with the look-ahead's instead of coming one after another — on a cold
//! cache the walk of many small files and the reading of changed large ones run side by side.
//!
//! It is only a hint: it reads nothing the backup uses, holds no lock the backup needs, and its
//! errors are ignored.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::tree_format::{Entry, EntryKind};
use crate::tree_reuse::PreviousTree;

/// How many entries the look-ahead may be ahead of the backup.
const MAX_ENTRIES_AHEAD: u64 = 4096;
/// How many bytes of files it may have asked the kernel to read beyond what the backup read.
const MAX_BYTES_AHEAD: u64 = 256 << 20;

/// Where the backup is, shared with the look-ahead thread.
#[derive(Debug, Default)]
pub struct Lookahead {
    entries: AtomicU64,
    bytes: AtomicU64,
    stop: AtomicBool,
}

impl Lookahead {
    /// The backup visited one more entry.
    pub fn entry(&self) {
        self.entries.fetch_add(1, Ordering::Relaxed);
    }

    /// The backup read `n` more bytes.
    pub fn read(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// The backup is done (or failed): the look-ahead ends.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Walks `root` like the backup does (sorted, same file system), staying within the bounds
    /// ahead of it. Runs until the walk ends or [`Self::stop`].
    pub fn run(&self, root: &Path, root_dev: u64, previous: Option<&PreviousTree>) {
        let mut walk = Walk {
            ahead: self,
            root_dev,
            previous,
            entries: 0,
            bytes: 0,
        };
        walk.dir(root, Vec::new());
    }
}

struct Walk<'a> {
    ahead: &'a Lookahead,
    root_dev: u64,
    previous: Option<&'a PreviousTree>,
    entries: u64,
    bytes: u64,
}

impl Walk<'_> {
    /// Waits until the backup is close enough; false once it stopped.
    fn pace(&self) -> bool {
        loop {
            if self.ahead.stop.load(Ordering::Relaxed) {
                return false;
            }
            let e = self.ahead.entries.load(Ordering::Relaxed);
            let b = self.ahead.bytes.load(Ordering::Relaxed);
            if self.entries <= e + MAX_ENTRIES_AHEAD && self.bytes <= b + MAX_BYTES_AHEAD {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn dir(&mut self, path: &Path, rel: Vec<u8>) -> bool {
        let Ok(listing) = fs::read_dir(path) else {
            return true;
        };
        let mut names: Vec<_> = listing
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            self.entries += 1;
            if !self.pace() {
                return false;
            }
            let child = path.join(&name);
            let Ok(m) = fs::symlink_metadata(&child) else {
                continue;
            };
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(name.as_bytes());
            if m.is_dir() {
                if m.dev() == self.root_dev && !self.dir(&child, child_rel) {
                    return false;
                }
            } else if m.is_file() && m.len() > 0 && self.will_read(&child_rel, &m) {
                self.bytes += m.len();
                if let Ok(f) = fs::File::open(&child) {
                    let _ = rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::WillNeed);
                }
            }
        }
        true
    }

    /// Whether the backup will read this file (the previous snapshot does not cover it).
    fn will_read(&self, rel: &[u8], m: &fs::Metadata) -> bool {
        let Some(prev) = self.previous else {
            return true;
        };
        let now = Entry {
            path: rel.to_vec(),
            kind: EntryKind::Fifo,
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime_sec: m.mtime(),
            mtime_nsec: m.mtime_nsec() as u32,
        };
        prev.unchanged(rel, &now, m.len()).is_none()
    }
}
