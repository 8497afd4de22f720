//! A cTrader Open API server on loopback TLS, for tests and demos.
//!
//! It speaks the same protocol as Spotware's endpoints (4-byte length, `ProtoMessage`,
//! proto2 payloads) with the same flow: application auth, accounts by access token,
//! account auth, symbols, trader, reconcile, spots, new/cancel/amend orders, SL/TP amends,
//! order history, token refresh, heartbeats. It enforces the per-connection request limits
//! (`REQUEST_FREQUENCY_EXCEEDED` beyond them) and records the most requests it saw in any
//! window. Positions are kept by `mirror_model::PositionBook`, hedged or netted. It can
//! drop connections on demand, at once or right after the n-th next request, and lets the
//! "user" trade by hand (which is how a leader account is simulated).
//!
//! It does not deduplicate client order ids (the real server does not promise to either):
//! idempotency is the client's job, and tests check the client does it.

mod broker;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mirror_model::{Money, OrderKind, Position, Price, Side};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::codec::{FrameDecoder, encode_message};
use crate::proto::{ProtoHeartbeatEvent, ProtoOAOrderStatus, ProtoOAOrderType};
use crate::session::{RateLimits, SessionConfig, Tokens};
use crate::tls::{TlsTrust, self_signed_server};
use broker::{Broker, Connection, OUTBOX_CAPACITY};

/// A simulator that could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimulatorError {
    /// A symbol or account in the configuration is not valid.
    #[error("simulator configuration: {0}")]
    Config(String),
    /// The listening socket or the certificate could not be set up.
    #[error("simulator start-up: {0}")]
    Io(String),
}

/// One symbol the simulated broker lists, in cTrader's units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSymbol {
    /// `symbolId`.
    pub symbol_id: i64,
    /// `symbolName`.
    pub name: String,
    /// Base asset name (`EUR`).
    pub base_asset: String,
    /// Quote asset name (`USD`).
    pub quote_asset: String,
    /// Price decimals.
    pub digits: i32,
    /// Pip position.
    pub pip_position: i32,
    /// Volume of one lot, in cents of a unit.
    pub lot_size: i64,
    /// Smallest order volume, in cents.
    pub min_volume: i64,
    /// Largest order volume, in cents.
    pub max_volume: i64,
    /// Volume step, in cents.
    pub step_volume: i64,
    /// Starting bid.
    pub bid: Price,
    /// Starting ask.
    pub ask: Price,
}

impl SimSymbol {
    /// A standard FX pair: 5 digits, a lot of 100,000 units, 0.01 to 1,000 lots by 0.01.
    pub fn fx(symbol_id: i64, name: &str, bid: Price, ask: Price) -> Self {
        Self {
            symbol_id,
            name: name.to_owned(),
            base_asset: name.get(..3).unwrap_or("XXX").to_owned(),
            quote_asset: name.get(3..6).unwrap_or("USD").to_owned(),
            digits: 5,
            pip_position: 4,
            lot_size: 10_000_000,
            min_volume: 100_000,
            max_volume: 10_000_000_000,
            step_volume: 100_000,
            bid,
            ask,
        }
    }
}

/// One trading account of the simulated broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAccount {
    /// `ctidTraderAccountId`.
    pub ctid_trader_account_id: i64,
    /// The login shown to the user.
    pub trader_login: i64,
    /// The access token that grants it (several accounts may share one).
    pub access_token: String,
    /// The refresh token of that access token.
    pub refresh_token: String,
    /// Hedged (`true`) or netted.
    pub hedged: bool,
    /// Starting balance.
    pub balance: Money,
    /// Deposit currency.
    pub deposit_asset: String,
    /// Broker name.
    pub broker_name: String,
    /// Live or demo.
    pub is_live: bool,
}

