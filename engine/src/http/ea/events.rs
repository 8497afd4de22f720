//! The batch an Expert Advisor posts, read and checked whole before anything runs: every
//! refusal names `events[i].field`, what was expected and what came.
//!
//! ```json
//! {"login": 123456, "server": "Broker-Demo", "platform": "mt5", "events": [
//!   {"seq": 1, "type": "open", "ticket": 5001, "symbol": "XAUUSDm", "side": "buy", "lots": "0.10",
//!    "price": "2350.10", "sl": "2340", "tp": "2360", "order": 0, "time": 1767225600},
//!   {"seq": 2, "type": "close", "ticket": 5001, "lots": "0.05", "lots_before": "0.10", "time": 1767225660},
//!   {"seq": 3, "type": "modify", "ticket": 5001, "sl": "2350.10", "tp": "2360", "time": 1767225700},
//!   {"seq": 4, "type": "pending", "ticket": 5002, "symbol": "XAUUSDm", "order_type": "buy_limit", "price": "2330", "lots": "0.20",
//!    "sl": "2320", "tp": "0", "time": 1767225800},
//!   {"seq": 5, "type": "cancel", "ticket": 5002, "time": 1767225900}]}
//! ```
//!
//! - `seq`: the terminal's event number, increasing (a redelivered event is recognised by it);
//! - `ticket`: the position's ticket (a pending order's for `pending` and `cancel`), the key
//!   the followers' copies are known by;
//! - `lots`, `price`, `sl`, `tp`, `lots_before`: decimals as numbers or text; an `sl` or `tp` of
//!   0 (MetaTrader's "none") or null is no level; a `modify` gives both, as the position now has
//!   them (a level left out would be removed);
//! - `open.order`: the pending order the position was filled from (0: a market order);
//! - `close.lots` of `lots_before`: a partial close when below it;
//! - `time`: unix seconds, UTC, when the EA saw the event (optional).

use mirror_model::{LeaderRef, OpenSignal, OrderKind, Price, Side, SignalAction, SignalError, Symbol, TimeInForce};
use serde_json::{Map, Value};

use super::super::fields;
use super::super::problem::Problem;

/// Fields of the batch.
pub(crate) const BATCH_FIELDS: &[&str] = &["login", "server", "platform", "events"];

/// Each event type and its fields.
pub(crate) const EVENT_FIELDS: &[(&str, &[&str])] = &[
    ("open", &["seq", "type", "ticket", "symbol", "side", "lots", "price", "sl", "tp", "order", "time"]),
    ("close", &["seq", "type", "ticket", "lots", "lots_before", "time"]),
    ("modify", &["seq", "type", "ticket", "sl", "tp", "time"]),
    ("pending", &["seq", "type", "ticket", "symbol", "order_type", "price", "lots", "sl", "tp", "time"]),
    ("cancel", &["seq", "type", "ticket", "time"]),
];

/// Most events in one batch.
pub(crate) const EVENTS_MAX: usize = 256;
/// Longest server name.
const SERVER_LEN_MAX: usize = 64;

/// A batch, checked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) login: u64,
    pub(crate) server: String,
    pub(crate) platform: &'static str,
    pub(crate) events: Vec<Event>,
}

/// One event, as the engine's action.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) seq: u64,
    pub(crate) kind: &'static str,
    pub(crate) ticket: u64,
    pub(crate) action: SignalAction,
    /// When the EA saw it, unix milliseconds.
    pub(crate) time_unix_ms: Option<i64>,
}

