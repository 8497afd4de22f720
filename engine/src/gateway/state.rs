//! State streams: one hub task folds the engine's audit records and account polls into a
//! replica of the state (accounts, positions, orders, fills, copy status, counters) and into
//! numbered deltas; every subscriber gets a snapshot of the replica, then the deltas after it.
//!
//! Queues and their policies:
//! - engine → hub: the audit feed's bounded queue ([`super::GatewayLimits::audit_queue`]
//!   batches). The telemetry thread never waits on it; what does not fit is counted as lost,
//!   and the hub then re-reads the accounts and sends every subscriber a fresh snapshot
//!   (`Resync`).
//! - hub → subscriber: a bounded queue per subscriber
//!   ([`super::GatewayLimits::subscriber_queue`] batches). The hub never waits on it: a
//!   subscriber whose queue is full is dropped from the broadcast and, once it has written what
//!   it holds, starts again from a fresh snapshot (`Lagged`). Batches waiting when a
//!   subscriber gets to write are coalesced into one frame.
//! - Deltas are numbered without gaps within an epoch (one per hub start) and the last
//!   [`super::GatewayLimits::resume_window`] are kept, so a client that reconnects resumes
//!   exactly after the last number it holds: no gap, no duplicate.
//! - connectors → hub: the engine's [`crate::market::QuoteBoard`], which keeps only the latest
//!   quote of each account and symbol. Every [`super::GatewayLimits::quote_interval`] the hub
//!   takes the quotes that changed since its last look and publishes them as `Quote` deltas,
//!   one per account and symbol at most: a fast market costs subscribers a bounded rate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_model::{AccountId, ClientOrderId, Origin, Position, PositionChange, SignalAction};
use mirror_wire::proto::{
    AccountState, CopyState, CopyStatus, Delta, DeltaEvent, Deltas, FillState, LatencyStats, LogLevel, LogLine,
    OrderState, OrderStatus, Percentiles, PositionState, Quote, ResumeFrom, SignalState, Snapshot, SnapshotReason,
    StateFrame, Subscribe, stream_code, topics,
};
use rustc_hash::FxHashMap;
use tokio::sync::{oneshot, watch};

use super::io::write_frame;
use super::{Context, GatewayLimits};
use crate::account::AuditEvent;
use crate::runtime::{AccountView, EngineHandle};
use crate::telemetry::{AuditRecord, LatencySummary, SignalSeen};

/// A batch of numbered deltas, contiguous, shared by every subscriber.
pub(crate) type Batch = Arc<Vec<Delta>>;

/// Events per state frame at most (a frame stays well under the frame limit).
const EVENTS_PER_FRAME: usize = 4_096;

/// Subscription requests waiting for the hub.
const HUB_REQUESTS: usize = 256;

const LIVE: u8 = 0;
const LAGGED: u8 = 1;
const RESYNC: u8 = 2;

/// Where a subscriber starts.
pub(crate) enum Start {
    /// From this snapshot.
    Snapshot(Box<Snapshot>),
    /// From these deltas (after the subscriber's last number).
    Replay(Vec<Delta>),
}

/// A subscriber's registration with the hub.
pub(crate) struct Registration {
    pub(crate) start: Start,
    /// The number the start brings the subscriber to.
    pub(crate) seq: u64,
    pub(crate) live: flume::Receiver<Batch>,
    /// Why the hub dropped this subscriber from the broadcast, if it did.
    dropped: Arc<AtomicU8>,
}

impl Registration {
    /// Why the hub stopped sending to this subscriber (its queue closed): it lagged, or the
    /// hub lost records; `None` when the hub itself stopped.
    pub(crate) fn restart_reason(&self) -> Option<SnapshotReason> {
        match self.dropped.load(Ordering::Acquire) {
            LAGGED => Some(SnapshotReason::Lagged),
            RESYNC => Some(SnapshotReason::Resync),
            _ => None,
        }
    }
}

struct HubRequest {
    resume: Option<ResumeFrom>,
    reason: SnapshotReason,
    reply: oneshot::Sender<Registration>,
}

/// How the gateway's tasks reach the hub.
#[derive(Clone)]
pub(crate) struct HubHandle {
    epoch: u64,
    requests: flume::Sender<HubRequest>,
}

impl HubHandle {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Registers a subscriber: a snapshot, or the deltas after `resume` when they are kept.
    pub(crate) async fn subscribe(&self, resume: Option<ResumeFrom>, reason: SnapshotReason) -> Option<Registration> {
        let (reply, answer) = oneshot::channel();
        self.requests.send_async(HubRequest { resume, reason, reply }).await.ok()?;
        answer.await.ok()
    }
}

struct Subscriber {
    sender: flume::Sender<Batch>,
    dropped: Arc<AtomicU8>,
}

