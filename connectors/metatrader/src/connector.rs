//! One terminal behind Mirror's `Connector` trait.

use std::sync::Arc;

use async_trait::async_trait;
use mirror_connector::{
    AccountSnapshot, CancelRequest, CloseRequest, Connector, ConnectorError, EventStream, ModifyRequest, PlaceAck,
    SessionInfo, WorkingOrder,
};
use mirror_model::{
    BrokerOrderId, ClientOrderId, InstrumentSpec, OrderIntent, OrderKind, OrderRequest, Platform, Position, PositionId,
    Qty, Symbol, TimeInForce,
};

use crate::bridge::Shared;
use crate::cid;
use crate::protocol::{Cmd, CmdOrderType, Op, Tif};
use crate::terminal::{OrderInfo, Terminal};

/// The connector of one terminal: "connected" while its EA's session is up and synced. Every
/// command is sent to the EA and answered by its `ack`, under the bridge's command timeout.
#[derive(Clone)]
pub struct MtConnector {
    terminal: Arc<Terminal>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MtConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtConnector").field("terminal", &self.terminal.config.name).finish_non_exhaustive()
    }
}

fn blank(op: Op) -> Cmd {
    Cmd {
        cmd: 0,
        op,
        cid: String::new(),
        symbol: String::new(),
        side: None,
        order_type: None,
        volume: None,
        price: None,
        sl: None,
        tp: None,
        position: 0,
        order: 0,
        expiration: 0,
        deviation: 0,
        tif: None,
    }
}

impl MtConnector {
    pub(crate) fn new(terminal: Arc<Terminal>, shared: Arc<Shared>) -> Self {
        Self { terminal, shared }
    }

    /// The terminal's configured name.
    pub fn name(&self) -> &str {
        &self.terminal.config.name
    }

    /// Whether the terminal's session is up and synced now.
    pub fn is_connected(&self) -> bool {
        self.terminal.account().is_ok()
    }

    /// A close of `qty` of `position`, numbered `client_id`.
    async fn close_position(
        &self,
        client_id: ClientOrderId,
        position: PositionId,
        symbol: Symbol,
        qty: Qty,
        operation: &'static str,
    ) -> Result<PlaceAck, ConnectorError> {
        // The terminal may know the position by a newer ticket (MT4 renumbers the remainder of
        // a partial close); an unknown position is sent as it is, for the terminal to refuse.
        let (ticket, side) = match self.terminal.position(position) {
            Some((ticket, _, side)) => (ticket, Some(side.opposite())),
            None => (position.0, None),
        };
        let cmd = Cmd {
            cid: cid::encode(client_id),
            symbol: symbol.to_string(),
            side,
            order_type: Some(CmdOrderType::Market),
            volume: Some(qty),
            position: ticket,
            tif: Some(Tif::Ioc),
            ..blank(Op::Close)
        };
        let order = side.map(|side| OrderInfo { client_id, symbol, side });
        let ack = self.terminal.command(&self.shared, cmd, operation, order).await?;
        Ok(PlaceAck { broker_id: BrokerOrderId(ack.order) })
    }
}

fn tif(time_in_force: TimeInForce) -> (Tif, i64) {
    match time_in_force {
        TimeInForce::Gtc => (Tif::Gtc, 0),
        TimeInForce::Day => (Tif::Day, 0),
        TimeInForce::Ioc => (Tif::Ioc, 0),
        TimeInForce::Fok => (Tif::Fok, 0),
        TimeInForce::Gtd { expire_unix_ms } => (Tif::Gtd, expire_unix_ms),
    }
}

#[async_trait]
impl Connector for MtConnector {
    fn platform(&self) -> Platform {
        self.terminal.config.platform
    }

    async fn connect(&self) -> Result<SessionInfo, ConnectorError> {
        self.terminal.connect().await
    }

    async fn disconnect(&self) {
        self.terminal.disconnect(&self.shared).await;
    }

    fn events(&self) -> EventStream {
        self.terminal.events()
    }

    async fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        self.terminal.instruments()
    }

    async fn account(&self) -> Result<AccountSnapshot, ConnectorError> {
        self.terminal.account()
    }

    async fn place(&self, order: &OrderRequest) -> Result<PlaceAck, ConnectorError> {
        if let OrderIntent::Close { position } = order.intent {
            return self.close_position(order.client_id, position, order.symbol, order.qty, "place").await;
        }
        let (order_type, price) = match order.kind {
            OrderKind::Market => (CmdOrderType::Market, None),
            OrderKind::Limit { price } => (CmdOrderType::Limit, Some(price)),
            OrderKind::Stop { price } => (CmdOrderType::Stop, Some(price)),
        };
        let (tif, expiration) = tif(order.time_in_force);
        let cmd = Cmd {
            cid: cid::encode(order.client_id),
            symbol: order.symbol.to_string(),
            side: Some(order.side),
            order_type: Some(order_type),
            volume: Some(order.qty),
            price,
            sl: order.stop_loss,
            tp: order.take_profit,
            expiration,
            tif: Some(tif),
            ..blank(Op::Open)
        };
        let info = OrderInfo { client_id: order.client_id, symbol: order.symbol, side: order.side };
        let ack = self.terminal.command(&self.shared, cmd, "place", Some(info)).await?;
        Ok(PlaceAck { broker_id: BrokerOrderId(ack.order) })
    }

    async fn close(&self, request: &CloseRequest) -> Result<PlaceAck, ConnectorError> {
        self.close_position(request.client_id, request.position, request.symbol, request.qty, "close").await
    }

    async fn modify(&self, request: &ModifyRequest) -> Result<(), ConnectorError> {
        let ticket = self.terminal.position(request.position).map_or(request.position.0, |(ticket, _, _)| ticket);
        let cmd = Cmd {
            symbol: request.symbol.to_string(),
            sl: request.stop_loss,
            tp: request.take_profit,
            position: ticket,
            ..blank(Op::Modify)
        };
        self.terminal.command(&self.shared, cmd, "modify", None).await.map(|_| ())
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<(), ConnectorError> {
        let order = request.broker_id.or_else(|| self.terminal.order_of_client(request.client_id));
        let cmd = Cmd { cid: cid::encode(request.client_id), order: order.map_or(0, |o| o.0), ..blank(Op::Cancel) };
        self.terminal.command(&self.shared, cmd, "cancel", None).await.map(|_| ())
    }

    async fn open_positions(&self) -> Result<Vec<Position>, ConnectorError> {
        self.terminal.sync("open_positions", false).await?;
        Ok(self.terminal.positions())
    }

    async fn open_orders(&self) -> Result<Vec<WorkingOrder>, ConnectorError> {
        self.terminal.sync("open_orders", false).await?;
        Ok(self.terminal.orders())
    }

    async fn subscribe_quotes(&self, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        self.terminal.subscribe(symbols)
    }

    // `order_history` stays unsupported: MetaTrader cannot look orders up by client id in
    // one query, and the bridge already settles every command in flight itself (journal,
    // resend, or a rejected report), so the engine's orders in flight always come to an end.

    async fn request_snapshot(&self) -> Result<(), ConnectorError> {
        self.terminal.sync("request_snapshot", true).await
    }
}
