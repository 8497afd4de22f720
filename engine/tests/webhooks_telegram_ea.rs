//! The Telegram and MetaTrader EA webhooks as `mirror-engine run` starts them: from `[http]`
//! in the configuration, on a free loopback port, with the simulated broker's followers. What
//! is checked is what the broker holds for each follower (sizes, stop losses, take profits),
//! and that redeliveries, chatter and refused requests execute nothing.

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config::{self, Resolved};
use mirror_engine::secrets::CredentialVars;
use mirror_model::{Price, Qty, Symbol};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{LOCAL, Reply, WAIT, now_s, request};

const TG_SECRET: &str = "tg-secret_0123456789abcdef";
const EA_SECRET: &str = "ea-secret-0123456789abcdef";
const CHANNEL: i64 = -1001234567890;

const CONFIG: &str = concat!(
    engine_sim!(),
    r#"
[instruments.XAUUSD]
kind = "cfd"
contract_size = 100
tick_size = "0.01"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 20
price = "2350.00"
spread_ticks = 10

[instruments.EURUSD]
kind = "forex"
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 50
price = "1.08500"

[[sources]]
name = "channel"
symbols = ["XAUUSD", "EURUSD"]

[[sources]]
name = "terminal"
symbols = ["XAUUSD", "EURUSD"]

[[accounts]]
name = "f1"
platform = "sim"
mode = "hedging"
balance = 100000

[[accounts]]
name = "f2"
platform = "sim"
mode = "hedging"
balance = 100000

[[accounts]]
name = "f3"
platform = "sim"
mode = "hedging"
balance = 100000

[[accounts]]
name = "f4"
platform = "sim"
mode = "hedging"
balance = 100000

[[links]]
leader = "channel"
follower = "f1"

[[links]]
leader = "channel"
follower = "f2"
sizing = { mode = "multiplier", ratio = 2 }

[[links]]
leader = "terminal"
follower = "f3"

[[links]]
leader = "terminal"
follower = "f4"
sizing = { mode = "multiplier", ratio = 2 }

[http]
listen = "127.0.0.1:0"
body_limit_bytes = 8192
rate_burst = 100

[[http.webhooks]]
name = "gold-channel"
kind = "telegram"
secret = "env:TG_SECRET"
source = "channel"
chats = [-1001234567890]
qty = "0.1"

[[http.webhooks]]
name = "vps"
kind = "metatrader_ea"
secret = "env:EA_SECRET"
source = "terminal"
allow_ips = ["127.0.0.0/8"]
"#
);

