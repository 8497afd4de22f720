//! The QUIC gateway as `mirror-engine run` starts it: from `[gateway]` in the configuration,
//! through `mirror_engine::app::start`, with tokens read from references. A `mirror-sdk`
//! client pinned to the printed fingerprint trades as its token's source, and what is checked
//! is what the simulated broker holds for each follower.

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config::{self, Resolved};
use mirror_engine::secrets::CredentialVars;
use mirror_model::{Qty, SourceId};
use mirror_sdk::{Client, ClientConfig, ErrorCode, Order, Role, SdkError, Side, Trust};
use support::WAIT;

const TRADER: &str = "trader-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

const CONFIG: &str = concat!(
    engine_sim!(),
    es_nq!(),
    r#"

[[sources]]
name = "algo"
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

[[accounts]]
name = "f3"
platform = "sim"
mode = "netting"
balance = 100000

[[links]]
leader = "algo"
follower = "f1"

[[links]]
leader = "algo"
follower = "f2"
sizing = { mode = "multiplier", ratio = 2 }

[[links]]
leader = "algo"
follower = "f3"
deny = ["NQ"]

[[gateway.tokens]]
name = "bot"
token = "env:GW_TRADER"
role = "trader"
source = "algo"

[[gateway.tokens]]
name = "screen"
token = "env:GW_VIEWER"
role = "viewer"

[[gateway.tokens]]
name = "ops"
token = "env:GW_ADMIN"
role = "admin"

[[gateway.tokens]]
name = "spare"
token = "env:GW_SPARE"
role = "trader"
source = "algo"
optional = true
"#
);

/// The configuration with its journal and certificate under `dir`, the gateway on a free port.
fn resolve(dir: &Path) -> Resolved {
    resolve_on(dir, "127.0.0.1:0")
}

