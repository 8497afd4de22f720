//! Orders: what is asked of a broker, and the typed lifecycle each order goes through.
//!
//! The lifecycle is an explicit transition table ([`OrderStatus::next`]). An event that the
//! table does not allow is refused with [`OrderError::InvalidTransition`] and leaves the order
//! untouched, so an out-of-order or duplicated broker message can be logged but never
//! published as a state change.

use std::fmt;

use crate::fixed::{Price, Qty, Rounding, div_round};
use crate::ids::{BrokerOrderId, ClientOrderId, PositionId};
use crate::symbol::Symbol;

/// Buy or sell; for positions, long or short.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Buy, or a long position.
    Buy,
    /// Sell, or a short position.
    Sell,
}

impl Side {
    /// The other side.
    pub const fn opposite(self) -> Self {
        match self {
            Self::Buy => Self::Sell,
            Self::Sell => Self::Buy,
        }
    }

    /// +1 for buy, -1 for sell.
    pub const fn sign(self) -> i64 {
        match self {
            Self::Buy => 1,
            Self::Sell => -1,
        }
    }
}

impl ArchivedSide {
    /// The native value.
    pub fn to_native(&self) -> Side {
        match self {
            Self::Buy => Side::Buy,
            Self::Sell => Side::Sell,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        })
    }
}

/// Market, limit or stop.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderKind {
    /// At the market.
    Market,
    /// Rests at `price` or better.
    Limit {
        /// Limit price.
        price: Price,
    },
    /// Becomes a market order when the market trades through `price`.
    Stop {
        /// Trigger price.
        price: Price,
    },
}

impl OrderKind {
    /// A limit or stop order (a pending order until it triggers).
    pub const fn is_pending(self) -> bool {
        !matches!(self, Self::Market)
    }

    /// The limit or trigger price.
    pub const fn price(self) -> Option<Price> {
        match self {
            Self::Market => None,
            Self::Limit { price } | Self::Stop { price } => Some(price),
        }
    }

    /// The same kind at another price (market stays market).
    pub const fn with_price(self, price: Price) -> Self {
        match self {
            Self::Market => Self::Market,
            Self::Limit { .. } => Self::Limit { price },
            Self::Stop { .. } => Self::Stop { price },
        }
    }

    /// The kind that sits at the same price on the other side of the market: a buy limit
    /// below the market reversed is a sell *stop* below the market.
    pub const fn reversed(self) -> Self {
        match self {
            Self::Market => Self::Market,
            Self::Limit { price } => Self::Stop { price },
            Self::Stop { price } => Self::Limit { price },
        }
    }
}

impl ArchivedOrderKind {
    /// The native value.
    pub fn to_native(&self) -> OrderKind {
        match self {
            Self::Market => OrderKind::Market,
            Self::Limit { price } => OrderKind::Limit { price: price.to_native() },
            Self::Stop { price } => OrderKind::Stop { price: price.to_native() },
        }
    }
}

/// How long an order stays working.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "snake_case")]
pub enum TimeInForce {
    /// Good till cancelled.
    #[default]
    Gtc,
    /// Until the end of the trading day.
    Day,
    /// Immediate or cancel: fill what can be filled now, cancel the rest.
    Ioc,
    /// Fill or kill: all now, or nothing.
    Fok,
    /// Good till a time (Unix milliseconds).
    Gtd {
        /// Expiry, Unix milliseconds.
        expire_unix_ms: i64,
    },
}

impl ArchivedTimeInForce {
    /// The native value.
    pub fn to_native(&self) -> TimeInForce {
        match self {
            Self::Gtc => TimeInForce::Gtc,
            Self::Day => TimeInForce::Day,
            Self::Ioc => TimeInForce::Ioc,
            Self::Fok => TimeInForce::Fok,
            Self::Gtd { expire_unix_ms } => TimeInForce::Gtd { expire_unix_ms: expire_unix_ms.to_native() },
        }
    }
}

/// Why an order is placed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderIntent {
    /// Opens or adds to a position.
    Open,
    /// Closes all or part of an existing position.
    Close {
        /// The position being closed.
        position: PositionId,
    },
}

