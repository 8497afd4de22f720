//! The bridge server: configuration, the listening socket, authentication, and one
//! [`MtConnector`] per configured terminal.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mirror_model::Platform;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::connector::MtConnector;
use crate::error::BridgeError;
use crate::protocol::{Hello, MAX_FRAME_BYTES, MarginMode, PROTOCOL_VERSION, WirePlatform};
use crate::session;
use crate::terminal::Terminal;
use crate::tls::TlsIdentity;

/// One terminal the bridge accepts: an account, reached through the EA on its terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalConfig {
    /// The name the engine asks for (`MtBridge::connector`).
    pub name: String,
    /// `Platform::Mt4` or `Platform::Mt5`; an EA of the other kind is refused.
    pub platform: Platform,
    /// The secret the EA sends in `hello` (its `Token` input). At least 16 characters.
    pub token: String,
    /// When set, the only login this token is accepted from (guards against a token pasted
    /// into the wrong terminal).
    pub login: Option<u64>,
}

/// How the bridge listens and how patient it is.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// TLS certificate; `None` serves plain TCP only.
    pub tls: Option<TlsIdentity>,
    /// Also accept plain TCP when TLS is configured (the first byte tells them apart), for MT4
    /// builds whose TLS fails, or a loopback or VPN link.
    pub allow_plaintext: bool,
    /// The terminals.
    pub terminals: Vec<TerminalConfig>,
    /// How often the bridge pings each terminal.
    pub heartbeat: Duration,
    /// Silence after which a session is considered dead.
    pub idle_timeout: Duration,
    /// Longest wait for TLS, `hello` and the first `snapshot`.
    pub handshake_timeout: Duration,
    /// Longest wait for a command's `ack` (keep it under the engine's call timeout, so the
    /// connector's own timeout answers first).
    pub command_timeout: Duration,
    /// Longest wait for one frame to be written.
    pub write_timeout: Duration,
    /// How long `connect` waits for the terminal to be online.
    pub connect_wait: Duration,
    /// Commands whose outcome is unknown when a session drops are sent again after the
    /// terminal reconnects, if it reconnects within this window; later, a command the
    /// terminal did not execute is reported as rejected instead (a copy that late is stale).
    pub resend_window: Duration,
    /// Capacity of each terminal's event stream.
    pub event_capacity: usize,
    /// Frames queued for one session's socket; a session that cannot take more is cut.
    pub outbound_capacity: usize,
    /// Commands awaiting an answer per terminal; more are refused as rate-limited.
    pub max_in_flight: usize,
    /// Connections open at once (authenticated or not); more are closed at once.
    pub max_connections: usize,
    /// Largest frame, bytes.
    pub max_frame_bytes: usize,
    /// Largest slippage accepted on market orders, in points.
    pub deviation_points: u32,
}

impl BridgeConfig {
    /// A configuration with the default timings and limits.
    pub fn new(listen: SocketAddr, terminals: Vec<TerminalConfig>) -> Self {
        Self {
            listen,
            tls: None,
            allow_plaintext: true,
            terminals,
            heartbeat: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(4),
            write_timeout: Duration::from_secs(5),
            connect_wait: Duration::from_secs(4),
            resend_window: Duration::from_secs(30),
            event_capacity: 65_536,
            outbound_capacity: 1_024,
            max_in_flight: 256,
            max_connections: 1_024,
            max_frame_bytes: MAX_FRAME_BYTES,
            deviation_points: 20,
        }
    }

