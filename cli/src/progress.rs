//! A progress line on standard error while a backup or restore runs — only when standard error
//! is a terminal and the output is for humans; scripts and logs stay quiet.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::output::Output;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(250);

/// Bytes done out of an optional total, drawn as a bar (total known) or a counter.
pub struct Progress {
    label: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    drawn: Option<Instant>,
    enabled: bool,
}

impl Progress {
    /// A progress line for `label` ("backup", "restore"), `total` bytes if known.
    pub fn new(label: &'static str, total: Option<u64>, out: Output) -> Self {
        Self {
            label,
            total,
            done: 0,
            started: Instant::now(),
            drawn: None,
            enabled: out == Output::Text && std::io::stderr().is_terminal(),
        }
    }

    /// `n` more bytes done.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        self.draw();
    }

    /// `done` bytes of `total`.
    pub fn set(&mut self, done: u64, total: u64) {
        self.done = done;
        self.total = Some(total);
        self.draw();
    }

    fn draw(&mut self) {
        // Nothing for the first interval (a quick run draws nothing), then every interval.
        let due = match self.drawn {
            None => self.started.elapsed() >= EVERY,
            Some(t) => t.elapsed() >= EVERY,
        };
        if self.enabled && due {
            self.drawn = Some(Instant::now());
            eprint!(
                "\r\x1b[2K{}",
                render(self.label, self.done, self.total, self.started.elapsed())
            );
            let _ = std::io::stderr().flush();
        }
    }

    /// Clears the line (the summary follows on standard output).
    pub fn finish(&mut self) {
        if self.enabled && self.drawn.is_some() {
            eprint!("\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// The line: label, a 30-column bar and percentage when the total is known, bytes, rate, ETA.
pub fn render(label: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done as f64 / secs;
    match total {
        Some(t) if t > 0 => {
            let frac = (done as f64 / t as f64).min(1.0);
            let filled = (frac * 30.0).round() as usize;
            let eta = if rate > 0.0 && done < t {
                format!(" ETA {:.0}s", (t - done) as f64 / rate)
            } else {
                String::new()
            };
            format!(
                "{label} [{}{}] {:>3.0}% {} of {} {}/s{eta}",
                "#".repeat(filled),
                "-".repeat(30 - filled),
                frac * 100.0,
                bytes(done),
                bytes(t),
                bytes(rate as u64)
            )
        }
        _ => format!("{label}: {} read, {}/s", bytes(done), bytes(rate as u64)),
    }
}

/// `n` in binary units.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_with_a_known_total_and_counter_without() {
        let line = render("restore", 512 << 20, Some(1 << 30), Duration::from_secs(2));
        assert!(
            line.starts_with("restore [###############---------------]  50%"),
            "{line}"
        );
        assert!(
            line.contains("512.0 MiB of 1.0 GiB 256.0 MiB/s ETA 2s"),
            "{line}"
        );
        let line = render("backup", 3 << 20, None, Duration::from_secs(1));
        assert_eq!(line, "backup: 3.0 MiB read, 3.0 MiB/s");
        assert_eq!(bytes(1023), "1023 B");
    }
}
