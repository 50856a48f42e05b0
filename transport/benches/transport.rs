//! Transport benchmark: bulk MB/s over loopback through this transport (framing, have/want,
//! SHA-256 verification on arrival, limits) for one and several streams; the same bytes over a
//! bare quinn stream with the same settings, and over TCP + rustls TLS 1.3; the disk's
//! write+fsync rate; small-RPC round trips per second; control RTT with and without bulk.
//!
//! Like the bare quinn and TCP readers, the transport's receiver drops the bytes once they are
//! verified (it keeps the ids, so have/want still works); storing them is the disk's row. One
//! more row keeps them in memory, to show what filling fresh pages costs on this machine.
//!
//!   cargo bench -p ironcore-transport --bench transport

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironcore_transport::testing::{MemChunks, VerifyingSink};
use ironcore_transport::{
    BoxFuture, ChunkStore, ClusterId, NodeIdentity, Peer, PeerInfo, PinSet, RpcHandler,
    TransferOptions, Transport, TransportConfig,
};
use ironcore_types::ChunkId;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

const MIB: usize = 1 << 20;
const CHUNK: usize = 4 * MIB;
const TOTAL: usize = 1024 * MIB;

struct Pong;

impl RpcHandler for Pong {
    fn handle(&self, _from: PeerInfo, request: Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> {
        Box::pin(async move { Ok(request) })
    }
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

fn chunk_data(seed: u32) -> Vec<u8> {
    let mut v: Vec<u8> = (0..CHUNK)
        .map(|i| (i as u8).wrapping_mul(151) ^ (i >> 12) as u8)
        .collect();
    v[..4].copy_from_slice(&seed.to_le_bytes());
    v
}

#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["bench".to_string()]).expect("certificate");
    (
        ck.cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der())),
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_tls(alpn: &[u8]) -> rustls::ClientConfig {
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    c.alpn_protocols = vec![alpn.to_vec()];
    c
}

fn server_tls(alpn: &[u8]) -> rustls::ServerConfig {
    let (cert, key) = self_signed();
    let mut s = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .expect("server cert");
    s.alpn_protocols = vec![alpn.to_vec()];
    s
}

/// The same transport settings as the bulk path (64 MiB windows, BBR).
fn bulk_transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let w = quinn::VarInt::from_u32(64 << 20);
    t.receive_window(w);
    t.stream_receive_window(w);
    t.send_window(64 << 20);
    t.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    Arc::new(t)
}

/// `total` bytes over `streams` bare quinn streams; through the fault proxy with `one_way`
/// delay each way when given.
async fn bare_quinn(streams: usize, total: usize, one_way: Option<Duration>) -> f64 {
    let mut server_cfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(server_tls(b"bare"))
            .expect("quic server"),
    ));
    server_cfg.transport_config(bulk_transport_config());
    let server =
        quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse().expect("addr")).expect("server");
    let mut addr = server.local_addr().expect("addr");
    let proxy = match one_way {
        Some(d) => {
            let p = ironcore_transport::fault::FaultProxy::start(addr)
                .await
                .expect("proxy");
            p.set_delay(ironcore_transport::fault::Direction::Both, d);
            addr = p.addr();
            Some(p)
        }
        None => None,
    };
    let per = total / streams;
    let recv_task = tokio::spawn(async move {
        let conn = server
            .accept()
            .await
            .expect("incoming")
            .await
            .expect("conn");
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let mut s = conn.accept_uni().await.expect("stream");
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; MIB];
                let mut n = 0;
                while let Some(k) = s.read(&mut buf).await.expect("read") {
                    n += k;
                }
                n
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.expect("join");
        }
        total
    });
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client");
    let mut cc = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(client_tls(b"bare"))
            .expect("quic client"),
    ));
    cc.transport_config(bulk_transport_config());
    client.set_default_client_config(cc);
    let conn = client
        .connect(addr, "bench")
        .expect("connect")
        .await
        .expect("conn");
    let data = Arc::new(chunk_data(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let conn = conn.clone();
        let data = data.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = conn.open_uni().await.expect("open");
            let mut left = per;
            while left > 0 {
                let n = left.min(CHUNK);
                s.write_all(&data[..n]).await.expect("write");
                left -= n;
            }
            s.finish().expect("finish");
            let _ = s.stopped().await;
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let got = recv_task.await.expect("join");
    assert_eq!(got, per * streams);
    drop(proxy);
    mbps(got, t.elapsed().as_secs_f64())
}

fn tcp_rustls() -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server_cfg = Arc::new(server_tls(b"tcp"));
    let server = std::thread::spawn(move || {
        let (sock, _) = listener.accept().expect("accept");
        let conn = rustls::ServerConnection::new(server_cfg).expect("server conn");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = vec![0u8; MIB];
        let mut n = 0;
        loop {
            match tls.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(_) => break,
            }
        }
        n
    });
    let sock = TcpStream::connect(addr).expect("connect");
    let conn = rustls::ClientConnection::new(
        Arc::new(client_tls(b"tcp")),
        ServerName::try_from("bench").expect("name"),
    )
    .expect("client conn");
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let data = chunk_data(0);
    let t = Instant::now();
    let mut left = TOTAL;
    while left > 0 {
        let n = left.min(CHUNK);
        tls.write_all(&data[..n]).expect("write");
        left -= n;
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(std::net::Shutdown::Write);
    let got = server.join().expect("join");
    mbps(got, t.elapsed().as_secs_f64())
}

