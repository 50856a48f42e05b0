//! Every error the manuals name, produced in its condition against a live 3-node cluster, with
//! the manuals' words in what the CLI prints.

use std::path::{Path, PathBuf};
use std::process::Output;

use ironcore_cluster_tests::{DaemonCluster, chunk_copies};
use sha2::{Digest, Sha256};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails_with(o: &Output, words: &str) {
    assert!(
        !o.status.success(),
        "expected `{words}`, but the command succeeded"
    );
    assert!(
        stderr(o).contains(words),
        "expected `{words}` in: {}",
        stderr(o)
    );
}

fn ok(o: &Output) {
    assert!(o.status.success(), "command failed: {}", stderr(o));
}

/// Mounts a 4 MiB tmpfs at `path` (needs root, as on the project's machines and CI).
fn small_tmpfs(path: &Path) -> Option<TmpfsGuard> {
    std::fs::create_dir_all(path).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| TmpfsGuard(path.to_path_buf()))
}

struct TmpfsGuard(PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let mut x: u64 = 99;
    let data: Vec<u8> = (0..(6 << 20))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 56) as u8
        })
        .collect();
    std::fs::write(root.join("data.bin"), data).unwrap();
    std::fs::write(root.join("note.txt"), "hello\n").unwrap();
}