/// Reads and checks a batch; `allowed` are the source's symbols.
pub(crate) fn read(body: &[u8], allowed: &[Symbol]) -> Result<Batch, Problem> {
    let map = fields::json_object(body)?;
    if let Some(unknown) = map.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
        return Err(Problem::invalid(format!("{unknown}: unknown field; expected {}", BATCH_FIELDS.join(", "))));
    }
    let login = whole(&map, "login", "login")?.filter(|l| *l > 0).ok_or_else(|| {
        Problem::invalid("login: missing or 0; expected the account number, such as 123456".to_owned())
    })?;
    let server = fields::text("server", required(&map, "server", "server")?)?.trim().to_owned();
    if server.is_empty() || server.len() > SERVER_LEN_MAX {
        return Err(Problem::invalid(format!("server: 1 to {SERVER_LEN_MAX} characters expected, got `{server}`")));
    }
    let platform = match fields::text("platform", required(&map, "platform", "platform")?)? {
        "mt4" | "MT4" => "mt4",
        "mt5" | "MT5" => "mt5",
        other => return Err(Problem::invalid(format!("platform: expected mt4 or mt5, got `{other}`"))),
    };
    let Value::Array(list) = required(&map, "events", "events")? else {
        return Err(Problem::invalid(format!("events: expected an array, got {}", fields::kind_of(&map["events"]))));
    };
    if list.is_empty() || list.len() > EVENTS_MAX {
        return Err(Problem::invalid(format!("events: 1 to {EVENTS_MAX} events expected, got {}", list.len())));
    }
    let mut events: Vec<Event> = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let event = self::event(index, value, allowed)?;
        if let Some(previous) = events.last()
            && event.seq <= previous.seq
        {
            return Err(Problem::invalid(format!(
                "events[{index}].seq: {} is not above events[{}].seq {}; a terminal's sequence numbers increase",
                event.seq,
                index - 1,
                previous.seq
            )));
        }
        events.push(event);
    }
    Ok(Batch { login, server, platform, events })
}

fn required<'a>(map: &'a Map<String, Value>, name: &str, shown: &str) -> Result<&'a Value, Problem> {
    map.get(name).ok_or_else(|| Problem::invalid(format!("{shown}: missing")))
}

/// A whole number of at least 0 (`None` when absent).
fn whole(map: &Map<String, Value>, name: &str, shown: &str) -> Result<Option<u64>, Problem> {
    map.get(name)
        .map(|value| {
            value.as_u64().ok_or_else(|| {
                Problem::invalid(format!("{shown}: expected a whole number of at least 0, got {}", shown_value(value)))
            })
        })
        .transpose()
}

fn shown_value(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        other => fields::kind_of(other).to_owned(),
    }
}

