//! One leader, a hundred followers with mixed rules, and one guarded follower, on the
//! simulated broker: open, modify SL/TP, partial close 50 %, a drawdown trip, a second open,
//! close. Every follower must end with exactly the positions and the execution history that
//! its rules call for. Expected sizes are computed here with plain integer arithmetic, not
//! with the engine's sizing code.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use mirror_connector_sim::SimExecution;
use mirror_engine::account::RiskMode;
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config;
use mirror_model::{OrderKind, Position, Price, Qty, Side, SkipCategory, Symbol};

const FOLLOWERS: usize = 100;
const STEP: i128 = 1_000_000; // 0.01 lot in raw units
const LEADER_QTY: i128 = 200_000_000; // 2 lots

fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}
fn q(raw: i128) -> Qty {
    Qty::from_raw(i64::try_from(raw).unwrap())
}
fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

/// Rounds an exact raw quantity `num / den` down to 0.01 lot.
fn floor_lots(num: i128, den: i128) -> i128 {
    num / den / STEP * STEP
}

fn kind(index: usize) -> usize {
    index % 10
}

fn name(index: usize) -> String {
    format!("f{index:03}")
}

fn balance(index: usize) -> i64 {
    match kind(index) {
        1 => 200_000,
        3 => 10_000 + index as i64 * 1_000,
        4 => 20_000 + index as i64 * 500,
        5 => 30_000 + index as i64 * 700,
        6 => 40_000,
        _ => 50_000,
    }
}

