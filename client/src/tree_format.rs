//! The tree archive format: what a restore needs to rebuild a directory tree.
//!
//! A tree snapshot has two archives. `root.payload` is the content of every regular file,
//! concatenated in walk order and cut into content-defined chunks, so small files share chunks
//! and an insertion in one file only changes the chunks around it. `root.meta` is the entry
//! list:
//!
//! ```text
//! magic "ICTR" | version u16 LE (1) | reserved u16 (0)
//! then per entry: length u32 LE | postcard(Entry)      (at most 1 MiB per entry)
//! ```
//!
//! Entries come in depth-first walk order with names sorted bytewise, the root (empty path)
//! first. A regular file points into the payload by offset and size. What is kept: regular
//! files, directories, symlinks, hard links (later names of an inode point at the first),
//! FIFOs and device nodes, permission bits (with setuid/setgid/sticky), owner and group ids,
//! and modification times in nanoseconds. Sockets are skipped (they are meaningless without
//! their process). Sparse files are stored with their holes as zeros (which deduplicate and
//! compress to almost nothing) and restored sparse again. Extended attributes and ACLs are not
//! kept in version 1.
//!
//! Decoding checks the structure only. Names are untrusted (absolute, `..`, a hard link to
//! anywhere): the restore planner ([`RestorePlan`](crate::RestorePlan)) checks each one and
//! skips the entries that could reach outside the target, so one bad entry does not hide the
//! rest of a snapshot.

use serde::{Deserialize, Serialize};

use crate::{ClientError, Result};

const MAGIC: [u8; 4] = *b"ICTR";
const VERSION: u16 = 1;
const MAX_ENTRY: usize = 1 << 20;

/// What kind of file an entry is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file whose content is `size` bytes at `offset` in the payload archive.
    File {
        /// Where the content starts in the payload.
        offset: u64,
        /// Its length.
        size: u64,
    },
    /// A symbolic link.
    Symlink {
        /// The link's target, as stored in the link.
        target: Vec<u8>,
    },
    /// Another name of an inode already in the archive.
    HardLink {
        /// The path of the first name, relative to the root.
        target: Vec<u8>,
    },
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice {
        /// Device number.
        rdev: u64,
    },
    /// A block device.
    BlockDevice {
        /// Device number.
        rdev: u64,
    },
}

/// One file system object of a tree snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the backed-up root, as raw bytes; empty for the root itself.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
}

/// Appends the stream header.
pub(crate) fn header() -> Vec<u8> {
    let mut v = MAGIC.to_vec();
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

/// Encodes one entry as a record.
pub(crate) fn encode_entry(e: &Entry) -> Result<Vec<u8>> {
    let body = postcard::to_allocvec(e).map_err(|err| ClientError::Format(err.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Encodes a whole metadata archive: the header, then every entry as a record (what
/// [`write_tree`](crate::write_tree) streams into [`META_ARCHIVE`](crate::META_ARCHIVE)).
pub fn encode_entries(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut out = header();
    for e in entries {
        out.extend(encode_entry(e)?);
    }
    Ok(out)
}

/// Decodes a whole metadata archive.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<Entry>> {
    if bytes.len() < 8 || bytes[0..4] != MAGIC {
        return Err(ClientError::Format(
            "metadata archive has no ICTR header".into(),
        ));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != VERSION || bytes[6..8] != [0, 0] {
        return Err(ClientError::Format(format!(
            "tree format version {version} is not supported"
        )));
    }
    let mut at = 8;
    let mut out = Vec::new();
    while at < bytes.len() {
        if bytes.len() - at < 4 {
            return Err(ClientError::Format(format!(
                "truncated record length at byte {at}"
            )));
        }
        let n =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        at += 4;
        if n > MAX_ENTRY || bytes.len() - at < n {
            return Err(ClientError::Format(format!(
                "record of {n} bytes at byte {at} is truncated or too large"
            )));
        }
        let entry: Entry = postcard::from_bytes(&bytes[at..at + n])
            .map_err(|e| ClientError::Format(format!("record at byte {at}: {e}")))?;
        out.push(entry);
        at += n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime_sec: 3,
            mtime_nsec: 4,
        }
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![
            entry("", EntryKind::Dir),
            entry(
                "a",
                EntryKind::File {
                    offset: 0,
                    size: 10,
                },
            ),
            entry(
                "b",
                EntryKind::Symlink {
                    target: b"a".to_vec(),
                },
            ),
            entry(
                "c",
                EntryKind::HardLink {
                    target: b"a".to_vec(),
                },
            ),
        ];
        let bytes = encode_entries(&entries).unwrap();
        assert_eq!(decode_entries(&bytes).unwrap(), entries);
        assert!(decode_entries(&bytes[..bytes.len() - 1]).is_err());
    }
}
