//! One account's view of the broker, kept from cTrader's messages, and the mapping of those
//! messages onto Mirror's events. No I/O: messages in, events out, so every mapping is tested
//! by feeding recorded payloads.
//!
//! Ordering rules kept here:
//! - an execution report (`ConnectorEvent::Order`) is pushed before the position change the
//!   same execution causes;
//! - a reconciliation after a reconnect reports what changed while the connection was down
//!   the same way, fills first, then position changes, then working orders.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use mirror_connector::{
    AccountSnapshot, ConnectorEvent, LookupState, OrderLookup, OrderReport, OrderReportKind, Quote, RejectCode,
    RejectReason, WorkingOrder,
};
use mirror_model::{
    AccountMode, BrokerOrderId, ClientOrderId, Fill, InstrumentSpec, Money, OrderKind, Position, PositionChange,
    PositionEffect, PositionId, Price, Side, Symbol, TimeInForce,
};

use crate::error::reject_code;
use crate::proto::{
    ProtoOADeal, ProtoOADealStatus, ProtoOAExecutionEvent, ProtoOAExecutionType, ProtoOAOrder, ProtoOAOrderStatus,
    ProtoOAOrderType, ProtoOAPosition, ProtoOAPositionStatus, ProtoOASpotEvent, ProtoOATimeInForce, ProtoOATradeSide,
};
use crate::units::{VolumeScale, money_from_scaled, price_from_double, price_from_spot};

/// Client order ids remembered per account (oldest forgotten first). A resend older than
/// this many orders is no longer recognised as a resend.
pub(crate) const CLIENT_IDS_REMEMBERED: usize = 100_000;

/// One tradable symbol of an account.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SymbolInfo {
    pub(crate) id: i64,
    pub(crate) spec: InstrumentSpec,
    pub(crate) scale: VolumeScale,
}

/// The account's symbols, by id and by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Catalog {
    by_id: HashMap<i64, SymbolInfo>,
    by_name: HashMap<Symbol, i64>,
}

impl Catalog {
    pub(crate) fn insert(&mut self, info: SymbolInfo) {
        self.by_name.insert(info.spec.symbol, info.id);
        self.by_id.insert(info.id, info);
    }

    pub(crate) fn by_id(&self, id: i64) -> Option<&SymbolInfo> {
        self.by_id.get(&id)
    }

    pub(crate) fn by_name(&self, symbol: &Symbol) -> Option<&SymbolInfo> {
        self.by_id.get(self.by_name.get(symbol)?)
    }

    pub(crate) fn specs(&self) -> Vec<InstrumentSpec> {
        let mut specs: Vec<InstrumentSpec> = self.by_id.values().map(|info| info.spec).collect();
        specs.sort_by_key(|spec| spec.symbol);
        specs
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Client order id → broker order id, bounded, oldest forgotten first.
#[derive(Debug, Default)]
struct ClientIndex {
    ids: HashMap<ClientOrderId, i64>,
    order: VecDeque<ClientOrderId>,
}

impl ClientIndex {
    fn insert(&mut self, client_id: ClientOrderId, order_id: i64) {
        if self.ids.insert(client_id, order_id).is_none() {
            self.order.push_back(client_id);
            if self.order.len() > CLIENT_IDS_REMEMBERED
                && let Some(oldest) = self.order.pop_front()
            {
                self.ids.remove(&oldest);
            }
        }
    }

    fn get(&self, client_id: &ClientOrderId) -> Option<i64> {
        self.ids.get(client_id).copied()
    }
}

/// Volume filled so far per order, bounded like the client index.
#[derive(Debug, Default)]
struct FilledIndex {
    volume: HashMap<i64, i64>,
    order: VecDeque<i64>,
}

impl FilledIndex {
    fn add(&mut self, order_id: i64, volume: i64) {
        let entry = self.volume.entry(order_id).or_insert_with(|| {
            self.order.push_back(order_id);
            0
        });
        *entry = entry.saturating_add(volume);
        if self.order.len() > CLIENT_IDS_REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.volume.remove(&oldest);
        }
    }

    fn get(&self, order_id: i64) -> i64 {
        self.volume.get(&order_id).copied().unwrap_or(0)
    }
}

/// What became of an order whose outcome was unknown after a reconnect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resolution {
    /// The broker has it (any state but rejected): its id.
    Found(i64),
    /// The broker refused it.
    Rejected(RejectReason),
    /// The broker never got it: sending it again is safe.
    NotFound,
}

