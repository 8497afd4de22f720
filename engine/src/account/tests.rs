//! Replays of inputs into one actor, asserting the actions it produces.

use std::sync::Arc;

use mirror_connector::{AccountSnapshot, ConnectorError, ConnectorEvent, OrderReport, OrderReportKind, PlaceAck};
use mirror_model::{
    AccountId, AccountMode, BrokerOrderId, ClientOrderId, Fill, InstrumentKind, InstrumentSpec, InstrumentTable,
    LeaderRef, LinkRules, Money, OpenSignal, OrderKind, Origin, Position, PositionChange, PositionEffect, PositionId,
    Price, ProtectionRule, Qty, Ratio, Side, Signal, SignalAction, SignalId, SizingRule, SkipReason, Symbol,
    TimeInForce,
};

use super::*;

const LEADER: Origin = Origin::Account(AccountId(1));
const ME: AccountId = AccountId(2);
const LINK: LinkId = LinkId(0);
const NOW: Now = Now { mono_ns: 1_000, unix_ms: 1_700_000_000_000 };

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}
fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}
fn m(text: &str) -> Money {
    Money::parse(text).unwrap()
}
fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

fn eurusd() -> InstrumentSpec {
    InstrumentSpec {
        symbol: sym("EURUSD"),
        kind: InstrumentKind::Forex,
        contract_size: q("100000"),
        tick_size: p("0.00001"),
        tick_value: m("1"),
        lot_step: q("0.01"),
        min_qty: q("0.01"),
        max_qty: q("100"),
        digits: 5,
    }
}

fn actor_with(rules: LinkRules, risk: RiskLimits, mode: AccountMode, is_leader: bool) -> AccountActor {
    AccountActor::new(AccountSetup {
        id: ME,
        name: Arc::from("follower"),
        mode,
        instruments: InstrumentTable::from_iter([eurusd()]),
        balance: m("10000"),
        equity: m("10000"),
        risk,
        inbound: vec![InboundLink { link: LINK, origin: LEADER, rules: Arc::new(rules) }],
        is_leader,
        connected: true,
        positions: Vec::new(),
    })
}

fn actor(rules: LinkRules) -> AccountActor {
    actor_with(rules, RiskLimits::default(), AccountMode::Hedging, false)
}

fn signal(id: u64, action: SignalAction) -> Signal {
    Signal {
        id: SignalId(id),
        origin: LEADER,
        created_unix_ms: NOW.unix_ms,
        accepted_mono_ns: 500,
        leader_balance: Some(m("20000")),
        leader_equity: Some(m("20000")),
        action,
        note: String::new(),
    }
}

fn open(leader: u64, side: Side, qty: &str) -> SignalAction {
    SignalAction::Open(OpenSignal {
        leader: LeaderRef(leader),
        symbol: sym("EURUSD"),
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
    })
}

fn feed(actor: &mut AccountActor, input: Input<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    actor.on_input(NOW, input, &mut out);
    out
}

fn feed_signal(actor: &mut AccountActor, signal: &Signal) -> Vec<Action> {
    let view = signal.view();
    feed(actor, Input::Signal { signal: &view, link: LINK })
}

fn commands(actions: &[Action]) -> Vec<Command> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { command, .. } => Some(*command),
            _ => None,
        })
        .collect()
}

fn skips(actions: &[Action]) -> Vec<SkipReason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Audit(Audit { event: AuditEvent::Skipped { reason, .. }, .. }) => Some(*reason),
            _ => None,
        })
        .collect()
}

fn fill(client_id: ClientOrderId, qty: &str, price: &str, position: u64) -> Input<'static> {
    Input::Event(ConnectorEvent::Order(OrderReport {
        client_id: Some(client_id),
        broker_id: BrokerOrderId(client_id.signal.0 * 100 + u64::from(client_id.leg)),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        kind: OrderReportKind::Filled(Fill { qty: q(qty), price: p(price), position: PositionId(position) }),
        time_unix_ms: NOW.unix_ms,
    }))
}

fn position_event(id: u64, side: Side, qty: &str, change: PositionChange) -> Input<'static> {
    Input::Event(ConnectorEvent::Position(PositionEffect {
        position: Position {
            id: PositionId(id),
            symbol: sym("EURUSD"),
            side,
            qty: q(qty),
            open_price: p("1.085"),
            stop_loss: None,
            take_profit: None,
        },
        change,
        realized_pnl: Money::ZERO,
    }))
}

/// Opens a copy of leader position 7 and fills it on follower position 70.
fn opened(actor: &mut AccountActor, qty: &str) -> ClientOrderId {
    let out = feed_signal(actor, &signal(1, open(7, Side::Buy, "2")));
    let Command::Place(request) = commands(&out)[0] else { panic!("expected a place: {out:?}") };
    assert_eq!(request.qty, q(qty));
    feed(actor, fill(request.client_id, qty, "1.085", 70));
    feed(actor, position_event(70, Side::Buy, qty, PositionChange::Opened));
    request.client_id
}

