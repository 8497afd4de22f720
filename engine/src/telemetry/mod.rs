//! Telemetry: exact counters, fan-out latency, audit records, logs and the status line.
//!
//! Shards count into their own cache-line-aligned slots of atomic counters (exact, never lost,
//! and never contended between shards) and send audit records and fan-out timings, one batch
//! per message they handle, over one bounded channel to the telemetry thread, which logs and
//! aggregates them off the hot path. When that channel is full, the batch is dropped and the
//! drop counted; the counters stay exact. Emptied batches come back through a small pool, so
//! a shard does not allocate for them once warm.

mod fanout;
mod feed;
mod logging;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mirror_model::{AccountId, SKIP_CATEGORIES, Signal, SignalId, SkipCategory};

pub use fanout::{FanoutDone, LatencySummary, LatencyWindow, TelemetryHandle, TelemetrySink, spawn_telemetry};
pub use feed::{AuditBatch, AuditFeed, AuditSubscription, SignalSubscription};
pub use logging::{LogGuard, LoggingSettings, init_logging};
pub use status::{Console, ConsoleWriter, PostgresGauge, StatusLine};

use crate::account::{Audit, AuditEvent};

/// One audit record, numbered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    /// The shard that produced it.
    pub shard: u16,
    /// Sequence number within the shard: gap-free and ordered. All of an account's records
    /// come from its one shard, so they are totally ordered by it.
    pub seq: u64,
    /// Engine monotonic time, ns.
    pub mono_ns: u64,
    /// Account.
    pub account: AccountId,
    /// What happened.
    pub audit: Audit,
}

/// A signal as the engine took it (routed to its followers) or refused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalSeen {
    /// The signal.
    pub signal: Signal,
    /// Engine monotonic time when it was accepted (what fan-out latency is measured from), ns.
    pub mono_ns: u64,
    /// Why it was refused; `None` when it was taken.
    pub refused: Option<String>,
}

/// What a shard sends after handling one message.
#[derive(Clone, Debug, Default)]
pub struct TelemetryBatch {
    /// Audit records, in order.
    pub audits: Vec<AuditRecord>,
    /// The fan-out the message completed, if it carried a signal.
    pub fanout: Option<FanoutDone>,
}

/// What the telemetry thread receives.
#[derive(Clone, Debug)]
pub enum TelemetryMsg {
    /// A shard's batch.
    Batch(TelemetryBatch),
    /// A signal refused before fan-out.
    Refused {
        /// The signal.
        signal: SignalId,
        /// Why.
        reason: String,
    },
    /// A signal taken or refused, for the feed's signal subscribers (sent only while there
    /// are some).
    Signal(Box<SignalSeen>),
    /// Stop after everything sent before.
    Stop,
}

/// One counter of [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Signals accepted and fanned out.
    Signals,
    /// Signals refused before fan-out.
    SignalsRefused,
    /// Copy orders sent.
    Copies,
    /// Closing orders sent.
    Closes,
    /// Modifies sent.
    Modifies,
    /// Executions.
    Fills,
    /// Broker refusals.
    Rejects,
    /// Unknown outcomes.
    UnknownOutcomes,
    /// Equity guards tripped.
    Breaches,
    /// Refused lifecycle events.
    InvalidTransitions,
    /// Telemetry records dropped.
    TelemetryDropped,
    /// Cross-shard messages parked on a full mailbox.
    MailboxFull,
    /// Differences reconciliation found.
    Drifts,
}

const FIXED_COUNTERS: usize = 13;
const COUNTERS: usize = FIXED_COUNTERS + SKIP_CATEGORIES.len();
/// Slots: one per shard (up to 64) and one for everything else (ingress threads).
const SLOTS: usize = 65;
/// The slot of threads that are not shards.
pub const OUTSIDE_SLOT: usize = 64;

/// One thread's counters, on cache lines of their own.
#[repr(align(128))]
#[derive(Debug)]
struct Slot([AtomicU64; COUNTERS]);

