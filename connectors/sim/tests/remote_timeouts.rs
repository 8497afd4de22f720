//! `RemoteSimConnector` against a peer that logs it in and then misbehaves: a request that gets
//! no answer, or whose connection drops, is reported with its outcome unknown (never as a
//! refusal), and a silent server is given up after the idle timeout.

mod common;

use std::time::{Duration, Instant};

use common::{HEDGING, buy, expect_event, read_json, write_json};
use mirror_connector::{ConnectionState, Connector, ConnectorError, ConnectorEvent, SessionInfo};
use mirror_connector_sim::{RemoteSimConfig, RemoteSimConnector};
use mirror_model::AccountMode;
use tokio::net::TcpListener;

/// What the peer does after the login.
#[derive(Clone, Copy)]
enum After {
    /// Reads everything and answers nothing.
    Silent,
    /// Closes the connection when the first request arrives.
    HangUpOnRequest,
}

/// A peer speaking just enough of the protocol to log a client in.
async fn peer(after: After) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let login = read_json(&mut stream).await.unwrap();
        assert_eq!(login["type"], "login");
        let session = SessionInfo {
            broker_account: login["account"].as_str().unwrap().to_owned(),
            currency: "USD".into(),
            mode: AccountMode::Hedging,
        };
        write_json(&mut stream, &serde_json::json!({ "type": "logged_in", "session": session })).await;
        while let Some(frame) = read_json(&mut stream).await {
            if matches!(after, After::HangUpOnRequest) && frame["type"] == "request" {
                return;
            }
        }
    });
    addr
}

fn config(addr: String) -> RemoteSimConfig {
    RemoteSimConfig { request_timeout: Duration::from_millis(300), ..RemoteSimConfig::new(addr, HEDGING) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_without_answer_times_out_with_its_outcome_unknown() {
    let connector = RemoteSimConnector::new(config(peer(After::Silent).await));
    connector.connect().await.unwrap();
    let started = Instant::now();
    let error = connector.place(&buy(1, "0.01")).await.unwrap_err();
    assert_eq!(error, ConnectorError::Timeout { operation: "place", timeout: Duration::from_millis(300) });
    assert!(error.outcome_unknown() && error.retryable());
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout took {:?}", started.elapsed());
    // The connection itself is still up: other calls time out the same way.
    assert!(matches!(
        connector.open_positions().await,
        Err(ConnectorError::Timeout { operation: "open_positions", .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_place_cut_by_a_dropped_connection_is_lost_with_its_outcome_unknown() {
    let connector = RemoteSimConnector::new(config(peer(After::HangUpOnRequest).await));
    let events = connector.events();
    connector.connect().await.unwrap();
    let error = connector.place(&buy(1, "0.01")).await.unwrap_err();
    assert!(matches!(error, ConnectorError::ConnectionLost { operation: "place", .. }), "{error:?}");
    assert!(error.outcome_unknown());
    expect_event(&events, Duration::from_secs(5), "Reconnecting", |event| {
        matches!(event, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    assert_eq!(connector.place(&buy(2, "0.01")).await, Err(ConnectorError::NotConnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_given_up_after_the_idle_timeout() {
    let config = RemoteSimConfig {
        heartbeat_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(300),
        ..config(peer(After::Silent).await)
    };
    let connector = RemoteSimConnector::new(config);
    let events = connector.events();
    connector.connect().await.unwrap();
    let event = expect_event(&events, Duration::from_secs(5), "Reconnecting", |event| {
        matches!(event, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))
    })
    .await;
    let ConnectorEvent::Connection(ConnectionState::Reconnecting { reason }) = event else { unreachable!() };
    assert!(reason.contains("nothing from the server"), "{reason}");
    assert_eq!(connector.account().await, Err(ConnectorError::NotConnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_server_that_never_answers_the_login_times_out() {
    // Accepts the connection (the kernel does, from the backlog) and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = RemoteSimConfig {
        connect_timeout: Duration::from_millis(300),
        ..RemoteSimConfig::new(listener.local_addr().unwrap().to_string(), HEDGING)
    };
    let connector = RemoteSimConnector::new(config);
    let started = Instant::now();
    assert_eq!(
        connector.connect().await,
        Err(ConnectorError::Timeout { operation: "connect", timeout: Duration::from_millis(300) })
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(listener);
}
