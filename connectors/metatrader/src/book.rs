//! The bridge's copy of one terminal: positions, pending orders and account, kept from the
//! terminal's events, and reconciled against each snapshot. Pure: no I/O, no clock.
//!
//! Positions keep one id for life even where MetaTrader renumbers them: an MT4 partial close
//! leaves the remainder under a new ticket (`from #<old>`), which this book maps back to the
//! position's first ticket, so the engine sees one position reduced, as on every other
//! platform.
//!
//! Every method checks before it changes anything: an event the book cannot apply leaves it
//! untouched and returns an error (the session then resynchronises from a snapshot).

use std::collections::{BTreeMap, HashMap};

use mirror_connector::{AccountSnapshot, ConnectorEvent, OrderReport, OrderReportKind, WorkingOrder};
use mirror_model::{
    AccountMode, BrokerOrderId, ClientOrderId, Fill, Money, OrderKind, Position, PositionChange, PositionEffect,
    PositionId, Price, Qty, Side, Symbol, TimeInForce,
};

use crate::cid;
use crate::protocol::{Deal, Entry, PendingAdd, PendingDel, PendingEnd, PendingType, Sltp, Snapshot, WireOrder};

/// An event the book cannot apply to what it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BookError {
    /// A deal or an amendment for a position the book does not hold.
    #[error("no open position with ticket {0}")]
    UnknownTicket(u64),
    /// A deal that contradicts the position it names.
    #[error("deal {deal} on ticket {ticket}: {reason}")]
    Contradiction {
        /// The deal ticket (0 on MT4).
        deal: u64,
        /// The position ticket.
        ticket: u64,
        /// What does not fit.
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    position: Position,
    /// The ticket the terminal knows the position by now.
    ticket: u64,
}

/// A command the terminal's journal says it executed, whose acknowledgement never arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Executed {
    /// Mirror's id of the order.
    pub(crate) client_id: Option<ClientOrderId>,
    /// The order ticket.
    pub(crate) broker_id: BrokerOrderId,
    /// The position ticket it touched.
    pub(crate) ticket: u64,
    /// Execution price and volume.
    pub(crate) fill: Option<(Price, Qty)>,
}

/// Time stamp for reports made up during reconciliation, when the terminal's own is unknown.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At(pub(crate) i64);

#[derive(Debug)]
pub(crate) struct Book {
    mode: AccountMode,
    positions: BTreeMap<PositionId, Held>,
    tickets: HashMap<u64, PositionId>,
    orders: BTreeMap<u64, WorkingOrder>,
    account: Option<AccountSnapshot>,
    loaded: bool,
}

/// The ticket an MT4 remainder was split from (`from #12345`).
fn split_from(comment: &str) -> Option<u64> {
    comment.trim().strip_prefix("from #")?.trim().parse().ok()
}

fn pending_kind(order_type: PendingType, price: Price) -> (Side, OrderKind) {
    match order_type {
        PendingType::BuyLimit => (Side::Buy, OrderKind::Limit { price }),
        PendingType::SellLimit => (Side::Sell, OrderKind::Limit { price }),
        PendingType::BuyStop => (Side::Buy, OrderKind::Stop { price }),
        PendingType::SellStop => (Side::Sell, OrderKind::Stop { price }),
    }
}

fn time_in_force(expiration: i64) -> TimeInForce {
    if expiration > 0 { TimeInForce::Gtd { expire_unix_ms: expiration } } else { TimeInForce::Gtc }
}

fn working(wire: &WireOrder) -> WorkingOrder {
    let (side, kind) = pending_kind(wire.order_type, wire.price);
    WorkingOrder {
        client_id: cid::decode(&wire.comment),
        broker_id: BrokerOrderId(wire.ticket),
        symbol: wire.symbol,
        side,
        qty: wire.volume,
        filled_qty: Qty::ZERO,
        kind,
        stop_loss: wire.sl,
        take_profit: wire.tp,
        time_in_force: time_in_force(wire.expiration),
    }
}

