//! Bandwidth limits for bulk transfers (chunk streams), never for control traffic: a token
//! bucket in MiB/s where 0 means unlimited. A [`RateLimiter`] is shared by cloning it, so one
//! clone per transfer and one per link give a per-transfer and a per-link limit, and
//! [`acquire_all`] waits on both. The bucket holds at most 100 ms worth of tokens (at least
//! 64 KiB), so bursts stay short and the long-run rate holds within a few percent. Waiters are
//! served in arrival order, and requests larger than the burst are paid for piece by piece, so
//! a rate change made with [`RateLimiter::set_rate`] takes effect within about 100 ms.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

/// Bytes in one MiB.
const MIB: u64 = 1024 * 1024;
/// The smallest burst, whatever the rate.
const MIN_BURST: f64 = 64.0 * 1024.0;
/// How many seconds of tokens the bucket holds at most.
const BURST_SECS: f64 = 0.1;

/// The bucket itself, behind the mutex.
#[derive(Debug)]
struct Bucket {
    /// Bytes per second; 0 means unlimited.
    rate: u64,
    /// Tokens available now, in bytes (never above `burst`).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    last: Instant,
}

impl Bucket {
    fn burst(&self) -> f64 {
        (self.rate as f64 * BURST_SECS).max(MIN_BURST)
    }

    /// Adds the tokens earned since the last refill, capped at the burst.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        if self.rate > 0 {
            self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst());
        }
    }
}

#[derive(Debug)]
struct Shared {
    bucket: Mutex<Bucket>,
    /// Taken for the whole of an `acquire`, so waiters are served first come, first served.
    turn: tokio::sync::Mutex<()>,
}

/// A shared token bucket; clone it to share one limit between transfers (a per-link limit).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    shared: Arc<Shared>,
}

impl RateLimiter {
    /// `mib_per_sec` = 0 means unlimited. Burst: at most 100 ms worth of tokens (but at least
    /// 64 KiB) so the long-run rate holds within ±10% over 10 s. The bucket starts full.
    pub fn new(mib_per_sec: u64) -> Self {
        Self::bytes_per_sec(mib_per_sec.saturating_mul(MIB))
    }

