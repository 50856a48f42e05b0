//! A chunk received over the network, kept where a direct (`O_DIRECT`) write can take it as is.

/// Alignment of direct writes' memory, offsets and lengths: a page, which every block
/// device's logical block size divides.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// A chunk's bytes at an address aligned for a direct write, with room for the zeros that pad
/// its length to the alignment: a node fills it from the request body as the body arrives and
/// the chunk directory writes it without copying it again. Growing past the capacity given at
/// the start may move it off the alignment; the write then copies, as for any other slice.
#[derive(Debug, Default)]
pub struct ChunkBuf {
    /// `off` bytes of padding, then the chunk.
    mem: Vec<u8>,
    off: usize,
}

impl ChunkBuf {
    /// An empty buffer for a chunk of about `len` bytes.
    pub fn with_capacity(len: usize) -> Self {
        let mut mem =
            Vec::<u8>::with_capacity(len.div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN + DIRECT_ALIGN);
        let off = mem.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        mem.resize(off, 0);
        Self { mem, off }
    }

    /// Appends bytes of the chunk.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.mem.extend_from_slice(bytes);
    }

    /// The chunk's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.mem[self.off..]
    }

    /// Bytes of the chunk.
    pub fn len(&self) -> usize {
        self.mem.len() - self.off
    }

    /// Whether the chunk has no bytes yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pads the chunk with zeros to a multiple of the alignment and returns it with its
    /// padding, when it starts on the alignment and fits the capacity; `None` (nothing
    /// changed) otherwise. After this the buffer's bytes end with the padding: a buffer is
    /// written once.
    pub(crate) fn pad_for_direct_write(&mut self) -> Option<&[u8]> {
        let padded = self.len().div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
        let fits = self.mem.capacity() >= self.off + padded;
        let aligned = self.as_slice().as_ptr().align_offset(DIRECT_ALIGN) == 0;
        if !(fits && aligned) {
            return None;
        }
        self.mem.resize(self.off + padded, 0);
        Some(&self.mem[self.off..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_padded_for_a_direct_write_only_where_it_is_aligned() {
        let mut buf = ChunkBuf::with_capacity(10_000);
        buf.extend_from_slice(&[9u8; 10_000]);
        let block = buf.pad_for_direct_write().unwrap();
        assert_eq!(block.len(), 12_288);
        assert_eq!(block.as_ptr().align_offset(DIRECT_ALIGN), 0);
        assert!(block[..10_000].iter().all(|b| *b == 9) && block[10_000..].iter().all(|b| *b == 0));
        // Grown past its capacity it moved: padded in place only where it still happens to
        // start on the alignment with room for the padding, and then still zero-padded.
        let mut small = ChunkBuf::with_capacity(0);
        small.extend_from_slice(&[1u8; 3 * DIRECT_ALIGN + 5]);
        let aligned = small.as_slice().as_ptr().align_offset(DIRECT_ALIGN) == 0;
        match small.pad_for_direct_write() {
            None => assert!(!aligned || small.mem.capacity() < small.off + 4 * DIRECT_ALIGN),
            Some(block) => {
                assert!(aligned && block.len() == 4 * DIRECT_ALIGN);
                assert!(block[3 * DIRECT_ALIGN + 5..].iter().all(|b| *b == 0));
            }
        }
        assert!(
            small.as_slice()[..3 * DIRECT_ALIGN + 5]
                .iter()
                .all(|b| *b == 1)
        );
    }
}
