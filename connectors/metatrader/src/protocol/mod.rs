//! The bridge's wire protocol, version 1: what the Expert Advisors and the bridge say to each
//! other.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON: one
//! object with a `type` tag, a `seq` number (1, 2, 3, … per direction and connection) and the
//! message's fields. Prices, volumes and money are decimal strings (see the module docs of
//! `text`); tickets, logins and times are JSON integers; a missing level is `""`.
//!
//! ```text
//! EA → engine   hello, snapshot, deal, sltp, pending_add, pending_del, account, quote, ack, pong
//! engine → EA   welcome, error, cmd, ping, subscribe, sync
//! ```
//!
//! A session: the EA connects (TLS where it can), sends `hello` with its terminal's token, the
//! bridge answers `welcome` (or `error` and closes), the EA sends a `snapshot` of everything
//! it holds and then streams events (`deal`, `sltp`, `pending_add`, `pending_del`, `account`,
//! `quote`) while executing `cmd` frames, each answered by one `ack`. `ping`/`pong` every
//! second keep both sides sure the other is there.

mod codec;
mod schema;
mod text;

pub use codec::{FrameDecoder, Message, decode_engine, decode_terminal, encode};
pub use schema::{Direction, MESSAGES, MessageSchema, OBJECTS, ObjectSchema};

use mirror_model::{InstrumentKind, Money, Price, Qty, Side, Symbol};
use serde::{Deserialize, Serialize};

/// The protocol version this bridge speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame accepted, in bytes (a snapshot of a terminal with a few thousand symbols
/// fits several times over). Larger frames end the session.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// A decoded frame: its sequence number and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<M> {
    /// 1 for the first frame each side sends on a connection, then +1 per frame.
    pub seq: u64,
    /// The message.
    pub message: M,
}

/// Why bytes from outside are not a frame this side understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A zero length prefix.
    #[error("empty frame")]
    Empty,
    /// Not a JSON object with a string `type` and an integer `seq`.
    #[error("frame is not a JSON object with a type and a seq: {0}")]
    Malformed(String),
    /// A `type` this side does not know.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// A known type whose fields are missing or wrong.
    #[error("`{tag}` frame: {detail}")]
    BadFields {
        /// The message type.
        tag: String,
        /// What serde said.
        detail: String,
    },
    /// A frame out of sequence.
    #[error("expected seq {expected}, got {got}")]
    Sequence {
        /// The next number expected.
        expected: u64,
        /// The number received.
        got: u64,
    },
    /// The message could not be encoded.
    #[error("cannot encode a `{tag}` frame: {detail}")]
    Encode {
        /// The message type.
        tag: &'static str,
        /// What serde said.
        detail: String,
    },
}

/// MetaTrader 4 or 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WirePlatform {
    /// MetaTrader 4.
    #[serde(rename = "MT4")]
    Mt4,
    /// MetaTrader 5.
    #[serde(rename = "MT5")]
    Mt5,
}

/// How the account holds positions (`ACCOUNT_MARGIN_MODE`; MT4 is always hedging).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarginMode {
    /// One position per symbol (`RETAIL_NETTING`, `EXCHANGE`).
    Netting,
    /// Many positions per symbol, each with its ticket (`RETAIL_HEDGING`, MT4).
    Hedging,
}

/// A deal opens or adds (`in`), or reduces or closes (`out`). A netting reversal (`INOUT`) is
/// sent as an `out` of the old position followed by an `in` of the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Opens a position or adds to it.
    In,
    /// Reduces or closes a position.
    Out,
}

/// A pending order's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingType {
    /// `ORDER_TYPE_BUY_LIMIT` / `OP_BUYLIMIT`.
    BuyLimit,
    /// `ORDER_TYPE_SELL_LIMIT` / `OP_SELLLIMIT`.
    SellLimit,
    /// `ORDER_TYPE_BUY_STOP` / `OP_BUYSTOP`.
    BuyStop,
    /// `ORDER_TYPE_SELL_STOP` / `OP_SELLSTOP`.
    SellStop,
}

/// How a pending order ended without filling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingEnd {
    /// Deleted (by the user, by Mirror, or by the broker).
    Cancelled,
    /// Its expiration passed.
    Expired,
}

/// What a command asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// A market or pending order that opens (or, on netting accounts, offsets).
    Open,
    /// Close all or part of a position by ticket.
    Close,
    /// Set a position's SL/TP.
    Modify,
    /// Delete a pending order.
    Cancel,
}

