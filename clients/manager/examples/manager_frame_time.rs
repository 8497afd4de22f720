//! Frame time of the Trading Manager with 1,000 accounts, headless: a model with 1,000 accounts
//! (3,000 positions, orders, 10,000 log lines, equity curves, 200 signals' copy status), then N
//! frames of the whole UI (fold of a batch of 100 account deltas + layout + tessellation; no
//! GPU). Prints p50 / p99 / max frame time in ms.
//!
//! ```bash
//! cargo run -p mirror-manager --example manager_frame_time -- [frames]
//! cargo run --release -p mirror-manager --example manager_frame_time -- [frames]
//! ```

use std::io::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;
use mirror_manager::{ManagerApp, Model};
use mirror_model::{Money, Qty};
use mirror_sdk::{
    AccountState, CopyState, CopyStatus, Delta, DeltaEvent, Deltas, LatencyStats, LogLevel, LogLine, OrderState,
    OrderStatus, PositionState, Side, Snapshot, SnapshotReason, StateUpdate,
};

const ACCOUNTS: u32 = 1_000;
const T0: i64 = 1_800_000_000_000;

fn money(units: i64) -> i64 {
    Money::from_units(units).map_or(0, Money::raw)
}

fn account(id: u32, equity: i64) -> AccountState {
    AccountState {
        id,
        name: format!("acct-{id:04}"),
        balance: money(100_000),
        equity,
        positions: 3,
        live_orders: 1,
        mode: match id % 97 {
            0 => "frozen".into(),
            1 => "close-only".into(),
            _ => "normal".into(),
        },
        paused: id % 50 == 7,
        connected: id % 113 != 5,
    }
}

fn clock() -> i64 {
    T0 + 600_000
}

struct Feed {
    seq: u64,
}

impl Feed {
    fn deltas(&mut self, events: Vec<DeltaEvent>) -> StateUpdate {
        let first_seq = self.seq + 1;
        let events: Vec<Delta> = events
            .into_iter()
            .map(|event| {
                self.seq += 1;
                Delta { seq: self.seq, event }
            })
            .collect();
        StateUpdate::Deltas(Deltas { epoch: 1, first_seq, last_seq: self.seq, events })
    }
}

fn build_model() -> (Model, Feed) {
    let mut model = Model::new();
    let accounts: Vec<AccountState> = (0..ACCOUNTS).map(|id| account(id, money(100_000))).collect();
    let positions: Vec<PositionState> = (0..ACCOUNTS)
        .flat_map(|account| {
            (0..3u64).map(move |n| PositionState {
                account,
                id: u64::from(account) * 10 + n,
                symbol: ["ES", "NQ", "EURUSD"][usize::try_from(n).unwrap_or(0)].into(),
                side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
                qty: Qty::parse("2").map_or(0, Qty::raw),
                open_price: money(5_000),
                stop_loss: Some(money(4_990)),
                take_profit: None,
                open: true,
            })
        })
        .collect();
    let orders: Vec<OrderState> = (0..ACCOUNTS)
        .map(|account| OrderState {
            account,
            client_id: format!("m1.{account:x}.0"),
            signal: 1,
            symbol: "ES".into(),
            side: Some(Side::Buy),
            position: None,
            qty: money(1),
            filled: 0,
            status: OrderStatus::Accepted,
            reason: String::new(),
        })
        .collect();
    let snapshot = Snapshot {
        epoch: 1,
        seq: 1,
        reason: SnapshotReason::Initial,
        accounts,
        positions,
        orders,
        fills: vec![],
        copy: vec![],
        latency: LatencyStats::default(),
        quotes: vec![],
    };
    model.apply(T0, &StateUpdate::Snapshot(Box::new(snapshot)));
    let mut feed = Feed { seq: 1 };
    // Ten minutes of equity, one point a second per account (600 points each).
    for second in 0..600i64 {
        let events = (0..ACCOUNTS)
            .map(|id| DeltaEvent::Account(account(id, money(100_000 + (second * 7 + i64::from(id)) % 900 - 450))))
            .collect();
        let update = feed.deltas(events);
        model.apply(T0 + second * 1_000, &update);
        let stats = LatencyStats {
            fanout: mirror_sdk::LatencyStats::default().fanout,
            signals: u64::try_from(second).unwrap_or(0),
            ..LatencyStats::default()
        };
        let update = feed.deltas(vec![DeltaEvent::Latency(stats)]);
        model.apply(T0 + second * 1_000, &update);
    }
    let lines = (0..10_000u64)
        .map(|n| {
            DeltaEvent::Log(LogLine {
                level: if n % 10 == 0 { LogLevel::Warn } else { LogLevel::Info },
                account: u32::try_from(n % u64::from(ACCOUNTS)).unwrap_or(0),
                signal: 1 + n / 50,
                text: format!("acct-{:04}: copied Buy 1 ES as m{}.{:x}.0", n % u64::from(ACCOUNTS), 1 + n / 50, n),
                mono_ns: n * 1_000,
            })
        })
        .collect();
    let update = feed.deltas(lines);
    model.apply(T0 + 600_000, &update);
    let copies = (0..200u64)
        .flat_map(|signal| {
            (0..20u32).map(move |account| {
                DeltaEvent::Copy(CopyStatus {
                    account,
                    signal: 1_000 + signal,
                    state: if account % 7 == 0 { CopyState::Skipped } else { CopyState::Filled },
                    detail: String::new(),
                })
            })
        })
        .collect();
    let update = feed.deltas(copies);
    model.apply(T0 + 600_000, &update);
    (model, feed)
}

