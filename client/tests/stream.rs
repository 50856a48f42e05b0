//! Tree and image backups through a `StreamSession` over an in-memory chunk store (standing in
//! for a node over the network), restored through the same store as a `ChunkSource`.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ironcore_chunkstore::{
    ChunkSink, ChunkSource, CryptKey, Error, Inserted, Result, StreamSession, encode_for_sink,
    open_manifest_bytes,
};
use ironcore_client::{
    META_ARCHIVE, PAYLOAD_ARCHIVE, PreviousTree, TreeScan, compare_trees, read_entries_from,
    restore_image_from, restore_tree_from, write_image, write_tree,
};
use ironcore_types::{ChunkId, SnapshotRef};

/// A chunk store in memory, sink and source at once.
#[derive(Debug, Default)]
struct MemoryStore(Mutex<HashMap<ChunkId, Vec<u8>>>);

impl ChunkSink for MemoryStore {
    fn store_chunk(
        &self,
        id: &ChunkId,
        plain: &bytes::Bytes,
        key: Option<&CryptKey>,
    ) -> Result<Inserted> {
        let mut map = self.0.lock().unwrap();
        if map.contains_key(id) {
            return Ok(Inserted::Existing);
        }
        let bytes = encode_for_sink(id, plain, key)?;
        let n = bytes.len() as u64;
        map.insert(*id, bytes);
        Ok(Inserted::New(n))
    }

    fn has_chunk(&self, id: &ChunkId) -> Result<bool> {
        Ok(self.0.lock().unwrap().contains_key(id))
    }
}

impl ChunkSource for MemoryStore {
    fn read_chunk(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let map = self.0.lock().unwrap();
        map.get(id).cloned().ok_or(Error::ChunkNotFound { id: *id })
    }
}

fn snap() -> SnapshotRef {
    SnapshotRef {
        ns: Default::default(),
        group: "host/web01".parse().unwrap(),
        time: 100,
    }
}

fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::create_dir_all(root.join("var/empty")).unwrap();
    fs::write(root.join("etc/app/config.toml"), b"listen = 8007\n").unwrap();
    fs::write(root.join("etc/empty"), b"").unwrap();
    let log: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    fs::write(root.join("var/app.log"), &log).unwrap();
    fs::hard_link(root.join("var/app.log"), root.join("var/app-link.log")).unwrap();
    std::os::unix::fs::symlink("../etc/app/config.toml", root.join("var/config-link")).unwrap();
}

#[test]
fn tree_written_to_a_memory_store_restores_identical() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src);
    for (i, key) in [None, Some(CryptKey::generate())].into_iter().enumerate() {
        let store = Arc::new(MemoryStore::default());
        let mut session = StreamSession::new(store.clone(), key.clone());
        let mut read = 0;
        let written = write_tree(
            &mut session,
            &TreeScan::start(&src).unwrap(),
            None,
            &mut |n| read += n,
        )
        .unwrap();
        assert!(written.warnings.is_empty(), "{:?}", written.warnings);
        assert_eq!((written.files, written.dirs, written.others), (3, 5, 2));
        assert_eq!(written.bytes, read);
        let names: Vec<&str> = session.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, [PAYLOAD_ARCHIVE, META_ARCHIVE]);

        // The manifest travels as bytes, as it would to and from a node.
        let bytes = session.manifest(snap(), 200).encode(session.key()).unwrap();
        let manifest = open_manifest_bytes(&snap(), &bytes, key.as_ref()).unwrap();
        let entries = read_entries_from(store.clone(), &manifest, key.as_ref()).unwrap();
        assert_eq!(entries.len(), 10);

        let out = dir.path().join(format!("out{i}"));
        let mut last = (0, 0);
        let report = restore_tree_from(
            store.clone(),
            &manifest,
            &out,
            key.as_ref(),
            None,
            &mut |done, total| last = (done, total),
        )
        .unwrap();
        assert_eq!(report.files, 3);
        assert_eq!(
            last,
            (report.bytes, report.bytes),
            "progress ends at its total"
        );
        assert_eq!(compare_trees(&src, &out), Ok(10));
    }
}

