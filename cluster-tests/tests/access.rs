//! Who may call what, tried for real: every route of the API description a node serves, called
//! by a token of every built-in role, by a token of another owner, by a token with no grant and
//! with no credential at all, against the table `docs/access-table.tsv` (its rules are
//! `docs/security.md`). A route without a row, or a row without a route, fails; so does any
//! answer that differs from the table, and any 5xx.
//!
//! "allow" means the call got past authentication and authorization (any answer but 401 and
//! 403); "deny" means 401 or 403. Each call is made as valid as the fixture allows — real
//! datastore, group, snapshot, chunk, reader session, backup session, task and victims of its
//! own for what a call removes — so that an "allow" is a real one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hyper::Method;
use ironcore_client::api_client::encode_segment;
use ironcore_client::{ApiClient, Pieces};
use ironcore_cluster_tests::{DaemonCluster, chunk_copies, ok};
use serde_json::{Value, json};

/// The callers, in the table's column order: one token per built-in role, then a token of
/// another owner (Datastore.Backup, owning another group), a token with no grant, and nobody.
const CALLERS: [&str; 9] = [
    "Admin",
    "Datastore.Admin",
    "Datastore.PowerUser",
    "Datastore.Backup",
    "Datastore.Reader",
    "Datastore.Audit",
    "other-owner",
    "no-grant",
    "anonymous",
];
/// The caller that owns the target group `host/target`.
const OWNER: usize = 3;
const OTHER: usize = 6;
const ANONYMOUS: usize = 8;

struct Fixture {
    c: DaemonCluster,
    /// Each caller's token (`ID:SECRET`); empty for `anonymous`.
    secrets: Vec<String>,
    /// Snapshots of `host/target`, one for each caller to forget.
    times: Vec<i64>,
    /// A chunk of `host/target`.
    chunk: String,
    /// Each caller's reader session on `host/target` (if it may read it).
    readers: Vec<Option<String>>,
    /// Each caller's backup session (if it may back up), else one of the admin's that no call
    /// finishes.
    sessions: Vec<String>,
    /// A finished task of the owner.
    task: String,
}

fn client(c: &DaemonCluster, token: Option<&str>) -> ApiClient {
    let fp = c.nodes[0].fingerprint.parse().unwrap();
    ApiClient::new(&c.nodes[0].api, fp, token.map(str::to_string))
        .unwrap()
        .with_runtime()
        .unwrap()
}

fn call(api: &ApiClient, method: Method, path: &str, body: Value) -> (u16, String) {
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let piece = Pieces::from(hyper::body::Bytes::from(body));
    match api.blocking(api.raw(method, path, piece, "application/json", &[])) {
        Ok((s, b)) => (s.as_u16(), String::from_utf8_lossy(&b).into_owned()),
        Err(ironcore_client::ApiError::Status { status, message }) => (status, message),
        Err(e) => panic!("{path}: {e}"),
    }
}

fn cli_ok(c: &DaemonCluster, args: &[&str]) -> String {
    ok(&c.cli(0, args).unwrap())
}

