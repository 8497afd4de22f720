//! The state stream's records as JSON for the REST API and the WebSocket stream: prices,
//! quantities and money as exact decimal strings (`"2350.25"`, never a binary float), sides
//! and statuses as lower-case words, and a `topic` on every event so that a client can route
//! it without knowing the shape first.

use mirror_model::{Price, Qty};
use mirror_wire::proto::{
    AccountState, CopyState, CopyStatus, Delta, DeltaEvent, FillState, LatencyStats, LogLevel, LogLine, OrderState,
    OrderStatus, Percentiles, PositionState, Quote, Side, SignalState, Snapshot, SnapshotReason,
};
use serde_json::{Value, json};

/// A raw fixed-point quantity as its exact decimal text.
pub(crate) fn decimal(raw: i64) -> String {
    Qty::from_raw(raw).to_string()
}

fn price(raw: Option<i64>) -> Value {
    raw.map_or(Value::Null, |raw| Value::String(Price::from_raw(raw).to_string()))
}

pub(crate) fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

pub(crate) fn order_status(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Submitted => "submitted",
        OrderStatus::Accepted => "accepted",
        OrderStatus::PartlyFilled => "partly_filled",
        OrderStatus::Filled => "filled",
        OrderStatus::Rejected => "rejected",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
        OrderStatus::Unknown => "unknown",
        OrderStatus::NotSent => "not_sent",
    }
}

pub(crate) fn copy_state(state: CopyState) -> &'static str {
    match state {
        CopyState::Copied => "copied",
        CopyState::Closing => "closing",
        CopyState::Skipped => "skipped",
        CopyState::Rejected => "rejected",
        CopyState::Filled => "filled",
    }
}

pub(crate) fn log_level(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
    }
}

fn snapshot_reason(reason: SnapshotReason) -> &'static str {
    match reason {
        SnapshotReason::Initial => "initial",
        SnapshotReason::ResumeUnavailable => "resume_unavailable",
        SnapshotReason::Lagged => "lagged",
        SnapshotReason::Resync => "resync",
    }
}

pub(crate) fn account(state: &AccountState) -> Value {
    json!({
        "id": state.id,
        "name": state.name,
        "balance": decimal(state.balance),
        "equity": decimal(state.equity),
        "positions": state.positions,
        "live_orders": state.live_orders,
        "mode": state.mode,
        "paused": state.paused,
        "connected": state.connected,
    })
}

pub(crate) fn position(state: &PositionState) -> Value {
    json!({
        "account": state.account,
        "id": state.id,
        "symbol": state.symbol,
        "side": side(state.side),
        "qty": decimal(state.qty),
        "open_price": decimal(state.open_price),
        "stop_loss": price(state.stop_loss),
        "take_profit": price(state.take_profit),
        "open": state.open,
    })
}

pub(crate) fn order(state: &OrderState) -> Value {
    json!({
        "account": state.account,
        "client_id": state.client_id,
        "signal": state.signal,
        "symbol": state.symbol,
        "side": state.side.map(side),
        "position": state.position,
        "qty": decimal(state.qty),
        "filled": decimal(state.filled),
        "status": order_status(state.status),
        "reason": state.reason,
    })
}

pub(crate) fn fill(state: &FillState) -> Value {
    json!({
        "account": state.account,
        "client_id": state.client_id,
        "signal": state.signal,
        "qty": decimal(state.qty),
        "price": decimal(state.price),
        "position": state.position,
        "mono_ns": state.mono_ns,
    })
}

pub(crate) fn copy(state: &CopyStatus) -> Value {
    json!({
        "account": state.account,
        "signal": state.signal,
        "state": copy_state(state.state),
        "detail": state.detail,
    })
}

pub(crate) fn log(line: &LogLine) -> Value {
    json!({
        "level": log_level(line.level),
        "account": line.account,
        "signal": line.signal,
        "text": line.text,
        "mono_ns": line.mono_ns,
    })
}

fn percentiles(p: &Percentiles) -> Value {
    json!({ "samples": p.samples, "p50_ns": p.p50_ns, "p99_ns": p.p99_ns, "p999_ns": p.p999_ns, "max_ns": p.max_ns })
}

