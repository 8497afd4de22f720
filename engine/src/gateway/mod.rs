//! The QUIC gateway: algo traders (`mirror-sdk`) and the desktop apps talk to the engine over
//! one QUIC connection each (TLS 1.3, many streams, no head-of-line blocking).
//!
//! - **Identity**: a configured certificate, or a self-signed one generated on first run and
//!   kept in a directory; clients pin its SHA-256 fingerprint ([`Gateway::cert_fingerprint`]).
//!   Client certificates can be required ([`GatewaySettings::client_ca`]).
//! - **Session**: ALPN `mirror/1` carries the protocol version; the first frame is a `Hello`
//!   with a token, compared in constant time with the configured ones (never logged). No valid
//!   token in time, no session: the connection is closed before any other stream is read.
//! - **Commands**: one request per bidirectional stream (orders, pairs, controls,
//!   configuration). A malformed, truncated or oversized frame closes only its stream, with
//!   an error that names what was wrong.
//! - **State**: a subscription stream gets a snapshot, then numbered deltas folded from the
//!   engine's audit records and account polls (see `state`). A client that reconnects resumes
//!   from its last number. A slow client never slows the engine: its queue is bounded, and
//!   when it overflows the client gets a fresh snapshot instead of what it missed.
//!
//! Every network await has a timeout ([`GatewayLimits`]); every queue is bounded with a
//! stated policy.

mod auth;
mod io;
mod pair;
mod session;
pub(crate) mod state;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub(crate) use auth::{TOKEN_LEN_MIN, constant_time_eq as digests_equal, digest as token_digest};
use mirror_model::Origin;
pub use mirror_wire::proto::Role;
pub use tls::FINGERPRINT_FILE;
pub(crate) use tls::TlsIdentity;
use tokio::sync::{Semaphore, watch};

use crate::runtime::EngineHandle;

/// Where the gateway's certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A certificate chain and key (PEM files).
    Files {
        /// Chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// A self-signed certificate kept in `dir` (generated on first run, the key 0600) for
    /// these DNS names or IP addresses (default `localhost`).
    Generated {
        /// Directory of `gateway-cert.pem` and `gateway-key.pem`.
        dir: PathBuf,
        /// Names the certificate is valid for.
        names: Vec<String>,
    },
}

/// One accepted token.
#[derive(Clone, PartialEq, Eq)]
pub struct GatewayToken {
    /// Its name, logged instead of the token.
    pub name: String,
    /// The token (at least 16 characters). Never logged; `Debug` hides it.
    pub secret: String,
    /// What it allows.
    pub role: Role,
    /// The signal source its orders are sent as (required for a trader; an admin without one
    /// cannot send orders).
    pub source: Option<Origin>,
}

impl std::fmt::Debug for GatewayToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayToken")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("role", &self.role)
            .field("source", &self.source)
            .finish()
    }
}

/// Timeouts, capacities and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayLimits {
    /// Connections at once; beyond, new ones are refused.
    pub connections_max: usize,
    /// Concurrent bidirectional streams per connection (QUIC flow control holds the rest).
    pub streams_per_connection: u32,
    /// Handshake plus hello.
    pub hello_timeout: Duration,
    /// A request frame, from the stream's opening.
    pub frame_timeout: Duration,
    /// One write to a client; past it the stream is reset as too slow.
    pub write_timeout: Duration,
    /// A connection with no traffic (clients keep alive at a third of it).
    pub idle_timeout: Duration,
    /// The engine's answer to a submit (durable when journaling).
    pub submit_timeout: Duration,
    /// Delta batches queued per subscriber; when full the subscriber is resnapshotted.
    pub subscriber_queue: usize,
    /// Deltas kept for resuming subscribers.
    pub resume_window: usize,
    /// Audit batches queued from the engine; beyond, records are lost and every subscriber is
    /// resynchronised from a fresh snapshot.
    pub audit_queue: usize,
    /// Pairs being settled at once; beyond, a pair is refused as busy.
    pub pairs_in_flight_max: usize,
    /// Settle window of a pair that names none.
    pub pair_settle: Duration,
    /// How often accounts (balance, equity, mode) are read from the engine.
    pub account_poll: Duration,
    /// How often counters and latency are published.
    pub stats_interval: Duration,
    /// Heartbeat on an idle state stream.
    pub heartbeat: Duration,
    /// Fills and finished orders kept for snapshots.
    pub recent_kept: usize,
    /// How often changed quotes are published (coalesced: at most one per account and symbol
    /// per interval, the latest).
    pub quote_interval: Duration,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            connections_max: 64,
            streams_per_connection: 64,
            hello_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            submit_timeout: Duration::from_secs(15),
            subscriber_queue: 1_024,
            resume_window: 65_536,
            audit_queue: 4_096,
            pairs_in_flight_max: 64,
            pair_settle: Duration::from_secs(5),
            account_poll: Duration::from_millis(250),
            stats_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
            recent_kept: 256,
            quote_interval: Duration::from_millis(100),
        }
    }
}

