//! Backup and restore through a real datastore: dedup, encryption, tampering, wrong keys,
//! fixed chunking, busy sources, cancellation and point-in-time selection.

mod common;

use std::fs;

use common::*;
use std::sync::Arc;

use ironcore_chunkstore::envelope::chunk_id;
use ironcore_chunkstore::{CryptKey, CutGuide, Error, IndexChunk, IndexKind, QuickHash};
use ironcore_types::{ChunkId, SnapshotRef};

#[test]
fn same_data_twice_is_stored_once() {
    let f = Fixture::new();
    let data = [random_data(1, 3 << 20), text_data(2, 5 << 20)].concat();
    backup(&f.ds, &snap("host/a", 100), &data, None).unwrap();
    let before = f.ds.stats().unwrap();
    let mut session = f.ds.begin_backup(snap("host/a", 200), None).unwrap();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.append(&data).unwrap();
    w.finish().unwrap();
    let stats = session.stats();
    session.commit().unwrap();
    assert_eq!(stats.new_chunks, 0, "nothing new must be stored: {stats:?}");
    assert_eq!(stats.dedup_hit_rate(), 1.0);
    let after = f.ds.stats().unwrap();
    assert_eq!(after.chunks, before.chunks);
    assert_eq!(after.stored_bytes, before.stored_bytes);
    assert_eq!(after.logical_bytes, 2 * data.len() as u64);
    assert!(after.dedup_factor > 2.0, "{after:?}");
}

#[test]
fn chunk_boundaries_do_not_depend_on_how_the_stream_is_appended() {
    let f = Fixture::new();
    let data = [random_data(3, 20 << 20), text_data(4, 12 << 20)].concat();
    backup(&f.ds, &snap("host/a", 100), &data, None).unwrap();
    for (time, piece) in [(200, 100_003), (300, 1 << 20), (400, 3_000_017)] {
        let mut session = f.ds.begin_backup(snap("host/a", time), None).unwrap();
        let mut w = session.dynamic_writer("data.bin").unwrap();
        for part in data.chunks(piece) {
            w.append(part).unwrap();
        }
        w.finish().unwrap();
        let stats = session.stats();
        session.commit().unwrap();
        assert_eq!(
            stats.new_chunks, 0,
            "appended in {piece}-byte pieces: {stats:?}"
        );
    }
}

/// Gives at most `max` bytes per read, like a pipe or a slow file.
struct Trickle<'a> {
    data: &'a [u8],
    max: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.max).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_stream_read_into_the_writer_is_cut_as_appended_and_restores_intact() {
    let f = Fixture::new();
    // Enough for many buffers: the writer reuses a buffer once its chunks are stored.
    let data = [random_data(7, 40 << 20), text_data(8, 16 << 20)].concat();
    backup(&f.ds, &snap("host/a", 100), &data, None).unwrap();
    for (time, max) in [(200, usize::MAX), (300, 100_003)] {
        let s = snap("host/a", time);
        let mut session = f.ds.begin_backup(s.clone(), None).unwrap();
        let mut w = session.dynamic_writer("data.bin").unwrap();
        let mut src = Trickle { data: &data, max };
        while w.read_from(&mut src).unwrap() > 0 {
            w.cut_ready().unwrap();
        }
        w.finish().unwrap();
        let stats = session.stats();
        session.commit().unwrap();
        assert_eq!(stats.new_chunks, 0, "read {max} bytes at a time: {stats:?}");
        assert!(
            restore(&f.ds, &s, None).unwrap() == data,
            "read {max} at a time"
        );
    }
}

/// Every chunk of archive `data.bin` of snapshot `s`, as its index lists it.
fn chunks_of(f: &Fixture, s: &SnapshotRef, key: Option<&CryptKey>) -> Vec<IndexChunk> {
    let reader = f.ds.open_archive(s, "data.bin", key).unwrap();
    let index = reader.index();
    (0..index.len())
        .map(|i| index.index_chunk(i).unwrap())
        .collect()
}

/// The chunk of `data[at..end]` as a writer under `key` would list it.
fn chunk_of(data: &[u8], at: usize, end: usize, key: Option<&CryptKey>) -> IndexChunk {
    IndexChunk {
        len: (end - at) as u64,
        id: chunk_id(&data[at..end], key),
        quick: Some(QuickHash::of(&data[at..end], key)),
    }
}

/// Backs `data` up as `data.bin` of `s`, cut along `guide`; returns the new chunks stored.
fn guided_backup(
    f: &Fixture,
    s: &SnapshotRef,
    data: &[u8],
    key: Option<&CryptKey>,
    guide: CutGuide,
) -> u64 {
    let mut session = f.ds.begin_backup(s.clone(), key.cloned()).unwrap();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.guide(Arc::new(guide));
    for piece in data.chunks(1 << 20) {
        w.append(piece).unwrap();
    }
    w.finish().unwrap();
    let stats = session.stats();
    session.commit().unwrap();
    stats.new_chunks
}