/// A command's order type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmdOrderType {
    /// At the market.
    Market,
    /// A limit order at `price`.
    Limit,
    /// A stop order at `price`.
    Stop,
}

/// Time in force of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tif {
    /// `ORDER_TIME_GTC`.
    Gtc,
    /// `ORDER_TIME_DAY`.
    Day,
    /// Immediate or cancel (`ORDER_FILLING_IOC` where the symbol allows it).
    Ioc,
    /// Fill or kill (`ORDER_FILLING_FOK` where the symbol allows it).
    Fok,
    /// `ORDER_TIME_SPECIFIED` at `expiration`.
    Gtd,
}

// ----- EA → engine ----------------------------------------------------------------------------

/// The first frame of a session: who the terminal is, and its token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] the EA speaks.
    pub proto: u32,
    /// MT4 or MT5.
    pub platform: WirePlatform,
    /// The terminal's build (`TERMINAL_BUILD`).
    pub build: u32,
    /// The EA's own version.
    pub ea_version: String,
    /// The trading account (`ACCOUNT_LOGIN`).
    pub login: u64,
    /// The trade server's name.
    pub server: String,
    /// The broker.
    pub company: String,
    /// Deposit currency.
    pub currency: String,
    /// Netting or hedging.
    pub margin_mode: MarginMode,
    /// Account leverage.
    pub leverage: u32,
    /// The per-terminal secret configured in the bridge and in the EA's inputs.
    pub token: String,
}

/// One open position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePosition {
    /// `POSITION_TICKET` (MT5) or the order ticket (MT4).
    pub ticket: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// Long (`buy`) or short (`sell`).
    pub side: Side,
    /// Open volume, lots.
    #[serde(with = "text::decimal")]
    pub volume: Qty,
    /// Open price (volume-weighted on netting accounts).
    #[serde(with = "text::decimal")]
    pub price_open: Price,
    /// Stop loss (`""` for none).
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// Take profit (`""` for none).
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// Magic number.
    pub magic: u64,
    /// Comment: Mirror's compact client id for its own orders; on MT4 `from #<ticket>` after
    /// a partial close.
    pub comment: String,
    /// Open time, Unix milliseconds.
    pub time_msc: i64,
}

/// One pending order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireOrder {
    /// Order ticket.
    pub ticket: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// Type.
    pub order_type: PendingType,
    /// Volume, lots.
    #[serde(with = "text::decimal")]
    pub volume: Qty,
    /// Limit or trigger price.
    #[serde(with = "text::decimal")]
    pub price: Price,
    /// Stop loss.
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// Take profit.
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// Magic number.
    pub magic: u64,
    /// Comment (Mirror's compact client id for its own orders).
    pub comment: String,
    /// Expiration, Unix milliseconds (0: good till cancelled).
    pub expiration: i64,
}

/// One symbol's trading specification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireSymbol {
    /// The symbol as the broker spells it (kept as text: one the model cannot hold is skipped,
    /// not fatal).
    pub name: String,
    /// Market kind, from `SYMBOL_TRADE_CALC_MODE`.
    pub kind: InstrumentKind,
    /// `SYMBOL_DIGITS`.
    pub digits: u8,
    /// `SYMBOL_TRADE_TICK_SIZE`, formatted with `digits`.
    #[serde(with = "text::decimal")]
    pub tick_size: Price,
    /// `SYMBOL_TRADE_TICK_VALUE`, account currency per tick per lot.
    #[serde(with = "text::decimal")]
    pub tick_value: Money,
    /// `SYMBOL_TRADE_CONTRACT_SIZE`.
    #[serde(with = "text::decimal")]
    pub contract_size: Qty,
    /// `SYMBOL_VOLUME_MIN`.
    #[serde(with = "text::decimal")]
    pub volume_min: Qty,
    /// `SYMBOL_VOLUME_MAX`.
    #[serde(with = "text::decimal")]
    pub volume_max: Qty,
    /// `SYMBOL_VOLUME_STEP`.
    #[serde(with = "text::decimal")]
    pub volume_step: Qty,
}

/// A command the EA executed, from its journal: how the bridge learns, after a reconnect,
/// that a command whose `ack` never arrived was carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// The command's id.
    pub cmd: u64,
    /// Mirror's compact client id (`""` for modify and cancel).
    pub cid: String,
    /// The order ticket it created or touched.
    pub order: u64,
    /// The position it opened, changed or closed (0 for pending orders).
    pub position: u64,
    /// Execution price (`""` when nothing executed).
    #[serde(with = "text::level")]
    pub price: Option<Price>,
    /// Executed volume (`""` when nothing executed).
    #[serde(with = "text::level")]
    pub volume: Option<Qty>,
}

