//! A state machine snapshot as a file.
//!
//! ```text
//! "ICSN" | format version (1) | records…
//! record: key length (u32 LE) | key | value length (u32 LE) | value
//! ```
//!
//! The builder streams the keys of one RocksDB view into a file (never the whole state in
//! memory), the leader sends the file in segments, the follower stages it on disk and installs
//! it by reading it back record by record. A file is written once under a temporary name,
//! synced and renamed, and never changed after; its SHA-256 (taken while writing) names its
//! content for the transfer.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const MAGIC: &[u8; 4] = b"ICSN";
const VERSION: u8 = 1;
/// Bytes before the first record.
const HEADER_LEN: u64 = 5;
/// The largest key or value a record may hold (far above any real one; bounds what a damaged
/// file can make the reader allocate).
const MAX_FIELD: usize = 64 << 20;

fn invalid(detail: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail.into())
}

/// A finished snapshot file, open for reading.
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    file: File,
    len: u64,
    digest: [u8; 32],
}

impl SnapshotFile {
    /// Opens the file at `path` and takes its SHA-256.
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let mut hasher = Sha256::new();
        let len = io::copy(&mut file, &mut HashWriter(&mut hasher))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            len,
            digest: hasher.finalize().into(),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes at all (not even a header: never a valid snapshot).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SHA-256 of its bytes.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Reads at most `max` bytes at `offset` (fewer only at the end of the file).
    pub fn read_at(&self, offset: u64, max: usize) -> io::Result<Vec<u8>> {
        let n = max.min(self.len.saturating_sub(offset) as usize);
        let mut buf = vec![0u8; n];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }

    /// Makes the same file appear under `path` too (a hard link; a copy where links are not
    /// possible). Snapshot files never change, so both names stay valid on their own.
    pub fn link_to(&self, path: &Path) -> io::Result<SnapshotFile> {
        if fs::hard_link(&self.path, path).is_err() {
            // Another filesystem, or this name is gone already: copy from the open file.
            let mut out = BufWriter::new(File::create(path)?);
            let mut at = 0;
            while at < self.len {
                let piece = self.read_at(at, 1 << 20)?;
                out.write_all(&piece)?;
                at += piece.len() as u64;
            }
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            file: File::open(path)?,
            len: self.len,
            digest: self.digest,
        })
    }

    /// Reads the records from the start, checking the header.
    pub fn records(&self) -> io::Result<Records> {
        let mut reader = BufReader::with_capacity(1 << 20, self.file.try_clone()?);
        std::io::Seek::seek(&mut reader, io::SeekFrom::Start(0))?;
        let mut header = [0u8; HEADER_LEN as usize];
        reader
            .read_exact(&mut header)
            .map_err(|_| invalid("snapshot file is shorter than its header"))?;
        if &header[..4] != MAGIC {
            return Err(invalid("not a snapshot file (bad magic)"));
        }
        if header[4] != VERSION {
            return Err(invalid(format!(
                "snapshot file format {} is not supported (this build reads {VERSION})",
                header[4]
            )));
        }
        Ok(Records {
            reader,
            left: self.len - HEADER_LEN,
        })
    }
}

/// The key/value records of a [`SnapshotFile`], in file order.
pub struct Records {
    reader: BufReader<File>,
    left: u64,
}

impl Records {
    fn field(&mut self) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.reader
            .read_exact(&mut len)
            .map_err(|_| invalid("snapshot file ends inside a record"))?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FIELD || len as u64 + 4 > self.left {
            return Err(invalid(format!(
                "snapshot record field of {len} bytes runs past the end of the file"
            )));
        }
        let mut buf = vec![0u8; len];
        self.reader
            .read_exact(&mut buf)
            .map_err(|_| invalid("snapshot file ends inside a record"))?;
        self.left -= 4 + len as u64;
        Ok(buf)
    }
}

impl Iterator for Records {
    type Item = io::Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let pair = self.field().and_then(|k| Ok((k, self.field()?)));
        if pair.is_err() {
            self.left = 0;
        }
        Some(pair)
    }
}

