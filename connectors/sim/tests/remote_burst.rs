//! A burst of orders through one connection: every order is executed once, reported once in
//! the event stream, and listed once by `order_history`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{HEDGING, buy, client, connected};
use mirror_connector::{Connector, ConnectorEvent, LookupState, OrderReportKind};
use mirror_connector_sim::{SimConfig, SimServer, SimServerConfig};
use mirror_model::{ClientOrderId, Qty};

const ORDERS: u64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_2000_orders_through_one_connection_is_in_the_history_exactly_once() {
    let broker = common::broker(SimConfig::default());
    // A small outbound queue, so that the burst also runs into the server's back-pressure.
    let config = SimServerConfig { outbound_capacity: 16, ..SimServerConfig::default() };
    let server = SimServer::bind_with(broker.clone(), "127.0.0.1:0", config).await.unwrap();
    let connector = client(&server, HEDGING);
    connected(&connector).await;

    // Count fills per client id as they stream in, until every order has filled.
    let events = connector.events();
    let counter = tokio::spawn(async move {
        let mut fills: BTreeMap<ClientOrderId, u32> = BTreeMap::new();
        let mut filled = 0;
        while filled < ORDERS {
            match tokio::time::timeout(Duration::from_secs(20), events.recv_async()).await {
                Ok(Ok(ConnectorEvent::Order(report))) if matches!(report.kind, OrderReportKind::Filled(_)) => {
                    let count = fills.entry(report.client_id.expect("orders placed through Mirror")).or_default();
                    *count += 1;
                    if *count == 1 {
                        filled += 1;
                    }
                }
                Ok(Ok(_)) => {}
                other => panic!("the stream stopped after {filled} fills: {other:?}"),
            }
        }
        // Anything still in the stream must not be a second fill.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for event in events.try_iter() {
            if let ConnectorEvent::Order(report) = event
                && let Some(client_id) = report.client_id
            {
                *fills.entry(client_id).or_default() += 1;
            }
        }
        fills
    });

    // Every order at once: they share the one connection.
    let mut placing = tokio::task::JoinSet::new();
    for id in 1..=ORDERS {
        let connector = connector.clone();
        placing.spawn(async move { (id, connector.place(&buy(id, "0.01")).await) });
    }
    let mut acks = BTreeMap::new();
    while let Some(placed) = placing.join_next().await {
        let (id, result) = placed.unwrap();
        let ack = result.unwrap_or_else(|error| panic!("order {id} failed: {error}"));
        acks.insert(buy(id, "0.01").client_id, ack.broker_id);
    }
    assert_eq!(acks.len() as u64, ORDERS);
    let mut brokers_ids: Vec<_> = acks.values().copied().collect();
    brokers_ids.sort();
    brokers_ids.dedup();
    assert_eq!(brokers_ids.len() as u64, ORDERS, "two orders got one broker id");

    let fills = counter.await.unwrap();
    assert_eq!(fills.len() as u64, ORDERS);
    assert!(fills.values().all(|count| *count == 1), "an order was reported filled twice");

    let ids: Vec<ClientOrderId> = acks.keys().copied().collect();
    let history = connector.order_history(&ids).await.unwrap();
    assert_eq!(history.len() as u64, ORDERS);
    let mut listed = BTreeMap::new();
    for lookup in &history {
        assert_eq!(listed.insert(lookup.client_id, lookup.broker_id), None, "{} listed twice", lookup.client_id);
        assert_eq!(lookup.state, LookupState::Filled);
        assert_eq!(lookup.fills.iter().fold(Qty::ZERO, |sum, fill| sum + fill.qty), lookup.qty);
    }
    assert_eq!(listed, acks, "the history names other orders than those placed");
    assert_eq!(connector.open_positions().await.unwrap().len() as u64, ORDERS);
    assert_eq!(broker.stats().orders, ORDERS);
}
