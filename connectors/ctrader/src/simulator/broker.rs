//! The simulated cTrader server's state and request handling: no sockets here. A request
//! comes in with the connection it came on; answers and events go out as encoded frames to
//! the connections' outboxes, all under one lock, so every connection sees one account's
//! events in the order they happened.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use mirror_model::{
    AccountMode, InstrumentSpec, Money, OrderIntent, OrderKind, Position, PositionBook, PositionChange, PositionEffect,
    PositionId, Price, Rounding, Side,
};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::{ManualOrder, SimAccount, SimOrder, SimSymbol, SimulatorConfig, SimulatorStats};
use crate::codec::encode_message;
use crate::proto::{
    OpenApiMessage, ProtoErrorRes, ProtoMessage, ProtoOAAccountAuthReq, ProtoOAAccountAuthRes, ProtoOAAccountLogoutReq,
    ProtoOAAccountLogoutRes, ProtoOAAccountType, ProtoOAAmendOrderReq, ProtoOAAmendPositionSLTPReq,
    ProtoOAApplicationAuthReq, ProtoOAApplicationAuthRes, ProtoOAAsset, ProtoOAAssetListReq, ProtoOAAssetListRes,
    ProtoOACancelOrderReq, ProtoOAClosePositionDetail, ProtoOAClosePositionReq, ProtoOACtidTraderAccount, ProtoOADeal,
    ProtoOADealStatus, ProtoOAErrorRes, ProtoOAExecutionEvent, ProtoOAExecutionType,
    ProtoOAGetAccountListByAccessTokenReq, ProtoOAGetAccountListByAccessTokenRes, ProtoOAGetPositionUnrealizedPnLReq,
    ProtoOAGetPositionUnrealizedPnLRes, ProtoOALightSymbol, ProtoOANewOrderReq, ProtoOAOrder, ProtoOAOrderDetailsReq,
    ProtoOAOrderDetailsRes, ProtoOAOrderErrorEvent, ProtoOAOrderListReq, ProtoOAOrderListRes, ProtoOAOrderStatus,
    ProtoOAOrderType, ProtoOAPosition, ProtoOAPositionStatus, ProtoOAPositionUnrealizedPnL, ProtoOAReconcileReq,
    ProtoOAReconcileRes, ProtoOARefreshTokenReq, ProtoOARefreshTokenRes, ProtoOASpotEvent, ProtoOASubscribeSpotsReq,
    ProtoOASubscribeSpotsRes, ProtoOASymbol, ProtoOASymbolByIdReq, ProtoOASymbolByIdRes, ProtoOASymbolsListReq,
    ProtoOASymbolsListRes, ProtoOATimeInForce, ProtoOATradeData, ProtoOATradeSide, ProtoOATrader, ProtoOATraderReq,
    ProtoOATraderRes, ProtoOAUnsubscribeSpotsReq, ProtoOAUnsubscribeSpotsRes, ProtoOAVersionReq, ProtoOAVersionRes,
    is_historical,
};
use crate::session::unix_ms;
use crate::units::{
    VolumeScale, distance_from_relative, double_from_price, instrument_spec, relative_from_distance, scaled_from_money,
    spot_from_price,
};

/// The simulated server books money in cents.
const MONEY_DIGITS: u32 = 2;
/// Orders remembered per account for history and reconciliation (oldest forgotten first).
const ORDERS_KEPT: usize = 100_000;
/// Frames waiting for one connection's writer. A client that lets this fill up is cut, as
/// a real server cuts a consumer that stops reading.
pub(crate) const OUTBOX_CAPACITY: usize = 8_192;

/// One client connection, as the broker sees it.
pub(crate) struct Connection {
    outbox: mpsc::Sender<Vec<u8>>,
    pub(crate) close: Arc<Notify>,
    app_authed: bool,
    accounts: BTreeSet<i64>,
    spots: BTreeSet<(i64, i64)>,
    general: VecDeque<Instant>,
    historical: VecDeque<Instant>,
    pub(crate) cut: bool,
}

impl Connection {
    pub(crate) fn new(outbox: mpsc::Sender<Vec<u8>>, close: Arc<Notify>) -> Self {
        Self {
            outbox,
            close,
            app_authed: false,
            accounts: BTreeSet::new(),
            spots: BTreeSet::new(),
            general: VecDeque::new(),
            historical: VecDeque::new(),
            cut: false,
        }
    }
}

struct Symbol {
    config: SimSymbol,
    spec: InstrumentSpec,
    scale: VolumeScale,
    bid: Price,
    ask: Price,
}

#[derive(Clone, Debug)]
struct OrderRecord {
    order_id: i64,
    symbol_id: i64,
    side: Side,
    volume: i64,
    order_type: ProtoOAOrderType,
    status: ProtoOAOrderStatus,
    limit_price: Option<Price>,
    stop_price: Option<Price>,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
    relative_stop_loss: Option<i64>,
    relative_take_profit: Option<i64>,
    client_order_id: Option<String>,
    label: Option<String>,
    comment: Option<String>,
    position_id: Option<i64>,
    closing: bool,
    executed_volume: i64,
    execution_price: Option<Price>,
    time_in_force: Option<i32>,
    expiration: Option<i64>,
    created_ms: i64,
    updated_ms: i64,
    /// Its executions (one per position a fill touched).
    deals: Vec<ProtoOADeal>,
}

#[derive(Clone, Debug, Default)]
struct PositionMeta {
    label: Option<String>,
    comment: Option<String>,
    opened_ms: i64,
    updated_ms: i64,
}

struct Account {
    config: SimAccount,
    book: PositionBook,
    meta: BTreeMap<i64, PositionMeta>,
    orders: BTreeMap<i64, OrderRecord>,
    pending: BTreeSet<i64>,
    balance: Money,
}

struct Grant {
    accounts: Vec<i64>,
    expires: Instant,
}

/// Where an answer goes: the connection and the request's correlation id.
#[derive(Clone)]
struct Reply {
    connection: u64,
    msg_id: Option<String>,
}

pub(crate) struct Broker {
    config: SimulatorConfig,
    symbols: BTreeMap<i64, Symbol>,
    assets: Vec<(i64, String)>,
    accounts: BTreeMap<i64, Account>,
    grants: HashMap<String, Grant>,
    refresh: HashMap<String, String>,
    pub(crate) connections: BTreeMap<u64, Connection>,
    next_id: i64,
    pub(crate) stats: SimulatorStats,
    pub(crate) cut_after: Option<u64>,
}

fn side_from(value: i32) -> Side {
    if value == ProtoOATradeSide::Sell as i32 { Side::Sell } else { Side::Buy }
}

fn wire_side(side: Side) -> i32 {
    match side {
        Side::Buy => ProtoOATradeSide::Buy as i32,
        Side::Sell => ProtoOATradeSide::Sell as i32,
    }
}

/// A price double from a client, exact on the symbol's tick grid or refused.
fn price_on_grid(value: f64, spec: &InstrumentSpec) -> Option<Price> {
    let price = Price::from_f64(value).ok()?;
    (price.is_positive() && spec.price_is_on_tick(price)).then_some(price)
}

/// A trading refusal: its code, and words.
struct Refusal {
    code: &'static str,
    description: String,
    /// Sent as `ProtoOAErrorRes` (a malformed request) rather than `ProtoOAOrderErrorEvent`.
    request_error: bool,
}

fn refusal(code: &'static str, description: impl Into<String>) -> Refusal {
    Refusal { code, description: description.into(), request_error: false }
}

