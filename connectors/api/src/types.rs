//! What connectors are asked to do and what they report back.

use std::fmt;

use mirror_model::{
    BrokerOrderId, ClientOrderId, Fill, Money, OrderKind, Position, PositionEffect, PositionId, Price, Qty, Side,
    Symbol, TimeInForce,
};

/// Who the connector is logged in as.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionInfo {
    /// The broker's account number or login, as text.
    pub broker_account: String,
    /// The account's currency (ISO code).
    pub currency: String,
    /// Netting or hedging.
    pub mode: mirror_model::AccountMode,
}

/// Balance and equity of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccountSnapshot {
    /// Realised balance.
    pub balance: Money,
    /// Balance plus unrealised profit and loss.
    pub equity: Money,
    /// Margin in use.
    pub margin_used: Money,
}

/// Close all or part of a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CloseRequest {
    /// Deterministic id of the closing order.
    pub client_id: ClientOrderId,
    /// The position.
    pub position: PositionId,
    /// Its symbol.
    pub symbol: Symbol,
    /// Quantity to close.
    pub qty: Qty,
}

/// Change the stop loss and take profit of a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModifyRequest {
    /// The position.
    pub position: PositionId,
    /// Its symbol.
    pub symbol: Symbol,
    /// New stop loss (`None` removes it).
    pub stop_loss: Option<Price>,
    /// New take profit (`None` removes it).
    pub take_profit: Option<Price>,
}

/// Cancel a working order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CancelRequest {
    /// Mirror's id of the order.
    pub client_id: ClientOrderId,
    /// The broker's id, when known.
    pub broker_id: Option<BrokerOrderId>,
}

/// The broker took the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaceAck {
    /// The broker's id of the order.
    pub broker_id: BrokerOrderId,
}

/// A working (pending) order, as the broker lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkingOrder {
    /// Mirror's id, when Mirror placed it.
    pub client_id: Option<ClientOrderId>,
    /// The broker's id.
    pub broker_id: BrokerOrderId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// Quantity.
    pub qty: Qty,
    /// Filled so far.
    pub filled_qty: Qty,
    /// Kind and price.
    pub kind: OrderKind,
    /// Stop loss attached.
    pub stop_loss: Option<Price>,
    /// Take profit attached.
    pub take_profit: Option<Price>,
    /// Time in force.
    pub time_in_force: TimeInForce,
}

/// Where a looked-up order stands at the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LookupState {
    /// Still working (resting, or partly filled and resting).
    Working,
    /// Completely filled.
    Filled,
    /// Cancelled (what filled before stays filled).
    Cancelled,
    /// Expired (likewise).
    Expired,
    /// Refused after it was accepted.
    Rejected,
}

/// What the broker knows about one order, found by its client order id: how reconciliation
/// learns whether an order whose outcome was unknown reached the broker and what it did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderLookup {
    /// Mirror's id.
    pub client_id: ClientOrderId,
    /// The broker's id.
    pub broker_id: BrokerOrderId,
    /// Where it stands.
    pub state: LookupState,
    /// Quantity ordered.
    pub qty: Qty,
    /// Its executions, oldest first (a netting flip gives two: one per position touched).
    pub fills: Vec<Fill>,
}

/// A best bid and offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quote {
    /// Symbol, as the account's broker spells it.
    pub symbol: Symbol,
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Broker time, Unix milliseconds.
    pub time_unix_ms: i64,
}

/// Why a broker refused something, in a form Mirror can count and act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// The broker does not know the symbol.
    UnknownSymbol,
    /// Quantity off the lot step, under the minimum or over the maximum.
    InvalidQty,
    /// Price off the tick grid or on the wrong side of the market.
    InvalidPrice,
    /// Stop loss or take profit on the wrong side, or too close.
    InvalidStops,
    /// Not enough margin.
    InsufficientMargin,
    /// The market is closed.
    MarketClosed,
    /// Too many requests.
    RateLimited,
    /// The position or order does not exist (any more).
    NotFound,
    /// The client order id was already used for a different order.
    DuplicateClientId,
    /// Trading is disabled for the account or the symbol.
    TradingDisabled,
    /// Not a refusal from the broker: reconciliation found no trace of the order there, so it
    /// never arrived (the engine stopped before sending it).
    NeverReceived,
    /// Anything else the broker said no to.
    Other,
}

impl RejectCode {
    /// Whether sending the same request again later can succeed.
    pub const fn retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::MarketClosed)
    }
}

/// A refusal: a code, and the broker's own words.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RejectReason {
    /// What kind of refusal.
    pub code: RejectCode,
    /// The broker's message.
    pub message: String,
}

impl RejectReason {
    /// A reason with a code and a message.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Something that happened to an order after it was placed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderReportKind {
    /// An execution.
    Filled(Fill),
    /// Cancelled (at Mirror's request or by the broker).
    Cancelled,
    /// Expired by its time in force.
    Expired,
    /// A cancel request was refused.
    CancelRejected(RejectReason),
    /// Rejected after having been acknowledged (some brokers do).
    Rejected(RejectReason),
}

/// An execution report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderReport {
    /// Mirror's id, when Mirror placed the order.
    pub client_id: Option<ClientOrderId>,
    /// The broker's id.
    pub broker_id: BrokerOrderId,
    /// Symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// What happened.
    pub kind: OrderReportKind,
    /// Broker time, Unix milliseconds.
    pub time_unix_ms: i64,
}

/// The state of the connection to the broker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Connected and authenticated.
    Connected,
    /// Lost; the connector is trying again.
    Reconnecting {
        /// What happened.
        reason: String,
    },
    /// Down and not retrying (shut down, or credentials refused).
    Disconnected {
        /// What happened.
        reason: String,
    },
}

/// Everything a connector streams to the engine, in the order the broker produced it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConnectorEvent {
    /// An execution report.
    Order(OrderReport),
    /// A working (pending) order appeared, including one the user placed by hand (this is
    /// how a leader's pending orders are copied).
    Working(WorkingOrder),
    /// A position opened, changed or closed: for any reason, including trades the user made
    /// by hand (this is how a leader account's own trading is seen).
    Position(PositionEffect),
    /// Balance and equity.
    Account(AccountSnapshot),
    /// A quote for a subscribed symbol.
    Quote(Quote),
    /// The connection went up or down.
    Connection(ConnectionState),
    /// The account's whole state, as asked for with `Connector::request_snapshot`, placed in
    /// the stream exactly where it was read: every event before it is reflected in it, every
    /// event after it is newer.
    Snapshot(Box<BrokerSnapshot>),
}

/// An account's whole state at one point of its event stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerSnapshot {
    /// Open positions.
    pub positions: Vec<Position>,
    /// Working orders.
    pub orders: Vec<WorkingOrder>,
    /// Balance and equity.
    pub account: AccountSnapshot,
}

impl ConnectorEvent {
    /// Quotes may be dropped or coalesced under load; nothing else may.
    pub fn is_droppable(&self) -> bool {
        matches!(self, Self::Quote(_))
    }
}
