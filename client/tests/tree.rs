//! Tree and image backups through a real datastore, restored and compared entry by entry.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use ironcore_chunkstore::{Catalog, CryptKey, Datastore, DatastoreOptions};
use ironcore_client::image::{backup_image, restore_image};
use ironcore_client::{ClientError, backup_tree, compare_trees, restore_tree};
use ironcore_types::SnapshotRef;
use rand::{Rng, SeedableRng};

fn datastore(dir: &Path) -> Arc<Datastore> {
    let catalog = Arc::new(Catalog::open(&dir.join("catalog")).unwrap());
    Datastore::create(
        catalog,
        &"t".parse().unwrap(),
        &dir.join("store"),
        DatastoreOptions::default(),
    )
    .unwrap()
}

fn snap(time: i64) -> SnapshotRef {
    SnapshotRef {
        ns: Default::default(),
        group: "host/web01".parse().unwrap(),
        time,
    }
}

fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill(&mut v[..]);
    v
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 123_456_789,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A tree with every kind of entry the format keeps.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::create_dir_all(root.join("var/empty-dir")).unwrap();
    fs::write(root.join("etc/app/config.toml"), b"listen = 8007\n").unwrap();
    fs::write(root.join("etc/empty"), b"").unwrap();
    fs::write(root.join("var/big.bin"), random(1, 3_000_000)).unwrap();
    let log: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    fs::write(root.join("var/app.log"), &log).unwrap();
    // A sparse file: 8 MiB with data only at the end.
    let sparse = fs::File::create(root.join("var/sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    use std::io::{Seek, SeekFrom, Write};
    let mut sparse = sparse;
    sparse.seek(SeekFrom::Start((8 << 20) - 5)).unwrap();
    sparse.write_all(b"tail!").unwrap();
    drop(sparse);
    fs::hard_link(root.join("var/big.bin"), root.join("var/big-link.bin")).unwrap();
    std::os::unix::fs::symlink("../etc/app/config.toml", root.join("var/config-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("var/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_bits_truncate(0o640),
        0,
    )
    .unwrap();
    fs::set_permissions(
        root.join("etc/app/config.toml"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(root.join("var/big.bin"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(
        root.join("var/empty-dir"),
        fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
    for (i, p) in [
        "etc/app/config.toml",
        "var/big.bin",
        "var/app.log",
        "dangling",
        "var/empty-dir",
        "etc",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_600_000_000 + i as i64 * 1000);
    }
}

/// Compares two trees with the library's comparison, failing the test on a difference.
fn assert_same_tree(a: &Path, b: &Path) -> usize {
    match compare_trees(a, b) {
        Ok(n) => n,
        Err(diff) => panic!("{diff}"),
    }
}

#[test]
fn tree_round_trip_is_identical_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore(dir.path());
    let src = dir.path().join("src");
    make_tree(&src);
    let report = backup_tree(&ds, &src, snap(100), None, &mut |_| {}).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.files, 5);
    assert_eq!(report.others, 4, "a hard link, two symlinks and a fifo");
    let out = dir.path().join("out");
    let restored = restore_tree(&ds, &snap(100), &out, None, None).unwrap();
    assert_eq!(restored.files, 5);
    assert_eq!(assert_same_tree(&src, &out), 14, "every entry compared");
    // The sparse file is sparse again.
    let m = fs::metadata(out.join("var/sparse.img")).unwrap();
    assert_eq!(m.len(), 8 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "sparse file restored with {} blocks",
        m.blocks()
    );
    assert!(
        fs::symlink_metadata(out.join("var/pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn encrypted_tree_round_trips_and_single_file_restore_works() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore(dir.path());
    let src = dir.path().join("src");
    make_tree(&src);
    let key = CryptKey::generate();
    backup_tree(&ds, &src, snap(100), Some(key.clone()), &mut |_| {}).unwrap();
    let out = dir.path().join("out");
    restore_tree(&ds, &snap(100), &out, Some(&key), None).unwrap();
    assert_same_tree(&src, &out);
    let one = dir.path().join("one");
    let r = restore_tree(&ds, &snap(100), &one, Some(&key), Some("var/app.log")).unwrap();
    assert_eq!(r.files, 1);
    assert_eq!(
        fs::read(one.join("var/app.log")).unwrap(),
        fs::read(src.join("var/app.log")).unwrap()
    );
    let sub = dir.path().join("sub");
    restore_tree(&ds, &snap(100), &sub, Some(&key), Some("etc")).unwrap();
    assert_eq!(assert_same_tree(&src.join("etc"), &sub.join("etc")), 4);
    let err = restore_tree(
        &ds,
        &snap(100),
        &dir.path().join("x"),
        Some(&key),
        Some("nope"),
    )
    .unwrap_err();
    assert!(matches!(err, ClientError::NotInSnapshot(_)), "{err}");
}

#[test]
fn incremental_backup_uploads_only_changed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore(dir.path());
    let src = dir.path().join("src");
    make_tree(&src);
    for i in 0..8 {
        fs::write(
            src.join(format!("var/data{i}.bin")),
            random(10 + i, 2 << 20),
        )
        .unwrap();
    }
    let first = backup_tree(&ds, &src, snap(100), None, &mut |_| {}).unwrap();
    // Insert bytes in the middle of one file: content-defined chunking resynchronises.
    let p = src.join("var/data3.bin");
    let mut d = fs::read(&p).unwrap();
    d.splice(1_000_000..1_000_000, b"inserted!".iter().copied());
    fs::write(&p, d).unwrap();
    let second = backup_tree(&ds, &src, snap(200), None, &mut |_| {}).unwrap();
    assert!(
        second.stats.new_bytes < first.stats.new_bytes / 4,
        "{:?} vs {:?}",
        second.stats,
        first.stats
    );
    assert!(second.stats.dedup_hit_rate() > 0.7, "{:?}", second.stats);
    let out = dir.path().join("out");
    restore_tree(&ds, &snap(200), &out, None, None).unwrap();
    assert_same_tree(&src, &out);
}

#[test]
fn disk_image_round_trips_with_fixed_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore(dir.path());
    let img = dir.path().join("disk.raw");
    let data = [random(3, 5 << 20), vec![0u8; 8 << 20], random(4, 1_234_567)].concat();
    fs::write(&img, &data).unwrap();
    let s = SnapshotRef {
        ns: Default::default(),
        group: "vm/100".parse().unwrap(),
        time: 1,
    };
    backup_image(&ds, &img, "drive-scsi0.img", s.clone(), None).unwrap();
    let out = dir.path().join("restored.raw");
    assert_eq!(
        restore_image(&ds, &s, "drive-scsi0.img", &out, None).unwrap(),
        data.len() as u64
    );
    assert_eq!(fs::read(&out).unwrap(), data);
}

#[test]
fn bad_source_and_target_give_the_manual_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ds = datastore(dir.path());
    let err =
        backup_tree(&ds, &dir.path().join("missing"), snap(1), None, &mut |_| {}).unwrap_err();
    assert!(err.to_string().starts_with("source not reachable"), "{err}");
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    backup_tree(&ds, &src, snap(2), None, &mut |_| {}).unwrap();
    let err = restore_tree(&ds, &snap(2), Path::new("/dev/null/inside"), None, None).unwrap_err();
    assert!(
        err.to_string().starts_with("destination not writable"),
        "{err}"
    );
    let err = restore_tree(&ds, &snap(2), &src, None, None).unwrap_err();
    assert!(
        matches!(err, ClientError::DestinationExists { .. }),
        "{err}"
    );
}
