//! The MetaTrader 4/5 bridge.
//!
//! MetaTrader terminals have no network API, so an Expert Advisor in each terminal (sources
//! under `mql/`) dials the engine. [`MtBridge`] listens for them (TLS, or plain TCP where
//! allowed), authenticates each by its token, and gives the engine one [`MtConnector`] per
//! terminal, which implements Mirror's `Connector` trait.
//!
//! - [`protocol`]: the framed, versioned JSON protocol the EAs speak, and its schema.
//! - [`sim`]: a terminal simulator that speaks the protocol as the EAs do, for tests.
//!
//! Idempotency: every Mirror order carries its client id, compacted to fit an MT4 comment,
//! and the EA keeps a journal of the commands it executed. After a reconnect the bridge learns
//! from the EA's snapshot which commands in flight were executed; the others are sent again,
//! and the EA looks in its journal and history once more before executing one.

#![warn(missing_docs)]

mod book;
mod bridge;
mod cid;
mod connector;
mod error;
mod mapping;
pub mod protocol;
mod session;
pub mod sim;
mod terminal;
mod tls;
mod transport;

pub use bridge::{BridgeConfig, BridgeStats, MtBridge, TerminalConfig};
pub use connector::MtConnector;
pub use error::BridgeError;
pub use tls::TlsIdentity;

/// The compact form of a client order id that Mirror writes in MetaTrader order comments
/// (`M<signal>.<account>.<leg>` in base 36, at most 27 characters).
pub fn comment_id(id: mirror_model::ClientOrderId) -> String {
    cid::encode(id)
}

/// The client order id in a MetaTrader order comment, if it holds one.
pub fn client_id_of_comment(comment: &str) -> Option<mirror_model::ClientOrderId> {
    cid::decode(comment)
}
