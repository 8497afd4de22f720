//! One simulated MT5 leader and fifty simulated followers, half MT4 and half MT5 (some MT5
//! netting), each dialling the bridge over TLS on loopback, copied by the real engine through
//! bridge connectors: opens, SL/TP modifies, two partial closes (MT4 followers move to new
//! tickets each time), a second symbol, and the final closes. After every step each follower
//! must hold exactly the positions its rule calls for. Expected sizes are computed here with
//! plain integer arithmetic.

mod common;

use std::time::Duration;

use common::engine::start;
use common::{Spec, bridge, eventually, p, q, sym, terminal};
use mirror_connector_metatrader::sim::{SimPosition, TerminalSim};
use mirror_model::{AccountMode, LinkRules, Platform, Price, Qty, Ratio, Side, SizingRule, Symbol};

const FOLLOWERS: usize = 50;
const STEP: i64 = 1_000_000; // 0.01 lot, raw
const WAIT: Duration = Duration::from_secs(30);

fn kind(index: usize) -> usize {
    index % 5
}

fn spec(index: usize) -> Spec {
    let name = format!("f{index:02}");
    match index % 4 {
        0 | 2 => Spec::new(&name, Platform::Mt4, AccountMode::Hedging),
        1 => Spec::new(&name, Platform::Mt5, AccountMode::Hedging),
        _ => Spec::new(&name, Platform::Mt5, AccountMode::Netting),
    }
}

fn rules(index: usize) -> LinkRules {
    let ratio = |text| SizingRule::Multiplier { ratio: Ratio::parse(text).unwrap() };
    match kind(index) {
        0 => LinkRules { sizing: ratio("1"), ..LinkRules::default() },
        1 => LinkRules { sizing: ratio("0.5"), ..LinkRules::default() },
        2 => LinkRules { sizing: ratio("2"), ..LinkRules::default() },
        3 => LinkRules { sizing: SizingRule::Fixed { qty: q("0.3") }, ..LinkRules::default() },
        _ => LinkRules { sizing: ratio("1"), reverse: true, ..LinkRules::default() },
    }
}

/// A follower's open for a leader open of `leader` raw units.
fn open_qty(index: usize, leader: i64) -> i64 {
    match kind(index) {
        0 | 4 => leader,
        1 => leader / 2 / STEP * STEP,
        2 => leader * 2,
        _ => 30_000_000,
    }
}

/// What a follower closes of `open` when the leader closes `closed` of `before` (rounded down
/// to the step; everything when the rest would fall under the 0.01 minimum).
fn close_qty(open: i64, closed: i64, before: i64) -> i64 {
    let exact = i128::from(open) * i128::from(closed) / i128::from(before);
    let close = i64::try_from(exact).expect("a close fits") / STEP * STEP;
    if open - close > 0 && open - close < STEP { open } else { close }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    symbol: Symbol,
    side: Side,
    qty: Qty,
    stop_loss: Option<Price>,
    take_profit: Option<Price>,
}

fn held(positions: &[SimPosition]) -> Vec<Held> {
    let mut held: Vec<Held> = positions
        .iter()
        .map(|p| Held {
            symbol: p.symbol,
            side: p.side,
            qty: p.qty,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
        })
        .collect();
    held.sort_by_key(|h| h.symbol);
    held
}

/// The copy of a leader position (`side`, levels) for follower `index` holding `qty` raw.
fn copy(index: usize, symbol: &str, side: Side, qty: i64, levels: (Option<&str>, Option<&str>)) -> Held {
    let (sl, tp) = (levels.0.map(p), levels.1.map(p));
    let (side, stop_loss, take_profit) = if kind(index) == 4 { (side.opposite(), tp, sl) } else { (side, sl, tp) };
    Held { symbol: sym(symbol), side, qty: Qty::from_raw(qty), stop_loss, take_profit }
}

