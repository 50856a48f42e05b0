//! What this node's mirroring did, per datastore: the chunk bytes it pulled (with a rate over
//! the last few seconds) and the chunks that keep failing, for `mirror status`, the metrics
//! and the notification sent when a chunk has failed [`ATTEMPTS`] times. Kept in memory: a
//! restarted node starts counting again (what it holds is in its chunk directory, and what is
//! complete is in Raft).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ironcore_types::{ChunkId, DatastoreName};

use crate::protocol::MirrorReport;

/// Attempts at a chunk before it counts as failing (an error in `mirror status` and one
/// notification); mirroring keeps trying after that, less often.
pub const ATTEMPTS: u32 = 3;
/// The window the rate is measured over.
const WINDOW: Duration = Duration::from_secs(10);

/// This node's mirroring progress per datastore. Shared by the mirror loop (which records) and
/// the peer service and API (which report).
#[derive(Debug, Default)]
pub struct Progress(Mutex<HashMap<DatastoreName, Store>>);

#[derive(Debug, Default)]
struct Store {
    pulled: u64,
    /// Chunk bytes this node sent on other nodes' request (reads, pulls, mirroring).
    served: u64,
    /// Bytes pulled lately, by when: the rate's window.
    recent: VecDeque<(Instant, u64)>,
    failing: HashMap<ChunkId, Failure>,
}

#[derive(Debug)]
struct Failure {
    attempts: u32,
    error: String,
}

/// One datastore's counters since the node started (see [`Progress::totals`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    /// The datastore.
    pub datastore: String,
    /// Chunk bytes pulled by mirroring.
    pub pulled: u64,
    /// Chunk bytes sent to other nodes on their request.
    pub served: u64,
    /// Chunks that failed [`ATTEMPTS`] times and are still missing.
    pub failing: usize,
}

/// A chunk that has just failed its last counted attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaveUp {
    /// The chunk.
    pub id: ChunkId,
    /// Why its last attempt failed.
    pub error: String,
}

impl Progress {
    fn with<T>(&self, ds: &DatastoreName, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(ds.clone()).or_default())
    }

    /// `bytes` of chunks of `ds` arrived at `now`.
    pub fn pulled(&self, ds: &DatastoreName, bytes: u64, now: Instant) {
        self.with(ds, |s| {
            s.pulled += bytes;
            s.recent.push_back((now, bytes));
            s.trim(now);
        });
    }

    /// `bytes` of chunks of `ds` sent to another node on its request.
    pub fn served(&self, ds: &DatastoreName, bytes: u64) {
        self.with(ds, |s| s.served += bytes);
    }

    /// Per datastore: chunk bytes pulled by mirroring and bytes served to other nodes since
    /// this node started, and chunks failing (for the metrics).
    pub fn totals(&self) -> Vec<Totals> {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<Totals> = all
            .iter()
            .map(|(ds, s)| Totals {
                datastore: ds.to_string(),
                pulled: s.pulled,
                served: s.served,
                failing: s
                    .failing
                    .values()
                    .filter(|f| f.attempts >= ATTEMPTS)
                    .count(),
            })
            .collect();
        out.sort_by(|a, b| a.datastore.cmp(&b.datastore));
        out
    }

    /// Chunks of `ds` that are here now: no longer failing.
    pub fn arrived(&self, ds: &DatastoreName, ids: &[ChunkId]) {
        self.with(ds, |s| {
            if !s.failing.is_empty() {
                for id in ids {
                    s.failing.remove(id);
                }
            }
        });
    }

    /// One more failed attempt at each chunk of `failed` (id, why); returns the chunks whose
    /// attempt was the [`ATTEMPTS`]th just now (each is reported once).
    pub fn failed(&self, ds: &DatastoreName, failed: &[(ChunkId, String)]) -> Vec<GaveUp> {
        self.with(ds, |s| {
            let mut gave_up = Vec::new();
            for (id, error) in failed {
                let f = s.failing.entry(*id).or_insert(Failure {
                    attempts: 0,
                    error: String::new(),
                });
                f.attempts += 1;
                f.error.clone_from(error);
                if f.attempts == ATTEMPTS {
                    gave_up.push(GaveUp {
                        id: *id,
                        error: error.clone(),
                    });
                }
            }
            gave_up
        })
    }

    /// Whether some chunk of `ds` has failed [`ATTEMPTS`] times and is still missing.
    pub fn failing(&self, ds: &DatastoreName) -> bool {
        self.with(ds, |s| s.failing.values().any(|f| f.attempts >= ATTEMPTS))
    }

    /// Whether some chunk of any datastore has failed [`ATTEMPTS`] times and is still missing.
    pub fn any_failing(&self) -> bool {
        let all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        all.values()
            .any(|s| s.failing.values().any(|f| f.attempts >= ATTEMPTS))
    }

    /// One report per datastore, as node `node` at `now`.
    pub fn reports(&self, node: &str, now: Instant) -> Vec<MirrorReport> {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<MirrorReport> = all
            .iter_mut()
            .map(|(ds, s)| {
                s.trim(now);
                let failing: Vec<&Failure> = s
                    .failing
                    .values()
                    .filter(|f| f.attempts >= ATTEMPTS)
                    .collect();
                MirrorReport {
                    node: node.to_string(),
                    datastore: ds.to_string(),
                    pulled_bytes: s.pulled,
                    rate: s.recent.iter().map(|(_, b)| b).sum::<u64>() / WINDOW.as_secs(),
                    failing_chunks: failing.len(),
                    error: failing.first().map(|f| f.error.clone()),
                }
            })
            .collect();
        out.sort_by(|a, b| a.datastore.cmp(&b.datastore));
        out
    }
}