/// An order as sent to a broker.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct OrderRequest {
    /// Deterministic id (see [`ClientOrderId`]); resending it must not duplicate the order.
    pub client_id: ClientOrderId,
    /// Instrument, as the account's broker spells it.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Quantity, a whole number of lot steps.
    pub qty: Qty,
    /// Market, limit or stop.
    pub kind: OrderKind,
    /// Stop loss to attach.
    pub stop_loss: Option<Price>,
    /// Take profit to attach.
    pub take_profit: Option<Price>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Open, or close a position.
    pub intent: OrderIntent,
}

/// One execution.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Fill {
    /// Quantity filled by this execution.
    pub qty: Qty,
    /// Price of this execution.
    pub price: Price,
    /// The position the execution opened, added to or reduced.
    pub position: PositionId,
}

/// Where an order is in its life. `Filled`, `Cancelled`, `Rejected` and `Expired` are
/// terminal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Decided, not yet handed to the connector.
    Created,
    /// Handed to the connector, no answer yet.
    Submitted,
    /// The submit's outcome is unknown (timeout, disconnect). Neither rejected nor working
    /// until reconciliation with the broker decides.
    InFlightUnknown,
    /// Acknowledged by the broker and resting (or about to fill).
    Working,
    /// Some but not all of the quantity filled.
    PartiallyFilled,
    /// A cancel has been asked for and not yet confirmed.
    PendingCancel,
    /// All of the quantity filled.
    Filled,
    /// Cancelled, with whatever had filled before.
    Cancelled,
    /// Refused by the broker or by Mirror.
    Rejected,
    /// Expired by its time in force.
    Expired,
}

/// Every status, for exhaustive tests and displays.
pub const ORDER_STATUSES: [OrderStatus; 10] = [
    OrderStatus::Created,
    OrderStatus::Submitted,
    OrderStatus::InFlightUnknown,
    OrderStatus::Working,
    OrderStatus::PartiallyFilled,
    OrderStatus::PendingCancel,
    OrderStatus::Filled,
    OrderStatus::Cancelled,
    OrderStatus::Rejected,
    OrderStatus::Expired,
];

/// What can happen to an order, without its data (the alphabet of the transition table).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderEvent {
    /// Handed to the connector.
    Submit,
    /// The connector could not tell whether the broker got it.
    OutcomeUnknown,
    /// The broker acknowledged it.
    Accept,
    /// The broker (or Mirror) refused it.
    Reject,
    /// An execution that leaves some quantity open.
    PartialFill,
    /// An execution that completes the quantity.
    Fill,
    /// Mirror asked to cancel.
    CancelRequest,
    /// The broker refused the cancel (the order goes on).
    CancelRejected,
    /// The broker confirmed the cancel.
    Cancelled,
    /// Time in force ran out.
    Expire,
}

/// Every event, for exhaustive tests.
pub const ORDER_EVENTS: [OrderEvent; 10] = [
    OrderEvent::Submit,
    OrderEvent::OutcomeUnknown,
    OrderEvent::Accept,
    OrderEvent::Reject,
    OrderEvent::PartialFill,
    OrderEvent::Fill,
    OrderEvent::CancelRequest,
    OrderEvent::CancelRejected,
    OrderEvent::Cancelled,
    OrderEvent::Expire,
];

