//! A `Connector` for one account of a simulated broker served by a [`crate::SimServer`] in
//! another process (or task), over TCP.
//!
//! Each [`Connector::connect`] opens one connection (one session). While it is up, a reader
//! task routes responses to their callers and events to the event stream, and a writer task
//! sends requests and pings. When the connection drops for any reason other than
//! [`Connector::disconnect`], the stream gets `ConnectionState::Reconnecting` and calls fail
//! with `NotConnected` until `connect` is called again.
//!
//! # Bounds and what happens when they are reached
//!
//! - The event stream holds [`RemoteSimConfig::event_capacity`] events. Quotes are dropped
//!   once it is half full; for anything else the reader waits for room, which stops reading
//!   from the socket (the server then disconnects the slow consumer).
//! - Requests wait for the writer in a queue of [`RemoteSimConfig::outbound_capacity`] frames;
//!   a caller waits for room within its request timeout.
//! - Every wait on the network has a timeout: connecting and logging in
//!   ([`RemoteSimConfig::connect_timeout`]), each call ([`RemoteSimConfig::request_timeout`]),
//!   each write ([`RemoteSimConfig::write_timeout`]) and silence from the server
//!   ([`RemoteSimConfig::idle_timeout`]; the server answers the pings sent every
//!   [`RemoteSimConfig::heartbeat_interval`]).
//!
//! A call whose request may have reached the server when its connection dropped or its time
//! ran out fails with `ConnectionLost` or `Timeout`, whose outcome is unknown: it is never
//! reported as a refusal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use mirror_connector::{
    AccountSnapshot, CancelRequest, CloseRequest, ConnectionState, Connector, ConnectorError, ConnectorEvent,
    EventStream, ModifyRequest, OrderLookup, PlaceAck, SessionInfo, WorkingOrder,
};
use mirror_model::{ClientOrderId, InstrumentSpec, OrderRequest, Platform, Position, Symbol};
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::protocol::{
    Call, ClientFrame, DEFAULT_MAX_FRAME_BYTES, LinkError, Login, PROTOCOL_VERSION, Reply, ServerFrame, encode,
    read_frame, until,
};

/// Where a [`RemoteSimConnector`] connects, as whom, and its limits and timeouts.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSimConfig {
    /// The server's address (`host:port`).
    pub server: String,
    /// The account's name at the simulated broker.
    pub account: String,
    /// The account's password, if it has one (the simulated accounts have none today).
    pub password: Option<String>,
    /// Longest wait for the connection and the login together.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to one call.
    pub request_timeout: Duration,
    /// How often a ping is sent, which keeps both sides' idle timeouts from firing.
    pub heartbeat_interval: Duration,
    /// The connection is given up when nothing arrives from the server for this long.
    pub idle_timeout: Duration,
    /// Longest wait for one write to the socket.
    pub write_timeout: Duration,
    /// Capacity of the event stream.
    pub event_capacity: usize,
    /// Requests waiting for the writer.
    pub outbound_capacity: usize,
    /// Largest frame sent or read, in bytes.
    pub max_frame_bytes: usize,
}

impl RemoteSimConfig {
    /// Settings for `account` at the server at `server` (`host:port`), with default limits.
    pub fn new(server: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            account: account.into(),
            password: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            event_capacity: 65_536,
            outbound_capacity: 1_024,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl std::fmt::Debug for RemoteSimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never logged.
        f.debug_struct("RemoteSimConfig")
            .field("server", &self.server)
            .field("account", &self.account)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("outbound_capacity", &self.outbound_capacity)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .finish()
    }
}

/// One account of a simulated broker served over TCP by a [`crate::SimServer`], seen through
/// the `Connector` trait. Cheap to clone; the connection closes when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct RemoteSimConnector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RemoteSimConfig,
    events_tx: flume::Sender<ConnectorEvent>,
    events_rx: flume::Receiver<ConnectorEvent>,
    /// The current connection, if any (possibly one that has just dropped).
    link: Mutex<Option<Arc<Link>>>,
    /// Serializes `connect` and `disconnect`.
    connecting: tokio::sync::Mutex<()>,
    next_link: AtomicU64,
    quotes_dropped: Arc<AtomicU64>,
}

impl Inner {
    fn link(&self) -> MutexGuard<'_, Option<Arc<Link>>> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection, when it is up.
    fn live(&self) -> Result<Arc<Link>, ConnectorError> {
        self.link().as_ref().filter(|link| link.is_open()).cloned().ok_or(ConnectorError::NotConnected)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(link) = self.link().take() {
            link.quiet.store(true, Ordering::SeqCst);
            link.close("the connector was dropped");
            link.abort_tasks();
        }
    }
}

