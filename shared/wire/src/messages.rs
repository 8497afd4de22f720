//! The gateway protocol's messages (re-exported by [`crate::proto`]).

use mirror_model::{LeaderRef, NOTE_LEN_MAX, OpenSignal, OrderKind, Price, Qty, SignalAction, Symbol, TimeInForce};

use crate::frame::{FrameError, message};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// The TLS application protocol (ALPN) of version 1. A peer that offers no common ALPN fails
/// the handshake: versions never mix on one connection.
pub const ALPN: &[u8] = b"mirror/1";

/// Largest frame a client may send (every client frame is small; a configuration is the
/// largest).
pub const CLIENT_FRAME_MAX: usize = 256 * 1024;

/// Largest frame the server sends (a snapshot of a large installation).
pub const SERVER_FRAME_MAX: usize = 16 * 1024 * 1024;

/// Longest token, bytes.
pub const TOKEN_LEN_MAX: usize = 512;

/// Longest client name, bytes.
pub const CLIENT_NAME_LEN_MAX: usize = 128;

/// Longest configuration text, bytes.
pub const CONFIG_LEN_MAX: usize = 200 * 1024;

/// Longest message in an error reply, bytes.
pub const ERROR_LEN_MAX: usize = 4 * 1024;

/// Longest settle window of a pair, milliseconds.
pub const PAIR_SETTLE_MS_MAX: u32 = 120_000;

/// Application error codes the server closes a connection with.
pub mod close_code {
    /// A normal close.
    pub const NORMAL: u32 = 0;
    /// No valid token (or no hello in time): no session.
    pub const UNAUTHORIZED: u32 = 0x10;
    /// The first frame was not a valid hello.
    pub const BAD_HELLO: u32 = 0x11;
    /// The client speaks a protocol version the server does not.
    pub const VERSION: u32 = 0x12;
    /// The server is shutting down.
    pub const SHUTDOWN: u32 = 0x20;
    /// Too many connections or streams.
    pub const BUSY: u32 = 0x21;
}

/// Stream error codes (a stream reset or stopped by the server).
pub mod stream_code {
    /// A frame on the stream was malformed, truncated or over the limit.
    pub const BAD_FRAME: u32 = 0x01;
    /// The stream was too slow to take what was sent to it.
    pub const SLOW: u32 = 0x02;
    /// The server is stopping.
    pub const STOPPING: u32 = 0x03;
}

/// State topics a subscriber picks (a bit set).
pub mod topics {
    /// Accounts: balance, equity, mode, connection.
    pub const ACCOUNTS: u32 = 1;
    /// Open positions.
    pub const POSITIONS: u32 = 1 << 1;
    /// Orders and their status.
    pub const ORDERS: u32 = 1 << 2;
    /// Executions.
    pub const FILLS: u32 = 1 << 3;
    /// Per-follower copy status (copied, skipped and why, rejected).
    pub const COPY: u32 = 1 << 4;
    /// Log lines (one per audit record).
    pub const LOGS: u32 = 1 << 5;
    /// Counters and latency histograms.
    pub const LATENCY: u32 = 1 << 6;
    /// Quotes: the latest bid and ask of each account's symbols, coalesced (at most one per
    /// account and symbol per publication interval; only the latest counts).
    pub const QUOTES: u32 = 1 << 7;
    /// Signals as the engine takes or refuses them, from every source and leader account.
    pub const SIGNALS: u32 = 1 << 8;
    /// Everything.
    pub const ALL: u32 = (1 << 9) - 1;
}

/// The first frame of a connection. Its `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the client.
    pub protocol: u16,
    /// The bearer token. Never logged.
    pub token: String,
    /// Who the client is (`mirror-sdk/0.1 spread-bot`), for logs.
    pub client: String,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("protocol", &self.protocol)
            .field("token", &"<redacted>")
            .field("client", &self.client)
            .finish()
    }
}

/// What a token allows.
#[derive(
    Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy, PartialOrd, Ord, Hash,
)]
pub enum Role {
    /// Read state and configuration.
    Viewer,
    /// Also send orders for the token's source.
    Trader,
    /// Also pause, resume, flatten and apply configuration.
    Admin,
}

