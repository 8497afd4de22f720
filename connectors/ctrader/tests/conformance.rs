//! The connector passes Mirror's conformance kit against the cTrader simulator, over real
//! TLS on loopback, on a hedged and on a netted account.

mod common;

use common::{config, sym};
use mirror_connector::Connector;
use mirror_connector::conformance::{self, CHECKS, ConformanceTarget};
use mirror_connector_ctrader::{CtraderSession, CtraderSimulator, SimAccount};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hedged_account_passes_every_check() {
    let simulator = CtraderSimulator::start(config(vec![SimAccount::new(101, "token-a")])).await.unwrap();
    let session = CtraderSession::new(simulator.session_config("token-a", None)).unwrap();
    let connector = session.connector(101);
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD"))).await.unwrap();
    assert_eq!(report.passed, CHECKS.to_vec());
    // Every order the kit placed once is at the broker once.
    let orders = simulator.orders(101);
    let mut ids: Vec<_> = orders.iter().filter_map(|o| o.client_order_id.clone()).collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a client order id reached the broker twice: {orders:?}");
    assert_eq!(simulator.stats().rate_limited, 0);
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netted_account_passes_every_check() {
    let mut account = SimAccount::new(202, "token-b");
    account.hedged = false;
    let simulator = CtraderSimulator::start(config(vec![account])).await.unwrap();
    let session = CtraderSession::new(simulator.session_config("token-b", None)).unwrap();
    let connector = session.connector(202);
    let info = connector.connect().await.unwrap();
    assert_eq!(info.mode, mirror_model::AccountMode::Netting);
    assert_eq!(info.currency, "USD");
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("GBPUSD"))).await.unwrap();
    assert_eq!(report.passed, CHECKS.to_vec());
    session.shutdown().await;
}