fn event(index: usize, value: &Value, allowed: &[Symbol]) -> Result<Event, Problem> {
    let at = |field: &str| format!("events[{index}].{field}");
    let Value::Object(map) = value else {
        return Err(Problem::invalid(format!("events[{index}]: expected an object, got {}", fields::kind_of(value))));
    };
    let kind = fields::text(&at("type"), required(map, "type", &at("type"))?)?;
    let Some(&(kind, names)) = EVENT_FIELDS.iter().find(|(name, _)| *name == kind) else {
        let kinds: Vec<&str> = EVENT_FIELDS.iter().map(|(name, _)| *name).collect();
        return Err(Problem::invalid(format!("{}: expected {}, got `{kind}`", at("type"), kinds.join(", "))));
    };
    if let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str())) {
        return Err(Problem::invalid(format!(
            "{}: unknown field for a `{kind}` event; expected {}",
            at(unknown),
            names.join(", ")
        )));
    }
    let seq = whole(map, "seq", &at("seq"))?.filter(|s| *s > 0).ok_or_else(|| {
        Problem::invalid(format!("{}: missing or 0; expected the terminal's event number", at("seq")))
    })?;
    let ticket = whole(map, "ticket", &at("ticket"))?
        .filter(|t| *t > 0)
        .ok_or_else(|| Problem::invalid(format!("{}: missing or 0; expected the ticket", at("ticket"))))?;
    let time_unix_ms = match whole(map, "time", &at("time"))? {
        Some(seconds) => Some(
            i64::try_from(seconds)
                .ok()
                .and_then(|s| s.checked_mul(1000))
                .ok_or_else(|| Problem::invalid(format!("{}: {seconds} is not unix seconds", at("time"))))?,
        ),
        None => None,
    };
    let need = |name: &str| required(map, name, &at(name));
    let qty = |name: &str| fields::qty(&at(name), need(name)?);
    let price = |name: &str| fields::price(&at(name), need(name)?);
    // MetaTrader writes 0 for "no level".
    let level = |name: &str| -> Result<Option<Price>, Problem> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(None),
            Some(Value::String(t)) if Price::parse(t.trim()).is_ok_and(|p| p.is_zero()) => Ok(None),
            Some(value) => fields::price(&at(name), value).map(Some),
        }
    };
    let leader = LeaderRef(ticket);
    let action = match kind {
        "open" => {
            let side = match fields::text(&at("side"), need("side")?)? {
                "buy" => Side::Buy,
                "sell" => Side::Sell,
                other => return Err(Problem::invalid(format!("{}: expected buy or sell, got `{other}`", at("side")))),
            };
            let from = whole(map, "order", &at("order"))?.filter(|o| *o > 0);
            SignalAction::Open(OpenSignal {
                leader,
                symbol: resolve_symbol(&at("symbol"), fields::text(&at("symbol"), need("symbol")?)?, allowed)?,
                side,
                qty: qty("lots")?,
                kind: OrderKind::Market,
                reference_price: Some(price("price")?),
                stop_loss: level("sl")?,
                take_profit: level("tp")?,
                time_in_force: TimeInForce::Gtc,
                contract_size: None,
                from_pending: from.map(LeaderRef),
                risk_bp: None,
            })
        }
        "pending" => {
            let order_type = fields::text(&at("order_type"), need("order_type")?)?;
            let (side, limit) = match order_type {
                "buy_limit" => (Side::Buy, true),
                "sell_limit" => (Side::Sell, true),
                "buy_stop" => (Side::Buy, false),
                "sell_stop" => (Side::Sell, false),
                other => {
                    return Err(Problem::invalid(format!(
                        "{}: expected buy_limit, sell_limit, buy_stop or sell_stop, got `{other}`",
                        at("order_type")
                    )));
                }
            };
            let at_price = price("price")?;
            SignalAction::Open(OpenSignal {
                leader,
                symbol: resolve_symbol(&at("symbol"), fields::text(&at("symbol"), need("symbol")?)?, allowed)?,
                side,
                qty: qty("lots")?,
                kind: if limit { OrderKind::Limit { price: at_price } } else { OrderKind::Stop { price: at_price } },
                reference_price: None,
                stop_loss: level("sl")?,
                take_profit: level("tp")?,
                time_in_force: TimeInForce::Gtc,
                contract_size: None,
                from_pending: None,
                risk_bp: None,
            })
        }
        "close" => {
            let (closed, before) = (qty("lots")?, qty("lots_before")?);
            if closed > before {
                return Err(Problem::invalid(format!(
                    "{}: {closed} closed out of {before} before (lots_before); at most lots_before can close",
                    at("lots")
                )));
            }
            if closed == before {
                SignalAction::Close { leader }
            } else {
                SignalAction::PartialClose { leader, closed_qty: closed, qty_before: before }
            }
        }
        "modify" => {
            // Both levels, explicitly: a Modify sets both, and one left out would be removed.
            need("sl")?;
            need("tp")?;
            SignalAction::Modify { leader, stop_loss: level("sl")?, take_profit: level("tp")? }
        }
        _ => SignalAction::CancelPending { leader },
    };
    action.validate().map_err(|error| Problem::invalid(signal_error(index, &error)))?;
    Ok(Event { seq, kind, ticket, action, time_unix_ms })
}

/// An engine refusal, named by the event's field.
fn signal_error(index: usize, error: &SignalError) -> String {
    let field = match error {
        SignalError::NonPositiveQty { .. } | SignalError::BadPartialClose { .. } => "lots",
        SignalError::NonPositivePrice { field, .. } | SignalError::ProtectionWrongSide { field, .. } => match *field {
            "stop_loss" => "sl",
            "take_profit" => "tp",
            _ => "price",
        },
        SignalError::NoteTooLong { .. } => "note",
        // An EA's events are never sized by risk.
        SignalError::BadRisk { .. } | SignalError::RiskWithoutStop => "lots",
    };
    format!("events[{index}].{field}: {error}")
}