impl OrderStatus {
    /// Terminal statuses accept no event.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Filled | Self::Cancelled | Self::Rejected | Self::Expired)
    }

    /// Still able to fill (counts toward open exposure).
    pub const fn is_live(self) -> bool {
        !self.is_terminal()
    }

    /// The transition table. `None` means the event is not allowed in this status.
    ///
    /// ```text
    /// Created          Submit→Submitted  Reject→Rejected
    /// Submitted        Accept→Working  Reject→Rejected  PartialFill→PartiallyFilled  Fill→Filled
    ///                  OutcomeUnknown→InFlightUnknown  CancelRequest→PendingCancel
    ///                  Cancelled→Cancelled  Expire→Expired
    /// InFlightUnknown  Accept→Working  Reject→Rejected  PartialFill→PartiallyFilled  Fill→Filled
    ///                  Cancelled→Cancelled  Expire→Expired          (reconciliation decides)
    /// Working          PartialFill→PartiallyFilled  Fill→Filled  CancelRequest→PendingCancel
    ///                  Cancelled→Cancelled  Expire→Expired
    /// PartiallyFilled  PartialFill→PartiallyFilled  Fill→Filled  CancelRequest→PendingCancel
    ///                  Cancelled→Cancelled  Expire→Expired
    /// PendingCancel    Accept→PendingCancel (a late ack)  Reject→Rejected
    ///                  PartialFill→PendingCancel (fills race the cancel)  Fill→Filled
    ///                  Cancelled→Cancelled  CancelRejected→Working  Expire→Expired
    /// Filled, Cancelled, Rejected, Expired: terminal, nothing allowed
    /// ```
    ///
    /// `CancelRejected` returns to `Working`; [`Order::apply`] turns that into
    /// `PartiallyFilled` when some quantity had already filled.
    pub const fn next(self, event: OrderEvent) -> Option<Self> {
        use OrderEvent as E;
        use OrderStatus as S;
        Some(match (self, event) {
            (S::Created, E::Submit) => S::Submitted,
            (S::Created, E::Reject) => S::Rejected,

            (S::Submitted, E::Accept) => S::Working,
            (S::Submitted, E::Reject) => S::Rejected,
            (S::Submitted, E::PartialFill) => S::PartiallyFilled,
            (S::Submitted, E::Fill) => S::Filled,
            (S::Submitted, E::OutcomeUnknown) => S::InFlightUnknown,
            (S::Submitted, E::CancelRequest) => S::PendingCancel,
            (S::Submitted, E::Cancelled) => S::Cancelled,
            (S::Submitted, E::Expire) => S::Expired,

            (S::InFlightUnknown, E::Accept) => S::Working,
            (S::InFlightUnknown, E::Reject) => S::Rejected,
            (S::InFlightUnknown, E::PartialFill) => S::PartiallyFilled,
            (S::InFlightUnknown, E::Fill) => S::Filled,
            (S::InFlightUnknown, E::Cancelled) => S::Cancelled,
            (S::InFlightUnknown, E::Expire) => S::Expired,

            (S::Working, E::PartialFill) => S::PartiallyFilled,
            (S::Working, E::Fill) => S::Filled,
            (S::Working, E::CancelRequest) => S::PendingCancel,
            (S::Working, E::Cancelled) => S::Cancelled,
            (S::Working, E::Expire) => S::Expired,

            (S::PartiallyFilled, E::PartialFill) => S::PartiallyFilled,
            (S::PartiallyFilled, E::Fill) => S::Filled,
            (S::PartiallyFilled, E::CancelRequest) => S::PendingCancel,
            (S::PartiallyFilled, E::Cancelled) => S::Cancelled,
            (S::PartiallyFilled, E::Expire) => S::Expired,

            (S::PendingCancel, E::Accept) => S::PendingCancel,
            (S::PendingCancel, E::Reject) => S::Rejected,
            (S::PendingCancel, E::PartialFill) => S::PendingCancel,
            (S::PendingCancel, E::Fill) => S::Filled,
            (S::PendingCancel, E::Cancelled) => S::Cancelled,
            (S::PendingCancel, E::CancelRejected) => S::Working,
            (S::PendingCancel, E::Expire) => S::Expired,

            _ => return None,
        })
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An event refused by the order lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum OrderError {
    /// The table has no transition for this event in this status.
    #[error("order {order}: {event:?} is not allowed while {from:?}")]
    InvalidTransition {
        /// The order.
        order: ClientOrderId,
        /// Its status.
        from: OrderStatus,
        /// The refused event.
        event: OrderEvent,
    },
    /// A fill for more than the order's remaining quantity.
    #[error("order {order}: a fill of {fill} exceeds the {remaining} still open")]
    Overfill {
        /// The order.
        order: ClientOrderId,
        /// Fill quantity.
        fill: Qty,
        /// Quantity not yet filled.
        remaining: Qty,
    },
    /// A fill of zero or negative quantity, or at a non-positive price.
    #[error("order {order}: a fill of {qty} at {price} is not a valid execution")]
    BadFill {
        /// The order.
        order: ClientOrderId,
        /// Fill quantity.
        qty: Qty,
        /// Fill price.
        price: Price,
    },
}

/// An update that moves an order through its lifecycle, with its data.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OrderUpdate {
    /// Handed to the connector.
    Submit,
    /// Outcome unknown (timeout, disconnect).
    OutcomeUnknown,
    /// Acknowledged, with the broker's id when it gives one.
    Accept(Option<BrokerOrderId>),
    /// Refused.
    Reject,
    /// An execution.
    Fill(Fill),
    /// Cancel asked for.
    CancelRequest,
    /// Cancel refused.
    CancelRejected,
    /// Cancel confirmed (or the broker cancelled the rest).
    Cancelled,
    /// Expired.
    Expire,
}

