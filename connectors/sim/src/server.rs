//! The simulated broker served over TCP, so that a client in another process (the engine,
//! killed and restarted by a crash test) trades accounts whose state outlives it.
//!
//! One connection is one session of one account (see [`crate::protocol`] for the frames).
//! Per connection there is a reader task, which reads requests and executes them against the
//! broker, and the session task, which writes responses and the account's events.
//!
//! # Bounds and what happens when they are reached
//!
//! - Responses wait for the writer in a queue of [`SimServerConfig::outbound_capacity`] frames;
//!   when it is full the reader stops reading (back-pressure through TCP to the client).
//! - At most [`SimServerConfig::max_in_flight`] requests per connection wait out the broker's
//!   simulated latency at once; beyond that the reader stops reading.
//! - Events wait in the account's stream at the broker (`SimConfig::event_capacity`): a client
//!   that stops reading fills it and the broker cuts the session, which ends the connection.
//!   A write that does not complete within [`SimServerConfig::write_timeout`] ends it too
//!   (the slow consumer is disconnected).
//! - A frame is at most [`SimServerConfig::max_frame_bytes`]; a larger one ends the connection.
//! - At most [`SimServerConfig::max_connections`] connections are served; more are closed at
//!   once.
//!
//! # Sessions
//!
//! A connection that closes (the client's process died, or it disconnected) ends its session:
//! the account goes down at the broker, and requests still waiting for their latency are
//! dropped unexecuted. A login for an account that has a session ends that session first, so a
//! client that comes back after a crash is served at once, whatever became of its old socket.
//! Events the broker produced for a session and did not deliver before it ended are not
//! delivered to the next one (the client reconciles from positions and order history).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirror_connector::{ConnectionState, ConnectorError, ConnectorEvent, SessionInfo};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::broker::{SessionStart, SimBroker};
use crate::protocol::{
    Call, ClientFrame, DEFAULT_MAX_FRAME_BYTES, LinkError, Login, PROTOCOL_VERSION, Reply, ServerFrame, encode,
    read_frame, until,
};

/// Limits and timeouts of a [`SimServer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimServerConfig {
    /// How long a new connection has to log in.
    pub login_timeout: Duration,
    /// A connection on which nothing arrives for this long is ended (clients ping while idle).
    pub idle_timeout: Duration,
    /// Longest wait for one frame to be written; a client that reads slower is disconnected.
    pub write_timeout: Duration,
    /// How long a login waits for the account's previous session to end.
    pub takeover_timeout: Duration,
    /// Largest frame read or written, in bytes.
    pub max_frame_bytes: usize,
    /// Responses waiting to be written, per connection (at least 1).
    pub outbound_capacity: usize,
    /// Requests per connection waiting out the broker's simulated latency (at least 1).
    pub max_in_flight: usize,
    /// Connections served at once.
    pub max_connections: usize,
}

impl Default for SimServerConfig {
    fn default() -> Self {
        Self {
            login_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(5),
            takeover_timeout: Duration::from_secs(5),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            outbound_capacity: 1_024,
            max_in_flight: 1_024,
            max_connections: 256,
        }
    }
}

/// A [`SimServer`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimServerError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A [`SimBroker`] reachable over TCP; one connection is one client session of one account.
/// Dropping the server stops it, as [`SimServer::shutdown`] does without waiting.
#[derive(Debug)]
pub struct SimServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    broker: SimBroker,
    config: SimServerConfig,
    /// Set once: the server is stopping.
    stopping: watch::Sender<bool>,
    /// One slot per account that ever logged in (so bounded by the number of accounts),
    /// holding its live session, if any. Its lock serializes logins of the account.
    slots: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Option<SessionHandle>>>>>,
    next_connection: AtomicU64,
}

/// How others reach a running session.
#[derive(Debug)]
struct SessionHandle {
    connection: u64,
    /// Set to end the session (another login of the account, `drop_connections`).
    stop: watch::Sender<bool>,
    /// Closed (its sender dropped) once the session has ended at the broker.
    ended: watch::Receiver<()>,
}

