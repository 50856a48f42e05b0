//! Raft commit benchmark (issue 4): commits per second and commit latency of a 5-node cluster
//! on loopback (real RocksDB, real QUIC, a fault proxy on every link), with no added delay and
//! with 20 ms one-way delay between the primary and backup sites, beside the latency of one
//! synced RocksDB write measured in the same run, and a one-voter baseline (no replication,
//! no network) to tell storage time from replication time. Measurements only print; nothing
//! asserts timing.
//!
//!   cargo bench -p ironcore-raft --bench commits
//!
//! `-- secs N` sets the length of each cluster measurement (default 4 s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ironcore_raft::testing::Cluster;
use ironcore_raft::{
    AddressBook, ClusterNode, Command, NodeId, ProbePolicy, RaftNetwork, RaftNode, RaftRequest,
    RaftResponse,
};

/// Node `i + 1` stands in `SITES[i]`.
const SITES: [&str; 5] = ["primary", "primary", "backup", "backup", "tiebreaker"];
/// Concurrent writers per measurement.
const CLIENTS: [usize; 3] = [1, 16, 64];
/// Bytes per written value.
const VALUE: usize = 64;
/// Synced RocksDB writes measured.
const ROCKS_WRITES: usize = 2000;
/// How the benchmark's own networks probe a peer that stops answering.
const PROBE: ProbePolicy = ProbePolicy {
    timeout: Duration::from_millis(500),
    interval: Duration::from_secs(1),
};
/// Ping round trips measured per path.
const PINGS: usize = 1000;
/// One-way delay between the primary and backup sites in the second half.
const SITE_DELAY: Duration = Duration::from_millis(20);
/// Log written while a backup-site voter is cut off, for the catch-up measurement.
const CATCH_UP_MIB: usize = 48;

/// Latencies in milliseconds, sorted; the `q` quantile.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `ROCKS_WRITES` synced puts of small values into a fresh database, one at a time, as the
/// Raft log store does them (default options, WAL synced per write).
fn rocks_synced() -> (f64, f64, f64) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    let db = rocksdb::DB::open(&opts, dir.path()).expect("open rocksdb");
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(true);
    let value = vec![0x5a; VALUE];
    let mut lat = Vec::with_capacity(ROCKS_WRITES);
    let start = Instant::now();
    for i in 0..ROCKS_WRITES {
        let t = Instant::now();
        db.put_opt(format!("k/{i:08}"), &value, &wo)
            .expect("synced put");
        lat.push(ms(t.elapsed()));
    }
    let rate = ROCKS_WRITES as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (pct(&lat, 0.5), pct(&lat, 0.99), rate)
}

/// What one measurement saw.
struct Run {
    commits: usize,
    errors: usize,
    secs: f64,
    /// Commit latencies in milliseconds, sorted.
    lat: Vec<f64>,
    /// The leader's term before and after.
    terms: (u64, u64),
}

