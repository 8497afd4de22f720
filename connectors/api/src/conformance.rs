//! The conformance kit: one scripted session that every connector must get through against its
//! platform (or the platform's simulator) before Mirror trusts it with a follower.
//!
//! It needs an account that is flat on the target symbol and allowed to trade it. It opens,
//! amends, partially closes and closes one position, rests and cancels one pending order,
//! resends a client order id to check idempotency and sends bad requests to check that they
//! are refused with the right code and change nothing.
//!
//! ```no_run
//! # async fn demo(connector: &dyn mirror_connector::Connector) {
//! use mirror_connector::conformance::{ConformanceTarget, run};
//! let target = ConformanceTarget::new("EURUSD".parse().unwrap());
//! let report = run(connector, &target).await.expect("connector conforms");
//! println!("{report}");
//! # }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mirror_model::{
    AccountId, ClientOrderId, InstrumentSpec, OrderIntent, OrderKind, OrderRequest, PositionChange, PositionId, Price,
    Qty, Rounding, Side, SignalId, Symbol, TimeInForce,
};

use crate::{
    CancelRequest, CloseRequest, Connector, ConnectorError, ConnectorEvent, EventStream, ModifyRequest,
    OrderReportKind, Quote, RejectCode,
};

/// What the kit trades with.
#[derive(Clone, Debug)]
pub struct ConformanceTarget {
    /// A symbol the account can trade and has no position on.
    pub symbol: Symbol,
    /// How long to wait for each expected event.
    pub event_timeout: Duration,
    /// How long to watch for events that must not come (a duplicate fill).
    pub quiet_period: Duration,
}

impl ConformanceTarget {
    /// A target with default waits (5 s for events, 300 ms of quiet).
    pub fn new(symbol: Symbol) -> Self {
        Self { symbol, event_timeout: Duration::from_secs(5), quiet_period: Duration::from_millis(300) }
    }
}

/// A check the connector failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check `{check}` failed: {detail}")]
pub struct ConformanceFailure {
    /// The check.
    pub check: &'static str,
    /// What was expected and what came.
    pub detail: String,
}

/// The checks passed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Names of the checks, in order.
    pub passed: Vec<&'static str>,
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} conformance checks passed:", self.passed.len())?;
        for check in &self.passed {
            writeln!(f, "  ✓ {check}")?;
        }
        Ok(())
    }
}

/// Every check the kit runs, in order.
pub const CHECKS: [&str; 14] = [
    "connect",
    "instruments",
    "account",
    "quotes",
    "market order fills",
    "resend is idempotent",
    "positions are listed",
    "stop loss and take profit",
    "partial close",
    "close",
    "pending order rests and cancels",
    "unknown symbol is refused",
    "invalid quantity is refused",
    "unknown cancel is refused",
];

fn fail(check: &'static str, detail: impl Into<String>) -> ConformanceFailure {
    ConformanceFailure { check, detail: detail.into() }
}

fn call<T>(check: &'static str, what: &str, result: Result<T, ConnectorError>) -> Result<T, ConformanceFailure> {
    result.map_err(|error| fail(check, format!("{what} failed: {error}")))
}

/// Events seen so far, so that an event arriving before the call that caused it returns is
/// still found.
struct Watch {
    stream: EventStream,
    /// Events seen and not yet consumed, with their arrival number.
    seen: Vec<(u64, ConnectorEvent)>,
    arrived: u64,
    timeout: Duration,
}

impl Watch {
    fn drain(&mut self) {
        while let Ok(event) = self.stream.try_recv() {
            self.push(event);
        }
    }

    fn push(&mut self, event: ConnectorEvent) {
        self.arrived += 1;
        self.seen.push((self.arrived, event));
    }

    /// Waits for (and consumes) the first event matching `wanted`.
    async fn expect(
        &mut self,
        check: &'static str,
        what: &str,
        wanted: impl Fn(&ConnectorEvent) -> bool,
    ) -> Result<ConnectorEvent, ConformanceFailure> {
        self.expect_numbered(check, what, wanted).await.map(|(_, event)| event)
    }

