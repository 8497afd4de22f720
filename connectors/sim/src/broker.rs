//! The simulated broker: markets, accounts, order execution, SL/TP and pending triggers.
//!
//! All state sits behind one mutex and every event is enqueued on the account's stream while
//! that mutex is held, so a consumer always sees events in the order the broker produced them
//! (never a close before its open), whichever task caused them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_connector::{
    AccountSnapshot, BrokerSnapshot, CancelRequest, CloseRequest, ConnectionState, ConnectorError, ConnectorEvent,
    LookupState, ModifyRequest, OrderLookup, OrderReport, OrderReportKind, PlaceAck, Quote, RejectCode, RejectReason,
    WorkingOrder,
};
use mirror_model::{
    AccountMode, BrokerOrderId, ClientOrderId, Fill, InstrumentSpec, Money, OrderIntent, OrderKind, OrderRequest,
    Position, PositionBook, PositionChange, PositionId, Price, Qty, Rounding, Side, Symbol, TimeInForce,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::config::{SimAccountConfig, SimConfig, SimInstrument, SimMarket};

/// Client order ids remembered per account for idempotency (oldest forgotten first).
const CLIENT_IDS_REMEMBERED: usize = 100_000;
/// Money is booked in cents.
const MONEY_DECIMALS: u32 = 2;
/// Executions kept per account in its history (oldest dropped first).
const HISTORY_KEPT: usize = 100_000;

/// One execution as the broker recorded it: the account's trade history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimExecution {
    /// Mirror's id of the order (none for trades by hand and stop/target hits).
    pub client_id: Option<ClientOrderId>,
    /// The broker's order id.
    pub broker_id: BrokerOrderId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side of the execution.
    pub side: Side,
    /// Quantity.
    pub qty: Qty,
    /// Price.
    pub price: Price,
    /// The position it opened, added to or reduced.
    pub position: PositionId,
    /// Whether it opened/added (`true`) or reduced/closed (`false`).
    pub opening: bool,
}

/// A problem with a request to the simulator itself (not a broker refusal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No account of that name.
    #[error("the simulated broker has no account `{0}`")]
    UnknownAccount(String),
    /// An account of that name exists already.
    #[error("the simulated broker already has an account `{0}`")]
    DuplicateAccount(String),
    /// No feed of that name.
    #[error("the simulated broker has no market `{0}`")]
    UnknownMarket(Symbol),
    /// An instrument refers to a feed that does not exist, or has a bad spec.
    #[error("account `{account}`: {detail}")]
    BadInstrument {
        /// The account.
        account: String,
        /// What is wrong.
        detail: String,
    },
}

/// Counters of what the simulator did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Orders accepted (opens, closes, pending).
    pub orders: u64,
    /// Executions.
    pub fills: u64,
    /// Orders refused.
    pub rejects: u64,
    /// Quotes dropped because a consumer was behind.
    pub quotes_dropped: u64,
    /// Sessions cut because a consumer fell a whole stream behind.
    pub sessions_overflowed: u64,
    /// Positions closed by their stop loss or take profit.
    pub protection_hits: u64,
}

/// A handle on the simulated broker; cheap to clone.
#[derive(Clone)]
pub struct SimBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SimBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBroker").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

struct Shared {
    config: SimConfig,
    state: Mutex<State>,
}

struct State {
    rng: Xoshiro256PlusPlus,
    markets: BTreeMap<Symbol, Market>,
    accounts: BTreeMap<String, Account>,
    next_id: u64,
    stats: SimStats,
}

struct Market {
    bid: Price,
    tick: Price,
    spread_ticks: i64,
    volatility_ticks: i64,
}

impl Market {
    fn ask(&self) -> Price {
        Price::from_raw(self.bid.raw() + self.spread_ticks * self.tick.raw())
    }
}

struct Account {
    mode: AccountMode,
    currency: String,
    balance: Money,
    connected: bool,
    /// Number of the latest session opened (1, 2, …).
    epoch: u64,
    /// The epoch of the session that is up, or 0 when none is: how a network session learns
    /// that the broker cut it (`cut_session`, a consumer a whole stream behind).
    link: tokio::sync::watch::Sender<u64>,
    /// A login password (network sessions only), when set.
    password: Option<String>,
    instruments: BTreeMap<Symbol, SimInstrument>,
    book: PositionBook,
    working: BTreeMap<BrokerOrderId, Working>,
    client_ids: HashMap<ClientOrderId, (BrokerOrderId, Qty)>,
    client_id_order: VecDeque<ClientOrderId>,
    subscriptions: BTreeSet<Symbol>,
    tx: flume::Sender<ConnectorEvent>,
    rx: flume::Receiver<ConnectorEvent>,
    capacity: usize,
    last_equity: Money,
    history: VecDeque<SimExecution>,
}

/// An order resting at the broker (a pending order, or a market order's unfilled rest).
#[derive(Clone, Copy, Debug)]
struct Working {
    client_id: Option<ClientOrderId>,
    broker_id: BrokerOrderId,
    symbol: Symbol,
    side: Side,
    qty: Qty,
    filled: Qty,
    kind: OrderKind,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    time_in_force: TimeInForce,
    position: PositionId,
}

impl Working {
    fn listed(&self) -> WorkingOrder {
        WorkingOrder {
            client_id: self.client_id,
            broker_id: self.broker_id,
            symbol: self.symbol,
            side: self.side,
            qty: self.qty,
            filled_qty: self.filled,
            kind: self.kind,
            stop_loss: self.stop_loss,
            take_profit: self.take_profit,
            time_in_force: self.time_in_force,
        }
    }
}

