//! One TLS connection to a cTrader Open API endpoint carrying many accounts.
//!
//! The session owns the connection: it authenticates the application, authorises every
//! account that asked to be connected, sends heartbeats, reconnects with backoff and then
//! re-authorises, reconciles and resubscribes each account. Requests of every account pass
//! through one [`scheduler`] that keeps the connection within cTrader's rate limits and gives
//! accounts turns.
//!
//! Inside, one mutex guards the shared state ([`Core`]); the reader applies every incoming
//! message under it and enqueues the account's events before releasing it, so each account
//! sees its events in the order the server sent them.

mod account;
mod driver;
pub(crate) mod scheduler;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_connector::{ConnectionState, ConnectorError, ConnectorEvent, SessionInfo};
use mirror_model::{ClientOrderId, Price};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::codec::encode_message;
use crate::connector::CtraderConnector;
use crate::error::CtraderError;
use crate::proto::{
    OpenApiMessage, ProtoErrorRes, ProtoMessage, ProtoOAErrorRes, ProtoOAGetAccountListByAccessTokenReq,
    ProtoOAGetAccountListByAccessTokenRes, ProtoOAOrder, ProtoOAOrderErrorEvent, is_historical,
};
use crate::tls::{TlsTrust, client_config};
use crate::tracker::{Resolution, Tracker};
use scheduler::{Lane, Queued, RateWindow, Scheduler};

pub(crate) use account::{call, refresh_tokens, restore};
pub(crate) use driver::{ensure_running as ensure_driver, start_restore};

/// cTrader's request limits for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests of any kind in one window (cTrader: 50 per second).
    pub requests: usize,
    /// Historical requests (deal, order, trend bar and tick history) in one window (5).
    pub historical: usize,
    /// The window (one second).
    pub window: Duration,
    /// Added to the window on our side, so that jitter between our write and the server's
    /// read never shows the server more than the limit in any window of its own.
    pub guard: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self { requests: 50, historical: 5, window: Duration::from_secs(1), guard: Duration::from_millis(100) }
    }
}