    /// Like [`Watch::expect`], with the event's arrival number.
    async fn expect_numbered(
        &mut self,
        check: &'static str,
        what: &str,
        wanted: impl Fn(&ConnectorEvent) -> bool,
    ) -> Result<(u64, ConnectorEvent), ConformanceFailure> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            self.drain();
            if let Some(index) = self.seen.iter().position(|(_, event)| wanted(event)) {
                return Ok(self.seen.remove(index));
            }
            match tokio::time::timeout_at(deadline, self.stream.recv_async()).await {
                Ok(Ok(event)) => self.push(event),
                Ok(Err(_)) => {
                    return Err(fail(check, format!("event stream closed while waiting for {what}")));
                }
                Err(_) => {
                    let recent: Vec<String> = self.seen.iter().rev().take(5).map(|(_, e)| format!("{e:?}")).collect();
                    return Err(fail(
                        check,
                        format!("no {what} within {:?}; latest events: {}", self.timeout, recent.join("; ")),
                    ));
                }
            }
        }
    }

    /// Waits for fills of `client_id` adding up to `qty`; returns the position they touched
    /// and the arrival number of the first fill.
    async fn expect_filled(
        &mut self,
        check: &'static str,
        client_id: ClientOrderId,
        qty: Qty,
    ) -> Result<(PositionId, u64), ConformanceFailure> {
        let mut filled = Qty::ZERO;
        let mut position = None;
        let mut first = u64::MAX;
        while filled < qty {
            let (number, event) = self
                .expect_numbered(check, &format!("fill of {client_id}"), |event| {
                    matches!(event, ConnectorEvent::Order(report)
                        if report.client_id == Some(client_id) && matches!(report.kind, OrderReportKind::Filled(_)))
                })
                .await?;
            if let ConnectorEvent::Order(report) = event
                && let OrderReportKind::Filled(fill) = report.kind
            {
                if !fill.price.is_positive() {
                    return Err(fail(check, format!("fill of {client_id} at non-positive price {}", fill.price)));
                }
                filled += fill.qty;
                position = Some(fill.position);
                first = first.min(number);
            }
        }
        if filled != qty {
            return Err(fail(check, format!("{client_id} filled {filled}, more than the {qty} ordered")));
        }
        Ok((position.expect("at least one fill"), first))
    }

    /// Fails if a fill of `client_id` arrives within `quiet`.
    async fn expect_no_fill(
        &mut self,
        check: &'static str,
        client_id: ClientOrderId,
        quiet: Duration,
    ) -> Result<(), ConformanceFailure> {
        tokio::time::sleep(quiet).await;
        self.drain();
        let duplicate = self.seen.iter().any(|(_, event)| {
            matches!(event, ConnectorEvent::Order(report)
                if report.client_id == Some(client_id) && matches!(report.kind, OrderReportKind::Filled(_)))
        });
        if duplicate {
            return Err(fail(check, format!("{client_id} filled again after being resent")));
        }
        Ok(())
    }
}

struct Ids {
    base: u64,
    next: u64,
}

impl Ids {
    /// Client ids unique to this run (a real broker remembers ids across runs).
    fn new() -> Self {
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
        Self { base: u64::try_from(micros).unwrap_or(u64::MAX / 2), next: 0 }
    }

    fn next(&mut self) -> ClientOrderId {
        self.next += 1;
        ClientOrderId::new(SignalId(self.base + self.next), AccountId(0x00c0_ffee), 0)
    }
}

fn ticks(spec: &InstrumentSpec, count: i64) -> Price {
    Price::from_raw(spec.tick_size.raw() * count)
}