/// Writes a new snapshot file under a temporary name; [`Self::finish`] makes it final.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    hasher: Sha256,
    tmp: PathBuf,
    path: PathBuf,
}

impl SnapshotWriter {
    /// Starts the file that will be `path` (written as `path` + `.tmp` until finished).
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, File::create(&tmp)?),
            hasher: Sha256::new(),
            tmp,
            path: path.to_path_buf(),
        };
        w.write(MAGIC)?;
        w.write(&[VERSION])?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.hasher.update(b);
        self.out.write_all(b)
    }

    /// Appends one record.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for field in [key, value] {
            if field.len() > MAX_FIELD {
                return Err(invalid(format!(
                    "a snapshot field of {} bytes is over the {MAX_FIELD}-byte limit",
                    field.len()
                )));
            }
            self.write(&(field.len() as u32).to_le_bytes())?;
            self.write(field)?;
        }
        Ok(())
    }

    /// Syncs the file, gives it its final name and syncs the directory.
    pub fn finish(mut self) -> io::Result<SnapshotFile> {
        self.out.flush()?;
        let file = self.out.get_ref();
        file.sync_all()?;
        let len = file.metadata()?.len();
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(SnapshotFile {
            file: File::open(&self.path)?,
            path: self.path.clone(),
            len,
            digest: std::mem::take(&mut self.hasher).finalize().into(),
        })
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // Unfinished: the temporary file goes (after `finish` it no longer exists).
        let _ = fs::remove_file(&self.tmp);
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, pairs: &[(&[u8], &[u8])]) -> SnapshotFile {
        let mut w = SnapshotWriter::create(path).unwrap();
        for (k, v) in pairs {
            w.put(k, v).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn records_come_back_in_order_and_the_digest_names_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![5u8; 3 << 20];
        let pairs: Vec<(&[u8], &[u8])> = vec![(b"d/a", b"1"), (b"d/b", &big), (b"d/c", b"")];
        let f = write(&dir.path().join("s.snap"), &pairs);
        let got: Vec<_> = f.records().unwrap().map(Result::unwrap).collect();
        let want: Vec<_> = pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(got, want);
        let bytes = fs::read(f.path()).unwrap();
        assert_eq!(f.len(), bytes.len() as u64);
        assert_eq!(f.digest(), <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert_eq!(SnapshotFile::open(f.path()).unwrap().digest(), f.digest());
        // Segments read back the same bytes.
        let mut joined = Vec::new();
        let mut at = 0;
        while at < f.len() {
            let seg = f.read_at(at, 1 << 20).unwrap();
            at += seg.len() as u64;
            joined.extend(seg);
        }
        assert_eq!(joined, bytes);
        // A linked copy reads the same and outlives the original name.
        let other = f.link_to(&dir.path().join("t.snap")).unwrap();
        fs::remove_file(f.path()).unwrap();
        assert_eq!(other.records().unwrap().count(), 3);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn damaged_files_are_refused_not_misread() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(&dir.path().join("s.snap"), &[(b"d/key", b"value")]);
        let good = fs::read(f.path()).unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("bad magic", [b"XXXX".as_slice(), &good[4..]].concat()),
            ("new version", [&good[..4], &[9u8][..], &good[5..]].concat()),
            ("cut short", good[..good.len() - 2].to_vec()),
            (
                "huge length",
                [&good[..5], &u32::MAX.to_le_bytes()[..], &good[9..]].concat(),
            ),
        ];
        for (what, bytes) in cases {
            let p = dir.path().join(format!("{what}.snap"));
            fs::write(&p, &bytes).unwrap();
            let f = SnapshotFile::open(&p).unwrap();
            let err = f
                .records()
                .and_then(|r| r.collect::<io::Result<Vec<_>>>())
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        }
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SnapshotWriter::create(&dir.path().join("s.snap")).unwrap();
        w.put(b"d/a", b"1").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
