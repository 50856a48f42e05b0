//! Datastore maintenance against real files: GC, verify, quarantine, the offline/self-heal
//! probe, and a full disk.

mod common;

use std::fs;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::*;
use ironcore_chunkstore::{Error, GcOptions, Health, VerifyState};

fn age_all_chunks(root: &std::path::Path, by: Duration) {
    for p in chunk_files(root) {
        fs::File::open(&p)
            .unwrap()
            .set_modified(SystemTime::now() - by)
            .unwrap();
    }
}

const NO_GRACE: GcOptions = GcOptions {
    grace: Duration::ZERO,
};

#[test]
fn gc_keeps_chunks_of_a_backup_in_progress() {
    let f = Fixture::new();
    let kept = snap("host/kept", 100);
    backup(&f.ds, &kept, &random_data(20, 2 << 20), None).unwrap();
    // A backup in progress: its chunks are referenced by no manifest yet.
    let running = snap("host/running", 200);
    let data = random_data(21, 3 << 20);
    let mut session = f.ds.begin_backup(running.clone(), None).unwrap();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.append(&data).unwrap();
    w.finish().unwrap();
    let before = chunk_files(f.root()).len();
    let report = f.ds.gc(NO_GRACE, &mut |_, _| {}).unwrap();
    assert_eq!(report.removed_chunks, 0, "{report:?}");
    assert_eq!(chunk_files(f.root()).len(), before);
    session.commit().unwrap();
    assert_eq!(restore(&f.ds, &running, None).unwrap(), data);
    assert_eq!(restore(&f.ds, &kept, None).unwrap().len(), 2 << 20);
}

