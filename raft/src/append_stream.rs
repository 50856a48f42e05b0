//! Pipelined replication: openraft's `stream_append` over one ordered transport stream.
//!
//! The leader's requests to a follower go out back to back on one [`MessageStream`] (up to
//! [`PIPELINE_DEPTH`] unanswered), and the follower's answers come back in the same order, so
//! a link with a long round trip carries many appends per round trip instead of one. A request
//! larger than [`MAX_APPEND_BYTES`] is split into consecutive parts (each its own frame, none
//! over a control frame) whose answers are joined into one.
//!
//! [`MessageStream`]: ironcore_transport::MessageStream

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use ironcore_transport::{MessageReceiver, MessageSender};
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::network::{APPEND_BYTES_PER_SEC, MAX_APPEND_BYTES, fitting_prefix};
use crate::{NodeId, RaftRequest, RaftResponse, TypeConfig};

/// The opening that names an append stream to the peer's server.
pub(crate) const APPEND_STREAM: &[u8] = b"raft-append/1";
/// How many requests may be unanswered on one stream.
pub(crate) const PIPELINE_DEPTH: usize = 32;

type Append = AppendEntriesRequest<TypeConfig>;

/// Why an append stream broke, for the link to turn into openraft's error.
#[derive(Debug)]
pub(crate) enum StreamFault {
    /// No answer in time, or the stream or connection failed: the peer may be down.
    Silent(String),
    /// The peer answered something that does not fit.
    Garbled(String),
}

/// Splits `rpc` into consecutive requests of at most `budget` encoded entry bytes each (at
/// least one entry each; an empty request stays one request). Every part but the last commits
/// no further than its own last entry.
pub(crate) fn split_append(rpc: Append, budget: usize) -> Vec<Append> {
    let AppendEntriesRequest {
        vote,
        prev_log_id,
        leader_commit,
        mut entries,
    } = rpc;
    let mut parts = Vec::new();
    let mut prev = prev_log_id;
    loop {
        let (n, _) = fitting_prefix(&entries, budget);
        let rest = entries.split_off(n);
        let last = entries.last().map(|e| e.log_id).or(prev);
        let commit = if rest.is_empty() {
            leader_commit
        } else {
            leader_commit.min(last)
        };
        parts.push(AppendEntriesRequest {
            vote,
            prev_log_id: prev,
            leader_commit: commit,
            entries,
        });
        if rest.is_empty() {
            return parts;
        }
        prev = last;
        entries = rest;
    }
}

/// What the writer sent for one request of openraft's: how many parts, and how many bytes.
struct Sent {
    parts: usize,
    bytes: usize,
}

/// Sends each request of `input` (split as needed), keeping at most [`PIPELINE_DEPTH`]
/// unanswered; tells the reader about each through `sent`. Ends the stream when the input ends.
async fn write_appends<S>(
    mut input: S,
    sender: MessageSender,
    sent: mpsc::Sender<Sent>,
) -> Result<(), StreamFault>
where
    S: Stream<Item = Append> + Send + Unpin + 'static,
{
    while let Some(rpc) = input.next().await {
        let Ok(slot) = sent.reserve().await else {
            return Ok(()); // the reader is gone: the session ended
        };
        let parts = split_append(rpc, MAX_APPEND_BYTES);
        let count = parts.len();
        let mut bytes = 0;
        for part in parts {
            let frame = RaftRequest::Append(part)
                .encode()
                .map_err(|e| StreamFault::Garbled(format!("cannot encode an append: {e}")))?;
            bytes += frame.len();
            sender
                .send(&frame)
                .await
                .map_err(|e| StreamFault::Silent(e.to_string()))?;
        }
        slot.send(Sent {
            parts: count,
            bytes,
        });
    }
    sender.finish().await;
    Ok(())
}

/// The writer task, stopped when the session that owns it ends.
struct Writer(Option<JoinHandle<Result<(), StreamFault>>>);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Reads the answers of one append stream, in the order the writer sent the requests.
pub(crate) struct AppendSession {
    receiver: MessageReceiver,
    sent: mpsc::Receiver<Sent>,
    writer: Writer,
    soft_ttl: Duration,
    target: NodeId,
}

