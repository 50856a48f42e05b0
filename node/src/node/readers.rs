//! Reader sessions: a caller reads chunks only through a reader opened on one snapshot it was
//! allowed to read, and only the chunks that snapshot's indexes reference (PBS's reader
//! session). Reading a snapshot (`GET …/snapshot`) checks the owner rules and opens one; the
//! chunk route takes its id. A chunk id alone — the SHA-256 of some content, for unencrypted
//! data — opens nothing: another tenant can neither read a chunk nor learn that it exists.
//!
//! A reader lives on the node that opened it, until idle for [`READER_IDLE`]; each caller holds
//! at most [`READERS_PER_CALLER`] (the oldest goes first). The chunk list of a snapshot is read
//! from its indexes on the first data chunk asked for, once, and shared by every reader of that
//! snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use ironcore_types::{AuthId, ChunkId, DatastoreName, SnapshotRef};

use crate::{NodeError, Result};

/// A reader unused for this long is closed.
pub const READER_IDLE: Duration = Duration::from_secs(3600);
/// Readers one caller may hold at once.
pub const READERS_PER_CALLER: usize = 32;

/// The id of a reader session: 128 random bits in hex, shown only to the caller who opened it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReaderId(String);

impl ReaderId {
    fn random() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// The id as the API shows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ReaderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ReaderId {
    type Err = NodeError;

    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(NodeError::BadRequest(format!(
                "'{s}' is not a reader id (32 hex digits, as `GET …/snapshot` answers in `reader`)"
            )))
        }
    }
}

/// The chunks one snapshot references, read once from its indexes.
pub type ChunkSet = tokio::sync::OnceCell<HashSet<ChunkId>>;

/// One open reader.
#[derive(Debug)]
pub struct Reader {
    /// Who opened it; nobody else may use it.
    pub caller: AuthId,
    /// Its datastore.
    pub store: DatastoreName,
    /// The snapshot it reads.
    pub snapshot: SnapshotRef,
    /// The snapshot's manifest (the encoded bytes, as committed).
    pub manifest: Vec<u8>,
    /// The snapshot's index chunks (allowed before the chunk list is read).
    pub indexes: HashSet<ChunkId>,
    /// Every chunk the snapshot references, once read.
    pub chunks: Arc<ChunkSet>,
    last_used: Mutex<Instant>,
    opened: Instant,
}

impl Reader {
    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn idle(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

type SetKey = (DatastoreName, SnapshotRef);

/// The readers open on this node.
#[derive(Debug, Default)]
pub struct Readers {
    open: Mutex<HashMap<ReaderId, Arc<Reader>>>,
    sets: Mutex<HashMap<SetKey, Weak<ChunkSet>>>,
}

impl Readers {
    /// Opens a reader of `snapshot` of `store` for `caller`, who was allowed to read it;
    /// `indexes` are the index chunks its manifest names.
    pub fn open(
        &self,
        caller: &AuthId,
        store: &DatastoreName,
        snapshot: &SnapshotRef,
        manifest: Vec<u8>,
        indexes: HashSet<ChunkId>,
    ) -> ReaderId {
        let chunks = self.chunk_set(store, snapshot);
        let reader = Arc::new(Reader {
            caller: caller.clone(),
            store: store.clone(),
            snapshot: snapshot.clone(),
            manifest,
            indexes,
            chunks,
            last_used: Mutex::new(Instant::now()),
            opened: Instant::now(),
        });
        let id = ReaderId::random();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, r| r.idle() < READER_IDLE);
        let mut mine: Vec<(ReaderId, Instant)> = open
            .iter()
            .filter(|(_, r)| r.caller == *caller)
            .map(|(k, r)| (k.clone(), r.opened))
            .collect();
        mine.sort_by_key(|(_, opened)| *opened);
        let excess = (mine.len() + 1).saturating_sub(READERS_PER_CALLER);
        for (old, _) in mine.into_iter().take(excess) {
            open.remove(&old);
        }
        open.insert(id.clone(), reader);
        id
    }

    /// The shared chunk set of a snapshot (one per snapshot however many readers read it).
    fn chunk_set(&self, store: &DatastoreName, snapshot: &SnapshotRef) -> Arc<ChunkSet> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.retain(|_, w| w.strong_count() > 0);
        let key = (store.clone(), snapshot.clone());
        if let Some(set) = sets.get(&key).and_then(Weak::upgrade) {
            return set;
        }
        let set = Arc::new(ChunkSet::new());
        sets.insert(key, Arc::downgrade(&set));
        set
    }

