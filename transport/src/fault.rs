//! Fault injection without root, for tests and benches: a UDP proxy that sits in front of a
//! QUIC endpoint (the target). Clients are pointed at [`FaultProxy::addr`]; each client gets
//! its own socket towards the target (as a NAT would), so the target's answers on it go back
//! to that client, and one proxy serves every node that reaches the target through it. Per
//! direction it can add a one-way delay, cap the rate (a link that sends one packet after the
//! other, with 100 ms of buffer; beyond that it drops, as a router would), drop packets with
//! a probability, and partition, all changeable while it runs. Packets keep their order.
//! Dropping the proxy stops it.

use std::collections::HashMap;
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
const QUEUE_LEN: usize = 65536;
/// How much a rate-capped direction may have queued before it drops (UDP) or holds the
/// sender back (TCP).
pub(crate) const BUFFER: Duration = Duration::from_millis(100);
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
    pub(crate) fn indices(self) -> &'static [usize] {
        match self {
            Direction::ToTarget => &[TO_TARGET],
            Direction::ToClient => &[TO_CLIENT],
            Direction::Both => &[TO_TARGET, TO_CLIENT],
        }
    }
}

/// The delay and rate cap of one direction of a link, shared by the UDP and TCP proxies.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    delay_micros: AtomicU64,
    /// Bytes per second (0 = no cap).
    rate: AtomicU64,
    /// When the capped link is done sending what it has queued.
    busy_until: Mutex<Option<Instant>>,
}

impl Pace {
    pub(crate) fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_micros.store(micros, SeqCst);
    }

    pub(crate) fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, SeqCst);
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_micros.load(SeqCst)).min(Duration::from_secs(86_400 * 365))
    }

    /// `len` bytes handed to the link now: when they arrive at the far end, or, when the
    /// link already has more than [`BUFFER`] queued, `Err(how long until it has not)`.
    pub(crate) fn slot(&self, len: usize) -> std::result::Result<Instant, Duration> {
        let now = Instant::now();
        let rate = self.rate.load(SeqCst);
        if rate == 0 {
            return Ok(now + self.delay());
        }
        let mut busy = self.busy_until.lock().unwrap_or_else(|p| p.into_inner());
        let start = busy.map_or(now, |b| b.max(now));
        if start - now > BUFFER {
            return Err(start - now - BUFFER);
        }
        let done = start + Duration::from_secs_f64(len as f64 / rate as f64);
        *busy = Some(done);
        Ok(done + self.delay())
    }
}

/// The settings and counters of one direction, read per packet.
#[derive(Default)]
struct Dir {
    pace: Pace,
    /// The drop probability, as `f64` bits.
    loss_bits: AtomicU64,
    partitioned: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

impl Dir {
    /// When a packet of `len` bytes arriving now leaves, or `None` when it is dropped (loss,
    /// partition, or a full buffer).
    fn admit(&self, len: usize) -> Option<Instant> {
        let loss = f64::from_bits(self.loss_bits.load(SeqCst));
        if self.partitioned.load(SeqCst) || (loss > 0.0 && rand::random::<f64>() < loss) {
            self.dropped.fetch_add(1, SeqCst);
            return None;
        }
        let at = self.pace.slot(len).ok();
        if at.is_none() {
            self.dropped.fetch_add(1, SeqCst);
        }
        at
    }
}

/// Both directions of one emulated link; proxies made with [`FaultProxy::bind_sharing`] share
/// it (one rate cap and delay for every node behind the link).
#[derive(Default)]
pub(crate) struct Settings {
    dirs: [Dir; 2],
}

impl Settings {
    /// Direction `i`'s delay and rate cap.
    pub(crate) fn pace(&self, i: usize) -> &Pace {
        &self.dirs[i].pace
    }
}

/// A packet on its way: when it leaves, its bytes, the socket it leaves by, and where to.
type Queued = (Instant, Vec<u8>, Arc<UdpSocket>, SocketAddr);

/// The tasks of a proxy: every one is aborted when the proxy is dropped.
#[derive(Default)]
pub(crate) struct Tasks(Mutex<Vec<JoinHandle<()>>>);

impl Tasks {
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }

    pub(crate) fn abort_all(&self) {
        for task in self.0.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            task.abort();
        }
    }
}

/// What the proxy's tasks share.
struct Shared {
    settings: Arc<Settings>,
    target: SocketAddr,
    /// Each client's own socket towards the target.
    clients: Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>,
    tasks: Tasks,
    queues: [mpsc::Sender<Queued>; 2],
}