impl Default for Slot {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

/// The counter an audit event adds to, if any.
fn counter_index(event: &AuditEvent) -> Option<usize> {
    let counter = match event {
        AuditEvent::Copied { .. } => Counter::Copies,
        AuditEvent::Closing { .. } => Counter::Closes,
        AuditEvent::Modifying { .. } => Counter::Modifies,
        AuditEvent::Filled { .. } => Counter::Fills,
        AuditEvent::Rejected { .. } => Counter::Rejects,
        AuditEvent::OutcomeUnknown { .. } => Counter::UnknownOutcomes,
        AuditEvent::Breach { .. } => Counter::Breaches,
        AuditEvent::InvalidTransition { .. } => Counter::InvalidTransitions,
        AuditEvent::Drift { .. } => Counter::Drifts,
        AuditEvent::Skipped { reason, .. } => {
            let category = reason.category();
            return SKIP_CATEGORIES.iter().position(|c| *c == category).map(|index| FIXED_COUNTERS + index);
        }
        _ => return None,
    };
    Some(counter as usize)
}

/// Counts gathered by one thread between two publications (a shard publishes once per
/// message it handles: one atomic add per counter that moved, not one per follower).
#[derive(Debug)]
pub struct LocalCounts([u64; COUNTERS]);

impl Default for LocalCounts {
    fn default() -> Self {
        Self([0; COUNTERS])
    }
}

impl LocalCounts {
    /// Counts what an audit event says happened.
    pub fn count(&mut self, event: &AuditEvent) {
        if let Some(index) = counter_index(event) {
            self.0[index] += 1;
        }
    }

    /// Adds `n` to a counter.
    pub fn add(&mut self, counter: Counter, n: u64) {
        self.0[counter as usize] += n;
    }

    /// Adds everything counted to `slot` of `stats` and starts again from zero.
    pub fn publish(&mut self, stats: &Stats, slot: usize) {
        let target = stats.slot(slot);
        for (count, counter) in self.0.iter_mut().zip(&target.0) {
            if *count > 0 {
                counter.fetch_add(*count, Ordering::Relaxed);
                *count = 0;
            }
        }
    }
}

/// Exact counters of everything the engine did.
#[derive(Debug)]
pub struct Stats {
    slots: Box<[Slot]>,
}

impl Default for Stats {
    fn default() -> Self {
        Self { slots: (0..SLOTS).map(|_| Slot::default()).collect() }
    }
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
    /// Reconciliation differences.
    pub drifts: u64,
}

impl StatsSnapshot {
    /// All skips.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().sum()
    }

    /// Skips of one category.
    pub fn skipped(&self, category: SkipCategory) -> u64 {
        SKIP_CATEGORIES.iter().position(|c| *c == category).map_or(0, |i| self.skipped[i])
    }
}

impl Stats {
    /// A shared, zeroed set of counters.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn slot(&self, slot: usize) -> &Slot {
        &self.slots[slot.min(OUTSIDE_SLOT)]
    }

    /// Adds `n` to a counter of a slot (a shard's index, or [`OUTSIDE_SLOT`]).
    pub fn add(&self, slot: usize, counter: Counter, n: u64) {
        self.slot(slot).0[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts what an audit event says happened.
    pub fn count(&self, slot: usize, event: &AuditEvent) {
        if let Some(index) = counter_index(event) {
            self.slot(slot).0[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Reads every counter, summed over the slots.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut sums = [0u64; COUNTERS];
        for slot in self.slots.iter() {
            for (sum, counter) in sums.iter_mut().zip(&slot.0) {
                *sum += counter.load(Ordering::Relaxed);
            }
        }
        let get = |counter: Counter| sums[counter as usize];
        StatsSnapshot {
            signals: get(Counter::Signals),
            signals_refused: get(Counter::SignalsRefused),
            copies: get(Counter::Copies),
            closes: get(Counter::Closes),
            modifies: get(Counter::Modifies),
            fills: get(Counter::Fills),
            rejects: get(Counter::Rejects),
            unknown_outcomes: get(Counter::UnknownOutcomes),
            skipped: std::array::from_fn(|i| sums[FIXED_COUNTERS + i]),
            breaches: get(Counter::Breaches),
            invalid_transitions: get(Counter::InvalidTransitions),
            telemetry_dropped: get(Counter::TelemetryDropped),
            mailbox_full: get(Counter::MailboxFull),
            drifts: get(Counter::Drifts),
        }
    }
}