#[test]
fn an_open_becomes_one_sized_order_with_a_deterministic_id() {
    let rules =
        LinkRules { sizing: SizingRule::Multiplier { ratio: Ratio::parse("0.37").unwrap() }, ..LinkRules::default() };
    let mut actor = actor(rules);
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1.5")));
    let sends: Vec<_> = out.iter().filter(|a| matches!(a, Action::Send { .. })).collect();
    assert_eq!(sends.len(), 1);
    let Action::Send { command: Command::Place(request), signal_t_in } = sends[0] else { panic!() };
    assert_eq!(*signal_t_in, Some(500));
    assert_eq!(request.client_id, ClientOrderId::new(SignalId(1), ME, 0));
    assert_eq!((request.side, request.qty, request.symbol), (Side::Buy, q("0.55"), sym("EURUSD")));
    assert!(out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::Copied { .. }, .. }))));
    // Replaying the same signal into a fresh actor gives the same order.
    let mut again = actor_with(
        LinkRules { sizing: SizingRule::Multiplier { ratio: Ratio::parse("0.37").unwrap() }, ..LinkRules::default() },
        RiskLimits::default(),
        AccountMode::Hedging,
        false,
    );
    assert_eq!(commands(&feed_signal(&mut again, &signal(1, open(7, Side::Buy, "1.5")))), commands(&out));
}

#[test]
fn close_partial_close_and_modify_reach_the_copied_position() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    // Leader closes half: 2 × 1/2 = 1 from position 70.
    let partial =
        signal(2, SignalAction::PartialClose { leader: LeaderRef(7), closed_qty: q("1"), qty_before: q("2") });
    let out = feed_signal(&mut actor, &partial);
    assert_eq!(
        commands(&out),
        vec![Command::Close(CloseRequest {
            client_id: ClientOrderId::new(SignalId(2), ME, 1),
            position: PositionId(70),
            symbol: sym("EURUSD"),
            qty: q("1"),
        })]
    );
    feed(&mut actor, fill(ClientOrderId::new(SignalId(2), ME, 1), "1", "1.086", 70));
    feed(
        &mut actor,
        position_event(70, Side::Buy, "1", PositionChange::Reduced { closed: q("1"), qty_before: q("2") }),
    );
    // Leader moves its stop: the copy's stop follows.
    let modify =
        signal(3, SignalAction::Modify { leader: LeaderRef(7), stop_loss: Some(p("1.08")), take_profit: None });
    assert_eq!(
        commands(&feed_signal(&mut actor, &modify)),
        vec![Command::Modify(ModifyRequest {
            position: PositionId(70),
            symbol: sym("EURUSD"),
            stop_loss: Some(p("1.08")),
            take_profit: None
        })]
    );
    // Leader closes: the remaining 1 is closed.
    let close = signal(4, SignalAction::Close { leader: LeaderRef(7) });
    let out = feed_signal(&mut actor, &close);
    let Command::Close(request) = commands(&out)[0] else { panic!() };
    assert_eq!((request.position, request.qty, request.client_id.leg), (PositionId(70), q("1"), 1));
    feed(&mut actor, fill(request.client_id, "1", "1.087", 70));
    feed(&mut actor, position_event(70, Side::Buy, "1", PositionChange::Closed { closed: q("1") }));
    assert_eq!(actor.summary().legs, 0);
    assert_eq!(actor.summary().positions, 0);
    // A second close finds nothing to close.
    assert_eq!(
        skips(&feed_signal(&mut actor, &signal(5, SignalAction::Close { leader: LeaderRef(7) }))),
        vec![SkipReason::NoCopy]
    );
}

#[test]
fn a_close_that_overtakes_its_open_closes_the_fill_when_it_comes() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "2")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    // The leader closes before our open has filled.
    assert!(commands(&feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }))).is_empty());
    let out = feed(&mut actor, fill(request.client_id, "2", "1.085", 70));
    assert_eq!(
        commands(&out),
        vec![Command::Close(CloseRequest {
            client_id: ClientOrderId::new(SignalId(1), ME, 1),
            position: PositionId(70),
            symbol: sym("EURUSD"),
            qty: q("2"),
        })]
    );
}

#[test]
fn two_quick_partial_closes_both_go_out_and_never_overclose() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    let first = signal(2, SignalAction::PartialClose { leader: LeaderRef(7), closed_qty: q("1"), qty_before: q("2") });
    let second =
        signal(3, SignalAction::PartialClose { leader: LeaderRef(7), closed_qty: q("0.5"), qty_before: q("1") });
    let a = commands(&feed_signal(&mut actor, &first));
    let b = commands(&feed_signal(&mut actor, &second));
    assert!(matches!(a[..], [Command::Close(CloseRequest { qty, .. })] if qty == q("1")));
    // The second sees 2 open (no fill of the first yet) and would close 1, but only 1 is not
    // already being closed.
    assert!(matches!(b[..], [Command::Close(CloseRequest { qty, .. })] if qty == q("1")));
    let third =
        signal(4, SignalAction::PartialClose { leader: LeaderRef(7), closed_qty: q("0.1"), qty_before: q("0.5") });
    assert!(commands(&feed_signal(&mut actor, &third)).is_empty(), "nothing left that is not being closed");
}

#[test]
fn risk_guards_refuse_orders_before_they_are_sent() {
    let limits = RiskLimits { max_order_qty: Some(q("1")), ..RiskLimits::default() };
    let mut actor = actor_with(LinkRules::default(), limits, AccountMode::Hedging, false);
    assert_eq!(
        skips(&feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1.5")))),
        vec![SkipReason::MaxOrderQty { qty: q("1.5"), max: q("1") }]
    );

    let limits = RiskLimits { max_open_positions: Some(1), ..RiskLimits::default() };
    let mut actor = actor_with(LinkRules::default(), limits, AccountMode::Hedging, false);
    assert!(skips(&feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1")))).is_empty());
    // The first open is in flight: it counts.
    assert_eq!(
        skips(&feed_signal(&mut actor, &signal(2, open(8, Side::Buy, "1")))),
        vec![SkipReason::MaxOpenPositions { open: 1, max: 1 }]
    );

    let limits = RiskLimits { max_symbol_exposure: Some(q("2.5")), ..RiskLimits::default() };
    let mut actor = actor_with(LinkRules::default(), limits, AccountMode::Netting, false);
    assert!(skips(&feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "2")))).is_empty());
    assert_eq!(
        skips(&feed_signal(&mut actor, &signal(2, open(8, Side::Sell, "1")))),
        vec![SkipReason::SymbolExposure { symbol: sym("EURUSD"), after: q("3"), max: q("2.5") }]
    );
}