impl Store {
    fn trim(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > WINDOW)
        {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds() -> DatastoreName {
        "store1".parse().unwrap()
    }

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[test]
    fn the_rate_counts_only_the_last_ten_seconds() {
        let p = Progress::default();
        let t0 = Instant::now();
        p.pulled(&ds(), 50 << 20, t0);
        p.pulled(&ds(), 100 << 20, t0 + Duration::from_secs(9));
        let r = &p.reports("node3", t0 + Duration::from_secs(10))[0];
        assert_eq!((r.pulled_bytes, r.rate), (150 << 20, 15 << 20));
        let r = &p.reports("node3", t0 + Duration::from_secs(15))[0];
        assert_eq!((r.pulled_bytes, r.rate), (150 << 20, 10 << 20));
        let r = &p.reports("node3", t0 + Duration::from_secs(30))[0];
        assert_eq!((r.pulled_bytes, r.rate), (150 << 20, 0));
    }

    #[test]
    fn a_chunk_gives_up_once_on_its_third_failed_attempt_and_recovers_when_it_arrives() {
        let p = Progress::default();
        let fail = |why: &str| p.failed(&ds(), &[(id(1), why.to_string())]);
        assert!(fail("node1: timed out").is_empty());
        assert!(fail("node1: timed out").is_empty());
        assert!(!p.failing(&ds()));
        assert_eq!(p.reports("n", Instant::now())[0].failing_chunks, 0);
        let gave_up = fail("node1: not there");
        assert_eq!(
            gave_up,
            vec![GaveUp {
                id: id(1),
                error: "node1: not there".into()
            }]
        );
        assert!(fail("node1: not there").is_empty(), "reported once");
        assert!(p.failing(&ds()));
        let r = &p.reports("n", Instant::now())[0];
        assert_eq!(r.failing_chunks, 1);
        assert_eq!(r.error.as_deref(), Some("node1: not there"));
        p.arrived(&ds(), &[id(1)]);
        assert!(!p.failing(&ds()));
        assert_eq!(p.reports("n", Instant::now())[0].failing_chunks, 0);
    }
}
