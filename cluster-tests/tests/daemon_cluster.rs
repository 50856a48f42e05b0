//! End to end against a real 3-node cluster of daemon processes, driven by the real CLI.

use std::io::Write;
use std::path::Path;

use ironcore_cluster_tests::DaemonCluster;

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir_all(root.join("var/data")).unwrap();
    std::fs::write(root.join("etc/app/config.toml"), "listen = 1\n").unwrap();
    let mut big = std::fs::File::create(root.join("var/data/blob.bin")).unwrap();
    let mut x: u64 = 7;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..12 {
        for b in buf.iter_mut() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (x >> 56) as u8;
        }
        big.write_all(&buf).unwrap();
    }
    std::os::unix::fs::symlink("app/config.toml", root.join("etc/link")).unwrap();
    std::fs::hard_link(root.join("etc/app/config.toml"), root.join("etc/hard")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("etc/app/config.toml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
}

/// Every route but health refuses a call without a token or ticket (401), on a live node.
fn unauthenticated_calls_are_refused(c: &DaemonCluster) {
    let fp: ironcore_types::Fingerprint = c.nodes[1].fingerprint.parse().unwrap();
    let api = ironcore_client::ApiClient::new(&c.nodes[1].api, fp, None)
        .unwrap()
        .with_runtime()
        .unwrap();
    let id = "00".repeat(32);
    let doc = ironcore_node::api::document();
    let routes = doc.paths.paths.iter().flat_map(|(path, item)| {
        [
            ("GET", item.get.is_some()),
            ("PUT", item.put.is_some()),
            ("POST", item.post.is_some()),
            ("DELETE", item.delete.is_some()),
            ("HEAD", item.head.is_some()),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(move |(method, _)| (method, path.clone()))
    });
    for (method, path) in routes {
        let path = path
            .replace("{store}", "store1")
            .replace("{id}", &id)
            .replace("{upid}", "UPID%3Ax")
            .replace("{name}", "x")
            .replace("{userid}", "x@pbs")
            .replace("{tokenid}", "x@pbs!t");
        let m: hyper::Method = method.parse().unwrap();
        // The password login is authenticated by its body: a wrong password is refused.
        let body = if path.ends_with("/access/ticket") {
            r#"{"username":"root@pam","password":"not-the-password"}"#
        } else {
            "{}"
        };
        let answer =
            api.blocking(api.raw(m, &path, body.as_bytes().to_vec(), "application/json", &[]));
        if path.ends_with("/health") {
            assert!(answer.is_ok(), "health must answer without a token");
            continue;
        }
        if path.ends_with("/cluster/join") {
            // Authenticated by the join token in the body: a bad one is refused.
            assert!(
                answer.is_err(),
                "{method} {path} accepted a call without a join token"
            );
            continue;
        }
        match answer {
            Err(ironcore_client::ApiError::Status { status: 401, .. }) => {}
            other => panic!("{method} {path} without a token answered {other:?}"),
        }
    }
    // With a token, /metrics speaks Prometheus' text format and sees the cluster's snapshots.
    let api = ironcore_client::ApiClient::new(&c.nodes[1].api, fp, Some(c.admin_token.clone()))
        .unwrap()
        .with_runtime()
        .unwrap();
    let (_, body) = api
        .blocking(api.raw(
            hyper::Method::GET,
            "/metrics",
            ironcore_client::Pieces::default(),
            "text/plain",
            &[],
        ))
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("# TYPE ironcore_raft_term gauge"), "{text}");
    assert!(
        text.contains("ironcore_datastore_snapshots{datastore=\"store1\",site=\"primary\"} 3"),
        "{text}"
    );
}

/// A backup reading from a FIFO stays running while the test holds the FIFO open: a second
/// backup of the group is `source busy`; `task cancel` ends the first as `task cancelled` and no
/// snapshot appears.
fn cancel_and_source_busy(c: &DaemonCluster) {
    let (child, mut writer, upid) = c.fifo_backup(1, "store1", "vm/777").unwrap();
    let other = c.base.path().join("other.img");
    std::fs::write(&other, b"x").unwrap();
    let busy = c
        .cli(
            1,
            &[
                "backup",
                other.to_str().unwrap(),
                "--image",
                "--store",
                "store1",
                "--group",
                "vm/777",
            ],
        )
        .unwrap();
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("source busy"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    ok(&c.cli(1, &["task", "cancel", &upid]).unwrap());
    writer.write_all(&vec![9u8; 9 << 20]).unwrap_or(());
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("task cancelled"), "{err}");
    let list = c
        .cli_json(1, &["snapshot", "list", "--store", "store1"])
        .unwrap();
    assert!(
        !list
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["group"] == "vm/777"),
        "a cancelled backup left a snapshot: {list}"
    );
    let tasks = c.cli_json(1, &["task", "list"]).unwrap();
    let t = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["upid"] == upid.as_str())
        .cloned()
        .unwrap();
    assert_eq!(t["state"]["error"], "task cancelled", "{t}");
}

