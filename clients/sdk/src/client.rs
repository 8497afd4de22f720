//! The connection, the hello, and one command per stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirror_model::SignalId;
use mirror_wire::proto::{
    Hello, HelloReply, OrderTicket, PROTOCOL_VERSION, PairOutcome, PairTicket, Request, Response, Welcome, close_code,
};

use crate::io::{read_frame, write_frame};
use crate::subscription::Subscription;
use crate::{ClientConfig, SdkError, tls};

#[derive(Clone)]
struct Session {
    connection: quinn::Connection,
    welcome: Welcome,
}

struct Inner {
    config: ClientConfig,
    endpoint: quinn::Endpoint,
    current: Mutex<Option<Session>>,
    /// Serialises reconnections (one handshake at a time).
    connecting: tokio::sync::Mutex<()>,
    positions: AtomicU64,
}

/// A connection to the gateway, cheap to clone (clones share it). Commands reconnect when the
/// connection was lost before they were sent; nothing already sent is ever sent again.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// A pair accepted by the engine; its outcome follows once every follower's legs settled.
#[derive(Debug)]
pub struct PairHandle {
    /// The first leg's signal.
    pub first: SignalId,
    /// The second leg's signal.
    pub second: SignalId,
    recv: quinn::RecvStream,
    limit: Duration,
}

impl PairHandle {
    /// How the pair ended on every follower.
    pub async fn outcome(mut self) -> Result<PairOutcome, SdkError> {
        match read_frame::<Response>(&mut self.recv, self.limit, "the pair's outcome").await? {
            Response::PairOutcome(outcome) => Ok(outcome),
            Response::Error(reply) => Err(SdkError::Server(reply)),
            other => Err(SdkError::Unexpected(format!("{other:?} instead of a pair outcome"))),
        }
    }
}

fn close_error(error: &quinn::ConnectionError) -> Option<SdkError> {
    let quinn::ConnectionError::ApplicationClosed(close) = error else { return None };
    let code = u32::try_from(close.error_code.into_inner()).unwrap_or(u32::MAX);
    let reason = String::from_utf8_lossy(&close.reason).into_owned();
    match code {
        close_code::UNAUTHORIZED | close_code::BAD_HELLO => Some(SdkError::Unauthorized(reason)),
        close_code::VERSION => Some(SdkError::Version { server: 0, client: PROTOCOL_VERSION }),
        _ => None,
    }
}

fn unexpected(what: &str, response: &Response) -> SdkError {
    SdkError::Unexpected(format!("{response:?} instead of {what}"))
}

