//! Frame time of the Log Viewer with 200,000 lines held and 10,000 lines a minute arriving,
//! run headlessly (egui without a window: layout and tessellation, no GPU).
//!
//! ```text
//! cargo run -p mirror-logs --example logs_frame_time [-- --frames 1200]
//! cargo run --release -p mirror-logs --example logs_frame_time
//! ```
//!
//! The lines are synthetic (a benchmark, not a display): the engine's stream shape — each
//! copy's order and copy-status events followed by its log line — fed through the same fold
//! the network updates go through. Frames are simulated at 60 per second, so 10,000 lines a
//! minute is 2.8 lines per frame; each frame's time is its update plus the whole UI pass and
//! tessellation.

#![allow(clippy::print_stdout)]

use std::time::Instant;

use hdrhistogram::Histogram;
use mirror_logs::{AppOptions, LogsApp};
use mirror_sdk::{
    AccountState, CopyState, CopyStatus, Delta, DeltaEvent, Deltas, LogLevel, LogLine, OrderState, OrderStatus,
    StateUpdate,
};

const HELD: u64 = 200_000;
const LINES_PER_MINUTE: u64 = 10_000;
const FPS: u64 = 60;
const ACCOUNTS: u32 = 20;

struct Feed {
    seq: u64,
    line: u64,
}

impl Feed {
    /// The events of `count` lines: every fourth a copy with its order and copy status.
    fn deltas(&mut self, count: u64) -> StateUpdate {
        let mut events = Vec::new();
        for _ in 0..count {
            let n = self.line;
            self.line += 1;
            let account = 1 + u32::try_from(n % u64::from(ACCOUNTS)).unwrap_or(0);
            let signal = 1_795_000_000_000_000 + n / 40;
            let mono_ns = 1_000_000_000 + n * 6_000_000;
            let text = if n.is_multiple_of(4) {
                events.push(DeltaEvent::Order(OrderState {
                    account,
                    client_id: format!("m{signal}.{account}.0"),
                    signal,
                    symbol: "ES".into(),
                    side: None,
                    position: None,
                    qty: 100_000_000,
                    filled: 0,
                    status: OrderStatus::Submitted,
                    reason: String::new(),
                }));
                events.push(DeltaEvent::Copy(CopyStatus {
                    account,
                    signal,
                    state: CopyState::Copied,
                    detail: format!("m{signal}.{account}.0"),
                }));
                format!("f{account:03}: copied Buy 1 ES as m{signal}.{account}.0")
            } else {
                format!("f{account:03}: position {n} ES 1 (Opened) after a partial fill of the leader's order")
            };
            let level = if n.is_multiple_of(97) { LogLevel::Warn } else { LogLevel::Info };
            events.push(DeltaEvent::Log(LogLine { level, account, signal, text, mono_ns }));
        }
        let first_seq = self.seq + 1;
        self.seq += events.len() as u64;
        let events = events.into_iter().zip(first_seq..).map(|(event, seq)| Delta { seq, event }).collect();
        StateUpdate::Deltas(Deltas { epoch: 1, first_seq, last_seq: self.seq, events })
    }

    fn accounts(&mut self) -> StateUpdate {
        let events: Vec<DeltaEvent> = (1..=ACCOUNTS)
            .map(|id| {
                DeltaEvent::Account(AccountState {
                    id,
                    name: format!("f{id:03}"),
                    balance: 0,
                    equity: 0,
                    positions: 0,
                    live_orders: 0,
                    mode: "normal".into(),
                    paused: false,
                    connected: true,
                })
            })
            .collect();
        let first_seq = self.seq + 1;
        self.seq += events.len() as u64;
        let events = events.into_iter().zip(first_seq..).map(|(event, seq)| Delta { seq, event }).collect();
        StateUpdate::Deltas(Deltas { epoch: 1, first_seq, last_seq: self.seq, events })
    }
}

fn input(frame: u64) -> egui::RawInput {
    egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1560.0, 940.0))),
        time: Some(frame as f64 / FPS as f64),
        ..Default::default()
    }
}

/// One frame: the UI pass and its tessellation; how long it took, µs.
fn frame(ctx: &egui::Context, app: &mut LogsApp, n: u64) -> u64 {
    let started = Instant::now();
    let mut output = ctx.run_ui(input(n), |ui| app.show(ui));
    // No GPU here: the font atlas uploads a renderer would apply are dropped.
    output.textures_delta.clear();
    let primitives = ctx.tessellate(std::mem::take(&mut output.shapes), output.pixels_per_point);
    std::hint::black_box(primitives);
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

/// Lines due by the end of frame `n` at the feed rate.
fn due(n: u64) -> u64 {
    n * LINES_PER_MINUTE / (60 * FPS)
}

fn measure(name: &str, ctx: &egui::Context, app: &mut LogsApp, feed: &mut Feed, frames: u64, n: &mut u64) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut fed = 0;
    for k in 0..frames {
        let lines = due(k + 1) - due(k);
        let started = Instant::now();
        if lines > 0 {
            app.apply_update(&feed.deltas(lines), 0);
            fed += lines;
        }
        let update_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        histogram.saturating_record(update_us + frame(ctx, app, *n));
        *n += 1;
    }
    let (shown, held) = app.counts();
    println!(
        "{name:<32} frames {frames:>5}  lines fed {fed:>4}  rows {shown:>7} of {held:>7}  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );
}

fn main() {
    let frames: u64 =
        std::env::args().skip_while(|a| a != "--frames").nth(1).and_then(|v| v.parse().ok()).unwrap_or(600);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("mirror-logs frame time ({profile}), {HELD} lines held, {LINES_PER_MINUTE} lines/min at {FPS} fps");
    let mut app = LogsApp::new(AppOptions { settings_path: None, ..AppOptions::default() });
    let ctx = egui::Context::default();
    let mut feed = Feed { seq: 0, line: 0 };
    app.apply_update(&feed.accounts(), 1_800_000_000_000_000_000);
    let started = Instant::now();
    let mut left = HELD;
    while left > 0 {
        let batch = left.min(4_096);
        app.apply_update(&feed.deltas(batch), 1_800_000_000_000_000_000);
        left -= batch;
    }
    println!("filled {HELD} lines in {:.0} ms", started.elapsed().as_secs_f64() * 1e3);
    let mut n = 0;
    let first = frame(&ctx, &mut app, n);
    n += 1;
    println!("first frame (index of 200,000 lines built): {:.1} ms", ms(first));
    measure("following the tail, no filter", &ctx, &mut app, &mut feed, frames, &mut n);
    app.set_text_filter("COPIED BUY");
    let rebuild = frame(&ctx, &mut app, n);
    n += 1;
    println!("text filter set (one rebuild over 200,000 lines): {:.1} ms", ms(rebuild));
    measure("text filter `COPIED BUY`", &ctx, &mut app, &mut feed, frames, &mut n);
    app.show_timeline(1_795_000_000_000_000 + feed.line / 40);
    measure("filter + a signal's timeline", &ctx, &mut app, &mut feed, frames, &mut n);
}