/// Runs every check in [`CHECKS`] in order and stops at the first failure.
pub async fn run(
    connector: &dyn Connector,
    target: &ConformanceTarget,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::default();
    let mut watch = Watch { stream: connector.events(), seen: Vec::new(), arrived: 0, timeout: target.event_timeout };
    let mut ids = Ids::new();

    let check = "connect";
    let session = call(check, "connect", connector.connect().await)?;
    if session.currency.is_empty() {
        return Err(fail(check, "the session reports no account currency"));
    }
    call(check, "a second connect", connector.connect().await)?;
    report.passed.push(check);

    let check = "instruments";
    let instruments = call(check, "instruments", connector.instruments().await)?;
    for spec in &instruments {
        spec.validate().map_err(|error| fail(check, error.to_string()))?;
    }
    let spec = *instruments.iter().find(|spec| spec.symbol == target.symbol).ok_or_else(|| {
        fail(check, format!("{} is not among the {} instruments listed", target.symbol, instruments.len()))
    })?;
    report.passed.push(check);

    let check = "account";
    let account = call(check, "account", connector.account().await)?;
    if !account.balance.is_positive() || !account.equity.is_positive() {
        return Err(fail(check, format!("balance {} and equity {} must be positive", account.balance, account.equity)));
    }
    report.passed.push(check);

    let check = "quotes";
    call(check, "subscribe_quotes", connector.subscribe_quotes(&[target.symbol]).await)?;
    let event = watch
        .expect(
            check,
            &format!("quote for {}", target.symbol),
            |event| matches!(event, ConnectorEvent::Quote(quote) if quote.symbol == target.symbol),
        )
        .await?;
    let ConnectorEvent::Quote(Quote { bid, ask, .. }) = event else { unreachable!("matched a quote") };
    if !bid.is_positive() || ask < bid {
        return Err(fail(check, format!("quote bid {bid} ask {ask} is not a market")));
    }
    report.passed.push(check);

    let check = "market order fills";
    let two_minimums = spec.min_qty + spec.min_qty;
    let qty = if two_minimums <= spec.max_qty { two_minimums } else { spec.min_qty };
    let open_id = ids.next();
    let open = OrderRequest {
        client_id: open_id,
        symbol: spec.symbol,
        side: Side::Buy,
        qty,
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    };
    let ack = call(check, "place", connector.place(&open).await)?;
    let (position_id, fill_number) = watch.expect_filled(check, open_id, qty).await?;
    let (opened_number, _) = watch
        .expect_numbered(check, "position opened event", |event| {
            matches!(event, ConnectorEvent::Position(effect)
                if effect.position.id == position_id
                    && matches!(effect.change, PositionChange::Opened | PositionChange::Increased { .. }))
        })
        .await?;
    if opened_number < fill_number {
        return Err(fail(check, "the position change came before the execution that caused it"));
    }
    report.passed.push(check);

    let check = "resend is idempotent";
    match connector.place(&open).await {
        Ok(again) if again.broker_id == ack.broker_id => {}
        Ok(again) => {
            return Err(fail(
                check,
                format!("resending {open_id} created order {:?} beside {:?}", again.broker_id, ack.broker_id),
            ));
        }
        Err(ConnectorError::Rejected(reason)) if reason.code == RejectCode::DuplicateClientId => {}
        Err(other) => {
            return Err(fail(check, format!("resending {open_id} failed with {other}")));
        }
    }
    watch.expect_no_fill(check, open_id, target.quiet_period).await?;
    report.passed.push(check);

    let check = "positions are listed";
    let positions = call(check, "open_positions", connector.open_positions().await)?;
    let position = positions
        .iter()
        .find(|p| p.id == position_id)
        .ok_or_else(|| fail(check, format!("{position_id} is not among the open positions {positions:?}")))?;
    if position.side != Side::Buy || position.qty != qty || position.symbol != spec.symbol {
        return Err(fail(check, format!("expected a {qty} {} buy, the broker lists {position:?}", spec.symbol)));
    }
    report.passed.push(check);

    let check = "stop loss and take profit";
    let stop_loss = spec.round_price(bid - ticks(&spec, 200), Rounding::Nearest);
    let take_profit = spec.round_price(ask + ticks(&spec, 200), Rounding::Nearest);
    let modify = ModifyRequest {
        position: position_id,
        symbol: spec.symbol,
        stop_loss: Some(stop_loss),
        take_profit: Some(take_profit),
    };
    call(check, "modify", connector.modify(&modify).await)?;
    watch
        .expect(check, "protection changed event", |event| {
            matches!(event, ConnectorEvent::Position(effect)
                if effect.position.id == position_id && effect.change == PositionChange::ProtectionChanged)
        })
        .await?;
    let positions = call(check, "open_positions", connector.open_positions().await)?;
    let listed = positions.iter().find(|p| p.id == position_id);
    if listed.map(|p| (p.stop_loss, p.take_profit)) != Some((Some(stop_loss), Some(take_profit))) {
        return Err(fail(check, format!("expected sl {stop_loss} tp {take_profit}, the broker lists {listed:?}")));
    }
    report.passed.push(check);

    let check = "partial close";
    let mut remaining = qty;
    if qty > spec.min_qty {
        let partial_id = ids.next();
        let partial =
            CloseRequest { client_id: partial_id, position: position_id, symbol: spec.symbol, qty: spec.min_qty };
        call(check, "close", connector.close(&partial).await)?;
        watch.expect_filled(check, partial_id, spec.min_qty).await?;
        remaining = qty - spec.min_qty;
        let positions = call(check, "open_positions", connector.open_positions().await)?;
        let listed = positions.iter().find(|p| p.id == position_id).map(|p| p.qty);
        if listed != Some(remaining) {
            return Err(fail(check, format!("expected {remaining} left open, the broker lists {listed:?}")));
        }
    }
    report.passed.push(check);

    let check = "close";
    let close_id = ids.next();
    let close = CloseRequest { client_id: close_id, position: position_id, symbol: spec.symbol, qty: remaining };
    call(check, "close", connector.close(&close).await)?;
    watch.expect_filled(check, close_id, remaining).await?;
    watch
        .expect(check, "position closed event", |event| {
            matches!(event, ConnectorEvent::Position(effect)
                if effect.position.id == position_id && matches!(effect.change, PositionChange::Closed { .. }))
        })
        .await?;
    let positions = call(check, "open_positions", connector.open_positions().await)?;
    if positions.iter().any(|p| p.id == position_id) {
        return Err(fail(check, format!("{position_id} is still listed after its close")));
    }
    report.passed.push(check);

    let check = "pending order rests and cancels";
    let far_below = (bid - ticks(&spec, 500)).max(spec.tick_size);
    let limit_id = ids.next();
    let limit = OrderRequest {
        client_id: limit_id,
        kind: OrderKind::Limit { price: spec.round_price(far_below, Rounding::Down).max(spec.tick_size) },
        qty: spec.min_qty,
        ..open
    };
    let limit_ack = call(check, "place limit", connector.place(&limit).await)?;
    let orders = call(check, "open_orders", connector.open_orders().await)?;
    if !orders.iter().any(|o| o.client_id == Some(limit_id) || o.broker_id == limit_ack.broker_id) {
        return Err(fail(check, format!("the resting limit {limit_id} is not among the open orders {orders:?}")));
    }
    let cancel = CancelRequest { client_id: limit_id, broker_id: Some(limit_ack.broker_id) };
    call(check, "cancel", connector.cancel(&cancel).await)?;
    watch
        .expect(check, "cancelled report", |event| {
            matches!(event, ConnectorEvent::Order(report)
                if report.client_id == Some(limit_id) && report.kind == OrderReportKind::Cancelled)
        })
        .await?;
    let orders = call(check, "open_orders", connector.open_orders().await)?;
    if orders.iter().any(|o| o.client_id == Some(limit_id)) {
        return Err(fail(check, format!("{limit_id} is still listed after its cancel")));
    }
    report.passed.push(check);

    let check = "unknown symbol is refused";
    let unknown = OrderRequest {
        client_id: ids.next(),
        symbol: Symbol::new("NO.SUCH.SYMBOL").expect("valid symbol text"),
        ..open
    };
    expect_refusal(check, connector.place(&unknown).await, RejectCode::UnknownSymbol)?;
    report.passed.push(check);

    let check = "invalid quantity is refused";
    let off_step = Qty::from_raw(spec.min_qty.raw() + spec.lot_step.raw() / 2);
    for bad_qty in [Qty::ZERO, off_step, spec.max_qty + spec.lot_step] {
        if bad_qty.raw() % spec.lot_step.raw() == 0 && bad_qty.is_positive() && bad_qty <= spec.max_qty {
            continue;
        }
        let bad = OrderRequest { client_id: ids.next(), qty: bad_qty, ..open };
        expect_refusal(check, connector.place(&bad).await, RejectCode::InvalidQty)?;
    }
    let positions = call(check, "open_positions", connector.open_positions().await)?;
    if positions.iter().any(|p| p.symbol == spec.symbol) {
        return Err(fail(check, format!("a refused order left a position: {positions:?}")));
    }
    report.passed.push(check);

    let check = "unknown cancel is refused";
    let ghost = CancelRequest { client_id: ids.next(), broker_id: None };
    match connector.cancel(&ghost).await {
        Err(ConnectorError::Rejected(reason)) if reason.code == RejectCode::NotFound => {}
        other => {
            return Err(fail(check, format!("expected a NotFound refusal, got {other:?}")));
        }
    }
    report.passed.push(check);

    Ok(report)
}

fn expect_refusal<T: fmt::Debug>(
    check: &'static str,
    result: Result<T, ConnectorError>,
    code: RejectCode,
) -> Result<(), ConformanceFailure> {
    match result {
        Err(ConnectorError::Rejected(reason)) if reason.code == code => Ok(()),
        other => Err(fail(check, format!("expected a {code:?} refusal, got {other:?}"))),
    }
}
