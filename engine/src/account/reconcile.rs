//! Reconciliation: the broker's truth against what this account expects, after a restart and
//! after every reconnect. Three inputs, in this order:
//!
//! 1. [`Lookups`]: what the broker knows about the account's live orders. Each is resolved
//!    by difference (fills not yet applied are applied; an order the broker never accepted
//!    is rejected), so hearing about a fill twice counts it once.
//! 2. A [`BrokerSnapshot`] event, in stream order: positions are replaced by the broker's; a
//!    leader leads the difference; a follower's copies that the broker closed or shrank by
//!    itself are reported and cut; positions no copy explains are reported.
//! 3. A [`Repair`]: the current positions of every origin the account follows. A leader
//!    position without a copy is a missing copy; a copy without a leader position is an
//!    orphan. Each link's policy decides whether to repair them or only report them; a copy
//!    closed by hand is not reopened unless the link says so.

use std::collections::BTreeSet;

use mirror_connector::{BrokerSnapshot, LookupState, OrderLookup};

use super::*;

/// What the broker knows about some of the account's live orders, found by client id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lookups {
    /// The ids asked about.
    pub asked: Vec<ClientOrderId>,
    /// What the broker had (ids it never accepted are absent).
    pub found: Vec<OrderLookup>,
}

/// One position of a leader (an account, or a source's running book).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderPosition {
    /// The leader's reference.
    pub leader: LeaderRef,
    /// The leader's symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Quantity now.
    pub qty: Qty,
    /// Open price.
    pub open_price: Price,
    /// Stop loss.
    pub stop_loss: Option<Price>,
    /// Take profit.
    pub take_profit: Option<Price>,
    /// Units per quantity, for notional sizing.
    pub contract_size: Option<Qty>,
}

/// Everything an origin holds now.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaderBook {
    /// The origin.
    pub origin: Origin,
    /// Its balance, when it is an account.
    pub balance: Option<Money>,
    /// Its equity, when it is an account.
    pub equity: Option<Money>,
    /// Its open positions.
    pub positions: Vec<LeaderPosition>,
}

/// A repair pass: the books of the origins and a block of ids for the orders it may send
/// (`first_id` … `first_id + ids − 1`; the last one numbers the closes of orphans).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repair {
    /// First id of the block.
    pub first_id: SignalId,
    /// Ids in the block (at least 1).
    pub ids: u32,
    /// The origins' books.
    pub books: Vec<LeaderBook>,
}

/// A difference reconciliation found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    /// The leader holds a position this account has no copy of.
    MissingCopy {
        /// Origin.
        origin: Origin,
        /// Leader position.
        leader: LeaderRef,
        /// Leader symbol.
        symbol: Symbol,
        /// Whether a copy is being opened.
        repaired: bool,
    },
    /// This account holds a copy of a leader position that no longer exists.
    Orphan {
        /// Origin.
        origin: Origin,
        /// Leader position.
        leader: LeaderRef,
        /// The copy's symbol.
        symbol: Symbol,
        /// Quantity held.
        qty: Qty,
        /// Whether it is being closed.
        repaired: bool,
    },
    /// The broker holds a different quantity than the copies account for.
    SizeMismatch {
        /// Symbol.
        symbol: Symbol,
        /// The position (hedging accounts).
        position: Option<PositionId>,
        /// What the copies hold.
        expected: Qty,
        /// What the broker holds.
        actual: Qty,
    },
    /// A copy was closed at the broker without this account asking (by hand, or by its own
    /// stop or target). It is not reopened unless the link says so.
    ClosedByHand {
        /// Origin.
        origin: Origin,
        /// Leader position.
        leader: LeaderRef,
        /// The copy's symbol.
        symbol: Symbol,
        /// The position (hedging accounts).
        position: Option<PositionId>,
        /// Quantity the copy held.
        qty: Qty,
    },
    /// A position no copy explains (the user's own, or another tool's).
    UnknownPosition {
        /// The position.
        position: PositionId,
        /// Symbol.
        symbol: Symbol,
        /// Side.
        side: Side,
        /// Quantity.
        qty: Qty,
    },
    /// An order whose outcome was unknown, resolved from the broker's records.
    OrderResolved {
        /// The order.
        client_id: ClientOrderId,
        /// What the broker said.
        state: Option<LookupState>,
        /// Quantity filled, as the broker reports it.
        filled: Qty,
    },
}

impl AccountActor {
    // ----- 1. lookups ----------------------------------------------------------------------

