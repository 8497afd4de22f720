//! One cTrader account behind Mirror's `Connector` trait, sharing its session's connection.

use std::sync::Arc;

use async_trait::async_trait;
use mirror_connector::{
    AccountSnapshot, CancelRequest, CloseRequest, ConnectionState, Connector, ConnectorError, EventStream,
    ModifyRequest, OrderLookup, PlaceAck, RejectCode, RejectReason, SessionInfo, WorkingOrder,
};
use mirror_model::{
    BrokerOrderId, ClientOrderId, InstrumentSpec, Money, OrderIntent, OrderKind, OrderRequest, Platform, Position,
    Side, Symbol, TimeInForce,
};
use tokio::time::Instant;

use crate::error::CtraderError;
use crate::proto::{
    ProtoOAAccountLogoutReq, ProtoOAAccountLogoutRes, ProtoOAAmendPositionSLTPReq, ProtoOACancelOrderReq,
    ProtoOAExecutionEvent, ProtoOAExecutionType, ProtoOAGetPositionUnrealizedPnLReq,
    ProtoOAGetPositionUnrealizedPnLRes, ProtoOANewOrderReq, ProtoOAOrder, ProtoOAOrderDetailsReq,
    ProtoOAOrderDetailsRes, ProtoOAOrderListReq, ProtoOAOrderListRes, ProtoOAOrderType, ProtoOAReconcileReq,
    ProtoOAReconcileRes, ProtoOASubscribeSpotsReq, ProtoOASubscribeSpotsRes, ProtoOATimeInForce, ProtoOATradeSide,
    ProtoOATraderReq, ProtoOATraderRes,
};
use crate::session::scheduler::Lane;
use crate::session::{AccountStatus, Meta, Shared, call, connection_event, expect};
use crate::tracker::{SymbolInfo, reason_of};
use crate::units::{double_from_price, money_from_scaled};

/// One trading account (`ctidTraderAccountId`) on a [`CtraderSession`](crate::CtraderSession).
///
/// Orders carry Mirror's client order id in both `clientOrderId` and `label`. A client id the
/// account has seen is answered with the existing order instead of a second one; an order
/// whose answer was lost to a disconnect is looked up in the order history after the
/// reconnect and only sent again if the server never got it.
#[derive(Clone)]
pub struct CtraderConnector {
    shared: Arc<Shared>,
    account: i64,
    events: EventStream,
}

impl std::fmt::Debug for CtraderConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtraderConnector").field("account", &self.account).finish_non_exhaustive()
    }
}

fn refuse(code: RejectCode, message: impl Into<String>) -> ConnectorError {
    ConnectorError::Rejected(RejectReason::new(code, message))
}

/// The execution event that answers a trading request, or the refusal it carries.
fn executed(
    reply: &crate::proto::ProtoMessage,
    operation: &'static str,
) -> Result<ProtoOAExecutionEvent, ConnectorError> {
    let event = expect::<ProtoOAExecutionEvent>(reply, operation).map_err(CtraderError::into_connector)?;
    if event.execution_type == ProtoOAExecutionType::OrderRejected as i32
        || event.execution_type == ProtoOAExecutionType::OrderCancelRejected as i32
    {
        return Err(ConnectorError::Rejected(reason_of(event.error_code.as_deref())));
    }
    Ok(event)
}

/// The ack an execution event gives, or the refusal it carries.
fn ack_of(reply: &crate::proto::ProtoMessage, operation: &'static str) -> Result<PlaceAck, ConnectorError> {
    let event = executed(reply, operation)?;
    let order =
        event.order.ok_or_else(|| ConnectorError::Protocol(format!("{operation}: execution without an order")))?;
    Ok(PlaceAck { broker_id: BrokerOrderId(u64::try_from(order.order_id).unwrap_or(0)) })
}

impl CtraderConnector {
    pub(crate) fn new(shared: Arc<Shared>, account: i64, events: EventStream) -> Self {
        Self { shared, account, events }
    }

    /// The account's `ctidTraderAccountId`.
    pub fn ctid_trader_account_id(&self) -> i64 {
        self.account
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.shared.config.request_timeout
    }

    /// Fails unless the account is authorised on the current connection.
    fn ready(&self) -> Result<(), ConnectorError> {
        let core = self.shared.lock();
        match core.accounts.get(&self.account) {
            Some(slot) if slot.wanted && slot.ready_generation == Some(core.generation) => Ok(()),
            _ => Err(ConnectorError::NotConnected),
        }
    }