impl Broker {
    pub(crate) fn new(config: SimulatorConfig) -> Result<Self, String> {
        let mut names: Vec<String> = Vec::new();
        let asset_id = |name: &str, names: &mut Vec<String>| -> i64 {
            if let Some(index) = names.iter().position(|n| n == name) {
                return i64::try_from(index).unwrap_or(0) + 1;
            }
            names.push(name.to_owned());
            i64::try_from(names.len()).unwrap_or(0)
        };
        let mut symbols = BTreeMap::new();
        for symbol in &config.symbols {
            asset_id(&symbol.base_asset, &mut names);
            asset_id(&symbol.quote_asset, &mut names);
            let wire = Self::wire_symbol(symbol);
            let (spec, scale) =
                instrument_spec(&symbol.name, &wire, Some(&symbol.base_asset), Some(&symbol.quote_asset))
                    .map_err(|error| error.to_string())?;
            if !spec.price_is_on_tick(symbol.bid) || !spec.price_is_on_tick(symbol.ask) || symbol.ask < symbol.bid {
                return Err(format!("{}: bid and ask must be on the tick grid, ask >= bid", symbol.name));
            }
            symbols.insert(
                symbol.symbol_id,
                Symbol { config: symbol.clone(), spec, scale, bid: symbol.bid, ask: symbol.ask },
            );
        }
        let mut accounts = BTreeMap::new();
        let mut grants: HashMap<String, Grant> = HashMap::new();
        let mut refresh = HashMap::new();
        let expires = Instant::now() + config.token_lifetime;
        for account in &config.accounts {
            asset_id(&account.deposit_asset, &mut names);
            let mode = if account.hedged { AccountMode::Hedging } else { AccountMode::Netting };
            accounts.insert(
                account.ctid_trader_account_id,
                Account {
                    config: account.clone(),
                    book: PositionBook::new(mode),
                    meta: BTreeMap::new(),
                    orders: BTreeMap::new(),
                    pending: BTreeSet::new(),
                    balance: account.balance,
                },
            );
            grants
                .entry(account.access_token.clone())
                .or_insert_with(|| Grant { accounts: Vec::new(), expires })
                .accounts
                .push(account.ctid_trader_account_id);
            refresh.insert(account.refresh_token.clone(), account.access_token.clone());
        }
        let assets = names.into_iter().enumerate().map(|(i, n)| (i64::try_from(i).unwrap_or(0) + 1, n)).collect();
        Ok(Self {
            config,
            symbols,
            assets,
            accounts,
            grants,
            refresh,
            connections: BTreeMap::new(),
            next_id: 100_000,
            stats: SimulatorStats::default(),
            cut_after: None,
        })
    }

    fn wire_symbol(symbol: &SimSymbol) -> ProtoOASymbol {
        ProtoOASymbol {
            symbol_id: symbol.symbol_id,
            digits: symbol.digits,
            pip_position: symbol.pip_position,
            enable_short_selling: Some(true),
            lot_size: Some(symbol.lot_size),
            min_volume: Some(symbol.min_volume),
            max_volume: Some(symbol.max_volume),
            step_volume: Some(symbol.step_volume),
            trading_mode: Some(0),
            ..ProtoOASymbol::default()
        }
    }

    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    // ----- outboxes --------------------------------------------------------------------

    fn push_frame(&mut self, connection: u64, frame: Vec<u8>) {
        let Some(conn) = self.connections.get_mut(&connection) else { return };
        if conn.cut {
            return;
        }
        if conn.outbox.try_send(frame).is_err() {
            conn.cut = true;
            conn.close.notify_one();
            self.stats.slow_consumers_cut += 1;
        }
    }

    fn send<M: OpenApiMessage>(&mut self, reply: &Reply, message: &M) {
        if let Ok(frame) = encode_message(message, reply.msg_id.clone()) {
            self.push_frame(reply.connection, frame);
        }
    }

    /// An event for `account` to every connection it is authorised on; the connection that
    /// asked gets it with its correlation id.
    fn broadcast<M: OpenApiMessage>(&mut self, account: i64, message: &M, origin: Option<&Reply>) {
        let targets: Vec<u64> =
            self.connections.iter().filter(|(_, c)| c.accounts.contains(&account)).map(|(id, _)| *id).collect();
        for connection in targets {
            let msg_id = origin.filter(|r| r.connection == connection).and_then(|r| r.msg_id.clone());
            if let Ok(frame) = encode_message(message, msg_id) {
                self.push_frame(connection, frame);
            }
        }
    }

    fn error(&mut self, reply: &Reply, account: Option<i64>, code: &str, description: impl Into<String>) {
        let error = ProtoOAErrorRes {
            payload_type: None,
            ctid_trader_account_id: account,
            error_code: code.to_owned(),
            description: Some(description.into()),
            maintenance_end_timestamp: None,
        };
        self.send(reply, &error);
    }

    fn refuse_order(&mut self, reply: &Reply, account: i64, refusal: Refusal) {
        if refusal.request_error {
            self.error(reply, Some(account), refusal.code, refusal.description);
            return;
        }
        let event = ProtoOAOrderErrorEvent {
            payload_type: None,
            ctid_trader_account_id: account,
            error_code: refusal.code.to_owned(),
            order_id: None,
            position_id: None,
            description: Some(refusal.description),
        };
        self.send(reply, &event);
    }

    // ----- requests --------------------------------------------------------------------

    /// Counts a request against the connection's windows; `false` when it is over a limit.
    pub(crate) fn admit(&mut self, connection: u64, payload_type: u32, now: Instant) -> bool {
        let limits = self.config.limits;
        let Some(conn) = self.connections.get_mut(&connection) else { return false };
        let prune = |window: &mut VecDeque<Instant>| {
            while window.front().is_some_and(|t| now.duration_since(*t) >= limits.window) {
                window.pop_front();
            }
        };
        prune(&mut conn.general);
        prune(&mut conn.historical);
        conn.general.push_back(now);
        self.stats.requests += 1;
        self.stats.max_requests_per_window = self.stats.max_requests_per_window.max(conn.general.len());
        let mut over = conn.general.len() > limits.requests;
        if is_historical(payload_type) {
            conn.historical.push_back(now);
            self.stats.max_historical_per_window = self.stats.max_historical_per_window.max(conn.historical.len());
            over |= conn.historical.len() > limits.historical;
        }
        if over {
            self.stats.rate_limited += 1;
        }
        !over
    }