    pub(super) fn on_lookups(&mut self, now: Now, lookups: Lookups, out: &mut Vec<Action>) {
        let mut asked = lookups.asked;
        asked.sort_unstable();
        asked.dedup();
        for client_id in asked {
            let Some(entry) = self.orders.get(&client_id) else { continue };
            let (status, request) = (entry.order.status, entry.order.request);
            match lookups.found.iter().find(|l| l.client_id == client_id) {
                // Sent since the lookup was asked for: its answer is on its way.
                None if matches!(status, OrderStatus::Created | OrderStatus::Submitted) => {}
                // A close that never reached the broker: the decision to close stands, so it
                // is sent again under the same id (which the broker has never seen).
                None if status == OrderStatus::InFlightUnknown
                    && matches!(self.orders.get(&client_id).map(|e| e.purpose), Some(Purpose::Close(_))) =>
                {
                    let drift = Drift::OrderResolved { client_id, state: None, filled: Qty::ZERO };
                    audit(out, Some(client_id.signal), AuditEvent::Drift { drift });
                    self.resend(client_id, out);
                }
                None => {
                    // Never accepted: the order did not reach the broker (a working order the
                    // broker has forgotten counts as cancelled).
                    let kind = match status {
                        OrderStatus::InFlightUnknown => {
                            let reason = mirror_connector::RejectReason::new(
                                mirror_connector::RejectCode::NeverReceived,
                                "the broker has no record of this order",
                            );
                            OrderReportKind::Rejected(reason)
                        }
                        _ => OrderReportKind::Cancelled,
                    };
                    let drift = Drift::OrderResolved { client_id, state: None, filled: Qty::ZERO };
                    audit(out, Some(client_id.signal), AuditEvent::Drift { drift });
                    self.resolve(now, client_id, request, BrokerOrderId(0), kind, out);
                }
                Some(found) => {
                    let filled = found.fills.iter().fold(Qty::ZERO, |sum, fill| sum + fill.qty);
                    let drift = Drift::OrderResolved { client_id, state: Some(found.state), filled };
                    audit(out, Some(client_id.signal), AuditEvent::Drift { drift });
                    self.apply_lookup(now, found, out);
                }
            }
        }
    }

    /// Sends again an order that never reached the broker, under its own id.
    fn resend(&mut self, client_id: ClientOrderId, out: &mut Vec<Action>) {
        let Some(entry) = self.orders.remove(&client_id) else { return };
        let request = entry.order.request;
        self.register(request, entry.purpose, entry.signal_t_in);
        let command = match request.intent {
            OrderIntent::Close { position } => {
                Command::Close(CloseRequest { client_id, position, symbol: request.symbol, qty: request.qty })
            }
            OrderIntent::Open => Command::Place(request),
        };
        out.push(Action::Send { command, signal_t_in: entry.signal_t_in });
        audit(out, Some(client_id.signal), AuditEvent::Resent { client_id, qty: request.qty });
    }

    /// Applies what a lookup says happened and this account had not heard of.
    fn apply_lookup(&mut self, now: Now, found: &OrderLookup, out: &mut Vec<Action>) {
        let client_id = found.client_id;
        let Some(entry) = self.orders.get(&client_id) else { return };
        let request = entry.order.request;
        if matches!(entry.order.status, OrderStatus::Submitted | OrderStatus::InFlightUnknown)
            && let Some(entry) = self.orders.get_mut(&client_id)
            && let Err(error) = entry.order.apply(OrderUpdate::Accept(Some(found.broker_id)))
        {
            audit(out, Some(client_id.signal), AuditEvent::InvalidTransition { error });
        }
        // Executions beyond those already applied, in the broker's order.
        let mut already = self.orders.get(&client_id).map_or(Qty::ZERO, |e| e.order.filled_qty);
        for fill in &found.fills {
            if already >= fill.qty {
                already -= fill.qty;
                continue;
            }
            let part = Fill { qty: fill.qty - already, ..*fill };
            already = Qty::ZERO;
            self.resolve(now, client_id, request, found.broker_id, OrderReportKind::Filled(part), out);
        }
        let kind = match found.state {
            LookupState::Working | LookupState::Filled => return,
            LookupState::Cancelled => OrderReportKind::Cancelled,
            LookupState::Expired => OrderReportKind::Expired,
            LookupState::Rejected => OrderReportKind::Rejected(mirror_connector::RejectReason::new(
                mirror_connector::RejectCode::Other,
                "rejected at the broker",
            )),
        };
        if self.orders.contains_key(&client_id) {
            self.resolve(now, client_id, request, found.broker_id, kind, out);
        }
    }