/// The OAuth tokens a session uses.
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token (about 30 days).
    pub access_token: String,
    /// The refresh token, when the session may refresh by itself.
    pub refresh_token: Option<String>,
    /// Seconds the access token lives, when a refresh told.
    pub expires_in_s: Option<i64>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are credentials: never printed.
        f.debug_struct("Tokens").field("expires_in_s", &self.expires_in_s).finish_non_exhaustive()
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct SessionConfig {
    /// Host (`live.ctraderapi.com`, `demo.ctraderapi.com`, or a simulator's address).
    pub host: String,
    /// Port (5035 for protobuf).
    pub port: u16,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// Which certificates to trust.
    pub trust: TlsTrust,
    /// The application's client id.
    pub client_id: String,
    /// The application's client secret.
    pub client_secret: String,
    /// Access and refresh tokens.
    pub tokens: Tokens,
    /// Request limits.
    pub limits: RateLimits,
    /// Longest wait for TCP and TLS to come up.
    pub connect_timeout: Duration,
    /// Longest wait for one request, queueing included (the rate limit can hold a request
    /// while a large fan-out drains).
    pub request_timeout: Duration,
    /// Longest wait for a place, close or cancel, reconnects and reconciliation included.
    pub order_timeout: Duration,
    /// Longest wait for a write to the socket.
    pub write_timeout: Duration,
    /// How far back `order_history` looks for an order the session has not seen (one
    /// historical request per page of the broker's order list).
    pub history_lookback: Duration,
    /// A heartbeat goes out when nothing was sent for this long (cTrader: at least every 10 s).
    pub heartbeat_interval: Duration,
    /// The connection is taken for dead when nothing arrives for this long.
    pub read_idle_timeout: Duration,
    /// First reconnect delay; doubled after each failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
    /// Requests waiting per account; a new one is refused (nothing sent) when it is full.
    pub account_queue_capacity: usize,
    /// Session requests waiting (authorisations, reconciliation); refused beyond.
    pub session_queue_capacity: usize,
    /// Events buffered per account; quotes are dropped past half of it, and a consumer that
    /// falls a whole buffer behind is resynchronised by reconciliation.
    pub event_capacity: usize,
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("server_name", &self.server_name)
            .field("client_id", &self.client_id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl SessionConfig {
    /// A configuration with cTrader's limits and Mirror's default timeouts.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        tokens: Tokens,
    ) -> Self {
        let host = host.into();
        Self {
            server_name: host.clone(),
            host,
            port,
            trust: TlsTrust::PublicRoots,
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            tokens,
            limits: RateLimits::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            order_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            history_lookback: Duration::from_secs(7 * 24 * 3_600),
            heartbeat_interval: Duration::from_secs(8),
            read_idle_timeout: Duration::from_secs(40),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            account_queue_capacity: 1_024,
            session_queue_capacity: 16_384,
            event_capacity: 65_536,
        }
    }

    /// Spotware's live endpoint (`live.ctraderapi.com:5035`).
    pub fn live(client_id: impl Into<String>, client_secret: impl Into<String>, tokens: Tokens) -> Self {
        Self::new("live.ctraderapi.com", 5035, client_id, client_secret, tokens)
    }

    /// Spotware's demo endpoint (`demo.ctraderapi.com:5035`).
    pub fn demo(client_id: impl Into<String>, client_secret: impl Into<String>, tokens: Tokens) -> Self {
        Self::new("demo.ctraderapi.com", 5035, client_id, client_secret, tokens)
    }
}

/// One trading account the access token grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraderAccount {
    /// The id every request carries.
    pub ctid_trader_account_id: i64,
    /// The login shown in cTrader's interface.
    pub trader_login: Option<i64>,
    /// Live (`true`) or demo.
    pub is_live: bool,
}

/// Counters of one session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Requests written to the socket (heartbeats not counted).
    pub requests_sent: u64,
    /// Heartbeats written.
    pub heartbeats_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Connections established (TLS up).
    pub connections: u64,
    /// Requests refused because their queue was full.
    pub queue_full: u64,
    /// Quotes dropped because a consumer was behind.
    pub quotes_dropped: u64,
    /// Event streams that overflowed and were resynchronised.
    pub streams_overflowed: u64,
    /// `REQUEST_FREQUENCY_EXCEEDED` answers received (should stay 0).
    pub rate_limited: u64,
}

/// One request written to the socket, for latency measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireWrite {
    /// The account the request is for (none for session requests).
    pub account: Option<i64>,
    /// Its payload type.
    pub payload_type: u32,
    /// When its last byte was handed to the socket.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Counters {
    requests_sent: AtomicU64,
    heartbeats_sent: AtomicU64,
    frames_received: AtomicU64,
    connections: AtomicU64,
    queue_full: AtomicU64,
    quotes_dropped: AtomicU64,
    streams_overflowed: AtomicU64,
    rate_limited: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SessionStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SessionStats {
            requests_sent: read(&self.requests_sent),
            heartbeats_sent: read(&self.heartbeats_sent),
            frames_received: read(&self.frames_received),
            connections: read(&self.connections),
            queue_full: read(&self.queue_full),
            quotes_dropped: read(&self.quotes_dropped),
            streams_overflowed: read(&self.streams_overflowed),
            rate_limited: read(&self.rate_limited),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The connection as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// Not connected (or between attempts).
    Down,
    /// Connected and the application authenticated, on this connection generation.
    Up(u64),
    /// Stopped for good: shut down, or the application's credentials refused.
    Failed(String),
}

/// One account as its connector waits on it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum AccountStatus {
    /// Not authorised on the current connection.
    Down,
    /// Authorised and reconciled: trading flows.
    Ready(SessionInfo),
    /// Refused for good (credentials, unknown account).
    Failed(ConnectorError),
}

