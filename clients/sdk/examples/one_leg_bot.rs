//! A 1-leg bot: buys one contract, watches every follower's copy fill on the state stream,
//! holds it a moment, closes it, and prints the submit → acknowledgement time of each order.
//!
//! ```text
//! cargo run -p mirror-sdk --example one_leg_bot -- --demo
//! MIRROR_GATEWAY=127.0.0.1:7443 MIRROR_FINGERPRINT=<hex> MIRROR_TOKEN=<token> \
//!     cargo run -p mirror-sdk --example one_leg_bot -- [--symbol ES] [--qty 1] [--rounds 3]
//! ```

// An example prints what it does.
#![allow(clippy::print_stdout)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use mirror_sdk::{DeltaEvent, Order, Side, StateUpdate, topics};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let session = support::connect("one-leg-bot").await?;
    let client = &session.client;
    let symbol = support::arg("--symbol").unwrap_or_else(|| "ES".into());
    let qty = support::arg("--qty").unwrap_or_else(|| "1".into());
    let rounds: usize = support::arg("--rounds").map(|r| r.parse()).transpose()?.unwrap_or(3);
    let welcome = client.welcome().expect("connected");
    println!("session {} as {:?}", welcome.session, welcome.role);
    let mut state = client.subscribe(topics::FILLS | topics::COPY | topics::ACCOUNTS).await?;
    let StateUpdate::Snapshot(snapshot) = state.next().await? else { anyhow::bail!("expected a snapshot first") };
    println!("{} accounts; state at #{}", snapshot.accounts.len(), snapshot.seq);
    let names: BTreeMap<u32, String> = snapshot.accounts.iter().map(|a| (a.id, a.name.clone())).collect();
    let name = |id: u32| names.get(&id).cloned().unwrap_or_else(|| id.to_string());
    for round in 1..=rounds {
        let position = client.next_position_key();
        let side = if round % 2 == 1 { Side::Buy } else { Side::Sell };
        let order = Order::market(position, &symbol, side, &qty)?.note("one-leg-bot").into_ticket();
        let started = Instant::now();
        let signal = client.submit(&order).await?;
        println!("round {round}: {side:?} {qty} {symbol} accepted as signal {} in {:?}", signal.0, started.elapsed());
        // Watch the copies fill (or be skipped) for a couple of seconds.
        let mut filled = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(update) = tokio::time::timeout_at(deadline, state.next()).await {
            let StateUpdate::Deltas(deltas) = update? else { continue };
            for delta in deltas.events {
                match delta.event {
                    DeltaEvent::Fill(fill) if fill.signal == signal.0 && filled.insert(fill.account) => println!(
                        "  {:<14} filled {} at {}",
                        name(fill.account),
                        mirror_model::Qty::from_raw(fill.qty),
                        mirror_model::Price::from_raw(fill.price)
                    ),
                    DeltaEvent::Copy(copy)
                        if copy.signal == signal.0
                            && matches!(
                                copy.state,
                                mirror_sdk::CopyState::Skipped | mirror_sdk::CopyState::Rejected
                            ) =>
                    {
                        println!("  {:<14} {:?}: {}", name(copy.account), copy.state, copy.detail)
                    }
                    _ => {}
                }
            }
        }
        println!("  {} followers filled; closing", filled.len());
        client.close_position(position).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    session.stop().await;
    Ok(())
}
