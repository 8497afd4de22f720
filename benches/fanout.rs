//! Fan-out latency: a signal accepted → every follower's order handed to its connector queue.
//!
//! Runs the real engine (one shard pinned to core 1, real account actors with mixed copy rules
//! and risk limits, the real telemetry thread) for 1, 10, 100 and 1,000 followers, closed-loop:
//! submit one signal, wait for the shard to report its fan-out done, record
//! `done − accepted` from the engine's own clock. Between signals every order is answered
//! with a broker rejection (outside the timed window) so actors stay at their working size.
//!
//! Beside each row, in the same process and thread placement:
//! - the floor: a trigger through a flume mailbox to a thread on core 1 that makes as many
//!   raw `try_send`s of a 16-byte struct into bounded flume queues as there are followers;
//! - the same engine with an owned clone of the signal per follower instead of the shared
//!   archived bytes;
//! - the same engine with the intent journal on (sled on this machine's disk, write-ahead):
//!   the fan-out itself, then two durability figures: the source's acknowledgement (its
//!   signal on disk) and the release of the orders to the brokers (their inputs on disk).
//!
//! `cargo bench -p mirror-benches` (env: `MIRROR_BENCH_ITERATIONS`, default 5000;
//! `MIRROR_BENCH_FOLLOWERS`, default `1,10,100,1000`).

// A benchmark prints its table, and its counts are far below 2³².
#![allow(clippy::print_stdout, clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mirror_connector::{ConnectorError, RejectCode, RejectReason};
use mirror_engine::account::{AccountSetup, Command, Outcome, RiskLimits};
use mirror_engine::clock::{Clock, SystemClock};
use mirror_engine::journal::{Journal, JournalSettings};
use mirror_engine::router::LinkSpec;
use mirror_engine::runtime::{CorePlan, EngineBuilder, FanoutEncoding, OwnedInput, RuntimeSettings, SignalIds};
use mirror_engine::telemetry::{Stats, spawn_telemetry};
use mirror_model::{
    AccountId, AccountMode, InstrumentKind, InstrumentSpec, InstrumentTable, LeaderRef, LinkRules, Money, OpenSignal,
    OrderKind, Origin, Price, Qty, Ratio, Side, SignalAction, SizingRule, SourceId, Symbol, TimeInForce,
};
use rustc_hash::FxHashMap;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARMUP: usize = 300;

fn eurusd() -> InstrumentSpec {
    InstrumentSpec {
        symbol: Symbol::new("EURUSD").unwrap(),
        kind: InstrumentKind::Forex,
        contract_size: Qty::parse("100000").unwrap(),
        tick_size: Price::parse("0.00001").unwrap(),
        tick_value: Money::parse("1").unwrap(),
        lot_step: Qty::parse("0.01").unwrap(),
        min_qty: Qty::parse("0.01").unwrap(),
        max_qty: Qty::parse("100").unwrap(),
        digits: 5,
    }
}

/// Five kinds of followers, in turn.
fn rules(index: usize) -> LinkRules {
    let sizing = match index % 5 {
        0 => SizingRule::Multiplier { ratio: Ratio::parse("0.5").unwrap() },
        1 => SizingRule::Multiplier { ratio: Ratio::parse("2").unwrap() },
        2 => SizingRule::Fixed { qty: Qty::parse("0.3").unwrap() },
        3 => SizingRule::RiskPercent { percent: Ratio::parse("0.5").unwrap() },
        _ => SizingRule::Notional { multiplier: Ratio::ONE },
    };
    LinkRules { sizing, reverse: index % 7 == 3, max_signal_age_ms: Some(5_000), ..LinkRules::default() }
}

/// Follower `index`: a hedging EURUSD account with per-order, position and exposure limits.
fn follower(index: usize, inbound: Vec<mirror_engine::account::InboundLink>) -> AccountSetup {
    AccountSetup {
        id: AccountId(index as u32 + 10),
        name: Arc::from(format!("f{index}").as_str()),
        mode: AccountMode::Hedging,
        instruments: InstrumentTable::from_iter([eurusd()]),
        balance: Money::parse("100000").unwrap(),
        equity: Money::parse("100000").unwrap(),
        risk: RiskLimits {
            max_order_qty: Some(Qty::parse("50").unwrap()),
            max_open_positions: Some(1_000),
            max_symbol_exposure: Some(Qty::parse("1000").unwrap()),
            ..RiskLimits::default()
        },
        inbound,
        is_leader: false,
        connected: true,
        positions: Vec::new(),
    }
}

