//! Named crash points for fault tests: a process started with `IRONCORE_FAILPOINTS=NAME[,NAME…]`
//! aborts (like `kill -9`: no clean-up, no flush) when it reaches a point of that name. With
//! the variable unset, as in production, a point costs one environment lookup.
//!
//! Points: `membership-after-record` (a membership change is recorded, Raft's membership not
//! yet changed).

/// Aborts the process if `name` is armed in `IRONCORE_FAILPOINTS`.
pub fn hit(name: &str) {
    let Ok(armed) = std::env::var("IRONCORE_FAILPOINTS") else {
        return;
    };
    if armed.split(',').any(|p| p.trim() == name) {
        tracing::error!(failpoint = name, "failpoint hit: aborting the process");
        std::process::abort();
    }
}