fn config_text() -> String {
    let mut text = String::from(
        r#"
[engine]
shards = 2
spin_iterations = 200
pin_cores = false
status_interval_ms = 1000

[sim]
seed = 1
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 0
slippage_ticks_max = 0

[instruments.EURUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.08500"
spread_ticks = 8
volatility_ticks = 0

[instruments.GBPUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.26400"
spread_ticks = 12
volatility_ticks = 0

[risk.guard]
max_daily_drawdown_pct = 2
on_breach = "freeze"
flatten_on_breach = true

[[accounts]]
name = "lead"
platform = "sim"
mode = "hedging"
balance = 100000

[[accounts]]
name = "guard"
platform = "sim"
mode = "hedging"
balance = 10000
risk = "guard"

[[links]]
leader = "lead"
follower = "guard"
sizing = { mode = "multiplier", ratio = 10 }
"#,
    );
    for index in 0..FOLLOWERS {
        let mode = if matches!(kind(index), 1 | 4) { "netting" } else { "hedging" };
        let _ = write!(
            text,
            "\n[[accounts]]\nname = \"{}\"\nplatform = \"sim\"\nmode = \"{mode}\"\nbalance = {}\n",
            name(index),
            balance(index)
        );
        match kind(index) {
            6 => text.push_str(
                "[accounts.overrides.EURUSD]\ncontract_size = 1000\ntick_value = \"0.01\"\nmax_qty = 1000\n\
                 [accounts.overrides.GBPUSD]\ncontract_size = 1000\ntick_value = \"0.01\"\nmax_qty = 1000\n",
            ),
            8 => text.push_str("symbol_suffix = \".r\"\n"),
            _ => {}
        }
        let rules = match kind(index) {
            0 => "sizing = { mode = \"multiplier\", ratio = 0.5 }",
            1 => "sizing = { mode = \"multiplier\", ratio = 2 }",
            2 => "sizing = { mode = \"fixed\", qty = \"0.3\" }",
            3 => "sizing = { mode = \"balance_ratio\" }",
            4 => "sizing = { mode = \"equity_ratio\", multiplier = 1.5 }",
            5 => "sizing = { mode = \"risk_percent\", percent = 1 }",
            6 => "sizing = { mode = \"notional\" }",
            7 => "reverse = true",
            8 => "",
            _ => "stop_loss = { distance = \"0.002\" }\ntake_profit = { distance = \"0.004\" }",
        };
        let _ = write!(text, "\n[[links]]\nleader = \"lead\"\nfollower = \"{}\"\n{rules}\n", name(index));
    }
    text
}

/// What one follower should hold after a leader open, given the account snapshots the
/// signal was sized from.
struct Open {
    symbol: Symbol,
    side: Side,
    qty: i128,
    stop_loss: Price,
    take_profit: Price,
}

struct Leader {
    qty: i128,
    symbol: &'static str,
    fill: Price,
    stop_loss: Price,
    take_profit: Price,
    balance: i128,
    equity: i128,
}

fn expected_open(index: usize, leader: &Leader, follower_balance: i128, follower_equity: i128) -> Open {
    let base = Open {
        symbol: sym(leader.symbol),
        side: Side::Buy,
        qty: leader.qty,
        stop_loss: leader.stop_loss,
        take_profit: leader.take_profit,
    };
    match kind(index) {
        0 => Open { qty: floor_lots(leader.qty, 2), ..base },
        1 => Open { qty: leader.qty * 2, ..base },
        2 => Open { qty: 30_000_000, ..base },
        3 => Open { qty: floor_lots(leader.qty * follower_balance, leader.balance), ..base },
        4 => Open { qty: floor_lots(leader.qty * follower_equity * 3, leader.equity * 2), ..base },
        5 => {
            // 1 % of equity ÷ (stop distance in ticks × $1 per tick per lot).
            let distance_ticks = i128::from((leader.fill - leader.stop_loss).raw()) / 1_000;
            Open { qty: floor_lots(follower_equity / 100 * 100_000_000, distance_ticks * 100_000_000), ..base }
        }
        6 => Open { qty: leader.qty * 100, ..base },
        7 => Open { side: Side::Sell, stop_loss: leader.take_profit, take_profit: leader.stop_loss, ..base },
        8 => Open { symbol: sym(&format!("{}.r", leader.symbol)), ..base },
        _ => Open {
            stop_loss: Price::from_raw(leader.fill.raw() - 200_000),
            take_profit: Price::from_raw(leader.fill.raw() + 400_000),
            ..base
        },
    }
}

async fn settle(running: &Running) {
    running.settle(Duration::from_millis(150), Duration::from_secs(20)).await;
}

fn snapshot(running: &Running, account: &str) -> (i128, i128) {
    let snapshot = running.broker().account_snapshot(account).unwrap();
    (i128::from(snapshot.balance.raw()), i128::from(snapshot.equity.raw()))
}

fn positions_on(running: &Running, account: &str, symbol: &Symbol) -> Vec<Position> {
    running.broker().positions(account).unwrap().into_iter().filter(|p| p.symbol == *symbol).collect()
}

fn assert_holds(running: &Running, index: usize, open: &Open, qty: i128) {
    let held = positions_on(running, &name(index), &open.symbol);
    assert_eq!(held.len(), 1, "{} (kind {}) holds {held:?}", name(index), kind(index));
    let position = held[0];
    assert_eq!(
        (position.side, position.qty, position.stop_loss, position.take_profit),
        (open.side, q(qty), Some(open.stop_loss), Some(open.take_profit)),
        "{} (kind {})",
        name(index),
        kind(index)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_followers_copy_open_modify_partial_close_and_close_exactly() {
    // The journal is on, with write-ahead: every copy below waits for its input to be on disk.
    let journal = tempfile::tempdir().unwrap();
    let text = format!("{}\n[storage]\ndir = {:?}\n", config_text(), journal.path().display().to_string());
    let resolved = config::load_str(Path::new("hundred.toml"), &text).unwrap();
    let running = start(&resolved, StartOptions::default()).await.unwrap();
    let broker = running.broker().clone();
    let eurusd = sym("EURUSD");
    let gbpusd = sym("GBPUSD");

    // 1. The leader buys 2 EURUSD at the ask (1.08508), stop 1.08000, target 1.09500.
    let balances: Vec<(i128, i128)> = (0..FOLLOWERS).map(|i| snapshot(&running, &name(i))).collect();
    let (leader_balance, leader_equity) = snapshot(&running, "lead");
    broker
        .manual_order("lead", eurusd, Side::Buy, q(LEADER_QTY), OrderKind::Market, Some(p("1.08")), Some(p("1.095")))
        .unwrap();
    settle(&running).await;
    let leader_position = broker.positions("lead").unwrap()[0];
    let first = Leader {
        qty: LEADER_QTY,
        symbol: "EURUSD",
        fill: p("1.08508"),
        stop_loss: p("1.08"),
        take_profit: p("1.095"),
        balance: leader_balance,
        equity: leader_equity,
    };
    let opens: Vec<Open> = (0..FOLLOWERS).map(|i| expected_open(i, &first, balances[i].0, balances[i].1)).collect();
    for (index, open) in opens.iter().enumerate() {
        assert!(open.qty > 0, "kind {} sizes to zero", kind(index));
        assert_holds(&running, index, open, open.qty);
    }
    assert_eq!(positions_on(&running, "guard", &eurusd)[0].qty, q(LEADER_QTY * 10));

    // 2. The leader moves its stop to 1.08200 and its target to 1.09800.
    broker.manual_modify("lead", leader_position.id, Some(p("1.082")), Some(p("1.098"))).unwrap();
    settle(&running).await;
    let moved: Vec<Open> = opens
        .iter()
        .enumerate()
        .map(|(index, open)| match kind(index) {
            7 => Open { stop_loss: p("1.098"), take_profit: p("1.082"), symbol: open.symbol, ..*open },
            9 => Open { symbol: open.symbol, ..*open },
            _ => Open { stop_loss: p("1.082"), take_profit: p("1.098"), symbol: open.symbol, ..*open },
        })
        .collect();
    for (index, open) in moved.iter().enumerate() {
        assert_holds(&running, index, open, open.qty);
    }

    // 3. The leader closes half: every follower closes half of its copy, rounded down.
    broker.manual_close("lead", leader_position.id, q(LEADER_QTY / 2)).unwrap();
    settle(&running).await;
    let halves: Vec<i128> = moved.iter().map(|open| open.qty / 2 / STEP * STEP).collect();
    for (index, open) in moved.iter().enumerate() {
        assert_holds(&running, index, open, open.qty - halves[index]);
    }

    // 4. EURUSD drops 5.8 pips: the guarded follower (10× size, 2 % drawdown limit) trips,
    //    is flattened and frozen; everyone else keeps their copy.
    broker.set_price(&eurusd, p("1.0845")).unwrap();
    settle(&running).await;
    assert!(broker.positions("guard").unwrap().is_empty(), "the guarded follower is flattened");
    let views = running.accounts().await;
    let guard = views.iter().find(|v| v.name.as_ref() == "guard").unwrap();
    assert_eq!(guard.summary.mode, RiskMode::Frozen);
    for (index, open) in moved.iter().enumerate() {
        assert_holds(&running, index, open, open.qty - halves[index]);
    }

    // 5. The leader buys 1 GBPUSD (ask 1.26412), stop 1.26000, target 1.27000: everyone but
    //    the frozen follower copies it, sized from the balances and equities of now.
    let balances: Vec<(i128, i128)> = (0..FOLLOWERS).map(|i| snapshot(&running, &name(i))).collect();
    let (leader_balance, leader_equity) = snapshot(&running, "lead");
    let skipped_before = running.handle.stats().skipped(SkipCategory::Risk);
    broker
        .manual_order("lead", gbpusd, Side::Buy, q(LEADER_QTY / 2), OrderKind::Market, Some(p("1.26")), Some(p("1.27")))
        .unwrap();
    settle(&running).await;
    let second = Leader {
        qty: LEADER_QTY / 2,
        symbol: "GBPUSD",
        fill: p("1.26412"),
        stop_loss: p("1.26"),
        take_profit: p("1.27"),
        balance: leader_balance,
        equity: leader_equity,
    };
    let seconds: Vec<Open> = (0..FOLLOWERS).map(|i| expected_open(i, &second, balances[i].0, balances[i].1)).collect();
    for (index, open) in seconds.iter().enumerate() {
        assert_holds(&running, index, open, open.qty);
    }
    assert!(broker.positions("guard").unwrap().is_empty(), "the frozen follower copies nothing");
    assert_eq!(running.handle.stats().skipped(SkipCategory::Risk), skipped_before + 1, "one frozen skip");

    // 6. The leader closes both positions: every follower ends flat.
    for position in broker.positions("lead").unwrap() {
        broker.manual_close("lead", position.id, position.qty).unwrap();
    }
    settle(&running).await;
    for index in 0..FOLLOWERS {
        assert!(broker.positions(&name(index)).unwrap().is_empty(), "{} still holds positions", name(index));
    }

    // Every follower's execution history, in order: open, half of it, the second open, the
    // rest of the first, the second's close.
    for index in 0..FOLLOWERS {
        let history: Vec<SimExecution> = broker.history(&name(index)).unwrap();
        let (open, second) = (&moved[index], &seconds[index]);
        let closing = open.side.opposite();
        let expected = [
            (open.symbol, open.side, open.qty, true),
            (open.symbol, closing, halves[index], false),
            (second.symbol, second.side, second.qty, true),
            (open.symbol, closing, open.qty - halves[index], false),
            (second.symbol, second.side.opposite(), second.qty, false),
        ];
        let actual: Vec<_> = history.iter().map(|e| (e.symbol, e.side, i128::from(e.qty.raw()), e.opening)).collect();
        assert_eq!(actual, expected, "history of {} (kind {})", name(index), kind(index));
        assert!(history.iter().all(|e| e.client_id.is_some()), "every follower order carries Mirror's id");
    }
    let guard_history: Vec<(Qty, bool)> = broker.history("guard").unwrap().iter().map(|e| (e.qty, e.opening)).collect();
    assert_eq!(
        guard_history,
        vec![(q(LEADER_QTY * 10), true), (q(LEADER_QTY * 5), false), (q(LEADER_QTY * 5), false)],
        "the guarded follower: open 20, half closed with the leader, the rest by the flatten"
    );

    let stats = running.handle.stats();
    assert_eq!(stats.breaches, 1);
    assert_eq!(stats.rejects, 0);
    assert_eq!(stats.invalid_transitions, 0);
    running.stop().await;
}
