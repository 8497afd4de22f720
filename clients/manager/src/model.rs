//! The Trading Manager's state, folded from the SDK's state stream: a snapshot, then numbered
//! deltas. No I/O and no clock reads: the caller passes the wall-clock time of each update, so
//! the fold is deterministic and tested by replaying updates.
//!
//! Every history is bounded, with the oldest entry dropped first: equity points per account,
//! fan-out latency points, log lines, alerts, finished orders, the signals whose copy status is
//! kept, and the pending signal → fill timers.

use std::collections::{BTreeMap, HashMap, VecDeque};

use mirror_sdk::{
    AccountState, CopyState, CopyStatus, DeltaEvent, FillState, LatencyStats, LogLine, OrderState, OrderStatus,
    PositionState, Quote, SignalState, Snapshot, SnapshotReason, StateUpdate,
};

use crate::engine_config::{EngineFacts, Limits};
use crate::format;

/// Equity points kept per account (one per second at most: about 17 minutes).
pub const EQUITY_POINTS_MAX: usize = 1_000;
/// Spacing of equity points: a change within this window replaces the last point.
pub const EQUITY_SAMPLE_MS: i64 = 1_000;
/// Fan-out latency points kept (one per counters update, about one a second: an hour).
pub const LATENCY_POINTS_MAX: usize = 3_600;
/// Log lines kept.
pub const LOG_LINES_MAX: usize = 10_000;
/// Alerts kept.
pub const ALERTS_MAX: usize = 200;
/// Finished orders kept (live ones are all kept: the engine bounds them).
pub const FINISHED_ORDERS_MAX: usize = 2_000;
/// Signals whose per-follower copy status is kept.
pub const SIGNALS_KEPT: usize = 200;
/// Signals on an account waiting for their first fill, for the fill-latency column.
pub const PENDING_FILLS_MAX: usize = 8_192;
/// A drawdown at this share of its limit (percent) raises an alert.
pub const NEAR_LIMIT_PCT: i64 = 80;
/// An alert re-arms once the drawdown falls back under this share of its limit (percent).
pub const REARM_PCT: i64 = 60;

const DAY_MS: i64 = 86_400_000;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// Drawdown at or near its configured limit.
    NearLimit,
    /// An account lost its broker connection.
    Disconnected,
    /// Reconciliation found the broker and the engine disagreeing.
    Drift,
    /// A risk guard tripped.
    RiskGuard,
    /// The state stream started again from a snapshot.
    Resnapshot,
}

impl AlertKind {
    /// A short tag.
    pub fn label(self) -> &'static str {
        match self {
            Self::NearLimit => "drawdown",
            Self::Disconnected => "disconnected",
            Self::Drift => "drift",
            Self::RiskGuard => "risk guard",
            Self::Resnapshot => "snapshot",
        }
    }
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// When the app saw it (Unix ms).
    pub at_unix_ms: i64,
    /// What about.
    pub kind: AlertKind,
    /// The account, when one.
    pub account: Option<u32>,
    /// In words.
    pub text: String,
}

/// How an account stands, worst first (the table's default order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Health {
    /// No broker connection.
    Disconnected,
    /// Risk mode `frozen`: not trading.
    Frozen,
    /// Drawdown at or past its limit.
    AtLimit,
    /// Risk mode `close-only`.
    CloseOnly,
    /// Copying paused.
    Paused,
    /// Drawdown near its limit.
    NearLimit,
    /// Trading normally.
    Ok,
}

impl Health {
    /// In words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Frozen => "frozen",
            Self::AtLimit => "at limit",
            Self::CloseOnly => "close-only",
            Self::Paused => "paused",
            Self::NearLimit => "near limit",
            Self::Ok => "ok",
        }
    }
}

/// One account as the app sees it: the engine's state plus what the app derives over time.
#[derive(Clone, Debug)]
pub struct AccountRow {
    /// The engine's latest state.
    pub state: AccountState,
    /// The platform, from the configuration (`None` until it was read).
    pub platform: Option<String>,
    /// The risk profile's limits, from the configuration.
    pub limits: Option<Limits>,
    /// The trading day (days since the epoch, shifted by the configured day start) of
    /// `day_start_equity`.
    pub day: i64,
    /// The first equity the app saw this trading day (raw money).
    pub day_start_equity: i64,
    /// The highest equity the app saw this trading day (raw money).
    pub peak_equity: i64,
    /// The latest copy status of a signal on this account.
    pub last_copy: Option<CopyStatus>,
    /// Time from a signal's first record on this account to its first fill, latest (engine
    /// monotonic clock, ns).
    pub fill_latency_ns: Option<u64>,
    /// Paused by a global pause (its "global paused" log line; the account's state does not
    /// carry it).
    pub paused_globally: bool,
    /// Equity over time: (Unix seconds, equity) for plotting only.
    pub equity_history: VecDeque<[f64; 2]>,
    last_equity_point_ms: i64,
    near_limit_alerted: bool,
}

