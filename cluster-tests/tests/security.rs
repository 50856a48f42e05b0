//! The security findings, tried on a real 3-node cluster as a hostile tenant and as a local user
//! would: another owner's chunks read by id, tokens and users that could not be revoked, files
//! other users could read, and chunk uploads of the wrong bytes answered 500. Each step failed
//! on the code before its fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use hyper::Method;
use ironcore_client::{ApiClient, Pieces};
use ironcore_cluster_tests::{DaemonCluster, chunk_copies, ok, wait};

/// A client of node `i` with `token` (no token with `None`).
fn client(c: &DaemonCluster, i: usize, token: Option<&str>) -> ApiClient {
    let fp = c.nodes[i].fingerprint.parse().unwrap();
    ApiClient::new(&c.nodes[i].api, fp, token.map(str::to_string))
        .unwrap()
        .with_runtime()
        .unwrap()
}

/// `method path` with `body`: the status and the body (or the error's message).
fn call(api: &ApiClient, method: Method, path: &str, body: Vec<u8>) -> (u16, String) {
    let ct = if body.first() == Some(&b'{') {
        "application/json"
    } else {
        "application/octet-stream"
    };
    match api.blocking(api.raw(method, path, Pieces::from(bytes(body)), ct, &[])) {
        Ok((status, b)) => (status.as_u16(), String::from_utf8_lossy(&b).into_owned()),
        Err(ironcore_client::ApiError::Status { status, message }) => (status, message),
        Err(e) => panic!("{method_path}: {e}", method_path = path),
    }
}

fn bytes(v: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(v)
}

/// A user `name@ibs` with token `name@ibs!t` (its secret returned), both granted `role` on
/// `/datastore/store1`.
fn tenant(c: &DaemonCluster, name: &str, role: &str) -> String {
    let user = format!("{name}@ibs");
    let token = format!("{user}!t");
    ok(&c.cli(0, &["user", "create", &user]).unwrap());
    let created = ok(&c.cli(0, &["token", "create", &token]).unwrap());
    for id in [&user, &token] {
        ok(&c
            .cli(0, &["acl", "set", "/datastore/store1", id, role])
            .unwrap());
    }
    created.lines().last().unwrap().trim().to_string()
}

