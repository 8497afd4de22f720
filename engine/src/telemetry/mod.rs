//! Telemetry: exact counters, fan-out latency, audit records, logs and the status line.
//!
//! Shards count into atomics (exact, never lost) and send audit records and fan-out timings
//! over one bounded channel to the telemetry thread, which logs and aggregates them off the
//! hot path. When that channel is full, records are dropped and the drop is counted; the
//! counters stay exact.

mod fanout;
mod logging;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mirror_model::{AccountId, SKIP_CATEGORIES, SignalId, SkipCategory};

pub use fanout::{FanoutDone, LatencySummary, LatencyWindow, TelemetryHandle, spawn_telemetry};
pub use logging::{LogGuard, LoggingSettings, init_logging};
pub use status::{Console, ConsoleWriter, StatusLine};

use crate::account::{Audit, AuditEvent};

/// One audit record, numbered.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditRecord {
    /// Global sequence number.
    pub seq: u64,
    /// Engine monotonic time, ns.
    pub mono_ns: u64,
    /// Account.
    pub account: AccountId,
    /// What happened.
    pub audit: Audit,
}

/// What shards send to the telemetry thread.
#[derive(Clone, Debug)]
pub enum TelemetryMsg {
    /// An audit record.
    Audit(AuditRecord),
    /// A shard finished its part of a signal's fan-out.
    Fanout(FanoutDone),
    /// Stop after everything sent before.
    Stop,
    /// A signal refused before fan-out.
    Refused {
        /// The signal.
        signal: SignalId,
        /// Why.
        reason: String,
    },
}

/// Exact counters of everything the engine did.
#[derive(Debug, Default)]
pub struct Stats {
    /// Signals accepted and fanned out.
    pub signals: AtomicU64,
    /// Signals refused before fan-out (invalid).
    pub signals_refused: AtomicU64,
    /// Copy orders sent.
    pub copies: AtomicU64,
    /// Closing orders sent.
    pub closes: AtomicU64,
    /// SL/TP modifies sent.
    pub modifies: AtomicU64,
    /// Executions received.
    pub fills: AtomicU64,
    /// Orders refused by brokers.
    pub rejects: AtomicU64,
    /// Orders whose outcome is unknown.
    pub unknown_outcomes: AtomicU64,
    /// Skips by category (index of [`SKIP_CATEGORIES`]).
    pub skipped: [AtomicU64; SKIP_CATEGORIES.len()],
    /// Equity guards tripped.
    pub breaches: AtomicU64,
    /// Broker messages the order lifecycle refused.
    pub invalid_transitions: AtomicU64,
    /// Audit records dropped because telemetry was behind.
    pub telemetry_dropped: AtomicU64,
    /// Cross-shard messages parked because the target mailbox was full.
    pub mailbox_full: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    /// Signals fanned out.
    pub signals: u64,
    /// Signals refused.
    pub signals_refused: u64,
    /// Copy orders sent.
    pub copies: u64,
    /// Closing orders sent.
    pub closes: u64,
    /// Modifies sent.
    pub modifies: u64,
    /// Executions.
    pub fills: u64,
    /// Broker refusals.
    pub rejects: u64,
    /// Unknown outcomes.
    pub unknown_outcomes: u64,
    /// Skips by category.
    pub skipped: [u64; SKIP_CATEGORIES.len()],
    /// Guards tripped.
    pub breaches: u64,
    /// Refused lifecycle events.
    pub invalid_transitions: u64,
    /// Dropped telemetry records.
    pub telemetry_dropped: u64,
    /// Mailbox-full events.
    pub mailbox_full: u64,
}

impl StatsSnapshot {
    /// All skips.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Skips of one category.
    pub fn skipped(&self, category: SkipCategory) -> u64 {
        SKIP_CATEGORIES
            .iter()
            .position(|c| *c == category)
            .map_or(0, |i| self.skipped[i])
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// A shared, zeroed set of counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts what an audit event says happened.
    pub fn count(&self, event: &AuditEvent) {
        match event {
            AuditEvent::Copied { .. } => bump(&self.copies),
            AuditEvent::Closing { .. } => bump(&self.closes),
            AuditEvent::Modifying { .. } => bump(&self.modifies),
            AuditEvent::Filled { .. } => bump(&self.fills),
            AuditEvent::Rejected { .. } => bump(&self.rejects),
            AuditEvent::OutcomeUnknown { .. } => bump(&self.unknown_outcomes),
            AuditEvent::Skipped { reason, .. } => {
                let category = reason.category();
                if let Some(index) = SKIP_CATEGORIES.iter().position(|c| *c == category) {
                    bump(&self.skipped[index]);
                }
            }
            AuditEvent::Breach { .. } => bump(&self.breaches),
            AuditEvent::InvalidTransition { .. } => bump(&self.invalid_transitions),
            _ => {}
        }
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            signals: load(&self.signals),
            signals_refused: load(&self.signals_refused),
            copies: load(&self.copies),
            closes: load(&self.closes),
            modifies: load(&self.modifies),
            fills: load(&self.fills),
            rejects: load(&self.rejects),
            unknown_outcomes: load(&self.unknown_outcomes),
            skipped: std::array::from_fn(|i| load(&self.skipped[i])),
            breaches: load(&self.breaches),
            invalid_transitions: load(&self.invalid_transitions),
            telemetry_dropped: load(&self.telemetry_dropped),
            mailbox_full: load(&self.mailbox_full),
        }
    }
}