/// Free places an account's stream must have before a message is applied to it: one message
/// causes at most a handful of events (a netting turn-over: fill, close, open, balance).
const EVENT_HEADROOM: usize = 16;

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const ABANDONED: u8 = 2;

/// Whether a request is still queued, on the wire, or given up by its caller. The writer and
/// the caller race on it with compare-and-swap, so a request is either sent or dropped, and
/// its caller knows which.
#[derive(Debug)]
pub(crate) struct Ticket {
    state: AtomicU8,
}

impl Ticket {
    fn new() -> Self {
        Self { state: AtomicU8::new(QUEUED) }
    }

    fn mark_sent(&self) -> bool {
        self.state.compare_exchange(QUEUED, SENT, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Gives the request up; `true` when it had already been sent.
    fn abandon(&self) -> bool {
        self.state.compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_err()
    }

    fn sent(&self) -> bool {
        self.state.load(Ordering::Acquire) == SENT
    }
}

pub(crate) type Reply = Result<ProtoMessage, CtraderError>;

/// What a request is for, when its answer needs more than a reply.
#[derive(Clone, Debug)]
pub(crate) enum Meta {
    /// Nothing special.
    Plain,
    /// An order carrying Mirror's client id: its outcome must be settled if the answer is lost.
    Order { client_id: ClientOrderId },
    /// The first snapshot of an account: taken without events.
    Baseline,
    /// The snapshot after a reconnect, with the order history of the gap.
    Restore { history: Arc<Vec<ProtoOAOrder>>, in_doubt: Vec<ClientOrderId> },
    /// A snapshot for the event stream, with the balance and equity read just before.
    Snapshot { account: mirror_connector::AccountSnapshot },
}

pub(crate) struct Outgoing {
    msg_id: String,
    frame: Vec<u8>,
    payload_type: u32,
    account: Option<i64>,
    historical: bool,
    ticket: Arc<Ticket>,
    reply: Option<oneshot::Sender<Reply>>,
    meta: Meta,
    operation: &'static str,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing").field("msg_id", &self.msg_id).field("payload_type", &self.payload_type).finish()
    }
}

impl Queued for Outgoing {
    fn historical(&self) -> bool {
        self.historical
    }

    fn abandoned(&self) -> bool {
        self.ticket.state.load(Ordering::Acquire) == ABANDONED
    }
}

/// A request on the wire, waiting for its answer.
pub(crate) struct Inflight {
    reply: oneshot::Sender<Reply>,
    account: Option<i64>,
    meta: Meta,
    operation: &'static str,
    sent_unix_ms: i64,
}

/// One account on the session.
pub(crate) struct AccountSlot {
    events_tx: flume::Sender<ConnectorEvent>,
    pub(crate) events_rx: flume::Receiver<ConnectorEvent>,
    /// Its connector asked to be connected.
    pub(crate) wanted: bool,
    /// The connection generation it is authorised and reconciled on.
    pub(crate) ready_generation: Option<u64>,
    /// A restore is running for this generation.
    pub(crate) restoring: Option<u64>,
    pub(crate) status: watch::Sender<AccountStatus>,
    pub(crate) tracker: Tracker,
    pub(crate) info: Option<SessionInfo>,
    /// Spot subscriptions, renewed after a reconnect.
    pub(crate) spots: BTreeSet<i64>,
    /// Orders sent whose answer never came, with when they were sent.
    pub(crate) in_doubt: BTreeMap<ClientOrderId, i64>,
    /// Orders that were in doubt and turned out refused.
    pub(crate) refused: HashMap<ClientOrderId, mirror_connector::RejectReason>,
    /// Stop loss and take profit to set once a market order has filled.
    pub(crate) protect_after_fill: HashMap<ClientOrderId, (Option<Price>, Option<Price>)>,
    /// The symbol catalog must be fetched again.
    pub(crate) symbols_stale: bool,
    capacity: usize,
}

impl AccountSlot {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(16);
        let (events_tx, events_rx) = flume::bounded(capacity);
        Self {
            events_tx,
            events_rx,
            wanted: false,
            ready_generation: None,
            restoring: None,
            status: watch::channel(AccountStatus::Down).0,
            tracker: Tracker::new(),
            info: None,
            spots: BTreeSet::new(),
            in_doubt: BTreeMap::new(),
            refused: HashMap::new(),
            protect_after_fill: HashMap::new(),
            symbols_stale: false,
            capacity,
        }
    }

