//! Settings of the simulated broker, its markets and its accounts.

use std::time::Duration;

use mirror_model::{AccountMode, InstrumentSpec, Money, Price, Qty, Symbol};

/// How the simulated broker behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Seed of every random choice (prices, latency, slippage, partial fills, rejects).
    pub seed: u64,
    /// How often prices move; `None` moves them only when told (tests).
    pub tick_interval: Option<Duration>,
    /// Shortest delay before an order is handled.
    pub latency_min: Duration,
    /// Longest delay before an order is handled.
    pub latency_max: Duration,
    /// Most ticks of adverse slippage on a market fill.
    pub slippage_ticks_max: u32,
    /// Chance (0 to 1) that a market open fills in two parts.
    pub partial_fill_probability: f64,
    /// Chance (0 to 1) that an order is refused for no reason the trader controls.
    pub reject_probability: f64,
    /// Capacity of each account's event stream.
    pub event_capacity: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            tick_interval: None,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            slippage_ticks_max: 0,
            partial_fill_probability: 0.0,
            reject_probability: 0.0,
            event_capacity: 65_536,
        }
    }
}

/// One price feed (an underlying market that account symbols map to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimMarket {
    /// The feed's name (`EURUSD`, `ES`).
    pub symbol: Symbol,
    /// Starting bid.
    pub bid: Price,
    /// Price increment of the feed.
    pub tick_size: Price,
    /// Ask minus bid, in ticks.
    pub spread_ticks: u32,
    /// Largest move per step, in ticks (each step moves uniformly within ±this).
    pub volatility_ticks: u32,
}

/// One instrument of one account, and the feed that prices it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimInstrument {
    /// The account's spec (its own symbol, contract size, steps).
    pub spec: InstrumentSpec,
    /// The feed.
    pub feed: Symbol,
}

/// One simulated account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAccountConfig {
    /// Unique name (the broker login).
    pub name: String,
    /// Netting or hedging.
    pub mode: AccountMode,
    /// Currency code.
    pub currency: String,
    /// Starting balance.
    pub balance: Money,
    /// What it trades.
    pub instruments: Vec<SimInstrument>,
}

/// How an auto-trading leader trades on its own (for the demo).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoTraderConfig {
    /// Time between decisions.
    pub every: Duration,
    /// Symbols it trades (the account's own).
    pub symbols: Vec<Symbol>,
    /// Quantities it picks from.
    pub quantities: Vec<Qty>,
    /// Most positions it holds at once.
    pub max_positions: usize,
    /// Stop distance in ticks.
    pub stop_ticks: u32,
    /// Target distance in ticks.
    pub profit_ticks: u32,
}
