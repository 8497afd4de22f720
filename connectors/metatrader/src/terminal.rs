//! One terminal as the bridge holds it: its session (if any), its book, the commands awaiting
//! an answer, and its event stream.
//!
//! Event order: only the session's reader task produces broker events, one frame at a time,
//! and it waits for room in the event stream rather than drop anything (back-pressure reaches
//! the terminal through TCP); quotes alone are dropped when the stream is more than half full.
//!
//! Commands in flight when a session drops keep their place in the outbox. When the terminal
//! is back, its snapshot's journal (`done`) says which of them it executed: those are
//! reported from the journal and the book's difference; the others are sent again (the EA
//! checks its journal once more before executing), unless the resend window has passed, in
//! which case they are reported as rejected.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use mirror_connector::{
    AccountSnapshot, BrokerSnapshot, ConnectionState, ConnectorError, ConnectorEvent, EventStream, OrderReport,
    OrderReportKind, RejectCode, RejectReason, SessionInfo, WorkingOrder,
};
use mirror_model::{
    AccountMode, BrokerOrderId, ClientOrderId, InstrumentSpec, Platform, Position, PositionId, Qty, Side, Symbol,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::book::{At, Book, Executed};
use crate::bridge::{Counters, Settings, Shared, TerminalConfig};
use crate::protocol::{
    Ack, Cmd, EngineMessage, Hello, MarginMode, Snapshot, Subscribe, SyncRequest, TerminalMessage, WireSymbol,
};
use crate::transport::{LinkError, now_unix_ms};
use crate::{cid, mapping};

/// Client ids whose fill arrived in a `deal`, remembered so that a journal entry for the same
/// order after a reconnect is not reported twice. Oldest forgotten first.
const RECENT_FILLS: usize = 4_096;

/// How often a stalled event stream is logged while the reader waits for room.
const STALL_WARNING: Duration = Duration::from_secs(5);

/// The order a command places or closes, for reports the bridge makes itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OrderInfo {
    pub(crate) client_id: ClientOrderId,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
}

struct Pending {
    cmd: Cmd,
    operation: &'static str,
    order: Option<OrderInfo>,
    /// The caller waiting for the answer; `None` once it gave up (timeout, dropped session).
    reply: Option<oneshot::Sender<Result<Ack, ConnectorError>>>,
    first_sent: Instant,
}

struct Live {
    id: u64,
    out: mpsc::Sender<EngineMessage>,
    close: Arc<watch::Sender<bool>>,
    synced: bool,
}

struct State {
    /// The engine wants this terminal (`connect`); `disconnect` clears it.
    enabled: bool,
    session: Option<Live>,
    hello: Option<Hello>,
    book: Book,
    specs: Vec<InstrumentSpec>,
    outbox: BTreeMap<u64, Pending>,
    /// Snapshots asked for, and whether each goes into the event stream once reconciled.
    syncs: HashMap<u64, (oneshot::Sender<()>, bool)>,
    next_sync: u64,
    subscriptions: BTreeSet<Symbol>,
    recent_fills: VecDeque<ClientOrderId>,
}

impl State {
    fn live(&self) -> Result<&Live, ConnectorError> {
        match &self.session {
            Some(live) if live.synced && self.enabled => Ok(live),
            _ => Err(ConnectorError::NotConnected),
        }
    }

    fn cut(&self, reason: &str) {
        if let Some(live) = &self.session {
            tracing::warn!(session = live.id, reason, "cutting the session");
            live.close.send_replace(true);
        }
    }
}

pub(crate) struct Terminal {
    pub(crate) config: TerminalConfig,
    settings: Settings,
    events_tx: flume::Sender<ConnectorEvent>,
    events_rx: flume::Receiver<ConnectorEvent>,
    state: Mutex<State>,
    ready: watch::Sender<bool>,
}

