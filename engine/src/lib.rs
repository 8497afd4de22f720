//! Mirror's engine: one signal in, many correctly sized follower orders out.
//!
//! - [`account`]: the account actor, an I/O-free state machine per account.
//! - [`router`]: the copy map (who copies whom, on which shard), swapped atomically.
//! - [`runtime`]: pinned shard threads with bounded mailboxes, and the engine that runs them.
//! - [`config`]: TOML configuration with precise errors.
//! - [`app`]: a running Mirror assembled from a configuration, on the simulated broker, cTrader
//!   and MetaTrader.
//! - [`gateway`]: the QUIC gateway for `mirror-sdk` and the desktop apps.
//! - [`market`]: market data: the latest quote of every account's symbols.
//! - [`http`]: the HTTP server: webhooks (TradingView, signed JSON), health, Prometheus metrics.
//! - [`file_drop`]: watched folders of CSV and JSON signal files.
//! - [`telemetry`]: counters, latency histograms, the status line and logs.

#![warn(missing_docs)]

pub mod account;
pub mod app;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod file_drop;
pub mod gateway;
mod hex;
pub mod http;
pub mod journal;
pub mod live_config;
pub mod market;
pub(crate) mod platforms;
pub mod replay;
pub mod router;
pub mod runtime;
pub mod secrets;
pub mod simulate;
pub mod store;
pub mod telemetry;

/// A link of the copy map (leader or source → follower), numbered when the map is built.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub struct LinkId(pub u32);