impl AccountRow {
    fn new(state: AccountState, day: i64) -> Self {
        Self {
            day,
            day_start_equity: state.equity,
            peak_equity: state.equity,
            state,
            platform: None,
            limits: None,
            last_copy: None,
            fill_latency_ns: None,
            paused_globally: false,
            equity_history: VecDeque::new(),
            last_equity_point_ms: i64::MIN,
            near_limit_alerted: false,
        }
    }

    /// Equity now minus the first equity seen today (raw money).
    pub fn pnl_today(&self) -> i64 {
        self.state.equity.saturating_sub(self.day_start_equity)
    }

    /// Drawdown from the highest equity seen today, basis points (≥ 0).
    pub fn drawdown_bp(&self) -> i64 {
        if self.peak_equity <= 0 || self.state.equity >= self.peak_equity {
            return 0;
        }
        let fall = i128::from(self.peak_equity) - i128::from(self.state.equity);
        i64::try_from(fall * 10_000 / i128::from(self.peak_equity)).unwrap_or(i64::MAX)
    }

    /// How much of its tightest limit the account has used, percent (`None` without limits).
    pub fn limit_used_pct(&self) -> Option<i64> {
        let limits = self.limits.as_ref()?;
        let by_drawdown = limits.drawdown_limit_bp().filter(|bp| *bp > 0).map(|bp| self.drawdown_bp() * 100 / bp);
        let by_loss = limits.daily_loss_limit.filter(|l| l.is_positive()).map(|limit| {
            let loss = i128::from((-self.pnl_today()).max(0));
            i64::try_from(loss * 100 / i128::from(limit.raw())).unwrap_or(i64::MAX)
        });
        by_drawdown.into_iter().chain(by_loss).max()
    }

    /// Where the account stands, worst first.
    pub fn health(&self) -> Health {
        let used = self.limit_used_pct().unwrap_or(0);
        match () {
            () if !self.state.connected => Health::Disconnected,
            () if self.state.mode == "frozen" => Health::Frozen,
            () if used >= 100 => Health::AtLimit,
            () if self.state.mode != "normal" => Health::CloseOnly,
            () if self.state.paused || self.paused_globally => Health::Paused,
            () if used >= NEAR_LIMIT_PCT => Health::NearLimit,
            () => Health::Ok,
        }
    }

    /// The limit in words (`2%`, `loss 2,000.00`), or "—" when none is known.
    pub fn limit_text(&self) -> String {
        let Some(limits) = &self.limits else { return "—".into() };
        let mut parts = Vec::new();
        if let Some(bp) = limits.drawdown_limit_bp() {
            parts.push(format::basis_points(bp));
        }
        if let Some(loss) = limits.daily_loss_limit {
            parts.push(format!("loss {}", format::money(loss.raw())));
        }
        if parts.is_empty() { "—".into() } else { parts.join(" · ") }
    }
}

/// What became of one signal on every follower that reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignalCopy {
    /// The signal.
    pub signal: u64,
    /// When the app first saw a status of it (Unix ms).
    pub first_seen_unix_ms: i64,
    /// Latest state and detail per follower.
    pub followers: BTreeMap<u32, (CopyState, String)>,
    /// What the signal asked (`open buy 2 ES`), once its own event came.
    pub what: Option<String>,
    /// Why the engine refused it (then no follower saw it).
    pub refused: Option<String>,
}

/// Followers by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyCounts {
    /// Copied or closing, not filled yet.
    pub working: usize,
    /// Filled.
    pub filled: usize,
    /// Skipped by a rule.
    pub skipped: usize,
    /// Refused by the broker.
    pub failed: usize,
}

impl SignalCopy {
    /// Followers by outcome.
    pub fn counts(&self) -> CopyCounts {
        let mut counts = CopyCounts::default();
        for (state, _) in self.followers.values() {
            match state {
                CopyState::Copied | CopyState::Closing => counts.working += 1,
                CopyState::Filled => counts.filled += 1,
                CopyState::Skipped => counts.skipped += 1,
                CopyState::Rejected => counts.failed += 1,
            }
        }
        counts
    }
}

/// One point of the fan-out latency over time (Unix seconds; ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyPoint {
    /// When the app received it (Unix ms).
    pub at_unix_ms: i64,
    /// The engine's percentiles over its last window.
    pub stats: LatencyStats,
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
    while queue.len() > max {
        queue.pop_front();
    }
}