/// A symbol specification the model can trade with, or why not.
fn spec_of(wire: &WireSymbol) -> Result<InstrumentSpec, String> {
    let symbol = Symbol::new(&wire.name).map_err(|e| e.to_string())?;
    if !wire.volume_step.is_positive() {
        return Err(format!("{}: volume step {} is not positive", wire.name, wire.volume_step));
    }
    // Brokers publish maxima such as 500.00 with a 0.03 step: trade up to the last whole step.
    let step = wire.volume_step.raw();
    let spec = InstrumentSpec {
        symbol,
        kind: wire.kind,
        contract_size: wire.contract_size,
        tick_size: wire.tick_size,
        tick_value: wire.tick_value,
        lot_step: wire.volume_step,
        min_qty: wire.volume_min,
        max_qty: Qty::from_raw(wire.volume_max.raw() / step * step),
        digits: wire.digits,
    };
    spec.validate().map_err(|e| e.to_string())?;
    Ok(spec)
}

impl Terminal {
    pub(crate) fn new(config: TerminalConfig, settings: Settings) -> Self {
        let (events_tx, events_rx) = flume::bounded(settings.event_capacity);
        let state = State {
            enabled: true,
            session: None,
            hello: None,
            book: Book::new(AccountMode::Hedging),
            specs: Vec::new(),
            outbox: BTreeMap::new(),
            syncs: HashMap::new(),
            next_sync: 1,
            subscriptions: BTreeSet::new(),
            recent_fills: VecDeque::new(),
        };
        Self { config, settings, events_tx, events_rx, state: Mutex::new(state), ready: watch::channel(false).0 }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing half-written under this lock matters more than going on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn platform(&self) -> Platform {
        self.config.platform
    }

    /// Delivers events in order, waiting for room; quotes are dropped instead when the stream
    /// is more than half full.
    async fn emit(&self, shared: &Shared, events: Vec<ConnectorEvent>) {
        for event in events {
            if event.is_droppable() {
                if self.events_tx.len() >= self.settings.event_capacity / 2 || self.events_tx.try_send(event).is_err() {
                    Counters::add(&shared.counters.quotes_dropped, 1);
                }
                continue;
            }
            let send = self.events_tx.send_async(event);
            tokio::pin!(send);
            loop {
                match tokio::time::timeout(STALL_WARNING, &mut send).await {
                    Ok(_) => break,
                    Err(_) => {
                        tracing::warn!(terminal = %self.config.name, "event stream full: the engine is not reading")
                    }
                }
            }
        }
    }

    // ----- sessions -------------------------------------------------------------------------

    /// Makes `session` this terminal's session (closing an older one: a terminal that dials
    /// again has given up on it) and queues the `welcome`.
    pub(crate) fn attach(
        &self,
        session: u64,
        out: mpsc::Sender<EngineMessage>,
        close: Arc<watch::Sender<bool>>,
        hello: Hello,
    ) -> Result<(), (&'static str, String)> {
        let mut state = self.lock();
        if !state.enabled {
            return Err(("disabled", "the engine has disconnected this terminal; try again later".into()));
        }
        if let Some(old) = state.session.take() {
            tracing::info!(terminal = %self.config.name, old = old.id, new = session, "the terminal dialled again; closing its older session");
            old.close.send_replace(true);
        }
        let mode = match hello.margin_mode {
            MarginMode::Hedging => AccountMode::Hedging,
            MarginMode::Netting => AccountMode::Netting,
        };
        let same_account = state.hello.as_ref().is_some_and(|h| h.login == hello.login && h.server == hello.server);
        if !same_account || state.book.mode() != mode {
            if state.hello.is_some() {
                tracing::warn!(terminal = %self.config.name, login = hello.login, "the terminal is logged in to another account now; starting afresh");
            }
            state.book = Book::new(mode);
            state.specs.clear();
        }
        state.hello = Some(hello);
        state.session = Some(Live { id: session, out, close, synced: false });
        Ok(())
    }

    /// Takes in the snapshot that opens a session: reconciles, settles the outbox, sends again
    /// what the terminal never got, and announces the connection.
    pub(crate) async fn on_opening_snapshot(
        &self,
        shared: &Shared,
        session: u64,
        snapshot: Snapshot,
    ) -> Result<(), LinkError> {
        let mut events = Vec::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            if state.session.as_ref().map(|l| l.id) != Some(session) {
                return Err(LinkError::Unexpected("the session was replaced".into()));
            }
            self.take_specs(state, &snapshot.symbols);
            let now = Instant::now();
            let mut executed = Vec::new();
            let mut resend = Vec::new();
            let mut given_up = Vec::new();
            let ids: Vec<u64> = state.outbox.keys().copied().collect();
            for id in ids {
                let pending = &state.outbox[&id];
                let journal = snapshot
                    .done
                    .iter()
                    .find(|d| d.cmd == id || (!pending.cmd.cid.is_empty() && d.cid == pending.cmd.cid));
                if let Some(done) = journal {
                    Counters::add(&shared.counters.resolved_from_journal, 1);
                    if let Some(order) = pending.order
                        && !state.recent_fills.contains(&order.client_id)
                    {
                        executed.push(Executed {
                            client_id: Some(order.client_id),
                            broker_id: BrokerOrderId(done.order),
                            ticket: done.position,
                            fill: done.price.zip(done.volume),
                        });
                    }
                    state.outbox.remove(&id);
                } else if now.duration_since(pending.first_sent) > self.settings.resend_window {
                    Counters::add(&shared.counters.given_up, 1);
                    given_up.extend(state.outbox.remove(&id));
                } else {
                    Counters::add(&shared.counters.resent, 1);
                    resend.push(pending.cmd.clone());
                }
            }
            let at = At(if snapshot.time_msc > 0 { snapshot.time_msc } else { now_unix_ms() });
            state.book.reconcile(&snapshot, &executed, at, &mut events);
            for pending in given_up {
                tracing::warn!(terminal = %self.config.name, cmd = pending.cmd.cmd, "not executed, and too old to send again");
                if let Some(order) = pending.order {
                    let reason = RejectReason::new(
                        RejectCode::Other,
                        format!("not executed: the terminal was away longer than {:?}", self.settings.resend_window),
                    );
                    events.push(rejected(order, BrokerOrderId(0), reason));
                }
            }
            events.push(ConnectorEvent::Connection(ConnectionState::Connected));
            let live = state.session.as_mut().expect("checked above");
            live.synced = true;
            let mut queued = resend.into_iter().map(EngineMessage::Cmd).collect::<Vec<_>>();
            if !state.subscriptions.is_empty() {
                let symbols = state.subscriptions.iter().map(ToString::to_string).collect();
                queued.push(EngineMessage::Subscribe(Subscribe { symbols }));
            }
            for message in queued {
                if live.out.try_send(message).is_err() {
                    return Err(LinkError::Unexpected("the session's outbound queue is full".into()));
                }
            }
        }
        self.emit(shared, events).await;
        // Only now does `connect` return: the engine reconciles after it, and must find what
        // happened while the terminal was away already in the stream.
        let state = self.lock();
        if state.session.as_ref().is_some_and(|l| l.id == session && l.synced) {
            self.ready.send_replace(state.enabled);
        }
        Ok(())
    }