/// Creates the callers, their grants, the target group and what each route needs.
fn fixture() -> Fixture {
    let c = DaemonCluster::start(1).unwrap();
    c.create_datastore(0, "store1", 1);
    let mut secrets = Vec::new();
    for (k, role) in CALLERS.iter().enumerate() {
        if k == ANONYMOUS {
            secrets.push(String::new());
            continue;
        }
        let (user, token) = (format!("c{k}@ibs"), format!("c{k}@ibs!t"));
        cli_ok(&c, &["user", "create", &user]);
        let created = cli_ok(&c, &["token", "create", &token]);
        secrets.push(created.lines().last().unwrap().trim().to_string());
        let grant = match *role {
            "Admin" => Some(("/", "Admin")),
            "other-owner" => Some(("/datastore/store1", "Datastore.Backup")),
            "no-grant" => None,
            r => Some(("/datastore/store1", r)),
        };
        if let Some((path, role)) = grant {
            for id in [&user, &token] {
                cli_ok(&c, &["acl", "set", path, id, role]);
            }
        }
        // Victims of its own, for the calls that remove or change users, tokens and grants.
        for v in [format!("v{k}@ibs"), format!("w{k}@ibs")] {
            cli_ok(&c, &["user", "create", &v]);
        }
        cli_ok(&c, &["token", "create", &format!("v{k}@ibs!t")]);
        cli_ok(
            &c,
            &[
                "acl",
                "set",
                "/datastore/store1",
                &format!("v{k}@ibs!t"),
                "Datastore.Audit",
            ],
        );
        cli_ok(
            &c,
            &[
                "acl",
                "set",
                "/datastore/store1",
                &format!("v{k}@ibs"),
                "Datastore.Audit",
            ],
        );
        let admin = client(&c, Some(&c.admin_token));
        let remote = json!({"name": format!("r{k}"), "host": "127.0.0.1", "port": 1,
            "auth-id": "x@ibs!t", "secret": "x", "fingerprint": "00".repeat(32)});
        assert_eq!(
            call(&admin, Method::POST, "/api2/json/remotes", remote).0,
            200
        );
        let target = json!({"name": format!("n{k}"), "webhook": "http://127.0.0.1:1/hook"});
        let added = call(
            &admin,
            Method::POST,
            "/api2/json/notification/targets",
            target,
        );
        assert_eq!(added.0, 200, "{added:?}");
        let job = json!({"id": format!("j{k}"), "store": "store1", "kind": "verify", "schedule": "daily"});
        let made = call(&admin, Method::POST, "/api2/json/jobs", job);
        assert_eq!(made.0, 200, "{made:?}");
    }
    // The target group, owned by the Backup caller: a snapshot for each caller to forget.
    let src = c.base.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), b"the target group's content").unwrap();
    let before: Vec<String> = names(&c);
    for _ in 0..CALLERS.len() {
        ok(&c
            .cli_as(
                0,
                &secrets[OWNER],
                &[
                    "backup",
                    src.to_str().unwrap(),
                    "--store",
                    "store1",
                    "--group",
                    "host/target",
                ],
            )
            .unwrap());
    }
    let chunk = names(&c).into_iter().find(|n| !before.contains(n)).unwrap();
    ok(&c
        .cli_as(
            0,
            &secrets[OTHER],
            &[
                "backup",
                src.to_str().unwrap(),
                "--store",
                "store1",
                "--group",
                "host/other",
            ],
        )
        .unwrap());
    let list = c
        .cli_json(0, &["snapshot", "list", "--store", "store1"])
        .unwrap();
    let mut times: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["group"] == "host/target")
        .map(|s| s["time"].as_i64().unwrap())
        .collect();
    times.sort_unstable();
    let tasks = c.cli_json(0, &["task", "list"]).unwrap();
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["worker_id"]
                .as_str()
                .is_some_and(|w| w.ends_with("host/target"))
        })
        .and_then(|t| t["upid"].as_str())
        .unwrap()
        .to_string();
    let mut f = Fixture {
        c,
        secrets,
        times,
        chunk,
        readers: Vec::new(),
        sessions: Vec::new(),
        task,
    };
    let spare = session(&f, 0, "host/spare").unwrap();
    for k in 0..CALLERS.len() {
        let api = caller(&f, k);
        let (status, body) = call(&api, Method::GET, &snapshot_query(&f, 0), Value::Null);
        let reader = (status == 200)
            .then(|| {
                serde_json::from_str::<Value>(&body).unwrap()["reader"]
                    .as_str()
                    .map(str::to_string)
            })
            .flatten();
        f.readers.push(reader);
        let own = session(&f, k, &format!("host/s{k}"));
        f.sessions.push(own.unwrap_or_else(|| spare.clone()));
    }
    f
}