/// What a network session of an account reads from (see [`SimBroker::begin_session`]).
#[derive(Debug)]
pub(crate) struct SessionStart {
    /// The session's number.
    pub(crate) epoch: u64,
    /// The epoch of the session that is up; the session ends when it is no longer its own.
    pub(crate) link: tokio::sync::watch::Receiver<u64>,
    /// The account's event stream, starting with `Connected`.
    pub(crate) events: flume::Receiver<ConnectorEvent>,
    /// The account's currency.
    pub(crate) currency: String,
    /// Netting or hedging.
    pub(crate) mode: AccountMode,
}

/// Work left after a call returns: the rest of a partially filled market order.
#[derive(Debug)]
pub(crate) struct Followup {
    account: String,
    order: BrokerOrderId,
    delay: Duration,
}

fn now_unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The account `name`, for a request that came through its session (`by_hand` false: the
/// session must be up) or from the user's own terminal (`by_hand` true).
fn session<'a>(
    accounts: &'a mut BTreeMap<String, Account>,
    name: &str,
    by_hand: bool,
) -> Result<&'a mut Account, ConnectorError> {
    let account = accounts
        .get_mut(name)
        .ok_or_else(|| ConnectorError::Protocol(format!("the simulated broker has no account `{name}`")))?;
    if !by_hand && !account.connected {
        return Err(ConnectorError::NotConnected);
    }
    Ok(account)
}

fn refuse(code: RejectCode, message: impl Into<String>) -> ConnectorError {
    ConnectorError::Rejected(RejectReason::new(code, message))
}

impl Account {
    /// Opens a new session: events flow again.
    fn go_up(&mut self) {
        self.epoch += 1;
        self.connected = true;
        self.link.send_replace(self.epoch);
    }

    /// Ends the session that is up, if any: nothing more is delivered.
    fn go_down(&mut self) {
        self.connected = false;
        self.link.send_replace(0);
    }

    fn emit(&mut self, event: ConnectorEvent, stats: &mut SimStats) {
        if !self.connected {
            // A real broker delivers nothing to a session that is down; the trader's side
            // reconciles after reconnecting.
            return;
        }
        if event.is_droppable() && self.tx.len() >= self.capacity / 2 {
            stats.quotes_dropped += 1;
            return;
        }
        if self.tx.try_send(event).is_err() {
            // The consumer is a whole stream behind: cut the session, as a real platform
            // does with a consumer that stops reading.
            self.go_down();
            stats.sessions_overflowed += 1;
            tracing::error!(
                capacity = self.capacity,
                "simulated session cut: the consumer fell a whole event stream behind"
            );
        }
    }

    fn remember(&mut self, client_id: ClientOrderId, broker_id: BrokerOrderId, qty: Qty) {
        self.client_ids.insert(client_id, (broker_id, qty));
        self.client_id_order.push_back(client_id);
        if self.client_id_order.len() > CLIENT_IDS_REMEMBERED
            && let Some(oldest) = self.client_id_order.pop_front()
        {
            self.client_ids.remove(&oldest);
        }
    }

    fn equity(&self, markets: &BTreeMap<Symbol, Market>) -> Money {
        let unrealized = self.book.unrealized_pnl(|symbol| {
            let instrument = self.instruments.get(symbol)?;
            let market = markets.get(&instrument.feed)?;
            Some((instrument.spec, market.bid, market.ask()))
        });
        self.balance + unrealized.round_dp(MONEY_DECIMALS, Rounding::Nearest)
    }

    fn snapshot(&self, markets: &BTreeMap<Symbol, Market>) -> AccountSnapshot {
        AccountSnapshot { balance: self.balance, equity: self.equity(markets), margin_used: Money::ZERO }
    }

    fn emit_account(&mut self, markets: &BTreeMap<Symbol, Market>, stats: &mut SimStats) {
        let snapshot = self.snapshot(markets);
        self.last_equity = snapshot.equity;
        self.emit(ConnectorEvent::Account(snapshot), stats);
    }
}

/// One execution of `qty` at `price`, applied to the book with every event it causes.
struct Execution {
    client_id: Option<ClientOrderId>,
    broker_id: BrokerOrderId,
    spec: InstrumentSpec,
    intent: OrderIntent,
    side: Side,
    qty: Qty,
    price: Price,
    position: PositionId,
    protection: (Option<Price>, Option<Price>),
}

