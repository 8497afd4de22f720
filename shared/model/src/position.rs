//! Positions, and a position book that applies executions the way a netting or a hedging
//! account does. Brokers are the source of truth for positions; the book is what simulators
//! of those brokers use to be one.

use std::collections::BTreeMap;

use crate::fixed::{Money, Price, Qty, Rounding, div_round};
use crate::ids::{AccountMode, PositionId};
use crate::instrument::InstrumentSpec;
use crate::order::{OrderIntent, Side};
use crate::symbol::Symbol;

/// An open position.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The broker's id (ticket).
    pub id: PositionId,
    /// Instrument.
    pub symbol: Symbol,
    /// Long (`Buy`) or short (`Sell`).
    pub side: Side,
    /// Open quantity (always positive).
    pub qty: Qty,
    /// Volume-weighted open price.
    pub open_price: Price,
    /// Stop loss.
    pub stop_loss: Option<Price>,
    /// Take profit.
    pub take_profit: Option<Price>,
}

/// What an execution or an amendment did to a position.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PositionChange {
    /// A new position.
    Opened,
    /// Quantity added on the same side.
    Increased {
        /// Quantity added.
        added: Qty,
    },
    /// Part of the quantity closed.
    Reduced {
        /// Quantity closed.
        closed: Qty,
        /// Quantity before.
        qty_before: Qty,
    },
    /// Fully closed; the position snapshot keeps its last quantity.
    Closed {
        /// Quantity closed (the whole position).
        closed: Qty,
    },
    /// Stop loss or take profit changed.
    ProtectionChanged,
}

/// One change to one position, with the position as it is after the change (for a close,
/// as it was just before).
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct PositionEffect {
    /// The position.
    pub position: Position,
    /// The change.
    pub change: PositionChange,
    /// Profit or loss realised by this change.
    pub realized_pnl: Money,
}

/// An execution the book cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    /// A close for a position the book does not hold.
    #[error("no open position {0}")]
    UnknownPosition(PositionId),
    /// A close on the wrong side, the wrong symbol, or for more than is open.
    #[error("cannot close {qty} of position {position} ({reason})")]
    BadClose {
        /// Position.
        position: PositionId,
        /// Quantity asked.
        qty: Qty,
        /// Why not.
        reason: &'static str,
    },
}

/// The open positions of one account.
#[derive(Clone, Debug)]
pub struct PositionBook {
    mode: AccountMode,
    positions: BTreeMap<PositionId, Position>,
}

impl PositionBook {
    /// An empty book.
    pub fn new(mode: AccountMode) -> Self {
        Self { mode, positions: BTreeMap::new() }
    }

    /// Netting or hedging.
    pub fn mode(&self) -> AccountMode {
        self.mode
    }

    /// Open positions, by id.
    pub fn positions(&self) -> impl Iterator<Item = &Position> {
        self.positions.values()
    }

    /// One open position.
    pub fn get(&self, id: PositionId) -> Option<&Position> {
        self.positions.get(&id)
    }

    /// The net position on `symbol` of a netting account.
    pub fn net_position(&self, symbol: &Symbol) -> Option<&Position> {
        self.positions.values().find(|p| p.symbol == *symbol)
    }