#[test]
fn a_drawdown_breach_freezes_flattens_and_stops_copying() {
    let limits = RiskLimits {
        max_daily_drawdown_pct: Some(Ratio::parse("2").unwrap()),
        on_breach: BreachAction::Freeze,
        flatten_on_breach: true,
        ..RiskLimits::default()
    };
    let mut actor = actor_with(LinkRules::default(), limits, AccountMode::Hedging, false);
    opened(&mut actor, "2");
    let out = feed(
        &mut actor,
        Input::Event(ConnectorEvent::Account(AccountSnapshot {
            balance: m("10000"),
            equity: m("9800"),
            margin_used: Money::ZERO,
        })),
    );
    assert!(out.contains(&Action::Flatten { group: false, reason: FlattenReason::Breach }), "{out:?}");
    assert_eq!(actor.summary().mode, RiskMode::Frozen);
    let out = feed(
        &mut actor,
        Input::Control(Control::Flatten { id: SignalId(99), reason: FlattenReason::Breach, freeze: false }),
    );
    assert_eq!(
        commands(&out),
        vec![Command::Close(CloseRequest {
            client_id: ClientOrderId::new(SignalId(99), ME, 1),
            position: PositionId(70),
            symbol: sym("EURUSD"),
            qty: q("2"),
        })]
    );
    assert_eq!(skips(&feed_signal(&mut actor, &signal(5, open(9, Side::Buy, "1")))), vec![SkipReason::Frozen]);
    actor.on_input(NOW, Input::Control(Control::NewDay), &mut Vec::new());
    assert!(skips(&feed_signal(&mut actor, &signal(6, open(10, Side::Buy, "1")))).is_empty());
}

#[test]
fn pause_stops_opens_but_not_closes() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    feed(&mut actor, Input::Control(Control::Pause));
    assert_eq!(skips(&feed_signal(&mut actor, &signal(2, open(8, Side::Buy, "1")))), vec![SkipReason::AccountPaused]);
    assert_eq!(commands(&feed_signal(&mut actor, &signal(3, SignalAction::Close { leader: LeaderRef(7) }))).len(), 1);
    feed(&mut actor, Input::Control(Control::Resume));
    feed(&mut actor, Input::Control(Control::PauseLink(LINK)));
    assert_eq!(skips(&feed_signal(&mut actor, &signal(4, open(9, Side::Buy, "1")))), vec![SkipReason::LinkPaused]);
    feed(&mut actor, Input::Control(Control::ResumeLink(LINK)));
    feed(&mut actor, Input::Control(Control::PauseAll));
    assert_eq!(skips(&feed_signal(&mut actor, &signal(5, open(10, Side::Buy, "1")))), vec![SkipReason::GloballyPaused]);
}

#[test]
fn broker_answers_move_orders_through_their_lifecycle() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    let rejected = Outcome::Order {
        client_id: request.client_id,
        result: Err(ConnectorError::Rejected(mirror_connector::RejectReason::new(
            mirror_connector::RejectCode::InsufficientMargin,
            "no money",
        ))),
    };
    let out = feed(&mut actor, Input::Outcome(rejected));
    assert!(out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::Rejected { .. }, .. }))));
    assert_eq!(actor.summary().live_orders, 0);
    assert_eq!(actor.summary().legs, 0, "a rejected open leaves no leg");
    // A late fill for the rejected order is refused by the lifecycle, not applied.
    let out = feed(&mut actor, fill(request.client_id, "1", "1.085", 70));
    assert!(
        out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::InvalidTransition { .. }, .. }))),
        "{out:?}"
    );
    assert_eq!(actor.summary().legs, 0);

    // A timeout keeps the order in flight, neither rejected nor working.
    let out = feed_signal(&mut actor, &signal(2, open(8, Side::Buy, "1")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    let timeout = ConnectorError::Timeout { operation: "place", timeout: std::time::Duration::from_secs(5) };
    feed(&mut actor, Input::Outcome(Outcome::Order { client_id: request.client_id, result: Err(timeout) }));
    assert_eq!(actor.summary().live_orders, 1);
    // Reconciliation later finds it filled.
    feed(&mut actor, fill(request.client_id, "1", "1.085", 71));
    assert_eq!(actor.summary().live_orders, 0);
    // An ack arriving after the fill is harmless.
    let out = feed(
        &mut actor,
        Input::Outcome(Outcome::Order {
            client_id: request.client_id,
            result: Ok(PlaceAck { broker_id: BrokerOrderId(5) }),
        }),
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::InvalidTransition { .. }, .. }))));
}

#[test]
fn a_full_connector_queue_is_a_counted_skip() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1")));
    let command = commands(&out)[0];
    let out = feed(&mut actor, Input::NotSent(command));
    assert_eq!(skips(&out), vec![SkipReason::ConnectorQueueFull]);
    assert_eq!(actor.summary().live_orders, 0);
}