#[test]
fn a_guided_writer_follows_the_previous_chunks_where_the_bytes_are_theirs() {
    let f = Fixture::new();
    let key = CryptKey::generate();
    let data = [random_data(9, 10 << 20), text_data(10, 6 << 20)].concat();
    // A previous stream cut where content-defined cutting would not cut: its first chunk as
    // the content decides, then pieces of 700,001 bytes.
    let s1 = snap("host/a", 100);
    backup(&f.ds, &s1, &data, Some(&key)).unwrap();
    let mut at = 0;
    for c in chunks_of(&f, &s1, Some(&key)) {
        let end = at + c.len as usize;
        assert_eq!(
            c,
            chunk_of(&data, at, end, Some(&key)),
            "quick hash recorded"
        );
        at = end;
    }
    let first = chunks_of(&f, &s1, Some(&key))[0];
    let mut previous = vec![first];
    let mut at = first.len as usize;
    while at < data.len() {
        let end = (at + 700_001).min(data.len());
        previous.push(chunk_of(&data, at, end, Some(&key)));
        at = end;
    }
    let s2 = snap("host/a", 200);
    guided_backup(&f, &s2, &data, Some(&key), CutGuide::new(previous.clone()));
    assert_eq!(
        chunks_of(&f, &s2, Some(&key)),
        previous,
        "cut along the guide"
    );
    assert!(restore(&f.ds, &s2, Some(&key)).unwrap() == data);
}

#[test]
fn a_guided_writer_finds_its_way_back_after_changed_bytes() {
    let f = Fixture::new();
    let data = [random_data(11, 24 << 20), text_data(12, 8 << 20)].concat();
    let s1 = snap("host/a", 100);
    backup(&f.ds, &s1, &data, None).unwrap();
    let previous = chunks_of(&f, &s1, None);
    // 100 bytes inserted (everything after shifts) and 1 MiB overwritten further on.
    let mut changed = data.clone();
    changed.splice(9 << 20..9 << 20, random_data(13, 100));
    changed.splice(20 << 20..21 << 20, random_data(14, 1 << 20));
    let s2 = snap("host/a", 200);
    let new = guided_backup(&f, &s2, &changed, None, CutGuide::new(previous.clone()));
    assert!(restore(&f.ds, &s2, None).unwrap() == changed);
    // Each change costs the chunks it touches and the one resynchronising after it.
    assert!(new <= 8, "{new} new chunks for two changes");
    let now = chunks_of(&f, &s2, None);
    let reused = now.iter().filter(|c| previous.contains(c)).count();
    assert!(
        reused + 8 >= previous.len(),
        "{reused} of {} chunks reused",
        previous.len()
    );
    // A guide of another stream changes nothing but the work done.
    let s3 = snap("host/b", 300);
    let unrelated = CutGuide::new([IndexChunk {
        len: 1000,
        id: ChunkId::from_bytes([7; 32]),
        quick: Some(QuickHash::of(b"other", None)),
    }]);
    assert_eq!(guided_backup(&f, &s3, &changed, None, unrelated), 0);
    assert_eq!(chunks_of(&f, &s3, None), now);
}

#[test]
fn plain_round_trip_is_byte_identical_and_compressed() {
    let f = Fixture::new();
    let data = [
        text_data(3, 6 << 20),
        random_data(4, 2 << 20),
        vec![0u8; 1 << 20],
    ]
    .concat();
    let s = snap("host/a", 100);
    let m = backup(&f.ds, &s, &data, None).unwrap();
    assert_eq!(m.key_fingerprint, None);
    assert_eq!(restore(&f.ds, &s, None).unwrap(), data);
    let stats = f.ds.stats().unwrap();
    assert!(stats.stored_bytes < data.len() as u64 * 3 / 4, "{stats:?}");
}

#[test]
fn encrypted_round_trip_records_the_key_fingerprint() {
    let f = Fixture::new();
    let key = CryptKey::generate();
    let data = [text_data(5, 3 << 20), random_data(6, 1 << 20)].concat();
    let s = snap("vm/100", 100);
    let m = backup(&f.ds, &s, &data, Some(&key)).unwrap();
    assert_eq!(m.key_fingerprint, Some(key.fingerprint()));
    assert_eq!(restore(&f.ds, &s, Some(&key)).unwrap(), data);
    // The server-side check (no key) still verifies every stored byte.
    assert!(f.ds.verify(None).unwrap().is_ok());
    // Same plaintext under another key does not deduplicate against this key's chunks.
    let other = CryptKey::generate();
    let mut session = f.ds.begin_backup(snap("vm/100", 200), Some(other)).unwrap();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.append(&data).unwrap();
    w.finish().unwrap();
    assert_eq!(session.stats().new_chunks, session.stats().chunks);
}