/// The state as the deltas so far leave it.
#[derive(Default)]
struct Replica {
    accounts: BTreeMap<u32, AccountState>,
    positions: BTreeMap<(u32, u64), PositionState>,
    live_orders: BTreeMap<ClientOrderId, OrderState>,
    finished_orders: VecDeque<OrderState>,
    fills: VecDeque<FillState>,
    copy: BTreeMap<u32, CopyStatus>,
    latency: LatencyStats,
    quotes: BTreeMap<(u32, String), Quote>,
    names: FxHashMap<AccountId, Arc<str>>,
    recent_kept: usize,
}

fn terminal(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::Filled
            | OrderStatus::Rejected
            | OrderStatus::Cancelled
            | OrderStatus::Expired
            | OrderStatus::NotSent
    )
}

fn push_bounded<T>(queue: &mut VecDeque<T>, value: T, max: usize) {
    queue.push_back(value);
    while queue.len() > max.max(1) {
        queue.pop_front();
    }
}

fn position_state(account: AccountId, position: &Position, open: bool) -> PositionState {
    PositionState {
        account: account.0,
        id: position.id.0,
        symbol: position.symbol.as_str().to_owned(),
        side: position.side.into(),
        qty: position.qty.raw(),
        open_price: position.open_price.raw(),
        stop_loss: position.stop_loss.map(|p| p.raw()),
        take_profit: position.take_profit.map(|p| p.raw()),
        open,
    }
}

fn account_state(view: &AccountView) -> AccountState {
    let summary = &view.summary;
    AccountState {
        id: view.id.0,
        name: view.name.to_string(),
        balance: summary.balance.raw(),
        equity: summary.equity.raw(),
        positions: u32::try_from(summary.positions).unwrap_or(u32::MAX),
        live_orders: u32::try_from(summary.live_orders).unwrap_or(u32::MAX),
        mode: summary.mode.to_string(),
        paused: summary.paused,
        connected: summary.connected,
    }
}

fn percentiles(summary: LatencySummary) -> Percentiles {
    Percentiles {
        samples: summary.samples,
        p50_ns: summary.p50_ns,
        p99_ns: summary.p99_ns,
        p999_ns: summary.p999_ns,
        max_ns: summary.max_ns,
    }
}

impl Replica {
    fn apply(&mut self, event: &DeltaEvent) {
        match event {
            DeltaEvent::Account(account) => {
                self.accounts.insert(account.id, account.clone());
            }
            DeltaEvent::Position(position) => {
                let key = (position.account, position.id);
                if position.open {
                    self.positions.insert(key, position.clone());
                } else {
                    self.positions.remove(&key);
                }
            }
            DeltaEvent::Order(order) => {
                let Ok(id) = order.client_id.parse::<ClientOrderId>() else { return };
                if terminal(order.status) {
                    self.live_orders.remove(&id);
                    push_bounded(&mut self.finished_orders, order.clone(), self.recent_kept);
                } else {
                    self.live_orders.insert(id, order.clone());
                }
            }
            DeltaEvent::Fill(fill) => push_bounded(&mut self.fills, fill.clone(), self.recent_kept),
            DeltaEvent::Copy(copy) => {
                self.copy.insert(copy.account, copy.clone());
            }
            DeltaEvent::Latency(latency) => self.latency = *latency,
            DeltaEvent::Quote(quote) => {
                self.quotes.insert((quote.account, quote.symbol.clone()), quote.clone());
            }
            // Events only: a snapshot carries what became of signals (copies), not the signals.
            DeltaEvent::Log(_) | DeltaEvent::Signal(_) => {}
        }
    }

    fn snapshot(&self, epoch: u64, seq: u64, reason: SnapshotReason) -> Snapshot {
        let mut orders: Vec<OrderState> = self.live_orders.values().cloned().collect();
        orders.extend(self.finished_orders.iter().cloned());
        Snapshot {
            epoch,
            seq,
            reason,
            accounts: self.accounts.values().cloned().collect(),
            positions: self.positions.values().cloned().collect(),
            orders,
            fills: self.fills.iter().cloned().collect(),
            copy: self.copy.values().cloned().collect(),
            latency: self.latency,
            quotes: self.quotes.values().cloned().collect(),
        }
    }

    /// What an account poll changed: accounts, and (on a resync) positions.
    fn poll_events(&mut self, views: &[AccountView], positions: bool, out: &mut Vec<DeltaEvent>) {
        for view in views {
            self.names.insert(view.id, Arc::clone(&view.name));
            let state = account_state(view);
            if self.accounts.get(&state.id) != Some(&state) {
                out.push(DeltaEvent::Account(state));
            }
            if !positions {
                continue;
            }
            let account = view.id.0;
            let held: Vec<PositionState> = view.positions.iter().map(|p| position_state(view.id, p, true)).collect();
            for stale in self.positions.range((account, 0)..=(account, u64::MAX)) {
                if !held.iter().any(|p| p.id == stale.0.1) {
                    out.push(DeltaEvent::Position(PositionState { open: false, ..stale.1.clone() }));
                }
            }
            for position in held {
                if self.positions.get(&(account, position.id)) != Some(&position) {
                    out.push(DeltaEvent::Position(position));
                }
            }
        }
    }