    /// Whether the account's events are applied: it is authorised, or being restored. An
    /// account out of step ignores events; the next restore reports the difference.
    pub(crate) fn in_step(&self) -> bool {
        self.ready_generation.is_some() || self.restoring.is_some()
    }

    /// Whether the stream has room for the events one message can cause.
    pub(crate) fn has_room(&self) -> bool {
        self.events_tx.len() + EVENT_HEADROOM <= self.capacity
    }

    /// Enqueues an event. Quotes give way when the stream is half full; everything else has
    /// room, because a message is only applied when [`AccountSlot::has_room`].
    pub(crate) fn emit(&mut self, event: ConnectorEvent, counters: &CountersRef<'_>) {
        if event.is_droppable() && self.events_tx.len() >= self.capacity / 2 {
            bump(&counters.0.quotes_dropped);
            return;
        }
        if self.events_tx.try_send(event).is_err() {
            tracing::error!(capacity = self.capacity, "cTrader event stream full; event lost");
        }
    }

    /// The consumer fell a whole stream behind: the account stops applying events (its
    /// tracker keeps what the consumer was told) and is resynchronised by a restore once the
    /// consumer has caught up.
    pub(crate) fn fall_out_of_step(&mut self, counters: &CountersRef<'_>) {
        bump(&counters.0.streams_overflowed);
        tracing::error!(
            capacity = self.capacity,
            "cTrader event stream overflowed; the account will be resynchronised"
        );
        self.ready_generation = None;
        self.restoring = None;
        self.status.send_replace(AccountStatus::Down);
    }

    /// Whether the consumer has caught up after an overflow.
    pub(crate) fn drained(&self) -> bool {
        self.events_tx.len() <= self.capacity / 2
    }

    pub(crate) fn set_status(&self, status: AccountStatus) {
        self.status.send_replace(status);
    }
}

/// Borrowed counters, so that slots can count without holding the shared state.
pub(crate) struct CountersRef<'a>(&'a Counters);

/// Everything behind the session's mutex.
pub(crate) struct Core {
    pub(crate) scheduler: Scheduler<Outgoing>,
    inflight: HashMap<String, Inflight>,
    pub(crate) accounts: BTreeMap<i64, AccountSlot>,
    pub(crate) tokens: Tokens,
    pub(crate) generation: u64,
    pub(crate) app_authed: bool,
    driver_running: bool,
    pub(crate) stopping: bool,
    pub(crate) went_down_unix_ms: Option<i64>,
    tap: Option<flume::Sender<WireWrite>>,
}

