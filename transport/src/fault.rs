//! Fault injection without root, for tests: a UDP proxy on loopback that sits between two QUIC
//! endpoints. The client is pointed at [`FaultProxy::addr`]; the proxy forwards its datagrams to
//! the target and the target's datagrams back to the last address that sent from the client
//! side (one client per proxy). Per direction it can add a one-way delay (packets keep their
//! order: a queue task releases each at arrival + delay), drop packets with a probability, and
//! partition, all changeable while it runs. Dropping the proxy stops it.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::{Result, TransportError};

/// The largest datagram the proxy receives.
const BUF_LEN: usize = 65535;
/// Packets waiting out their delay per direction; beyond that they are dropped, as a router would.
const QUEUE_LEN: usize = 8192;
/// Indices into [`Settings::dirs`].
const TO_TARGET: usize = 0;
const TO_CLIENT: usize = 1;

/// Which way packets travel through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the target.
    ToTarget,
    /// From the target back to the client.
    ToClient,
    /// Both ways.
    Both,
}

impl Direction {
    fn indices(self) -> &'static [usize] {
        match self {
            Direction::ToTarget => &[TO_TARGET],
            Direction::ToClient => &[TO_CLIENT],
            Direction::Both => &[TO_TARGET, TO_CLIENT],
        }
    }
}

/// The settings and counters of one direction, read per packet.
#[derive(Default)]
struct Dir {
    delay_micros: AtomicU64,
    /// The drop probability, as `f64` bits.
    loss_bits: AtomicU64,
    partitioned: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Settings {
    dirs: [Dir; 2],
    /// The last address that sent from the client side.
    client: Mutex<Option<SocketAddr>>,
}

/// A running UDP proxy. Dropping it stops it (abort its tasks).
pub struct FaultProxy {
    addr: SocketAddr,
    settings: Arc<Settings>,
    tasks: Vec<JoinHandle<()>>,
}

impl FaultProxy {
    /// Binds 127.0.0.1:0 and forwards to `target`. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let io = |action| move |source| TransportError::Io { action, source };
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let front = UdpSocket::bind(loopback)
            .await
            .map_err(io("binding the fault proxy's client socket"))?;
        let back = UdpSocket::bind(loopback)
            .await
            .map_err(io("binding the fault proxy's target socket"))?;
        let addr = front
            .local_addr()
            .map_err(io("reading the fault proxy's address"))?;
        let (front, back) = (Arc::new(front), Arc::new(back));
        let settings = Arc::new(Settings::default());
        let mut tasks = lane(&settings, TO_TARGET, front.clone(), back.clone(), target);
        tasks.extend(lane(&settings, TO_CLIENT, back, front, target));
        Ok(FaultProxy {
            addr,
            settings,
            tasks,
        })
    }

    /// The address clients should send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One-way delay added to every packet in `dir` (Both = each direction gets it). Packets
    /// keep their order.
    pub fn set_delay(&self, dir: Direction, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        for &i in dir.indices() {
            self.settings.dirs[i].delay_micros.store(micros, SeqCst);
        }
    }

    /// Drop probability 0.0..=1.0 for packets in `dir` (clamped; NaN drops nothing).
    pub fn set_loss(&self, dir: Direction, probability: f64) {
        // A NaN stays NaN, and `rand < NaN` never holds: it drops nothing.
        let p = probability.clamp(0.0, 1.0);
        for &i in dir.indices() {
            self.settings.dirs[i].loss_bits.store(p.to_bits(), SeqCst);
        }
    }

    /// Drop everything in `dir` (Both = full partition) until `heal`, including packets
    /// still waiting out a delay.
    pub fn partition(&self, dir: Direction) {
        for &i in dir.indices() {
            self.settings.dirs[i].partitioned.store(true, SeqCst);
        }
    }

    /// Ends every partition.
    pub fn heal(&self) {
        for d in &self.settings.dirs {
            d.partitioned.store(false, SeqCst);
        }
    }