/// The state folded from the stream.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// The stream's epoch and last sequence number applied.
    pub position: Option<(u64, u64)>,
    /// Snapshots received (the first, and any after a lag, resync or lost resume point).
    pub snapshots: u64,
    /// Why the latest snapshot came.
    pub last_snapshot_reason: Option<SnapshotReason>,
    /// Accounts by id.
    pub accounts: BTreeMap<u32, AccountRow>,
    /// Open positions by (account, broker id).
    pub positions: BTreeMap<(u32, u64), PositionState>,
    /// Live orders by client order id.
    pub live_orders: BTreeMap<String, OrderState>,
    /// Finished orders, oldest first.
    pub finished_orders: VecDeque<OrderState>,
    /// Latest quotes by (account, symbol).
    pub quotes: BTreeMap<(u32, String), Quote>,
    /// Copy status per signal, for the latest [`SIGNALS_KEPT`] signals.
    pub signals: HashMap<u64, SignalCopy>,
    /// Those signals, oldest first.
    pub signal_order: VecDeque<u64>,
    /// Counters and fan-out latency, latest.
    pub latency: LatencyStats,
    /// Fan-out latency over time, oldest first.
    pub latency_history: VecDeque<LatencyPoint>,
    /// Log lines, oldest first.
    pub logs: VecDeque<LogLine>,
    /// Alerts, newest first.
    pub alerts: VecDeque<Alert>,
    /// What the configuration says (platforms, limits, day start), once read.
    pub facts: Option<EngineFacts>,
    /// Bumped whenever the accounts table may read differently (for the UI's cached order).
    pub version: u64,
    /// Per (account, signal): the first record's time while its first fill is awaited, `None`
    /// once it came (so that the fill's own log line, or a later partial fill, does not start
    /// the timer again). Bounded by `pending_order`.
    pending_fills: HashMap<(u32, u64), Option<u64>>,
    pending_order: VecDeque<(u32, u64)>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    fn day_of(&self, now_unix_ms: i64) -> i64 {
        let shift = self.facts.as_ref().map_or(0, |f| f.day_start_utc_hour) * 3_600_000;
        (now_unix_ms - shift).div_euclid(DAY_MS)
    }

    fn alert(&mut self, at_unix_ms: i64, kind: AlertKind, account: Option<u32>, text: String) {
        self.alerts.push_front(Alert { at_unix_ms, kind, account, text });
        self.alerts.truncate(ALERTS_MAX);
    }

    /// The account's name, or its id.
    pub fn account_name(&self, id: u32) -> String {
        self.accounts.get(&id).map_or_else(|| format!("#{id:08x}"), |row| row.state.name.clone())
    }

    /// Takes in what the configuration says about the accounts.
    pub fn set_facts(&mut self, facts: EngineFacts) {
        for row in self.accounts.values_mut() {
            let known = facts.accounts.get(&row.state.name);
            row.platform = known.map(|f| f.platform.clone());
            row.limits = known.and_then(|f| f.limits.clone());
        }
        self.facts = Some(facts);
        self.version += 1;
    }

    /// Folds one update, seen at `now_unix_ms`.
    pub fn apply(&mut self, now_unix_ms: i64, update: &StateUpdate) {
        match update {
            StateUpdate::Snapshot(snapshot) => self.apply_snapshot(now_unix_ms, snapshot),
            StateUpdate::Deltas(deltas) => {
                for delta in &deltas.events {
                    self.apply_event(now_unix_ms, &delta.event);
                }
                self.position = Some((deltas.epoch, deltas.last_seq));
                self.version += 1;
            }
            StateUpdate::Heartbeat { epoch, seq } => {
                if self.position.is_none_or(|(e, s)| e == *epoch && s <= *seq) {
                    self.position = Some((*epoch, (*seq).max(self.position.map_or(0, |p| p.1))));
                }
            }
            StateUpdate::Reconnected { .. } => {}
        }
    }

    fn apply_snapshot(&mut self, now_unix_ms: i64, snapshot: &Snapshot) {
        self.snapshots += 1;
        self.last_snapshot_reason = Some(snapshot.reason);
        if snapshot.reason != SnapshotReason::Initial {
            let text = format!("the state stream started again from a snapshot ({:?})", snapshot.reason);
            self.alert(now_unix_ms, AlertKind::Resnapshot, None, text);
        }
        // Accounts keep what the app derived over time (day start, peak, history); accounts
        // no longer in the snapshot go.
        let mut previous = std::mem::take(&mut self.accounts);
        for state in &snapshot.accounts {
            let row = previous.remove(&state.id);
            self.upsert_account(now_unix_ms, state.clone(), row);
        }
        self.positions = snapshot.positions.iter().map(|p| ((p.account, p.id), p.clone())).collect();
        self.live_orders.clear();
        self.finished_orders.clear();
        for order in &snapshot.orders {
            self.apply_order(order);
        }
        self.quotes = snapshot.quotes.iter().map(|q| ((q.account, q.symbol.clone()), q.clone())).collect();
        for copy in &snapshot.copy {
            self.apply_copy(now_unix_ms, copy);
        }
        self.apply_latency(now_unix_ms, snapshot.latency);
        self.position = Some((snapshot.epoch, snapshot.seq));
        self.version += 1;
    }

    fn apply_event(&mut self, now_unix_ms: i64, event: &DeltaEvent) {
        match event {
            DeltaEvent::Account(state) => {
                let row = self.accounts.remove(&state.id);
                self.upsert_account(now_unix_ms, state.clone(), row);
            }
            DeltaEvent::Position(position) => {
                let key = (position.account, position.id);
                if position.open {
                    self.positions.insert(key, position.clone());
                } else {
                    self.positions.remove(&key);
                }
            }
            DeltaEvent::Order(order) => self.apply_order(order),
            DeltaEvent::Fill(fill) => self.apply_fill(fill),
            DeltaEvent::Copy(copy) => self.apply_copy(now_unix_ms, copy),
            DeltaEvent::Log(line) => self.apply_log(now_unix_ms, line),
            DeltaEvent::Latency(stats) => self.apply_latency(now_unix_ms, *stats),
            DeltaEvent::Quote(quote) => {
                self.quotes.insert((quote.account, quote.symbol.clone()), quote.clone());
            }
            DeltaEvent::Signal(state) => self.apply_signal(now_unix_ms, state),
        }
    }

    fn upsert_account(&mut self, now_unix_ms: i64, state: AccountState, row: Option<AccountRow>) {
        let day = self.day_of(now_unix_ms);
        let id = state.id;
        let was_connected = row.as_ref().is_none_or(|r| r.state.connected);
        let mut row = match row {
            Some(mut row) => {
                row.state = state;
                row
            }
            None => {
                let mut row = AccountRow::new(state, day);
                if let Some(facts) = self.facts.as_ref().and_then(|f| f.accounts.get(&row.state.name)) {
                    row.platform = Some(facts.platform.clone());
                    row.limits = facts.limits.clone();
                }
                row
            }
        };
        let equity = row.state.equity;
        if row.day != day {
            row.day = day;
            row.day_start_equity = equity;
            row.peak_equity = equity;
            row.near_limit_alerted = false;
        }
        row.peak_equity = row.peak_equity.max(equity);
        #[allow(clippy::cast_precision_loss)] // a plot point, never a value to compute with
        let point = [now_unix_ms as f64 / 1_000.0, mirror_model::Money::from_raw(equity).to_f64()];
        if now_unix_ms.saturating_sub(row.last_equity_point_ms) < EQUITY_SAMPLE_MS && !row.equity_history.is_empty() {
            if let Some(last) = row.equity_history.back_mut() {
                last[1] = point[1];
            }
        } else {
            push_bounded(&mut row.equity_history, point, EQUITY_POINTS_MAX);
            row.last_equity_point_ms = now_unix_ms;
        }
        let name = row.state.name.clone();
        if was_connected && !row.state.connected {
            self.alert(now_unix_ms, AlertKind::Disconnected, Some(id), format!("{name}: lost its broker connection"));
        }
        if let Some(used) = row.limit_used_pct() {
            if used >= NEAR_LIMIT_PCT && !row.near_limit_alerted {
                row.near_limit_alerted = true;
                let text = format!(
                    "{name}: drawdown {} is {used}% of its limit ({})",
                    format::basis_points(row.drawdown_bp()),
                    row.limit_text()
                );
                self.alert(now_unix_ms, AlertKind::NearLimit, Some(id), text);
            } else if used < REARM_PCT {
                row.near_limit_alerted = false;
            }
        }
        self.accounts.insert(id, row);
    }

    fn apply_order(&mut self, order: &OrderState) {
        if terminal(order.status) {
            self.live_orders.remove(&order.client_id);
            push_bounded(&mut self.finished_orders, order.clone(), FINISHED_ORDERS_MAX);
        } else {
            self.live_orders.insert(order.client_id.clone(), order.clone());
        }
    }

    fn apply_fill(&mut self, fill: &FillState) {
        if let Some(started) = self.pending_fills.get_mut(&(fill.account, fill.signal)).and_then(Option::take)
            && let Some(row) = self.accounts.get_mut(&fill.account)
        {
            row.fill_latency_ns = Some(fill.mono_ns.saturating_sub(started));
        }
    }

    /// The signal's entry, made (and the oldest forgotten) when it is new.
    fn signal_entry(&mut self, now_unix_ms: i64, id: u64) -> Option<&mut SignalCopy> {
        if !self.signals.contains_key(&id) {
            self.signal_order.push_back(id);
            self.signals.insert(
                id,
                SignalCopy {
                    signal: id,
                    first_seen_unix_ms: now_unix_ms,
                    followers: BTreeMap::new(),
                    what: None,
                    refused: None,
                },
            );
            while self.signal_order.len() > SIGNALS_KEPT {
                if let Some(oldest) = self.signal_order.pop_front() {
                    self.signals.remove(&oldest);
                }
            }
        }
        self.signals.get_mut(&id)
    }

    fn apply_copy(&mut self, now_unix_ms: i64, copy: &CopyStatus) {
        if let Some(row) = self.accounts.get_mut(&copy.account) {
            row.last_copy = Some(copy.clone());
        }
        if let Some(signal) = self.signal_entry(now_unix_ms, copy.signal) {
            signal.followers.insert(copy.account, (copy.state, copy.detail.clone()));
        }
    }

    fn apply_signal(&mut self, now_unix_ms: i64, state: &SignalState) {
        let what = signal_summary(state);
        if let Some(signal) = self.signal_entry(now_unix_ms, state.signal) {
            signal.what = Some(what);
            signal.refused = (!state.refused.is_empty()).then(|| state.refused.clone());
        }
    }

    fn apply_log(&mut self, now_unix_ms: i64, line: &LogLine) {
        // The first record of a signal on an account starts its fill timer.
        if line.signal != 0 && !self.pending_fills.contains_key(&(line.account, line.signal)) {
            let key = (line.account, line.signal);
            self.pending_fills.insert(key, Some(line.mono_ns));
            self.pending_order.push_back(key);
            while self.pending_order.len() > PENDING_FILLS_MAX {
                if let Some(oldest) = self.pending_order.pop_front() {
                    self.pending_fills.remove(&oldest);
                }
            }
        }
        // A global pause is not in the account's state, only in its log line.
        let global = match () {
            () if line.text.ends_with(": global paused") => Some(true),
            () if line.text.ends_with(": global resumed") => Some(false),
            () => None,
        };
        if let Some(paused) = global
            && let Some(row) = self.accounts.get_mut(&line.account)
        {
            row.paused_globally = paused;
        }
        let account = (line.account != 0).then_some(line.account);
        if line.text.contains("reconciliation drift") {
            self.alert(now_unix_ms, AlertKind::Drift, account, line.text.clone());
        } else if line.text.contains("risk guard tripped") {
            self.alert(now_unix_ms, AlertKind::RiskGuard, account, line.text.clone());
        }
        push_bounded(&mut self.logs, line.clone(), LOG_LINES_MAX);
    }

    fn apply_latency(&mut self, now_unix_ms: i64, stats: LatencyStats) {
        self.latency = stats;
        push_bounded(&mut self.latency_history, LatencyPoint { at_unix_ms: now_unix_ms, stats }, LATENCY_POINTS_MAX);
    }

    /// The account's positions.
    pub fn positions_of(&self, account: u32) -> impl Iterator<Item = &PositionState> {
        self.positions.range((account, 0)..=(account, u64::MAX)).map(|(_, p)| p)
    }

    /// The account's live orders, then its finished ones, newest first.
    pub fn orders_of(&self, account: u32) -> impl Iterator<Item = &OrderState> {
        let live = self.live_orders.values().filter(move |o| o.account == account);
        live.chain(self.finished_orders.iter().rev().filter(move |o| o.account == account))
    }

    /// The kept signals, newest first.
    pub fn signals_newest_first(&self) -> impl Iterator<Item = &SignalCopy> {
        self.signal_order.iter().rev().filter_map(|id| self.signals.get(id))
    }

    /// Signals waiting for a first fill (for tests of the bound).
    pub fn pending_fills(&self) -> usize {
        self.pending_fills.values().filter(|started| started.is_some()).count()
    }
}