/// One order and everything known about it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// What was asked.
    pub request: OrderRequest,
    /// The broker's id, once known.
    pub broker_id: Option<BrokerOrderId>,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Quantity filled so far.
    pub filled_qty: Qty,
    /// Σ price × qty of the fills in raw units, for an exact average price.
    fill_notional_raw: i128,
    /// The position its last fill touched.
    pub position: Option<PositionId>,
}

impl Order {
    /// A new order in status `Created`.
    pub const fn new(request: OrderRequest) -> Self {
        Self {
            request,
            broker_id: None,
            status: OrderStatus::Created,
            filled_qty: Qty::ZERO,
            fill_notional_raw: 0,
            position: None,
        }
    }

    /// Quantity not yet filled.
    pub fn remaining_qty(&self) -> Qty {
        self.request.qty - self.filled_qty
    }

    /// Volume-weighted average fill price, rounded to the nearest 10⁻⁸.
    pub fn average_fill_price(&self) -> Option<Price> {
        if self.filled_qty.is_zero() {
            return None;
        }
        let raw = div_round(self.fill_notional_raw, i128::from(self.filled_qty.raw()), Rounding::Nearest);
        i64::try_from(raw).ok().map(Price::from_raw)
    }

    /// Applies `update` if the lifecycle allows it and returns the new status; otherwise
    /// leaves the order unchanged and says why.
    pub fn apply(&mut self, update: OrderUpdate) -> Result<OrderStatus, OrderError> {
        let event = match update {
            OrderUpdate::Submit => OrderEvent::Submit,
            OrderUpdate::OutcomeUnknown => OrderEvent::OutcomeUnknown,
            OrderUpdate::Accept(_) => OrderEvent::Accept,
            OrderUpdate::Reject => OrderEvent::Reject,
            OrderUpdate::Fill(fill) => self.classify_fill(fill)?,
            OrderUpdate::CancelRequest => OrderEvent::CancelRequest,
            OrderUpdate::CancelRejected => OrderEvent::CancelRejected,
            OrderUpdate::Cancelled => OrderEvent::Cancelled,
            OrderUpdate::Expire => OrderEvent::Expire,
        };
        let Some(mut next) = self.status.next(event) else {
            return Err(OrderError::InvalidTransition { order: self.request.client_id, from: self.status, event });
        };
        match update {
            OrderUpdate::Accept(Some(broker_id)) => self.broker_id = Some(broker_id),
            OrderUpdate::Fill(fill) => {
                self.filled_qty += fill.qty;
                self.fill_notional_raw += i128::from(fill.price.raw()) * i128::from(fill.qty.raw());
                self.position = Some(fill.position);
            }
            OrderUpdate::CancelRejected if self.filled_qty.is_positive() => {
                next = OrderStatus::PartiallyFilled;
            }
            _ => {}
        }
        self.status = next;
        Ok(next)
    }

