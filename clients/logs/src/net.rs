//! The network side: `mirror-sdk` on a tokio runtime in a thread of its own, talking to the UI
//! through bounded channels. The UI thread never waits on the network.
//!
//! Queues and their policies:
//! - UI → network: commands (connect, disconnect), at most [`COMMANDS`]; the UI drops a
//!   command that does not fit (the user clicks again) and never blocks.
//! - network → UI: state updates and connection states, at most [`EVENTS`]; when the UI falls
//!   behind, the network task waits (it does not read the QUIC stream meanwhile), the server's
//!   queue for this subscriber then fills and the server restarts it from a fresh snapshot,
//!   which the viewer shows as a gap. Nothing is dropped silently.
//! - The UI takes at most [`crate::app::EVENTS_PER_FRAME`] events per frame.
//!
//! Every network await has a timeout: the SDK's connect, request and stream timeouts (a stream
//! silent for [`STREAM_TIMEOUT`] is taken for dead; the server sends a heartbeat every second),
//! [`CONNECT_TIMEOUT`] per connect and request, and twice that around each connect and subscribe
//! here.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_sdk::{Backoff, Client, ClientConfig, Role, SdkError, StateUpdate, Trust, topics};

/// Commands waiting for the network thread.
pub(crate) const COMMANDS: usize = 16;
/// Events waiting for the UI.
pub const EVENTS: usize = 256;
/// Handshake plus hello, and the subscription's first answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Silence after which the state stream is reopened.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// QUIC keep-alive; the connection is taken for dead after four silent intervals.
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);
/// Longest wait between connection attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The topics the viewer subscribes to: log lines, what classifies them (orders, fills, copy
/// status), the accounts that name them and the signals themselves (each timeline's +0).
pub const TOPICS: u32 =
    topics::LOGS | topics::ACCOUNTS | topics::ORDERS | topics::FILLS | topics::COPY | topics::SIGNALS;

/// Where to connect, as the user typed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSpec {
    /// The gateway's UDP address.
    pub server: String,
    /// 64 hex digits, or `file:<path>` of the engine's `gateway-fingerprint.txt`.
    pub fingerprint: String,
    /// The environment variable holding the token (never the token itself).
    pub token_env: String,
}

impl ConnectionSpec {
    /// The SDK configuration: the address read, the fingerprint (from its file), the token
    /// from its variable.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let server: SocketAddr = self
            .server
            .trim()
            .parse()
            .map_err(|e| format!("server: expected an IP address and port such as 127.0.0.1:7443 ({e})"))?;
        let fingerprint = match self.fingerprint.trim().strip_prefix("file:") {
            Some(path) => std::fs::read_to_string(path.trim())
                .map_err(|e| format!("fingerprint file {}: {e}", path.trim()))?
                .trim()
                .to_owned(),
            None => self.fingerprint.trim().to_owned(),
        };
        if fingerprint.is_empty() {
            return Err("fingerprint: give the 64 hex digits the engine prints, or file:<path>".into());
        }
        let var = self.token_env.trim();
        if var.is_empty() {
            return Err("token: name the environment variable that holds it".into());
        }
        let token = std::env::var(var).map_err(|_| format!("token: the environment variable {var} is not set"))?;
        let mut config = ClientConfig::new(server, Trust::Fingerprint(fingerprint), token);
        config.client_name = format!("mirror-logs/{}", env!("CARGO_PKG_VERSION"));
        Ok(config)
    }
}

/// The viewer's timeouts on an SDK configuration: a lost engine is noticed within about
/// [`KEEP_ALIVE`] × 4 (QUIC idle timeout) or [`STREAM_TIMEOUT`], whichever comes first, and each
/// retry's reason reaches the connection bar.
pub fn tune(config: &mut ClientConfig) {
    config.connect_timeout = CONNECT_TIMEOUT;
    config.request_timeout = CONNECT_TIMEOUT;
    config.stream_timeout = STREAM_TIMEOUT;
    config.keep_alive = KEEP_ALIVE;
    // One try per call to `next`: the viewer runs the retries itself, to show each reason.
    config.backoff = Backoff { min: Duration::from_millis(100), max: RETRY_MAX, attempts: 1 };
}

/// The connection as the bar shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected, not trying.
    Idle,
    /// The first attempt is under way.
    Connecting {
        /// The server.
        server: SocketAddr,
    },
    /// Subscribed.
    Connected {
        /// The server.
        server: SocketAddr,
        /// The engine's version.
        version: String,
        /// The token's role.
        role: Role,
        /// Reconnections so far.
        reconnects: u32,
    },
    /// Lost, or not reached yet; trying again.
    Reconnecting {
        /// The server.
        server: SocketAddr,
        /// Why the last attempt failed.
        reason: String,
        /// Attempts so far.
        attempt: u32,
    },
    /// Given up: retrying cannot help (the token refused, another protocol version).
    Failed {
        /// Why.
        reason: String,
    },
}

/// What the network thread sends the UI.
#[derive(Debug)]
pub enum NetEvent {
    /// The connection changed.
    State(ConnState),
    /// A state update, and when it arrived (Unix ns).
    Update(StateUpdate, i64),
}

enum Command {
    Connect(Box<ClientConfig>),
    Disconnect,
}

/// The network thread, seen from the UI.
#[derive(Debug)]
pub struct NetHandle {
    commands: flume::Sender<Command>,
    events: flume::Receiver<NetEvent>,
    repaint: Arc<OnceLock<egui::Context>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(config) => f.debug_tuple("Connect").field(config).finish(),
            Self::Disconnect => f.write_str("Disconnect"),
        }
    }
}