/// A caller waiting for its answer.
#[derive(Debug)]
struct Waiting {
    operation: &'static str,
    reply: oneshot::Sender<Result<Reply, ConnectorError>>,
}

#[derive(Debug, Default)]
struct Calls {
    /// Why the connection closed, once it has.
    closed: Option<String>,
    waiting: HashMap<u64, Waiting>,
}

/// One connection (one session).
#[derive(Debug)]
struct Link {
    id: u64,
    session: SessionInfo,
    /// Encoded frames for the writer.
    out: mpsc::Sender<Vec<u8>>,
    calls: Mutex<Calls>,
    next_request: AtomicU64,
    /// Set once the connection is closing; the reader and the writer stop.
    shut: watch::Sender<bool>,
    /// Set by `disconnect`: the end is not reported as `Reconnecting`.
    quiet: AtomicBool,
    /// Set when the reader has ended and reported the end.
    finished: watch::Sender<bool>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Link {
    fn calls(&self) -> MutexGuard<'_, Calls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_open(&self) -> bool {
        !*self.shut.borrow()
    }

    /// Closes the connection (once): every caller still waiting learns that its request may
    /// or may not have been executed, and the reader and writer stop.
    fn close(&self, reason: &str) {
        let waiting = {
            let mut calls = self.calls();
            if calls.closed.is_some() {
                return;
            }
            calls.closed = Some(reason.to_owned());
            std::mem::take(&mut calls.waiting)
        };
        self.shut.send_replace(true);
        for (_, waiting) in waiting {
            let lost = ConnectorError::ConnectionLost { operation: waiting.operation, detail: reason.to_owned() };
            let _ = waiting.reply.send(Err(lost));
        }
    }

    fn reason(&self) -> String {
        self.calls().closed.clone().unwrap_or_else(|| "the connection closed".to_owned())
    }

    fn register(
        &self,
        id: u64,
        operation: &'static str,
    ) -> Result<oneshot::Receiver<Result<Reply, ConnectorError>>, ConnectorError> {
        let mut calls = self.calls();
        if calls.closed.is_some() {
            return Err(ConnectorError::NotConnected);
        }
        let (reply, answer) = oneshot::channel();
        calls.waiting.insert(id, Waiting { operation, reply });
        Ok(answer)
    }

    fn forget(&self, id: u64) {
        self.calls().waiting.remove(&id);
    }

    fn complete(&self, id: u64, result: Result<Reply, ConnectorError>) {
        match self.calls().waiting.remove(&id) {
            Some(waiting) => {
                let _ = waiting.reply.send(result);
            }
            None => tracing::debug!(link = self.id, id, "an answer came after its caller gave up"),
        }
    }

    fn abort_tasks(&self) {
        for task in self.tasks.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            task.abort();
        }
    }

    /// Waits (at most `limit`) until the reader has reported the connection's end.
    async fn wait_finished(&self, limit: Duration) -> bool {
        let mut finished = self.finished.subscribe();
        tokio::time::timeout(limit, until(&mut finished, |finished| *finished)).await.is_ok()
    }
}

/// Marks the reader finished however it ends (returns, or aborted).
struct FinishedGuard(Arc<Link>);

impl Drop for FinishedGuard {
    fn drop(&mut self) {
        self.0.finished.send_replace(true);
    }
}

