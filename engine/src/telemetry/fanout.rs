//! The telemetry thread: aggregates fan-out timings into latency histograms and logs audit
//! records.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mirror_model::{AccountId, SignalId, SkipReason};
use rustc_hash::FxHashMap;

use super::{AuditFeed, AuditRecord, Stats, TelemetryBatch, TelemetryMsg};
use crate::account::AuditEvent;

/// One shard finished its part of a signal's fan-out: every follower order it made is in its
/// connector's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FanoutDone {
    /// The signal.
    pub signal: SignalId,
    /// The shard.
    pub shard: u16,
    /// How many shards the signal went to.
    pub parts: u16,
    /// Followers the shard handled.
    pub followers: u32,
    /// Orders it handed to connector queues.
    pub orders: u32,
    /// When the signal was accepted (monotonic ns).
    pub accepted_mono_ns: u64,
    /// When the shard handed its last order (monotonic ns).
    pub done_mono_ns: u64,
}

/// Percentiles of one latency distribution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub samples: u64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

impl LatencySummary {
    /// Percentiles of a histogram.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            samples: histogram.len(),
            p50_ns: histogram.value_at_quantile(0.50),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            max_ns: histogram.max(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Latencies over a sliding window: the current and the previous period.
#[derive(Debug)]
pub struct LatencyWindow {
    current: Histogram<u64>,
    previous: Histogram<u64>,
    period_ns: u64,
    started_ns: u64,
}

impl LatencyWindow {
    /// A window of two periods of `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            current: histogram(),
            previous: histogram(),
            period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
            started_ns: 0,
        }
    }

    /// Records a latency observed at `now_ns`.
    pub fn record(&mut self, now_ns: u64, value_ns: u64) {
        if now_ns.saturating_sub(self.started_ns) >= self.period_ns {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.reset();
            self.started_ns = now_ns;
        }
        self.current.saturating_record(value_ns.max(1));
    }

    /// Percentiles over both periods.
    pub fn summary(&self) -> LatencySummary {
        let mut both = self.previous.clone();
        both.add(&self.current).expect("same bounds");
        LatencySummary::of(&both)
    }
}

/// Largest number of multi-shard fan-outs waiting for their other parts.
const PARTIAL_FANOUTS_MAX: usize = 65_536;

#[derive(Clone, Copy)]
struct Partial {
    parts_seen: u16,
    done_max_ns: u64,
}

/// Audit buffers kept for reuse (beyond this, returned buffers are freed).
const POOLED_BUFFERS: usize = 64;

/// Where shards send their batches, and where they take emptied buffers back from.
#[derive(Clone, Debug)]
pub struct TelemetrySink {
    /// The telemetry thread's inbox.
    pub sender: flume::Sender<TelemetryMsg>,
    /// Emptied audit buffers, for reuse.
    pub pool: flume::Receiver<Vec<AuditRecord>>,
    /// Subscribers to the audit records the thread receives.
    pub feed: AuditFeed,
}

impl TelemetrySink {
    /// An empty buffer: a pooled one when there is one.
    pub fn buffer(&self) -> Vec<AuditRecord> {
        self.pool.try_recv().unwrap_or_else(|_| Vec::with_capacity(1_024))
    }
}

/// A running telemetry thread.
#[derive(Debug)]
pub struct TelemetryHandle {
    sink: TelemetrySink,
    latency: Arc<Mutex<LatencySummary>>,
    thread: Option<JoinHandle<()>>,
}

impl TelemetryHandle {
    /// Where shards send records.
    pub fn sink(&self) -> TelemetrySink {
        self.sink.clone()
    }