pub(crate) struct Shared {
    pub(crate) config: SessionConfig,
    tls: tokio_rustls::TlsConnector,
    core: Mutex<Core>,
    writer_wake: Notify,
    shutdown: Notify,
    pub(crate) link: watch::Sender<Link>,
    counters: Counters,
    next_msg: AtomicU64,
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // Nothing is left half-written under this lock that matters more than going on.
        self.core.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn counters(&self) -> CountersRef<'_> {
        CountersRef(&self.counters)
    }

    /// Queues a request; the returned handle waits for its answer.
    pub(crate) fn enqueue<M: OpenApiMessage>(
        self: &Arc<Self>,
        lane: Lane,
        message: &M,
        meta: Meta,
        operation: &'static str,
    ) -> Result<Pending, CtraderError> {
        let msg_id = format!("c{:x}", self.next_msg.fetch_add(1, Ordering::Relaxed));
        // Encoding happens here, on the caller's task, not on the writer.
        let frame = encode_message(message, Some(msg_id.clone()))?;
        let (reply, answer) = oneshot::channel();
        let ticket = Arc::new(Ticket::new());
        let account = match lane {
            Lane::Account(account) => Some(account),
            _ => None,
        };
        let client_id = match &meta {
            Meta::Order { client_id } => Some(*client_id),
            _ => None,
        };
        let item = Outgoing {
            msg_id,
            frame,
            payload_type: M::PAYLOAD_TYPE,
            account,
            historical: is_historical(M::PAYLOAD_TYPE),
            ticket: Arc::clone(&ticket),
            reply: Some(reply),
            meta,
            operation,
        };
        {
            let mut core = self.lock();
            if core.stopping {
                return Err(CtraderError::Down("the session is shut down".into()));
            }
            if core.scheduler.push(lane, item).is_err() {
                bump(&self.counters.queue_full);
                let capacity = match lane {
                    Lane::Account(_) => core.scheduler.account_capacity(),
                    _ => self.config.session_queue_capacity,
                };
                return Err(CtraderError::QueueFull { capacity });
            }
        }
        self.writer_wake.notify_one();
        Ok(Pending {
            shared: Arc::clone(self),
            answer,
            ticket,
            account,
            client_id,
            operation,
            queued: Instant::now(),
            finished: false,
        })
    }

    pub(crate) fn wake_writer(&self) {
        self.writer_wake.notify_one();
    }

    /// Records that an order's answer will not come to its caller.
    fn mark_in_doubt(&self, account: i64, client_id: ClientOrderId) {
        let mut core = self.lock();
        if let Some(slot) = core.accounts.get_mut(&account) {
            // Already known to the broker (its event came first): nothing is in doubt.
            if slot.tracker.order_of(&client_id).is_none() {
                slot.in_doubt.entry(client_id).or_insert_with(unix_ms);
            }
        }
    }
}

/// A queued request's handle. Dropping it before the answer gives the request up: it is not
/// sent if it is still queued, and an order already sent is marked in doubt.
pub(crate) struct Pending {
    shared: Arc<Shared>,
    answer: oneshot::Receiver<Reply>,
    ticket: Arc<Ticket>,
    account: Option<i64>,
    client_id: Option<ClientOrderId>,
    operation: &'static str,
    queued: Instant,
    finished: bool,
}

impl Pending {
    /// The answer, or an error when `deadline` passes or the connection drops.
    pub(crate) async fn wait(mut self, deadline: Instant) -> Reply {
        let outcome = tokio::time::timeout_at(deadline, &mut self.answer).await;
        self.finished = true;
        match outcome {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(CtraderError::ConnectionLost { operation: self.operation, sent: self.ticket.sent() }),
            Err(_) => {
                // The answer may have landed as the timer fired.
                if let Ok(reply) = self.answer.try_recv() {
                    return reply;
                }
                let sent = self.give_up();
                Err(CtraderError::Timeout { operation: self.operation, timeout: deadline - self.queued, sent })
            }
        }
    }

    /// Gives the request up; `true` when it was already on the wire.
    fn give_up(&self) -> bool {
        let sent = self.ticket.abandon();
        if sent && let (Some(account), Some(client_id)) = (self.account, self.client_id) {
            self.shared.mark_in_doubt(account, client_id);
        }
        sent
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.finished {
            self.give_up();
        }
    }
}