/// The answer to a hello.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum HelloReply {
    /// A session.
    Welcome(Welcome),
    /// No session; the server closes the connection.
    Refused(ErrorReply),
}

/// A session was opened.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Welcome {
    /// The server's protocol version.
    pub protocol: u16,
    /// This session's number (for logs on both sides).
    pub session: u64,
    /// The token's role.
    pub role: Role,
    /// The server's state epoch: sequence numbers are comparable only within one epoch.
    pub epoch: u64,
    /// The signal source the token sends orders as, if any.
    pub source: Option<u32>,
    /// The engine's version.
    pub server: String,
}

/// Buy or sell.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum Side {
    /// Buy, or long.
    Buy,
    /// Sell, or short.
    Sell,
}

/// How an order executes.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum OrderType {
    /// At the market.
    Market,
    /// Rests at `price` or better (raw 10⁻⁸).
    Limit {
        /// Limit price.
        price: i64,
    },
    /// Triggers at `price` (raw 10⁻⁸).
    Stop {
        /// Trigger price.
        price: i64,
    },
}

/// How long a pending order lives.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum Tif {
    /// Good till cancelled.
    Gtc,
    /// Until the trading day ends.
    Day,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
    /// Until a time (Unix ms).
    Gtd {
        /// Expiry.
        expire_unix_ms: i64,
    },
}

/// One order for the token's source, fanned out to every follower of it.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderTicket {
    /// The trader's own key for the position this order opens (later closes and modifies
    /// name it). Unique per source.
    pub position: u64,
    /// Symbol, as the source's followers know it.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Quantity, raw 10⁻⁸ units.
    pub qty: i64,
    /// Market, limit or stop.
    pub order_type: OrderType,
    /// The price the trader expects (the base for followers' SL-distance sizing).
    pub reference_price: Option<i64>,
    /// Stop loss.
    pub stop_loss: Option<i64>,
    /// Take profit.
    pub take_profit: Option<i64>,
    /// Time in force of a pending order.
    pub time_in_force: Tif,
    /// Units of the underlying per unit of quantity (for notional sizing).
    pub contract_size: Option<i64>,
    /// Free text, at most 256 bytes.
    pub note: String,
}

/// What to do when one leg of a pair is rejected or fills only partly on a follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum PairPolicy {
    /// Close what the follower holds of both legs: no follower keeps half a spread.
    Unwind,
    /// Send the missing leg to that follower again, once; what still fails is reported
    /// broken and left as it is.
    Complete,
}

/// Two orders fanned out together, with a policy for followers where they diverge.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PairTicket {
    /// First leg.
    pub first: OrderTicket,
    /// Second leg.
    pub second: OrderTicket,
    /// What to do on a follower where one leg fails.
    pub policy: PairPolicy,
    /// How long to wait for every follower's legs to settle before the policy is applied;
    /// 0: the server's default.
    pub settle_ms: u32,
}

/// A command, one per bidirectional stream.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Request {
    /// Send one order.
    Submit(OrderTicket),
    /// Send two orders together.
    SubmitPair(PairTicket),
    /// Change the SL/TP of a position's copies.
    Modify {
        /// The trader's position key.
        position: u64,
        /// New stop loss (`None` removes it).
        stop_loss: Option<i64>,
        /// New take profit.
        take_profit: Option<i64>,
    },
    /// Close a position's copies, wholly or a fraction.
    Close {
        /// The trader's position key.
        position: u64,
        /// `(closed, before)`: close this fraction of each copy; `None`: close all.
        partial: Option<(i64, i64)>,
    },
    /// Close every copy of the source, on one symbol or all.
    CloseAll {
        /// Only this symbol.
        symbol: Option<String>,
    },
    /// Cancel the copies of a pending order.
    Cancel {
        /// The trader's position key.
        position: u64,
    },
    /// Close every position of one account, or of all (admin).
    Flatten {
        /// The account, or all.
        account: Option<u32>,
    },
    /// Stop copying new opens to one account, or globally (admin).
    Pause {
        /// The account, or all.
        account: Option<u32>,
    },
    /// Copy again (admin).
    Resume {
        /// The account, or all.
        account: Option<u32>,
    },
    /// The configuration in force.
    ReadConfig,
    /// Replace the configuration, live (admin).
    ApplyConfig {
        /// The new TOML.
        toml: String,
    },
    /// Turn this stream into a state stream.
    Subscribe(Subscribe),
    /// Round trip.
    Ping {
        /// Echoed.
        nonce: u64,
    },
}