    /// Handles one request from `connection`.
    pub(crate) fn handle(&mut self, connection: u64, message: &ProtoMessage, now: Instant) {
        let reply = Reply { connection, msg_id: message.client_msg_id.clone() };
        let kind = message.payload_type;
        if kind == crate::proto::ProtoHeartbeatEvent::PAYLOAD_TYPE {
            return;
        }
        if !self.admit(connection, kind, now) {
            let account = self.account_of(message);
            self.error(&reply, account, "REQUEST_FREQUENCY_EXCEEDED", "more requests than the connection's limit");
            return;
        }
        macro_rules! decode {
            ($t:ty) => {
                match message.unpack::<$t>() {
                    Ok(inner) => inner,
                    Err(error) => {
                        self.error(&reply, None, "INVALID_REQUEST", error.to_string());
                        return;
                    }
                }
            };
        }
        if kind == ProtoOAVersionReq::PAYLOAD_TYPE {
            let _ = decode!(ProtoOAVersionReq);
            self.send(&reply, &ProtoOAVersionRes { payload_type: None, version: "mirror-ctrader-sim 1".into() });
            return;
        }
        if kind == ProtoOAApplicationAuthReq::PAYLOAD_TYPE {
            let auth = decode!(ProtoOAApplicationAuthReq);
            self.app_auth(&reply, &auth);
            return;
        }
        if !self.connections.get(&connection).is_some_and(|c| c.app_authed) {
            self.error(&reply, None, "CH_CLIENT_NOT_AUTHENTICATED", "authenticate the application first");
            return;
        }
        match kind {
            t if t == ProtoOAGetAccountListByAccessTokenReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAGetAccountListByAccessTokenReq);
                self.account_list(&reply, &request.access_token, now);
            }
            t if t == ProtoOARefreshTokenReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOARefreshTokenReq);
                self.refresh_token(&reply, &request.refresh_token, now);
            }
            t if t == ProtoOAAccountAuthReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAAccountAuthReq);
                self.account_auth(&reply, &request, now);
            }
            _ => self.account_request(&reply, message),
        }
        self.after_request(connection);
    }

    fn account_of(&self, message: &ProtoMessage) -> Option<i64> {
        // Every account request carries the account in field 2; a trader request is the
        // smallest message that reads it.
        message
            .payload
            .as_deref()
            .and_then(|p| <ProtoOATraderReq as prost::Message>::decode(p).ok())
            .map(|r| r.ctid_trader_account_id)
            .filter(|id| *id != 0)
    }

    fn after_request(&mut self, connection: u64) {
        if let Some(left) = self.cut_after.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.cut_after = None;
                if let Some(conn) = self.connections.get_mut(&connection) {
                    // Gone before a single byte of its answers leaves: what it processed is
                    // done, what it did not read is lost.
                    conn.cut = true;
                    conn.close.notify_one();
                    self.stats.cuts += 1;
                }
            }
        }
    }

    fn app_auth(&mut self, reply: &Reply, auth: &ProtoOAApplicationAuthReq) {
        if auth.client_id != self.config.client_id || auth.client_secret != self.config.client_secret {
            self.error(reply, None, "CH_CLIENT_AUTH_FAILURE", "unknown client id or wrong secret");
            return;
        }
        let Some(conn) = self.connections.get_mut(&reply.connection) else { return };
        if conn.app_authed {
            self.error(reply, None, "CH_CLIENT_ALREADY_AUTHENTICATED", "the application is authenticated already");
            return;
        }
        conn.app_authed = true;
        self.send(reply, &ProtoOAApplicationAuthRes { payload_type: None });
    }

    fn grant(&self, token: &str, now: Instant) -> Result<&Grant, (&'static str, &'static str)> {
        let grant = self.grants.get(token).ok_or(("CH_ACCESS_TOKEN_INVALID", "unknown access token"))?;
        if grant.expires <= now {
            return Err(("OA_AUTH_TOKEN_EXPIRED", "the access token expired"));
        }
        Ok(grant)
    }

    fn account_list(&mut self, reply: &Reply, token: &str, now: Instant) {
        let accounts = match self.grant(token, now) {
            Ok(grant) => grant.accounts.clone(),
            Err((code, words)) => return self.error(reply, None, code, words),
        };
        let listed = accounts
            .iter()
            .filter_map(|id| self.accounts.get(id))
            .map(|a| ProtoOACtidTraderAccount {
                ctid_trader_account_id: u64::try_from(a.config.ctid_trader_account_id).unwrap_or(0),
                is_live: Some(a.config.is_live),
                trader_login: Some(a.config.trader_login),
                last_closing_deal_timestamp: None,
                last_balance_update_timestamp: None,
            })
            .collect();
        let answer = ProtoOAGetAccountListByAccessTokenRes {
            payload_type: None,
            access_token: token.to_owned(),
            permission_scope: Some(1),
            ctid_trader_account: listed,
        };
        self.send(reply, &answer);
    }

    fn refresh_token(&mut self, reply: &Reply, refresh_token: &str, now: Instant) {
        let Some(old) = self.refresh.remove(refresh_token) else {
            return self.error(reply, None, "CH_ACCESS_TOKEN_INVALID", "unknown refresh token");
        };
        let accounts = self.grants.remove(&old).map(|g| g.accounts).unwrap_or_default();
        let serial = self.next_id();
        let access_token = format!("sim-access-{serial}");
        let new_refresh = format!("sim-refresh-{serial}");
        self.grants.insert(access_token.clone(), Grant { accounts, expires: now + self.config.token_lifetime });
        self.refresh.insert(new_refresh.clone(), access_token.clone());
        let answer = ProtoOARefreshTokenRes {
            payload_type: None,
            access_token,
            token_type: "bearer".into(),
            expires_in: i64::try_from(self.config.token_lifetime.as_secs()).unwrap_or(i64::MAX),
            refresh_token: new_refresh,
        };
        self.send(reply, &answer);
    }

    /// Makes an access token expire now (tests of the refresh path).
    pub(crate) fn expire_token(&mut self, token: &str) {
        if let Some(grant) = self.grants.get_mut(token) {
            grant.expires = Instant::now();
        }
    }

    fn account_auth(&mut self, reply: &Reply, request: &ProtoOAAccountAuthReq, now: Instant) {
        let account = request.ctid_trader_account_id;
        let allowed = match self.grant(&request.access_token, now) {
            Ok(grant) => grant.accounts.contains(&account),
            Err((code, words)) => return self.error(reply, Some(account), code, words),
        };
        if !allowed || !self.accounts.contains_key(&account) {
            return self.error(
                reply,
                Some(account),
                "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
                "the token grants no such account",
            );
        }
        if let Some(conn) = self.connections.get_mut(&reply.connection) {
            conn.accounts.insert(account);
        }
        self.send(reply, &ProtoOAAccountAuthRes { payload_type: None, ctid_trader_account_id: account });
    }

    fn account_request(&mut self, reply: &Reply, message: &ProtoMessage) {
        let Some(account) = self.account_of(message) else {
            return self.error(reply, None, "INVALID_REQUEST", "no ctidTraderAccountId");
        };
        if !self.connections.get(&reply.connection).is_some_and(|c| c.accounts.contains(&account)) {
            return self.error(reply, Some(account), "ACCOUNT_NOT_AUTHORIZED", "authorise the account first");
        }
        macro_rules! decode {
            ($t:ty) => {
                match message.unpack::<$t>() {
                    Ok(inner) => inner,
                    Err(error) => return self.error(reply, Some(account), "INVALID_REQUEST", error.to_string()),
                }
            };
        }
        match message.payload_type {
            t if t == ProtoOATraderReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOATraderReq);
                let trader = self.trader(account);
                self.send(reply, &ProtoOATraderRes { payload_type: None, ctid_trader_account_id: account, trader });
            }
            t if t == ProtoOAAssetListReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOAAssetListReq);
                let asset = self
                    .assets
                    .iter()
                    .map(|(id, name)| ProtoOAAsset {
                        asset_id: *id,
                        name: name.clone(),
                        display_name: Some(name.clone()),
                        digits: Some(2),
                    })
                    .collect();
                self.send(reply, &ProtoOAAssetListRes { payload_type: None, ctid_trader_account_id: account, asset });
            }
            t if t == ProtoOASymbolsListReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOASymbolsListReq);
                let symbol = self
                    .symbols
                    .values()
                    .map(|s| ProtoOALightSymbol {
                        symbol_id: s.config.symbol_id,
                        symbol_name: Some(s.config.name.clone()),
                        enabled: Some(true),
                        base_asset_id: self.asset_id(&s.config.base_asset),
                        quote_asset_id: self.asset_id(&s.config.quote_asset),
                        symbol_category_id: Some(1),
                        description: Some(s.config.name.clone()),
                    })
                    .collect();
                let answer = ProtoOASymbolsListRes {
                    payload_type: None,
                    ctid_trader_account_id: account,
                    symbol,
                    archived_symbol: Vec::new(),
                };
                self.send(reply, &answer);
            }
            t if t == ProtoOASymbolByIdReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOASymbolByIdReq);
                let symbol = request
                    .symbol_id
                    .iter()
                    .filter_map(|id| self.symbols.get(id))
                    .map(|s| Self::wire_symbol(&s.config))
                    .collect();
                let answer = ProtoOASymbolByIdRes {
                    payload_type: None,
                    ctid_trader_account_id: account,
                    symbol,
                    archived_symbol: Vec::new(),
                };
                self.send(reply, &answer);
            }
            t if t == ProtoOAReconcileReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOAReconcileReq);
                let answer = self.reconcile(account);
                self.send(reply, &answer);
            }
            t if t == ProtoOAOrderListReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAOrderListReq);
                let order = self.accounts[&account]
                    .orders
                    .values()
                    .filter(|o| o.updated_ms >= request.from_timestamp && o.updated_ms <= request.to_timestamp)
                    .map(|o| self.wire_order(o))
                    .collect();
                self.send(
                    reply,
                    &ProtoOAOrderListRes {
                        payload_type: None,
                        ctid_trader_account_id: account,
                        order,
                        has_more: false,
                    },
                );
            }
            t if t == ProtoOAOrderDetailsReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAOrderDetailsReq);
                match self.accounts[&account].orders.get(&request.order_id).cloned() {
                    Some(order) => {
                        let answer = ProtoOAOrderDetailsRes {
                            payload_type: None,
                            ctid_trader_account_id: account,
                            order: Some(self.wire_order(&order)),
                            deal: order.deals.clone(),
                        };
                        self.send(reply, &answer);
                    }
                    None => self.error(reply, Some(account), "ORDER_NOT_FOUND", "no such order"),
                }
            }
            t if t == ProtoOASubscribeSpotsReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOASubscribeSpotsReq);
                self.subscribe(reply, account, &request.symbol_id);
            }
            t if t == ProtoOAUnsubscribeSpotsReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAUnsubscribeSpotsReq);
                if let Some(conn) = self.connections.get_mut(&reply.connection) {
                    for id in &request.symbol_id {
                        conn.spots.remove(&(account, *id));
                    }
                }
                self.send(reply, &ProtoOAUnsubscribeSpotsRes { payload_type: None, ctid_trader_account_id: account });
            }
            t if t == ProtoOAGetPositionUnrealizedPnLReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOAGetPositionUnrealizedPnLReq);
                let answer = self.unrealized(account);
                self.send(reply, &answer);
            }
            t if t == ProtoOAAccountLogoutReq::PAYLOAD_TYPE => {
                let _ = decode!(ProtoOAAccountLogoutReq);
                if let Some(conn) = self.connections.get_mut(&reply.connection) {
                    conn.accounts.remove(&account);
                    conn.spots.retain(|(a, _)| *a != account);
                }
                self.send(reply, &ProtoOAAccountLogoutRes { payload_type: None, ctid_trader_account_id: account });
            }
            t if t == ProtoOANewOrderReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOANewOrderReq);
                if let Err(refusal) = self.new_order(account, &request, Some(reply)) {
                    self.stats.refused += 1;
                    self.refuse_order(reply, account, refusal);
                }
            }
            t if t == ProtoOAClosePositionReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAClosePositionReq);
                let Some(position) = self.accounts[&account]
                    .book
                    .get(PositionId(u64::try_from(request.position_id).unwrap_or(0)))
                    .copied()
                else {
                    return self.refuse_order(reply, account, refusal("POSITION_NOT_FOUND", "no such open position"));
                };
                let close = ProtoOANewOrderReq {
                    ctid_trader_account_id: account,
                    symbol_id: self.symbol_id_of(&position.symbol).unwrap_or(0),
                    order_type: ProtoOAOrderType::Market as i32,
                    trade_side: wire_side(position.side.opposite()),
                    volume: request.volume,
                    position_id: Some(request.position_id),
                    ..ProtoOANewOrderReq::default()
                };
                if let Err(refusal) = self.new_order(account, &close, Some(reply)) {
                    self.stats.refused += 1;
                    self.refuse_order(reply, account, refusal);
                }
            }
            t if t == ProtoOAAmendPositionSLTPReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAAmendPositionSLTPReq);
                if let Err(refusal) = self.amend_position(
                    account,
                    request.position_id,
                    request.stop_loss,
                    request.take_profit,
                    Some(reply),
                ) {
                    self.refuse_order(reply, account, refusal);
                }
            }
            t if t == ProtoOACancelOrderReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOACancelOrderReq);
                if let Err(refusal) = self.cancel(account, request.order_id, Some(reply)) {
                    self.refuse_order(reply, account, refusal);
                }
            }
            t if t == ProtoOAAmendOrderReq::PAYLOAD_TYPE => {
                let request = decode!(ProtoOAAmendOrderReq);
                if let Err(refusal) = self.amend_order(account, &request, reply) {
                    self.refuse_order(reply, account, refusal);
                }
            }
            other => {
                let error = ProtoErrorRes {
                    payload_type: None,
                    error_code: "UNSUPPORTED_MESSAGE".into(),
                    description: Some(format!("payload type {other} is not simulated")),
                    maintenance_end_timestamp: None,
                };
                self.send(reply, &error);
            }
        }
    }

    fn asset_id(&self, name: &str) -> Option<i64> {
        self.assets.iter().find(|(_, n)| n == name).map(|(id, _)| *id)
    }

    fn symbol_id_of(&self, symbol: &mirror_model::Symbol) -> Option<i64> {
        self.symbols.values().find(|s| s.spec.symbol == *symbol).map(|s| s.config.symbol_id)
    }

    fn trader(&self, account: i64) -> Option<ProtoOATrader> {
        let a = self.accounts.get(&account)?;
        Some(ProtoOATrader {
            ctid_trader_account_id: account,
            balance: scaled_from_money(a.balance, MONEY_DIGITS),
            deposit_asset_id: self.asset_id(&a.config.deposit_asset).unwrap_or(0),
            leverage_in_cents: Some(10_000),
            trader_login: Some(a.config.trader_login),
            account_type: Some(
                if a.config.hedged { ProtoOAAccountType::Hedged } else { ProtoOAAccountType::Netted } as i32
            ),
            broker_name: Some(a.config.broker_name.clone()),
            money_digits: Some(MONEY_DIGITS),
            ..ProtoOATrader::default()
        })
    }

    fn subscribe(&mut self, reply: &Reply, account: i64, ids: &[i64]) {
        if let Some(missing) = ids.iter().find(|id| !self.symbols.contains_key(id)) {
            return self.error(reply, Some(account), "SYMBOL_NOT_FOUND", format!("no symbol {missing}"));
        }
        let Some(conn) = self.connections.get_mut(&reply.connection) else { return };
        if ids.iter().any(|id| conn.spots.contains(&(account, *id))) {
            return self.error(reply, Some(account), "ALREADY_SUBSCRIBED", "already subscribed to these spots");
        }
        for id in ids {
            conn.spots.insert((account, *id));
        }
        self.send(reply, &ProtoOASubscribeSpotsRes { payload_type: None, ctid_trader_account_id: account });
        // The first event carries the latest bid and ask.
        for id in ids {
            let spot = self.spot(account, *id);
            let connection = reply.connection;
            if let Ok(frame) = encode_message(&spot, None) {
                self.push_frame(connection, frame);
            }
        }
    }

    fn spot(&self, account: i64, symbol_id: i64) -> ProtoOASpotEvent {
        let symbol = &self.symbols[&symbol_id];
        ProtoOASpotEvent {
            payload_type: None,
            ctid_trader_account_id: account,
            symbol_id,
            bid: Some(spot_from_price(symbol.bid)),
            ask: Some(spot_from_price(symbol.ask)),
            trendbar: Vec::new(),
            session_close: None,
            timestamp: Some(unix_ms()),
        }
    }

    fn unrealized(&self, account: i64) -> ProtoOAGetPositionUnrealizedPnLRes {
        let a = &self.accounts[&account];
        let rows = a
            .book
            .positions()
            .filter_map(|p| {
                let symbol = self.symbols.values().find(|s| s.spec.symbol == p.symbol)?;
                let mark = if p.side == Side::Buy { symbol.bid } else { symbol.ask };
                let pnl = scaled_from_money(symbol.spec.pnl(p.side, p.qty, p.open_price, mark), MONEY_DIGITS);
                Some(ProtoOAPositionUnrealizedPnL {
                    position_id: i64::try_from(p.id.0).ok()?,
                    gross_unrealized_pn_l: pnl,
                    net_unrealized_pn_l: i32::try_from(pnl).unwrap_or(0),
                })
            })
            .collect();
        ProtoOAGetPositionUnrealizedPnLRes {
            payload_type: None,
            ctid_trader_account_id: account,
            position_unrealized_pn_l: rows,
            money_digits: MONEY_DIGITS,
        }
    }

    fn reconcile(&self, account: i64) -> ProtoOAReconcileRes {
        let a = &self.accounts[&account];
        let position = a.book.positions().filter_map(|p| self.wire_position(account, p, false)).collect();
        let order = a.pending.iter().filter_map(|id| a.orders.get(id)).map(|o| self.wire_order(o)).collect();
        ProtoOAReconcileRes { payload_type: None, ctid_trader_account_id: account, position, order }
    }

    fn wire_position(&self, account: i64, position: &Position, closed: bool) -> Option<ProtoOAPosition> {
        let symbol = self.symbols.values().find(|s| s.spec.symbol == position.symbol)?;
        let id = i64::try_from(position.id.0).ok()?;
        let meta = self.accounts[&account].meta.get(&id).cloned().unwrap_or_default();
        let volume = if closed { 0 } else { symbol.scale.volume(position.qty).ok()? };
        Some(ProtoOAPosition {
            position_id: id,
            trade_data: Some(ProtoOATradeData {
                symbol_id: symbol.config.symbol_id,
                volume,
                trade_side: wire_side(position.side),
                open_timestamp: Some(meta.opened_ms),
                label: meta.label,
                guaranteed_stop_loss: Some(false),
                comment: meta.comment,
            }),
            position_status: if closed {
                ProtoOAPositionStatus::PositionStatusClosed
            } else {
                ProtoOAPositionStatus::PositionStatusOpen
            } as i32,
            swap: 0,
            price: Some(double_from_price(position.open_price)),
            stop_loss: position.stop_loss.map(double_from_price),
            take_profit: position.take_profit.map(double_from_price),
            utc_last_update_timestamp: Some(meta.updated_ms),
            commission: Some(0),
            money_digits: Some(MONEY_DIGITS),
            ..ProtoOAPosition::default()
        })
    }

    fn wire_order(&self, order: &OrderRecord) -> ProtoOAOrder {
        ProtoOAOrder {
            order_id: order.order_id,
            trade_data: Some(ProtoOATradeData {
                symbol_id: order.symbol_id,
                volume: order.volume,
                trade_side: wire_side(order.side),
                open_timestamp: Some(order.created_ms),
                label: order.label.clone(),
                guaranteed_stop_loss: Some(false),
                comment: order.comment.clone(),
            }),
            order_type: order.order_type as i32,
            order_status: order.status as i32,
            expiration_timestamp: order.expiration,
            execution_price: order.execution_price.map(double_from_price),
            executed_volume: Some(order.executed_volume),
            utc_last_update_timestamp: Some(order.updated_ms),
            closing_order: Some(order.closing),
            limit_price: order.limit_price.map(double_from_price),
            stop_price: order.stop_price.map(double_from_price),
            stop_loss: order.stop_loss.map(double_from_price),
            take_profit: order.take_profit.map(double_from_price),
            client_order_id: order.client_order_id.clone(),
            time_in_force: Some(order.time_in_force.unwrap_or(ProtoOATimeInForce::GoodTillCancel as i32)),
            position_id: order.position_id,
            relative_stop_loss: order.relative_stop_loss,
            relative_take_profit: order.relative_take_profit,
            ..ProtoOAOrder::default()
        }
    }

    fn execution(&self, account: i64, kind: ProtoOAExecutionType, server: bool) -> ProtoOAExecutionEvent {
        ProtoOAExecutionEvent {
            payload_type: None,
            ctid_trader_account_id: account,
            execution_type: kind as i32,
            is_server_event: Some(server),
            ..ProtoOAExecutionEvent::default()
        }
    }

    // ----- trading ---------------------------------------------------------------------

    /// Validates and books a new order; answers and events go out from here.
    fn new_order(&mut self, account: i64, request: &ProtoOANewOrderReq, reply: Option<&Reply>) -> Result<i64, Refusal> {
        let bad_request = |description: &str| Refusal {
            code: "INVALID_REQUEST",
            description: description.into(),
            request_error: true,
        };
        let symbol =
            self.symbols.get(&request.symbol_id).ok_or_else(|| refusal("SYMBOL_NOT_FOUND", "no such symbol"))?;
        let spec = symbol.spec;
        let config = symbol.config.clone();
        let order_type = match ProtoOAOrderType::try_from(request.order_type) {
            Ok(t @ (ProtoOAOrderType::Market | ProtoOAOrderType::Limit | ProtoOAOrderType::Stop)) => t,
            Ok(ProtoOAOrderType::MarketRange) => ProtoOAOrderType::Market,
            _ => return Err(bad_request("only MARKET, MARKET_RANGE, LIMIT and STOP orders are simulated")),
        };
        let side = side_from(request.trade_side);
        let volume = request.volume;
        let closing = request.position_id.is_some();
        let on_step = config.step_volume > 0 && volume % config.step_volume == 0;
        if volume <= 0 || !on_step || (volume < config.min_volume && !closing) || volume > config.max_volume {
            return Err(refusal(
                "TRADING_BAD_VOLUME",
                format!(
                    "volume {volume} must be a multiple of {} within [{}, {}]",
                    config.step_volume, config.min_volume, config.max_volume
                ),
            ));
        }
        if order_type == ProtoOAOrderType::Market && (request.stop_loss.is_some() || request.take_profit.is_some()) {
            return Err(bad_request(
                "SL/TP in absolute values are allowed only for order types: [LIMIT, STOP, STOP_LIMIT]",
            ));
        }
        let entry = match order_type {
            ProtoOAOrderType::Limit => {
                Some(request.limit_price.ok_or_else(|| bad_request("a LIMIT order needs limitPrice"))?)
            }
            ProtoOAOrderType::Stop => {
                Some(request.stop_price.ok_or_else(|| bad_request("a STOP order needs stopPrice"))?)
            }
            _ => None,
        };
        let entry = match entry {
            Some(value) => Some(
                price_on_grid(value, &spec)
                    .ok_or_else(|| refusal("TRADING_BAD_PRICES", format!("{value} is not on the tick grid")))?,
            ),
            None => None,
        };
        let level = |value: Option<f64>| -> Result<Option<Price>, Refusal> {
            value
                .map(|v| {
                    price_on_grid(v, &spec)
                        .ok_or_else(|| refusal("TRADING_BAD_STOPS", format!("{v} is not a valid level")))
                })
                .transpose()
        };
        let (stop_loss, take_profit) = (level(request.stop_loss)?, level(request.take_profit)?);
        if let Some(entry) = entry {
            check_stops(side, entry, entry, stop_loss, take_profit)?;
        }
        let position_id = match request.position_id {
            Some(id) => {
                let a = &self.accounts[&account];
                let position = a
                    .book
                    .get(PositionId(u64::try_from(id).unwrap_or(0)))
                    .copied()
                    .ok_or_else(|| refusal("POSITION_NOT_FOUND", format!("no open position {id}")))?;
                if position.symbol != spec.symbol || position.side == side {
                    return Err(refusal(
                        "TRADING_BAD_VOLUME",
                        "an order on a position must be on its symbol and opposite side",
                    ));
                }
                let open = symbol.scale.volume(position.qty).unwrap_or(0);
                if volume > open {
                    return Err(refusal("TRADING_BAD_VOLUME", format!("volume {volume} is more than the {open} open")));
                }
                Some(id)
            }
            None => None,
        };
        let order_id = self.next_id();
        let now_ms = unix_ms();
        let record = OrderRecord {
            order_id,
            symbol_id: request.symbol_id,
            side,
            volume,
            order_type,
            status: ProtoOAOrderStatus::OrderStatusAccepted,
            limit_price: entry.filter(|_| order_type == ProtoOAOrderType::Limit),
            stop_price: entry.filter(|_| order_type == ProtoOAOrderType::Stop),
            stop_loss,
            take_profit,
            relative_stop_loss: request.relative_stop_loss,
            relative_take_profit: request.relative_take_profit,
            client_order_id: request.client_order_id.clone(),
            label: request.label.clone(),
            comment: request.comment.clone(),
            position_id,
            closing,
            executed_volume: 0,
            execution_price: None,
            time_in_force: request.time_in_force,
            expiration: request.expiration_timestamp,
            created_ms: now_ms,
            updated_ms: now_ms,
            deals: Vec::new(),
        };
        self.stats.orders += 1;
        let a = self.accounts.get_mut(&account).expect("authorised accounts exist");
        a.orders.insert(order_id, record.clone());
        while a.orders.len() > ORDERS_KEPT {
            a.orders.pop_first();
        }
        let mut accepted = self.execution(account, ProtoOAExecutionType::OrderAccepted, reply.is_none());
        accepted.order = Some(self.wire_order(&record));
        self.broadcast(account, &accepted, reply);
        match order_type {
            ProtoOAOrderType::Market => {
                let price = market_price(&self.symbols[&request.symbol_id], side);
                self.fill(account, order_id, price, reply, reply.is_none());
            }
            _ => {
                let symbol = &self.symbols[&request.symbol_id];
                match trigger_price(order_type, side, entry.unwrap_or(Price::ZERO), symbol.bid, symbol.ask) {
                    Some(price) => self.fill(account, order_id, price, reply, reply.is_none()),
                    None => {
                        self.accounts.get_mut(&account).expect("exists").pending.insert(order_id);
                    }
                }
            }
        }
        Ok(order_id)
    }

    /// Executes a whole order at `price`: one ORDER_FILLED per position it touches.
    fn fill(&mut self, account: i64, order_id: i64, price: Price, reply: Option<&Reply>, server: bool) {
        let a = &self.accounts[&account];
        let Some(mut order) = a.orders.get(&order_id).cloned() else { return };
        let symbol = &self.symbols[&order.symbol_id];
        let (spec, scale, digits) = (symbol.spec, symbol.scale, spec_digits(&symbol.spec));
        let Ok(qty) = scale.qty(order.volume) else { return };
        let intent = match order.position_id.filter(|_| order.closing) {
            Some(id) => OrderIntent::Close { position: PositionId(u64::try_from(id).unwrap_or(0)) },
            None => OrderIntent::Open,
        };
        // Relative SL/TP are distances from the fill.
        let relative = |distance: Option<i64>, sign: i64| {
            distance
                .and_then(distance_from_relative)
                .map(|d| Price::from_raw(price.raw() + sign * d.raw()).round_dp(u32::from(digits), Rounding::Nearest))
        };
        let direction = order.side.sign();
        let protection = (
            order.stop_loss.or(relative(order.relative_stop_loss, -direction)),
            order.take_profit.or(relative(order.relative_take_profit, direction)),
        );
        let new_id = self.next_id();
        let now_ms = unix_ms();
        let a = self.accounts.get_mut(&account).expect("exists");
        let mut effects = Vec::with_capacity(2);
        let new_position = PositionId(u64::try_from(new_id).unwrap_or(0));
        if let Err(error) =
            a.book.apply_execution(&spec, intent, order.side, qty, price, new_position, protection, &mut effects)
        {
            tracing::warn!(%error, "simulated fill could not be applied");
            return;
        }
        a.pending.remove(&order_id);
        order.status = ProtoOAOrderStatus::OrderStatusFilled;
        order.executed_volume = order.volume;
        order.execution_price = Some(price);
        order.updated_ms = now_ms;
        self.stats.executions += 1;
        let count = effects.len();
        for (index, effect) in effects.into_iter().enumerate() {
            let a = self.accounts.get_mut(&account).expect("exists");
            let position_id = i64::try_from(effect.position.id.0).unwrap_or(0);
            order.position_id = Some(position_id);
            let realized = effect.realized_pnl.round_dp(MONEY_DIGITS, Rounding::Nearest);
            a.balance += realized;
            let meta = a.meta.entry(position_id).or_insert_with(|| PositionMeta {
                label: order.label.clone(),
                comment: order.comment.clone(),
                opened_ms: now_ms,
                updated_ms: now_ms,
            });
            meta.updated_ms = now_ms;
            let deal_volume = deal_volume(&effect, &scale);
            let detail =
                matches!(effect.change, PositionChange::Reduced { .. } | PositionChange::Closed { .. }).then(|| {
                    ProtoOAClosePositionDetail {
                        entry_price: double_from_price(effect.position.open_price),
                        gross_profit: scaled_from_money(realized, MONEY_DIGITS),
                        swap: 0,
                        commission: 0,
                        balance: scaled_from_money(a.balance, MONEY_DIGITS),
                        quote_to_deposit_conversion_rate: None,
                        closed_volume: Some(deal_volume),
                        balance_version: None,
                        money_digits: Some(MONEY_DIGITS),
                        pnl_conversion_fee: None,
                    }
                });
            let is_closed = matches!(effect.change, PositionChange::Closed { .. });
            let mut wire_position = self.wire_position(account, &effect.position, is_closed);
            if is_closed {
                self.accounts.get_mut(&account).expect("exists").meta.remove(&position_id);
            }
            if let Some(position) = wire_position.as_mut()
                && is_closed
            {
                position.trade_data.get_or_insert_with(ProtoOATradeData::default).volume = 0;
            }
            let deal = ProtoOADeal {
                deal_id: self.next_id(),
                order_id,
                position_id,
                volume: order.volume,
                filled_volume: deal_volume,
                symbol_id: order.symbol_id,
                create_timestamp: order.created_ms,
                execution_timestamp: now_ms,
                utc_last_update_timestamp: Some(now_ms),
                execution_price: Some(double_from_price(price)),
                trade_side: wire_side(order.side),
                deal_status: ProtoOADealStatus::Filled as i32,
                commission: Some(0),
                close_position_detail: detail,
                money_digits: Some(MONEY_DIGITS),
                ..ProtoOADeal::default()
            };
            order.deals.push(deal.clone());
            // A netting turn-over fills in two deals; the order is filled after the last.
            let mut wire = order.clone();
            if index + 1 < count {
                wire.status = ProtoOAOrderStatus::OrderStatusAccepted;
                wire.executed_volume = deal_volume;
            }
            let mut filled = self.execution(account, ProtoOAExecutionType::OrderFilled, server);
            filled.order = Some(self.wire_order(&wire));
            filled.position = wire_position;
            filled.deal = Some(deal);
            self.broadcast(account, &filled, reply);
        }
        self.accounts.get_mut(&account).expect("exists").orders.insert(order_id, order);
    }

    fn amend_position(
        &mut self,
        account: i64,
        position_id: i64,
        stop_loss: Option<f64>,
        take_profit: Option<f64>,
        reply: Option<&Reply>,
    ) -> Result<(), Refusal> {
        let id = PositionId(u64::try_from(position_id).unwrap_or(0));
        let position = self.accounts[&account]
            .book
            .get(id)
            .copied()
            .ok_or_else(|| refusal("POSITION_NOT_FOUND", format!("no open position {position_id}")))?;
        let symbol = self
            .symbols
            .values()
            .find(|s| s.spec.symbol == position.symbol)
            .ok_or_else(|| refusal("SYMBOL_NOT_FOUND", "no such symbol"))?;
        let spec = symbol.spec;
        let level = |value: Option<f64>| -> Result<Option<Price>, Refusal> {
            value
                .map(|v| {
                    price_on_grid(v, &spec)
                        .ok_or_else(|| refusal("TRADING_BAD_PRICES", format!("{v} is not on the tick grid")))
                })
                .transpose()
        };
        let (stop_loss, take_profit) = (level(stop_loss)?, level(take_profit)?);
        check_stops(position.side, symbol.bid, symbol.ask, stop_loss, take_profit)?;
        let a = self.accounts.get_mut(&account).expect("exists");
        let effect = a
            .book
            .set_protection(id, stop_loss, take_profit)
            .map_err(|e| refusal("POSITION_NOT_FOUND", e.to_string()))?;
        if let Some(meta) = a.meta.get_mut(&position_id) {
            meta.updated_ms = unix_ms();
        }
        let mut replaced = self.execution(account, ProtoOAExecutionType::OrderReplaced, reply.is_none());
        let symbol_id = symbol.config.symbol_id;
        let volume = symbol.scale.volume(position.qty).unwrap_or(0);
        let order_id = self.next_id();
        let now_ms = unix_ms();
        // cTrader answers with the position and its protection order.
        let protection = OrderRecord {
            order_id,
            symbol_id,
            side: position.side.opposite(),
            volume,
            order_type: ProtoOAOrderType::StopLossTakeProfit,
            status: ProtoOAOrderStatus::OrderStatusAccepted,
            limit_price: None,
            stop_price: None,
            stop_loss,
            take_profit,
            relative_stop_loss: None,
            relative_take_profit: None,
            client_order_id: None,
            label: None,
            comment: None,
            position_id: Some(position_id),
            closing: true,
            executed_volume: 0,
            execution_price: None,
            time_in_force: None,
            expiration: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            deals: Vec::new(),
        };
        replaced.order = Some(self.wire_order(&protection));
        replaced.position = self.wire_position(account, &effect.position, false);
        self.broadcast(account, &replaced, reply);
        Ok(())
    }

    fn cancel(&mut self, account: i64, order_id: i64, reply: Option<&Reply>) -> Result<(), Refusal> {
        let a = self.accounts.get_mut(&account).expect("authorised accounts exist");
        if !a.pending.remove(&order_id) {
            return Err(refusal("ORDER_NOT_FOUND", format!("no pending order {order_id}")));
        }
        let order = a.orders.get_mut(&order_id).expect("pending orders are recorded");
        order.status = ProtoOAOrderStatus::OrderStatusCancelled;
        order.updated_ms = unix_ms();
        let order = order.clone();
        let mut cancelled = self.execution(account, ProtoOAExecutionType::OrderCancelled, reply.is_none());
        cancelled.order = Some(self.wire_order(&order));
        self.broadcast(account, &cancelled, reply);
        Ok(())
    }

    fn amend_order(&mut self, account: i64, request: &ProtoOAAmendOrderReq, reply: &Reply) -> Result<(), Refusal> {
        let a = &self.accounts[&account];
        if !a.pending.contains(&request.order_id) {
            return Err(refusal("ORDER_NOT_FOUND", format!("no pending order {}", request.order_id)));
        }
        let mut order = a.orders[&request.order_id].clone();
        let spec = self.symbols[&order.symbol_id].spec;
        let grid = |value: f64| {
            price_on_grid(value, &spec)
                .ok_or_else(|| refusal("TRADING_BAD_PRICES", format!("{value} is not on the tick grid")))
        };
        if let Some(value) = request.limit_price {
            order.limit_price = Some(grid(value)?);
        }
        if let Some(value) = request.stop_price {
            order.stop_price = Some(grid(value)?);
        }
        order.stop_loss = request.stop_loss.map(grid).transpose()?;
        order.take_profit = request.take_profit.map(grid).transpose()?;
        if let Some(volume) = request.volume {
            let config = &self.symbols[&order.symbol_id].config;
            if volume <= 0
                || volume % config.step_volume != 0
                || volume < config.min_volume
                || volume > config.max_volume
            {
                return Err(refusal("TRADING_BAD_VOLUME", format!("volume {volume} is not tradable")));
            }
            order.volume = volume;
        }
        order.updated_ms = unix_ms();
        self.accounts.get_mut(&account).expect("exists").orders.insert(order.order_id, order.clone());
        let mut replaced = self.execution(account, ProtoOAExecutionType::OrderReplaced, false);
        replaced.order = Some(self.wire_order(&order));
        self.broadcast(account, &replaced, Some(reply));
        Ok(())
    }

    // ----- the market and the user's own terminal --------------------------------------

    /// New prices: spot events, pending orders triggered, stops and targets hit, expiries.
    pub(crate) fn set_quote(&mut self, symbol_id: i64, bid: Price, ask: Price) -> Result<(), String> {
        let symbol = self.symbols.get_mut(&symbol_id).ok_or_else(|| format!("no symbol {symbol_id}"))?;
        if ask < bid || !symbol.spec.price_is_on_tick(bid) || !symbol.spec.price_is_on_tick(ask) {
            return Err(format!("bid {bid} / ask {ask} must be on the tick grid with ask >= bid"));
        }
        symbol.bid = bid;
        symbol.ask = ask;
        let spec_symbol = symbol.spec.symbol;
        let subscribed: Vec<(u64, i64)> = self
            .connections
            .iter()
            .flat_map(|(id, c)| c.spots.iter().filter(|(_, s)| *s == symbol_id).map(move |(a, _)| (*id, *a)))
            .collect();
        for (connection, account) in subscribed {
            let spot = self.spot(account, symbol_id);
            if let Ok(frame) = encode_message(&spot, None) {
                self.push_frame(connection, frame);
            }
        }
        let now_ms = unix_ms();
        let accounts: Vec<i64> = self.accounts.keys().copied().collect();
        for account in accounts {
            let a = &self.accounts[&account];
            let due: Vec<(i64, Option<Price>, bool)> = a
                .pending
                .iter()
                .filter_map(|id| a.orders.get(id))
                .filter(|o| o.symbol_id == symbol_id)
                .map(|o| {
                    let entry = o.limit_price.or(o.stop_price).unwrap_or(Price::ZERO);
                    let expired = o.time_in_force == Some(ProtoOATimeInForce::GoodTillDate as i32)
                        && o.expiration.is_some_and(|t| t <= now_ms);
                    (o.order_id, trigger_price(o.order_type, o.side, entry, bid, ask), expired)
                })
                .collect();
            for (order_id, price, expired) in due {
                if expired {
                    self.expire(account, order_id);
                } else if let Some(price) = price {
                    self.fill(account, order_id, price, None, true);
                }
            }
            let hits: Vec<(Position, Price)> = self.accounts[&account]
                .book
                .positions()
                .filter(|p| p.symbol == spec_symbol)
                .filter_map(|p| {
                    let (close_at, sign) = if p.side == Side::Buy { (bid, 1) } else { (ask, -1) };
                    let stop = p.stop_loss.is_some_and(|sl| (close_at.raw() - sl.raw()) * sign <= 0);
                    let target = p.take_profit.is_some_and(|tp| (close_at.raw() - tp.raw()) * sign >= 0);
                    (stop || target).then_some((*p, close_at))
                })
                .collect();
            for (position, _) in hits {
                let volume = self.symbols[&symbol_id].scale.volume(position.qty).unwrap_or(0);
                let close = ProtoOANewOrderReq {
                    ctid_trader_account_id: account,
                    symbol_id,
                    order_type: ProtoOAOrderType::Market as i32,
                    trade_side: wire_side(position.side.opposite()),
                    volume,
                    position_id: i64::try_from(position.id.0).ok(),
                    ..ProtoOANewOrderReq::default()
                };
                if self.new_order(account, &close, None).is_err() {
                    tracing::warn!(account, position = %position.id, "simulated stop/target close failed");
                }
            }
        }
        Ok(())
    }

    fn expire(&mut self, account: i64, order_id: i64) {
        let a = self.accounts.get_mut(&account).expect("exists");
        a.pending.remove(&order_id);
        let Some(order) = a.orders.get_mut(&order_id) else { return };
        order.status = ProtoOAOrderStatus::OrderStatusExpired;
        order.updated_ms = unix_ms();
        let order = order.clone();
        let mut expired = self.execution(account, ProtoOAExecutionType::OrderExpired, true);
        expired.order = Some(self.wire_order(&order));
        self.broadcast(account, &expired, None);
    }

    /// The user trades from another terminal: no correlation id, events to every session.
    pub(crate) fn manual_order(&mut self, account: i64, order: &ManualOrder) -> Result<i64, String> {
        if !self.accounts.contains_key(&account) {
            return Err(format!("no account {account}"));
        }
        let (order_type, limit, stop) = match order.kind {
            OrderKind::Market => (ProtoOAOrderType::Market, None, None),
            OrderKind::Limit { price } => (ProtoOAOrderType::Limit, Some(double_from_price(price)), None),
            OrderKind::Stop { price } => (ProtoOAOrderType::Stop, None, Some(double_from_price(price))),
        };
        let market = order_type == ProtoOAOrderType::Market;
        let symbol = self.symbols.get(&order.symbol_id).ok_or_else(|| format!("no symbol {}", order.symbol_id))?;
        // By hand, a market order's SL/TP are set as distances from the fill.
        let relative = |level: Option<Price>, reference: Price| {
            level.and_then(|l| relative_from_distance(Price::from_raw((l.raw() - reference.raw()).abs())))
        };
        let reference = market_price(symbol, order.side);
        let request = ProtoOANewOrderReq {
            ctid_trader_account_id: account,
            symbol_id: order.symbol_id,
            order_type: order_type as i32,
            trade_side: wire_side(order.side),
            volume: order.volume,
            limit_price: limit,
            stop_price: stop,
            stop_loss: order.stop_loss.filter(|_| !market).map(double_from_price),
            take_profit: order.take_profit.filter(|_| !market).map(double_from_price),
            relative_stop_loss: relative(order.stop_loss.filter(|_| market), reference),
            relative_take_profit: relative(order.take_profit.filter(|_| market), reference),
            label: order.label.clone(),
            ..ProtoOANewOrderReq::default()
        };
        self.new_order(account, &request, None).map_err(|r| format!("{}: {}", r.code, r.description))
    }

    /// The user closes a position by hand.
    pub(crate) fn manual_close(&mut self, account: i64, position_id: i64, volume: i64) -> Result<(), String> {
        let a = self.accounts.get(&account).ok_or_else(|| format!("no account {account}"))?;
        let position = a
            .book
            .get(PositionId(u64::try_from(position_id).unwrap_or(0)))
            .copied()
            .ok_or_else(|| format!("no position {position_id}"))?;
        let request = ProtoOANewOrderReq {
            ctid_trader_account_id: account,
            symbol_id: self.symbol_id_of(&position.symbol).unwrap_or(0),
            order_type: ProtoOAOrderType::Market as i32,
            trade_side: wire_side(position.side.opposite()),
            volume,
            position_id: Some(position_id),
            ..ProtoOANewOrderReq::default()
        };
        self.new_order(account, &request, None).map(|_| ()).map_err(|r| format!("{}: {}", r.code, r.description))
    }

    /// The user moves a position's protection by hand.
    pub(crate) fn manual_amend(
        &mut self,
        account: i64,
        position_id: i64,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<(), String> {
        if !self.accounts.contains_key(&account) {
            return Err(format!("no account {account}"));
        }
        self.amend_position(
            account,
            position_id,
            stop_loss.map(double_from_price),
            take_profit.map(double_from_price),
            None,
        )
        .map_err(|r| format!("{}: {}", r.code, r.description))
    }

    /// The user cancels a pending order by hand.
    pub(crate) fn manual_cancel(&mut self, account: i64, order_id: i64) -> Result<(), String> {
        if !self.accounts.contains_key(&account) {
            return Err(format!("no account {account}"));
        }
        self.cancel(account, order_id, None).map_err(|r| format!("{}: {}", r.code, r.description))
    }

    // ----- inspection ------------------------------------------------------------------

    pub(crate) fn orders(&self, account: i64) -> Vec<SimOrder> {
        let Some(a) = self.accounts.get(&account) else { return Vec::new() };
        a.orders
            .values()
            .filter(|o| o.order_type != ProtoOAOrderType::StopLossTakeProfit)
            .map(|o| SimOrder {
                order_id: o.order_id,
                client_order_id: o.client_order_id.clone(),
                label: o.label.clone(),
                symbol_id: o.symbol_id,
                side: o.side,
                volume: o.volume,
                order_type: o.order_type,
                status: o.status,
                closing: o.closing,
                position_id: o.position_id,
            })
            .collect()
    }

    pub(crate) fn positions(&self, account: i64) -> Vec<Position> {
        self.accounts.get(&account).map(|a| a.book.positions().copied().collect()).unwrap_or_default()
    }

    pub(crate) fn balance(&self, account: i64) -> Option<Money> {
        self.accounts.get(&account).map(|a| a.balance)
    }
}