impl SessionHandle {
    fn is_live(&self) -> bool {
        self.ended.has_changed().is_ok()
    }

    /// Ends the session and waits (at most `limit`) until it has ended; whether it did.
    async fn end(mut self, limit: Duration) -> bool {
        self.stop.send_replace(true);
        tokio::time::timeout(limit, async { while self.ended.changed().await.is_ok() {} }).await.is_ok()
    }
}

impl Shared {
    fn slot(&self, account: &str) -> Arc<tokio::sync::Mutex<Option<SessionHandle>>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(account.to_owned()).or_default())
    }

    fn slots(&self) -> Vec<(String, Arc<tokio::sync::Mutex<Option<SessionHandle>>>)> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.iter().map(|(account, slot)| (account.clone(), Arc::clone(slot))).collect()
    }
}

impl SimServer {
    /// Listens on `addr` (port 0 picks a free port; see [`SimServer::local_addr`]) with the
    /// default [`SimServerConfig`]. Must be called inside a tokio runtime.
    pub async fn bind(broker: SimBroker, addr: impl ToSocketAddrs + std::fmt::Debug) -> Result<Self, SimServerError> {
        Self::bind_with(broker, addr, SimServerConfig::default()).await
    }

    /// Listens on `addr` with these limits. Must be called inside a tokio runtime.
    pub async fn bind_with(
        broker: SimBroker,
        addr: impl ToSocketAddrs + std::fmt::Debug,
        config: SimServerConfig,
    ) -> Result<Self, SimServerError> {
        let described = format!("{addr:?}");
        let listener =
            TcpListener::bind(addr).await.map_err(|source| SimServerError::Bind { addr: described.clone(), source })?;
        let local_addr = listener.local_addr().map_err(|source| SimServerError::Bind { addr: described, source })?;
        let shared = Arc::new(Shared {
            broker,
            config,
            stopping: watch::Sender::new(false),
            slots: Mutex::new(BTreeMap::new()),
            next_connection: AtomicU64::new(1),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::info!(%local_addr, "simulated broker serving");
        Ok(Self { shared, local_addr, accept: Some(accept) })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The broker served.
    pub fn broker(&self) -> &SimBroker {
        &self.shared.broker
    }

    /// Drops every live connection of `account`, as a network failure would (the client sees
    /// its connection close). Returns how many were dropped (0 or 1) once they have ended.
    pub async fn drop_connections(&self, account: &str) -> usize {
        let slot = self.shared.slots.lock().unwrap_or_else(PoisonError::into_inner).get(account).cloned();
        let Some(slot) = slot else { return 0 };
        let mut slot = slot.lock().await;
        match slot.take() {
            Some(session) if session.is_live() => {
                let connection = session.connection;
                if !session.end(self.shared.config.takeover_timeout).await {
                    tracing::warn!(account, connection, "a dropped session did not end in time");
                }
                1
            }
            _ => 0,
        }
    }

    /// Accounts with a live session, by name.
    pub async fn live_sessions(&self) -> Vec<String> {
        let mut live = Vec::new();
        for (account, slot) in self.shared.slots() {
            if slot.lock().await.as_ref().is_some_and(SessionHandle::is_live) {
                live.push(account);
            }
        }
        live
    }

    /// Stops accepting connections, ends every session and waits until they have ended.
    pub async fn shutdown(mut self) {
        self.shared.stopping.send_replace(true);
        if let Some(accept) = self.accept.take()
            && let Err(error) = accept.await
        {
            tracing::error!(%error, "the simulated broker's accept loop failed");
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shared.stopping.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    let mut stopping = shared.stopping.subscribe();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            biased;
            () = until(&mut stopping, |stopping| *stopping) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= shared.config.max_connections {
                        tracing::warn!(%peer, max = shared.config.max_connections, "connection refused: too many");
                        continue;
                    }
                    connections.spawn(serve_connection(Arc::clone(&shared), stream, peer));
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // Every session watches `stopping` and ends within a write timeout; wait that long.
    let limit = shared.config.write_timeout + shared.config.takeover_timeout;
    let all_ended = tokio::time::timeout(limit, async { while connections.join_next().await.is_some() {} }).await;
    if all_ended.is_err() {
        tracing::warn!(left = connections.len(), "sessions still running at shutdown were aborted");
    }
}

/// Ends the session at the broker however the session task ends (returns, panics, aborted),
/// then lets waiters know.
struct SessionGuard {
    broker: SimBroker,
    account: String,
    epoch: u64,
    /// Dropped after `drop` has ended the session: closes `SessionHandle::ended`.
    _ended: watch::Sender<()>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.broker.end_session(&self.account, self.epoch);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decides whether a login may open a session: the protocol, the account, and its password
/// when the account has one (never repeated in the refusal).
fn authenticate(broker: &SimBroker, login: &Login) -> Result<(), ConnectorError> {
    if login.protocol != PROTOCOL_VERSION {
        return Err(ConnectorError::Protocol(format!(
            "the server speaks protocol {PROTOCOL_VERSION}, the client {}",
            login.protocol
        )));
    }
    if !broker.account_names().contains(&login.account) {
        return Err(ConnectorError::Auth(format!("the simulated broker has no account `{}`", login.account)));
    }
    if !broker.password_matches(&login.account, login.password.as_deref()) {
        return Err(ConnectorError::Auth(format!("wrong or missing password for `{}`", login.account)));
    }
    Ok(())
}

/// Writes one frame under the write timeout (into the buffer; see `flush`).
async fn write(
    writer: &mut (impl AsyncWrite + Unpin),
    frame: &ServerFrame,
    config: &SimServerConfig,
) -> Result<(), LinkError> {
    let bytes = encode(frame, config.max_frame_bytes)?;
    match tokio::time::timeout(config.write_timeout, writer.write_all(&bytes)).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout(format!("the client read nothing for {:?}", config.write_timeout))),
    }
}

async fn flush(writer: &mut (impl AsyncWrite + Unpin), config: &SimServerConfig) -> Result<(), LinkError> {
    match tokio::time::timeout(config.write_timeout, writer.flush()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(LinkError::Timeout(format!("the client read nothing for {:?}", config.write_timeout))),
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "TCP_NODELAY not set");
    }
    let (read, write_half) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write_half);
    let config = &shared.config;
    let mut buffer = Vec::new();
    let login = match tokio::time::timeout(
        config.login_timeout,
        read_frame::<ClientFrame>(&mut reader, &mut buffer, config.max_frame_bytes),
    )
    .await
    {
        Ok(Ok(ClientFrame::Login(login))) => login,
        Ok(Ok(other)) => {
            let error = ConnectorError::Protocol(format!("expected a login first, got {other:?}"));
            refuse(&mut writer, error, config).await;
            return;
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "connection closed before its login");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "no login in time");
            return;
        }
    };
    if let Err(error) = authenticate(&shared.broker, &login) {
        tracing::info!(%peer, account = login.account, %error, "login refused");
        refuse(&mut writer, error, config).await;
        return;
    }
    let account = login.account;
    let slot = shared.slot(&account);
    let mut slot = slot.lock().await;
    if let Some(previous) = slot.take()
        && previous.is_live()
    {
        tracing::info!(account, connection, previous = previous.connection, "a new login ends the previous session");
        if !previous.end(config.takeover_timeout).await {
            let error = ConnectorError::Protocol(format!(
                "the previous session of `{account}` did not end within {:?}",
                config.takeover_timeout
            ));
            refuse(&mut writer, error, config).await;
            return;
        }
    }
    if *shared.stopping.borrow() {
        refuse(&mut writer, ConnectorError::Protocol("the server is shutting down".into()), config).await;
        return;
    }
    let start = match shared.broker.begin_session(&account) {
        Ok(start) => start,
        Err(error) => {
            refuse(&mut writer, ConnectorError::Auth(error.to_string()), config).await;
            return;
        }
    };
    let (ended_tx, ended_rx) = watch::channel(());
    let guard =
        SessionGuard { broker: shared.broker.clone(), account: account.clone(), epoch: start.epoch, _ended: ended_tx };
    let session = SessionInfo { broker_account: account.clone(), currency: start.currency.clone(), mode: start.mode };
    let logged_in = async {
        write(&mut writer, &ServerFrame::LoggedIn { session }, config).await?;
        flush(&mut writer, config).await
    };
    if let Err(error) = logged_in.await {
        tracing::debug!(account, connection, %error, "the login answer could not be sent");
        return;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    *slot = Some(SessionHandle { connection, stop: stop_tx, ended: ended_rx });
    drop(slot);
    tracing::info!(account, connection, %peer, epoch = start.epoch, "session started");
    let reason = run_session(&shared, &account, reader, writer, start, stop_rx).await;
    tracing::info!(account, connection, reason, "session ended");
    drop(guard);
}

async fn refuse(writer: &mut BufWriter<OwnedWriteHalf>, error: ConnectorError, config: &SimServerConfig) {
    let sent = async {
        write(writer, &ServerFrame::LoginRefused { error }, config).await?;
        flush(writer, config).await?;
        let _ = tokio::time::timeout(config.write_timeout, writer.shutdown()).await;
        Ok::<_, LinkError>(())
    };
    if let Err(error) = sent.await {
        tracing::debug!(%error, "a login refusal could not be sent");
    }
}

/// Completes when the session is asked to end (or the server stops); says why.
async fn stop_requested(stop: &mut watch::Receiver<bool>, stopping: &mut watch::Receiver<bool>) -> &'static str {
    tokio::select! {
        () = until(stop, |stop| *stop) => "connection dropped by the server",
        () = until(stopping, |stopping| *stopping) => "the server is shutting down",
    }
}