/// The open price after adding `added` at `price` to `qty` at `open`.
fn average(open: Price, qty: Qty, price: Price, added: Qty) -> Price {
    let notional = i128::from(open.raw()) * i128::from(qty.raw()) + i128::from(price.raw()) * i128::from(added.raw());
    let total = i128::from(qty.raw()) + i128::from(added.raw());
    if total <= 0 {
        return price;
    }
    // Round half away from zero, as the model's position book does.
    let half = total / 2;
    let raw = if notional >= 0 { (notional + half) / total } else { (notional - half) / total };
    Price::from_raw(i64::try_from(raw).unwrap_or(price.raw()))
}

fn filled(
    client_id: Option<ClientOrderId>,
    broker_id: BrokerOrderId,
    symbol: Symbol,
    side: Side,
    fill: Fill,
    time_unix_ms: i64,
) -> ConnectorEvent {
    ConnectorEvent::Order(OrderReport {
        client_id,
        broker_id,
        symbol,
        side,
        kind: OrderReportKind::Filled(fill),
        time_unix_ms,
    })
}

fn effect(position: Position, change: PositionChange, realized_pnl: Money) -> ConnectorEvent {
    ConnectorEvent::Position(PositionEffect { position, change, realized_pnl })
}

impl Book {
    pub(crate) fn new(mode: AccountMode) -> Self {
        Self {
            mode,
            positions: BTreeMap::new(),
            tickets: HashMap::new(),
            orders: BTreeMap::new(),
            account: None,
            loaded: false,
        }
    }

    pub(crate) fn mode(&self) -> AccountMode {
        self.mode
    }

    pub(crate) fn positions(&self) -> Vec<Position> {
        self.positions.values().map(|held| held.position).collect()
    }

    pub(crate) fn orders(&self) -> Vec<WorkingOrder> {
        self.orders.values().copied().collect()
    }

    pub(crate) fn account(&self) -> Option<AccountSnapshot> {
        self.account
    }

    /// The ticket a position is known by at the terminal now.
    pub(crate) fn ticket_of(&self, position: PositionId) -> Option<u64> {
        self.positions.get(&position).map(|held| held.ticket)
    }

    /// The ticket of the working order Mirror placed as `client_id`.
    pub(crate) fn order_of_client(&self, client_id: ClientOrderId) -> Option<BrokerOrderId> {
        self.orders.values().find(|o| o.client_id == Some(client_id)).map(|o| o.broker_id)
    }

    pub(crate) fn set_account(&mut self, account: AccountSnapshot, out: &mut Vec<ConnectorEvent>) {
        if self.account != Some(account) {
            self.account = Some(account);
            out.push(ConnectorEvent::Account(account));
        }
    }

