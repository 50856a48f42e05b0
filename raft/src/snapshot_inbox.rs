//! Receiving a snapshot in segments.
//!
//! A snapshot is sent in segments of at most [`SEGMENT`] bytes (each its own RPC, so it never
//! holds the control path for long and no frame limit caps the state machine's size). The
//! receiver stages the segments in a file named by the snapshot's SHA-256, so a transfer that
//! breaks off — a lost connection, a leader restart, this node restarting — resumes where it
//! stopped: a segment that does not continue the staged bytes changes nothing and the answer
//! says from which offset to go on. When every byte is there the digest is checked; a mismatch
//! discards the staged file and the transfer starts over. A complete snapshot is handed over as
//! the staged file itself, never read into memory whole.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::snapshot_file::SnapshotFile;

/// The largest segment a sender puts in one request (on the bulk path, whose frames hold
/// 16 MiB).
pub const SEGMENT: usize = 4 << 20;

/// What [`SnapshotInbox::accept`] made of a segment.
#[derive(Debug)]
pub enum Accepted {
    /// Staged; the sender goes on from this offset.
    Have(u64),
    /// Every byte is there and matches the digest: the whole snapshot, as a file of the inbox
    /// that the caller removes once it has installed it.
    Complete(SnapshotFile),
}

/// The staging directory of incoming snapshots.
#[derive(Debug)]
pub struct SnapshotInbox {
    dir: PathBuf,
    lock: Mutex<()>,
}

impl SnapshotInbox {
    /// Stages snapshots under `dir` (created on first use).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    /// Takes `data`, the bytes at `offset` of the snapshot of `total` bytes whose SHA-256 is
    /// `digest`. Staging a new snapshot drops any other staged one.
    pub fn accept(
        &self,
        digest: &[u8; 32],
        total: u64,
        offset: u64,
        data: &[u8],
    ) -> io::Result<Accepted> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        fs::create_dir_all(&self.dir)?;
        let name = format!("{}.part", hex(digest));
        let path = self.dir.join(&name);
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy() != name {
                let _ = fs::remove_file(entry.path());
            }
        }
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let have = file.metadata()?.len();
        if have > total {
            drop(file);
            fs::remove_file(&path)?;
            return Ok(Accepted::Have(0));
        }
        let mut have = have;
        if offset == have && have + data.len() as u64 <= total && !data.is_empty() {
            file.write_all(data)?;
            have += data.len() as u64;
        }
        if have < total {
            return Ok(Accepted::Have(have));
        }
        drop(file);
        let done = self.dir.join(format!("{}.snap", hex(digest)));
        fs::rename(&path, &done)?;
        let complete = SnapshotFile::open(&done)?;
        if &complete.digest() != digest {
            tracing::warn!(
                total,
                "staged snapshot does not match its digest; starting the transfer over"
            );
            fs::remove_file(&done)?;
            return Ok(Accepted::Have(0));
        }
        Ok(Accepted::Complete(complete))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn digest(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    fn have(a: Accepted) -> u64 {
        match a {
            Accepted::Have(n) => n,
            Accepted::Complete(f) => panic!("complete too early: {f:?}"),
        }
    }

    /// The bytes of a complete snapshot; the file is removed as the server does after
    /// installing it.
    fn complete(a: Accepted) -> Vec<u8> {
        match a {
            Accepted::Complete(f) => {
                let bytes = f.read_at(0, f.len() as usize).unwrap();
                fs::remove_file(f.path()).unwrap();
                bytes
            }
            Accepted::Have(n) => panic!("incomplete at {n}"),
        }
    }

    #[test]
    fn segments_assemble_and_a_broken_transfer_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let d = digest(&data);
        let inbox = SnapshotInbox::new(dir.path());
        assert_eq!(
            have(inbox.accept(&d, 10_000, 0, &data[..4000]).unwrap()),
            4000
        );
        // The receiver restarts; the staged bytes are still there. A sender that starts over
        // at 0 is told to continue at 4000, and nothing is written twice.
        let inbox = SnapshotInbox::new(dir.path());
        assert_eq!(
            have(inbox.accept(&d, 10_000, 0, &data[..4000]).unwrap()),
            4000
        );
        assert_eq!(
            have(inbox.accept(&d, 10_000, 4000, &data[4000..8000]).unwrap()),
            8000
        );
        assert_eq!(
            complete(inbox.accept(&d, 10_000, 8000, &data[8000..]).unwrap()),
            data.clone()
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left staged"
        );
    }

    #[test]
    fn a_corrupt_staging_starts_over_and_a_new_snapshot_replaces_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = SnapshotInbox::new(dir.path());
        let data = vec![7u8; 3000];
        let d = digest(&data);
        inbox.accept(&d, 3000, 0, &data[..1000]).unwrap();
        let mut bad = data.clone();
        bad[1500] ^= 1;
        assert_eq!(
            have(inbox.accept(&d, 3000, 1000, &bad[1000..]).unwrap()),
            0,
            "a digest mismatch discards everything"
        );
        inbox.accept(&d, 3000, 0, &data[..1000]).unwrap();
        let other = vec![9u8; 10];
        assert_eq!(
            complete(inbox.accept(&digest(&other), 10, 0, &other).unwrap()),
            other
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the older staging was dropped"
        );
        // An empty snapshot is complete at once.
        assert_eq!(
            complete(inbox.accept(&digest(&[]), 0, 0, &[]).unwrap()),
            Vec::new()
        );
    }
}
