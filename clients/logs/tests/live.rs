//! The viewer against an engine with its QUIC gateway in this process: an order sent through
//! the SDK shows up as the followers' copy lines, and the signal's timeline lists every
//! follower (a skip included).

use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mirror_logs::{AppOptions, ConnState, LogsApp};
use mirror_sdk::{Client, Order, Side};
use mirror_testkit::{ENGINE, ES, InProcessEngine, NQ, WAIT};

const TRADER: &str = "trader-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";

/// The simulated broker answers after 1 to 3 ms, so that a copy's hops are apart in time.
const SIM: &str = "
[sim]
tick_ms = 0
latency_min_ms = 1
latency_max_ms = 3
slippage_ticks_max = 0
";

/// The configuration after the shared blocks.
const REST: &str = r#"
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
"#;

fn start_engine() -> InProcessEngine {
    InProcessEngine::start(&format!("{ENGINE}{SIM}{ES}{NQ}{REST}"), &[("GW_TRADER", TRADER), ("GW_VIEWER", VIEWER)])
}

/// Steps the UI until `done` holds (the network thread fills the app meanwhile).
fn step_until(harness: &mut Harness<'_, LogsApp>, what: &str, mut done: impl FnMut(&mut Harness<'_, LogsApp>) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        harness.step();
        if done(harness) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {WAIT:?}; the connection: {:?}",
            harness.state().connection()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_order_sent_through_the_sdk_shows_its_copies_and_every_followers_timeline() {
    let engine = start_engine();

    let mut app = LogsApp::new(AppOptions { settings_path: None, ..AppOptions::default() });
    app.connect_config(engine.client_config(VIEWER));
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1560.0, 940.0))
        .build_ui_state(|ui, app: &mut LogsApp| app.show(ui), app);
    step_until(&mut harness, "connected", |h| matches!(h.state().connection(), ConnState::Connected { .. }));
    assert!(harness.query_by_label_contains("connected to 127.0.0.1:").is_some());
    step_until(&mut harness, "the first snapshot", |h| h.state().stream_position().is_some());

    // An NQ order: copied to f1 and f2, skipped on f3 (NQ denied there).
    let signal = engine.runtime.block_on(async {
        let bot = Client::connect(engine.client_config(TRADER)).await.unwrap();
        let key = bot.next_position_key();
        let signal = bot.submit(&Order::market(key, "NQ", Side::Buy, "1").unwrap().into_ticket()).await.unwrap();
        bot.close().await;
        signal.0
    });
    let signal_text = signal.to_string();
    step_until(&mut harness, "the copy lines", |h| {
        h.query_all_by_label_contains("copied buy 1 NQ").count()
            + h.query_all_by_label_contains("copied buy 2 NQ").count()
            >= 2
            && h.query_all_by_label_contains(" filled ").count() >= 2
    });
    // Account names come from the accounts topic.
    assert!(harness.query_all_by_label("f1").count() >= 1);
    assert!(harness.query_all_by_label_contains("skipped").count() >= 1, "f3's skip is a line too");

    // Clicking the signal opens its timeline: every follower, each hop timed.
    harness.get_all_by_label(&signal_text).next().expect("the signal is a link in the table").click();
    step_until(&mut harness, "the timeline", |h| h.query_by_label_contains("3 followers").is_some());
    assert!(harness.query_by_label_contains(&format!("Signal {signal}: 3 followers")).is_some());
    // The stream carried the signal itself: +0 is the engine taking it, and it is a line too.
    assert!(harness.query_by_label(&format!("Signal {signal} taken by the engine at +0")).is_some());
    assert!(harness.query_all_by_label_contains("signal taken: open buy 1 NQ").count() >= 1);
    for follower in ["f1", "f2", "f3"] {
        // In the table column, the timeline's drawing has no text nodes: count the grid's cells.
        assert!(harness.query_all_by_label(follower).count() >= 2, "{follower} in the timeline table");
    }
    assert_eq!(harness.query_all_by_label("skipped").count(), 1, "f3's skip is a hop");
    assert!(harness.query_all_by_label("filled").count() >= 2, "f1's and f2's fills are hops");
    assert!(harness.query_all_by_label("copied").count() >= 2);

    // Filtering by the signal leaves only its lines.
    harness.get_by_role_and_label(Role::TextInput, "Signal").click();
    harness.step();
    harness.get_by_role_and_label(Role::TextInput, "Signal").type_text(&signal_text);
    harness.step();
    harness.step();
    let (shown, held) = harness.state_mut().counts();
    assert!(shown >= 5 && shown <= held, "{shown} of {held}");
    assert!(harness.query_by_label(&format!("{shown} of {held} lines")).is_some());

    drop(harness);
}

#[test]
fn a_lost_engine_shows_reconnecting_with_the_reason_and_the_viewer_comes_back() {
    let mut engine = start_engine();
    let addr = engine.gateway_address();
    let config = engine.client_config(VIEWER);

    let mut app = LogsApp::new(AppOptions { settings_path: None, ..AppOptions::default() });
    app.connect_config(config);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1560.0, 940.0))
        .build_ui_state(|ui, app: &mut LogsApp| app.show(ui), app);
    step_until(&mut harness, "the first snapshot", |h| h.state().stream_position().is_some());

    engine.stop();
    // Two failed attempts: the old engine is gone for good (an attempt during its shutdown may
    // still have reached it).
    step_until(
        &mut harness,
        "reconnecting",
        |h| matches!(h.state().connection(), ConnState::Reconnecting { attempt, .. } if *attempt >= 2),
    );
    let ConnState::Reconnecting { reason, .. } = harness.state().connection().clone() else { unreachable!() };
    assert!(!reason.is_empty());
    assert!(harness.query_by_label_contains(&format!("reconnecting to {addr} (attempt ")).is_some(), "{reason}");

    // The engine back on the same address, with the same certificate: the viewer resumes by
    // itself, and says the stream restarted from a snapshot (a new epoch).
    engine.restart(&addr);
    step_until(
        &mut harness,
        "reconnected",
        |h| matches!(h.state().connection(), ConnState::Connected { reconnects, .. } if *reconnects >= 1),
    );
    step_until(&mut harness, "the gap shown", |h| h.query_by_label_contains("1 gap:").is_some());
    assert!(harness.query_by_label_contains("ResumeUnavailable").is_some());
    assert!(harness.query_by_label_contains("×)").is_some(), "the bar counts reconnections");

    drop(harness);
}