#[test]
fn image_written_to_a_memory_store_restores_identical() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.raw");
    let data: Vec<u8> = (0..(9u32 << 20) + 1234)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&img, &data).unwrap();
    let store = Arc::new(MemoryStore::default());
    let mut session = StreamSession::new(store.clone(), None);
    assert_eq!(
        write_image(&mut session, &img, "drive-scsi0.img", &mut |_| {}).unwrap(),
        data.len() as u64
    );
    let manifest = session.manifest(snap(), 200);
    let out = dir.path().join("restored.raw");
    let n =
        restore_image_from(store, &manifest, "drive-scsi0.img", &out, None, &mut |_| {}).unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(fs::read(&out).unwrap() == data);
}

#[test]
fn unchanged_files_are_reused_without_reading_and_restore_identical() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src);
    // Many files of varied sizes, so runs span several chunks and share chunk edges.
    fs::create_dir_all(src.join("data")).unwrap();
    for i in 0..40u32 {
        let body: Vec<u8> = (0..(i * 37_000 + 5))
            .map(|j| (j.wrapping_mul(2_654_435_761).wrapping_add(i) >> 11) as u8)
            .collect();
        fs::write(src.join(format!("data/f{i:02}")), body).unwrap();
    }
    for key in [None, Some(CryptKey::generate())] {
        let store = Arc::new(MemoryStore::default());
        let backup = |time: i64, previous: Option<&PreviousTree>| {
            let mut session = StreamSession::new(store.clone(), key.clone());
            let written = write_tree(
                &mut session,
                &TreeScan::start(&src).unwrap(),
                previous,
                &mut |_| {},
            )
            .unwrap();
            let stats = session.stats();
            let s = SnapshotRef { time, ..snap() };
            let bytes = session
                .manifest(s.clone(), time)
                .encode(session.key())
                .unwrap();
            let manifest = open_manifest_bytes(&s, &bytes, key.as_ref()).unwrap();
            (written, stats, manifest)
        };
        let (first, _, m1) = backup(100, None);
        assert_eq!(first.reused_files, 0);

        // Change one file in the middle, keep the rest.
        fs::write(src.join("data/f20"), b"changed").unwrap();
        let prev = PreviousTree::load(store.clone(), &m1, key.as_ref(), key.as_ref())
            .unwrap()
            .expect("same key: usable as a base");
        let (second, stats, m2) = backup(200, Some(&prev));
        assert_eq!(second.files, first.files);
        assert_eq!(
            second.reused_files,
            first.files - 1,
            "every unchanged file reused"
        );
        assert_eq!(second.bytes, second.reused_bytes + 7);
        assert!(stats.new_chunks <= 4, "{stats:?}");
        let out = dir.path().join(format!("second-{}", key.is_some()));
        restore_tree_from(store.clone(), &m2, &out, key.as_ref(), None, &mut |_, _| {}).unwrap();
        assert_eq!(compare_trees(&src, &out), Ok(51));

        // Unchanged re-run on top of the second: nothing read at all.
        let prev2 = PreviousTree::load(store.clone(), &m2, key.as_ref(), key.as_ref())
            .unwrap()
            .unwrap();
        let (third, stats3, m3) = backup(300, Some(&prev2));
        assert_eq!(third.reused_files, third.files);
        assert_eq!(stats3.new_chunks, 0, "nothing new to store: {stats3:?}");
        let out = dir.path().join(format!("third-{}", key.is_some()));
        restore_tree_from(store.clone(), &m3, &out, key.as_ref(), None, &mut |_, _| {}).unwrap();
        assert_eq!(compare_trees(&src, &out), Ok(51));
        fs::write(src.join("data/f20"), b"changed").unwrap();

        // A base written with another key is never used.
        let other = CryptKey::generate();
        assert!(
            PreviousTree::load(store.clone(), &m1, key.as_ref(), Some(&other))
                .unwrap()
                .is_none()
        );
    }
}