fn resolve(dir: &Path) -> Resolved {
    let text = format!("{CONFIG}\n[storage]\ndir = {:?}\n", dir.join("data").display().to_string());
    config::load_str(Path::new("webhooks.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

async fn start_mirror(dir: &Path) -> Running {
    let vars = CredentialVars::new().with("TG_SECRET", TG_SECRET).with("EA_SECRET", EA_SECRET);
    start(&resolve(dir), StartOptions { credential_vars: Some(vars), ..StartOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A response: status, content type, body.
/// One HTTP/1.1 POST of JSON over a fresh connection.
async fn post(server: SocketAddr, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", "application/json".to_owned()));
    request(server, LOCAL, "POST", path, &headers, body).await
}

fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

/// Each of a follower's positions on `symbol`: size, stop loss, take profit.
type Held = Vec<(Qty, Option<Price>, Option<Price>)>;

fn held(running: &Running, follower: &str, symbol: &str) -> Held {
    let mut positions: Held = running
        .broker()
        .positions(follower)
        .unwrap()
        .into_iter()
        .filter(|position| position.symbol.as_str() == symbol)
        .map(|position| (position.qty, position.stop_loss, position.take_profit))
        .collect();
    positions.sort();
    positions
}

async fn eventually(running: &Running, what: &str, symbol: &str, expected: &[(&str, Held)]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen: Vec<(&str, Held)> = expected.iter().map(|(f, _)| (*f, held(running, f, symbol))).collect();
        if seen.iter().zip(expected).all(|((_, got), (_, want))| got == want) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {expected:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the engine to be quiet, then returns how many signals it has taken.
async fn signals(running: &Running) -> u64 {
    running.settle(Duration::from_millis(150), WAIT).await;
    running.handle.stats().signals
}

// ---------------------------------------------------------------------------------------
// Telegram

const TELEGRAM: &str = "/webhooks/telegram/gold-channel";

fn fixture(path: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(path);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A channel post of the fixture's shape with `text`, as update `update_id`, sent now.
fn channel_post(update_id: i64, message_id: i64, text: &str) -> Value {
    let mut update = fixture("telegram/channel_post.json");
    update["update_id"] = json!(update_id);
    update["channel_post"]["message_id"] = json!(message_id);
    update["channel_post"]["date"] = json!(now_s());
    update["channel_post"]["text"] = json!(text);
    update
}

async fn telegram(server: SocketAddr, update: &Value) -> Reply {
    post(server, TELEGRAM, &[("X-Telegram-Bot-Api-Secret-Token", TG_SECRET.to_owned())], update.to_string().as_bytes())
        .await
}

/// A 200 answer with `outcome`; its JSON.
async fn answered(server: SocketAddr, update: &Value, outcome: &str) -> Value {
    let reply = telegram(server, update).await;
    assert_eq!(reply.status, 200, "{outcome}: {reply:?}");
    let json = reply.json();
    assert_eq!(json["outcome"], outcome, "{json}");
    json
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_signals_reach_the_followers_and_management_acts_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();

    // The fixture's channel post: BUY XAUUSD @ 2350, SL 2340, TP 2360, TP2 2370.
    let mut signal = fixture("telegram/channel_post.json");
    signal["channel_post"]["date"] = json!(now_s());
    let accepted = answered(server, &signal, "accepted").await;
    assert!(accepted["signal"].as_u64().is_some(), "{accepted}");
    assert_eq!(accepted["confidence"], 1.0, "{accepted}");
    assert!(accepted["reason"].as_str().unwrap().contains("TP1 used, 2370 not copied"), "{accepted}");
    let (sl, tp) = (Some(p("2340")), Some(p("2360")));
    eventually(&running, "the buy", "XAUUSD", &[("f1", vec![(q("0.1"), sl, tp)]), ("f2", vec![(q("0.2"), sl, tp)])])
        .await;
    let after_open = signals(&running).await;
    assert_eq!(after_open, 1);

    // Telegram delivers it again: nothing more is executed.
    let again = answered(server, &signal, "duplicate").await;
    assert!(again["reason"].as_str().unwrap().contains("handled before"), "{again}");

    // The channel edits the post's stop loss (2340 → 2344): the copies follow.
    let mut edit = fixture("telegram/edited_channel_post.json");
    edit["edited_channel_post"]["edit_date"] = json!(now_s());
    let edited = answered(server, &edit, "accepted").await;
    assert!(edited["reason"].as_str().unwrap().contains("message 1842 edited: stop loss 2344"), "{edited}");
    let sl = Some(p("2344"));
    eventually(&running, "the edit", "XAUUSD", &[("f1", vec![(q("0.1"), sl, tp)]), ("f2", vec![(q("0.2"), sl, tp)])])
        .await;
    let after_open = after_open + 1;

    // Chatter, a sticker and a results post are answered 200 and execute nothing.
    let chatter = answered(server, &channel_post(900, 1900, "Good morning traders! ☀️"), "not_a_signal").await;
    assert_eq!(chatter["confidence"], 0.0, "{chatter}");
    answered(server, &channel_post(901, 1901, "TP1 hit +50 pips 🔥"), "not_a_signal").await;
    let mut sticker = fixture("telegram/sticker.json");
    sticker["message"]["chat"]["id"] = json!(CHANNEL);
    answered(server, &sticker, "not_a_signal").await;
    // A chat the webhook does not listen to, and a signal that cannot be executed as written.
    let other = answered(server, &fixture("telegram/group_message.json"), "ignored").await;
    assert!(other["reason"].as_str().unwrap().contains("chat -1009876543210 (FX Room) is not in"), "{other}");
    let wrong = answered(server, &channel_post(902, 1902, "BUY XAUUSD @ 2350 SL 2360 TP 2370"), "ignored").await;
    assert!(wrong["reason"].as_str().unwrap().contains("stop loss 2360 not below its entry 2350"), "{wrong}");
    assert_eq!(signals(&running).await, after_open, "nothing was executed");

    // Management acts on the position the channel opened.
    answered(server, &channel_post(903, 1903, "close half"), "accepted").await;
    eventually(
        &running,
        "close half",
        "XAUUSD",
        &[("f1", vec![(q("0.05"), sl, tp)]), ("f2", vec![(q("0.1"), sl, tp)])],
    )
    .await;
    running.broker().set_price(&Symbol::new("XAUUSD").unwrap(), p("2355")).unwrap();
    answered(server, &channel_post(904, 1904, "TP1 hit ✅ move SL to entry"), "accepted").await;
    let entry = Some(p("2350"));
    eventually(
        &running,
        "move SL to entry",
        "XAUUSD",
        &[("f1", vec![(q("0.05"), entry, tp)]), ("f2", vec![(q("0.1"), entry, tp)])],
    )
    .await;
    // The book survives in the state directory, beside the journal.
    let book = std::fs::read_to_string(dir.path().join("data/http/telegram-gold-channel.json")).unwrap();
    assert!(book.contains("\"stop_loss\": \"2350\"") && book.contains("904"), "{book}");

    answered(server, &channel_post(905, 1905, "close all"), "accepted").await;
    eventually(&running, "close all", "XAUUSD", &[("f1", vec![]), ("f2", vec![])]).await;
    let nothing = answered(server, &channel_post(906, 1906, "close half"), "ignored").await;
    assert_eq!(nothing["reason"], "nothing open from this chat", "{nothing}");
    // A chart posted with the signal as its caption: a sell limit, then cancelled.
    let mut photo = fixture("telegram/photo_caption.json");
    photo["channel_post"]["date"] = json!(now_s());
    let limit = answered(server, &photo, "accepted").await;
    assert!(limit["reason"].as_str().unwrap().starts_with("0.1 sell XAUUSD limit 2365, SL 2372, TP 2355"), "{limit}");
    let cancel = answered(server, &channel_post(907, 1907, "cancel the limit"), "accepted").await;
    assert!(cancel["reason"].as_str().unwrap().contains("cancel the pending sell XAUUSD of message 1843"), "{cancel}");
    assert_eq!(signals(&running).await, after_open + 5);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_refusals_are_problems_and_execute_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let update = channel_post(1, 1, "BUY XAUUSD @ 2350 SL 2340 TP 2360").to_string();
    let secret = |value: &str| vec![("X-Telegram-Bot-Api-Secret-Token", value.to_owned())];
    let cases = [
        (
            "wrong secret",
            post(server, TELEGRAM, &secret("guess-0123456789abcdef"), update.as_bytes()).await,
            401,
            "does not match",
        ),
        ("no secret", post(server, TELEGRAM, &[], update.as_bytes()).await, 401, "missing; call setWebhook"),
        ("malformed JSON", post(server, TELEGRAM, &secret(TG_SECRET), b"{\"update_id\":").await, 400, "malformed JSON"),
        (
            "not an update",
            post(server, TELEGRAM, &secret(TG_SECRET), b"{\"ok\":true}").await,
            400,
            "not a Telegram Update",
        ),
        (
            "unknown webhook",
            post(server, "/webhooks/telegram/nobody", &secret(TG_SECRET), update.as_bytes()).await,
            404,
            "no telegram webhook is named `nobody`",
        ),
        (
            "oversized",
            post(server, TELEGRAM, &secret(TG_SECRET), "x".repeat(9000).as_bytes()).await,
            413,
            "over the limit of 8192 bytes",
        ),
    ];
    for (what, reply, status, detail) in &cases {
        assert_eq!(reply.status, *status, "{what}: {reply:?}");
        assert_eq!(reply.content_type, "application/problem+json", "{what}: {reply:?}");
        let text = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(text.contains(detail), "{what}: expected {detail:?} in {text:?}");
        assert!(!text.contains(TG_SECRET), "{what}: the secret in {text:?}");
    }
    assert_eq!(signals(&running).await, 0);
    eventually(&running, "nothing executed", "XAUUSD", &[("f1", vec![]), ("f2", vec![])]).await;
    running.stop().await;
}

// ---------------------------------------------------------------------------------------
// MetaTrader EA

const EA: &str = "/webhooks/ea/vps";

fn batch(events: Value) -> String {
    json!({"login": 52114873, "server": "ICMarketsSC-Demo", "platform": "mt5", "events": events}).to_string()
}

async fn ea(server: SocketAddr, body: &str) -> Reply {
    post(server, EA, &[("X-Mirror-Secret", EA_SECRET.to_owned())], body.as_bytes()).await
}

/// A 202 answer; each event's status.
async fn ea_accepted(server: SocketAddr, body: &str) -> Vec<String> {
    let reply = ea(server, body).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    let json = reply.json();
    json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|e| {
            let status = e["status"].as_str().unwrap().to_owned();
            assert_eq!(status == "accepted", e["signal"].as_u64().is_some(), "{e}");
            status
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ea_trade_events_reach_the_followers_once() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path()).await;
    let server = running.http_addr().unwrap();
    let time = now_s();
    let followers = |a: Held, b: Held| [("f3", a), ("f4", b)];

    // An open on the broker's suffixed symbol.
    let open = batch(json!([{"seq": 1, "type": "open", "ticket": 2400118913_u64, "symbol": "XAUUSD.r", "side": "buy",
        "lots": "0.10", "price": "2350.00", "sl": "2340.00", "tp": "2360.00", "order": 0, "time": time}]));
    assert_eq!(ea_accepted(server, &open).await, ["accepted"]);
    let (sl, tp) = (Some(p("2340")), Some(p("2360")));
    eventually(&running, "open", "XAUUSD", &followers(vec![(q("0.1"), sl, tp)], vec![(q("0.2"), sl, tp)])).await;

    // A partial close and a modify in one batch.
    let manage = batch(json!([
        {"seq": 2, "type": "close", "ticket": 2400118913_u64, "lots": "0.05", "lots_before": "0.10", "time": time},
        {"seq": 3, "type": "modify", "ticket": 2400118913_u64, "sl": "2345.00", "tp": "2365.00", "time": time}]));
    assert_eq!(ea_accepted(server, &manage).await, ["accepted", "accepted"]);
    let (sl, tp) = (Some(p("2345")), Some(p("2365")));
    eventually(
        &running,
        "partial close and modify",
        "XAUUSD",
        &followers(vec![(q("0.05"), sl, tp)], vec![(q("0.1"), sl, tp)]),
    )
    .await;
    let executed = signals(&running).await;
    assert_eq!(executed, 3);

    // The EA sends the same batch again (its answer was lost): nothing runs.
    assert_eq!(ea_accepted(server, &manage).await, ["duplicate", "duplicate"]);
    assert_eq!(ea_accepted(server, &open).await, ["duplicate"]);
    assert_eq!(signals(&running).await, executed);

    // One bad event refuses the whole batch, naming it; the good one before it did not run.
    let close = json!({"seq": 4, "type": "close", "ticket": 2400118913_u64, "lots": "0.05", "lots_before": "0.05"});
    let bad = batch(json!([close, {"seq": 5, "type": "modify", "ticket": 2400118913_u64, "sl": "-1", "tp": "0"}]));
    let reply = ea(server, &bad).await;
    assert_eq!((reply.status, reply.content_type.as_str()), (422, "application/problem+json"), "{reply:?}");
    assert!(reply.json()["detail"].as_str().unwrap().starts_with("events[1].sl: must be above 0"), "{reply:?}");
    let unknown = batch(json!([{"seq": 4, "type": "open", "ticket": 7, "symbol": "GBPUSD.r", "side": "buy", "lots": 1,
        "price": "1.26"}]));
    let reply = ea(server, &unknown).await;
    assert_eq!(reply.status, 422, "{reply:?}");
    assert!(reply.json()["detail"].as_str().unwrap().starts_with("events[0].symbol: unknown symbol `GBPUSD.r`"));
    // Wrong or missing credentials.
    let wrong = post(server, EA, &[("X-Mirror-Secret", "guess-0123456789abcdef".to_owned())], bad.as_bytes()).await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert_eq!(post(server, EA, &[], bad.as_bytes()).await.status, 401);
    assert_eq!(signals(&running).await, executed);
    eventually(&running, "nothing more", "XAUUSD", &followers(vec![(q("0.05"), sl, tp)], vec![(q("0.1"), sl, tp)]))
        .await;

    // The close alone runs (event 4 was not recorded by the refused batch), signed this time.
    let body = batch(json!([close]));
    let timestamp = now_s().to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(EA_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let headers = [("X-Mirror-Timestamp", timestamp), ("X-Mirror-Signature", format!("sha256={signature}"))];
    let reply = post(server, EA, &headers, body.as_bytes()).await;
    assert_eq!(reply.status, 202, "{reply:?}");
    eventually(&running, "close", "XAUUSD", &followers(vec![], vec![])).await;
    assert_eq!(signals(&running).await, executed + 1);
    // The numbers are kept beside the journal for the next start.
    let numbers = std::fs::read_to_string(dir.path().join("data/http/ea-vps.json")).unwrap();
    assert!(numbers.contains("\"seq\": 4") && numbers.contains("ICMarketsSC-Demo"), "{numbers}");
    running.stop().await;
}
