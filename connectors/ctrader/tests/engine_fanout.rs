//! The real engine copies one signal to a hundred cTrader follower accounts that share one
//! connection: every follower's order reaches the simulated server once, with its SL/TP set
//! after the fill, and the server never sees more requests in a second than cTrader allows.
//! A second scenario follows a cTrader leader's own trade into three cTrader followers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{EURUSD, account_id, p, q, session, simulator, sym};
use mirror_connector::Connector;
use mirror_connector_ctrader::{CtraderSession, ManualOrder};
use mirror_engine::account::{AccountSetup, RiskLimits};
use mirror_engine::connectors::{AccountWiring, ConnectorSettings, boot, spawn_account_tasks};
use mirror_engine::router::LinkSpec;
use mirror_engine::runtime::{Engine, EngineBuilder, RuntimeSettings};
use mirror_model::{
    AccountId, InstrumentTable, LeaderRef, LinkRules, OpenSignal, OrderKind, Origin, Ratio, Side, SignalAction,
    SizingRule, SourceId, TimeInForce,
};

const FOLLOWERS: usize = 100;

fn settings() -> ConnectorSettings {
    // A hundred accounts authorise through one rate-limited connection: a call may wait
    // its turn for a few seconds.
    ConnectorSettings {
        call_timeout: Duration::from_secs(60),
        boot_timeout: Duration::from_secs(60),
        reconnect_min: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(5),
    }
}

fn runtime() -> RuntimeSettings {
    RuntimeSettings { shards: 1, pin_cores: false, spin_iterations: 100, ..RuntimeSettings::default() }
}

fn engine_id(index: usize) -> AccountId {
    AccountId(10 + u32::try_from(index).unwrap())
}

/// Boots every connector (concurrently, as the engine's app does), builds the engine with
/// `links`, and wires each account's connector to its actor.
async fn start(
    connectors: &[Arc<dyn Connector>],
    leaders: &[usize],
    links: &[(Origin, usize)],
    sources: &[Origin],
) -> Engine {
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
    let mut builder = EngineBuilder::new(runtime());
    for source in sources {
        builder = builder.source(*source, [sym("EURUSD")]);
    }
    for (index, boot) in &booted {
        assert!(boot.error.is_none(), "account {index} did not boot: {:?}", boot.error);
        let session = boot.session.clone().unwrap();
        builder = builder.account(AccountSetup {
            id: engine_id(*index),
            name: Arc::from(format!("ct{index}").as_str()),
            mode: session.mode,
            instruments: InstrumentTable::from_iter(boot.instruments.iter().copied()),
            balance: boot.snapshot.balance,
            equity: boot.snapshot.equity,
            risk: RiskLimits::default(),
            inbound: Vec::new(),
            is_leader: leaders.contains(index),
            connected: true,
            positions: boot.positions.clone(),
        });
    }
    let rules = Arc::new(LinkRules { sizing: SizingRule::Multiplier { ratio: Ratio::ONE }, ..LinkRules::default() });
    for (leader, follower) in links {
        builder = builder.link(LinkSpec { leader: *leader, follower: engine_id(*follower), rules: Arc::clone(&rules) });
    }
    let (engine, queues) = builder.start().unwrap();
    let handle = engine.handle();
    for (account, commands) in queues {
        let index = usize::try_from(account.0 - 10).unwrap();
        let wiring = AccountWiring {
            account,
            name: Arc::from(format!("ct{index}").as_str()),
            connector: Arc::clone(&connectors[index]),
            commands,
            mailbox: handle.mailbox(account).unwrap(),
            engine: handle.clone(),
            connected: true,
            // Fan-out alone: no quote traffic beside it.
            symbols: Vec::new(),
        };
        spawn_account_tasks(wiring, settings());
    }
    engine
}

async fn stop(engine: Engine, session: CtraderSession) {
    tokio::task::spawn_blocking(move || engine.shutdown()).await.unwrap();
    session.shutdown().await;
}