fn disk_fsync() -> f64 {
    let path = std::env::temp_dir().join("ironcore-transport-bench.bin");
    let data = chunk_data(0);
    let t = Instant::now();
    let mut f = std::fs::File::create(&path).expect("create");
    for _ in 0..(TOTAL / CHUNK) {
        f.write_all(&data).expect("write");
    }
    f.sync_all().expect("fsync");
    let rate = mbps(TOTAL, t.elapsed().as_secs_f64());
    let _ = std::fs::remove_file(&path);
    rate
}

/// Two transports: `a` sends from a memory store; `b` receives into `receiver`.
async fn transport_pair_into(
    receiver: Arc<dyn ChunkStore>,
) -> (Transport, Transport, Arc<MemChunks>, Peer) {
    let cluster = ClusterId::random();
    let (na, nb) = ("a".parse().expect("id"), "b".parse().expect("id"));
    let (ia, ib) = (
        NodeIdentity::generate(&na).expect("id"),
        NodeIdentity::generate(&nb).expect("id"),
    );
    let pins = PinSet::new();
    pins.pin(&na, ia.fingerprint());
    pins.pin(&nb, ib.fingerprint());
    let store_a = Arc::new(MemChunks::default());
    let addr = "127.0.0.1:0".parse().expect("addr");
    let a = Transport::bind(
        TransportConfig::new(na, cluster, 1),
        addr,
        ia,
        pins.clone(),
        Arc::new(Pong),
        store_a.clone(),
    )
    .await
    .expect("bind a");
    let b = Transport::bind(
        TransportConfig::new(nb.clone(), cluster, 1),
        addr,
        ib,
        pins,
        Arc::new(Pong),
        receiver,
    )
    .await
    .expect("bind b");
    let peer = Peer {
        node: nb,
        addr: b.local_addr().expect("addr"),
    };
    (a, b, store_a, peer)
}

async fn transport_pair() -> (Transport, Transport, Arc<MemChunks>, Peer) {
    transport_pair_into(Arc::new(MemChunks::default())).await
}

/// Sends 1 GiB in `streams` transfers. The receiver verifies every chunk; with `keep` it also
/// keeps the bytes in memory (1 GiB of fresh pages), else only the ids, discarding the bytes
/// as the bare quinn reader does.
async fn through_transport(streams: usize, round: u32, keep: bool) -> f64 {
    let receiver: Arc<dyn ChunkStore> = if keep {
        Arc::new(MemChunks::default())
    } else {
        Arc::new(VerifyingSink::default())
    };
    let (a, _b, store, peer) = transport_pair_into(receiver).await;
    let per = TOTAL / CHUNK / streams;
    let sets: Vec<Vec<ChunkId>> = (0..streams)
        .map(|s| {
            (0..per)
                .map(|i| store.add(chunk_data(round * 10_000 + (s * per + i) as u32)))
                .collect()
        })
        .collect();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for ids in sets {
        let (a, peer) = (a.clone(), peer.clone());
        tasks.push(tokio::spawn(async move {
            a.send_chunks(&peer, &ids, &TransferOptions::default())
                .await
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await.expect("join").expect("transfer").bytes as usize;
    }
    mbps(bytes, t.elapsed().as_secs_f64())
}

/// One transfer of 256 MiB through the fault proxy with `one_way` delay in each direction.
async fn through_proxy(one_way: Duration, round: u32) -> f64 {
    let (a, _b, store, peer) = transport_pair().await;
    let proxy = ironcore_transport::fault::FaultProxy::start(peer.addr)
        .await
        .expect("proxy");
    proxy.set_delay(ironcore_transport::fault::Direction::Both, one_way);
    let via = Peer {
        node: peer.node.clone(),
        addr: proxy.addr(),
    };
    let ids: Vec<ChunkId> = (0..64)
        .map(|i| store.add(chunk_data(round * 10_000 + i)))
        .collect();
    let t = Instant::now();
    let report = a
        .send_chunks(&via, &ids, &TransferOptions::default())
        .await
        .expect("transfer");
    let rate = mbps(report.bytes as usize, t.elapsed().as_secs_f64());
    let (fwd_t, drop_t, fwd_c, drop_c) = proxy.counters();
    if std::env::args().any(|a| a == "proxy-counters") {
        println!(
            "  proxy {one_way:?}: to target {fwd_t} forwarded / {drop_t} dropped; to client {fwd_c} / {drop_c}; {rate:.0} MB/s"
        );
    }
    rate
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p) as usize]
}

async fn rpc(a: &Transport, peer: &Peer, n: usize, pause: Duration) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        a.call_raw(peer, b"ping").await.expect("rpc");
        out.push(t.elapsed().as_secs_f64() * 1e3);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    out
}