    fn symbol(&self, symbol: &Symbol) -> Result<SymbolInfo, ConnectorError> {
        let core = self.shared.lock();
        let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
        slot.tracker
            .catalog
            .by_name(symbol)
            .copied()
            .ok_or_else(|| refuse(RejectCode::UnknownSymbol, format!("{symbol} is not a symbol of this account")))
    }

    /// Waits until the account is ready again (after a reconnect): `Ok(true)` when ready,
    /// `Ok(false)` when `deadline` passed first, `Err` when it failed for good.
    async fn wait_ready(&self, deadline: Instant) -> Result<bool, ConnectorError> {
        let mut status = {
            let core = self.shared.lock();
            core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?.status.subscribe()
        };
        let outcome = tokio::time::timeout_at(
            deadline,
            status.wait_for(|s| matches!(s, AccountStatus::Ready(_) | AccountStatus::Failed(_))),
        )
        .await;
        match outcome {
            Ok(Ok(status)) => match &*status {
                AccountStatus::Failed(error) => Err(error.clone()),
                _ => Ok(true),
            },
            Ok(Err(_)) => Err(ConnectorError::NotConnected),
            Err(_) => Ok(false),
        }
    }

    /// A new-order request for `order` (a close when it targets a position).
    fn new_order(
        &self,
        order: &OrderRequest,
        info: &SymbolInfo,
        position: Option<i64>,
    ) -> Result<ProtoOANewOrderReq, ConnectorError> {
        if !order.qty.is_positive() {
            return Err(refuse(RejectCode::InvalidQty, format!("quantity {} must be positive", order.qty)));
        }
        let volume = info.scale.volume(order.qty).map_err(|error| refuse(RejectCode::InvalidQty, error.to_string()))?;
        let (order_type, limit_price, stop_price) = match order.kind {
            OrderKind::Market => (ProtoOAOrderType::Market, None, None),
            OrderKind::Limit { price } => (ProtoOAOrderType::Limit, Some(double_from_price(price)), None),
            OrderKind::Stop { price } => (ProtoOAOrderType::Stop, None, Some(double_from_price(price))),
        };
        let (time_in_force, expiration) = match (order.kind, order.time_in_force) {
            // A market order executes at once; its time in force is the server's business.
            (OrderKind::Market, _) => (None, None),
            (_, TimeInForce::Gtc) => (None, None),
            (_, TimeInForce::Ioc) => (Some(ProtoOATimeInForce::ImmediateOrCancel), None),
            (_, TimeInForce::Fok) => (Some(ProtoOATimeInForce::FillOrKill), None),
            (_, TimeInForce::Gtd { expire_unix_ms }) => (Some(ProtoOATimeInForce::GoodTillDate), Some(expire_unix_ms)),
            (_, TimeInForce::Day) => {
                return Err(ConnectorError::Unsupported(
                    "cTrader has no day orders; send good-till-date with the session's end".into(),
                ));
            }
        };
        // Absolute SL/TP are refused on market orders: those get theirs after the fill.
        let protect = order.kind.is_pending() && position.is_none();
        let side = match order.side {
            Side::Buy => ProtoOATradeSide::Buy,
            Side::Sell => ProtoOATradeSide::Sell,
        };
        let text = order.client_id.to_string();
        Ok(ProtoOANewOrderReq {
            payload_type: None,
            ctid_trader_account_id: self.account,
            symbol_id: info.id,
            order_type: order_type as i32,
            trade_side: side as i32,
            volume,
            limit_price,
            stop_price,
            time_in_force: time_in_force.map(|t| t as i32),
            expiration_timestamp: expiration,
            stop_loss: order.stop_loss.filter(|_| protect).map(double_from_price),
            take_profit: order.take_profit.filter(|_| protect).map(double_from_price),
            label: Some(text.clone()),
            position_id: position,
            client_order_id: Some(text),
            ..ProtoOANewOrderReq::default()
        })
    }

