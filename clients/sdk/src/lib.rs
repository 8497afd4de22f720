//! `mirror-sdk`: Mirror's async Rust client, for algo traders and the desktop apps.
//!
//! One QUIC connection (TLS 1.3, ALPN `mirror/1`) to the engine's gateway carries every command
//! on a stream of its own, so a slow state stream never holds up an order.
//!
//! ```no_run
//! # async fn run() -> Result<(), mirror_sdk::SdkError> {
//! use mirror_sdk::{Client, ClientConfig, Order, Side, Trust, topics};
//!
//! let config = ClientConfig::new(
//!     "127.0.0.1:7443".parse().unwrap(),
//!     Trust::Fingerprint("…64 hex digits printed by the engine…".into()),
//!     std::env::var("MIRROR_TOKEN").unwrap(),
//! );
//! let client = Client::connect(config).await?;
//! let position = client.next_position_key();
//! let signal = client.submit(&Order::market(position, "ES", Side::Buy, "1")?.into_ticket()).await?;
//! let mut state = client.subscribe(topics::ALL).await?;
//! while let Ok(update) = state.next().await {
//!     println!("{update:?}");
//! }
//! # let _ = signal; Ok(()) }
//! ```
//!
//! - [`Client::submit`] sends one order for the token's source; the answer comes once the
//!   engine has accepted it (durably, when it journals) and fanned it out.
//! - [`Client::submit_pair`] sends two legs together with a [`PairPolicy`]: where one leg is
//!   rejected or fills partly on a follower, the engine unwinds that follower or completes the
//!   missing leg, and [`PairHandle::outcome`] reports what happened on every follower.
//! - [`Client::subscribe`] streams a snapshot and then numbered deltas; after a lost
//!   connection [`Subscription::next`] reconnects and resumes after the last number it
//!   delivered, with no gap and no duplicate (or starts again from a snapshot, and says so).

#![warn(missing_docs)]

mod client;
mod io;
mod order;
mod subscription;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

pub use client::{Client, PairHandle};
pub use mirror_wire::FrameError;
pub use mirror_wire::proto::{
    AccountState, CopyState, CopyStatus, Delta, DeltaEvent, Deltas, ErrorCode, ErrorReply, FillState, FollowerPair,
    LatencyStats, LegReport, LegStatus, LogLevel, LogLine, OrderState, OrderStatus, OrderTicket, PairOutcome,
    PairPolicy, PairTicket, PositionState, Quote, Request, Resolution, Response, ResumeFrom, Role, SignalState,
    Snapshot, SnapshotReason, StateFrame, Welcome, topics,
};
pub use mirror_wire::proto::{OrderType, Side, Tif};
pub use order::Order;
pub use subscription::{StateUpdate, Subscription};

/// The QUIC client configuration the SDK uses (TLS 1.3 on ring, ALPN `mirror/1`, this trust),
/// for tools that speak the protocol frame by frame.
pub fn quic_client_config(trust: &Trust, identity: Option<&ClientIdentity>) -> Result<quinn::ClientConfig, SdkError> {
    Ok(quinn::ClientConfig::new(std::sync::Arc::new(tls::client_config(trust, identity)?)))
}

/// How the client trusts the server's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// The SHA-256 fingerprint of the server's certificate (64 hex digits; colons allowed),
    /// as the engine prints it at start.
    Fingerprint(String),
    /// A CA that signed the server's certificate (PEM).
    CaPem(Vec<u8>),
}

/// A client certificate, for servers that require one.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// Certificate chain, PEM.
    pub cert_pem: Vec<u8>,
    /// Private key, PEM.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity").finish_non_exhaustive()
    }
}

/// Reconnection: waits between attempts double from `min` to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First wait.
    pub min: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Attempts before giving up (0: never give up).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { min: Duration::from_millis(100), max: Duration::from_secs(5), attempts: 0 }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct ClientConfig {
    /// The gateway's UDP address.
    pub server: SocketAddr,
    /// The name the server's certificate is checked against (`localhost` for the engine's
    /// self-signed default).
    pub server_name: String,
    /// How the server's certificate is trusted.
    pub trust: Trust,
    /// The token. Never logged; `Debug` hides it.
    pub token: String,
    /// Who this client is, for the server's logs.
    pub client_name: String,
    /// A client certificate, when the server requires one.
    pub identity: Option<ClientIdentity>,
    /// Handshake plus hello.
    pub connect_timeout: Duration,
    /// One command's answer.
    pub request_timeout: Duration,
    /// Silence on a state stream after which it is taken for dead (the server sends a
    /// heartbeat every second).
    pub stream_timeout: Duration,
    /// Keep-alive interval of the connection.
    pub keep_alive: Duration,
    /// Reconnection of subscriptions.
    pub backoff: Backoff,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("server", &self.server)
            .field("server_name", &self.server_name)
            .field("trust", &self.trust)
            .field("token", &"<redacted>")
            .field("client_name", &self.client_name)
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Defaults: server name `localhost`, 5 s to connect, 20 s per command.
    pub fn new(server: SocketAddr, trust: Trust, token: impl Into<String>) -> Self {
        Self {
            server,
            server_name: "localhost".into(),
            trust,
            token: token.into(),
            client_name: format!("mirror-sdk/{}", env!("CARGO_PKG_VERSION")),
            identity: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            stream_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            backoff: Backoff::default(),
        }
    }
}

/// What went wrong, and whether trying again can help ([`SdkError::is_retryable`]).
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The configuration is wrong (fingerprint, PEM, address).
    #[error("client configuration: {0}")]
    Config(String),
    /// No connection could be made (unreachable, TLS refused, fingerprint mismatch).
    #[error("could not connect to {server}: {reason}")]
    Connect {
        /// The server.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server refused the token: no session.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The server speaks another protocol version.
    #[error("the server speaks protocol version {server}, this client {client}")]
    Version {
        /// The server's.
        server: u16,
        /// Ours.
        client: u16,
    },
    /// The connection or stream failed. For a command, whether it was applied is unknown
    /// unless `sent` is false.
    #[error("connection lost ({reason}); the request was {}", if *sent { "sent: its outcome is unknown" } else { "not sent" })]
    Connection {
        /// What happened.
        reason: String,
        /// Whether the request had been written.
        sent: bool,
    },
    /// No answer in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: &'static str,
        /// How long.
        after: Duration,
    },
    /// The server sent bytes that are not a valid frame.
    #[error("invalid frame from the server: {0}")]
    Frame(#[from] FrameError),
    /// The server refused the command.
    #[error("refused by the server: {0}")]
    Server(ErrorReply),
    /// The server answered something this client did not expect.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
    /// The state stream skipped numbers (a server bug); the subscription starts again.
    #[error("state stream gap: expected {expected}, got {got}")]
    Gap {
        /// Expected first number.
        expected: u64,
        /// What came.
        got: u64,
    },
}

impl SdkError {
    /// Whether the same call may succeed if tried again. A submit whose outcome is unknown is
    /// not retryable: resending could double it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Connection { sent, .. } => !sent,
            Self::Server(reply) => reply.retryable,
            Self::Timeout { .. } | Self::Gap { .. } => false,
            Self::Config(_) | Self::Unauthorized(_) | Self::Version { .. } | Self::Frame(_) | Self::Unexpected(_) => {
                false
            }
        }
    }
}
