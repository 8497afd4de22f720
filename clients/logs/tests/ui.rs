//! The window driven by its accessible labels (egui_kittest, no display): opening the fixture
//! file shows its lines; a text filter and a level filter narrow the rows; damaged lines are
//! reported; a signal's timeline opens from the table; the CSV export writes the rows shown.

use std::path::Path;
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mirror_logs::{AppOptions, LogsApp};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/engine-demo.jsonl");

fn harness(options: AppOptions) -> Harness<'static, LogsApp> {
    let app = LogsApp::new(AppOptions { settings_path: None, ..options });
    Harness::builder().with_size(egui::vec2(1560.0, 940.0)).build_ui_state(|ui, app: &mut LogsApp| app.show(ui), app)
}

/// Steps until the file read in the background is in.
fn wait_loaded(harness: &mut Harness<'_, LogsApp>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.state().is_loading() {
        assert!(Instant::now() < deadline, "the file was not read in time");
        std::thread::sleep(Duration::from_millis(10));
        harness.step();
    }
    harness.step();
    harness.step();
}

fn type_into(harness: &mut Harness<'_, LogsApp>, field: &str, text: &str) {
    harness.get_by_role_and_label(Role::TextInput, field).click();
    harness.step();
    harness.get_by_role_and_label(Role::TextInput, field).type_text(text);
    harness.step();
    harness.step();
}

#[test]
fn opening_the_fixture_shows_its_lines() {
    let mut harness = harness(AppOptions::default());
    assert!(harness.query_by_label("0 of 0 lines").is_some());
    type_into(&mut harness, "Log file", FIXTURE);
    harness.get_by_label("Open").click();
    harness.step();
    wait_loaded(&mut harness);
    assert!(harness.query_by_label("320 of 320 lines").is_some());
    assert!(harness.query_by_label("File: engine-demo.jsonl").is_some());
    // The first lines are on screen: the time, level and text of line 1.
    assert!(harness.query_all_by_label("03:50:45.620907").next().is_some());
    assert!(harness.query_all_by_label("no previous snapshot found").next().is_some());
    assert!(harness.query_by_label_contains("320 lines read").is_some());
}

#[test]
fn a_text_filter_and_a_level_narrow_the_rows() {
    let mut harness = harness(AppOptions { file: Some(FIXTURE.into()), ..AppOptions::default() });
    wait_loaded(&mut harness);
    assert!(harness.query_by_label("320 of 320 lines").is_some());

    type_into(&mut harness, "Text", "gbpusd IS NOT");
    assert!(harness.query_by_label("1 of 320 lines").is_some(), "one skip names the allow list");
    assert!(harness.query_all_by_label_contains("GBPUSD is not on the link's allow list").next().is_some());

    harness.get_by_label("Clear filters").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("320 of 320 lines").is_some());

    harness.get_by_role_and_label(Role::ComboBox, "Level").click();
    harness.step();
    harness.step();
    harness.get_by_label("INFO and above").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label("68 of 320 lines").is_some());
    assert!(harness.query_all_by_label("DEBUG").next().is_none(), "no debug row is shown");

    // Filters combine: INFO and above, and the text.
    type_into(&mut harness, "Text", "copied");
    assert!(harness.query_by_label("16 of 320 lines").is_some());
}

#[test]
fn damaged_lines_are_reported_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[16] = "{\"timestamp\":\"2026-11-24T03:50:45.6";
    lines[40] = "not json at all";
    lines[41] = "{\"level\":\"INFO\",\"message\":\"no time\"}";
    let path = dir.path().join("damaged.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let mut harness = harness(AppOptions { file: Some(path), ..AppOptions::default() });
    wait_loaded(&mut harness);
    assert!(harness.query_by_label("317 of 317 lines").is_some());
    // The first three are named (all of them in the tooltip).
    let report = harness.query_by_label_contains("3 lines could not be read: line 17: not JSON: EOF while parsing");
    assert!(report.is_some());
    assert!(harness.query_by_label_contains("; line 41: not JSON: expected ").is_some());
    assert!(harness.query_by_label_contains("; line 42: no `timestamp` field").is_some());
}

#[test]
fn a_signal_opens_its_timeline_and_the_export_writes_the_rows_shown() {
    let mut harness = harness(AppOptions { file: Some(FIXTURE.into()), ..AppOptions::default() });
    wait_loaded(&mut harness);
    type_into(&mut harness, "Text", "not on the link's allow list");
    assert!(harness.query_by_label("1 of 320 lines").is_some());
    harness.get_by_label("1795492245669970").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("Signal 1795492245669970: 10 followers, 28 hops").is_some());
    assert_eq!(harness.query_all_by_label("filled").count(), 9);
    assert_eq!(harness.query_all_by_label("skipped").count(), 1);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows.csv");
    let field = harness.get_by_role_and_label(Role::TextInput, "CSV file");
    field.click();
    harness.step();
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.step();
    harness.get_by_role_and_label(Role::TextInput, "CSV file").type_text(&out.display().to_string());
    harness.step();
    harness.get_by_label("Export CSV").click();
    harness.step();
    harness.step();
    assert!(harness.query_by_label_contains("1 rows written to").is_some());
    let csv = std::fs::read_to_string(Path::new(&out)).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains(",fx-eur-longs,1795492245669970,skipped action=open"), "{csv}");
}