    fn validate(&self) -> Result<(), BridgeError> {
        let bad = |text: String| Err(BridgeError::Config(text));
        if self.tls.is_none() && !self.allow_plaintext {
            return bad("no TLS certificate and plain TCP refused: no terminal could connect".into());
        }
        let mut names = BTreeMap::new();
        let mut tokens = BTreeMap::new();
        for terminal in &self.terminals {
            if !matches!(terminal.platform, Platform::Mt4 | Platform::Mt5) {
                return bad(format!(
                    "terminal `{}`: platform must be mt4 or mt5, not {}",
                    terminal.name, terminal.platform
                ));
            }
            if terminal.token.len() < 16 {
                return bad(format!("terminal `{}`: the token must be at least 16 characters", terminal.name));
            }
            if names.insert(terminal.name.as_str(), ()).is_some() {
                return bad(format!("terminal `{}` is configured twice", terminal.name));
            }
            if let Some(other) = tokens.insert(terminal.token.as_str(), terminal.name.as_str()) {
                return bad(format!("terminals `{other}` and `{}` share a token", terminal.name));
            }
        }
        for (what, value) in [
            ("heartbeat", self.heartbeat),
            ("idle_timeout", self.idle_timeout),
            ("handshake_timeout", self.handshake_timeout),
            ("command_timeout", self.command_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return bad(format!("{what} must be positive"));
            }
        }
        if self.idle_timeout <= self.heartbeat {
            return bad("idle_timeout must be longer than heartbeat".into());
        }
        if self.event_capacity < 16 || self.outbound_capacity < 16 || self.max_in_flight == 0 {
            return bad("event_capacity and outbound_capacity must be at least 16, max_in_flight at least 1".into());
        }
        Ok(())
    }
}

/// Timings and limits the sessions and connectors read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) heartbeat: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) connect_wait: Duration,
    pub(crate) resend_window: Duration,
    pub(crate) event_capacity: usize,
    pub(crate) outbound_capacity: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame_bytes: usize,
    pub(crate) deviation_points: u32,
}

/// Counters of what the bridge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Connections accepted.
    pub connections: u64,
    /// Sessions that authenticated.
    pub sessions: u64,
    /// `hello`s refused (token, login, platform, version, disabled).
    pub refused: u64,
    /// Sessions ended by a protocol violation.
    pub protocol_errors: u64,
    /// Commands sent.
    pub commands: u64,
    /// Commands sent again after a reconnect (their first sending's outcome was unknown).
    pub resent: u64,
    /// Commands whose outcome was learned from the terminal's journal after a reconnect.
    pub resolved_from_journal: u64,
    /// Commands given up after the resend window (reported as rejected).
    pub given_up: u64,
    /// Quotes dropped because the event stream was more than half full.
    pub quotes_dropped: u64,
    /// Snapshots asked for because an event did not fit what the bridge held.
    pub resyncs: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) sessions: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) commands: AtomicU64,
    pub(crate) resent: AtomicU64,
    pub(crate) resolved_from_journal: AtomicU64,
    pub(crate) given_up: AtomicU64,
    pub(crate) quotes_dropped: AtomicU64,
    pub(crate) resyncs: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> BridgeStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BridgeStats {
            connections: get(&self.connections),
            sessions: get(&self.sessions),
            refused: get(&self.refused),
            protocol_errors: get(&self.protocol_errors),
            commands: get(&self.commands),
            resent: get(&self.resent),
            resolved_from_journal: get(&self.resolved_from_journal),
            given_up: get(&self.given_up),
            quotes_dropped: get(&self.quotes_dropped),
            resyncs: get(&self.resyncs),
        }
    }
}

/// What every session and connector of one bridge shares.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    terminals: BTreeMap<String, Arc<Terminal>>,
    next_cmd: AtomicU64,
    next_session: AtomicU64,
    pub(crate) counters: Counters,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// Why a `hello` is refused: the `error` frame's code and message.