#[test]
fn fixed_distance_levels_are_amended_to_the_actual_fill() {
    let rules = LinkRules {
        stop_loss: ProtectionRule::Distance(p("0.002")),
        take_profit: ProtectionRule::Distance(p("0.004")),
        ..LinkRules::default()
    };
    let mut actor = actor(rules);
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "1")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    assert_eq!((request.stop_loss, request.take_profit), (Some(p("1.083")), Some(p("1.089"))));
    // Filled 3 pips worse than the reference: the levels follow the real entry.
    let out = feed(&mut actor, fill(request.client_id, "1", "1.08530", 70));
    assert_eq!(
        commands(&out),
        vec![Command::Modify(ModifyRequest {
            position: PositionId(70),
            symbol: sym("EURUSD"),
            stop_loss: Some(p("1.0833")),
            take_profit: Some(p("1.0893"))
        })]
    );
    // Filled exactly at the reference: nothing to amend.
    let out = feed_signal(&mut actor, &signal(2, open(8, Side::Buy, "1")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    assert!(commands(&feed(&mut actor, fill(request.client_id, "1", "1.085", 71))).is_empty());
}

#[test]
fn a_leaders_position_changes_become_signals() {
    let mut leader = actor_with(LinkRules::default(), RiskLimits::default(), AccountMode::Hedging, true);
    let drafts = |out: &[Action]| -> Vec<SignalAction> {
        out.iter()
            .filter_map(|a| match a {
                Action::Emit(draft) => Some(draft.action),
                _ => None,
            })
            .collect()
    };
    // The user places a buy limit by hand, then it fills, is reduced, amended and closed.
    let working = mirror_connector::WorkingOrder {
        client_id: None,
        broker_id: BrokerOrderId(55),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q("2"),
        filled_qty: Qty::ZERO,
        kind: OrderKind::Limit { price: p("1.08") },
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
    };
    let out = feed(&mut leader, Input::Event(ConnectorEvent::Working(working)));
    assert!(matches!(
        drafts(&out)[..],
        [SignalAction::Open(OpenSignal { leader: LeaderRef(55), kind: OrderKind::Limit { .. }, .. })]
    ));
    let manual_fill = Input::Event(ConnectorEvent::Order(OrderReport {
        client_id: None,
        broker_id: BrokerOrderId(55),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        kind: OrderReportKind::Filled(Fill { qty: q("2"), price: p("1.08"), position: PositionId(60) }),
        time_unix_ms: NOW.unix_ms,
    }));
    assert!(drafts(&feed(&mut leader, manual_fill)).is_empty());
    let out = feed(&mut leader, position_event(60, Side::Buy, "2", PositionChange::Opened));
    let [SignalAction::Open(open)] = drafts(&out)[..] else { panic!("{out:?}") };
    assert_eq!(
        (open.leader, open.from_pending, open.qty, open.reference_price),
        (LeaderRef(60), Some(LeaderRef(55)), q("2"), Some(p("1.08")))
    );
    assert_eq!(open.contract_size, Some(q("100000")));
    let out = feed(
        &mut leader,
        position_event(60, Side::Buy, "1.5", PositionChange::Reduced { closed: q("0.5"), qty_before: q("2") }),
    );
    assert_eq!(
        drafts(&out),
        vec![SignalAction::PartialClose { leader: LeaderRef(60), closed_qty: q("0.5"), qty_before: q("2") }]
    );
    // A protection event that changes nothing leads nothing; one that moves the stop leads a modify.
    let out = feed(&mut leader, position_event(60, Side::Buy, "1.5", PositionChange::ProtectionChanged));
    assert!(drafts(&out).is_empty());
    let mut moved = Position {
        id: PositionId(60),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q("1.5"),
        open_price: p("1.085"),
        stop_loss: Some(p("1.07")),
        take_profit: None,
    };
    let effect =
        PositionEffect { position: moved, change: PositionChange::ProtectionChanged, realized_pnl: Money::ZERO };
    let out = feed(&mut leader, Input::Event(ConnectorEvent::Position(effect)));
    assert_eq!(
        drafts(&out),
        vec![SignalAction::Modify { leader: LeaderRef(60), stop_loss: Some(p("1.07")), take_profit: None }]
    );
    moved.stop_loss = None;
    let effect =
        PositionEffect { position: moved, change: PositionChange::ProtectionChanged, realized_pnl: Money::ZERO };
    feed(&mut leader, Input::Event(ConnectorEvent::Position(effect)));
    let out = feed(&mut leader, position_event(60, Side::Buy, "1.5", PositionChange::Closed { closed: q("1.5") }));
    assert_eq!(drafts(&out), vec![SignalAction::Close { leader: LeaderRef(60) }]);
}

#[test]
fn a_copied_pending_order_follows_the_leaders_fill_without_a_second_order() {
    let mut actor = actor(LinkRules::default());
    let mut pending = open(55, Side::Buy, "1");
    if let SignalAction::Open(open) = &mut pending {
        open.kind = OrderKind::Limit { price: p("1.08") };
    }
    let out = feed_signal(&mut actor, &signal(1, pending));
    assert!(matches!(commands(&out)[..], [Command::Place(OrderRequest { kind: OrderKind::Limit { .. }, .. })]));
    // The leader's pending filled (position 60): we re-key, and place nothing.
    let mut filled = open(60, Side::Buy, "1");
    if let SignalAction::Open(open) = &mut filled {
        open.from_pending = Some(LeaderRef(55));
    }
    assert!(commands(&feed_signal(&mut actor, &signal(2, filled))).is_empty());
    // The leader's close now cancels our resting copy.
    let out = feed_signal(&mut actor, &signal(3, SignalAction::Close { leader: LeaderRef(60) }));
    assert!(
        matches!(commands(&out)[..], [Command::Cancel(CancelRequest { client_id, .. })] if client_id == ClientOrderId::new(SignalId(1), ME, 0))
    );
}

fn netting_fill(client_id: ClientOrderId, side: Side, qty: &str, position: u64) -> Input<'static> {
    Input::Event(ConnectorEvent::Order(OrderReport {
        client_id: Some(client_id),
        broker_id: BrokerOrderId(client_id.signal.0 * 100 + u64::from(client_id.leg)),
        symbol: sym("EURUSD"),
        side,
        kind: OrderReportKind::Filled(Fill { qty: q(qty), price: p("1.085"), position: PositionId(position) }),
        time_unix_ms: NOW.unix_ms,
    }))
}

