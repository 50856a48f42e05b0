//! The TCP side of the link emulator, for benches that compare with TCP tools (rsync) over the
//! same emulated link as the nodes' QUIC: a relay that accepts connections and opens one to the
//! target for each, and carries the bytes each way with a one-way delay and a rate cap shared by
//! every connection of that direction (the link, which may be a UDP proxy's, see
//! [`TcpFaultProxy::bind_sharing`]). It terminates TCP on both sides, so the
//! endpoints' own congestion control sees a loopback, not the delay; the link's buffer (100 ms
//! at the rate) holds the senders back instead of dropping.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::fault::{Direction, FaultProxy, Settings, Tasks};
use crate::{Result, TransportError};

/// Bytes read at once from one side.
const READ: usize = 16 * 1024;

struct Shared {
    /// The link: to the target, and back to the client.
    link: Arc<Settings>,
    target: SocketAddr,
    tasks: Tasks,
}

impl Shared {
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }
}

/// A running TCP relay. Dropping it stops it (and every connection through it).
pub struct TcpFaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl TcpFaultProxy {
    /// Listens on `listen` and relays each connection to `target`. Must be called inside a
    /// tokio runtime.
    pub async fn bind(listen: SocketAddr, target: SocketAddr) -> Result<Self> {
        Self::bind_with(listen, target, Arc::default()).await
    }

    /// As [`TcpFaultProxy::bind`], on the same link as the UDP proxy `link` (its delay and rate
    /// budget), so a TCP tool and the nodes' QUIC see one link.
    pub async fn bind_sharing(
        listen: SocketAddr,
        target: SocketAddr,
        link: &FaultProxy,
    ) -> Result<Self> {
        Self::bind_with(listen, target, link.link()).await
    }

    async fn bind_with(
        listen: SocketAddr,
        target: SocketAddr,
        link: Arc<Settings>,
    ) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| TransportError::Io {
                action: "binding the TCP fault proxy",
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| TransportError::Io {
            action: "reading the TCP fault proxy's address",
            source,
        })?;
        let shared = Arc::new(Shared {
            link,
            target,
            tasks: Tasks::default(),
        });
        shared.spawn(accept(Arc::downgrade(&shared), listener));
        Ok(Self { addr, shared })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One-way delay of every byte in `dir`.
    pub fn set_delay(&self, dir: Direction, delay: Duration) {
        for &i in dir.indices() {
            self.shared.link.pace(i).set_delay(delay);
        }
    }

    /// Caps `dir` at `bytes_per_sec` for all its connections together (0 = no cap).
    pub fn set_rate(&self, dir: Direction, bytes_per_sec: u64) {
        for &i in dir.indices() {
            self.shared.link.pace(i).set_rate(bytes_per_sec);
        }
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        self.shared.tasks.abort_all();
    }
}

async fn accept(shared: Weak<Shared>, listener: TcpListener) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(s) = shared.upgrade() else {
            return;
        };
        let Ok(target) = TcpStream::connect(s.target).await else {
            continue; // the client sees its connection closed
        };
        let _ = (client.set_nodelay(true), target.set_nodelay(true));
        let (client_read, client_write) = client.into_split();
        let (target_read, target_write) = target.into_split();
        s.spawn(pump(shared.clone(), 0, client_read, target_write));
        s.spawn(pump(shared.clone(), 1, target_read, client_write));
    }
}

/// Carries bytes from `from` to `to` through direction `i`: each read is scheduled on the link
/// (waiting while it is full) and written when it arrives at the far end.
async fn pump(
    shared: Weak<Shared>,
    i: usize,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(4096);
    let writer = async move {
        while let Some((at, bytes)) = rx.recv().await {
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buf = vec![0u8; READ];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let Some(s) = shared.upgrade() else {
                return;
            };
            let at = loop {
                match s.link.pace(i).slot(n) {
                    Ok(at) => break at,
                    Err(wait) => tokio::time::sleep(wait).await,
                }
            };
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_arrive_whole_delayed_and_at_the_capped_rate() {
        let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = sink.local_addr().unwrap();
        let counted = tokio::spawn(async move {
            let (mut s, _) = sink.accept().await.unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).await.unwrap();
            all
        });
        let proxy = TcpFaultProxy::bind("127.0.0.1:0".parse().unwrap(), target)
            .await
            .unwrap();
        proxy.set_delay(Direction::Both, Duration::from_millis(20));
        proxy.set_rate(Direction::ToTarget, 4_000_000);
        let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let start = Instant::now();
        let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
        c.write_all(&data).await.unwrap();
        c.shutdown().await.unwrap();
        let got = counted.await.unwrap();
        let took = start.elapsed();
        assert_eq!(got, data);
        // 2 MB at 4 MB/s: 0.5 s, plus the delay.
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(900),
            "{took:?}"
        );
    }
}