/// What a failed command was.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum ErrorCode {
    /// The frame was malformed, truncated or over the limit.
    BadFrame,
    /// The role does not allow it, or the token has no source.
    Forbidden,
    /// The engine refused it (invalid order, unknown symbol, unknown position).
    Refused,
    /// Not available in this server (no configuration service).
    Unavailable,
    /// A limit was reached (too many pairs in flight); retry later.
    Busy,
    /// Accepted, but the disk did not confirm it in time: do not resend.
    Unconfirmed,
    /// The engine is stopping.
    Stopped,
    /// Something went wrong in the server.
    Internal,
}

/// A command's failure.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct ErrorReply {
    /// What kind.
    pub code: ErrorCode,
    /// What was expected and what came.
    pub message: String,
    /// Whether the same command may succeed later.
    pub retryable: bool,
}

/// How a leg ended on one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum LegStatus {
    /// Filled completely.
    Filled,
    /// Some filled, the order finished short (or was still working at the deadline).
    PartlyFilled,
    /// Refused by the broker.
    Rejected,
    /// Not copied (a filter, symbol, size or risk rule; the reason is given).
    Skipped,
    /// Never reached the broker (queue full, engine stopped).
    NotSent,
    /// No answer before the deadline.
    Pending,
}

/// One leg on one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LegReport {
    /// The leg's signal.
    pub signal: u64,
    /// Quantity ordered (follower units, raw).
    pub ordered: i64,
    /// Quantity filled (raw).
    pub filled: i64,
    /// How it ended.
    pub status: LegStatus,
    /// The broker's or the rule's reason, when it failed.
    pub reason: String,
}

/// What was done for one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum Resolution {
    /// Both legs filled.
    Complete,
    /// A leg failed; both legs' copies are being closed.
    Unwound,
    /// A leg failed and was sent again, and filled.
    Completed,
    /// A leg failed and nothing made it whole (completion failed, or nothing was held).
    Broken,
    /// Neither leg was copied: nothing to do.
    NotCopied,
}

/// A pair on one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FollowerPair {
    /// The follower.
    pub account: u32,
    /// Its name.
    pub name: String,
    /// First leg.
    pub first: LegReport,
    /// Second leg.
    pub second: LegReport,
    /// What was done.
    pub resolution: Resolution,
}

/// How a pair ended, follower by follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PairOutcome {
    /// The first leg's signal.
    pub first: u64,
    /// The second leg's signal.
    pub second: u64,
    /// The policy applied.
    pub policy: PairPolicy,
    /// Every follower of the source.
    pub followers: Vec<FollowerPair>,
    /// Whether the settle window ran out before every leg had settled.
    pub timed_out: bool,
}

/// An answer on a command stream.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Response {
    /// The order was accepted (durable when the engine journals) and fanned out.
    Accepted {
        /// Its signal.
        signal: u64,
    },
    /// Both legs were accepted; the outcome follows.
    PairAccepted {
        /// First leg's signal.
        first: u64,
        /// Second leg's signal.
        second: u64,
    },
    /// The pair settled.
    PairOutcome(PairOutcome),
    /// A control was applied.
    Done,
    /// The configuration in force.
    Config {
        /// TOML.
        toml: String,
    },
    /// Round trip.
    Pong {
        /// Echoed.
        nonce: u64,
        /// Server time.
        server_unix_ms: i64,
    },
    /// The command failed.
    Error(ErrorReply),
}

/// Where a reconnecting subscriber stopped.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub struct ResumeFrom {
    /// The epoch of its state.
    pub epoch: u64,
    /// The last sequence number it holds.
    pub seq: u64,
}