/// One account's state at the broker, as far as messages have told.
#[derive(Debug)]
pub(crate) struct Tracker {
    pub(crate) catalog: Catalog,
    pub(crate) money_digits: u32,
    pub(crate) mode: AccountMode,
    positions: BTreeMap<i64, Position>,
    pending: BTreeMap<i64, WorkingOrder>,
    /// Market orders acknowledged and not yet filled: their fill may be what a dropped
    /// connection lost.
    unfinished: BTreeSet<i64>,
    clients: ClientIndex,
    filled: FilledIndex,
    quotes: HashMap<i64, (Option<Price>, Option<Price>)>,
    balance: Option<Money>,
    baselined: bool,
}

fn id_u64(id: i64) -> u64 {
    // cTrader ids are positive int64; a negative one is a protocol error mapped to 0 rather
    // than a panic on bytes from outside.
    u64::try_from(id).unwrap_or(0)
}

fn side_of(trade_side: i32) -> Side {
    if trade_side == ProtoOATradeSide::Sell as i32 { Side::Sell } else { Side::Buy }
}

fn client_id_of(text: Option<&str>) -> Option<ClientOrderId> {
    text?.parse().ok()
}

fn is_pending_type(order_type: i32) -> bool {
    order_type == ProtoOAOrderType::Limit as i32
        || order_type == ProtoOAOrderType::Stop as i32
        || order_type == ProtoOAOrderType::StopLimit as i32
}

impl Tracker {
    pub(crate) fn new() -> Self {
        Self {
            catalog: Catalog::default(),
            money_digits: 2,
            mode: AccountMode::Hedging,
            positions: BTreeMap::new(),
            pending: BTreeMap::new(),
            unfinished: BTreeSet::new(),
            clients: ClientIndex::default(),
            filled: FilledIndex::default(),
            quotes: HashMap::new(),
            balance: None,
            baselined: false,
        }
    }

    /// Whether a first snapshot has been taken (later snapshots are diffed against it).
    pub(crate) fn baselined(&self) -> bool {
        self.baselined
    }

