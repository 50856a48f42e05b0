//! Restores of crafted tree archives: entry lists written with the client's own encoder into a
//! real datastore, each with hostile entries beside legitimate ones. A restore must write
//! nothing outside its target, skip each hostile entry with a warning naming it, and restore
//! the rest.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ironcore_chunkstore::{Catalog, Datastore, DatastoreOptions};
use ironcore_client::{
    Entry, EntryKind, META_ARCHIVE, PAYLOAD_ARCHIVE, RestoreOptions, RestoreReport, encode_entries,
    restore_tree, restore_tree_with,
};
use ironcore_types::SnapshotRef;

/// A datastore, a directory outside the restore target, and the target's path.
struct Scene {
    _dir: tempfile::TempDir,
    ds: Arc<Datastore>,
    outside: PathBuf,
    target: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(Catalog::open(&dir.path().join("catalog")).unwrap());
        let ds = Datastore::create(
            catalog,
            &"t".parse().unwrap(),
            &dir.path().join("store"),
            DatastoreOptions::default(),
        )
        .unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let target = dir.path().join("out");
        Scene {
            _dir: dir,
            ds,
            outside,
            target,
        }
    }

    /// Commits a tree snapshot whose payload is `payload` and whose entry list is `entries`,
    /// written as a backup writes them.
    fn commit(&self, entries: &[Entry], payload: &[u8]) {
        let mut session = self.ds.begin_backup(snap(), None).unwrap();
        let mut w = session.dynamic_writer(PAYLOAD_ARCHIVE).unwrap();
        w.append(payload).unwrap();
        w.finish().unwrap();
        let mut w = session.dynamic_writer(META_ARCHIVE).unwrap();
        w.append(&encode_entries(entries).unwrap()).unwrap();
        w.finish().unwrap();
        session.commit().unwrap();
    }

    fn restore(&self) -> RestoreReport {
        restore_tree(&self.ds, &snap(), &self.target, None, None).unwrap()
    }
}

fn snap() -> SnapshotRef {
    SnapshotRef {
        ns: Default::default(),
        group: "host/web01".parse().unwrap(),
        time: 100,
    }
}

fn entry(path: impl AsRef<[u8]>, kind: EntryKind) -> Entry {
    let mode = if matches!(kind, EntryKind::Dir) {
        0o755
    } else {
        0o644
    };
    Entry {
        path: path.as_ref().to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime_sec: 1_600_000_000,
        mtime_nsec: 0,
    }
}

fn dir(path: &str) -> Entry {
    entry(path, EntryKind::Dir)
}

fn file(path: impl AsRef<[u8]>, offset: u64, size: u64) -> Entry {
    entry(path, EntryKind::File { offset, size })
}

fn symlink(path: &str, target: &Path) -> Entry {
    let target = target.as_os_str().as_encoded_bytes().to_vec();
    entry(path, EntryKind::Symlink { target })
}

fn hard_link(path: &str, target: &str) -> Entry {
    let target = target.as_bytes().to_vec();
    entry(path, EntryKind::HardLink { target })
}

/// Everything under `root`: path, type, size, content, link count and mode, in a stable order.
fn listing(root: &Path) -> Vec<(PathBuf, String, u64, Vec<u8>, u64, u32)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                todo.push(p.clone());
            }
            let kind = format!("{:?}", m.file_type());
            out.push((p, kind, m.len(), content, m.nlink(), m.mode()));
        }
    }
    out.sort();
    out
}

/// Asserts that a warning names each of `names`.
fn assert_warned(report: &RestoreReport, names: &[&str]) {
    for name in names {
        let quoted = format!("'{name}'");
        assert!(
            report.warnings.iter().any(|w| w.contains(&quoted)),
            "no warning names {quoted}: {:?}",
            report.warnings
        );
    }
}

#[test]
fn a_symlinked_directory_does_not_lead_a_restore_outside_the_target() {
    let s = Scene::new();
    let payload = b"hellopwned!secondzzz";
    s.commit(
        &[
            dir(""),
            file("a.txt", 0, 5),
            symlink("d", &s.outside),
            file("d/x", 5, 6),
            dir("d/sub"),
            entry("d/pipe", EntryKind::Fifo),
            dir("e"),
            file("e/z.txt", 11, 6),
        ],
        payload,
    );
    let report = s.restore();
    assert_eq!(listing(&s.outside), [], "written outside the target");
    assert_eq!(fs::read(s.target.join("a.txt")).unwrap(), b"hello");
    assert_eq!(fs::read(s.target.join("e/z.txt")).unwrap(), b"second");
    assert_eq!(fs::read_link(s.target.join("d")).unwrap(), s.outside);
    assert_warned(&report, &["d/x", "d/sub", "d/pipe"]);
}