    /// Sends an order at most once per client id: an id the broker has is answered with its
    /// order, an id in doubt is settled by the reconnect's reconciliation first.
    async fn send_order(&self, order: &OrderRequest, position: Option<i64>) -> Result<PlaceAck, ConnectorError> {
        let deadline = Instant::now() + self.shared.config.order_timeout;
        let client_id = order.client_id;
        let info = self.symbol(&order.symbol)?;
        let request = self.new_order(order, &info, position)?;
        let after_fill = (!order.kind.is_pending() && position.is_none())
            .then_some((order.stop_loss, order.take_profit))
            .filter(|(sl, tp)| sl.is_some() || tp.is_some());
        loop {
            if let Some(known) = self.settled(client_id)? {
                return known;
            }
            if self.in_doubt(client_id) {
                let lost = || ConnectorError::ConnectionLost {
                    operation: "place",
                    detail: format!("{client_id} is in doubt and the account did not come back in time"),
                };
                if !self.wait_ready(deadline).await.map_err(|_| lost())? {
                    return Err(lost());
                }
                if self.in_doubt(client_id) {
                    // Ready again yet still in doubt: its answer was lost on a connection
                    // that stayed up (a timeout). Only history can settle it: treat it as
                    // unknown rather than send it twice.
                    return Err(ConnectorError::Timeout {
                        operation: "place",
                        timeout: self.shared.config.order_timeout,
                    });
                }
                continue;
            }
            if let Some(levels) = after_fill {
                self.shared
                    .lock()
                    .accounts
                    .get_mut(&self.account)
                    .map(|s| s.protect_after_fill.insert(client_id, levels));
            }
            let pending = self
                .shared
                .enqueue(Lane::Account(self.account), &request, Meta::Order { client_id }, "place")
                .map_err(CtraderError::into_connector)?;
            match pending.wait(deadline).await {
                Ok(reply) => return ack_of(&reply, "place"),
                Err(CtraderError::ConnectionLost { sent: true, .. }) if Instant::now() < deadline => {
                    // In doubt now; the reconnect settles it, then the loop decides.
                    continue;
                }
                Err(error) => return Err(error.into_connector()),
            }
        }
    }

    /// What the account already knows of `client_id`: its order, or its refusal.
    fn settled(&self, client_id: ClientOrderId) -> Result<Option<Result<PlaceAck, ConnectorError>>, ConnectorError> {
        let mut core = self.shared.lock();
        let slot = core.accounts.get_mut(&self.account).ok_or(ConnectorError::NotConnected)?;
        if !slot.wanted {
            return Err(ConnectorError::NotConnected);
        }
        if let Some(order_id) = slot.tracker.order_of(&client_id) {
            return Ok(Some(Ok(PlaceAck { broker_id: BrokerOrderId(u64::try_from(order_id).unwrap_or(0)) })));
        }
        if let Some(reason) = slot.refused.remove(&client_id) {
            return Ok(Some(Err(ConnectorError::Rejected(reason))));
        }
        Ok(None)
    }

    fn in_doubt(&self, client_id: ClientOrderId) -> bool {
        self.shared.lock().accounts.get(&self.account).is_some_and(|slot| slot.in_doubt.contains_key(&client_id))
    }

    /// The broker's orders updated between `from` and `to` (Unix ms), every page of them.
    async fn list_orders(&self, from: i64, mut to: i64) -> Result<Vec<ProtoOAOrder>, ConnectorError> {
        let mut orders: Vec<ProtoOAOrder> = Vec::new();
        for _ in 0..HISTORY_PAGES_MAX {
            let request = ProtoOAOrderListReq {
                payload_type: None,
                ctid_trader_account_id: self.account,
                from_timestamp: from,
                to_timestamp: to,
            };
            let page: ProtoOAOrderListRes = call(
                &self.shared,
                Lane::Account(self.account),
                &request,
                Meta::Plain,
                "order_history",
                self.deadline(),
            )
            .await
            .map_err(CtraderError::into_connector)?;
            let earliest = page.order.iter().filter_map(|o| o.utc_last_update_timestamp).min();
            let before = orders.len();
            for order in page.order {
                if !orders.iter().any(|o| o.order_id == order.order_id) {
                    orders.push(order);
                }
            }
            // The next page ends where this one began; a page that adds nothing ends it.
            match earliest {
                Some(earliest) if page.has_more && orders.len() > before && earliest > from => to = earliest,
                _ => break,
            }
        }
        Ok(orders)
    }

    async fn snapshot(&self, operation: &'static str) -> Result<ProtoOAReconcileRes, ConnectorError> {
        self.ready()?;
        let request = ProtoOAReconcileReq { payload_type: None, ctid_trader_account_id: self.account };
        call(&self.shared, Lane::Account(self.account), &request, Meta::Plain, operation, self.deadline())
            .await
            .map_err(CtraderError::into_connector)
    }
}

#[async_trait]
impl Connector for CtraderConnector {
    fn platform(&self) -> Platform {
        Platform::Ctrader
    }