    /// One execution: its report, then the position change it caused.
    pub(crate) fn apply_deal(&mut self, deal: &Deal, out: &mut Vec<ConnectorEvent>) -> Result<(), BookError> {
        let contradiction =
            |reason: String| BookError::Contradiction { deal: deal.deal, ticket: deal.position, reason };
        let mut client_id = cid::decode(&deal.cid);
        let broker_id = BrokerOrderId(deal.order);
        match deal.entry {
            Entry::In => {
                let existing = self.tickets.get(&deal.position).copied();
                if let Some(id) = existing {
                    let held = self.positions[&id];
                    if held.position.side != deal.side || held.position.symbol != deal.symbol {
                        return Err(contradiction(format!(
                            "an {} {} deal cannot add to {:?}",
                            deal.side, deal.symbol, held.position
                        )));
                    }
                }
                if let Some(resting) = self.orders.remove(&deal.order) {
                    // A pending order triggered.
                    client_id = client_id.or(resting.client_id);
                }
                let (position, change) = match existing {
                    Some(id) => {
                        let held = self.positions.get_mut(&id).expect("looked up above");
                        let before = held.position;
                        held.position.qty = before.qty + deal.volume;
                        held.position.open_price = deal
                            .pos_price
                            .unwrap_or_else(|| average(before.open_price, before.qty, deal.price, deal.volume));
                        held.position.stop_loss = deal.sl;
                        held.position.take_profit = deal.tp;
                        (held.position, PositionChange::Increased { added: deal.volume })
                    }
                    None => {
                        let id = PositionId(deal.position);
                        let position = Position {
                            id,
                            symbol: deal.symbol,
                            side: deal.side,
                            qty: deal.volume,
                            open_price: deal.pos_price.unwrap_or(deal.price),
                            stop_loss: deal.sl,
                            take_profit: deal.tp,
                        };
                        self.positions.insert(id, Held { position, ticket: deal.position });
                        self.tickets.insert(deal.position, id);
                        (position, PositionChange::Opened)
                    }
                };
                let fill = Fill { qty: deal.volume, price: deal.price, position: position.id };
                out.push(filled(client_id, broker_id, deal.symbol, deal.side, fill, deal.time_msc));
                out.push(effect(position, change, Money::ZERO));
            }
            Entry::Out => {
                let id = *self.tickets.get(&deal.position).ok_or(BookError::UnknownTicket(deal.position))?;
                let held = self.positions[&id];
                if deal.side != held.position.side.opposite() || deal.symbol != held.position.symbol {
                    return Err(contradiction(format!(
                        "an {} {} deal cannot reduce {:?}",
                        deal.side, deal.symbol, held.position
                    )));
                }
                if deal.volume > held.position.qty || !deal.volume.is_positive() {
                    return Err(contradiction(format!("{} closed of {} open", deal.volume, held.position.qty)));
                }
                let fill = Fill { qty: deal.volume, price: deal.price, position: id };
                out.push(filled(client_id, broker_id, deal.symbol, deal.side, fill, deal.time_msc));
                if deal.volume == held.position.qty {
                    self.positions.remove(&id);
                    self.tickets.remove(&held.ticket);
                    out.push(effect(held.position, PositionChange::Closed { closed: deal.volume }, deal.profit));
                    return Ok(());
                }
                let held = self.positions.get_mut(&id).expect("looked up above");
                let qty_before = held.position.qty;
                held.position.qty = qty_before - deal.volume;
                held.position.stop_loss = deal.sl;
                held.position.take_profit = deal.tp;
                if deal.new_ticket != 0 && deal.new_ticket != held.ticket {
                    self.tickets.remove(&held.ticket);
                    self.tickets.insert(deal.new_ticket, id);
                    held.ticket = deal.new_ticket;
                }
                let change = PositionChange::Reduced { closed: deal.volume, qty_before };
                out.push(effect(held.position, change, deal.profit));
            }
        }
        Ok(())
    }

    pub(crate) fn apply_sltp(&mut self, sltp: &Sltp, out: &mut Vec<ConnectorEvent>) -> Result<(), BookError> {
        let id = *self.tickets.get(&sltp.position).ok_or(BookError::UnknownTicket(sltp.position))?;
        let held = self.positions.get_mut(&id).expect("tickets and positions agree");
        if (held.position.stop_loss, held.position.take_profit) == (sltp.sl, sltp.tp) {
            return Ok(());
        }
        held.position.stop_loss = sltp.sl;
        held.position.take_profit = sltp.tp;
        out.push(effect(held.position, PositionChange::ProtectionChanged, Money::ZERO));
        Ok(())
    }

    pub(crate) fn apply_pending_add(&mut self, add: &PendingAdd, out: &mut Vec<ConnectorEvent>) {
        let (side, kind) = pending_kind(add.order_type, add.price);
        let order = WorkingOrder {
            client_id: cid::decode(&add.cid),
            broker_id: BrokerOrderId(add.ticket),
            symbol: add.symbol,
            side,
            qty: add.volume,
            filled_qty: Qty::ZERO,
            kind,
            stop_loss: add.sl,
            take_profit: add.tp,
            time_in_force: time_in_force(add.expiration),
        };
        if self.orders.insert(add.ticket, order).is_none() {
            out.push(ConnectorEvent::Working(order));
        }
    }

