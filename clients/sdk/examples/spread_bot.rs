//! A 2-leg spread bot: buys ES against selling NQ as one pair, with a stated policy for
//! followers where one leg fails (`--policy unwind`, the default, or `--policy complete`),
//! prints the outcome on every follower, holds the spread, then closes both legs.
//!
//! In the in-process demo (`--demo`) follower f004's broker does not trade NQ: its NQ leg is
//! rejected and the policy shows. Against `mirror-engine run --config config/demo.toml`, the
//! link to fut-es-only denies NQ: its NQ leg is skipped, and the policy shows there.
//!
//! ```text
//! cargo run -p mirror-sdk --example spread_bot -- --demo [--policy complete]
//! MIRROR_GATEWAY=127.0.0.1:7443 MIRROR_FINGERPRINT=<hex> MIRROR_TOKEN=<token> \
//!     cargo run -p mirror-sdk --example spread_bot -- [--long ES] [--short NQ] [--rounds 2]
//! ```

// An example prints what it does.
#![allow(clippy::print_stdout)]

mod support;

use std::time::{Duration, Instant};

use mirror_model::Qty;
use mirror_sdk::{Order, PairPolicy, PairTicket, Side};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let session = support::connect("spread-bot").await?;
    let client = &session.client;
    let long = support::arg("--long").unwrap_or_else(|| "ES".into());
    let short = support::arg("--short").unwrap_or_else(|| "NQ".into());
    let rounds: usize = support::arg("--rounds").map(|r| r.parse()).transpose()?.unwrap_or(2);
    let policy = match support::arg("--policy").as_deref() {
        None | Some("unwind") => PairPolicy::Unwind,
        Some("complete") => PairPolicy::Complete,
        Some(other) => anyhow::bail!("--policy: expected unwind or complete, got {other}"),
    };
    for round in 1..=rounds {
        let (first, second) = (client.next_position_key(), client.next_position_key());
        let pair = PairTicket {
            first: Order::market(first, &long, Side::Buy, "1")?.note("spread long leg").into_ticket(),
            second: Order::market(second, &short, Side::Sell, "1")?.note("spread short leg").into_ticket(),
            policy,
            settle_ms: 3_000,
        };
        let started = Instant::now();
        let handle = client.submit_pair(&pair).await?;
        println!(
            "round {round}: long {long} / short {short} accepted as signals {} and {} in {:?}",
            handle.first.0,
            handle.second.0,
            started.elapsed()
        );
        let outcome = handle.outcome().await?;
        println!(
            "  settled in {:?} (policy {:?}, timed out: {})",
            started.elapsed(),
            outcome.policy,
            outcome.timed_out
        );
        for follower in &outcome.followers {
            let leg = |leg: &mirror_sdk::LegReport| {
                format!("{:?} {}/{}", leg.status, Qty::from_raw(leg.filled), Qty::from_raw(leg.ordered))
            };
            println!(
                "  {:<14} {:<22} {:<22} → {:?}{}",
                follower.name,
                leg(&follower.first),
                leg(&follower.second),
                follower.resolution,
                [&follower.first.reason, &follower.second.reason]
                    .iter()
                    .find(|r| !r.is_empty())
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.close_position(first).await?;
        client.close_position(second).await?;
        println!("  closed both legs");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    session.stop().await;
    Ok(())
}
