//! Reading signal fields from outside (JSON values and words of the text form), every
//! refusal naming the field, what was expected and what came.

use mirror_model::{Price, Qty, Symbol};
use serde_json::{Map, Value};

use super::problem::Problem;

/// A body that must be one JSON object: malformed JSON and any other JSON value are refused
/// (400), saying which.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Problem::malformed(format!("expected a JSON object, got {}", kind_of(&other)))),
        Err(e) => Err(Problem::malformed(format!("malformed JSON: {e}"))),
    }
}

/// What a JSON value is, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A decimal given as a JSON number or as text (TradingView's placeholders are often quoted).
fn decimal_text(field: &str, value: &Value) -> Result<String, Problem> {
    match value {
        Value::Number(number) => Ok(number.to_string()),
        Value::String(text) => Ok(text.trim().to_owned()),
        other => Err(Problem::invalid(format!("{field}: expected a number, got {}", kind_of(other)))),
    }
}

/// A quantity above zero.
pub(crate) fn qty(field: &str, value: &Value) -> Result<Qty, Problem> {
    qty_text(field, &decimal_text(field, value)?)
}

/// A quantity above zero, from text.
pub(crate) fn qty_text(field: &str, text: &str) -> Result<Qty, Problem> {
    let qty = Qty::parse(text).map_err(|e| Problem::invalid(format!("{field}: {e}")))?;
    if qty.raw() <= 0 {
        return Err(Problem::invalid(format!("{field}: must be above 0, got {text}")));
    }
    Ok(qty)
}

/// A price above zero.
pub(crate) fn price(field: &str, value: &Value) -> Result<Price, Problem> {
    let text = decimal_text(field, value)?;
    let price = Price::parse(&text).map_err(|e| Problem::invalid(format!("{field}: {e}")))?;
    if price.raw() <= 0 {
        return Err(Problem::invalid(format!("{field}: must be above 0, got {text}")));
    }
    Ok(price)
}

/// Text.
pub(crate) fn text<'a>(field: &str, value: &'a Value) -> Result<&'a str, Problem> {
    value.as_str().ok_or_else(|| Problem::invalid(format!("{field}: expected a string, got {}", kind_of(value))))
}

/// A symbol the source may send: one of `allowed` (the source's list, or the catalog).
pub(crate) fn symbol(field: &str, text: &str, allowed: &[Symbol]) -> Result<Symbol, Problem> {
    let symbol = Symbol::new(text).map_err(|e| Problem::invalid(format!("{field}: {e}")))?;
    if !allowed.contains(&symbol) {
        let mut known: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        known.sort();
        return Err(Problem::invalid(format!(
            "{field}: unknown symbol `{text}`; this webhook's source sends {}",
            known.join(", ")
        )));
    }
    Ok(symbol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_are_exact_positive_decimals() {
        assert_eq!(qty("qty", &json!(2)).unwrap(), Qty::parse("2").unwrap());
        assert_eq!(qty("qty", &json!("0.5")).unwrap(), Qty::parse("0.5").unwrap());
        assert!(qty("qty", &json!(-1)).unwrap_err().detail.contains("must be above 0, got -1"));
        assert!(qty("qty", &json!(0)).unwrap_err().detail.contains("must be above 0"));
        assert!(qty("qty", &json!("NaN")).unwrap_err().detail.starts_with("qty: expected a decimal number"));
        assert_eq!(qty("qty", &json!(true)).unwrap_err().detail, "qty: expected a number, got a boolean");
    }
}