    pub(crate) fn apply_pending_del(&mut self, del: &PendingDel, out: &mut Vec<ConnectorEvent>) {
        let Some(order) = self.orders.remove(&del.ticket) else {
            // Already gone (reported by a snapshot, or it filled): nothing to tell.
            return;
        };
        let kind = match del.state {
            PendingEnd::Cancelled => OrderReportKind::Cancelled,
            PendingEnd::Expired => OrderReportKind::Expired,
        };
        out.push(ConnectorEvent::Order(OrderReport {
            client_id: order.client_id.or_else(|| cid::decode(&del.cid)),
            broker_id: order.broker_id,
            symbol: order.symbol,
            side: order.side,
            kind,
            time_unix_ms: del.time_msc,
        }));
    }

    /// Takes in a snapshot. The first one is loaded as it is (the engine reads positions when it
    /// boots); later ones are compared with what the book holds, and every difference becomes
    /// the events the terminal could not send: executions found in `executed` (the terminal's
    /// journal) are reported with their fills, before the position change they caused.
    pub(crate) fn reconcile(
        &mut self,
        snapshot: &Snapshot,
        executed: &[Executed],
        at: At,
        out: &mut Vec<ConnectorEvent>,
    ) {
        let account =
            AccountSnapshot { balance: snapshot.balance, equity: snapshot.equity, margin_used: snapshot.margin };
        if !self.loaded {
            self.load(snapshot);
            self.account = Some(account);
            return;
        }
        let mut executed: Vec<Executed> = executed.to_vec();
        let mut take = |tickets: &[u64]| -> Option<Executed> {
            let index = executed.iter().position(|e| tickets.contains(&e.ticket))?;
            Some(executed.remove(index))
        };
        let report = |out: &mut Vec<ConnectorEvent>,
                      done: Option<Executed>,
                      symbol: Symbol,
                      side: Side,
                      id: PositionId| {
            let Some(done) = done else { return };
            match done.fill {
                Some((price, qty)) if price.is_positive() && qty.is_positive() => {
                    out.push(filled(
                        done.client_id,
                        done.broker_id,
                        symbol,
                        side,
                        Fill { qty, price, position: id },
                        at.0,
                    ));
                }
                _ => {
                    tracing::warn!(broker_id = %done.broker_id, "an executed command came back without price or volume")
                }
            }
        };

        // Which held position each listed one is: by ticket, or (MT4) by the ticket it was
        // split from.
        let mut matched: BTreeMap<PositionId, usize> = BTreeMap::new();
        let mut fresh: Vec<usize> = Vec::new();
        for (index, wire) in snapshot.positions.iter().enumerate() {
            let id = self
                .tickets
                .get(&wire.ticket)
                .or_else(|| split_from(&wire.comment).and_then(|old| self.tickets.get(&old)))
                .copied();
            match id {
                Some(id) if !matched.contains_key(&id) => {
                    matched.insert(id, index);
                }
                _ => fresh.push(index),
            }
        }

        let gone: Vec<Held> =
            self.positions.values().filter(|h| !matched.contains_key(&h.position.id)).copied().collect();
        for held in gone {
            let side = held.position.side.opposite();
            report(out, take(&[held.ticket]), held.position.symbol, side, held.position.id);
            self.positions.remove(&held.position.id);
            self.tickets.remove(&held.ticket);
            out.push(effect(held.position, PositionChange::Closed { closed: held.position.qty }, Money::ZERO));
        }

        for (id, index) in matched {
            let wire = &snapshot.positions[index];
            let held = self.positions[&id];
            let before = held.position;
            let mut now = Position {
                id,
                symbol: wire.symbol,
                side: wire.side,
                qty: wire.volume,
                open_price: wire.price_open,
                stop_loss: wire.sl,
                take_profit: wire.tp,
            };
            let done = take(&[held.ticket, wire.ticket]);
            if wire.side != before.side || wire.symbol != before.symbol {
                // A netting position reversed while the terminal was away.
                report(out, done, wire.symbol, wire.side, id);
                out.push(effect(before, PositionChange::Closed { closed: before.qty }, Money::ZERO));
                out.push(effect(now, PositionChange::Opened, Money::ZERO));
            } else if wire.volume < before.qty {
                report(out, done, before.symbol, before.side.opposite(), id);
                // The protection change, if any, is reported on its own after the reduction.
                let reduced = Position { stop_loss: before.stop_loss, take_profit: before.take_profit, ..now };
                let change = PositionChange::Reduced { closed: before.qty - wire.volume, qty_before: before.qty };
                out.push(effect(reduced, change, Money::ZERO));
            } else if wire.volume > before.qty {
                report(out, done, before.symbol, before.side, id);
                let increased = Position { stop_loss: before.stop_loss, take_profit: before.take_profit, ..now };
                out.push(effect(increased, PositionChange::Increased { added: wire.volume - before.qty }, Money::ZERO));
            } else {
                // Same size: keep the price the book computed (the terminal may round it).
                now.open_price = if wire.price_open.is_positive() { wire.price_open } else { before.open_price };
            }
            if wire.side == before.side && (wire.sl, wire.tp) != (before.stop_loss, before.take_profit) {
                out.push(effect(now, PositionChange::ProtectionChanged, Money::ZERO));
            }
            if wire.ticket != held.ticket {
                self.tickets.remove(&held.ticket);
                self.tickets.insert(wire.ticket, id);
            }
            self.positions.insert(id, Held { position: now, ticket: wire.ticket });
        }

        for index in fresh {
            let wire = &snapshot.positions[index];
            let id = PositionId(wire.ticket);
            if self.positions.contains_key(&id) {
                tracing::error!(
                    ticket = wire.ticket,
                    "a new ticket collides with a position's id; the position is skipped"
                );
                continue;
            }
            let position = Position {
                id,
                symbol: wire.symbol,
                side: wire.side,
                qty: wire.volume,
                open_price: wire.price_open,
                stop_loss: wire.sl,
                take_profit: wire.tp,
            };
            // Mirror's own open, by its journal, or the pending order it came from, or by the
            // comment it carries; a trade by hand has no report.
            let journal = take(&[wire.ticket]);
            let resting = self.orders.remove(&wire.ticket);
            let client_id = cid::decode(&wire.comment).or(resting.and_then(|o| o.client_id));
            match journal {
                Some(done) => report(out, Some(done), wire.symbol, wire.side, id),
                None if client_id.is_some() || resting.is_some() => {
                    let fill = Fill { qty: wire.volume, price: wire.price_open, position: id };
                    let broker_id = resting.map_or(BrokerOrderId(wire.ticket), |o| o.broker_id);
                    out.push(filled(client_id, broker_id, wire.symbol, wire.side, fill, at.0));
                }
                None => {}
            }
            self.positions.insert(id, Held { position, ticket: wire.ticket });
            self.tickets.insert(wire.ticket, id);
            out.push(effect(position, PositionChange::Opened, Money::ZERO));
        }

        let listed: BTreeMap<u64, &WireOrder> = snapshot.orders.iter().map(|o| (o.ticket, o)).collect();
        let vanished: Vec<WorkingOrder> =
            self.orders.values().filter(|o| !listed.contains_key(&o.broker_id.0)).copied().collect();
        for order in vanished {
            self.orders.remove(&order.broker_id.0);
            out.push(ConnectorEvent::Order(OrderReport {
                client_id: order.client_id,
                broker_id: order.broker_id,
                symbol: order.symbol,
                side: order.side,
                kind: OrderReportKind::Cancelled,
                time_unix_ms: at.0,
            }));
        }
        for (ticket, wire) in listed {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.orders.entry(ticket) {
                let order = working(wire);
                slot.insert(order);
                out.push(ConnectorEvent::Working(order));
            }
        }
        self.set_account(account, out);
    }

    fn load(&mut self, snapshot: &Snapshot) {
        for wire in &snapshot.positions {
            let id = PositionId(wire.ticket);
            let position = Position {
                id,
                symbol: wire.symbol,
                side: wire.side,
                qty: wire.volume,
                open_price: wire.price_open,
                stop_loss: wire.sl,
                take_profit: wire.tp,
            };
            self.positions.insert(id, Held { position, ticket: wire.ticket });
            self.tickets.insert(wire.ticket, id);
        }
        self.orders = snapshot.orders.iter().map(|o| (o.ticket, working(o))).collect();
        self.loaded = true;
    }
}

#[cfg(test)]
mod tests;
