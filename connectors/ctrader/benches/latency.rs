//! Latency from a signal to the follower's order bytes on the socket, with cTrader followers
//! on one shared connection to the simulator (loopback TLS, both ends in this process).
//!
//! Rows:
//! - floor: `CtraderConnector::place` called directly → its `ProtoOANewOrderReq` written
//!   to the TLS socket (connector, scheduler and TLS write; no engine);
//! - 1 follower: `EngineHandle::submit` → the follower's order written (engine, actor,
//!   connector task, connector);
//! - 100 followers: `submit` → each follower's order written (every follower counted), and
//!   the last of the hundred per signal. cTrader allows 50 requests per second on a
//!   connection, so the second fifty wait for the first to leave the window: the last of a
//!   hundred is bound to take about a second (plus the scheduler's 100 ms guard band).
//!
//! Signals are spaced so that every burst starts with an empty rate window.
//! `cargo bench -p mirror-connector-ctrader` (env: `MIRROR_BENCH_ITERATIONS` for the
//! single-order rows, default 500; `MIRROR_BENCH_BURSTS` for the hundred-follower row,
//! default 20).

// A benchmark prints its table; its counts are far below 2³².
#![allow(clippy::print_stdout, clippy::cast_possible_truncation, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mirror_connector::Connector;
use mirror_connector_ctrader::{CtraderSession, CtraderSimulator, SimAccount, SimSymbol, SimulatorConfig, WireWrite};
use mirror_engine::account::{AccountSetup, RiskLimits};
use mirror_engine::connectors::{AccountWiring, ConnectorSettings, boot, spawn_account_tasks};
use mirror_engine::router::LinkSpec;
use mirror_engine::runtime::{Engine, EngineBuilder, RuntimeSettings};
use mirror_model::{
    AccountId, ClientOrderId, InstrumentTable, LeaderRef, LinkRules, OpenSignal, OrderIntent, OrderKind, OrderRequest,
    Origin, Price, Qty, Ratio, Side, SignalAction, SignalId, SizingRule, SourceId, Symbol, TimeInForce,
};

const NEW_ORDER: u32 = 2106;

fn price(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn settings() -> ConnectorSettings {
    ConnectorSettings {
        call_timeout: Duration::from_secs(60),
        boot_timeout: Duration::from_secs(60),
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(5),
    }
}

async fn simulator(accounts: usize) -> CtraderSimulator {
    let mut config = SimulatorConfig::new("bench-app", "bench-secret");
    config.symbols = vec![SimSymbol::fx(1, "EURUSD", price("1.08500"), price("1.08508"))];
    config.accounts = (0..accounts).map(|i| SimAccount::new(1_001 + i as i64, "token")).collect();
    CtraderSimulator::start(config).await.unwrap()
}

/// An engine with one source and `followers` cTrader followers on `session`.
async fn engine(session: &CtraderSession, followers: usize, source: Origin) -> Engine {
    let connectors: Vec<Arc<dyn Connector>> =
        (0..followers).map(|i| Arc::new(session.connector(1_001 + i as i64)) as Arc<dyn Connector>).collect();
    let mut boots = tokio::task::JoinSet::new();
    for (index, connector) in connectors.iter().enumerate() {
        let connector = Arc::clone(connector);
        boots.spawn(async move { (index, boot(connector.as_ref(), settings()).await) });
    }
    let mut booted = Vec::new();
    while let Some(done) = boots.join_next().await {
        booted.push(done.unwrap());
    }
    booted.sort_by_key(|(index, _)| *index);
    let rules = Arc::new(LinkRules { sizing: SizingRule::Multiplier { ratio: Ratio::ONE }, ..LinkRules::default() });
    let runtime = RuntimeSettings { shards: 1, pin_cores: false, spin_iterations: 200, ..RuntimeSettings::default() };
    let mut builder = EngineBuilder::new(runtime).source(source, [Symbol::new("EURUSD").unwrap()]);
    for (index, boot) in &booted {
        let session = boot.session.clone().expect("the account boots");
        let id = AccountId(10 + *index as u32);
        builder = builder
            .account(AccountSetup {
                id,
                name: Arc::from(format!("ct{index}").as_str()),
                mode: session.mode,
                instruments: InstrumentTable::from_iter(boot.instruments.iter().copied()),
                balance: boot.snapshot.balance,
                equity: boot.snapshot.equity,
                risk: RiskLimits::default(),
                inbound: Vec::new(),
                is_leader: false,
                connected: true,
                positions: boot.positions.clone(),
            })
            .link(LinkSpec { leader: source, follower: id, rules: Arc::clone(&rules) });
    }
    let (engine, queues) = builder.start().unwrap();
    let handle = engine.handle();
    for (account, commands) in queues {
        let index = (account.0 - 10) as usize;
        let wiring = AccountWiring {
            account,
            name: Arc::from(format!("ct{index}").as_str()),
            connector: Arc::clone(&connectors[index]),
            commands,
            mailbox: handle.mailbox(account).unwrap(),
            engine: handle.clone(),
            connected: true,
            // Fan-out latency alone: no quote traffic beside it.
            symbols: Vec::new(),
        };
        spawn_account_tasks(wiring, settings());
    }
    engine
}

fn signal(n: u64) -> SignalAction {
    SignalAction::Open(OpenSignal {
        leader: LeaderRef(n),
        symbol: Symbol::new("EURUSD").unwrap(),
        side: if n.is_multiple_of(2) { Side::Buy } else { Side::Sell },
        qty: Qty::parse("0.1").unwrap(),
        kind: OrderKind::Market,
        reference_price: Some(price("1.08508")),
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        contract_size: Some(Qty::parse("100000").unwrap()),
        from_pending: None,
        risk_bp: None,
    })
}

/// The next `count` order writes on the tap (other requests skipped).
async fn order_writes(tap: &flume::Receiver<WireWrite>, count: usize) -> Vec<WireWrite> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let write = tokio::time::timeout(Duration::from_secs(30), tap.recv_async())
            .await
            .expect("an order reaches the socket within 30 s")
            .expect("the tap stays open");
        if write.payload_type == NEW_ORDER {
            seen.push(write);
        }
    }
    seen
}

