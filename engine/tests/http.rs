//! The HTTP server as `mirror-engine run` starts it: from `[http]` in the configuration,
//! through `mirror_engine::app::start`, on a free loopback port, with webhook secrets read
//! from references. Requests are plain HTTP/1.1 written over a TCP socket (bound to a chosen
//! 127.0.0.x address where the test needs another client address), and what is checked is
//! what the simulated broker holds for each follower, and that refused requests reach nothing.

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config::{self, Resolved};
use mirror_engine::secrets::CredentialVars;
use mirror_model::Qty;
use sha2::Sha256;
use support::{LOCAL, Reply, WAIT, now_s, request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TV_SECRET: &str = "tv-secret-0123456789abcdef";
const OFFICE_SECRET: &str = "office-secret-0123456789";
const SIGNED_SECRET: &str = "signed-secret-0123456789abcdef";

const CONFIG: &str = concat!(
    engine_sim!(),
    es_nq!(),
    r#"

[[sources]]
name = "tv"
symbols = ["ES", "NQ"]

[[accounts]]
name = "f1"
platform = "sim"
mode = "netting"
balance = 100000

[[accounts]]
name = "f2"
platform = "sim"
mode = "netting"
balance = 100000

[[links]]
leader = "tv"
follower = "f1"

[[links]]
leader = "tv"
follower = "f2"
sizing = { mode = "multiplier", ratio = 2 }

[http]
listen = "127.0.0.1:0"
body_limit_bytes = 4096
rate_per_second = 1
rate_burst = 40

[[http.webhooks]]
name = "tv-main"
kind = "tradingview"
secret = "env:TV_SECRET"
source = "tv"
allow_ips = ["127.0.0.0/8"]

[[http.webhooks]]
name = "tv-office"
kind = "tradingview"
secret = "env:OFFICE_SECRET"
source = "tv"
allow_ips = ["127.0.0.1"]

[[http.webhooks]]
name = "algo"
kind = "signed"
secret = "env:SIGNED_SECRET"
source = "tv"
"#
);

/// The configuration with its journal under `dir`; `http_keys` added to `[http]`.
fn resolve(dir: &Path, http_keys: &str) -> Resolved {
    let config = CONFIG.replace("listen = \"127.0.0.1:0\"\n", &format!("listen = \"127.0.0.1:0\"\n{http_keys}"));
    let text = format!("{config}\n[storage]\ndir = {:?}\n", dir.join("data").display().to_string());
    config::load_str(Path::new("http.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

async fn start_mirror(dir: &Path) -> Running {
    start_with(dir, "").await
}

async fn start_with(dir: &Path, http_keys: &str) -> Running {
    let vars = CredentialVars::new()
        .with("TV_SECRET", TV_SECRET)
        .with("OFFICE_SECRET", OFFICE_SECRET)
        .with("SIGNED_SECRET", SIGNED_SECRET);
    start(&resolve(dir, http_keys), StartOptions { credential_vars: Some(vars), ..StartOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

async fn post(server: SocketAddr, path: &str, body: &str) -> Reply {
    request(server, LOCAL, "POST", path, &[], body.as_bytes()).await
}

fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let bytes = mac.finalize().into_bytes();
    format!("sha256={}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

async fn post_signed(server: SocketAddr, secret: &str, timestamp: i64, body: &str) -> Reply {
    let timestamp = timestamp.to_string();
    let headers = [
        ("X-Mirror-Timestamp", timestamp.clone()),
        ("X-Mirror-Signature", signature(secret, &timestamp, body)),
        ("Content-Type", "application/json".to_owned()),
    ];
    request(server, LOCAL, "POST", "/webhooks/signed/algo", &headers, body.as_bytes()).await
}

/// A follower's net ES and NQ at the broker.
fn holdings(running: &Running, follower: &str) -> (Qty, Qty) {
    let positions = running.broker().positions(follower).unwrap();
    let net = |symbol: &str| {
        positions.iter().filter(|p| p.symbol.as_str() == symbol).fold(Qty::ZERO, |sum, p| match p.side {
            mirror_model::Side::Buy => sum + p.qty,
            mirror_model::Side::Sell => sum - p.qty,
        })
    };
    (net("ES"), net("NQ"))
}

async fn eventually(running: &Running, what: &str, expected: [(i64, i64); 2]) {
    let q = |n: i64| Qty::parse(&n.to_string()).unwrap();
    let expected = expected.map(|(es, nq)| (q(es), q(nq)));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = [holdings(running, "f1"), holdings(running, "f2")];
        if seen == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {expected:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn accepted(reply: &Reply, what: &str) -> u64 {
    assert_eq!(reply.status, 202, "{what}: {reply:?}");
    let json = reply.json();
    json["signal"].as_u64().unwrap_or_else(|| panic!("{what}: no signal id in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tradingview_and_signed_webhooks_reach_the_followers() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().expect("the HTTP server runs");
    assert_ne!(server.port(), 0, "port 0 gives the bound port");

    // A TradingView strategy alert, the secret in the path.
    let alert = r#"{"ticker":"CME_MINI:ES1!","exchange":"CME_MINI","strategy.order.action":"buy",
        "strategy.order.contracts":"2","strategy.market_position":"long","close":5000.25}"#;
    let first = accepted(&post(server, &format!("/webhooks/tradingview/{TV_SECRET}"), alert).await, "json alert");
    eventually(&running, "buy ES 2 from the JSON alert", [(2, 0), (4, 0)]).await;

    // The plain-text form.
    let second = accepted(&post(server, &format!("/webhooks/tradingview/{TV_SECRET}"), "sell NQ 1").await, "text");
    assert_ne!(first, second);
    eventually(&running, "sell NQ 1 from the text alert", [(2, -1), (4, -2)]).await;

    // The secret in the body; `market_position` flat closes the symbol.
    let flat = format!(
        r#"{{"secret":"{TV_SECRET}","ticker":"ES","strategy":{{"order":{{"action":"sell","contracts":2}},
        "market_position":"flat"}}}}"#
    );
    accepted(&post(server, "/webhooks/tradingview", &flat).await, "flat alert");
    eventually(&running, "flat ES", [(0, -1), (0, -2)]).await;
    accepted(&post(server, &format!("/webhooks/tradingview/{TV_SECRET}"), "flat NQ").await, "flat NQ");
    eventually(&running, "flat NQ", [(0, 0), (0, 0)]).await;

    // A signed signal opens position 7, a replay of it is refused, a signed close closes it.
    let open = r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":3,"position":7,"note":"signed"}"#;
    let timestamp = now_s();
    accepted(&post_signed(server, SIGNED_SECRET, timestamp, open).await, "signed open");
    eventually(&running, "signed open", [(3, 0), (6, 0)]).await;
    let replay = post_signed(server, SIGNED_SECRET, timestamp, open).await;
    assert_eq!(replay.status, 409, "{replay:?}");
    assert_eq!(replay.content_type, "application/problem+json");
    assert!(replay.json()["detail"].as_str().unwrap().contains("already accepted"), "{replay:?}");
    accepted(&post_signed(server, SIGNED_SECRET, now_s(), r#"{"v":1,"action":"close","position":7}"#).await, "close");
    eventually(&running, "signed close", [(0, 0), (0, 0)]).await;
    running.settle(Duration::from_millis(100), WAIT).await;
    assert_eq!(running.handle.stats().signals, 6);

    // Health and metrics.
    let health = request(server, LOCAL, "GET", "/api/v1/health", &[], b"").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!((health.json()["status"].as_str(), health.json()["accounts"].as_u64()), (Some("ok"), Some(2)));
    let metrics = request(server, LOCAL, "GET", "/metrics", &[], b"").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(metrics.content_type.starts_with("text/plain; version=0.0.4"), "{metrics:?}");
    for line in [
        "mirror_signals_total 6",
        "mirror_skipped_total{reason=\"risk\"} 0",
        "mirror_fanout_latency_seconds{quantile=\"0.99\"}",
    ] {
        assert!(metrics.body.contains(line), "{line} in {}", metrics.body);
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_problem_naming_it_and_nothing_is_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let tv = format!("/webhooks/tradingview/{TV_SECRET}");
    let alert = |contracts: &str| format!(r#"{{"ticker":"ES","action":"buy","contracts":{contracts}}}"#);
    let now = now_s();
    let signed_open = r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":1}"#;
    let ts = now.to_string();
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        ("malformed JSON", post(server, &tv, r#"{"ticker":"ES","#).await, 400, "malformed JSON"),
        ("JSON not an object", post(server, &tv, "{}").await, 422, "ticker: missing"),
        ("wrong type", post(server, &tv, &alert("true")).await, 422, "contracts: expected a number, got a boolean"),
        (
            "unknown symbol",
            post(server, &tv, r#"{"ticker":"ZZ","action":"buy","contracts":1}"#).await,
            422,
            "unknown symbol `ZZ`",
        ),
        ("negative size", post(server, &tv, &alert("-1")).await, 422, "contracts: must be above 0, got -1"),
        ("NaN size", post(server, &tv, &alert("\"NaN\"")).await, 422, "contracts: expected a decimal number"),
        ("NaN size in text", post(server, &tv, "buy ES NaN").await, 422, "qty: expected a decimal number"),
        ("unknown verb", post(server, &tv, "hold ES 1").await, 400, "expected `buy|sell"),
        ("oversized body", post(server, &tv, &"x".repeat(8192)).await, 413, "over the limit of 4096 bytes"),
        (
            "wrong path secret",
            post(server, "/webhooks/tradingview/not-the-secret-0123456789", &alert("1")).await,
            401,
            "does not match any TradingView webhook",
        ),
        ("no secret", post(server, "/webhooks/tradingview", &alert("1")).await, 401, "no secret"),
        (
            "wrong body secret",
            post(server, "/webhooks/tradingview", r#"{"secret":"guess-0123456789abcdef","ticker":"ES"}"#).await,
            401,
            "secret: does not match",
        ),
        (
            "address not allowed",
            request(
                server,
                [127, 0, 0, 2],
                "POST",
                &format!("/webhooks/tradingview/{OFFICE_SECRET}"),
                &[],
                b"buy ES 1",
            )
            .await,
            403,
            "127.0.0.2 is not in this webhook's allow_ips",
        ),
        (
            "missing signature",
            request(server, LOCAL, "POST", "/webhooks/signed/algo", &[("X-Mirror-Timestamp", ts.clone())], b"{}").await,
            401,
            "x-mirror-signature: missing",
        ),
        (
            "missing timestamp",
            request(server, LOCAL, "POST", "/webhooks/signed/algo", &[], signed_open.as_bytes()).await,
            401,
            "x-mirror-timestamp: missing",
        ),
        (
            "wrong signature",
            post_signed(server, "another-secret-0123456789", now, signed_open).await,
            401,
            "does not match the body and timestamp",
        ),
        (
            "signature of another body",
            request(
                server,
                LOCAL,
                "POST",
                "/webhooks/signed/algo",
                &[("X-Mirror-Timestamp", ts.clone()), ("X-Mirror-Signature", signature(SIGNED_SECRET, &ts, "{}"))],
                signed_open.as_bytes(),
            )
            .await,
            401,
            "does not match the body and timestamp",
        ),
        ("stale timestamp", post_signed(server, SIGNED_SECRET, now - 1000, signed_open).await, 401, "at most ±300 s"),
        ("signed malformed JSON", post_signed(server, SIGNED_SECRET, now, r#"{"v":1,"#).await, 400, "malformed JSON"),
        (
            "signed wrong type",
            post_signed(server, SIGNED_SECRET, now, r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":[1]}"#)
                .await,
            422,
            "qty: expected a number, got an array",
        ),
        (
            "signed negative size",
            post_signed(server, SIGNED_SECRET, now, r#"{"v":1,"action":"open","symbol":"ES","side":"sell","qty":-2}"#)
                .await,
            422,
            "qty: must be above 0",
        ),
        (
            "signed unknown field",
            post_signed(server, SIGNED_SECRET, now, r#"{"v":1,"action":"close_all","sym":"ES"}"#).await,
            422,
            "sym: unknown field",
        ),
        (
            "unknown signed webhook",
            post(server, "/webhooks/signed/nobody", "{}").await,
            404,
            "no signed webhook is named",
        ),
        ("wrong method", request(server, LOCAL, "GET", &tv, &[], b"").await, 405, "GET is not accepted"),
        ("unknown route", request(server, LOCAL, "GET", "/api/v1/nothing", &[], b"").await, 404, "no route GET"),
    ];
    for (what, reply, status, detail) in &cases {
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json", "{what}: {reply:?}");
        let problem = reply.json();
        assert_eq!(problem["status"].as_u64(), Some(u64::from(*status)), "{what}: {problem}");
        assert!(problem["type"].as_str().unwrap().starts_with("urn:mirror:problem:"), "{what}: {problem}");
        assert!(!problem["title"].as_str().unwrap().is_empty(), "{what}: {problem}");
        let text = problem["detail"].as_str().unwrap();
        assert!(text.contains(detail), "{what}: expected {detail:?} in {text:?}");
        assert!(!text.contains(SIGNED_SECRET) && !text.contains(TV_SECRET), "{what}: a secret in {text:?}");
    }

    // The rate limit: a burst of 40, then one a second, per client address and route.
    let mut limited = None;
    for _ in 0..45 {
        let reply = request(server, [127, 0, 0, 9], "GET", "/api/v1/health", &[], b"").await;
        if reply.status != 200 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.expect("the burst runs out");
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.content_type, "application/problem+json");
    assert!(limited.json()["detail"].as_str().unwrap().contains("from 127.0.0.9 on /api/v1/health"), "{limited:?}");
    assert!(limited.retry_after.is_some(), "{limited:?}");
    // Another address is not limited by it.
    assert_eq!(request(server, LOCAL, "GET", "/api/v1/health", &[], b"").await.status, 200);

    // Nothing reached the engine.
    running.settle(Duration::from_millis(100), WAIT).await;
    let stats = running.handle.stats();
    assert_eq!((stats.signals, stats.signals_refused, stats.copies), (0, 0, 0), "{stats:?}");
    eventually(&running, "nothing executed", [(0, 0), (0, 0)]).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("http.pem"), dir.path().join("http.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let keys = format!("tls_cert = {:?}\ntls_key = {:?}\n", cert.display().to_string(), key.display().to_string());
    let running = start_with(dir.path(), &keys).await;
    let server = running.http_addr().unwrap();

    // A client that trusts the certificate sends a TradingView alert over TLS.
    let der = generated.cert.der().clone();
    let response = tokio::task::spawn_blocking(move || {
        use std::io::{Read as _, Write as _};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let config =
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        let socket = std::net::TcpStream::connect(server).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, socket);
        let request = format!(
            "POST /webhooks/tradingview/{TV_SECRET} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8\r\n\
             Connection: close\r\n\r\nbuy ES 1"
        );
        tls.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        // The server may close without a close_notify; what came is what counts.
        let _ = tls.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    eventually(&running, "buy ES 1 over HTTPS", [(1, 0), (2, 0)]).await;

    // Plain HTTP on the TLS port gets no answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
            stream.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            let mut raw = Vec::new();
            let _ = stream.read_to_end(&mut raw).await;
            String::from_utf8_lossy(&raw).into_owned()
        }),
    )
    .await;
    if let Ok(Ok(text)) = plain {
        assert!(!text.contains("\"status\":\"ok\""), "{text}");
    }
    running.stop().await;
}

#[test]
fn check_names_the_http_fields_that_are_wrong() {
    let text = r#"
[[sources]]
name = "tv"

[http]
listen = "localhost:80"
body_limit_bytes = 10
tls_cert = "http.pem"

[[http.webhooks]]
name = "a b"
kind = "tradingview"
secret = "env:A"
source = "nobody"
allow_ips = ["10.0.0.0/40"]

[[http.webhooks]]
name = "b"
kind = "signed"
secret = "env:A"
source = "tv"
"#;
    let errors = config::load_str(Path::new("http.toml"), text).unwrap_err().to_string();
    for expected in [
        "http.toml:6:10: http.listen: must be an IP address and TCP port",
        "http.toml:7:20: http.body_limit_bytes: must be between 256",
        "http.toml:8:12: http.tls_cert: needs tls_key",
        "http.webhooks[0].name: must be 1 to 64 letters",
        "http.webhooks[0].source: no [[sources]] entry is named `nobody` (defined: tv)",
        "http.webhooks[0].allow_ips[0]: `10.0.0.0/40`: a prefix of at most 32 bits expected",
        "http.webhooks[1].secret: webhook `a b` uses the same reference (env:A)",
    ] {
        assert!(errors.contains(expected), "{expected:?} in\n{errors}");
    }
    let clear = text.replace("\"env:A\"\nsource = \"nobody\"", "\"hunter2-in-the-clear\"\nsource = \"nobody\"");
    let errors = config::load_str(Path::new("http.toml"), &clear).unwrap_err().to_string();
    assert!(errors.contains("http.webhooks[0].secret"), "{errors}");
    assert!(!errors.contains("hunter2"), "{errors}");
}
