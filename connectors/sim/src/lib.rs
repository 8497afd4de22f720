//! Mirror's simulated broker (paper trading).
//!
//! One [`SimBroker`] holds markets (seeded random-walk price feeds) and accounts (netting or
//! hedging, each with its own instrument specs mapped onto the feeds). Each account is reached
//! through a [`SimConnector`], which implements Mirror's `Connector` trait with configurable
//! latency, slippage, partial fills and rejects. Accounts can also be traded "by hand"
//! ([`SimBroker::manual_order`] and friends, or an auto-trader), which is how a leader
//! account's own trading is simulated.
//!
//! The broker can also be served over TCP by a [`SimServer`], so that its state outlives a
//! client process (a crash test kills the engine and the broker keeps its accounts); a
//! [`RemoteSimConnector`] is the `Connector` on the other end. An account is reached through
//! one or the other at a time, not both.
//!
//! Margin is not modelled: orders are never refused for lack of margin.

#![warn(missing_docs)]

mod broker;
mod config;
mod connector;
mod protocol;
mod remote;
mod server;
mod trader;

pub use broker::{SimBroker, SimError, SimExecution, SimStats};
pub use config::{AutoTraderConfig, SimAccountConfig, SimConfig, SimInstrument, SimMarket};
pub use connector::SimConnector;
pub use remote::{RemoteSimConfig, RemoteSimConnector};
pub use server::{SimServer, SimServerConfig, SimServerError};
pub use trader::spawn_autotrader;