/// Everything the terminal holds: sent right after `welcome`, and in answer to `sync`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The `sync` request answered (0 for the snapshot that opens a session).
    pub sync: u64,
    /// Terminal time, Unix milliseconds.
    pub time_msc: i64,
    /// Balance.
    #[serde(with = "text::decimal")]
    pub balance: Money,
    /// Equity.
    #[serde(with = "text::decimal")]
    pub equity: Money,
    /// Margin in use.
    #[serde(with = "text::decimal")]
    pub margin: Money,
    /// `TERMINAL_TRADE_ALLOWED` (AutoTrading on).
    pub trade_allowed: bool,
    /// Open positions.
    pub positions: Vec<WirePosition>,
    /// Pending orders.
    pub orders: Vec<WireOrder>,
    /// Symbol specifications (empty when a `sync` asked for none).
    pub symbols: Vec<WireSymbol>,
    /// The journal's latest executed commands.
    pub done: Vec<Done>,
}

/// One execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deal {
    /// The position ticket before the deal (MT4: the ticket that was closed from).
    pub position: u64,
    /// MT4 partial close: the ticket of the remainder (`from #<position>`); 0 otherwise.
    pub new_ticket: u64,
    /// The order ticket (the pending order's ticket when one triggered).
    pub order: u64,
    /// The deal ticket (MT5; 0 on MT4).
    pub deal: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// The deal's side (a close of a long is a sell).
    pub side: Side,
    /// Opens/adds or reduces/closes.
    pub entry: Entry,
    /// Volume executed, lots.
    #[serde(with = "text::decimal")]
    pub volume: Qty,
    /// Execution price.
    #[serde(with = "text::decimal")]
    pub price: Price,
    /// Profit realised by an `out` deal (with commission and swap), account currency.
    #[serde(with = "text::decimal")]
    pub profit: Money,
    /// The position's stop loss after the deal.
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// The position's take profit after the deal.
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// The position's open price after an `in` deal (netting averages); `""` when unknown.
    #[serde(with = "text::level")]
    pub pos_price: Option<Price>,
    /// Mirror's compact client id when Mirror's command caused the deal; `""` otherwise.
    pub cid: String,
    /// `DEAL_REASON` in words (`client`, `expert`, `sl`, `tp`, `so`, …), for logs.
    pub reason: String,
    /// Execution time, Unix milliseconds.
    pub time_msc: i64,
}

/// A position's SL/TP changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sltp {
    /// Position ticket.
    pub position: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// New stop loss.
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// New take profit.
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// Time, Unix milliseconds.
    pub time_msc: i64,
}

/// A pending order was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAdd {
    /// Order ticket.
    pub ticket: u64,
    /// Symbol.
    pub symbol: Symbol,
    /// Type.
    pub order_type: PendingType,
    /// Volume, lots.
    #[serde(with = "text::decimal")]
    pub volume: Qty,
    /// Limit or trigger price.
    #[serde(with = "text::decimal")]
    pub price: Price,
    /// Stop loss.
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// Take profit.
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// Mirror's compact client id for its own orders; `""` otherwise.
    pub cid: String,
    /// Expiration, Unix milliseconds (0: none).
    pub expiration: i64,
    /// Time, Unix milliseconds.
    pub time_msc: i64,
}

/// A pending order went away without filling.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDel {
    /// Order ticket.
    pub ticket: u64,
    /// Cancelled or expired.
    pub state: PendingEnd,
    /// Mirror's compact client id for its own orders; `""` otherwise.
    pub cid: String,
    /// Time, Unix milliseconds.
    pub time_msc: i64,
}

/// Balance, equity and margin changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdate {
    /// Balance.
    #[serde(with = "text::decimal")]
    pub balance: Money,
    /// Equity.
    #[serde(with = "text::decimal")]
    pub equity: Money,
    /// Margin in use.
    #[serde(with = "text::decimal")]
    pub margin: Money,
}

/// A subscribed symbol's best bid and ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteUpdate {
    /// Symbol.
    pub symbol: Symbol,
    /// Bid.
    #[serde(with = "text::decimal")]
    pub bid: Price,
    /// Ask.
    #[serde(with = "text::decimal")]
    pub ask: Price,
    /// Tick time, Unix milliseconds.
    pub time_msc: i64,
}