impl SimAccount {
    /// A hedged USD demo account with 100,000 on it.
    pub fn new(ctid_trader_account_id: i64, access_token: &str) -> Self {
        Self {
            ctid_trader_account_id,
            trader_login: 5_000_000 + ctid_trader_account_id,
            access_token: access_token.to_owned(),
            refresh_token: format!("{access_token}-refresh"),
            hedged: true,
            balance: Money::from_units(100_000).unwrap_or(Money::ZERO),
            deposit_asset: "USD".into(),
            broker_name: "Mirror Sim Broker".into(),
            is_live: false,
        }
    }
}

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Where to listen (port 0 picks a free one).
    pub bind: SocketAddr,
    /// The application's client id.
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: String,
    /// Requests allowed per connection (`guard` is a client-side setting and unused here).
    pub limits: RateLimits,
    /// A heartbeat goes to a client after this long without anything sent to it.
    pub heartbeat_interval: Duration,
    /// A client that sends nothing for this long is disconnected.
    pub idle_timeout: Duration,
    /// How long access tokens live.
    pub token_lifetime: Duration,
    /// Symbols.
    pub symbols: Vec<SimSymbol>,
    /// Accounts.
    pub accounts: Vec<SimAccount>,
}

impl SimulatorConfig {
    /// cTrader's limits and timings, no symbols and no accounts, on a free loopback port.
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            limits: RateLimits::default(),
            heartbeat_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            token_lifetime: Duration::from_secs(2_628_000),
            symbols: Vec::new(),
            accounts: Vec::new(),
        }
    }
}

/// Counters of the simulated server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimulatorStats {
    /// Connections accepted (TLS done).
    pub connections: u64,
    /// Requests received (heartbeats not counted).
    pub requests: u64,
    /// Most requests one connection sent within any window.
    pub max_requests_per_window: usize,
    /// Most historical requests one connection sent within any window.
    pub max_historical_per_window: usize,
    /// Requests refused with `REQUEST_FREQUENCY_EXCEEDED`.
    pub rate_limited: u64,
    /// Orders accepted.
    pub orders: u64,
    /// Orders refused.
    pub refused: u64,
    /// Fills.
    pub executions: u64,
    /// Connections cut on purpose.
    pub cuts: u64,
    /// Connections cut because the client stopped reading.
    pub slow_consumers_cut: u64,
}

/// One order as the simulated broker recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOrder {
    /// `orderId`.
    pub order_id: i64,
    /// `clientOrderId`.
    pub client_order_id: Option<String>,
    /// `label`.
    pub label: Option<String>,
    /// Symbol.
    pub symbol_id: i64,
    /// Side.
    pub side: Side,
    /// Volume, in cents.
    pub volume: i64,
    /// Type.
    pub order_type: ProtoOAOrderType,
    /// Status now.
    pub status: ProtoOAOrderStatus,
    /// A closing order (it targeted a position).
    pub closing: bool,
    /// The position it opened or closed.
    pub position_id: Option<i64>,
}

/// An order the user places by hand (from another terminal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualOrder {
    /// Symbol.
    pub symbol_id: i64,
    /// Side.
    pub side: Side,
    /// Volume, in cents.
    pub volume: i64,
    /// Market, limit or stop.
    pub kind: OrderKind,
    /// Stop loss.
    pub stop_loss: Option<Price>,
    /// Take profit.
    pub take_profit: Option<Price>,
    /// Label.
    pub label: Option<String>,
}