fn signal(leader: u64) -> SignalAction {
    SignalAction::Open(OpenSignal {
        leader: LeaderRef(leader),
        symbol: Symbol::new("EURUSD").unwrap(),
        side: Side::Buy,
        qty: Qty::parse("1.5").unwrap(),
        kind: OrderKind::Market,
        reference_price: Some(Price::parse("1.08508").unwrap()),
        stop_loss: Some(Price::parse("1.08").unwrap()),
        take_profit: Some(Price::parse("1.095").unwrap()),
        time_in_force: TimeInForce::Gtc,
        contract_size: Some(Qty::parse("100000").unwrap()),
        from_pending: None,
        risk_bp: None,
    })
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 10_000_000_000, 3).unwrap()
}

/// Every core of the machine, read once before any thread is pinned (a pinned thread sees
/// only its own core).
fn cores() -> &'static [core_affinity::CoreId] {
    static CORES: std::sync::OnceLock<Vec<core_affinity::CoreId>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

fn pin(core: usize) {
    if let Some(id) = cores().get(core) {
        core_affinity::set_for_current(*id);
    }
}

/// The core plan, made once before any thread is pinned.
fn core_plan() -> &'static CorePlan {
    static PLAN: std::sync::OnceLock<CorePlan> = std::sync::OnceLock::new();
    PLAN.get_or_init(|| CorePlan::new(&RuntimeSettings { shards: 1, pin_cores: true, ..RuntimeSettings::default() }))
}

/// What one engine run measured: the fan-out, and with a journal the durability figures.
struct EngineRun {
    fanout: Histogram<u64>,
    /// `submit` call → returned (the source's acknowledgement, once its signal is durable).
    ack: Option<Histogram<u64>>,
    /// Signal accepted → every order's input durable (the orders may go to the brokers).
    release: Option<Histogram<u64>>,
}

/// A fresh journal directory for one run, removed when dropped.
struct JournalDir(std::path::PathBuf);