/// The source's symbol a broker's symbol stands for: itself, or the one symbol it is with a
/// broker suffix removed (`EURUSD.r`, `XAUUSDm`, `EURUSD-ECN`, `US30_i`). A suffix starts
/// with `.`, `-`, `_`, `#` or `+`, or is lower-case letters and digits, so `US300` is not
/// `US30` with a suffix.
pub(crate) fn resolve_symbol(field: &str, text: &str, allowed: &[Symbol]) -> Result<Symbol, Problem> {
    let text = text.trim();
    if let Some(exact) = allowed.iter().find(|s| s.as_str() == text) {
        return Ok(*exact);
    }
    let matches: Vec<Symbol> = allowed
        .iter()
        .filter(|s| {
            let stem = s.as_str();
            text.len() > stem.len()
                && text.is_char_boundary(stem.len())
                && text[..stem.len()].eq_ignore_ascii_case(stem)
                && is_suffix(&text[stem.len()..])
        })
        .copied()
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => {
            let mut known: Vec<String> = allowed.iter().map(ToString::to_string).collect();
            known.sort();
            Err(Problem::invalid(format!(
                "{field}: unknown symbol `{text}`; this webhook's source sends {} (a broker suffix such as .r, m or \
                 -ECN is removed when it leaves exactly one of them)",
                known.join(", ")
            )))
        }
        several => {
            let names: Vec<String> = several.iter().map(ToString::to_string).collect();
            Err(Problem::invalid(format!(
                "{field}: `{text}` could be any of {} once a suffix is removed; name the symbol exactly",
                names.join(", ")
            )))
        }
    }
}

