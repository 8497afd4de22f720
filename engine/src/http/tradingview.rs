//! TradingView alerts: the JSON a strategy's alert message fills from its placeholders, or a
//! line of plain text.
//!
//! JSON (fields may be flat, `"strategy.order.action"`, or nested, `{"strategy": {"order":
//! {"action": …}}}`; other fields are ignored):
//!
//! - `ticker` (or `symbol`): `ES`, `ES1!` or `CME_MINI:ES1!` (the exchange prefix and the
//!   continuous-contract suffix `1!` are dropped);
//! - `action` (or `strategy.order.action`, `side`): `buy`/`long` or `sell`/`short`; `flat`,
//!   `close` or `exit` close the symbol;
//! - `contracts` (or `strategy.order.contracts`, `qty`): the quantity, a number or numeric text;
//! - `market_position` (or `strategy.market_position`): `flat` closes the symbol whatever the
//!   action;
//! - `price` (or `strategy.order.price`, `close`): the reference price, optional;
//! - `stop_loss`, `take_profit`: optional prices;
//! - `secret`: the webhook's secret, when it is not in the path.
//!
//! Text: `buy ES 2`, `sell NQ 1 sl 18250 tp 18100`, `flat ES` (words case-insensitive,
//! separated by spaces; `long`/`short` and `close`/`exit` also accepted).

use mirror_model::{OrderKind, Price, Side, Symbol};
use serde_json::{Map, Value};

use super::fields;
use super::problem::Problem;
use super::signal::Order;

/// A body as received.
#[derive(Debug)]
pub(crate) enum Alert {
    Json(Map<String, Value>),
    Text(String),
}

/// Reads a body: JSON when it starts with `{`, the text form otherwise.
pub(crate) fn read(body: &[u8]) -> Result<Alert, Problem> {
    let text = std::str::from_utf8(body).map_err(|e| Problem::malformed(format!("the body is not UTF-8 text: {e}")))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(Problem::malformed("the body is empty; expected an alert as JSON or text such as `buy ES 2`"));
    }
    if trimmed.starts_with('{') {
        fields::json_object(trimmed.as_bytes()).map(Alert::Json)
    } else {
        Ok(Alert::Text(trimmed.to_owned()))
    }
}

impl Alert {
    /// The `secret` field of a JSON alert.
    pub(crate) fn secret(&self) -> Result<Option<&str>, Problem> {
        match self {
            Self::Json(map) => map.get("secret").map(|v| fields::text("secret", v)).transpose(),
            Self::Text(_) => Ok(None),
        }
    }

    /// The order it asks for, symbols checked against `allowed`.
    pub(crate) fn order(&self, allowed: &[Symbol]) -> Result<Order, Problem> {
        match self {
            Self::Json(map) => json_order(map, allowed),
            Self::Text(text) => text_order(text, allowed),
        }
    }
}

/// The first of `names` present, flat or nested; with the name found.
fn field<'a>(map: &'a Map<String, Value>, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names.iter().find_map(|name| {
        if let Some(value) = map.get(*name) {
            return Some((*name, value));
        }
        let mut parts = name.split('.');
        let mut value = map.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some((*name, value))
    })
}

fn ticker(field_name: &str, text: &str, allowed: &[Symbol]) -> Result<Symbol, Problem> {
    let text = text.trim();
    let bare = text.rsplit(':').next().unwrap_or(text);
    let bare = match bare.strip_suffix('!') {
        Some(front) => front.trim_end_matches(|c: char| c.is_ascii_digit()),
        None => bare,
    };
    fields::symbol(field_name, bare, allowed)
}

enum Verb {
    Open(Side),
    Flat,
}

fn verb(field_name: &str, word: &str) -> Result<Verb, Problem> {
    match word.trim().to_ascii_lowercase().as_str() {
        "buy" | "long" => Ok(Verb::Open(Side::Buy)),
        "sell" | "short" => Ok(Verb::Open(Side::Sell)),
        "flat" | "close" | "exit" => Ok(Verb::Flat),
        _ => Err(Problem::invalid(format!(
            "{field_name}: expected buy, sell, long, short, flat, close or exit, got `{word}`"
        ))),
    }
}

