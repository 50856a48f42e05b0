//! Which peers answer, so a dead peer costs one short probe per interval rather than a
//! connection attempt per RPC.
//!
//! The transport dials a peer while holding the lock of its connection table, so every call,
//! to any peer, waits while one dial to an unreachable peer runs out its timeout. Left alone,
//! openraft's heartbeats, votes and appends to a dead or partitioned node would keep that lock
//! busy and starve the calls to live nodes (no election could finish). Instead, once a peer
//! fails, calls to it fail at once, and only one probe (a tiny `Ping` with a short timeout) per
//! interval may dial it; when a probe is answered, the peer is up again. A peer never reached
//! is probed the same way before its first call, and probes run one at a time (a probe waiting
//! behind another one's dial would otherwise time out although its peer is fine).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::NodeId;

/// How dead peers are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbePolicy {
    /// How long a probe (connection set-up plus a ping) may take.
    pub timeout: Duration,
    /// How long after a failure the next probe may start.
    pub interval: Duration,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// Answering.
    Up,
    /// Failed; the next probe may start at `retry_at` unless one is running.
    Down { retry_at: Instant, probing: bool },
}

/// What a caller may do with a peer now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Send as usual.
    Send,
    /// Probe first (this caller owns the probe and must report its outcome).
    Probe,
    /// Fail at once: the peer is down and someone else probes (or it is not time yet).
    FailFast,
}

/// The reachability of every peer, shared by all links of a node.
#[derive(Clone, Debug)]
pub(crate) struct Reachability {
    policy: ProbePolicy,
    peers: Arc<Mutex<HashMap<NodeId, State>>>,
    /// Lets one probe run at a time.
    probing: Arc<tokio::sync::Mutex<()>>,
}

impl Reachability {
    pub(crate) fn new(policy: ProbePolicy) -> Self {
        Self {
            policy,
            peers: Arc::default(),
            probing: Arc::default(),
        }
    }

    pub(crate) fn policy(&self) -> ProbePolicy {
        self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, State>> {
        // The map holds plain states; one left by a panicking holder is still valid.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for the turn to probe (the guard ends it).
    pub(crate) async fn probe_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.probing.lock().await
    }

    /// Claims the probe of `peer` that [`Self::gate`] granted: if the claim is dropped before
    /// it is settled (the caller's future was cancelled), the peer counts as down again, so a
    /// cancelled probe never leaves it waiting for a probe that will not come.
    pub(crate) fn claim(&self, peer: NodeId) -> ProbeClaim {
        ProbeClaim {
            reach: self.clone(),
            peer,
            settled: false,
        }
    }

    /// Decides how a call to `peer` proceeds.
    pub(crate) fn gate(&self, peer: NodeId) -> Gate {
        let mut peers = self.lock();
        let never_tried = State::Down {
            retry_at: Instant::now(),
            probing: false,
        };
        match peers.get(&peer).copied().unwrap_or(never_tried) {
            State::Up => Gate::Send,
            State::Down { retry_at, probing } => {
                if probing || Instant::now() < retry_at {
                    Gate::FailFast
                } else {
                    peers.insert(
                        peer,
                        State::Down {
                            retry_at,
                            probing: true,
                        },
                    );
                    Gate::Probe
                }
            }
        }
    }

    /// Whether `peer` answered last time (a read only: no probe is claimed).
    pub(crate) fn is_up(&self, peer: NodeId) -> bool {
        matches!(self.lock().get(&peer), Some(State::Up))
    }

    /// `peer` answered.
    pub(crate) fn up(&self, peer: NodeId) {
        self.lock().insert(peer, State::Up);
    }

    /// `peer` did not answer (or a probe failed): no dial before the next interval.
    pub(crate) fn down(&self, peer: NodeId) {
        let retry_at = Instant::now() + self.policy.interval;
        self.lock().insert(
            peer,
            State::Down {
                retry_at,
                probing: false,
            },
        );
    }
}

/// The probe of one peer, owned by the call that runs it (see [`Reachability::claim`]).
#[derive(Debug)]
pub(crate) struct ProbeClaim {
    reach: Reachability,
    peer: NodeId,
    settled: bool,
}

impl ProbeClaim {
    /// The probe was answered.
    pub(crate) fn up(mut self) {
        self.settled = true;
        self.reach.up(self.peer);
    }

    /// The probe failed.
    pub(crate) fn down(mut self) {
        self.settled = true;
        self.reach.down(self.peer);
    }
}

impl Drop for ProbeClaim {
    fn drop(&mut self) {
        if !self.settled {
            self.reach.down(self.peer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_down_peer_gets_one_probe_per_interval() {
        let r = Reachability::new(ProbePolicy {
            timeout: Duration::from_millis(50),
            interval: Duration::from_millis(300),
        });
        assert_eq!(r.gate(1), Gate::Probe, "never reached: probe first");
        r.up(1);
        assert_eq!(r.gate(1), Gate::Send);
        r.down(1);
        assert_eq!(r.gate(1), Gate::FailFast);
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(r.gate(1), Gate::Probe);
        assert_eq!(r.gate(1), Gate::FailFast, "one probe at a time");
        r.down(1);
        assert_eq!(r.gate(1), Gate::FailFast);
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(r.gate(1), Gate::Probe);
        r.up(1);
        assert_eq!(r.gate(1), Gate::Send);
        assert_eq!(r.gate(2), Gate::Probe);
        assert_eq!(r.gate(2), Gate::FailFast);
        // A probe whose caller went away leaves the peer probe-able after the interval.
        drop(r.claim(2));
        tokio::time::advance(Duration::from_millis(301)).await;
        assert_eq!(r.gate(2), Gate::Probe);
        r.claim(2).up();
        assert_eq!(r.gate(2), Gate::Send);
    }
}