#[test]
fn documented_errors_appear_in_their_conditions() {
    let mut c = DaemonCluster::start(3).expect("cluster starts");
    let base = c.base.path().to_path_buf();
    let src = base.join("src");
    tree(&src);
    let s = src.to_str().unwrap();
    for store in ["plain", "secret"] {
        ok(&c
            .cli(
                0,
                &[
                    "datastore",
                    "create",
                    store,
                    "--path",
                    &format!("/srv/{store}"),
                ],
            )
            .unwrap());
    }

    // source not reachable
    fails_with(
        &c.cli(
            0,
            &[
                "backup",
                "/no/such/dir",
                "--store",
                "plain",
                "--group",
                "host/a",
            ],
        )
        .unwrap(),
        "source not reachable",
    );

    // encryption key not found: the key file is not there.
    let key = base.join("project.key");
    fails_with(
        &c.cli(
            0,
            &[
                "backup",
                s,
                "--store",
                "secret",
                "--group",
                "host/a",
                "--keyfile",
                key.to_str().unwrap(),
            ],
        )
        .unwrap(),
        "encryption key not found",
    );

    // encryption key not registered: a key the cluster does not know.
    let with_pass = |mut cmd: std::process::Command| {
        cmd.env("IRONCORE_KEY_PASSPHRASE", "correct horse battery");
        cmd.output().unwrap()
    };
    let cli = |i: usize, args: &[&str]| {
        let (_, bin) = ironcore_cluster_tests::binaries().unwrap();
        let mut cmd = std::process::Command::new(bin);
        cmd.args(args)
            .env("IRONCORE_URL", &c.nodes[i].api)
            .env("IRONCORE_FINGERPRINT", &c.nodes[i].fingerprint)
            .env("IRONCORE_TOKEN", &c.admin_token);
        cmd
    };
    ok(&with_pass(cli(
        0,
        &["key", "create", "--keyfile", key.to_str().unwrap()],
    )));
    let backup_secret = [
        "backup",
        s,
        "--store",
        "secret",
        "--group",
        "host/a",
        "--keyfile",
        key.to_str().unwrap(),
    ];
    fails_with(
        &with_pass(cli(0, &backup_secret)),
        "encryption key not registered",
    );
    ok(&with_pass(cli(
        0,
        &["key", "register", "--keyfile", key.to_str().unwrap()],
    )));
    ok(&with_pass(cli(0, &backup_secret)));

    // encryption key not found: restoring an encrypted snapshot without a key.
    let out = base.join("r1");
    fails_with(
        &c.cli(
            1,
            &[
                "restore",
                "host/a",
                out.to_str().unwrap(),
                "--store",
                "secret",
            ],
        )
        .unwrap(),
        "encryption key not found",
    );

    // fingerprint mismatch: another key.
    let other = base.join("other.key");
    ok(&with_pass(cli(
        0,
        &["key", "create", "--keyfile", other.to_str().unwrap()],
    )));
    let out = base.join("r2");
    fails_with(
        &with_pass(cli(
            1,
            &[
                "restore",
                "host/a",
                out.to_str().unwrap(),
                "--store",
                "secret",
                "--keyfile",
                other.to_str().unwrap(),
            ],
        )),
        "fingerprint mismatch",
    );

    // destination not writable: a target below a regular file.
    let blocker = base.join("blocker");
    std::fs::write(&blocker, "x").unwrap();
    let target = blocker.join("restore");
    fails_with(
        &with_pass(cli(
            1,
            &[
                "restore",
                "host/a",
                target.to_str().unwrap(),
                "--store",
                "secret",
                "--keyfile",
                key.to_str().unwrap(),
            ],
        )),
        "destination not writable",
    );

    // decryption failed: every copy of the largest encrypted chunk tampered with on disk, by
    // someone who also rewrote its stored digest (so the nodes' integrity checks pass and only
    // the client's authenticated decryption can notice). A plain bit flip is caught earlier:
    // nodes refuse to pass on a copy that fails its digest.
    let copies = chunk_copies(&c, "secret");
    let (_, paths) = &copies[0];
    for p in paths {
        let mut b = std::fs::read(p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 0x55;
        let mut h = Sha256::new();
        h.update(&b[0..64]);
        h.update(&b[96..]);
        let digest = h.finalize();
        b[64..96].copy_from_slice(&digest);
        std::fs::write(p, b).unwrap();
    }
    let out = base.join("r3");
    fails_with(
        &with_pass(cli(
            1,
            &[
                "restore",
                "host/a",
                out.to_str().unwrap(),
                "--store",
                "secret",
                "--keyfile",
                key.to_str().unwrap(),
            ],
        )),
        "decryption failed",
    );

    // chunk not found: every copy of the largest plain chunk deleted.
    ok(&c
        .cli(0, &["backup", s, "--store", "plain", "--group", "host/b"])
        .unwrap());
    for p in &chunk_copies(&c, "plain")[0].1 {
        std::fs::remove_file(p).unwrap();
    }
    let out = base.join("r4");
    fails_with(
        &c.cli(
            2,
            &[
                "restore",
                "host/b",
                out.to_str().unwrap(),
                "--store",
                "plain",
            ],
        )
        .unwrap(),
        "chunk not found",
    );

    // no space left on datastore: node1 holds datastore `tiny` on a 4 MiB file system.
    let tiny = c.nodes[0].dir.join("storage/srv/tiny");
    match small_tmpfs(&tiny) {
        Some(_guard) => {
            ok(&c
                .cli(0, &["datastore", "create", "tiny", "--path", "/srv/tiny"])
                .unwrap());
            fails_with(
                &c.cli(0, &["backup", s, "--store", "tiny", "--group", "host/c"])
                    .unwrap(),
                "no space left on datastore",
            );
        }
        None => {
            // Not silently green: only a machine without root may skip this.
            assert!(
                std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) != 0,
                "mounting a tmpfs failed although running as root"
            );
            eprintln!("SKIPPED no-space case: mounting a tmpfs needs root");
        }
    }

    // TLS fingerprint mismatch: node2 answered with node1's pin.
    let mut wrong = cli(1, &["status"]);
    wrong.env("IRONCORE_FINGERPRINT", &c.nodes[0].fingerprint);
    let o = wrong.output().unwrap();
    fails_with(&o, "TLS fingerprint mismatch");
    assert_eq!(o.status.code(), Some(5));

    // The audit log names who changed what: the joining nodes (by their token) and the admin.
    let audit = c.cli_json(0, &["audit"]).unwrap();
    let rows = audit.as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["actor"] == "node2@join-token"
            && r["what"].as_str().unwrap().starts_with("join node node2")
            && r["result"] == "ok"),
        "{audit}"
    );
    assert!(
        rows.iter().any(|r| r["actor"] == "root@pam!admin"
            && r["what"]
                .as_str()
                .unwrap()
                .starts_with("create datastore plain")),
        "{audit}"
    );

    // connection refused: node3 is down.
    c.nodes[2].kill();
    let o = c.cli(2, &["status"]).unwrap();
    fails_with(&o, "connection refused");
    assert_eq!(o.status.code(), Some(5));
}