    /// Whether any order may have moved unseen while disconnected: a working order (filled
    /// or cancelled?) or a market order acknowledged and not yet filled. A reconnect then
    /// looks at the order history.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty() || !self.unfinished.is_empty()
    }

    /// The broker's order id for a client order id, when known.
    pub(crate) fn order_of(&self, client_id: &ClientOrderId) -> Option<i64> {
        self.clients.get(client_id)
    }

    /// Remembers the broker's id of an order placed with `client_id`.
    pub(crate) fn remember(&mut self, client_id: ClientOrderId, order_id: i64) {
        self.clients.insert(client_id, order_id);
    }

    /// What the broker says of one order, in Mirror's terms: its state, quantity and fills
    /// (from its deals, oldest first).
    pub(crate) fn lookup(
        &self,
        client_id: ClientOrderId,
        order: &ProtoOAOrder,
        deals: &[ProtoOADeal],
    ) -> Option<OrderLookup> {
        let trade = order.trade_data.as_ref()?;
        let info = self.catalog.by_id(trade.symbol_id)?;
        let state = match ProtoOAOrderStatus::try_from(order.order_status).ok()? {
            ProtoOAOrderStatus::OrderStatusAccepted => LookupState::Working,
            ProtoOAOrderStatus::OrderStatusFilled => LookupState::Filled,
            ProtoOAOrderStatus::OrderStatusCancelled => LookupState::Cancelled,
            ProtoOAOrderStatus::OrderStatusExpired => LookupState::Expired,
            ProtoOAOrderStatus::OrderStatusRejected => LookupState::Rejected,
        };
        let mut executed: Vec<&ProtoOADeal> = deals
            .iter()
            .filter(|d| {
                d.filled_volume > 0
                    && (d.deal_status == ProtoOADealStatus::Filled as i32
                        || d.deal_status == ProtoOADealStatus::PartiallyFilled as i32)
            })
            .collect();
        executed.sort_by_key(|d| (d.execution_timestamp, d.deal_id));
        let fills = executed
            .iter()
            .map(|d| {
                Some(Fill {
                    qty: info.scale.qty(d.filled_volume).ok()?,
                    price: price_from_double(d.execution_price?, info.spec.digits).ok()?,
                    position: PositionId(id_u64(d.position_id)),
                })
            })
            .collect::<Option<Vec<Fill>>>()?;
        Some(OrderLookup {
            client_id,
            broker_id: BrokerOrderId(id_u64(order.order_id)),
            state,
            qty: info.scale.qty(trade.volume).ok()?,
            fills,
        })
    }

    /// An open position, as last reported.
    pub(crate) fn position(&self, id: i64) -> Option<&Position> {
        self.positions.get(&id)
    }

    /// The last balance seen.
    pub(crate) fn set_balance(&mut self, balance: Money) {
        self.balance = Some(balance);
    }

    /// A position of the wire in Mirror's terms.
    pub(crate) fn map_position(&self, position: &ProtoOAPosition) -> Option<Position> {
        let trade = position.trade_data.as_ref()?;
        let info = self.catalog.by_id(trade.symbol_id)?;
        let digits = info.spec.digits;
        Some(Position {
            id: PositionId(id_u64(position.position_id)),
            symbol: info.spec.symbol,
            side: side_of(trade.trade_side),
            qty: info.scale.qty(trade.volume).ok()?,
            open_price: position.price.and_then(|p| price_from_double(p, digits).ok()).unwrap_or(Price::ZERO),
            stop_loss: position.stop_loss.and_then(|p| price_from_double(p, digits).ok()),
            take_profit: position.take_profit.and_then(|p| price_from_double(p, digits).ok()),
        })
    }

    /// A pending order of the wire in Mirror's terms (`None` for market and closing orders).
    pub(crate) fn map_working(&self, order: &ProtoOAOrder) -> Option<WorkingOrder> {
        if !is_pending_type(order.order_type) || order.closing_order == Some(true) {
            return None;
        }
        let trade = order.trade_data.as_ref()?;
        let info = self.catalog.by_id(trade.symbol_id)?;
        let digits = info.spec.digits;
        let price = |value: Option<f64>| value.and_then(|p| price_from_double(p, digits).ok());
        let kind = if order.order_type == ProtoOAOrderType::Limit as i32 {
            OrderKind::Limit { price: price(order.limit_price)? }
        } else {
            OrderKind::Stop { price: price(order.stop_price)? }
        };
        let time_in_force = match ProtoOATimeInForce::try_from(order.time_in_force.unwrap_or(0)) {
            Ok(ProtoOATimeInForce::GoodTillDate) => {
                TimeInForce::Gtd { expire_unix_ms: order.expiration_timestamp.unwrap_or(0) }
            }
            Ok(ProtoOATimeInForce::ImmediateOrCancel) => TimeInForce::Ioc,
            Ok(ProtoOATimeInForce::FillOrKill) => TimeInForce::Fok,
            _ => TimeInForce::Gtc,
        };
        Some(WorkingOrder {
            client_id: client_id_of(order.client_order_id.as_deref()),
            broker_id: BrokerOrderId(id_u64(order.order_id)),
            symbol: info.spec.symbol,
            side: side_of(trade.trade_side),
            qty: info.scale.qty(trade.volume).ok()?,
            filled_qty: info.scale.qty(order.executed_volume.unwrap_or(0)).ok()?,
            kind,
            stop_loss: price(order.stop_loss),
            take_profit: price(order.take_profit),
            time_in_force,
        })
    }

    /// Takes the first snapshot after connecting: no events (the engine reads positions
    /// itself at boot), but the client ids of resting orders become known.
    pub(crate) fn baseline(&mut self, positions: &[ProtoOAPosition], orders: &[ProtoOAOrder]) {
        self.positions = positions.iter().filter_map(|p| self.map_position(p).map(|m| (p.position_id, m))).collect();
        self.pending.clear();
        for order in orders {
            if let Some(client_id) = client_id_of(order.client_order_id.as_deref()) {
                self.clients.insert(client_id, order.order_id);
            }
            self.filled.volume.entry(order.order_id).or_insert(order.executed_volume.unwrap_or(0));
            if let Some(working) = self.map_working(order) {
                self.pending.insert(order.order_id, working);
            }
        }
        self.baselined = true;
    }

    /// An execution event, with the client id of the request it answers when the order
    /// itself does not carry one (a close by position id).
    pub(crate) fn on_execution(
        &mut self,
        event: &ProtoOAExecutionEvent,
        hint: Option<ClientOrderId>,
        time_unix_ms: i64,
        out: &mut Vec<ConnectorEvent>,
    ) {
        let Ok(kind) = ProtoOAExecutionType::try_from(event.execution_type) else {
            tracing::warn!(execution_type = event.execution_type, "unknown execution type ignored");
            return;
        };
        if kind == ProtoOAExecutionType::DepositWithdraw {
            if let Some(change) = &event.deposit_withdraw {
                let digits = change.money_digits.unwrap_or(self.money_digits);
                if let Some(balance) = money_from_scaled(change.balance, digits) {
                    self.push_balance(balance, out);
                }
            }
            return;
        }
        let Some(order) = &event.order else {
            // Position-only events: an SL/TP amendment answered with the position alone.
            if kind == ProtoOAExecutionType::OrderReplaced
                && let Some(position) = &event.position
            {
                self.apply_position(position, None, out);
            }
            return;
        };
        let client_id = client_id_of(order.client_order_id.as_deref()).or(hint);
        if let Some(client_id) = client_id {
            self.clients.insert(client_id, order.order_id);
        }
        let Some(trade) = &order.trade_data else { return };
        let Some(info) = self.catalog.by_id(trade.symbol_id).copied() else {
            tracing::warn!(symbol_id = trade.symbol_id, "execution on a symbol not in the catalog ignored");
            return;
        };
        let report = |kind: OrderReportKind| {
            ConnectorEvent::Order(OrderReport {
                client_id,
                broker_id: BrokerOrderId(id_u64(order.order_id)),
                symbol: info.spec.symbol,
                side: side_of(trade.trade_side),
                kind,
                time_unix_ms,
            })
        };
        match kind {
            ProtoOAExecutionType::OrderAccepted => {
                if !is_pending_type(order.order_type) {
                    self.unfinished.insert(order.order_id);
                }
                if let Some(working) = self.map_working(order)
                    && !self.pending.contains_key(&order.order_id)
                {
                    self.pending.insert(order.order_id, working);
                    out.push(ConnectorEvent::Working(working));
                }
            }
            ProtoOAExecutionType::OrderFilled | ProtoOAExecutionType::OrderPartialFill => {
                let Some(deal) = &event.deal else { return };
                let (Ok(qty), Some(price)) = (
                    info.scale.qty(deal.filled_volume),
                    deal.execution_price.and_then(|p| price_from_double(p, info.spec.digits).ok()),
                ) else {
                    tracing::warn!(deal = deal.deal_id, "fill with a volume or price Mirror cannot represent");
                    return;
                };
                self.filled.add(order.order_id, deal.filled_volume);
                let fill = Fill { qty, price, position: PositionId(id_u64(deal.position_id)) };
                out.push(report(OrderReportKind::Filled(fill)));
                if order.order_status == ProtoOAOrderStatus::OrderStatusFilled as i32 {
                    self.pending.remove(&order.order_id);
                    self.unfinished.remove(&order.order_id);
                } else if let Some(working) = self.pending.get_mut(&order.order_id) {
                    working.filled_qty =
                        info.scale.qty(order.executed_volume.unwrap_or(0)).unwrap_or(working.filled_qty);
                }
                if let Some(position) = &event.position {
                    self.apply_position(position, Some(deal), out);
                }
            }
            ProtoOAExecutionType::OrderReplaced => {
                if let Some(position) = &event.position
                    && !is_pending_type(order.order_type)
                {
                    self.apply_position(position, None, out);
                } else if let Some(working) = self.map_working(order) {
                    self.pending.insert(order.order_id, working);
                }
            }
            ProtoOAExecutionType::OrderCancelled => {
                self.pending.remove(&order.order_id);
                self.unfinished.remove(&order.order_id);
                out.push(report(OrderReportKind::Cancelled));
            }
            ProtoOAExecutionType::OrderExpired => {
                self.pending.remove(&order.order_id);
                self.unfinished.remove(&order.order_id);
                out.push(report(OrderReportKind::Expired));
            }
            ProtoOAExecutionType::OrderRejected => {
                self.unfinished.remove(&order.order_id);
                out.push(report(OrderReportKind::Rejected(reason_of(event.error_code.as_deref()))));
            }
            ProtoOAExecutionType::OrderCancelRejected => {
                out.push(report(OrderReportKind::CancelRejected(reason_of(event.error_code.as_deref()))));
            }
            ProtoOAExecutionType::Swap
            | ProtoOAExecutionType::DepositWithdraw
            | ProtoOAExecutionType::BonusDepositWithdraw => {}
        }
    }

    /// A position as the wire reports it after a change, compared with the last one known.
    fn apply_position(&mut self, wire: &ProtoOAPosition, deal: Option<&ProtoOADeal>, out: &mut Vec<ConnectorEvent>) {
        let Some(mut now) = self.map_position(wire) else { return };
        let closed = wire.position_status == ProtoOAPositionStatus::PositionStatusClosed as i32 || now.qty.is_zero();
        let detail = deal.and_then(|d| d.close_position_detail.as_ref());
        let realized = detail
            .and_then(|d| {
                let digits = d.money_digits.or(deal.and_then(|x| x.money_digits)).unwrap_or(self.money_digits);
                let balance = money_from_scaled(d.balance, digits);
                if let Some(balance) = balance {
                    self.balance = Some(balance);
                }
                money_from_scaled(d.gross_profit, digits)
            })
            .unwrap_or(Money::ZERO);
        let id = wire.position_id;
        let effect = |position: Position, change: PositionChange, realized_pnl: Money| {
            ConnectorEvent::Position(PositionEffect { position, change, realized_pnl })
        };
        match self.positions.get(&id).copied() {
            None if closed => {
                // A position we never saw open (opened and closed while away, or before the
                // catalog loaded): report the close of what the deal closed.
                let closed_qty = detail
                    .and_then(|d| d.closed_volume)
                    .and_then(|v| self.catalog.by_id(wire.trade_data.as_ref()?.symbol_id)?.scale.qty(v).ok())
                    .unwrap_or(now.qty);
                now.qty = closed_qty;
                out.push(effect(now, PositionChange::Closed { closed: closed_qty }, realized));
            }
            None => {
                self.positions.insert(id, now);
                out.push(effect(now, PositionChange::Opened, Money::ZERO));
            }
            Some(before) if closed => {
                self.positions.remove(&id);
                out.push(effect(before, PositionChange::Closed { closed: before.qty }, realized));
            }
            Some(before) if before.side != now.side => {
                // A netting position turned over: the old side closed, the new one opened.
                self.positions.insert(id, now);
                out.push(effect(before, PositionChange::Closed { closed: before.qty }, realized));
                out.push(effect(now, PositionChange::Opened, Money::ZERO));
            }
            Some(before) => {
                self.positions.insert(id, now);
                if now.qty > before.qty {
                    out.push(effect(now, PositionChange::Increased { added: now.qty - before.qty }, Money::ZERO));
                } else if now.qty < before.qty {
                    let change = PositionChange::Reduced { closed: before.qty - now.qty, qty_before: before.qty };
                    out.push(effect(now, change, realized));
                } else if (before.stop_loss, before.take_profit) != (now.stop_loss, now.take_profit) {
                    out.push(effect(now, PositionChange::ProtectionChanged, Money::ZERO));
                }
            }
        }
        if detail.is_some()
            && let Some(balance) = self.balance
        {
            self.push_balance(balance, out);
        }
    }

    fn push_balance(&mut self, balance: Money, out: &mut Vec<ConnectorEvent>) {
        self.balance = Some(balance);
        // Equity needs live prices of every open position, which the connector does not
        // keep: a balance change reports equity equal to the balance only when nothing is
        // open, and otherwise leaves equity to `account()`.
        if self.positions.is_empty() {
            out.push(ConnectorEvent::Account(AccountSnapshot { balance, equity: balance, margin_used: Money::ZERO }));
        }
    }

    /// A trailing stop moved: the position's stop loss changed.
    pub(crate) fn on_trailing_stop(&mut self, position_id: i64, stop_price: f64, out: &mut Vec<ConnectorEvent>) {
        let Some(position) = self.positions.get_mut(&position_id) else { return };
        let Some(info) = self.catalog.by_name(&position.symbol) else { return };
        let Ok(level) = price_from_double(stop_price, info.spec.digits) else { return };
        if position.stop_loss != Some(level) {
            position.stop_loss = Some(level);
            let effect = PositionEffect {
                position: *position,
                change: PositionChange::ProtectionChanged,
                realized_pnl: Money::ZERO,
            };
            out.push(ConnectorEvent::Position(effect));
        }
    }

    /// A spot event: the last bid and ask of the symbol, once both are known.
    pub(crate) fn on_spot(&mut self, event: &ProtoOASpotEvent, time_unix_ms: i64, out: &mut Vec<ConnectorEvent>) {
        let Some(info) = self.catalog.by_id(event.symbol_id) else { return };
        let symbol = info.spec.symbol;
        let entry = self.quotes.entry(event.symbol_id).or_default();
        // Later events may carry only the side that changed.
        if let Some(bid) = event.bid.and_then(price_from_spot) {
            entry.0 = Some(bid);
        }
        if let Some(ask) = event.ask.and_then(price_from_spot) {
            entry.1 = Some(ask);
        }
        if let (Some(bid), Some(ask)) = *entry {
            let time = event.timestamp.unwrap_or(time_unix_ms);
            out.push(ConnectorEvent::Quote(Quote { symbol, bid, ask, time_unix_ms: time }));
        }
    }

    /// The snapshot after a reconnect, with the order history of the gap: reports what
    /// changed while the connection was down, and settles orders whose outcome was unknown.
    pub(crate) fn reconcile(
        &mut self,
        positions: &[ProtoOAPosition],
        orders: &[ProtoOAOrder],
        history: &[ProtoOAOrder],
        in_doubt: &[ClientOrderId],
        time_unix_ms: i64,
        out: &mut Vec<ConnectorEvent>,
    ) -> Vec<(ClientOrderId, Resolution)> {
        let mut resolutions = Vec::new();
        // 1. Orders that moved during the gap: fills not reported yet, cancels, rejections.
        for order in history {
            let client_id = client_id_of(order.client_order_id.as_deref());
            let Some(trade) = &order.trade_data else { continue };
            let Some(info) = self.catalog.by_id(trade.symbol_id).copied() else { continue };
            let report = |kind| {
                ConnectorEvent::Order(OrderReport {
                    client_id,
                    broker_id: BrokerOrderId(id_u64(order.order_id)),
                    symbol: info.spec.symbol,
                    side: side_of(trade.trade_side),
                    kind,
                    time_unix_ms: order.utc_last_update_timestamp.unwrap_or(time_unix_ms),
                })
            };
            let status = order.order_status;
            if status != ProtoOAOrderStatus::OrderStatusAccepted as i32 {
                self.unfinished.remove(&order.order_id);
            }
            if status == ProtoOAOrderStatus::OrderStatusRejected as i32 {
                if let Some(client_id) = client_id.filter(|id| in_doubt.contains(id)) {
                    let reason = RejectReason::new(RejectCode::Other, "rejected while the connection was down");
                    out.push(report(OrderReportKind::Rejected(reason.clone())));
                    resolutions.push((client_id, Resolution::Rejected(reason)));
                }
                continue;
            }
            if let Some(client_id) = client_id {
                self.clients.insert(client_id, order.order_id);
                if in_doubt.contains(&client_id) {
                    resolutions.push((client_id, Resolution::Found(order.order_id)));
                }
            }
            let executed = order.executed_volume.unwrap_or(0);
            let unseen = executed.saturating_sub(self.filled.get(order.order_id));
            if unseen > 0
                && let (Ok(qty), Some(price)) = (
                    info.scale.qty(unseen),
                    order.execution_price.and_then(|p| price_from_double(p, info.spec.digits).ok()),
                )
            {
                self.filled.add(order.order_id, unseen);
                let position = PositionId(id_u64(order.position_id.unwrap_or(0)));
                out.push(report(OrderReportKind::Filled(Fill { qty, price, position })));
            }
            if self.pending.contains_key(&order.order_id) {
                if status == ProtoOAOrderStatus::OrderStatusCancelled as i32 {
                    self.pending.remove(&order.order_id);
                    out.push(report(OrderReportKind::Cancelled));
                } else if status == ProtoOAOrderStatus::OrderStatusExpired as i32 {
                    self.pending.remove(&order.order_id);
                    out.push(report(OrderReportKind::Expired));
                } else if status == ProtoOAOrderStatus::OrderStatusFilled as i32 {
                    self.pending.remove(&order.order_id);
                }
            }
        }
        for client_id in in_doubt {
            if !resolutions.iter().any(|(id, _)| id == client_id) {
                resolutions.push((*client_id, Resolution::NotFound));
            }
        }
        // 2. Positions: opened, changed or gone while away.
        let snapshot: BTreeMap<i64, Position> =
            positions.iter().filter_map(|p| self.map_position(p).map(|m| (p.position_id, m))).collect();
        let effect = |position: Position, change: PositionChange| {
            ConnectorEvent::Position(PositionEffect { position, change, realized_pnl: Money::ZERO })
        };
        for (id, before) in &self.positions {
            if !snapshot.contains_key(id) {
                out.push(effect(*before, PositionChange::Closed { closed: before.qty }));
            }
        }
        for (id, now) in &snapshot {
            match self.positions.get(id) {
                None => out.push(effect(*now, PositionChange::Opened)),
                Some(before) if before.side != now.side => {
                    out.push(effect(*before, PositionChange::Closed { closed: before.qty }));
                    out.push(effect(*now, PositionChange::Opened));
                }
                Some(before) if now.qty > before.qty => {
                    out.push(effect(*now, PositionChange::Increased { added: now.qty - before.qty }));
                }
                Some(before) if now.qty < before.qty => {
                    let change = PositionChange::Reduced { closed: before.qty - now.qty, qty_before: before.qty };
                    out.push(effect(*now, change));
                }
                Some(before) if (before.stop_loss, before.take_profit) != (now.stop_loss, now.take_profit) => {
                    out.push(effect(*now, PositionChange::ProtectionChanged));
                }
                Some(_) => {}
            }
        }
        self.positions = snapshot;
        // 3. Working orders: new ones are reported; ones gone without a trace in the history
        //    are reported cancelled (the broker no longer has them working).
        let mut working = BTreeMap::new();
        for order in orders {
            if let Some(client_id) = client_id_of(order.client_order_id.as_deref()) {
                self.clients.insert(client_id, order.order_id);
            }
            if let Some(listed) = self.map_working(order) {
                if !self.pending.contains_key(&order.order_id) {
                    out.push(ConnectorEvent::Working(listed));
                }
                working.insert(order.order_id, listed);
            }
        }
        for (id, gone) in &self.pending {
            if !working.contains_key(id) {
                out.push(ConnectorEvent::Order(OrderReport {
                    client_id: gone.client_id,
                    broker_id: gone.broker_id,
                    symbol: gone.symbol,
                    side: gone.side,
                    kind: OrderReportKind::Cancelled,
                    time_unix_ms,
                }));
            }
        }
        self.pending = working;
        resolutions
    }
}