/// The median of three runs: this machine's loopback figures swing between runs.
async fn median3<F, Fut>(mut f: F) -> f64
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let mut v = [f(1).await, f(2).await, f(3).await];
    v.sort_by(|a, b| a.total_cmp(b));
    v[1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // `-- profile N`: only the transport with N streams, for a profiler.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "proxy-counters") {
        for ms in [0, 25] {
            through_proxy(Duration::from_millis(ms), 50 + ms as u32).await;
            let bare = bare_quinn(1, 256 * MIB, Some(Duration::from_millis(ms))).await;
            println!("  bare quinn through the proxy, {ms} ms each way: {bare:.0} MB/s");
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "profile") {
        let streams = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(1);
        for r in 0..3 {
            println!(
                "transport, {streams} streams: {:.0} MB/s",
                through_transport(streams, 100 + r, false).await
            );
        }
        return;
    }
    println!(
        "machine: {cores} cores; {} MiB per measurement, {} MiB chunks, loopback",
        TOTAL >> 20,
        CHUNK >> 20
    );
    let disk = disk_fsync();
    println!("disk write+fsync              {disk:>8.0} MB/s");
    let tcp = median3(|_| async { tcp_rustls() }).await;
    println!("TCP + rustls TLS 1.3 (1 conn) {tcp:>8.0} MB/s");
    let bare1 = median3(|_| bare_quinn(1, TOTAL, None)).await;
    println!("bare quinn, 1 stream          {bare1:>8.0} MB/s");
    let bare4 = median3(|_| bare_quinn(4, TOTAL, None)).await;
    println!("bare quinn, 4 streams         {bare4:>8.0} MB/s");
    let ours1 = median3(|r| through_transport(1, r, false)).await;
    println!(
        "this transport, 1 stream      {ours1:>8.0} MB/s   (framing, have/want, SHA-256 on arrival; bytes then dropped, as above)"
    );
    let ours4 = median3(|r| through_transport(4, 10 + r, false)).await;
    println!("this transport, 4 streams     {ours4:>8.0} MB/s");
    let kept = median3(|r| through_transport(1, 40 + r, true)).await;
    println!(
        "  the same, kept in memory    {kept:>8.0} MB/s   (1 stream; the receiver also fills 1 GiB of new pages)"
    );

    let proxied = median3(|r| through_proxy(Duration::ZERO, 20 + r)).await;
    println!(
        "through the fault proxy, 0 ms  {proxied:>8.0} MB/s   (the userspace proxy's own ceiling)"
    );
    let wan = median3(|r| through_proxy(Duration::from_millis(25), 30 + r)).await;
    println!("through the proxy, 50 ms RTT   {wan:>8.0} MB/s   (64 MiB windows; 256 MiB per run)");
    let wan_bare = median3(|_| bare_quinn(1, 256 * MIB, Some(Duration::from_millis(25)))).await;
    println!(
        "  bare quinn, same proxy+delay {wan_bare:>8.0} MB/s   (what this emulated link carries: {:.2} of it filled)",
        wan / wan_bare
    );

    let (a, _b, store, peer) = transport_pair().await;
    let mut idle = rpc(&a, &peer, 3000, Duration::ZERO).await;
    let total: f64 = idle.iter().sum();
    println!(
        "small RPC, sequential         {:>8.0} round trips/s",
        idle.len() as f64 / (total / 1e3)
    );
    let (p50, p99) = (pct(&mut idle, 0.5), pct(&mut idle, 0.99));
    let ids: Vec<ChunkId> = (0..200)
        .map(|i| store.add(chunk_data(90_000 + i)))
        .collect();
    let bulk = {
        let (a, peer) = (a.clone(), peer.clone());
        tokio::spawn(async move {
            a.send_chunks(&peer, &ids, &TransferOptions::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut busy = rpc(&a, &peer, 300, Duration::from_millis(2)).await;
    let running = !bulk.is_finished();
    let _ = bulk.await;
    println!(
        "control RTT idle p50 {p50:.2} ms p99 {p99:.2} ms; during bulk p50 {:.2} ms p99 {:.2} ms (bulk ran throughout: {running})",
        pct(&mut busy, 0.5),
        pct(&mut busy, 0.99)
    );
    println!(
        "\nratios (both readers drop the bytes): transport/bare quinn 1 stream {:.2}, 4 streams {:.2}; transport/disk {:.2}",
        ours1 / bare1,
        ours4 / bare4,
        ours1 / disk
    );
}