fn execute(
    account: &mut Account,
    markets: &BTreeMap<Symbol, Market>,
    stats: &mut SimStats,
    execution: &Execution,
) -> Result<(), ConnectorError> {
    let mut effects = Vec::with_capacity(2);
    account
        .book
        .apply_execution(
            &execution.spec,
            execution.intent,
            execution.side,
            execution.qty,
            execution.price,
            execution.position,
            execution.protection,
            &mut effects,
        )
        .map_err(|error| refuse(RejectCode::NotFound, error.to_string()))?;
    stats.fills += 1;
    let time_unix_ms = now_unix_ms();
    for effect in &mut effects {
        // A broker books money in the account currency's minor unit.
        effect.realized_pnl = effect.realized_pnl.round_dp(MONEY_DECIMALS, Rounding::Nearest);
        account.balance += effect.realized_pnl;
        let (qty, opening) = match effect.change {
            PositionChange::Opened => (effect.position.qty, true),
            PositionChange::Increased { added } => (added, true),
            PositionChange::Reduced { closed, .. } | PositionChange::Closed { closed } => (closed, false),
            PositionChange::ProtectionChanged => continue,
        };
        account.history.push_back(SimExecution {
            client_id: execution.client_id,
            broker_id: execution.broker_id,
            symbol: execution.spec.symbol,
            side: execution.side,
            qty,
            price: execution.price,
            position: effect.position.id,
            opening,
        });
        if account.history.len() > HISTORY_KEPT {
            account.history.pop_front();
        }
        let report = OrderReport {
            client_id: execution.client_id,
            broker_id: execution.broker_id,
            symbol: execution.spec.symbol,
            side: execution.side,
            kind: OrderReportKind::Filled(Fill { qty, price: execution.price, position: effect.position.id }),
            time_unix_ms,
        };
        account.emit(ConnectorEvent::Order(report), stats);
    }
    for effect in effects {
        account.emit(ConnectorEvent::Position(effect), stats);
    }
    account.emit_account(markets, stats);
    Ok(())
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn latency(&mut self, config: &SimConfig) -> Duration {
        if config.latency_max <= config.latency_min {
            return config.latency_min;
        }
        let min = u64::try_from(config.latency_min.as_micros()).unwrap_or(u64::MAX);
        let max = u64::try_from(config.latency_max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.rng.random_range(min..=max))
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random_bool(probability.min(1.0))
    }

    fn slippage(&mut self, config: &SimConfig, tick: Price, side: Side) -> Price {
        if config.slippage_ticks_max == 0 {
            return Price::ZERO;
        }
        let ticks = i64::from(self.rng.random_range(0..=config.slippage_ticks_max));
        // Adverse: a buy pays more, a sell gets less.
        Price::from_raw(ticks * tick.raw() * side.sign())
    }
}

/// Where a market order on `side` fills now.
fn market_price(market: &Market, side: Side, slippage: Price) -> Price {
    let base = match side {
        Side::Buy => market.ask(),
        Side::Sell => market.bid,
    };
    (base + slippage).max(market.tick)
}

/// Whether a pending order triggers at the market's prices now, and where it fills.
fn trigger_price(kind: OrderKind, side: Side, market: &Market) -> Option<Price> {
    let (bid, ask) = (market.bid, market.ask());
    match (kind, side) {
        (OrderKind::Limit { price }, Side::Buy) if ask <= price => Some(ask),
        (OrderKind::Limit { price }, Side::Sell) if bid >= price => Some(bid),
        (OrderKind::Stop { price }, Side::Buy) if ask >= price => Some(ask),
        (OrderKind::Stop { price }, Side::Sell) if bid <= price => Some(bid),
        _ => None,
    }
}

/// Checks SL/TP against the side of the market a close would trade at.
fn check_stops(
    side: Side,
    bid: Price,
    ask: Price,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
) -> Result<(), ConnectorError> {
    let close_at = match side {
        Side::Buy => bid,
        Side::Sell => ask,
    };
    let sign = side.sign();
    if let Some(level) = stop_loss
        && (level.raw() - close_at.raw()).signum() != -sign
    {
        return Err(refuse(
            RejectCode::InvalidStops,
            format!("stop loss {level} must be on the losing side of the market {close_at} for a {side}"),
        ));
    }
    if let Some(level) = take_profit
        && (level.raw() - close_at.raw()).signum() != sign
    {
        return Err(refuse(
            RejectCode::InvalidStops,
            format!("take profit {level} must be on the winning side of the market {close_at} for a {side}"),
        ));
    }
    Ok(())
}

impl SimBroker {
    /// A broker with these markets and no accounts.
    pub fn new(config: SimConfig, markets: impl IntoIterator<Item = SimMarket>) -> Self {
        let markets = markets
            .into_iter()
            .map(|m| {
                (
                    m.symbol,
                    Market {
                        bid: m.bid,
                        tick: m.tick_size,
                        spread_ticks: i64::from(m.spread_ticks),
                        volatility_ticks: i64::from(m.volatility_ticks),
                    },
                )
            })
            .collect();
        let state = State {
            rng: Xoshiro256PlusPlus::seed_from_u64(config.seed),
            markets,
            accounts: BTreeMap::new(),
            next_id: 1_000,
            stats: SimStats::default(),
        };
        Self { shared: Arc::new(Shared { config, state: Mutex::new(state) }) }
    }