/// A refusal reason from a cTrader error code.
pub(crate) fn reason_of(code: Option<&str>) -> RejectReason {
    let code = code.unwrap_or("UNKNOWN_ERROR");
    RejectReason::new(reject_code(code), code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ProtoOAClosePositionDetail, ProtoOASymbol, ProtoOATradeData};
    use crate::units::instrument_spec;
    use mirror_model::Qty;

    fn tracker() -> Tracker {
        let symbol = ProtoOASymbol {
            symbol_id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: Some(10_000_000),
            step_volume: Some(100_000),
            min_volume: Some(100_000),
            max_volume: Some(10_000_000_000),
            ..ProtoOASymbol::default()
        };
        let (spec, scale) = instrument_spec("EURUSD", &symbol, Some("EUR"), Some("USD")).unwrap();
        let mut tracker = Tracker::new();
        tracker.catalog.insert(SymbolInfo { id: 1, spec, scale });
        tracker
    }

    fn trade(volume: i64, side: ProtoOATradeSide) -> ProtoOATradeData {
        ProtoOATradeData { symbol_id: 1, volume, trade_side: side as i32, ..ProtoOATradeData::default() }
    }

    fn filled(volume_after: i64, filled: i64, status: ProtoOAPositionStatus, close: bool) -> ProtoOAExecutionEvent {
        ProtoOAExecutionEvent {
            ctid_trader_account_id: 9,
            execution_type: ProtoOAExecutionType::OrderFilled as i32,
            order: Some(ProtoOAOrder {
                order_id: 77,
                trade_data: Some(trade(filled, ProtoOATradeSide::Buy)),
                order_type: ProtoOAOrderType::Market as i32,
                order_status: ProtoOAOrderStatus::OrderStatusFilled as i32,
                client_order_id: Some("m1.2.0".into()),
                ..ProtoOAOrder::default()
            }),
            position: Some(ProtoOAPosition {
                position_id: 5,
                trade_data: Some(trade(volume_after, ProtoOATradeSide::Buy)),
                position_status: status as i32,
                price: Some(1.085),
                ..ProtoOAPosition::default()
            }),
            deal: Some(ProtoOADeal {
                deal_id: 1,
                order_id: 77,
                position_id: 5,
                volume: filled,
                filled_volume: filled,
                symbol_id: 1,
                execution_price: Some(1.08508),
                close_position_detail: close.then(|| ProtoOAClosePositionDetail {
                    gross_profit: -1_234,
                    balance: 1_000_000,
                    money_digits: Some(2),
                    ..ProtoOAClosePositionDetail::default()
                }),
                ..ProtoOADeal::default()
            }),
            ..ProtoOAExecutionEvent::default()
        }
    }

    #[test]
    fn a_fill_reports_the_execution_before_the_position() {
        let mut tracker = tracker();
        let mut out = Vec::new();
        tracker.on_execution(
            &filled(100_000, 100_000, ProtoOAPositionStatus::PositionStatusOpen, false),
            None,
            0,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        let ConnectorEvent::Order(report) = &out[0] else { panic!("{out:?}") };
        assert_eq!(report.client_id, Some("m1.2.0".parse().unwrap()));
        assert_eq!(
            report.kind,
            OrderReportKind::Filled(Fill {
                qty: Qty::parse("0.01").unwrap(),
                price: Price::parse("1.08508").unwrap(),
                position: PositionId(5)
            })
        );
        let ConnectorEvent::Position(effect) = &out[1] else { panic!("{out:?}") };
        assert_eq!(effect.change, PositionChange::Opened);
        assert_eq!(tracker.order_of(&"m1.2.0".parse().unwrap()), Some(77));
    }

    #[test]
    fn a_closing_fill_reports_the_realised_profit_and_the_balance() {
        let mut tracker = tracker();
        let mut out = Vec::new();
        tracker.on_execution(
            &filled(200_000, 200_000, ProtoOAPositionStatus::PositionStatusOpen, false),
            None,
            0,
            &mut out,
        );
        out.clear();
        tracker.on_execution(
            &filled(100_000, 100_000, ProtoOAPositionStatus::PositionStatusOpen, true),
            None,
            0,
            &mut out,
        );
        let ConnectorEvent::Position(effect) = &out[1] else { panic!("{out:?}") };
        assert_eq!(
            effect.change,
            PositionChange::Reduced { closed: Qty::parse("0.01").unwrap(), qty_before: Qty::parse("0.02").unwrap() }
        );
        assert_eq!(effect.realized_pnl, Money::parse("-12.34").unwrap());
        out.clear();
        tracker.on_execution(
            &filled(100_000, 100_000, ProtoOAPositionStatus::PositionStatusClosed, true),
            None,
            0,
            &mut out,
        );
        assert!(matches!(&out[1], ConnectorEvent::Position(e) if matches!(e.change, PositionChange::Closed { .. })));
        assert!(matches!(&out[2], ConnectorEvent::Account(a) if a.balance == Money::parse("10000").unwrap()));
    }

    #[test]
    fn a_reconnect_reports_the_fill_it_missed_and_settles_the_order() {
        let mut tracker = tracker();
        tracker.baseline(&[], &[]);
        let client_id: ClientOrderId = "m1.2.0".parse().unwrap();
        let lost: ClientOrderId = "m1.2.1".parse().unwrap();
        let history = vec![ProtoOAOrder {
            order_id: 77,
            trade_data: Some(trade(100_000, ProtoOATradeSide::Buy)),
            order_type: ProtoOAOrderType::Market as i32,
            order_status: ProtoOAOrderStatus::OrderStatusFilled as i32,
            executed_volume: Some(100_000),
            execution_price: Some(1.08508),
            position_id: Some(5),
            client_order_id: Some(client_id.to_string()),
            ..ProtoOAOrder::default()
        }];
        let positions = vec![ProtoOAPosition {
            position_id: 5,
            trade_data: Some(trade(100_000, ProtoOATradeSide::Buy)),
            position_status: ProtoOAPositionStatus::PositionStatusOpen as i32,
            price: Some(1.08508),
            ..ProtoOAPosition::default()
        }];
        let mut out = Vec::new();
        let resolutions = tracker.reconcile(&positions, &[], &history, &[client_id, lost], 0, &mut out);
        assert_eq!(resolutions, vec![(client_id, Resolution::Found(77)), (lost, Resolution::NotFound)]);
        assert!(matches!(&out[0], ConnectorEvent::Order(r) if r.client_id == Some(client_id)));
        assert!(matches!(&out[1], ConnectorEvent::Position(e) if e.change == PositionChange::Opened));
        // The same history again reports nothing new.
        out.clear();
        tracker.reconcile(&positions, &[], &history, &[], 0, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
