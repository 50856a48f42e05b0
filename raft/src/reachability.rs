//! Which peers answer, so a dead peer costs one short probe per interval rather than a
//! connection attempt (and a log line) per RPC.
//!
//! Once a peer fails, calls to it are not sent; one probe (a tiny `Ping` with a short timeout)
//! per interval finds out when it is back. The probe runs as a task of its own, so a caller
//! that gives up (openraft drops a heartbeat after one heartbeat interval) never cuts it short,
//! and every caller waiting on that peer learns its outcome. Probes run one at a time (a probe
//! waiting behind another one's dial would otherwise time out although its peer is fine).
//!
//! Replication streams wait for the next probe instead of failing at once: openraft applies
//! its backoff only between the requests of an open stream, so a stream that cannot be opened
//! would otherwise be retried in a tight loop (one core busy and two log lines per retry while
//! a voter is down). Other calls fail at once while the peer is down and no probe is due.
//!
//! A peer's changes of state are logged once each (`unreachable`, `reachable again`), with a
//! summary every [`SUMMARY_EVERY`] while it stays down.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::NodeId;

/// How often a peer that stays unreachable is summarised in the log.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// How dead peers are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePolicy {
    /// How long a probe (connection set-up plus a ping) may take.
    pub timeout: Duration,
    /// How long after a failure the next probe may start.
    pub interval: Duration,
}

#[derive(Clone, Debug)]
enum State {
    /// Answering.
    Up,
    /// Not answering (or never tried: `since` is `None`).
    Down(Outage),
}

#[derive(Clone, Debug)]
struct Outage {
    /// When it was first seen down (`None`: never reached yet, nothing to report).
    since: Option<Instant>,
    /// The next probe may start then.
    retry_at: Instant,
    /// A probe runs now.
    probing: bool,
    /// Failed calls and probes since it went down.
    failures: u64,
    /// When the outage was last written to the log.
    logged_at: Instant,
    /// The last failure's reason.
    detail: String,
}

impl Outage {
    fn never_tried() -> Self {
        let now = Instant::now();
        Self {
            since: None,
            retry_at: now,
            probing: false,
            failures: 0,
            logged_at: now,
            detail: "not reached yet".into(),
        }
    }
}

/// What a caller may do with a peer now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send as usual.
    Send,
    /// Wait for the probe that runs (or was just started) and its outcome.
    AwaitProbe,
    /// Fail at once: the peer is down and its next probe is not due.
    FailFast,
}

#[derive(Debug)]
struct Peers {
    states: HashMap<NodeId, State>,
}

/// The reachability of every peer, shared by all links of a node.
#[derive(Clone, Debug)]
pub(crate) struct Reachability {
    policy: ProbePolicy,
    peers: Arc<Mutex<Peers>>,
    /// Woken whenever a probe settles.
    settled: Arc<Notify>,
    /// Lets one probe run at a time.
    probing: Arc<tokio::sync::Mutex<()>>,
}

impl Reachability {
    pub(crate) fn new(policy: ProbePolicy) -> Self {
        Self {
            policy,
            peers: Arc::new(Mutex::new(Peers {
                states: HashMap::new(),
            })),
            settled: Arc::default(),
            probing: Arc::default(),
        }
    }

    pub(crate) fn policy(&self) -> ProbePolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Peers> {
        // The map holds plain states; one left by a panicking holder is still valid.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides how a call to `peer` proceeds; when a probe is due, starts it (`probe` makes
    /// the probe's future; it runs as a task of its own).
    pub(crate) fn gate<F, Fut>(&self, peer: NodeId, probe: F) -> Gate
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let mut peers = self.lock();
        let state = peers
            .states
            .entry(peer)
            .or_insert_with(|| State::Down(Outage::never_tried()));
        let State::Down(outage) = state else {
            return Gate::Send;
        };
        if outage.probing {
            return Gate::AwaitProbe;
        }
        if Instant::now() < outage.retry_at {
            return Gate::FailFast;
        }
        outage.probing = true;
        drop(peers);
        self.start_probe(peer, probe());
        Gate::AwaitProbe
    }