#[test]
fn netting_copies_of_opposite_leader_positions_net_out_and_close_by_contribution() {
    let mut actor = actor_with(LinkRules::default(), RiskLimits::default(), AccountMode::Netting, false);
    // Leader position 7: long 2. The copy opens net position 70 (long 2).
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "2")));
    let Command::Place(first) = commands(&out)[0] else { panic!() };
    feed(&mut actor, netting_fill(first.client_id, Side::Buy, "2", 70));
    feed(&mut actor, position_event(70, Side::Buy, "2", PositionChange::Opened));
    // Leader position 8: short 3. The copy sells 3: net 70 closes, net 71 opens short 1.
    let out = feed_signal(&mut actor, &signal(2, open(8, Side::Sell, "3")));
    let Command::Place(second) = commands(&out)[0] else { panic!() };
    feed(&mut actor, netting_fill(second.client_id, Side::Sell, "2", 70));
    feed(&mut actor, netting_fill(second.client_id, Side::Sell, "1", 71));
    feed(&mut actor, position_event(70, Side::Buy, "2", PositionChange::Closed { closed: q("2") }));
    feed(&mut actor, position_event(71, Side::Sell, "1", PositionChange::Opened));
    assert_eq!(actor.summary().legs, 2, "both leader positions still have their copy");
    // Leader closes 7 (its long): the follower sells its 2 more, whatever the net position is.
    let out = feed_signal(&mut actor, &signal(3, SignalAction::Close { leader: LeaderRef(7) }));
    let [Command::Place(close_long)] = commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((close_long.side, close_long.qty, close_long.intent), (Side::Sell, q("2"), OrderIntent::Open));
    feed(&mut actor, netting_fill(close_long.client_id, Side::Sell, "2", 71));
    feed(&mut actor, position_event(71, Side::Sell, "3", PositionChange::Increased { added: q("2") }));
    assert_eq!(actor.summary().legs, 1);
    // Leader closes 8 (its short): the follower buys 3 and is flat.
    let out = feed_signal(&mut actor, &signal(4, SignalAction::Close { leader: LeaderRef(8) }));
    let [Command::Place(close_short)] = commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((close_short.side, close_short.qty), (Side::Buy, q("3")));
    feed(&mut actor, netting_fill(close_short.client_id, Side::Buy, "3", 71));
    feed(&mut actor, position_event(71, Side::Sell, "3", PositionChange::Closed { closed: q("3") }));
    assert_eq!(actor.summary().legs, 0);
}

#[test]
fn a_position_the_broker_closes_by_itself_ends_its_copies() {
    for mode in [AccountMode::Netting, AccountMode::Hedging] {
        let mut actor = actor_with(LinkRules::default(), RiskLimits::default(), mode, false);
        opened(&mut actor, "2");
        // The copy's stop is hit at the broker: no Mirror order caused it.
        let stop_hit = Input::Event(ConnectorEvent::Order(OrderReport {
            client_id: None,
            broker_id: BrokerOrderId(999),
            symbol: sym("EURUSD"),
            side: Side::Sell,
            kind: OrderReportKind::Filled(Fill { qty: q("2"), price: p("1.08"), position: PositionId(70) }),
            time_unix_ms: NOW.unix_ms,
        }));
        feed(&mut actor, stop_hit);
        feed(&mut actor, position_event(70, Side::Buy, "2", PositionChange::Closed { closed: q("2") }));
        assert_eq!(actor.summary().legs, 0, "{mode:?}");
        let close = signal(9, SignalAction::Close { leader: LeaderRef(7) });
        assert_eq!(skips(&feed_signal(&mut actor, &close)), vec![SkipReason::NoCopy], "{mode:?}");
    }
}

#[test]
fn an_offset_that_lands_after_the_broker_closed_the_copy_is_taken_back_off() {
    let mut actor = actor_with(LinkRules::default(), RiskLimits::default(), AccountMode::Netting, false);
    opened(&mut actor, "2");
    // The leader closes: the follower sends an offsetting sell of 2 …
    let out = feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    let [Command::Place(offset)] = commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((offset.side, offset.qty), (Side::Sell, q("2")));
    // … but the copy's own stop closes it at the broker first.
    let stop_hit = Input::Event(ConnectorEvent::Order(OrderReport {
        client_id: None,
        broker_id: BrokerOrderId(999),
        symbol: sym("EURUSD"),
        side: Side::Sell,
        kind: OrderReportKind::Filled(Fill { qty: q("2"), price: p("1.08"), position: PositionId(70) }),
        time_unix_ms: NOW.unix_ms,
    }));
    feed(&mut actor, stop_hit);
    feed(&mut actor, position_event(70, Side::Buy, "2", PositionChange::Closed { closed: q("2") }));
    // The offset then fills on a flat account and opens a short of 2 nobody asked for: the
    // actor buys it back at once.
    let out = feed(&mut actor, netting_fill(offset.client_id, Side::Sell, "2", 71));
    let [Command::Place(correction)] = commands(&out)[..] else { panic!("{out:?}") };
    assert_eq!((correction.side, correction.qty, correction.intent), (Side::Buy, q("2"), OrderIntent::Open));
    assert!(out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::Corrected { .. }, .. }))));
}