impl Client {
    /// Connects, authenticates with the token, and returns once the session is open.
    pub async fn connect(config: ClientConfig) -> Result<Self, SdkError> {
        let crypto = tls::client_config(&config.trust, config.identity.as_ref())?;
        let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(config.keep_alive));
        let idle = (config.keep_alive * 4).try_into().map_err(|_| SdkError::Config("keep-alive too long".into()))?;
        transport.max_idle_timeout(Some(idle));
        quic.transport_config(Arc::new(transport));
        let bind: SocketAddr = if config.server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let mut endpoint =
            quinn::Endpoint::client(bind).map_err(|e| SdkError::Config(format!("client socket {bind}: {e}")))?;
        endpoint.set_default_client_config(quic);
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros());
        let client = Self {
            inner: Arc::new(Inner {
                config,
                endpoint,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                positions: AtomicU64::new(u64::try_from(micros).unwrap_or(1)),
            }),
        };
        client.reconnect().await?;
        Ok(client)
    }

    /// The session's welcome (role, session number, state epoch), while connected.
    pub fn welcome(&self) -> Option<Welcome> {
        self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|s| s.welcome.clone())
    }

    /// A fresh position key: increasing, started from the wall clock in microseconds, so that
    /// keys do not repeat across restarts of the bot.
    pub fn next_position_key(&self) -> u64 {
        self.inner.positions.fetch_add(1, Ordering::Relaxed)
    }

    /// Opens a new connection and session, replacing the current one.
    pub async fn reconnect(&self) -> Result<Welcome, SdkError> {
        let _one = self.inner.connecting.lock().await;
        let session = self.open().await?;
        let welcome = session.welcome.clone();
        let old = self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).replace(session);
        if let Some(old) = old {
            old.connection.close(close_code::NORMAL.into(), b"reconnected");
        }
        Ok(welcome)
    }

    /// Closes the current connection (as a network failure would, from the server's side of
    /// view). The next command, or a subscription, connects again.
    pub fn drop_connection(&self) {
        if let Some(session) = self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).take() {
            session.connection.close(close_code::NORMAL.into(), b"dropped");
        }
    }

    /// Closes the connection and waits (at most a second) for the server to hear it.
    pub async fn close(&self) {
        self.drop_connection();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.inner.endpoint.wait_idle()).await;
    }

    async fn open(&self) -> Result<Session, SdkError> {
        let config = &self.inner.config;
        let server = config.server;
        let connect = |reason: String| SdkError::Connect { server, reason };
        let connecting =
            self.inner.endpoint.connect(server, &config.server_name).map_err(|e| connect(e.to_string()))?;
        let connection = match tokio::time::timeout(config.connect_timeout, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(error)) => return Err(close_error(&error).unwrap_or_else(|| connect(error.to_string()))),
            Err(_) => return Err(SdkError::Timeout { what: "the handshake", after: config.connect_timeout }),
        };
        let hello = async {
            let (mut send, mut recv) = connection.open_bi().await.map_err(|e| connect(e.to_string()))?;
            let hello =
                Hello { protocol: PROTOCOL_VERSION, token: config.token.clone(), client: config.client_name.clone() };
            write_frame(&mut send, &hello, config.connect_timeout).await?;
            let _ = send.finish();
            read_frame::<HelloReply>(&mut recv, config.connect_timeout, "the hello reply").await
        };
        let reply = match hello.await {
            Ok(reply) => reply,
            Err(error) => {
                // A refused token closes the connection: say so rather than "stream closed".
                let closed = connection.close_reason().as_ref().and_then(close_error);
                return Err(closed.unwrap_or(error));
            }
        };
        match reply {
            HelloReply::Welcome(welcome) if welcome.protocol == PROTOCOL_VERSION => Ok(Session { connection, welcome }),
            HelloReply::Welcome(welcome) => {
                Err(SdkError::Version { server: welcome.protocol, client: PROTOCOL_VERSION })
            }
            HelloReply::Refused(reply) => Err(SdkError::Unauthorized(reply.message)),
        }
    }

    /// The current connection, connecting again if it was lost.
    pub(crate) async fn connection(&self) -> Result<quinn::Connection, SdkError> {
        let current = self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(session) = current
            && session.connection.close_reason().is_none()
        {
            return Ok(session.connection);
        }
        self.reconnect().await?;
        let current = self.inner.current.lock().unwrap_or_else(PoisonError::into_inner).clone();
        current
            .map(|s| s.connection)
            .ok_or_else(|| SdkError::Connection { reason: "not connected".into(), sent: false })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Opens a stream and sends `request` on it.
    pub(crate) async fn send_request(
        &self,
        request: &Request,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), SdkError> {
        let connection = self.connection().await?;
        let limit = self.inner.config.request_timeout;
        let (mut send, recv) = match tokio::time::timeout(limit, connection.open_bi()).await {
            Ok(Ok(streams)) => streams,
            Ok(Err(error)) => return Err(SdkError::Connection { reason: error.to_string(), sent: false }),
            Err(_) => return Err(SdkError::Timeout { what: "a stream to open", after: limit }),
        };
        write_frame(&mut send, request, limit).await?;
        let _ = send.finish();
        Ok((send, recv))
    }

    /// Sends any request and reads its one answer; an error answer is [`SdkError::Server`].
    pub async fn request(&self, request: &Request) -> Result<Response, SdkError> {
        let (_send, mut recv) = self.send_request(request).await?;
        match read_frame::<Response>(&mut recv, self.inner.config.request_timeout, "the answer").await {
            Ok(Response::Error(reply)) => Err(SdkError::Server(reply)),
            Ok(response) => Ok(response),
            Err(SdkError::Connection { reason, .. }) => Err(SdkError::Connection { reason, sent: true }),
            Err(error) => Err(error),
        }
    }

    async fn signal(&self, request: Request) -> Result<SignalId, SdkError> {
        match self.request(&request).await? {
            Response::Accepted { signal } => Ok(SignalId(signal)),
            other => Err(unexpected("an acceptance", &other)),
        }
    }

    async fn done(&self, request: Request) -> Result<(), SdkError> {
        match self.request(&request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("done", &other)),
        }
    }

    /// Sends one order; its signal once the engine accepted and fanned it out.
    pub async fn submit(&self, ticket: &OrderTicket) -> Result<SignalId, SdkError> {
        self.signal(Request::Submit(ticket.clone())).await
    }

    /// Sends two legs together; the handle's [`PairHandle::outcome`] tells how they ended on
    /// every follower, after the policy was applied.
    pub async fn submit_pair(&self, pair: &PairTicket) -> Result<PairHandle, SdkError> {
        let (_send, mut recv) = self.send_request(&Request::SubmitPair(pair.clone())).await?;
        let limit = self.inner.config.request_timeout;
        match read_frame::<Response>(&mut recv, limit, "the pair's acceptance").await? {
            Response::PairAccepted { first, second } => {
                let settle = Duration::from_millis(u64::from(pair.settle_ms.max(5_000)));
                // Two settle windows (the policy may send a leg again) and the usual margin.
                Ok(PairHandle { first: SignalId(first), second: SignalId(second), recv, limit: settle * 2 + limit })
            }
            Response::Error(reply) => Err(SdkError::Server(reply)),
            other => Err(unexpected("a pair acceptance", &other)),
        }
    }

    /// Changes the stop loss and take profit of a position's copies (`None` removes one).
    pub async fn modify(
        &self,
        position: u64,
        stop_loss: Option<mirror_model::Price>,
        take_profit: Option<mirror_model::Price>,
    ) -> Result<SignalId, SdkError> {
        let (stop_loss, take_profit) = (stop_loss.map(|p| p.raw()), take_profit.map(|p| p.raw()));
        self.signal(Request::Modify { position, stop_loss, take_profit }).await
    }

    /// Closes a position's copies.
    pub async fn close_position(&self, position: u64) -> Result<SignalId, SdkError> {
        self.signal(Request::Close { position, partial: None }).await
    }

    /// Closes `closed / before` of each copy of a position.
    pub async fn close_partial(
        &self,
        position: u64,
        closed: mirror_model::Qty,
        before: mirror_model::Qty,
    ) -> Result<SignalId, SdkError> {
        self.signal(Request::Close { position, partial: Some((closed.raw(), before.raw())) }).await
    }

    /// Closes every copy of the source, on one symbol or all.
    pub async fn close_all(&self, symbol: Option<&str>) -> Result<SignalId, SdkError> {
        self.signal(Request::CloseAll { symbol: symbol.map(str::to_owned) }).await
    }

    /// Cancels the copies of a pending order.
    pub async fn cancel(&self, position: u64) -> Result<SignalId, SdkError> {
        self.signal(Request::Cancel { position }).await
    }

    /// Closes every position of one account, or of all (admin).
    pub async fn flatten(&self, account: Option<u32>) -> Result<(), SdkError> {
        self.done(Request::Flatten { account }).await
    }

    /// Stops copying new opens to one account, or to all (admin).
    pub async fn pause(&self, account: Option<u32>) -> Result<(), SdkError> {
        self.done(Request::Pause { account }).await
    }

    /// Copies again (admin).
    pub async fn resume(&self, account: Option<u32>) -> Result<(), SdkError> {
        self.done(Request::Resume { account }).await
    }

    /// The configuration in force (TOML).
    pub async fn read_config(&self) -> Result<String, SdkError> {
        match self.request(&Request::ReadConfig).await? {
            Response::Config { toml } => Ok(toml),
            other => Err(unexpected("the configuration", &other)),
        }
    }

    /// Applies a new configuration, whole or not at all (admin).
    pub async fn apply_config(&self, toml: &str) -> Result<(), SdkError> {
        self.done(Request::ApplyConfig { toml: toml.to_owned() }).await
    }

    /// One round trip on a fresh stream.
    pub async fn ping(&self) -> Result<Duration, SdkError> {
        let started = Instant::now();
        match self.request(&Request::Ping { nonce: 1 }).await? {
            Response::Pong { .. } => Ok(started.elapsed()),
            other => Err(unexpected("a pong", &other)),
        }
    }

    /// Subscribes to state: a snapshot, then numbered deltas of these [`crate::topics`].
    pub async fn subscribe(&self, topics: u32) -> Result<Subscription, SdkError> {
        Subscription::open(self.clone(), topics).await
    }
}