/// Polls until `done` holds (or fails after `limit`).
async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_followers_on_one_connection_copy_a_signal_within_the_rate_limits() {
    let simulator = simulator(FOLLOWERS).await;
    let session = session(&simulator);
    let connectors: Vec<Arc<dyn Connector>> =
        (0..FOLLOWERS).map(|i| Arc::new(session.connector(account_id(i))) as Arc<dyn Connector>).collect();
    let source = Origin::Source(SourceId(7));
    let links: Vec<(Origin, usize)> = (0..FOLLOWERS).map(|i| (source, i)).collect();
    let engine = start(&connectors, &[], &links, &[source]).await;
    assert_eq!(session.stats().connections, 1, "one connection carries every account");
    let wire = session.wire_tap(10_000);

    let signal = OpenSignal {
        leader: LeaderRef(1),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q("0.3"),
        kind: OrderKind::Market,
        reference_price: Some(p("1.08508")),
        stop_loss: Some(p("1.08000")),
        take_profit: Some(p("1.09500")),
        time_in_force: TimeInForce::Gtc,
        contract_size: Some(q("100000")),
        from_pending: None,
        risk_bp: None,
    };
    engine.handle().submit(source, SignalAction::Open(signal), None, "hundred cTrader followers").unwrap();

    // Every follower holds its copy, protected once filled.
    eventually(Duration::from_secs(30), "every follower's copy", || {
        (0..FOLLOWERS).all(|i| {
            let held = simulator.positions(account_id(i));
            held.len() == 1 && held[0].stop_loss.is_some() && held[0].take_profit.is_some()
        })
    })
    .await;
    for index in 0..FOLLOWERS {
        let orders = simulator.orders(account_id(index));
        assert_eq!(orders.len(), 1, "follower {index}: {orders:?}");
        let client_id: mirror_model::ClientOrderId = orders[0].client_order_id.as_deref().unwrap().parse().unwrap();
        assert_eq!(client_id.account, engine_id(index), "follower {index} placed with its own deterministic id");
        assert_eq!((orders[0].side, orders[0].volume), (Side::Buy, 3_000_000));
        let position = simulator.positions(account_id(index))[0];
        assert_eq!(
            (position.qty, position.stop_loss, position.take_profit),
            (q("0.3"), Some(p("1.08")), Some(p("1.095")))
        );
    }
    // Within cTrader's limits all along: the server never counted more than 50 requests in
    // any second on the connection, and refused none.
    let stats = simulator.stats();
    assert!(stats.max_requests_per_window <= 50, "{stats:?}");
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert_eq!(session.stats().rate_limited, 0);
    // Fairly: the hundred orders went out one per account, before any account's second
    // request (its SL/TP amendment) could pass them.
    let sends: Vec<_> = wire.drain().collect();
    let orders: Vec<i64> = sends.iter().filter(|w| w.payload_type == 2106).filter_map(|w| w.account).collect();
    let mut distinct = orders.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!((orders.len(), distinct.len()), (FOLLOWERS, FOLLOWERS));
    // While the window has room, requests go as they come (an early follower's SL/TP
    // amendment may pass a late follower's order that has not reached the scheduler yet).
    // Once the limit holds requests back, every held follower's order goes before any
    // account's second request.
    let start = sends[0].at;
    let held: Vec<u32> = sends
        .iter()
        .filter(|w| w.at.duration_since(start) >= Duration::from_millis(500))
        .map(|w| w.payload_type)
        .collect();
    let held_orders = held.iter().filter(|t| **t == 2106).count();
    assert!(held_orders >= 40, "the limit held back {held_orders} orders");
    let last_order = held.iter().rposition(|t| *t == 2106).unwrap();
    let first_amend = held.iter().position(|t| *t == 2110).unwrap();
    assert!(last_order < first_amend, "an amendment overtook a follower's held order: {held:?}");
    let stats = engine.handle().stats();
    assert_eq!((stats.copies, stats.rejects, stats.invalid_transitions), (100, 0, 0));

    // A second signal, and the connection drops once the server has executed 30 of its
    // orders: answers lost, orders behind them never read. The connector settles what is in
    // doubt from the order history, the engine reconciles after the reconnect, and every
    // follower still ends with this copy exactly once.
    simulator.cut_after_requests(30);
    let second = OpenSignal {
        leader: LeaderRef(2),
        side: Side::Sell,
        qty: q("0.2"),
        stop_loss: None,
        take_profit: None,
        ..signal
    };
    engine.handle().submit(source, SignalAction::Open(second), None, "cut mid-burst").unwrap();
    eventually(Duration::from_secs(90), "every follower's second copy", || {
        (0..FOLLOWERS).all(|i| simulator.positions(account_id(i)).len() == 2)
    })
    .await;
    // Give any duplicate the time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for index in 0..FOLLOWERS {
        let orders = simulator.orders(account_id(index));
        assert_eq!(orders.len(), 2, "follower {index}: {orders:?}");
        assert_eq!((orders[1].side, orders[1].volume), (Side::Sell, 2_000_000));
        assert_ne!(orders[0].client_order_id, orders[1].client_order_id);
        assert_eq!(simulator.positions(account_id(index)).len(), 2);
    }
    let stats = simulator.stats();
    assert_eq!(stats.cuts, 1);
    assert!(session.stats().connections >= 2);
    assert!(stats.max_requests_per_window <= 50, "{stats:?}");
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    let stats = engine.handle().stats();
    assert_eq!((stats.copies, stats.rejects, stats.invalid_transitions), (200, 0, 0), "{stats:?}");
    stop(engine, session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctrader_leaders_own_trade_is_copied_by_ctrader_followers() {
    let simulator = simulator(4).await;
    let session = session(&simulator);
    let connectors: Vec<Arc<dyn Connector>> =
        (0..4).map(|i| Arc::new(session.connector(account_id(i))) as Arc<dyn Connector>).collect();
    let leader = Origin::Account(engine_id(0));
    let engine = start(&connectors, &[0], &[(leader, 1), (leader, 2), (leader, 3)], &[]).await;

    // The user buys 0.2 lot by hand on the leader account.
    let buy = ManualOrder {
        symbol_id: EURUSD,
        side: Side::Buy,
        volume: 2_000_000,
        kind: OrderKind::Market,
        stop_loss: Some(p("1.08000")),
        take_profit: None,
        label: None,
    };
    simulator.trade_by_hand(account_id(0), &buy).unwrap();
    eventually(Duration::from_secs(10), "the copies", || {
        (1..4).all(|i| {
            simulator.positions(account_id(i)).first().is_some_and(|p| p.qty == q("0.2") && p.stop_loss.is_some())
        })
    })
    .await;
    // The user closes it: the copies close.
    let position = simulator.positions(account_id(0))[0];
    simulator.close_by_hand(account_id(0), i64::try_from(position.id.0).unwrap(), 2_000_000).unwrap();
    eventually(Duration::from_secs(10), "the copies closed", || {
        (1..4).all(|i| simulator.positions(account_id(i)).is_empty())
    })
    .await;
    for index in 1..4 {
        let orders = simulator.orders(account_id(index));
        assert_eq!(orders.len(), 2, "follower {index}: an open and a close, once each: {orders:?}");
        assert!(orders[1].closing);
    }
    stop(engine, session).await;
}
