//! The account actor: one account's whole copy logic as an I/O-free state machine.
//!
//! [`AccountActor::on_input`] takes the time (read by the caller, never here), one input (a
//! signal to copy, a connector event, the outcome of a command, a control) and appends the
//! resulting actions to a caller-owned buffer: commands for the connector, signals to fan out
//! (when the account is itself a leader), flatten requests and audit records. It reads no
//! clock, does no I/O and, once its maps have grown to their working size, does not allocate,
//! so the copy logic is deterministic and can be tested by replaying inputs.

mod legs;
mod risk;

use std::sync::Arc;

use mirror_connector::{
    CancelRequest, CloseRequest, ConnectionState, ConnectorError, ConnectorEvent, ModifyRequest, OrderReport,
    OrderReportKind, PlaceAck, WorkingOrder,
};
use mirror_model::{
    AccountId, AccountMode, BrokerOrderId, ClientOrderId, Fill, FollowerContext, InstrumentTable, LeaderRef, LinkRules,
    Money, OpenSignal, Order, OrderError, OrderIntent, OrderKind, OrderRequest, OrderStatus, OrderUpdate, Origin,
    Position, PositionChange, PositionEffect, PositionId, Price, Qty, Ratio, SignalAction, SignalId, SignalView,
    SizeAdjustment, SkipReason, Symbol, TimeInForce, proportional_close,
};
use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

pub use risk::{Breach, BreachAction, Guard, RiskLimits, RiskMode};

use crate::LinkId;
use legs::{CopyLeg, LegKey, Legs, NET};
use risk::RiskState;

/// The time, as read by the caller: monotonic nanoseconds (for latency) and Unix
/// milliseconds (for signal age and timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Now {
    /// Monotonic clock, nanoseconds since the engine started.
    pub mono_ns: u64,
    /// Wall clock, Unix milliseconds.
    pub unix_ms: i64,
}

/// A link on which this account follows an origin.
#[derive(Clone, Debug)]
pub struct InboundLink {
    /// The link.
    pub link: LinkId,
    /// The leader account or source.
    pub origin: Origin,
    /// Its rules.
    pub rules: Arc<LinkRules>,
}

/// Everything an actor starts from.
#[derive(Clone, Debug)]
pub struct AccountSetup {
    /// Id.
    pub id: AccountId,
    /// Configured name.
    pub name: Arc<str>,
    /// Netting or hedging.
    pub mode: AccountMode,
    /// Instruments, from the connector.
    pub instruments: InstrumentTable,
    /// Balance at start.
    pub balance: Money,
    /// Equity at start.
    pub equity: Money,
    /// Risk limits.
    pub risk: RiskLimits,
    /// Links this account follows.
    pub inbound: Vec<InboundLink>,
    /// Whether other accounts copy this one (its position changes become signals).
    pub is_leader: bool,
    /// Whether the connector is connected at start.
    pub connected: bool,
    /// Positions open at start.
    pub positions: Vec<Position>,
}

/// A command for the account's connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Place an order.
    Place(OrderRequest),
    /// Close (part of) a position.
    Close(CloseRequest),
    /// Change a position's SL/TP.
    Modify(ModifyRequest),
    /// Cancel a working order.
    Cancel(CancelRequest),
}

/// What a connector call came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A place or close.
    Order {
        /// The order.
        client_id: ClientOrderId,
        /// The broker's answer.
        result: Result<PlaceAck, ConnectorError>,
    },
    /// A modify.
    Modify {
        /// The position.
        position: PositionId,
        /// The broker's answer.
        result: Result<(), ConnectorError>,
    },
    /// A cancel.
    Cancel {
        /// The order.
        client_id: ClientOrderId,
        /// The broker's answer.
        result: Result<(), ConnectorError>,
    },
}

/// Why an account is being flattened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlattenReason {
    /// An operator asked.
    Operator,
    /// The account's own equity guard.
    Breach,
    /// A leader upstream hit its group drawdown.
    GroupDrawdown,
}

/// An operator's or the engine's instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Stop copying new opens to this account.
    Pause,
    /// Copy again.
    Resume,
    /// Stop copying new opens on one inbound link.
    PauseLink(LinkId),
    /// Copy again on that link.
    ResumeLink(LinkId),
    /// Global pause (sent to every account).
    PauseAll,
    /// Global resume.
    ResumeAll,
    /// Close every position and cancel every working open; `id` numbers the closing orders.
    Flatten {
        /// Id for the closing orders' client ids.
        id: SignalId,
        /// Why.
        reason: FlattenReason,
        /// Also freeze the account.
        freeze: bool,
    },
    /// A new trading day starts: daily guards re-arm.
    NewDay,
    /// An operator lifts a close-only or frozen mode.
    ResetRisk,
}

/// Finished orders remembered (with their final status) so that a late broker message about
/// one is recognised, and a fill on an order believed rejected is reported as the lifecycle
/// violation it is. Oldest forgotten first.
const FINISHED_REMEMBERED: usize = 256;

/// One input to the actor.
#[derive(Debug)]
pub enum Input<'a> {
    /// A signal to copy, on one of this account's inbound links.
    Signal {
        /// The signal, read in place (shared by every follower of the shard).
        signal: &'a SignalView<'a>,
        /// The link it arrived on.
        link: LinkId,
    },
    /// Something the connector reported.
    Event(ConnectorEvent),
    /// What a command came to.
    Outcome(Outcome),
    /// A command could not be handed to the connector (its queue was full).
    NotSent(Command),
    /// An instruction.
    Control(Control),
}

/// A signal for this account's followers, to be numbered, encoded and fanned out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalDraft {
    /// What to copy.
    pub action: SignalAction,
    /// When the leader traded.
    pub created_unix_ms: i64,
    /// The leader's balance then.
    pub leader_balance: Money,
    /// The leader's equity then.
    pub leader_equity: Money,
}

