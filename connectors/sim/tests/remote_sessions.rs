//! Sessions of `RemoteSimConnector` with a `SimServer`: connecting, refusals, connections that
//! drop (by the server, by the broker, by a second login) and reconnecting.

mod common;

use std::time::{Duration, Instant};

use common::{HEDGING, buy, client, connected, eventually, expect_event, serve};
use mirror_connector::{ConnectionState, Connector, ConnectorError, ConnectorEvent, OrderReportKind};
use mirror_connector_sim::{RemoteSimConfig, RemoteSimConnector, SimConfig};

const WAIT: Duration = Duration::from_secs(5);
/// How fast a call must fail when there is no connection (no network wait at all).
const FAST: Duration = Duration::from_millis(200);

fn is_connected(event: &ConnectorEvent) -> bool {
    matches!(event, ConnectorEvent::Connection(ConnectionState::Connected))
}

fn is_reconnecting(event: &ConnectorEvent) -> bool {
    matches!(event, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))
}

async fn assert_fails_fast_not_connected(connector: &impl Connector) {
    let started = Instant::now();
    assert_eq!(connector.account().await, Err(ConnectorError::NotConnected));
    assert_eq!(connector.place(&buy(999_999, "0.01")).await, Err(ConnectorError::NotConnected));
    assert_eq!(connector.open_positions().await, Err(ConnectorError::NotConnected));
    assert!(started.elapsed() < FAST, "failing took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_with_not_connected_before_connect_and_after_disconnect() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, HEDGING);
    assert_fails_fast_not_connected(&connector).await;

    let session = connector.connect().await.unwrap();
    assert_eq!(session.broker_account, HEDGING);
    assert_eq!(session.currency, "USD");
    assert_eq!(connector.connect().await.unwrap(), session, "a second connect changes nothing");
    assert!(connector.account().await.unwrap().balance.is_positive());
    assert_eq!(server.live_sessions().await, vec![HEDGING.to_owned()]);

    connector.disconnect().await;
    assert_fails_fast_not_connected(&connector).await;
    let events = connector.events();
    expect_event(&events, WAIT, "Disconnected", |event| {
        matches!(event, ConnectorEvent::Connection(ConnectionState::Disconnected { .. }))
    })
    .await;
    eventually(WAIT, "the server ending the session", || async { server.live_sessions().await.is_empty() }).await;
    assert!(events.try_iter().all(|event| !is_reconnecting(&event)), "a disconnect by the client is no reconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_account_is_refused_as_an_authentication_failure() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, "nobody");
    match connector.connect().await {
        Err(error @ ConnectorError::Auth(_)) => assert!(!error.retryable(), "{error}"),
        other => panic!("expected an Auth refusal, got {other:?}"),
    }
    assert_fails_fast_not_connected(&connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_with_a_password_refuses_a_wrong_or_missing_one_without_repeating_it() {
    let (broker, server) = serve(SimConfig::default()).await;
    broker.set_password(HEDGING, Some("s3cret-Pa55")).unwrap();
    for given in [None, Some("guess")] {
        let connector = RemoteSimConnector::new(RemoteSimConfig {
            password: given.map(str::to_owned),
            ..RemoteSimConfig::new(server.local_addr().to_string(), HEDGING)
        });
        match connector.connect().await {
            Err(error @ ConnectorError::Auth(_)) => {
                assert!(!error.to_string().contains("guess") && !error.to_string().contains("s3cret"), "{error}");
            }
            other => panic!("expected an Auth refusal, got {other:?}"),
        }
    }
    let connector = RemoteSimConnector::new(RemoteSimConfig {
        password: Some("s3cret-Pa55".into()),
        ..RemoteSimConfig::new(server.local_addr().to_string(), HEDGING)
    });
    connected(&connector).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_by_the_server_emits_reconnecting_and_connect_restores_the_session() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, HEDGING);
    let events = connector.events();
    connected(&connector).await;
    expect_event(&events, WAIT, "Connected", is_connected).await;
    let ack = connector.place(&buy(1, "0.01")).await.unwrap();

    assert_eq!(server.drop_connections(HEDGING).await, 1);
    expect_event(&events, WAIT, "Reconnecting", is_reconnecting).await;
    assert_fails_fast_not_connected(&connector).await;
    assert!(server.live_sessions().await.is_empty());
    assert_eq!(server.drop_connections(HEDGING).await, 0, "nothing left to drop");

    connected(&connector).await;
    expect_event(&events, WAIT, "Connected again", is_connected).await;
    let positions = connector.open_positions().await.unwrap();
    assert_eq!(positions.len(), 1, "{positions:?}");
    let history = connector.order_history(&[buy(1, "0.01").client_id]).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].broker_id, ack.broker_id);
    // The session works for trading again, and its events flow.
    connector.place(&buy(2, "0.01")).await.unwrap();
    expect_event(&events, WAIT, "the fill of the order placed after reconnecting", |event| {
        matches!(event, ConnectorEvent::Order(report)
            if report.client_id == Some(buy(2, "0.01").client_id) && matches!(report.kind, OrderReportKind::Filled(_)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cut_by_the_broker_reaches_the_client_as_reconnecting() {
    let (broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, HEDGING);
    let events = connector.events();
    connected(&connector).await;
    expect_event(&events, WAIT, "Connected", is_connected).await;

    broker.cut_session(HEDGING).unwrap();
    let event = expect_event(&events, WAIT, "Reconnecting", is_reconnecting).await;
    assert_eq!(
        event,
        ConnectorEvent::Connection(ConnectionState::Reconnecting { reason: "simulated network failure".into() })
    );
    assert_fails_fast_not_connected(&connector).await;
    eventually(WAIT, "the server ending the session", || async { server.live_sessions().await.is_empty() }).await;

    connected(&connector).await;
    expect_event(&events, WAIT, "Connected again", is_connected).await;
    assert!(connector.account().await.is_ok());
    // One loss, one report.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events.try_iter().all(|event| !is_reconnecting(&event)), "the cut was reported twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_for_the_account_ends_the_first_session() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let first = client(&server, HEDGING);
    let first_events = first.events();
    connected(&first).await;
    first.place(&buy(1, "0.01")).await.unwrap();

    let second = client(&server, HEDGING);
    connected(&second).await;
    expect_event(&first_events, WAIT, "Reconnecting on the first client", is_reconnecting).await;
    assert_fails_fast_not_connected(&first).await;
    assert_eq!(second.open_positions().await.unwrap().len(), 1);
    assert_eq!(server.live_sessions().await, vec![HEDGING.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_snapshot_arrives_in_the_event_stream_after_the_fills_it_reflects() {
    let (_broker, server) = serve(SimConfig::default()).await;
    let connector = client(&server, HEDGING);
    let events = connector.events();
    connected(&connector).await;
    let order = buy(1, "0.03");
    connector.place(&order).await.unwrap();
    connector.request_snapshot().await.unwrap();

    let mut filled_before = false;
    let snapshot = loop {
        match tokio::time::timeout(WAIT, events.recv_async()).await.expect("a snapshot in time").unwrap() {
            ConnectorEvent::Order(report) if report.client_id == Some(order.client_id) => filled_before = true,
            ConnectorEvent::Snapshot(snapshot) => break snapshot,
            _ => {}
        }
    };
    assert!(filled_before, "the snapshot came before the fill it reflects");
    assert_eq!(snapshot.positions.len(), 1);
    assert_eq!(snapshot.positions[0].qty, order.qty);
    assert_eq!(snapshot.account, connector.account().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_ends_every_session() {
    let (broker, server) = serve(SimConfig::default()).await;
    let hedging = client(&server, HEDGING);
    let netting = client(&server, common::NETTING);
    connected(&hedging).await;
    connected(&netting).await;
    server.shutdown().await;
    for connector in [&hedging, &netting] {
        expect_event(&connector.events(), WAIT, "Reconnecting", is_reconnecting).await;
        assert_fails_fast_not_connected(connector).await;
        assert!(connector.connect().await.is_err(), "nothing listens any more");
    }
    // The broker's state is still there for a new server.
    assert_eq!(broker.account_names().len(), 2);
}