// ----- reconciliation ------------------------------------------------------------------------

use mirror_connector::{BrokerSnapshot, LookupState, OrderLookup};

fn drifts(actions: &[Action]) -> Vec<Drift> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Audit(Audit { event: AuditEvent::Drift { drift }, .. }) => Some(drift.clone()),
            _ => None,
        })
        .collect()
}

fn broker_snapshot(positions: Vec<Position>) -> Input<'static> {
    let account =
        mirror_connector::AccountSnapshot { balance: m("10000"), equity: m("10000"), margin_used: Money::ZERO };
    Input::Event(ConnectorEvent::Snapshot(Box::new(BrokerSnapshot { positions, orders: Vec::new(), account })))
}

fn held_position(id: u64, side: Side, qty: &str) -> Position {
    Position {
        id: PositionId(id),
        symbol: sym("EURUSD"),
        side,
        qty: q(qty),
        open_price: p("1.085"),
        stop_loss: None,
        take_profit: None,
    }
}

fn book(positions: &[(u64, Side, &str)]) -> LeaderBook {
    LeaderBook {
        origin: LEADER,
        balance: Some(m("20000")),
        equity: Some(m("20000")),
        positions: positions
            .iter()
            .map(|(leader, side, qty)| LeaderPosition {
                leader: LeaderRef(*leader),
                symbol: sym("EURUSD"),
                side: *side,
                qty: q(qty),
                open_price: p("1.085"),
                stop_loss: None,
                take_profit: None,
                contract_size: Some(q("100000")),
            })
            .collect(),
    }
}

fn repair(first: u64, books: Vec<LeaderBook>) -> Input<'static> {
    Input::Repair(Box::new(Repair { first_id: SignalId(first), ids: 8, books }))
}

#[test]
fn lookups_resolve_an_order_whose_outcome_was_unknown_exactly_once() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "2")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    let timeout = ConnectorError::Timeout { operation: "place", timeout: std::time::Duration::from_secs(5) };
    feed(&mut actor, Input::Outcome(Outcome::Order { client_id: request.client_id, result: Err(timeout) }));
    // The broker filled it in two parts while the answer was lost.
    let found = OrderLookup {
        client_id: request.client_id,
        broker_id: BrokerOrderId(5),
        state: LookupState::Filled,
        qty: q("2"),
        fills: vec![
            Fill { qty: q("1.5"), price: p("1.085"), position: PositionId(70) },
            Fill { qty: q("0.5"), price: p("1.086"), position: PositionId(70) },
        ],
    };
    let lookups = Lookups { asked: vec![request.client_id], found: vec![found.clone()] };
    let out = feed(&mut actor, Input::Lookups(Box::new(lookups.clone())));
    assert!(matches!(drifts(&out)[..], [Drift::OrderResolved { state: Some(LookupState::Filled), .. }]));
    assert_eq!(actor.summary().live_orders, 0);
    assert_eq!(actor.summary().legs, 1);
    // The same answer again changes nothing (the order is finished).
    assert!(commands(&feed(&mut actor, Input::Lookups(Box::new(lookups)))).is_empty());
    feed(&mut actor, broker_snapshot(vec![held_position(70, Side::Buy, "2")]));
    // The copy holds exactly 2: closing it closes 2.
    let out = feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    assert!(matches!(commands(&out)[..], [Command::Close(CloseRequest { qty, .. })] if qty == q("2")));
}

#[test]
fn an_order_the_broker_never_accepted_is_rejected_once_its_outcome_is_unknown() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "2")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    let lookups = Lookups { asked: vec![request.client_id], found: Vec::new() };
    // Just sent: it is not looked up, and a lookup that misses it proves nothing (its answer
    // is on its way).
    assert!(actor.live_order_ids().is_empty());
    let out = feed(&mut actor, Input::Lookups(Box::new(lookups.clone())));
    assert!(drifts(&out).is_empty(), "{out:?}");
    assert_eq!((actor.summary().live_orders, actor.summary().legs), (1, 1));
    // The engine restarted before its outcome came: now it is in flight, unknown.
    let out = feed(&mut actor, Input::Control(Control::Restarted));
    assert!(out.iter().any(|a| matches!(a, Action::Audit(Audit { event: AuditEvent::OutcomeUnknown { .. }, .. }))));
    assert_eq!(actor.live_order_ids(), vec![request.client_id]);
    // A lookup that does not find it means it never reached the broker.
    let out = feed(&mut actor, Input::Lookups(Box::new(lookups)));
    assert!(matches!(drifts(&out)[..], [Drift::OrderResolved { state: None, .. }]));
    assert_eq!((actor.summary().live_orders, actor.summary().legs), (0, 0));
}

#[test]
fn a_copy_closed_by_hand_is_reported_and_not_reopened() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    // The user closed the copy while Mirror was away; the leader still holds its position.
    let out = feed(&mut actor, broker_snapshot(Vec::new()));
    assert!(matches!(drifts(&out)[..], [Drift::ClosedByHand { leader: LeaderRef(7), .. }]), "{out:?}");
    assert_eq!(actor.summary().legs, 0);
    let out = feed(&mut actor, repair(500, vec![book(&[(7, Side::Buy, "2")])]));
    assert!(commands(&out).is_empty(), "respected: {out:?}");
    // A link that reopens copies closed by hand does reopen it.
    let rules = LinkRules {
        reconcile: mirror_model::ReconcilePolicy { repair: true, reopen_closed_by_hand: true },
        ..LinkRules::default()
    };
    let mut actor = actor_with(rules, RiskLimits::default(), AccountMode::Hedging, false);
    opened(&mut actor, "2");
    feed(&mut actor, broker_snapshot(Vec::new()));
    let out = feed(&mut actor, repair(500, vec![book(&[(7, Side::Buy, "2")])]));
    assert!(matches!(commands(&out)[..], [Command::Place(OrderRequest { client_id, qty, .. })]
        if client_id == ClientOrderId::new(SignalId(500), ME, 0) && qty == q("2")));
}

