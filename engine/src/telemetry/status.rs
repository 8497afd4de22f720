//! The live one-line status, and a console writer that keeps it at the bottom of the terminal
//! while log lines scroll above it.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use mirror_model::{SKIP_CATEGORIES, SkipCategory};

use super::{LatencySummary, StatsSnapshot};

/// Shared terminal state: the status line currently shown, if any.
#[derive(Clone, Debug)]
pub struct Console {
    inner: Arc<Mutex<ConsoleState>>,
}

#[derive(Debug)]
struct ConsoleState {
    tty: bool,
    line: String,
}

impl Console {
    /// A console on stdout.
    pub fn stdout() -> Self {
        Self { inner: Arc::new(Mutex::new(ConsoleState { tty: std::io::stdout().is_terminal(), line: String::new() })) }
    }

    /// Whether stdout is a terminal (the status line is redrawn in place) or not (it is
    /// printed as a log line at each update).
    pub fn is_tty(&self) -> bool {
        self.lock().tty
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConsoleState> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Shows `line` as the status.
    pub fn set_status(&self, line: &str) {
        let mut state = self.lock();
        let mut out = std::io::stdout().lock();
        if state.tty {
            let _ = write!(out, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
        state.line = line.to_owned();
    }

    /// Ends the status line (before the program prints its final words).
    pub fn finish(&self) {
        let mut state = self.lock();
        if state.tty && !state.line.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out);
            let _ = out.flush();
        }
        state.line.clear();
    }

    /// Writes a log line above the status line.
    fn write_log(&self, bytes: &[u8]) -> std::io::Result<()> {
        let state = self.lock();
        let mut out = std::io::stdout().lock();
        if state.tty && !state.line.is_empty() {
            out.write_all(b"\r\x1b[2K")?;
        }
        out.write_all(bytes)?;
        if state.tty && !state.line.is_empty() {
            out.write_all(state.line.as_bytes())?;
        }
        out.flush()
    }
}

/// A `tracing` writer for [`Console`]: log lines go above the status line.
#[derive(Debug)]
pub struct ConsoleWriter(Console);

impl Write for ConsoleWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.write_log(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Console {
    type Writer = ConsoleWriter;

    fn make_writer(&'a self) -> Self::Writer {
        ConsoleWriter(self.clone())
    }
}

/// The status line's content.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusLine {
    /// Counters.
    pub stats: StatsSnapshot,
    /// Fan-out latency.
    pub latency: LatencySummary,
    /// Accounts connected, of all.
    pub connected: (usize, usize),
    /// Accounts close-only or frozen.
    pub restricted: usize,
    /// Seconds since start.
    pub uptime_s: u64,
    /// The Postgres writer, when `DATABASE_URL` turned it on.
    pub postgres: Option<PostgresGauge>,
}

/// The Postgres writer at a glance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostgresGauge {
    /// Connected and writing.
    pub connected: bool,
    /// Durable journal entries not yet in Postgres.
    pub behind: u64,
}

fn micros(ns: u64) -> String {
    if ns >= 10_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else if ns >= 1_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{}µs", ns / 1_000)
    }
}

impl std::fmt::Display for StatusLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        // "No copy" (a close for a position this follower never copied) is routine, not a
        // skipped trade: it is counted but kept out of the headline.
        let skipped = s.skipped_total() - s.skipped(SkipCategory::NoCopy);
        write!(
            f,
            "{:>4}s │ signals {} │ copies {} │ closes {} │ fills {} │ rejects {} │ skipped {skipped}",
            self.uptime_s, s.signals, s.copies, s.closes, s.fills, s.rejects,
        )?;
        let reasons: Vec<String> = SKIP_CATEGORIES
            .iter()
            .zip(s.skipped)
            .filter(|(category, count)| *count > 0 && **category != SkipCategory::NoCopy)
            .map(|(category, count)| format!("{} {count}", category.name()))
            .collect();
        if !reasons.is_empty() {
            write!(f, " ({})", reasons.join(", "))?;
        }
        if self.latency.samples > 0 {
            write!(f, " │ fan-out p99 {} (p50 {})", micros(self.latency.p99_ns), micros(self.latency.p50_ns))?;
        } else {
            f.write_str(" │ fan-out p99 –")?;
        }
        write!(f, " │ connected {}/{}", self.connected.0, self.connected.1)?;
        if self.restricted > 0 {
            write!(f, " │ restricted {}", self.restricted)?;
        }
        match self.postgres {
            None => {}
            Some(PostgresGauge { connected: true, behind: 0 }) => f.write_str(" │ postgres ok")?,
            Some(PostgresGauge { connected: true, behind }) => write!(f, " │ postgres {behind} behind")?,
            Some(PostgresGauge { connected: false, behind }) => write!(f, " │ postgres DOWN ({behind} behind)")?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_line_names_skip_reasons_and_latency() {
        let mut stats =
            StatsSnapshot { signals: 12, copies: 200, closes: 40, fills: 238, rejects: 2, ..StatsSnapshot::default() };
        stats.skipped[3] = 5;
        stats.skipped[4] = 1;
        stats.skipped[6] = 40; // no-copy: counted, not in the headline
        let line = StatusLine {
            stats,
            latency: LatencySummary { samples: 12, p50_ns: 21_000, p99_ns: 1_450_000, p999_ns: 0, max_ns: 0 },
            connected: (22, 22),
            restricted: 1,
            uptime_s: 30,
            postgres: None,
        };
        assert_eq!(
            line.to_string(),
            "  30s │ signals 12 │ copies 200 │ closes 40 │ fills 238 │ rejects 2 │ skipped 6 (size 5, risk 1) │ fan-out p99 1.4ms (p50 21µs) │ connected 22/22 │ restricted 1"
        );
        let down = StatusLine { postgres: Some(PostgresGauge { connected: false, behind: 1_204 }), ..line };
        assert!(down.to_string().ends_with("│ restricted 1 │ postgres DOWN (1204 behind)"), "{down}");
        let ok = StatusLine { postgres: Some(PostgresGauge { connected: true, behind: 0 }), ..down };
        assert!(ok.to_string().ends_with("│ postgres ok"), "{ok}");
    }
}