    fn start_probe<Fut>(&self, peer: NodeId, probe: Fut)
    where
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let reach = self.clone();
        tokio::spawn(async move {
            let outcome = {
                let _turn = reach.probing.lock().await;
                tokio::time::timeout(reach.policy.timeout, probe).await
            };
            match outcome {
                Ok(Ok(())) => reach.up(peer),
                Ok(Err(detail)) => reach.down(peer, &format!("probe failed: {detail}")),
                Err(_) => reach.down(
                    peer,
                    &format!(
                        "probe not answered within {} ms",
                        reach.policy.timeout.as_millis()
                    ),
                ),
            }
        });
    }

    /// When the probe of `peer` now running has settled: `Ok` if the peer answered, else why
    /// not. At once when no probe runs.
    pub(crate) async fn probe_outcome(&self, peer: NodeId) -> Result<(), String> {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match self.lock().states.get(&peer) {
                Some(State::Up) => return Ok(()),
                Some(State::Down(o)) if !o.probing => return Err(o.detail.clone()),
                None => return Err("not reached yet".into()),
                Some(State::Down(_)) => {}
            }
            settled.await;
        }
    }

    /// Waits until `peer` is up or its next probe has settled, starting that probe when it is
    /// due (see [`Self::gate`]); `Ok` if the peer answers.
    pub(crate) async fn wait_reachable<F, Fut>(&self, peer: NodeId, probe: F) -> Result<(), String>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        loop {
            match self.gate(peer, &probe) {
                Gate::Send => return Ok(()),
                Gate::AwaitProbe => return self.probe_outcome(peer).await,
                Gate::FailFast => {
                    let retry_at = match self.lock().states.get(&peer) {
                        Some(State::Down(o)) => o.retry_at,
                        _ => Instant::now(),
                    };
                    tokio::time::sleep_until(retry_at).await;
                }
            }
        }
    }

    /// Whether `peer` answered last time (a read only: no probe is started).
    pub(crate) fn is_up(&self, peer: NodeId) -> bool {
        matches!(self.lock().states.get(&peer), Some(State::Up))
    }

    /// `peer` answered.
    pub(crate) fn up(&self, peer: NodeId) {
        let previous = self.lock().states.insert(peer, State::Up);
        if let Some(State::Down(o)) = previous {
            if let Some(since) = o.since {
                tracing::info!(
                    peer,
                    down_ms = since.elapsed().as_millis() as u64,
                    failures = o.failures,
                    "node {peer} is reachable again after {:.1} s",
                    since.elapsed().as_secs_f64()
                );
            }
            self.settled.notify_waiters();
        }
    }

    /// `peer` did not answer (or a probe failed): no call and no probe before the next
    /// interval.
    pub(crate) fn down(&self, peer: NodeId, detail: &str) {
        let now = Instant::now();
        let retry_at = now + self.policy.interval;
        let mut peers = self.lock();
        let outage = match peers.states.remove(&peer) {
            Some(State::Down(mut o)) => {
                o.failures += 1;
                o.retry_at = retry_at;
                o.probing = false;
                o.detail = detail.to_string();
                let since = *o.since.get_or_insert(now);
                if now.duration_since(o.logged_at) >= SUMMARY_EVERY {
                    o.logged_at = now;
                    tracing::warn!(
                        peer,
                        down_ms = now.duration_since(since).as_millis() as u64,
                        failures = o.failures,
                        "node {peer} still unreachable after {} s ({} failed calls and probes): {detail}",
                        now.duration_since(since).as_secs(),
                        o.failures
                    );
                }
                o
            }
            _ => {
                tracing::warn!(
                    peer,
                    "node {peer} is unreachable: {detail}; calls to it are not sent, one probe every {} ms",
                    self.policy.interval.as_millis()
                );
                Outage {
                    since: Some(now),
                    retry_at,
                    probing: false,
                    failures: 1,
                    logged_at: now,
                    detail: detail.to_string(),
                }
            }
        };
        peers.states.insert(peer, State::Down(outage));
        drop(peers);
        self.settled.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn policy() -> ProbePolicy {
        ProbePolicy {
            timeout: Duration::from_millis(50),
            interval: Duration::from_millis(300),
        }
    }

    /// A probe that answers `ok` and counts its runs.
    fn counting(
        runs: &Arc<AtomicUsize>,
        ok: bool,
    ) -> impl Fn() -> std::future::Ready<Result<(), String>> + use<> {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if ok { Ok(()) } else { Err("refused".into()) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_peer_gets_one_probe_per_interval() {
        let r = Reachability::new(policy());
        let runs = Arc::new(AtomicUsize::new(0));
        assert_eq!(r.gate(1, counting(&runs, true)), Gate::AwaitProbe);
        assert_eq!(
            r.probe_outcome(1).await,
            Ok(()),
            "never reached: probed first"
        );
        assert_eq!(r.gate(1, counting(&runs, true)), Gate::Send);
        r.down(1, "no answer");
        assert_eq!(r.gate(1, counting(&runs, true)), Gate::FailFast);
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(r.gate(1, counting(&runs, false)), Gate::AwaitProbe);
        assert_eq!(
            r.gate(1, counting(&runs, false)),
            Gate::AwaitProbe,
            "one probe at a time: the second caller waits for the first's"
        );
        assert!(r.probe_outcome(1).await.is_err());
        assert_eq!(r.gate(1, counting(&runs, true)), Gate::FailFast);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_waits_for_the_probe_instead_of_failing_at_once() {
        let r = Reachability::new(policy());
        let runs = Arc::new(AtomicUsize::new(0));
        r.down(7, "no answer");
        // Ten "retries" of a dead peer cost ten intervals and ten probes, not a tight loop.
        let started = Instant::now();
        for _ in 0..10 {
            assert!(r.wait_reachable(7, counting(&runs, false)).await.is_err());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 10);
        assert!(started.elapsed() >= Duration::from_millis(300 * 10));
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(r.wait_reachable(7, counting(&runs, true)).await, Ok(()));
        assert!(r.is_up(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_outlives_the_caller_that_started_it() {
        let r = Reachability::new(policy());
        let slow_ok = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        };
        // The caller gives up after 5 ms (openraft drops a heartbeat that takes too long)...
        let gave_up = tokio::time::timeout(Duration::from_millis(5), r.wait_reachable(3, slow_ok))
            .await
            .is_err();
        assert!(gave_up);
        // ...and the probe still settles: the peer is up for the next call.
        assert_eq!(r.probe_outcome(3).await, Ok(()));
        assert!(r.is_up(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_probe_counts_as_a_failure_after_its_timeout() {
        let r = Reachability::new(policy());
        let silent = || std::future::pending::<Result<(), String>>();
        let outcome = r.wait_reachable(4, silent).await;
        assert!(outcome.unwrap_err().contains("within 50 ms"));
        assert!(!r.is_up(4));
    }
}