impl JournalDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("mirror-bench-journal-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for JournalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn engine_run(followers: usize, encoding: FanoutEncoding, spin: u32, journal: bool, iterations: usize) -> EngineRun {
    let source = Origin::Source(SourceId(1));
    let (observer, done) = flume::bounded(1024);
    let stats = Stats::new();
    let names: FxHashMap<AccountId, Arc<str>> =
        (0..followers).map(|i| (AccountId(i as u32 + 10), Arc::from(format!("f{i}").as_str()))).collect();
    let settings = RuntimeSettings {
        shards: 1,
        spin_iterations: spin,
        mailbox_capacity: 65_536,
        connector_queue_capacity: 64,
        pin_cores: true,
        day_start_utc_hour: 0,
        encoding,
    };
    let plan = core_plan().clone();
    let telemetry = spawn_telemetry(names, Arc::clone(&stats), 65_536, Duration::from_secs(30), plan.clone());
    let mut builder = EngineBuilder::new(settings)
        .observer(observer)
        .stats(stats)
        .telemetry(telemetry.sink())
        .signal_ids(SignalIds::starting_at(1))
        .core_plan(plan.clone())
        .source(source, [Symbol::new("EURUSD").unwrap()]);
    let dir = JournalDir::new();
    let mut durable_journal = None;
    if journal {
        let (opened, recovery) = Journal::open(JournalSettings::in_dir(&dir.0)).expect("journal opens");
        durable_journal = Some(opened.clone());
        builder = builder.journal(opened, recovery);
    }
    for index in 0..followers {
        let id = AccountId(index as u32 + 10);
        builder = builder.account(follower(index, Vec::new())).link(LinkSpec {
            leader: source,
            follower: id,
            rules: Arc::new(rules(index)),
        });
    }
    let (engine, queues) = builder.start().expect("engine starts");
    // Like every thread that is not a shard, the bench thread stays off the shard's core.
    plan.pin_io(0);
    let handle = engine.handle();
    let mailboxes: Vec<_> = queues.iter().map(|(id, _)| handle.mailbox(*id).unwrap()).collect();
    let mut latencies = histogram();
    let (mut acks, mut releases) = (histogram(), histogram());
    let mut pending = Vec::with_capacity(followers);
    let refusal = ConnectorError::Rejected(RejectReason::new(RejectCode::Other, "benchmark"));
    for iteration in 0..WARMUP + iterations {
        let submitted = Instant::now();
        handle.submit(source, signal(iteration as u64), None, "benchmark signal").expect("valid signal");
        let acknowledged = submitted.elapsed();
        let report = done.recv().expect("shard reports");
        assert_eq!(report.orders as usize, followers, "every follower must order");
        // Write-ahead: the orders go to the brokers once their inputs are on disk.
        let mut durable_after = 0;
        for (index, (_, queue)) in queues.iter().enumerate() {
            for queued in queue.drain() {
                durable_after = durable_after.max(queued.durable_after);
                if let Command::Place(request) = queued.command {
                    let outcome = Outcome::Order { client_id: request.client_id, result: Err(refusal.clone()) };
                    pending.push((index, outcome));
                }
            }
        }
        if let Some(journal) = &durable_journal {
            journal.wait_durable(durable_after, Duration::from_secs(10)).expect("durable");
        }
        let released = handle.clock().now().mono_ns;
        if iteration >= WARMUP {
            latencies.record(report.done_mono_ns - report.accepted_mono_ns).unwrap();
            acks.record(acknowledged.as_nanos() as u64).unwrap();
            releases.record(released - report.accepted_mono_ns).unwrap();
        }
        // Untimed: refuse every order so the actors forget it, then wait for the shard.
        for (index, outcome) in pending.drain(..) {
            mailboxes[index].send_blocking(OwnedInput::Outcome(outcome)).unwrap();
        }
        for ((_, queue), mailbox) in queues.iter().zip(&mailboxes) {
            while let Ok(queued) = queue.try_recv() {
                if let Command::Place(request) = queued.command {
                    let outcome = Outcome::Order { client_id: request.client_id, result: Err(refusal.clone()) };
                    mailbox.send_blocking(OwnedInput::Outcome(outcome)).unwrap();
                }
            }
        }
        handle.accounts().expect("barrier");
    }
    engine.shutdown();
    if let Some(journal) = durable_journal {
        journal.close();
    }
    telemetry.stop();
    EngineRun { fanout: latencies, ack: journal.then_some(acks), release: journal.then_some(releases) }
}

#[derive(Clone, Copy)]
struct Small {
    _slot: u32,
    _tag: u32,
    _t: u64,
}

fn floor_run(followers: usize, iterations: usize) -> Histogram<u64> {
    let clock = Arc::new(SystemClock::new());
    let (trigger, inbox) = flume::bounded::<u64>(65_536);
    let (reported, done) = flume::bounded::<(u64, u64)>(1024);
    let queues: Vec<(flume::Sender<Small>, flume::Receiver<Small>)> =
        (0..followers).map(|_| flume::bounded(64)).collect();
    let senders: Vec<flume::Sender<Small>> = queues.iter().map(|(s, _)| s.clone()).collect();
    let worker_clock = Arc::clone(&clock);
    let worker = std::thread::spawn(move || {
        pin(1);
        loop {
            let t0 = loop {
                match inbox.try_recv() {
                    Ok(t0) => break t0,
                    Err(flume::TryRecvError::Empty) => std::hint::spin_loop(),
                    Err(flume::TryRecvError::Disconnected) => return,
                }
            };
            for (slot, sender) in senders.iter().enumerate() {
                let _ = sender.try_send(Small { _slot: slot as u32, _tag: 7, _t: t0 });
            }
            let _ = reported.send((t0, worker_clock.mono_ns()));
        }
    });
    let mut latencies = histogram();
    for iteration in 0..WARMUP + iterations {
        let t0 = clock.now().mono_ns;
        trigger.send(t0).unwrap();
        let (start, end) = done.recv().unwrap();
        if iteration >= WARMUP {
            latencies.record(end - start).unwrap();
        }
        for (_, receiver) in &queues {
            while receiver.try_recv().is_ok() {}
        }
    }
    drop(trigger);
    worker.join().unwrap();
    latencies
}