impl RemoteSimConnector {
    /// A connector with these settings; nothing is sent until [`Connector::connect`].
    pub fn new(config: RemoteSimConfig) -> Self {
        let (events_tx, events_rx) = flume::bounded(config.event_capacity.max(16));
        Self {
            inner: Arc::new(Inner {
                config,
                events_tx,
                events_rx,
                link: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                next_link: AtomicU64::new(1),
                quotes_dropped: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &RemoteSimConfig {
        &self.inner.config
    }

    /// The account's name at the broker.
    pub fn account_name(&self) -> &str {
        &self.inner.config.account
    }

    /// Quotes dropped because the event stream was more than half full.
    pub fn quotes_dropped(&self) -> u64 {
        self.inner.quotes_dropped.load(Ordering::Relaxed)
    }

    /// Sends one call and waits for its answer.
    async fn call(&self, call: Call) -> Result<Reply, ConnectorError> {
        let config = &self.inner.config;
        let operation = call.operation();
        let link = self.inner.live()?;
        let id = link.next_request.fetch_add(1, Ordering::Relaxed);
        let frame = encode(&ClientFrame::Request { id, call }, config.max_frame_bytes)
            .map_err(|error| ConnectorError::Protocol(format!("{operation} cannot be sent: {error}")))?;
        let answer = link.register(id, operation)?;
        let timeout = config.request_timeout;
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, link.out.send(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                // The writer is gone: the request never left.
                link.forget(id);
                return Err(ConnectorError::NotConnected);
            }
            Err(_) => {
                link.forget(id);
                return Err(ConnectorError::Timeout { operation, timeout });
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConnectorError::ConnectionLost { operation, detail: link.reason() }),
            Err(_) => {
                link.forget(id);
                Err(ConnectorError::Timeout { operation, timeout })
            }
        }
    }

    /// Opens a connection and logs in, by `deadline`.
    async fn open(
        &self,
        deadline: Instant,
    ) -> Result<(BufReader<OwnedReadHalf>, OwnedWriteHalf, SessionInfo), ConnectorError> {
        let config = &self.inner.config;
        let login = async {
            let stream = TcpStream::connect(&config.server).await.map_err(|error| {
                tracing::warn!(server = config.server, %error, "cannot reach the simulated broker");
                ConnectorError::NotConnected
            })?;
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set");
            }
            let (read, mut write) = stream.into_split();
            let login = ClientFrame::Login(Login {
                account: config.account.clone(),
                password: config.password.clone(),
                protocol: PROTOCOL_VERSION,
            });
            let frame =
                encode(&login, config.max_frame_bytes).map_err(|error| ConnectorError::Protocol(error.to_string()))?;
            write.write_all(&frame).await.map_err(|error| lost("connect", &error.into()))?;
            let mut reader = BufReader::new(read);
            let mut buffer = Vec::new();
            let answer = read_frame::<ServerFrame>(&mut reader, &mut buffer, config.max_frame_bytes)
                .await
                .map_err(|error| lost("connect", &error))?;
            let session = match answer {
                ServerFrame::LoggedIn { session } => session,
                ServerFrame::LoginRefused { error } => return Err(error),
                other => {
                    return Err(ConnectorError::Protocol(format!("expected the login's answer, got {other:?}")));
                }
            };
            if session.broker_account != config.account {
                return Err(ConnectorError::Protocol(format!(
                    "logged in as `{}`, asked for `{}`",
                    session.broker_account, config.account
                )));
            }
            // The reader's buffer may hold the first events already: it goes on to the reader task.
            Ok((reader, write, session))
        };
        let timeout = config.connect_timeout;
        tokio::time::timeout_at(deadline, login)
            .await
            .unwrap_or(Err(ConnectorError::Timeout { operation: "connect", timeout }))
    }
}

fn lost(operation: &'static str, error: &LinkError) -> ConnectorError {
    ConnectorError::ConnectionLost { operation, detail: error.to_string() }
}

fn unexpected(operation: &str, reply: &Reply) -> ConnectorError {
    ConnectorError::Protocol(format!("the answer to {operation} was `{}`", reply.tag()))
}

/// Puts an event in the stream: quotes are dropped when it is more than half full; anything
/// else waits for room.
async fn deliver(events: &flume::Sender<ConnectorEvent>, event: ConnectorEvent, quotes_dropped: &AtomicU64) -> bool {
    if event.is_droppable() {
        let half = events.capacity().unwrap_or(usize::MAX) / 2;
        if events.len() >= half || events.try_send(event).is_err() {
            quotes_dropped.fetch_add(1, Ordering::Relaxed);
        }
        return true;
    }
    events.send_async(event).await.is_ok()
}

/// Reads the server's frames until the connection ends, then reports the end.
async fn read_loop(
    link: Arc<Link>,
    mut reader: BufReader<OwnedReadHalf>,
    events: flume::Sender<ConnectorEvent>,
    config: RemoteSimConfig,
    quotes_dropped: Arc<AtomicU64>,
) {
    let _finished = FinishedGuard(Arc::clone(&link));
    let mut shut = link.shut.subscribe();
    let mut buffer = Vec::new();
    // Whether the server already said the session is down (the broker cut it).
    let mut down_reported = false;
    let reason = loop {
        let frame = tokio::select! {
            biased;
            () = until(&mut shut, |shut| *shut) => break link.reason(),
            read = tokio::time::timeout(
                config.idle_timeout,
                read_frame::<ServerFrame>(&mut reader, &mut buffer, config.max_frame_bytes),
            ) => match read {
                Ok(Ok(frame)) => frame,
                Ok(Err(LinkError::Closed)) => break "the server closed the connection".to_owned(),
                Ok(Err(error)) => break error.to_string(),
                Err(_) => break format!("nothing from the server within {:?}", config.idle_timeout),
            },
        };
        match frame {
            ServerFrame::Response { id, result } => link.complete(id, result),
            ServerFrame::Event { event: ConnectorEvent::Connection(state) } if state != ConnectionState::Connected => {
                // The broker cut the session; the server closes the connection next. From
                // here the connector is down and waits for `connect`.
                let reason = match state {
                    ConnectionState::Reconnecting { reason } | ConnectionState::Disconnected { reason } => reason,
                    ConnectionState::Connected => unreachable!("matched above"),
                };
                link.close(&reason);
                if !link.quiet.load(Ordering::SeqCst) {
                    down_reported = true;
                    let event = ConnectorEvent::Connection(ConnectionState::Reconnecting { reason });
                    if !deliver(&events, event, &quotes_dropped).await {
                        return;
                    }
                }
            }
            ServerFrame::Event { event } => {
                if !deliver(&events, event, &quotes_dropped).await {
                    // Nobody holds the stream any more.
                    return;
                }
            }
            ServerFrame::Pong => {}
            other @ (ServerFrame::LoggedIn { .. } | ServerFrame::LoginRefused { .. }) => {
                break LinkError::Unexpected(format!("{other:?}")).to_string();
            }
        }
    };
    link.close(&reason);
    if !link.quiet.load(Ordering::SeqCst) && !down_reported {
        tracing::warn!(link = link.id, reason, "connection to the simulated broker lost");
        let event = ConnectorEvent::Connection(ConnectionState::Reconnecting { reason });
        let _ = deliver(&events, event, &quotes_dropped).await;
    }
}

/// Writes requests and pings until the connection ends.
async fn write_loop(link: Arc<Link>, write: OwnedWriteHalf, mut out: mpsc::Receiver<Vec<u8>>, config: RemoteSimConfig) {
    let mut writer = BufWriter::new(write);
    let mut shut = link.shut.subscribe();
    let ping = match encode(&ClientFrame::Ping, config.max_frame_bytes) {
        Ok(ping) => ping,
        Err(error) => {
            link.close(&format!("a ping cannot be encoded: {error}"));
            return;
        }
    };
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let failure = loop {
        if out.is_empty()
            && !writer.buffer().is_empty()
            && let Err(error) = within(config.write_timeout, writer.flush()).await
        {
            break Some(error);
        }
        let written = tokio::select! {
            biased;
            () = until(&mut shut, |shut| *shut) => break None,
            frame = out.recv() => match frame {
                Some(frame) => within(config.write_timeout, writer.write_all(&frame)).await,
                None => break None,
            },
            _ = heartbeat.tick() => within(config.write_timeout, writer.write_all(&ping)).await,
        };
        if let Err(error) = written {
            break Some(error);
        }
    };
    if let Some(error) = failure {
        link.close(&error.to_string());
    }
    let _ = tokio::time::timeout(config.write_timeout, writer.shutdown()).await;
}

/// A write under a timeout.
async fn within(limit: Duration, write: impl Future<Output = std::io::Result<()>>) -> Result<(), LinkError> {
    match tokio::time::timeout(limit, write).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout(format!("the server read nothing for {limit:?}"))),
    }
}