    fn order_event(&self, id: ClientOrderId, change: impl FnOnce(&mut OrderState)) -> Option<DeltaEvent> {
        let mut order = self.live_orders.get(&id)?.clone();
        change(&mut order);
        Some(DeltaEvent::Order(order))
    }

    /// What one audit record changed.
    fn audit_events(&self, record: &AuditRecord, out: &mut Vec<DeltaEvent>) {
        let account = record.account;
        let signal = record.audit.signal.map_or(0, |s| s.0);
        let copy = |state: CopyState, detail: String| {
            DeltaEvent::Copy(CopyStatus { account: account.0, signal, state, detail })
        };
        let status = |id: ClientOrderId, status: OrderStatus, reason: &str| {
            self.order_event(id, |order| {
                order.status = status;
                order.reason = reason.to_owned();
            })
        };
        match &record.audit.event {
            AuditEvent::Copied { client_id, symbol, side, qty, .. } => {
                out.push(DeltaEvent::Order(OrderState {
                    account: account.0,
                    client_id: client_id.to_string(),
                    signal: client_id.signal.0,
                    symbol: symbol.as_str().to_owned(),
                    side: Some((*side).into()),
                    position: None,
                    qty: qty.raw(),
                    filled: 0,
                    status: OrderStatus::Submitted,
                    reason: String::new(),
                }));
                out.push(copy(CopyState::Copied, client_id.to_string()));
            }
            AuditEvent::Closing { client_id, position, qty } => {
                let symbol = self.positions.get(&(account.0, position.0)).map(|p| p.symbol.clone()).unwrap_or_default();
                out.push(DeltaEvent::Order(closing_order(account, *client_id, symbol, Some(position.0), qty.raw())));
                out.push(copy(CopyState::Closing, client_id.to_string()));
            }
            AuditEvent::Corrected { client_id, symbol, qty } => {
                let symbol = symbol.as_str().to_owned();
                out.push(DeltaEvent::Order(closing_order(account, *client_id, symbol, None, qty.raw())));
            }
            AuditEvent::Resent { client_id, .. } => out.extend(status(*client_id, OrderStatus::Submitted, "")),
            AuditEvent::Accepted { client_id, .. } => out.extend(status(*client_id, OrderStatus::Accepted, "")),
            AuditEvent::Rejected { client_id, reason } => {
                out.extend(status(*client_id, OrderStatus::Rejected, reason));
                out.push(copy(CopyState::Rejected, reason.clone()));
            }
            AuditEvent::NeverSent { client_id } => out.extend(status(*client_id, OrderStatus::NotSent, "never sent")),
            AuditEvent::OutcomeUnknown { client_id, error } => {
                out.extend(status(*client_id, OrderStatus::Unknown, error));
            }
            AuditEvent::Cancelled { client_id } => out.extend(status(*client_id, OrderStatus::Cancelled, "")),
            AuditEvent::Expired { client_id } => out.extend(status(*client_id, OrderStatus::Expired, "")),
            AuditEvent::Filled { client_id, fill } => {
                out.push(DeltaEvent::Fill(FillState {
                    account: account.0,
                    client_id: client_id.to_string(),
                    signal: client_id.signal.0,
                    qty: fill.qty.raw(),
                    price: fill.price.raw(),
                    position: fill.position.0,
                    mono_ns: record.mono_ns,
                }));
                out.extend(self.order_event(*client_id, |order| {
                    order.filled = order.filled.saturating_add(fill.qty.raw());
                    order.status =
                        if order.filled >= order.qty { OrderStatus::Filled } else { OrderStatus::PartlyFilled };
                }));
                out.push(copy(CopyState::Filled, client_id.to_string()));
            }
            AuditEvent::Skipped { reason, .. } => out.push(copy(CopyState::Skipped, reason.to_string())),
            AuditEvent::Position { effect } => {
                let open = !matches!(effect.change, PositionChange::Closed { .. });
                out.push(DeltaEvent::Position(position_state(account, &effect.position, open)));
            }
            _ => {}
        }
        let (level, text) = describe(&record.audit.event);
        let name = self.names.get(&account).map_or("?", |n| n.as_ref());
        out.push(DeltaEvent::Log(LogLine {
            level,
            account: account.0,
            signal,
            text: format!("{name}: {text}"),
            mono_ns: record.mono_ns,
        }));
    }
}

fn closing_order(account: AccountId, id: ClientOrderId, symbol: String, position: Option<u64>, qty: i64) -> OrderState {
    OrderState {
        account: account.0,
        client_id: id.to_string(),
        signal: id.signal.0,
        symbol,
        side: None,
        position,
        qty,
        filled: 0,
        status: OrderStatus::Submitted,
        reason: String::new(),
    }
}

