//! SDK latency on loopback, against the real engine with 100 followers on the simulated
//! broker (one shard, the telemetry thread, the QUIC gateway, all in this process):
//!
//! - **submit → ack**: `Client::submit` of a market order until the engine's acceptance comes
//!   back over QUIC (the signal validated, routed, in every shard's mailbox);
//! - **submit → 100 handed**: the same submit until the shard reports every follower's order
//!   handed to its connector (the observer's fan-out completion, seen by a spinning thread);
//! - beside them, the floor: `EngineHandle::submit` called in-process (what the webhook and
//!   REST ingress call) until it returns, and until the fan-out completes.
//!
//! Closed loop, one order at a time; each open is closed (untimed) before the next.
//! `cargo bench -p mirror-sdk --bench submit` (env `MIRROR_BENCH_ITERATIONS`, default 2000).

// A benchmark prints its table.
#![allow(clippy::print_stdout, clippy::cast_possible_truncation)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Demo, DemoOptions, TRADER_TOKEN};
use hdrhistogram::Histogram;
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

/// Fan-out completions, timestamped on arrival by a spinning thread.
struct Arrivals {
    seen: Arc<Mutex<HashMap<SignalId, Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Arrivals {
    fn start(receiver: flume::Receiver<FanoutDone>) -> Self {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (map, halt) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match receiver.try_recv() {
                    Ok(done) => {
                        map.lock().unwrap().insert(done.signal, Instant::now());
                    }
                    Err(_) => std::hint::spin_loop(),
                }
            }
        });
        Self { seen, stop }
    }

    async fn wait(&self, signal: SignalId) -> Instant {
        loop {
            if let Some(at) = self.seen.lock().unwrap().remove(&signal) {
                return at;
            }
            tokio::task::yield_now().await;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let iterations: usize = std::env::var("MIRROR_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000);
    let (observer, completions) = flume::bounded(65_536);
    let demo =
        Demo::start(DemoOptions { followers: FOLLOWERS, observer: Some(observer), ..DemoOptions::default() }).await;
    let arrivals = Arrivals::start(completions);
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let engine = demo.engine.as_ref().unwrap().handle();
    let (mut ack, mut handed, mut direct_ack, mut direct_handed) = (histogram(), histogram(), histogram(), histogram());
    for i in 0..WARMUP + iterations {
        let position = client.next_position_key();
        let ticket = Order::market(position, "ES", Side::Buy, "1").unwrap().into_ticket();
        let started = Instant::now();
        let signal = client.submit(&ticket).await.unwrap();
        let acked = started.elapsed();
        let done = arrivals.wait(signal).await.duration_since(started);
        if i >= WARMUP {
            ack.saturating_record(acked.as_nanos() as u64);
            handed.saturating_record(done.as_nanos() as u64);
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
        let started = Instant::now();
        let (signal, acked) = tokio::task::spawn_blocking(move || {
            let signal = handle.submit(source, open, None, "bench").unwrap();
            (signal, started.elapsed())
        })
        .await
        .unwrap();
        let done = arrivals.wait(signal).await.duration_since(started);
        if i >= WARMUP {
            direct_ack.saturating_record(acked.as_nanos() as u64);
            direct_handed.saturating_record(done.as_nanos() as u64);
        }
        let close = SignalAction::Close { leader };
        let handle = engine.clone();
        tokio::task::spawn_blocking(move || handle.submit(source, close, None, "bench").unwrap()).await.unwrap();
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!("{FOLLOWERS} followers, {iterations} orders, debug assertions {}", cfg!(debug_assertions));
    println!("{:<34} {:>8} {:>8} {:>8} {:>9}", "µs", "p50", "p99", "p99.9", "max");
    row("SDK submit → ack (QUIC)", &ack);
    row("SDK submit → 100 orders handed", &handed);
    row("in-process submit → return", &direct_ack);
    row("in-process submit → 100 handed", &direct_handed);
    arrivals.stop.store(true, Ordering::Relaxed);
    client.close().await;
    demo.stop().await;
}