struct Inner {
    broker: Mutex<Broker>,
    config: SimulatorConfig,
    addr: SocketAddr,
    certificate: Vec<u8>,
    next_connection: AtomicU64,
    shutdown: Notify,
    /// False while a test holds the server's reading: requests pile up in the sockets.
    reads_open: tokio::sync::watch::Sender<bool>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Broker> {
        self.broker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running simulated cTrader server. Cheap to clone; stops when shut down.
#[derive(Clone)]
pub struct CtraderSimulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CtraderSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtraderSimulator").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

impl CtraderSimulator {
    /// Starts listening with a fresh self-signed certificate for `localhost`.
    pub async fn start(config: SimulatorConfig) -> Result<Self, SimulatorError> {
        let broker = Broker::new(config.clone()).map_err(SimulatorError::Config)?;
        let (tls, certificate) =
            self_signed_server(&["localhost", "127.0.0.1"]).map_err(|e| SimulatorError::Io(e.to_string()))?;
        let listener = TcpListener::bind(config.bind).await.map_err(|e| SimulatorError::Io(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| SimulatorError::Io(e.to_string()))?;
        let inner = Arc::new(Inner {
            broker: Mutex::new(broker),
            config,
            addr,
            certificate,
            next_connection: AtomicU64::new(1),
            shutdown: Notify::new(),
            reads_open: tokio::sync::watch::Sender::new(true),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        tokio::spawn(accept_loop(Arc::clone(&inner), listener, acceptor));
        Ok(Self { inner })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// Its certificate (DER), for clients to trust.
    pub fn certificate_der(&self) -> Vec<u8> {
        self.inner.certificate.clone()
    }

    /// A session configuration that reaches this simulator with the application's
    /// credentials and these tokens.
    pub fn session_config(&self, access_token: &str, refresh_token: Option<&str>) -> SessionConfig {
        let tokens = Tokens {
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.map(str::to_owned),
            expires_in_s: None,
        };
        let mut config = SessionConfig::new(
            self.inner.addr.ip().to_string(),
            self.inner.addr.port(),
            &self.inner.config.client_id,
            &self.inner.config.client_secret,
            tokens,
        );
        config.server_name = "localhost".into();
        config.trust = TlsTrust::Certificates(vec![self.inner.certificate.clone()]);
        config
    }

    /// Counters.
    pub fn stats(&self) -> SimulatorStats {
        self.inner.lock().stats
    }

    /// Every order of an account the broker recorded (protection orders left out).
    pub fn orders(&self, account: i64) -> Vec<SimOrder> {
        self.inner.lock().orders(account)
    }

    /// Open positions of an account.
    pub fn positions(&self, account: i64) -> Vec<Position> {
        self.inner.lock().positions(account)
    }

    /// Balance of an account.
    pub fn balance(&self, account: i64) -> Option<Money> {
        self.inner.lock().balance(account)
    }

    /// New bid and ask for a symbol: spot events, triggers, stops and targets.
    pub fn set_quote(&self, symbol_id: i64, bid: Price, ask: Price) -> Result<(), String> {
        self.inner.lock().set_quote(symbol_id, bid, ask)
    }

    /// The user places an order by hand; returns its order id.
    pub fn trade_by_hand(&self, account: i64, order: &ManualOrder) -> Result<i64, String> {
        self.inner.lock().manual_order(account, order)
    }

    /// The user closes (part of) a position by hand.
    pub fn close_by_hand(&self, account: i64, position_id: i64, volume: i64) -> Result<(), String> {
        self.inner.lock().manual_close(account, position_id, volume)
    }

    /// The user moves a position's stop loss and take profit by hand.
    pub fn amend_by_hand(
        &self,
        account: i64,
        position_id: i64,
        stop_loss: Option<Price>,
        take_profit: Option<Price>,
    ) -> Result<(), String> {
        self.inner.lock().manual_amend(account, position_id, stop_loss, take_profit)
    }

    /// The user cancels a pending order by hand.
    pub fn cancel_by_hand(&self, account: i64, order_id: i64) -> Result<(), String> {
        self.inner.lock().manual_cancel(account, order_id)
    }

    /// Drops every client connection now, as a network failure would.
    pub fn drop_connections(&self) {
        let mut broker = self.inner.lock();
        for connection in broker.connections.values_mut() {
            connection.cut = true;
            connection.close.notify_one();
        }
        broker.stats.cuts += 1;
    }

    /// Drops the connection that sends the `n`-th next request, right after handling it:
    /// that request is executed, its answers and anything still unsent to the client are
    /// lost, and requests behind it are never read.
    pub fn cut_after_requests(&self, n: u64) {
        self.inner.lock().cut_after = Some(n.max(1));
    }

    /// Stops reading from every connection until [`Self::resume_reading`]: what clients send
    /// meanwhile waits in the sockets, as it would behind a stalled server. With
    /// [`Self::cut_after_requests`] this puts requests on the wire behind the cut for certain.
    pub fn hold_reading(&self) {
        self.inner.reads_open.send_replace(false);
    }

    /// Reads again after [`Self::hold_reading`].
    pub fn resume_reading(&self) {
        self.inner.reads_open.send_replace(true);
    }

    /// Makes an access token expire now.
    pub fn expire_access_token(&self, token: &str) {
        self.inner.lock().expire_token(token);
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.inner.lock().connections.len()
    }

    /// Stops listening and drops every connection.
    pub fn shutdown(&self) {
        self.drop_connections();
        self.inner.shutdown.notify_waiters();
        self.inner.shutdown.notify_one();
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve(Arc::clone(&inner), stream, acceptor.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = inner.shutdown.notified() => return,
        }
    }
}

async fn serve(inner: Arc<Inner>, tcp: TcpStream, acceptor: tokio_rustls::TlsAcceptor) {
    let _ = tcp.set_nodelay(true);
    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
        return;
    };
    let id = inner.next_connection.fetch_add(1, Ordering::Relaxed);
    let (outbox, mut frames) = mpsc::channel::<Vec<u8>>(OUTBOX_CAPACITY);
    let close = Arc::new(Notify::new());
    {
        let mut broker = inner.lock();
        broker.connections.insert(id, Connection::new(outbox, Arc::clone(&close)));
        broker.stats.connections += 1;
    }
    let (mut reader, mut writer) = tokio::io::split(stream);
    let heartbeat_interval = inner.config.heartbeat_interval;
    let writer_task = tokio::spawn(async move {
        let Ok(heartbeat) = encode_message(&ProtoHeartbeatEvent::default(), None) else { return };
        loop {
            let frame = match tokio::time::timeout(heartbeat_interval, frames.recv()).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => heartbeat.clone(),
            };
            let write = async {
                writer.write_all(&frame).await?;
                writer.flush().await
            };
            if !matches!(tokio::time::timeout(Duration::from_secs(10), write).await, Ok(Ok(()))) {
                return;
            }
        }
    });
    let mut decoder = FrameDecoder::new();
    let idle = inner.config.idle_timeout;
    let mut reads_open = inner.reads_open.subscribe();
    'connection: loop {
        if !*reads_open.borrow() {
            tokio::select! {
                () = close.notified() => break 'connection,
                open = reads_open.wait_for(|open| *open) => if open.is_err() { break 'connection },
            }
        }
        let buffer = decoder.buffer_mut();
        if buffer.capacity() - buffer.len() < 4_096 {
            buffer.reserve(64 * 1024);
        }
        tokio::select! {
            () = close.notified() => break 'connection,
            read = tokio::time::timeout(idle, reader.read_buf(buffer)) => {
                if !matches!(read, Ok(Ok(n)) if n > 0) {
                    break 'connection;
                }
            }
        }
        let mut broker = inner.lock();
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    broker.handle(id, &message, Instant::now());
                    if broker.connections.get(&id).is_none_or(|c| c.cut) {
                        break 'connection;
                    }
                }
                Ok(None) => break,
                // A frame that does not decode: the stream is out of step; drop the client.
                Err(_) => break 'connection,
            }
        }
    }
    let cut = inner.lock().connections.remove(&id).is_some_and(|c| c.cut);
    if cut {
        // A simulated network failure: frames not yet written are lost with the connection.
        writer_task.abort();
    } else {
        // A close by the server (bad frame, inactivity): what was owed is sent first. The
        // outbox's sender went with the connection, so the writer ends once it is empty.
        let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    }
}