/// A log line for an audit record.
fn describe(event: &AuditEvent) -> (LogLevel, String) {
    use LogLevel::{Debug, Info, Warn};
    match event {
        AuditEvent::Copied { client_id, symbol, side, qty, .. } => {
            (Info, format!("copied {side} {qty} {symbol} as {client_id}"))
        }
        AuditEvent::Closing { client_id, position, qty } => {
            (Info, format!("closing {qty} of {position} ({client_id})"))
        }
        AuditEvent::Modifying { position, .. } => (Info, format!("modifying {position}")),
        AuditEvent::Cancelling { client_id } => (Info, format!("cancelling {client_id}")),
        AuditEvent::Skipped { action, reason } => (Info, format!("skipped {action}: {reason}")),
        AuditEvent::Accepted { client_id, broker_id } => (Debug, format!("{client_id} accepted as {broker_id}")),
        AuditEvent::Rejected { client_id, reason } => (Warn, format!("{client_id} rejected: {reason}")),
        AuditEvent::NeverSent { client_id } => (Info, format!("{client_id} never reached the broker")),
        AuditEvent::Resent { client_id, qty } => (Info, format!("{client_id} sent again ({qty})")),
        AuditEvent::OutcomeUnknown { client_id, error } => (Warn, format!("{client_id} outcome unknown: {error}")),
        AuditEvent::Filled { client_id, fill } => (Debug, format!("{client_id} filled {} at {}", fill.qty, fill.price)),
        AuditEvent::Cancelled { client_id } => (Info, format!("{client_id} cancelled")),
        AuditEvent::Expired { client_id } => (Info, format!("{client_id} expired")),
        AuditEvent::InvalidTransition { error } => (Warn, format!("refused by the order lifecycle: {error}")),
        AuditEvent::UnknownOrder { client_id } => (Warn, format!("report for unknown order {client_id}")),
        AuditEvent::Position { effect } => (
            Debug,
            format!(
                "position {} {} {} ({:?})",
                effect.position.id, effect.position.symbol, effect.position.qty, effect.change
            ),
        ),
        AuditEvent::Led { action } => (Debug, format!("led {}", action.name())),
        AuditEvent::Breach { breach } => (Warn, format!("risk guard tripped: {breach}")),
        AuditEvent::Mode { mode } => (Warn, format!("risk mode {mode}")),
        AuditEvent::Flattening { reason, positions, orders } => {
            (Warn, format!("flattening ({reason:?}): {positions} positions, {orders} orders"))
        }
        AuditEvent::Paused { scope, paused } => {
            (Info, format!("{scope} {}", if *paused { "paused" } else { "resumed" }))
        }
        AuditEvent::Connection { state } => (Info, format!("connection {state:?}")),
        AuditEvent::CommandFailed { command, error } => (Warn, format!("{command} failed: {error}")),
        AuditEvent::Corrected { client_id, symbol, qty } => {
            (Warn, format!("taking back {qty} {symbol} closed twice ({client_id})"))
        }
        AuditEvent::Drift { drift } => (Warn, format!("reconciliation drift: {drift:?}")),
        AuditEvent::Reconciled { positions, orders } => {
            (Info, format!("reconciled: {positions} positions, {orders} orders"))
        }
        AuditEvent::NotSent { command } => (Warn, format!("{command} not sent: connector queue full")),
    }
}

struct Hub {
    engine: EngineHandle,
    limits: GatewayLimits,
    epoch: u64,
    seq: u64,
    ring: VecDeque<Delta>,
    replica: Replica,
    subscribers: Vec<Subscriber>,
    /// Numbered deltas not yet handed to subscribers.
    pending: Vec<Delta>,
    /// The quote board's change number the hub has published up to.
    quotes_seen: u64,
}

impl Hub {
    /// Numbers `events`, applies them to the replica and keeps them for resumes; they go to
    /// subscribers at the next [`Hub::flush`].
    fn stage(&mut self, events: Vec<DeltaEvent>) {
        for event in events {
            self.seq += 1;
            self.replica.apply(&event);
            let delta = Delta { seq: self.seq, event };
            push_bounded(&mut self.ring, delta.clone(), self.limits.resume_window);
            self.pending.push(delta);
        }
    }