    async fn connect(&self) -> Result<SessionInfo, ConnectorError> {
        let generation = {
            let mut core = self.shared.lock();
            if core.stopping {
                return Err(ConnectorError::NotConnected);
            }
            let generation = core.generation;
            let up = core.app_authed;
            let slot = core.accounts.get_mut(&self.account).ok_or(ConnectorError::NotConnected)?;
            slot.wanted = true;
            if slot.ready_generation == Some(generation)
                && let Some(info) = &slot.info
            {
                return Ok(info.clone());
            }
            if matches!(*slot.status.borrow(), AccountStatus::Failed(_)) {
                slot.set_status(AccountStatus::Down);
            }
            up.then_some(generation)
        };
        crate::session::ensure_driver(&self.shared);
        if let Some(generation) = generation {
            crate::session::start_restore(&self.shared, self.account, generation);
        }
        let wait = self.shared.config.connect_timeout + self.shared.config.request_timeout * 2;
        if !self.wait_ready(Instant::now() + wait).await? {
            return Err(ConnectorError::Timeout { operation: "connect", timeout: wait });
        }
        let core = self.shared.lock();
        core.accounts.get(&self.account).and_then(|slot| slot.info.clone()).ok_or(ConnectorError::NotConnected)
    }

    async fn disconnect(&self) {
        let was_ready = {
            let mut core = self.shared.lock();
            let counters = self.shared.counters();
            let Some(slot) = core.accounts.get_mut(&self.account) else { return };
            let was_ready = slot.ready_generation.is_some();
            slot.wanted = false;
            slot.ready_generation = None;
            slot.restoring = None;
            slot.set_status(AccountStatus::Down);
            slot.emit(
                connection_event(ConnectionState::Disconnected { reason: "disconnected by the client".into() }),
                &counters,
            );
            was_ready
        };
        if was_ready {
            // Best effort: the server forgets the account on this connection.
            let request = ProtoOAAccountLogoutReq { payload_type: None, ctid_trader_account_id: self.account };
            let _ = call::<_, ProtoOAAccountLogoutRes>(
                &self.shared,
                Lane::Session,
                &request,
                Meta::Plain,
                "logout",
                self.deadline(),
            )
            .await;
        }
    }

    fn events(&self) -> EventStream {
        self.events.clone()
    }