/// Writes responses and events until the session ends; returns why it ended.
async fn run_session(
    shared: &Shared,
    account: &str,
    reader: BufReader<OwnedReadHalf>,
    mut writer: BufWriter<OwnedWriteHalf>,
    start: SessionStart,
    mut stop: watch::Receiver<bool>,
) -> String {
    let config = &shared.config;
    let mut stopping = shared.stopping.subscribe();
    let SessionStart { epoch, mut link, events, .. } = start;
    let (out_tx, mut out_rx) = mpsc::channel(config.outbound_capacity.max(1));
    let requests = RequestReader {
        broker: shared.broker.clone(),
        account: account.to_owned(),
        epoch,
        link: link.clone(),
        out: out_tx,
        config: config.clone(),
    };
    let mut reader_task = AbortOnDrop(tokio::spawn(requests.run(reader)));
    loop {
        if out_rx.is_empty()
            && events.is_empty()
            && !writer.buffer().is_empty()
            && let Err(error) = flush(&mut writer, config).await
        {
            return error.to_string();
        }
        let written = tokio::select! {
            biased;
            reason = stop_requested(&mut stop, &mut stopping) => return reason.to_owned(),
            ended = &mut reader_task.0 => {
                return ended.unwrap_or_else(|error| format!("the request reader failed: {error}"));
            }
            Some(frame) = out_rx.recv() => write(&mut writer, &frame, config).await,
            event = events.recv_async() => {
                let Ok(event) = event else { return "the broker is gone".into() };
                let cut = matches!(&event, ConnectorEvent::Connection(state) if *state != ConnectionState::Connected);
                match write(&mut writer, &ServerFrame::Event { event }, config).await {
                    Ok(()) if cut => {
                        let _ = flush(&mut writer, config).await;
                        return "the broker cut the session".into();
                    }
                    result => result,
                }
            }
            () = until(&mut link, |up| *up != epoch) => {
                // Deliver what the broker produced before it cut the session (up to its
                // `Reconnecting`, when it sent one), then close.
                while let Ok(event) = events.try_recv() {
                    if write(&mut writer, &ServerFrame::Event { event }, config).await.is_err() {
                        break;
                    }
                }
                let _ = flush(&mut writer, config).await;
                return "the broker cut the session".into();
            }
        };
        if let Err(error) = written {
            return error.to_string();
        }
    }
}

