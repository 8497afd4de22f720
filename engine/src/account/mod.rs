//! The account actor: one account's whole copy logic as an I/O-free state machine.
//!
//! [`AccountActor::on_input`] takes the time (read by the caller, never here), one input (a
//! signal to copy, a connector event, the outcome of a command, a control) and appends the
//! resulting actions to a caller-owned buffer: commands for the connector, signals to fan out
//! (when the account is itself a leader), flatten requests and audit records. It reads no
//! clock, does no I/O and, once its maps have grown to their working size, does not allocate,
//! so the copy logic is deterministic and can be tested by replaying inputs.

mod control;
mod execution;
mod follow;
mod lead;
mod legs;
mod reconcile;
mod risk;
mod snapshot;

use std::sync::Arc;

use mirror_connector::{
    CancelRequest, CloseRequest, ConnectionState, ConnectorError, ConnectorEvent, ModifyRequest, OrderReport,
    OrderReportKind, PlaceAck, WorkingOrder,
};
use mirror_model::{
    AccountId, AccountMode, BrokerOrderId, ClientOrderId, Fill, FollowerContext, InstrumentTable, LeaderRef, LinkRules,
    Money, OpenSignal, Order, OrderError, OrderIntent, OrderKind, OrderRequest, OrderStatus, OrderUpdate, Origin,
    Position, PositionChange, PositionEffect, PositionId, Price, Qty, Ratio, ReconcilePolicy, Side, SignalAction,
    SignalId, SignalView, SizeAdjustment, SkipReason, Symbol, TimeInForce, proportional_close,
};
use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

pub use reconcile::{Drift, LeaderBook, LeaderPosition, Lookups, Repair};
pub use risk::{Breach, BreachAction, Guard, RiskLimits, RiskMode};
pub use snapshot::ActorSnapshot;

use crate::LinkId;
use legs::{CopyLeg, LegKey, Legs, NET};
use risk::RiskState;

/// The time, as read by the caller: monotonic nanoseconds (for latency) and Unix
/// milliseconds (for signal age and timestamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Now {
    /// Monotonic clock, nanoseconds since the engine started.
    pub mono_ns: u64,
    /// Wall clock, Unix milliseconds.
    pub unix_ms: i64,
}

/// A link on which this account follows an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The engine restarted: orders handed to the connector before it stopped, with no
    /// outcome yet, are in flight with an unknown outcome until reconciliation looks them up.
    Restarted,
    /// Close this account's copy of one leader position (or source position), as a close
    /// signal would, but on this account alone (a pair unwound on one follower).
    CloseCopy {
        /// Numbers the closing orders.
        id: SignalId,
        /// The leader or source.
        origin: Origin,
        /// Its position.
        leader: LeaderRef,
    },
    /// Copy this open to this account alone, sized by its link's rules as the original was
    /// (a pair's missing leg sent again to one follower).
    CopyOpen {
        /// Numbers the order.
        id: SignalId,
        /// The leader or source.
        origin: Origin,
        /// The open.
        open: OpenSignal,
    },
}

/// Finished orders remembered (with their final status) so that a late broker message about
/// one is recognised, and a fill on an order believed rejected is reported as the lifecycle
/// violation it is. Oldest forgotten first.
const FINISHED_REMEMBERED: usize = 256;

/// Copies closed by hand remembered (so they are not reopened); oldest forgotten first.
const CLOSED_BY_HAND_REMEMBERED: usize = 4_096;

/// Leader positions remembered as closed (never reopened by a repair); oldest forgotten first.
const LEADER_CLOSED_REMEMBERED: usize = 4_096;

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
    /// Reconciliation: what the broker knows about the live orders.
    Lookups(Box<Lookups>),
    /// Reconciliation: the origins' books, to repair missing and orphaned copies.
    Repair(Box<Repair>),
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

/// A short fixed name in an audit event (an action, a scope, a command): borrowed when the
/// engine writes it, owned when read back from the journal.
pub type Label = std::borrow::Cow<'static, str>;

/// What happened, for the audit stream, logs and counters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        action: Label,
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
    /// Reconciliation found no trace of it at the broker: it never got there (the engine
    /// stopped before sending it). Finished, nothing to undo.
    NeverSent {
        /// The order.
        client_id: ClientOrderId,
    },
    /// A close that never reached the broker (the engine stopped first) was sent again.
    Resent {
        /// The order (same id: the broker never saw it).
        client_id: ClientOrderId,
        /// Quantity.
        qty: Qty,
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
        scope: Label,
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
        command: Label,
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
    /// Reconciliation found a difference.
    Drift {
        /// Which.
        drift: Drift,
    },
    /// The account's state was reconciled with the broker's.
    Reconciled {
        /// Positions the broker holds.
        positions: u32,
        /// Working orders it holds.
        orders: u32,
    },
    /// A command could not be queued for the connector.
    NotSent {
        /// Which.
        command: Label,
    },
}

