//! Ordered message streams: many requests in flight on one QUIC stream.
//!
//! A stream opens with a `StreamOpen` frame naming what it is for (see
//! [`crate::Transport::open_stream`] and [`crate::RpcHandler::handle_stream`]); after it, each
//! side sends `Request` frames that arrive in order, and either side may end with an `Error`
//! frame carrying a message. Every frame passes the same cluster and epoch checks as a single
//! request, and the path's frame limit.

use std::sync::Arc;

use quinn::{RecvStream, SendStream};

use crate::frame::{ClusterId, Kind};
use crate::wire::{admit, read_frame, refusal_error, write_frame};
use crate::{Result, TransportError};

/// Both halves of a message stream.
#[derive(Debug)]
pub struct MessageStream {
    sender: MessageSender,
    receiver: MessageReceiver,
}

impl MessageStream {
    pub(crate) fn new(
        peer: &str,
        cluster: ClusterId,
        epoch: u64,
        max: usize,
        send: SendStream,
        recv: RecvStream,
    ) -> Self {
        Self {
            sender: MessageSender {
                send: Arc::new(tokio::sync::Mutex::new(send)),
                peer: peer.to_string(),
                cluster,
                epoch,
                max,
            },
            receiver: MessageReceiver {
                recv,
                peer: peer.to_string(),
                cluster,
                epoch,
                max,
            },
        }
    }

    /// Another handle on the sending half.
    pub(crate) fn sender(&self) -> MessageSender {
        self.sender.clone()
    }

    /// The sending and the receiving half, to use from different tasks.
    pub fn split(self) -> (MessageSender, MessageReceiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a [`MessageStream`] (clones send on the same stream).
#[derive(Clone, Debug)]
pub struct MessageSender {
    send: Arc<tokio::sync::Mutex<SendStream>>,
    peer: String,
    cluster: ClusterId,
    epoch: u64,
    max: usize,
}

impl MessageSender {
    /// Sends one message.
    pub async fn send(&self, message: &[u8]) -> Result<()> {
        if message.len() > self.max {
            return Err(TransportError::Protocol {
                peer: self.peer.clone(),
                detail: format!(
                    "message of {} bytes exceeds the {}-byte frame limit",
                    message.len(),
                    self.max
                ),
            });
        }
        let mut send = self.send.lock().await;
        write_frame(
            &mut send,
            &self.peer,
            Kind::Request,
            self.cluster,
            self.epoch,
            message,
        )
        .await
    }

    /// Ends the stream with an error the peer's receiver reports.
    pub async fn fail(&self, message: &str) -> Result<()> {
        let mut send = self.send.lock().await;
        write_frame(
            &mut send,
            &self.peer,
            Kind::Error,
            self.cluster,
            self.epoch,
            message.as_bytes(),
        )
        .await?;
        let _ = send.finish();
        Ok(())
    }

    /// Ends the stream cleanly (the peer's receiver sees its end).
    pub async fn finish(&self) {
        let _ = self.send.lock().await.finish();
    }
}

/// The receiving half of a [`MessageStream`].
#[derive(Debug)]
pub struct MessageReceiver {
    recv: RecvStream,
    peer: String,
    cluster: ClusterId,
    epoch: u64,
    max: usize,
}

impl MessageReceiver {
    /// The next message; `Ok(None)` once the peer finished the stream.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let Some((h, payload)) = read_frame(&mut self.recv, &self.peer, self.max).await? else {
            return Ok(None);
        };
        if h.kind == Kind::Refused {
            let refusal = postcard::from_bytes(&payload).map_err(|e| TransportError::Protocol {
                peer: self.peer.clone(),
                detail: format!("refusal does not parse: {e}"),
            })?;
            return Err(refusal_error(&self.peer, refusal, self.cluster, self.epoch));
        }
        if let Some(refusal) = admit(&h, self.cluster, self.epoch) {
            return Err(refusal_error(&self.peer, refusal, self.cluster, self.epoch));
        }
        match h.kind {
            Kind::Request => Ok(Some(payload)),
            Kind::Error => Err(TransportError::Remote {
                peer: self.peer.clone(),
                reason: String::from_utf8_lossy(&payload).into_owned(),
            }),
            other => Err(TransportError::Protocol {
                peer: self.peer.clone(),
                detail: format!("unexpected {other:?} frame in a message stream"),
            }),
        }
    }
}