    /// Reader `id` of `store`, if `caller` opened it and it is still open; another caller's
    /// reader is refused (403), an unknown or closed one is not found (404).
    pub fn get(
        &self,
        id: &ReaderId,
        caller: &AuthId,
        store: &DatastoreName,
    ) -> Result<Arc<Reader>> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let found = open.get(id).filter(|r| r.idle() < READER_IDLE);
        if let Some(r) = found
            && (r.caller != *caller || r.store != *store)
        {
            return Err(NodeError::PermissionDenied(format!(
                "reader session {id} was not opened by {caller} in {store}; read the snapshot yourself for one"
            )));
        }
        let reader = found
            .cloned()
            .ok_or_else(|| {
                NodeError::NotFound(format!(
                    "reader session {id} is not open on this node for {caller} in {store} (closed after {} s idle, or the node restarted); read the snapshot again (`GET /api2/json/datastore/{store}/snapshot`) for a new one",
                    READER_IDLE.as_secs()
                ))
            })?;
        reader.touch();
        Ok(reader)
    }

    /// How many readers are open.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no reader is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: i64) -> SnapshotRef {
        SnapshotRef {
            ns: ironcore_types::Namespace::root(),
            group: "host/a".parse().unwrap(),
            time,
        }
    }

    #[test]
    fn a_reader_serves_only_the_caller_who_opened_it_in_its_datastore() {
        let readers = Readers::default();
        let (alice, bob): (AuthId, AuthId) =
            ("alice@pbs".parse().unwrap(), "bob@pbs".parse().unwrap());
        let (s1, s2): (DatastoreName, DatastoreName) =
            ("s1".parse().unwrap(), "s2".parse().unwrap());
        let id = readers.open(&alice, &s1, &snap(1), vec![], HashSet::new());
        assert!(readers.get(&id, &alice, &s1).is_ok());
        let stolen = readers.get(&id, &bob, &s1).unwrap_err();
        assert!(matches!(stolen, NodeError::PermissionDenied(_)), "{stolen}");
        assert!(readers.get(&id, &alice, &s2).is_err());
        let other: ReaderId = "00000000000000000000000000000000".parse().unwrap();
        let e = readers.get(&other, &alice, &s1).unwrap_err().to_string();
        assert!(e.contains("read the snapshot again"), "{e}");
    }

    #[test]
    fn readers_of_one_snapshot_share_its_chunk_set_and_a_caller_holds_a_bounded_number() {
        let readers = Readers::default();
        let alice: AuthId = "alice@pbs".parse().unwrap();
        let s1: DatastoreName = "s1".parse().unwrap();
        let first = readers.open(&alice, &s1, &snap(1), vec![], HashSet::new());
        let again = readers.open(&alice, &s1, &snap(1), vec![], HashSet::new());
        let (a, b) = (
            readers.get(&first, &alice, &s1).unwrap(),
            readers.get(&again, &alice, &s1).unwrap(),
        );
        assert!(Arc::ptr_eq(&a.chunks, &b.chunks));
        for t in 0..READERS_PER_CALLER as i64 {
            readers.open(&alice, &s1, &snap(10 + t), vec![], HashSet::new());
        }
        assert_eq!(readers.len(), READERS_PER_CALLER);
        assert!(
            readers.get(&first, &alice, &s1).is_err(),
            "the oldest went first"
        );
    }

    #[test]
    fn reader_ids_are_32_hex_digits() {
        assert!("xyz".parse::<ReaderId>().is_err());
        assert!(
            "0123456789abcdef0123456789ABCDEF"
                .parse::<ReaderId>()
                .is_ok()
        );
        assert_eq!(ReaderId::random().as_str().len(), 32);
    }
}