#[test]
fn tampered_encrypted_chunk_is_decryption_failed() {
    let f = Fixture::new();
    let key = CryptKey::generate();
    let data = text_data(7, 2 << 20);
    let s = snap("host/a", 100);
    let m = backup(&f.ds, &s, &data, Some(&key)).unwrap();
    let index_file = f.ds.chunk_path(&m.files[0].index);
    let victim = chunk_files(f.root())
        .into_iter()
        .find(|p| *p != index_file)
        .unwrap();
    let mut bytes = fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    fs::write(&victim, bytes).unwrap();
    let err = restore(&f.ds, &s, Some(&key)).unwrap_err();
    assert!(err.to_string().starts_with("decryption failed"), "{err}");
}

#[test]
fn wrong_key_is_fingerprint_mismatch_naming_both() {
    let f = Fixture::new();
    let key = CryptKey::generate();
    let wrong = CryptKey::generate();
    let s = snap("host/a", 100);
    backup(&f.ds, &s, &text_data(8, 100_000), Some(&key)).unwrap();
    let err = restore(&f.ds, &s, Some(&wrong)).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("fingerprint mismatch"), "{text}");
    assert!(text.contains(&key.fingerprint().to_string()), "{text}");
    assert!(text.contains(&wrong.fingerprint().to_string()), "{text}");
    let err = restore(&f.ds, &s, None).unwrap_err();
    assert!(
        err.to_string().starts_with("encryption key not found"),
        "{err}"
    );
}

#[test]
fn disk_image_uses_fixed_chunks_and_round_trips() {
    let f = Fixture::new();
    let chunk = 64 * 1024;
    let image = [
        random_data(9, 300_000),
        vec![0u8; 500_000],
        text_data(10, 123_457),
    ]
    .concat();
    let s = snap("vm/200", 100);
    let mut session = f.ds.begin_backup(s.clone(), None).unwrap();
    let mut w = session.fixed_writer("disk0.img", chunk).unwrap();
    for piece in image.chunks(10_000) {
        w.append(piece).unwrap();
    }
    let file = w.finish().unwrap();
    session.commit().unwrap();
    assert_eq!(file.kind, IndexKind::Fixed);
    let reader = f.ds.open_archive(&s, "disk0.img", None).unwrap();
    assert_eq!(reader.index().len(), image.len().div_ceil(chunk as usize));
    let mut out = Vec::new();
    reader.copy_to(&mut out).unwrap();
    assert_eq!(out, image);
    // Random access across a chunk boundary.
    let mut reader = f.ds.open_archive(&s, "disk0.img", None).unwrap();
    let mut buf = [0u8; 100];
    let at = chunk as u64 - 50;
    let n = reader.read_at(at, &mut buf).unwrap();
    assert_eq!(&buf[..n], &image[at as usize..at as usize + n]);
}

#[test]
fn second_backup_of_a_busy_group_is_source_busy() {
    let f = Fixture::new();
    let first = f.ds.begin_backup(snap("ct/101", 100), None).unwrap();
    let err = f.ds.begin_backup(snap("ct/101", 101), None).unwrap_err();
    assert!(err.to_string().starts_with("source busy"), "{err}");
    // Another group is not affected; after the first ends, the group is free again.
    f.ds.begin_backup(snap("ct/102", 100), None).unwrap();
    drop(first);
    f.ds.begin_backup(snap("ct/101", 101), None).unwrap();
}

#[test]
fn cancelled_backup_is_task_cancelled_and_commits_nothing() {
    let f = Fixture::new();
    let s = snap("host/a", 100);
    let mut session = f.ds.begin_backup(s.clone(), None).unwrap();
    let token = session.cancel_token();
    let mut w = session.dynamic_writer("data.bin").unwrap();
    w.append(&random_data(11, 3 << 20)).unwrap();
    token.cancel();
    let err = w
        .append(&random_data(12, 9 << 20))
        .and_then(|()| w.finish().map(|_| ()))
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(err.to_string().starts_with("task cancelled"));
    drop(session);
    assert!(f.ds.snapshots().unwrap().is_empty());
    assert!(matches!(
        f.ds.snapshot(&s),
        Err(Error::SnapshotNotFound { .. })
    ));
}

#[test]
fn restore_at_picks_the_newest_snapshot_at_or_before_the_time() {
    let f = Fixture::new();
    for t in [1000, 2000, 3000] {
        backup(&f.ds, &snap("host/a", t), &text_data(t as u64, 1000), None).unwrap();
    }
    let g = "host/a".parse().unwrap();
    let ns = "prod".parse().unwrap();
    assert_eq!(f.ds.snapshot_at(&ns, &g, 2500).unwrap().snapshot.time, 2000);
    assert_eq!(f.ds.snapshot_at(&ns, &g, 3000).unwrap().snapshot.time, 3000);
    let err = f.ds.snapshot_at(&ns, &g, 999).unwrap_err().to_string();
    assert!(
        err.contains("cover 1970-01-01T00:16:40Z to 1970-01-01T00:50:00Z"),
        "{err}"
    );
}