    /// Packets forwarded and dropped so far, per direction: (to_target_forwarded,
    /// to_target_dropped, to_client_forwarded, to_client_dropped).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let [t, c] = self
            .settings
            .dirs
            .each_ref()
            .map(|d| (d.forwarded.load(SeqCst), d.dropped.load(SeqCst)));
        (t.0, t.1, c.0, c.1)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Spawns the two tasks of direction `i`: one receives on `inbound` and queues each packet that
/// loss or a partition does not drop; the other releases each at arrival + delay (so order is
/// kept) and sends it on `outbound`, to the target or to the client's last address.
fn lane(
    settings: &Arc<Settings>,
    i: usize,
    inbound: Arc<UdpSocket>,
    outbound: Arc<UdpSocket>,
    target: SocketAddr,
) -> Vec<JoinHandle<()>> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_LEN);
    let s = settings.clone();
    let receive = tokio::spawn(async move {
        let (dir, mut buf) = (&s.dirs[i], vec![0u8; BUF_LEN]);
        loop {
            let Ok((n, from)) = inbound.recv_from(&mut buf).await else {
                // A transient socket error: do not spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            };
            if i == TO_TARGET {
                // A poisoned lock still holds a valid address: recover it.
                *s.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(from);
            } else if from != target {
                continue;
            }
            let loss = f64::from_bits(dir.loss_bits.load(SeqCst));
            if dir.partitioned.load(SeqCst) || (loss > 0.0 && rand::random::<f64>() < loss) {
                dir.dropped.fetch_add(1, SeqCst);
                continue;
            }
            let delay = Duration::from_micros(dir.delay_micros.load(SeqCst));
            let at = Instant::now() + delay.min(Duration::from_secs(86_400 * 365));
            if tx.try_send((at, buf[..n].to_vec())).is_err() {
                dir.dropped.fetch_add(1, SeqCst);
            }
        }
    });
    let s = settings.clone();
    let send = tokio::spawn(async move {
        let dir = &s.dirs[i];
        while let Some((at, packet)) = rx.recv().await {
            // Without a delay, forward at once: even a zero-length sleep waits for the timer's
            // next tick (about 1 ms), which would add latency to every packet.
            if at > Instant::now() {
                tokio::time::sleep_until(at).await;
            }
            let dest = match i {
                TO_TARGET => Some(target),
                _ => *s.client.lock().unwrap_or_else(|p| p.into_inner()),
            };
            // A partition drops packets that were waiting out a delay too.
            match dest {
                Some(dest) if !dir.partitioned.load(SeqCst) => {
                    dir.forwarded.fetch_add(1, SeqCst);
                    let _ = outbound.send_to(&packet, dest).await;
                }
                _ => {
                    dir.dropped.fetch_add(1, SeqCst);
                }
            }
        }
    });
    vec![receive, send]
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    async fn socket() -> UdpSocket {
        UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback socket")
    }

    /// A proxy in front of a target that echoes every datagram, and a client socket.
    async fn proxied_echo() -> (FaultProxy, UdpSocket) {
        let echo = socket().await;
        let addr = echo.local_addr().expect("echo address");
        tokio::spawn(async move {
            let mut buf = vec![0u8; BUF_LEN];
            while let Ok((n, from)) = echo.recv_from(&mut buf).await {
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        (
            FaultProxy::start(addr).await.expect("start proxy"),
            socket().await,
        )
    }

    async fn send(from: &UdpSocket, to: SocketAddr, bytes: &[u8]) {
        from.send_to(bytes, to).await.expect("send");
    }

    async fn recv(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; BUF_LEN];
        let received = tokio::time::timeout(WAIT, sock.recv_from(&mut buf)).await;
        let (n, from) = received.expect("a datagram in time").expect("recv");
        buf.truncate(n);
        (buf, from)
    }

    /// Waits until the proxy's counters satisfy `ok`.
    async fn wait_counters(proxy: &FaultProxy, ok: impl Fn((u64, u64, u64, u64)) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ok(proxy.counters()) {
            assert!(
                Instant::now() < deadline,
                "counters stuck at {:?}",
                proxy.counters()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn packets_pass_through_both_ways() {
        let (proxy, client) = proxied_echo().await;
        for i in 0..3u8 {
            send(&client, proxy.addr(), &[i; 100]).await;
            assert_eq!(recv(&client).await, (vec![i; 100], proxy.addr()));
        }
        wait_counters(&proxy, |c| c == (3, 0, 3, 0)).await;
    }

    #[tokio::test]
    async fn delay_shows_up_in_round_trip_and_keeps_order() {
        let (proxy, client) = proxied_echo().await;
        proxy.set_delay(Direction::Both, Duration::from_millis(50));
        let start = Instant::now();
        send(&client, proxy.addr(), b"ping").await;
        assert_eq!(recv(&client).await.0, b"ping");
        let rtt = start.elapsed();
        let ok = rtt >= Duration::from_millis(100) && rtt < Duration::from_secs(1);
        assert!(ok, "round trip {rtt:?}");
        for i in 0..20u8 {
            send(&client, proxy.addr(), &[i]).await;
        }
        for i in 0..20u8 {
            assert_eq!(recv(&client).await.0, vec![i]);
        }
    }

    #[tokio::test]
    async fn full_loss_drops_everything_in_that_direction_only() {
        let (proxy, client) = proxied_echo().await;
        proxy.set_loss(Direction::ToTarget, 1.0);
        for _ in 0..10 {
            send(&client, proxy.addr(), b"lost").await;
        }
        wait_counters(&proxy, |c| c == (0, 10, 0, 0)).await;
        proxy.set_loss(Direction::ToTarget, 0.0);
        proxy.set_loss(Direction::ToClient, 1.0);
        for _ in 0..10 {
            send(&client, proxy.addr(), b"echo lost").await;
        }
        wait_counters(&proxy, |c| c == (10, 10, 0, 10)).await;
        proxy.set_loss(Direction::ToClient, 0.0);
        send(&client, proxy.addr(), b"back").await;
        // Nothing dropped was delivered: the first datagram to arrive is the last one sent.
        assert_eq!(recv(&client).await.0, b"back");
    }

    #[tokio::test]
    async fn partition_to_target_drops_client_packets_but_not_replies_until_heal() {
        let (target, client) = (socket().await, socket().await);
        let proxy = FaultProxy::start(target.local_addr().expect("addr"))
            .await
            .expect("start");
        send(&client, proxy.addr(), b"hello").await;
        let (hello, proxy_side) = recv(&target).await;
        assert_eq!(hello, b"hello");

        proxy.partition(Direction::ToTarget);
        send(&client, proxy.addr(), b"lost").await;
        wait_counters(&proxy, |(_, dropped, _, _)| dropped == 1).await;
        // The target talks unprompted to where it last heard from: that way still works.
        send(&target, proxy_side, b"unprompted").await;
        assert_eq!(recv(&client).await.0, b"unprompted");

        proxy.heal();
        send(&client, proxy.addr(), b"again").await;
        assert_eq!(recv(&target).await.0, b"again");
        wait_counters(&proxy, |c| c == (2, 1, 1, 0)).await;
    }
}