/// Protection holds a snapshot through a prune; without it the prune (after a dry run that
/// changes nothing) removes it. Namespaces hold their own groups.
fn protect_and_prune(c: &DaemonCluster, src: &str) {
    let count = |c: &DaemonCluster| {
        let v = c
            .cli_json(1, &["snapshot", "list", "--store", "store1"])
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["group"] == "host/web01")
            .count()
    };
    assert_eq!(count(c), 2);
    let oldest = c.snapshots_of(1, "store1", "host/web01").unwrap()[0].clone();
    ok(&c
        .cli(1, &["snapshot", "protect", &oldest, "--store", "store1"])
        .unwrap());
    let plan = c
        .cli_json(
            1,
            &[
                "prune",
                "host/web01",
                "--store",
                "store1",
                "--keep-last",
                "1",
            ],
        )
        .unwrap();
    assert!(
        plan.as_array()
            .unwrap()
            .iter()
            .all(|r| r["removed"] == false),
        "{plan}"
    );
    assert_eq!(count(c), 2, "a protected snapshot survived the prune");
    ok(&c
        .cli(
            1,
            &["snapshot", "protect", &oldest, "--store", "store1", "--off"],
        )
        .unwrap());
    let dry = c
        .cli_json(
            1,
            &[
                "prune",
                "host/web01",
                "--store",
                "store1",
                "--keep-last",
                "1",
                "--dry-run",
            ],
        )
        .unwrap();
    assert!(
        dry.as_array()
            .unwrap()
            .iter()
            .any(|r| r["mark"] == "remove"),
        "{dry}"
    );
    assert_eq!(count(c), 2, "a dry run removes nothing");
    ok(&c
        .cli(
            1,
            &[
                "prune",
                "host/web01",
                "--store",
                "store1",
                "--keep-last",
                "1",
            ],
        )
        .unwrap());
    assert_eq!(count(c), 1);

    ok(&c
        .cli(1, &["namespace", "create", "team", "--store", "store1"])
        .unwrap());
    let missing = c
        .cli(1, &["namespace", "create", "a/b", "--store", "store1"])
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("parent namespace"));
    ok(&c
        .cli(
            1,
            &[
                "backup",
                src,
                "--store",
                "store1",
                "--ns",
                "team",
                "--group",
                "host/web01",
            ],
        )
        .unwrap());
    let ns = c
        .cli_json(1, &["namespace", "list", "--store", "store1"])
        .unwrap();
    assert_eq!(ns[0]["namespace"], "team");
    assert_eq!(count(c), 2, "the group in namespace team is another series");
}