async fn every_follower_holds(followers: &[TerminalSim], step: &str, expected: impl Fn(usize) -> Vec<Held>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let wrong: Vec<(usize, Vec<Held>, Vec<Held>)> = followers
            .iter()
            .enumerate()
            .filter_map(|(index, sim)| {
                let mut want = expected(index);
                want.sort_by_key(|h| h.symbol);
                let have = held(&sim.positions());
                (have != want).then_some((index, have, want))
            })
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {step}, {} followers differ; first: f{:02} holds {:?}, expected {:?}",
            wrong.len(),
            wrong[0].0,
            wrong[0].1,
            wrong[0].2
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mt5_leader_is_copied_by_fifty_mixed_mt4_and_mt5_followers_exactly() {
    let leader_spec = Spec::new("lead", Platform::Mt5, AccountMode::Hedging);
    let follower_specs: Vec<Spec> = (0..FOLLOWERS).map(spec).collect();
    let mut all = vec![leader_spec.clone()];
    all.extend(follower_specs.iter().cloned());
    let (bridge, tls) = bridge(&all, true).await;
    let leader = terminal(&leader_spec, 0, bridge.local_addr(), tls.clone());
    let followers: Vec<TerminalSim> = follower_specs
        .iter()
        .enumerate()
        .map(|(index, spec)| terminal(spec, index as u64 + 1, bridge.local_addr(), tls.clone()))
        .collect();
    eventually("every terminal online", WAIT, || {
        leader.is_connected() && followers.iter().all(TerminalSim::is_connected)
    })
    .await;
    let names: Vec<String> = all.iter().map(|s| s.name.clone()).collect();
    let links = (0..FOLLOWERS).map(|i| ("lead".to_owned(), follower_specs[i].name.clone(), rules(i))).collect();
    let running = start(&bridge, &names, links).await;

    // 1. The leader buys 2 EURUSD, stop 1.08000, target 1.09500.
    let lead_qty = 200_000_000;
    let ticket =
        leader.manual_open("EURUSD", Side::Buy, Qty::from_raw(lead_qty), Some(p("1.08")), Some(p("1.095"))).unwrap();
    let first: Vec<i64> = (0..FOLLOWERS).map(|i| open_qty(i, lead_qty)).collect();
    every_follower_holds(&followers, "the open", |i| {
        vec![copy(i, "EURUSD", Side::Buy, first[i], (Some("1.08"), Some("1.095")))]
    })
    .await;

    // 2. The leader moves its stop and target.
    leader.manual_modify(ticket, Some(p("1.082")), Some(p("1.098"))).unwrap();
    let levels = (Some("1.082"), Some("1.098"));
    every_follower_holds(&followers, "the modify", |i| vec![copy(i, "EURUSD", Side::Buy, first[i], levels)]).await;

    // 3. The leader closes half.
    leader.manual_close(ticket, Qty::from_raw(lead_qty / 2)).unwrap();
    let after_half: Vec<i64> = first.iter().map(|&open| open - close_qty(open, lead_qty / 2, lead_qty)).collect();
    every_follower_holds(&followers, "the first partial close", |i| {
        vec![copy(i, "EURUSD", Side::Buy, after_half[i], levels)]
    })
    .await;
    // MT4 followers now hold their remainder under a new ticket.
    for (index, sim) in followers.iter().enumerate().filter(|(i, _)| follower_specs[*i].platform == Platform::Mt4) {
        let comment = &sim.positions()[0].comment;
        assert!(comment.starts_with("from #"), "f{index:02}: {comment}");
    }

    // 4. The leader sells 1 GBPUSD without stops.
    let gbp_qty = 100_000_000;
    let gbp_ticket = leader.manual_open("GBPUSD", Side::Sell, Qty::from_raw(gbp_qty), None, None).unwrap();
    let gbp: Vec<i64> = (0..FOLLOWERS).map(|i| open_qty(i, gbp_qty)).collect();
    every_follower_holds(&followers, "the second open", |i| {
        vec![copy(i, "EURUSD", Side::Buy, after_half[i], levels), copy(i, "GBPUSD", Side::Sell, gbp[i], (None, None))]
    })
    .await;

    // 5. The leader closes 0.4 of the 1 EURUSD left. Its own MT5 ticket stays.
    let leader_left = lead_qty / 2;
    leader.manual_close(ticket, Qty::from_raw(40_000_000)).unwrap();
    let after_second: Vec<i64> =
        after_half.iter().map(|&open| open - close_qty(open, 40_000_000, leader_left)).collect();
    every_follower_holds(&followers, "the second partial close", |i| {
        vec![copy(i, "EURUSD", Side::Buy, after_second[i], levels), copy(i, "GBPUSD", Side::Sell, gbp[i], (None, None))]
    })
    .await;

    // 6. The leader closes everything.
    leader.manual_close(ticket, Qty::from_raw(leader_left - 40_000_000)).unwrap();
    leader.manual_close(gbp_ticket, Qty::from_raw(gbp_qty)).unwrap();
    every_follower_holds(&followers, "the closes", |_| Vec::new()).await;

    // Every follower executed exactly its orders, each once, all carrying Mirror's id.
    for (index, sim) in followers.iter().enumerate() {
        let history = sim.history();
        assert!(history.iter().all(|deal| !deal.cid.is_empty()), "f{index:02}: a deal without Mirror's id");
        let mut cids: Vec<&str> = history.iter().map(|deal| deal.cid.as_str()).collect();
        cids.sort_unstable();
        let before = cids.len();
        cids.dedup();
        assert_eq!(before, cids.len(), "f{index:02}: an order executed twice: {history:?}");
        let expected = [
            (sym("EURUSD"), true, first[index]),
            (sym("EURUSD"), false, first[index] - after_half[index]),
            (sym("GBPUSD"), true, gbp[index]),
            (sym("EURUSD"), false, after_half[index] - after_second[index]),
            (sym("EURUSD"), false, after_second[index]),
            (sym("GBPUSD"), false, gbp[index]),
        ];
        let actual: Vec<(Symbol, bool, i64)> = history.iter().map(|d| (d.symbol, d.opening, d.qty.raw())).collect();
        assert_eq!(actual, expected, "f{index:02} ({:?})", follower_specs[index]);
    }
    let stats = running.handle.stats();
    assert_eq!((stats.rejects, stats.invalid_transitions, stats.unknown_outcomes), (0, 0, 0), "{stats:?}");
    assert_eq!(bridge.stats().protocol_errors, 0);
    running.stop().await;
}