fn optional_price(map: &Map<String, Value>, names: &[&'static str]) -> Result<Option<Price>, Problem> {
    field(map, names).map(|(name, value)| fields::price(name, value)).transpose()
}

fn json_order(map: &Map<String, Value>, allowed: &[Symbol]) -> Result<Order, Problem> {
    let (name, value) = field(map, &["ticker", "symbol"])
        .ok_or_else(|| Problem::invalid("ticker: missing; put \"ticker\": \"{{ticker}}\" in the alert message"))?;
    let symbol = ticker(name, fields::text(name, value)?, allowed)?;
    let flat_position = match field(map, &["market_position", "strategy.market_position"]) {
        Some((name, value)) => fields::text(name, value)?.trim().eq_ignore_ascii_case("flat"),
        None => false,
    };
    let (name, value) = field(map, &["action", "strategy.order.action", "side"]).ok_or_else(|| {
        Problem::invalid("action: missing; put \"action\": \"{{strategy.order.action}}\" in the alert message")
    })?;
    let verb = verb(name, fields::text(name, value)?)?;
    let side = match verb {
        _ if flat_position => return Ok(Order::CloseAll { symbol: Some(symbol) }),
        Verb::Flat => return Ok(Order::CloseAll { symbol: Some(symbol) }),
        Verb::Open(side) => side,
    };
    let (name, value) = field(map, &["contracts", "strategy.order.contracts", "qty"]).ok_or_else(|| {
        Problem::invalid("contracts: missing; put \"contracts\": \"{{strategy.order.contracts}}\" in the alert message")
    })?;
    Ok(Order::Open {
        symbol,
        side,
        qty: fields::qty(name, value)?,
        kind: OrderKind::Market,
        position: None,
        reference_price: optional_price(map, &["price", "strategy.order.price", "close"])?,
        stop_loss: optional_price(map, &["stop_loss"])?,
        take_profit: optional_price(map, &["take_profit"])?,
    })
}

fn text_order(text: &str, allowed: &[Symbol]) -> Result<Order, Problem> {
    const FORM: &str = "expected `buy|sell <SYMBOL> <QTY> [sl <PRICE>] [tp <PRICE>]` or `flat <SYMBOL>`";
    let words: Vec<&str> = text.split_whitespace().collect();
    let shown: String = text.chars().take(80).collect();
    let (Some(first), Some(second)) = (words.first(), words.get(1)) else {
        return Err(Problem::malformed(format!("{FORM}, got `{shown}`")));
    };
    let verb = verb("action", first).map_err(|_| Problem::malformed(format!("{FORM}, got `{shown}`")))?;
    let symbol = ticker("symbol", second, allowed)?;
    let side = match verb {
        Verb::Flat if words.len() == 2 => return Ok(Order::CloseAll { symbol: Some(symbol) }),
        Verb::Flat => return Err(Problem::malformed(format!("{FORM}, got `{shown}`"))),
        Verb::Open(side) => side,
    };
    let qty = fields::qty_text("qty", words.get(2).ok_or_else(|| Problem::invalid("qty: missing after the symbol"))?)?;
    let (mut stop_loss, mut take_profit) = (None, None);
    let mut rest = words[3..].chunks(2);
    for pair in rest.by_ref() {
        let [key, value] = pair else {
            return Err(Problem::malformed(format!("`{}` needs a price after it; {FORM}", pair[0])));
        };
        let slot = match key.to_ascii_lowercase().as_str() {
            "sl" => &mut stop_loss,
            "tp" => &mut take_profit,
            _ => return Err(Problem::malformed(format!("unexpected `{key}`; {FORM}"))),
        };
        *slot = Some(fields::price(&key.to_ascii_lowercase(), &Value::String((*value).to_owned()))?);
    }
    Ok(Order::Open {
        symbol,
        side,
        qty,
        kind: OrderKind::Market,
        position: None,
        reference_price: None,
        stop_loss,
        take_profit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_model::Qty;

    fn symbols() -> Vec<Symbol> {
        vec![Symbol::new("ES").unwrap(), Symbol::new("NQ").unwrap()]
    }

    fn order(body: &str) -> Result<Order, Problem> {
        read(body.as_bytes())?.order(&symbols())
    }

    #[test]
    fn strategy_alerts_flat_or_nested_open_and_close() {
        let flat = r#"{"ticker":"CME_MINI:ES1!","strategy.order.action":"buy","strategy.order.contracts":"2",
            "strategy.market_position":"long","close":4500.25}"#;
        let Order::Open { symbol, side, qty, reference_price, .. } = order(flat).unwrap() else { panic!() };
        assert_eq!((symbol.as_str(), side, qty), ("ES", Side::Buy, Qty::parse("2").unwrap()));
        assert_eq!(reference_price, Some(Price::parse("4500.25").unwrap()));
        let nested = r#"{"ticker":"NQ","strategy":{"order":{"action":"sell","contracts":1},"market_position":"flat"}}"#;
        assert_eq!(order(nested).unwrap(), Order::CloseAll { symbol: Some(Symbol::new("NQ").unwrap()) });
    }

    #[test]
    fn the_text_form() {
        let Order::Open { side, qty, stop_loss, .. } = order("sell NQ 1 sl 18250").unwrap() else { panic!() };
        assert_eq!(
            (side, qty, stop_loss),
            (Side::Sell, Qty::parse("1").unwrap(), Some(Price::parse("18250").unwrap()))
        );
        assert_eq!(
            order("FLAT es1!").unwrap_err().detail,
            "symbol: unknown symbol `es`; this webhook's source sends ES, NQ"
        );
        assert_eq!(order("flat ES").unwrap(), Order::CloseAll { symbol: Some(Symbol::new("ES").unwrap()) });
        assert_eq!(order("hello").unwrap_err().status.as_u16(), 400);
        assert!(order("buy ES -2").unwrap_err().detail.contains("qty: must be above 0"));
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(
            order(r#"{"ticker":"ES","action":"buy","contracts":true}"#).unwrap_err().detail.starts_with("contracts:")
        );
        assert!(
            order(r#"{"ticker":"ZZ","action":"buy","contracts":1}"#)
                .unwrap_err()
                .detail
                .contains("unknown symbol `ZZ`")
        );
        assert!(order(r#"{"ticker":"ES","action":"hold","contracts":1}"#).unwrap_err().detail.starts_with("action:"));
        assert_eq!(order(r#"{"ticker":"ES","#).unwrap_err().status.as_u16(), 400);
    }
}
