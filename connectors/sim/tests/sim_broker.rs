//! The simulated broker passes the connector conformance kit and behaves like a broker.

use std::time::Duration;

use mirror_connector::conformance::{self, CHECKS, ConformanceTarget};
use mirror_connector::{Connector, ConnectorEvent, OrderReportKind};
use mirror_connector_sim::{SimAccountConfig, SimBroker, SimConfig, SimConnector, SimInstrument, SimMarket};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, InstrumentKind, InstrumentSpec, Money, OrderIntent, OrderKind, OrderRequest,
    PositionChange, Price, Qty, Side, SignalId, Symbol, TimeInForce,
};

fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

fn eurusd(symbol: &str) -> SimInstrument {
    SimInstrument {
        spec: InstrumentSpec {
            symbol: sym(symbol),
            kind: InstrumentKind::Forex,
            contract_size: Qty::parse("100000").unwrap(),
            tick_size: Price::parse("0.00001").unwrap(),
            tick_value: Money::parse("1").unwrap(),
            lot_step: Qty::parse("0.01").unwrap(),
            min_qty: Qty::parse("0.01").unwrap(),
            max_qty: Qty::parse("50").unwrap(),
            digits: 5,
        },
        feed: sym("EURUSD"),
    }
}

fn broker(config: SimConfig) -> SimBroker {
    SimBroker::new(
        config,
        [SimMarket {
            symbol: sym("EURUSD"),
            bid: Price::parse("1.08500").unwrap(),
            tick_size: Price::parse("0.00001").unwrap(),
            spread_ticks: 8,
            volatility_ticks: 5,
        }],
    )
}

fn account(name: &str, mode: AccountMode, symbol: &str) -> SimAccountConfig {
    SimAccountConfig {
        name: name.into(),
        mode,
        currency: "USD".into(),
        balance: Money::parse("100000").unwrap(),
        instruments: vec![eurusd(symbol)],
    }
}

#[tokio::test]
async fn hedging_account_passes_the_conformance_kit() {
    let broker = broker(SimConfig::default());
    broker.open_account(account("h1", AccountMode::Hedging, "EURUSD.r")).unwrap();
    let connector = SimConnector::new(broker.clone(), "h1").unwrap();
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD.r"))).await.unwrap();
    assert_eq!(report.passed, CHECKS.to_vec());
}