fn now_unix_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl NetHandle {
    /// Starts the network thread (it stops when the handle is dropped).
    pub fn start() -> std::io::Result<Self> {
        let (commands, inbox) = flume::bounded(COMMANDS);
        let (outbox, events) = flume::bounded(EVENTS);
        let repaint = Arc::new(OnceLock::new());
        let thread_repaint = Arc::clone(&repaint);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        std::thread::Builder::new().name("mirror-logs-net".into()).spawn(move || {
            runtime.block_on(run(inbox, Outbox { sender: outbox, repaint: thread_repaint }));
        })?;
        Ok(Self { commands, events, repaint })
    }

    /// The context to wake when events arrive (set once).
    pub fn set_repaint(&self, ctx: &egui::Context) {
        let _ = self.repaint.set(ctx.clone());
    }

    /// Connects (closing the current connection first). `false` when the command queue is full.
    pub fn connect(&self, config: ClientConfig) -> bool {
        self.commands.try_send(Command::Connect(Box::new(config))).is_ok()
    }

    /// Disconnects. `false` when the command queue is full.
    pub fn disconnect(&self) -> bool {
        self.commands.try_send(Command::Disconnect).is_ok()
    }

    /// The next event, without waiting.
    pub fn try_event(&self) -> Option<NetEvent> {
        self.events.try_recv().ok()
    }
}

#[derive(Clone)]
struct Outbox {
    sender: flume::Sender<NetEvent>,
    repaint: Arc<OnceLock<egui::Context>>,
}

impl Outbox {
    /// Hands an event to the UI, waiting while its queue is full; `false` once the UI is gone.
    async fn send(&self, event: NetEvent) -> bool {
        let sent = self.sender.send_async(event).await.is_ok();
        if let Some(ctx) = self.repaint.get() {
            ctx.request_repaint();
        }
        sent
    }
}

async fn run(inbox: flume::Receiver<Command>, outbox: Outbox) {
    let mut session: Option<tokio::task::JoinHandle<()>> = None;
    while let Ok(command) = inbox.recv_async().await {
        if let Some(task) = session.take() {
            task.abort();
            let _ = task.await;
        }
        match command {
            Command::Connect(config) => session = Some(tokio::spawn(keep_connected(*config, outbox.clone()))),
            Command::Disconnect => {
                outbox.send(NetEvent::State(ConnState::Idle)).await;
            }
        }
    }
    if let Some(task) = session {
        task.abort();
    }
}

fn unrecoverable(error: &SdkError) -> bool {
    matches!(error, SdkError::Unauthorized(_) | SdkError::Version { .. } | SdkError::Config(_))
}

/// Connects, subscribes and forwards updates; after a loss, tries again with backoff until it
/// cannot help.
async fn keep_connected(config: ClientConfig, outbox: Outbox) {
    let server = config.server;
    let mut attempt = 0u32;
    let mut wait = Duration::from_millis(200);
    let mut reconnects = 0u32;
    outbox.send(NetEvent::State(ConnState::Connecting { server })).await;
    loop {
        attempt += 1;
        let reason = match subscribe(&config).await {
            Ok((client, mut subscription)) => {
                let connected = |reconnects| {
                    NetEvent::State(ConnState::Connected {
                        server,
                        version: client.welcome().map(|w| w.server).unwrap_or_default(),
                        role: client.welcome().map_or(Role::Viewer, |w| w.role),
                        reconnects,
                    })
                };
                if !outbox.send(connected(reconnects)).await {
                    return;
                }
                attempt = 0;
                wait = Duration::from_millis(200);
                loop {
                    match subscription.next().await {
                        Ok(update) => {
                            if matches!(update, StateUpdate::Reconnected { .. }) {
                                reconnects += 1;
                                attempt = 0;
                                wait = Duration::from_millis(200);
                                if !outbox.send(connected(reconnects)).await {
                                    return;
                                }
                            }
                            if !outbox.send(NetEvent::Update(update, now_unix_ns())).await {
                                return;
                            }
                        }
                        Err(error) if unrecoverable(&error) => {
                            outbox.send(NetEvent::State(ConnState::Failed { reason: error.to_string() })).await;
                            return;
                        }
                        Err(error) => {
                            // The subscription keeps its place: calling `next` again resumes.
                            attempt += 1;
                            let state = ConnState::Reconnecting { server, reason: error.to_string(), attempt };
                            if !outbox.send(NetEvent::State(state)).await {
                                return;
                            }
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(RETRY_MAX);
                        }
                    }
                }
            }
            Err(error) if unrecoverable(&error) => {
                outbox.send(NetEvent::State(ConnState::Failed { reason: error.to_string() })).await;
                return;
            }
            Err(error) => error.to_string(),
        };
        if !outbox.send(NetEvent::State(ConnState::Reconnecting { server, reason, attempt })).await {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

async fn subscribe(config: &ClientConfig) -> Result<(Client, mirror_sdk::Subscription), SdkError> {
    let limit = CONNECT_TIMEOUT * 2;
    let timeout = |what| SdkError::Timeout { what, after: limit };
    let client =
        tokio::time::timeout(limit, Client::connect(config.clone())).await.map_err(|_| timeout("the connection"))??;
    let subscription =
        tokio::time::timeout(limit, client.subscribe(TOPICS)).await.map_err(|_| timeout("the subscription"))??;
    Ok((client, subscription))
}