#[async_trait]
impl Connector for RemoteSimConnector {
    fn platform(&self) -> Platform {
        Platform::Sim
    }

    async fn connect(&self) -> Result<SessionInfo, ConnectorError> {
        let inner = &self.inner;
        let config = &inner.config;
        let _connecting = inner.connecting.lock().await;
        let deadline = Instant::now() + config.connect_timeout;
        let previous = inner.link().clone();
        if let Some(previous) = previous {
            if previous.is_open() {
                return Ok(previous.session.clone());
            }
            // Let the old connection's `Reconnecting` reach the stream before the new
            // session's `Connected` (half the time allowed; the login gets the rest).
            if !previous.wait_finished(config.connect_timeout / 2).await {
                tracing::warn!(link = previous.id, "the previous connection's reader did not finish in time");
            }
            previous.abort_tasks();
        }
        let (read, write, session) = self.open(deadline).await?;
        let (out_tx, out_rx) = mpsc::channel(config.outbound_capacity.max(1));
        let link = Arc::new(Link {
            id: inner.next_link.fetch_add(1, Ordering::Relaxed),
            session: session.clone(),
            out: out_tx,
            calls: Mutex::new(Calls::default()),
            next_request: AtomicU64::new(1),
            shut: watch::Sender::new(false),
            quiet: AtomicBool::new(false),
            finished: watch::Sender::new(false),
            tasks: Mutex::new(Vec::with_capacity(2)),
        });
        *inner.link() = Some(Arc::clone(&link));
        let reader = tokio::spawn(read_loop(
            Arc::clone(&link),
            read,
            inner.events_tx.clone(),
            config.clone(),
            Arc::clone(&inner.quotes_dropped),
        ));
        let writer = tokio::spawn(write_loop(Arc::clone(&link), write, out_rx, config.clone()));
        link.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([reader.abort_handle(), writer.abort_handle()]);
        tracing::info!(
            link = link.id,
            account = config.account,
            server = config.server,
            "connected to the simulated broker"
        );
        Ok(session)
    }