/// A subscription.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Subscribe {
    /// [`topics`] bits.
    pub topics: u32,
    /// Resume after this point instead of starting from a snapshot.
    pub resume: Option<ResumeFrom>,
}

/// Why a snapshot was sent.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum SnapshotReason {
    /// A new subscription.
    Initial,
    /// The resume point is of another epoch or no longer kept.
    ResumeUnavailable,
    /// The subscriber fell behind; its queue was dropped.
    Lagged,
    /// The server lost audit records (the engine's telemetry was full).
    Resync,
}

/// An account.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct AccountState {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// Balance (raw).
    pub balance: i64,
    /// Equity (raw).
    pub equity: i64,
    /// Open positions.
    pub positions: u32,
    /// Orders not finished.
    pub live_orders: u32,
    /// Risk mode (`normal`, `close_only`, `frozen`).
    pub mode: String,
    /// Paused.
    pub paused: bool,
    /// Connected to its broker.
    pub connected: bool,
}

/// A position (`open: false` when it has just closed).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PositionState {
    /// Account.
    pub account: u32,
    /// Broker's id.
    pub id: u64,
    /// Symbol.
    pub symbol: String,
    /// Side.
    pub side: Side,
    /// Quantity (raw).
    pub qty: i64,
    /// Open price (raw).
    pub open_price: i64,
    /// Stop loss.
    pub stop_loss: Option<i64>,
    /// Take profit.
    pub take_profit: Option<i64>,
    /// Still open.
    pub open: bool,
}

/// Where an order is.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum OrderStatus {
    /// Handed to the connector.
    Submitted,
    /// Acknowledged by the broker.
    Accepted,
    /// Partly filled.
    PartlyFilled,
    /// Filled.
    Filled,
    /// Refused by the broker.
    Rejected,
    /// Cancelled.
    Cancelled,
    /// Expired.
    Expired,
    /// Outcome unknown, in flight until reconciliation.
    Unknown,
    /// Never reached the broker.
    NotSent,
}

/// An order of one account.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct OrderState {
    /// Account.
    pub account: u32,
    /// Client order id (`m<signal>.<account>.<leg>`).
    pub client_id: String,
    /// The signal it serves.
    pub signal: u64,
    /// Symbol (empty for a close, which names its position).
    pub symbol: String,
    /// Side of an open.
    pub side: Option<Side>,
    /// The position a close closes.
    pub position: Option<u64>,
    /// Quantity (raw).
    pub qty: i64,
    /// Filled so far (raw).
    pub filled: i64,
    /// Status.
    pub status: OrderStatus,
    /// The broker's reason for a rejection.
    pub reason: String,
}

/// An execution.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct FillState {
    /// Account.
    pub account: u32,
    /// Client order id.
    pub client_id: String,
    /// Signal.
    pub signal: u64,
    /// Quantity (raw).
    pub qty: i64,
    /// Price (raw).
    pub price: i64,
    /// Position.
    pub position: u64,
    /// Engine monotonic time, ns.
    pub mono_ns: u64,
}

/// What became of a signal on one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy)]
pub enum CopyState {
    /// An order was sent.
    Copied,
    /// Closing orders were sent.
    Closing,
    /// Not copied (see the detail).
    Skipped,
    /// The broker refused the copy.
    Rejected,
    /// The copy filled.
    Filled,
}

/// The latest copy status of one follower.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CopyStatus {
    /// Follower.
    pub account: u32,
    /// The signal.
    pub signal: u64,
    /// What became of it.
    pub state: CopyState,
    /// Why (for a skip or a rejection), or the client order id.
    pub detail: String,
}

/// Severity of a log line.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy, PartialOrd, Ord)]
pub enum LogLevel {
    /// Routine.
    Debug,
    /// Noteworthy.
    Info,
    /// Needs attention.
    Warn,
}

/// A log line.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct LogLine {
    /// Severity.
    pub level: LogLevel,
    /// Account.
    pub account: u32,
    /// Signal, or 0.
    pub signal: u64,
    /// The line.
    pub text: String,
    /// Engine monotonic time, ns.
    pub mono_ns: u64,
}