    /// The broker's settings.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-written that matters more than
        // stopping the simulation, so a poisoned lock is taken over.
        self.shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens an account.
    pub fn open_account(&self, config: SimAccountConfig) -> Result<(), SimError> {
        let mut state = self.lock();
        if state.accounts.contains_key(&config.name) {
            return Err(SimError::DuplicateAccount(config.name));
        }
        let mut instruments = BTreeMap::new();
        for instrument in config.instruments {
            if !state.markets.contains_key(&instrument.feed) {
                return Err(SimError::BadInstrument {
                    account: config.name.clone(),
                    detail: format!(
                        "{} is priced by market {}, which does not exist",
                        instrument.spec.symbol, instrument.feed
                    ),
                });
            }
            instrument
                .spec
                .validate()
                .map_err(|error| SimError::BadInstrument { account: config.name.clone(), detail: error.to_string() })?;
            instruments.insert(instrument.spec.symbol, instrument);
        }
        let capacity = self.shared.config.event_capacity.max(16);
        let (tx, rx) = flume::bounded(capacity);
        state.accounts.insert(
            config.name,
            Account {
                mode: config.mode,
                currency: config.currency,
                balance: config.balance,
                connected: false,
                epoch: 0,
                link: tokio::sync::watch::Sender::new(0),
                password: None,
                instruments,
                book: PositionBook::new(config.mode),
                working: BTreeMap::new(),
                client_ids: HashMap::new(),
                client_id_order: VecDeque::new(),
                subscriptions: BTreeSet::new(),
                tx,
                rx,
                capacity,
                last_equity: config.balance,
                history: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Names of every account.
    pub fn account_names(&self) -> Vec<String> {
        self.lock().accounts.keys().cloned().collect()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// Best bid and ask of a feed.
    pub fn quote(&self, feed: &Symbol) -> Option<(Price, Price)> {
        self.lock().markets.get(feed).map(|m| (m.bid, m.ask()))
    }

    /// The open positions of an account (for tests and the demo's summary).
    pub fn positions(&self, account: &str) -> Result<Vec<Position>, SimError> {
        let state = self.lock();
        let account = state.accounts.get(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        Ok(account.book.positions().copied().collect())
    }

    /// The account's executions, oldest first.
    pub fn history(&self, account: &str) -> Result<Vec<SimExecution>, SimError> {
        let state = self.lock();
        let account = state.accounts.get(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        Ok(account.history.iter().copied().collect())
    }

    /// Balance and equity of an account.
    pub fn account_snapshot(&self, account: &str) -> Result<AccountSnapshot, SimError> {
        let state = self.lock();
        let found = state.accounts.get(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        Ok(found.snapshot(&state.markets))
    }

    fn with_account<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Account, &BTreeMap<Symbol, Market>, &mut SimStats) -> Result<T, ConnectorError>,
    ) -> Result<T, ConnectorError> {
        let mut state = self.lock();
        let State { accounts, markets, stats, .. } = &mut *state;
        let account = session(accounts, name, true)?;
        f(account, markets, stats)
    }

    pub(crate) fn events(&self, account: &str) -> Result<flume::Receiver<ConnectorEvent>, SimError> {
        let state = self.lock();
        let found = state.accounts.get(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        Ok(found.rx.clone())
    }

    pub(crate) fn set_connected(&self, account: &str, connected: bool, reason: &str) -> Result<(), ConnectorError> {
        self.with_account(account, |account, _, stats| {
            if account.connected == connected {
                return Ok(());
            }
            if connected {
                account.go_up();
                account.emit(ConnectorEvent::Connection(ConnectionState::Connected), stats);
            } else {
                account.emit(
                    ConnectorEvent::Connection(ConnectionState::Disconnected { reason: reason.to_owned() }),
                    stats,
                );
                account.go_down();
            }
            Ok(())
        })
    }

    pub(crate) fn is_connected(&self, account: &str) -> bool {
        self.lock().accounts.get(account).is_some_and(|a| a.connected)
    }

    /// Drops an account's session as a network failure would (the engine should reconnect).
    pub fn cut_session(&self, account: &str) -> Result<(), SimError> {
        let mut state = self.lock();
        let State { accounts, stats, .. } = &mut *state;
        let found = accounts.get_mut(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        found.emit(
            ConnectorEvent::Connection(ConnectionState::Reconnecting {
                reason: "simulated network failure".to_owned(),
            }),
            stats,
        );
        found.go_down();
        Ok(())
    }

    /// Opens a network session on an account (see `SimServer`): forgets the events the last
    /// session left undelivered (a real platform's session dies with its connection), puts the
    /// account up, enqueues `Connected` first in the fresh stream and returns what the session
    /// reads from. Whatever session was up is ended.
    pub(crate) fn begin_session(&self, account: &str) -> Result<SessionStart, SimError> {
        let mut state = self.lock();
        let State { accounts, stats, .. } = &mut *state;
        let found = accounts.get_mut(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        found.go_down();
        let stale = found.rx.drain().count();
        if stale > 0 {
            tracing::debug!(account, stale, "events of an earlier session discarded");
        }
        found.go_up();
        found.emit(ConnectorEvent::Connection(ConnectionState::Connected), stats);
        Ok(SessionStart {
            epoch: found.epoch,
            link: found.link.subscribe(),
            events: found.rx.clone(),
            currency: found.currency.clone(),
            mode: found.mode,
        })
    }

    /// Ends the network session `epoch` of an account, unless a newer one is up already.
    pub(crate) fn end_session(&self, account: &str, epoch: u64) {
        let mut state = self.lock();
        if let Some(found) = state.accounts.get_mut(account)
            && found.epoch == epoch
            && found.connected
        {
            found.go_down();
        }
    }

    /// Requires this password for network sessions of an account (`None`: no password).
    pub fn set_password(&self, account: &str, password: Option<&str>) -> Result<(), SimError> {
        let mut state = self.lock();
        let found = state.accounts.get_mut(account).ok_or_else(|| SimError::UnknownAccount(account.to_owned()))?;
        found.password = password.map(str::to_owned);
        Ok(())
    }

    /// Whether `given` opens a network session of the account.
    pub(crate) fn password_matches(&self, account: &str, given: Option<&str>) -> bool {
        let state = self.lock();
        state.accounts.get(account).is_some_and(|found| match &found.password {
            None => true,
            Some(expected) => given.is_some_and(|given| given.as_bytes() == expected.as_bytes()),
        })
    }

    pub(crate) fn session_info(&self, account: &str) -> Result<(String, AccountMode), ConnectorError> {
        self.with_account(account, |account, _, _| Ok((account.currency.clone(), account.mode)))
    }

    pub(crate) fn instruments(&self, account: &str) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        self.with_account(account, |account, _, _| Ok(account.instruments.values().map(|i| i.spec).collect()))
    }

    pub(crate) fn snapshot(&self, account: &str) -> Result<AccountSnapshot, ConnectorError> {
        self.with_account(account, |account, markets, _| Ok(account.snapshot(markets)))
    }

    pub(crate) fn working_orders(&self, account: &str) -> Result<Vec<WorkingOrder>, ConnectorError> {
        self.with_account(account, |account, _, _| Ok(account.working.values().map(Working::listed).collect()))
    }

    pub(crate) fn order_history(
        &self,
        account: &str,
        ids: &[ClientOrderId],
    ) -> Result<Vec<OrderLookup>, ConnectorError> {
        self.with_account(account, |account, _, _| {
            let mut found = Vec::new();
            for client_id in ids {
                let Some((broker_id, qty)) = account.client_ids.get(client_id).copied() else { continue };
                let fills: Vec<Fill> = account
                    .history
                    .iter()
                    .filter(|e| e.broker_id == broker_id)
                    .map(|e| Fill { qty: e.qty, price: e.price, position: e.position })
                    .collect();
                let filled = fills.iter().fold(Qty::ZERO, |sum, f| sum + f.qty);
                let state = if account.working.contains_key(&broker_id) {
                    LookupState::Working
                } else if filled == qty {
                    LookupState::Filled
                } else {
                    LookupState::Cancelled
                };
                found.push(OrderLookup { client_id: *client_id, broker_id, state, qty, fills });
            }
            Ok(found)
        })
    }

    /// Reads the account's state and enqueues it as a snapshot event under the same lock, so
    /// it sits in the stream exactly where it was read.
    pub(crate) fn request_snapshot(&self, account: &str) -> Result<(), ConnectorError> {
        self.with_account(account, |account, markets, stats| {
            let snapshot = BrokerSnapshot {
                positions: account.book.positions().copied().collect(),
                orders: account.working.values().map(Working::listed).collect(),
                account: account.snapshot(markets),
            };
            account.emit(ConnectorEvent::Snapshot(Box::new(snapshot)), stats);
            Ok(())
        })
    }

    pub(crate) fn open_positions(&self, account: &str) -> Result<Vec<Position>, ConnectorError> {
        self.with_account(account, |account, _, _| Ok(account.book.positions().copied().collect()))
    }

    pub(crate) fn subscribe(&self, account: &str, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        self.with_account(account, |account, markets, stats| {
            for symbol in symbols {
                let instrument = *account
                    .instruments
                    .get(symbol)
                    .ok_or_else(|| refuse(RejectCode::UnknownSymbol, format!("no symbol {symbol}")))?;
                account.subscriptions.insert(*symbol);
                if let Some(market) = markets.get(&instrument.feed) {
                    let quote =
                        Quote { symbol: *symbol, bid: market.bid, ask: market.ask(), time_unix_ms: now_unix_ms() };
                    account.emit(ConnectorEvent::Quote(quote), stats);
                }
            }
            Ok(())
        })
    }

    /// How long the next request waits before the broker handles it.
    pub(crate) fn next_latency(&self) -> Duration {
        let config = &self.shared.config;
        if config.latency_max.is_zero() {
            return Duration::ZERO;
        }
        self.lock().latency(config)
    }

    /// Places an order (from the connector, or by hand when `client_id` is `None`).
    pub(crate) fn place(
        &self,
        account_name: &str,
        request: &OrderRequest,
        by_hand: bool,
    ) -> Result<(PlaceAck, Option<Followup>), ConnectorError> {
        if let OrderIntent::Close { position } = request.intent {
            // A closing order is a close of that position, whatever the account's mode.
            let close =
                CloseRequest { client_id: request.client_id, position, symbol: request.symbol, qty: request.qty };
            return self.close(account_name, &close, by_hand).map(|ack| (ack, None));
        }
        let config = &self.shared.config;
        let mut guard = self.lock();
        let state = &mut *guard;
        let account = session(&mut state.accounts, account_name, by_hand)?;
        let client_id = (!by_hand).then_some(request.client_id);
        if let Some(client_id) = client_id
            && let Some(existing) = account.client_ids.get(&client_id)
        {
            // Idempotent resend: the order exists already; nothing new happens.
            return Ok((PlaceAck { broker_id: existing.0 }, None));
        }
        let Some(instrument) = account.instruments.get(&request.symbol).copied() else {
            state.stats.rejects += 1;
            return Err(refuse(RejectCode::UnknownSymbol, format!("no symbol {}", request.symbol)));
        };
        let spec = instrument.spec;
        if !spec.qty_is_tradable(request.qty) {
            state.stats.rejects += 1;
            return Err(refuse(
                RejectCode::InvalidQty,
                format!(
                    "quantity {} is not a multiple of {} between {} and {}",
                    request.qty, spec.lot_step, spec.min_qty, spec.max_qty
                ),
            ));
        }
        if let Some(price) = request.kind.price()
            && (!price.is_positive() || !spec.price_is_on_tick(price))
        {
            state.stats.rejects += 1;
            return Err(refuse(
                RejectCode::InvalidPrice,
                format!("price {price} is not on the {} tick grid", spec.tick_size),
            ));
        }
        let market = &state.markets[&instrument.feed];
        let entry_side_market = trigger_price(request.kind, request.side, market);
        // Stops are judged against where the position would stand: the market for a market
        // order, the order's own price for a resting one.
        let (bid, ask) = match request.kind.price() {
            Some(price) if entry_side_market.is_none() => (price, price),
            _ => (market.bid, market.ask()),
        };
        if let Err(error) = check_stops(request.side, bid, ask, request.stop_loss, request.take_profit) {
            state.stats.rejects += 1;
            return Err(error);
        }
        if !by_hand && state.chance(config.reject_probability) {
            state.stats.rejects += 1;
            return Err(refuse(RejectCode::Other, "simulated broker reject (reject_probability)"));
        }
        let broker_id = BrokerOrderId(state.next_id());
        let position = PositionId(state.next_id());
        state.stats.orders += 1;
        let account = state.accounts.get_mut(account_name).expect("looked up above");
        if let Some(client_id) = client_id {
            account.remember(client_id, broker_id, request.qty);
        }
        let working = Working {
            client_id,
            broker_id,
            symbol: request.symbol,
            side: request.side,
            qty: request.qty,
            filled: Qty::ZERO,
            kind: request.kind,
            stop_loss: request.stop_loss,
            take_profit: request.take_profit,
            time_in_force: request.time_in_force,
            position,
        };
        let ack = PlaceAck { broker_id };
        let followup = match request.kind {
            OrderKind::Market => fill_market(state, account_name, working, config, !by_hand)?,
            OrderKind::Limit { .. } | OrderKind::Stop { .. } => {
                let market = &state.markets[&instrument.feed];
                match trigger_price(request.kind, request.side, market) {
                    Some(price) => {
                        let account = state.accounts.get_mut(account_name).expect("looked up above");
                        let execution = Execution {
                            client_id,
                            broker_id,
                            spec,
                            intent: OrderIntent::Open,
                            side: request.side,
                            qty: request.qty,
                            price,
                            position,
                            protection: (request.stop_loss, request.take_profit),
                        };
                        execute(account, &state.markets, &mut state.stats, &execution)?;
                    }
                    None => {
                        let account = state.accounts.get_mut(account_name).expect("looked up above");
                        account.working.insert(broker_id, working);
                        account.emit(ConnectorEvent::Working(working.listed()), &mut state.stats);
                    }
                }
                None
            }
        };
        Ok((ack, followup))
    }
}

/// Fills a market order now, in full or (by chance, when `may_split`) in part, leaving the
/// rest working for a [`Followup`].
fn fill_market(
    state: &mut State,
    account_name: &str,
    working: Working,
    config: &SimConfig,
    may_split: bool,
) -> Result<Option<Followup>, ConnectorError> {
    let account = &state.accounts[account_name];
    let instrument = account.instruments[&working.symbol];
    let spec = instrument.spec;
    let steps = working.qty.raw() / spec.lot_step.raw();
    let split = may_split && steps >= 2 && state.chance(config.partial_fill_probability);
    let first = if split { Qty::from_raw(state.rng.random_range(1..steps) * spec.lot_step.raw()) } else { working.qty };
    let tick = state.markets[&instrument.feed].tick;
    let slippage = state.slippage(config, tick, working.side);
    let price = market_price(&state.markets[&instrument.feed], working.side, slippage);
    let delay = state.latency(config);
    let account = state.accounts.get_mut(account_name).expect("exists");
    let execution = Execution {
        client_id: working.client_id,
        broker_id: working.broker_id,
        spec,
        intent: OrderIntent::Open,
        side: working.side,
        qty: first,
        price,
        position: working.position,
        protection: (working.stop_loss, working.take_profit),
    };
    execute(account, &state.markets, &mut state.stats, &execution)?;
    if first == working.qty {
        return Ok(None);
    }
    account.working.insert(working.broker_id, Working { filled: first, ..working });
    Ok(Some(Followup { account: account_name.to_owned(), order: working.broker_id, delay }))
}

impl SimBroker {
    /// Fills what is left of a partially filled market order, unless it was cancelled.
    pub(crate) async fn run_followup(&self, followup: Followup) {
        tokio::time::sleep(followup.delay).await;
        let config = &self.shared.config;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(account) = state.accounts.get_mut(&followup.account) else {
            return;
        };
        let Some(working) = account.working.remove(&followup.order) else {
            return;
        };
        let instrument = account.instruments[&working.symbol];
        let tick = state.markets[&instrument.feed].tick;
        let slippage = state.slippage(config, tick, working.side);
        let price = market_price(&state.markets[&instrument.feed], working.side, slippage);
        let account = state.accounts.get_mut(&followup.account).expect("exists");
        let execution = Execution {
            client_id: working.client_id,
            broker_id: working.broker_id,
            spec: instrument.spec,
            intent: OrderIntent::Open,
            side: working.side,
            qty: working.qty - working.filled,
            price,
            position: working.position,
            protection: (working.stop_loss, working.take_profit),
        };
        if let Err(error) = execute(account, &state.markets, &mut state.stats, &execution) {
            tracing::warn!(%error, "simulated remainder fill failed");
        }
    }

    pub(crate) fn close(
        &self,
        account_name: &str,
        request: &CloseRequest,
        by_hand: bool,
    ) -> Result<PlaceAck, ConnectorError> {
        let config = &self.shared.config;
        let mut guard = self.lock();
        let state = &mut *guard;
        let account = session(&mut state.accounts, account_name, by_hand)?;
        let client_id = (!by_hand).then_some(request.client_id);
        if let Some(client_id) = client_id
            && let Some(existing) = account.client_ids.get(&client_id)
        {
            return Ok(PlaceAck { broker_id: existing.0 });
        }
        let Some(position) = account.book.get(request.position).copied() else {
            state.stats.rejects += 1;
            return Err(refuse(RejectCode::NotFound, format!("no open position {}", request.position)));
        };
        let instrument = account.instruments[&position.symbol];
        let spec = instrument.spec;
        let whole = request.qty == position.qty;
        if !request.qty.is_positive()
            || request.qty > position.qty
            || (!whole && (request.qty.raw() % spec.lot_step.raw() != 0 || request.qty < spec.min_qty))
        {
            state.stats.rejects += 1;
            return Err(refuse(
                RejectCode::InvalidQty,
                format!("cannot close {} of {} open on position {}", request.qty, position.qty, position.id),
            ));
        }
        let broker_id = BrokerOrderId(state.next_id());
        state.stats.orders += 1;
        let side = position.side.opposite();
        let tick = state.markets[&instrument.feed].tick;
        let slippage = state.slippage(config, tick, side);
        let price = market_price(&state.markets[&instrument.feed], side, slippage);
        let account = state.accounts.get_mut(account_name).expect("looked up above");
        if let Some(client_id) = client_id {
            account.remember(client_id, broker_id, request.qty);
        }
        let execution = Execution {
            client_id,
            broker_id,
            spec,
            intent: OrderIntent::Close { position: position.id },
            side,
            qty: request.qty,
            price,
            position: position.id,
            protection: (None, None),
        };
        execute(account, &state.markets, &mut state.stats, &execution)?;
        Ok(PlaceAck { broker_id })
    }

    pub(crate) fn modify(
        &self,
        account_name: &str,
        request: &ModifyRequest,
        by_hand: bool,
    ) -> Result<(), ConnectorError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let account = session(&mut state.accounts, account_name, by_hand)?;
        let Some(position) = account.book.get(request.position).copied() else {
            return Err(refuse(RejectCode::NotFound, format!("no open position {}", request.position)));
        };
        let instrument = account.instruments[&position.symbol];
        let market = &state.markets[&instrument.feed];
        for level in [request.stop_loss, request.take_profit].into_iter().flatten() {
            if !level.is_positive() || !instrument.spec.price_is_on_tick(level) {
                return Err(refuse(
                    RejectCode::InvalidPrice,
                    format!("{level} is not on the {} tick grid", instrument.spec.tick_size),
                ));
            }
        }
        check_stops(position.side, market.bid, market.ask(), request.stop_loss, request.take_profit)?;
        let effect = account
            .book
            .set_protection(request.position, request.stop_loss, request.take_profit)
            .map_err(|error| refuse(RejectCode::NotFound, error.to_string()))?;
        account.emit(ConnectorEvent::Position(effect), &mut state.stats);
        Ok(())
    }

    pub(crate) fn cancel(
        &self,
        account_name: &str,
        request: &CancelRequest,
        by_hand: bool,
    ) -> Result<(), ConnectorError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let account = session(&mut state.accounts, account_name, by_hand)?;
        let found = account
            .working
            .values()
            .find(|w| Some(w.broker_id) == request.broker_id || (!by_hand && w.client_id == Some(request.client_id)))
            .map(|w| w.broker_id);
        let Some(broker_id) = found else {
            return Err(refuse(RejectCode::NotFound, format!("no working order {}", request.client_id)));
        };
        let working = account.working.remove(&broker_id).expect("found above");
        let report = OrderReport {
            client_id: working.client_id,
            broker_id,
            symbol: working.symbol,
            side: working.side,
            kind: OrderReportKind::Cancelled,
            time_unix_ms: now_unix_ms(),
        };
        account.emit(ConnectorEvent::Order(report), &mut state.stats);
        Ok(())
    }

    /// Sets a feed's bid (the ask follows at the configured spread) and runs everything a
    /// price change causes: quotes, pending triggers, SL/TP, equity.
    pub fn set_price(&self, feed: &Symbol, bid: Price) -> Result<(), SimError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let market = state.markets.get_mut(feed).ok_or(SimError::UnknownMarket(*feed))?;
        market.bid = bid.max(market.tick);
        let moved = BTreeSet::from([*feed]);
        self.after_move(state, &moved);
        Ok(())
    }

    /// Moves every feed one random-walk step.
    pub fn step(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut moved = BTreeSet::new();
        let feeds: Vec<Symbol> = state.markets.keys().copied().collect();
        for feed in feeds {
            let volatility = state.markets[&feed].volatility_ticks;
            if volatility == 0 {
                continue;
            }
            let ticks = state.rng.random_range(-volatility..=volatility);
            let market = state.markets.get_mut(&feed).expect("listed above");
            let bid = Price::from_raw(market.bid.raw() + ticks * market.tick.raw());
            market.bid = bid.max(market.tick);
            moved.insert(feed);
        }
        self.after_move(state, &moved);
    }

    fn after_move(&self, state: &mut State, moved: &BTreeSet<Symbol>) {
        let config = &self.shared.config;
        let names: Vec<String> = state.accounts.keys().cloned().collect();
        for name in names {
            let account = state.accounts.get_mut(&name).expect("listed above");
            let touched: Vec<SimInstrument> =
                account.instruments.values().filter(|i| moved.contains(&i.feed)).copied().collect();
            if touched.is_empty() {
                continue;
            }
            let time_unix_ms = now_unix_ms();
            for instrument in &touched {
                if account.subscriptions.contains(&instrument.spec.symbol) {
                    let market = &state.markets[&instrument.feed];
                    let quote =
                        Quote { symbol: instrument.spec.symbol, bid: market.bid, ask: market.ask(), time_unix_ms };
                    account.emit(ConnectorEvent::Quote(quote), &mut state.stats);
                }
            }
            self.trigger_pending(state, &name, &touched, config);
            self.trigger_protection(state, &name, &touched);
            let account = state.accounts.get_mut(&name).expect("listed above");
            if account.book.positions().next().is_some() {
                let equity = account.equity(&state.markets);
                if equity != account.last_equity {
                    account.emit_account(&state.markets, &mut state.stats);
                }
            }
        }
    }

    fn trigger_pending(&self, state: &mut State, name: &str, touched: &[SimInstrument], config: &SimConfig) {
        let account = &state.accounts[name];
        let due: Vec<(Working, Price, SimInstrument)> = account
            .working
            .values()
            .filter_map(|working| {
                let instrument = touched.iter().find(|i| i.spec.symbol == working.symbol)?;
                let market = &state.markets[&instrument.feed];
                let price = trigger_price(working.kind, working.side, market)?;
                Some((*working, price, *instrument))
            })
            .collect();
        for (working, price, instrument) in due {
            let slippage = match working.kind {
                OrderKind::Stop { .. } => state.slippage(config, instrument.spec.tick_size, working.side),
                _ => Price::ZERO,
            };
            let account = state.accounts.get_mut(name).expect("exists");
            account.working.remove(&working.broker_id);
            let execution = Execution {
                client_id: working.client_id,
                broker_id: working.broker_id,
                spec: instrument.spec,
                intent: OrderIntent::Open,
                side: working.side,
                qty: working.qty - working.filled,
                price: (price + slippage).max(instrument.spec.tick_size),
                position: working.position,
                protection: (working.stop_loss, working.take_profit),
            };
            if let Err(error) = execute(account, &state.markets, &mut state.stats, &execution) {
                tracing::warn!(%error, "simulated pending fill failed");
            }
        }
    }

    fn trigger_protection(&self, state: &mut State, name: &str, touched: &[SimInstrument]) {
        let account = &state.accounts[name];
        let hits: Vec<(Position, Price, SimInstrument)> = account
            .book
            .positions()
            .filter_map(|position| {
                let instrument = touched.iter().find(|i| i.spec.symbol == position.symbol)?;
                let market = &state.markets[&instrument.feed];
                let (close_at, sign) = match position.side {
                    Side::Buy => (market.bid, 1),
                    Side::Sell => (market.ask(), -1),
                };
                let stop_hit = position.stop_loss.is_some_and(|sl| (close_at.raw() - sl.raw()) * sign <= 0);
                let target_hit = position.take_profit.is_some_and(|tp| (close_at.raw() - tp.raw()) * sign >= 0);
                (stop_hit || target_hit).then_some((*position, close_at, *instrument))
            })
            .collect();
        for (position, price, instrument) in hits {
            let broker_id = BrokerOrderId(state.next_id());
            state.stats.protection_hits += 1;
            let account = state.accounts.get_mut(name).expect("exists");
            let execution = Execution {
                client_id: None,
                broker_id,
                spec: instrument.spec,
                intent: OrderIntent::Close { position: position.id },
                side: position.side.opposite(),
                qty: position.qty,
                price,
                position: position.id,
                protection: (None, None),
            };
            if let Err(error) = execute(account, &state.markets, &mut state.stats, &execution) {
                tracing::warn!(%error, "simulated stop/target close failed");
            }
        }
    }

    /// Starts moving prices every `tick_interval` (when configured). Returns the task; abort
    /// it to stop.
    pub fn start_ticker(&self) -> Option<tokio::task::JoinHandle<()>> {
        let interval = self.shared.config.tick_interval?;
        let broker = self.clone();
        Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                broker.step();
            }
        }))
    }