/// An audit record: the event and the signal it belongs to, if any.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Purpose {
    /// Opens (part of) a leg.
    Open(LegKey),
    /// Closes a position, for a leg or for a flatten.
    Close(Option<LegKey>),
}

#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
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
    /// Leader role: pending orders seen on this account, by broker id (with symbol and side,
    /// to tell a pending order that filled from one that was cancelled).
    leader_pending: FxHashMap<BrokerOrderId, (Symbol, Side)>,
    /// Copies closed without Mirror, not to be reopened by reconciliation.
    closed_by_hand: FxHashSet<LegKey>,
    closed_by_hand_order: VecDeque<LegKey>,
    /// Leader positions whose close this account has seen: a repair working from a book
    /// taken a moment earlier must not reopen them.
    leader_closed: FxHashSet<LegKey>,
    leader_closed_order: VecDeque<LegKey>,
    /// Inputs handled so far (journal records carry it; snapshots say where they stand).
    input_seq: u64,
    /// Broker snapshots handled since this actor was built (the shell waits on it to know a
    /// reconciliation went through).
    broker_snapshots: u64,
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

/// One copy leg as seen from outside: which leader position it copies and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CopyView {
    /// The leader or source.
    pub origin: Origin,
    /// The leader position.
    pub leader: LeaderRef,
    /// The follower's symbol.
    pub symbol: Symbol,
    /// The copy's side.
    pub side: Side,
    /// Quantity held, per position (`None`: a netting account's contribution to its net).
    pub held: Vec<(Option<PositionId>, Qty)>,
    /// Opens still working.
    pub working: usize,
    /// Whatever still fills is closed (the leader closed while the open was in flight).
    pub close_on_fill: bool,
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
            leader_pending: FxHashMap::default(),
            closed_by_hand: FxHashSet::default(),
            closed_by_hand_order: VecDeque::new(),
            leader_closed: FxHashSet::default(),
            leader_closed_order: VecDeque::new(),
            input_seq: 0,
            broker_snapshots: 0,
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

    /// Every copy leg, ordered by origin and leader position.
    pub fn copies(&self) -> Vec<CopyView> {
        self.legs
            .keys_of_all()
            .into_iter()
            .filter_map(|key| {
                let leg = self.legs.get(&key)?;
                Some(CopyView {
                    origin: key.0,
                    leader: key.1,
                    symbol: leg.symbol,
                    side: leg.side,
                    held: leg.positions.iter().map(|(id, qty)| ((*id != NET).then_some(*id), *qty)).collect(),
                    working: leg.working.len(),
                    close_on_fill: leg.close_on_fill,
                })
            })
            .collect()
    }

    /// Handles one input, appending actions to `out`.
    pub fn on_input(&mut self, now: Now, input: Input<'_>, out: &mut Vec<Action>) {
        self.input_seq += 1;
        match input {
            Input::Signal { signal, link } => self.on_signal(now, signal, link, out),
            Input::Event(event) => self.on_event(now, event, out),
            Input::Outcome(outcome) => self.on_outcome(outcome, out),
            Input::NotSent(command) => self.on_not_sent(command, out),
            Input::Control(control) => self.on_control(now, control, out),
            Input::Lookups(lookups) => self.on_lookups(now, *lookups, out),
            Input::Repair(repair) => self.on_repair(now, *repair, out),
        }
    }

    /// Inputs handled so far.
    pub fn input_seq(&self) -> u64 {
        self.input_seq
    }

    /// Replay met a hole in this account's inputs (they were compacted away, or a signal
    /// expired): the next input takes the number after `handled`, as it did the first time.
    pub(crate) fn skip_inputs_to(&mut self, handled: u64) {
        self.input_seq = self.input_seq.max(handled);
    }

    /// Whether other accounts copy this one.
    pub fn is_leader(&self) -> bool {
        self.is_leader
    }

    /// The configuration changed live: these are now its inbound links and risk limits. A
    /// link from an origin it already copied keeps its paused state (copies are kept by
    /// origin, so renumbered links change nothing else); a new one starts paused when
    /// `paused_new` names its origin. Risk state (the day's high, the mode) is kept.
    pub fn relink(&mut self, inbound: Vec<InboundLink>, paused_new: &[Origin], risk: Option<RiskLimits>) {
        let before = std::mem::take(&mut self.inbound);
        self.inbound = inbound
            .into_iter()
            .map(|link| {
                let paused = match before.iter().find(|old| old.link.origin == link.origin) {
                    Some(old) => old.paused,
                    None => paused_new.contains(&link.origin),
                };
                InboundState { link, paused }
            })
            .collect();
        if let Some(limits) = risk {
            self.risk.limits = limits;
        }
    }

    /// Broker snapshots handled since this actor was built.
    pub fn broker_snapshots(&self) -> u64 {
        self.broker_snapshots
    }
}

#[cfg(test)]
mod tests;
