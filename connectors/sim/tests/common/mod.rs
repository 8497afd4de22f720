//! A simulated broker with one hedging and one netting account, served over TCP, shared by the
//! network tests.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use mirror_connector::{Connector, ConnectorEvent, EventStream};
use mirror_connector_sim::{
    RemoteSimConfig, RemoteSimConnector, SimAccountConfig, SimBroker, SimConfig, SimInstrument, SimMarket, SimServer,
};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, InstrumentKind, InstrumentSpec, Money, OrderIntent, OrderKind, OrderRequest,
    Price, Qty, Side, SignalId, Symbol, TimeInForce,
};

pub const HEDGING: &str = "hedge-1";
pub const NETTING: &str = "net-1";

pub fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

fn eurusd(symbol: &str) -> SimInstrument {
    SimInstrument {
        spec: InstrumentSpec {
            symbol: sym(symbol),
            kind: InstrumentKind::Forex,
            contract_size: Qty::parse("100000").unwrap(),
            tick_size: Price::parse("0.00001").unwrap(),
            tick_value: Money::parse("1").unwrap(),
            lot_step: Qty::parse("0.01").unwrap(),
            min_qty: Qty::parse("0.01").unwrap(),
            max_qty: Qty::parse("50").unwrap(),
            digits: 5,
        },
        feed: sym("EURUSD"),
    }
}

fn account(name: &str, mode: AccountMode, symbol: &str) -> SimAccountConfig {
    SimAccountConfig {
        name: name.into(),
        mode,
        currency: "USD".into(),
        balance: Money::parse("100000").unwrap(),
        instruments: vec![eurusd(symbol)],
    }
}

/// A broker with the hedging account `HEDGING` (symbol `EURUSD.r`) and the netting account
/// `NETTING` (symbol `EURUSD`).
pub fn broker(config: SimConfig) -> SimBroker {
    let broker = SimBroker::new(
        config,
        [SimMarket {
            symbol: sym("EURUSD"),
            bid: Price::parse("1.08500").unwrap(),
            tick_size: Price::parse("0.00001").unwrap(),
            spread_ticks: 8,
            volatility_ticks: 5,
        }],
    );
    broker.open_account(account(HEDGING, AccountMode::Hedging, "EURUSD.r")).unwrap();
    broker.open_account(account(NETTING, AccountMode::Netting, "EURUSD")).unwrap();
    broker
}

/// The broker served on a free local port.
pub async fn serve(config: SimConfig) -> (SimBroker, SimServer) {
    let broker = broker(config);
    let server = SimServer::bind(broker.clone(), "127.0.0.1:0").await.unwrap();
    (broker, server)
}

/// Settings for `account` at `server`, with short timeouts so that failures show quickly.
pub fn client_config(server: &SimServer, account: &str) -> RemoteSimConfig {
    RemoteSimConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..RemoteSimConfig::new(server.local_addr().to_string(), account)
    }
}

pub fn client(server: &SimServer, account: &str) -> RemoteSimConnector {
    RemoteSimConnector::new(client_config(server, account))
}

/// A market buy of `qty` on the hedging account's symbol with a client id unique to `n`.
pub fn buy(n: u64, qty: &str) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::new(SignalId(n), AccountId(7), 0),
        symbol: sym("EURUSD.r"),
        side: Side::Buy,
        qty: Qty::parse(qty).unwrap(),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    }
}

/// Waits for the first event matching `wanted`, skipping others; panics after `limit`.
pub async fn expect_event(
    events: &EventStream,
    limit: Duration,
    what: &str,
    wanted: impl Fn(&ConnectorEvent) -> bool,
) -> ConnectorEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv_async()).await {
            Ok(Ok(event)) if wanted(&event) => return event,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("the event stream closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {limit:?}"),
        }
    }
}

/// Polls `condition` every 10 ms until it holds; panics after `limit`.
pub async fn eventually<F: Future<Output = bool>>(limit: Duration, what: &str, mut condition: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connects, panicking with the error otherwise.
pub async fn connected(connector: &RemoteSimConnector) {
    if let Err(error) = connector.connect().await {
        panic!("connect to {} failed: {error}", connector.account_name());
    }
}

/// Writes one frame of raw JSON, for tests that play a misbehaving peer.
pub async fn write_json(stream: &mut tokio::net::TcpStream, value: &serde_json::Value) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_vec(value).unwrap();
    stream.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
}

/// Reads one frame of raw JSON; `None` once the peer has closed the connection.
pub async fn read_json(stream: &mut tokio::net::TcpStream) -> Option<serde_json::Value> {
    use tokio::io::AsyncReadExt;
    let mut header = [0; 4];
    stream.read_exact(&mut header).await.ok()?;
    let mut body = vec![0; usize::try_from(u32::from_be_bytes(header)).unwrap()];
    stream.read_exact(&mut body).await.ok()?;
    Some(serde_json::from_slice(&body).unwrap())
}