    /// Hands the staged deltas to every subscriber, as one batch, without waiting.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch: Batch = Arc::new(std::mem::take(&mut self.pending));
        self.subscribers.retain(|subscriber| match subscriber.sender.try_send(Arc::clone(&batch)) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                subscriber.dropped.store(LAGGED, Ordering::Release);
                false
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        });
    }

    fn commit(&mut self, events: Vec<DeltaEvent>) {
        self.stage(events);
        self.flush();
    }

    fn register(&mut self, request: HubRequest) {
        self.flush();
        let kept = |resume: &ResumeFrom| {
            resume.epoch == self.epoch
                && resume.seq <= self.seq
                && (resume.seq == self.seq || self.ring.front().is_some_and(|first| first.seq <= resume.seq + 1))
        };
        let (start, reason) = match request.resume {
            Some(resume) if kept(&resume) => {
                let replay: Vec<Delta> = self.ring.iter().filter(|d| d.seq > resume.seq).cloned().collect();
                (Some(Start::Replay(replay)), request.reason)
            }
            Some(_) => (None, SnapshotReason::ResumeUnavailable),
            None => (None, request.reason),
        };
        let start =
            start.unwrap_or_else(|| Start::Snapshot(Box::new(self.replica.snapshot(self.epoch, self.seq, reason))));
        let (sender, live) = flume::bounded(self.limits.subscriber_queue.max(1));
        let dropped = Arc::new(AtomicU8::new(LIVE));
        self.subscribers.push(Subscriber { sender, dropped: Arc::clone(&dropped) });
        let _ = request.reply.send(Registration { start, seq: self.seq, live, dropped });
    }

    /// Records were lost between the engine and the hub: re-read accounts and positions and
    /// start every subscriber again from a snapshot.
    async fn resync(&mut self, lost: u64) {
        tracing::warn!(lost, "gateway: audit records lost; subscribers get a fresh snapshot");
        let mut events = vec![DeltaEvent::Log(LogLine {
            level: LogLevel::Warn,
            account: 0,
            signal: 0,
            text: format!("gateway: {lost} audit records lost; state re-read from the engine"),
            mono_ns: self.engine.clock().now().mono_ns,
        })];
        if let Some(views) = self.read_accounts().await {
            self.replica.poll_events(&views, true, &mut events);
        }
        self.commit(events);
        for subscriber in self.subscribers.drain(..) {
            subscriber.dropped.store(RESYNC, Ordering::Release);
        }
    }

    async fn read_accounts(&self) -> Option<Vec<AccountView>> {
        let engine = self.engine.clone();
        let call = tokio::task::spawn_blocking(move || engine.accounts());
        match tokio::time::timeout(self.limits.submit_timeout, call).await {
            Ok(Ok(Ok(views))) => Some(views),
            Ok(Ok(Err(error))) => {
                tracing::debug!(%error, "gateway: could not read the accounts");
                None
            }
            _ => {
                tracing::warn!("gateway: the engine did not answer an account poll in time");
                None
            }
        }
    }

    /// The quotes that changed on the board since the last call, one per account and symbol.
    fn quote_events(&mut self) -> Vec<DeltaEvent> {
        let mut changed = Vec::new();
        self.quotes_seen = self.engine.quote_board().changed_since(self.quotes_seen, &mut changed);
        changed
            .into_iter()
            .map(|(account, symbol, quote)| Quote {
                account: account.0,
                symbol: symbol.as_str().to_owned(),
                bid: quote.bid.raw(),
                ask: quote.ask.raw(),
                time_unix_ms: quote.time_unix_ms,
            })
            .filter(|quote| {
                let held = self.replica.quotes.get(&(quote.account, quote.symbol.clone()));
                held.is_none_or(|held| (held.bid, held.ask) != (quote.bid, quote.ask))
            })
            .map(DeltaEvent::Quote)
            .collect()
    }

    fn stats_events(&self, feed: Option<&crate::telemetry::AuditFeed>) -> Vec<DeltaEvent> {
        let latency = latency_stats(&self.engine, feed);
        if latency == self.replica.latency { Vec::new() } else { vec![DeltaEvent::Latency(latency)] }
    }
}

/// A signal taken or refused, as the state streams carry it.
fn signal_state(seen: &SignalSeen) -> SignalState {
    let signal = &seen.signal;
    let (leader_account, source) = match signal.origin {
        Origin::Account(account) => (account.0, 0),
        Origin::Source(source) => (0, source.0),
    };
    let (symbol, side, qty) = match &signal.action {
        SignalAction::Open(open) => (open.symbol.as_str().to_owned(), Some(open.side.into()), open.qty.raw()),
        SignalAction::PartialClose { closed_qty, .. } => (String::new(), None, closed_qty.raw()),
        SignalAction::CloseAll { symbol } => (symbol.map(|s| s.as_str().to_owned()).unwrap_or_default(), None, 0),
        _ => (String::new(), None, 0),
    };
    SignalState {
        signal: signal.id.0,
        leader_account,
        source,
        action: signal.action.name().to_owned(),
        symbol,
        side,
        qty,
        position: signal.action.leader().map_or(0, |leader| leader.0),
        note: signal.note.clone(),
        created_unix_ms: signal.created_unix_ms,
        mono_ns: seen.mono_ns,
        refused: seen.refused.clone().unwrap_or_default(),
    }
}

/// The engine's counters and fan-out latency now.
pub(crate) fn latency_stats(engine: &EngineHandle, feed: Option<&crate::telemetry::AuditFeed>) -> LatencyStats {
    let stats = engine.stats();
    LatencyStats {
        fanout: feed.map(|f| percentiles(f.fanout_latency())).unwrap_or_default(),
        signals: stats.signals,
        copies: stats.copies,
        closes: stats.closes,
        fills: stats.fills,
        rejects: stats.rejects,
        skipped: stats.skipped_total(),
        telemetry_dropped: stats.telemetry_dropped,
    }
}