/// The chunk files' names (ids) of store1.
fn names(c: &DaemonCluster) -> Vec<String> {
    chunk_copies(c, "store1")
        .into_iter()
        .map(|(_, p)| p[0].file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A backup session of caller `k` for `group`, if it may open one.
fn session(f: &Fixture, k: usize, group: &str) -> Option<String> {
    let body = json!({"store": "store1", "group": group, "time": 1_700_000_000 + k as i64});
    let (status, answer) = call(&caller(f, k), Method::POST, "/api2/json/backup", body);
    (status == 200).then(|| {
        let v: Value = serde_json::from_str(&answer).unwrap();
        encode_segment(v["upid"].as_str().unwrap())
    })
}

fn caller(f: &Fixture, k: usize) -> ApiClient {
    client(&f.c, (k != ANONYMOUS).then(|| f.secrets[k].as_str()))
}

fn snapshot_query(f: &Fixture, k: usize) -> String {
    format!(
        "/api2/json/datastore/store1/snapshot?group=host%2Ftarget&time={}",
        f.times[k]
    )
}

/// The request caller `k` makes for route `method path`: its path with query, and its body.
fn request(f: &Fixture, k: usize, method: &str, path: &str) -> (String, Value) {
    let fill = |p: &str| {
        p.replace("{store}", "store1")
            .replace(
                "{id}",
                &match path {
                    p if p.contains("/jobs/") => format!("j{k}"),
                    _ => f.chunk.clone(),
                },
            )
            .replace(
                "{upid}",
                &match path {
                    p if p.contains("/backup/") => f.sessions[k].clone(),
                    _ => encode_segment(&f.task),
                },
            )
            .replace(
                "{name}",
                &match path {
                    p if p.contains("/remotes/") => format!("r{k}"),
                    _ => format!("n{k}"),
                },
            )
            .replace(
                "{userid}",
                &encode_segment(&match method {
                    "DELETE" => format!("w{k}@ibs"),
                    _ => format!("v{k}@ibs"),
                }),
            )
            .replace("{tokenid}", &encode_segment(&format!("v{k}@ibs!t")))
            .replace("{site}", &format!("s{k}"))
    };
    let p = fill(path);
    let none = Value::Null;
    match (method, path) {
        ("GET" | "DELETE", "/api2/json/datastore/{store}/snapshot") => (snapshot_query(f, k), none),
        ("GET", "/api2/json/datastore/{store}/chunk/{id}") => {
            // A caller that could not open a reader tries the owner's.
            let reader = f.readers[k]
                .clone()
                .or_else(|| f.readers[OWNER].clone())
                .unwrap();
            (format!("{p}?reader={reader}"), none)
        }
        ("POST", "/api2/json/datastore/{store}/prune") => (
            p,
            json!({"group": "host/target", "keep-last": 100, "dry-run": true}),
        ),
        ("PUT", "/api2/json/datastore/{store}/protect") => (
            p,
            json!({"group": "host/target", "time": f.times[k], "protected": false}),
        ),
        ("POST", "/api2/json/datastore/{store}/namespace") => (format!("{p}?ns=ns{k}"), none),
        ("PUT", "/api2/json/datastore/{store}/quarantine") => (p, json!({"quarantined": false})),
        ("PUT", "/api2/json/cluster/sites/{site}") => (p, json!({"role": "backup"})),
        ("POST", "/api2/json/datastore/{store}/gc" | "/api2/json/datastore/{store}/verify") => {
            (p, json!({}))
        }
        ("POST", "/api2/json/datastore") => (
            p,
            json!({"name": format!("d{k}"), "path": format!("/srv/d{k}")}),
        ),
        ("POST", "/api2/json/backup") => (
            p,
            json!({"store": "store1", "group": format!("host/b{k}"), "time": 1_700_000_100}),
        ),
        ("PUT", "/api2/json/backup/{upid}/chunk/{id}") => (p, json!("not a chunk")),
        ("POST", "/api2/json/backup/{upid}/finish") => (p, json!({"manifest": "00"})),
        ("POST", "/api2/json/backup/{upid}/known") => (p, json!({"ids": [f.chunk]})),
        ("POST", "/api2/json/cluster/join-token") => (p, json!({})),
        ("POST", "/api2/json/cluster/join") => (p, json!({"token": "not a token"})),
        ("POST", "/api2/json/cluster/membership") => {
            (p, json!({"op": "transfer", "node": "node1"}))
        }
        ("POST", "/api2/json/notification/targets") => (
            p,
            json!({"name": format!("m{k}"), "webhook": "http://127.0.0.1:1/hook"}),
        ),
        ("POST", "/api2/json/remotes") => (
            p,
            json!({"name": format!("q{k}"), "host": "127.0.0.1", "auth-id": "x@ibs!t",
                "secret": "x", "fingerprint": "00".repeat(32)}),
        ),
        ("POST", "/api2/json/jobs") => (
            p,
            json!({"id": format!("k{k}"), "store": "store1", "kind": "gc", "schedule": "daily"}),
        ),
        ("GET", "/api2/json/sync/diff") => (
            format!("{p}?store=store1&remote=r{k}&remote-store=store1"),
            none,
        ),
        ("POST", "/api2/json/access/ticket") => (
            p,
            json!({"username": "pw@ibs", "password": "the right password"}),
        ),
        ("PUT", "/api2/json/access/password") => (
            p,
            json!({"userid": format!("v{k}@ibs"), "password": "a new password"}),
        ),
        ("POST", "/api2/json/access/users") => (p, json!({"userid": format!("u{k}@ibs")})),
        ("POST", "/api2/json/access/tokens") => (p, json!({"tokenid": format!("v{k}@ibs!n")})),
        ("PUT", "/api2/json/access/users/{userid}") => (p, json!({"comment": "changed"})),
        ("PUT", "/api2/json/access/tokens/{tokenid}") => (p, json!({"comment": "changed"})),
        ("PUT", "/api2/json/access/acl") => (
            p,
            json!({"path": "/datastore/store1", "auth_id": format!("w{k}@ibs"), "role": "Datastore.Audit"}),
        ),
        ("DELETE", "/api2/json/access/acl") => (
            format!(
                "{p}?path=%2Fdatastore%2Fstore1&auth_id={}",
                encode_segment(&format!("v{k}@ibs"))
            ),
            none,
        ),
        ("POST", "/api2/json/keys") => (p, json!({"fingerprint": format!("{k:02x}").repeat(32)})),
        (_, _) => (p, none),
    }
}

/// The outcome of each (route, caller), in table form.
fn outcomes(
    f: &Fixture,
    routes: &[(String, String, bool)],
) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    for (method, path, _) in routes {
        let mut row = Vec::new();
        for (k, who) in CALLERS.iter().enumerate() {
            let (p, body) = request(f, k, method, path);
            let (status, answer) = call(&caller(f, k), method.parse().unwrap(), &p, body);
            assert!(
                status < 500,
                "{method} {p} as {who}: a server error {status}: {answer}"
            );
            row.push(
                if status == 401 || status == 403 {
                    "deny"
                } else {
                    "allow"
                }
                .to_string(),
            );
        }
        out.insert((method.clone(), path.clone()), row);
    }
    out
}

/// The routes of the document node 1 serves, and whether it marks each public
/// (`security: []`).
fn served_routes(f: &Fixture) -> Vec<(String, String, bool)> {
    let (status, body) = call(
        &caller(f, 0),
        Method::GET,
        "/api2/json/openapi.json",
        Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).unwrap();
    let mut routes = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "head", "patch"].contains(&method.as_str()) {
                let public = ops[method]["security"] == json!([]);
                routes.push((method.to_ascii_uppercase(), path.clone(), public));
            }
        }
    }
    routes
}

