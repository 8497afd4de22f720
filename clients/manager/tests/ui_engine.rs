//! The Trading Manager driven by its accessible labels (egui_kittest, headless) against an
//! engine started in this process with three simulated followers and the QUIC gateway, over
//! real QUIC on loopback. What is checked is what the trader sees and what the simulated broker
//! holds.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mirror_manager::{ConnState, ManagerApp, Profile};
use mirror_model::Qty;
use mirror_sdk::{Client, Order, SdkError, Side};
use mirror_testkit::{ENGINE, ES, InProcessEngine, NQ, SIM_INSTANT, WAIT};

const DESK: &str = "desk-token-0123456789";

/// The configuration after the shared blocks.
const REST: &str = r#"
[risk.prop]
max_daily_drawdown_pct = 2

[[sources]]
name = "algo"
symbols = ["ES", "NQ"]

[[accounts]]
name = "f1"
platform = "sim"
mode = "netting"
balance = 100000
risk = "prop"

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

[[gateway.tokens]]
name = "desk"
token = "env:GW_DESK"
role = "admin"
source = "algo"
"#;

fn start_engine() -> InProcessEngine {
    InProcessEngine::start(&format!("{ENGINE}{SIM_INSTANT}{ES}{NQ}{REST}"), &[("GW_DESK", DESK)])
}

fn profile(engine: &InProcessEngine) -> Profile {
    engine.desk_profile("MIRROR_TEST_DESK_TOKEN")
}

/// Whether the engine holds account `name` paused.
fn paused(engine: &InProcessEngine, name: &str) -> bool {
    let accounts = engine.runtime.block_on(engine.running().accounts());
    accounts.iter().any(|a| a.name.as_ref() == name && a.summary.paused)
}

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

/// The app, connected to the engine, in a headless harness the size of a desktop window.
fn connected_app(engine: &InProcessEngine) -> Harness<'static, ManagerApp> {
    let mut app = ManagerApp::new(None);
    app.connection.profile = profile(engine);
    app.connect_with_token(DESK.into(), None);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_ui_state(|ui, app: &mut ManagerApp| app.show(ui), app);
    wait_until(&mut harness, "connected with the accounts and the configuration read", |h| {
        let app = h.state();
        matches!(app.conn_state(), ConnState::Connected { .. })
            && app.model.accounts.len() == 3
            && app.model.facts.is_some()
    });
    harness
}