/// Starts the hub task.
pub(crate) fn spawn_hub(
    engine: EngineHandle,
    limits: GatewayLimits,
    shutdown: watch::Receiver<bool>,
) -> (HubHandle, tokio::task::JoinHandle<()>) {
    let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(1));
    let (requests, inbox) = flume::bounded(HUB_REQUESTS);
    let hub = Hub {
        engine,
        replica: Replica { recent_kept: limits.recent_kept, ..Replica::default() },
        limits,
        epoch,
        seq: 0,
        ring: VecDeque::new(),
        subscribers: Vec::new(),
        pending: Vec::new(),
        quotes_seen: 0,
    };
    let task = tokio::spawn(run_hub(hub, inbox, shutdown));
    (HubHandle { epoch, requests }, task)
}

async fn run_hub(mut hub: Hub, inbox: flume::Receiver<HubRequest>, mut shutdown: watch::Receiver<bool>) {
    let feed = hub.engine.audit_feed();
    let audits = feed.as_ref().map(|feed| feed.subscribe(hub.limits.audit_queue));
    let signals = feed.as_ref().map(|feed| feed.subscribe_signals(hub.limits.audit_queue));
    if audits.is_none() {
        tracing::warn!("gateway: the engine has no telemetry; state streams carry account polls only");
    }
    let mut events = Vec::new();
    if let Some(views) = hub.read_accounts().await {
        hub.replica.poll_events(&views, true, &mut events);
    }
    hub.commit(std::mem::take(&mut events));
    let mut poll = tokio::time::interval(hub.limits.account_poll.max(Duration::from_millis(10)));
    let mut stats = tokio::time::interval(hub.limits.stats_interval.max(Duration::from_millis(10)));
    let mut quotes = tokio::time::interval(hub.limits.quote_interval.max(Duration::from_millis(10)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    quotes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            request = inbox.recv_async() => match request {
                Ok(request) => hub.register(request),
                Err(_) => return,
            },
            // Before the audits: a signal's own event comes before what its followers did.
            seen = async { signals.as_ref()?.recv().await }, if signals.is_some() => {
                let Some(seen) = seen else { return };
                let lost = signals.as_ref().map_or(0, |s| s.take_lost());
                if lost > 0 {
                    tracing::warn!(lost, "gateway: signal events lost (the hub fell behind); their copies still come");
                }
                hub.commit(vec![DeltaEvent::Signal(signal_state(&seen))]);
            }
            batch = async { audits.as_ref()?.recv().await }, if audits.is_some() => {
                let Some(batch) = batch else { return };
                let lost = audits.as_ref().map_or(0, |a| a.take_lost());
                for record in batch.iter() {
                    hub.replica.audit_events(record, &mut events);
                    // Applied one record at a time: a fill reads the order its copy created.
                    let step = std::mem::take(&mut events);
                    hub.stage(step);
                }
                hub.flush();
                if lost > 0 {
                    hub.resync(lost).await;
                }
            }
            _ = poll.tick() => {
                if let Some(views) = hub.read_accounts().await {
                    hub.replica.poll_events(&views, false, &mut events);
                    hub.commit(std::mem::take(&mut events));
                }
            }
            _ = stats.tick() => {
                let latency = hub.stats_events(feed.as_ref());
                hub.commit(latency);
            }
            _ = quotes.tick() => {
                let changed = hub.quote_events();
                hub.commit(changed);
            }
        }
    }
}

/// Keeps only the subscriber's topics in a snapshot.
pub(crate) fn filter_snapshot(mut snapshot: Snapshot, topics: u32) -> Snapshot {
    let keep = |bit: u32| topics & bit != 0;
    if !keep(topics::ACCOUNTS) {
        snapshot.accounts.clear();
    }
    if !keep(topics::POSITIONS) {
        snapshot.positions.clear();
    }
    if !keep(topics::ORDERS) {
        snapshot.orders.clear();
    }
    if !keep(topics::FILLS) {
        snapshot.fills.clear();
    }
    if !keep(topics::COPY) {
        snapshot.copy.clear();
    }
    if !keep(topics::LATENCY) {
        snapshot.latency = LatencyStats::default();
    }
    if !keep(topics::QUOTES) {
        snapshot.quotes.clear();
    }
    snapshot
}

/// Frames covering `deltas` (contiguous, after `last`) with the subscriber's events.
fn delta_frames(epoch: u64, mut last: u64, deltas: &[Delta], topics: u32) -> Vec<StateFrame> {
    deltas
        .chunks(EVENTS_PER_FRAME)
        .map(|chunk| {
            let first_seq = last + 1;
            last = chunk.last().map_or(last, |d| d.seq);
            let events = chunk.iter().filter(|d| d.event.topic() & topics != 0).cloned().collect();
            StateFrame::Deltas(Deltas { epoch, first_seq, last_seq: last, events })
        })
        .collect()
}

