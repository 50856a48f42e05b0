//! Every copy lives where placement says: a backup taken through a node that does not store
//! the datastore (it stands in another site) leaves no chunk on that node, and every copy on
//! the storage nodes is one that GC and verify visit.

use ironcore_cluster_tests::{DaemonCluster, chunk_copies, ok};

#[test]
fn a_backup_through_a_node_of_another_site_leaves_its_copies_only_on_storage_nodes() {
    let c = DaemonCluster::start_at(&["primary", "primary", "primary", "backup"])
        .expect("cluster starts");
    c.create_datastore(0, "store1", 2);
    let src = c.base.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..40u32 {
        // Incompressible enough to make several chunks.
        let data: Vec<u8> = (0..50_000u32)
            .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i * 7919) >> 13) as u8)
            .collect();
        std::fs::write(src.join(format!("f{i}")), data).unwrap();
    }
    let s = src.to_str().unwrap();
    // Through node4, which stands in site "backup": store1's storage nodes are node1-3.
    let first = c
        .cli_json(3, &["backup", s, "--store", "store1", "--group", "host/a"])
        .unwrap();
    assert!(first["new-chunks"].as_u64().unwrap() > 0, "{first}");
    let copies = chunk_copies(&c, "store1");
    assert!(!copies.is_empty());
    let on = |node: &str, p: &std::path::Path| p.to_string_lossy().contains(&format!("/{node}/"));
    for (_, paths) in &copies {
        assert!(
            !paths.iter().any(|p| on("node4", p)),
            "a chunk stayed on node4, which does not store store1: {paths:?}"
        );
        assert_eq!(
            paths.len(),
            2,
            "every chunk on its 2 placement nodes: {paths:?}"
        );
    }
    // The snapshot names only storage nodes as holders, and verify finds every copy intact.
    let list = c
        .cli_json(3, &["snapshot", "list", "--store", "store1"])
        .unwrap();
    assert!(!list.to_string().contains("node4"), "{list}");
    let out = ok(&c.cli(0, &["verify", "start", "store1"]).unwrap());
    assert!(out.contains("OK") || out.contains("ok"), "{out}");
    // A second backup through node4 (dedup against the storage nodes) and a restore work.
    ok(&c
        .cli(3, &["backup", s, "--store", "store1", "--group", "host/a"])
        .unwrap());
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
    assert!(
        chunk_copies(&c, "store1")
            .iter()
            .all(|(_, paths)| !paths.iter().any(|p| on("node4", p)))
    );

    // A backup through node4 that never commits leaves its uploads staged there; GC deletes
    // them (node4 keeps nothing of store1 past the cutoff).
    let (mut client, mut writer, upid) = c.fifo_backup(3, "store1", "vm/9").unwrap();
    for i in 0..12u8 {
        let block: Vec<u8> = (0..(1u32 << 20))
            .map(|j| (j.wrapping_mul(2_654_435_761) >> 11) as u8 ^ i)
            .collect();
        std::io::Write::write_all(&mut writer, &block).unwrap();
    }
    let staged = |c: &DaemonCluster| {
        chunk_copies(c, "store1")
            .iter()
            .filter(|(_, paths)| paths.iter().any(|p| on("node4", p)))
            .count()
    };
    ironcore_cluster_tests::wait(
        "chunks staged on node4",
        std::time::Duration::from_secs(30),
        || Ok(staged(&c) > 0),
    )
    .unwrap();
    ok(&c.cli(3, &["task", "cancel", &upid]).unwrap());
    drop(writer);
    let _ = client.wait();
    // The cutoff has one-second resolution: chunks touched in the second GC starts are kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(&c
        .cli(0, &["gc", "start", "store1", "--grace-secs", "0"])
        .unwrap());
    assert_eq!(staged(&c), 0, "GC left staged chunks on node4");
    ok(&c.cli(0, &["verify", "start", "store1"]).unwrap());
}