#[test]
fn gc_frees_only_chunks_of_forgotten_snapshots() {
    let f = Fixture::new();
    let keep = snap("host/a", 100);
    let gone = snap("host/b", 100);
    let keep_data = random_data(22, 2 << 20);
    backup(&f.ds, &keep, &keep_data, None).unwrap();
    backup(&f.ds, &gone, &random_data(23, 2 << 20), None).unwrap();
    f.ds.forget(&gone).unwrap();
    // Fresh chunks are within the grace period of the default options: nothing goes.
    let report = f.ds.gc(GcOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(report.removed_chunks, 0);
    age_all_chunks(f.root(), Duration::from_secs(7200));
    let report = f.ds.gc(NO_GRACE, &mut |_, _| {}).unwrap();
    assert!(report.removed_chunks >= 2, "{report:?}");
    assert!(report.removed_bytes >= 2 << 20);
    assert_eq!(restore(&f.ds, &keep, None).unwrap(), keep_data);
    assert!(f.ds.verify(None).unwrap().is_ok());
    // A second run finds nothing more to do.
    assert_eq!(f.ds.gc(NO_GRACE, &mut |_, _| {}).unwrap().removed_chunks, 0);
}

#[test]
fn gc_keeps_an_old_chunk_that_a_running_backup_reuses() {
    let f = Fixture::new();
    let data = random_data(24, 1 << 20);
    backup(&f.ds, &snap("host/a", 100), &data, None).unwrap();
    f.ds.forget(&snap("host/a", 100)).unwrap();
    age_all_chunks(f.root(), Duration::from_secs(7200));
    // A new backup re-uses the orphaned chunks (dedup hit) before GC runs.
    let mut session = f.ds.begin_backup(snap("host/a", 200), None).unwrap();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.append(&data).unwrap();
    w.finish().unwrap();
    assert_eq!(session.stats().new_chunks, 0, "every chunk is re-used");
    f.ds.gc(NO_GRACE, &mut |_, _| {}).unwrap();
    session.commit().unwrap();
    assert_eq!(restore(&f.ds, &snap("host/a", 200), None).unwrap(), data);
}

#[test]
fn verify_names_flipped_and_truncated_chunks_with_their_snapshots() {
    let f = Fixture::new();
    let shared = random_data(25, 1 << 20);
    let a = snap("host/a", 100);
    let b = snap("host/b", 100);
    let c = snap("host/c", 100);
    let ma = backup(
        &f.ds,
        &a,
        &[shared.clone(), random_data(26, 1 << 20)].concat(),
        None,
    )
    .unwrap();
    backup(
        &f.ds,
        &b,
        &[shared.clone(), random_data(27, 1 << 20)].concat(),
        None,
    )
    .unwrap();
    backup(&f.ds, &c, &random_data(28, 1 << 20), None).unwrap();
    // The chunk holding the shared first MiB: flip one bit.
    let index = f.ds.load_index(&ma.files[0]).unwrap();
    let (_, _, shared_id) = index.chunk(0).unwrap();
    let shared_path = f.ds.chunk_path(&shared_id);
    let mut bytes = fs::read(&shared_path).unwrap();
    bytes[200] ^= 0x01;
    fs::write(&shared_path, bytes).unwrap();
    // The last chunk of snapshot c: truncate it.
    let mc = f.ds.manifest(&c).unwrap();
    let cindex = f.ds.load_index(&mc.files[0]).unwrap();
    let (_, _, c_id) = cindex.chunk(cindex.len() - 1).unwrap();
    let c_path = f.ds.chunk_path(&c_id);
    let len = fs::metadata(&c_path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&c_path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let report = f.ds.verify(None).unwrap();
    assert_eq!(report.bad_chunks.len(), 2, "{report:#?}");
    let flipped = &report.bad_chunks[&shared_id];
    assert!(flipped.reason.contains("digest"), "{}", flipped.reason);
    assert_eq!(flipped.snapshots, vec![a.clone(), b.clone()]);
    assert!(flipped.moved_to.as_ref().unwrap().exists());
    assert!(!shared_path.exists(), "a corrupt chunk is moved aside");
    let truncated = &report.bad_chunks[&c_id];
    assert!(
        truncated.reason.contains("truncated"),
        "{}",
        truncated.reason
    );
    assert_eq!(truncated.snapshots, vec![c.clone()]);
    for s in [&a, &b, &c] {
        assert!(matches!(
            f.ds.snapshot(s).unwrap().verify,
            VerifyState::Corrupt { bad_chunks: 1, .. }
        ));
    }
    // Restoring a damaged snapshot fails loudly, never with wrong data.
    let err = restore(&f.ds, &a, None).unwrap_err();
    assert!(err.to_string().starts_with("chunk not found"), "{err}");
    // A later backup holding the same data repairs the chunk; verify is clean again.
    backup(&f.ds, &snap("host/a", 200), &shared, None).unwrap();
    let again = f.ds.verify(Some(&[snap("host/a", 200)])).unwrap();
    assert!(again.is_ok(), "{again:#?}");
}

#[test]
fn quarantine_refuses_writes_and_gc_until_lifted() {
    let f = Fixture::new();
    let s = snap("host/a", 100);
    backup(&f.ds, &s, &text_data(29, 100_000), None).unwrap();
    f.ds.set_quarantined(true).unwrap();
    let err = backup(&f.ds, &snap("host/a", 200), b"x", None).unwrap_err();
    assert!(matches!(err, Error::Quarantined { .. }), "{err}");
    assert!(err.to_string().contains("quarantined"), "{err}");
    assert!(matches!(
        f.ds.gc(NO_GRACE, &mut |_, _| {}),
        Err(Error::Quarantined { .. })
    ));
    // Reads still work: quarantine is for investigating, not for hiding data.
    assert_eq!(restore(&f.ds, &s, None).unwrap().len(), 100_000);
    // The flag survives a reopen.
    let reopened =
        ironcore_chunkstore::Datastore::open(f.catalog.clone(), &"test".parse().unwrap()).unwrap();
    assert!(reopened.is_quarantined());
    f.ds.set_quarantined(false).unwrap();
    backup(&f.ds, &snap("host/a", 200), b"x", None).unwrap();
}

#[test]
fn removed_directory_goes_offline_and_comes_back_by_itself() {
    let f = Fixture::new();
    let s = snap("host/a", 100);
    let data = random_data(30, 1 << 20);
    backup(&f.ds, &s, &data, None).unwrap();
    let moved = f.dir.path().join("moved-away");
    fs::rename(f.root(), &moved).unwrap();
    let err = backup(&f.ds, &snap("host/a", 200), b"x", None).unwrap_err();
    assert!(matches!(err, Error::Offline { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(
        !f.root().exists(),
        "a write to a vanished datastore must not re-create its path"
    );
    assert!(matches!(f.ds.health(), Health::Offline { .. }));
    let err = restore(&f.ds, &s, None).unwrap_err();
    assert!(matches!(err, Error::Offline { .. }), "{err}");
    // An empty directory at the path (a mount point without its file system) is still offline.
    fs::create_dir(f.root()).unwrap();
    let Health::Offline { reason } = f.ds.probe() else {
        panic!("empty mount point is not the datastore")
    };
    assert!(reason.contains("not mounted"), "{reason}");
    fs::remove_dir(f.root()).unwrap();
    // The directory comes back (same process, no reopen): the next operation just works.
    fs::rename(&moved, f.root()).unwrap();
    assert_eq!(restore(&f.ds, &s, None).unwrap(), data);
    assert_eq!(f.ds.health(), Health::Online);
    backup(&f.ds, &snap("host/a", 200), b"x", None).unwrap();
}

#[test]
fn deleted_and_restored_copy_of_the_directory_comes_back_online() {
    let f = Fixture::new();
    let s = snap("host/a", 100);
    let data = text_data(31, 500_000);
    backup(&f.ds, &s, &data, None).unwrap();
    let copy = f.dir.path().join("copy");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(f.root())
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    fs::remove_dir_all(f.root()).unwrap();
    assert!(matches!(f.ds.probe(), Health::Offline { .. }));
    assert!(matches!(f.ds.stats(), Err(Error::Offline { .. })));
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&copy)
            .arg(f.root())
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(restore(&f.ds, &s, None).unwrap(), data);
    assert!(f.ds.verify(None).unwrap().is_ok());
}

/// Mounts a small tmpfs (needs root, as on the project's machines and CI).
fn small_tmpfs(path: &std::path::Path, size: &str) -> Option<TmpfsGuard> {
    fs::create_dir_all(path).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(path)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then(|| TmpfsGuard(path.to_path_buf()))
}

struct TmpfsGuard(std::path::PathBuf);

impl Drop for TmpfsGuard {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_no_space_left_on_datastore_and_leaves_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("tmpfs");
    let Some(_guard) = small_tmpfs(&mount, "12m") else {
        // Not silently green: without root this test cannot create a full file system.
        assert!(
            std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) != 0,
            "mounting a tmpfs failed although running as root"
        );
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    };
    let f = Fixture::at(dir, mount.join("store"));
    let small = snap("host/a", 100);
    let small_data = random_data(32, 2 << 20);
    backup(&f.ds, &small, &small_data, None).unwrap();
    let err = backup(
        &f.ds,
        &snap("host/a", 200),
        &random_data(33, 20 << 20),
        None,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no space left on datastore 'test'"),
        "{err}"
    );
    // Nothing half-written is referenced: no new snapshot, no temp files, all chunks verify.
    assert_eq!(f.ds.snapshots().unwrap().len(), 1);
    assert!(
        chunk_files(f.root())
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".tmp"))
    );
    assert!(f.ds.verify(None).unwrap().is_ok());
    assert_eq!(restore(&f.ds, &small, None).unwrap(), small_data);
    // GC frees the orphaned chunks of the failed backup; then a backup fits again.
    age_all_chunks(f.root(), Duration::from_secs(7200));
    let report = f.ds.gc(NO_GRACE, &mut |_, _| {}).unwrap();
    assert!(report.removed_chunks > 0, "{report:?}");
    backup(&f.ds, &snap("host/a", 300), &random_data(34, 4 << 20), None).unwrap();
    assert_eq!(restore(&f.ds, &small, None).unwrap(), small_data);
}
