//! The Map Editor driven by its accessible labels (egui_kittest, headless) against an engine
//! started in this process from a configuration file, over real QUIC on loopback: a link drawn
//! in the graph is checked, shown as a change, applied live after confirmation, and then
//! copies; what the engine refuses is shown with the engine's words.

use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable};
use mirror_map::{Change, Connection, MapApp, Profile};
use mirror_model::Qty;
use mirror_sdk::{Client, Order, Side};
use mirror_testkit::{ENGINE, ES, InProcessEngine, SIM_INSTANT, WAIT};

const DESK: &str = "desk-token-0123456789";

/// The configuration after its first comment and the shared blocks.
const REST: &str = r#"
[instruments.XAUUSD]
kind = "cfd"
contract_size = 100
tick_size = "0.01"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 20
price = "2350.00"

[[sources]]
name = "algo"
symbols = ["ES"]

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
name = "gold"
platform = "sim"
mode = "netting"
balance = 100000
instruments = ["XAUUSD"]

[[links]]
leader = "algo"
follower = "f1"

[[gateway.tokens]]
name = "desk"
token = "env:GW_DESK"
role = "admin"
source = "algo"
"#;

/// The desk's configuration, its first line a comment that a live apply must keep.
fn config() -> String {
    format!("# The desk's copy map.\n{ENGINE}{SIM_INSTANT}{ES}{REST}")
}

fn start_engine() -> InProcessEngine {
    InProcessEngine::start(&config(), &[("GW_DESK", DESK)])
}

fn profile(engine: &InProcessEngine) -> Profile {
    engine.desk_profile("MIRROR_TEST_DESK_TOKEN")
}

/// Buys `qty` ES as the algo source, through the SDK.
fn buy_es(engine: &InProcessEngine, qty: &str) {
    engine.runtime.block_on(async {
        let client = tokio::time::timeout(WAIT, Client::connect(engine.client_config(DESK))).await.unwrap().unwrap();
        let key = client.next_position_key();
        let order = Order::market(key, "ES", Side::Buy, qty).unwrap().into_ticket();
        tokio::time::timeout(WAIT, client.submit(&order)).await.unwrap().unwrap();
        client.close().await;
    });
}

/// The editor, connected, with the engine's configuration read.
fn connected_editor(engine: &InProcessEngine) -> Harness<'static, MapApp> {
    let mut app = MapApp::new(None);
    app.connection.profile = profile(engine);
    app.connect_with_token(DESK.into(), None);
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_ui_state(|ui, app: &mut MapApp| app.show(ui), app);
    wait_until(&mut harness, "connected, with the engine's configuration", |app| {
        matches!(app.connection_state(), Connection::Connected { .. }) && app.running().is_some()
    });
    harness
}