fn main() {
    let frames: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(300);
    let built = Instant::now();
    let (model, mut feed) = build_model();
    let build_ms = built.elapsed().as_millis();
    let mut app = ManagerApp::with_model(model);
    app.clock = clock;
    app.live = false;
    app.table.selected = Some(42);
    app.selected_signal = Some(1_100);
    let ctx = egui::Context::default();
    let input = |time: f64| egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1600.0, 1000.0))),
        time: Some(time),
        ..egui::RawInput::default()
    };
    // One frame: layout, then tessellation (what a renderer would upload; no GPU here).
    let frame = |app: &mut ManagerApp, time: f64| {
        let mut output = ctx.run_ui(input(time), |ui| app.show(ui));
        // Font atlas updates would go to the GPU; here they are let go on purpose.
        output.textures_delta.clear();
        ctx.tessellate(output.shapes, output.pixels_per_point).len()
    };
    // Warm-up: fonts and the first layout.
    for n in 0..5 {
        frame(&mut app, f64::from(n) / 60.0);
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).expect("histogram bounds");
    let mut frame_time = 5.0 / 60.0;
    for n in 0..frames {
        // A live frame: a batch of 100 account changes arrives and is folded, then drawn.
        let events = (0..100u32)
            .map(|k| {
                let id = (u32::try_from(n).unwrap_or(0) * 100 + k) % ACCOUNTS;
                DeltaEvent::Account(account(id, money(100_000 - i64::from(k))))
            })
            .collect();
        let update = feed.deltas(events);
        frame_time += 1.0 / 60.0;
        let started = Instant::now();
        app.model.apply(clock(), &update);
        let primitives = frame(&mut app, frame_time);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        std::hint::black_box(primitives);
        histogram.record(micros.max(1)).expect("in bounds");
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1_000.0;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "mirror-manager frame time ({profile}), {ACCOUNTS} accounts, {} positions, {} log lines, {frames} frames \
         (fold 100 deltas + UI + tessellate; model built in {build_ms} ms):",
        app.model.positions.len(),
        app.model.logs.len(),
    );
    let _ = writeln!(
        out,
        "  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(0.5),
        ms(0.99),
        histogram.max() as f64 / 1_000.0
    );
}