/// What happened, for the audit stream, logs and counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditEvent {
    /// A copy order was sent.
    Copied {
        /// The order.
        client_id: ClientOrderId,
        /// Symbol.
        symbol: Symbol,
        /// Side.
        side: mirror_model::Side,
        /// Quantity.
        qty: Qty,
        /// Kind.
        kind: OrderKind,
        /// Clamped or raised.
        adjustment: SizeAdjustment,
    },
    /// A closing order was sent.
    Closing {
        /// The order.
        client_id: ClientOrderId,
        /// The position.
        position: PositionId,
        /// Quantity.
        qty: Qty,
    },
    /// A modify was sent.
    Modifying {
        /// The position.
        position: PositionId,
        /// Stop loss.
        stop_loss: Option<Price>,
        /// Take profit.
        take_profit: Option<Price>,
    },
    /// A cancel was sent.
    Cancelling {
        /// The order.
        client_id: ClientOrderId,
    },
    /// Nothing done, and why.
    Skipped {
        /// The signal's action.
        action: &'static str,
        /// Why.
        reason: SkipReason,
    },
    /// The broker took an order.
    Accepted {
        /// The order.
        client_id: ClientOrderId,
        /// The broker's id.
        broker_id: BrokerOrderId,
    },
    /// Refused by the broker.
    Rejected {
        /// The order.
        client_id: ClientOrderId,
        /// What it said.
        reason: String,
    },
    /// Not known whether the broker got it; kept in flight for reconciliation.
    OutcomeUnknown {
        /// The order.
        client_id: ClientOrderId,
        /// What happened.
        error: String,
    },
    /// An execution.
    Filled {
        /// The order.
        client_id: ClientOrderId,
        /// The execution.
        fill: Fill,
    },
    /// Cancelled.
    Cancelled {
        /// The order.
        client_id: ClientOrderId,
    },
    /// Expired.
    Expired {
        /// The order.
        client_id: ClientOrderId,
    },
    /// A broker message that the order lifecycle refused (logged, never published as state).
    InvalidTransition {
        /// The refusal.
        error: OrderError,
    },
    /// A report about an order this account does not know.
    UnknownOrder {
        /// Its id.
        client_id: ClientOrderId,
    },
    /// A position changed at the broker.
    Position {
        /// The change.
        effect: PositionEffect,
    },
    /// A signal for this account's followers.
    Led {
        /// What.
        action: SignalAction,
    },
    /// An equity guard tripped.
    Breach {
        /// The numbers.
        breach: Breach,
    },
    /// The account's risk mode changed.
    Mode {
        /// The new mode.
        mode: RiskMode,
    },
    /// Flattening.
    Flattening {
        /// Why.
        reason: FlattenReason,
        /// Positions being closed.
        positions: u32,
        /// Working opens being cancelled.
        orders: u32,
    },
    /// Paused or resumed.
    Paused {
        /// What: `account`, `link`, `global`.
        scope: &'static str,
        /// Paused (true) or resumed.
        paused: bool,
    },
    /// The connection changed.
    Connection {
        /// The state.
        state: ConnectionState,
    },
    /// A modify or cancel failed.
    CommandFailed {
        /// Which.
        command: &'static str,
        /// Why.
        error: String,
    },
    /// A closing order executed after the broker had already closed (part of) the copy by
    /// itself, opening exposure nobody asked for; it is being taken back off.
    Corrected {
        /// The order taking it off.
        client_id: ClientOrderId,
        /// Symbol.
        symbol: Symbol,
        /// Quantity taken back off.
        qty: Qty,
    },
    /// A command could not be queued for the connector.
    NotSent {
        /// Which.
        command: &'static str,
    },
}

/// An audit record: the event and the signal it belongs to, if any.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// The signal being acted on.
    pub signal: Option<SignalId>,
    /// What happened.
    pub event: AuditEvent,
}

/// What the actor asks of its shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Hand a command to the connector; `signal_t_in` (the signal's acceptance time) marks the
    /// command as a fan-out hop whose latency is measured.
    Send {
        /// The command.
        command: Command,
        /// When the signal it serves was accepted, monotonic ns.
        signal_t_in: Option<u64>,
    },
    /// Fan a signal out to this account's followers.
    Emit(SignalDraft),
    /// Flatten this account (`group: false`) or it and every follower downstream, freezing
    /// them (`group: true`).
    Flatten {
        /// Whole group.
        group: bool,
        /// Why.
        reason: FlattenReason,
    },
    /// Record this.
    Audit(Audit),
}

/// Why an order exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// Opens (part of) a leg.
    Open(LegKey),
    /// Closes a position, for a leg or for a flatten.
    Close(Option<LegKey>),
}

#[derive(Clone, Copy, Debug)]
struct OrderEntry {
    order: Order,
    purpose: Purpose,
    /// Fills seen so far (numbers the deferred closes of those fills).
    fills: u16,
    /// Acceptance time of the signal it serves.
    signal_t_in: Option<u64>,
}

struct InboundState {
    link: InboundLink,
    paused: bool,
}

/// One account's copy logic and state.
pub struct AccountActor {
    id: AccountId,
    name: Arc<str>,
    mode: AccountMode,
    instruments: InstrumentTable,
    balance: Money,
    equity: Money,
    connected: bool,
    positions: FxHashMap<PositionId, Position>,
    /// Live orders only: finished ones move to `finished` at once, so the per-order guards
    /// look at a handful of entries, not at the day's history.
    orders: FxHashMap<ClientOrderId, OrderEntry>,
    finished: FxHashMap<ClientOrderId, OrderStatus>,
    finished_order: VecDeque<ClientOrderId>,
    legs: Legs,
    inbound: SmallVec<[InboundState; 2]>,
    is_leader: bool,
    paused: bool,
    globally_paused: bool,
    risk: RiskState,
    /// Leader role: pending orders seen on this account, by broker id.
    leader_pending: FxHashSet<BrokerOrderId>,
    /// Leader role: the latest execution (its order and price), which the position change
    /// that follows it refers to.
    last_fill: Option<(BrokerOrderId, PositionId, Price)>,
    /// Positions touched by this account's own executions whose position change has not
    /// arrived yet (connectors report an execution before the change it causes).
    own_fills: SmallVec<[PositionId; 8]>,
}

impl std::fmt::Debug for AccountActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountActor")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("positions", &self.positions.len())
            .field("orders", &self.orders.len())
            .field("legs", &self.legs.len())
            .field("mode", &self.risk.mode)
            .finish_non_exhaustive()
    }
}

/// A read-only summary of an actor, for status displays and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSummary {
    /// Id.
    pub id: AccountId,
    /// Balance.
    pub balance: Money,
    /// Equity.
    pub equity: Money,
    /// Open positions.
    pub positions: usize,
    /// Orders not yet finished.
    pub live_orders: usize,
    /// Copy legs.
    pub legs: usize,
    /// Risk mode.
    pub mode: RiskMode,
    /// Paused.
    pub paused: bool,
    /// Connected.
    pub connected: bool,
}

fn update_event(update: OrderUpdate) -> mirror_model::OrderEvent {
    use mirror_model::OrderEvent as E;
    match update {
        OrderUpdate::Submit => E::Submit,
        OrderUpdate::OutcomeUnknown => E::OutcomeUnknown,
        OrderUpdate::Accept(_) => E::Accept,
        OrderUpdate::Reject => E::Reject,
        OrderUpdate::Fill(_) => E::Fill,
        OrderUpdate::CancelRequest => E::CancelRequest,
        OrderUpdate::CancelRejected => E::CancelRejected,
        OrderUpdate::Cancelled => E::Cancelled,
        OrderUpdate::Expire => E::Expire,
    }
}

