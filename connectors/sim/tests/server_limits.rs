//! The server's side of the limits: clients that do not log in, break the protocol, go
//! silent or come in too great a number are disconnected, and their sessions end.

mod common;

use std::time::Duration;

use common::{HEDGING, broker, eventually, read_json, write_json};
use mirror_connector_sim::{SimConfig, SimServer, SimServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

async fn server(config: SimServerConfig) -> SimServer {
    SimServer::bind_with(broker(SimConfig::default()), "127.0.0.1:0", config).await.unwrap()
}

async fn send(stream: &mut TcpStream, value: serde_json::Value) {
    write_json(stream, &value).await;
}

/// The next frame, or `None` once the server has closed the connection.
async fn receive(stream: &mut TcpStream) -> Option<serde_json::Value> {
    tokio::time::timeout(WAIT, read_json(stream)).await.expect("the server answers or closes")
}

/// Reads until the server closes the connection; returns the frames read.
async fn until_closed(stream: &mut TcpStream) -> Vec<serde_json::Value> {
    let mut frames = Vec::new();
    while let Some(frame) = receive(stream).await {
        frames.push(frame);
    }
    frames
}

fn login(account: &str) -> serde_json::Value {
    serde_json::json!({ "type": "login", "account": account, "password": null, "protocol": 1 })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_disconnected_after_the_idle_timeout_and_its_session_ends() {
    let server =
        server(SimServerConfig { idle_timeout: Duration::from_millis(300), ..SimServerConfig::default() }).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, login(HEDGING)).await;
    assert_eq!(receive(&mut stream).await.unwrap()["type"], "logged_in");
    assert_eq!(server.live_sessions().await, vec![HEDGING.to_owned()]);
    // Nothing more is sent, not even pings.
    let frames = until_closed(&mut stream).await;
    assert!(frames.iter().all(|frame| frame["type"] == "event"), "{frames:?}");
    eventually(WAIT, "the session ending", || async { server.live_sessions().await.is_empty() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_keep_an_idle_session_alive() {
    let server =
        server(SimServerConfig { idle_timeout: Duration::from_millis(300), ..SimServerConfig::default() }).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, login(HEDGING)).await;
    assert_eq!(receive(&mut stream).await.unwrap()["type"], "logged_in");
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        send(&mut stream, serde_json::json!({ "type": "ping" })).await;
        loop {
            let frame = receive(&mut stream).await.expect("the session stays up");
            if frame["type"] == "pong" {
                break;
            }
        }
    }
    assert_eq!(server.live_sessions().await, vec![HEDGING.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_before_the_login_is_refused() {
    let server = server(SimServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, serde_json::json!({ "type": "request", "id": 1, "call": { "op": "open_positions" } })).await;
    let frames = until_closed(&mut stream).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "login_refused");
    assert_eq!(frames[0]["error"]["error"], "protocol");
    assert!(server.live_sessions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_another_protocol_version_is_refused() {
    let server = server(SimServerConfig::default()).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, serde_json::json!({ "type": "login", "account": HEDGING, "password": null, "protocol": 99 }))
        .await;
    let frames = until_closed(&mut stream).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["type"], "login_refused");
    assert!(server.live_sessions().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_the_limit_ends_the_session() {
    let server = server(SimServerConfig { max_frame_bytes: 4_096, ..SimServerConfig::default() }).await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, login(HEDGING)).await;
    assert_eq!(receive(&mut stream).await.unwrap()["type"], "logged_in");
    stream.write_all(&1_000_000u32.to_be_bytes()).await.unwrap();
    until_closed(&mut stream).await;
    eventually(WAIT, "the session ending", || async { server.live_sessions().await.is_empty() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once() {
    let server = server(SimServerConfig { max_connections: 1, ..SimServerConfig::default() }).await;
    let mut first = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut first, login(HEDGING)).await;
    assert_eq!(receive(&mut first).await.unwrap()["type"], "logged_in");
    let mut second = TcpStream::connect(server.local_addr()).await.unwrap();
    assert!(until_closed(&mut second).await.is_empty());
    // The first is still served.
    send(&mut first, serde_json::json!({ "type": "ping" })).await;
    let mut ponged = false;
    while let Some(frame) = receive(&mut first).await {
        if frame["type"] == "pong" {
            ponged = true;
            break;
        }
    }
    assert!(ponged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_when_its_event_stream_overflows() {
    // A short stream at the broker, and a write timeout long enough that only the overflow
    // can end the session within the test.
    let broker = broker(SimConfig { event_capacity: 64, ..SimConfig::default() });
    let config = SimServerConfig { write_timeout: Duration::from_secs(60), ..SimServerConfig::default() };
    let server = SimServer::bind_with(broker.clone(), "127.0.0.1:0", config).await.unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    send(&mut stream, login(common::NETTING)).await;
    assert_eq!(receive(&mut stream).await.unwrap()["type"], "logged_in");

    // The account's owner trades by hand while the client reads nothing: the socket's buffers
    // fill, then the broker's stream, and the broker cuts the session.
    let qty = mirror_model::Qty::parse("0.01").unwrap();
    for n in 0..100_000 {
        let side = if n % 2 == 0 { mirror_model::Side::Buy } else { mirror_model::Side::Sell };
        broker
            .manual_order(
                common::NETTING,
                common::sym("EURUSD"),
                side,
                qty,
                mirror_model::OrderKind::Market,
                None,
                None,
            )
            .unwrap();
        if broker.stats().sessions_overflowed > 0 {
            break;
        }
    }
    assert_eq!(broker.stats().sessions_overflowed, 1, "the stream never overflowed");
    eventually(WAIT, "the server ending the overflowed session", || async { server.live_sessions().await.is_empty() })
        .await;
}