fn table_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/access-table.tsv")
}

fn read_table() -> BTreeMap<(String, String), Vec<String>> {
    let text = std::fs::read_to_string(table_path()).unwrap();
    let mut rows = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            cols.len(),
            2 + CALLERS.len(),
            "a row of {} columns: {line}",
            2 + CALLERS.len()
        );
        if cols[0] == "method" {
            assert_eq!(&cols[2..], CALLERS, "the header names the callers in order");
            continue;
        }
        let key = (cols[0].to_string(), cols[1].to_string());
        let row = cols[2..].iter().map(|s| s.to_string()).collect();
        assert!(rows.insert(key, row).is_none(), "a route twice: {line}");
    }
    rows
}

fn render(rows: &BTreeMap<(String, String), Vec<String>>) -> String {
    let mut s = format!(
        "# Who may call what: see docs/security.md. Checked by cluster-tests/tests/access.rs.\nmethod\tpath\t{}\n",
        CALLERS.join("\t")
    );
    for ((m, p), row) in rows {
        s.push_str(&format!("{m}\t{p}\t{}\n", row.join("\t")));
    }
    s
}

#[test]
fn every_route_answers_every_role_as_the_table_says() {
    let f = fixture();
    // A password user, for the login route.
    ok(&f
        .c
        .cli_env(
            0,
            &[
                ("IRONCORE_TOKEN", f.c.admin_token.as_str()),
                ("IRONCORE_PASSWORD", "the right password"),
            ],
            &["user", "create", "pw@ibs", "--password"],
        )
        .unwrap());
    let routes = served_routes(&f);
    let actual = outcomes(&f, &routes);
    let actual_text = render(&actual);
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("access-table.actual.tsv");
    std::fs::write(&out, &actual_text).unwrap();
    let expected = read_table();
    let missing: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    let stale: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let differ: Vec<String> = actual
        .iter()
        .filter_map(|(key, row)| {
            let want = expected.get(key)?;
            (want != row).then(|| {
                let cells: Vec<String> = CALLERS
                    .iter()
                    .zip(want.iter().zip(row))
                    .filter(|(_, (w, a))| w != a)
                    .map(|(c, (w, a))| format!("{c}: table {w}, node {a}"))
                    .collect();
                format!("{} {}: {}", key.0, key.1, cells.join("; "))
            })
        })
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty() && differ.is_empty(),
        "docs/access-table.tsv and the node disagree (what the node did: {}):\nroutes without a row: {missing:?}\nrows without a route: {stale:?}\n{}",
        out.display(),
        differ.join("\n")
    );
    // Nothing is open without credentials that the document does not mark public, and what
    // it marks public is.
    for (method, path, public) in &routes {
        let anonymous = &actual[&(method.clone(), path.clone())][ANONYMOUS];
        assert_eq!(
            anonymous == "allow",
            *public,
            "{method} {path}: without credentials it answers {anonymous}, the document says public: {public}"
        );
    }
}
