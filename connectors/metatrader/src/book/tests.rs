use mirror_connector::{ConnectorEvent, OrderReportKind};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, Money, PositionChange, PositionId, Price, Qty, Side, SignalId, Symbol,
};

use super::{At, Book, BookError, Executed};
use crate::cid;
use crate::protocol::{Deal, Entry, PendingAdd, PendingType, Snapshot, WireOrder, WirePosition};

fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}
fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}
fn eurusd() -> Symbol {
    Symbol::new("EURUSD").unwrap()
}
fn id(signal: u64) -> ClientOrderId {
    ClientOrderId::new(SignalId(signal), AccountId(9), 0)
}

fn deal(position: u64, side: Side, entry: Entry, volume: &str, price: &str) -> Deal {
    Deal {
        position,
        new_ticket: 0,
        order: position,
        deal: 0,
        symbol: eurusd(),
        side,
        entry,
        volume: q(volume),
        price: p(price),
        profit: Money::ZERO,
        sl: None,
        tp: None,
        pos_price: None,
        cid: String::new(),
        reason: "client".into(),
        time_msc: 1,
    }
}

fn wire(ticket: u64, side: Side, volume: &str, comment: &str) -> WirePosition {
    WirePosition {
        ticket,
        symbol: eurusd(),
        side,
        volume: q(volume),
        price_open: p("1.1"),
        sl: None,
        tp: None,
        magic: 0,
        comment: comment.into(),
        time_msc: 1,
    }
}

fn snapshot(positions: Vec<WirePosition>, orders: Vec<WireOrder>) -> Snapshot {
    Snapshot {
        sync: 0,
        time_msc: 5,
        balance: Money::parse("1000").unwrap(),
        equity: Money::parse("1000").unwrap(),
        margin: Money::ZERO,
        trade_allowed: true,
        positions,
        orders,
        symbols: Vec::new(),
        done: Vec::new(),
    }
}

fn changes(events: &[ConnectorEvent]) -> Vec<PositionChange> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Position(effect) => Some(effect.change),
            _ => None,
        })
        .collect()
}