/// The copy logic alone: the same actors stepped directly, no shard, no channels. Returns the
/// time per follower of one signal, in ns (median over the iterations).
fn actor_alone(followers: usize, iterations: usize) -> Histogram<u64> {
    use mirror_engine::account::{AccountActor, Action, InboundLink, Input, Now};
    use mirror_model::Signal;
    let clock = SystemClock::new();
    let source = Origin::Source(SourceId(1));
    let mut actors: Vec<AccountActor> = (0..followers)
        .map(|index| {
            let link = InboundLink {
                link: mirror_engine::LinkId(index as u32),
                origin: source,
                rules: Arc::new(rules(index)),
            };
            AccountActor::new(follower(index, vec![link]))
        })
        .collect();
    let refusal = ConnectorError::Rejected(RejectReason::new(RejectCode::Other, "benchmark"));
    let mut out: Vec<Action> = Vec::with_capacity(64);
    let mut latencies = histogram();
    for iteration in 0..WARMUP + iterations {
        let now = clock.now();
        let signal = Signal {
            id: mirror_model::SignalId(iteration as u64 + 1),
            origin: source,
            created_unix_ms: now.unix_ms,
            accepted_mono_ns: now.mono_ns,
            leader_balance: None,
            leader_equity: None,
            action: signal(iteration as u64),
            note: "benchmark signal".into(),
        };
        let shared = mirror_wire::SharedSignal::encode(&signal).unwrap();
        let start = clock.mono_ns();
        let mut sent = Vec::with_capacity(followers);
        for (index, actor) in actors.iter_mut().enumerate() {
            let view = shared.view();
            actor.on_input(
                Now { mono_ns: start, unix_ms: now.unix_ms },
                Input::Signal { signal: &view, link: mirror_engine::LinkId(index as u32) },
                &mut out,
            );
            for action in out.drain(..) {
                if let Action::Send { command: Command::Place(request), .. } = action {
                    sent.push(request.client_id);
                }
            }
        }
        let elapsed = clock.mono_ns() - start;
        if iteration >= WARMUP {
            latencies.record(elapsed / followers as u64).unwrap();
        }
        for (actor, client_id) in actors.iter_mut().zip(sent) {
            let outcome = Outcome::Order { client_id, result: Err(refusal.clone()) };
            actor.on_input(now, Input::Outcome(outcome), &mut out);
            out.clear();
        }
    }
    latencies
}

fn micros(ns: u64) -> String {
    if ns >= 100_000 { format!("{:.0} µs", ns as f64 / 1e3) } else { format!("{:.1} µs", ns as f64 / 1e3) }
}

/// One variant's results over every round: the merged distribution, and each round's median.
struct Series {
    merged: Histogram<u64>,
    medians: Vec<u64>,
}

impl Series {
    fn new() -> Self {
        Self { merged: histogram(), medians: Vec::new() }
    }

    fn add(&mut self, round: &Histogram<u64>) {
        self.merged.add(round).unwrap();
        self.medians.push(round.value_at_quantile(0.5));
    }
}