#[test]
fn backup_restore_incremental_image_failover_and_access_control() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    let src = c.base.path().join("src");
    make_tree(&src);
    let s = src.to_str().unwrap();
    ok(&c
        .cli(
            0,
            &[
                "datastore",
                "create",
                "store1",
                "--path",
                "/srv/store1",
                "--copies",
                "2",
            ],
        )
        .unwrap());

    // Backup through node1, restore through node2: identical with metadata.
    let first = c
        .cli_json(
            0,
            &["backup", s, "--store", "store1", "--group", "host/web01"],
        )
        .unwrap();
    assert_eq!(first["new-chunks"], first["chunks"], "{first}");
    let out = c.base.path().join("restore1");
    ok(&c
        .cli(
            1,
            &[
                "restore",
                "host/web01",
                out.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    ok(&c.cli(1, &["compare", s, out.to_str().unwrap()]).unwrap());

    // Incremental: change one small file; only the changed chunks are uploaded.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(src.join("etc/app/config.toml"), "listen = 2\n").unwrap();
    let second = c
        .cli_json(
            0,
            &["backup", s, "--store", "store1", "--group", "host/web01"],
        )
        .unwrap();
    let (chunks, new) = (
        second["chunks"].as_u64().unwrap(),
        second["new-chunks"].as_u64().unwrap(),
    );
    assert!(
        new < chunks && new <= 3,
        "incremental uploaded {new} of {chunks} chunks: {second}"
    );
    // A copy of the tree as another group, changed to new content and then back to what
    // host/web01's incremental stored: an incremental uploads without asking first, and the
    // node answers that it holds that chunk already, so it is not counted as new again.
    let copy = c.base.path().join("src-copy");
    let cp = std::process::Command::new("cp")
        .args(["-a", s, copy.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(cp.success());
    let backup_copy = |config: Option<&str>| {
        if let Some(text) = config {
            std::thread::sleep(std::time::Duration::from_millis(1100));
            std::fs::write(copy.join("etc/app/config.toml"), text).unwrap();
        }
        let v = c
            .cli_json(
                0,
                &[
                    "backup",
                    copy.to_str().unwrap(),
                    "--store",
                    "store1",
                    "--group",
                    "host/web02",
                ],
            )
            .unwrap();
        v["new-chunks"].as_u64().unwrap()
    };
    backup_copy(None);
    let changed = backup_copy(Some("listen = 3\n"));
    let back = backup_copy(Some("listen = 2\n"));
    assert_eq!(
        back + 1,
        changed,
        "content the datastore held was counted as new again"
    );
    for snap in c.snapshots_of(0, "store1", "host/web02").unwrap() {
        ok(&c
            .cli(0, &["snapshot", "forget", &snap, "--store", "store1"])
            .unwrap());
    }

    // A disk image, byte-identical.
    let img = c.base.path().join("disk.raw");
    let mut data = vec![0u8; 9 << 20];
    for (i, b) in data.iter_mut().enumerate().skip(5 << 20) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&img, &data).unwrap();
    ok(&c
        .cli(
            0,
            &[
                "backup",
                img.to_str().unwrap(),
                "--image",
                "--store",
                "store1",
                "--group",
                "vm/100",
            ],
        )
        .unwrap());
    let img_out = c.base.path().join("disk.restored");
    ok(&c
        .cli(
            2,
            &[
                "restore",
                "vm/100",
                img_out.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    assert!(
        std::fs::read(&img_out).unwrap() == data,
        "restored image differs"
    );

    unauthenticated_calls_are_refused(&c);
    cancel_and_source_busy(&c);
    protect_and_prune(&c, s);

    // A backup still running through node1 when its daemon dies: once node1's task lease
    // runs out (3 s here), the group is no longer busy and the task reads as abandoned.
    let (mut orphan, _fifo, orphan_upid) = c.fifo_backup(0, "store1", "vm/555").unwrap();

    // Kill the node that served the backups: restores still work through the others.
    c.nodes[0].kill();
    let out2 = c.base.path().join("restore2");
    ok(&c
        .cli(
            1,
            &[
                "restore",
                "host/web01",
                out2.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    ok(&c.cli(1, &["compare", s, out2.to_str().unwrap()]).unwrap());

    let small = c.base.path().join("after-the-lease.img");
    std::fs::write(&small, vec![5u8; 64 << 10]).unwrap();
    ironcore_cluster_tests::wait(
        "a backup of the dead node's group",
        std::time::Duration::from_secs(30),
        || {
            let out = c.cli(
                1,
                &[
                    "backup",
                    small.to_str().unwrap(),
                    "--image",
                    "--store",
                    "store1",
                    "--group",
                    "vm/555",
                ],
            )?;
            if out.status.success() {
                return Ok(true);
            }
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::ensure!(said.contains("source busy"), "{said}");
            Ok(false)
        },
    )
    .unwrap();
    let tasks = c.cli_json(1, &["task", "list"]).unwrap();
    let orphaned = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["upid"] == orphan_upid.as_str())
        .unwrap();
    let reason = orphaned["state"]["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("stopped renewing its task lease"),
        "{orphaned}"
    );
    let _ = orphan.kill();
    let _ = orphan.wait();

    // A Backup token: may back up its own group, never forget or read another owner's.
    ok(&c.cli(1, &["user", "create", "alice@ironcore"]).unwrap());
    let created = ok(&c
        .cli(1, &["token", "create", "alice@ironcore!nightly"])
        .unwrap());
    let alice = created.lines().last().unwrap().trim().to_string();
    for id in ["alice@ironcore", "alice@ironcore!nightly"] {
        ok(&c
            .cli(
                1,
                &["acl", "set", "/datastore/store1", id, "Datastore.Backup"],
            )
            .unwrap());
    }
    let own = c
        .cli_as(
            1,
            &alice,
            &["backup", s, "--store", "store1", "--group", "host/alice"],
        )
        .unwrap();
    ok(&own);
    let prune = c
        .cli_as(
            1,
            &alice,
            &[
                "prune",
                "host/alice",
                "--store",
                "store1",
                "--keep-last",
                "1",
            ],
        )
        .unwrap();
    assert_eq!(
        prune.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&prune.stderr)
    );
    let forget = c
        .cli_as(
            1,
            &alice,
            &["snapshot", "forget", "host/alice", "--store", "store1"],
        )
        .unwrap();
    assert_eq!(
        forget.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&forget.stderr)
    );
    assert!(String::from_utf8_lossy(&forget.stderr).contains("permission denied"));
    let other = c.base.path().join("restore3");
    let read = c
        .cli_as(
            1,
            &alice,
            &[
                "restore",
                "host/web01",
                other.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap();
    assert!(!read.status.success());
    let err = String::from_utf8_lossy(&read.stderr);
    assert!(
        err.contains("permission denied") || err.contains("has no snapshots"),
        "{err}"
    );
}
