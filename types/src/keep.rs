//! Retention options of a prune (the planner lives in `chunkstore::prune`).

use serde::{Deserialize, Serialize};

/// How many snapshots to keep per time bucket; 0 means the option is not set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KeepOptions {
    /// Keep the N newest snapshots.
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one.
    pub keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one.
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one.
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one.
    pub keep_yearly: u32,
}

impl KeepOptions {
    /// Whether at least one option is set; if none is, a prune keeps everything.
    pub fn keeps_something(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|&n| n > 0)
    }
}