#[test]
fn hard_links_to_names_outside_the_target_or_not_restored_are_refused() {
    let s = Scene::new();
    let secret = s.outside.join("secret");
    fs::write(&secret, b"secret").unwrap();
    let before = listing(&s.outside);
    let absolute = secret.to_str().unwrap().to_string();
    s.commit(
        &[
            dir(""),
            file("a.txt", 0, 5),
            hard_link("up-link", "../outside/secret"),
            dir("sub"),
            hard_link("sub/deep-link", "sub/../../outside/secret"),
            hard_link("abs-link", &absolute),
            hard_link("ghost-link", "not-in-archive"),
            hard_link("early-link", "z.txt"),
            hard_link("good-link", "a.txt"),
            file("z.txt", 5, 3),
        ],
        b"helloxyz",
    );
    let report = s.restore();
    assert_eq!(listing(&s.outside), before, "the outside file was touched");
    assert_eq!(
        fs::metadata(&secret).unwrap().nlink(),
        1,
        "linked into the target"
    );
    for refused in [
        "up-link",
        "sub/deep-link",
        "abs-link",
        "ghost-link",
        "early-link",
    ] {
        assert!(
            fs::symlink_metadata(s.target.join(refused)).is_err(),
            "{refused} restored"
        );
    }
    let a = fs::metadata(s.target.join("a.txt")).unwrap();
    assert_eq!(fs::read(s.target.join("a.txt")).unwrap(), b"hello");
    assert_eq!(
        fs::metadata(s.target.join("good-link")).unwrap().ino(),
        a.ino()
    );
    assert_eq!(fs::read(s.target.join("z.txt")).unwrap(), b"xyz");
    assert_warned(
        &report,
        &[
            "up-link",
            "sub/deep-link",
            "abs-link",
            "ghost-link",
            "early-link",
        ],
    );
}

#[test]
fn dot_dot_absolute_empty_and_nul_names_are_skipped_and_the_rest_restored() {
    let s = Scene::new();
    let absolute = format!("{}/abs.txt", s.outside.display());
    s.commit(
        &[
            dir(""),
            file("a.txt", 0, 5),
            file("../outside/up.txt", 5, 5),
            file(&absolute, 5, 5),
            dir("sub"),
            file("sub/../../outside/deep.txt", 5, 5),
            file("sub//empty.txt", 5, 5),
            file("./dot.txt", 5, 5),
            file(b"nul\0.txt", 5, 5),
            file("sub/ok.txt", 10, 2),
        ],
        b"helloevil!ok",
    );
    let report = s.restore();
    assert_eq!(listing(&s.outside), [], "written outside the target");
    assert_eq!(fs::read(s.target.join("a.txt")).unwrap(), b"hello");
    assert_eq!(fs::read(s.target.join("sub/ok.txt")).unwrap(), b"ok");
    let names: Vec<_> = fs::read_dir(&s.target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_warned(
        &report,
        &[
            "../outside/up.txt",
            &absolute,
            "sub/../../outside/deep.txt",
            "sub//empty.txt",
            "./dot.txt",
            "nul\\0.txt",
        ],
    );
}

#[test]
fn device_nodes_are_not_restored_unless_asked() {
    let s = Scene::new();
    let char_dev = EntryKind::CharDevice {
        rdev: rustix::fs::makedev(1, 3),
    };
    let block_dev = EntryKind::BlockDevice {
        rdev: rustix::fs::makedev(7, 0),
    };
    s.commit(
        &[
            dir(""),
            file("a.txt", 0, 5),
            dir("dev"),
            entry("dev/null", char_dev),
            entry("dev/loop0", block_dev),
            entry("dev/pipe", EntryKind::Fifo),
        ],
        b"hello",
    );
    let report = s.restore();
    assert_eq!(listing(&s.outside), [], "written outside the target");
    assert_eq!(fs::read(s.target.join("a.txt")).unwrap(), b"hello");
    let pipe = fs::symlink_metadata(s.target.join("dev/pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    for node in ["dev/null", "dev/loop0"] {
        assert!(
            fs::symlink_metadata(s.target.join(node)).is_err(),
            "{node} created"
        );
    }
    assert_warned(&report, &["dev/null", "dev/loop0"]);
    assert!(
        report.warnings.iter().any(|w| w.contains("device_nodes")),
        "the warning says how to ask: {:?}",
        report.warnings
    );
}

#[test]
fn device_nodes_are_restored_when_asked_and_running_as_root() {
    let s = Scene::new();
    let rdev = rustix::fs::makedev(1, 3);
    s.commit(
        &[
            dir(""),
            file("a.txt", 0, 5),
            entry("null", EntryKind::CharDevice { rdev }),
        ],
        b"hello",
    );
    let options = RestoreOptions {
        device_nodes: true,
        ..RestoreOptions::default()
    };
    let report = restore_tree_with(&s.ds, &snap(), &s.target, None, &options).unwrap();
    assert_eq!(fs::read(s.target.join("a.txt")).unwrap(), b"hello");
    let node = fs::symlink_metadata(s.target.join("null"));
    if rustix::process::geteuid().is_root() {
        let node = node.unwrap();
        assert!(node.file_type().is_char_device());
        assert_eq!(node.rdev(), rdev);
    } else {
        assert!(node.is_err(), "a device node created without root");
        assert_warned(&report, &["null"]);
    }
}