/// Steps frames until `done` holds (the backend works in its own thread meanwhile).
fn wait_until(
    harness: &mut Harness<'_, ManagerApp>,
    what: &str,
    mut done: impl FnMut(&Harness<'_, ManagerApp>) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    loop {
        harness.step();
        if done(harness) {
            harness.step();
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}; state {:?}", harness.state().conn_state());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn type_into(harness: &mut Harness<'_, ManagerApp>, label: &str, text: &str) {
    harness.get_by_label(label).click();
    harness.step();
    harness.get_by_label(label).type_text(text);
    harness.step();
}

fn open_ticket(harness: &mut Harness<'_, ManagerApp>, symbol: &str, side: &str, qty: &str) {
    harness.get_by_label("New ticket").click();
    harness.step();
    harness.step();
    type_into(harness, "Symbol", symbol);
    harness.get_by_label(side).click();
    harness.step();
    type_into(harness, "Quantity", qty);
    harness.get_by_label("Send").click();
    harness.step();
    harness.step();
}

#[test]
fn a_manual_ticket_is_confirmed_and_the_followers_hold_it_and_the_table_shows_it() {
    let engine = start_engine();
    let mut harness = connected_app(&engine);
    assert_eq!(harness.query_all_by_label_contains("1 pos").count(), 0, "nothing held yet");
    // The platform and the drawdown limit come from the configuration in force.
    assert!(harness.query_by_label_contains("/ 2.00%").is_some(), "f1's limit from [risk.prop]");

    open_ticket(&mut harness, "ES", "Sell", "1");
    // The confirmation names the order, the source and its followers from the configuration.
    assert!(
        harness.query_by_label_contains("Send SELL 1 ES at market as source algo (followers: f1, f2, f3)").is_some()
    );
    assert_eq!(engine.holds("f1", "ES"), Qty::ZERO, "nothing is sent before the confirmation");
    harness.get_by_label("Confirm").click();
    harness.step();

    wait_until(&mut harness, "the ticket accepted", |h| h.query_by_label_contains("Accepted as signal").is_some());
    let deadline = Instant::now() + WAIT;
    while [engine.holds("f1", "ES"), engine.holds("f2", "ES"), engine.holds("f3", "ES")] != [q("-1"), q("-2"), q("-1")]
    {
        assert!(Instant::now() < deadline, "the followers never held the copies");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The accounts table shows each follower's open position.
    wait_until(&mut harness, "three rows with one open position", |h| {
        h.query_all_by_label_contains("1 pos ·").count() == 3
    });
    harness.get_by_label("Close window").click();
    harness.step();
    // Selecting f2 shows its position at twice the size (its link's multiplier).
    harness.get_by_label("f2").click();
    harness.step();
    wait_until(&mut harness, "f2's position listed", |h| h.query_by_label("Positions (1)").is_some());
    let f2 = harness.state().model.accounts.values().find(|r| r.state.name == "f2").unwrap().state.id;
    let held: Vec<_> = harness.state().model.positions_of(f2).map(|p| (p.side, p.qty)).collect();
    assert_eq!(held, [(Side::Sell, q("2").raw())], "twice the size, by its link's multiplier");
    // The copy status of the signal is folded per follower.
    wait_until(&mut harness, "the signal's copy status", |h| {
        h.state().model.signals.values().any(|s| s.counts().filled == 3)
    });
    // The signal's own event says what it asked, in the signals table.
    wait_until(&mut harness, "the signal's own event in the table", |h| h.query_by_label("open sell 1 ES").is_some());

    // The kill switch says what it will do, then pauses and flattens everything.
    harness.get_by_label("Kill switch").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("1. Every account is paused").is_some());
    harness.get_by_label("Confirm").click();
    harness.step();
    let deadline = Instant::now() + WAIT;
    while [engine.holds("f1", "ES"), engine.holds("f2", "ES"), engine.holds("f3", "ES")] != [Qty::ZERO; 3] {
        assert!(Instant::now() < deadline, "the kill switch did not flatten the followers");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(&mut harness, "every row paused and flat", |h| {
        h.query_all_by_label("paused").count() >= 3 && h.query_all_by_label_contains("0 pos ·").count() == 3
    });
    // Paused for real: the next order of the source is skipped on every follower.
    let signal = engine.runtime.block_on(async {
        let client = Client::connect(engine.client_config(DESK)).await.unwrap();
        let key = client.next_position_key();
        let signal = client.submit(&Order::market(key, "ES", Side::Buy, "1").unwrap().into_ticket()).await.unwrap();
        client.close().await;
        signal.0
    });
    wait_until(&mut harness, "the next signal skipped by all three", |h| {
        h.state().model.signals.get(&signal).is_some_and(|s| s.counts().skipped == 3)
    });
    assert_eq!([engine.holds("f1", "ES"), engine.holds("f2", "ES"), engine.holds("f3", "ES")], [Qty::ZERO; 3]);
}

#[test]
fn pausing_an_account_asks_first_then_the_table_shows_it_paused() {
    let engine = start_engine();
    let mut harness = connected_app(&engine);
    assert!(harness.query_by_label("paused").is_none());
    harness.get_by_label("f3").click();
    harness.step();
    harness.get_by_label("Pause account").click();
    harness.step();
    harness.step();
    // The dialog says what will happen, and nothing happens until it is confirmed.
    assert!(harness.query_by_label_contains("f3 stops taking new copies").is_some());
    assert!(!paused(&engine, "f3"));
    harness.get_by_label("Confirm").click();
    harness.step();
    wait_until(&mut harness, "f3 shown paused", |h| h.query_all_by_label("paused").count() >= 1);
    assert!(paused(&engine, "f3"), "the engine paused f3");
    assert!(!paused(&engine, "f1") && !paused(&engine, "f2"), "and only f3");
    let row = &harness.state().model.accounts.values().find(|r| r.state.name == "f3").unwrap();
    assert!(row.state.paused);
    assert!(harness.query_by_label_contains("pause f3: done").is_some(), "the outcome is reported");

    // Cancelling sends nothing.
    harness.get_by_label("Resume account").click();
    harness.step();
    harness.step();
    harness.get_by_label("Cancel").click();
    harness.step();
    std::thread::sleep(Duration::from_millis(300));
    harness.step();
    assert!(paused(&engine, "f3"), "a cancelled resume changes nothing");
}

#[test]
fn a_refused_ticket_shows_the_engines_message_verbatim() {
    let engine = start_engine();
    // What the engine answers to this order, asked directly through the SDK.
    let expected = engine.runtime.block_on(async {
        let client = Client::connect(engine.client_config(DESK)).await.unwrap();
        let key = client.next_position_key();
        let refused = client.submit(&Order::market(key, "GC", Side::Buy, "1").unwrap().into_ticket()).await;
        client.close().await;
        match refused {
            Err(SdkError::Server(reply)) => reply.message,
            other => panic!("the engine should refuse a symbol the source does not trade: {other:?}"),
        }
    });
    let mut harness = connected_app(&engine);
    // A field the model cannot parse is refused locally, and nothing is sent.
    open_ticket(&mut harness, "GC", "Buy", "1x");
    assert!(harness.query_by_label("Not sent, a field is wrong:").is_some());
    assert!(harness.query_by_label_contains("quantity:").is_some());
    assert!(harness.query_by_label("Confirm").is_none(), "no confirmation for an invalid ticket");

    harness.get_by_label("Quantity").click();
    harness.step();
    harness.key_press(egui::Key::Backspace);
    harness.step();
    harness.get_by_label("Send").click();
    harness.step();
    harness.step();
    harness.get_by_label("Confirm").click();
    harness.step();
    wait_until(&mut harness, "the refusal", |h| h.query_by_label_contains("Refused by the engine").is_some());
    assert!(harness.query_by_label(&expected).is_some(), "the engine's message verbatim: {expected}");
    assert!(expected.contains("GC"), "{expected}");
}

#[test]
fn the_connection_bar_says_connected_reconnecting_with_the_reason_and_failed() {
    let mut engine = start_engine();
    let mut harness = connected_app(&engine);
    assert!(harness.query_by_label_contains("connected as Admin").is_some());

    // The engine goes away: the bar says the app is reconnecting, and why.
    let listen = engine.stop();
    wait_until(&mut harness, "reconnecting shown", |h| h.query_by_label_contains("reconnecting: ").is_some());
    assert!(matches!(harness.state().conn_state(), ConnState::Reconnecting { reason } if !reason.is_empty()));
    // It comes back on the same address: connected again, from a fresh snapshot of the new run.
    let snapshots = harness.state().model.snapshots;
    engine.restart(&listen);
    wait_until(&mut harness, "connected again with a fresh snapshot", |h| {
        h.query_by_label_contains("connected as Admin").is_some() && h.state().model.snapshots > snapshots
    });
    assert_eq!(harness.state().model.accounts.len(), 3);

    // A token the engine does not know: no session, and trying again cannot help.
    let engine = start_engine();
    let mut app = ManagerApp::new(None);
    app.connection.profile = profile(&engine);
    app.connect_with_token("not-a-known-token-0123456789".into(), None);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_ui_state(|ui, app: &mut ManagerApp| app.show(ui), app);
    wait_until(&mut harness, "failed shown", |h| h.query_by_label_contains("failed: unauthorized").is_some());
}