    /// As [`RateLimiter::new`], in bytes per second (0 = unlimited): for a limit shared out
    /// in parts smaller than a MiB/s.
    pub fn bytes_per_sec(rate: u64) -> Self {
        let mut bucket = Bucket {
            rate,
            tokens: 0.0,
            last: Instant::now(),
        };
        bucket.tokens = bucket.burst();
        RateLimiter {
            shared: Arc::new(Shared {
                bucket: Mutex::new(bucket),
                turn: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A limiter that never waits (until [`RateLimiter::set_rate`] gives it a rate).
    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// Whether the limiter currently lets everything through at once.
    pub fn is_unlimited(&self) -> bool {
        self.bucket().rate == 0
    }

    /// Changes the rate at run time (0 = unlimited). Tokens earned so far at the old rate are
    /// kept, up to the new burst; waiters pick the new rate up on their next check.
    pub fn set_rate(&self, mib_per_sec: u64) {
        let mut b = self.bucket();
        let now = Instant::now();
        let was_unlimited = b.rate == 0;
        b.refill(now);
        b.rate = mib_per_sec.saturating_mul(MIB);
        b.tokens = if was_unlimited {
            b.burst()
        } else {
            b.tokens.min(b.burst())
        };
    }

    /// Waits (with `tokio::time::sleep`) until `bytes` may be sent. Requests larger than the
    /// burst are paid for in burst-sized pieces.
    pub async fn acquire(&self, bytes: u64) {
        if bytes == 0 || self.is_unlimited() {
            return;
        }
        let _turn = self.shared.turn.lock().await;
        let mut remaining = bytes as f64;
        while remaining > 0.0 {
            // The guard is dropped at the end of this block, before any await.
            let wait = {
                let mut b = self.bucket();
                if b.rate == 0 {
                    return;
                }
                b.refill(Instant::now());
                let piece = remaining.min(b.burst());
                if b.tokens >= piece {
                    b.tokens -= piece;
                    remaining -= piece;
                    continue;
                }
                Duration::from_secs_f64((piece - b.tokens) / b.rate as f64)
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn bucket(&self) -> MutexGuard<'_, Bucket> {
        // The bucket is plain numbers updated in one step each, so a panic elsewhere while
        // holding the lock cannot leave it inconsistent: recover from poisoning.
        self.shared.bucket.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Waits on every limiter in turn (a transfer limit and a link limit together).
pub async fn acquire_all(limiters: &[&RateLimiter], bytes: u64) {
    for limiter in limiters {
        limiter.acquire(bytes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `total` bytes through `limiter` in 64 KiB pieces.
    async fn send(limiter: &RateLimiter, total: u64) {
        let mut left = total;
        while left > 0 {
            let piece = left.min(64 * 1024);
            limiter.acquire(piece).await;
            left -= piece;
        }
    }

    #[tokio::test]
    async fn unlimited_limiter_returns_at_once() {
        let limiter = RateLimiter::unlimited();
        assert!(limiter.is_unlimited());
        assert!(RateLimiter::new(0).is_unlimited());
        let done = tokio::time::timeout(Duration::from_secs(5), async {
            limiter.acquire(1 << 40).await;
            send(&limiter, 64 * MIB).await;
        })
        .await;
        assert!(done.is_ok(), "an unlimited limiter must not wait");
    }

    // This test is about timing by design: it checks the long-run rate, with ±10% tolerance.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eight_mib_per_sec_sends_sixteen_mib_in_about_two_seconds() {
        let limiter = RateLimiter::new(8);
        assert!(!limiter.is_unlimited());
        let start = Instant::now();
        send(&limiter, 16 * MIB).await;
        let secs = start.elapsed().as_secs_f64();
        assert!(
            (1.8..=2.2).contains(&secs),
            "16 MiB at 8 MiB/s took {secs:.3} s"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clones_share_one_budget() {
        // 4 MiB/s shared: 2 + 2 MiB take about 0.9 s; separate budgets would take about 0.4 s.
        let limiter = RateLimiter::new(4);
        let start = Instant::now();
        let (a, b) = (limiter.clone(), limiter.clone());
        let ta = tokio::spawn(async move { send(&a, 2 * MIB).await });
        let tb = tokio::spawn(async move { send(&b, 2 * MIB).await });
        let (ra, rb) = tokio::join!(ta, tb);
        assert!(ra.is_ok() && rb.is_ok());
        let secs = start.elapsed().as_secs_f64();
        assert!(
            secs >= 0.7,
            "two clones sent 4 MiB at 4 MiB/s in {secs:.3} s"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_rate_takes_effect() {
        // Raising the rate of a slow limiter frees a transfer that would take 8 s.
        let limiter = RateLimiter::new(1);
        let slow = limiter.clone();
        let transfer = tokio::spawn(async move { send(&slow, 8 * MIB).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!transfer.is_finished());
        limiter.set_rate(1024);
        let done = tokio::time::timeout(Duration::from_secs(4), transfer).await;
        assert!(
            matches!(done, Ok(Ok(()))),
            "raising the rate did not release the transfer"
        );

        // Limiting an unlimited limiter makes it wait: 1 MiB at 1 MiB/s takes about 0.9 s.
        let limiter = RateLimiter::unlimited();
        limiter.set_rate(1);
        assert!(!limiter.is_unlimited());
        let start = Instant::now();
        send(&limiter, MIB).await;
        let secs = start.elapsed().as_secs_f64();
        assert!(secs >= 0.6, "1 MiB at 1 MiB/s took only {secs:.3} s");

        // And back to unlimited.
        limiter.set_rate(0);
        assert!(limiter.is_unlimited());
        let done = tokio::time::timeout(Duration::from_secs(5), send(&limiter, 64 * MIB)).await;
        assert!(done.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_larger_than_burst_completes_at_the_rate() {
        // Burst at 4 MiB/s is 0.4 MiB; 2 MiB in one call takes about 0.4 s.
        let limiter = RateLimiter::new(4);
        let start = Instant::now();
        let done = tokio::time::timeout(Duration::from_secs(5), limiter.acquire(2 * MIB)).await;
        assert!(done.is_ok());
        let secs = start.elapsed().as_secs_f64();
        assert!(secs >= 0.25, "2 MiB at 4 MiB/s took only {secs:.3} s");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acquire_all_waits_on_the_slowest_limiter() {
        let (link, transfer) = (RateLimiter::unlimited(), RateLimiter::new(4));
        let start = Instant::now();
        for _ in 0..32 {
            acquire_all(&[&link, &transfer], 64 * 1024).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!(
            secs >= 0.25,
            "2 MiB through a 4 MiB/s limiter took only {secs:.3} s"
        );
    }
}