fn wait_until(harness: &mut Harness<'_, MapApp>, what: &str, mut done: impl FnMut(&MapApp) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        harness.step();
        if done(harness.state()) {
            harness.step();
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting: {what}; {:?}; messages {:?}",
            harness.state().connection_state(),
            harness.state().messages()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Drags from `leader`'s port onto `follower`'s node, as a mouse would.
fn draw_link(harness: &mut Harness<'_, MapApp>, leader: &str, follower: &str) {
    let from = harness.get_by_label(&format!("link from {leader}")).rect().center();
    let to = harness.get_by_label(&format!("account {follower}")).rect().center();
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    harness.hover_at(from + (to - from) * 0.5);
    harness.step();
    harness.hover_at(to);
    harness.step();
    harness.drop_at(to);
    harness.step();
    harness.step();
}

fn apply(harness: &mut Harness<'_, MapApp>) {
    harness.get_by_label("Apply to engine…").click();
    harness.step();
    harness.step();
    harness.get_by_label("Apply live").click();
    harness.step();
}

#[test]
fn a_link_drawn_in_the_editor_becomes_live() {
    let engine = start_engine();
    let mut harness = connected_editor(&engine);
    assert!(harness.query_by_label("link algo -> f1").is_some(), "the running link is drawn");
    assert!(harness.query_by_label_contains("in step with the engine").is_some());

    draw_link(&mut harness, "algo", "f2");
    let app = harness.state();
    assert_eq!(app.changes(), [Change::LinkAdded("algo -> f2".into())], "{:?}", app.messages());
    assert!(harness.query_by_label("link algo -> f2").is_some(), "the new link is drawn");
    assert!(harness.query_by_label_contains("1 change(s) not applied").is_some());
    // The side panel edits the new link (selected as it was drawn): twice the size.
    harness.get_by_label("Sizing ratio (optional)").click();
    harness.step();
    harness.get_by_label("Sizing ratio (optional)").type_text("2");
    harness.step();
    harness.get_by_label("Save rules").click();
    harness.step();
    assert!(harness.state().doc().unwrap().text().contains("sizing = { mode = \"multiplier\", ratio = 2 }"));
    // Undo takes the rule back, redo puts it again.
    harness.get_by_label("Undo").click();
    harness.step();
    assert!(!harness.state().doc().unwrap().text().contains("ratio = 2"));
    harness.get_by_label("Redo").click();
    harness.step();
    assert!(harness.state().doc().unwrap().text().contains("ratio = 2"));
    // The confirmation lists the change; applying makes it the engine's.
    harness.get_by_label("Apply to engine…").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("link added: algo -> f2").is_some(), "the confirmation names the change");
    harness.get_by_label("Apply live").click();
    harness.step();
    wait_until(&mut harness, "applied and in step", |app| {
        app.messages().iter().any(|(ok, m)| *ok && m.starts_with("applied live")) && !app.has_changes()
    });
    assert!(harness.query_by_label_contains("in step with the engine").is_some());
    let on_disk = std::fs::read_to_string(engine.file()).unwrap();
    assert!(on_disk.contains("leader = \"algo\"\nfollower = \"f2\""), "{on_disk}");
    assert!(on_disk.starts_with("# The desk's copy map."), "comments kept");

    // Live: an algo order now reaches f2 too, at twice the size.
    buy_es(&engine, "1");
    let deadline = Instant::now() + WAIT;
    while (engine.holds("f1", "ES"), engine.holds("f2", "ES")) != (Qty::parse("1").unwrap(), Qty::parse("2").unwrap()) {
        assert!(Instant::now() < deadline, "f1 {} f2 {}", engine.holds("f1", "ES"), engine.holds("f2", "ES"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn checks_stop_an_apply_and_the_engine_refusal_is_shown() {
    let engine = start_engine();
    let mut harness = connected_editor(&engine);
    // ES futures into an account that trades only gold: refused by the editor's own check.
    draw_link(&mut harness, "algo", "gold");
    let errors: Vec<String> = harness.state().findings().iter().map(|f| f.message.clone()).collect();
    assert!(errors.iter().any(|e| e.contains("futures/CFD mixing without a mapping")), "{errors:?}");
    assert!(harness.query_by_label_contains("error: algo -> gold: futures/CFD mixing").is_some());
    // The button is there but disabled, and clicking it opens nothing (two frames, as an
    // allowed apply needs to show its confirmation).
    assert!(harness.get_by_label("Apply to engine…").accesskit_node().is_disabled(), "no apply with an error");
    harness.get_by_label("Apply to engine…").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("Apply live").is_none(), "no apply with an error");
    harness.get_by_label("Undo").click();
    harness.step();
    assert!(harness.state().findings().is_empty());

    // A change the engine cannot make live: imported from a file, refused whole with its words.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edited.toml");
    let text =
        harness.state().running().unwrap().text().replace(
            "balance = 100000\n\n[[accounts]]\nname = \"f2\"",
            "balance = 90000\n\n[[accounts]]\nname = \"f2\"",
        );
    std::fs::write(&file, &text).unwrap();
    harness.state_mut().open_file(Path::new(&file));
    harness.step();
    assert_eq!(harness.state().changes(), [Change::Section("accounts".into())]);
    apply(&mut harness);
    wait_until(&mut harness, "refused", |app| {
        app.messages().iter().any(|(ok, m)| !ok && m.starts_with("the engine refused it"))
    });
    let refusal = harness.state().messages().last().unwrap().1.clone();
    assert!(refusal.contains("accounts[0]"), "names what cannot change: {refusal}");
    assert!(harness.state().has_changes(), "the edit is kept to fix");
    assert!(!std::fs::read_to_string(engine.file()).unwrap().contains("balance = 90000"), "nothing applied");
}
