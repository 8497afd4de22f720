//! The REST API and the WebSocket stream as `mirror-engine run` serves them: `[http]` with
//! `[http.auth]` (the built-in issuer's clients: one viewer, one trader, one admin), tokens
//! from `POST /oauth/token`, and what is checked is what the simulated broker holds for each
//! follower, what the API says about it, and that refused requests change nothing.

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config;
use mirror_engine::secrets::CredentialVars;
use mirror_model::Qty;
use serde_json::{Value, json};
use support::{LOCAL, Reply, WAIT, request};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

const CONFIG: &str = concat!(
    engine_sim!(),
    es_nq!(),
    r#"

[[sources]]
name = "manual"
symbols = ["ES", "NQ"]

[[accounts]]
name = "f1"
platform = "sim"
mode = "netting"
balance = 100000
groups = ["desk"]

[[accounts]]
name = "f2"
platform = "sim"
mode = "netting"
balance = 100000
groups = ["desk", "evals"]

[[accounts]]
name = "outsider"
platform = "sim"
mode = "netting"
balance = 100000

[[links]]
leader = "manual"
follower = "f1"

[[links]]
leader = "manual"
follower = "f2"
sizing = { mode = "multiplier", ratio = 2 }

[http]
listen = "127.0.0.1:0"
rate_per_second = 1000
rate_burst = 1000
stream_queue = 4
stream_write_timeout_ms = 1000

[http.auth]
audience = "mirror"
token_ttl_s = 600

[[http.auth.clients]]
client_id = "desk-viewer"
client_secret = "env:VIEWER_SECRET"
role = "viewer"

[[http.auth.clients]]
client_id = "desk-trader"
client_secret = "env:TRADER_SECRET"
role = "trader"

[[http.auth.clients]]
client_id = "desk-admin"
client_secret = "env:ADMIN_SECRET"
role = "admin"
"#
);

const SECRETS: [(&str, &str, &str); 3] = [
    ("desk-viewer", "VIEWER_SECRET", "viewer-secret-0123456789abcdef"),
    ("desk-trader", "TRADER_SECRET", "trader-secret-0123456789abcdef"),
    ("desk-admin", "ADMIN_SECRET", "admin-secret-0123456789abcdef01"),
];

/// The test's configuration with `links_extra` after the links, its journal under `dir`.
fn config_text(dir: &Path, links_extra: &str) -> String {
    let (head, auth) = CONFIG.split_once("[http]").unwrap();
    format!("{head}{links_extra}\n[http]{auth}\n[storage]\ndir = {:?}\n", dir.join("data").display().to_string())
}

async fn start_mirror(dir: &Path) -> Running {
    start_mirror_from(dir, &config_text(dir, "")).await
}

