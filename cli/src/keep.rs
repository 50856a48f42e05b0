//! The `--keep-*` retention options, shared by `prune` and prune jobs.

use ironcore_types::KeepOptions;

/// How many snapshots to keep per time bucket (0: option not set).
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct KeepArgs {
    #[arg(long, default_value_t = 0)]
    keep_last: u32,
    #[arg(long, default_value_t = 0)]
    keep_hourly: u32,
    #[arg(long, default_value_t = 0)]
    keep_daily: u32,
    #[arg(long, default_value_t = 0)]
    keep_weekly: u32,
    #[arg(long, default_value_t = 0)]
    keep_monthly: u32,
    #[arg(long, default_value_t = 0)]
    keep_yearly: u32,
}

impl KeepArgs {
    /// As the API takes them.
    pub fn options(&self) -> KeepOptions {
        KeepOptions {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
        }
    }
}