/// What a signal asked, in a few words: `open buy 2 ES`, `close #1795…`, `close_all ES`.
fn signal_summary(state: &SignalState) -> String {
    let mut words = vec![state.action.clone()];
    if let Some(side) = state.side {
        words.push(if side == mirror_sdk::Side::Buy { "buy" } else { "sell" }.to_owned());
    }
    if state.qty != 0 {
        words.push(format::qty(state.qty));
    }
    if !state.symbol.is_empty() {
        words.push(state.symbol.clone());
    } else if state.position != 0 {
        words.push(format!("#{}", state.position));
    }
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use mirror_model::Money;
    use mirror_sdk::{Delta, Deltas, LogLevel, Side};

    use super::*;

    const T0: i64 = 1_800_000_000_000;

    fn money(text: &str) -> i64 {
        Money::parse(text).unwrap().raw()
    }

    fn account(id: u32, equity: &str) -> AccountState {
        AccountState {
            id,
            name: format!("acct-{id}"),
            balance: money("10000"),
            equity: money(equity),
            positions: 0,
            live_orders: 0,
            mode: "normal".into(),
            paused: false,
            connected: true,
        }
    }

    fn snapshot(seq: u64, reason: SnapshotReason, accounts: Vec<AccountState>) -> StateUpdate {
        StateUpdate::Snapshot(Box::new(Snapshot {
            epoch: 1,
            seq,
            reason,
            accounts,
            positions: vec![],
            orders: vec![],
            fills: vec![],
            copy: vec![],
            latency: LatencyStats::default(),
            quotes: vec![],
        }))
    }

    fn deltas(first_seq: u64, events: Vec<DeltaEvent>) -> StateUpdate {
        let last_seq = first_seq + events.len() as u64 - 1;
        let events =
            events.into_iter().enumerate().map(|(i, event)| Delta { seq: first_seq + i as u64, event }).collect();
        StateUpdate::Deltas(Deltas { epoch: 1, first_seq, last_seq, events })
    }

    fn position(account: u32, id: u64, open: bool) -> PositionState {
        PositionState {
            account,
            id,
            symbol: "ES".into(),
            side: Side::Buy,
            qty: money("1"),
            open_price: money("5000"),
            stop_loss: None,
            take_profit: None,
            open,
        }
    }

    fn copy(account: u32, signal: u64, state: CopyState, detail: &str) -> DeltaEvent {
        DeltaEvent::Copy(CopyStatus { account, signal, state, detail: detail.into() })
    }

    fn log(account: u32, signal: u64, text: &str, mono_ns: u64) -> DeltaEvent {
        DeltaEvent::Log(LogLine { level: LogLevel::Warn, account, signal, text: text.into(), mono_ns })
    }

    #[test]
    fn a_snapshot_then_deltas_build_accounts_positions_orders_and_pnl() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(10, SnapshotReason::Initial, vec![account(1, "10000"), account(2, "5000")]));
        assert_eq!((model.accounts.len(), model.position), (2, Some((1, 10))));
        let order = OrderState {
            account: 1,
            client_id: "m5.1.0".into(),
            signal: 5,
            symbol: "ES".into(),
            side: Some(Side::Buy),
            position: None,
            qty: money("1"),
            filled: 0,
            status: OrderStatus::Submitted,
            reason: String::new(),
        };
        let filled = OrderState { filled: money("1"), status: OrderStatus::Filled, ..order.clone() };
        model.apply(
            T0 + 100,
            &deltas(
                11,
                vec![
                    DeltaEvent::Order(order),
                    DeltaEvent::Position(position(1, 77, true)),
                    DeltaEvent::Account(account(1, "10500")),
                    DeltaEvent::Account(account(1, "9870")),
                ],
            ),
        );
        assert_eq!(model.live_orders.len(), 1);
        assert_eq!(model.positions_of(1).count(), 1);
        let row = &model.accounts[&1];
        assert_eq!(row.pnl_today(), money("-130"), "against the first equity seen today");
        assert_eq!(row.peak_equity, money("10500"));
        assert_eq!(row.drawdown_bp(), 600, "(10500 - 9870) / 10500 = 6.00%");
        model.apply(
            T0 + 200,
            &deltas(15, vec![DeltaEvent::Order(filled), DeltaEvent::Position(position(1, 77, false))]),
        );
        assert!(model.live_orders.is_empty());
        assert_eq!(model.orders_of(1).next().map(|o| o.status), Some(OrderStatus::Filled));
        assert_eq!(model.positions_of(1).count(), 0);
        assert_eq!(model.position, Some((1, 16)));
    }

    #[test]
    fn a_new_trading_day_starts_pnl_and_the_peak_again() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "10000")]));
        model.apply(T0 + 1, &deltas(2, vec![DeltaEvent::Account(account(1, "9000"))]));
        assert_eq!(model.accounts[&1].pnl_today(), money("-1000"));
        model.apply(T0 + DAY_MS, &deltas(3, vec![DeltaEvent::Account(account(1, "9100"))]));
        let row = &model.accounts[&1];
        assert_eq!((row.pnl_today(), row.drawdown_bp(), row.peak_equity), (0, 0, money("9100")));
    }

    #[test]
    fn a_lagged_snapshot_replaces_the_state_but_keeps_histories_and_says_so() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "10000"), account(2, "10000")]));
        model.apply(
            T0 + 2_000,
            &deltas(
                2,
                vec![
                    DeltaEvent::Position(position(1, 7, true)),
                    DeltaEvent::Account(account(1, "11000")),
                    copy(1, 9, CopyState::Filled, "m9.1.0"),
                ],
            ),
        );
        assert!(model.alerts.is_empty());
        // The client fell behind: the server dropped its queue and sends the state afresh.
        model.apply(T0 + 4_000, &snapshot(50, SnapshotReason::Lagged, vec![account(1, "10800")]));
        assert_eq!(model.snapshots, 2);
        assert_eq!(model.last_snapshot_reason, Some(SnapshotReason::Lagged));
        assert_eq!(model.position, Some((1, 50)));
        assert!(!model.accounts.contains_key(&2), "gone from the engine, gone here");
        assert_eq!(model.positions.len(), 0, "positions are the snapshot's");
        let row = &model.accounts[&1];
        assert_eq!(row.peak_equity, money("11000"), "the day's peak survives the snapshot");
        assert_eq!(row.equity_history.len(), 3, "and so does the equity curve");
        assert_eq!(model.signals.len(), 1, "copy status history survives");
        assert_eq!(model.alerts.front().map(|a| a.kind), Some(AlertKind::Resnapshot));
        // Deltas go on after the snapshot's number.
        model.apply(T0 + 5_000, &deltas(51, vec![DeltaEvent::Position(position(1, 8, true))]));
        assert_eq!((model.positions.len(), model.position), (1, Some((1, 51))));
    }

    #[test]
    fn copy_status_is_folded_per_signal_and_only_the_latest_signals_are_kept() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "1"), account(2, "1"), account(3, "1")]));
        let mut seq = 2;
        let mut step = |model: &mut Model, events: Vec<DeltaEvent>| {
            let n = events.len() as u64;
            model.apply(T0, &deltas(seq, events));
            seq += n;
        };
        step(
            &mut model,
            vec![
                copy(1, 100, CopyState::Copied, "m100.1.0"),
                copy(2, 100, CopyState::Skipped, "symbol NQ denied"),
                copy(3, 100, CopyState::Copied, "m100.3.0"),
                copy(1, 100, CopyState::Filled, "m100.1.0"),
                copy(3, 100, CopyState::Rejected, "UnknownSymbol: no symbol NQ"),
            ],
        );
        let signal = &model.signals[&100];
        assert_eq!(signal.counts(), CopyCounts { working: 0, filled: 1, skipped: 1, failed: 1 });
        assert_eq!(signal.followers[&2].1, "symbol NQ denied");
        for n in 0..(SIGNALS_KEPT as u64 + 10) {
            step(&mut model, vec![copy(1, 1_000 + n, CopyState::Copied, "")]);
        }
        assert_eq!(model.signals.len(), SIGNALS_KEPT);
        assert_eq!(model.signal_order.len(), SIGNALS_KEPT);
        assert!(!model.signals.contains_key(&100), "the oldest went first");
        assert_eq!(model.signals_newest_first().next().map(|s| s.signal), Some(1_000 + SIGNALS_KEPT as u64 + 9));
    }

    fn signal_event(
        signal: u64,
        action: &str,
        side: Option<Side>,
        qty: &str,
        symbol: &str,
        refused: &str,
    ) -> DeltaEvent {
        DeltaEvent::Signal(SignalState {
            signal,
            leader_account: 0,
            source: 7,
            action: action.into(),
            symbol: symbol.into(),
            side,
            qty: if qty.is_empty() { 0 } else { mirror_model::Qty::parse(qty).unwrap().raw() },
            position: 42,
            note: String::new(),
            created_unix_ms: T0,
            mono_ns: 1,
            refused: refused.into(),
        })
    }

    #[test]
    fn a_signals_own_event_says_what_it_asked_or_why_it_was_refused() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "1")]));
        let events = vec![
            signal_event(200, "open", Some(Side::Buy), "2", "ES", ""),
            copy(1, 200, CopyState::Copied, "m200.1.0"),
            signal_event(201, "close", None, "", "", ""),
            signal_event(202, "open", Some(Side::Sell), "0.5", "XAUUSD", "stop_loss 2300 is on the wrong side"),
        ];
        model.apply(T0, &deltas(2, events));
        assert_eq!(model.signals[&200].what.as_deref(), Some("open buy 2 ES"));
        assert_eq!(model.signals[&200].counts().working, 1, "its copies fold in as before");
        assert_eq!(model.signals[&201].what.as_deref(), Some("close #42"));
        assert_eq!(model.signals[&202].what.as_deref(), Some("open sell 0.5 XAUUSD"));
        assert_eq!(model.signals[&202].refused.as_deref(), Some("stop_loss 2300 is on the wrong side"));
        assert!(model.signals[&202].followers.is_empty(), "a refused signal reached no follower");
    }

    #[test]
    fn histories_are_bounded() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "10000")]));
        let mut seq = 2;
        for n in 0..(EQUITY_POINTS_MAX as i64 + 50) {
            let equity = format!("{}", 10_000 + n);
            model.apply(T0 + n * EQUITY_SAMPLE_MS, &deltas(seq, vec![DeltaEvent::Account(account(1, &equity))]));
            seq += 1;
        }
        assert_eq!(model.accounts[&1].equity_history.len(), EQUITY_POINTS_MAX);
        // Changes within one sample window replace the last point.
        let before = model.accounts[&1].equity_history.len();
        let last = T0 + (EQUITY_POINTS_MAX as i64 + 50) * EQUITY_SAMPLE_MS;
        model.apply(last, &deltas(seq, vec![DeltaEvent::Account(account(1, "1"))]));
        model.apply(last + 10, &deltas(seq + 1, vec![DeltaEvent::Account(account(1, "2"))]));
        seq += 2;
        assert_eq!(model.accounts[&1].equity_history.len(), before);
        assert_eq!(model.accounts[&1].equity_history.back().unwrap()[1], 2.0);

        let lines: Vec<DeltaEvent> =
            (0..(LOG_LINES_MAX as u64 + 5)).map(|n| log(1, 1 + n % 10_000, "acct-1: copied", n)).collect();
        let n = lines.len() as u64;
        model.apply(T0, &deltas(seq, lines));
        seq += n;
        assert_eq!(model.logs.len(), LOG_LINES_MAX);
        assert!(model.pending_fills() <= PENDING_FILLS_MAX);
        for n in 0..(LATENCY_POINTS_MAX as u64 + 3) {
            model.apply(
                T0,
                &deltas(seq + n, vec![DeltaEvent::Latency(LatencyStats { signals: n, ..Default::default() })]),
            );
        }
        assert_eq!(model.latency_history.len(), LATENCY_POINTS_MAX);
        for n in 0..(ALERTS_MAX + 7) {
            model.apply(T0, &deltas(1_000_000 + n as u64, vec![log(1, 0, "acct-1: reconciliation drift: X", 0)]));
        }
        assert_eq!(model.alerts.len(), ALERTS_MAX);
        for n in 0..(FINISHED_ORDERS_MAX + 3) {
            let order = OrderState {
                account: 1,
                client_id: format!("m{n}.1.0"),
                signal: n as u64,
                symbol: "ES".into(),
                side: None,
                position: None,
                qty: 1,
                filled: 1,
                status: OrderStatus::Filled,
                reason: String::new(),
            };
            model.apply(T0, &deltas(2_000_000 + n as u64, vec![DeltaEvent::Order(order)]));
        }
        assert_eq!(model.finished_orders.len(), FINISHED_ORDERS_MAX);
    }

    #[test]
    fn alerts_for_drift_risk_guards_disconnects_and_drawdown_near_the_limit_newest_first() {
        let mut model = Model::new();
        let facts = EngineFacts::parse(
            "[risk.p]\nmax_daily_drawdown_pct = 2\n[[accounts]]\nname = \"acct-1\"\nplatform = \"sim\"\nrisk = \"p\"\n",
        )
        .unwrap();
        model.set_facts(facts);
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "10000"), account(2, "10000")]));
        assert_eq!(model.accounts[&1].platform.as_deref(), Some("sim"));
        assert_eq!(model.accounts[&2].limit_used_pct(), None, "no profile: no limit");
        model.apply(T0 + 1, &deltas(2, vec![DeltaEvent::Account(account(1, "9850"))]));
        assert!(model.alerts.is_empty(), "1.5% of 2% is 75%: not near yet");
        model.apply(T0 + 2, &deltas(3, vec![DeltaEvent::Account(account(1, "9830"))]));
        assert_eq!(model.alerts.front().map(|a| (a.kind, a.account)), Some((AlertKind::NearLimit, Some(1))));
        assert_eq!(model.accounts[&1].health(), Health::NearLimit);
        model.apply(T0 + 3, &deltas(4, vec![DeltaEvent::Account(account(1, "9820"))]));
        assert_eq!(model.alerts.len(), 1, "raised once per approach");
        model.apply(T0 + 4, &deltas(5, vec![DeltaEvent::Account(account(1, "9790"))]));
        assert_eq!(model.accounts[&1].health(), Health::AtLimit);

        let mut gone = account(2, "10000");
        gone.connected = false;
        model.apply(
            T0 + 5,
            &deltas(
                6,
                vec![
                    DeltaEvent::Account(gone.clone()),
                    DeltaEvent::Account(gone),
                    log(2, 0, "acct-2: reconciliation drift: ClosedByHand { .. }", 1),
                    log(1, 0, "acct-1: risk guard tripped: daily drawdown", 2),
                    log(1, 0, "acct-1: copied Buy 1 ES as m1.1.0", 3),
                ],
            ),
        );
        assert_eq!(model.accounts[&2].health(), Health::Disconnected);
        model.apply(T0 + 6, &deltas(11, vec![log(2, 0, "acct-2: global paused", 4)]));
        let mut back = account(2, "10000");
        back.connected = true;
        model.apply(T0 + 7, &deltas(12, vec![DeltaEvent::Account(back)]));
        assert_eq!(model.accounts[&2].health(), Health::Paused, "a global pause shows only in the log");
        model.apply(T0 + 8, &deltas(13, vec![log(2, 0, "acct-2: global resumed", 5)]));
        assert_eq!(model.accounts[&2].health(), Health::Ok);
        let kinds: Vec<AlertKind> = model.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::RiskGuard, AlertKind::Drift, AlertKind::Disconnected, AlertKind::NearLimit]);
    }

    #[test]
    fn fill_latency_runs_from_a_signals_first_record_on_the_account_to_its_first_fill() {
        let mut model = Model::new();
        model.apply(T0, &snapshot(1, SnapshotReason::Initial, vec![account(1, "10000")]));
        let fill = FillState {
            account: 1,
            client_id: "m5.1.0".into(),
            signal: 5,
            qty: 1,
            price: 1,
            position: 1,
            mono_ns: 4_500_000,
        };
        model.apply(
            T0,
            &deltas(
                2,
                vec![
                    log(1, 5, "acct-1: copied Buy 1 ES as m5.1.0", 1_000_000),
                    log(1, 5, "acct-1: m5.1.0 accepted", 2_000_000),
                    DeltaEvent::Fill(fill.clone()),
                    // The fill's own log line comes right after it: it must not start a new timer.
                    log(1, 5, "acct-1: m5.1.0 filled 1 at 1", 4_500_000),
                    DeltaEvent::Fill(FillState { mono_ns: 9_000_000, ..fill }),
                ],
            ),
        );
        assert_eq!(model.accounts[&1].fill_latency_ns, Some(3_500_000), "the first fill, from the first record");
        assert_eq!(model.pending_fills(), 0);
    }
}