/// Percentiles of one latency distribution, ns.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy, Default)]
pub struct Percentiles {
    /// Samples.
    pub samples: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// Counters and latency.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Copy, Default)]
pub struct LatencyStats {
    /// Signal accepted → every follower order handed to its connector, over the last window.
    pub fanout: Percentiles,
    /// Signals fanned out.
    pub signals: u64,
    /// Copies sent.
    pub copies: u64,
    /// Closes sent.
    pub closes: u64,
    /// Fills.
    pub fills: u64,
    /// Broker rejections.
    pub rejects: u64,
    /// Skips.
    pub skipped: u64,
    /// Telemetry records dropped.
    pub telemetry_dropped: u64,
}

/// The latest quote of a symbol at one account's broker.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Quote {
    /// Account.
    pub account: u32,
    /// Symbol, as the account's broker spells it.
    pub symbol: String,
    /// Bid (raw).
    pub bid: i64,
    /// Ask (raw).
    pub ask: i64,
    /// Broker time, Unix milliseconds.
    pub time_unix_ms: i64,
}

/// A signal as the engine took it, or refused it before any follower saw it: from a source
/// (webhook, REST, SDK, file drop, manual ticket) or a leader account's own trade. What each
/// follower then did with it comes as [`CopyStatus`] events.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SignalState {
    /// The signal.
    pub signal: u64,
    /// The leader account whose trade it is, or 0.
    pub leader_account: u32,
    /// The source that sent it, or 0.
    pub source: u32,
    /// `open`, `open_pending`, `modify`, `close`, `partial_close`, `close_all` or
    /// `cancel_pending`.
    pub action: String,
    /// Symbol (leader's), or empty (a close names its position, `close_all` may name none).
    pub symbol: String,
    /// Side of an open.
    pub side: Option<Side>,
    /// Quantity (raw 10⁻⁸): an open's, a partial close's closed quantity; 0 otherwise.
    pub qty: i64,
    /// The leader position it opens or acts on, or 0.
    pub position: u64,
    /// The sender's note.
    pub note: String,
    /// When the sender made it, Unix milliseconds.
    pub created_unix_ms: i64,
    /// Engine monotonic time when the engine accepted it (what fan-out latency is measured
    /// from, on the audit records' clock), ns.
    pub mono_ns: u64,
    /// Why the engine refused it; empty when it was taken and fanned out.
    pub refused: String,
}

/// One change of state.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum DeltaEvent {
    /// An account changed.
    Account(AccountState),
    /// A position opened, changed or closed.
    Position(PositionState),
    /// An order changed.
    Order(OrderState),
    /// An execution.
    Fill(FillState),
    /// A follower's copy status.
    Copy(CopyStatus),
    /// A log line.
    Log(LogLine),
    /// Counters and latency.
    Latency(LatencyStats),
    /// A quote.
    Quote(Quote),
    /// A signal taken or refused.
    Signal(SignalState),
}

impl DeltaEvent {
    /// Its [`topics`] bit.
    pub fn topic(&self) -> u32 {
        match self {
            Self::Account(_) => topics::ACCOUNTS,
            Self::Position(_) => topics::POSITIONS,
            Self::Order(_) => topics::ORDERS,
            Self::Fill(_) => topics::FILLS,
            Self::Copy(_) => topics::COPY,
            Self::Log(_) => topics::LOGS,
            Self::Latency(_) => topics::LATENCY,
            Self::Quote(_) => topics::QUOTES,
            Self::Signal(_) => topics::SIGNALS,
        }
    }
}

/// One numbered change.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Delta {
    /// Its sequence number (gap-free within an epoch).
    pub seq: u64,
    /// What changed.
    pub event: DeltaEvent,
}

