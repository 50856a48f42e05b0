//! Prune planning for one backup group, with Proxmox Backup Server's retention semantics
//! (`compute_prune_info` / `mark_selections` in `pbs-datastore/src/prune.rs`). Snapshots are
//! walked newest first through the passes keep-last, keep-hourly, keep-daily, keep-weekly (ISO
//! week), keep-monthly and keep-yearly, with buckets computed in an explicit timezone. Each pass
//! keeps the newest snapshot of up to N buckets that no earlier pass already covers; snapshots
//! left unmarked at the end are removed. Protected snapshots are always kept and never count
//! towards a pass. With no option set everything is kept. The planner is pure: no I/O, no clock.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Timelike};
use chrono_tz::Tz;

use crate::{Error, Result};

pub use ironcore_types::KeepOptions;

/// One snapshot of a group as the planner sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneCandidate {
    /// Backup time in epoch seconds; unique within a group.
    pub time: i64,
    /// Whether the snapshot is protected from removal.
    pub protected: bool,
}

/// Why a snapshot is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// Among the keep-last newest.
    Last,
    /// Newest of its hour.
    Hourly,
    /// Newest of its day.
    Daily,
    /// Newest of its ISO week.
    Weekly,
    /// Newest of its month.
    Monthly,
    /// Newest of its year.
    Yearly,
    /// The snapshot is protected.
    Protected,
    /// No keep option is set, so everything is kept.
    NoPolicy,
}

/// What the planner does with one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PruneMark {
    /// The snapshot stays, for the given reason.
    Keep(KeepReason),
    /// The snapshot is removed.
    Remove,
}

/// The planner's verdict on one snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneDecision {
    /// The snapshot's backup time (epoch seconds).
    pub time: i64,
    /// Keep or remove.
    pub mark: PruneMark,
}

impl PruneDecision {
    /// Whether the snapshot stays.
    pub fn is_kept(&self) -> bool {
        matches!(self.mark, PruneMark::Keep(_))
    }
}

/// Parses an IANA timezone name such as `UTC` or `Europe/Berlin`.
///
/// Fails with [`Error::InvalidTimezone`] if the name is not in the IANA database.
pub fn parse_timezone(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| Error::InvalidTimezone {
        tz: name.to_string(),
    })
}

/// A time bucket of one pass; passes never compare buckets with each other.
type Bucket = (i64, u32, u32, u32);

/// Computes the bucket of a snapshot from its epoch time and its local time.
type BucketFn = fn(i64, &DateTime<Tz>) -> Bucket;

/// Plans a prune of ONE backup group.
///
/// Returns one decision per input snapshot, sorted newest first. Buckets (hour, day, ISO
/// week, month, year) are computed in `tz`. Fails with [`Error::InvalidInput`] if two
/// snapshots share a time or a time is outside the calendar range.
pub fn plan_prune(
    snapshots: &[PruneCandidate],
    keep: &KeepOptions,
    tz: Tz,
) -> Result<Vec<PruneDecision>> {
    let mut list = snapshots.to_vec();
    list.sort_unstable_by_key(|c| std::cmp::Reverse(c.time));
    if let Some(pair) = list.windows(2).find(|w| w[0].time == w[1].time) {
        return Err(Error::InvalidInput {
            what: "prune candidates",
            detail: format!(
                "two snapshots share the time {} (epoch seconds); times are unique within a group",
                pair[0].time
            ),
        });
    }
    let local = list
        .iter()
        .map(|c| {
            DateTime::from_timestamp(c.time, 0)
                .map(|t| t.with_timezone(&tz))
                .ok_or_else(|| Error::InvalidInput {
                    what: "prune candidates",
                    detail: format!("snapshot time {} is outside the calendar range", c.time),
                })
        })
        .collect::<Result<Vec<_>>>()?;

    // With no option set no pass runs and every snapshot stays.
    let unmarked = if keep.keeps_something() {
        PruneMark::Remove
    } else {
        PruneMark::Keep(KeepReason::NoPolicy)
    };
    let passes: [(u32, KeepReason, BucketFn); 6] = [
        (keep.keep_last, KeepReason::Last, |t, _| (t, 0, 0, 0)),
        (keep.keep_hourly, KeepReason::Hourly, |_, d| {
            (i64::from(d.year()), d.month(), d.day(), d.hour())
        }),
        (keep.keep_daily, KeepReason::Daily, |_, d| {
            (i64::from(d.year()), d.month(), d.day(), 0)
        }),
        (keep.keep_weekly, KeepReason::Weekly, |_, d| {
            let w = d.iso_week();
            (i64::from(w.year()), w.week(), 0, 0)
        }),
        (keep.keep_monthly, KeepReason::Monthly, |_, d| {
            (i64::from(d.year()), d.month(), 0, 0)
        }),
        (keep.keep_yearly, KeepReason::Yearly, |_, d| {
            (i64::from(d.year()), 0, 0, 0)
        }),
    ];
    let mut marks: Vec<Option<PruneMark>> = vec![None; list.len()];
    for (count, reason, bucket_of) in passes {
        if count > 0 {
            let ids: Vec<Bucket> = list
                .iter()
                .zip(&local)
                .map(|(c, d)| bucket_of(c.time, d))
                .collect();
            mark_selections(&list, &ids, &mut marks, count, reason);
        }
    }

    Ok(list
        .iter()
        .zip(marks)
        .map(|(c, mark)| PruneDecision {
            time: c.time,
            mark: if c.protected {
                PruneMark::Keep(KeepReason::Protected)
            } else {
                mark.unwrap_or(unmarked)
            },
        })
        .collect())
}