fn spec_digits(spec: &InstrumentSpec) -> u8 {
    spec.digits
}

/// Volume of the deal an effect stands for.
fn deal_volume(effect: &PositionEffect, scale: &VolumeScale) -> i64 {
    let qty = match effect.change {
        PositionChange::Opened => effect.position.qty,
        PositionChange::Increased { added } => added,
        PositionChange::Reduced { closed, .. } | PositionChange::Closed { closed } => closed,
        PositionChange::ProtectionChanged => mirror_model::Qty::ZERO,
    };
    scale.volume(qty).unwrap_or(0)
}

fn market_price(symbol: &Symbol, side: Side) -> Price {
    if side == Side::Buy { symbol.ask } else { symbol.bid }
}

/// Where a pending order fills when the market reaches it, if it does.
fn trigger_price(order_type: ProtoOAOrderType, side: Side, entry: Price, bid: Price, ask: Price) -> Option<Price> {
    match (order_type, side) {
        (ProtoOAOrderType::Limit, Side::Buy) if ask <= entry => Some(ask),
        (ProtoOAOrderType::Limit, Side::Sell) if bid >= entry => Some(bid),
        (ProtoOAOrderType::Stop, Side::Buy) if ask >= entry => Some(ask),
        (ProtoOAOrderType::Stop, Side::Sell) if bid <= entry => Some(bid),
        _ => None,
    }
}

/// SL below and TP above the price a long closes at (the reverse for a short).
fn check_stops(
    side: Side,
    bid: Price,
    ask: Price,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
) -> Result<(), Refusal> {
    let close_at = if side == Side::Buy { bid } else { ask };
    let sign = side.sign();
    if let Some(level) = stop_loss
        && (level.raw() - close_at.raw()).signum() != -sign
    {
        return Err(refusal("TRADING_BAD_STOPS", format!("stop loss {level} is on the wrong side of {close_at}")));
    }
    if let Some(level) = take_profit
        && (level.raw() - close_at.raw()).signum() != sign
    {
        return Err(refusal("TRADING_BAD_STOPS", format!("take profit {level} is on the wrong side of {close_at}")));
    }
    Ok(())
}