pub(crate) type Refusal = (&'static str, String);

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Shared {
    /// A command id never used before, even by an earlier run of the bridge (ids start at the
    /// wall clock in microseconds), so that an EA's journal never mistakes a new command for
    /// an old one.
    pub(crate) fn next_cmd(&self) -> u64 {
        self.next_cmd.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The terminal a `hello` is for, or why it is refused.
    pub(crate) fn authenticate(&self, hello: &Hello) -> Result<Arc<Terminal>, Refusal> {
        if hello.proto != PROTOCOL_VERSION {
            return Err((
                "version",
                format!("this bridge speaks protocol {PROTOCOL_VERSION}; the EA speaks {}: update the EA", hello.proto),
            ));
        }
        // Every token is compared, so the time taken does not tell which one matched.
        let mut found = None;
        for terminal in self.terminals.values() {
            if same_secret(&terminal.config.token, &hello.token) {
                found = Some(Arc::clone(terminal));
            }
        }
        let terminal = found.ok_or(("auth", "unknown token".to_owned()))?;
        if let Some(login) = terminal.config.login
            && login != hello.login
        {
            return Err(("auth", format!("this token is for login {login}, not {}", hello.login)));
        }
        let platform = match hello.platform {
            WirePlatform::Mt4 => Platform::Mt4,
            WirePlatform::Mt5 => Platform::Mt5,
        };
        if platform != terminal.config.platform {
            return Err((
                "platform",
                format!("terminal `{}` is configured as {}", terminal.config.name, terminal.config.platform),
            ));
        }
        if platform == Platform::Mt4 && hello.margin_mode != MarginMode::Hedging {
            return Err(("protocol", "an MT4 account is always hedging".to_owned()));
        }
        Ok(terminal)
    }
}

/// The MetaTrader bridge: listens for Expert Advisors and gives the engine one connector per
/// terminal. Dropping it stops accepting and closes every session.
pub struct MtBridge {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    accept: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for MtBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtBridge").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl MtBridge {
    /// Validates the configuration, binds and starts accepting terminals.
    pub async fn bind(config: BridgeConfig) -> Result<Self, BridgeError> {
        config.validate()?;
        let acceptor = match &config.tls {
            Some(identity) => Some(tokio_rustls::TlsAcceptor::from(identity.server_config()?)),
            None => None,
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| BridgeError::Bind { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| BridgeError::Bind { addr: config.listen, source })?;
        let settings = Settings {
            heartbeat: config.heartbeat,
            idle_timeout: config.idle_timeout,
            handshake_timeout: config.handshake_timeout,
            command_timeout: config.command_timeout,
            write_timeout: config.write_timeout,
            connect_wait: config.connect_wait,
            resend_window: config.resend_window,
            event_capacity: config.event_capacity,
            outbound_capacity: config.outbound_capacity,
            max_in_flight: config.max_in_flight,
            max_frame_bytes: config.max_frame_bytes,
            deviation_points: config.deviation_points,
        };
        let terminals =
            config.terminals.iter().map(|t| (t.name.clone(), Arc::new(Terminal::new(t.clone(), settings)))).collect();
        let first_cmd = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings,
            terminals,
            next_cmd: AtomicU64::new(first_cmd),
            next_session: AtomicU64::new(1),
            counters: Counters::default(),
            shutdown: shutdown_rx,
        });
        let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), acceptor, config.allow_plaintext, limit));
        tracing::info!(%local_addr, terminals = config.terminals.len(), tls = config.tls.is_some(), "MetaTrader bridge listening");
        Ok(Self { shared, local_addr, accept, shutdown })
    }

    /// The address it listens on (with the port the OS picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connector of a configured terminal.
    pub fn connector(&self, name: &str) -> Option<MtConnector> {
        self.shared.terminals.get(name).map(|terminal| MtConnector::new(Arc::clone(terminal), Arc::clone(&self.shared)))
    }

    /// Counters.
    pub fn stats(&self) -> BridgeStats {
        self.shared.counters.snapshot()
    }

    /// Stops accepting and closes every session.
    pub fn shutdown(&self) {
        self.accept.abort();
        self.shutdown.send_replace(true);
    }
}

impl Drop for MtBridge {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    allow_plaintext: bool,
    limit: Arc<Semaphore>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: too many connections open");
            continue;
        };
        Counters::add(&shared.counters.connections, 1);
        let _ = tcp.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            session::serve(shared, tcp, peer, acceptor, allow_plaintext).await;
            drop(permit);
        });
    }
}