/// Reads a connection's requests and executes them against the broker.
struct RequestReader {
    broker: SimBroker,
    account: String,
    epoch: u64,
    link: watch::Receiver<u64>,
    out: mpsc::Sender<ServerFrame>,
    config: SimServerConfig,
}

impl RequestReader {
    /// Runs until the client goes away or breaks the protocol; returns why it stopped.
    async fn run(self, mut reader: BufReader<OwnedReadHalf>) -> String {
        let config = &self.config;
        // Requests waiting out the simulated latency; dropped (unexecuted) with the reader.
        let mut delayed = JoinSet::new();
        let mut buffer = Vec::new();
        loop {
            while delayed.try_join_next().is_some() {}
            if delayed.len() >= config.max_in_flight.max(1) {
                delayed.join_next().await;
                continue;
            }
            let frame = match tokio::time::timeout(
                config.idle_timeout,
                read_frame::<ClientFrame>(&mut reader, &mut buffer, config.max_frame_bytes),
            )
            .await
            {
                Ok(Ok(frame)) => frame,
                Ok(Err(LinkError::Closed)) => return "the client closed the connection".into(),
                Ok(Err(error)) => return error.to_string(),
                Err(_) => return format!("nothing from the client within {:?}", config.idle_timeout),
            };
            let answer = match frame {
                ClientFrame::Ping => ServerFrame::Pong,
                ClientFrame::Login(_) => return "a second login on one connection".into(),
                ClientFrame::Request { id, call } => {
                    let delay = if call.is_trading() { self.broker.next_latency() } else { Duration::ZERO };
                    if !delay.is_zero() {
                        let (broker, account, epoch, link, out) = (
                            self.broker.clone(),
                            self.account.clone(),
                            self.epoch,
                            self.link.clone(),
                            self.out.clone(),
                        );
                        delayed.spawn(async move {
                            tokio::time::sleep(delay).await;
                            let result = execute(&broker, &account, epoch, &link, call);
                            // The session may have ended meanwhile: the answer has nowhere to go.
                            let _ = out.send(ServerFrame::Response { id, result }).await;
                        });
                        continue;
                    }
                    ServerFrame::Response {
                        id,
                        result: execute(&self.broker, &self.account, self.epoch, &self.link, call),
                    }
                }
            };
            if self.out.send(answer).await.is_err() {
                return "the session writer stopped".into();
            }
        }
    }
}