/// The answer to one `cmd`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The command answered.
    pub cmd: u64,
    /// Executed (or found executed already).
    pub ok: bool,
    /// MT5 `MqlTradeResult.retcode`, or the MT4 `GetLastError()` code (0 when ok on MT4).
    pub retcode: i64,
    /// The server's or the EA's words.
    pub message: String,
    /// The order ticket.
    pub order: u64,
    /// The position ticket (0 for a pending order).
    pub position: u64,
    /// Execution price (`""` when nothing executed).
    #[serde(with = "text::level")]
    pub price: Option<Price>,
    /// Executed volume (`""` when nothing executed).
    #[serde(with = "text::level")]
    pub volume: Option<Qty>,
    /// The EA found the command in its journal and did not execute it again.
    pub dup: bool,
}

/// The answer to `ping`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// The ping's `t`, echoed.
    pub t: i64,
    /// `TERMINAL_CONNECTED`: the terminal reaches its trade server.
    pub connected: bool,
    /// `TERMINAL_TRADE_ALLOWED`: AutoTrading is on.
    pub trade_allowed: bool,
}

/// Everything an Expert Advisor sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerminalMessage {
    /// `hello`.
    Hello(Hello),
    /// `snapshot`.
    Snapshot(Snapshot),
    /// `deal`.
    Deal(Deal),
    /// `sltp`.
    Sltp(Sltp),
    /// `pending_add`.
    PendingAdd(PendingAdd),
    /// `pending_del`.
    PendingDel(PendingDel),
    /// `account`.
    Account(AccountUpdate),
    /// `quote`.
    Quote(QuoteUpdate),
    /// `ack`.
    Ack(Ack),
    /// `pong`.
    Pong(Pong),
}

// ----- engine → EA ----------------------------------------------------------------------------

/// The session is open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// [`PROTOCOL_VERSION`].
    pub proto: u32,
    /// The session's number (for logs on both sides).
    pub session: u64,
    /// How often the bridge pings; the EA reconnects after several intervals of silence.
    pub heartbeat_ms: u64,
}

/// The bridge refuses or ends the session; it closes the connection right after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// `auth`, `version`, `platform`, `disabled`, `replaced`, `protocol`, `slow`.
    pub code: String,
    /// Details for the terminal's log.
    pub message: String,
}

/// A trading command. Every field is always present; those an `op` does not use are `""` or 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cmd {
    /// The command's id, unique across the bridge's restarts; echoed by its `ack`.
    pub cmd: u64,
    /// What to do.
    pub op: Op,
    /// Mirror's compact client id: the order comment, and the EA's idempotency key.
    pub cid: String,
    /// Symbol.
    pub symbol: String,
    /// Side of the order (`open`, `close`).
    #[serde(with = "text::word")]
    pub side: Option<Side>,
    /// Market, limit or stop (`open`).
    #[serde(with = "text::word")]
    pub order_type: Option<CmdOrderType>,
    /// Lots (`open`, `close`).
    #[serde(with = "text::level")]
    pub volume: Option<Qty>,
    /// Limit or trigger price (pending `open`).
    #[serde(with = "text::level")]
    pub price: Option<Price>,
    /// Stop loss (`open`, `modify`; `""` removes it).
    #[serde(with = "text::level")]
    pub sl: Option<Price>,
    /// Take profit (`open`, `modify`; `""` removes it).
    #[serde(with = "text::level")]
    pub tp: Option<Price>,
    /// Position ticket (`close`, `modify`).
    pub position: u64,
    /// Pending order ticket (`cancel`; 0 to find it by `cid`).
    pub order: u64,
    /// Expiration, Unix milliseconds (`gtd`).
    pub expiration: i64,
    /// Largest slippage accepted, in points.
    pub deviation: u32,
    /// Time in force (`open`).
    #[serde(with = "text::word")]
    pub tif: Option<Tif>,
}

/// Are you there?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Bridge time, Unix milliseconds (echoed by `pong`).
    pub t: i64,
}

/// Send `quote` frames for these symbols (the whole set; an empty list stops them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// Symbols.
    pub symbols: Vec<String>,
}

/// Send a fresh `snapshot` carrying this `id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Echoed as the snapshot's `sync`.
    pub id: u64,
    /// Include symbol specifications.
    pub symbols: bool,
}

/// Everything the bridge sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineMessage {
    /// `welcome`.
    Welcome(Welcome),
    /// `error`.
    Error(ErrorFrame),
    /// `cmd`.
    Cmd(Cmd),
    /// `ping`.
    Ping(Ping),
    /// `subscribe`.
    Subscribe(Subscribe),
    /// `sync`.
    Sync(SyncRequest),
}