    /// Feeds a report built from the broker's records through the normal execution path.
    fn resolve(
        &mut self,
        now: Now,
        client_id: ClientOrderId,
        request: OrderRequest,
        broker_id: BrokerOrderId,
        kind: OrderReportKind,
        out: &mut Vec<Action>,
    ) {
        let report = OrderReport {
            client_id: Some(client_id),
            broker_id,
            symbol: request.symbol,
            side: request.side,
            kind,
            time_unix_ms: now.unix_ms,
        };
        self.on_report(now, report, out);
    }

    // ----- 2. snapshot ---------------------------------------------------------------------

    pub(super) fn on_snapshot(&mut self, now: Now, snapshot: BrokerSnapshot, out: &mut Vec<Action>) {
        self.broker_snapshots += 1;
        let truth: FxHashMap<PositionId, Position> = snapshot.positions.iter().map(|p| (p.id, *p)).collect();
        self.drift_against(&truth, out);
        let before = std::mem::replace(&mut self.positions, truth);
        self.own_fills.clear();
        if self.is_leader {
            self.lead_snapshot(now, &before, &snapshot.orders, out);
        }
        self.balance = snapshot.account.balance;
        self.equity = snapshot.account.equity;
        let (positions, orders) = (snapshot.positions.len(), snapshot.orders.len());
        audit(
            out,
            None,
            AuditEvent::Reconciled {
                positions: u32::try_from(positions).unwrap_or(u32::MAX),
                orders: u32::try_from(orders).unwrap_or(u32::MAX),
            },
        );
        self.check_equity(out);
    }

    /// Compares the copies with the broker's positions, cutting what the broker closed or
    /// shrank by itself and reporting what no copy explains.
    fn drift_against(&mut self, truth: &FxHashMap<PositionId, Position>, out: &mut Vec<Action>) {
        if self.inbound.is_empty() {
            // A pure leader: its positions are its own, there are no copies to check.
            return;
        }
        let keys = self.legs.keys_of_all();
        match self.mode {
            AccountMode::Hedging => {
                for key in &keys {
                    let Some(leg) = self.legs.get(key) else { continue };
                    let (symbol, holdings) = (leg.symbol, leg.positions.clone());
                    for (position, held) in holdings {
                        let actual = truth.get(&position).map_or(Qty::ZERO, |p| p.qty);
                        if actual.is_zero() {
                            let drift = Drift::ClosedByHand {
                                origin: key.0,
                                leader: key.1,
                                symbol,
                                position: Some(position),
                                qty: held,
                            };
                            audit(out, None, AuditEvent::Drift { drift });
                            self.mark_closed_by_hand(*key);
                        } else if actual != held {
                            let drift =
                                Drift::SizeMismatch { symbol, position: Some(position), expected: held, actual };
                            audit(out, None, AuditEvent::Drift { drift });
                        }
                        if actual < held {
                            self.legs.clamp_all(position, actual);
                        }
                    }
                }
                let held: BTreeSet<PositionId> = self.legs.holdings().map(|(position, _)| position).collect();
                let mut unknown: Vec<&Position> = truth.values().filter(|p| !held.contains(&p.id)).collect();
                unknown.sort_by_key(|p| p.id);
                for position in unknown {
                    let drift = Drift::UnknownPosition {
                        position: position.id,
                        symbol: position.symbol,
                        side: position.side,
                        qty: position.qty,
                    };
                    audit(out, None, AuditEvent::Drift { drift });
                }
            }
            AccountMode::Netting => {
                let mut symbols: Vec<Symbol> = self.legs.symbols().collect();
                symbols.extend(truth.values().map(|p| p.symbol));
                symbols.sort_unstable();
                symbols.dedup();
                for symbol in symbols {
                    let expected = self.legs.net_on(&symbol);
                    let actual = truth.values().find(|p| p.symbol == symbol).map_or(0, |p| p.qty.raw() * p.side.sign());
                    if expected == actual {
                        continue;
                    }
                    if expected == 0 {
                        if let Some(position) = truth.values().find(|p| p.symbol == symbol) {
                            let drift = Drift::UnknownPosition {
                                position: position.id,
                                symbol,
                                side: position.side,
                                qty: position.qty,
                            };
                            audit(out, None, AuditEvent::Drift { drift });
                        }
                        continue;
                    }
                    let drift = Drift::SizeMismatch {
                        symbol,
                        position: truth.values().find(|p| p.symbol == symbol).map(|p| p.id),
                        expected: Qty::from_raw(expected.abs()),
                        actual: Qty::from_raw(actual.abs()),
                    };
                    audit(out, None, AuditEvent::Drift { drift });
                    let side = if expected > 0 { Side::Buy } else { Side::Sell };
                    if actual == 0 {
                        for key in self.legs.keys_on(&symbol) {
                            let qty = self.legs.get(&key).map_or(Qty::ZERO, CopyLeg::open_qty);
                            let drift =
                                Drift::ClosedByHand { origin: key.0, leader: key.1, symbol, position: None, qty };
                            audit(out, None, AuditEvent::Drift { drift });
                            self.mark_closed_by_hand(key);
                        }
                        self.legs.cut_netted(symbol, side, None);
                    } else if actual.signum() == expected.signum() && actual.abs() < expected.abs() {
                        self.legs.cut_netted(symbol, side, Some(Qty::from_raw(expected.abs() - actual.abs())));
                    }
                }
            }
        }
    }