impl Shared {
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Queues `packet` in direction `i` unless the direction drops it.
    fn enqueue(&self, i: usize, packet: &[u8], by: Arc<UdpSocket>, to: SocketAddr) {
        let dir = &self.settings.dirs[i];
        if let Some(at) = dir.admit(packet.len())
            && self.queues[i]
                .try_send((at, packet.to_vec(), by, to))
                .is_err()
        {
            dir.dropped.fetch_add(1, SeqCst);
        }
    }
}

/// A running UDP proxy. Dropping it stops it (abort its tasks).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Binds 127.0.0.1:0 and forwards to `target`. Must be called inside a tokio runtime.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), target).await
    }

    /// Binds `listen` and forwards to `target`. Must be called inside a tokio runtime.
    pub async fn bind(listen: SocketAddr, target: SocketAddr) -> Result<Self> {
        Self::bind_with(listen, target, Arc::default()).await
    }

    /// As [`FaultProxy::bind`], on the same link as `link`: its settings (delay, rate cap,
    /// loss, partitions) and its rate budget are shared, so several nodes behind one link share
    /// its capacity.
    pub async fn bind_sharing(
        listen: SocketAddr,
        target: SocketAddr,
        link: &FaultProxy,
    ) -> Result<Self> {
        Self::bind_with(listen, target, link.shared.settings.clone()).await
    }

    /// The link this proxy sends over (for a TCP relay on the same link).
    pub(crate) fn link(&self) -> Arc<Settings> {
        self.shared.settings.clone()
    }

    async fn bind_with(
        listen: SocketAddr,
        target: SocketAddr,
        settings: Arc<Settings>,
    ) -> Result<Self> {
        let io = |action| move |source| TransportError::Io { action, source };
        let front = UdpSocket::bind(listen)
            .await
            .map_err(io("binding the fault proxy's client socket"))?;
        let addr = front
            .local_addr()
            .map_err(io("reading the fault proxy's address"))?;
        let front = Arc::new(front);
        let (to_target, rx_target) = mpsc::channel(QUEUE_LEN);
        let (to_client, rx_client) = mpsc::channel(QUEUE_LEN);
        let shared = Arc::new(Shared {
            settings,
            target,
            clients: Mutex::default(),
            tasks: Tasks::default(),
            queues: [to_target, to_client],
        });
        shared.spawn(release(Arc::downgrade(&shared), TO_TARGET, rx_target));
        shared.spawn(release(Arc::downgrade(&shared), TO_CLIENT, rx_client));
        shared.spawn(from_clients(Arc::downgrade(&shared), front));
        Ok(FaultProxy { addr, shared })
    }

    /// The address clients should send to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn dirs(&self, dir: Direction) -> impl Iterator<Item = &Dir> {
        dir.indices().iter().map(|&i| &self.shared.settings.dirs[i])
    }

    /// One-way delay added to every packet in `dir` (Both = each direction gets it). Packets
    /// keep their order.
    pub fn set_delay(&self, dir: Direction, delay: Duration) {
        for d in self.dirs(dir) {
            d.pace.set_delay(delay);
        }
    }

    /// Caps `dir` at `bytes_per_sec` (0 = no cap): packets leave one after the other at that
    /// rate, with 100 ms of buffer; what does not fit is dropped.
    pub fn set_rate(&self, dir: Direction, bytes_per_sec: u64) {
        for d in self.dirs(dir) {
            d.pace.set_rate(bytes_per_sec);
        }
    }

    /// Drop probability 0.0..=1.0 for packets in `dir` (clamped; NaN drops nothing).
    pub fn set_loss(&self, dir: Direction, probability: f64) {
        // A NaN stays NaN, and `rand < NaN` never holds: it drops nothing.
        let p = probability.clamp(0.0, 1.0);
        for d in self.dirs(dir) {
            d.loss_bits.store(p.to_bits(), SeqCst);
        }
    }

    /// Drop everything in `dir` (Both = full partition) until `heal`, including packets
    /// still waiting out a delay.
    pub fn partition(&self, dir: Direction) {
        for d in self.dirs(dir) {
            d.partitioned.store(true, SeqCst);
        }
    }

    /// Ends every partition.
    pub fn heal(&self) {
        for d in &self.shared.settings.dirs {
            d.partitioned.store(false, SeqCst);
        }
    }

    /// Packets forwarded and dropped so far, per direction: (to_target_forwarded,
    /// to_target_dropped, to_client_forwarded, to_client_dropped).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let [t, c] = self
            .shared
            .settings
            .dirs
            .each_ref()
            .map(|d| (d.forwarded.load(SeqCst), d.dropped.load(SeqCst)));
        (t.0, t.1, c.0, c.1)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.tasks.abort_all();
    }
}

