//! The connection drops in the middle of a burst of orders across several accounts: the
//! session reconnects, re-authorises and reconciles; orders whose answer was lost are
//! settled from the order history, and only the ones the server never got are sent again.
//! The broker ends with every order exactly once, and every order reports exactly one fill.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{account_id, q, session, simulator, sym};
use mirror_connector::{ConnectionState, Connector, ConnectorEvent, LookupState, OrderReportKind};
use mirror_connector_ctrader::CtraderConnector;
use mirror_model::{
    AccountId, ClientOrderId, OrderIntent, OrderKind, OrderRequest, PositionChange, Side, SignalId, TimeInForce,
};

const ACCOUNTS: usize = 4;
const ORDERS_PER_ACCOUNT: u64 = 25;

fn order(account: usize, n: u64) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::new(SignalId(1_000 + n), AccountId(u32::try_from(account).unwrap()), 0),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q("0.01"),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_mid_burst_neither_loses_nor_duplicates_an_order() {
    let simulator = simulator(ACCOUNTS).await;
    let session = session(&simulator);
    let connectors: Vec<Arc<CtraderConnector>> =
        (0..ACCOUNTS).map(|i| Arc::new(session.connector(account_id(i)))).collect();
    for connector in &connectors {
        connector.connect().await.unwrap();
    }
    let wire = session.wire_tap(100_000);
    // The burst: 100 orders at once. The server executes 30 of them, then the connection
    // drops before a single answer to the 30th goes out; what was on the wire behind it is
    // never read. The server holds its reading until more than 30 are on the wire, so
    // there is always something behind the cut, however the machine schedules the burst.
    simulator.hold_reading();
    simulator.cut_after_requests(30);
    let mut burst = tokio::task::JoinSet::new();
    for (index, connector) in connectors.iter().enumerate() {
        for n in 0..ORDERS_PER_ACCOUNT {
            let connector = Arc::clone(connector);
            burst.spawn(async move { (index, n, connector.place(&order(index, n)).await) });
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while sent <= 30 {
        let write = tokio::time::timeout_at(deadline, wire.recv_async()).await.expect("the burst goes out").unwrap();
        sent += usize::from(write.payload_type == 2106);
    }
    simulator.resume_reading();
    let mut unknown = Vec::new();
    let mut acks = BTreeMap::new();
    while let Some(joined) = burst.join_next().await {
        let (index, n, result) = joined.unwrap();
        match result {
            Ok(ack) => {
                acks.insert((index, n), ack.broker_id);
            }
            // What the engine keeps in flight and resends with the same id.
            Err(error) if error.outcome_unknown() => unknown.push((index, n)),
            Err(error) => panic!("order {index}/{n} refused: {error}"),
        }
    }
    for (index, n) in unknown {
        let ack = connectors[index].place(&order(index, n)).await.unwrap();
        acks.insert((index, n), ack.broker_id);
    }
    let total = ACCOUNTS * usize::try_from(ORDERS_PER_ACCOUNT).unwrap();
    assert_eq!(acks.len(), total);
    // Orders that were on the wire but never read by the server went out a second time;
    // the ones it executed but whose answers were lost did not.
    let sent = sent + wire.drain().filter(|w| w.payload_type == 2106).count();
    assert!(sent > total, "nothing was lost on the wire: {sent} sends for {total} orders");
    assert_eq!(simulator.stats().orders, u64::try_from(total).unwrap());
    eprintln!("{sent} order sends for {total} orders");
    assert_eq!(simulator.stats().cuts, 1);
    assert!(session.stats().connections >= 2, "the session reconnected: {:?}", session.stats());

    // Resending any of them now changes nothing: same broker order, nothing sent.
    let again = connectors[0].place(&order(0, 3)).await.unwrap();
    assert_eq!(Some(&again.broker_id), acks.get(&(0, 3)));

    tokio::time::sleep(Duration::from_millis(300)).await;
    for (index, connector) in connectors.iter().enumerate() {
        let account = account_id(index);
        // The broker holds each order exactly once.
        let mut at_broker: Vec<String> = simulator
            .orders(account)
            .into_iter()
            .map(|o| o.client_order_id.expect("every order carries its id"))
            .collect();
        at_broker.sort();
        let mut expected: Vec<String> =
            (0..ORDERS_PER_ACCOUNT).map(|n| order(index, n).client_id.to_string()).collect();
        expected.sort();
        assert_eq!(at_broker, expected, "account {account}");
        assert_eq!(simulator.positions(account).len(), expected.len());
        // The stream reports each order's fill exactly once, and a position for each.
        let events: Vec<ConnectorEvent> = connector.events().drain().collect();
        let mut fills: BTreeMap<ClientOrderId, usize> = BTreeMap::new();
        let mut opened = 0;
        for event in &events {
            match event {
                ConnectorEvent::Order(report) if matches!(report.kind, OrderReportKind::Filled(_)) => {
                    *fills.entry(report.client_id.expect("Mirror's orders carry Mirror's id")).or_default() += 1;
                }
                ConnectorEvent::Position(effect) if effect.change == PositionChange::Opened => opened += 1,
                _ => {}
            }
        }
        assert_eq!(fills.len(), expected.len(), "account {account}: fills {fills:?}");
        assert!(fills.values().all(|n| *n == 1), "account {account}: a fill reported twice: {fills:?}");
        assert_eq!(opened, expected.len(), "account {account}");
        assert!(events.iter().any(|e| matches!(e, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))));
        // The broker's own list agrees with what the connector reports.
        assert_eq!(connector.open_positions().await.unwrap().len(), expected.len());
    }
    // What the broker knows of every order, by client id: from this session, and from a
    // fresh one that never saw them (as after a restart). An id never sent is left out.
    let asked: Vec<ClientOrderId> =
        (0..ORDERS_PER_ACCOUNT).map(|n| order(1, n).client_id).chain([order(1, 999).client_id]).collect();
    let fresh_session = common::session(&simulator);
    let fresh = fresh_session.connector(account_id(1));
    fresh.connect().await.unwrap();
    for lookups in [connectors[1].order_history(&asked).await.unwrap(), fresh.order_history(&asked).await.unwrap()] {
        assert_eq!(lookups.len(), usize::try_from(ORDERS_PER_ACCOUNT).unwrap());
        for lookup in &lookups {
            assert_eq!(lookup.state, LookupState::Filled, "{lookup:?}");
            assert_eq!(lookup.qty, q("0.01"));
            assert_eq!(lookup.fills.len(), 1);
            assert_eq!(lookup.fills[0].qty, q("0.01"));
            let n = lookup.client_id.signal.0 - 1_000;
            assert_eq!(Some(&lookup.broker_id), acks.get(&(1, n)));
        }
    }
    fresh_session.shutdown().await;

    let stats = simulator.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(stats.max_requests_per_window <= 50, "{stats:?}");
    assert!(stats.max_historical_per_window <= 5, "{stats:?}");
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_snapshot_lands_in_the_stream_after_the_events_it_reflects() {
    let simulator = simulator(1).await;
    let session = session(&simulator);
    let connector = session.connector(account_id(0));
    connector.connect().await.unwrap();
    let stream = connector.events();
    stream.drain().for_each(drop);
    let first = connector.place(&order(0, 1)).await.unwrap();
    connector.request_snapshot().await.unwrap();
    connector.place(&order(0, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events: Vec<ConnectorEvent> = stream.drain().collect();
    let at = events.iter().position(|e| matches!(e, ConnectorEvent::Snapshot(_))).expect("a snapshot in the stream");
    let ConnectorEvent::Snapshot(snapshot) = &events[at] else { unreachable!() };
    // Everything before it is in it: the first order's fill and position; the second's
    // events come after it.
    assert_eq!(snapshot.positions.len(), 1);
    assert!(events[..at].iter().any(|e| matches!(e, ConnectorEvent::Order(r) if r.broker_id == first.broker_id)));
    assert!(
        events[at..].iter().any(|e| matches!(e, ConnectorEvent::Position(p) if p.change == PositionChange::Opened))
    );
    assert!(snapshot.orders.is_empty());
    assert_eq!(snapshot.account.balance, mirror_model::Money::parse("100000").unwrap());
    session.shutdown().await;
}