    /// A leader leads what changed while it was not watching: positions and pending orders.
    fn lead_snapshot(
        &mut self,
        now: Now,
        before: &FxHashMap<PositionId, Position>,
        orders: &[WorkingOrder],
        out: &mut Vec<Action>,
    ) {
        let working: BTreeSet<BrokerOrderId> = orders.iter().map(|o| o.broker_id).collect();
        let mut vanished: Vec<(BrokerOrderId, Symbol, Side)> = self
            .leader_pending
            .iter()
            .filter(|(order, _)| !working.contains(order))
            .map(|(order, (symbol, side))| (*order, *symbol, *side))
            .collect();
        vanished.sort_unstable_by_key(|(order, _, _)| *order);
        let mut ids: Vec<PositionId> = before.keys().chain(self.positions.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut filled_pending = BTreeSet::new();
        for id in ids {
            let (old, new) = (before.get(&id).copied(), self.positions.get(&id).copied());
            // A pending order gone and a new position on its symbol and side: it filled.
            let from_pending = match (old, new) {
                (None, Some(position)) => vanished
                    .iter()
                    .find(|(order, symbol, side)| {
                        !filled_pending.contains(order) && *symbol == position.symbol && *side == position.side
                    })
                    .map(|(order, _, _)| *order),
                _ => None,
            };
            if let Some(order) = from_pending {
                filled_pending.insert(order);
            }
            self.lead_change(now, old, new, from_pending.map(|o| LeaderRef(o.0)), out);
        }
        for (order, _, _) in vanished {
            self.leader_pending.remove(&order);
            if !filled_pending.contains(&order) {
                self.lead(now, SignalAction::CancelPending { leader: LeaderRef(order.0) }, out);
            }
        }
        let mut fresh: Vec<&WorkingOrder> =
            orders.iter().filter(|o| !self.leader_pending.contains_key(&o.broker_id)).collect();
        fresh.sort_by_key(|o| o.broker_id);
        for order in fresh {
            let order = *order;
            self.on_working(now, &order, out);
        }
    }

    /// Remembers that a copy was closed without Mirror (not reopened unless the link says).
    fn mark_closed_by_hand(&mut self, key: LegKey) {
        if self.closed_by_hand.len() >= CLOSED_BY_HAND_REMEMBERED
            && let Some(oldest) = self.closed_by_hand_order.pop_front()
        {
            self.closed_by_hand.remove(&oldest);
        }
        if self.closed_by_hand.insert(key) {
            self.closed_by_hand_order.push_back(key);
        }
    }

    /// The leader closed the position: nothing about its copy needs remembering any more.
    pub(super) fn forget_closed_by_hand(&mut self, key: &LegKey) {
        if self.closed_by_hand.remove(key) {
            self.closed_by_hand_order.retain(|k| k != key);
        }
    }

    /// The leader closed this position: a repair must never open a copy of it again.
    pub(super) fn remember_leader_closed(&mut self, key: LegKey) {
        if self.leader_closed.insert(key) {
            self.leader_closed_order.push_back(key);
            if self.leader_closed_order.len() > LEADER_CLOSED_REMEMBERED
                && let Some(oldest) = self.leader_closed_order.pop_front()
            {
                self.leader_closed.remove(&oldest);
            }
        }
    }

    // ----- 3. repair -----------------------------------------------------------------------

    pub(super) fn on_repair(&mut self, now: Now, repair: Repair, out: &mut Vec<Action>) {
        let ids = u64::from(repair.ids.max(1));
        let close_id = SignalId(repair.first_id.0 + ids - 1);
        let mut next_open = repair.first_id.0;
        let mut next_close_leg = 1u16;
        let mut links: Vec<(Origin, LinkId, ReconcilePolicy)> =
            self.inbound.iter().map(|i| (i.link.origin, i.link.link, i.link.rules.reconcile)).collect();
        links.sort_by_key(|(origin, _, _)| *origin);
        for (origin, link, policy) in links {
            let Some(book) = repair.books.iter().find(|b| b.origin == origin) else { continue };
            let leaders: BTreeSet<LeaderRef> = book.positions.iter().map(|p| p.leader).collect();
            for key in self.legs.keys_of(origin, None) {
                let Some(leg) = self.legs.get(&key) else { continue };
                if leaders.contains(&key.1) || !leg.working.is_empty() || leg.positions.is_empty() {
                    continue;
                }
                // Already being closed (the leader's close arrived before this book).
                if self.in_flight(|e| e.purpose == Purpose::Close(Some(key))) >= leg.open_qty() {
                    continue;
                }
                let drift = Drift::Orphan {
                    origin,
                    leader: key.1,
                    symbol: leg.symbol,
                    qty: leg.open_qty(),
                    repaired: policy.repair,
                };
                audit(out, Some(close_id), AuditEvent::Drift { drift });
                if policy.repair {
                    self.close_leg(close_id, now.mono_ns, key, &mut next_close_leg, out);
                }
            }
            let mut positions = book.positions.clone();
            positions.sort_by_key(|p| p.leader);
            for position in positions {
                let key = (origin, position.leader);
                if self.legs.get(&key).is_some()
                    || self.leader_closed.contains(&key)
                    || (self.closed_by_hand.contains(&key) && !policy.reopen_closed_by_hand)
                {
                    continue;
                }
                let repaired = policy.repair && next_open < close_id.0;
                let drift = Drift::MissingCopy { origin, leader: position.leader, symbol: position.symbol, repaired };
                audit(out, None, AuditEvent::Drift { drift });
                if !repaired {
                    continue;
                }
                self.forget_closed_by_hand(&key);
                let signal = SignalView {
                    id: SignalId(next_open),
                    origin,
                    created_unix_ms: now.unix_ms,
                    accepted_mono_ns: now.mono_ns,
                    leader_balance: book.balance,
                    leader_equity: book.equity,
                    action: SignalAction::Open(OpenSignal {
                        leader: position.leader,
                        symbol: position.symbol,
                        side: position.side,
                        qty: position.qty,
                        kind: OrderKind::Market,
                        reference_price: Some(position.open_price),
                        stop_loss: position.stop_loss,
                        take_profit: position.take_profit,
                        time_in_force: TimeInForce::Gtc,
                        contract_size: position.contract_size,
                        from_pending: None,
                        risk_bp: None,
                    }),
                    note: "",
                };
                next_open += 1;
                self.on_signal(now, &signal, link, out);
            }
        }
    }

    /// This account's positions as a leader's book, for its followers' repair.
    pub fn leader_book(&self) -> LeaderBook {
        let mut positions: Vec<LeaderPosition> = self
            .positions
            .values()
            .map(|p| LeaderPosition {
                leader: LeaderRef(p.id.0),
                symbol: p.symbol,
                side: p.side,
                qty: p.qty,
                open_price: p.open_price,
                stop_loss: p.stop_loss,
                take_profit: p.take_profit,
                contract_size: self.instruments.get(&p.symbol).map(|s| s.contract_size),
            })
            .collect();
        positions.sort_by_key(|p| p.leader);
        LeaderBook {
            origin: Origin::Account(self.id),
            balance: Some(self.balance),
            equity: Some(self.equity),
            positions,
        }
    }

    /// The ids of the orders whose fate reconciliation must look up at the broker: every live
    /// order but those on their way now (their answer is coming; a lookup racing them would
    /// find nothing and wrongly conclude they never arrived).
    pub fn live_order_ids(&self) -> Vec<ClientOrderId> {
        let mut ids: Vec<ClientOrderId> = self
            .orders
            .iter()
            .filter(|(_, e)| !matches!(e.order.status, OrderStatus::Created | OrderStatus::Submitted))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }
}
