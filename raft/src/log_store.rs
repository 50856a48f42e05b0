//! The Raft log, vote and committed log id on RocksDB.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::rocks::Rocks;
use crate::{Entry, Error, LogId, TypeConfig, Vote};

/// The last saved vote.
const VOTE_KEY: &[u8] = b"m/vote";
/// The last saved committed log id.
const COMMITTED_KEY: &[u8] = b"m/committed";
/// The id of the last purged entry.
const PURGED_KEY: &[u8] = b"m/purged";
/// Log entries: `l/` + big-endian index, so keys sort by index.
const LOG_PREFIX: &[u8] = b"l/";
/// The first key after every log key (`'0'` follows `'/'`).
const LOG_END: &[u8] = b"l0";

fn log_key(index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(LOG_PREFIX.len() + 8);
    k.extend_from_slice(LOG_PREFIX);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The key just past `index`'s (the end of everything up to and including `index`).
fn log_key_after(index: u64) -> Vec<u8> {
    match index.checked_add(1) {
        Some(next) => log_key(next),
        None => LOG_END.to_vec(),
    }
}

fn index_of(key: &[u8]) -> Result<u64, Error> {
    key.strip_prefix(LOG_PREFIX)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::corrupt("log key", format!("{key:?}")))
}

/// `[start, end)` of a range of indices; `end == None` means unbounded.
fn index_range<RB: RangeBounds<u64>>(range: &RB) -> Option<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => None,
    };
    Some((start, end))
}

/// openraft's log storage on RocksDB: the log entries, the vote, the last purged and the
/// committed log id, in one database of their own.
///
/// Every vote, append, truncation and purge is one atomic, synced write batch that completes
/// before the call returns (and before the append callback fires), so nothing is acknowledged
/// that a crash could take back; the fsync itself runs on tokio's blocking pool, not on the
/// async workers. The store is a cheap clone of one shared database handle and
/// is its own log reader.
#[derive(Clone, Debug)]
pub struct RocksLogStore {
    rocks: Rocks,
}

impl RocksLogStore {
    /// Opens (or creates) the log database in the directory `path`.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Ok(Self {
            rocks: Rocks::open(path)?,
        })
    }

    fn read_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, Error> {
        self.rocks
            .get(key)?
            .map(|bytes| decode(what, &bytes))
            .transpose()
    }

    /// The log id of the last entry present, if any.
    fn last_entry_id(&self) -> Result<Option<LogId>, Error> {
        let end = log_key_after(u64::MAX);
        let mut it = self
            .rocks
            .db
            .iterator(IteratorMode::From(&end, Direction::Reverse));
        match it.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|e| self.rocks.err(e))?;
                if !key.starts_with(LOG_PREFIX) {
                    return Ok(None);
                }
                let entry: Entry = decode("log entry", &value)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Every entry present in `[start, end)`, read from one consistent view; a gap between two
    /// present entries is reported as corruption.
    fn read_range(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, Error> {
        let mut out: Vec<Entry> = Vec::new();
        if end.is_some_and(|e| e <= start) {
            return Ok(out);
        }
        let from = log_key(start);
        for item in self
            .rocks
            .db
            .iterator(IteratorMode::From(&from, Direction::Forward))
        {
            let (key, value) = item.map_err(|e| self.rocks.err(e))?;
            if !key.starts_with(LOG_PREFIX) {
                break;
            }
            let index = index_of(&key)?;
            if end.is_some_and(|e| index >= e) {
                break;
            }
            if let Some(prev) = out.last()
                && prev.log_id.index + 1 != index
            {
                return Err(Error::corrupt(
                    "raft log",
                    format!("hole between index {} and {index}", prev.log_id.index),
                ));
            }
            let entry: Entry = decode("log entry", &value)?;
            if entry.log_id.index != index {
                return Err(Error::corrupt(
                    "raft log",
                    format!("entry {} stored under index {index}", entry.log_id),
                ));
            }
            out.push(entry);
        }
        Ok(out)
    }

    async fn append_batch<I: IntoIterator<Item = Entry>>(&self, entries: I) -> Result<(), Error> {
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put(log_key(entry.log_id.index), encode("log entry", &entry)?);
        }
        self.rocks.write_synced(batch).await
    }
}

impl RaftLogReader<TypeConfig> for RocksLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        match index_range(&range) {
            None => Ok(Vec::new()),
            Some((start, end)) => Ok(self.read_range(start, end)?),
        }
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.read_meta(VOTE_KEY, "vote")?)
    }
}

impl RaftLogStorage<TypeConfig> for RocksLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogId> = self.read_meta(PURGED_KEY, "last purged log id")?;
        // Purging deletes every entry up to the purged id, so a present entry is always newer.
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put(VOTE_KEY, encode("vote", vote)?);
        Ok(self.rocks.write_synced(batch).await?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not synced on its own: the committed id only grows, a stale one after a crash is safe
        // (it is learnt again from the leader), and the next synced write makes it durable.
        let mut batch = WriteBatch::default();
        batch.put(COMMITTED_KEY, encode("committed log id", &committed)?);
        Ok(self.rocks.write_unsynced(batch)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        let stored: Option<Option<LogId>> = self.read_meta(COMMITTED_KEY, "committed log id")?;
        Ok(stored.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        match self.append_batch(entries).await {
            Ok(()) => {
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let msg = e.to_string();
                callback.io_completed(Err(io::Error::other(msg)));
                Err(e.into())
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = match &last_log_id {
            Some(id) => log_key_after(id.index),
            None => log_key(0),
        };
        let mut batch = WriteBatch::default();
        batch.delete_range(from, LOG_END.to_vec());
        Ok(self.rocks.write_synced(batch).await?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let mut batch = WriteBatch::default();
        batch.put(PURGED_KEY, encode("last purged log id", &log_id)?);
        batch.delete_range(log_key(0), log_key_after(log_id.index));
        Ok(self.rocks.write_synced(batch).await?)
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::storage::RaftLogStorageExt;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(LeaderId { term, node_id: 1 }, index)
    }

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn reopened_log_keeps_vote_entries_and_committed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = RocksLogStore::open(dir.path()).unwrap();
            log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
            log.blocking_append((1..=5).map(|i| blank(3, i)))
                .await
                .unwrap();
            log.purge(log_id(3, 2)).await.unwrap();
            log.truncate_after(Some(log_id(3, 4))).await.unwrap();
            log.save_committed(Some(log_id(3, 4))).await.unwrap();
        }
        let mut log = RocksLogStore::open(dir.path()).unwrap();
        assert_eq!(
            log.read_vote().await.unwrap(),
            Some(Vote::new_committed(3, 1))
        );
        assert_eq!(log.read_committed().await.unwrap(), Some(log_id(3, 4)));
        let state = log.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 2)));
        assert_eq!(state.last_log_id, Some(log_id(3, 4)));
        let got = log.try_get_log_entries(..).await.unwrap();
        let ids: Vec<_> = got.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [log_id(3, 3), log_id(3, 4)]);
    }

    #[tokio::test]
    async fn a_hole_in_the_log_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = RocksLogStore::open(dir.path()).unwrap();
        log.blocking_append([blank(1, 1), blank(1, 3)])
            .await
            .unwrap();
        let err = log.try_get_log_entries(0..10).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(log.try_get_log_entries(3..).await.unwrap().len(), 1);
        assert!(
            log.try_get_log_entries((Bound::Excluded(3), Bound::Included(3)))
                .await
                .unwrap()
                .is_empty()
        );
    }
}
