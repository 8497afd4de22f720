//! Changing the configuration while Mirror runs, as an admin does it over the gateway
//! (`ApplyConfig`, what the Map Editor sends): a link added becomes live, a link removed stops
//! copying, a link paused in the file is paused, the file on disk is the applied text (the
//! previous one kept beside it), and a change that needs a restart is refused whole, naming it.

#[macro_use]
mod support;

use std::path::Path;
use std::time::Duration;

use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config;
use mirror_engine::secrets::CredentialVars;
use mirror_model::Qty;
use mirror_sdk::{Client, ClientConfig, ErrorCode, Order, SdkError, Side, Trust};
use support::WAIT;

const ADMIN: &str = "admin-token-0123456789";

const BASE: &str = concat!(
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

[[links]]
leader = "algo"
follower = "f1"

[[gateway.tokens]]
name = "ops"
token = "env:GW_ADMIN"
role = "admin"
source = "algo"
"#
);

const F2_LINK: &str =
    "\n[[links]]\nleader = \"algo\"\nfollower = \"f2\"\nsizing = { mode = \"multiplier\", ratio = 2 }\n";

fn text(dir: &Path, links_extra: &str) -> String {
    format!(
        "{BASE}{links_extra}\n[storage]\ndir = {:?}\n\n[gateway]\nlisten = \"127.0.0.1:0\"\ncert_dir = {:?}\n",
        dir.join("data").display().to_string(),
        dir.join("gateway").display().to_string(),
    )
}

fn net(running: &Running, follower: &str) -> Qty {
    running.broker().positions(follower).unwrap().iter().filter(|p| p.symbol.as_str() == "ES").fold(
        Qty::ZERO,
        |sum, p| match p.side {
            mirror_model::Side::Buy => sum + p.qty,
            mirror_model::Side::Sell => sum - p.qty,
        },
    )
}

async fn eventually(running: &Running, what: &str, f1: i64, f2: i64) {
    let expected = [Qty::parse(&f1.to_string()).unwrap(), Qty::parse(&f2.to_string()).unwrap()];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = [net(running, "f1"), net(running, "f2")];
        if seen == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {expected:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn buy(client: &Client) {
    let key = client.next_position_key();
    client.submit(&Order::market(key, "ES", Side::Buy, "1").unwrap().into_ticket()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_change_live_and_the_file_follows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirror.toml");
    let first = text(dir.path(), "");
    std::fs::write(&file, &first).unwrap();
    let resolved = config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let vars = CredentialVars::new().with("GW_ADMIN", ADMIN);
    let running = start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let addr = running.gateway_addr().unwrap();
    let trust = Trust::Fingerprint(running.gateway_fingerprint().unwrap().to_owned());
    let ops = Client::connect(ClientConfig::new(addr, trust, ADMIN)).await.unwrap();

    buy(&ops).await;
    eventually(&running, "only f1 is linked", 1, 0).await;

    // A link drawn to f2 (twice the size) is live for the next signal.
    let linked = text(dir.path(), F2_LINK);
    ops.apply_config(&linked).await.unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), linked, "the file is what was applied");
    assert_eq!(std::fs::read_to_string(dir.path().join("mirror.toml.prev")).unwrap(), first);
    assert_eq!(ops.read_config().await.unwrap(), linked);
    buy(&ops).await;
    eventually(&running, "f2 follows now", 2, 2).await;

    // Paused in the file: paused live.
    let paused = text(dir.path(), &F2_LINK.replace("ratio = 2 }\n", "ratio = 2 }\npaused = true\n"));
    ops.apply_config(&paused).await.unwrap();
    buy(&ops).await;
    eventually(&running, "f2's link paused", 3, 2).await;

    // The link to f1 removed: f1 copies nothing more, f2 (resumed) copies again.
    let removed = text(dir.path(), F2_LINK).replace("[[links]]\nleader = \"algo\"\nfollower = \"f1\"\n", "");
    ops.apply_config(&removed).await.unwrap();
    buy(&ops).await;
    eventually(&running, "f1 unlinked, f2 resumed", 3, 4).await;

    // What needs a restart is refused whole, and nothing of it is applied.
    let more =
        format!("{removed}\n[[accounts]]\nname = \"f3\"\nplatform = \"sim\"\nmode = \"netting\"\nbalance = 100000\n");
    let refused = ops.apply_config(&more).await;
    match refused {
        Err(SdkError::Server(reply)) => {
            assert_eq!(reply.code, ErrorCode::Refused);
            assert!(reply.message.contains("the number of accounts cannot change while Mirror runs"), "{reply:?}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A link that does not check is refused as `check` would, naming it.
    let broken = removed.replace("follower = \"f2\"", "follower = \"nobody\"");
    match ops.apply_config(&broken).await {
        Err(SdkError::Server(reply)) => assert!(reply.message.contains("nobody"), "{reply:?}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), removed, "refused changes leave the file alone");
    buy(&ops).await;
    eventually(&running, "still the applied links", 3, 6).await;

    ops.close().await;
    running.stop().await;
}
