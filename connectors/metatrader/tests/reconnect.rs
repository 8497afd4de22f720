//! Terminals that lose their connection are reconciled with no duplicate and no lost order:
//! a command executed whose `ack` was lost is learned from the EA's journal (not executed
//! again), a command that never arrived is sent again and executed once, changes made while
//! the terminal was away are reported from the snapshot, and the engine, copying through
//! terminals that drop at the worst moment, ends with exactly one copy each.

mod common;

use std::time::Duration;

use common::engine::start;
use common::{Spec, bridge, eventually, p, q, sym, terminal};
use mirror_connector::{ConnectionState, Connector, ConnectorEvent, EventStream, OrderReportKind};
use mirror_connector_metatrader::sim::{Fault, TerminalSim};
use mirror_connector_metatrader::{MtConnector, comment_id};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, LinkRules, OrderIntent, OrderKind, OrderRequest, Platform, PositionChange,
    Side, SignalId, TimeInForce,
};

const WAIT: Duration = Duration::from_secs(10);

fn buy(signal: u64, qty: &str) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::new(SignalId(signal), AccountId(5), 0),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q(qty),
        kind: OrderKind::Market,
        stop_loss: Some(p("1.08")),
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    }
}

/// Events until one matches `wanted` (returned with everything before it).
async fn until(events: &EventStream, wanted: impl Fn(&ConnectorEvent) -> bool) -> Vec<ConnectorEvent> {
    let mut seen = Vec::new();
    // One deadline for the whole wait: quotes and account updates keep arriving meanwhile.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv_async())
            .await
            .unwrap_or_else(|_| panic!("no matching event; seen {seen:?}"))
            .unwrap();
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn fills_of(events: &[ConnectorEvent], client_id: ClientOrderId) -> Vec<mirror_model::Fill> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Order(r) if r.client_id == Some(client_id) => match r.kind {
                OrderReportKind::Filled(fill) => Some(fill),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

async fn online(
    platform: Platform,
    reconnect_ms: u64,
) -> (mirror_connector_metatrader::MtBridge, TerminalSim, MtConnector) {
    let spec = Spec::new("t", platform, AccountMode::Hedging);
    let (bridge, tls) = bridge(std::slice::from_ref(&spec), true).await;
    let mut config_sim = terminal(&spec, 1, bridge.local_addr(), tls.clone());
    if reconnect_ms > 50 {
        drop(config_sim);
        config_sim = slow_terminal(&spec, bridge.local_addr(), tls, reconnect_ms);
    }
    let connector = bridge.connector("t").unwrap();
    connector.connect().await.unwrap();
    (bridge, config_sim, connector)
}

fn slow_terminal(
    spec: &Spec,
    addr: std::net::SocketAddr,
    tls: Option<mirror_connector_metatrader::sim::SimTls>,
    reconnect_ms: u64,
) -> TerminalSim {
    use mirror_connector_metatrader::sim::TerminalSimConfig;
    TerminalSim::start(TerminalSimConfig {
        name: spec.name.clone(),
        platform: spec.platform,
        mode: spec.mode,
        login: 5_000_001,
        currency: "USD".into(),
        balance: mirror_model::Money::parse("100000").unwrap(),
        token: common::token(&spec.name),
        bridge: addr,
        tls,
        symbols: common::markets(),
        reconnect_min: Duration::from_millis(reconnect_ms),
        reconnect_max: Duration::from_millis(reconnect_ms),
        magic: 7_460_531,
        first_ticket: 1_000_000,
    })
}

async fn ack_lost_after_execution(platform: Platform) {
    let (bridge, sim, connector) = online(platform, 50).await;
    let events = connector.events();
    let order = buy(77, "0.1");
    sim.inject(Fault::DropAfterExecute);
    let error = connector.place(&order).await.unwrap_err();
    assert!(error.outcome_unknown(), "{error}");
    // Back online, the journal says the order was executed: its fill is reported once,
    // before the position it opened.
    until(&events, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))).await;
    let seen = until(&events, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Connected))).await;
    let fills = fills_of(&seen, order.client_id);
    assert_eq!(fills.len(), 1, "{seen:?}");
    assert_eq!(fills[0].qty, q("0.1"));
    let fill_at = seen.iter().position(|e| matches!(e, ConnectorEvent::Order(_))).unwrap();
    let opened_at = seen
        .iter()
        .position(|e| matches!(e, ConnectorEvent::Position(effect) if effect.change == PositionChange::Opened))
        .unwrap();
    assert!(fill_at < opened_at, "{seen:?}");
    assert_eq!(sim.sessions(), 2);
    let stats = bridge.stats();
    assert_eq!((stats.resolved_from_journal, stats.resent), (1, 0));
    // The engine's resend of the same id is answered from the journal, not executed.
    let again = connector.place(&order).await.unwrap();
    let positions = connector.open_positions().await.unwrap();
    assert_eq!(positions.len(), 1);
    assert_eq!((positions[0].id, positions[0].qty), (fills[0].position, q("0.1")));
    assert_eq!(sim.history().len(), 1, "executed once: {:?}", sim.history());
    assert_eq!(sim.history()[0].cid, comment_id(order.client_id));
    assert!(again.broker_id.0 > 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fills_of(&events.drain().collect::<Vec<_>>(), order.client_id).is_empty(), "no second fill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mt5_an_ack_lost_with_the_connection_is_learned_from_the_journal_and_not_executed_again() {
    ack_lost_after_execution(Platform::Mt5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mt4_an_ack_lost_with_the_connection_is_learned_from_the_journal_and_not_executed_again() {
    ack_lost_after_execution(Platform::Mt4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_never_arrived_is_sent_again_and_executed_once() {
    let (bridge, sim, connector) = online(Platform::Mt5, 50).await;
    let events = connector.events();
    let order = buy(78, "0.2");
    sim.inject(Fault::DropBeforeExecute);
    let error = connector.place(&order).await.unwrap_err();
    assert!(error.outcome_unknown(), "{error}");
    let seen =
        until(&events, |e| matches!(e, ConnectorEvent::Position(effect) if effect.change == PositionChange::Opened))
            .await;
    assert_eq!(fills_of(&seen, order.client_id).len(), 1, "{seen:?}");
    let stats = bridge.stats();
    assert_eq!((stats.resent, stats.resolved_from_journal), (1, 0));
    assert_eq!(sim.commands(), 2, "the first sending was lost, the second executed");
    assert_eq!(sim.history().len(), 1);
    assert_eq!(sim.history()[0].qty, q("0.2"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fills_of(&events.drain().collect::<Vec<_>>(), order.client_id).is_empty(), "no second fill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mt4_partial_close_lost_with_the_connection_keeps_the_position_id_across_the_new_ticket() {
    let (_bridge, sim, connector) = online(Platform::Mt4, 50).await;
    let events = connector.events();
    let open = buy(79, "0.3");
    connector.place(&open).await.unwrap();
    let seen = until(&events, |e| matches!(e, ConnectorEvent::Position(_))).await;
    let position = fills_of(&seen, open.client_id)[0].position;
    let ticket = sim.positions()[0].ticket;
    let close = mirror_connector::CloseRequest {
        client_id: ClientOrderId::new(SignalId(80), AccountId(5), 1),
        position,
        symbol: sym("EURUSD"),
        qty: q("0.1"),
    };
    sim.inject(Fault::DropAfterExecute);
    assert!(connector.close(&close).await.unwrap_err().outcome_unknown());
    let seen = until(&events, |e| matches!(e, ConnectorEvent::Position(_))).await;
    let fills = fills_of(&seen, close.client_id);
    assert_eq!(fills.len(), 1, "{seen:?}");
    assert_eq!((fills[0].qty, fills[0].position), (q("0.1"), position));
    let Some(ConnectorEvent::Position(effect)) = seen.last() else { unreachable!() };
    assert_eq!(effect.change, PositionChange::Reduced { closed: q("0.1"), qty_before: q("0.3") });
    assert_eq!(effect.position.id, position, "the same position, whatever its ticket");
    let now = &sim.positions()[0];
    assert_ne!(now.ticket, ticket);
    assert_eq!(now.comment, format!("from #{ticket}"));
    // Closing the rest by the position's id reaches the new ticket.
    let rest = mirror_connector::CloseRequest {
        client_id: ClientOrderId::new(SignalId(81), AccountId(5), 1),
        qty: q("0.2"),
        ..close
    };
    connector.close(&rest).await.unwrap();
    eventually("flat", WAIT, || sim.positions().is_empty()).await;
    assert_eq!(sim.history().len(), 3, "open, partial close, close: {:?}", sim.history());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trades_made_while_the_terminal_was_away_are_reported_from_its_snapshot() {
    let (_bridge, sim, connector) = online(Platform::Mt5, 400).await;
    let events = connector.events();
    let ticket = sim.manual_open("EURUSD", Side::Buy, q("1"), None, None).unwrap();
    until(&events, |e| matches!(e, ConnectorEvent::Position(_))).await;
    sim.drop_connection();
    eventually("the session to drop", WAIT, || !sim.is_connected()).await;
    // While the terminal is away: half closed by hand, a stop set, and a new sell.
    sim.manual_close(ticket, q("0.5")).unwrap();
    sim.manual_modify(ticket, Some(p("1.07")), None).unwrap();
    sim.manual_open("GBPUSD", Side::Sell, q("0.3"), None, None).unwrap();
    until(&events, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))).await;
    let seen = until(&events, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Connected))).await;
    let changes: Vec<PositionChange> = seen
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Position(effect) => Some(effect.change),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            PositionChange::Reduced { closed: q("0.5"), qty_before: q("1") },
            PositionChange::ProtectionChanged,
            PositionChange::Opened
        ],
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_copies_through_terminals_that_drop_at_the_worst_moment_exactly_once() {
    let specs = [
        Spec::new("lead", Platform::Mt5, AccountMode::Hedging),
        Spec::new("mt4", Platform::Mt4, AccountMode::Hedging),
        Spec::new("mt5", Platform::Mt5, AccountMode::Hedging),
        Spec::new("net", Platform::Mt5, AccountMode::Netting),
    ];
    let (bridge, tls) = bridge(&specs, true).await;
    let sims: Vec<TerminalSim> =
        specs.iter().enumerate().map(|(i, s)| terminal(s, i as u64, bridge.local_addr(), tls.clone())).collect();
    eventually("every terminal online", WAIT, || sims.iter().all(TerminalSim::is_connected)).await;
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let links =
        ["mt4", "mt5", "net"].iter().map(|f| ("lead".to_owned(), (*f).to_owned(), LinkRules::default())).collect();
    let running = start(&bridge, &names, links).await;
    let (leader, mt4, mt5, net) = (&sims[0], &sims[1], &sims[2], &sims[3]);

    // The MT4 follower executes the copy and drops before its ack; the MT5 follower drops as
    // the copy arrives; the netting follower drops when its close arrives.
    mt4.inject(Fault::DropAfterExecute);
    mt5.inject(Fault::DropBeforeExecute);
    let ticket = leader.manual_open("EURUSD", Side::Buy, q("1.5"), Some(p("1.08")), None).unwrap();
    for (name, sim) in [("mt4", mt4), ("mt5", mt5), ("net", net)] {
        eventually(&format!("{name} to hold its copy"), WAIT, || {
            sim.positions().iter().map(|p| (p.side, p.qty)).collect::<Vec<_>>() == vec![(Side::Buy, q("1.5"))]
        })
        .await;
    }
    net.inject(Fault::DropAfterExecute);
    leader.manual_close(ticket, q("1.5")).unwrap();
    for (name, sim) in [("mt4", mt4), ("mt5", mt5), ("net", net)] {
        eventually(&format!("{name} to be flat"), WAIT, || sim.positions().is_empty()).await;
    }
    // A second trade goes through normally afterwards: the engine knows every order's end.
    leader.manual_open("EURUSD", Side::Sell, q("0.4"), None, None).unwrap();
    for (name, sim) in [("mt4", mt4), ("mt5", mt5), ("net", net)] {
        eventually(&format!("{name} to copy the sell"), WAIT, || {
            sim.positions().iter().map(|p| (p.side, p.qty)).collect::<Vec<_>>() == vec![(Side::Sell, q("0.4"))]
        })
        .await;
        let deals: Vec<(bool, mirror_model::Qty)> = sim.history().iter().map(|d| (d.opening, d.qty)).collect();
        assert_eq!(deals, vec![(true, q("1.5")), (false, q("1.5")), (true, q("0.4"))], "{name}: {:?}", sim.history());
    }
    for (name, sim) in [("mt4", mt4), ("mt5", mt5), ("net", net)] {
        assert_eq!(sim.sessions(), 2, "{name} reconnected once");
    }
    assert_eq!(leader.sessions(), 1);
    let stats = running.handle.stats();
    assert_eq!(stats.invalid_transitions, 0, "{stats:?}");
    assert_eq!(stats.rejects, 0, "{stats:?}");
    assert_eq!(stats.unknown_outcomes, 3, "one per dropped command: {stats:?}");
    let bridge_stats = bridge.stats();
    assert_eq!((bridge_stats.resolved_from_journal, bridge_stats.resent), (2, 1), "{bridge_stats:?}");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_keeps_the_terminal_out_until_connect() {
    let (bridge, sim, connector) = online(Platform::Mt5, 50).await;
    let events = connector.events();
    connector.disconnect().await;
    until(&events, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Disconnected { .. }))).await;
    assert_eq!(connector.account().await, Err(mirror_connector::ConnectorError::NotConnected));
    assert_eq!(connector.place(&buy(90, "0.1")).await, Err(mirror_connector::ConnectorError::NotConnected));
    // The EA keeps dialling and is refused meanwhile.
    eventually("a refused hello", WAIT, || bridge.stats().refused > 0).await;
    assert!(!sim.is_connected());
    connector.connect().await.unwrap();
    connector.place(&buy(91, "0.1")).await.unwrap();
    eventually("the order to execute", WAIT, || sim.positions().len() == 1).await;
    assert_eq!(sim.history().len(), 1, "nothing was sent while disconnected");
}