/// Everything a subscriber needs to start from: the state as of `seq`.
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Snapshot {
    /// Epoch.
    pub epoch: u64,
    /// Every change up to this number is in the snapshot.
    pub seq: u64,
    /// Why it was sent.
    pub reason: SnapshotReason,
    /// Accounts.
    pub accounts: Vec<AccountState>,
    /// Open positions.
    pub positions: Vec<PositionState>,
    /// Live orders and the latest finished ones.
    pub orders: Vec<OrderState>,
    /// The latest fills.
    pub fills: Vec<FillState>,
    /// Each follower's latest copy status.
    pub copy: Vec<CopyStatus>,
    /// Counters and latency.
    pub latency: LatencyStats,
    /// The latest quote of each account's symbols.
    pub quotes: Vec<Quote>,
}

/// Changes `first_seq ..= last_seq` (events of topics the subscriber did not pick are left
/// out, the range still covers them).
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Deltas {
    /// Epoch.
    pub epoch: u64,
    /// First number covered.
    pub first_seq: u64,
    /// Last number covered.
    pub last_seq: u64,
    /// The changes of the subscriber's topics.
    pub events: Vec<Delta>,
}

/// A frame on a state stream.
// A snapshot is one frame per subscriber start, against a heap of vectors it carries anyway:
// its inline size is not worth a box in every match on the frame.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum StateFrame {
    /// Start (again) from here.
    Snapshot(Snapshot),
    /// What changed next.
    Deltas(Deltas),
    /// Nothing changed; the stream is alive and this is the latest number.
    Heartbeat {
        /// Epoch.
        epoch: u64,
        /// Latest number.
        seq: u64,
    },
}

fn check_len(message: &'static str, field: &'static str, text: &str, max: usize) -> Result<(), FrameError> {
    if text.len() > max {
        return Err(FrameError::field(message, field, format!("{} bytes; at most {max} are allowed", text.len())));
    }
    Ok(())
}

fn symbol(message: &'static str, field: &'static str, text: &str) -> Result<Symbol, FrameError> {
    Symbol::new(text).map_err(|e| FrameError::field(message, field, e.to_string()))
}

fn positive(message: &'static str, field: &'static str, raw: i64) -> Result<Qty, FrameError> {
    let value = Qty::from_raw(raw);
    let limit = mirror_model::MAX_WHOLE_UNITS.saturating_mul(mirror_model::SCALE);
    if raw <= 0 || raw > limit {
        return Err(FrameError::field(
            message,
            field,
            format!("must be above 0 and at most {limit} raw units, got {raw}"),
        ));
    }
    Ok(value)
}

fn price(message: &'static str, field: &'static str, raw: Option<i64>) -> Result<Option<Price>, FrameError> {
    raw.map(|raw| positive(message, field, raw).map(|q| Price::from_raw(q.raw()))).transpose()
}

fn check_hello(hello: &Hello) -> Result<(), FrameError> {
    check_len("Hello", "token", &hello.token, TOKEN_LEN_MAX)?;
    check_len("Hello", "client", &hello.client, CLIENT_NAME_LEN_MAX)
}

impl OrderTicket {
    /// The open signal this ticket asks for, every field checked.
    pub fn to_open(&self) -> Result<OpenSignal, FrameError> {
        const M: &str = "OrderTicket";
        check_len(M, "note", &self.note, NOTE_LEN_MAX)?;
        let kind = match self.order_type {
            OrderType::Market => OrderKind::Market,
            OrderType::Limit { price: raw } => {
                OrderKind::Limit { price: Price::from_raw(positive(M, "price", raw)?.raw()) }
            }
            OrderType::Stop { price: raw } => {
                OrderKind::Stop { price: Price::from_raw(positive(M, "price", raw)?.raw()) }
            }
        };
        Ok(OpenSignal {
            leader: LeaderRef(self.position),
            symbol: symbol(M, "symbol", &self.symbol)?,
            side: self.side.into(),
            qty: positive(M, "qty", self.qty)?,
            kind,
            reference_price: price(M, "reference_price", self.reference_price)?,
            stop_loss: price(M, "stop_loss", self.stop_loss)?,
            take_profit: price(M, "take_profit", self.take_profit)?,
            time_in_force: match self.time_in_force {
                Tif::Gtc => TimeInForce::Gtc,
                Tif::Day => TimeInForce::Day,
                Tif::Ioc => TimeInForce::Ioc,
                Tif::Fok => TimeInForce::Fok,
                Tif::Gtd { expire_unix_ms } => TimeInForce::Gtd { expire_unix_ms },
            },
            contract_size: self.contract_size.map(|raw| positive(M, "contract_size", raw)).transpose()?,
            from_pending: None,
            risk_bp: None,
        })
    }
}

