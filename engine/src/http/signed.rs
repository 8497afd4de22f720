//! Signed webhooks: Mirror's JSON signal, authenticated by HMAC-SHA256 over
//! `"<timestamp>.<body>"` with the webhook's secret, within a window around the server's clock,
//! and refused when the same signature came before within that window.
//!
//! Headers: `X-Mirror-Timestamp: <unix seconds>`, `X-Mirror-Signature: sha256=<hex>`.
//!
//! Body (`"v": 1`; unknown fields are refused):
//!
//! - `{"v":1, "action":"open", "symbol":"ES", "side":"buy", "qty":2, "order_type":"market",
//!   "price":…, "reference_price":…, "stop_loss":…, "take_profit":…, "position":7, "note":"…"}`
//!   (`order_type` `market` by default, or `limit`/`stop` with `price`; `position` the
//!   sender's key for a later `close`, a fresh one when absent);
//! - `{"v":1, "action":"close", "position":7}`;
//! - `{"v":1, "action":"close_all", "symbol":"ES"}` (no symbol: every symbol).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use mirror_model::{OrderKind, Side, Symbol};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::fields;
use super::problem::Problem;
use super::signal::Order;
use actix_web::http::StatusCode;

/// How far a timestamp may be from the server's clock, seconds.
pub(crate) const REPLAY_WINDOW_S: i64 = 300;
/// Most signatures remembered; beyond, requests are refused until old ones leave the window.
pub(crate) const REPLAY_CACHE_MAX: usize = 100_000;
/// Longest note kept.
const NOTE_LEN_MAX: usize = 256;

pub(crate) const TIMESTAMP_HEADER: &str = "x-mirror-timestamp";
pub(crate) const SIGNATURE_HEADER: &str = "x-mirror-signature";

/// Checks the timestamp against `now_s` and the signature against `secret`; returns the
/// signature's bytes (the replay key).
pub(crate) fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_s: i64,
) -> Result<[u8; 32], Problem> {
    let timestamp = timestamp.ok_or_else(|| {
        Problem::unauthorized(format!("{TIMESTAMP_HEADER}: missing; send the unix time in seconds you signed"))
    })?;
    let seconds: i64 = timestamp.trim().parse().map_err(|_| {
        Problem::unauthorized(format!(
            "{TIMESTAMP_HEADER}: expected unix seconds such as 1767225600, got `{timestamp}`"
        ))
    })?;
    let skew = seconds.saturating_sub(now_s);
    if skew.abs() > REPLAY_WINDOW_S {
        return Err(Problem::unauthorized(format!(
            "{TIMESTAMP_HEADER}: {seconds} is {skew} s from the server's clock ({now_s}); at most ±{REPLAY_WINDOW_S} s \
             is accepted"
        )));
    }
    let signature = signature.ok_or_else(|| {
        Problem::unauthorized(format!(
            "{SIGNATURE_HEADER}: missing; send sha256=<hex HMAC-SHA256 of \"<timestamp>.<body>\" with the webhook's \
             secret>"
        ))
    })?;
    let presented = signature
        .trim()
        .strip_prefix("sha256=")
        .and_then(hex32)
        .ok_or_else(|| Problem::unauthorized(format!("{SIGNATURE_HEADER}: expected sha256=<64 hex digits>")))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&presented).map_err(|_| {
        Problem::unauthorized(format!(
            "{SIGNATURE_HEADER}: does not match the body and timestamp signed with this webhook's secret"
        ))
    })?;
    Ok(presented)
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The signatures seen within the window, oldest first.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Signature → when it was accepted (unix seconds).
    by_signature: HashMap<[u8; 32], i64>,
    /// The same, in arrival order.
    order: VecDeque<([u8; 32], i64)>,
}

impl ReplayCache {
    /// Remembers `signature` (seen at `now_s`); refused if it was seen within the window.
    pub(crate) fn check(&self, signature: [u8; 32], now_s: i64, capacity: usize) -> Result<(), Problem> {
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Seen { by_signature: seen, order } = &mut *guard;
        // Beyond twice the window a timestamp is refused anyway, so its signature can go.
        while let Some((old, at)) = order.front().copied() {
            if now_s - at <= 2 * REPLAY_WINDOW_S {
                break;
            }
            order.pop_front();
            seen.remove(&old);
        }
        if seen.contains_key(&signature) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "replayed",
                "Replayed request",
                "this signature was already accepted; sign each request with a new timestamp",
            ));
        }
        if order.len() >= capacity {
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "replay-cache-full",
                "Too many signed requests",
                format!("more than {capacity} signed requests within {} s; retry later", 2 * REPLAY_WINDOW_S),
            );
            problem.retry_after_s = Some(10);
            return Err(problem);
        }
        seen.insert(signature, now_s);
        order.push_back((signature, now_s));
        Ok(())
    }
}

const FIELDS: &[&str] = &[
    "v",
    "action",
    "symbol",
    "side",
    "qty",
    "order_type",
    "price",
    "reference_price",
    "stop_loss",
    "take_profit",
    "position",
    "note",
];

/// Reads a signal body; the order and its note.
pub(crate) fn parse(body: &[u8], allowed: &[Symbol]) -> Result<(Order, String), Problem> {
    let map = fields::json_object(body)?;
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Problem::invalid(format!("{unknown}: unknown field; expected one of {}", FIELDS.join(", "))));
    }
    match map.get("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        Some(other) => return Err(Problem::invalid(format!("v: expected 1 (the schema version), got {other}"))),
        None => return Err(Problem::invalid("v: missing; expected 1 (the schema version)")),
    }
    let note = note(&map)?.unwrap_or_default().to_owned();
    let action = fields::text("action", required(&map, "action")?)?;
    let order = match action {
        "open" => open(&map, allowed)?,
        "close" => Order::Close { position: position(&map)?.ok_or_else(|| Problem::invalid("position: missing"))? },
        "close_all" => Order::CloseAll {
            symbol: map
                .get("symbol")
                .map(|v| fields::symbol("symbol", fields::text("symbol", v)?, allowed))
                .transpose()?,
        },
        other => {
            return Err(Problem::invalid(format!("action: expected open, close or close_all, got `{other}`")));
        }
    };
    Ok((order, note))
}

