//! cTrader Open API connector for Mirror, and a cTrader simulator that speaks the same
//! protocol.
//!
//! - [`proto`] and the codec: protobuf messages over TLS TCP, each frame a 4-byte big-endian
//!   length and a `ProtoMessage` wrapper.
//! - [`CtraderSession`]: one connection carrying many accounts: application auth, account
//!   authorisation, token refresh, heartbeats, reconnect with backoff and then
//!   re-authorisation, reconciliation and resubscription. Every request goes through one
//!   scheduler that keeps the connection within cTrader's limits (50 requests per second,
//!   5 historical) and gives accounts turns, least recently served first.
//! - [`CtraderConnector`]: one account behind Mirror's `Connector` trait. Orders carry
//!   Mirror's client order id; resending one never creates a second order.
//! - [`CtraderSimulator`]: the server side on loopback TLS, for tests and demos.
//!
//! Known limits: tick values are in the symbol's quote currency (exact in the account's
//! currency only when the quote asset is the deposit asset); equity comes from
//! `ProtoOAGetPositionUnrealizedPnLReq` when asked, not from live prices.

#![warn(missing_docs)]

mod codec;
mod connector;
mod error;
pub mod proto;
mod session;
mod simulator;
mod tls;
mod tracker;
mod units;

pub use codec::{
    CodecError, FRAME_LEN_MAX, FrameDecoder, LENGTH_PREFIX_LEN, decode_frame, encode_frame, encode_message,
};
pub use connector::CtraderConnector;
pub use error::{CtraderError, reject_code};
pub use session::{CtraderSession, RateLimits, SessionConfig, SessionStats, Tokens, TraderAccount, WireWrite};
pub use simulator::{
    CtraderSimulator, ManualOrder, SimAccount, SimOrder, SimSymbol, SimulatorConfig, SimulatorError, SimulatorStats,
};
pub use tls::TlsTrust;
