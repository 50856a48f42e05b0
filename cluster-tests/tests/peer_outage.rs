//! A voter down for a minute, then back: what it costs the leader, and how soon the restarted
//! node serves. Real daemon processes on loopback, killed with SIGKILL.

use std::time::{Duration, Instant};

use ironcore_cluster_tests::{DaemonCluster, index_of, ok, wait};

#[test]
fn a_dead_voter_costs_the_leader_little_and_serves_soon_after_its_restart() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    let src = c.base.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let s = src.to_str().unwrap().to_string();
    c.create_datastore(0, "store1", 2);
    ok(&c
        .cli(0, &["backup", &s, "--store", "store1", "--group", "host/a"])
        .unwrap());

    let status = c.cli_json(0, &["cluster", "status"]).unwrap();
    let leader = index_of(&c, &status, status["leader"].as_u64().unwrap());
    let victim = (0..3).find(|&i| i != leader).unwrap();
    let witness = (0..3).find(|&i| i != leader && i != victim).unwrap();

    // A minute with one voter dead: the leader's logs and CPU.
    c.nodes[victim].kill();
    std::thread::sleep(Duration::from_secs(2));
    let (log0, cpu0) = (
        c.nodes[leader].log_bytes(),
        c.nodes[leader].cpu_time().unwrap(),
    );
    let window = Duration::from_secs(60);
    std::thread::sleep(window);
    let (log1, cpu1) = (
        c.nodes[leader].log_bytes(),
        c.nodes[leader].cpu_time().unwrap(),
    );
    let (grown, busy) = (log1 - log0, cpu1 - cpu0);
    eprintln!(
        "leader {} with {} down for {} s: logs grew {grown} bytes, CPU {} ms ({:.1}% of a core)",
        c.nodes[leader].name,
        c.nodes[victim].name,
        window.as_secs(),
        busy.as_millis(),
        busy.as_secs_f64() * 100.0 / window.as_secs_f64()
    );
    assert!(
        grown < 1 << 20,
        "the leader's logs grew {grown} bytes in a minute"
    );
    assert!(
        busy < window / 10,
        "the leader used {} ms of CPU in a minute with one voter down",
        busy.as_millis()
    );
    // The cluster still takes backups meanwhile...
    ok(&c
        .cli(
            witness,
            &["backup", &s, "--store", "store1", "--group", "host/b"],
        )
        .unwrap());
    // ...but not into a datastore that keeps a copy on every node: refused, not acknowledged
    // with fewer copies than it promises.
    c.create_datastore(witness, "store3", 3);
    let short = c
        .cli(
            witness,
            &["backup", &s, "--store", "store3", "--group", "host/c"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(
        !short.status.success(),
        "a backup short of copies was acknowledged"
    );
    assert!(
        err.contains("keeps 3 copies") && err.contains(&c.nodes[victim].name),
        "{err}"
    );
    assert!(
        c.snapshots_of(leader, "store3", "host/c")
            .unwrap()
            .is_empty()
    );

    // The victim comes back: it answers and takes a backup within seconds of its start.
    let started = Instant::now();
    c.spawn(victim).unwrap();
    wait(
        "the restarted node to list snapshots",
        Duration::from_secs(30),
        || {
            Ok(c.cli(victim, &["snapshot", "list", "--store", "store1"])?
                .status
                .success())
        },
    )
    .unwrap();
    let listed = started.elapsed();
    std::fs::write(src.join("etc/hosts"), "127.0.0.1 localhost restarted\n").unwrap();
    ok(&c
        .cli(
            victim,
            &["backup", &s, "--store", "store1", "--group", "host/a"],
        )
        .unwrap());
    let backed_up = started.elapsed();
    eprintln!(
        "restarted {}: snapshot list answered {} ms and a backup done {} ms after its start",
        c.nodes[victim].name,
        listed.as_millis(),
        backed_up.as_millis()
    );
    assert!(
        listed < Duration::from_secs(5),
        "snapshot list took {listed:?}"
    );
    assert!(
        backed_up < Duration::from_secs(5),
        "the backup ended {backed_up:?} after start"
    );
    assert_eq!(c.snapshots_of(leader, "store1", "host/a").unwrap().len(), 2);
    // With every node back, the same backup gets its three copies.
    ok(&c
        .cli(
            victim,
            &["backup", &s, "--store", "store3", "--group", "host/c"],
        )
        .unwrap());
    assert_eq!(c.snapshots_of(leader, "store3", "host/c").unwrap().len(), 1);

    // Killed and started again at once: the leader still holds a connection to the dead
    // process, which the new one resets at the leader's next packet (same connection-id and
    // reset keys), so the leader reaches it at once rather than after the 30 s idle timeout.
    c.nodes[victim].kill();
    let started = Instant::now();
    c.spawn(victim).unwrap();
    wait(
        "the re-restarted node to serve",
        Duration::from_secs(40),
        || {
            Ok(c.cli(victim, &["snapshot", "list", "--store", "store1"])?
                .status
                .success())
        },
    )
    .unwrap();
    let again = started.elapsed();
    eprintln!(
        "killed and restarted at once, {} served after {} ms",
        c.nodes[victim].name,
        again.as_millis()
    );
    assert!(again < Duration::from_secs(5), "it served after {again:?}");
}

#[test]
fn sigterm_stops_a_node_quickly_and_ends_its_running_tasks() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    c.create_datastore(0, "store1", 2);
    // A backup that stays running (its client reads from a FIFO that is kept open).
    let (mut client, writer, upid) = c.fifo_backup(1, "store1", "vm/100").unwrap();
    let (took, status) = c.nodes[1].terminate(Duration::from_secs(30)).unwrap();
    eprintln!(
        "node2 stopped {} ms after SIGTERM: {status}",
        took.as_millis()
    );
    assert!(status.success(), "the node exited with {status} on SIGTERM");
    assert!(
        took < Duration::from_secs(5),
        "the node took {took:?} to stop"
    );
    drop(writer);
    let _ = client.wait();
    // The cluster learned at once that the task ended, and why (not after a lease ran out).
    let tasks = c.cli_json(0, &["task", "list"]).unwrap();
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["upid"] == upid.as_str())
        .unwrap_or_else(|| panic!("task {upid} not listed: {tasks}"));
    let state = task["state"].to_string();
    assert!(state.contains("shut down"), "task {upid} is {state}");
    assert!(c.snapshots_of(0, "store1", "vm/100").unwrap().is_empty());
    // It starts again and serves.
    c.spawn(1).unwrap();
    wait("node2 to serve again", Duration::from_secs(30), || {
        let out = c.cli(1, &["snapshot", "list", "--store", "store1"])?;
        if !out.status.success() {
            anyhow::bail!("{}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(true)
    })
    .unwrap();

    // With two of three nodes gone, the last one says at once that it cannot serve what needs
    // the cluster, and which nodes to use, instead of letting the request run into the Raft
    // timeout (10 s).
    c.nodes[1].kill();
    c.nodes[2].kill();
    // (A request already running when the quorum goes still meets the timeout; one that
    // starts once the leader's last quorum acknowledgement is older than twice the election
    // timeout, 3.2 s here, is answered at once.)
    std::thread::sleep(Duration::from_secs(4));
    let asked = std::time::Instant::now();
    let out = c.cli(0, &["datastore", "list"]).unwrap();
    let took = asked.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("node1 alone answered after {} ms: {err}", took.as_millis());
    assert!(!out.status.success());
    assert!(
        err.contains("has not heard from the cluster's leader")
            && err.contains("node2")
            && err.contains("node3"),
        "{err}"
    );
    assert!(took < Duration::from_secs(2), "the answer took {took:?}");
    // Listing snapshots is served from its own replica instead, at once, flagged stale.
    let asked = std::time::Instant::now();
    let out = c
        .cli(0, &["snapshot", "list", "--store", "store1"])
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stale answer"), "{err}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
}
