//! The engine's log files: one JSON object per line, as tracing-subscriber's JSON format
//! writes them with `flatten_event(true)` (see `engine/src/telemetry/logging.rs`):
//!
//! ```text
//! {"timestamp":"2026-11-04T09:30:15.123456Z","level":"INFO","message":"copied","seq":12,
//!  "account":"fut-one-lot","signal":1795482735888414,"client_id":"m1795482735888414.13.0",...,
//!  "target":"mirror_engine::telemetry::fanout"}
//! ```
//!
//! Lines that are not such an object are counted with their number and reason, never fatal.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::line::{Hop, HopKind, Level, Line};
use super::store::LogStore;
use super::time::parse_datetime;

/// Longest line read, bytes (longer ones are reported unreadable).
pub const LINE_LEN_MAX: usize = 1024 * 1024;

/// Fields shown in their own columns or left out of the text.
const NOT_IN_TEXT: [&str; 11] =
    ["timestamp", "level", "message", "target", "account", "signal", "seq", "spans", "span", "threadName", "threadId"];

/// What a file held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Lines read into the store.
    pub read: u64,
    /// Lines that could not be read.
    pub unreadable: u64,
    /// Blank lines skipped.
    pub blank: u64,
}

/// Reads every line of `reader` into `store` (which keeps the newest it can hold).
pub fn read_json_lines(mut reader: impl BufRead, store: &mut LogStore) -> std::io::Result<ReadSummary> {
    let mut summary = ReadSummary::default();
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            return Ok(summary);
        }
        number += 1;
        let bytes = buffer.strip_suffix(b"\n").unwrap_or(&buffer);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            summary.blank += 1;
            continue;
        }
        match parse_line(bytes, store) {
            Ok(line) => {
                store.push(line);
                summary.read += 1;
            }
            Err(error) => {
                store.push_unreadable(number, error);
                summary.unreadable += 1;
            }
        }
    }
}

/// One line of a log file (the account's name is interned in `store`).
pub fn parse_line(bytes: &[u8], store: &mut LogStore) -> Result<Line, String> {
    if bytes.len() > LINE_LEN_MAX {
        return Err(format!("{} bytes long; at most {LINE_LEN_MAX} are read", bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 ({e})"))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err(format!("expected a JSON object, got {}", kind(&value)));
    };
    let timestamp = string_field(&fields, "timestamp")?;
    let unix_ns = parse_datetime(timestamp).map_err(|e| format!("timestamp: {e}"))?;
    let level = string_field(&fields, "level")?;
    let level =
        Level::parse(level).ok_or_else(|| format!("level: `{level}` is not TRACE, DEBUG, INFO, WARN or ERROR"))?;
    let message = match fields.get("message") {
        None => "",
        Some(Value::String(message)) => message.as_str(),
        Some(other) => return Err(format!("message: expected a string, got {}", kind(other))),
    };
    let account = match fields.get("account") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(store.intern_account(name)),
        Some(Value::Number(id)) => Some(store.intern_account(&format!("#{id}"))),
        Some(other) => return Err(format!("account: expected a name, got {}", kind(other))),
    };
    let signal = match fields.get("signal") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("signal: `{n}` is not a signal id"))?,
        Some(Value::String(s)) => s.parse().map_err(|_| format!("signal: `{s}` is not a signal id"))?,
        Some(other) => return Err(format!("signal: expected a number, got {}", kind(other))),
    };
    let mut line_text = String::from(message);
    for (key, value) in &fields {
        // `log.*`: where a `log`-crate record came from (a dependency's file and line).
        if NOT_IN_TEXT.contains(&key.as_str()) || key.starts_with("log.") {
            continue;
        }
        line_text.push(' ');
        line_text.push_str(key);
        line_text.push('=');
        match value {
            Value::String(s) => line_text.push_str(s),
            other => line_text.push_str(&other.to_string()),
        }
    }
    let hop = if signal != 0 && account.is_some() { classify(message, &fields) } else { None };
    Ok(Line { unix_ns, mono_ns: None, level, account, signal, text: line_text.into(), hop })
}

/// The hop an engine audit line records, by its message (`engine/src/telemetry/fanout.rs`).
fn classify(message: &str, fields: &Map<String, Value>) -> Option<Hop> {
    let field = |name: &str| match fields.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let (kind, detail) = match message {
        "copied" => (HopKind::Copied, String::new()),
        "closing" => (HopKind::Closing, String::new()),
        "a close that never reached the broker, sent again" => (HopKind::Resent, String::new()),
        "accepted" => (HopKind::Accepted, String::new()),
        "filled" => (HopKind::Filled, format!("{} at {}", field("qty"), field("price"))),
        "skipped" | "nothing to copy" => (HopKind::Skipped, field("reason")),
        "rejected by the broker" => (HopKind::Rejected, field("reason")),
        "never reached the broker (the engine stopped first)" => (HopKind::NotSent, String::new()),
        "connector queue full; command not sent" => (HopKind::NotSent, "connector queue full".into()),
        "cancelled" => (HopKind::Cancelled, String::new()),
        "expired" => (HopKind::Expired, String::new()),
        "outcome unknown; kept in flight" => (HopKind::Unknown, field("error")),
        _ => return None,
    };
    Some(Hop { kind, detail: detail.into() })
}

fn string_field<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match fields.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(other) => Err(format!("{name}: expected a string, got {}", kind(other))),
        None => Err(format!("no `{name}` field")),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
