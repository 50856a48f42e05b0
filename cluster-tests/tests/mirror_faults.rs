//! Mirroring under faults, on the 2 + 2 + 1 layout (2 Primary nodes, 2 Backup nodes, a
//! witness), with the link into the Backup site limited so that mirroring is still in flight
//! when the fault hits:
//! - a Backup node killed with `kill -9` mid-mirror resumes after its restart, and the bytes
//!   sent again are only those of the chunks that were in flight (measured at the senders);
//! - a flipped bit in a chunk at a Backup node is found by verify and repaired from a copy;
//! - prune and GC (no grace) running while mirroring is in flight delete nothing a site still
//!   needs: with every Primary node killed, the Backup site restores identical;
//! - in `--mirror sync`, a backup acknowledged just before every Primary node is killed
//!   restores identical at the Backup site;
//! - the link limit into the Backup site (`cluster site set backup --bwlimit`) holds within
//!   10 % over 30 s of mirroring.

use std::path::Path;
use std::time::Duration;

use ironcore_cluster_tests::{DaemonCluster, chunk_copies, ok, wait};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// `files` files of 1 MiB of incompressible pseudo-random bytes (xorshift, seeded per file).
fn source(dir: &Path, files: std::ops::Range<u32>) {
    std::fs::create_dir_all(dir).unwrap();
    for i in files {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (u64::from(i) + 1).wrapping_mul(0xff51_afd7);
        let data: Vec<u8> = (0..MIB / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        std::fs::write(dir.join(format!("f{i}")), data).unwrap();
    }
}

fn snapshots(c: &DaemonCluster, i: usize, store: &str) -> Vec<Value> {
    c.cli_json(i, &["snapshot", "list", "--store", store])
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Whether every snapshot of `group` in `store` is complete at the Backup site (and there is
/// at least one).
fn complete_at_backup(c: &DaemonCluster, store: &str, group: &str) -> bool {
    let list: Vec<Value> = snapshots(c, 0, store)
        .into_iter()
        .filter(|s| s["group"] == group)
        .collect();
    !list.is_empty()
        && list
            .iter()
            .all(|s| s["sites"] == serde_json::json!(["primary", "backup"]))
}

fn backup(c: &DaemonCluster, store: &str, dir: &Path, group: &str) {
    ok(&c
        .cli(
            0,
            &[
                "backup",
                dir.to_str().unwrap(),
                "--store",
                store,
                "--group",
                group,
            ],
        )
        .unwrap());
}

fn restore_identical(c: &DaemonCluster, i: usize, store: &str, group: &str, dir: &Path) {
    let out = c
        .base
        .path()
        .join(format!("restore-{store}-{}", group.replace('/', "-")));
    let target = out.to_str().unwrap().to_string();
    wait(
        &format!("a restore of {group} through node{}", i + 1),
        Duration::from_secs(60),
        || {
            let _ = std::fs::remove_dir_all(&out);
            Ok(c.cli(i, &["restore", group, &target, "--store", store])?
                .status
                .success())
        },
    )
    .unwrap();
    ok(&c
        .cli(i, &["compare", dir.to_str().unwrap(), &target])
        .unwrap());
}

/// Chunk bytes the Primary nodes have written to other nodes so far.
fn sent_by_primary(c: &DaemonCluster) -> u64 {
    (0..2)
        .map(|i| {
            c.metric(i, "ironcore_transport_chunk_bytes_sent_total")
                .unwrap() as u64
        })
        .sum()
}

/// Bytes of the chunk files of `store` on the nodes named `nodes`.
fn bytes_on(c: &DaemonCluster, store: &str, nodes: &[&str]) -> u64 {
    chunk_copies(c, store)
        .iter()
        .map(|(len, paths)| {
            let on = paths
                .iter()
                .filter(|p| {
                    let p = p.to_string_lossy();
                    nodes.iter().any(|n| p.contains(&format!("/{n}/")))
                })
                .count();
            len * on as u64
        })
        .sum()
}

#[test]
fn a_killed_backup_node_resumes_damage_is_repaired_and_prune_gc_spare_what_sites_need() {
    let mut c = DaemonCluster::two_sites().expect("cluster starts");
    // 4 MiB/s into the Backup site: 2 MiB/s per Backup node.
    ok(&c
        .cli(0, &["cluster", "site", "set", "backup", "--bwlimit", "4"])
        .unwrap());

    // The Backup nodes are stopped while the backup is taken, so that what the Primary nodes
    // send from here on is mirroring alone.
    c.signal(2, "-STOP").unwrap();
    c.signal(3, "-STOP").unwrap();
    let a = c.base.path().join("a");
    source(&a, 0..24);
    backup(&c, "store1", &a, "host/a");
    let before = sent_by_primary(&c);
    c.signal(2, "-CONT").unwrap();
    c.signal(3, "-CONT").unwrap();
    // node3 is killed once it has pulled part of its share, and started again.
    wait("node3 pulling", Duration::from_secs(60), || {
        Ok(c.metric(2, "ironcore_mirror_pulled_bytes_total")? >= (3 * MIB) as f64)
    })
    .unwrap();
    c.nodes[2].kill();
    c.spawn(2).unwrap();
    wait(
        "host/a complete at the backup site",
        Duration::from_secs(120),
        || Ok(complete_at_backup(&c, "store1", "host/a")),
    )
    .unwrap();
    let sent = sent_by_primary(&c) - before;
    let share = bytes_on(&c, "store1", &["node3", "node4"]);
    let largest = chunk_copies(&c, "store1")[0].0;
    let resent = sent.saturating_sub(share);
    println!(
        "mirror after a kill -9: {sent} bytes sent by the Primary, {share} bytes held at the Backup site, {resent} sent again (largest chunk {largest} bytes)"
    );
    // What was in flight when node3 died: a chunk per source it pulled from (2), plus the
    // indexes it read again after its restart (under 1 MiB here).
    assert!(
        resent <= 2 * largest + MIB,
        "{resent} bytes sent again after the kill; {share} held"
    );
    let status = c
        .cli_json(0, &["mirror", "status", "--store", "store1"])
        .unwrap();
    assert_eq!(status[0]["failing-chunks"], 0, "{status}");

    // A flipped bit in a chunk at a Backup node: verify finds it and repairs it from a copy.
    let copies = chunk_copies(&c, "store1");
    let victim = copies
        .iter()
        .flat_map(|(_, p)| p.iter())
        .find(|p| p.to_string_lossy().contains("/node3/"))
        .expect("node3 holds a chunk")
        .clone();
    let good = std::fs::read(&victim).unwrap();
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&victim, &bytes).unwrap();
    let log = ok(&c.cli(0, &["verify", "start", "store1"]).unwrap());
    assert!(log.contains("CORRUPT chunk"), "{log}");
    assert!(log.contains("repaired 1 chunks at site backup"), "{log}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        good,
        "the copy was repaired"
    );

    // Prune and GC while mirroring is in flight: p1 and p2 share half their files; p1 is
    // pruned and collected with no grace while the Backup site still pulls p2.
    let (p1, p2) = (c.base.path().join("p1"), c.base.path().join("p2"));
    source(&p1, 100..108);
    source(&p2, 104..112);
    backup(&c, "store1", &p1, "host/p");
    std::thread::sleep(Duration::from_secs(1)); // snapshot times are in seconds
    backup(&c, "store1", &p2, "host/p");
    assert!(
        !complete_at_backup(&c, "store1", "host/p"),
        "mirroring finished before the prune; the test needs it in flight"
    );
    ok(&c
        .cli(
            0,
            &["prune", "host/p", "--store", "store1", "--keep-last", "1"],
        )
        .unwrap());
    ok(&c
        .cli(0, &["gc", "start", "store1", "--grace-secs", "0"])
        .unwrap());
    wait(
        "host/p complete at the backup site",
        Duration::from_secs(120),
        || Ok(complete_at_backup(&c, "store1", "host/p")),
    )
    .unwrap();
    assert_eq!(
        c.snapshots_of(0, "store1", "host/p").unwrap().len(),
        1,
        "the prune kept one snapshot"
    );
    // The Primary is lost: what the Backup site holds restores identical.
    c.nodes[0].kill();
    c.nodes[1].kill();
    restore_identical(&c, 2, "store1", "host/p", &p2);
    restore_identical(&c, 3, "store1", "host/a", &a);
}

#[test]
fn in_sync_mode_a_backup_acknowledged_before_the_primary_dies_restores_at_the_backup_site() {
    let mut c = DaemonCluster::start_at(&["primary", "primary", "backup", "backup", "witness"])
        .expect("cluster starts");
    let bad = c
        .cli(
            0,
            &[
                "datastore",
                "create",
                "solo",
                "--path",
                "/srv/solo",
                "--copies",
                "2",
                "--mirror",
                "sync",
            ],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr).to_string();
    assert!(
        !bad.status.success() && err.contains("no mirror site"),
        "{err}"
    );
    ok(&c
        .cli(
            0,
            &[
                "datastore",
                "create",
                "store2",
                "--path",
                "/srv/store2",
                "--copies",
                "primary=2,backup=1",
                "--mirror",
                "sync",
            ],
        )
        .unwrap());
    let s = c.base.path().join("s");
    source(&s, 0..6);
    // With the Backup site stopped, a backup cannot be acknowledged: it fails, naming the
    // site, and commits nothing.
    c.signal(2, "-STOP").unwrap();
    c.signal(3, "-STOP").unwrap();
    let refused = c
        .cli(
            0,
            &[
                "backup",
                s.to_str().unwrap(),
                "--store",
                "store2",
                "--group",
                "host/s",
            ],
        )
        .unwrap();
    c.signal(2, "-CONT").unwrap();
    c.signal(3, "-CONT").unwrap();
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        !refused.status.success(),
        "acknowledged without the Backup site"
    );
    assert!(err.contains("site backup"), "{err}");
    assert!(
        snapshots(&c, 0, "store2").is_empty(),
        "something was committed"
    );
    backup(&c, "store2", &s, "host/s");
    // Acknowledged means complete at the Backup site already.
    assert!(complete_at_backup(&c, "store2", "host/s"));
    c.nodes[0].kill();
    c.nodes[1].kill();
    restore_identical(&c, 2, "store2", "host/s", &s);
}

#[test]
fn the_link_limit_into_the_backup_site_holds_within_ten_percent_over_thirty_seconds() {
    let c = DaemonCluster::two_sites().expect("cluster starts");
    const LIMIT_MIB: u64 = 2;
    ok(&c
        .cli(
            0,
            &[
                "cluster",
                "site",
                "set",
                "backup",
                "--bwlimit",
                &LIMIT_MIB.to_string(),
            ],
        )
        .unwrap());
    let listed = c
        .cli_json(0, &["cluster", "site", "list"])
        .unwrap()
        .to_string();
    assert!(listed.contains(r#""bwlimit":2"#), "{listed}");
    // 80 MiB: 40 s at the limit, measured over 30 s once mirroring has run for 3 s.
    c.signal(2, "-STOP").unwrap();
    c.signal(3, "-STOP").unwrap();
    let a = c.base.path().join("a");
    source(&a, 0..80);
    backup(&c, "store1", &a, "host/a");
    c.signal(2, "-CONT").unwrap();
    c.signal(3, "-CONT").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (t0, b0) = (std::time::Instant::now(), sent_by_primary(&c));
    std::thread::sleep(Duration::from_secs(30));
    let (t1, b1) = (std::time::Instant::now(), sent_by_primary(&c));
    let rate = (b1 - b0) as f64 / (t1 - t0).as_secs_f64() / MIB as f64;
    println!(
        "mirror rate over {:.1} s: {rate:.3} MiB/s (limit {LIMIT_MIB} MiB/s)",
        (t1 - t0).as_secs_f64()
    );
    assert!(
        (rate - LIMIT_MIB as f64).abs() <= 0.1 * LIMIT_MIB as f64,
        "mirroring ran at {rate:.3} MiB/s under a {LIMIT_MIB} MiB/s limit"
    );
    assert!(
        !complete_at_backup(&c, "store1", "host/a"),
        "the transfer ended inside the window"
    );
}