fn audit(out: &mut Vec<Action>, signal: Option<SignalId>, event: AuditEvent) {
    out.push(Action::Audit(Audit { signal, event }));
}

impl AccountActor {
    /// An actor from its setup.
    pub fn new(setup: AccountSetup) -> Self {
        let inbound = setup.inbound.into_iter().map(|link| InboundState { link, paused: false }).collect();
        Self {
            id: setup.id,
            name: setup.name,
            mode: setup.mode,
            instruments: setup.instruments,
            balance: setup.balance,
            equity: setup.equity,
            connected: setup.connected,
            positions: setup.positions.into_iter().map(|p| (p.id, p)).collect(),
            orders: FxHashMap::default(),
            finished: FxHashMap::default(),
            finished_order: VecDeque::with_capacity(FINISHED_REMEMBERED),
            legs: Legs::default(),
            inbound,
            is_leader: setup.is_leader,
            paused: false,
            globally_paused: false,
            risk: RiskState::new(setup.risk, setup.equity),
            leader_pending: FxHashSet::default(),
            last_fill: None,
            own_fills: SmallVec::new(),
        }
    }

    /// Id.
    pub fn id(&self) -> AccountId {
        self.id
    }

    /// Configured name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// A summary of the state.
    pub fn summary(&self) -> AccountSummary {
        AccountSummary {
            id: self.id,
            balance: self.balance,
            equity: self.equity,
            positions: self.positions.len(),
            live_orders: self.orders.len(),
            legs: self.legs.len(),
            mode: self.risk.mode,
            paused: self.paused,
            connected: self.connected,
        }
    }

    /// Open positions as this actor last heard from the broker, ordered by id.
    pub fn positions(&self) -> Vec<Position> {
        let mut positions: Vec<Position> = self.positions.values().copied().collect();
        positions.sort_by_key(|p| p.id);
        positions
    }

    /// Handles one input, appending actions to `out`.
    pub fn on_input(&mut self, now: Now, input: Input<'_>, out: &mut Vec<Action>) {
        match input {
            Input::Signal { signal, link } => self.on_signal(now, signal, link, out),
            Input::Event(event) => self.on_event(now, event, out),
            Input::Outcome(outcome) => self.on_outcome(outcome, out),
            Input::NotSent(command) => self.on_not_sent(command, out),
            Input::Control(control) => self.on_control(control, out),
        }
    }

    // ----- following -------------------------------------------------------------------

    fn on_signal(&mut self, now: Now, signal: &SignalView<'_>, link: LinkId, out: &mut Vec<Action>) {
        let Some(inbound) = self.inbound.iter().find(|i| i.link.link == link) else {
            // The copy map and the actor disagree: a bug worth seeing, not a skip.
            tracing::error!(account = %self.name, ?link, "signal on a link this account does not follow");
            return;
        };
        let (rules, link_paused) = (Arc::clone(&inbound.link.rules), inbound.paused);
        let skip = |out: &mut Vec<Action>, reason| {
            audit(out, Some(signal.id), AuditEvent::Skipped { action: signal.action.name(), reason });
        };
        if self.risk.mode == RiskMode::Frozen {
            return skip(out, SkipReason::Frozen);
        }
        match signal.action {
            SignalAction::Open(open) => {
                let gate = if self.globally_paused {
                    Some(SkipReason::GloballyPaused)
                } else if self.paused {
                    Some(SkipReason::AccountPaused)
                } else if link_paused {
                    Some(SkipReason::LinkPaused)
                } else if self.risk.mode == RiskMode::CloseOnly {
                    Some(SkipReason::CloseOnly)
                } else if !self.connected {
                    Some(SkipReason::AccountDisconnected)
                } else {
                    None
                };
                match gate {
                    Some(reason) => skip(out, reason),
                    None => self.copy_open(now, signal, &open, link, &rules, out),
                }
            }
            SignalAction::Modify { leader, stop_loss, take_profit } => {
                self.copy_modify(signal, (signal.origin, leader), stop_loss, take_profit, &rules, out)
            }
            SignalAction::Close { leader } => {
                let key = (signal.origin, leader);
                if self.legs.get(&key).is_none() {
                    return skip(out, SkipReason::NoCopy);
                }
                let mut next_leg = 1;
                self.close_leg(signal.id, signal.accepted_mono_ns, key, &mut next_leg, out);
            }
            SignalAction::PartialClose { leader, closed_qty, qty_before } => {
                self.copy_partial_close(signal, (signal.origin, leader), closed_qty, qty_before, &rules, out)
            }
            SignalAction::CloseAll { symbol } => {
                let canonical = symbol.map(|s| rules.symbols.canonical(&s));
                let keys = self.legs.keys_of(signal.origin, canonical);
                if keys.is_empty() {
                    return skip(out, SkipReason::NoCopy);
                }
                let mut next_leg = 1;
                for key in keys {
                    self.close_leg(signal.id, signal.accepted_mono_ns, key, &mut next_leg, out);
                }
            }
            SignalAction::CancelPending { leader } => {
                let key = (signal.origin, leader);
                let Some(leg) = self.legs.get(&key) else {
                    return skip(out, SkipReason::NoCopy);
                };
                let working: SmallVec<[ClientOrderId; 2]> = leg.working.clone();
                for client_id in working {
                    self.cancel_order(Some(signal.id), client_id, out);
                }
            }
        }
    }