/// The optional `note` field, at most [`NOTE_LEN_MAX`] bytes.
pub(crate) fn note(map: &Map<String, Value>) -> Result<Option<&str>, Problem> {
    let Some(value) = map.get("note") else { return Ok(None) };
    let note = fields::text("note", value)?;
    if note.len() > NOTE_LEN_MAX {
        return Err(Problem::invalid(format!("note: at most {NOTE_LEN_MAX} bytes, got {}", note.len())));
    }
    Ok(Some(note))
}

fn required<'a>(map: &'a Map<String, Value>, name: &str) -> Result<&'a Value, Problem> {
    map.get(name).ok_or_else(|| Problem::invalid(format!("{name}: missing")))
}

pub(crate) fn position(map: &Map<String, Value>) -> Result<Option<u64>, Problem> {
    map.get("position")
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                Problem::invalid(format!("position: expected a whole number of at least 0, got {}", fields::kind_of(v)))
            })
        })
        .transpose()
}

pub(crate) fn open(map: &Map<String, Value>, allowed: &[Symbol]) -> Result<Order, Problem> {
    let symbol = fields::symbol("symbol", fields::text("symbol", required(map, "symbol")?)?, allowed)?;
    let side = match fields::text("side", required(map, "side")?)? {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        other => return Err(Problem::invalid(format!("side: expected buy or sell, got `{other}`"))),
    };
    let qty = fields::qty("qty", required(map, "qty")?)?;
    let price = |name: &str| map.get(name).map(|v| fields::price(name, v)).transpose();
    let kind = match map.get("order_type").map(|v| fields::text("order_type", v)).transpose()? {
        None | Some("market") => {
            if map.contains_key("price") {
                return Err(Problem::invalid("price: only for limit and stop orders; use reference_price"));
            }
            OrderKind::Market
        }
        Some("limit") => OrderKind::Limit { price: price("price")?.ok_or_else(|| Problem::invalid("price: missing"))? },
        Some("stop") => OrderKind::Stop { price: price("price")?.ok_or_else(|| Problem::invalid("price: missing"))? },
        Some(other) => {
            return Err(Problem::invalid(format!("order_type: expected market, limit or stop, got `{other}`")));
        }
    };
    Ok(Order::Open {
        symbol,
        side,
        qty,
        kind,
        position: position(map)?,
        reference_price: price("reference_price")?,
        stop_loss: price("stop_loss")?,
        take_profit: price("take_profit")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        let bytes = mac.finalize().into_bytes();
        format!("sha256={}", crate::hex::lower_hex(&bytes))
    }

    #[test]
    fn signatures_timestamps_and_replays() {
        let (secret, body) = (b"0123456789abcdef-secret".as_slice(), br#"{"v":1}"#.as_slice());
        let good = sign(secret, "1000", body);
        assert!(verify(secret, Some("1000"), Some(&good), body, 1100).is_ok());
        assert!(verify(secret, Some("1000"), Some(&good), b"{}", 1100).unwrap_err().detail.contains("does not match"));
        assert!(verify(b"another-secret-value", Some("1000"), Some(&good), body, 1100).is_err());
        assert!(verify(secret, Some("1000"), Some(&good), body, 1301).unwrap_err().detail.contains("-301 s"));
        assert!(verify(secret, None, Some(&good), body, 1000).unwrap_err().detail.contains("missing"));
        assert!(verify(secret, Some("1000"), None, body, 1000).unwrap_err().detail.contains("missing"));
        assert!(verify(secret, Some("1000"), Some("sha256=zz"), body, 1000).is_err());
        let cache = ReplayCache::default();
        let key = verify(secret, Some("1000"), Some(&good), body, 1000).unwrap();
        assert!(cache.check(key, 1000, 4).is_ok());
        assert_eq!(cache.check(key, 1001, 4).unwrap_err().status, StatusCode::CONFLICT);
        for i in 0..3u8 {
            assert!(cache.check([i; 32], 1001, 4).is_ok());
        }
        assert_eq!(cache.check([9; 32], 1001, 4).unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        // Out of the window, old signatures leave.
        assert!(cache.check([9; 32], 1000 + 2 * REPLAY_WINDOW_S + 1, 4).is_ok());
    }

    #[test]
    fn the_signal_schema() {
        let es = [Symbol::new("ES").unwrap()];
        let (order, _) = parse(br#"{"v":1,"action":"close_all","symbol":"ES"}"#, &es).unwrap();
        assert_eq!(order, Order::CloseAll { symbol: Some(es[0]) });
        let refused = |body: &str| parse(body.as_bytes(), &es).unwrap_err().detail;
        assert!(
            refused(r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":1,"size":2}"#)
                .starts_with("size: unknown")
        );
        assert!(refused(r#"{"v":2,"action":"open"}"#).starts_with("v: expected 1"));
        assert!(refused(r#"{"v":1,"action":"open","symbol":"ES","side":"up","qty":1}"#).starts_with("side:"));
        assert!(
            refused(r#"{"v":1,"action":"open","symbol":"ES","side":"buy","qty":"1","order_type":"limit"}"#)
                .starts_with("price: missing")
        );
    }
}