#[tokio::test]
async fn netting_account_with_latency_slippage_and_partial_fills_passes_the_kit() {
    let config = SimConfig {
        latency_min: Duration::from_millis(1),
        latency_max: Duration::from_millis(4),
        slippage_ticks_max: 3,
        partial_fill_probability: 1.0,
        ..SimConfig::default()
    };
    let broker = broker(config);
    broker.open_account(account("n1", AccountMode::Netting, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "n1").unwrap();
    let report = conformance::run(&connector, &ConformanceTarget::new(sym("EURUSD"))).await.unwrap();
    assert_eq!(report.passed.len(), CHECKS.len());
}

#[tokio::test]
async fn calls_fail_until_connected() {
    let broker = broker(SimConfig::default());
    broker.open_account(account("a", AccountMode::Hedging, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "a").unwrap();
    assert_eq!(connector.account().await, Err(mirror_connector::ConnectorError::NotConnected));
    connector.connect().await.unwrap();
    assert!(connector.account().await.is_ok());
    connector.disconnect().await;
    assert_eq!(connector.open_positions().await, Err(mirror_connector::ConnectorError::NotConnected));
}

fn order(side: Side, qty: &str, kind: OrderKind, sl: Option<&str>, tp: Option<&str>) -> OrderRequest {
    OrderRequest {
        client_id: ClientOrderId::new(SignalId(1), AccountId(1), 0),
        symbol: sym("EURUSD"),
        side,
        qty: Qty::parse(qty).unwrap(),
        kind,
        stop_loss: sl.map(|s| Price::parse(s).unwrap()),
        take_profit: tp.map(|s| Price::parse(s).unwrap()),
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    }
}

fn drain(connector: &SimConnector) -> Vec<ConnectorEvent> {
    connector.events().drain().collect()
}

#[tokio::test]
async fn stop_loss_and_take_profit_close_positions_when_the_market_reaches_them() {
    let broker = broker(SimConfig::default());
    broker.open_account(account("a", AccountMode::Hedging, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "a").unwrap();
    connector.connect().await.unwrap();
    // Bid 1.08500, ask 1.08508: a buy fills at 1.08508.
    connector.place(&order(Side::Buy, "1", OrderKind::Market, Some("1.08400"), Some("1.08700"))).await.unwrap();
    let mut second = order(Side::Sell, "1", OrderKind::Market, Some("1.08700"), Some("1.08300"));
    second.client_id.signal = SignalId(2);
    connector.place(&second).await.unwrap();
    drain(&connector);

    // Bid to 1.08400: the long's stop is hit at the bid, the short is untouched.
    broker.set_price(&sym("EURUSD"), Price::parse("1.08400").unwrap()).unwrap();
    let events = drain(&connector);
    let closed: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Position(effect) if matches!(effect.change, PositionChange::Closed { .. }) => Some(effect),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].position.side, Side::Buy);
    assert_eq!(closed[0].realized_pnl, Money::parse("-108").unwrap());
    // Ask 1.08300 (bid 1.08292): the short's target is hit.
    broker.set_price(&sym("EURUSD"), Price::parse("1.08292").unwrap()).unwrap();
    assert!(broker.positions("a").unwrap().is_empty());
    let snapshot = broker.account_snapshot("a").unwrap();
    // -108 on the long; the short sold at 1.08500 and bought back at 1.08300: +200.
    assert_eq!(snapshot.balance, Money::parse("100092").unwrap());
    assert_eq!(snapshot.equity, snapshot.balance);
}

#[tokio::test]
async fn pending_orders_rest_until_the_market_triggers_them() {
    let broker = broker(SimConfig::default());
    broker.open_account(account("a", AccountMode::Netting, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "a").unwrap();
    connector.connect().await.unwrap();
    let limit = order(Side::Buy, "0.5", OrderKind::Limit { price: Price::parse("1.08400").unwrap() }, None, None);
    let ack = connector.place(&limit).await.unwrap();
    assert_eq!(connector.open_orders().await.unwrap().len(), 1);
    drain(&connector);
    broker.set_price(&sym("EURUSD"), Price::parse("1.08450").unwrap()).unwrap();
    assert!(broker.positions("a").unwrap().is_empty(), "ask 1.08458 is above the limit");
    broker.set_price(&sym("EURUSD"), Price::parse("1.08390").unwrap()).unwrap();
    let events = drain(&connector);
    let fill = events.iter().find_map(|e| match e {
        ConnectorEvent::Order(report) if report.broker_id == ack.broker_id => match report.kind {
            OrderReportKind::Filled(fill) => Some(fill),
            _ => None,
        },
        _ => None,
    });
    assert_eq!(fill.unwrap().price, Price::parse("1.08398").unwrap(), "filled at the ask, better than the limit");
    assert!(connector.open_orders().await.unwrap().is_empty());
    assert_eq!(broker.positions("a").unwrap()[0].qty, Qty::parse("0.5").unwrap());
}

#[tokio::test]
async fn refusals_name_the_problem() {
    let broker = broker(SimConfig::default());
    broker.open_account(account("a", AccountMode::Hedging, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "a").unwrap();
    connector.connect().await.unwrap();
    let bad_stop = order(Side::Buy, "1", OrderKind::Market, Some("1.09000"), None);
    let error = connector.place(&bad_stop).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "refused by the broker: InvalidStops: stop loss 1.09 must be on the losing side of the market 1.085 for a buy"
    );
    let off_tick = order(Side::Buy, "1", OrderKind::Limit { price: Price::parse("1.084001").unwrap() }, None, None);
    assert!(connector.place(&off_tick).await.unwrap_err().to_string().contains("not on the 0.00001 tick grid"));
    assert!(broker.positions("a").unwrap().is_empty());
}

#[tokio::test]
async fn random_rejects_follow_the_configured_probability() {
    let broker = broker(SimConfig { reject_probability: 1.0, ..SimConfig::default() });
    broker.open_account(account("a", AccountMode::Hedging, "EURUSD")).unwrap();
    let connector = SimConnector::new(broker.clone(), "a").unwrap();
    connector.connect().await.unwrap();
    let error = connector.place(&order(Side::Buy, "1", OrderKind::Market, None, None)).await.unwrap_err();
    assert!(error.to_string().contains("simulated broker reject"));
    assert_eq!(broker.stats().rejects, 1);
    // By-hand trading is the user's own and never randomly refused.
    broker
        .manual_order("a", sym("EURUSD"), Side::Buy, Qty::parse("1").unwrap(), OrderKind::Market, None, None)
        .unwrap();
    assert_eq!(broker.positions("a").unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_prices() {
    let walk = |seed| {
        let broker = broker(SimConfig { seed, ..SimConfig::default() });
        (0..50)
            .map(|_| {
                broker.step();
                broker.quote(&sym("EURUSD")).unwrap().0
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(walk(7), walk(7));
    assert_ne!(walk(7), walk(8));
}