fn fills(events: &[ConnectorEvent]) -> Vec<(Option<ClientOrderId>, Qty, Price, PositionId)> {
    events
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Order(r) => match r.kind {
                OrderReportKind::Filled(f) => Some((r.client_id, f.qty, f.price, f.position)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn deals_report_the_fill_before_the_change_it_causes() {
    let mut book = Book::new(AccountMode::Netting);
    let mut out = Vec::new();
    let mut open = deal(10, Side::Buy, Entry::In, "1", "1.1");
    open.cid = cid::encode(id(1));
    book.apply_deal(&open, &mut out).unwrap();
    let mut add = deal(10, Side::Buy, Entry::In, "1", "1.2");
    add.pos_price = Some(p("1.15"));
    book.apply_deal(&add, &mut out).unwrap();
    assert!(matches!(out[0], ConnectorEvent::Order(_)) && matches!(out[1], ConnectorEvent::Position(_)));
    assert_eq!(changes(&out), vec![PositionChange::Opened, PositionChange::Increased { added: q("1") }]);
    assert_eq!(fills(&out)[0], (Some(id(1)), q("1"), p("1.1"), PositionId(10)));
    assert_eq!((book.positions()[0].qty, book.positions()[0].open_price), (q("2"), p("1.15")));
    out.clear();
    book.apply_deal(&deal(10, Side::Sell, Entry::Out, "2", "1.3"), &mut out).unwrap();
    assert_eq!(changes(&out), vec![PositionChange::Closed { closed: q("2") }]);
    assert!(book.positions().is_empty());
}

#[test]
fn an_mt4_partial_close_keeps_the_position_id_under_its_new_ticket() {
    let mut book = Book::new(AccountMode::Hedging);
    let mut out = Vec::new();
    book.apply_deal(&deal(100, Side::Sell, Entry::In, "0.5", "1.1"), &mut out).unwrap();
    let mut partial = deal(100, Side::Buy, Entry::Out, "0.2", "1.09");
    partial.new_ticket = 101;
    book.apply_deal(&partial, &mut out).unwrap();
    assert_eq!(book.ticket_of(PositionId(100)), Some(101));
    out.clear();
    // The next close names the new ticket; the position is still #100.
    book.apply_deal(&deal(101, Side::Buy, Entry::Out, "0.3", "1.08"), &mut out).unwrap();
    assert_eq!(fills(&out)[0].3, PositionId(100));
    assert_eq!(changes(&out), vec![PositionChange::Closed { closed: q("0.3") }]);
}

#[test]
fn deals_that_do_not_fit_change_nothing() {
    let mut book = Book::new(AccountMode::Hedging);
    let mut out = Vec::new();
    assert_eq!(
        book.apply_deal(&deal(7, Side::Sell, Entry::Out, "1", "1.1"), &mut out),
        Err(BookError::UnknownTicket(7))
    );
    book.apply_deal(&deal(7, Side::Buy, Entry::In, "1", "1.1"), &mut out).unwrap();
    out.clear();
    for bad in [
        deal(7, Side::Buy, Entry::Out, "0.5", "1.1"),
        deal(7, Side::Sell, Entry::Out, "2", "1.1"),
        deal(7, Side::Sell, Entry::In, "1", "1.1"),
    ] {
        assert!(matches!(book.apply_deal(&bad, &mut out), Err(BookError::Contradiction { .. })), "{bad:?}");
    }
    assert!(out.is_empty());
    assert_eq!(book.positions()[0].qty, q("1"));
}

#[test]
fn a_pending_order_that_fills_is_reported_with_its_client_id() {
    let mut book = Book::new(AccountMode::Hedging);
    let mut out = Vec::new();
    let add = PendingAdd {
        ticket: 55,
        symbol: eurusd(),
        order_type: PendingType::BuyLimit,
        volume: q("1"),
        price: p("1.05"),
        sl: None,
        tp: None,
        cid: cid::encode(id(3)),
        expiration: 0,
        time_msc: 1,
    };
    book.apply_pending_add(&add, &mut out);
    book.apply_pending_add(&add, &mut out);
    assert_eq!(out.len(), 1, "a pending order is announced once");
    let mut fill = deal(55, Side::Buy, Entry::In, "1", "1.05");
    fill.order = 55;
    book.apply_deal(&fill, &mut out).unwrap();
    assert_eq!(fills(&out), vec![(Some(id(3)), q("1"), p("1.05"), PositionId(55))]);
    assert!(book.orders().is_empty());
}

#[test]
fn the_first_snapshot_loads_and_later_ones_report_what_changed() {
    let mut book = Book::new(AccountMode::Hedging);
    let mut out = Vec::new();
    let order = WireOrder {
        ticket: 300,
        symbol: eurusd(),
        order_type: PendingType::SellStop,
        volume: q("1"),
        price: p("1.0"),
        sl: None,
        tp: None,
        magic: 0,
        comment: cid::encode(id(8)),
        expiration: 0,
    };
    let first = snapshot(vec![wire(100, Side::Buy, "1", ""), wire(200, Side::Sell, "0.5", "")], vec![order]);
    book.reconcile(&first, &[], At(5), &mut out);
    assert!(out.is_empty(), "the engine reads the first state itself: {out:?}");
    assert_eq!(book.positions().len(), 2);

    // Away: #100 half closed by Mirror's command (journal) on MT4 (new ticket 101), #200
    // closed by hand, #400 opened by Mirror, the pending order deleted, a new one placed.
    let mut reduced = wire(101, Side::Buy, "0.5", "from #100");
    reduced.sl = Some(p("1.05"));
    let new_order = WireOrder { ticket: 500, comment: String::new(), ..first.orders[0].clone() };
    let mut later = snapshot(vec![reduced, wire(400, Side::Sell, "0.3", &cid::encode(id(6)))], vec![new_order]);
    later.balance = Money::parse("1010").unwrap();
    let executed = [Executed {
        client_id: Some(id(5)),
        broker_id: mirror_model::BrokerOrderId(100),
        ticket: 100,
        fill: Some((p("1.12"), q("0.5"))),
    }];
    book.reconcile(&later, &executed, At(6), &mut out);
    assert_eq!(
        changes(&out),
        vec![
            PositionChange::Closed { closed: q("0.5") },
            PositionChange::Reduced { closed: q("0.5"), qty_before: q("1") },
            PositionChange::ProtectionChanged,
            PositionChange::Opened,
        ]
    );
    assert_eq!(
        fills(&out),
        vec![(Some(id(5)), q("0.5"), p("1.12"), PositionId(100)), (Some(id(6)), q("0.3"), p("1.1"), PositionId(400))]
    );
    let reports: Vec<(Option<ClientOrderId>, OrderReportKind)> = out
        .iter()
        .filter_map(|e| match e {
            ConnectorEvent::Order(r) if !matches!(r.kind, OrderReportKind::Filled(_)) => {
                Some((r.client_id, r.kind.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(reports, vec![(Some(id(8)), OrderReportKind::Cancelled)]);
    assert!(out.iter().any(|e| matches!(e, ConnectorEvent::Working(w) if w.broker_id.0 == 500)));
    assert!(matches!(out.last(), Some(ConnectorEvent::Account(a)) if a.balance == Money::parse("1010").unwrap()));
    assert_eq!(book.ticket_of(PositionId(100)), Some(101));

    // The same snapshot again: nothing new.
    out.clear();
    book.reconcile(&later, &[], At(7), &mut out);
    assert!(out.is_empty(), "{out:?}");
}
