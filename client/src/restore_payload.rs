//! File content out of the payload archive: read once in order for a whole-tree restore
//! ([`PayloadCursor`]), by range for a partial one ([`copy_range`]), and written with runs of
//! zero blocks left as holes ([`Sink`]).

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use bytes::Bytes;
use ironcore_chunkstore::{ArchiveReader, ChunkStream};

use crate::tree_restore::dest_err;
use crate::{ClientError, Result};

const HOLE_BLOCK: usize = 4096;

/// Writes file content into a new file, leaving holes for whole zero blocks.
pub(crate) struct Sink {
    file: File,
    written: u64,
    pending_hole: bool,
}

impl Sink {
    /// A sink writing into `file`, which is new and empty.
    pub(crate) fn new(file: File) -> Self {
        Self {
            file,
            written: 0,
            pending_hole: false,
        }
    }

    /// Writes `data`: each run of whole zero blocks is skipped (a hole), each run of other
    /// blocks is written with one call (block by block, a full restore of the reference set
    /// made half a million write calls).
    pub(crate) fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
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

    /// Gives the file its length when it ends in a hole, and hands it back.
    pub(crate) fn finish(self) -> std::io::Result<File> {
        if self.pending_hole {
            self.file.set_len(self.written)?;
        }
        Ok(self.file)
    }
}

/// The payload read once, in order, decoded ahead by worker threads.
pub(crate) struct PayloadCursor {
    stream: ChunkStream,
    carry: Bytes,
    at: usize,
    /// Stream offset of `carry[at]`.
    pub(crate) pos: u64,
}

impl PayloadCursor {
    /// A cursor at the start of `stream`.
    pub(crate) fn new(stream: ChunkStream) -> Self {
        Self {
            stream,
            carry: Bytes::new(),
            at: 0,
            pos: 0,
        }
    }

    /// Hands the next `n` bytes to `out`, chunk piece by chunk piece.
    pub(crate) fn take(
        &mut self,
        mut n: u64,
        mut out: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
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

/// Writes `size` bytes of the payload from `offset` into `sink` (the file at `path`).
pub(crate) fn copy_range(
    reader: &mut ArchiveReader,
    offset: u64,
    size: u64,
    sink: &mut Sink,
    path: &Path,
) -> Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = offset;
    let end = offset
        .checked_add(size)
        .ok_or_else(|| ClientError::Format("file content beyond any payload".into()))?;
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
    use std::fs;
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
        let mut sink = Sink::new(File::create(&path).unwrap());
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