    fn copy_open(
        &mut self,
        now: Now,
        signal: &SignalView<'_>,
        open: &OpenSignal,
        link: LinkId,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let key = (signal.origin, open.leader);
        if let Some(pending) = open.from_pending
            && pending != open.leader
            && self.legs.rekey(&(signal.origin, pending), key)
        {
            // The leader's pending order filled; our copy of it is already working (or
            // filled) at our broker and now follows the leader's position.
            return;
        }
        if open.from_pending.is_some() && self.legs.get(&key).is_some() {
            // Same id for order and position (MetaTrader numbers them alike): the pending
            // order was copied already.
            return;
        }
        let context = FollowerContext {
            instruments: &self.instruments,
            balance: self.balance,
            equity: self.equity,
            now_unix_ms: now.unix_ms,
        };
        let planned = match rules.plan_open(signal, open, &context) {
            Ok(planned) => planned,
            Err(reason) => {
                return audit(out, Some(signal.id), AuditEvent::Skipped { action: signal.action.name(), reason });
            }
        };
        if let Err(reason) = self.check_order_risk(&planned.spec.symbol, planned.qty) {
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: signal.action.name(), reason });
        }
        let client_id = ClientOrderId::new(signal.id, self.id, 0);
        let request = OrderRequest {
            client_id,
            symbol: planned.spec.symbol,
            side: planned.side,
            qty: planned.qty,
            kind: planned.kind,
            stop_loss: planned.stop_loss,
            take_profit: planned.take_profit,
            time_in_force: planned.time_in_force,
            intent: OrderIntent::Open,
        };
        let canonical = planned.leader_symbol;
        let leg = self.legs.entry(key, || CopyLeg::new(link, planned.spec.symbol, canonical, planned.side));
        leg.working.push(client_id);
        leg.leader_levels =
            if rules.reverse { (open.take_profit, open.stop_loss) } else { (open.stop_loss, open.take_profit) };
        self.send_order(request, Purpose::Open(key), Some(signal.accepted_mono_ns), out);
        audit(
            out,
            Some(signal.id),
            AuditEvent::Copied {
                client_id,
                symbol: request.symbol,
                side: request.side,
                qty: request.qty,
                kind: request.kind,
                adjustment: planned.adjustment,
            },
        );
    }

    /// Per-order guards: quantity, number of positions, exposure on the symbol.
    fn check_order_risk(&self, symbol: &Symbol, qty: Qty) -> Result<(), SkipReason> {
        let limits = &self.risk.limits;
        if let Some(max) = limits.max_order_qty
            && qty > max
        {
            return Err(SkipReason::MaxOrderQty { qty, max });
        }
        let live_opens =
            || self.orders.values().filter(|e| matches!(e.purpose, Purpose::Open(_)) && e.order.status.is_live());
        if let Some(max) = limits.max_open_positions {
            let unfilled_opens = live_opens().filter(|e| e.order.filled_qty.is_zero());
            let (open, adds) = match self.mode {
                AccountMode::Hedging => (self.positions.len() + unfilled_opens.count(), 1),
                AccountMode::Netting => {
                    let mut symbols: SmallVec<[Symbol; 16]> = self.positions.values().map(|p| p.symbol).collect();
                    symbols.extend(unfilled_opens.map(|e| e.order.request.symbol));
                    symbols.sort_unstable();
                    symbols.dedup();
                    let adds = usize::from(!symbols.contains(symbol));
                    (symbols.len(), adds)
                }
            };
            if open + adds > max as usize {
                return Err(SkipReason::MaxOpenPositions { open: u32::try_from(open).unwrap_or(u32::MAX), max });
            }
        }
        if let Some(max) = limits.max_symbol_exposure {
            let held = self.positions.values().filter(|p| p.symbol == *symbol).fold(Qty::ZERO, |sum, p| sum + p.qty);
            let working = live_opens()
                .filter(|e| e.order.request.symbol == *symbol)
                .fold(Qty::ZERO, |sum, e| sum + e.order.remaining_qty());
            let after = held + working + qty;
            if after > max {
                return Err(SkipReason::SymbolExposure { symbol: *symbol, after, max });
            }
        }
        Ok(())
    }

    fn copy_modify(
        &mut self,
        signal: &SignalView<'_>,
        key: LegKey,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else {
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: "modify", reason: SkipReason::NoCopy });
        };
        leg.leader_levels = if rules.reverse { (take_profit, stop_loss) } else { (stop_loss, take_profit) };
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else {
            let reason = SkipReason::UnknownSymbol { symbol: leg.symbol };
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: "modify", reason });
        };
        let (side, sources) = (leg.side, leg.leader_levels);
        if !leg.working.is_empty() {
            // Opens still in flight take these levels once they fill.
            leg.pending_levels = Some(sources);
        }
        // A hedging copy has positions of its own; a netting copy shares the symbol's net
        // position (the last leader to move its levels sets them).
        let (symbol, holdings) = (leg.symbol, leg.positions.clone());
        let positions: SmallVec<[PositionId; 2]> = match self.mode {
            AccountMode::Hedging => holdings.iter().map(|(id, _)| *id).collect(),
            AccountMode::Netting if holdings.is_empty() => SmallVec::new(),
            AccountMode::Netting => self.net_position(&symbol).map(|p| p.id).into_iter().collect(),
        };
        for position_id in positions {
            let Some(position) = self.positions.get(&position_id) else { continue };
            let levels = rules.protection_levels(side, Some(position.open_price), &spec, sources.0, sources.1);
            if levels == (position.stop_loss, position.take_profit) {
                continue;
            }
            self.send_modify(Some(signal.id), Some(signal.accepted_mono_ns), position_id, spec.symbol, levels, out);
        }
    }

    fn copy_partial_close(
        &mut self,
        signal: &SignalView<'_>,
        key: LegKey,
        closed: Qty,
        before: Qty,
        rules: &LinkRules,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else {
            let reason = SkipReason::NoCopy;
            return audit(out, Some(signal.id), AuditEvent::Skipped { action: "partial_close", reason });
        };
        if !leg.working.is_empty() {
            // Fills still to come keep only what the leader kept.
            let kept = Ratio::new((before - closed).raw(), before.raw()).unwrap_or(Ratio::ONE);
            leg.keep_fraction = leg.keep_fraction.checked_mul(kept).unwrap_or(Ratio::ZERO);
        }
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else { return };
        let open = leg.open_qty();
        if open.is_zero() {
            return;
        }
        let mut to_close = match proportional_close(open, closed, before, &spec, rules.rounding) {
            Ok(qty) => qty,
            Err(reason) => return audit(out, Some(signal.id), AuditEvent::Skipped { action: "partial_close", reason }),
        };
        let holdings: SmallVec<[(PositionId, Qty); 2]> = leg.positions.clone();
        let mut next_leg = 1;
        for (holding, held) in holdings {
            if to_close.is_zero() {
                break;
            }
            let qty = to_close.min(held);
            to_close -= qty;
            self.close_holding(signal.id, Some(signal.accepted_mono_ns), &mut next_leg, key, holding, qty, out);
        }
    }

    /// Closes everything a leg holds, cancels its resting opens and closes whatever of its
    /// in-flight opens fills later.
    fn close_leg(&mut self, signal: SignalId, t_in: u64, key: LegKey, next_leg: &mut u16, out: &mut Vec<Action>) {
        let Some(leg) = self.legs.get_mut(&key) else { return };
        if !leg.working.is_empty() {
            leg.close_on_fill = true;
        }
        let holdings: SmallVec<[(PositionId, Qty); 2]> = leg.positions.clone();
        let working: SmallVec<[ClientOrderId; 2]> = leg.working.clone();
        for (holding, qty) in holdings {
            self.close_holding(signal, Some(t_in), next_leg, key, holding, qty, out);
        }
        for client_id in working {
            let resting = self.orders.get(&client_id).is_some_and(|e| e.order.request.kind.is_pending());
            if resting {
                self.cancel_order(Some(signal), client_id, out);
            }
        }
    }

    /// Closes `qty` of one of a leg's holdings: a hedging position by its id, or, on a
    /// netting account, the leg's contribution by an offsetting order (whatever side the net
    /// position is on now).
    #[allow(clippy::too_many_arguments)]
    fn close_holding(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        key: LegKey,
        holding: PositionId,
        qty: Qty,
        out: &mut Vec<Action>,
    ) {
        if holding == NET {
            self.send_offset(signal, signal_t_in, next_leg, key, qty, out);
        } else {
            self.send_close(signal, signal_t_in, next_leg, holding, qty, Some(key), out);
        }
    }

    /// Takes `qty` of a netting leg's contribution off the net position with a market order
    /// on the other side, never more than the leg holds beyond offsets already in flight.
    fn send_offset(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        key: LegKey,
        qty: Qty,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get(&key) else { return };
        let (symbol, side, held) = (leg.symbol, leg.side, leg.open_qty());
        let in_flight = self.in_flight(|e| e.purpose == Purpose::Close(Some(key)));
        let Some(request) =
            self.taking_off(signal, next_leg, symbol, side, held - held.min(in_flight), qty, OrderIntent::Open)
        else {
            return;
        };
        let client_id = request.client_id;
        self.send_order(request, Purpose::Close(Some(key)), signal_t_in, out);
        let position = self.net_position(&symbol).map_or(NET, |p| p.id);
        audit(out, Some(signal), AuditEvent::Closing { client_id, position, qty });
    }

    /// The net position on `symbol` of a netting account.
    fn net_position(&self, symbol: &Symbol) -> Option<&Position> {
        self.positions.values().find(|p| p.symbol == *symbol)
    }

    /// Where a fill on `position` is held in a leg: the position itself on a hedging account,
    /// the leg's contribution to the net position on a netting account.
    fn holding_of(&self, position: PositionId) -> PositionId {
        match self.mode {
            AccountMode::Hedging => position,
            AccountMode::Netting => NET,
        }
    }

    // ----- sending ---------------------------------------------------------------------

    fn send_order(&mut self, request: OrderRequest, purpose: Purpose, signal_t_in: Option<u64>, out: &mut Vec<Action>) {
        self.register(request, purpose, signal_t_in);
        out.push(Action::Send { command: Command::Place(request), signal_t_in });
    }

    /// Quantity still to fill of the live orders `matching` picks.
    fn in_flight(&self, matching: impl Fn(&OrderEntry) -> bool) -> Qty {
        self.orders
            .values()
            .filter(|e| e.order.status.is_live() && matching(e))
            .fold(Qty::ZERO, |sum, e| sum + e.order.remaining_qty())
    }

    /// A market order (immediate or cancel) on the other side of a holding on `side`, for
    /// `qty` but never more than `available`; `None` when nothing is available. Numbered
    /// `(signal, this account, next_leg)`.
    #[allow(clippy::too_many_arguments)]
    fn taking_off(
        &self,
        signal: SignalId,
        next_leg: &mut u16,
        symbol: Symbol,
        side: mirror_model::Side,
        available: Qty,
        qty: Qty,
        intent: OrderIntent,
    ) -> Option<OrderRequest> {
        let qty = qty.min(available);
        if qty.is_zero() {
            return None;
        }
        let client_id = ClientOrderId::new(signal, self.id, *next_leg);
        *next_leg = next_leg.saturating_add(1);
        Some(OrderRequest {
            client_id,
            symbol,
            side: side.opposite(),
            qty,
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Ioc,
            intent,
        })
    }

    /// Records a new order as submitted (it is handed to the connector right after).
    fn register(&mut self, request: OrderRequest, purpose: Purpose, signal_t_in: Option<u64>) {
        let mut order = Order::new(request);
        let submitted = order.apply(OrderUpdate::Submit);
        debug_assert!(submitted.is_ok(), "a new order can always be submitted");
        self.orders.insert(request.client_id, OrderEntry { order, purpose, fills: 0, signal_t_in });
    }

    /// Closes `qty` of `position`, never more than is open and not already being closed by
    /// closes in flight. A position the broker has not reported yet (its open just filled)
    /// is closed on the strength of the leg that filled it.
    #[allow(clippy::too_many_arguments)]
    fn send_close(
        &mut self,
        signal: SignalId,
        signal_t_in: Option<u64>,
        next_leg: &mut u16,
        position: PositionId,
        qty: Qty,
        leg: Option<LegKey>,
        out: &mut Vec<Action>,
    ) {
        let (symbol, side, held) = match (self.positions.get(&position), leg.and_then(|key| self.legs.get(&key))) {
            (Some(known), _) => (known.symbol, known.side, known.qty),
            (None, Some(leg)) => (leg.symbol, leg.side, qty),
            (None, None) => return,
        };
        let in_flight = self.in_flight(|e| e.order.request.intent == OrderIntent::Close { position });
        let intent = OrderIntent::Close { position };
        let Some(request) = self.taking_off(signal, next_leg, symbol, side, held - held.min(in_flight), qty, intent)
        else {
            return;
        };
        let (client_id, qty) = (request.client_id, request.qty);
        self.register(request, Purpose::Close(leg), signal_t_in);
        let close = CloseRequest { client_id, position, symbol, qty };
        out.push(Action::Send { command: Command::Close(close), signal_t_in });
        audit(out, Some(signal), AuditEvent::Closing { client_id, position, qty });
    }

    fn send_modify(
        &mut self,
        signal: Option<SignalId>,
        signal_t_in: Option<u64>,
        position: PositionId,
        symbol: Symbol,
        (stop_loss, take_profit): (Option<Price>, Option<Price>),
        out: &mut Vec<Action>,
    ) {
        let request = ModifyRequest { position, symbol, stop_loss, take_profit };
        out.push(Action::Send { command: Command::Modify(request), signal_t_in });
        audit(out, signal, AuditEvent::Modifying { position, stop_loss, take_profit });
    }

    fn cancel_order(&mut self, signal: Option<SignalId>, client_id: ClientOrderId, out: &mut Vec<Action>) {
        let Some(entry) = self.orders.get_mut(&client_id) else {
            return;
        };
        if entry.order.apply(OrderUpdate::CancelRequest).is_err() {
            return;
        }
        let request = CancelRequest { client_id, broker_id: entry.order.broker_id };
        out.push(Action::Send { command: Command::Cancel(request), signal_t_in: None });
        audit(out, signal, AuditEvent::Cancelling { client_id });
    }

    // ----- connector events --------------------------------------------------------------

    fn on_event(&mut self, now: Now, event: ConnectorEvent, out: &mut Vec<Action>) {
        match event {
            ConnectorEvent::Order(report) => self.on_report(now, report, out),
            ConnectorEvent::Working(working) => self.on_working(now, &working, out),
            ConnectorEvent::Position(effect) => self.on_position(now, effect, out),
            ConnectorEvent::Account(snapshot) => {
                self.balance = snapshot.balance;
                self.equity = snapshot.equity;
                self.check_equity(out);
            }
            ConnectorEvent::Quote(_) => {}
            ConnectorEvent::Connection(state) => {
                self.connected = state == ConnectionState::Connected;
                audit(out, None, AuditEvent::Connection { state });
            }
        }
    }

    fn check_equity(&mut self, out: &mut Vec<Action>) {
        let Some(breach) = self.risk.on_equity(self.equity) else {
            return;
        };
        audit(out, None, AuditEvent::Breach { breach });
        audit(out, None, AuditEvent::Mode { mode: breach.mode });
        if breach.flatten_group {
            out.push(Action::Flatten { group: true, reason: FlattenReason::GroupDrawdown });
        } else if breach.flatten {
            out.push(Action::Flatten { group: false, reason: FlattenReason::Breach });
        }
    }

    fn on_report(&mut self, now: Now, report: OrderReport, out: &mut Vec<Action>) {
        if let OrderReportKind::Filled(fill) = report.kind {
            self.last_fill = Some((report.broker_id, fill.position, fill.price));
        }
        if self.is_leader
            && matches!(report.kind, OrderReportKind::Cancelled | OrderReportKind::Expired)
            && self.leader_pending.remove(&report.broker_id)
        {
            self.lead(now, SignalAction::CancelPending { leader: LeaderRef(report.broker_id.0) }, out);
        }
        let Some(client_id) = report.client_id else {
            // The user's own trade, or the broker's (a stop hit): seen through positions.
            return;
        };
        let update = match &report.kind {
            OrderReportKind::Filled(fill) => OrderUpdate::Fill(*fill),
            OrderReportKind::Cancelled => OrderUpdate::Cancelled,
            OrderReportKind::Expired => OrderUpdate::Expire,
            OrderReportKind::CancelRejected(_) => OrderUpdate::CancelRejected,
            OrderReportKind::Rejected(_) => OrderUpdate::Reject,
        };
        let Some(entry) = self.orders.get_mut(&client_id) else {
            let event = match self.finished.get(&client_id) {
                // A message about an order already finished: refused by the lifecycle (a
                // fill after a rejection is exactly what reconciliation must look at).
                Some(from) => AuditEvent::InvalidTransition {
                    error: OrderError::InvalidTransition { order: client_id, from: *from, event: update_event(update) },
                },
                None => AuditEvent::UnknownOrder { client_id },
            };
            return audit(out, Some(client_id.signal), event);
        };
        if entry.order.broker_id.is_none() {
            entry.order.broker_id = Some(report.broker_id);
        }
        if let Err(error) = entry.order.apply(update) {
            return audit(out, Some(client_id.signal), AuditEvent::InvalidTransition { error });
        }
        let signal = Some(client_id.signal);
        match report.kind {
            OrderReportKind::Filled(fill) => {
                audit(out, signal, AuditEvent::Filled { client_id, fill });
                if self.own_fills.len() == self.own_fills.inline_size() {
                    // A connector that never reports the position change: forget the oldest.
                    self.own_fills.remove(0);
                }
                self.own_fills.push(fill.position);
                self.on_fill(client_id, fill, out);
            }
            OrderReportKind::Cancelled => audit(out, signal, AuditEvent::Cancelled { client_id }),
            OrderReportKind::Expired => audit(out, signal, AuditEvent::Expired { client_id }),
            OrderReportKind::Rejected(reason) => {
                audit(out, signal, AuditEvent::Rejected { client_id, reason: reason.to_string() });
            }
            OrderReportKind::CancelRejected(reason) => {
                audit(out, signal, AuditEvent::CommandFailed { command: "cancel", error: reason.to_string() })
            }
        }
        self.after_order_change(client_id);
    }

    fn on_fill(&mut self, client_id: ClientOrderId, fill: Fill, out: &mut Vec<Action>) {
        let entry = self.orders.get_mut(&client_id).expect("caller found it");
        entry.fills = entry.fills.saturating_add(1);
        let (purpose, fill_number, signal_t_in) = (entry.purpose, entry.fills, entry.signal_t_in);
        let first_fill = fill_number == 1;
        let holding = self.holding_of(fill.position);
        match purpose {
            Purpose::Close(Some(key)) => {
                let held = self.legs.get(&key).map_or(Qty::ZERO, |leg| leg.held(holding));
                if let Some(leg) = self.legs.get_mut(&key) {
                    leg.reduce(holding, fill.qty);
                }
                self.legs.prune(&key);
                if holding == NET && fill.qty > held {
                    self.take_back(client_id, fill_number, fill.qty - held, out);
                }
            }
            Purpose::Close(None) => {}
            Purpose::Open(key) => {
                let Some(leg) = self.legs.get_mut(&key) else { return };
                leg.add(holding, fill.qty);
                // Each fill of an open gets its own deferred close id: (the open's signal,
                // this account, 1 + number of the fill), never used by anything else.
                let mut next_leg = fill_number;
                if leg.close_on_fill {
                    self.close_holding(client_id.signal, signal_t_in, &mut next_leg, key, holding, fill.qty, out);
                    return;
                }
                if leg.keep_fraction != Ratio::ONE {
                    let keep = leg.keep_fraction;
                    if let Some(spec) = self.instruments.get(&leg.symbol).copied() {
                        let drop_part = Qty::from_raw(keep.den() - keep.num());
                        let whole = Qty::from_raw(keep.den());
                        if let Ok(qty) =
                            proportional_close(fill.qty, drop_part, whole, &spec, mirror_model::Rounding::Nearest)
                        {
                            self.close_holding(client_id.signal, signal_t_in, &mut next_leg, key, holding, qty, out);
                        }
                    }
                }
                self.amend_after_fill(key, client_id, fill, first_fill, out);
            }
        }
    }

    /// A netting offset executed for more than its copy still held (the broker closed the copy
    /// by itself meanwhile): the excess is new exposure nobody asked for, so it is taken back
    /// off with an order on the other side of the offset. Numbered
    /// `(signal, account, 0x8000 + fill)` so it never collides with the signal's other orders.
    fn take_back(&mut self, offset: ClientOrderId, fill_number: u16, excess: Qty, out: &mut Vec<Action>) {
        let request = self.orders.get(&offset).expect("the offset being filled is live").order.request;
        let mut leg = 0x8000u16.saturating_add(fill_number);
        let intent = OrderIntent::Open;
        let Some(back) = self.taking_off(offset.signal, &mut leg, request.symbol, request.side, excess, excess, intent)
        else {
            return;
        };
        let client_id = back.client_id;
        self.send_order(back, Purpose::Close(None), None, out);
        audit(out, Some(offset.signal), AuditEvent::Corrected { client_id, symbol: request.symbol, qty: excess });
    }

    /// Levels that depend on the fill price (fixed distances), or that a modify asked for
    /// while the open was in flight, are set once the copy has filled.
    fn amend_after_fill(
        &mut self,
        key: LegKey,
        client_id: ClientOrderId,
        fill: Fill,
        first_fill: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(leg) = self.legs.get_mut(&key) else { return };
        let pending = leg.pending_levels.take();
        let Some(inbound) = self.inbound.iter().find(|i| i.link.link == leg.link) else {
            return;
        };
        let rules = &inbound.link.rules;
        if pending.is_none() && !(first_fill && rules.protection_follows_fill()) {
            return;
        }
        let Some(spec) = self.instruments.get(&leg.symbol).copied() else {
            return;
        };
        let sources = pending.unwrap_or(leg.leader_levels);
        let levels = rules.protection_levels(leg.side, Some(fill.price), &spec, sources.0, sources.1);
        // The position is usually not reported yet (the fill comes first); then it carries
        // the levels the order was sent with.
        let known =
            self.positions.get(&fill.position).map(|p| (p.stop_loss, p.take_profit)).or_else(|| {
                self.orders.get(&client_id).map(|e| (e.order.request.stop_loss, e.order.request.take_profit))
            });
        if known != Some(levels) {
            self.send_modify(Some(client_id.signal), None, fill.position, spec.symbol, levels, out);
        }
    }

    /// Keeps legs in step with an order that moved: a finished open stops being working,
    /// and a finished order leaves the live set for the finished ring.
    fn after_order_change(&mut self, client_id: ClientOrderId) {
        let Some(entry) = self.orders.get(&client_id) else {
            return;
        };
        if entry.order.status.is_live() {
            return;
        }
        let (purpose, status) = (entry.purpose, entry.order.status);
        self.orders.remove(&client_id);
        if self.finished_order.len() >= FINISHED_REMEMBERED
            && let Some(oldest) = self.finished_order.pop_front()
        {
            self.finished.remove(&oldest);
        }
        self.finished.insert(client_id, status);
        self.finished_order.push_back(client_id);
        if let Purpose::Open(key) = purpose {
            if let Some(leg) = self.legs.get_mut(&key) {
                leg.forget_order(client_id);
            }
            self.legs.prune(&key);
        }
    }

    fn on_working(&mut self, now: Now, working: &WorkingOrder, out: &mut Vec<Action>) {
        if !self.is_leader || !self.leader_pending.insert(working.broker_id) {
            return;
        }
        let Some(spec) = self.instruments.get(&working.symbol).copied() else {
            return;
        };
        let open = OpenSignal {
            leader: LeaderRef(working.broker_id.0),
            symbol: working.symbol,
            side: working.side,
            qty: working.qty,
            kind: working.kind,
            reference_price: working.kind.price(),
            stop_loss: working.stop_loss,
            take_profit: working.take_profit,
            time_in_force: working.time_in_force,
            contract_size: Some(spec.contract_size),
            from_pending: None,
        };
        self.lead(now, SignalAction::Open(open), out);
    }

    fn on_position(&mut self, now: Now, effect: PositionEffect, out: &mut Vec<Action>) {
        let position = effect.position;
        match effect.change {
            PositionChange::Closed { .. } => {
                self.positions.remove(&position.id);
            }
            _ => {
                self.positions.insert(position.id, position);
            }
        }
        // A change our own execution caused is already in the legs (through its fill). One the
        // broker made by itself (a stop or target hit, the user closing by hand) cuts the
        // copies it touched.
        match self.own_fills.iter().position(|id| *id == position.id) {
            Some(index) => {
                self.own_fills.remove(index);
            }
            None => self.external_change(&effect),
        }
        audit(out, None, AuditEvent::Position { effect });
        if self.is_leader {
            self.lead_position(now, effect, out);
        }
    }

    fn external_change(&mut self, effect: &PositionEffect) {
        let position = effect.position;
        let remaining = match effect.change {
            PositionChange::Closed { .. } => Qty::ZERO,
            PositionChange::Reduced { .. } => position.qty,
            _ => return,
        };
        match self.mode {
            AccountMode::Hedging => self.legs.clamp_all(position.id, remaining),
            AccountMode::Netting => {
                let closed = match effect.change {
                    PositionChange::Reduced { closed, .. } => Some(closed),
                    _ => None,
                };
                self.legs.cut_netted(position.symbol, position.side, closed);
            }
        }
    }

    // ----- leading ---------------------------------------------------------------------

    fn lead_position(&mut self, now: Now, effect: PositionEffect, out: &mut Vec<Action>) {
        let position = effect.position;
        let leader = LeaderRef(position.id.0);
        let fill = self.last_fill.filter(|(_, id, _)| *id == position.id);
        let open = |qty: Qty, from_pending: Option<LeaderRef>| {
            SignalAction::Open(OpenSignal {
                leader,
                symbol: position.symbol,
                side: position.side,
                qty,
                kind: OrderKind::Market,
                reference_price: Some(fill.map_or(position.open_price, |(_, _, price)| price)),
                stop_loss: position.stop_loss,
                take_profit: position.take_profit,
                time_in_force: TimeInForce::Gtc,
                contract_size: self.instruments.get(&position.symbol).map(|s| s.contract_size),
                from_pending,
            })
        };
        let action = match effect.change {
            PositionChange::Opened => {
                let from_pending = fill
                    .map(|(order, _, _)| order)
                    .filter(|order| self.leader_pending.remove(order))
                    .map(|order| LeaderRef(order.0));
                open(position.qty, from_pending)
            }
            PositionChange::Increased { added } => open(added, None),
            PositionChange::Reduced { closed, qty_before } => {
                SignalAction::PartialClose { leader, closed_qty: closed, qty_before }
            }
            PositionChange::Closed { .. } => SignalAction::Close { leader },
            PositionChange::ProtectionChanged => {
                SignalAction::Modify { leader, stop_loss: position.stop_loss, take_profit: position.take_profit }
            }
        };
        self.lead(now, action, out);
    }

    fn lead(&mut self, now: Now, action: SignalAction, out: &mut Vec<Action>) {
        audit(out, None, AuditEvent::Led { action });
        out.push(Action::Emit(SignalDraft {
            action,
            created_unix_ms: now.unix_ms,
            leader_balance: self.balance,
            leader_equity: self.equity,
        }));
    }

    // ----- outcomes ----------------------------------------------------------------------

    fn on_outcome(&mut self, outcome: Outcome, out: &mut Vec<Action>) {
        match outcome {
            Outcome::Order { client_id, result } => {
                let signal = Some(client_id.signal);
                let Some(entry) = self.orders.get_mut(&client_id) else {
                    // An answer that arrives after the order finished (a market order's ack
                    // after its fill) changes nothing.
                    if self.finished.contains_key(&client_id) {
                        if let Ok(ack) = result {
                            audit(out, signal, AuditEvent::Accepted { client_id, broker_id: ack.broker_id });
                        }
                        return;
                    }
                    return audit(out, signal, AuditEvent::UnknownOrder { client_id });
                };
                match result {
                    Ok(ack) => {
                        entry.order.broker_id = Some(ack.broker_id);
                        // An ack that arrives after the fills (market orders fill at once)
                        // changes nothing in the lifecycle.
                        if matches!(entry.order.status, OrderStatus::Submitted | OrderStatus::InFlightUnknown)
                            && let Err(error) = entry.order.apply(OrderUpdate::Accept(Some(ack.broker_id)))
                        {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::Accepted { client_id, broker_id: ack.broker_id });
                    }
                    Err(error) if error.outcome_unknown() => {
                        if let Err(error) = entry.order.apply(OrderUpdate::OutcomeUnknown) {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::OutcomeUnknown { client_id, error: error.to_string() });
                    }
                    Err(error) => {
                        if let Err(error) = entry.order.apply(OrderUpdate::Reject) {
                            audit(out, signal, AuditEvent::InvalidTransition { error });
                        }
                        audit(out, signal, AuditEvent::Rejected { client_id, reason: error.to_string() });
                    }
                }
                self.after_order_change(client_id);
            }
            Outcome::Modify { result: Err(error), .. } => {
                audit(out, None, AuditEvent::CommandFailed { command: "modify", error: error.to_string() });
            }
            Outcome::Cancel { client_id, result: Err(error) } => {
                audit(
                    out,
                    Some(client_id.signal),
                    AuditEvent::CommandFailed { command: "cancel", error: error.to_string() },
                );
            }
            Outcome::Modify { result: Ok(()), .. } | Outcome::Cancel { result: Ok(()), .. } => {}
        }
    }

    fn on_not_sent(&mut self, command: Command, out: &mut Vec<Action>) {
        match command {
            Command::Place(OrderRequest { client_id, .. }) | Command::Close(CloseRequest { client_id, .. }) => {
                if let Some(entry) = self.orders.get_mut(&client_id) {
                    let _ = entry.order.apply(OrderUpdate::Reject);
                }
                audit(
                    out,
                    Some(client_id.signal),
                    AuditEvent::Skipped { action: "send", reason: SkipReason::ConnectorQueueFull },
                );
                self.after_order_change(client_id);
            }
            Command::Modify(_) => audit(out, None, AuditEvent::NotSent { command: "modify" }),
            Command::Cancel(request) => {
                if let Some(entry) = self.orders.get_mut(&request.client_id) {
                    let _ = entry.order.apply(OrderUpdate::CancelRejected);
                }
                audit(out, Some(request.client_id.signal), AuditEvent::NotSent { command: "cancel" });
            }
        }
    }

    // ----- control -----------------------------------------------------------------------

    fn on_control(&mut self, control: Control, out: &mut Vec<Action>) {
        match control {
            Control::Pause | Control::Resume => {
                self.paused = control == Control::Pause;
                audit(out, None, AuditEvent::Paused { scope: "account", paused: self.paused });
            }
            Control::PauseLink(link) | Control::ResumeLink(link) => {
                let paused = matches!(control, Control::PauseLink(_));
                if let Some(inbound) = self.inbound.iter_mut().find(|i| i.link.link == link) {
                    inbound.paused = paused;
                    audit(out, None, AuditEvent::Paused { scope: "link", paused });
                }
            }
            Control::PauseAll | Control::ResumeAll => {
                self.globally_paused = control == Control::PauseAll;
                audit(out, None, AuditEvent::Paused { scope: "global", paused: self.globally_paused });
            }
            Control::Flatten { id, reason, freeze } => self.flatten(id, reason, freeze, out),
            Control::NewDay => {
                let before = self.risk.mode;
                self.risk.new_day(self.equity);
                if before != self.risk.mode {
                    audit(out, None, AuditEvent::Mode { mode: self.risk.mode });
                }
            }
            Control::ResetRisk => {
                self.risk.reset();
                audit(out, None, AuditEvent::Mode { mode: self.risk.mode });
            }
        }
    }

    fn flatten(&mut self, id: SignalId, reason: FlattenReason, freeze: bool, out: &mut Vec<Action>) {
        if freeze && self.risk.mode != RiskMode::Frozen {
            self.risk.freeze();
            audit(out, Some(id), AuditEvent::Mode { mode: RiskMode::Frozen });
        }
        let mut positions: SmallVec<[(PositionId, Qty); 8]> = self.positions.values().map(|p| (p.id, p.qty)).collect();
        positions.sort_unstable();
        let mut working: SmallVec<[ClientOrderId; 8]> = self
            .orders
            .iter()
            .filter(|(_, e)| matches!(e.purpose, Purpose::Open(_)) && e.order.status.is_live())
            .map(|(id, _)| *id)
            .collect();
        working.sort_unstable();
        audit(
            out,
            Some(id),
            AuditEvent::Flattening {
                reason,
                positions: u32::try_from(positions.len()).unwrap_or(u32::MAX),
                orders: u32::try_from(working.len()).unwrap_or(u32::MAX),
            },
        );
        // The account is being emptied: no copy survives it. What is still in flight closes
        // as it fills.
        self.legs.clear_holdings();
        let mut next_leg = 1;
        for (position, qty) in positions {
            self.send_close(id, None, &mut next_leg, position, qty, None, out);
        }
        for client_id in working {
            let resting = self.orders.get(&client_id).is_some_and(|e| e.order.request.kind.is_pending());
            if resting {
                self.cancel_order(Some(id), client_id, out);
            }
        }
    }
}

#[cfg(test)]
mod tests;