/// Backs up a directory holding one file of `content` as `group` with `secret`; returns the
/// chunk ids (file names) that appeared in store1.
fn backup_as(c: &DaemonCluster, secret: &str, group: &str, content: &[u8]) -> Vec<String> {
    let before: Vec<String> = chunk_ids(c);
    let src = c.base.path().join(group.replace('/', "-"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("private.txt"), content).unwrap();
    ok(&c
        .cli_as(
            0,
            secret,
            &[
                "backup",
                src.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                group,
            ],
        )
        .unwrap());
    chunk_ids(c)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect()
}

fn chunk_ids(c: &DaemonCluster) -> Vec<String> {
    chunk_copies(c, "store1")
        .into_iter()
        .map(|(_, paths)| paths[0].file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The reader session a read of `group`'s newest snapshot opens, through `api`.
fn open_reader(c: &DaemonCluster, api: &ApiClient, group: &str) -> String {
    let list = c
        .cli_json(0, &["snapshot", "list", "--store", "store1"])
        .unwrap();
    let time = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["group"] == group)
        .filter_map(|s| s["time"].as_i64())
        .max()
        .expect("the group has a snapshot");
    let (status, body) = call(
        api,
        Method::GET,
        &format!(
            "/api2/json/datastore/store1/snapshot?group={}&time={time}",
            group.replace('/', "%2F")
        ),
        vec![],
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["reader"].as_str().expect("a reader session").to_string()
}

/// Finding 1: a Backup token reads no chunk of another owner's snapshot, by id or through a
/// reader of its own; the owner reads its own through its reader.
fn chunks_of_another_owner_cannot_be_read(c: &DaemonCluster) {
    let alice = tenant(c, "alice", "Datastore.Backup");
    let bob = tenant(c, "bob", "Datastore.Backup");
    let alices = backup_as(c, &alice, "host/alice", b"alice's payroll, 2026\n");
    assert!(!alices.is_empty(), "alice's backup stored new chunks");
    backup_as(c, &bob, "host/bob", b"bob's own notes\n");
    let (a, b) = (client(c, 0, Some(&alice)), client(c, 0, Some(&bob)));
    for id in &alices {
        let by_id = call(
            &b,
            Method::GET,
            &format!("/api2/json/datastore/store1/chunk/{id}"),
            vec![],
        );
        assert_eq!(by_id.0, 400, "a chunk by id alone: {by_id:?}");
        assert!(by_id.1.contains("reader session"), "{by_id:?}");
    }
    let bobs_reader = open_reader(c, &b, "host/bob");
    for id in &alices {
        let through_own = call(
            &b,
            Method::GET,
            &format!("/api2/json/datastore/store1/chunk/{id}?reader={bobs_reader}"),
            vec![],
        );
        assert_eq!(through_own.0, 403, "{through_own:?}");
        assert!(
            through_own.1.contains("is not part of snapshot"),
            "{through_own:?}"
        );
    }
    // Alice's reader is hers alone.
    let alices_reader = open_reader(c, &a, "host/alice");
    let stolen = call(
        &b,
        Method::GET,
        &format!(
            "/api2/json/datastore/store1/chunk/{}?reader={alices_reader}",
            alices[0]
        ),
        vec![],
    );
    assert_eq!(stolen.0, 403, "{stolen:?}");
    for id in &alices {
        let own = call(
            &a,
            Method::GET,
            &format!("/api2/json/datastore/store1/chunk/{id}?reader={alices_reader}"),
            vec![],
        );
        assert_eq!(own.0, 200, "the owner reads her own chunks: {own:?}");
    }
    // And a whole restore, through the CLI's reader, on another node.
    let target = c.base.path().join("alice-restore");
    ok(&c
        .cli_as(
            1,
            &alice,
            &[
                "restore",
                "host/alice",
                target.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    assert_eq!(
        std::fs::read(target.join("private.txt")).unwrap(),
        b"alice's payroll, 2026\n"
    );
}

/// Whether every node refuses (401) `secret` within 2 s of the change that revoked it.
fn refused_everywhere(c: &DaemonCluster, secret: &str, why: &str) {
    for i in 0..c.nodes.len() {
        let api = client(c, i, Some(secret));
        wait(
            &format!("node {i} to refuse the credential ({why})"),
            Duration::from_secs(2),
            || {
                Ok(call(
                    &api,
                    Method::GET,
                    "/api2/json/datastore/store1/snapshots",
                    vec![],
                )
                .0 == 401)
            },
        )
        .unwrap();
    }
}

fn accepted_everywhere(c: &DaemonCluster, secret: &str) {
    for i in 0..c.nodes.len() {
        let api = client(c, i, Some(secret));
        wait(
            &format!("node {i} to accept the credential"),
            Duration::from_secs(2),
            || {
                Ok(call(
                    &api,
                    Method::GET,
                    "/api2/json/datastore/store1/snapshots",
                    vec![],
                )
                .0 == 200)
            },
        )
        .unwrap();
    }
}

/// Findings 2 and 3: tokens and users are disabled, re-dated and removed, every node refuses
/// them at once, and a ticket issued before a user was disabled or removed never works again.
fn tokens_and_users_can_be_revoked(c: &DaemonCluster) {
    let carol = tenant(c, "carol", "Datastore.Reader");
    accepted_everywhere(c, &carol);
    ok(&c
        .cli(0, &["token", "update", "carol@ibs!t", "--disable"])
        .unwrap());
    refused_everywhere(c, &carol, "token disabled");
    ok(&c
        .cli(1, &["token", "update", "carol@ibs!t", "--enable"])
        .unwrap());
    accepted_everywhere(c, &carol);
    ok(&c
        .cli(
            2,
            &["token", "update", "carol@ibs!t", "--expire", "2001-01-01"],
        )
        .unwrap());
    refused_everywhere(c, &carol, "token expired");
    ok(&c
        .cli(0, &["token", "update", "carol@ibs!t", "--expire", "never"])
        .unwrap());
    accepted_everywhere(c, &carol);
    ok(&c.cli(0, &["token", "remove", "carol@ibs!t"]).unwrap());
    refused_everywhere(c, &carol, "token removed");

    // A user with a password: its ticket and its tokens go with it.
    let pw = ("IRONCORE_PASSWORD", "dave's long secret");
    ok(&c
        .cli_env(
            0,
            &[("IRONCORE_TOKEN", c.admin_token.as_str()), pw],
            &["user", "create", "dave@ibs", "--password"],
        )
        .unwrap());
    let token = ok(&c.cli(0, &["token", "create", "dave@ibs!t"]).unwrap());
    let dave = token.lines().last().unwrap().trim().to_string();
    for id in ["dave@ibs", "dave@ibs!t"] {
        ok(&c
            .cli(
                0,
                &["acl", "set", "/datastore/store1", id, "Datastore.Reader"],
            )
            .unwrap());
    }
    let login = |i: usize| -> String {
        let out = c
            .cli_env(i, &[pw], &["login", "dave@ibs", "--output", "json"])
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("login answers JSON");
        v["ticket"].as_str().unwrap().to_string()
    };
    let ticket = login(1);
    let with_ticket = |i: usize, t: &str| {
        let api = client(c, i, None).with_ticket(t.to_string());
        call(
            &api,
            Method::GET,
            "/api2/json/datastore/store1/snapshots",
            vec![],
        )
        .0
    };
    assert_eq!(with_ticket(2, &ticket), 200);
    ok(&c
        .cli(0, &["user", "update", "dave@ibs", "--disable"])
        .unwrap());
    refused_everywhere(c, &dave, "user disabled");
    for i in 0..3 {
        wait("the ticket to be refused", Duration::from_secs(2), || {
            Ok(with_ticket(i, &ticket) == 401)
        })
        .unwrap();
    }
    let no_login = c.cli_env(1, &[pw], &["login", "dave@ibs"]).unwrap();
    assert!(!no_login.status.success(), "a disabled user cannot log in");
    ok(&c
        .cli(0, &["user", "update", "dave@ibs", "--enable"])
        .unwrap());
    accepted_everywhere(c, &dave);
    // Enabled again, the user logs in anew; the ticket from before stays dead.
    let fresh = login(2);
    assert_eq!(with_ticket(0, &fresh), 200);
    assert_eq!(
        with_ticket(0, &ticket),
        401,
        "a ticket from before the disable"
    );
    ok(&c.cli(0, &["user", "remove", "dave@ibs"]).unwrap());
    refused_everywhere(c, &dave, "user removed");
    for i in 0..3 {
        wait("the ticket to be refused", Duration::from_secs(2), || {
            Ok(with_ticket(i, &fresh) == 401)
        })
        .unwrap();
    }
    // A new user of the same name does not inherit the old one's tickets.
    ok(&c
        .cli_env(
            0,
            &[("IRONCORE_TOKEN", c.admin_token.as_str()), pw],
            &["user", "create", "dave@ibs", "--password"],
        )
        .unwrap());
    ok(&c
        .cli(
            0,
            &[
                "acl",
                "set",
                "/datastore/store1",
                "dave@ibs",
                "Datastore.Reader",
            ],
        )
        .unwrap());
    assert_eq!(with_ticket(0, &fresh), 401, "a ticket of the removed user");
    // Every revocation is in the audit log, with who did it.
    let audit = ok(&c.cli(0, &["audit", "--output", "json"]).unwrap());
    for what in [
        "disable token carol@ibs!t",
        "remove token carol@ibs!t",
        "disable user dave@ibs",
        "remove user dave@ibs",
    ] {
        assert!(audit.contains(what), "audit lacks {what}: {audit}");
    }
}

/// Finding 5: chunk uploads whose bytes are not the chunk named are 400 with the failed check,
/// and nothing is stored.
fn bad_uploads_are_client_errors(c: &DaemonCluster) {
    let admin = client(c, 0, Some(&c.admin_token));
    let (status, body) = call(
        &admin,
        Method::POST,
        "/api2/json/backup",
        br#"{"store":"store1","group":"host/upload","time":1700000000}"#.to_vec(),
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let upid =
        ironcore_client::api_client::encode_segment(v["upid"].as_str().expect("a backup session"));
    let copies = chunk_copies(c, "store1");
    let (_, paths) = &copies[0];
    let real = std::fs::read(&paths[0]).unwrap();
    let real_id = paths[0].file_name().unwrap().to_string_lossy().into_owned();
    let absent = "ab".repeat(32);
    let mut flipped = real.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let before = chunk_ids(c).len();
    for (what, id, body, check) in [
        ("garbage", absent.as_str(), vec![b'x'; 200], "bad magic"),
        (
            "a short upload",
            absent.as_str(),
            b"not a chunk".to_vec(),
            "truncated",
        ),
        (
            "another chunk's bytes",
            absent.as_str(),
            real.clone(),
            "but",
        ),
        (
            "a changed byte",
            real_id.as_str(),
            flipped,
            "does not match",
        ),
    ] {
        let (status, msg) = call(
            &admin,
            Method::PUT,
            &format!("/api2/json/backup/{upid}/chunk/{id}"),
            body,
        );
        assert_eq!(status, 400, "{what}: {msg}");
        assert!(
            msg.contains("chunk upload rejected") && msg.contains(check),
            "{what}: {msg}"
        );
    }
    assert_eq!(chunk_ids(c).len(), before, "nothing was stored");
    assert!(!chunk_ids(c).contains(&absent));
}

/// Every file and directory under `dir` is its owner's alone.
fn assert_private(dir: &Path) {
    let mut open = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = e.path().symlink_metadata().unwrap();
            if meta.file_type().is_symlink() {
                continue;
            }
            if meta.permissions().mode() & 0o077 != 0 {
                open.push(format!(
                    "{} {:o}",
                    e.path().display(),
                    meta.permissions().mode() & 0o777
                ));
            }
            if meta.is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(open.is_empty(), "readable by other users: {open:#?}");
}

/// Finding 4: under umask 022 no file of a node's data directory (Raft log and state machine
/// with the ticket key, identity, datastores) is readable by another user, and a node whose
/// key file or data directory was opened up refuses to start, naming the path and the fix.
fn secrets_stay_private(c: &mut DaemonCluster) {
    for n in &c.nodes {
        assert_private(&n.dir);
    }
    let key = c.nodes[2].dir.join("identity/node.key");
    assert!(key.exists(), "{}", key.display());
    c.nodes[2].kill();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.spawn(2).unwrap();
    wait("node3 to refuse to start", Duration::from_secs(20), || {
        Ok(c.nodes[2].exited().is_some())
    })
    .unwrap();
    let log = std::fs::read_to_string(c.stdout_log(2)).unwrap();
    assert!(
        log.contains("readable by others") && log.contains(&format!("chmod 600 {}", key.display())),
        "{log}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dir = c.nodes[2].dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    c.spawn(2).unwrap();
    wait("node3 to refuse to start", Duration::from_secs(20), || {
        Ok(c.nodes[2].exited().is_some())
    })
    .unwrap();
    let log = std::fs::read_to_string(c.stdout_log(2)).unwrap();
    assert!(
        log.contains(&format!("chmod -R go-rwx {}", dir.display())),
        "{log}"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    c.spawn(2).unwrap();
    wait("node3 to serve again", Duration::from_secs(30), || {
        Ok(c.cli(2, &["status"])?.status.success())
    })
    .unwrap();
}

#[test]
fn a_hostile_tenant_and_a_local_user_get_nothing() {
    let mut c = DaemonCluster::start(3).unwrap();
    c.create_datastore(0, "store1", 2);
    chunks_of_another_owner_cannot_be_read(&c);
    tokens_and_users_can_be_revoked(&c);
    bad_uploads_are_client_errors(&c);
    secrets_stay_private(&mut c);
}
