//! Datastore maintenance against a live 3-node cluster: probe and stats, verify (a damaged
//! copy is found and repaired, a lost chunk fails its snapshot), quarantine (no backups, no
//! GC), garbage collection across the nodes (what a forgotten snapshot alone used goes,
//! everything else stays and restores), password login with tickets, a scheduled job,
//! membership changes, remotes and sync (pull, push, and push encrypted with the project key).

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ironcore_cluster_tests::{DaemonCluster, MailSink, WebhookSink, binaries, chunk_copies};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "command failed: {}", text(o));
    text(o)
}

/// A tree with `mib` MiB of pseudo-random data seeded by `seed` (distinct seeds share no chunk).
fn tree(root: &Path, seed: u64, mib: usize) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("note.txt"), format!("tree {seed}\n")).unwrap();
    let mut f = std::fs::File::create(root.join("data.bin")).unwrap();
    let mut x = seed;
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in buf.iter_mut() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (x >> 56) as u8;
        }
        f.write_all(&buf).unwrap();
    }
}

fn chunk_names(c: &DaemonCluster) -> BTreeSet<String> {
    chunk_copies(c, "store1")
        .into_iter()
        .map(|(_, paths)| paths[0].file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

const PASSPHRASE: &str = "project key passphrase";

/// The project key nodes 1 and 2 encrypt with on push (node3's configuration has none).
struct ProjectKey {
    _dir: tempfile::TempDir,
    keyfile: PathBuf,
    config: String,
}

fn project_key() -> ProjectKey {
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("project.key");
    let pass = dir.path().join("project.pass");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, cli) = binaries().unwrap();
    ok(&Command::new(cli)
        .env("IRONCORE_KEY_PASSPHRASE", PASSPHRASE)
        .args(["key", "create", "--keyfile", keyfile.to_str().unwrap()])
        .output()
        .unwrap());
    let config = format!(
        "[project-key]\nkeyfile = \"{}\"\npassphrase-file = \"{}\"\n",
        keyfile.display(),
        pass.display()
    );
    ProjectKey {
        _dir: dir,
        keyfile,
        config,
    }
}

#[test]
fn probe_stats_verify_repair_quarantine_gc_login_jobs_and_membership() {
    let key = project_key();
    let c = DaemonCluster::start_with(3, |i| {
        if i < 2 {
            key.config.clone()
        } else {
            String::new()
        }
    })
    .expect("cluster starts");
    let base = c.base.path().to_path_buf();
    let (a, b) = (base.join("a"), base.join("b"));
    tree(&a, 1, 6);
    tree(&b, 2, 6);
    let cli = |args: &[&str]| c.cli(0, args).unwrap();
    ok(&cli(&[
        "datastore",
        "create",
        "store1",
        "--path",
        "/srv/store1",
    ]));
    let backup = |src: &Path, group: &str| {
        cli(&[
            "backup",
            src.to_str().unwrap(),
            "--store",
            "store1",
            "--group",
            group,
        ])
    };
    ok(&backup(&a, "host/a"));
    // An incremental through another node: chunks that node lacks are found on the others, so
    // every file is reused by reference and nothing is uploaded; the commit pulls them over.
    let again = c
        .cli_json(
            2,
            &[
                "backup",
                a.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                "host/a",
            ],
        )
        .unwrap();
    assert_eq!(again["uploaded-bytes"], 0, "{again}");
    assert_eq!(again["content"]["reused-files"], 2, "{again}");
    let chunks_a = chunk_names(&c);
    ok(&backup(&b, "host/b"));
    let only_b: Vec<String> = chunk_names(&c).difference(&chunks_a).cloned().collect();
    assert!(only_b.len() >= 3, "host/b added its own chunks: {only_b:?}");

    // Probe and stats see every storage node.
    let probe = c.cli_json(1, &["datastore", "probe", "store1"]).unwrap();
    assert_eq!(probe["online"], true, "{probe}");
    assert_eq!(probe["nodes"].as_array().unwrap().len(), 3, "{probe}");
    let stats = c.cli_json(1, &["datastore", "stats", "store1"]).unwrap();
    assert_eq!(stats["snapshots"], 3, "{stats}");
    let stored_chunks: u64 = stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["usage"]["chunks"].as_u64().unwrap())
        .sum();
    let on_disk: usize = chunk_copies(&c, "store1")
        .iter()
        .map(|(_, p)| p.len())
        .sum();
    assert_eq!(stored_chunks as usize, on_disk, "{stats}");
    ok(&c.cli(1, &["datastore", "stats", "store1"]).unwrap());

    // A clean verify records every snapshot as verified.
    ok(&cli(&["verify", "start", "store1"]));
    let status = c.cli_json(2, &["verify", "status", "store1"]).unwrap();
    assert_eq!(status[0]["state"], "OK", "{status}");
    assert_eq!(status[0]["ok"], 3, "{status}");

    // One damaged copy of a chunk with two copies: found, moved aside, repaired from the
    // other copy; the snapshot stays good.
    let copies = chunk_copies(&c, "store1");
    let (_, paths) = copies
        .iter()
        .find(|(_, p)| p.len() == 2)
        .expect("some chunk has exactly two copies");
    let victim = paths[0].clone();
    let good = std::fs::read(&paths[1]).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let log = ok(&cli(&["verify", "start", "store1"]));
    assert!(log.contains("CORRUPT chunk"), "{log}");
    assert!(log.contains("repaired 1 chunks"), "{log}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        good,
        "the copy was repaired"
    );
    let status = c.cli_json(0, &["verify", "status", "store1"]).unwrap();
    assert_eq!(status[0]["state"], "OK", "{status}");

    // Notifications: a webhook for errors; its test event arrives, a bad URL is refused.
    let hook = WebhookSink::start().unwrap();
    let url = format!("{}/hooks/ops", hook.url);
    ok(&cli(&[
        "notification",
        "target",
        "add",
        "ops",
        "--webhook",
        &url,
        "--min-severity",
        "error",
    ]));
    let bad = cli(&["notification", "target", "add", "x", "--webhook", "ftp://x"]);
    assert!(
        text(&bad).contains("must start with http://"),
        "{}",
        text(&bad)
    );
    let tested = c
        .cli_json(0, &["notification", "target", "test", "ops"])
        .unwrap();
    assert_eq!(tested["status"], 200, "{tested}");
    assert!(
        hook.bodies()
            .iter()
            .any(|b| b.contains(r#""event":"test""#))
    );
    // … and a mail target through a local SMTP relay; its test goes to the asked recipient.
    let relay = MailSink::start().unwrap();
    ok(&cli(&[
        "notification",
        "target",
        "add",
        "oncall",
        "--smtp-server",
        &relay.addr,
        "--from",
        "ibs@example.org",
        "--to",
        "oncall@example.org",
        "--min-severity",
        "error",
    ]));
    ok(&cli(&[
        "notification",
        "target",
        "test",
        "oncall",
        "--recipient",
        "admin@example.org",
    ]));
    let mails = relay.mails();
    assert!(
        mails.len() == 1
            && mails[0].starts_with("RCPT admin@example.org\n")
            && mails[0].contains("Subject: [info] test notification"),
        "{mails:?}"
    );

    // A chunk of host/b lost on every node: verify fails and says so; host/b is marked failed.
    let lost = &chunk_copies(&c, "store1")
        .into_iter()
        .map(|(_, p)| p[0].file_name().unwrap().to_string_lossy().into_owned())
        .find(|name| only_b.contains(name))
        .unwrap();
    for (_, paths) in chunk_copies(&c, "store1") {
        if paths[0].file_name().unwrap().to_string_lossy() == *lost {
            for p in paths {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
    let failed = cli(&["verify", "start", "store1"]);
    assert!(!failed.status.success(), "{}", text(&failed));
    let out = text(&failed);
    assert!(out.contains(&format!("chunk not found: {lost}")), "{out}");
    assert!(out.contains("verification failed: 1 snapshots"), "{out}");
    assert!(out.contains("host/b"), "{out}");
    let status = c.cli_json(0, &["verify", "status", "store1"]).unwrap();
    assert_eq!(status[0]["state"], "CORRUPT", "{status}");
    assert_eq!(status[0]["failed"], 1, "{status}");
    // … and the failed verify reached the webhook as an error event.
    ironcore_cluster_tests::wait(
        "the verify failure at the webhook",
        std::time::Duration::from_secs(20),
        || {
            Ok(hook.bodies().iter().any(|b| {
                b.contains(r#""severity":"error""#)
                    && b.contains(r#""kind":"verify""#)
                    && b.contains("verification failed: 1 snapshots")
            }))
        },
    )
    .unwrap();
    ironcore_cluster_tests::wait(
        "the verify failure by mail",
        std::time::Duration::from_secs(20),
        || {
            Ok(relay.mails().iter().any(|m| {
                m.starts_with("RCPT oncall@example.org\n") && m.contains("Subject: [error] verify")
            }))
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}; received: {:?}", relay.mails()))
    .unwrap();
    assert!(
        !hook
            .bodies()
            .iter()
            .any(|b| b.contains(r#""severity":"info""#) && !b.contains(r#""event":"test""#)),
        "events below the target's minimum severity were sent: {:?}",
        hook.bodies()
    );
    let services = c.cli_json(0, &["status", "--services"]).unwrap();
    let notify = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "ironcore-backup-notify")
        .unwrap()
        .clone();
    assert_eq!(notify["state"], "active (running)", "{notify}");
    assert!(
        notify["detail"]
            .as_str()
            .unwrap()
            .contains("ops: delivered (200)"),
        "{notify}"
    );

    // Quarantine: no new backups, no GC, until lifted.
    ok(&cli(&["datastore", "quarantine", "store1"]));
    let refused = backup(&a, "host/c");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("is quarantined"),
        "{}",
        text(&refused)
    );
    let refused = cli(&["gc", "start", "store1"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("is quarantined"),
        "{}",
        text(&refused)
    );
    ok(&cli(&["datastore", "quarantine", "store1", "--clear"]));

    // GC: forget host/b; its own chunks go from every node, host/a's all stay.
    let snap_b = c.snapshots_of(0, "store1", "host/b").unwrap()[0].clone();
    ok(&cli(&["snapshot", "forget", &snap_b, "--store", "store1"]));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let log = ok(&c
        .cli(1, &["gc", "start", "store1", "--grace-secs", "0"])
        .unwrap());
    assert!(log.contains("TASK OK"), "{log}");
    let left = chunk_names(&c);
    for name in &only_b {
        assert!(
            !left.contains(name),
            "chunk {name} of forgotten host/b survived GC"
        );
    }
    for name in &chunks_a {
        assert!(left.contains(name), "chunk {name} of host/a was collected");
    }
    let restored = base.join("restored");
    ok(&cli(&[
        "restore",
        "host/a",
        restored.to_str().unwrap(),
        "--store",
        "store1",
    ]));
    ok(&cli(&[
        "compare",
        a.to_str().unwrap(),
        restored.to_str().unwrap(),
    ]));

    // `--notification-mode always`: a verify that passes reaches the error-only targets too.
    let bad_mode = cli(&["verify", "start", "store1", "--notification-mode", "loud"]);
    assert!(
        text(&bad_mode).contains("is not always, error or never"),
        "{}",
        text(&bad_mode)
    );
    ok(&cli(&[
        "verify",
        "start",
        "store1",
        "--notification-mode",
        "always",
    ]));
    ironcore_cluster_tests::wait(
        "the passing verify at the webhook",
        std::time::Duration::from_secs(20),
        || {
            Ok(hook.bodies().iter().any(|b| {
                b.contains(r#""severity":"info""#)
                    && b.contains(r#""kind":"verify""#)
                    && b.contains(r#""outcome":"OK""#)
            }))
        },
    )
    .unwrap();

    password_login(&c);
    tasks_of_another_node(&c);
    remotes(&c, &a, &key);
    scheduled_job(&c);
    membership(&c, &a);
}

/// A verify job runs on its schedule through the leader's scheduler, once per scheduled time.
fn scheduled_job(c: &DaemonCluster) {
    let bad = c
        .cli(
            0,
            &[
                "job",
                "create",
                "x",
                "--store",
                "store1",
                "--kind",
                "verify",
                "--schedule",
                "25:00",
            ],
        )
        .unwrap();
    assert!(!bad.status.success());
    assert!(text(&bad).contains("hour '25'"), "{}", text(&bad));
    let verifies = || {
        c.cli_json(1, &["task", "list"])
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "verify" && t["state"] == "ok")
            .count()
    };
    let before = verifies();
    ok(&c
        .cli(
            0,
            &[
                "job",
                "create",
                "v1",
                "--store",
                "store1",
                "--kind",
                "verify",
                "--schedule",
                "*:*:0/3",
            ],
        )
        .unwrap());
    ironcore_cluster_tests::wait(
        "a scheduled verify",
        std::time::Duration::from_secs(20),
        || Ok(verifies() > before),
    )
    .unwrap();
    let jobs = c.cli_json(2, &["job", "list"]).unwrap();
    assert_eq!(jobs[0]["id"], "v1", "{jobs}");
    assert!(jobs[0]["last-run"].is_string(), "{jobs}");
    assert!(jobs[0]["next-run"].is_string(), "{jobs}");
    ok(&c.cli(0, &["job", "remove", "v1"]).unwrap());
    assert_eq!(
        c.cli_json(2, &["job", "list"]).unwrap(),
        serde_json::json!([])
    );
}

/// A user with a password logs in on one node and its ticket works on another, with the
/// user's own rights; a wrong password or a forged ticket is refused.
fn password_login(c: &DaemonCluster) {
    let pw = [("IRONCORE_PASSWORD", "alice's secret")];
    ok(&c
        .cli_env(
            0,
            &[("IRONCORE_TOKEN", c.admin_token.as_str()), pw[0]],
            &["user", "create", "alice@ibs", "--password"],
        )
        .unwrap());
    let wrong = c
        .cli_env(
            1,
            &[("IRONCORE_PASSWORD", "not it at all")],
            &["login", "alice@ibs"],
        )
        .unwrap();
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("authentication failed"),
        "{}",
        text(&wrong)
    );
    let login = c
        .cli_env(1, &pw, &["login", "alice@ibs", "--output", "json"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&login.stdout).expect("login answers JSON");
    let ticket = v["ticket"].as_str().unwrap().to_string();
    let with_ticket =
        |t: &str, args: &[&str]| c.cli_env(2, &[("IRONCORE_TICKET", t)], args).unwrap();
    let denied = with_ticket(&ticket, &["snapshot", "list", "--store", "store1"]);
    assert_eq!(denied.status.code(), Some(3), "{}", text(&denied));
    assert!(
        text(&denied).contains("permission denied"),
        "{}",
        text(&denied)
    );
    ok(&c
        .cli(
            0,
            &[
                "acl",
                "set",
                "/datastore/store1",
                "alice@ibs",
                "Datastore.Reader",
            ],
        )
        .unwrap());
    let listed = ok(&with_ticket(
        &ticket,
        &["snapshot", "list", "--store", "store1"],
    ));
    assert!(listed.contains("host/a"), "{listed}");
    let forged = ticket.replace("alice@ibs", "root@pam");
    let refused = with_ticket(&forged, &["snapshot", "list", "--store", "store1"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        text(&refused).contains("ticket is invalid"),
        "{}",
        text(&refused)
    );
}

fn member<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

/// Leadership moves where asked (from any node: non-leaders forward), a voter is demoted and
/// promoted back, a removed node leaves, and verify then restores every chunk's copies.
fn membership(c: &DaemonCluster, a: &Path) {
    let status = |i: usize| c.cli_json(i, &["cluster", "status"]).unwrap();
    let leader = status(0)["leader"].as_u64().unwrap();
    // node2 (or node1 if node2 leads already) takes over, asked through another node.
    let target_name = ["node2", "node1"]
        .into_iter()
        .find(|n| member(&status(0), n)["id"].as_u64() != Some(leader))
        .unwrap();
    let target = member(&status(0), target_name)["id"].as_u64().unwrap();
    let via = (0..3)
        .find(|i| format!("node{}", i + 1) != target_name)
        .unwrap();
    let out = ok(&c.cli(via, &["cluster", "transfer", target_name]).unwrap());
    assert!(out.contains("is the leader"), "{out}");
    ironcore_cluster_tests::wait("leader moved", std::time::Duration::from_secs(10), || {
        Ok(status(0)["leader"].as_u64() == Some(target))
    })
    .unwrap();

    ok(&c.cli(0, &["cluster", "demote", "node3"]).unwrap());
    assert_eq!(member(&status(1), "node3")["voter"], false);
    assert_eq!(member(&status(1), "node3")["role"], "learner");
    let refused = c.cli(0, &["cluster", "promote", "node2"]).unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not a learner"),
        "{}",
        text(&refused)
    );
    ok(&c.cli(0, &["cluster", "promote", "node3"]).unwrap());
    assert_eq!(member(&status(1), "node3")["voter"], true);

    let missing = c.cli(0, &["cluster", "remove", "node9"]).unwrap();
    assert_eq!(missing.status.code(), Some(4), "{}", text(&missing));
    // A backup running through node3 when it is removed: its task is closed, so its group is
    // not `source busy` forever.
    let (mut stuck, _writer, _) = c.fifo_backup(2, "store1", "vm/9").unwrap();
    let img = c.base.path().join("small.img");
    std::fs::write(&img, b"disk").unwrap();
    let image = |i: usize| {
        c.cli(
            i,
            &[
                "backup",
                img.to_str().unwrap(),
                "--image",
                "--store",
                "store1",
                "--group",
                "vm/9",
            ],
        )
        .unwrap()
    };
    let busy = image(0);
    assert!(text(&busy).contains("source busy"), "{}", text(&busy));
    let out = ok(&c.cli(0, &["cluster", "remove", "node3"]).unwrap());
    assert!(out.contains("verify start"), "{out}");
    ironcore_cluster_tests::wait("node3 gone", std::time::Duration::from_secs(10), || {
        Ok(member(&status(0), "node3").is_null())
    })
    .unwrap();
    ok(&image(0));
    let tasks = c.cli_json(1, &["task", "list"]).unwrap();
    let closed = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["node"] == "node3" && t["worker_id"].as_str().is_some_and(|w| w.ends_with("vm/9"))
        })
        .unwrap();
    assert!(
        closed["state"]["error"]
            .as_str()
            .unwrap()
            .contains("removed"),
        "{closed}"
    );
    let _ = stuck.kill();
    let _ = stuck.wait();
    let log = ok(&c.cli(1, &["verify", "start", "store1"]).unwrap());
    assert!(log.contains("TASK OK") || log.contains("repaired"), "{log}");
    let restored = c.base.path().join("restored-after-remove");
    ok(&c
        .cli(
            1,
            &[
                "restore",
                "host/a",
                restored.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    ok(&c
        .cli(
            1,
            &["compare", a.to_str().unwrap(), restored.to_str().unwrap()],
        )
        .unwrap());
}

/// A remote registered with the right pin and token answers `remote test`; one pinned to another
/// node's fingerprint is refused with the manuals' words; secrets are never listed.
fn remotes(c: &DaemonCluster, a: &Path, key: &ProjectKey) {
    let (host, port) = c.nodes[1].api.rsplit_once(':').unwrap();
    let (auth_id, secret) = c.admin_token.rsplit_once(':').unwrap();
    let add = |name: &str, fingerprint: &str| {
        c.cli_env(
            0,
            &[
                ("IRONCORE_TOKEN", c.admin_token.as_str()),
                ("IRONCORE_REMOTE_SECRET", secret),
            ],
            &[
                "remote",
                "add",
                name,
                "--host",
                host,
                "--port",
                port,
                "--auth-id",
                auth_id,
                "--remote-fingerprint",
                fingerprint,
            ],
        )
        .unwrap()
    };
    ok(&add("site-b", &c.nodes[1].fingerprint));
    ok(&add("wrong-pin", &c.nodes[2].fingerprint));
    let tested = c.cli_json(2, &["remote", "test", "site-b"]).unwrap();
    assert_eq!(tested["reachable"], true, "{tested}");
    assert_eq!(tested["node"], "node2", "{tested}");
    let refused = c.cli(0, &["remote", "test", "wrong-pin"]).unwrap();
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("fingerprint mismatch"),
        "{}",
        text(&refused)
    );
    let listed = ok(&c.cli(0, &["remote", "list", "--output", "json"]).unwrap());
    assert!(
        listed.contains("site-b") && !listed.contains(secret),
        "{listed}"
    );
    ok(&c.cli(0, &["remote", "remove", "wrong-pin"]).unwrap());
    sync_from_remote(c, a);
    encrypted_push(c, key);
    ok(&c.cli(0, &["remote", "remove", "site-b"]).unwrap());
    assert_eq!(
        c.cli_json(0, &["remote", "list"]).unwrap(),
        serde_json::json!([])
    );
}

/// Pull sync from the remote `site-b` (node2's API, this same cluster) into a new datastore:
/// host/a's snapshots are copied, restore identical, a second run copies nothing, and the diff
/// is empty; then a push from a third datastore sends its one new snapshot.
fn sync_from_remote(c: &DaemonCluster, a: &Path) {
    ok(&c
        .cli(
            0,
            &["datastore", "create", "store2", "--path", "/srv/store2"],
        )
        .unwrap());
    // host/a from store2 through node `via` (with `extra` options) is identical to its source.
    let restored_identical = |via: usize, name: &str, extra: &[&str]| {
        let out = c.base.path().join(name);
        let mut args = vec![
            "restore",
            "host/a",
            out.to_str().unwrap(),
            "--store",
            "store2",
        ];
        args.extend_from_slice(extra);
        ok(&c.cli(via, &args).unwrap());
        ok(&c
            .cli(0, &["compare", a.to_str().unwrap(), out.to_str().unwrap()])
            .unwrap());
    };
    // pull-a: store2 here <- store1 there; push-a: store3 here -> store2 there.
    let create = |direction: &str| {
        // The push job uses the manual's standard filter (the newest snapshot of each week).
        let (name, here, there, include) = match direction {
            "pull" => ("pull-a", "store2", "store1", "backup-id:host/a"),
            _ => ("push-a", "store3", "store2", "keep-weekly=*"),
        };
        c.cli(
            0,
            &[
                "sync",
                "create",
                "--name",
                name,
                "--source",
                here,
                "--remote",
                "site-b",
                "--remote-repository",
                there,
                "--direction",
                direction,
                "--schedule",
                "sun 04:30",
                "--include",
                include,
            ],
        )
        .unwrap()
    };
    ok(&create("pull"));
    let listed = c.cli_json(0, &["sync", "list"]).unwrap();
    assert_eq!(listed[0]["remote"], "site-b", "{listed}");
    let diff = || {
        c.cli_json(
            0,
            &[
                "sync",
                "diff",
                "--source",
                "store2",
                "--remote",
                "site-b",
                "--remote-repository",
                "store1",
                "--include",
                "backup-id:host/a",
            ],
        )
        .unwrap()
    };
    let before = diff();
    let wanted = before["only-remote"].as_array().unwrap().len();
    assert!(wanted >= 1, "{before}");
    let log = ok(&c.cli(1, &["sync", "run", "--name", "pull-a"]).unwrap());
    assert!(log.contains(&format!("copied {wanted} snapshots")), "{log}");
    assert_eq!(
        c.snapshots_of(0, "store2", "host/a").unwrap(),
        c.snapshots_of(0, "store1", "host/a").unwrap()
    );
    let again = ok(&c.cli(2, &["sync", "run", "--name", "pull-a"]).unwrap());
    assert!(again.contains("copied 0 snapshots"), "{again}");
    let after = diff();
    assert_eq!(after["only-remote"], serde_json::json!([]), "{after}");
    restored_identical(2, "synced-a", &[]);
    ok(&c.cli(0, &["sync", "remove", "--name", "pull-a"]).unwrap());

    // Push: a new snapshot of host/a in store3 is sent to store2 through the remote's backup
    // API, restores identical from there, and a second run sends nothing.
    ok(&c
        .cli(
            0,
            &["datastore", "create", "store3", "--path", "/srv/store3"],
        )
        .unwrap());
    ok(&c
        .cli(
            0,
            &[
                "backup",
                a.to_str().unwrap(),
                "--store",
                "store3",
                "--group",
                "host/a",
            ],
        )
        .unwrap());
    ok(&create("push"));
    let pushed = ok(&c.cli(0, &["sync", "run", "--name", "push-a"]).unwrap());
    assert!(pushed.contains("copied 1 snapshots"), "{pushed}");
    let pushed_snap = c.snapshots_of(0, "store3", "host/a").unwrap();
    assert!(
        c.snapshots_of(0, "store2", "host/a")
            .unwrap()
            .contains(&pushed_snap[0]),
        "the pushed snapshot is in store2"
    );
    let again = ok(&c.cli(0, &["sync", "run", "--name", "push-a"]).unwrap());
    assert!(again.contains("copied 0 snapshots"), "{again}");
    let time = pushed_snap[0].rsplit_once('/').unwrap().1;
    restored_identical(1, "pushed-a", &["--at", time]);
    ok(&c.cli(0, &["sync", "remove", "--name", "push-a"]).unwrap());
}

/// Chunk files of datastore `store` on every node.
fn chunk_files(c: &DaemonCluster, store: &str) -> Vec<PathBuf> {
    chunk_copies(c, store)
        .into_iter()
        .flat_map(|(_, paths)| paths)
        .collect()
}

/// "Encrypt on push": an unencrypted snapshot of host/e in store3 is pushed to store2 (remote
/// `site-b`) encrypted with the project key — no stored byte there holds its plaintext, it
/// restores identical with the key file and not without it. Refused with the manuals' words:
/// a key not registered, a node without the key, `--encrypt` on a pull job.
fn encrypted_push(c: &DaemonCluster, key: &ProjectKey) {
    let e = c.base.path().join("e");
    tree(&e, 5, 2);
    ok(&c
        .cli(
            0,
            &[
                "backup",
                e.to_str().unwrap(),
                "--store",
                "store3",
                "--group",
                "host/e",
            ],
        )
        .unwrap());
    let create = |via: usize, name: &str, direction: &str| {
        c.cli(
            via,
            &[
                "sync",
                "create",
                "--name",
                name,
                "--source",
                "store3",
                "--remote",
                "site-b",
                "--remote-repository",
                "store2",
                "--direction",
                direction,
                "--schedule",
                "daily",
                "--include",
                "backup-id:host/e",
                "--encrypt",
            ],
        )
        .unwrap()
    };
    let refused = |o: Output, words: &str| {
        assert!(!o.status.success(), "{}", text(&o));
        assert!(text(&o).contains(words), "{}", text(&o));
    };
    refused(create(0, "push-e", "push"), "encryption key not registered");
    refused(create(0, "pull-e", "pull"), "push jobs only");
    ok(&c
        .cli_env(
            0,
            &[
                ("IRONCORE_KEY_PASSPHRASE", PASSPHRASE),
                ("IRONCORE_TOKEN", c.admin_token.as_str()),
            ],
            &[
                "key",
                "register",
                "--keyfile",
                key.keyfile.to_str().unwrap(),
            ],
        )
        .unwrap());
    refused(create(2, "push-e", "push"), "encryption key not found");
    ok(&create(0, "push-e", "push"));
    let listed = c.cli_json(0, &["sync", "list"]).unwrap();
    assert!(listed[0]["encrypt"].is_string(), "{listed}");
    // Run through node3, which lacks the key: refused, nothing sent.
    refused(
        c.cli(2, &["sync", "run", "--name", "push-e"]).unwrap(),
        "encryption key not found",
    );
    let pushed = ok(&c.cli(1, &["sync", "run", "--name", "push-e"]).unwrap());
    assert!(
        pushed.contains("copied 1 snapshots") && pushed.contains("encrypted on push"),
        "{pushed}"
    );
    let snap = c.snapshots_of(0, "store2", "host/e").unwrap();
    assert_eq!(snap, c.snapshots_of(0, "store3", "host/e").unwrap());
    // The plaintext is in store3's chunk files and in none of store2's.
    let data = std::fs::read(e.join("data.bin")).unwrap();
    let needle = &data[4096..4096 + 256];
    let holds = |store: &str| {
        chunk_files(c, store)
            .iter()
            .any(|p| std::fs::read(p).unwrap().windows(256).any(|w| w == needle))
    };
    assert!(holds("store3"), "the source holds the plaintext");
    assert!(!holds("store2"), "store2 holds plaintext of host/e");
    let out = c.base.path().join("e-restored");
    let token = ("IRONCORE_TOKEN", c.admin_token.as_str());
    let restore = |extra: &[(&str, &str)], keyfile: Option<&Path>| {
        let mut args = vec![
            "restore",
            "host/e",
            out.to_str().unwrap(),
            "--store",
            "store2",
        ];
        if let Some(k) = keyfile {
            args.extend(["--keyfile", k.to_str().unwrap()]);
        }
        c.cli_env(1, extra, &args).unwrap()
    };
    refused(restore(&[token], None), "encryption key not found");
    ok(&restore(
        &[token, ("IRONCORE_KEY_PASSPHRASE", PASSPHRASE)],
        Some(&key.keyfile),
    ));
    ok(&c
        .cli(0, &["compare", e.to_str().unwrap(), out.to_str().unwrap()])
        .unwrap());
    let again = ok(&c.cli(0, &["sync", "run", "--name", "push-e"]).unwrap());
    assert!(again.contains("copied 0 snapshots"), "{again}");
    ok(&c.cli(0, &["sync", "remove", "--name", "push-e"]).unwrap());
}

/// Any node answers for tasks that run elsewhere: a backup running through node2 is cancelled,
/// and its log read, through node1.
fn tasks_of_another_node(c: &DaemonCluster) {
    let (child, writer, upid) = c.fifo_backup(1, "store1", "vm/8").unwrap();
    ok(&c.cli(0, &["task", "cancel", &upid]).unwrap());
    drop(writer);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("task cancelled"), "{}", text(&out));
    let log = ok(&c.cli(0, &["task", "log", &upid]).unwrap());
    assert!(log.contains("cancel requested by root@pam!admin"), "{log}");
    let again = c.cli(0, &["task", "cancel", &upid]).unwrap();
    assert!(text(&again).contains("is not running"), "{}", text(&again));
}