fn nanos(duration: Duration) -> u64 {
    duration.as_nanos().min(u128::from(u64::MAX)) as u64
}

async fn floor_run(iterations: usize, warmup: usize) -> Histogram<u64> {
    let simulator = simulator(1).await;
    let session = CtraderSession::new(simulator.session_config("token", None)).unwrap();
    let connector = session.connector(1_001);
    connector.connect().await.unwrap();
    let tap = session.wire_tap(65_536);
    let mut latencies = histogram();
    for n in 0..warmup + iterations {
        let order = OrderRequest {
            client_id: ClientOrderId::new(SignalId(n as u64 + 1), AccountId(1), 0),
            symbol: Symbol::new("EURUSD").unwrap(),
            side: Side::Buy,
            qty: Qty::parse("0.1").unwrap(),
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            intent: OrderIntent::Open,
        };
        let start = Instant::now();
        connector.place(&order).await.unwrap();
        let write = order_writes(&tap, 1).await[0];
        if n >= warmup {
            latencies.record(nanos(write.at - start)).unwrap();
        }
        // 40 orders a second: inside cTrader's 50.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    session.shutdown().await;
    simulator.shutdown();
    latencies
}

/// Signals to `followers` followers; returns every follower's latency and the last one's.
async fn engine_run(
    followers: usize,
    signals: usize,
    warmup: usize,
    spacing: Duration,
) -> (Histogram<u64>, Histogram<u64>) {
    let simulator = simulator(followers).await;
    let session = CtraderSession::new(simulator.session_config("token", None)).unwrap();
    let source = Origin::Source(SourceId(1));
    let engine = engine(&session, followers, source).await;
    let handle = engine.handle();
    let tap = session.wire_tap(65_536);
    // Start from an empty rate window: the boot's requests age out first.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    tap.drain().for_each(drop);
    let (mut each, mut last) = (histogram(), histogram());
    for n in 0..warmup + signals {
        let start = Instant::now();
        handle.submit(source, signal(n as u64 + 1), None, "bench").unwrap();
        let writes = order_writes(&tap, followers).await;
        if n >= warmup {
            for write in &writes {
                each.record(nanos(write.at - start)).unwrap();
            }
            let latest = writes.iter().map(|w| w.at).max().unwrap();
            last.record(nanos(latest - start)).unwrap();
        }
        tokio::time::sleep(spacing).await;
    }
    assert_eq!(simulator.stats().rate_limited, 0, "the bench stayed within cTrader's limits");
    assert!(simulator.stats().max_requests_per_window <= 50);
    tokio::task::spawn_blocking(move || engine.shutdown()).await.unwrap();
    session.shutdown().await;
    simulator.shutdown();
    (each, last)
}

fn micros(ns: u64) -> String {
    if ns >= 10_000_000 { format!("{:.0} ms", ns as f64 / 1e6) } else { format!("{:.1} µs", ns as f64 / 1e3) }
}

fn row(name: &str, histogram: &Histogram<u64>) {
    println!(
        "| {name:<44} | {:>6} | {:>9} | {:>9} | {:>9} | {:>9} |",
        histogram.len(),
        micros(histogram.value_at_quantile(0.5)),
        micros(histogram.value_at_quantile(0.99)),
        micros(histogram.value_at_quantile(0.999)),
        micros(histogram.max()),
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

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and wants a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iterations = env_or("MIRROR_BENCH_ITERATIONS", if quick { 5 } else { 500 });
    let bursts = env_or("MIRROR_BENCH_BURSTS", if quick { 1 } else { 20 });
    let warmup = if quick { 1 } else { 50 };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (floor, (one, _), (hundred, last)) = runtime.block_on(async {
        let floor = floor_run(iterations, warmup).await;
        let one = engine_run(1, iterations, warmup, Duration::from_millis(25)).await;
        let hundred = engine_run(100, bursts, 1, Duration::from_millis(1_200)).await;
        (floor, one, hundred)
    });
    println!(
        "Mirror cTrader connector: signal → order bytes on the TLS socket (simulator on loopback, same process).\n\
         {} · {} cores · tokio 2 workers · engine 1 shard unpinned · rate limit 50/s per connection\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
    );
    println!(
        "| path                                         |      n |       p50 |       p99 |     p99.9 |       max |"
    );
    println!(
        "|----------------------------------------------|-------:|----------:|----------:|----------:|----------:|"
    );
    row("floor: place() → bytes (no engine)", &floor);
    row("1 follower: submit → bytes", &one);
    row("100 followers: submit → each follower's bytes", &hundred);
    row("100 followers: submit → last of the 100", &last);
}
