//! The engine's one clock. Shards read it once per message and hand the reading to actors,
//! which never read a clock themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::account::Now;

/// A source of [`Now`].
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> Now;
}

/// The real clock: one monotonic read per call; wall time derived from it (so both move
/// together and a call costs one `clock_gettime`).
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
    start_unix_ms: i64,
}

impl SystemClock {
    /// A clock starting now.
    pub fn new() -> Self {
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self { start: Instant::now(), start_unix_ms }
    }

    /// Nanoseconds since the clock started.
    pub fn mono_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Now {
        let mono_ns = self.mono_ns();
        Now { mono_ns, unix_ms: self.start_unix_ms + i64::try_from(mono_ns / 1_000_000).unwrap_or(i64::MAX) }
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    mono_ns: AtomicU64,
    unix_ms: AtomicI64,
}

impl ManualClock {
    /// A clock at this time.
    pub fn new(unix_ms: i64) -> Arc<Self> {
        Arc::new(Self { mono_ns: AtomicU64::new(0), unix_ms: AtomicI64::new(unix_ms) })
    }

    /// Moves it forward.
    pub fn advance_ms(&self, ms: u64) {
        self.mono_ns.fetch_add(ms * 1_000_000, Ordering::SeqCst);
        self.unix_ms.fetch_add(i64::try_from(ms).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Now {
        Now { mono_ns: self.mono_ns.load(Ordering::SeqCst), unix_ms: self.unix_ms.load(Ordering::SeqCst) }
    }
}

/// The UTC calendar date and time (year, month, day, hour, minute, second) of a Unix time in
/// ms: the proleptic Gregorian calendar, by the days-from-civil inverse (400-year eras of
/// 146 097 days, years starting in March so the leap day comes last).
pub(crate) fn civil_utc(unix_ms: i64) -> (i64, i64, i64, i64, i64, i64) {
    let seconds = unix_ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day, of_day / 3600, of_day % 3600 / 60, of_day % 60)
}