/// The server's refusal in an answer: its error code and words.
pub(crate) fn refusal(reply: &ProtoMessage) -> Option<(String, String)> {
    match reply.payload_type {
        t if t == ProtoOAErrorRes::PAYLOAD_TYPE => {
            let error = reply.unpack::<ProtoOAErrorRes>().ok()?;
            Some((error.error_code, error.description.unwrap_or_default()))
        }
        t if t == ProtoErrorRes::PAYLOAD_TYPE => {
            let error = reply.unpack::<ProtoErrorRes>().ok()?;
            Some((error.error_code, error.description.unwrap_or_default()))
        }
        t if t == ProtoOAOrderErrorEvent::PAYLOAD_TYPE => {
            let error = reply.unpack::<ProtoOAOrderErrorEvent>().ok()?;
            Some((error.error_code, error.description.unwrap_or_default()))
        }
        _ => None,
    }
}

/// The answer as an `R`, or the server's refusal.
pub(crate) fn expect<R: OpenApiMessage>(reply: &ProtoMessage, operation: &'static str) -> Result<R, CtraderError> {
    if reply.payload_type == R::PAYLOAD_TYPE {
        return Ok(reply.unpack::<R>()?);
    }
    match refusal(reply) {
        Some((code, description)) => Err(CtraderError::Refused { operation, code, description }),
        None => Err(CtraderError::Protocol(format!(
            "{operation}: expected payload type {}, got {}",
            R::PAYLOAD_TYPE,
            reply.payload_type
        ))),
    }
}