pub(crate) fn latency(stats: &LatencyStats) -> Value {
    json!({
        "fanout": percentiles(&stats.fanout),
        "signals": stats.signals,
        "copies": stats.copies,
        "closes": stats.closes,
        "fills": stats.fills,
        "rejects": stats.rejects,
        "skipped": stats.skipped,
        "telemetry_dropped": stats.telemetry_dropped,
    })
}

pub(crate) fn quote(quote: &Quote) -> Value {
    json!({
        "account": quote.account,
        "symbol": quote.symbol,
        "bid": decimal(quote.bid),
        "ask": decimal(quote.ask),
        "time_unix_ms": quote.time_unix_ms,
    })
}

/// A signal taken or refused: `status` `accepted` (fanned out) or `refused` with the engine's
/// `reason`.
pub(crate) fn signal(state: &SignalState) -> Value {
    let origin = if state.leader_account != 0 {
        json!({ "kind": "account", "id": state.leader_account })
    } else {
        json!({ "kind": "source", "id": state.source })
    };
    json!({
        "signal": state.signal,
        "origin": origin,
        "action": state.action,
        "symbol": (!state.symbol.is_empty()).then_some(state.symbol.as_str()),
        "side": state.side.map(side),
        "qty": (state.qty != 0).then(|| decimal(state.qty)),
        "position": (state.position != 0).then_some(state.position),
        "note": state.note,
        "created_unix_ms": state.created_unix_ms,
        "status": if state.refused.is_empty() { "accepted" } else { "refused" },
        "reason": (!state.refused.is_empty()).then_some(state.refused.as_str()),
    })
}

/// The topic's name, as the stream's `topics` filter spells it.
pub(crate) fn topic(event: &DeltaEvent) -> &'static str {
    match event {
        DeltaEvent::Account(_) => "accounts",
        DeltaEvent::Position(_) => "positions",
        DeltaEvent::Order(_) => "orders",
        DeltaEvent::Fill(_) => "fills",
        DeltaEvent::Copy(_) => "copies",
        DeltaEvent::Log(_) => "logs",
        DeltaEvent::Latency(_) => "latency",
        DeltaEvent::Quote(_) => "quotes",
        DeltaEvent::Signal(_) => "signals",
    }
}

/// One numbered event: `{"seq", "topic", "data"}`.
pub(crate) fn delta(delta: &Delta) -> Value {
    let data = match &delta.event {
        DeltaEvent::Account(state) => account(state),
        DeltaEvent::Position(state) => position(state),
        DeltaEvent::Order(state) => order(state),
        DeltaEvent::Fill(state) => fill(state),
        DeltaEvent::Copy(state) => copy(state),
        DeltaEvent::Log(line) => log(line),
        DeltaEvent::Latency(stats) => latency(stats),
        DeltaEvent::Quote(state) => quote(state),
        DeltaEvent::Signal(state) => signal(state),
    };
    json!({ "seq": delta.seq, "topic": topic(&delta.event), "data": data })
}

/// A snapshot as the stream's first message (`type: "snapshot"`).
pub(crate) fn snapshot(snapshot: &Snapshot) -> Value {
    json!({
        "type": "snapshot",
        "epoch": snapshot.epoch,
        "seq": snapshot.seq,
        "reason": snapshot_reason(snapshot.reason),
        "accounts": snapshot.accounts.iter().map(account).collect::<Vec<_>>(),
        "positions": snapshot.positions.iter().map(position).collect::<Vec<_>>(),
        "orders": snapshot.orders.iter().map(order).collect::<Vec<_>>(),
        "fills": snapshot.fills.iter().map(fill).collect::<Vec<_>>(),
        "copies": snapshot.copy.iter().map(copy).collect::<Vec<_>>(),
        "latency": latency(&snapshot.latency),
        "quotes": snapshot.quotes.iter().map(quote).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_decimal_text() {
        let qty = Qty::parse("0.07").unwrap().raw();
        let open = Price::parse("2350.25").unwrap().raw();
        let value = position(&PositionState {
            account: 3,
            id: 9,
            symbol: "XAUUSD".into(),
            side: Side::Sell,
            qty,
            open_price: open,
            stop_loss: Some(Price::parse("2360").unwrap().raw()),
            take_profit: None,
            open: true,
        });
        assert_eq!(value["qty"], "0.07");
        assert_eq!(value["open_price"], "2350.25");
        assert_eq!(value["stop_loss"], "2360");
        assert_eq!(value["take_profit"], Value::Null);
        assert_eq!(value["side"], "sell");
    }
}