    async fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        self.ready()?;
        let core = self.shared.lock();
        Ok(core.accounts.get(&self.account).map(|slot| slot.tracker.catalog.specs()).unwrap_or_default())
    }

    async fn account(&self) -> Result<AccountSnapshot, ConnectorError> {
        self.ready()?;
        let lane = Lane::Account(self.account);
        let trader_request = ProtoOATraderReq { payload_type: None, ctid_trader_account_id: self.account };
        let pnl_request =
            ProtoOAGetPositionUnrealizedPnLReq { payload_type: None, ctid_trader_account_id: self.account };
        // Both requests are queued before either is awaited: one turn of the fair queue each.
        let trader =
            self.shared.enqueue(lane, &trader_request, Meta::Plain, "account").map_err(CtraderError::into_connector)?;
        let pnl =
            self.shared.enqueue(lane, &pnl_request, Meta::Plain, "account").map_err(CtraderError::into_connector)?;
        let deadline = self.deadline();
        let trader = trader.wait(deadline).await.and_then(|r| expect::<ProtoOATraderRes>(&r, "account"));
        let pnl = pnl.wait(deadline).await.and_then(|r| expect::<ProtoOAGetPositionUnrealizedPnLRes>(&r, "account"));
        let trader = trader.map_err(CtraderError::into_connector)?;
        let pnl = pnl.map_err(CtraderError::into_connector)?;
        let trader =
            trader.trader.ok_or_else(|| ConnectorError::Protocol("ProtoOATraderRes without a trader".into()))?;
        let digits = trader.money_digits.unwrap_or(2);
        let out_of_range = || ConnectorError::Protocol("money out of range".into());
        let balance = money_from_scaled(trader.balance, digits).ok_or_else(out_of_range)?;
        let unrealized =
            pnl.position_unrealized_pn_l.iter().try_fold(0i64, |sum, p| sum.checked_add(p.gross_unrealized_pn_l));
        let unrealized = unrealized.ok_or_else(out_of_range)?;
        let unrealized = money_from_scaled(unrealized, pnl.money_digits).ok_or_else(out_of_range)?;
        Ok(AccountSnapshot { balance, equity: balance + unrealized, margin_used: Money::ZERO })
    }

    async fn place(&self, order: &OrderRequest) -> Result<PlaceAck, ConnectorError> {
        let position = match order.intent {
            OrderIntent::Open => None,
            OrderIntent::Close { position } => Some(position),
        };
        match position {
            None => self.send_order(order, None).await,
            Some(position) => {
                let close = CloseRequest { client_id: order.client_id, position, symbol: order.symbol, qty: order.qty };
                self.close(&close).await
            }
        }
    }

    async fn close(&self, request: &CloseRequest) -> Result<PlaceAck, ConnectorError> {
        let position_id = i64::try_from(request.position.0)
            .map_err(|_| refuse(RejectCode::NotFound, format!("no position {}", request.position)))?;
        let side = {
            let core = self.shared.lock();
            let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
            let seen = slot.tracker.order_of(&request.client_id).is_some()
                || slot.in_doubt.contains_key(&request.client_id)
                || slot.refused.contains_key(&request.client_id);
            match slot.tracker.position(position_id) {
                Some(position) => position.side.opposite(),
                // A close sent before (the position may be gone since): the order path
                // answers it from what the broker said, without sending it twice.
                None if seen => Side::Sell,
                None => return Err(refuse(RejectCode::NotFound, format!("no open position {}", request.position))),
            }
        };
        // A close is a market order against the position, so it carries Mirror's client id
        // (`ProtoOAClosePositionReq` has no field for it) and is idempotent like any order.
        let order = OrderRequest {
            client_id: request.client_id,
            symbol: request.symbol,
            side,
            qty: request.qty,
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            intent: OrderIntent::Close { position: request.position },
        };
        self.send_order(&order, Some(position_id)).await
    }

    async fn modify(&self, request: &ModifyRequest) -> Result<(), ConnectorError> {
        self.ready()?;
        let position_id = i64::try_from(request.position.0)
            .map_err(|_| refuse(RejectCode::NotFound, format!("no position {}", request.position)))?;
        let amend = ProtoOAAmendPositionSLTPReq {
            ctid_trader_account_id: self.account,
            position_id,
            stop_loss: request.stop_loss.map(double_from_price),
            take_profit: request.take_profit.map(double_from_price),
            ..ProtoOAAmendPositionSLTPReq::default()
        };
        let reply = self
            .shared
            .enqueue(Lane::Account(self.account), &amend, Meta::Plain, "modify")
            .map_err(CtraderError::into_connector)?
            .wait(self.deadline())
            .await
            .map_err(CtraderError::into_connector)?;
        executed(&reply, "modify").map(|_| ())
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<(), ConnectorError> {
        self.ready()?;
        let order_id = match request.broker_id {
            Some(id) => i64::try_from(id.0).ok(),
            None => {
                let core = self.shared.lock();
                core.accounts.get(&self.account).and_then(|slot| slot.tracker.order_of(&request.client_id))
            }
        };
        let Some(order_id) = order_id else {
            return Err(refuse(
                RejectCode::NotFound,
                format!("no order {} is known to this account", request.client_id),
            ));
        };
        let cancel = ProtoOACancelOrderReq { payload_type: None, ctid_trader_account_id: self.account, order_id };
        let reply = self
            .shared
            .enqueue(Lane::Account(self.account), &cancel, Meta::Plain, "cancel")
            .map_err(CtraderError::into_connector)?
            .wait(self.deadline())
            .await
            .map_err(CtraderError::into_connector)?;
        executed(&reply, "cancel").map(|_| ())
    }

    async fn open_positions(&self) -> Result<Vec<Position>, ConnectorError> {
        let snapshot = self.snapshot("open_positions").await?;
        let core = self.shared.lock();
        let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
        Ok(snapshot.position.iter().filter_map(|p| slot.tracker.map_position(p)).collect())
    }

    async fn open_orders(&self) -> Result<Vec<WorkingOrder>, ConnectorError> {
        let snapshot = self.snapshot("open_orders").await?;
        let core = self.shared.lock();
        let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
        Ok(snapshot.order.iter().filter_map(|o| slot.tracker.map_working(o)).collect())
    }

    async fn subscribe_quotes(&self, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        self.ready()?;
        let ids =
            symbols.iter().map(|symbol| self.symbol(symbol).map(|info| info.id)).collect::<Result<Vec<_>, _>>()?;
        {
            let mut core = self.shared.lock();
            if let Some(slot) = core.accounts.get_mut(&self.account) {
                slot.spots.extend(ids.iter().copied());
            }
        }
        let request = ProtoOASubscribeSpotsReq {
            payload_type: None,
            ctid_trader_account_id: self.account,
            symbol_id: ids,
            subscribe_to_spot_timestamp: Some(true),
        };
        match call::<_, ProtoOASubscribeSpotsRes>(
            &self.shared,
            Lane::Account(self.account),
            &request,
            Meta::Plain,
            "subscribe_quotes",
            self.deadline(),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(CtraderError::Refused { code, .. }) if code == "ALREADY_SUBSCRIBED" => Ok(()),
            Err(error) => Err(error.into_connector()),
        }
    }

    async fn order_history(&self, client_ids: &[ClientOrderId]) -> Result<Vec<OrderLookup>, ConnectorError> {
        self.ready()?;
        let mut found: Vec<(ClientOrderId, i64)> = Vec::new();
        let mut unknown: Vec<ClientOrderId> = Vec::new();
        {
            let core = self.shared.lock();
            let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
            for client_id in client_ids {
                match slot.tracker.order_of(client_id) {
                    Some(order_id) => found.push((*client_id, order_id)),
                    None => unknown.push(*client_id),
                }
            }
        }
        if !unknown.is_empty() {
            // Orders this session never saw (placed before a restart): the broker's list.
            let now = crate::session::unix_ms();
            let lookback = i64::try_from(self.shared.config.history_lookback.as_millis()).unwrap_or(i64::MAX);
            let listed = self.list_orders(now.saturating_sub(lookback), now + HISTORY_MARGIN_MS).await?;
            let mut core = self.shared.lock();
            let slot = core.accounts.get_mut(&self.account).ok_or(ConnectorError::NotConnected)?;
            for order in &listed {
                let Some(client_id) = order.client_order_id.as_deref().and_then(|t| t.parse::<ClientOrderId>().ok())
                else {
                    continue;
                };
                if unknown.contains(&client_id) && !found.iter().any(|(id, _)| *id == client_id) {
                    slot.tracker.remember(client_id, order.order_id);
                    found.push((client_id, order.order_id));
                }
            }
        }
        let mut lookups = Vec::with_capacity(found.len());
        // A chunk of detail requests at a time: queued together, one fair turn each.
        for chunk in found.chunks(DETAILS_PER_TURN) {
            let mut pending = Vec::with_capacity(chunk.len());
            for (client_id, order_id) in chunk {
                let request = ProtoOAOrderDetailsReq {
                    payload_type: None,
                    ctid_trader_account_id: self.account,
                    order_id: *order_id,
                };
                let queued = self
                    .shared
                    .enqueue(Lane::Account(self.account), &request, Meta::Plain, "order_history")
                    .map_err(CtraderError::into_connector)?;
                pending.push((*client_id, queued));
            }
            let deadline = self.deadline();
            for (client_id, queued) in pending {
                let reply = queued.wait(deadline).await.map_err(CtraderError::into_connector)?;
                let details =
                    expect::<ProtoOAOrderDetailsRes>(&reply, "order_history").map_err(CtraderError::into_connector)?;
                let Some(order) = details.order else { continue };
                let core = self.shared.lock();
                let slot = core.accounts.get(&self.account).ok_or(ConnectorError::NotConnected)?;
                if let Some(lookup) = slot.tracker.lookup(client_id, &order, &details.deal) {
                    lookups.push(lookup);
                }
            }
        }
        Ok(lookups)
    }

    async fn request_snapshot(&self) -> Result<(), ConnectorError> {
        // Balance and equity first; positions and orders are then read where the snapshot
        // lands in the stream (the reader emits it on the answer, between the events before
        // and after it).
        let account = self.account().await?;
        let request = ProtoOAReconcileReq { payload_type: None, ctid_trader_account_id: self.account };
        let _: ProtoOAReconcileRes = call(
            &self.shared,
            Lane::Account(self.account),
            &request,
            Meta::Snapshot { account },
            "reconcile",
            self.deadline(),
        )
        .await
        .map_err(CtraderError::into_connector)?;
        Ok(())
    }
}

/// Pages of the broker's order list read at most by one `order_history`.
const HISTORY_PAGES_MAX: usize = 20;
/// Order details requested together by `order_history`.
const DETAILS_PER_TURN: usize = 64;
/// Slack at the end of an order-history window, for clocks that disagree.
const HISTORY_MARGIN_MS: i64 = 60_000;