    fn classify_fill(&self, fill: Fill) -> Result<OrderEvent, OrderError> {
        if !fill.qty.is_positive() || !fill.price.is_positive() {
            return Err(OrderError::BadFill { order: self.request.client_id, qty: fill.qty, price: fill.price });
        }
        let remaining = self.remaining_qty();
        if fill.qty > remaining {
            return Err(OrderError::Overfill { order: self.request.client_id, fill: fill.qty, remaining });
        }
        Ok(if fill.qty == remaining { OrderEvent::Fill } else { OrderEvent::PartialFill })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, SignalId};
    use proptest::prelude::*;

    /// The allowed transitions, written out independently of `OrderStatus::next` so that a
    /// change to either is caught.
    const ALLOWED: &[(OrderStatus, OrderEvent, OrderStatus)] = {
        use OrderEvent as E;
        use OrderStatus as S;
        &[
            (S::Created, E::Submit, S::Submitted),
            (S::Created, E::Reject, S::Rejected),
            (S::Submitted, E::Accept, S::Working),
            (S::Submitted, E::Reject, S::Rejected),
            (S::Submitted, E::PartialFill, S::PartiallyFilled),
            (S::Submitted, E::Fill, S::Filled),
            (S::Submitted, E::OutcomeUnknown, S::InFlightUnknown),
            (S::Submitted, E::CancelRequest, S::PendingCancel),
            (S::Submitted, E::Cancelled, S::Cancelled),
            (S::Submitted, E::Expire, S::Expired),
            (S::InFlightUnknown, E::Accept, S::Working),
            (S::InFlightUnknown, E::Reject, S::Rejected),
            (S::InFlightUnknown, E::PartialFill, S::PartiallyFilled),
            (S::InFlightUnknown, E::Fill, S::Filled),
            (S::InFlightUnknown, E::Cancelled, S::Cancelled),
            (S::InFlightUnknown, E::Expire, S::Expired),
            (S::Working, E::PartialFill, S::PartiallyFilled),
            (S::Working, E::Fill, S::Filled),
            (S::Working, E::CancelRequest, S::PendingCancel),
            (S::Working, E::Cancelled, S::Cancelled),
            (S::Working, E::Expire, S::Expired),
            (S::PartiallyFilled, E::PartialFill, S::PartiallyFilled),
            (S::PartiallyFilled, E::Fill, S::Filled),
            (S::PartiallyFilled, E::CancelRequest, S::PendingCancel),
            (S::PartiallyFilled, E::Cancelled, S::Cancelled),
            (S::PartiallyFilled, E::Expire, S::Expired),
            (S::PendingCancel, E::Accept, S::PendingCancel),
            (S::PendingCancel, E::Reject, S::Rejected),
            (S::PendingCancel, E::PartialFill, S::PendingCancel),
            (S::PendingCancel, E::Fill, S::Filled),
            (S::PendingCancel, E::Cancelled, S::Cancelled),
            (S::PendingCancel, E::CancelRejected, S::Working),
            (S::PendingCancel, E::Expire, S::Expired),
        ]
    };

