//! A request body sent as the pieces it is held in.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// A request body of several buffers sent one after the other, never joined: a chunk stored as
/// plain bytes goes out as its 96-byte header and the chunk itself, without copying the chunk
/// into an envelope first.
#[derive(Debug, Default)]
pub struct Pieces {
    pieces: VecDeque<Bytes>,
    len: u64,
}

impl Pieces {
    /// A body of `pieces` in order (empty ones are left out).
    pub fn new(pieces: impl IntoIterator<Item = Bytes>) -> Self {
        let pieces: VecDeque<Bytes> = pieces.into_iter().filter(|p| !p.is_empty()).collect();
        let len = pieces.iter().map(|p| p.len() as u64).sum();
        Self { pieces, len }
    }

    /// Bytes in all.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl From<Bytes> for Pieces {
    fn from(b: Bytes) -> Self {
        Self::new([b])
    }
}

impl From<Vec<u8>> for Pieces {
    fn from(v: Vec<u8>) -> Self {
        Self::new([Bytes::from(v)])
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let next = this.pieces.pop_front();
        if let Some(p) = &next {
            this.len -= p.len() as u64;
        }
        Poll::Ready(next.map(|p| Ok(Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn pieces_arrive_in_order_with_their_exact_length() {
        let body = Pieces::new([
            Bytes::from_static(b"head"),
            Bytes::new(),
            Bytes::from_static(b"-and-the-rest"),
        ]);
        assert_eq!(body.size_hint().exact(), Some(17));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let all = rt.block_on(body.collect()).unwrap().to_bytes();
        assert_eq!(&all[..], b"head-and-the-rest");
        assert!(Pieces::from(Bytes::new()).is_end_stream());
    }
}