/// A connection to a cTrader Open API endpoint shared by many accounts. Cheap to clone.
#[derive(Clone)]
pub struct CtraderSession {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CtraderSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CtraderSession").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl CtraderSession {
    /// A session for `config`. Nothing connects until [`CtraderSession::connect`] or a
    /// connector's `connect`.
    pub fn new(config: SessionConfig) -> Result<Self, CtraderError> {
        let tls = tokio_rustls::TlsConnector::from(client_config(&config.trust)?);
        let limits = config.limits;
        let scheduler = Scheduler::new(
            config.account_queue_capacity,
            config.session_queue_capacity,
            RateWindow::new(limits.requests, limits.window + limits.guard),
            RateWindow::new(limits.historical, limits.window + limits.guard),
        );
        let core = Core {
            scheduler,
            inflight: HashMap::new(),
            accounts: BTreeMap::new(),
            tokens: config.tokens.clone(),
            generation: 0,
            app_authed: false,
            driver_running: false,
            stopping: false,
            went_down_unix_ms: None,
            tap: None,
        };
        let shared = Shared {
            config,
            tls,
            core: Mutex::new(core),
            writer_wake: Notify::new(),
            shutdown: Notify::new(),
            link: watch::channel(Link::Down).0,
            counters: Counters::default(),
            next_msg: AtomicU64::new(1),
            refresh_lock: tokio::sync::Mutex::new(()),
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Starts the connection (if it is not running) and waits until the application is
    /// authenticated.
    pub async fn connect(&self) -> Result<(), CtraderError> {
        driver::ensure_running(&self.shared);
        let mut link = self.shared.link.subscribe();
        let wait = self.shared.config.connect_timeout + self.shared.config.request_timeout;
        let outcome = tokio::time::timeout(wait, link.wait_for(|l| matches!(l, Link::Up(_) | Link::Failed(_)))).await;
        match outcome {
            Ok(Ok(link)) => match &*link {
                Link::Failed(reason) => Err(CtraderError::Down(reason.clone())),
                _ => Ok(()),
            },
            Ok(Err(_)) => Err(CtraderError::Down("the session is gone".into())),
            Err(_) => Err(CtraderError::Timeout { operation: "connect", timeout: wait, sent: false }),
        }
    }

    /// The trading accounts the access token grants.
    pub async fn account_list(&self) -> Result<Vec<TraderAccount>, CtraderError> {
        self.connect().await?;
        let access_token = self.shared.lock().tokens.access_token.clone();
        let request = ProtoOAGetAccountListByAccessTokenReq { payload_type: None, access_token };
        let deadline = Instant::now() + self.shared.config.request_timeout;
        let list: ProtoOAGetAccountListByAccessTokenRes =
            call(&self.shared, Lane::Session, &request, Meta::Plain, "account list", deadline).await?;
        Ok(list
            .ctid_trader_account
            .iter()
            .filter_map(|account| {
                Some(TraderAccount {
                    ctid_trader_account_id: i64::try_from(account.ctid_trader_account_id).ok()?,
                    trader_login: account.trader_login,
                    is_live: account.is_live.unwrap_or(false),
                })
            })
            .collect())
    }

    /// Exchanges the refresh token for new tokens now (the session also does it by itself
    /// when the server says the access token expired). Store the result: the old refresh
    /// token is spent.
    pub async fn refresh_token(&self) -> Result<Tokens, CtraderError> {
        self.connect().await?;
        let stale = self.shared.lock().tokens.access_token.clone();
        refresh_tokens(&self.shared, &stale).await
    }

    /// The tokens in use now (they change when the session refreshes them).
    pub fn tokens(&self) -> Tokens {
        self.shared.lock().tokens.clone()
    }

    /// The connector of one trading account on this session (created once per account; a
    /// second call returns a connector for the same account and event stream).
    pub fn connector(&self, ctid_trader_account_id: i64) -> CtraderConnector {
        let events = {
            let mut core = self.shared.lock();
            let capacity = self.shared.config.event_capacity;
            core.accounts.entry(ctid_trader_account_id).or_insert_with(|| AccountSlot::new(capacity)).events_rx.clone()
        };
        CtraderConnector::new(Arc::clone(&self.shared), ctid_trader_account_id, events)
    }

    /// Counters.
    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// Requests queued for one account.
    pub fn queued(&self, ctid_trader_account_id: i64) -> usize {
        self.shared.lock().scheduler.queued(ctid_trader_account_id)
    }

    /// A stream of every request written to the socket, with its time (for latency
    /// measurement). Bounded: records that do not fit are dropped, never waited for.
    pub fn wire_tap(&self, capacity: usize) -> flume::Receiver<WireWrite> {
        let (sender, receiver) = flume::bounded(capacity.max(1));
        self.shared.lock().tap = Some(sender);
        receiver
    }

    /// Whether the connection is up and the application authenticated.
    pub fn is_up(&self) -> bool {
        matches!(*self.shared.link.borrow(), Link::Up(_))
    }

    /// Closes the connection and stops reconnecting. Every account reports `Disconnected`.
    pub async fn shutdown(&self) {
        {
            let mut core = self.shared.lock();
            core.stopping = true;
            for slot in core.accounts.values_mut() {
                slot.wanted = false;
            }
        }
        self.shared.shutdown.notify_waiters();
        self.shared.shutdown.notify_one();
        let mut link = self.shared.link.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), link.wait_for(|l| matches!(l, Link::Failed(_)))).await;
    }
}

/// A connection-state event.
pub(crate) fn connection_event(state: ConnectionState) -> ConnectorEvent {
    ConnectorEvent::Connection(state)
}

/// An order whose answer is a refusal is settled: a caller that gave up on it learns the
/// refusal instead of resending blindly.
pub(crate) fn settle_refusal(slot: &mut AccountSlot, client_id: ClientOrderId, reply: &ProtoMessage) {
    if slot.in_doubt.remove(&client_id).is_some()
        && let Some((code, description)) = refusal(reply)
    {
        let reason =
            mirror_connector::RejectReason::new(crate::error::reject_code(&code), format!("{code}: {description}"));
        slot.refused.insert(client_id, reason);
    }
}

/// A resolution settled by reconciliation.
pub(crate) fn settle_resolution(slot: &mut AccountSlot, client_id: ClientOrderId, resolution: Resolution) {
    slot.in_doubt.remove(&client_id);
    if let Resolution::Rejected(reason) = resolution {
        slot.refused.insert(client_id, reason);
    }
}
