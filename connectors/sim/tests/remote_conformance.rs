//! The connector conformance kit, run against `RemoteSimConnector` through a real TCP
//! `SimServer`, on a hedging and on a netting account.

mod common;

use std::time::Duration;

use common::{HEDGING, NETTING, client, serve, sym};
use mirror_connector::Connector;
use mirror_connector::conformance::{self, CHECKS, ConformanceTarget};
use mirror_connector_sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedging_account_passes_the_conformance_kit_over_tcp() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, HEDGING);
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD.r"))).await.unwrap();
    assert_eq!(report.passed, CHECKS.to_vec());
    connector.disconnect().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netting_account_with_latency_slippage_and_partial_fills_passes_the_kit_over_tcp() {
    let config = SimConfig {
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis(4),
        slippage_ticks_max: 3,
        partial_fill_probability: 1.0,
        ..SimConfig::default()
    };
    let (broker, server) = serve(config).await;
    let connector = client(&server, NETTING);
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD"))).await.unwrap();
    assert_eq!(report.passed, CHECKS.to_vec());
    // The two-lot open filled in two parts (the rest after the call returned, on the broker's
    // own time), and the client still saw both.
    let opens = broker.history(NETTING).unwrap().into_iter().filter(|execution| execution.opening).count();
    assert_eq!(opens, 2, "{:?}", broker.history(NETTING));
    server.shutdown().await;
}