/// `clients` tasks, each writing sequentially on `node` for `secs`.
async fn measure(node: &RaftNode, clients: usize, secs: Duration, tag: &str) -> Run {
    let term_before = node.metrics().current_term;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let node = node.clone();
            let stop = stop.clone();
            let tag = format!("{tag}/c{c}");
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let cmd = Command::SetKey {
                        key: format!("{tag}/{i}"),
                        value: vec![0x5a; VALUE],
                    };
                    i += 1;
                    let t = Instant::now();
                    match node.write(cmd).await {
                        Ok(_) => lat.push(ms(t.elapsed())),
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    tokio::time::sleep(secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut run = Run {
        commits: 0,
        errors: 0,
        secs: 0.0,
        lat: Vec::new(),
        terms: (term_before, 0),
    };
    for t in tasks {
        let (lat, errors) = t.await.expect("writer task");
        run.commits += lat.len();
        run.errors += errors;
        run.lat.extend(lat);
    }
    run.secs = start.elapsed().as_secs_f64();
    run.terms.1 = node.metrics().current_term;
    run.lat.sort_by(f64::total_cmp);
    run
}

fn row(delay: &str, clients: usize, run: &Run) {
    let moved = if run.terms.0 == run.terms.1 {
        String::new()
    } else {
        format!("   term {} -> {}!", run.terms.0, run.terms.1)
    };
    println!(
        "{delay:<22} {clients:>7} {:>8} {:>10.0} {:>8.2} {:>8.2} {:>6}{moved}",
        run.commits,
        run.commits as f64 / run.secs,
        pct(&run.lat, 0.5),
        pct(&run.lat, 0.99),
        run.errors,
    );
}

/// `PINGS` sequential Ping round trips from `from` to node `to` over `network`: p50, p99 (ms).
async fn pings(network: &RaftNetwork, to: NodeId, info: &ClusterNode) -> (f64, f64) {
    let link = network.link(to, info);
    let mut lat = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        let answer = link
            .send(&RaftRequest::Ping, Duration::from_secs(5))
            .await
            .expect("ping");
        assert!(matches!(answer, RaftResponse::Pong), "{answer:?}");
        lat.push(ms(t.elapsed()));
    }
    lat.sort_by(f64::total_cmp);
    (pct(&lat, 0.5), pct(&lat, 0.99))
}

fn header() {
    println!(
        "{:<22} {:>7} {:>8} {:>10} {:>8} {:>8} {:>6}",
        "added delay", "clients", "commits", "commits/s", "p50 ms", "p99 ms", "errors"
    );
}

/// Elects a leader and moves it to node 1 (site primary) if it landed elsewhere.
async fn leader_on_primary(cluster: &Cluster) -> (NodeId, NodeId) {
    let elected = cluster.leader().await.expect("a leader");
    if cluster.site(elected) == "primary" {
        return (elected, elected);
    }
    cluster
        .node(elected)
        .transfer_leader(1)
        .await
        .expect("transfer leadership to node 1");
    let mut leader = cluster.leader().await.expect("a leader after transfer");
    for _ in 0..50 {
        if leader == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        leader = cluster.leader().await.expect("a leader after transfer");
    }
    (elected, leader)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = args
        .iter()
        .position(|a| a == "secs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .map_or(Duration::from_secs(4), Duration::from_secs_f64);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "machine: {cores} cores (tokio workers: {cores}); loopback; temp dir {}",
        std::env::temp_dir().display()
    );
    println!("goal: >= 2000 commits/s with no added delay");
    println!();

    let (p50, p99, rate) = tokio::task::spawn_blocking(rocks_synced)
        .await
        .expect("rocksdb measurement");
    println!(
        "RocksDB synced write ({ROCKS_WRITES} puts of {VALUE} B, one at a time): \
         p50 {p50:.2} ms  p99 {p99:.2} ms  {rate:.0} writes/s"
    );
    println!();

    // Baseline: one voter, so a commit is its own synced append and apply, with no network.
    let single = Cluster::start_in_sites(&["primary"])
        .await
        .expect("start the single node");
    let alone = single.leader().await.expect("the single node leads");
    let node = single.node(alone).clone();
    let _ = measure(&node, 4, Duration::from_millis(500), "warmup").await;
    println!("baseline: 1 voter (no replication, no network), same writes");
    header();
    for clients in [1, 16] {
        let run = measure(&node, clients, secs, &format!("single/{clients}")).await;
        row("none (1 voter)", clients, &run);
    }
    drop(node);
    single.finish().await.expect("stop the single node");
    println!();

    let cluster = Cluster::start_in_sites(&SITES)
        .await
        .expect("start the cluster");
    let (elected, leader) = leader_on_primary(&cluster).await;
    let layout: Vec<String> = cluster
        .running()
        .into_iter()
        .map(|id| format!("n{id}={}", cluster.site(id)))
        .collect();
    println!("cluster: 5 voters, {}", layout.join(" "));
    println!(
        "leader: n{leader} ({}); first elected: n{elected} ({}); writes go to the leader",
        cluster.site(leader),
        cluster.site(elected)
    );
    println!(
        "each row: {:.1} s of clients writing sequentially, Command::SetKey with {VALUE} B values",
        secs.as_secs_f64()
    );
    let node = cluster.node(leader).clone();
    // The bare control-RPC round trip to a follower, through its fault proxy (as Raft's own
    // traffic goes) and straight to its socket (a network of its own with no overrides).
    let follower = cluster
        .running()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    let info = cluster.info(follower);
    let proxied = RaftNetwork::new(node.transport().clone(), node.address_book().clone(), PROBE);
    let direct = RaftNetwork::new(node.transport().clone(), AddressBook::new(), PROBE);
    let _ = pings(&direct, follower, &info).await;
    let (pp50, pp99) = pings(&proxied, follower, &info).await;
    let (dp50, dp99) = pings(&direct, follower, &info).await;
    println!(
        "control RPC round trip n{leader} -> n{follower} ({PINGS} sequential pings): \
         through the proxy p50 {pp50:.2} ms p99 {pp99:.2} ms; direct p50 {dp50:.2} ms p99 {dp99:.2} ms"
    );
    // Warm up: connections, first appends.
    let _ = measure(&node, 4, Duration::from_millis(500), "warmup").await;
    println!();
    header();
    for clients in CLIENTS {
        let run = measure(&node, clients, secs, &format!("none/{clients}")).await;
        row("none", clients, &run);
    }
    let links = cluster.delay_between_sites("primary", "backup", SITE_DELAY);
    let label = format!("{} ms primary<->backup", SITE_DELAY.as_millis());
    for clients in CLIENTS {
        let run = measure(&node, clients, secs, &format!("delay/{clients}")).await;
        row(&label, clients, &run);
    }
    catch_up(&cluster, &node, leader).await;
    cluster.delay_between_sites("primary", "backup", Duration::ZERO);
    println!();
    println!(
        "delay: {} ms one-way each direction on the {links} proxied links between primary and \
         backup; tiebreaker links undelayed",
        SITE_DELAY.as_millis()
    );
    cluster.finish().await.expect("stop the cluster");
}

/// How fast a backup-site voter cut off from the cluster catches up over the delayed link:
/// the time until it first moves, then the append stream's pace (pipelined, 1 MiB parts).
async fn catch_up(cluster: &Cluster, node: &RaftNode, leader: u64) {
    let lagger = (1..=5u64)
        .find(|id| *id != leader && SITES[(*id - 1) as usize] == "backup")
        .expect("a backup-site node");
    cluster.isolate(&std::collections::BTreeSet::from([lagger]));
    let value = vec![b'x'; 256 << 10];
    let mut last = 0;
    for i in 0..CATCH_UP_MIB * 4 {
        let cmd = Command::SetKey {
            key: format!("catch-up/{i}"),
            value: value.clone(),
        };
        last = node
            .write(cmd)
            .await
            .expect("write while n is cut off")
            .log_id
            .index;
    }
    let before = cluster
        .node(lagger)
        .metrics()
        .last_applied
        .map_or(0, |l| l.index);
    let started = Instant::now();
    cluster.heal();
    // First progress (the leader notices the node is back), then the stream's own pace.
    let lagging = cluster.node(lagger).raft().clone();
    lagging
        .wait(Some(Duration::from_secs(60)))
        .applied_index_at_least(Some(before + 1), "first entry after the heal")
        .await
        .expect("the cut-off node resumes");
    let resumed = started.elapsed().as_secs_f64();
    cluster
        .applied(lagger, last)
        .await
        .expect("the cut-off node catches up");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "catch-up: n{lagger} (backup site, {} ms one-way) cut off while {CATCH_UP_MIB} MiB of log \
         was written caught up in {secs:.2} s: first entry after {resumed:.2} s, then {:.1} MiB/s",
        SITE_DELAY.as_millis(),
        CATCH_UP_MIB as f64 / (secs - resumed).max(1e-3)
    );
}
