//! Job schedules: a small subset of Proxmox calendar events, in UTC.
//!
//! ```text
//! hourly | daily | weekly            (*:00, 00:00, mon 00:00)
//! [DAYS] HOUR:MINUTE[:SECOND]        e.g. 02:30   mon..fri 22:00   *:0/15   sat,sun 3:00
//! DAYS   = DAY or DAY..DAY, comma-separated (mon tue wed thu fri sat sun)
//! field  = *   N   N,M,…   */STEP   N/STEP   (N/STEP: N, N+STEP, … within the field's range)
//! ```
//! A missing second is 0. [`Schedule::next_after`] is pure, so the scheduler's decisions are
//! tested without clocks.

use std::fmt;

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    /// Allowed weekdays, Monday first.
    days: [bool; 7],
    hours: Vec<u32>,
    minutes: Vec<u32>,
    seconds: Vec<u32>,
}

fn field(s: &str, max: u32, what: &str) -> Result<Vec<u32>, String> {
    let bad = || format!("{what} '{s}' is not *, N, N,M, */STEP or N/STEP with values 0..{max}");
    let num = |t: &str| -> Result<u32, String> {
        t.parse::<u32>().ok().filter(|n| *n <= max).ok_or_else(bad)
    };
    let mut out = Vec::new();
    for part in s.split(',') {
        if part == "*" {
            out.extend(0..=max);
        } else if let Some((start, step)) = part.split_once('/') {
            let start = if start == "*" { 0 } else { num(start)? };
            let step = step
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(bad)?;
            out.extend((start..=max).step_by(step as usize));
        } else {
            out.push(num(part)?);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn days(s: &str) -> Result<[bool; 7], String> {
    let idx = |d: &str| {
        DAYS.iter()
            .position(|x| *x == d.to_ascii_lowercase())
            .ok_or_else(|| format!("'{d}' is not a day (mon, tue, wed, thu, fri, sat, sun)"))
    };
    let mut out = [false; 7];
    for part in s.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (idx(a)?, idx(b)?);
                if a > b {
                    return Err(format!("day range '{part}' runs backwards"));
                }
                out[a..=b].iter_mut().for_each(|d| *d = true);
            }
            None => out[idx(part)?] = true,
        }
    }
    Ok(out)
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let expanded = match text {
            "hourly" => "*:00",
            "daily" => "00:00",
            "weekly" => "mon 00:00",
            t => t,
        };
        let (days, time) = match expanded.rsplit_once(' ') {
            Some((d, t)) => (self::days(d.trim())?, t),
            None => ([true; 7], expanded),
        };
        let parts: Vec<&str> = time.split(':').collect();
        let (h, m, s) = match parts.as_slice() {
            [h, m] => (*h, *m, "0"),
            [h, m, s] => (*h, *m, *s),
            _ => {
                return Err(format!(
                    "schedule '{text}' has no HOUR:MINUTE[:SECOND] (examples: daily, 02:30, mon..fri 22:00, *:0/15)"
                ));
            }
        };
        Ok(Self {
            text: text.to_string(),
            days,
            hours: field(h, 23, "hour")?,
            minutes: field(m, 59, "minute")?,
            seconds: field(s, 59, "second")?,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Schedule {
    /// The first time strictly after `t` (epoch seconds, UTC) the schedule names.
    pub fn next_after(&self, t: i64) -> i64 {
        let day0 = t.div_euclid(86_400);
        for d in day0..=day0 + 7 {
            // 1970-01-01 was a Thursday (index 3, Monday first).
            let dow = (d + 3).rem_euclid(7) as usize;
            if !self.days[dow] {
                continue;
            }
            let start = d * 86_400;
            for h in &self.hours {
                let hs = start + i64::from(*h) * 3600;
                if hs + 3599 <= t {
                    continue;
                }
                for m in &self.minutes {
                    let ms = hs + i64::from(*m) * 60;
                    if ms + 59 <= t {
                        continue;
                    }
                    for s in &self.seconds {
                        let at = ms + i64::from(*s);
                        if at > t {
                            return at;
                        }
                    }
                }
            }
        }
        unreachable!("every schedule names at least one second each week")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    fn next(schedule: &str, after: &str) -> String {
        let s: Schedule = schedule.parse().unwrap();
        chrono::DateTime::from_timestamp(s.next_after(at(after)), 0)
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn named_times_and_fields() {
        // 2026-11-23 is a Monday.
        assert_eq!(
            next("daily", "2026-11-23T10:00:00Z"),
            "2026-11-24T00:00:00+00:00"
        );
        assert_eq!(
            next("hourly", "2026-11-23T10:00:00Z"),
            "2026-11-23T11:00:00+00:00"
        );
        assert_eq!(
            next("weekly", "2026-11-23T10:00:00Z"),
            "2026-11-30T00:00:00+00:00"
        );
        assert_eq!(
            next("02:30", "2026-11-23T02:29:59Z"),
            "2026-11-23T02:30:00+00:00"
        );
        assert_eq!(
            next("02:30", "2026-11-23T02:30:00Z"),
            "2026-11-24T02:30:00+00:00"
        );
        assert_eq!(
            next("*:0/15", "2026-11-23T10:14:00Z"),
            "2026-11-23T10:15:00+00:00"
        );
        assert_eq!(
            next("*:0/15", "2026-11-23T23:50:00Z"),
            "2026-11-24T00:00:00+00:00"
        );
        assert_eq!(
            next("sat,sun 3:00", "2026-11-23T10:00:00Z"),
            "2026-11-28T03:00:00+00:00"
        );
        assert_eq!(
            next("mon..fri 22:00", "2026-11-27T22:00:00Z"),
            "2026-11-30T22:00:00+00:00"
        );
        assert_eq!(
            next("*:*:0/5", "2026-11-23T10:00:03Z"),
            "2026-11-23T10:00:05+00:00"
        );
        assert_eq!(
            next("8,20:00", "2026-11-23T09:00:00Z"),
            "2026-11-23T20:00:00+00:00"
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (s, words) in [
            ("25:00", "hour '25'"),
            ("12", "HOUR:MINUTE"),
            ("funday 1:00", "not a day"),
            ("fri..mon 1:00", "backwards"),
            ("*:0/0", "minute '0/0'"),
        ] {
            let e = s.parse::<Schedule>().unwrap_err();
            assert!(e.contains(words), "{s}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_next_time_is_later_within_a_day_and_matches(
            t in 0i64..4_000_000_000,
            h in 0u32..24,
            step in 1u32..30,
        ) {
            let s: Schedule = format!("{h}:0/{step}").parse().unwrap();
            let n = s.next_after(t);
            proptest::prop_assert!(n > t);
            proptest::prop_assert!(n - t <= 86_400);
            let secs = n.rem_euclid(86_400);
            proptest::prop_assert_eq!(secs / 3600, i64::from(h));
            proptest::prop_assert_eq!((secs / 60 % 60) % i64::from(step), 0);
            proptest::prop_assert_eq!(secs % 60, 0);
        }
    }
}