impl Request {
    /// The signal action of an order command (`None` for the others), every field checked.
    pub fn to_action(&self) -> Result<Option<SignalAction>, FrameError> {
        const M: &str = "Request";
        Ok(Some(match self {
            Self::Submit(ticket) => SignalAction::Open(ticket.to_open()?),
            Self::Modify { position, stop_loss, take_profit } => SignalAction::Modify {
                leader: LeaderRef(*position),
                stop_loss: price(M, "stop_loss", *stop_loss)?,
                take_profit: price(M, "take_profit", *take_profit)?,
            },
            Self::Close { position, partial: None } => SignalAction::Close { leader: LeaderRef(*position) },
            Self::Close { position, partial: Some((closed, before)) } => SignalAction::PartialClose {
                leader: LeaderRef(*position),
                closed_qty: positive(M, "partial.closed", *closed)?,
                qty_before: positive(M, "partial.before", *before)?,
            },
            Self::CloseAll { symbol: text } => {
                SignalAction::CloseAll { symbol: text.as_deref().map(|t| symbol(M, "symbol", t)).transpose()? }
            }
            Self::Cancel { position } => SignalAction::CancelPending { leader: LeaderRef(*position) },
            _ => return Ok(None),
        }))
    }
}

fn check_request(request: &Request) -> Result<(), FrameError> {
    match request {
        Request::SubmitPair(pair) => {
            pair.first.to_open()?;
            pair.second.to_open()?;
            if pair.first.position == pair.second.position {
                return Err(FrameError::field("PairTicket", "second.position", "both legs have the same position key"));
            }
            if pair.settle_ms > PAIR_SETTLE_MS_MAX {
                return Err(FrameError::field(
                    "PairTicket",
                    "settle_ms",
                    format!("at most {PAIR_SETTLE_MS_MAX}, got {}", pair.settle_ms),
                ));
            }
            Ok(())
        }
        Request::ApplyConfig { toml } => check_len("Request", "toml", toml, CONFIG_LEN_MAX),
        Request::Subscribe(subscribe) if subscribe.topics & !topics::ALL != 0 => Err(FrameError::field(
            "Subscribe",
            "topics",
            format!("unknown topic bits {:#x}", subscribe.topics & !topics::ALL),
        )),
        other => other.to_action().map(|_| ()),
    }
}

fn check_error(reply: &ErrorReply) -> Result<(), FrameError> {
    check_len("ErrorReply", "message", &reply.message, ERROR_LEN_MAX)
}

message!(Hello, "Hello", 4 * 1024, check_hello);
message!(HelloReply, "HelloReply", 16 * 1024, |reply: &HelloReply| match reply {
    HelloReply::Refused(error) => check_error(error),
    HelloReply::Welcome(_) => Ok(()),
});
message!(Request, "Request", CLIENT_FRAME_MAX, check_request);
message!(Response, "Response", SERVER_FRAME_MAX);
message!(StateFrame, "StateFrame", SERVER_FRAME_MAX);

impl From<Side> for mirror_model::Side {
    fn from(side: Side) -> Self {
        match side {
            Side::Buy => Self::Buy,
            Side::Sell => Self::Sell,
        }
    }
}

impl From<mirror_model::Side> for Side {
    fn from(side: mirror_model::Side) -> Self {
        match side {
            mirror_model::Side::Buy => Self::Buy,
            mirror_model::Side::Sell => Self::Sell,
        }
    }
}

impl ErrorReply {
    /// A reply.
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        let mut message = message.into();
        if message.len() > ERROR_LEN_MAX {
            let mut end = ERROR_LEN_MAX;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self { code, message, retryable }
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}