#[test]
fn positions_no_copy_explains_are_reported_and_left_alone() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    let out =
        feed(&mut actor, broker_snapshot(vec![held_position(70, Side::Buy, "2"), held_position(99, Side::Sell, "1")]));
    assert_eq!(
        drifts(&out),
        vec![Drift::UnknownPosition { position: PositionId(99), symbol: sym("EURUSD"), side: Side::Sell, qty: q("1") }]
    );
    assert!(commands(&out).is_empty());
    // A copy the broker shrank by itself is reported and cut to what is left.
    let out = feed(&mut actor, broker_snapshot(vec![held_position(70, Side::Buy, "1.5")]));
    assert!(
        matches!(drifts(&out)[..], [Drift::SizeMismatch { expected, actual, .. }] if expected == q("2") && actual == q("1.5"))
    );
    let out = feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    assert!(matches!(commands(&out)[..], [Command::Close(CloseRequest { qty, .. })] if qty == q("1.5")));
}

#[test]
fn repair_opens_missing_copies_and_closes_orphans() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    // The leader no longer holds 7, and holds 8 and 9 that were never copied.
    let out = feed(&mut actor, repair(500, vec![book(&[(8, Side::Sell, "1"), (9, Side::Buy, "0.5")])]));
    let kinds: Vec<&'static str> = drifts(&out)
        .iter()
        .map(|d| match d {
            Drift::Orphan { repaired: true, .. } => "orphan",
            Drift::MissingCopy { repaired: true, .. } => "missing",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, vec!["orphan", "missing", "missing"]);
    let sent = commands(&out);
    assert_eq!(sent.len(), 3);
    assert!(matches!(sent[0], Command::Close(CloseRequest { client_id, position: PositionId(70), .. })
        if client_id == ClientOrderId::new(SignalId(507), ME, 1)));
    assert!(matches!(sent[1], Command::Place(OrderRequest { client_id, side: Side::Sell, .. })
        if client_id == ClientOrderId::new(SignalId(500), ME, 0)));
    assert!(matches!(sent[2], Command::Place(OrderRequest { client_id, side: Side::Buy, .. })
        if client_id == ClientOrderId::new(SignalId(501), ME, 0)));
    // Alert-only links report and do nothing.
    let rules = LinkRules {
        reconcile: mirror_model::ReconcilePolicy { repair: false, reopen_closed_by_hand: false },
        ..LinkRules::default()
    };
    let mut actor = actor_with(rules, RiskLimits::default(), AccountMode::Hedging, false);
    let out = feed(&mut actor, repair(500, vec![book(&[(8, Side::Sell, "1")])]));
    assert!(matches!(drifts(&out)[..], [Drift::MissingCopy { repaired: false, .. }]));
    assert!(commands(&out).is_empty());
}

#[test]
fn a_leader_leads_what_changed_while_it_was_away_and_nothing_twice() {
    let mut leader = actor_with(LinkRules::default(), RiskLimits::default(), AccountMode::Hedging, true);
    let drafts = |out: &[Action]| -> Vec<SignalAction> {
        out.iter()
            .filter_map(|a| match a {
                Action::Emit(draft) => Some(draft.action),
                _ => None,
            })
            .collect()
    };
    feed(&mut leader, broker_snapshot(vec![held_position(60, Side::Buy, "2"), held_position(61, Side::Sell, "1")]));
    // Away: 60 was halved, 61 closed, 62 opened.
    let later = vec![held_position(60, Side::Buy, "1"), held_position(62, Side::Buy, "3")];
    let out = feed(&mut leader, broker_snapshot(later.clone()));
    let actions = drafts(&out);
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(actions.contains(&SignalAction::PartialClose {
        leader: LeaderRef(60),
        closed_qty: q("1"),
        qty_before: q("2")
    }));
    assert!(actions.contains(&SignalAction::Close { leader: LeaderRef(61) }));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, SignalAction::Open(OpenSignal { leader: LeaderRef(62), qty, .. }) if *qty == q("3")))
    );
    assert!(drafts(&feed(&mut leader, broker_snapshot(later))).is_empty(), "the same state twice leads nothing");
}

#[test]
fn a_restored_actor_continues_exactly_where_the_snapshot_was_taken() {
    let limits = RiskLimits { max_daily_drawdown_pct: Some(Ratio::parse("5").unwrap()), ..RiskLimits::default() };
    let make = || actor_with(LinkRules::default(), limits, AccountMode::Netting, false);
    let mut original = make();
    opened(&mut original, "2");
    feed(&mut original, Input::Control(Control::PauseLink(LINK)));
    feed_signal(&mut original, &signal(3, open(8, Side::Sell, "1"))); // skipped: link paused
    let snapshot = original.snapshot();
    let bytes = rmp_serde::to_vec(&snapshot).unwrap();
    let decoded: ActorSnapshot = rmp_serde::from_slice(&bytes).unwrap();
    let mut restored = AccountActor::restore(
        AccountSetup {
            id: ME,
            name: Arc::from("follower"),
            mode: AccountMode::Netting,
            instruments: InstrumentTable::from_iter([eurusd()]),
            balance: Money::ZERO,
            equity: Money::ZERO,
            risk: limits,
            inbound: vec![InboundLink { link: LINK, origin: LEADER, rules: Arc::new(LinkRules::default()) }],
            is_leader: false,
            connected: false,
            positions: Vec::new(),
        },
        decoded,
    );
    assert_eq!(rmp_serde::to_vec(&restored.snapshot()).unwrap(), bytes, "the same state gives the same bytes");
    // Both continue identically.
    for input_signal in [signal(4, open(9, Side::Buy, "1")), signal(5, SignalAction::Close { leader: LeaderRef(7) })] {
        assert_eq!(feed_signal(&mut original, &input_signal), feed_signal(&mut restored, &input_signal));
    }
    feed(&mut original, Input::Control(Control::ResumeLink(LINK)));
    feed(&mut restored, Input::Control(Control::ResumeLink(LINK)));
    let next = signal(6, open(10, Side::Buy, "1"));
    assert_eq!(feed_signal(&mut original, &next), feed_signal(&mut restored, &next));
}