/// Serves one subscription until the client goes away, is too slow to write to, or the
/// gateway stops.
pub(super) async fn serve_subscriber(
    mut send: quinn::SendStream,
    _recv: quinn::RecvStream,
    subscribe: Subscribe,
    context: Arc<Context>,
) {
    let limits = &context.limits;
    let hub = &context.hub;
    let epoch = hub.epoch();
    let topics = subscribe.topics;
    let Some(mut registration) = hub.subscribe(subscribe.resume, SnapshotReason::Initial).await else {
        let _ = send.reset(stream_code::STOPPING.into());
        return;
    };
    let mut shutdown = context.shutdown.clone();
    let mut heartbeat = tokio::time::interval(limits.heartbeat.max(Duration::from_millis(10)));
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = match start_frames(&mut send, &registration, epoch, topics, limits).await {
        Some(last) => last,
        None => return,
    };
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.changed() => {
                let _ = send.finish();
                return;
            }
            batch = registration.live.recv_async() => batch,
            _ = heartbeat.tick() => {
                let frame = StateFrame::Heartbeat { epoch, seq: last };
                if write_frame(&mut send, &frame, limits.write_timeout).await.is_err() {
                    let _ = send.reset(stream_code::SLOW.into());
                    return;
                }
                continue;
            }
        };
        let deltas: Vec<Delta> = match batch {
            Ok(batch) => {
                // Coalesce what else is waiting into the same frames.
                let mut deltas: Vec<Delta> = batch.iter().filter(|d| d.seq > last).cloned().collect();
                while deltas.len() < EVENTS_PER_FRAME {
                    let Ok(more) = registration.live.try_recv() else { break };
                    deltas.extend(more.iter().filter(|d| d.seq > last).cloned());
                }
                deltas
            }
            Err(_) => {
                let Some(reason) = registration.restart_reason() else {
                    let _ = send.finish();
                    return;
                };
                tracing::debug!(?reason, "gateway: subscriber starts again from a snapshot");
                let Some(fresh) = hub.subscribe(None, reason).await else {
                    let _ = send.finish();
                    return;
                };
                registration = fresh;
                last = match start_frames(&mut send, &registration, epoch, topics, limits).await {
                    Some(last) => last,
                    None => return,
                };
                continue;
            }
        };
        if deltas.is_empty() {
            continue;
        }
        for frame in delta_frames(epoch, last, &deltas, topics) {
            if write_frame(&mut send, &frame, limits.write_timeout).await.is_err() {
                tracing::info!("gateway: subscriber too slow or gone; stream reset");
                let _ = send.reset(stream_code::SLOW.into());
                return;
            }
        }
        last = deltas.last().map_or(last, |d| d.seq);
        heartbeat.reset();
    }
}