/// Receives from the clients on `front`: each client's packets go to the target by its own
/// socket, created (with a task that carries the target's answers back) on its first packet.
async fn from_clients(shared: std::sync::Weak<Shared>, front: Arc<UdpSocket>) {
    let mut buf = vec![0u8; BUF_LEN];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else {
            // A transient socket error: do not spin on it.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let back = {
            let mut clients = shared.clients.lock().unwrap_or_else(|p| p.into_inner());
            match clients.get(&client) {
                Some(b) => Some(b.clone()),
                None => std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .and_then(|s| {
                        s.set_nonblocking(true)?;
                        UdpSocket::from_std(s)
                    })
                    .ok()
                    .map(|s| {
                        let s = Arc::new(s);
                        clients.insert(client, s.clone());
                        shared.spawn(from_target(
                            Arc::downgrade(&shared),
                            s.clone(),
                            front.clone(),
                            client,
                        ));
                        s
                    }),
            }
        };
        match back {
            Some(back) => shared.enqueue(TO_TARGET, &buf[..n], back, shared.target),
            None => {
                shared.settings.dirs[TO_TARGET].dropped.fetch_add(1, SeqCst);
            }
        }
    }
}

/// Carries the target's packets on `back` (one client's socket) to `client` through `front`.
async fn from_target(
    shared: std::sync::Weak<Shared>,
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
) {
    let mut buf = vec![0u8; BUF_LEN];
    loop {
        let Ok((n, from)) = back.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if from == shared.target {
            shared.enqueue(TO_CLIENT, &buf[..n], front.clone(), client);
        }
    }
}

/// Sends each queued packet of direction `i` when its time comes (the queue is in time order).
async fn release(shared: std::sync::Weak<Shared>, i: usize, mut rx: mpsc::Receiver<Queued>) {
    while let Some((at, packet, by, to)) = rx.recv().await {
        // Without a delay, forward at once: even a zero-length sleep waits for the timer's
        // next tick (about 1 ms), which would add latency to every packet.
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let dir = &shared.settings.dirs[i];
        // A partition drops packets that were waiting out a delay too.
        if dir.partitioned.load(SeqCst) {
            dir.dropped.fetch_add(1, SeqCst);
        } else {
            dir.forwarded.fetch_add(1, SeqCst);
            let _ = by.send_to(&packet, to).await;
        }
    }
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
    async fn each_client_gets_its_own_answers() {
        let (proxy, first) = proxied_echo().await;
        let second = socket().await;
        for i in 0..5u8 {
            send(&first, proxy.addr(), &[1, i]).await;
            send(&second, proxy.addr(), &[2, i]).await;
            assert_eq!(recv(&first).await.0, vec![1, i]);
            assert_eq!(recv(&second).await.0, vec![2, i]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rate_cap_paces_packets_and_drops_beyond_its_buffer() {
        let (proxy, client) = proxied_echo().await;
        // Sends `n` packets of 1,000 bytes, letting the proxy drain the socket as it goes (a
        // burst larger than the kernel's buffer would be lost before the proxy sees it).
        let burst = |n: usize| {
            let (client, to) = (&client, proxy.addr());
            async move {
                for k in 0..n {
                    send(client, to, &[7; 1000]).await;
                    if k % 10 == 9 {
                        tokio::task::yield_now().await;
                    }
                }
            }
        };
        // 500 kB/s: 50 packets take 100 ms, within the buffer.
        proxy.set_rate(Direction::ToTarget, 500_000);
        let start = Instant::now();
        burst(50).await;
        wait_counters(&proxy, |c| c.2 == 50).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(95) && took < Duration::from_secs(2),
            "{took:?}"
        );
        // 150 more at once: what does not fit in 100 ms of buffer is dropped. (The kernel may
        // drop some of a burst too, before the proxy sees them: they are in no counter.)
        let sent = Instant::now();
        burst(150).await;
        let sending = sent.elapsed();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (forwarded, dropped, _, _) = proxy.counters();
        // At most the buffer (50 packets) and what the link carried while the burst was sent.
        let fits = 50 + (sending.as_secs_f64() * 500.0) as u64 + 5;
        assert!(
            dropped > 0 && forwarded - 50 <= fits,
            "{:?}, {fits} could fit in {sending:?}",
            proxy.counters()
        );
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