fn is_suffix(rest: &str) -> bool {
    let mut chars = rest.chars();
    match chars.next() {
        Some('.' | '-' | '_' | '#' | '+') => rest.chars().all(|c| c.is_ascii_graphic()),
        Some(first) if first.is_ascii_lowercase() => rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use mirror_model::Qty;

    use super::*;

    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }

    fn symbols() -> Vec<Symbol> {
        ["EURUSD", "XAUUSD", "US30", "US300"].iter().map(|s| Symbol::new(s).unwrap()).collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ea").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn broker_suffixes_resolve_to_exactly_one_symbol() {
        let resolve = |text: &str| resolve_symbol("symbol", text, &symbols()).map(|s| s.to_string());
        for (text, expected) in [
            ("EURUSD.r", "EURUSD"),
            ("XAUUSDm", "XAUUSD"),
            ("EURUSD-ECN", "EURUSD"),
            ("US30_i", "US30"),
            ("US300", "US300"),
        ] {
            assert_eq!(resolve(text).as_deref(), Ok(expected), "{text}");
        }
        let unknown = resolve("GBPUSD.r").unwrap_err();
        assert!(unknown.detail.starts_with("symbol: unknown symbol `GBPUSD.r`; this webhook's source sends EURUSD"));
        assert!(resolve("EURUSDX").is_err(), "an upper-case tail is not a suffix");
        let both = [Symbol::new("GOLD").unwrap(), Symbol::new("GOLD.s").unwrap()];
        assert!(resolve_symbol("symbol", "GOLD.s", &both).is_ok(), "an exact match wins");
        let gold = [Symbol::new("XAU").unwrap(), Symbol::new("XAUUSD").unwrap()];
        assert_eq!(resolve_symbol("symbol", "XAUUSD.r", &gold).unwrap().as_str(), "XAUUSD");
    }

    #[test]
    fn a_real_batch_maps_to_engine_actions() {
        let batch = read(&fixture("lifecycle.json"), &symbols()).unwrap();
        assert_eq!((batch.login, batch.server.as_str(), batch.platform), (52_114_873, "ICMarketsSC-Demo", "mt5"));
        let kinds: Vec<&str> = batch.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["open", "close", "modify", "pending", "open", "cancel", "close"]);
        let SignalAction::Open(open) = batch.events[0].action else { panic!() };
        assert_eq!((open.leader, open.symbol.as_str(), open.side), (LeaderRef(2_400_118_913), "XAUUSD", Side::Buy));
        assert_eq!((open.qty, open.reference_price), (q("0.1"), Some(Price::parse("2350.12").unwrap())));
        assert_eq!((open.stop_loss, open.take_profit), (Some(Price::parse("2340").unwrap()), None));
        assert_eq!(batch.events[0].time_unix_ms, Some(1_767_225_600_000));
        assert_eq!(
            batch.events[1].action,
            SignalAction::PartialClose {
                leader: LeaderRef(2_400_118_913),
                closed_qty: q("0.05"),
                qty_before: q("0.1")
            }
        );
        let SignalAction::Modify { stop_loss, take_profit, .. } = batch.events[2].action else { panic!() };
        assert_eq!(
            (stop_loss, take_profit),
            (Some(Price::parse("2350.12").unwrap()), Some(Price::parse("2365").unwrap()))
        );
        let SignalAction::Open(pending) = batch.events[3].action else { panic!() };
        assert_eq!(pending.kind, OrderKind::Limit { price: Price::parse("1.0820").unwrap() });
        let SignalAction::Open(filled) = batch.events[4].action else { panic!() };
        assert_eq!(filled.from_pending, Some(LeaderRef(2_400_119_020)));
        assert_eq!(batch.events[5].action, SignalAction::CancelPending { leader: LeaderRef(2_400_119_311) });
        assert_eq!(batch.events[6].action, SignalAction::Close { leader: LeaderRef(2_400_118_913) });
        // MT4 with numbers as JSON numbers and a lower-case suffix.
        let mt4 = read(&fixture("mt4_open.json"), &symbols()).unwrap();
        assert_eq!(mt4.platform, "mt4");
        let SignalAction::Open(open) = mt4.events[0].action else { panic!() };
        assert_eq!((open.symbol.as_str(), open.side, open.qty), ("EURUSD", Side::Sell, q("0.3")));
        assert_eq!(open.stop_loss, Some(Price::parse("1.08755").unwrap()));
    }

    #[test]
    fn any_bad_event_names_its_index_and_field() {
        let refused = |name: &str| read(&fixture(name), &symbols()).unwrap_err();
        let bad = refused("bad_event.json");
        assert_eq!(bad.status.as_u16(), 422);
        assert!(bad.detail.starts_with("events[1].lots: must be above 0, got -0.05"), "{}", bad.detail);
        let event = |json: &str| {
            let body = format!(r#"{{"login":1,"server":"S","platform":"mt5","events":[{json}]}}"#);
            read(body.as_bytes(), &symbols()).map(|_| ()).unwrap_err().detail
        };
        let open = r#""seq":1,"type":"open","ticket":7,"symbol":"EURUSD","side":"buy","lots":1,"price":"1.1""#;
        assert!(
            event(&format!("{{{open},\"sl\":\"1.2\"}}"))
                .starts_with("events[0].sl: stop_loss 1.2 is on the wrong side")
        );
        assert!(event(&format!("{{{open},\"volume\":1}}")).starts_with("events[0].volume: unknown field for a `open`"));
        assert!(
            event(r#"{"seq":1,"type":"open","ticket":7,"symbol":"GBPUSD.r","side":"buy","lots":1,"price":1}"#)
                .starts_with("events[0].symbol: unknown symbol `GBPUSD.r`")
        );
        assert!(
            event(r#"{"seq":1,"type":"close","ticket":7,"lots":2,"lots_before":1}"#)
                .starts_with("events[0].lots: 2 closed out of 1")
        );
        assert_eq!(event(r#"{"seq":1,"type":"modify","ticket":7,"sl":0}"#), "events[0].tp: missing");
        assert!(event(r#"{"seq":1,"type":"hedge","ticket":7}"#).starts_with("events[0].type: expected open, close"));
        assert!(event(r#"{"seq":0,"type":"cancel","ticket":7}"#).starts_with("events[0].seq: missing or 0"));
        assert!(
            event(r#"{"seq":1,"type":"cancel","ticket":-7}"#).starts_with("events[0].ticket: expected a whole number")
        );
        let order = r#"{"login":1,"server":"S","platform":"mt5","events":[{"seq":2,"type":"cancel","ticket":7},
            {"seq":2,"type":"cancel","ticket":8}]}"#;
        let error = read(order.as_bytes(), &symbols()).unwrap_err();
        assert!(error.detail.starts_with("events[1].seq: 2 is not above events[0].seq 2"), "{}", error.detail);
        assert_eq!(read(b"[]", &symbols()).unwrap_err().status.as_u16(), 400);
        assert!(read(br#"{"login":1}"#, &symbols()).unwrap_err().detail.starts_with("server: missing"));
    }
}
