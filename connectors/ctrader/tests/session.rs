//! The session's life against the simulator: credentials, the account list, token expiry
//! and refresh, heartbeats against the server's inactivity timeout, the server's rate limit
//! (and that the simulator really enforces it), and the bounded request queues.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{account_id, config, q, session, simulator, sym};
use mirror_connector::{Connector, ConnectorError, RejectCode};
use mirror_connector_ctrader::{CtraderError, CtraderSession, CtraderSimulator, SimAccount, Tokens};
use mirror_model::{AccountId, ClientOrderId, OrderIntent, OrderKind, OrderRequest, Side, SignalId, TimeInForce};

fn order(n: u64) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::new(SignalId(n), AccountId(9), 0),
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
async fn the_account_list_comes_from_the_access_token() {
    let simulator = simulator(3).await;
    let session = session(&simulator);
    let accounts = session.account_list().await.unwrap();
    let ids: Vec<i64> = accounts.iter().map(|a| a.ctid_trader_account_id).collect();
    assert_eq!(ids, vec![account_id(0), account_id(1), account_id(2)]);
    assert_eq!(accounts[0].trader_login, Some(5_000_000 + account_id(0)));
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_application_credentials_stop_the_session() {
    let simulator = simulator(1).await;
    let mut config = simulator.session_config("token", None);
    config.client_secret = "not the secret".into();
    let session = CtraderSession::new(config).unwrap();
    match session.connect().await {
        Err(CtraderError::Down(reason)) => assert!(reason.contains("CH_CLIENT_AUTH_FAILURE"), "{reason}"),
        other => panic!("expected the session to stop, got {other:?}"),
    }
    // It does not hammer the server with retries.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(simulator.stats().connections, 1);
    match session.connector(account_id(0)).connect().await {
        Err(ConnectorError::Auth(reason)) => assert!(reason.contains("CH_CLIENT_AUTH_FAILURE"), "{reason}"),
        other => panic!("expected an auth failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_the_token_does_not_grant_is_refused() {
    let simulator = simulator(1).await;
    let session = session(&simulator);
    let stranger = session.connector(999);
    match stranger.connect().await {
        Err(ConnectorError::Auth(reason)) => assert!(reason.contains("CH_CTID_TRADER_ACCOUNT_NOT_FOUND"), "{reason}"),
        other => panic!("expected an auth refusal, got {other:?}"),
    }
    // The other accounts of the session are not affected.
    session.connector(account_id(0)).connect().await.unwrap();
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_and_the_accounts_come_back() {
    let simulator = simulator(2).await;
    let session = session(&simulator);
    let first = session.connector(account_id(0));
    let second = session.connector(account_id(1));
    first.connect().await.unwrap();
    second.connect().await.unwrap();
    simulator.expire_access_token("token");
    simulator.drop_connections();
    // Account auth on the new connection answers OA_AUTH_TOKEN_EXPIRED; the session trades
    // the refresh token for new tokens, once, and authorises both accounts with them.
    first.place(&order(1)).await.unwrap();
    second.place(&order(2)).await.unwrap();
    let tokens: Tokens = session.tokens();
    assert_ne!(tokens.access_token, "token");
    assert_ne!(tokens.refresh_token.as_deref(), Some("token-refresh"));
    assert_eq!(simulator.orders(account_id(0)).len(), 1);
    assert_eq!(simulator.orders(account_id(1)).len(), 1);
    // An explicit refresh spends the new refresh token.
    let again = session.refresh_token().await.unwrap();
    assert_ne!(again.access_token, tokens.access_token);
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_connection_alive() {
    let mut sim_config = config(vec![SimAccount::new(1_001, "token")]);
    sim_config.idle_timeout = Duration::from_millis(800);
    let simulator = CtraderSimulator::start(sim_config).await.unwrap();
    let mut quiet = simulator.session_config("token", None);
    quiet.heartbeat_interval = Duration::from_millis(200);
    let session = CtraderSession::new(quiet).unwrap();
    session.connector(1_001).connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(simulator.stats().connections, 1, "the server dropped a connection that sent heartbeats");
    assert!(session.stats().heartbeats_sent >= 5, "{:?}", session.stats());
    session.shutdown().await;

    // Without heartbeats in time the server drops the client, which reconnects by itself.
    let mut silent = simulator.session_config("token", None);
    silent.heartbeat_interval = Duration::from_secs(30);
    let session = CtraderSession::new(silent).unwrap();
    let connector = session.connector(1_001);
    connector.connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(session.stats().connections >= 2, "{:?}", session.stats());
    connector.connect().await.unwrap();
    connector.place(&order(7)).await.unwrap();
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_refuses_requests_over_the_limit() {
    let simulator = simulator(1).await;
    // A client that ignores cTrader's limit: the server refuses what is over it.
    let mut greedy = simulator.session_config("token", None);
    greedy.limits.requests = 1_000;
    greedy.limits.guard = Duration::ZERO;
    let session = CtraderSession::new(greedy).unwrap();
    let connector = Arc::new(session.connector(account_id(0)));
    connector.connect().await.unwrap();
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..80 {
        let connector = Arc::clone(&connector);
        burst.spawn(async move { connector.place(&order(100 + n)).await });
    }
    let mut refused = 0;
    while let Some(result) = burst.join_next().await {
        match result.unwrap() {
            Ok(_) => {}
            Err(ConnectorError::Rejected(reason)) if reason.code == RejectCode::RateLimited => refused += 1,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    let stats = simulator.stats();
    assert!(refused > 0 && stats.rate_limited > 0, "nothing was refused: {stats:?}");
    assert!(stats.max_requests_per_window > 50);
    assert_eq!(session.stats().rate_limited, stats.rate_limited);
    // Refused requests were not executed.
    assert_eq!(simulator.orders(account_id(0)).len(), 80 - refused);
    session.shutdown().await;

    // The same burst through a session that keeps the limit: nothing refused.
    let simulator = common::simulator(1).await;
    let session = common::session(&simulator);
    let connector = Arc::new(session.connector(account_id(0)));
    connector.connect().await.unwrap();
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..80 {
        let connector = Arc::clone(&connector);
        burst.spawn(async move { connector.place(&order(100 + n)).await });
    }
    while let Some(result) = burst.join_next().await {
        result.unwrap().unwrap();
    }
    let stats = simulator.stats();
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert!(stats.max_requests_per_window <= 50, "{stats:?}");
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_account_queue_refuses_at_once_and_sends_nothing() {
    let simulator = simulator(1).await;
    let mut small = simulator.session_config("token", None);
    small.account_queue_capacity = 3;
    small.limits.requests = 2;
    let session = CtraderSession::new(small).unwrap();
    let connector = Arc::new(session.connector(account_id(0)));
    connector.connect().await.unwrap();
    // Let the boot's requests leave the (tiny) window.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut burst = tokio::task::JoinSet::new();
    for n in 0..8 {
        let connector = Arc::clone(&connector);
        burst.spawn(async move { connector.place(&order(200 + n)).await });
        // In order, so that the queue fills in a known way.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut refused = 0;
    let mut placed = 0;
    while let Some(result) = burst.join_next().await {
        match result.unwrap() {
            Ok(_) => placed += 1,
            Err(ConnectorError::Rejected(reason)) if reason.code == RejectCode::RateLimited => {
                assert!(reason.message.contains("nothing was sent"), "{reason}");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 3, "placed {placed}, refused {refused}");
    assert_eq!(simulator.orders(account_id(0)).len(), placed);
    assert!(session.stats().queue_full >= 3);
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_then_connect_again() {
    let simulator = simulator(1).await;
    let session = session(&simulator);
    let connector = session.connector(account_id(0));
    connector.connect().await.unwrap();
    connector.disconnect().await;
    assert_eq!(connector.place(&order(1)).await, Err(ConnectorError::NotConnected));
    assert_eq!(connector.instruments().await, Err(ConnectorError::NotConnected));
    let info = connector.connect().await.unwrap();
    assert_eq!(info.broker_account, (5_000_000 + account_id(0)).to_string());
    connector.place(&order(2)).await.unwrap();
    assert_eq!(simulator.orders(account_id(0)).len(), 1);
    session.shutdown().await;
}
