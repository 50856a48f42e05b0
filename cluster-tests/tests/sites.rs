//! Sites are cluster state: the first node's site is the primary, other sites are recorded
//! with their role before their nodes join, a node naming an unknown site is refused with the
//! known ones, and a witness site's node votes but holds no datastore and no chunk.

use std::time::Duration;

use ironcore_cluster_tests::{DaemonCluster, chunk_copies, index_of, ok, wait};
use serde_json::Value;

fn refused(out: &std::process::Output, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a refusal naming `{words}`");
    assert!(err.contains(words), "expected `{words}` in: {err}");
}

fn site<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no site {name} in {list}"))
}

#[test]
fn sites_have_roles_and_a_witness_votes_but_holds_no_data() {
    let mut c = DaemonCluster::start_at(&["primary", "primary", "backup", "witness"])
        .expect("cluster starts");
    let list = c.cli_json(0, &["cluster", "site", "list"]).unwrap();
    assert_eq!(site(&list, "primary")["role"], "primary", "{list}");
    assert_eq!(
        site(&list, "primary")["nodes"],
        serde_json::json!(["node1", "node2"])
    );
    assert_eq!(site(&list, "backup")["role"], "backup", "{list}");
    assert_eq!(site(&list, "witness")["role"], "witness", "{list}");
    // The witness's node joined as a witness and votes.
    let status = c.cli_json(0, &["cluster", "status"]).unwrap();
    let node4 = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "node4")
        .unwrap();
    assert_eq!(node4["role"], "witness", "{status}");
    assert_eq!(node4["voter"], true, "{status}");

    // Roles keep their rules.
    refused(
        &c.cli(
            0,
            &["cluster", "site", "set", "backup", "--role", "primary"],
        )
        .unwrap(),
        "site primary is the primary site; make it a backup site first",
    );
    refused(
        &c.cli(
            0,
            &["cluster", "site", "set", "backup", "--role", "witness"],
        )
        .unwrap(),
        "site backup has storage nodes (node3)",
    );
    refused(
        &c.cli(
            0,
            &["cluster", "site", "set", "witness", "--role", "backup"],
        )
        .unwrap(),
        "site witness has witness nodes (node4)",
    );
    refused(
        &c.cli(
            0,
            &[
                "datastore",
                "create",
                "w",
                "--path",
                "/srv/w",
                "--site",
                "witness",
            ],
        )
        .unwrap(),
        "site witness is a witness site and holds no data",
    );

    // A node naming a site the cluster does not know is refused with the known ones; once the
    // site is recorded it joins.
    let i = c.prepare_node("elsewhere", "").unwrap();
    refused(
        &c.join_node(i).unwrap(),
        "site 'elsewhere' is not known to this cluster (known: backup (backup), primary (primary), witness (witness))",
    );
    ok(&c
        .cli(
            0,
            &["cluster", "site", "set", "elsewhere", "--role", "backup"],
        )
        .unwrap());
    ok(&c.join_node(i).unwrap());
    let list = c.cli_json(0, &["cluster", "site", "list"]).unwrap();
    assert_eq!(
        site(&list, "elsewhere")["nodes"],
        serde_json::json!(["node5"])
    );

    // `cluster status` through the leader groups the nodes by site with each one's progress:
    // all in touch; node5 (joined, never started) never seen; node3 silent once killed.
    let leader_index = |c: &DaemonCluster| {
        let s = c.cli_json(0, &["cluster", "status"]).unwrap();
        index_of(c, &s, s["leader"].as_u64().unwrap())
    };
    let node = |s: &Value, name: &str| -> Value {
        s["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {s}"))
    };
    let l = leader_index(&c);
    let s = c.cli_json(l, &["cluster", "status"]).unwrap();
    assert_eq!(s["sites"][0]["name"], "backup", "{s}");
    let primary = s["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "primary")
        .unwrap();
    assert_eq!(primary["role"], "primary");
    assert_eq!(primary["nodes"], serde_json::json!(["node1", "node2"]));
    for name in ["node1", "node2", "node3", "node4"] {
        let n = node(&s, name);
        assert_eq!(n["health"], "ok", "{n}");
        assert!(n["lag"].as_u64().unwrap() < 100, "{n}");
    }
    assert_eq!(node(&s, "node5")["health"], "never seen", "{s}");
    if l != 2 {
        c.nodes[2].kill();
        wait("node3 to be silent", Duration::from_secs(30), || {
            let s = c.cli_json(l, &["cluster", "status"])?;
            Ok(node(&s, "node3")["health"] == "silent")
        })
        .unwrap();
        c.spawn(2).unwrap();
    }

    // A backup through the witness's node leaves no chunk there: the copies are on the primary's
    // nodes, and a restore through the witness's node is identical.
    c.create_datastore(0, "store1", 2);
    let src = c.base.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8u32 {
        let data: Vec<u8> = (0..60_000u32)
            .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i * 7919) >> 13) as u8)
            .collect();
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    let s = src.to_str().unwrap();
    ok(&c
        .cli(3, &["backup", s, "--store", "store1", "--group", "host/a"])
        .unwrap());
    let copies = chunk_copies(&c, "store1");
    assert!(!copies.is_empty());
    for (_, paths) in &copies {
        assert_eq!(paths.len(), 2, "{paths:?}");
        assert!(
            paths.iter().all(|p| {
                let p = p.to_string_lossy();
                p.contains("/node1/") || p.contains("/node2/")
            }),
            "a copy outside the primary's nodes: {paths:?}"
        );
    }
    let out = c.base.path().join("restore");
    ok(&c
        .cli(
            3,
            &[
                "restore",
                "host/a",
                out.to_str().unwrap(),
                "--store",
                "store1",
            ],
        )
        .unwrap());
    ok(&c.cli(3, &["compare", s, out.to_str().unwrap()]).unwrap());
}
