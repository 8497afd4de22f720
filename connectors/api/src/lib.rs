//! The `Connector` trait: how Mirror talks to one account on one trading platform.
//!
//! Every platform (the simulator, cTrader, MetaTrader, DXtrade, …) implements the same trait,
//! so the engine treats them alike, and every implementation must pass the same
//! [`conformance`] kit.
//!
//! # Contract
//!
//! - [`Connector::place`] and [`Connector::close`] resolve when the broker has accepted the
//!   order (`Ok`) or refused it (`Err(ConnectorError::Rejected)`). Executions arrive later as
//!   [`ConnectorEvent::Order`] reports carrying the order's [`ClientOrderId`].
//! - Placing a client order id the broker has already seen must not create a second order:
//!   the connector answers with the existing order's id (or a `DuplicateClientId` refusal).
//!   This is what makes Mirror's resends after a crash or a disconnect idempotent.
//! - An error for which [`ConnectorError::outcome_unknown`] is true means the request may
//!   have been executed; the engine keeps such an order in flight until reconciliation.
//! - [`Connector::events`] streams, in broker order, execution reports, position changes
//!   (including the user's own trades, which is how leader accounts are followed), balance
//!   and equity, quotes and connection changes. The channel is bounded: quotes may be dropped
//!   when it is full, nothing else is.
//! - An execution report comes before the position change it causes: the engine tells its
//!   own executions from the broker's (a stop hit, a close by hand) by that order.
//! - A snapshot asked for with [`Connector::request_snapshot`] arrives in the event stream at
//!   the point its state was read; reconciliation relies on that order.
//! - Every network wait inside a connector has a timeout.

#![warn(missing_docs)]

use async_trait::async_trait;
use mirror_model::{ClientOrderId, InstrumentSpec, OrderRequest, Platform, Position, Symbol};

pub mod conformance;
mod error;
mod types;

pub use error::ConnectorError;
pub use types::{
    AccountSnapshot, BrokerSnapshot, CancelRequest, CloseRequest, ConnectionState, ConnectorEvent, LookupState,
    ModifyRequest, OrderLookup, OrderReport, OrderReportKind, PlaceAck, Quote, RejectCode, RejectReason, SessionInfo,
    WorkingOrder,
};

/// The receiving end of a connector's event stream.
pub type EventStream = flume::Receiver<ConnectorEvent>;

/// One account on one trading platform.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The platform.
    fn platform(&self) -> Platform;

    /// Connects and authenticates. Calling it again while connected does nothing.
    async fn connect(&self) -> Result<SessionInfo, ConnectorError>;

    /// Disconnects; later calls fail with `NotConnected` until `connect` is called again.
    async fn disconnect(&self);

    /// The event stream. There is one stream per connector and it has one consumer.
    fn events(&self) -> EventStream;

    /// The instruments the account can trade, by its own symbols.
    async fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError>;

    /// Balance and equity now.
    async fn account(&self) -> Result<AccountSnapshot, ConnectorError>;

    /// Places an order (open, or close of a position on netting platforms).
    async fn place(&self, order: &OrderRequest) -> Result<PlaceAck, ConnectorError>;

    /// Closes all or part of a position.
    async fn close(&self, request: &CloseRequest) -> Result<PlaceAck, ConnectorError>;

    /// Changes a position's stop loss and take profit.
    async fn modify(&self, request: &ModifyRequest) -> Result<(), ConnectorError>;

    /// Cancels a working order.
    async fn cancel(&self, request: &CancelRequest) -> Result<(), ConnectorError>;

    /// Open positions, for reconciliation.
    async fn open_positions(&self) -> Result<Vec<Position>, ConnectorError>;

    /// Working orders, for reconciliation.
    async fn open_orders(&self) -> Result<Vec<WorkingOrder>, ConnectorError>;

    /// Starts quotes for these symbols on the event stream.
    async fn subscribe_quotes(&self, symbols: &[Symbol]) -> Result<(), ConnectorError>;

    /// What the broker knows about these orders (working or finished, with their
    /// executions), for reconciliation after a restart or a reconnect. Ids the broker never
    /// accepted are left out of the answer.
    ///
    /// A platform that cannot look orders up by client id answers `Unsupported`, and
    /// reconciliation then works from positions and working orders alone.
    async fn order_history(&self, client_ids: &[ClientOrderId]) -> Result<Vec<OrderLookup>, ConnectorError> {
        let _ = client_ids;
        Err(ConnectorError::Unsupported("looking orders up by client id".into()))
    }

    /// Puts a [`ConnectorEvent::Snapshot`] of the account into the event stream, at the point
    /// where its state is read, so that the engine can reconcile without racing the stream.
    async fn request_snapshot(&self) -> Result<(), ConnectorError> {
        Err(ConnectorError::Unsupported("snapshots in the event stream".into()))
    }
}
