//! Continuous mirroring between the sites of one cluster (2 Primary nodes, 2 Backup nodes, a
//! witness; the sites linked by a 10 ms emulated WAN): backups taken at the Primary become complete at the Backup site by themselves,
//! each chunk on as many Backup nodes as the datastore asks; one not yet complete there is
//! refused through a Backup node (never partial data) unless read from the Primary on request;
//! with every Primary node killed, every snapshot listed as complete there restores identical
//! through a Backup node and one that was not gets the clear error; once the witness is lost
//! too (no quorum), the Backup site still lists and restores what it holds, flagged stale.

use std::path::Path;
use std::time::Duration;

use ironcore_cluster_tests::{DaemonCluster, chunk_copies, ok, wait};
use serde_json::Value;

/// A directory of `files` files of pseudo-random, incompressible bytes (seeded by `seed`).
fn source(dir: &Path, files: u32, seed: u32) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..files {
        let data: Vec<u8> = (0..70_000u32)
            .map(|j| {
                (j.wrapping_mul(2_654_435_761)
                    .wrapping_add(i * 7919 + seed * 104_729)
                    >> 13) as u8
            })
            .collect();
        std::fs::write(dir.join(format!("f{i}")), data).unwrap();
    }
}

fn snapshots(c: &DaemonCluster, i: usize) -> Vec<Value> {
    c.cli_json(i, &["snapshot", "list", "--store", "store1"])
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// A restore of `group` through node `i` into `out` that must be refused as not complete at
/// the Backup site, writing nothing; its error text.
fn refused_restore(c: &DaemonCluster, i: usize, group: &str, out: &Path) -> String {
    let refused = c
        .cli(
            i,
            &["restore", group, out.to_str().unwrap(), "--store", "store1"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success(), "restored an incomplete snapshot");
    assert!(err.contains("is not complete at site backup yet"), "{err}");
    assert!(
        std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none()),
        "a refused restore wrote something"
    );
    err
}

#[test]
fn backups_at_the_primary_restore_at_the_backup_site_once_the_primary_is_gone() {
    // The sites see each other over a 10 ms link (each way).
    let mut c = DaemonCluster::two_sites_over_wan(10).expect("cluster starts");
    let a = c.base.path().join("a");
    let b = c.base.path().join("b");
    source(&a, 12, 1);
    source(&b, 12, 2);
    for (dir, group) in [(&a, "host/a"), (&b, "host/b")] {
        ok(&c
            .cli(
                0,
                &[
                    "backup",
                    dir.to_str().unwrap(),
                    "--store",
                    "store1",
                    "--group",
                    group,
                ],
            )
            .unwrap());
    }
    // Both become complete at the Backup site without anyone asking.
    wait(
        "both snapshots complete at the backup site",
        Duration::from_secs(60),
        || {
            let list = snapshots(&c, 0);
            Ok(list.len() == 2
                && list
                    .iter()
                    .all(|s| s["sites"] == serde_json::json!(["primary", "backup"])))
        },
    )
    .unwrap();
    // `mirror status` says the Backup site is caught up.
    let status = c
        .cli_json(0, &["mirror", "status", "--store", "store1"])
        .unwrap();
    assert_eq!(status[0]["site"], "backup", "{status}");
    assert_eq!(status[0]["pending-snapshots"], 0, "{status}");
    assert_eq!(status[0]["lag-seconds"], 0, "{status}");
    assert!(status[0]["last-complete"].is_string(), "{status}");
    // Each chunk: 2 copies at the Primary, 1 at the Backup site.
    let at = |p: &Path, nodes: &[&str]| {
        let p = p.to_string_lossy();
        nodes.iter().any(|n| p.contains(&format!("/{n}/")))
    };
    let copies = chunk_copies(&c, "store1");
    assert!(!copies.is_empty());
    for (_, paths) in &copies {
        let primary = paths.iter().filter(|p| at(p, &["node1", "node2"])).count();
        let backup = paths.iter().filter(|p| at(p, &["node3", "node4"])).count();
        assert_eq!((primary, backup), (2, 1), "{paths:?}");
        assert!(!paths.iter().any(|p| at(p, &["node5"])), "{paths:?}");
    }

    // A snapshot not yet complete at the Backup site (node4 is stopped, so its share cannot
    // arrive) is refused through node3 with the way out, and read from the Primary when asked.
    c.signal(3, "-STOP").unwrap();
    let cdir = c.base.path().join("c");
    source(&cdir, 12, 3);
    ok(&c
        .cli(
            0,
            &[
                "backup",
                cdir.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                "host/c",
            ],
        )
        .unwrap());
    let early = c.base.path().join("restore-c-early");
    let err = refused_restore(&c, 2, "host/c", &early);
    assert!(err.contains("--from-site primary"), "{err}");
    ok(&c
        .cli(
            2,
            &[
                "restore",
                "host/c",
                early.to_str().unwrap(),
                "--store",
                "store1",
                "--from-site",
                "primary",
            ],
        )
        .unwrap());
    ok(&c
        .cli(
            2,
            &["compare", cdir.to_str().unwrap(), early.to_str().unwrap()],
        )
        .unwrap());
    c.signal(3, "-CONT").unwrap();
    wait(
        "host/c complete at the backup site",
        Duration::from_secs(60),
        || {
            let list = snapshots(&c, 0);
            Ok(list.len() == 3
                && list
                    .iter()
                    .all(|s| s["sites"] == serde_json::json!(["primary", "backup"])))
        },
    )
    .unwrap();

    // host/d is taken while node4 is stopped, so it is not complete at the Backup site when
    // the Primary is lost: every node there is killed. Through node3 it gets the clear error,
    // and nothing is written.
    c.signal(3, "-STOP").unwrap();
    let ddir = c.base.path().join("d");
    source(&ddir, 12, 4);
    ok(&c
        .cli(
            0,
            &[
                "backup",
                ddir.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                "host/d",
            ],
        )
        .unwrap());
    c.nodes[0].kill();
    c.nodes[1].kill();
    refused_restore(&c, 2, "host/d", &c.base.path().join("restore-d"));
    c.signal(3, "-CONT").unwrap();
    for (dir, group) in [(&a, "host/a"), (&b, "host/b"), (&cdir, "host/c")] {
        let out = c
            .base
            .path()
            .join(format!("restore-{}", group.replace('/', "-")));
        let target = out.to_str().unwrap().to_string();
        // The three remaining voters elect a leader first; the restore goes through node3.
        wait("a restore through node3", Duration::from_secs(60), || {
            let _ = std::fs::remove_dir_all(&out);
            Ok(c.cli(2, &["restore", group, &target, "--store", "store1"])?
                .status
                .success())
        })
        .unwrap();
        ok(&c
            .cli(2, &["compare", dir.to_str().unwrap(), &target])
            .unwrap());
    }

    // The witness is lost too: the Backup site alone has no quorum, yet it still lists and
    // restores what its replica holds, and says the answer is stale.
    c.nodes[4].kill();
    std::thread::sleep(Duration::from_secs(4));
    let list = c
        .cli(
            2,
            &["snapshot", "list", "--store", "store1", "--output", "json"],
        )
        .unwrap();
    let err = String::from_utf8_lossy(&list.stderr).to_string();
    assert!(list.status.success(), "{err}");
    assert!(err.contains("stale answer"), "{err}");
    let listed: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
    // Each snapshot's chunks are split between node3 and node4 (one copy at the site): the
    // restore through node3 reads node4's share from node4, neither having a quorum.
    for (dir, group) in [(&a, "host/a"), (&b, "host/b"), (&cdir, "host/c")] {
        let out = c
            .base
            .path()
            .join(format!("stale-restore-{}", group.replace('/', "-")));
        let target = out.to_str().unwrap().to_string();
        let restored = c
            .cli(2, &["restore", group, &target, "--store", "store1"])
            .unwrap();
        let err = String::from_utf8_lossy(&restored.stderr).to_string();
        assert!(restored.status.success(), "restore without quorum: {err}");
        assert!(err.contains("stale answer"), "{err}");
        ok(&c
            .cli(2, &["compare", dir.to_str().unwrap(), &target])
            .unwrap());
    }
    // What needs the cluster is refused.
    let refused = c
        .cli(
            2,
            &[
                "backup",
                b.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                "host/d",
            ],
        )
        .unwrap();
    assert!(!refused.status.success());
}
