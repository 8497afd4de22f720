//! End-to-end scenarios on the simulated broker: bad signals, chains, the group drawdown rule,
//! pending orders, a dropped session.

use std::path::Path;
use std::time::Duration;

use mirror_engine::account::RiskMode;
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config;
use mirror_engine::runtime::SubmitError;
use mirror_model::{
    LeaderRef, OpenSignal, OrderKind, Origin, Price, Qty, Side, SignalAction, SourceId, Symbol, TimeInForce,
};

const MARKETS: &str = r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false

[sim]
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
"#;

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}
fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}
fn eurusd() -> Symbol {
    Symbol::new("EURUSD").unwrap()
}

/// A running scenario and its journal's folder, removed when it ends.
struct Scenario {
    running: Running,
    _journal: tempfile::TempDir,
}

impl std::ops::Deref for Scenario {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.running
    }
}

impl Scenario {
    async fn stop(self) {
        self.running.stop().await;
    }
}

async fn run(extra: &str) -> Scenario {
    let journal = tempfile::tempdir().unwrap();
    let storage = format!("\n[storage]\ndir = {:?}\n", journal.path().display().to_string());
    let text = format!("{MARKETS}{storage}{extra}");
    let resolved = config::load_str(Path::new("scenario.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    Scenario { running: start(&resolved, StartOptions::default()).await.unwrap(), _journal: journal }
}

async fn settle(running: &Running) {
    running.settle(Duration::from_millis(120), Duration::from_secs(10)).await;
}

fn held(running: &Running, account: &str) -> Vec<(Side, Qty)> {
    running.broker().positions(account).unwrap().iter().map(|p| (p.side, p.qty)).collect()
}

fn account(name: &str, balance: u32, extra: &str) -> String {
    format!("\n[[accounts]]\nname = \"{name}\"\nplatform = \"sim\"\nmode = \"hedging\"\nbalance = {balance}\n{extra}\n")
}

fn link(leader: &str, follower: &str, extra: &str) -> String {
    format!("\n[[links]]\nleader = \"{leader}\"\nfollower = \"{follower}\"\n{extra}\n")
}

fn open(symbol: &str, side: Side, qty: &str) -> OpenSignal {
    OpenSignal {
        leader: LeaderRef(1),
        symbol: Symbol::new(symbol).unwrap(),
        side,
        qty: q(qty),
        kind: OrderKind::Market,
        reference_price: Some(p("1.085")),
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        contract_size: Some(q("100000")),
        from_pending: None,
        risk_bp: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signals_are_refused_whole_counted_and_reach_no_follower() {
    let text = format!(
        "\n[[sources]]\nname = \"webhook\"\nsymbols = [\"EURUSD\"]\n{}{}{}{}",
        account("a", 10_000, ""),
        account("b", 10_000, ""),
        link("webhook", "a", ""),
        link("webhook", "b", "")
    );
    let running = run(&text).await;
    let source = Origin::Source(SourceId::from_name("webhook"));
    let submit = |action| running.handle.submit(source, action, None, "");

    let unknown = submit(SignalAction::Open(open("GBPUSD", Side::Buy, "1")));
    assert_eq!(unknown.unwrap_err().to_string(), format!("unknown symbol GBPUSD for {source}"));
    let zero = submit(SignalAction::Open(open("EURUSD", Side::Buy, "0")));
    assert_eq!(zero.unwrap_err().to_string(), "invalid signal: qty must be positive, got 0");
    let negative = submit(SignalAction::Open(open("EURUSD", Side::Sell, "-2")));
    assert_eq!(negative.unwrap_err().to_string(), "invalid signal: qty must be positive, got -2");
    let mut wrong_stop = open("EURUSD", Side::Buy, "1");
    wrong_stop.stop_loss = Some(p("1.09"));
    let wrong_stop = submit(SignalAction::Open(wrong_stop));
    assert_eq!(
        wrong_stop.unwrap_err().to_string(),
        "invalid signal: stop_loss 1.09 is on the wrong side of the entry 1.085 for a buy"
    );
    let mut zero_price = open("EURUSD", Side::Buy, "1");
    zero_price.kind = OrderKind::Limit { price: Price::ZERO };
    assert!(matches!(submit(SignalAction::Open(zero_price)), Err(SubmitError::Invalid(_))));
    let stranger = running.handle.submit(
        Origin::Source(SourceId::from_name("nobody")),
        SignalAction::Close { leader: LeaderRef(1) },
        None,
        "",
    );
    assert!(matches!(stranger, Err(SubmitError::UnknownOrigin(_))));
    // NaN and infinities never become prices in the first place.
    assert_eq!(Price::from_f64(f64::NAN).unwrap_err().to_string(), "expected a finite number, got NaN");
    assert_eq!(Price::from_f64(f64::INFINITY).unwrap_err().to_string(), "expected a finite number, got inf");

    settle(&running).await;
    let stats = running.handle.stats();
    assert_eq!((stats.signals_refused, stats.signals, stats.copies), (6, 0, 0));
    assert!(held(&running, "a").is_empty() && held(&running, "b").is_empty());

    // A good signal from the same source goes through to both.
    submit(SignalAction::Open(open("EURUSD", Side::Buy, "0.5"))).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "a"), vec![(Side::Buy, q("0.5"))]);
    assert_eq!(held(&running, "b"), vec![(Side::Buy, q("0.5"))]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_leads_passes_copies_down_the_chain() {
    let text = format!(
        "{}{}{}{}{}",
        account("top", 100_000, ""),
        account("middle", 100_000, ""),
        account("bottom", 100_000, ""),
        link("top", "middle", "sizing = { mode = \"multiplier\", ratio = 0.5 }"),
        link("middle", "bottom", "sizing = { mode = \"multiplier\", ratio = 0.5 }\nreverse = true")
    );
    let running = run(&text).await;
    running.broker().manual_order("top", eurusd(), Side::Buy, q("2"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "middle"), vec![(Side::Buy, q("1"))]);
    assert_eq!(held(&running, "bottom"), vec![(Side::Sell, q("0.5"))]);
    let position = running.broker().positions("top").unwrap()[0];
    running.broker().manual_close("top", position.id, position.qty).unwrap();
    settle(&running).await;
    assert!(held(&running, "middle").is_empty() && held(&running, "bottom").is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prototypes_three_percent_rule_flattens_the_master_and_every_follower() {
    let text = format!(
        "\n[risk.master]\nflatten_group_at_drawdown_pct = 3\n{}{}{}{}{}{}",
        account("master", 10_000, "risk = \"master\""),
        account("f1", 10_000, ""),
        account("f2", 10_000, ""),
        account("chained", 10_000, ""),
        link("master", "f1", "") + &link("master", "f2", "sizing = { mode = \"multiplier\", ratio = 0.5 }"),
        link("f1", "chained", "")
    );
    let running = run(&text).await;
    running.broker().manual_order("master", eurusd(), Side::Buy, q("2"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    for (name, qty) in [("f1", "2"), ("f2", "1"), ("chained", "2")] {
        assert_eq!(held(&running, name), vec![(Side::Buy, q(qty))], "{name}");
    }
    // The master bought 2 lots at 1.08508 on 10,000: $2 a tick. Bid 1.08359 is 149 ticks
    // down, equity 9,702 (2.98 %): nothing happens.
    running.broker().set_price(&eurusd(), p("1.08359")).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "f1"), vec![(Side::Buy, q("2"))]);
    assert!(running.accounts().await.iter().all(|v| v.summary.mode == RiskMode::Normal));
    // One tick more: equity 9,700, exactly 3 % below the day's high of 10,000.
    running.broker().set_price(&eurusd(), p("1.08358")).unwrap();
    settle(&running).await;
    for name in ["master", "f1", "f2", "chained"] {
        assert!(held(&running, name).is_empty(), "{name} is flattened");
    }
    let views = running.accounts().await;
    assert!(views.iter().all(|v| v.summary.mode == RiskMode::Frozen), "{views:?}");
    // Frozen for the day: the master's next trade is not copied.
    running.broker().manual_order("master", eurusd(), Side::Buy, q("1"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    assert!(held(&running, "f1").is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_orders_are_copied_triggered_and_cancelled() {
    let text = format!(
        "{}{}{}{}{}",
        account("leader", 100_000, ""),
        account("copies", 100_000, ""),
        account("waits", 100_000, ""),
        link("leader", "copies", ""),
        link("leader", "waits", "copy_pending = false")
    );
    let running = run(&text).await;
    let broker = running.broker();
    let limit = OrderKind::Limit { price: p("1.08400") };
    broker.manual_order("leader", eurusd(), Side::Buy, q("1"), limit, None, None).unwrap();
    settle(&running).await;
    let copies = running.accounts().await.into_iter().find(|v| v.name.as_ref() == "copies").unwrap();
    assert_eq!(copies.summary.live_orders, 1, "the limit is copied as a limit");
    assert!(held(&running, "waits").is_empty());
    // The market comes down to both limits: each fills at its own broker; the follower that
    // does not copy pending orders copies the leader's fill at market.
    broker.set_price(&eurusd(), p("1.08390")).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "copies"), vec![(Side::Buy, q("1"))]);
    assert_eq!(held(&running, "waits"), vec![(Side::Buy, q("1"))]);
    assert_eq!(running.broker().history("copies").unwrap().len(), 1, "no second order for the leader's fill");
    // A second limit is cancelled by the leader before it triggers: so is the copy.
    let order = broker
        .manual_order("leader", eurusd(), Side::Sell, q("1"), OrderKind::Limit { price: p("1.09") }, None, None)
        .unwrap();
    settle(&running).await;
    broker.manual_cancel("leader", order).unwrap();
    settle(&running).await;
    let copies = running.accounts().await.into_iter().find(|v| v.name.as_ref() == "copies").unwrap();
    assert_eq!(copies.summary.live_orders, 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_reconnects_and_copying_resumes() {
    let text = format!("{}{}{}", account("leader", 100_000, ""), account("f", 100_000, ""), link("leader", "f", ""));
    let running = run(&text).await;
    running.broker().cut_session("f").unwrap();
    let follower_connected =
        || async { running.accounts().await.into_iter().find(|v| v.name.as_ref() == "f").unwrap().summary.connected };
    // The engine sees the drop, then reconnects (backing off from 200 ms).
    for wanted in [false, true] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while follower_connected().await != wanted {
            assert!(tokio::time::Instant::now() < deadline, "the follower never became connected = {wanted}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    running.broker().manual_order("leader", eurusd(), Side::Sell, q("0.7"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "f"), vec![(Side::Sell, q("0.7"))]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_netting_follower_tracks_opposite_leader_positions_through_a_flip() {
    let netting = "\n[[accounts]]\nname = \"net\"\nplatform = \"sim\"\nmode = \"netting\"\nbalance = 100000\n";
    let text = format!("{}{netting}{}", account("leader", 100_000, ""), link("leader", "net", ""));
    let running = run(&text).await;
    let broker = running.broker();
    broker.manual_order("leader", eurusd(), Side::Buy, q("2"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    broker.manual_order("leader", eurusd(), Side::Sell, q("3"), OrderKind::Market, None, None).unwrap();
    settle(&running).await;
    // Leader: long 2 and short 3 (hedging). Follower: net short 1.
    assert_eq!(held(&running, "net"), vec![(Side::Sell, q("1"))]);
    let leader = broker.positions("leader").unwrap();
    let long = leader.iter().find(|p| p.side == Side::Buy).unwrap();
    broker.manual_close("leader", long.id, long.qty).unwrap();
    settle(&running).await;
    assert_eq!(held(&running, "net"), vec![(Side::Sell, q("3"))], "closing the long copy sells 2 more");
    let short = broker.positions("leader").unwrap()[0];
    broker.manual_close("leader", short.id, short.qty).unwrap();
    settle(&running).await;
    assert!(held(&running, "net").is_empty());
    let stats = running.handle.stats();
    assert_eq!(stats.skipped(mirror_model::SkipCategory::NoCopy), 0, "every close found its copy");
    running.stop().await;
}
