//! Webhook latency on loopback, against the real engine with 100 followers on the simulated
//! broker (one shard, the telemetry thread, the HTTP server, all in this process, no journal):
//!
//! - **POST → 202**: a signed webhook POST of a market order (a new TCP connection each time,
//!   as TradingView and most senders make) until its `202 Accepted` with the signal id is read;
//! - **POST → 100 handed**: the same POST until the shard handed every follower's order to its
//!   connector, by the shard's own timestamp of its last order on the engine's clock (which the
//!   benchmark gives the engine and reads at the send): nothing spins to watch for it, so the
//!   watching takes no core from the engine on a 2-core machine.
//!
//! Closed loop, one order at a time; each open is closed (untimed) before the next.
//! `cargo bench -p mirror-engine --bench webhook` (env `MIRROR_BENCH_ITERATIONS`, default
//! 2000); `cargo test -p mirror-engine --bench webhook` makes a quick run of 20.

// A benchmark prints its table.
#![allow(clippy::print_stdout, clippy::cast_possible_truncation)]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use mirror_engine::app::{StartOptions, start};
use mirror_engine::clock::SystemClock;
use mirror_engine::secrets::CredentialVars;
use mirror_engine::telemetry::FanoutDone;
use mirror_model::SignalId;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FOLLOWERS: usize = 100;
const WARMUP: usize = 50;
const SECRET: &str = "bench-secret-0123456789abcdef";

fn config() -> String {
    let mut text = String::from(
        "[engine]\nshards = 1\nspin_iterations = 1000\npin_cores = false\n\n[storage]\njournal = false\n\n\
         [sim]\ntick_ms = 0\nlatency_min_ms = 0\nlatency_max_ms = 0\nslippage_ticks_max = 0\n\n\
         [instruments.ES]\nkind = \"future\"\ncontract_size = 50\ntick_size = \"0.25\"\nlot_step = 1\nmin_qty = 1\n\
         max_qty = 200\nprice = 5000\n\n[[sources]]\nname = \"bench\"\nsymbols = [\"ES\"]\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\nrate_per_second = 100000\nrate_burst = 100000\n\n\
         [[http.webhooks]]\nname = \"bench\"\nkind = \"signed\"\nsecret = \"env:BENCH_SECRET\"\nsource = \"bench\"\n",
    );
    for i in 0..FOLLOWERS {
        let _ = write!(
            text,
            "\n[[accounts]]\nname = \"f{i}\"\nplatform = \"sim\"\nmode = \"netting\"\nbalance = 100000\n\n\
             [[links]]\nleader = \"bench\"\nfollower = \"f{i}\"\n"
        );
    }
    text
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

/// POSTs a signed body on a new connection; the signal id of the 202 and when it was read.
async fn post(server: SocketAddr, body: &str) -> (SignalId, Instant) {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos().to_string();
    // Seconds for the header; the nanoseconds only make every signature unique.
    let seconds = &timestamp[..timestamp.len() - 9];
    let body = body.replace("NONCE", &timestamp);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{seconds}.{body}").as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let request = format!(
        "POST /webhooks/signed/bench HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         X-Mirror-Timestamp: {seconds}\r\nX-Mirror-Signature: sha256={signature}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    // The answer is read as the sender reads it: complete once its headers and as many body
    // bytes as its Content-Length say have arrived (the connection's close comes after).
    let mut raw = Vec::new();
    let mut chunk = [0_u8; 4096];
    let (head_len, body_len) = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("the answer within 10 s")
            .unwrap();
        assert!(n > 0, "the connection closed before the answer was complete: {}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&chunk[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        if raw.len() >= end + 4 + length {
            break (end + 4, length);
        }
    };
    let answered = Instant::now();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 202"), "{text}");
    let value: serde_json::Value = serde_json::from_slice(&raw[head_len..head_len + body_len]).unwrap();
    // Then the close, untimed.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    (SignalId(value["signal"].as_u64().unwrap()), answered)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

fn row(name: &str, h: &Histogram<u64>) {
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    println!(
        "{name:<28} {:>8.1} {:>8.1} {:>8.1} {:>9.1}   n={}",
        us(0.5),
        us(0.99),
        us(0.999),
        h.max() as f64 / 1_000.0,
        h.len()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and expects a quick run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let iterations: usize = std::env::var("MIRROR_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20 } else { 2_000 });
    let warmup = if quick { 5 } else { WARMUP };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let resolved = mirror_engine::config::load_str(Path::new("bench.toml"), &config()).unwrap();
        let (observer, completions) = flume::unbounded();
        let clock = Arc::new(SystemClock::new());
        let options = StartOptions {
            observer: Some(observer),
            clock: Some(Arc::clone(&clock) as Arc<dyn mirror_engine::clock::Clock>),
            credential_vars: Some(CredentialVars::new().with("BENCH_SECRET", SECRET)),
            ..StartOptions::default()
        };
        let running = start(&resolved, options).await.unwrap();
        let server = running.http_addr().unwrap();
        let (mut acked, mut handed_at) = (histogram(), histogram());
        let open = r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":1,"note":"NONCE"}"#;
        let close = r#"{"v":1,"action":"close_all","symbol":"ES","note":"NONCE"}"#;
        for i in 0..warmup + iterations {
            let (sent, sent_mono_ns) = (Instant::now(), clock.mono_ns());
            let (signal, answered) = post(server, open).await;
            let done_mono_ns = handed(&completions, signal).await;
            if i >= warmup {
                acked.record(answered.duration_since(sent).as_nanos() as u64).unwrap();
                handed_at.record(done_mono_ns.saturating_sub(sent_mono_ns)).unwrap();
            }
            let (closing, _) = post(server, close).await;
            handed(&completions, closing).await;
            running.settle(Duration::from_millis(2), Duration::from_secs(2)).await;
        }
        println!("webhook → {FOLLOWERS} followers, {iterations} orders (µs)");
        println!("{:<28} {:>8} {:>8} {:>8} {:>9}", "path", "p50", "p99", "p99.9", "max");
        row("signed POST → 202", &acked);
        row("signed POST → 100 handed", &handed_at);
        running.stop().await;
    });
}