/// Reads and applies the configuration for `ReadConfig` / `ApplyConfig` (implemented by the
/// application, which owns the configuration). Called from a blocking thread.
pub trait ConfigService: Send + Sync + std::fmt::Debug + 'static {
    /// The configuration in force, as TOML.
    fn read(&self) -> Result<String, String>;
    /// The configuration in force and its version (SHA-256 of the text, hex), read together.
    fn read_versioned(&self) -> (String, String);
    /// Validates and applies a new configuration, whole or not at all; the error says why.
    fn apply(&self, toml: &str, who: &str) -> Result<(), String>;
    /// Edits the configuration in force (`edit` maps its text to the new one) and applies the
    /// result whole or not at all, with no other change in between; with `expected`, only if
    /// the configuration is still that version. Answers the new version.
    fn edit(
        &self,
        expected: Option<&str>,
        who: &str,
        edit: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<String, crate::live_config::EditError>;
}

/// Everything the gateway needs.
#[derive(Clone)]
pub struct GatewaySettings {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Its certificate.
    pub identity: Identity,
    /// Require client certificates signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// Accepted tokens.
    pub tokens: Vec<GatewayToken>,
    /// Limits.
    pub limits: GatewayLimits,
    /// Configuration reads and applies; without one those requests answer `Unavailable`.
    pub config: Option<Arc<dyn ConfigService>>,
}

impl std::fmt::Debug for GatewaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewaySettings")
            .field("listen", &self.listen)
            .field("identity", &self.identity)
            .field("client_ca", &self.client_ca)
            .field("tokens", &self.tokens)
            .field("limits", &self.limits)
            .field("config", &self.config.is_some())
            .finish()
    }
}

impl GatewaySettings {
    /// Settings on `listen` with a self-signed certificate kept in `cert_dir`, default limits.
    pub fn new(listen: SocketAddr, cert_dir: impl Into<PathBuf>, tokens: Vec<GatewayToken>) -> Self {
        Self {
            listen,
            identity: Identity::Generated { dir: cert_dir.into(), names: vec!["localhost".into()] },
            client_ca: None,
            tokens,
            limits: GatewayLimits::default(),
            config: None,
        }
    }
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The settings are inconsistent.
    #[error("gateway settings: {0}")]
    Settings(String),
    /// The certificate, key or TLS configuration.
    #[error("gateway TLS: {0}")]
    Tls(String),
    /// The socket.
    #[error("gateway socket {addr}: {error}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// Not inside a tokio runtime.
    #[error("the gateway must be started inside a tokio runtime")]
    NoRuntime,
}

/// What every task of the gateway shares.
pub(crate) struct Context {
    engine: EngineHandle,
    limits: GatewayLimits,
    tokens: auth::Tokens,
    config: Option<Arc<dyn ConfigService>>,
    hub: state::HubHandle,
    pairs: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
    connections: AtomicUsize,
    sessions: std::sync::atomic::AtomicU64,
}

/// A running gateway.
pub struct Gateway {
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    fingerprint: String,
    certificate: Vec<u8>,
    context: Arc<Context>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local_addr)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Starts the gateway on the current tokio runtime.
pub fn spawn_gateway(engine: EngineHandle, settings: GatewaySettings) -> Result<Gateway, GatewayError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(GatewayError::NoRuntime);
    }
    let tokens = auth::Tokens::new(&settings.tokens)?;
    let identity = tls::TlsIdentity::load(&settings.identity)?;
    let mut server = identity.quic_config(settings.client_ca.as_deref())?;
    let limits = settings.limits.clone();
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(limits.streams_per_connection.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(
            limits.idle_timeout.try_into().map_err(|_| GatewayError::Settings("idle timeout too long".into()))?,
        ));
    server.transport_config(Arc::new(transport));
    server.max_incoming(limits.connections_max.max(1) * 2);
    let endpoint = quinn::Endpoint::server(server, settings.listen)
        .map_err(|error| GatewayError::Bind { addr: settings.listen, error })?;
    let local_addr = endpoint.local_addr().map_err(|error| GatewayError::Bind { addr: settings.listen, error })?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (hub, hub_task) = state::spawn_hub(engine.clone(), limits.clone(), shutdown_rx.clone());
    let context = Arc::new(Context {
        engine,
        pairs: Arc::new(Semaphore::new(limits.pairs_in_flight_max.max(1))),
        limits,
        tokens,
        config: settings.config,
        hub,
        shutdown: shutdown_rx,
        connections: AtomicUsize::new(0),
        sessions: std::sync::atomic::AtomicU64::new(1),
    });
    let accept = tokio::spawn(session::accept_loop(endpoint.clone(), Arc::clone(&context)));
    let fingerprint = identity.fingerprint();
    tracing::info!(%local_addr, %fingerprint, "QUIC gateway listening");
    Ok(Gateway {
        endpoint,
        local_addr,
        fingerprint,
        certificate: identity.certificate_der(),
        context,
        shutdown,
        tasks: vec![accept, hub_task],
    })
}

impl Gateway {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 of its certificate, lower-case hex: what clients pin.
    pub fn cert_fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Its certificate, DER (for clients that trust it as a CA instead).
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.context.connections.load(Ordering::Relaxed)
    }

    /// Closes every connection (code `SHUTDOWN`) and stops its tasks, waiting at most two
    /// seconds for the peers to acknowledge.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.endpoint.close(mirror_wire::proto::close_code::SHUTDOWN.into(), b"shutting down");
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}