    #[test]
    fn every_pair_of_status_and_event_matches_the_written_table() {
        let mut refused = 0;
        for from in ORDER_STATUSES {
            for event in ORDER_EVENTS {
                let expected = ALLOWED.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to);
                assert_eq!(from.next(event), expected, "{from:?} + {event:?}");
                if expected.is_none() {
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 100 - ALLOWED.len());
    }

    #[test]
    fn terminal_statuses_refuse_everything() {
        for from in ORDER_STATUSES.into_iter().filter(|s| s.is_terminal()) {
            for event in ORDER_EVENTS {
                assert_eq!(from.next(event), None, "{from:?} accepted {event:?}");
            }
        }
    }

    fn request(qty: &str) -> OrderRequest {
        OrderRequest {
            client_id: ClientOrderId::new(SignalId(7), AccountId(3), 0),
            symbol: Symbol::new("EURUSD").unwrap(),
            side: Side::Buy,
            qty: Qty::parse(qty).unwrap(),
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            intent: OrderIntent::Open,
        }
    }

    fn fill(qty: &str, price: &str) -> OrderUpdate {
        OrderUpdate::Fill(Fill {
            qty: Qty::parse(qty).unwrap(),
            price: Price::parse(price).unwrap(),
            position: PositionId(1),
        })
    }

    #[test]
    fn fills_accumulate_to_filled_with_an_exact_average() {
        let mut order = Order::new(request("0.03"));
        order.apply(OrderUpdate::Submit).unwrap();
        order.apply(OrderUpdate::Accept(Some(BrokerOrderId(9)))).unwrap();
        assert_eq!(order.apply(fill("0.01", "1.1")).unwrap(), OrderStatus::PartiallyFilled);
        assert_eq!(order.apply(fill("0.02", "1.4")).unwrap(), OrderStatus::Filled);
        assert_eq!(order.average_fill_price(), Some(Price::parse("1.3").unwrap()));
        assert_eq!(order.broker_id, Some(BrokerOrderId(9)));
    }

    #[test]
    fn refused_events_leave_the_order_untouched() {
        let mut order = Order::new(request("1"));
        let before = order;
        assert_eq!(
            order.apply(OrderUpdate::Accept(None)),
            Err(OrderError::InvalidTransition {
                order: before.request.client_id,
                from: OrderStatus::Created,
                event: OrderEvent::Accept,
            })
        );
        assert_eq!(order, before);
        order.apply(OrderUpdate::Submit).unwrap();
        let before = order;
        assert!(matches!(order.apply(fill("2", "1")), Err(OrderError::Overfill { .. })));
        assert!(matches!(order.apply(fill("0", "1")), Err(OrderError::BadFill { .. })));
        assert!(matches!(order.apply(fill("1", "0")), Err(OrderError::BadFill { .. })));
        assert_eq!(order, before);
    }

    #[test]
    fn a_refused_cancel_returns_to_partially_filled_when_something_filled() {
        let mut order = Order::new(request("2"));
        order.apply(OrderUpdate::Submit).unwrap();
        order.apply(fill("1", "1")).unwrap();
        order.apply(OrderUpdate::CancelRequest).unwrap();
        assert_eq!(order.apply(OrderUpdate::CancelRejected).unwrap(), OrderStatus::PartiallyFilled);
        let mut order = Order::new(request("2"));
        order.apply(OrderUpdate::Submit).unwrap();
        order.apply(OrderUpdate::CancelRequest).unwrap();
        assert_eq!(order.apply(OrderUpdate::CancelRejected).unwrap(), OrderStatus::Working);
    }

    fn any_update() -> impl Strategy<Value = OrderUpdate> {
        prop_oneof![
            Just(OrderUpdate::Submit),
            Just(OrderUpdate::OutcomeUnknown),
            Just(OrderUpdate::Accept(Some(BrokerOrderId(1)))),
            Just(OrderUpdate::Reject),
            (1i64..=300).prop_map(|lots| OrderUpdate::Fill(Fill {
                qty: Qty::from_raw(lots * 1_000_000),
                price: Price::from_raw(108_500_000),
                position: PositionId(1),
            })),
            Just(OrderUpdate::CancelRequest),
            Just(OrderUpdate::CancelRejected),
            Just(OrderUpdate::Cancelled),
            Just(OrderUpdate::Expire),
        ]
    }

    proptest! {
        /// Whatever a broker throws at an order, it never overfills, never leaves a terminal
        /// status, and a refused update never changes it.
        #[test]
        fn random_update_sequences_keep_the_invariants(updates in proptest::collection::vec(any_update(), 0..40)) {
            let mut order = Order::new(request("1"));
            for update in updates {
                let before = order;
                match order.apply(update) {
                    Ok(status) => {
                        prop_assert!(!before.status.is_terminal());
                        prop_assert_eq!(status, order.status);
                    }
                    Err(_) => prop_assert_eq!(order, before),
                }
                prop_assert!(order.filled_qty <= order.request.qty);
                prop_assert!(!order.filled_qty.is_negative());
                prop_assert_eq!(order.status == OrderStatus::Filled, order.filled_qty == order.request.qty);
            }
        }
    }
}