    fn take_specs(&self, state: &mut State, symbols: &[WireSymbol]) {
        if symbols.is_empty() {
            return;
        }
        state.specs = symbols
            .iter()
            .filter_map(|wire| match spec_of(wire) {
                Ok(spec) => Some(spec),
                Err(reason) => {
                    tracing::warn!(terminal = %self.config.name, symbol = %wire.name, %reason, "symbol skipped");
                    None
                }
            })
            .collect();
    }

    /// One frame of a running session.
    pub(crate) async fn on_frame(
        &self,
        shared: &Shared,
        session: u64,
        message: TerminalMessage,
    ) -> Result<(), LinkError> {
        let mut events = Vec::new();
        let mut answered = None;
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            if state.session.as_ref().map(|l| l.id) != Some(session) {
                return Err(LinkError::Unexpected("the session was replaced".into()));
            }
            let applied = match &message {
                TerminalMessage::Hello(_) => return Err(LinkError::Unexpected("a second hello".into())),
                TerminalMessage::Snapshot(snapshot) => {
                    self.take_specs(state, &snapshot.symbols);
                    state.book.reconcile(snapshot, &[], At(snapshot.time_msc), &mut events);
                    if let Some((waiter, in_stream)) = state.syncs.remove(&snapshot.sync) {
                        if in_stream && let Some(account) = state.book.account() {
                            let positions = state.book.positions();
                            let orders = state.book.orders();
                            events.push(ConnectorEvent::Snapshot(Box::new(BrokerSnapshot {
                                positions,
                                orders,
                                account,
                            })));
                        }
                        answered = Some(waiter);
                    }
                    Ok(())
                }
                TerminalMessage::Deal(deal) => {
                    let applied = state.book.apply_deal(deal, &mut events);
                    if applied.is_ok()
                        && let Some(client_id) = cid::decode(&deal.cid)
                    {
                        if state.recent_fills.len() >= RECENT_FILLS {
                            state.recent_fills.pop_front();
                        }
                        state.recent_fills.push_back(client_id);
                    }
                    applied
                }
                TerminalMessage::Sltp(sltp) => state.book.apply_sltp(sltp, &mut events),
                TerminalMessage::PendingAdd(add) => {
                    state.book.apply_pending_add(add, &mut events);
                    Ok(())
                }
                TerminalMessage::PendingDel(del) => {
                    state.book.apply_pending_del(del, &mut events);
                    Ok(())
                }
                TerminalMessage::Account(account) => {
                    let snapshot = AccountSnapshot {
                        balance: account.balance,
                        equity: account.equity,
                        margin_used: account.margin,
                    };
                    state.book.set_account(snapshot, &mut events);
                    Ok(())
                }
                TerminalMessage::Quote(quote) => {
                    if state.subscriptions.contains(&quote.symbol) {
                        events.push(ConnectorEvent::Quote(mirror_connector::Quote {
                            symbol: quote.symbol,
                            bid: quote.bid,
                            ask: quote.ask,
                            time_unix_ms: quote.time_msc,
                        }));
                    }
                    Ok(())
                }
                TerminalMessage::Ack(ack) => {
                    self.on_ack(state, ack, &mut events);
                    Ok(())
                }
                TerminalMessage::Pong(pong) => {
                    if !pong.connected || !pong.trade_allowed {
                        tracing::debug!(terminal = %self.config.name, connected = pong.connected, trade_allowed = pong.trade_allowed, "terminal cannot trade");
                    }
                    Ok(())
                }
            };
            if let Err(error) = applied {
                // The book is untouched; a fresh snapshot brings it level.
                tracing::warn!(terminal = %self.config.name, %error, "event does not fit the book; asking for a snapshot");
                Counters::add(&shared.counters.resyncs, 1);
                let id = state.next_sync;
                state.next_sync += 1;
                let live = state.session.as_ref().expect("checked above");
                if live.out.try_send(EngineMessage::Sync(SyncRequest { id, symbols: false })).is_err() {
                    return Err(LinkError::Unexpected("the session's outbound queue is full".into()));
                }
            }
        }
        self.emit(shared, events).await;
        if let Some(answered) = answered {
            let _ = answered.send(());
        }
        Ok(())
    }

    fn on_ack(&self, state: &mut State, ack: &Ack, events: &mut Vec<ConnectorEvent>) {
        let Some(mut pending) = state.outbox.remove(&ack.cmd) else {
            tracing::warn!(terminal = %self.config.name, cmd = ack.cmd, "ack for a command not in flight");
            return;
        };
        let result =
            if ack.ok { Ok(ack.clone()) } else { Err(mapping::refusal(self.platform(), ack.retcode, &ack.message)) };
        match pending.reply.take() {
            Some(reply) => {
                let _ = reply.send(result);
            }
            None => {
                // Its caller stopped waiting (timeout, or the session dropped and the command
                // was sent again): the engine holds the order as in flight, so a refusal is
                // reported as an event. An execution reports itself through its deal.
                if let (Err(ConnectorError::Rejected(reason)), Some(order)) = (result, pending.order) {
                    events.push(rejected(order, BrokerOrderId(ack.order), reason));
                }
            }
        }
    }

    /// Ends `session` (if it is still this terminal's): callers waiting on it learn the
    /// outcome is unknown, and the engine that the session is being re-established.
    pub(crate) async fn detach(&self, shared: &Shared, session: u64, reason: &str) {
        let mut events = Vec::new();
        {
            let mut guard = self.lock();
            let state = &mut *guard;
            if state.session.as_ref().map(|l| l.id) != Some(session) {
                return;
            }
            let was_synced = state.session.take().is_some_and(|l| l.synced);
            self.ready.send_replace(false);
            for pending in state.outbox.values_mut() {
                if let Some(reply) = pending.reply.take() {
                    let lost =
                        ConnectorError::ConnectionLost { operation: pending.operation, detail: reason.to_owned() };
                    let _ = reply.send(Err(lost));
                }
            }
            state.syncs.clear();
            if state.enabled && was_synced {
                events.push(ConnectorEvent::Connection(ConnectionState::Reconnecting { reason: reason.to_owned() }));
            }
        }
        self.emit(shared, events).await;
    }

    // ----- the connector's side -------------------------------------------------------------

    pub(crate) fn events(&self) -> EventStream {
        self.events_rx.clone()
    }

    /// Lets the terminal in (again) and waits until its session is synced.
    pub(crate) async fn connect(&self) -> Result<SessionInfo, ConnectorError> {
        self.lock().enabled = true;
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout(self.settings.connect_wait, ready.wait_for(|ready| *ready)).await.is_err() {
            return Err(ConnectorError::NotConnected);
        }
        let state = self.lock();
        state.live()?;
        let hello = state.hello.as_ref().ok_or(ConnectorError::NotConnected)?;
        Ok(SessionInfo {
            broker_account: hello.login.to_string(),
            currency: hello.currency.clone(),
            mode: state.book.mode(),
        })
    }

    /// Closes the session and refuses the terminal until `connect`.
    pub(crate) async fn disconnect(&self, shared: &Shared) {
        let mut events = Vec::new();
        {
            let mut state = self.lock();
            if !state.enabled {
                return;
            }
            state.enabled = false;
            self.ready.send_replace(false);
            if let Some(live) = &state.session {
                let refusal = crate::protocol::ErrorFrame {
                    code: "disabled".into(),
                    message: "disconnected by the engine".into(),
                };
                let _ = live.out.try_send(EngineMessage::Error(refusal));
                live.close.send_replace(true);
            }
            events.push(ConnectorEvent::Connection(ConnectionState::Disconnected {
                reason: "disconnected by the engine".into(),
            }));
        }
        self.emit(shared, events).await;
    }

    pub(crate) fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        let state = self.lock();
        state.live()?;
        Ok(state.specs.clone())
    }

    pub(crate) fn account(&self) -> Result<AccountSnapshot, ConnectorError> {
        let state = self.lock();
        state.live()?;
        state.book.account().ok_or(ConnectorError::NotConnected)
    }

    pub(crate) fn positions(&self) -> Vec<Position> {
        self.lock().book.positions()
    }

    pub(crate) fn orders(&self) -> Vec<WorkingOrder> {
        self.lock().book.orders()
    }

    /// The ticket, symbol and side of a position, as the terminal knows it now.
    pub(crate) fn position(&self, id: PositionId) -> Option<(u64, Symbol, Side)> {
        let state = self.lock();
        let position = state.book.positions().into_iter().find(|p| p.id == id)?;
        Some((state.book.ticket_of(id)?, position.symbol, position.side))
    }

    pub(crate) fn order_of_client(&self, client_id: ClientOrderId) -> Option<BrokerOrderId> {
        self.lock().book.order_of_client(client_id)
    }

    /// Sends a command and waits for its `ack` (under the command timeout).
    pub(crate) async fn command(
        &self,
        shared: &Shared,
        mut cmd: Cmd,
        operation: &'static str,
        order: Option<OrderInfo>,
    ) -> Result<Ack, ConnectorError> {
        let (reply, answer) = oneshot::channel();
        let id = {
            let mut state = self.lock();
            let live = state.live()?;
            let out = live.out.clone();
            if state.outbox.len() >= self.settings.max_in_flight {
                return Err(ConnectorError::Rejected(RejectReason::new(
                    RejectCode::RateLimited,
                    format!("{} commands already await an answer from the terminal", state.outbox.len()),
                )));
            }
            cmd.cmd = shared.next_cmd();
            cmd.deviation = self.settings.deviation_points;
            let id = cmd.cmd;
            match out.try_send(EngineMessage::Cmd(cmd.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // The terminal is not reading: nothing was written, and the session is
                    // cut so that it starts over from a snapshot.
                    state.cut("the terminal does not read its commands");
                    return Err(ConnectorError::NotConnected);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(ConnectorError::NotConnected),
            }
            Counters::add(&shared.counters.commands, 1);
            state.outbox.insert(id, Pending { cmd, operation, order, reply: Some(reply), first_sent: Instant::now() });
            id
        };
        match tokio::time::timeout(self.settings.command_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConnectorError::ConnectionLost { operation, detail: "the session ended".into() }),
            Err(_) => {
                if let Some(pending) = self.lock().outbox.get_mut(&id) {
                    pending.reply = None;
                }
                Err(ConnectorError::Timeout { operation, timeout: self.settings.command_timeout })
            }
        }
    }

    /// Asks for a snapshot and waits until it is reconciled (every difference reported) and,
    /// when `in_stream`, put into the event stream after those differences.
    pub(crate) async fn sync(&self, operation: &'static str, in_stream: bool) -> Result<(), ConnectorError> {
        let (done, wait) = oneshot::channel();
        {
            let mut state = self.lock();
            let out = state.live()?.out.clone();
            let id = state.next_sync;
            state.next_sync += 1;
            if out.try_send(EngineMessage::Sync(SyncRequest { id, symbols: false })).is_err() {
                return Err(ConnectorError::NotConnected);
            }
            state.syncs.insert(id, (done, in_stream));
        }
        match tokio::time::timeout(self.settings.command_timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(ConnectorError::ConnectionLost { operation, detail: "the session ended".into() }),
            Err(_) => Err(ConnectorError::Timeout { operation, timeout: self.settings.command_timeout }),
        }
    }

    pub(crate) fn subscribe(&self, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        let mut state = self.lock();
        state.live()?;
        if let Some(unknown) = symbols.iter().find(|s| !state.specs.iter().any(|spec| spec.symbol == **s)) {
            return Err(ConnectorError::Rejected(RejectReason::new(
                RejectCode::UnknownSymbol,
                format!("the terminal does not list {unknown}"),
            )));
        }
        state.subscriptions.extend(symbols.iter().copied());
        let all = state.subscriptions.iter().map(ToString::to_string).collect();
        let live = state.live()?;
        live.out
            .try_send(EngineMessage::Subscribe(Subscribe { symbols: all }))
            .map_err(|_| ConnectorError::NotConnected)
    }
}

fn rejected(order: OrderInfo, broker_id: BrokerOrderId, reason: RejectReason) -> ConnectorEvent {
    ConnectorEvent::Order(OrderReport {
        client_id: Some(order.client_id),
        broker_id,
        symbol: order.symbol,
        side: order.side,
        kind: OrderReportKind::Rejected(reason),
        time_unix_ms: now_unix_ms(),
    })
}