/// One pass of PBS's `mark_selections` over `list` (newest first), `ids[i]` being the bucket
/// of `list[i]`. Buckets of snapshots kept by earlier passes are skipped; like PBS, protected
/// marks do not cover a bucket (PBS tracks them as a separate `Protected` mark).
fn mark_selections(
    list: &[PruneCandidate],
    ids: &[Bucket],
    marks: &mut [Option<PruneMark>],
    keep: u32,
    reason: KeepReason,
) {
    let already_included: HashSet<Bucket> = marks
        .iter()
        .zip(ids)
        .filter(|(m, _)| matches!(m, Some(PruneMark::Keep(r)) if *r != KeepReason::Protected))
        .map(|(_, id)| *id)
        .collect();
    let mut included: HashSet<Bucket> = HashSet::new();
    for ((cand, id), mark) in list.iter().zip(ids).zip(marks.iter_mut()) {
        if mark.is_some() {
            continue;
        }
        if cand.protected {
            *mark = Some(PruneMark::Keep(KeepReason::Protected));
            continue;
        }
        if already_included.contains(id) {
            continue;
        }
        if included.contains(id) {
            *mark = Some(PruneMark::Remove);
        } else if included.len() >= keep as usize {
            break;
        } else {
            included.insert(*id);
            *mark = Some(PruneMark::Keep(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const R: PruneMark = PruneMark::Remove;
    fn k(reason: KeepReason) -> PruneMark {
        PruneMark::Keep(reason)
    }

    fn ts(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
    }

    /// Plans `snaps` (RFC 3339 times, whitespace-separated, newest first; `protected` by
    /// index) under `keep` (JSON, as the API receives it) and returns their marks.
    fn marks(snaps: &str, protected: &[usize], keep: &str, tz: Tz) -> Vec<PruneMark> {
        let times: Vec<i64> = snaps.split_whitespace().map(ts).collect();
        let cands: Vec<PruneCandidate> = (0..times.len())
            .rev() // feed oldest first: the planner must sort
            .map(|i| PruneCandidate {
                time: times[i],
                protected: protected.contains(&i),
            })
            .collect();
        let keep: KeepOptions = serde_json::from_str(keep).unwrap();
        let plan = plan_prune(&cands, &keep, tz).unwrap();
        assert_eq!(plan.iter().map(|d| d.time).collect::<Vec<_>>(), times);
        plan.iter().map(|d| d.mark).collect()
    }

    #[test]
    fn keep_last_keeps_the_n_newest() {
        let snaps = "2024-03-05T10:00:00Z 2024-03-05T09:00:00Z 2024-03-04T10:00:00Z
            2024-03-01T10:00:00Z 2023-12-01T10:00:00Z";
        let l = k(KeepReason::Last);
        let got = marks(snaps, &[], r#"{"keep-last":3}"#, Tz::UTC);
        assert_eq!(got, [l, l, l, R, R]);
    }

    #[test]
    fn keep_daily_keeps_newest_of_each_day() {
        let snaps = "2024-03-03T10:00:00Z 2024-03-02T21:00:00Z 2024-03-02T09:00:00Z
            2024-03-01T18:00:00Z 2024-03-01T12:00:00Z 2024-03-01T08:00:00Z";
        let d = k(KeepReason::Daily);
        let got = marks(snaps, &[], r#"{"keep-daily":2}"#, Tz::UTC);
        assert_eq!(got, [d, d, R, R, R, R]);
    }

    #[test]
    fn keep_daily_skips_days_already_covered_by_keep_last() {
        // Four days with two snapshots each, newest first.
        let snaps = "2024-03-04T18:00:00Z 2024-03-04T06:00:00Z 2024-03-03T18:00:00Z
            2024-03-03T06:00:00Z 2024-03-02T18:00:00Z 2024-03-02T06:00:00Z
            2024-03-01T18:00:00Z 2024-03-01T06:00:00Z";
        let (l, d) = (k(KeepReason::Last), k(KeepReason::Daily));
        // last=2 covers day 4; daily=2 then keeps the newest of days 3 and 2 (their second
        // snapshots are marked Remove by the daily pass), and stops at day 1.
        let got = marks(snaps, &[], r#"{"keep-last":2,"keep-daily":2}"#, Tz::UTC);
        assert_eq!(got, [l, l, d, R, d, R, R, R]);
        // last=3 covers days 4 and 3; 03-03T06 is skipped (day already included) and ends
        // removed; daily=1 keeps the newest of day 2 only.
        let got = marks(snaps, &[], r#"{"keep-last":3,"keep-daily":1}"#, Tz::UTC);
        assert_eq!(got, [l, l, l, R, d, R, R, R]);
    }

    #[test]
    fn keep_weekly_uses_iso_weeks_across_new_year() {
        // 2021-01-04 is ISO 2021/01; 2021-01-03 and 2020-12-31 are both 2020/53; 12-27 is 52.
        let snaps = "2021-01-04T12:00:00Z 2021-01-03T12:00:00Z 2020-12-31T12:00:00Z
            2020-12-27T12:00:00Z";
        let w = k(KeepReason::Weekly);
        let got = marks(snaps, &[], r#"{"keep-weekly":2}"#, Tz::UTC);
        assert_eq!(got, [w, w, R, R]);
        // With a third week, 2020-12-31 is still removed: it shares 2020/53 with 01-03.
        let got = marks(snaps, &[], r#"{"keep-weekly":3}"#, Tz::UTC);
        assert_eq!(got, [w, w, R, w]);
    }

    #[test]
    fn weekly_uses_iso_year_while_yearly_uses_calendar_year() {
        // 2024-12-30 (Mon) is ISO week 2025/01, like 2025-01-02; 2024-12-29 (Sun) is 2024/52.
        let snaps = "2025-01-02T12:00:00Z 2024-12-30T12:00:00Z 2024-12-29T12:00:00Z";
        let (w, y) = (k(KeepReason::Weekly), k(KeepReason::Yearly));
        let got = marks(snaps, &[], r#"{"keep-weekly":2}"#, Tz::UTC);
        assert_eq!(got, [w, R, w]);
        let got = marks(snaps, &[], r#"{"keep-yearly":2}"#, Tz::UTC);
        assert_eq!(got, [y, y, R]);
    }

    #[test]
    fn month_boundary_depends_on_timezone() {
        // 2024-01-31T23:30Z is already 2024-02-01 00:30 in Berlin. keep-monthly=1 alone always
        // keeps just the newest, so keep-last=1 takes the newest and monthly picks January's.
        let snaps = "2024-02-10T12:00:00Z 2024-01-31T23:30:00Z 2024-01-31T20:00:00Z";
        let keep = r#"{"keep-last":1,"keep-monthly":1}"#;
        let (l, m) = (k(KeepReason::Last), k(KeepReason::Monthly));
        assert_eq!(marks(snaps, &[], keep, Tz::UTC), [l, m, R]);
        assert_eq!(marks(snaps, &[], keep, Tz::Europe__Berlin), [l, R, m]);
    }

    #[test]
    fn protected_snapshots_are_kept_and_not_counted() {
        let snaps = "2024-03-05T10:00:00Z 2024-03-04T10:00:00Z 2024-03-03T10:00:00Z
            2024-03-02T10:00:00Z 2024-03-01T10:00:00Z";
        let (l, p) = (k(KeepReason::Last), k(KeepReason::Protected));
        let got = marks(snaps, &[0, 4], r#"{"keep-last":2}"#, Tz::UTC);
        assert_eq!(got, [p, l, l, R, p]);
    }

    #[test]
    fn nothing_set_keeps_all() {
        let snaps = "2024-03-05T10:00:00Z 2024-03-04T10:00:00Z 2024-03-03T10:00:00Z";
        let (n, p) = (k(KeepReason::NoPolicy), k(KeepReason::Protected));
        assert_eq!(marks(snaps, &[1], "{}", Tz::UTC), [n, p, n]);
    }

    #[test]
    fn duplicate_or_out_of_range_times_are_refused() {
        let c = |time| PruneCandidate {
            time,
            protected: false,
        };
        let keep = KeepOptions {
            keep_last: 1,
            ..Default::default()
        };
        for bad in [vec![c(5), c(7), c(5)], vec![c(i64::MAX)]] {
            let err = plan_prune(&bad, &keep, Tz::UTC).unwrap_err();
            let what = match &err {
                Error::InvalidInput { what, .. } => *what,
                other => panic!("unexpected error {other}"),
            };
            assert_eq!(what, "prune candidates");
        }
    }

    #[test]
    fn unknown_timezone_is_refused_with_its_name() {
        assert_eq!(parse_timezone("Europe/Berlin").unwrap(), Tz::Europe__Berlin);
        assert_eq!(parse_timezone("UTC").unwrap(), Tz::UTC);
        let err = parse_timezone("Mars/Olympus_Mons").unwrap_err();
        assert!(matches!(&err, Error::InvalidTimezone { tz } if tz == "Mars/Olympus_Mons"));
        assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
    }

    #[test]
    fn keep_options_use_kebab_case_and_refuse_unknown_fields() {
        let opts: KeepOptions = serde_json::from_str(r#"{"keep-last":3,"keep-weekly":2}"#).unwrap();
        let want = KeepOptions {
            keep_last: 3,
            keep_weekly: 2,
            ..Default::default()
        };
        assert_eq!(opts, want);
        assert!(serde_json::from_str::<KeepOptions>(r#"{"keep-forever":1}"#).is_err());
    }

    const END: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
    const DAY: i64 = 86_400;

    /// Up to 40 snapshots over three years, clustered near the newest end so that hours and
    /// days hold several snapshots; about one in five protected.
    fn arb_snapshots() -> impl Strategy<Value = Vec<PruneCandidate>> {
        let offset = prop_oneof![0..3 * 365 * DAY, 0..14 * DAY, 0..2 * DAY];
        prop::collection::vec((offset, prop::bool::weighted(0.2)), 0..40).prop_map(|v| {
            let unique: BTreeMap<i64, bool> = v.into_iter().map(|(o, p)| (END - o, p)).collect();
            unique
                .into_iter()
                .map(|(time, protected)| PruneCandidate { time, protected })
                .collect()
        })
    }

    fn arb_keep() -> impl Strategy<Value = KeepOptions> {
        prop::array::uniform6(0u32..4).prop_map(|[a, b, c, d, e, f]| KeepOptions {
            keep_last: a,
            keep_hourly: b,
            keep_daily: c,
            keep_weekly: d,
            keep_monthly: e,
            keep_yearly: f,
        })
    }

    fn arb_tz() -> impl Strategy<Value = Tz> {
        prop_oneof![
            Just(Tz::UTC),
            Just(Tz::Europe__Berlin),
            Just(Tz::America__New_York),
            Just(Tz::Pacific__Auckland),
        ]
    }

    proptest! {
        #[test]
        fn prop_plan_invariants(snaps in arb_snapshots(), keep in arb_keep(), tz in arb_tz()) {
            let plan = plan_prune(&snaps, &keep, tz).unwrap();
            let protected: BTreeMap<i64, bool> = snaps.iter().map(|c| (c.time, c.protected)).collect();
            // (d) one decision per input, strictly newest first.
            prop_assert_eq!(plan.len(), snaps.len());
            prop_assert!(plan.windows(2).all(|w| w[0].time > w[1].time));
            // (a) protected snapshots are never removed.
            prop_assert!(plan.iter().all(|d| d.is_kept() || !protected[&d.time]));
            // (b) with any option set, the newest unprotected snapshot is kept.
            if let Some(newest) = plan.iter().find(|d| !protected[&d.time]) {
                prop_assert!(newest.is_kept());
            }
            // (c) idempotent: planning only the kept snapshots removes nothing.
            let kept: Vec<PruneCandidate> = plan.iter().filter(|d| d.is_kept())
                .map(|d| PruneCandidate { time: d.time, protected: protected[&d.time] }).collect();
            let again = plan_prune(&kept, &keep, tz).unwrap();
            prop_assert!(again.iter().all(PruneDecision::is_kept), "second run: {:?}", again);
        }

        #[test]
        fn prop_keep_last_keeps_exactly_n_unprotected(snaps in arb_snapshots(), n in 1u32..10,
            tz in arb_tz()) {
            let keep = KeepOptions { keep_last: n, ..Default::default() };
            let plan = plan_prune(&snaps, &keep, tz).unwrap();
            let unprotected = snaps.iter().filter(|c| !c.protected).count();
            let kept = plan.iter().filter(|d| d.mark == k(KeepReason::Last)).count();
            prop_assert_eq!(kept, unprotected.min(n as usize));
            let removed = plan.iter().filter(|d| !d.is_kept()).count();
            prop_assert_eq!(removed, unprotected - kept);
        }
    }
}
