//! Frame time of the Map Editor with 1,000 accounts, headless: ten leaders with 99 followers
//! each (990 links), every frame drawing the whole graph (layout, 1,000 nodes, 990 curves and
//! their labels, the side panel with a link's rules, the problems list) + tessellation, no GPU.
//! Then the time of one edit (a link added to the TOML document, the map read again, every
//! check rerun).
//! Prints p50 / p99 / max in ms.
//!
//! ```bash
//! cargo run --release -p mirror-map --example map_frame_time -- [frames]
//! ```

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Instant;

use egui_kittest::Harness;
use hdrhistogram::Histogram;
use mirror_map::MapApp;

const LEADERS: usize = 10;
const FOLLOWERS_PER_LEADER: usize = 99;

fn config() -> String {
    let mut text = String::from(
        "[instruments.ES]\nkind = \"future\"\n\n[instruments.MES]\nkind = \"future\"\n\n[instruments.NQ]\nkind = \"future\"\n",
    );
    for leader in 0..LEADERS {
        let _ = write!(
            text,
            "\n[[accounts]]\nname = \"lead-{leader:02}\"\nplatform = \"sim\"\ninstruments = [\"ES\", \"NQ\"]\n"
        );
        for follower in 0..FOLLOWERS_PER_LEADER {
            let _ = write!(
                text,
                "\n[[accounts]]\nname = \"f-{leader:02}-{follower:02}\"\nplatform = \"sim\"\ninstruments = [\"ES\", \"NQ\", \"MES\"]\n"
            );
        }
    }
    for leader in 0..LEADERS {
        for follower in 0..FOLLOWERS_PER_LEADER {
            let _ = write!(
                text,
                "\n[[links]]\nleader = \"lead-{leader:02}\"\nfollower = \"f-{leader:02}-{follower:02}\"\nsizing = {{ mode = \"multiplier\", ratio = \"0.{}\" }}\n",
                follower % 9 + 1
            );
        }
    }
    text
}

fn report(what: &str, histogram: &Histogram<u64>) {
    let ms = |micros: u64| micros as f64 / 1000.0;
    let _ = writeln!(
        std::io::stdout().lock(),
        "{what}: n={} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        histogram.len(),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max())
    );
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(300);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let file = dir.path().join("map.toml");
    std::fs::write(&file, config()).expect("the configuration written");
    let mut app = MapApp::new(None);
    app.open_file(&file);
    app.select_link("lead-03", "f-03-42");
    let accounts = app.doc().map_or(0, |d| d.map().nodes.len());
    let links = app.doc().map_or(0, |d| d.map().links.len());
    let _ = writeln!(std::io::stdout().lock(), "{accounts} accounts, {links} links, {frames} frames");
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_ui_state(|ui, app: &mut MapApp| app.show(ui), app);
    harness.step();
    let mut histogram = Histogram::<u64>::new(3).expect("a histogram");
    for _ in 0..frames {
        let started = Instant::now();
        harness.step();
        histogram.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)).expect("recorded");
    }
    report("frame (whole UI, 1,000 accounts)", &histogram);
    let mut edits = Histogram::<u64>::new(3).expect("a histogram");
    for n in 0..50 {
        let started = Instant::now();
        let (leader, follower) =
            (format!("lead-{:02}", n % LEADERS), format!("f-{:02}-{:02}", (n + 1) % LEADERS, n / LEADERS));
        assert!(harness.state_mut().add_link(&leader, &follower).is_some(), "{leader} -> {follower} added");
        edits.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)).expect("recorded");
    }
    report("edit (add a link: document, checks)", &edits);
}