    /// Fan-out latency (signal accepted → every follower order handed to its connector
    /// queue) over the last window.
    pub fn fanout_latency(&self) -> LatencySummary {
        *self.latency.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The audit records the thread receives, for subscribers (the gateway's state streams).
    pub fn feed(&self) -> AuditFeed {
        self.sink.feed.clone()
    }

    /// Stops the thread once it has handled everything sent before.
    pub fn stop(mut self) {
        let _ = self.sink.sender.send(TelemetryMsg::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the telemetry thread. `names` gives account names for logs; `window` is the latency
/// window's period.
pub fn spawn_telemetry(
    names: FxHashMap<AccountId, Arc<str>>,
    stats: Arc<Stats>,
    capacity: usize,
    window: Duration,
    cores: crate::runtime::CorePlan,
) -> TelemetryHandle {
    let (sender, receiver) = flume::bounded(capacity);
    let (returned, pool) = flume::bounded(POOLED_BUFFERS);
    let latency = Arc::new(Mutex::new(LatencySummary::default()));
    let published = Arc::clone(&latency);
    let feed = AuditFeed::new(Arc::clone(&latency));
    let thread_feed = feed.clone();
    let thread = std::thread::Builder::new()
        .name("mirror-telemetry".into())
        .spawn(move || {
            cores.pin_io(0);
            run(receiver, returned, names, stats, window, published, thread_feed);
        })
        .expect("spawn the telemetry thread");
    TelemetryHandle { sink: TelemetrySink { sender, pool, feed }, latency, thread: Some(thread) }
}

fn run(
    inbox: flume::Receiver<TelemetryMsg>,
    returned: flume::Sender<Vec<AuditRecord>>,
    names: FxHashMap<AccountId, Arc<str>>,
    _stats: Arc<Stats>,
    window: Duration,
    published: Arc<Mutex<LatencySummary>>,
    feed: AuditFeed,
) {
    let start = Instant::now();
    let mut fanout = LatencyWindow::new(window);
    let mut partial: FxHashMap<SignalId, Partial> = FxHashMap::default();
    let mut last_publish = Instant::now();
    // The thread polls rather than waits on the channel: a sender that finds a waiting
    // receiver must wake it (a system call), and shards send a record per follower.
    loop {
        let mut handled = 0usize;
        loop {
            let message = match inbox.try_recv() {
                Ok(message) => message,
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    publish(&published, &fanout);
                    return;
                }
            };
            handled += 1;
            match message {
                TelemetryMsg::Batch(TelemetryBatch { mut audits, fanout: done }) => {
                    if let Some(done) = done {
                        let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        record_fanout(&mut fanout, &mut partial, now, done);
                    }
                    for record in &audits {
                        log_audit(record, &names);
                    }
                    feed.publish(&audits);
                    audits.clear();
                    // Back to the pool; when the pool is full the buffer is freed.
                    let _ = returned.try_send(audits);
                }
                TelemetryMsg::Refused { signal, reason } => {
                    tracing::warn!(%signal, %reason, "signal refused before fan-out");
                }
                TelemetryMsg::Signal(seen) => feed.publish_signal(seen),
                TelemetryMsg::Stop => {
                    publish(&published, &fanout);
                    return;
                }
            }
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            publish(&published, &fanout);
            last_publish = Instant::now();
        }
        if handled == 0 {
            std::thread::sleep(POLL_EVERY);
        }
    }
}

/// How long the telemetry thread sleeps when it finds nothing to do.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// How often the latency summary is published.
const PUBLISH_EVERY: Duration = Duration::from_millis(200);

fn publish(published: &Mutex<LatencySummary>, fanout: &LatencyWindow) {
    *published.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = fanout.summary();
}

fn record_fanout(fanout: &mut LatencyWindow, partial: &mut FxHashMap<SignalId, Partial>, now: u64, done: FanoutDone) {
    if done.parts <= 1 {
        fanout.record(now, done.done_mono_ns.saturating_sub(done.accepted_mono_ns));
        return;
    }
    let entry = partial.entry(done.signal).or_insert(Partial { parts_seen: 0, done_max_ns: 0 });
    entry.parts_seen += 1;
    entry.done_max_ns = entry.done_max_ns.max(done.done_mono_ns);
    if entry.parts_seen >= done.parts {
        let complete = partial.remove(&done.signal).expect("just updated");
        fanout.record(now, complete.done_max_ns.saturating_sub(done.accepted_mono_ns));
    } else if partial.len() > PARTIAL_FANOUTS_MAX {
        // A shard stopped reporting; forget the oldest signals.
        let oldest = *partial.keys().min().expect("not empty");
        partial.remove(&oldest);
    }
}

fn log_audit(record: &AuditRecord, names: &FxHashMap<AccountId, Arc<str>>) {
    let account = names.get(&record.account).map_or("?", |n| n.as_ref());
    let signal = record.audit.signal.map(|s| s.0).unwrap_or(0);
    let seq = record.seq;
    match &record.audit.event {
        AuditEvent::Copied { client_id, symbol, side, qty, kind, adjustment } => tracing::info!(
            seq, account, signal, %client_id, %symbol, %side, %qty, ?kind, ?adjustment, "copied"
        ),
        AuditEvent::Closing { client_id, position, qty } => {
            tracing::info!(seq, account, signal, %client_id, %position, %qty, "closing")
        }
        AuditEvent::Modifying { position, stop_loss, take_profit } => {
            tracing::info!(seq, account, signal, %position, ?stop_loss, ?take_profit, "modifying")
        }
        AuditEvent::Cancelling { client_id } => tracing::info!(seq, account, signal, %client_id, "cancelling"),
        // A close or modify for a leader position this follower never copied is routine.
        AuditEvent::Skipped { action, reason: reason @ SkipReason::NoCopy } => {
            tracing::debug!(seq, account, signal, action = action.as_ref(), %reason, "nothing to copy")
        }
        AuditEvent::Skipped { action, reason } => {
            tracing::info!(seq, account, signal, action = action.as_ref(), category = reason.category().name(), %reason, "skipped")
        }
        AuditEvent::Accepted { client_id, broker_id } => {
            tracing::debug!(seq, account, signal, %client_id, %broker_id, "accepted")
        }
        AuditEvent::Rejected { client_id, reason } => {
            tracing::warn!(seq, account, signal, %client_id, reason, "rejected by the broker")
        }
        AuditEvent::Resent { client_id, qty } => {
            tracing::info!(seq, account, signal, %client_id, %qty, "a close that never reached the broker, sent again")
        }
        AuditEvent::NeverSent { client_id } => {
            tracing::info!(seq, account, signal, %client_id, "never reached the broker (the engine stopped first)")
        }
        AuditEvent::OutcomeUnknown { client_id, error } => {
            tracing::warn!(seq, account, signal, %client_id, error, "outcome unknown; kept in flight")
        }
        AuditEvent::Filled { client_id, fill } => tracing::debug!(
            seq, account, signal, %client_id, qty = %fill.qty, price = %fill.price, position = %fill.position, "filled"
        ),
        AuditEvent::Cancelled { client_id } => tracing::info!(seq, account, signal, %client_id, "cancelled"),
        AuditEvent::Expired { client_id } => tracing::info!(seq, account, signal, %client_id, "expired"),
        AuditEvent::InvalidTransition { error } => {
            tracing::warn!(seq, account, signal, %error, "broker message refused by the order lifecycle")
        }
        AuditEvent::UnknownOrder { client_id } => {
            tracing::warn!(seq, account, signal, %client_id, "report for an order this account does not know")
        }
        AuditEvent::Position { effect } => tracing::debug!(
            seq, account, position = %effect.position.id, symbol = %effect.position.symbol,
            qty = %effect.position.qty, change = ?effect.change, pnl = %effect.realized_pnl, "position"
        ),
        AuditEvent::Led { action } => tracing::debug!(seq, account, action = action.name(), "leader traded"),
        AuditEvent::Breach { breach } => tracing::warn!(seq, account, %breach, "risk guard tripped"),
        AuditEvent::Mode { mode } => tracing::warn!(seq, account, %mode, "risk mode"),
        AuditEvent::Flattening { reason, positions, orders } => {
            tracing::warn!(seq, account, signal, ?reason, positions, orders, "flattening")
        }
        AuditEvent::Paused { scope, paused } => tracing::info!(seq, account, scope = scope.as_ref(), paused, "pause"),
        AuditEvent::Connection { state } => tracing::info!(seq, account, ?state, "connection"),
        AuditEvent::CommandFailed { command, error } => {
            tracing::warn!(seq, account, signal, command = command.as_ref(), error, "command failed")
        }
        AuditEvent::Corrected { client_id, symbol, qty } => tracing::warn!(
            seq, account, signal, %client_id, %symbol, %qty,
            "a close executed after the broker had closed the copy; taking the excess back off"
        ),
        AuditEvent::Drift { drift } => tracing::warn!(seq, account, signal, ?drift, "reconciliation: drift"),
        AuditEvent::Reconciled { positions, orders } => {
            tracing::info!(seq, account, positions, orders, "reconciled with the broker")
        }
        AuditEvent::NotSent { command } => {
            tracing::warn!(seq, account, signal, command = command.as_ref(), "connector queue full; command not sent")
        }
    }
}
