//! SDK latency on loopback, against the real engine with 100 followers on the simulated
//! broker (one shard, the telemetry thread, the QUIC gateway, all in this process):
//!
//! - **submit → ack**: `Client::submit` of a market order until the engine's acceptance comes
//!   back over QUIC (the signal validated, routed, in every shard's mailbox);
//! - **submit → 100 handed**: the same submit until the shard handed every follower's order to
//!   its connector, by the shard's own timestamp of its last order on the engine's clock (which
//!   the benchmark gives the engine and reads at the submit): nothing spins to watch for it, so
//!   the watching takes no core from the engine on a 2-core machine;
//! - beside them, the floor: `EngineHandle::submit` called in-process (what the webhook and
//!   REST ingress call) until it returns, and until the fan-out completes.
//!
//! Closed loop, one order at a time; each open is closed (untimed) before the next.
//! `cargo bench -p mirror-sdk --bench submit` (env `MIRROR_BENCH_ITERATIONS`, default 2000).

// A benchmark prints its table.
#![allow(clippy::print_stdout, clippy::cast_possible_truncation)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Demo, DemoOptions, TRADER_TOKEN};
use hdrhistogram::Histogram;
use mirror_engine::clock::SystemClock;
use mirror_engine::telemetry::FanoutDone;
use mirror_model::{LeaderRef, OpenSignal, OrderKind, SignalAction, SignalId, TimeInForce};
use mirror_sdk::{Client, Order, Side};

const FOLLOWERS: usize = 100;
const WARMUP: usize = 100;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn row(name: &str, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "{name:<34} {:>8.1} {:>8.1} {:>8.1} {:>9.1}   n={}",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1_000.0,
        h.len()
    );
}

/// Waits for `signal`'s fan-out completion; when its last order was handed, engine clock.
async fn handed(completions: &flume::Receiver<FanoutDone>, signal: SignalId) -> u64 {
    loop {
        let done = tokio::time::timeout(Duration::from_secs(10), completions.recv_async())
            .await
            .expect("the fan-out completes within 10 s")
            .expect("the engine runs");
        if done.signal == signal {
            return done.done_mono_ns;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iterations: usize = std::env::var("MIRROR_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let (observer, completions) = flume::bounded(65_536);
    let clock = Arc::new(SystemClock::new());
    let demo = Demo::start(DemoOptions {
        followers: FOLLOWERS,
        observer: Some(observer),
        clock: Some(Arc::clone(&clock) as Arc<dyn mirror_engine::clock::Clock>),
        ..DemoOptions::default()
    })
    .await;
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let engine = demo.engine.as_ref().unwrap().handle();
    let (mut ack, mut handed_at, mut direct_ack, mut direct_handed) =
        (histogram(), histogram(), histogram(), histogram());
    for i in 0..WARMUP + iterations {
        let position = client.next_position_key();
        let ticket = Order::market(position, "ES", Side::Buy, "1").unwrap().into_ticket();
        let (started, started_mono_ns) = (Instant::now(), clock.mono_ns());
        let signal = client.submit(&ticket).await.unwrap();
        let acked = started.elapsed();
        let done = handed(&completions, signal).await.saturating_sub(started_mono_ns);
        if i >= WARMUP {
            ack.saturating_record(acked.as_nanos() as u64);
            handed_at.saturating_record(done);
        }
        client.close_position(position).await.unwrap();

        let leader = LeaderRef(client.next_position_key());
        let open = SignalAction::Open(OpenSignal {
            leader,
            symbol: common::sym("ES"),
            side: mirror_model::Side::Buy,
            qty: common::q("1"),
            kind: OrderKind::Market,
            reference_price: None,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            contract_size: None,
            from_pending: None,
            risk_bp: None,
        });
        let handle = engine.clone();
        let source = demo.source;
        let (started, started_mono_ns) = (Instant::now(), clock.mono_ns());
        let (signal, acked) = tokio::task::spawn_blocking(move || {
            let signal = handle.submit(source, open, None, "bench").unwrap();
            (signal, started.elapsed())
        })
        .await
        .unwrap();
        let done = handed(&completions, signal).await.saturating_sub(started_mono_ns);
        if i >= WARMUP {
            direct_ack.saturating_record(acked.as_nanos() as u64);
            direct_handed.saturating_record(done);
        }
        let close = SignalAction::Close { leader };
        let handle = engine.clone();
        tokio::task::spawn_blocking(move || handle.submit(source, close, None, "bench").unwrap()).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!("{FOLLOWERS} followers, {iterations} orders, debug assertions {}", cfg!(debug_assertions));
    println!("{:<34} {:>8} {:>8} {:>8} {:>9}", "µs", "p50", "p99", "p99.9", "max");
    row("SDK submit → ack (QUIC)", &ack);
    row("SDK submit → 100 orders handed", &handed_at);
    row("in-process submit → return", &direct_ack);
    row("in-process submit → 100 handed", &direct_handed);
    client.close().await;
    demo.stop().await;
}