    async fn disconnect(&self) {
        let inner = &self.inner;
        let _connecting = inner.connecting.lock().await;
        let Some(link) = inner.link().take() else { return };
        let was_open = link.is_open();
        link.quiet.store(true, Ordering::SeqCst);
        link.close("disconnected by the client");
        // Events read before the close stay ahead of `Disconnected`.
        if !link.wait_finished(inner.config.request_timeout).await {
            tracing::warn!(link = link.id, "the reader did not finish in time");
        }
        link.abort_tasks();
        if was_open {
            let event = ConnectorEvent::Connection(ConnectionState::Disconnected {
                reason: "disconnected by the client".to_owned(),
            });
            let sent = tokio::time::timeout(inner.config.request_timeout, inner.events_tx.send_async(event)).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::warn!("the event stream took no `Disconnected` in time");
            }
        }
    }

    fn events(&self) -> EventStream {
        self.inner.events_rx.clone()
    }

    async fn instruments(&self) -> Result<Vec<InstrumentSpec>, ConnectorError> {
        match self.call(Call::Instruments).await? {
            Reply::Instruments { instruments } => Ok(instruments),
            other => Err(unexpected("instruments", &other)),
        }
    }

    async fn account(&self) -> Result<AccountSnapshot, ConnectorError> {
        match self.call(Call::Account).await? {
            Reply::Account { account } => Ok(account),
            other => Err(unexpected("account", &other)),
        }
    }

    async fn place(&self, order: &OrderRequest) -> Result<PlaceAck, ConnectorError> {
        match self.call(Call::Place { order: *order }).await? {
            Reply::Placed { ack } => Ok(ack),
            other => Err(unexpected("place", &other)),
        }
    }

    async fn close(&self, request: &CloseRequest) -> Result<PlaceAck, ConnectorError> {
        match self.call(Call::Close { request: *request }).await? {
            Reply::Placed { ack } => Ok(ack),
            other => Err(unexpected("close", &other)),
        }
    }

    async fn modify(&self, request: &ModifyRequest) -> Result<(), ConnectorError> {
        match self.call(Call::Modify { request: *request }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected("modify", &other)),
        }
    }

    async fn cancel(&self, request: &CancelRequest) -> Result<(), ConnectorError> {
        match self.call(Call::Cancel { request: *request }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected("cancel", &other)),
        }
    }

    async fn open_positions(&self) -> Result<Vec<Position>, ConnectorError> {
        match self.call(Call::OpenPositions).await? {
            Reply::Positions { positions } => Ok(positions),
            other => Err(unexpected("open_positions", &other)),
        }
    }

    async fn open_orders(&self) -> Result<Vec<WorkingOrder>, ConnectorError> {
        match self.call(Call::OpenOrders).await? {
            Reply::Orders { orders } => Ok(orders),
            other => Err(unexpected("open_orders", &other)),
        }
    }

    async fn subscribe_quotes(&self, symbols: &[Symbol]) -> Result<(), ConnectorError> {
        match self.call(Call::SubscribeQuotes { symbols: symbols.to_vec() }).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected("subscribe_quotes", &other)),
        }
    }

    async fn order_history(&self, client_ids: &[ClientOrderId]) -> Result<Vec<OrderLookup>, ConnectorError> {
        match self.call(Call::OrderHistory { client_ids: client_ids.to_vec() }).await? {
            Reply::History { orders } => Ok(orders),
            other => Err(unexpected("order_history", &other)),
        }
    }

    async fn request_snapshot(&self) -> Result<(), ConnectorError> {
        match self.call(Call::RequestSnapshot).await? {
            Reply::Done => Ok(()),
            other => Err(unexpected("request_snapshot", &other)),
        }
    }
}