/// Writes where a registration starts; the number it brings the subscriber to.
async fn start_frames(
    send: &mut quinn::SendStream,
    registration: &Registration,
    epoch: u64,
    topics: u32,
    limits: &GatewayLimits,
) -> Option<u64> {
    let frames = match &registration.start {
        Start::Snapshot(snapshot) => vec![StateFrame::Snapshot(filter_snapshot((**snapshot).clone(), topics))],
        Start::Replay(deltas) => {
            let after = deltas.first().map_or(registration.seq, |d| d.seq - 1);
            delta_frames(epoch, after, deltas, topics)
        }
    };
    for frame in frames {
        if write_frame(send, &frame, limits.write_timeout).await.is_err() {
            let _ = send.reset(stream_code::SLOW.into());
            return None;
        }
    }
    Some(registration.seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Engine, EngineBuilder, RuntimeSettings};

    #[test]
    fn a_signal_is_carried_with_its_origin_action_and_refusal() {
        let leader = mirror_model::Signal {
            id: mirror_model::SignalId(9),
            origin: Origin::Account(AccountId(5)),
            created_unix_ms: 1_000,
            accepted_mono_ns: 0,
            leader_balance: None,
            leader_equity: None,
            action: SignalAction::PartialClose {
                leader: mirror_model::LeaderRef(77),
                closed_qty: mirror_model::Qty::parse("0.5").unwrap(),
                qty_before: mirror_model::Qty::parse("2").unwrap(),
            },
            note: "scale out".into(),
        };
        let state = signal_state(&SignalSeen { signal: leader.clone(), mono_ns: 3, refused: None });
        assert_eq!((state.leader_account, state.source), (5, 0));
        assert_eq!((state.action.as_str(), state.qty, state.position), ("partial_close", 50_000_000, 77));
        assert_eq!((state.symbol.as_str(), state.side, state.refused.as_str()), ("", None, ""));
        let from_source = mirror_model::Signal {
            origin: Origin::Source(mirror_model::SourceId(8)),
            action: SignalAction::CloseAll { symbol: Some(mirror_model::Symbol::new("ES").unwrap()) },
            ..leader
        };
        let state =
            signal_state(&SignalSeen { signal: from_source, mono_ns: 4, refused: Some("journal failed".into()) });
        assert_eq!((state.leader_account, state.source, state.symbol.as_str()), (0, 8, "ES"));
        assert_eq!((state.action.as_str(), state.refused.as_str()), ("close_all", "journal failed"));
    }

    fn hub(subscriber_queue: usize, resume_window: usize) -> (Hub, Engine) {
        let settings =
            RuntimeSettings { shards: 1, pin_cores: false, spin_iterations: 10, ..RuntimeSettings::default() };
        let (engine, _) = EngineBuilder::new(settings).start().unwrap();
        let limits = GatewayLimits { subscriber_queue, resume_window, ..GatewayLimits::default() };
        let hub = Hub {
            engine: engine.handle(),
            replica: Replica { recent_kept: 4, ..Replica::default() },
            limits,
            epoch: 7,
            seq: 0,
            ring: VecDeque::new(),
            subscribers: Vec::new(),
            pending: Vec::new(),
            quotes_seen: 0,
        };
        (hub, engine)
    }

    fn log(n: u64) -> DeltaEvent {
        DeltaEvent::Log(LogLine { level: LogLevel::Info, account: 1, signal: n, text: format!("line {n}"), mono_ns: n })
    }

    fn register(hub: &mut Hub, resume: Option<ResumeFrom>) -> Registration {
        let (reply, mut answer) = oneshot::channel();
        hub.register(HubRequest { resume, reason: SnapshotReason::Initial, reply });
        answer.try_recv().unwrap()
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_dropped_as_lagged_and_the_others_go_on() {
        let (mut hub, engine) = hub(2, 100);
        let slow = register(&mut hub, None);
        let fast = register(&mut hub, None);
        for n in 1..=3 {
            hub.commit(vec![log(n)]);
            if n < 3 {
                assert_eq!(fast.live.try_recv().unwrap()[0].seq, n);
            }
        }
        assert_eq!(slow.dropped.load(Ordering::Acquire), LAGGED, "its queue of 2 overflowed on the third batch");
        assert_eq!(fast.dropped.load(Ordering::Acquire), LIVE);
        assert_eq!(fast.live.try_recv().unwrap()[0].seq, 3);
        // The slow one still holds what it had, then learns it was dropped.
        assert_eq!((slow.live.try_recv().unwrap()[0].seq, slow.live.try_recv().unwrap()[0].seq), (1, 2));
        assert!(matches!(slow.live.try_recv(), Err(flume::TryRecvError::Disconnected)));
        engine.shutdown();
    }

    #[test]
    fn quotes_are_published_once_per_change_and_kept_for_snapshots() {
        let (mut hub, engine) = hub(16, 100);
        let board = engine.handle().quote_board().clone();
        let quote = |bid: i64| mirror_connector::Quote {
            symbol: mirror_model::Symbol::new("ES").unwrap(),
            bid: mirror_model::Price::from_raw(bid),
            ask: mirror_model::Price::from_raw(bid + 25),
            time_unix_ms: 1,
        };
        // Three quotes between two ticks: one delta, the latest.
        for bid in [100, 200, 300] {
            board.update(AccountId(4), &quote(bid));
        }
        let events = hub.quote_events();
        assert!(
            matches!(&events[..], [DeltaEvent::Quote(q)] if (q.account, q.bid, q.ask) == (4, 300, 325)),
            "{events:?}"
        );
        hub.commit(events);
        assert!(hub.quote_events().is_empty(), "nothing changed since");
        let Start::Snapshot(snapshot) = register(&mut hub, None).start else { panic!("a snapshot") };
        assert_eq!(snapshot.quotes.iter().map(|q| (q.account, q.bid)).collect::<Vec<_>>(), [(4, 300)]);
        assert!(filter_snapshot(*snapshot, topics::ACCOUNTS).quotes.is_empty(), "not asked for");
        engine.shutdown();
    }

    #[test]
    fn a_resume_replays_what_is_kept_and_otherwise_starts_from_a_snapshot() {
        let (mut hub, engine) = hub(16, 3);
        let events: Vec<DeltaEvent> = (1..=5).map(log).collect();
        hub.commit(events);
        let Start::Replay(replay) = register(&mut hub, Some(ResumeFrom { epoch: 7, seq: 3 })).start else {
            panic!("deltas 4 and 5 are kept")
        };
        assert_eq!(replay.iter().map(|d| d.seq).collect::<Vec<_>>(), [4, 5]);
        let Start::Replay(replay) = register(&mut hub, Some(ResumeFrom { epoch: 7, seq: 5 })).start else {
            panic!("up to date")
        };
        assert!(replay.is_empty());
        for (resume, why) in [((7, 1), "no longer kept"), ((6, 3), "another epoch"), ((7, 9), "from the future")] {
            let registration = register(&mut hub, Some(ResumeFrom { epoch: resume.0, seq: resume.1 }));
            let Start::Snapshot(snapshot) = registration.start else { panic!("{why}: a snapshot") };
            assert_eq!((snapshot.seq, snapshot.reason), (5, SnapshotReason::ResumeUnavailable), "{why}");
        }
        // The frames of a replay cover every number, whatever the topics.
        let frames = delta_frames(7, 3, &hub.ring.iter().filter(|d| d.seq > 3).cloned().collect::<Vec<_>>(), 0);
        assert!(
            matches!(&frames[..], [StateFrame::Deltas(d)] if (d.first_seq, d.last_seq, d.events.len()) == (4, 5, 0))
        );
        engine.shutdown();
    }
}
