//! Leader mode: trades the user makes on the account from another terminal reach the event
//! stream as fills without Mirror ids, position changes and working orders, in the order
//! they happened, including what happened while the connection was down.

mod common;

use std::time::Duration;

use common::{EURUSD, account_id, p, q, session, simulator, sym};
use mirror_connector::{ConnectionState, Connector, ConnectorEvent, EventStream, OrderReportKind};
use mirror_connector_ctrader::ManualOrder;
use mirror_model::{OrderKind, PositionChange, Side};

/// Waits for events until `count` matching ones have come (or fails after 5 s).
async fn collect(stream: &EventStream, count: usize, wanted: impl Fn(&ConnectorEvent) -> bool) -> Vec<ConnectorEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.iter().filter(|e| wanted(e)).count() < count {
        match tokio::time::timeout_at(deadline, stream.recv_async()).await {
            Ok(Ok(event)) => seen.push(event),
            other => panic!("waited for {count} events, got {seen:?} then {other:?}"),
        }
    }
    seen
}

fn is_trading(event: &ConnectorEvent) -> bool {
    matches!(event, ConnectorEvent::Order(_) | ConnectorEvent::Position(_) | ConnectorEvent::Working(_))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_own_trades_become_events_in_order() {
    let simulator = simulator(1).await;
    let session = session(&simulator);
    let leader = session.connector(account_id(0));
    leader.connect().await.unwrap();
    let stream = leader.events();
    stream.drain().for_each(drop);

    // A market buy with SL/TP from another terminal: a fill without a Mirror id, then the
    // position it opened, with its protection.
    let buy = ManualOrder {
        symbol_id: EURUSD,
        side: Side::Buy,
        volume: 5_000_000,
        kind: OrderKind::Market,
        stop_loss: Some(p("1.08000")),
        take_profit: Some(p("1.09500")),
        label: None,
    };
    simulator.trade_by_hand(account_id(0), &buy).unwrap();
    let events: Vec<ConnectorEvent> = collect(&stream, 2, is_trading).await.into_iter().filter(is_trading).collect();
    let ConnectorEvent::Order(fill) = &events[0] else { panic!("{events:?}") };
    assert_eq!(fill.client_id, None);
    let OrderReportKind::Filled(filled) = fill.kind else { panic!("{fill:?}") };
    assert_eq!((filled.qty, filled.price), (q("0.5"), p("1.08508")));
    let ConnectorEvent::Position(opened) = &events[1] else { panic!("{events:?}") };
    assert_eq!(opened.change, PositionChange::Opened);
    assert_eq!(opened.position.side, Side::Buy);
    assert_eq!(opened.position.qty, q("0.5"));
    assert_eq!((opened.position.stop_loss, opened.position.take_profit), (Some(p("1.08")), Some(p("1.095"))));
    let position = i64::try_from(opened.position.id.0).unwrap();

    // A resting limit: a working order.
    let limit = ManualOrder {
        volume: 200_000,
        kind: OrderKind::Limit { price: p("1.08000") },
        stop_loss: None,
        take_profit: None,
        ..buy.clone()
    };
    let limit_id = simulator.trade_by_hand(account_id(0), &limit).unwrap();
    let events = collect(&stream, 1, is_trading).await;
    let working = events.iter().find_map(|e| match e {
        ConnectorEvent::Working(w) => Some(*w),
        _ => None,
    });
    let working = working.expect("a working order");
    assert_eq!(
        (working.side, working.qty, working.kind),
        (Side::Buy, q("0.02"), OrderKind::Limit { price: p("1.08") })
    );

    // Protection moved, half closed, the limit cancelled: in that order.
    simulator.amend_by_hand(account_id(0), position, Some(p("1.08200")), Some(p("1.09800"))).unwrap();
    simulator.close_by_hand(account_id(0), position, 2_500_000).unwrap();
    simulator.cancel_by_hand(account_id(0), limit_id).unwrap();
    let events: Vec<ConnectorEvent> = collect(&stream, 4, is_trading).await.into_iter().filter(is_trading).collect();
    assert!(matches!(&events[0], ConnectorEvent::Position(e) if e.change == PositionChange::ProtectionChanged
        && e.position.stop_loss == Some(p("1.082"))));
    assert!(
        matches!(&events[1], ConnectorEvent::Order(r) if matches!(r.kind, OrderReportKind::Filled(f) if f.qty == q("0.25") && f.price == p("1.085")))
    );
    let ConnectorEvent::Position(reduced) = &events[2] else { panic!("{events:?}") };
    assert_eq!(reduced.change, PositionChange::Reduced { closed: q("0.25"), qty_before: q("0.5") });
    // Sold 0.25 lot at 1.08500, bought at 1.08508: 8 points × 25,000 units = -2 USD.
    assert_eq!(reduced.realized_pnl, mirror_model::Money::parse("-2").unwrap());
    assert!(
        matches!(&events[3], ConnectorEvent::Order(r) if r.kind == OrderReportKind::Cancelled && r.side == Side::Buy)
    );

    // Quotes, then a dropped connection during which the user closes the rest by hand.
    leader.subscribe_quotes(&[sym("EURUSD")]).await.unwrap();
    collect(&stream, 1, |e| matches!(e, ConnectorEvent::Quote(_))).await;
    simulator.drop_connections();
    collect(&stream, 1, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Reconnecting { .. }))).await;
    // The account is away: the close cannot reach it live.
    simulator.close_by_hand(account_id(0), position, 2_500_000).unwrap();
    let events = collect(&stream, 1, |e| matches!(e, ConnectorEvent::Connection(ConnectionState::Connected))).await;
    // Reconciliation reported the close (before the account came back up).
    let closed = events.iter().chain(stream.drain().collect::<Vec<_>>().iter()).any(
        |e| matches!(e, ConnectorEvent::Position(effect) if matches!(effect.change, PositionChange::Closed { .. })),
    );
    assert!(closed, "the close made while away was not reported: {events:?}");
    // Quotes were resubscribed.
    simulator.set_quote(EURUSD, p("1.08600"), p("1.08608")).unwrap();
    let quotes = collect(&stream, 1, |e| matches!(e, ConnectorEvent::Quote(q) if q.bid == p("1.086"))).await;
    assert!(!quotes.is_empty());
    assert!(leader.open_positions().await.unwrap().is_empty());
    session.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_order_triggered_by_the_market_reports_its_fill_and_position() {
    let simulator = simulator(1).await;
    let session = session(&simulator);
    let leader = session.connector(account_id(0));
    leader.connect().await.unwrap();
    let stream = leader.events();
    let stop = ManualOrder {
        symbol_id: EURUSD,
        side: Side::Sell,
        volume: 1_000_000,
        kind: OrderKind::Stop { price: p("1.08400") },
        stop_loss: Some(p("1.08700")),
        take_profit: None,
        label: Some("by hand".into()),
    };
    let order_id = simulator.trade_by_hand(account_id(0), &stop).unwrap();
    collect(&stream, 1, |e| matches!(e, ConnectorEvent::Working(_))).await;
    simulator.set_quote(EURUSD, p("1.08390"), p("1.08398")).unwrap();
    let events: Vec<ConnectorEvent> = collect(&stream, 2, is_trading).await.into_iter().filter(is_trading).collect();
    assert!(matches!(&events[0], ConnectorEvent::Order(r)
        if r.broker_id.0 == u64::try_from(order_id).unwrap() && matches!(r.kind, OrderReportKind::Filled(f) if f.price == p("1.0839"))));
    assert!(matches!(&events[1], ConnectorEvent::Position(e)
        if e.change == PositionChange::Opened && e.position.side == Side::Sell && e.position.stop_loss == Some(p("1.087"))));
    assert!(leader.open_orders().await.unwrap().is_empty());
    session.shutdown().await;
}