#[test]
fn every_fill_a_lookup_finds_for_an_open_the_leader_closed_meanwhile_is_closed() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "0.08")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    feed(&mut actor, Input::Control(Control::Restarted));
    // The leader closed while the open's outcome was unknown: each fill must be closed.
    feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    let found = OrderLookup {
        client_id: request.client_id,
        broker_id: BrokerOrderId(40),
        state: LookupState::Filled,
        qty: q("0.08"),
        fills: vec![
            Fill { qty: q("0.04"), price: p("1.085"), position: PositionId(70) },
            Fill { qty: q("0.04"), price: p("1.086"), position: PositionId(70) },
        ],
    };
    let out =
        feed(&mut actor, Input::Lookups(Box::new(Lookups { asked: vec![request.client_id], found: vec![found] })));
    let closed: Qty = commands(&out)
        .iter()
        .map(|c| match c {
            Command::Close(close) => close.qty,
            other => panic!("unexpected {other:?}"),
        })
        .fold(Qty::ZERO, |sum, qty| sum + qty);
    assert_eq!(closed, q("0.08"), "{out:?}");
}

#[test]
fn each_partial_fill_of_an_open_the_leader_already_closed_is_closed_as_it_comes() {
    let mut actor = actor(LinkRules::default());
    let out = feed_signal(&mut actor, &signal(1, open(7, Side::Buy, "0.08")));
    let Command::Place(request) = commands(&out)[0] else { panic!() };
    feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    let mut closed = Qty::ZERO;
    // Fill, then its position change; the second fill comes before the position shows it.
    for (fill_qty, position_qty, change) in
        [("0.04", "0.04", PositionChange::Opened), ("0.04", "0.08", PositionChange::Increased { added: q("0.04") })]
    {
        for command in commands(&feed(&mut actor, fill(request.client_id, fill_qty, "1.085", 70))) {
            let Command::Close(close) = command else { panic!("unexpected {command:?}") };
            closed += close.qty;
        }
        feed(&mut actor, position_event(70, Side::Buy, position_qty, change));
    }
    assert_eq!(closed, q("0.08"));
}

#[test]
fn a_close_that_never_reached_the_broker_is_sent_again_under_its_own_id() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    let out = feed_signal(&mut actor, &signal(2, SignalAction::Close { leader: LeaderRef(7) }));
    let [Command::Close(close)] = commands(&out)[..] else { panic!("{out:?}") };
    feed(&mut actor, Input::Control(Control::Restarted));
    let lookups = Lookups { asked: vec![close.client_id], found: Vec::new() };
    let out = feed(&mut actor, Input::Lookups(Box::new(lookups)));
    assert_eq!(commands(&out), vec![Command::Close(close)], "the same close, same id: {out:?}");
    assert_eq!(actor.live_order_ids(), Vec::<ClientOrderId>::new(), "on its way again, not looked up");
    // It executes this time: the copy is gone.
    feed(&mut actor, fill(close.client_id, "2", "1.086", 70));
    feed(&mut actor, position_event(70, Side::Buy, "2", PositionChange::Closed { closed: q("2") }));
    assert_eq!((actor.summary().legs, actor.summary().positions), (0, 0));
}

#[test]
fn targeted_controls_close_or_open_one_copy_on_this_account_alone() {
    let mut actor = actor(LinkRules::default());
    opened(&mut actor, "2");
    let close = Control::CloseCopy { id: SignalId(9), origin: LEADER, leader: LeaderRef(7) };
    assert_eq!(
        commands(&feed(&mut actor, Input::Control(close))),
        vec![Command::Close(CloseRequest {
            client_id: ClientOrderId::new(SignalId(9), ME, 1),
            position: PositionId(70),
            symbol: sym("EURUSD"),
            qty: q("2"),
        })]
    );
    // An open for this account alone, sized by its link as the signal itself would be.
    let SignalAction::Open(open) = open(8, Side::Sell, "1") else { panic!("an open") };
    let out = feed(&mut actor, Input::Control(Control::CopyOpen { id: SignalId(10), origin: LEADER, open }));
    assert!(
        matches!(commands(&out)[..], [Command::Place(request)]
            if request.client_id == ClientOrderId::new(SignalId(10), ME, 0) && request.qty == q("1")),
        "{out:?}"
    );
    // From an origin this account does not follow: skipped, nothing sent.
    let stranger =
        Control::CloseCopy { id: SignalId(11), origin: Origin::Account(AccountId(99)), leader: LeaderRef(7) };
    let out = feed(&mut actor, Input::Control(stranger));
    assert!(commands(&out).is_empty());
    assert_eq!(skips(&out), vec![SkipReason::NoCopy]);
}