/// Executes one call for the session `epoch` of `account`.
fn execute(
    broker: &SimBroker,
    account: &str,
    epoch: u64,
    link: &watch::Receiver<u64>,
    call: Call,
) -> Result<Reply, ConnectorError> {
    if *link.borrow() != epoch {
        // The broker cut this session; the connection is about to close.
        return Err(ConnectorError::NotConnected);
    }
    match call {
        Call::Instruments => broker.instruments(account).map(|instruments| Reply::Instruments { instruments }),
        Call::Account => broker.snapshot(account).map(|account| Reply::Account { account }),
        Call::Place { order } => {
            let (ack, followup) = broker.place(account, &order, false)?;
            if let Some(followup) = followup {
                // The broker finishes the order whatever becomes of the session.
                let broker = broker.clone();
                tokio::spawn(async move { broker.run_followup(followup).await });
            }
            Ok(Reply::Placed { ack })
        }
        Call::Close { request } => broker.close(account, &request, false).map(|ack| Reply::Placed { ack }),
        Call::Modify { request } => broker.modify(account, &request, false).map(|()| Reply::Done),
        Call::Cancel { request } => broker.cancel(account, &request, false).map(|()| Reply::Done),
        Call::OpenPositions => broker.open_positions(account).map(|positions| Reply::Positions { positions }),
        Call::OpenOrders => broker.working_orders(account).map(|orders| Reply::Orders { orders }),
        Call::SubscribeQuotes { symbols } => broker.subscribe(account, &symbols).map(|()| Reply::Done),
        Call::OrderHistory { client_ids } => {
            broker.order_history(account, &client_ids).map(|orders| Reply::History { orders })
        }
        Call::RequestSnapshot => broker.request_snapshot(account).map(|()| Reply::Done),
    }
}