    /// The user trades by hand on an account (a leader's own trading): an order with no
    /// Mirror client id, executed at once.
    #[allow(clippy::too_many_arguments)]
    pub fn manual_order(
        &self,
        account: &str,
        symbol: Symbol,
        side: Side,
        qty: Qty,
        kind: OrderKind,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<BrokerOrderId, ConnectorError> {
        let request = OrderRequest {
            client_id: ClientOrderId::new(mirror_model::SignalId(0), mirror_model::AccountId(0), 0),
            symbol,
            side,
            qty,
            kind,
            stop_loss,
            take_profit,
            time_in_force: TimeInForce::Gtc,
            intent: OrderIntent::Open,
        };
        // Orders by hand never split, so there is no follow-up to run.
        let (ack, _) = self.place(account, &request, true)?;
        Ok(ack.broker_id)
    }

    /// The user closes all or part of a position by hand.
    pub fn manual_close(&self, account: &str, position: PositionId, qty: Qty) -> Result<(), ConnectorError> {
        let symbol = self
            .with_account(account, |a, _, _| Ok(a.book.get(position).map(|p| p.symbol)))?
            .ok_or_else(|| refuse(RejectCode::NotFound, format!("no open position {position}")))?;
        let request = CloseRequest {
            client_id: ClientOrderId::new(mirror_model::SignalId(0), mirror_model::AccountId(0), 0),
            position,
            symbol,
            qty,
        };
        self.close(account, &request, true).map(|_| ())
    }

    /// The user moves a position's stop loss and take profit by hand.
    pub fn manual_modify(
        &self,
        account: &str,
        position: PositionId,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<(), ConnectorError> {
        let symbol = self
            .with_account(account, |a, _, _| Ok(a.book.get(position).map(|p| p.symbol)))?
            .ok_or_else(|| refuse(RejectCode::NotFound, format!("no open position {position}")))?;
        self.modify(account, &ModifyRequest { position, symbol, stop_loss, take_profit }, true)
    }

    /// The user cancels a pending order by hand.
    pub fn manual_cancel(&self, account: &str, order: BrokerOrderId) -> Result<(), ConnectorError> {
        let request = CancelRequest {
            client_id: ClientOrderId::new(mirror_model::SignalId(0), mirror_model::AccountId(0), 0),
            broker_id: Some(order),
        };
        self.cancel(account, &request, true)
    }

    /// The instrument an account trades under `symbol`, and its feed.
    pub fn instrument(&self, account: &str, symbol: &Symbol) -> Option<SimInstrument> {
        self.lock().accounts.get(account)?.instruments.get(symbol).copied()
    }
}