    /// Applies an execution of `qty` at `price` on `side`.
    ///
    /// `intent` says whether the order opened or closed (a specific position); `new_id` is the
    /// id to give a position this execution creates (a hedging account's new ticket, or the
    /// new net position after a netting account flips). Several effects come back when a
    /// netting execution closes one side and opens the other.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_execution(
        &mut self,
        spec: &InstrumentSpec,
        intent: OrderIntent,
        side: Side,
        qty: Qty,
        price: Price,
        new_id: PositionId,
        protection: (Option<Price>, Option<Price>),
        effects: &mut Vec<PositionEffect>,
    ) -> Result<(), BookError> {
        match (self.mode, intent) {
            (_, OrderIntent::Close { position }) => {
                let current = *self.positions.get(&position).ok_or(BookError::UnknownPosition(position))?;
                if current.symbol != spec.symbol {
                    return Err(BookError::BadClose { position, qty, reason: "symbol differs" });
                }
                if side != current.side.opposite() {
                    return Err(BookError::BadClose { position, qty, reason: "a close must be on the opposite side" });
                }
                if qty > current.qty {
                    return Err(BookError::BadClose { position, qty, reason: "more than is open" });
                }
                effects.push(self.reduce(spec, position, qty, price));
            }
            (AccountMode::Hedging, OrderIntent::Open) => {
                // Partial fills of one order add to the position they opened.
                if let Some(existing) = self.positions.get(&new_id).copied() {
                    effects.push(self.increase(existing, qty, price));
                } else {
                    effects.push(self.open(spec.symbol, new_id, side, qty, price, protection));
                }
            }
            (AccountMode::Netting, OrderIntent::Open) => {
                let existing = self.net_position(&spec.symbol).copied();
                match existing {
                    None => effects.push(self.open(spec.symbol, new_id, side, qty, price, protection)),
                    Some(position) if position.side == side => effects.push(self.increase(position, qty, price)),
                    Some(position) => {
                        let closing = qty.min(position.qty);
                        effects.push(self.reduce(spec, position.id, closing, price));
                        let left = qty - closing;
                        if left.is_positive() {
                            effects.push(self.open(spec.symbol, new_id, side, left, price, protection));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sets stop loss and take profit of an open position.
    pub fn set_protection(
        &mut self,
        id: PositionId,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<PositionEffect, BookError> {
        let position = self.positions.get_mut(&id).ok_or(BookError::UnknownPosition(id))?;
        position.stop_loss = stop_loss;
        position.take_profit = take_profit;
        Ok(PositionEffect { position: *position, change: PositionChange::ProtectionChanged, realized_pnl: Money::ZERO })
    }

    /// Unrealised profit or loss of every open position at the prices `mark` gives.
    pub fn unrealized_pnl(&self, specs: impl Fn(&Symbol) -> Option<(InstrumentSpec, Price, Price)>) -> Money {
        let mut total = Money::ZERO;
        for position in self.positions.values() {
            if let Some((spec, bid, ask)) = specs(&position.symbol) {
                // A long is worth the bid, a short costs the ask to close.
                let mark = if position.side == Side::Buy { bid } else { ask };
                total += spec.pnl(position.side, position.qty, position.open_price, mark);
            }
        }
        total
    }

    fn open(
        &mut self,
        symbol: Symbol,
        id: PositionId,
        side: Side,
        qty: Qty,
        price: Price,
        (stop_loss, take_profit): (Option<Price>, Option<Price>),
    ) -> PositionEffect {
        let position = Position { id, symbol, side, qty, open_price: price, stop_loss, take_profit };
        self.positions.insert(id, position);
        PositionEffect { position, change: PositionChange::Opened, realized_pnl: Money::ZERO }
    }

    fn increase(&mut self, mut position: Position, added: Qty, price: Price) -> PositionEffect {
        let total = position.qty + added;
        let notional = i128::from(position.open_price.raw()) * i128::from(position.qty.raw())
            + i128::from(price.raw()) * i128::from(added.raw());
        let average = div_round(notional, i128::from(total.raw()), Rounding::Nearest);
        position.open_price = Price::from_raw(i64::try_from(average).unwrap_or(price.raw()));
        position.qty = total;
        self.positions.insert(position.id, position);
        PositionEffect { position, change: PositionChange::Increased { added }, realized_pnl: Money::ZERO }
    }

    fn reduce(&mut self, spec: &InstrumentSpec, id: PositionId, closed: Qty, price: Price) -> PositionEffect {
        let mut position = self.positions[&id];
        let realized_pnl = spec.pnl(position.side, closed, position.open_price, price);
        if closed == position.qty {
            self.positions.remove(&id);
            return PositionEffect { position, change: PositionChange::Closed { closed }, realized_pnl };
        }
        let qty_before = position.qty;
        position.qty = qty_before - closed;
        self.positions.insert(id, position);
        PositionEffect { position, change: PositionChange::Reduced { closed, qty_before }, realized_pnl }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::tests::eurusd;

    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }
    fn p(text: &str) -> Price {
        Price::parse(text).unwrap()
    }

    #[test]
    fn netting_accounts_add_reduce_and_flip() {
        let spec = eurusd();
        let mut book = PositionBook::new(AccountMode::Netting);
        let mut fx = Vec::new();
        book.apply_execution(
            &spec,
            OrderIntent::Open,
            Side::Buy,
            q("1"),
            p("1.1"),
            PositionId(1),
            (None, None),
            &mut fx,
        )
        .unwrap();
        book.apply_execution(
            &spec,
            OrderIntent::Open,
            Side::Buy,
            q("1"),
            p("1.2"),
            PositionId(2),
            (None, None),
            &mut fx,
        )
        .unwrap();
        let net = *book.net_position(&spec.symbol).unwrap();
        assert_eq!((net.id, net.qty, net.open_price), (PositionId(1), q("2"), p("1.15")));
        fx.clear();
        book.apply_execution(
            &spec,
            OrderIntent::Open,
            Side::Sell,
            q("3"),
            p("1.25"),
            PositionId(3),
            (None, None),
            &mut fx,
        )
        .unwrap();
        assert_eq!(fx.len(), 2);
        assert_eq!(fx[0].change, PositionChange::Closed { closed: q("2") });
        assert_eq!(fx[0].realized_pnl, Money::parse("20000").unwrap());
        assert_eq!(fx[1].change, PositionChange::Opened);
        let net = *book.net_position(&spec.symbol).unwrap();
        assert_eq!((net.id, net.side, net.qty), (PositionId(3), Side::Sell, q("1")));
    }

    #[test]
    fn hedging_accounts_keep_positions_apart_and_close_by_id() {
        let spec = eurusd();
        let mut book = PositionBook::new(AccountMode::Hedging);
        let mut fx = Vec::new();
        book.apply_execution(
            &spec,
            OrderIntent::Open,
            Side::Buy,
            q("1"),
            p("1.1"),
            PositionId(1),
            (None, None),
            &mut fx,
        )
        .unwrap();
        book.apply_execution(
            &spec,
            OrderIntent::Open,
            Side::Sell,
            q("1"),
            p("1.1"),
            PositionId(2),
            (None, None),
            &mut fx,
        )
        .unwrap();
        assert_eq!(book.positions().count(), 2);
        fx.clear();
        book.apply_execution(
            &spec,
            OrderIntent::Close { position: PositionId(1) },
            Side::Sell,
            q("0.4"),
            p("1.2"),
            PositionId(9),
            (None, None),
            &mut fx,
        )
        .unwrap();
        assert_eq!(fx[0].change, PositionChange::Reduced { closed: q("0.4"), qty_before: q("1") });
        assert_eq!(fx[0].realized_pnl, Money::parse("4000").unwrap());
        assert_eq!(book.get(PositionId(1)).unwrap().qty, q("0.6"));
        let err = book
            .apply_execution(
                &spec,
                OrderIntent::Close { position: PositionId(1) },
                Side::Sell,
                q("1"),
                p("1.2"),
                PositionId(9),
                (None, None),
                &mut fx,
            )
            .unwrap_err();
        assert_eq!(err.to_string(), "cannot close 1 of position pos#1 (more than is open)");
        assert!(
            book.apply_execution(
                &spec,
                OrderIntent::Close { position: PositionId(1) },
                Side::Buy,
                q("0.1"),
                p("1.2"),
                PositionId(9),
                (None, None),
                &mut fx
            )
            .is_err()
        );
        assert!(matches!(
            book.apply_execution(
                &spec,
                OrderIntent::Close { position: PositionId(77) },
                Side::Sell,
                q("0.1"),
                p("1.2"),
                PositionId(9),
                (None, None),
                &mut fx
            ),
            Err(BookError::UnknownPosition(PositionId(77)))
        ));
    }
}
