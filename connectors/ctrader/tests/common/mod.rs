//! Helpers shared by the integration tests: a simulator with a few FX symbols and accounts.

// Each test binary uses a different part of these helpers.
#![allow(dead_code)]

use mirror_connector_ctrader::{CtraderSession, CtraderSimulator, SimAccount, SimSymbol, SimulatorConfig};
use mirror_model::{Price, Qty, Symbol};

pub(crate) const CLIENT_ID: &str = "mirror-test-app";
pub(crate) const CLIENT_SECRET: &str = "mirror-test-secret";
pub(crate) const EURUSD: i64 = 1;
pub(crate) const GBPUSD: i64 = 2;

pub(crate) fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

pub(crate) fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

pub(crate) fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

pub(crate) fn config(accounts: Vec<SimAccount>) -> SimulatorConfig {
    let mut config = SimulatorConfig::new(CLIENT_ID, CLIENT_SECRET);
    config.symbols = vec![
        SimSymbol::fx(EURUSD, "EURUSD", p("1.08500"), p("1.08508")),
        SimSymbol::fx(GBPUSD, "GBPUSD", p("1.26400"), p("1.26412")),
    ];
    config.accounts = accounts;
    config
}

/// A simulator with `accounts` hedged accounts (ids 1001…) sharing one access token.
pub(crate) async fn simulator(accounts: usize) -> CtraderSimulator {
    let accounts = (0..accounts).map(|i| SimAccount::new(account_id(i), "token")).collect();
    CtraderSimulator::start(config(accounts)).await.unwrap()
}

pub(crate) fn account_id(index: usize) -> i64 {
    1_001 + i64::try_from(index).unwrap()
}

pub(crate) fn session(simulator: &CtraderSimulator) -> CtraderSession {
    CtraderSession::new(simulator.session_config("token", Some("token-refresh"))).unwrap()
}