impl AppendSession {
    /// Starts writing `input` to `sender`; answers come from `receiver`.
    pub(crate) fn start<S>(
        sender: MessageSender,
        receiver: MessageReceiver,
        input: S,
        soft_ttl: Duration,
        target: NodeId,
    ) -> Self
    where
        S: Stream<Item = Append> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        let writer = tokio::spawn(write_appends(input, sender, tx));
        Self {
            receiver,
            sent: rx,
            writer: Writer(Some(writer)),
            soft_ttl,
            target,
        }
    }

    /// The answer to the next request; `None` once the input ended and everything sent was
    /// answered.
    pub(crate) async fn next(
        &mut self,
    ) -> Option<Result<StreamAppendResult<TypeConfig>, StreamFault>> {
        let Some(sent) = self.sent.recv().await else {
            let task = self.writer.0.take()?;
            return match task.await {
                Ok(Ok(())) => None,
                Ok(Err(fault)) => Some(Err(fault)),
                Err(e) => Some(Err(StreamFault::Garbled(format!(
                    "append writer failed: {e}"
                )))),
            };
        };
        // The request's answers are due within the heartbeat-sized timeout plus time for its
        // bytes, counted from when this reader starts waiting for them.
        let wait =
            self.soft_ttl + Duration::from_millis(sent.bytes as u64 * 1000 / APPEND_BYTES_PER_SEC);
        let mut answer = None;
        for _ in 0..sent.parts {
            let message = match tokio::time::timeout(wait, self.receiver.next()).await {
                Err(_) => {
                    return Some(Err(StreamFault::Silent(format!(
                        "no answer to an append within {} ms",
                        wait.as_millis()
                    ))));
                }
                Ok(Err(e)) => return Some(Err(StreamFault::Silent(e.to_string()))),
                Ok(Ok(None)) => {
                    return Some(Err(StreamFault::Silent(format!(
                        "node {} ended the append stream with requests unanswered",
                        self.target
                    ))));
                }
                Ok(Ok(Some(m))) => m,
            };
            let result = match RaftResponse::decode(&message) {
                Ok(RaftResponse::StreamAppend(r)) => r,
                Ok(other) => {
                    return Some(Err(StreamFault::Garbled(format!(
                        "expected an append answer, got {other:?}"
                    ))));
                }
                Err(e) => return Some(Err(StreamFault::Garbled(e.to_string()))),
            };
            if result.is_err() {
                // A conflict or a higher vote ends the request (and openraft ends the session).
                return Some(Ok(result));
            }
            answer = Some(result);
        }
        answer.map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::impls::leader_id_adv::LeaderId;

    use super::*;
    use crate::{Command, Entry, LogId, Vote};

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderId {
                term: 1,
                node_id: 1,
            },
            index,
        )
    }

    fn entry(index: u64, size: usize) -> Entry {
        Entry {
            log_id: log_id(index),
            payload: EntryPayload::Normal(Command::SetKey {
                key: format!("k{index}"),
                value: vec![0; size],
            }),
        }
    }

    fn request(entries: Vec<Entry>, prev: Option<u64>, commit: Option<u64>) -> Append {
        AppendEntriesRequest {
            vote: Vote::new_committed(1, 1),
            prev_log_id: prev.map(log_id),
            leader_commit: commit.map(log_id),
            entries,
        }
    }

    #[test]
    fn large_requests_split_into_consecutive_parts_that_commit_only_what_they_carry() {
        let entries = (5..11).map(|i| entry(i, 400 << 10)).collect();
        let parts = split_append(request(entries, Some(4), Some(10)), 1 << 20);
        assert_eq!(parts.len(), 3, "two 400 KiB entries fit 1 MiB");
        let ids = |p: &Append| p.entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(ids(&parts[0]), [5, 6]);
        assert_eq!(ids(&parts[1]), [7, 8]);
        assert_eq!(ids(&parts[2]), [9, 10]);
        assert_eq!(parts[0].prev_log_id, Some(log_id(4)));
        assert_eq!(parts[1].prev_log_id, Some(log_id(6)));
        assert_eq!(parts[2].prev_log_id, Some(log_id(8)));
        assert_eq!(parts[0].leader_commit, Some(log_id(6)));
        assert_eq!(parts[1].leader_commit, Some(log_id(8)));
        assert_eq!(parts[2].leader_commit, Some(log_id(10)));

        // Small and empty requests stay whole.
        let small = split_append(request(vec![entry(5, 10)], Some(4), Some(3)), 1 << 20);
        assert_eq!(small.len(), 1);
        assert_eq!(small[0].leader_commit, Some(log_id(3)));
        let empty = split_append(request(vec![], Some(4), Some(4)), 1 << 20);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].entries.is_empty());
        assert_eq!(empty[0].prev_log_id, Some(log_id(4)));
    }
}
