//! The connector conformance kit, run against simulated terminals through the bridge: an MT5
//! hedging account over TLS, an MT5 netting account over plain TCP, and an MT4 account.

mod common;

use common::{Spec, bridge, sym, terminal};
use mirror_connector::Connector;
use mirror_connector::conformance::{self, CHECKS, ConformanceTarget};
use mirror_model::{AccountMode, Platform};

async fn passes(spec: Spec, tls: bool) {
    let (bridge, sim_tls) = bridge(std::slice::from_ref(&spec), tls).await;
    let sim = terminal(&spec, 1, bridge.local_addr(), sim_tls);
    let connector = bridge.connector(&spec.name).unwrap();
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD")))
        .await
        .unwrap_or_else(|failure| panic!("{} ({:?}, {:?}): {failure}", spec.name, spec.platform, spec.mode));
    assert_eq!(report.passed, CHECKS.to_vec());
    assert_eq!(connector.platform(), spec.platform);
    assert!(sim.positions().is_empty(), "the kit leaves the account flat: {:?}", sim.positions());
    let opens = sim.history().iter().filter(|deal| deal.opening).count();
    assert_eq!(opens, 1, "one open, despite the resend: {:?}", sim.history());
    assert_eq!(bridge.stats().protocol_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mt5_hedging_account_over_tls_passes_the_kit() {
    passes(Spec::new("mt5-hedging", Platform::Mt5, AccountMode::Hedging), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mt5_netting_account_over_plain_tcp_passes_the_kit() {
    passes(Spec::new("mt5-netting", Platform::Mt5, AccountMode::Netting), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mt4_account_over_tls_passes_the_kit() {
    passes(Spec::new("mt4", Platform::Mt4, AccountMode::Hedging), true).await;
}
