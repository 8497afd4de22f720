//! What the bridge's integration tests share: instruments, a bridge with TLS on loopback, and
//! simulated terminals that dial it.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use mirror_connector_metatrader::sim::{SimSymbol, SimTls, TerminalSim, TerminalSimConfig};
use mirror_connector_metatrader::{BridgeConfig, MtBridge, TerminalConfig, TlsIdentity};
use mirror_model::{AccountMode, InstrumentKind, InstrumentSpec, Money, Platform, Price, Qty, Symbol};

pub fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

pub fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

pub fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

pub fn fx(symbol: &str, bid: &str, spread: &str) -> SimSymbol {
    SimSymbol {
        spec: InstrumentSpec {
            symbol: sym(symbol),
            kind: InstrumentKind::Forex,
            contract_size: q("100000"),
            tick_size: p("0.00001"),
            tick_value: Money::parse("1").unwrap(),
            lot_step: q("0.01"),
            min_qty: q("0.01"),
            max_qty: q("50"),
            digits: 5,
        },
        bid: p(bid),
        spread: p(spread),
    }
}

pub fn markets() -> Vec<SimSymbol> {
    vec![fx("EURUSD", "1.08500", "0.00008"), fx("GBPUSD", "1.26400", "0.00012")]
}

pub fn token(name: &str) -> String {
    format!("token-for-{name}-0123456789abcdef")
}

/// One terminal of a test: its name, platform and account mode.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub platform: Platform,
    pub mode: AccountMode,
}

impl Spec {
    pub fn new(name: &str, platform: Platform, mode: AccountMode) -> Self {
        Self { name: name.to_owned(), platform, mode }
    }
}

/// A bridge on an OS-chosen loopback port, with a fresh self-signed certificate, and shorter
/// timings than production so that tests of drops run quickly.
pub async fn bridge(terminals: &[Spec], tls: bool) -> (MtBridge, Option<SimTls>) {
    let identity = TlsIdentity::self_signed(&["localhost"]).unwrap();
    let sim_tls =
        tls.then(|| SimTls { certificate_der: identity.certificate_der().to_vec(), server_name: "localhost".into() });
    let configs = terminals
        .iter()
        .map(|t| TerminalConfig { name: t.name.clone(), platform: t.platform, token: token(&t.name), login: None })
        .collect();
    let mut config = BridgeConfig::new("127.0.0.1:0".parse().unwrap(), configs);
    config.tls = tls.then_some(identity);
    config.allow_plaintext = !tls;
    config.heartbeat = Duration::from_millis(250);
    config.idle_timeout = Duration::from_secs(3);
    config.command_timeout = Duration::from_secs(3);
    (MtBridge::bind(config).await.unwrap(), sim_tls)
}

pub fn terminal(spec: &Spec, index: u64, bridge: SocketAddr, tls: Option<SimTls>) -> TerminalSim {
    TerminalSim::start(TerminalSimConfig {
        name: spec.name.clone(),
        platform: spec.platform,
        mode: spec.mode,
        login: 5_000_000 + index,
        currency: "USD".into(),
        balance: Money::parse("100000").unwrap(),
        token: token(&spec.name),
        bridge,
        tls,
        symbols: markets(),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        magic: 7_460_531,
        first_ticket: 1_000_000 * (index + 1),
    })
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub mod engine;