fn resolve_on(dir: &Path, listen: &str) -> Resolved {
    let text = format!(
        "{CONFIG}\n[storage]\ndir = {:?}\n\n[gateway]\nlisten = {listen:?}\ncert_dir = {:?}\n",
        dir.join("data").display().to_string(),
        dir.join("gateway").display().to_string(),
    );
    config::load_str(Path::new("gateway.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn vars(trader: Option<&str>) -> CredentialVars {
    let vars = CredentialVars::new().with("GW_VIEWER", VIEWER).with("GW_ADMIN", ADMIN);
    match trader {
        Some(token) => vars.with("GW_TRADER", token),
        None => vars,
    }
}

async fn start_with(resolved: &Resolved, trader: Option<&str>) -> anyhow::Result<Running> {
    start(resolved, StartOptions { credential_vars: Some(vars(trader)), ..StartOptions::default() }).await
}

async fn connect(running: &Running, token: &str) -> Result<Client, SdkError> {
    let addr = running.gateway_addr().expect("the gateway runs");
    let fingerprint = running.gateway_fingerprint().expect("the gateway runs").to_owned();
    let mut config = ClientConfig::new(addr, Trust::Fingerprint(fingerprint), token);
    config.client_name = "gateway-run-test".into();
    Client::connect(config).await
}

/// Each follower's net ES and NQ at the broker.
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

async fn eventually(running: &Running, what: &str, expected: [(Qty, Qty); 3]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = [holdings(running, "f1"), holdings(running, "f2"), holdings(running, "f3")];
        if seen == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {expected:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn q(n: i64) -> Qty {
    Qty::parse(&n.to_string()).unwrap()
}

fn refused(result: Result<impl std::fmt::Debug, SdkError>) -> (ErrorCode, String) {
    match result {
        Err(SdkError::Server(reply)) => (reply.code, reply.message),
        other => panic!("expected the server to refuse, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_trades_as_its_source_through_the_gateway_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let resolved = resolve(dir.path());
    let running = start_with(&resolved, Some(TRADER)).await.unwrap_or_else(|e| panic!("{e:#}"));

    // The optional token whose variable is not set is left out, and the start says why.
    let off = running.gateway_tokens_off();
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].token, "spare");
    assert!(off[0].reason.contains("GW_SPARE is not set"), "{off:?}");
    // The fingerprint clients pin is kept beside the generated certificate.
    let fingerprint = running.gateway_fingerprint().unwrap().to_owned();
    assert_eq!(fingerprint.len(), 64);
    let kept = std::fs::read_to_string(dir.path().join("gateway").join("gateway-fingerprint.txt")).unwrap();
    assert_eq!(kept, format!("{fingerprint}\n"));

    // A trader sends orders as `algo`, copied to its three followers by their links.
    let bot = connect(&running, TRADER).await.unwrap();
    let welcome = bot.welcome().unwrap();
    assert_eq!((welcome.role, welcome.source), (Role::Trader, Some(SourceId::from_name("algo").0)));
    let es = bot.next_position_key();
    bot.submit(&Order::market(es, "ES", Side::Buy, "1").unwrap().into_ticket()).await.unwrap();
    eventually(&running, "ES bought", [(q(1), q(0)), (q(2), q(0)), (q(1), q(0))]).await;
    let nq = bot.next_position_key();
    bot.submit(&Order::market(nq, "NQ", Side::Sell, "1").unwrap().into_ticket()).await.unwrap();
    eventually(&running, "NQ sold (denied to f3)", [(q(1), q(-1)), (q(2), q(-2)), (q(1), q(0))]).await;

    // A viewer reads state and the configuration, and sends nothing.
    let screen = connect(&running, VIEWER).await.unwrap();
    assert_eq!(screen.welcome().unwrap().role, Role::Viewer);
    let key = screen.next_position_key();
    let (code, message) =
        refused(screen.submit(&Order::market(key, "ES", Side::Buy, "1").unwrap().into_ticket()).await);
    assert_eq!(code, ErrorCode::Forbidden, "{message}");
    let text = screen.read_config().await.unwrap();
    assert!(text.contains("[[gateway.tokens]]") && text.contains("token = \"env:GW_TRADER\""), "{text}");
    assert!(!text.contains(TRADER), "the configuration holds references only");
    let (code, _) = refused(screen.apply_config(&text).await);
    assert_eq!(code, ErrorCode::Forbidden);
    // An admin may apply; what cannot change while running is refused, naming it (live
    // changes are tested in tests/live_config.rs).
    let ops = connect(&running, ADMIN).await.unwrap();
    let (code, message) =
        refused(ops.apply_config(&text.replace("spin_iterations = 100", "spin_iterations = 7")).await);
    assert_eq!(code, ErrorCode::Refused);
    assert!(message.contains("[engine] cannot change while Mirror runs"), "{message}");
    // The left-out token and a made-up one open no session.
    for token in ["spare-token-0123456789", "made-up-token-0123456789"] {
        let error = connect(&running, token).await.expect_err("no session");
        assert!(matches!(error, SdkError::Unauthorized(_)), "{error:?}");
    }

    bot.close_position(es).await.unwrap();
    bot.close_position(nq).await.unwrap();
    eventually(&running, "both closed", [(q(0), q(0)); 3]).await;
    running.stop().await;
    for client in [&bot, &screen, &ops] {
        client.close().await;
    }

    // The certificate is kept: a restart presents the same fingerprint.
    let running = start_with(&resolved, Some(TRADER)).await.unwrap();
    assert_eq!(running.gateway_fingerprint(), Some(fingerprint.as_str()));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_the_gateway_refuses_names_the_token_entry_or_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let resolved = resolve(dir.path());

    let error = format!("{:#}", start_with(&resolved, Some("short-value")).await.expect_err("refused"));
    assert!(
        error.starts_with("[[gateway.tokens]] `bot` (env:GW_TRADER): a gateway token needs at least 16"),
        "{error}"
    );
    assert!(!error.contains("short-value"), "the value is never repeated: {error}");

    let error = format!("{:#}", start_with(&resolved, None).await.expect_err("refused"));
    assert!(error.starts_with("[[gateway.tokens]] `bot` (env:GW_TRADER): "), "{error}");
    assert!(error.contains("environment variable GW_TRADER is not set"), "{error}");
    assert!(!dir.path().join("data").exists(), "nothing started");

    // A port already taken: the engine that started is stopped again, and the error says where.
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let resolved = resolve_on(dir.path(), &listen);
    let error = format!("{:#}", start_with(&resolved, Some(TRADER)).await.expect_err("refused"));
    assert!(error.starts_with(&format!("the QUIC gateway on {listen}: gateway socket {listen}: ")), "{error}");
}