async fn start_mirror_from(dir: &Path, text: &str) -> Running {
    // From a file, as `run` reads it: `PUT /api/v1/config` writes the applied text back to it.
    let file = dir.join("api.toml");
    std::fs::write(&file, text).unwrap();
    let resolved = config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let vars = SECRETS.iter().fold(CredentialVars::new(), |vars, (_, var, secret)| vars.with(var, secret));
    start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A token for one of the configured clients (by role).
async fn token(server: SocketAddr, role: &str) -> String {
    let (client, _, secret) = SECRETS.iter().find(|(c, _, _)| c.ends_with(role)).unwrap();
    let body = format!("grant_type=client_credentials&client_id={client}&client_secret={secret}");
    let headers = [("Content-Type", "application/x-www-form-urlencoded".to_owned())];
    let reply = request(server, LOCAL, "POST", "/oauth/token", &headers, body.as_bytes()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

struct Api {
    server: SocketAddr,
    token: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut headers = vec![("Authorization", format!("Bearer {}", self.token))];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json".to_owned()));
        }
        request(self.server, LOCAL, method, path, &headers, body.as_bytes()).await
    }

    async fn get(&self, path: &str) -> Value {
        let reply = self.call("GET", path, None).await;
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        reply.json()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let reply = self.call("POST", path, Some(body)).await;
        assert_eq!(reply.status, 202, "POST {path}: {reply:?}");
        reply.json()
    }
}

/// A follower's net quantity of a symbol at the broker.
fn net(running: &Running, follower: &str, symbol: &str) -> Qty {
    running.broker().positions(follower).unwrap().iter().filter(|p| p.symbol.as_str() == symbol).fold(
        Qty::ZERO,
        |sum, p| match p.side {
            mirror_model::Side::Buy => sum + p.qty,
            mirror_model::Side::Sell => sum - p.qty,
        },
    )
}

async fn eventually(running: &Running, what: &str, expected: &[(&str, &str, i64)]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen: Vec<(String, String, Qty)> =
            expected.iter().map(|(f, s, _)| (f.to_string(), s.to_string(), net(running, f, s))).collect();
        let want: Vec<(String, String, Qty)> = expected
            .iter()
            .map(|(f, s, n)| (f.to_string(), s.to_string(), Qty::parse(&n.to_string()).unwrap()))
            .collect();
        if seen == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {want:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the API's view satisfies `check`.
async fn until(api: &Api, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = api.get(path).await;
        if check(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: GET {path} answered {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_reads_state_sends_tickets_and_controls_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().expect("the HTTP server runs");
    let viewer = Api { server, token: token(server, "viewer").await };
    let trader = Api { server, token: token(server, "trader").await };
    let admin = Api { server, token: token(server, "admin").await };

    // Accounts as configured, with their live state.
    let accounts = until(&viewer, "/api/v1/accounts", "three connected accounts", |v| {
        v["accounts"].as_array().is_some_and(|a| a.len() == 3 && a.iter().all(|a| a["state"]["connected"] == true))
    })
    .await;
    let f2 = &accounts["accounts"][1];
    assert_eq!((f2["name"].as_str(), f2["platform"].as_str()), (Some("f2"), Some("sim")));
    assert_eq!(f2["groups"], json!(["desk", "evals"]));
    assert_eq!(f2["state"]["balance"], "100000");
    let evals = viewer.get("/api/v1/accounts?group=evals").await;
    assert_eq!(evals["accounts"].as_array().unwrap().len(), 1);

    // The manual ticket to every follower of the source, each sized by its link.
    let ticket = json!({"symbol": "ES", "side": "buy", "qty": "2", "stop_loss": "4990", "note": "open drive"});
    let placed = trader.post("/api/v1/orders", ticket).await;
    let (signal, position) = (placed["signal"].as_u64().unwrap(), placed["position"].as_u64().unwrap());
    assert_eq!(placed["targets"], json!(["f1", "f2"]));
    eventually(&running, "ES 2 and 4", &[("f1", "ES", 2), ("f2", "ES", 4), ("outsider", "ES", 0)]).await;

    // What the API says about it: positions, orders, fills, the signal on every follower.
    let positions = until(&viewer, "/api/v1/positions?account=f2", "f2's ES", |v| {
        v["positions"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    let es = &positions["positions"][0];
    assert_eq!((es["symbol"].as_str(), es["qty"].as_str(), es["side"].as_str()), (Some("ES"), Some("4"), Some("buy")));
    assert_eq!(es["stop_loss"], "4990");
    let orders = viewer.get(&format!("/api/v1/orders?signal={signal}")).await;
    assert_eq!(orders["orders"].as_array().unwrap().len(), 2, "{orders}");
    let fills = until(&viewer, &format!("/api/v1/fills?signal={signal}"), "two fills", |v| {
        v["fills"].as_array().is_some_and(|f| f.len() == 2)
    })
    .await;
    // Bought at the simulated ask.
    assert!(fills["fills"].as_array().unwrap().iter().all(|f| f["price"] == "5000.25"), "{fills}");
    let copies = until(&viewer, &format!("/api/v1/signals/{signal}"), "both filled", |v| {
        v["followers"].as_array().is_some_and(|f| f.len() == 2 && f.iter().all(|c| c["state"] == "filled"))
    })
    .await;
    assert_eq!(copies["journal"]["origin"], "manual");
    assert!(copies["journal"]["note"].as_str().unwrap().contains("open drive"), "{copies}");
    let recent = viewer.get("/api/v1/signals").await;
    assert_eq!(recent["signals"][0]["signal"].as_u64(), Some(signal));

    // A ticket to named accounts, and one to a group: only those follow.
    let named =
        trader.post("/api/v1/orders", json!({"symbol": "NQ", "side": "sell", "qty": "1", "accounts": ["f1"]})).await;
    // Acknowledged once on disk, as a source's signal is: the journal's durable entries hold f1's order already.
    let journal = running.journal().expect("the test runs with the journal");
    let id = named["signal"].as_u64().unwrap();
    let on_disk = journal.read(journal.first_position(), usize::MAX).unwrap().into_iter().any(|(_, entry)| {
        matches!(entry, mirror_engine::journal::Entry::Shard(shard) if shard.inputs.iter().any(|input| matches!(
            &input.input,
            mirror_engine::journal::JournalInput::Control(mirror_engine::account::Control::CopyOpen { id: signal, .. })
                if signal.0 == id
        )))
    });
    assert!(on_disk, "the named-account ticket {id} was acknowledged before it was durable");
    eventually(&running, "NQ on f1 only", &[("f1", "NQ", -1), ("f2", "NQ", 0)]).await;
    trader.post("/api/v1/orders", json!({"symbol": "NQ", "side": "sell", "qty": "1", "group": "evals"})).await;
    eventually(&running, "NQ on f2 (group evals)", &[("f1", "NQ", -1), ("f2", "NQ", -2)]).await;

    // Pause one account: the next ticket skips it, with the reason on the signal.
    admin.post("/api/v1/accounts/f1/pause", json!({})).await;
    let skipped = trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    let skipped = skipped["signal"].as_u64().unwrap();
    eventually(&running, "f2 only", &[("f1", "ES", 2), ("f2", "ES", 6)]).await;
    let copies = until(&viewer, &format!("/api/v1/signals/{skipped}"), "f1 skipped", |v| {
        v["followers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|c| c["account_name"] == "f1" && c["state"] == "skipped"))
    })
    .await;
    let f1 = copies["followers"].as_array().unwrap().iter().find(|c| c["account_name"] == "f1").unwrap().clone();
    assert!(f1["detail"].as_str().unwrap().contains("paused"), "{f1}");
    admin.post("/api/v1/accounts/f1/resume", json!({})).await;

    // A close as the source, by the position key the ticket answered.
    trader.post("/api/v1/sources/manual/signals", json!({"v": 1, "action": "close", "position": position})).await;
    eventually(&running, "the first ES closed", &[("f1", "ES", 0), ("f2", "ES", 2)]).await;

    // Flatten one account, then everything.
    admin.post("/api/v1/accounts/f2/flatten", json!({})).await;
    eventually(&running, "f2 flat", &[("f2", "ES", 0), ("f2", "NQ", 0), ("f1", "NQ", -1)]).await;
    admin.post("/api/v1/flatten", json!({})).await;
    eventually(&running, "all flat", &[("f1", "NQ", 0)]).await;

    // Sized by risk: 1.2 % of about 100,000 with a 10-point stop on ES ($500 a contract) is 2
    // contracts on each follower, whatever their links' multipliers.
    let risk = json!({"symbol": "ES", "side": "buy", "qty": "1", "risk_percent": "1.2", "stop_loss": "4990",
                      "reference_price": "5000", "group": "desk"});
    trader.post("/api/v1/orders", risk).await;
    eventually(&running, "2 ES each by risk", &[("f1", "ES", 2), ("f2", "ES", 2)]).await;
    admin.post("/api/v1/flatten", json!({})).await;
    eventually(&running, "flat again", &[("f1", "ES", 0), ("f2", "ES", 0)]).await;

    // The copy map, risk, sources, latency, journal.
    let links = viewer.get("/api/v1/links").await;
    assert_eq!(links["links"][1]["rules"]["sizing"]["mode"], "multiplier", "{links}");
    assert_eq!(viewer.get("/api/v1/links?follower=f2").await["links"].as_array().unwrap().len(), 1);
    let sources = viewer.get("/api/v1/sources").await;
    assert_eq!(sources["sources"][0]["followers"], json!(["f1", "f2"]));
    let risk = viewer.get("/api/v1/risk").await;
    assert_eq!(risk["accounts"][0]["mode"], "normal");
    // Three signals of the source: two tickets to all its followers and one close.
    assert_eq!(viewer.get("/api/v1/latency").await["signals"], 3);
    let journal = admin.get("/api/v1/journal?limit=5").await;
    assert_eq!(journal["entries"].as_array().unwrap().len(), 5);

    // Roles: a viewer cannot trade nor control, a trader cannot control; nothing happens.
    let before = viewer.get("/api/v1/latency").await["signals"].clone();
    for (api, method, path, body) in [
        (&viewer, "POST", "/api/v1/orders", Some(json!({"symbol": "ES", "side": "buy", "qty": "1"}))),
        (&trader, "POST", "/api/v1/flatten", Some(json!({}))),
        (&viewer, "POST", "/api/v1/accounts/f1/pause", Some(json!({}))),
        (&trader, "GET", "/api/v1/journal", None),
    ] {
        let reply = api.call(method, path, body).await;
        let detail = reply.problem(403);
        assert!(detail.contains("role"), "{method} {path}: {detail}");
    }
    running.settle(Duration::from_millis(200), WAIT).await;
    assert_eq!(viewer.get("/api/v1/latency").await["signals"], before, "nothing was sent");
    eventually(&running, "still flat", &[("f1", "ES", 0), ("f2", "ES", 0)]).await;

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_is_refused_with_a_problem_naming_it_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let trader = Api { server, token: token(server, "trader").await };

    // No token, a malformed one, a forged one.
    let reply = request(server, LOCAL, "GET", "/api/v1/accounts", &[], b"").await;
    assert!(reply.problem(401).contains("Authorization"), "{reply:?}");
    assert!(reply.www_authenticate.as_deref().unwrap_or_default().starts_with("Bearer"), "{reply:?}");
    let forged = Api { server, token: format!("{}x", trader.token) };
    forged.call("GET", "/api/v1/accounts", None).await.problem(401);
    let garbage = Api { server, token: "not-a-jwt".into() };
    garbage.call("GET", "/api/v1/accounts", None).await.problem(401);
    // Tokens made outside the issuer: with its own key but expired, and forged with another
    // key under the issuer's key id. Both would order, were they taken.
    let ticket = json!({"symbol": "ES", "side": "buy", "qty": "1"});
    let expired = Api { server, token: remade_token(dir.path(), &trader.token, server, -3_600, false).await };
    let detail = expired.call("POST", "/api/v1/orders", Some(ticket.clone())).await.problem(401);
    assert!(detail.starts_with("expired at") && detail.contains("beyond the 60 s leeway"), "{detail}");
    let forged = Api { server, token: remade_token(dir.path(), &trader.token, server, 3_600, true).await };
    let detail = forged.call("POST", "/api/v1/orders", Some(ticket.clone())).await.problem(401);
    assert!(detail.contains("is not signed by key"), "{detail}");
    // The same token remade with the issuer's key and a live expiry is taken: the two above
    // were refused for what was wrong with them, not for how they were made.
    let remade = Api { server, token: remade_token(dir.path(), &trader.token, server, 3_600, false).await };
    assert_eq!(remade.get("/api/v1/whoami").await["role"], "trader");
    // A viewer may not order; an oversized ticket is refused before it is read.
    let viewer = Api { server, token: token(server, "viewer").await };
    assert!(viewer.call("POST", "/api/v1/orders", Some(ticket)).await.problem(403).contains("trader"));
    let huge = json!({"symbol": "ES", "side": "buy", "qty": "1", "note": "x".repeat(70_000)});
    let detail = trader.call("POST", "/api/v1/orders", Some(huge)).await.problem(413);
    assert!(detail.contains("over the limit of 65536 bytes"), "{detail}");

    let cases: &[(&str, &str, u16, &str)] = &[
        ("/api/v1/orders", "{not json", 400, "malformed JSON"),
        ("/api/v1/orders", "[1]", 400, "expected a JSON object, got an array"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy"}"#, 422, "qty: missing"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy","qty":"-1"}"#, 422, "qty: must be above 0, got -1"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy","qty":"NaN"}"#, 422, "qty: expected a decimal number"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy","qty":true}"#, 422, "qty: expected a number, got a boolean"),
        ("/api/v1/orders", r#"{"symbol":"CL","side":"buy","qty":"1"}"#, 422, "unknown symbol `CL`"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"long","qty":"1"}"#, 422, "side: expected buy or sell"),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy","qty":"1","stoploss":"1"}"#, 422, "stoploss: unknown field"),
        (
            "/api/v1/orders",
            r#"{"symbol":"ES","side":"buy","qty":"1","accounts":["outsider"]}"#,
            422,
            "`outsider` does not copy source `manual`",
        ),
        (
            "/api/v1/orders",
            r#"{"symbol":"ES","side":"buy","qty":"1","accounts":["nobody"]}"#,
            422,
            "accounts[0]: no account `nobody`",
        ),
        ("/api/v1/orders", r#"{"symbol":"ES","side":"buy","qty":"1","source":"tv"}"#, 422, "source: no source `tv`"),
        (
            "/api/v1/orders",
            r#"{"symbol":"ES","side":"buy","qty":"1","stop_loss":"5100","reference_price":"5000"}"#,
            422,
            "stop",
        ),
    ];
    for &(path, body, status, expected) in cases {
        let headers =
            [("Authorization", format!("Bearer {}", trader.token)), ("Content-Type", "application/json".into())];
        let reply = request(server, LOCAL, "POST", path, &headers, body.as_bytes()).await;
        let detail = reply.problem(status);
        assert!(detail.contains(expected), "{body}: expected `{expected}` in `{detail}`");
    }
    // Query parameters are checked too.
    let reply = trader.call("GET", "/api/v1/positions?acount=f1", None).await;
    assert!(reply.problem(400).contains("`acount` is not a parameter"), "{reply:?}");
    let reply = trader.call("GET", "/api/v1/orders?status=done", None).await;
    assert!(reply.problem(400).contains("status: expected live, finished"), "{reply:?}");
    let reply = trader.call("GET", "/api/v1/accounts/nobody", None).await;
    assert!(reply.problem(404).contains("no account `nobody`"), "{reply:?}");

    running.settle(Duration::from_millis(200), WAIT).await;
    assert_eq!(trader.get("/api/v1/latency").await["signals"], 0, "nothing was sent");
    for follower in ["f1", "f2", "outsider"] {
        assert!(running.broker().positions(follower).unwrap().is_empty(), "{follower}");
    }
    running.stop().await;
}

/// `token`'s claims signed again, the issuer's own way (EdDSA under its key id), expiring
/// `expires_in_s` from now, with the issuer's key from its key file or, `forged`, another one.
async fn remade_token(dir: &Path, token: &str, server: SocketAddr, expires_in_s: i64, forged: bool) -> String {
    use base64::Engine as _;
    use rustls::pki_types::pem::PemObject as _;
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let now = support::now_s();
    claims["exp"] = json!(now + expires_in_s);
    claims["iat"] = json!(now + expires_in_s.min(0) - 60);
    claims["nbf"] = claims["iat"].clone();
    let keys = request(server, LOCAL, "GET", "/oauth/jwks.json", &[], b"").await.json();
    let kid = keys["keys"][0]["kid"].as_str().unwrap().to_owned();
    let pkcs8 = if forged {
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap().as_ref().to_vec()
    } else {
        let file = dir.join("data/http/oauth-signing-key.pem");
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(&file).unwrap().secret_pkcs8_der().to_vec()
    };
    let header = jsonwebtoken::Header { kid: Some(kid), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA) };
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let admin = Api { server, token: token(server, "admin").await };
    let document = request(server, LOCAL, "GET", "/api/v1/openapi.json", &[], b"").await.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 18, "{}", paths.len());
    for (path, operations) in paths {
        for (method, _) in operations.as_object().unwrap() {
            if path == "/api/v1/stream" {
                continue; // a WebSocket upgrade: its own test
            }
            // Path parameters that name nothing: the route must still be there and say so.
            let concrete = path
                .replace("{account}", "f1")
                .replace("{signal}", "999999")
                .replace("{source}", "manual")
                .replace("{link}", "0")
                .replace("{control}", "no-such-control")
                .replace("{profile}", "no-such-profile");
            let body = if matches!(method.as_str(), "post" | "put" | "patch") { Some(json!({})) } else { None };
            let reply = admin.call(&method.to_uppercase(), &concrete, body).await;
            let detail = if reply.content_type == "application/problem+json" {
                reply.json()["detail"].as_str().unwrap_or_default().to_owned()
            } else {
                String::new()
            };
            assert!(!detail.starts_with("no route") && reply.status != 405, "{method} {path}: {reply:?}");
            assert!(reply.status < 500, "{method} {path} failed on the server: {reply:?}");
        }
    }
    running.stop().await;
}

async fn ws_connect(
    server: SocketAddr,
    query: &str,
    token: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let mut request = format!("ws://{server}/api/v1/stream{query}").into_client_request().unwrap();
    if let Some(token) = token {
        request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the WebSocket handshake answered in time")
        .map(|(stream, _)| stream)
}

async fn next_json(
    stream: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, stream.next()).await.expect("a message in time").unwrap().unwrap();
        if let tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_a_snapshot_then_filtered_events() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let viewer = token(server, "viewer").await;
    let trader = Api { server, token: token(server, "trader").await };

    // Without a token the upgrade is refused; a bad filter is named.
    match ws_connect(server, "", None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    match ws_connect(server, "?topics=fills,gossip", Some(&viewer)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {other:?}"),
    }

    // f1's fills and copies only; the token in the query, as a browser would send it.
    let mut stream =
        ws_connect(server, &format!("?topics=fills,copies&account=f1&access_token={viewer}"), None).await.unwrap();
    let snapshot = next_json(&mut stream).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["topics"], json!(["fills", "copies"]));
    assert!(snapshot["accounts"].as_array().unwrap().is_empty(), "accounts not asked for");
    trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    // Heartbeats arrive forever, so the wait is bounded as a whole, not per message. On a busy
    // machine the stream may fall behind its (deliberately tiny) queue and start again from a
    // snapshot: the fill is then in the snapshot's fills, as any client would read it.
    let f1 = u64::from(mirror_model::AccountId::from_name("f1").0);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut fill = None;
    while fill.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "f1's fill never reached the stream");
        let message = next_json(&mut stream).await;
        match message["type"].as_str() {
            Some("events") => {
                for event in message["events"].as_array().unwrap() {
                    assert!(["fills", "copies"].contains(&event["topic"].as_str().unwrap()), "{event}");
                    assert_eq!(event["data"]["account"].as_u64(), Some(f1), "only f1: {event}");
                    if event["topic"] == "fills" {
                        fill = Some(event["data"].clone());
                    }
                }
            }
            Some("snapshot") => {
                assert_eq!(message["reason"], "lagged", "{message}");
                let fills = message["fills"].as_array().unwrap();
                assert!(fills.iter().all(|f| f["account"].as_u64() == Some(f1)), "only f1: {message}");
                fill = fills.first().cloned();
            }
            _ => {}
        }
    }
    assert_eq!(fill.unwrap()["qty"], "1");
    tokio::time::timeout(WAIT, stream.close(None)).await.expect("closed in time").unwrap();
    tokio::time::timeout(WAIT, running.stop()).await.expect("Mirror stopped in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_every_signal_taken_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A queue that does not overflow here: signals are events only, a lagged snapshot has none.
    let text = config_text(dir.path(), "").replace("stream_queue = 4", "stream_queue = 1024");
    let running = start_mirror_from(dir.path(), &text).await;
    let server = running.http_addr().unwrap();
    let viewer = token(server, "viewer").await;
    let trader = Api { server, token: token(server, "trader").await };
    let mut stream = ws_connect(server, "?topics=signals", Some(&viewer)).await.unwrap();
    assert_eq!(next_json(&mut stream).await["type"], "snapshot");

    // One taken, one the engine refuses (its stop loss above a buy's entry): both are events.
    let taken =
        trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "buy", "qty": "2", "note": "desk open"})).await;
    let taken = taken["signal"].as_u64().unwrap();
    let wrong = json!({"symbol": "ES", "side": "buy", "qty": "1", "stop_loss": "5100", "reference_price": "5000"});
    assert!(trader.call("POST", "/api/v1/orders", Some(wrong)).await.problem(422).contains("wrong side"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut accepted, mut refused) = (None, None);
    while accepted.is_none() || refused.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "signal events: taken {accepted:?}, refused {refused:?}");
        let message = next_json(&mut stream).await;
        assert_ne!(message["type"], "snapshot", "the stream restarted: {message}");
        for event in message["events"].as_array().into_iter().flatten() {
            assert_eq!(event["topic"], "signals", "{event}");
            match event["data"]["status"].as_str() {
                Some("accepted") => accepted = Some(event["data"].clone()),
                Some("refused") => refused = Some(event["data"].clone()),
                other => panic!("status {other:?}: {event}"),
            }
        }
    }
    let (accepted, refused) = (accepted.unwrap(), refused.unwrap());
    let manual = u64::from(mirror_model::SourceId::from_name("manual").0);
    assert_eq!(accepted["signal"].as_u64(), Some(taken), "{accepted}");
    assert_eq!(accepted["origin"], json!({"kind": "source", "id": manual}), "{accepted}");
    assert_eq!(
        (&accepted["action"], &accepted["symbol"], &accepted["side"], &accepted["qty"], &accepted["note"]),
        (&json!("open"), &json!("ES"), &json!("buy"), &json!("2"), &json!("ticket:desk-trader: desk open")),
        "{accepted}"
    );
    assert!(accepted["reason"].is_null(), "{accepted}");
    assert_eq!((&refused["action"], &refused["symbol"]), (&json!("open"), &json!("ES")), "{refused}");
    assert!(refused["reason"].as_str().unwrap().contains("wrong side of the entry"), "{refused}");
    tokio::time::timeout(WAIT, stream.close(None)).await.expect("closed in time").unwrap();
    tokio::time::timeout(WAIT, running.stop()).await.expect("Mirror stopped in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_is_not_read_never_slows_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let viewer = token(server, "viewer").await;
    let trader = Api { server, token: token(server, "trader").await };
    // Subscribed to everything, and never read while 200 tickets go through.
    let mut stalled = ws_connect(server, "", Some(&viewer)).await.unwrap();
    for n in 0..200 {
        let side = if n % 2 == 0 { "buy" } else { "sell" };
        trader.post("/api/v1/orders", json!({"symbol": "ES", "side": side, "qty": "1"})).await;
    }
    eventually(&running, "every ticket copied", &[("f1", "ES", 0), ("f2", "ES", 0)]).await;
    let latency = trader.get("/api/v1/latency").await;
    assert_eq!(latency["signals"], 200, "{latency}");
    assert_eq!(latency["copies"], 400, "{latency}");
    // The stalled stream either started again from a snapshot (it lagged) or was closed as
    // too slow; it never held the engine back.
    let mut outcome = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    while outcome.is_none() {
        match tokio::time::timeout_at(deadline, stalled.next()).await.expect("lagged or closed in time") {
            Some(Ok(tungstenite::Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == "snapshot" && message["reason"] == "lagged" {
                    outcome = Some("lagged".to_owned());
                }
            }
            Some(Ok(tungstenite::Message::Close(frame))) => outcome = Some(format!("closed: {frame:?}")),
            Some(Ok(_)) => {}
            Some(Err(error)) => outcome = Some(format!("dropped: {error}")),
            None => outcome = Some("ended".to_owned()),
        }
    }
    let outcome = outcome.unwrap();
    assert!(outcome == "lagged" || outcome.contains("too slow") || outcome.starts_with("dropped"), "{outcome}");
    let _ = stalled.send(tungstenite::Message::Close(None)).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_applies_links_live_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let admin = Api { server, token: token(server, "admin").await };
    let trader = Api { server, token: token(server, "trader").await };
    let put = |api: &Api, text: String| {
        let headers =
            vec![("Authorization", format!("Bearer {}", api.token)), ("Content-Type", "application/toml".into())];
        async move { request(server, LOCAL, "PUT", "/api/v1/config", &headers, text.as_bytes()).await }
    };

    // The configuration in force, as the file says.
    let current = admin.call("GET", "/api/v1/config", None).await;
    assert_eq!(current.status, 200, "{current:?}");
    assert_eq!(current.body, config_text(dir.path(), ""));

    // The outsider now follows the manual source, live; the API's copy map shows it.
    let linked = config_text(dir.path(), "\n[[links]]\nleader = \"manual\"\nfollower = \"outsider\"\n");
    let reply = put(&admin, linked.clone()).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("api.toml")).unwrap(), linked);
    assert_eq!(admin.get("/api/v1/links").await["links"].as_array().unwrap().len(), 3);
    trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    eventually(&running, "the outsider follows now", &[("f1", "ES", 1), ("f2", "ES", 2), ("outsider", "ES", 1)]).await;

    // A trader may not; a change that needs a restart is refused whole, naming it.
    assert!(put(&trader, linked.clone()).await.problem(403).contains("admin"));
    let reply = put(
        &admin,
        linked.replace("name = \"manual\"", "name = \"desk\"").replace("leader = \"manual\"", "leader = \"desk\""),
    )
    .await;
    assert!(reply.problem(422).contains("sources[0] cannot change while Mirror runs"), "{reply:?}");
    let reply = put(&admin, "[[links]\n".into()).await;
    assert!(reply.problem(422).starts_with("not applied"), "{reply:?}");
    assert_eq!(std::fs::read_to_string(dir.path().join("api.toml")).unwrap(), linked, "refusals leave the file alone");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_risk_change_one_at_a_time_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let admin = Api { server, token: token(server, "admin").await };
    let trader = Api { server, token: token(server, "trader").await };
    let file = dir.path().join("api.toml");
    // A comment the desk wrote: every change below must keep it.
    let commented = std::fs::read_to_string(&file).unwrap().replace(
        "[[links]]\nleader = \"manual\"\nfollower = \"f2\"",
        "[[links]] # f2 runs the evaluation at double size\nleader = \"manual\"\nfollower = \"f2\"",
    );
    let reply = {
        let headers =
            [("Authorization", format!("Bearer {}", admin.token)), ("Content-Type", "application/toml".into())];
        request(server, LOCAL, "PUT", "/api/v1/config", &headers, commented.as_bytes()).await
    };
    assert_eq!(reply.status, 200, "{reply:?}");
    let with_version = |api: &Api, method: &'static str, path: String, body: Option<Value>, version: &str| {
        let mut headers = vec![("Authorization", format!("Bearer {}", api.token)), ("If-Match", version.to_owned())];
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        headers.push(("Content-Type", "application/json".to_owned()));
        async move { request(server, LOCAL, method, &path, &headers, body.as_bytes()).await }
    };
    let listed = admin.call("GET", "/api/v1/links", None).await;
    let v0 = listed.header("etag").map(str::to_owned).expect("GET /api/v1/links carries the configuration's version");

    // A link added: the outsider copies the manual source at a fixed 3 contracts.
    let link = json!({"leader": "manual", "follower": "outsider", "sizing": {"mode": "fixed", "qty": 3}});
    let added = with_version(&admin, "POST", "/api/v1/links".into(), Some(link.clone()), &v0).await;
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(added.header("location"), Some("/api/v1/links/2"), "{added:?}");
    let v1 = added.header("etag").unwrap().to_owned();
    assert_ne!(v1, v0);
    assert_eq!(added.json()["link"]["rules"]["sizing"]["mode"], "fixed", "{added:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# f2 runs the evaluation at double size"), "{text}");
    assert!(
        text.contains(
            "follower = \"f2\"\nsizing = { mode = \"multiplier\", ratio = 2 }\n\n[[links]]\nleader = \"manual\"\n\
             follower = \"outsider\"\nsizing = { mode = \"fixed\", qty = 3 }\n"
        ),
        "the new link follows the last one: {text}"
    );
    trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "buy", "qty": "1"})).await;
    eventually(&running, "the new link copies", &[("f1", "ES", 1), ("f2", "ES", 2), ("outsider", "ES", 3)]).await;

    // A change made against the old version is refused: the link ids it read may have moved.
    let stale = with_version(&admin, "DELETE", "/api/v1/links/1".into(), None, &v0).await;
    assert!(stale.problem(412).contains("changed since version"), "{stale:?}");
    assert_eq!(admin.get("/api/v1/links").await["links"].as_array().unwrap().len(), 3);

    // One link read and changed: f2 to ratio 1 and long-only; its `config` shows the entry.
    let one = admin.get("/api/v1/links/1").await;
    assert_eq!(
        one["config"],
        json!({"leader": "manual", "follower": "f2", "sizing": {"mode": "multiplier", "ratio": 2}})
    );
    let change = json!({"sizing": {"mode": "multiplier", "ratio": 1}, "sides": "long_only"});
    let changed = with_version(&admin, "PATCH", "/api/v1/links/1".into(), Some(change), &v1).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let v2 = changed.header("etag").unwrap().to_owned();
    assert_eq!(changed.json()["link"]["rules"]["sides"], "long_only", "{changed:?}");
    trader.post("/api/v1/orders", json!({"symbol": "NQ", "side": "buy", "qty": "1"})).await;
    trader.post("/api/v1/orders", json!({"symbol": "ES", "side": "sell", "qty": "1"})).await;
    eventually(
        &running,
        "f2 at ratio 1, long only",
        &[
            ("f1", "NQ", 1),
            ("f2", "NQ", 1),
            ("outsider", "NQ", 3),
            ("f1", "ES", 0),
            ("f2", "ES", 2),
            ("outsider", "ES", 0),
        ],
    )
    .await;
    // `null` takes a key back to its default; the leader and follower are the link itself.
    let back = with_version(&admin, "PATCH", "/api/v1/links/1".into(), Some(json!({"sides": null})), &v2).await;
    assert_eq!(back.status, 200, "{back:?}");
    assert!(admin.get("/api/v1/links/1").await["config"].get("sides").is_none());
    let moved = admin.call("PATCH", "/api/v1/links/1", Some(json!({"follower": "outsider"}))).await;
    assert!(moved.problem(422).contains("follower: a link's leader and follower are what it is"), "{moved:?}");

    // Refusals name what is wrong and change nothing.
    let before = std::fs::read_to_string(&file).unwrap();
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        ("POST", "/api/v1/links".into(), json!({"leader": "manual", "follower": "nobody"}), 422, "nobody"),
        ("POST", "/api/v1/links".into(), json!({"leader": "manual", "follower": "f1"}), 422, "already linked"),
        ("POST", "/api/v1/links".into(), json!({"leader": "manual"}), 422, "follower: missing"),
        (
            "POST",
            "/api/v1/links".into(),
            json!({"leader": "manual", "follower": "outsider", "stoploss": "none"}),
            422,
            "stoploss",
        ),
        ("PATCH", "/api/v1/links/1".into(), json!({"sizing": {"mode": "multiplier", "ratio": -1}}), 422, "ratio"),
        ("PATCH", "/api/v1/links/9".into(), json!({"paused": true}), 404, "no link 9; there are 3"),
        ("PUT", "/api/v1/risk/profiles/tight".into(), json!({"max_order_qtty": 1}), 422, "max_order_qtty"),
        ("PUT", "/api/v1/accounts/f2/risk".into(), json!({"profile": "nope"}), 422, "no risk profile is named `nope`"),
        ("PUT", "/api/v1/accounts/f2/risk".into(), json!({"profil": "tight"}), 422, "profil: unknown field"),
    ];
    for (method, path, body, status, expected) in cases {
        let reply = admin.call(method, &path, Some(body.clone())).await;
        let detail = reply.problem(status);
        assert!(detail.contains(expected), "{method} {path} {body}: expected `{expected}` in `{detail}`");
    }
    let reply = trader.call("DELETE", "/api/v1/links/0", None).await;
    assert!(reply.problem(403).contains("admin"), "{reply:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "refusals leave the file alone");

    // A risk profile set and given to f2: an order over its limit is refused on f2 only.
    let set = admin.call("PUT", "/api/v1/risk/profiles/tight", Some(json!({"max_order_qty": 1}))).await;
    assert_eq!(set.status, 200, "{set:?}");
    let risk = admin.get("/api/v1/risk").await;
    assert_eq!(risk["profiles"]["tight"]["max_order_qty"], "1", "a profile no account uses yet is listed: {risk}");
    let given = admin.call("PUT", "/api/v1/accounts/f2/risk", Some(json!({"profile": "tight"}))).await;
    assert_eq!(given.status, 200, "{given:?}");
    assert_eq!(given.json()["limits"]["max_order_qty"], "1", "{given:?}");
    let in_use = admin.call("DELETE", "/api/v1/risk/profiles/tight", None).await;
    assert!(in_use.problem(409).contains("used by f2"), "{in_use:?}");
    trader.post("/api/v1/orders", json!({"symbol": "NQ", "side": "buy", "qty": "2"})).await;
    eventually(&running, "f2 refuses 2 NQ", &[("f1", "NQ", 3), ("f2", "NQ", 1), ("outsider", "NQ", 6)]).await;
    let risk = admin.get("/api/v1/risk").await;
    let f2 = risk["accounts"].as_array().unwrap().iter().find(|a| a["name"] == "f2").unwrap().clone();
    assert_eq!(f2["profile"], "tight", "{risk}");

    // Taken back: the profile cleared from f2, then removed; the link removed. The file is the
    // configuration in force throughout, comment and all, and reads back as it.
    let cleared = admin.call("PUT", "/api/v1/accounts/f2/risk", Some(json!({"profile": null}))).await;
    assert_eq!(cleared.status, 200, "{cleared:?}");
    let removed = admin.call("DELETE", "/api/v1/risk/profiles/tight", None).await;
    assert_eq!(removed.status, 200, "{removed:?}");
    let gone = admin.call("DELETE", "/api/v1/links/2", None).await;
    assert_eq!(gone.status, 200, "{gone:?}");
    assert_eq!(gone.json()["removed"]["follower_name"], "outsider", "{gone:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("outsider\"\nsizing") && !text.contains("tight"), "{text}");
    assert!(text.contains("# f2 runs the evaluation at double size"), "{text}");
    assert_eq!(admin.call("GET", "/api/v1/config", None).await.body, text);
    config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    trader.post("/api/v1/orders", json!({"symbol": "NQ", "side": "buy", "qty": "1"})).await;
    eventually(&running, "the outsider no longer copies", &[("f1", "NQ", 4), ("f2", "NQ", 2), ("outsider", "NQ", 6)])
        .await;
    running.stop().await;
}