fn row(followers: usize, variant: &str, series: &Series, floor: &Series) {
    let h = &series.merged;
    let per_follower = h.value_at_quantile(0.5) as f64 / followers as f64;
    let floor_per = floor.merged.value_at_quantile(0.5) as f64 / followers as f64;
    let (low, high) = (series.medians.iter().min().unwrap(), series.medians.iter().max().unwrap());
    println!(
        "| {followers:>5} | {variant:<26} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} – {:<8} | {:>7.0} ns | {:>6.1}× |",
        micros(h.value_at_quantile(0.5)),
        micros(h.value_at_quantile(0.99)),
        micros(h.value_at_quantile(0.999)),
        micros(h.max()),
        micros(*low),
        micros(*high),
        per_follower,
        per_follower / floor_per,
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// How the engine runs in one variant: the encoding of the fan-out, the shard's spin
/// iterations before it parks, the journal on or off.
type EngineVariant = (FanoutEncoding, u32, bool);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iterations: usize = env_or("MIRROR_BENCH_ITERATIONS", if quick { 50 } else { 2_000 });
    let rounds: usize = env_or("MIRROR_BENCH_ROUNDS", if quick { 1 } else { 3 });
    let counts: Vec<usize> = std::env::var("MIRROR_BENCH_FOLLOWERS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 100, 1_000]);
    if std::env::var_os("MIRROR_BENCH_ACTOR_ONLY").is_some() {
        let alone = actor_alone(1_000, iterations);
        println!("copy logic alone, per follower: p50 {} ns", alone.value_at_quantile(0.5));
        return;
    }
    // The main thread stays unpinned until the core plan is made: a pinned thread sees only
    // its own core.
    let core_count = cores().len();
    core_plan();
    println!(
        "Mirror fan-out: signal accepted → every follower order in its connector queue.\n\
         {} · {} cores · shard pinned to core 1, other threads on core 0 · {rounds} rounds × {iterations} signals \
         per row (after {WARMUP} warm-up each), variants interleaved within each round\n",
        cpu_model(),
        core_count
    );
    let variants: &[(&str, Option<EngineVariant>)] = &[
        ("floor: raw flume sends", None),
        ("engine, rkyv zero-copy", Some((FanoutEncoding::Archived, u32::MAX, false))),
        ("engine, owned clone each", Some((FanoutEncoding::ClonedOwned, u32::MAX, false))),
        ("engine, shard parks", Some((FanoutEncoding::Archived, 0, false))),
        ("engine + journal", Some((FanoutEncoding::Archived, u32::MAX, true))),
    ];
    // With the journal: the source's acknowledgement and the orders' release, per row.
    let mut durability: Vec<(Series, Series)> = counts.iter().map(|_| (Series::new(), Series::new())).collect();
    let mut results: Vec<Vec<Series>> =
        counts.iter().map(|_| variants.iter().map(|_| Series::new()).collect()).collect();
    let mut alone = Series::new();
    for _ in 0..rounds {
        for (row_index, followers) in counts.iter().enumerate() {
            for (variant_index, (_, engine)) in variants.iter().enumerate() {
                // Parking is measured at 100 followers only: it costs the same wake-up at any size.
                if matches!(engine, Some((_, 0, _))) && *followers != 100 {
                    continue;
                }
                let histogram = match engine {
                    None => floor_run(*followers, iterations),
                    Some((encoding, spin, journal)) => {
                        let run = engine_run(*followers, *encoding, *spin, *journal, iterations);
                        if let (Some(ack), Some(release)) = (&run.ack, &run.release) {
                            durability[row_index].0.add(ack);
                            durability[row_index].1.add(release);
                        }
                        run.fanout
                    }
                };
                results[row_index][variant_index].add(&histogram);
            }
            if *followers == 1_000 {
                alone.add(&actor_alone(*followers, iterations));
            }
        }
    }
    println!(
        "| followers | variant                    |       p50 |       p99 |     p99.9 |       max | round medians       | per follower p50 | vs floor |"
    );
    println!(
        "|------:|----------------------------|----------:|----------:|----------:|----------:|---------------------|----------:|-------:|"
    );
    for (row_index, followers) in counts.iter().enumerate() {
        let floor = &results[row_index][0];
        for (variant_index, (name, _)) in variants.iter().enumerate() {
            let series = &results[row_index][variant_index];
            if !series.medians.is_empty() {
                row(*followers, name, series, floor);
            }
        }
    }
    println!(
        "\nWith the journal (sled, group commit, write-ahead), beside the fan-out above:\n\n\
         | followers | source acknowledged (signal durable) p50 / p99 / p99.9 | orders released to brokers (inputs durable) p50 / p99 / p99.9 |\n\
         |------:|------------------------------|------------------------------|"
    );
    for (row_index, followers) in counts.iter().enumerate() {
        let (ack, release) = (&durability[row_index].0.merged, &durability[row_index].1.merged);
        if ack.is_empty() {
            continue;
        }
        let three = |h: &Histogram<u64>| {
            format!(
                "{} / {} / {}",
                micros(h.value_at_quantile(0.5)),
                micros(h.value_at_quantile(0.99)),
                micros(h.value_at_quantile(0.999))
            )
        };
        println!("| {followers:>5} | {:<28} | {:<28} |", three(ack), three(release));
    }
    if !alone.medians.is_empty() {
        println!(
            "\nCopy logic alone (1,000 actors stepped on one thread, no shard, no channels): per follower p50 {} ns, p99 {} ns",
            alone.merged.value_at_quantile(0.5),
            alone.merged.value_at_quantile(0.99)
        );
    }
}
