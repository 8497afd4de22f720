//! The rows of a dropped file, CSV or JSON, and their validation into engine signals.
//!
//! Both formats carry the same fields (`COLUMNS`); CSV names them in a header row, JSON as the
//! keys of one object per signal (an array of objects, or `{"signals": [...]}`). Names are
//! matched without regard to case. An unknown name is an error naming it (a `stoploss` column
//! must not be silently ignored), and so is a field the row's action does not use. Every
//! problem names the line and the field, what was expected and what came.

use mirror_model::{
    LeaderRef, OpenSignal, OrderKind, Price, Qty, Side, SignalAction, SignalError, Symbol, TimeInForce,
};
use serde_json::Value;
use sha2::Digest as _;

use super::csv;
use crate::runtime::SubmitError;

/// What a file holds, by its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of signal objects, or `{"signals": [...]}`.
    Json,
}

impl Format {
    /// The format of a file name (`.csv` or `.json`, in any case).
    pub(super) fn of(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        if extension.eq_ignore_ascii_case("csv") {
            Some(Self::Csv)
        } else if extension.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// A field of a signal row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Column {
    Action,
    Symbol,
    Side,
    Qty,
    Type,
    Price,
    Sl,
    Tp,
    Position,
    ClosedQty,
    QtyBefore,
    Note,
}

/// Every field, by name, in the order the documentation lists them.
pub(super) const COLUMNS: [(Column, &str); 12] = [
    (Column::Action, "action"),
    (Column::Symbol, "symbol"),
    (Column::Side, "side"),
    (Column::Qty, "qty"),
    (Column::Type, "type"),
    (Column::Price, "price"),
    (Column::Sl, "sl"),
    (Column::Tp, "tp"),
    (Column::Position, "position"),
    (Column::ClosedQty, "closed_qty"),
    (Column::QtyBefore, "qty_before"),
    (Column::Note, "note"),
];

/// Names people write for a field, and the field they mean (for the message about an unknown one).
const LIKELY: [(&str, &str); 22] = [
    ("stoploss", "sl"),
    ("stop_loss", "sl"),
    ("stop", "sl"),
    ("takeprofit", "tp"),
    ("take_profit", "tp"),
    ("target", "tp"),
    ("quantity", "qty"),
    ("volume", "qty"),
    ("lots", "qty"),
    ("contracts", "qty"),
    ("size", "qty"),
    ("order_type", "type"),
    ("ordertype", "type"),
    ("kind", "type"),
    ("ticker", "symbol"),
    ("instrument", "symbol"),
    ("direction", "side"),
    ("comment", "note"),
    ("ticket", "position"),
    ("position_id", "position"),
    ("id", "position"),
    ("reference_price", "price"),
];

impl Column {
    fn named(name: &str) -> Option<Self> {
        COLUMNS.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(c, _)| *c)
    }

    pub(super) fn name(self) -> &'static str {
        COLUMNS.iter().find(|(c, _)| *c == self).map_or("?", |(_, n)| n)
    }
}

/// The message for an unknown field name.
fn unknown_field(name: &str) -> String {
    let all = COLUMNS.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ");
    match LIKELY.iter().find(|(typo, _)| typo.eq_ignore_ascii_case(name.trim())) {
        Some((_, meant)) => format!("unknown field (did you mean `{meant}`?); the fields are {all}"),
        None => format!("unknown field; the fields are {all}"),
    }
}

/// A value as it came: text (CSV, or a JSON string), a JSON number (as its text), or some
/// other JSON value (its kind, for the message). Empty text and JSON `null` are absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Cell {
    Text(String),
    Number(String),
    Other(&'static str),
}

/// One row before validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RawRow {
    /// The line it starts on.
    pub(super) line: usize,
    /// Its fields that have a value.
    pub(super) cells: Vec<(Column, Cell)>,
    /// Field names that are not fields (JSON keys; CSV headers are checked once).
    pub(super) unknown: Vec<String>,
}

/// A problem with a file: where (line 0: the file as a whole), which field, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RowError {
    pub(super) line: usize,
    pub(super) field: Option<String>,
    pub(super) message: String,
}

impl RowError {
    fn at(line: usize, field: Option<&str>, message: impl Into<String>) -> Self {
        Self { line, field: field.map(str::to_owned), message: message.into() }
    }
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, &self.field) {
            (0, None) => write!(f, "{}", self.message),
            (0, Some(field)) => write!(f, "field {field}: {}", self.message),
            (line, None) => write!(f, "line {line}: {}", self.message),
            (line, Some(field)) => write!(f, "line {line}, field {field}: {}", self.message),
        }
    }
}

/// The rows of a file. Syntax errors, a bad header and too many rows are errors of the file
/// as a whole; fields are checked by [`validate`].
pub(super) fn rows(format: Format, text: &str, max_rows: usize) -> Result<Vec<RawRow>, Vec<RowError>> {
    match format {
        Format::Csv => csv_rows(text, max_rows),
        Format::Json => json_rows(text, max_rows),
    }
}

fn csv_rows(text: &str, max_rows: usize) -> Result<Vec<RawRow>, Vec<RowError>> {
    let records = csv::records(text, max_rows.saturating_add(1)).map_err(|e| {
        let message = if e.message.starts_with("more than") {
            format!("more than {max_rows} rows (file_drops.max_rows)")
        } else {
            e.message
        };
        vec![RowError::at(e.line, None, message)]
    })?;
    let Some((header, data)) = records.split_first() else {
        return Err(vec![RowError::at(
            0,
            None,
            "the file is empty; a header row (action,symbol,side,qty,…) and rows expected",
        )]);
    };
    let columns = header_columns(header)?;
    if data.is_empty() {
        return Err(vec![RowError::at(0, None, "the file holds no signals (a header row and no rows)")]);
    }
    let mut rows = Vec::with_capacity(data.len());
    let mut errors = Vec::new();
    for record in data {
        let mut fields = record.fields.as_slice();
        // A trailing comma on a row: one more, empty field.
        if fields.len() == columns.len() + 1 && fields.last().is_some_and(|f| f.trim().is_empty()) {
            fields = &fields[..columns.len()];
        }
        if fields.len() != columns.len() {
            errors.push(RowError::at(
                record.line,
                None,
                format!(
                    "{} fields, the header has {} columns (every row has one field per column; leave a field empty \
                     for none)",
                    fields.len(),
                    columns.len()
                ),
            ));
            continue;
        }
        let mut cells = Vec::new();
        for (column, value) in columns.iter().zip(fields) {
            let value = value.trim();
            match column {
                _ if value.is_empty() => {}
                Some(column) => cells.push((*column, Cell::Text(value.to_owned()))),
                None => errors.push(RowError::at(
                    record.line,
                    None,
                    format!("`{value}` in the last column, which has no name in the header"),
                )),
            }
        }
        rows.push(RawRow { line: record.line, cells, unknown: Vec::new() });
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// The header's columns; `None` for a trailing empty one (a header ending in a comma).
fn header_columns(header: &csv::Record) -> Result<Vec<Option<Column>>, Vec<RowError>> {
    let line = header.line;
    if let [only] = header.fields.as_slice()
        && (only.contains(';') || only.contains('\t'))
    {
        return Err(vec![RowError::at(
            line,
            None,
            format!(
                "the header `{only}` has no commas; Mirror reads comma-separated files (save as \"CSV (comma \
                 delimited)\")"
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut columns = Vec::with_capacity(header.fields.len());
    let last = header.fields.len() - 1;
    for (index, name) in header.fields.iter().enumerate() {
        let name = name.trim();
        if name.is_empty() {
            if index != last || index == 0 {
                errors.push(RowError::at(line, None, format!("column {} has no name", index + 1)));
            }
            columns.push(None);
            continue;
        }
        match Column::named(name) {
            Some(column) if columns.contains(&Some(column)) => {
                errors.push(RowError::at(line, Some(name), "this column is named twice"));
            }
            Some(column) => columns.push(Some(column)),
            None => {
                errors.push(RowError::at(line, Some(name), unknown_field(name)));
                columns.push(None);
            }
        }
    }
    if errors.is_empty() && !columns.contains(&Some(Column::Action)) {
        errors.push(RowError::at(
            line,
            None,
            "no `action` column; the first row names the columns (action,symbol,side,qty,…)",
        ));
    }
    if errors.is_empty() { Ok(columns) } else { Err(errors) }
}

fn json_rows(text: &str, max_rows: usize) -> Result<Vec<RawRow>, Vec<RowError>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![RowError::at(e.line().max(1), None, format!("malformed JSON: {e}"))])?;
    let expected = "expected an array of signal objects, or {\"signals\": [...]}";
    let elements = match value {
        Value::Array(elements) => elements,
        Value::Object(mut object) => {
            if let Some(key) = object.keys().find(|k| k.as_str() != "signals") {
                return Err(vec![RowError::at(1, Some(key), format!("unknown key; {expected}"))]);
            }
            match object.remove("signals") {
                Some(Value::Array(elements)) => elements,
                Some(other) => {
                    return Err(vec![RowError::at(
                        1,
                        Some("signals"),
                        format!("expected an array of signal objects, got {}", crate::http::kind_of(&other)),
                    )]);
                }
                None => return Err(vec![RowError::at(1, Some("signals"), format!("missing; {expected}"))]),
            }
        }
        other => return Err(vec![RowError::at(1, None, format!("{expected}, got {}", crate::http::kind_of(&other)))]),
    };
    if elements.is_empty() {
        return Err(vec![RowError::at(0, None, "the file holds no signals")]);
    }
    if elements.len() > max_rows {
        return Err(vec![RowError::at(0, None, format!("more than {max_rows} rows (file_drops.max_rows)"))]);
    }
    let lines = element_lines(text);
    let mut rows = Vec::with_capacity(elements.len());
    let mut errors = Vec::new();
    for (index, element) in elements.into_iter().enumerate() {
        // The scanner finds every element of valid JSON; the index is the fallback.
        let line = lines.get(index).copied().unwrap_or(0);
        let Value::Object(object) = element else {
            errors.push(RowError::at(
                line,
                None,
                format!("expected a signal object, got {}", crate::http::kind_of(&element)),
            ));
            continue;
        };
        let mut row = RawRow { line, cells: Vec::new(), unknown: Vec::new() };
        for (key, value) in object {
            let Some(column) = Column::named(&key) else {
                row.unknown.push(key);
                continue;
            };
            let cell = match value {
                Value::Null => continue,
                Value::String(text) if text.trim().is_empty() => continue,
                Value::String(text) => Cell::Text(text.trim().to_owned()),
                Value::Number(number) => Cell::Number(number.to_string()),
                other => Cell::Other(crate::http::kind_of(&other)),
            };
            if row.cells.iter().any(|(c, _)| *c == column) {
                errors.push(RowError::at(line, Some(&key), "given twice (field names are matched without case)"));
                continue;
            }
            row.cells.push((column, cell));
        }
        rows.push(row);
    }
    if errors.is_empty() { Ok(rows) } else { Err(errors) }
}

/// The line each element of the signal array starts on, in valid JSON text: the top-level
/// array's, or that of the top-level object's `signals` key.
fn element_lines(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) == Some(&b'{') {
        // `{ "signals" : [` (the object's only key).
        at = skip_space(bytes, at + 1);
        at = skip_value(bytes, at);
        at = skip_space(bytes, at);
        if bytes.get(at) == Some(&b':') {
            at = skip_space(bytes, at + 1);
        }
    }
    if bytes.get(at) != Some(&b'[') {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let (mut line, mut counted) = (1, 0);
    at += 1;
    loop {
        at = skip_space(bytes, at);
        match bytes.get(at) {
            None | Some(b']') => return lines,
            Some(b',') => at += 1,
            Some(_) => {
                line += bytes[counted..at].iter().filter(|b| **b == b'\n').count();
                counted = at;
                lines.push(line);
                at = skip_value(bytes, at);
            }
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The end of the JSON value starting at `at` (valid JSON assumed).
fn skip_value(bytes: &[u8], mut at: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    while let Some(&b) = bytes.get(at) {
        if in_string {
            match b {
                b'\\' => at += 1,
                b'"' => {
                    in_string = false;
                    if depth == 0 {
                        return at + 1;
                    }
                }
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth == 0 => return at,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return at + 1;
                    }
                }
                b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return at,
                _ => {}
            }
        }
        at += 1;
    }
    at
}

/// A row, valid, as the engine will get it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Prepared {
    /// Its line in the file.
    pub(super) line: usize,
    /// What it asks.
    pub(super) action: SignalAction,
    /// The signal's note: the row's, or where the row came from.
    pub(super) note: String,
}

/// What validation needs besides the row.
pub(super) struct Context<'a> {
    /// The drop's name (text position keys are scoped by it).
    pub(super) drop: &'a str,
    /// The file's name (for the default note).
    pub(super) file: &'a str,
    /// The symbols the source may send.
    pub(super) symbols: &'a [Symbol],
}

/// Checks one row and makes its signal. `fresh` gives a position key to an open without
/// one; `check` is the engine's own check ([`crate::runtime::EngineHandle::precheck`]), so a
/// row that passes is one `submit` takes. Every problem of the row is returned.
pub(super) fn validate(
    row: &RawRow,
    context: &Context<'_>,
    fresh: &mut dyn FnMut() -> u64,
    check: &dyn Fn(SignalAction, &str) -> Result<(), SubmitError>,
) -> Result<Prepared, Vec<RowError>> {
    let mut fields = Fields { row, errors: Vec::new() };
    for name in &row.unknown {
        fields.errors.push(RowError::at(row.line, Some(name), unknown_field(name)));
    }
    let action = fields.action();
    let note = fields.text(Column::Note).map(str::to_owned);
    let action = action.and_then(|action| {
        let used: &[Column] = match action {
            "open" => &[Column::Symbol, Column::Side, Column::Qty, Column::Type, Column::Price, Column::Sl, Column::Tp],
            "close" | "cancel" => &[],
            "partial_close" => &[Column::ClosedQty, Column::QtyBefore],
            "close_all" => &[Column::Symbol],
            _ => &[Column::Sl, Column::Tp],
        };
        fields.unused(action, used);
        fields.build(action, context, fresh)
    });
    let Some(action) = action else { return Err(fields.errors) };
    if !fields.errors.is_empty() {
        return Err(fields.errors);
    }
    let note = note.unwrap_or_else(|| default_note(context, row.line));
    check(action, &note).map_err(|error| vec![engine_refusal(row.line, &error)])?;
    Ok(Prepared { line: row.line, action, note })
}

/// `file:<drop>/<file>:<line>`, at most [`mirror_model::NOTE_LEN_MAX`] bytes.
fn default_note(context: &Context<'_>, line: usize) -> String {
    mirror_model::fit_note(format!("file:{}/{}:{line}", context.drop, context.file))
}

/// The engine's refusal of a row, on the field it is about.
fn engine_refusal(line: usize, error: &SubmitError) -> RowError {
    let column = |field: &str| match field {
        "stop_loss" => "sl",
        "take_profit" => "tp",
        "reference_price" | "price" => "price",
        _ => "qty",
    };
    match error {
        SubmitError::Invalid(SignalError::NonPositiveQty { field, value }) => {
            RowError::at(line, Some(column(field)), format!("must be above 0, got {value}"))
        }
        SubmitError::Invalid(SignalError::NonPositivePrice { field, value }) => {
            RowError::at(line, Some(column(field)), format!("must be above 0, got {value}"))
        }
        SubmitError::Invalid(SignalError::ProtectionWrongSide { field, level, entry, side }) => {
            // A buy's stop loss is below its entry and its take profit above; a sell's the other way.
            let below = (*field == "stop_loss") == (*side == Side::Buy);
            let must = if below { "below" } else { "above" };
            RowError::at(
                line,
                Some(column(field)),
                format!("must be {must} the entry {entry} for a {side}, got {level}"),
            )
        }
        SubmitError::Invalid(SignalError::BadPartialClose { closed, before }) => RowError::at(
            line,
            Some("closed_qty"),
            format!("must be above 0 and below qty_before ({before}), got {closed}"),
        ),
        SubmitError::Invalid(SignalError::NoteTooLong { len }) => {
            RowError::at(line, Some("note"), format!("at most {} bytes, got {len}", mirror_model::NOTE_LEN_MAX))
        }
        SubmitError::UnknownSymbol { symbol, .. } => {
            RowError::at(line, Some("symbol"), format!("`{symbol}` is not a symbol of this drop's source"))
        }
        other => RowError::at(line, None, format!("refused by the engine: {other}")),
    }
}

/// A row's fields being read, with the problems found so far.
struct Fields<'a> {
    row: &'a RawRow,
    errors: Vec<RowError>,
}

impl<'a> Fields<'a> {
    fn cell(&self, column: Column) -> Option<&'a Cell> {
        self.row.cells.iter().find(|(c, _)| *c == column).map(|(_, cell)| cell)
    }

    fn error(&mut self, column: Column, message: impl Into<String>) {
        self.errors.push(RowError::at(self.row.line, Some(column.name()), message));
    }

    /// The field as text (a JSON number as its digits), if given.
    fn text(&mut self, column: Column) -> Option<&'a str> {
        match self.cell(column)? {
            Cell::Text(text) | Cell::Number(text) => Some(text.as_str()),
            Cell::Other(kind) => {
                let kind = *kind;
                self.error(column, format!("expected text or a number, got {kind}"));
                None
            }
        }
    }

    fn required(&mut self, column: Column, action: &str, what: &str) -> Option<&'a str> {
        if self.cell(column).is_none() {
            self.error(column, format!("missing; {action} needs {what}"));
            return None;
        }
        self.text(column)
    }

    /// One of `words` (any case), as the lower-case word.
    fn word(&mut self, column: Column, words: &[&'static str], text: Option<&str>) -> Option<&'static str> {
        let text = text?;
        let found = words.iter().find(|w| w.eq_ignore_ascii_case(text)).copied();
        if found.is_none() {
            self.error(column, format!("expected {}, got `{text}`", words.join(", ")));
        }
        found
    }

    fn action(&mut self) -> Option<&'static str> {
        const ACTIONS: [&str; 6] = ["open", "close", "partial_close", "close_all", "modify", "cancel"];
        if self.cell(Column::Action).is_none() {
            self.error(Column::Action, format!("missing; expected {}", ACTIONS.join(", ")));
            return None;
        }
        let text = self.text(Column::Action).map(str::to_owned);
        self.word(Column::Action, &ACTIONS, text.as_deref())
    }

    /// Fields given that `action` does not use (the action, position and note are always
    /// allowed, `position` checked by each action).
    fn unused(&mut self, action: &str, used: &[Column]) {
        let always = [Column::Action, Column::Note, Column::Position];
        let given: Vec<Column> = self.row.cells.iter().map(|(c, _)| *c).collect();
        for column in given {
            if always.contains(&column) || used.contains(&column) {
                continue;
            }
            let hint = match (action, column) {
                ("close", Column::Qty) => " (partial_close with closed_qty and qty_before closes part of a position)",
                ("close" | "modify" | "cancel" | "partial_close", Column::Symbol) => {
                    " (it acts on the position named by `position`; close_all closes a symbol)"
                }
                _ => "",
            };
            self.error(column, format!("not used by {action}{hint}; leave it empty"));
        }
        if action == "close_all" && self.cell(Column::Position).is_some() {
            self.error(Column::Position, "not used by close_all (close closes one position); leave it empty");
        }
    }

    fn build(&mut self, action: &str, context: &Context<'_>, fresh: &mut dyn FnMut() -> u64) -> Option<SignalAction> {
        match action {
            "open" => self.open(context, fresh),
            "close_all" => {
                let symbol = self.text(Column::Symbol).map(str::to_owned);
                let symbol = match symbol {
                    Some(text) => Some(self.symbol(&text, context)?),
                    None => None,
                };
                Some(SignalAction::CloseAll { symbol })
            }
            _ => {
                let position = self.position(action, context);
                match action {
                    "close" => Some(SignalAction::Close { leader: position? }),
                    "cancel" => Some(SignalAction::CancelPending { leader: position? }),
                    "partial_close" => {
                        let closed = self.required(Column::ClosedQty, "partial_close", "the quantity closed");
                        let closed = closed.map(str::to_owned).and_then(|t| self.qty(Column::ClosedQty, &t));
                        let before =
                            self.required(Column::QtyBefore, "partial_close", "the position's quantity before");
                        let before = before.map(str::to_owned).and_then(|t| self.qty(Column::QtyBefore, &t));
                        Some(SignalAction::PartialClose { leader: position?, closed_qty: closed?, qty_before: before? })
                    }
                    _ => {
                        let stop_loss = self.optional_price(Column::Sl);
                        let take_profit = self.optional_price(Column::Tp);
                        Some(SignalAction::Modify {
                            leader: position?,
                            stop_loss: stop_loss?,
                            take_profit: take_profit?,
                        })
                    }
                }
            }
        }
    }

    fn open(&mut self, context: &Context<'_>, fresh: &mut dyn FnMut() -> u64) -> Option<SignalAction> {
        let symbol = self.required(Column::Symbol, "open", "a symbol").map(str::to_owned);
        let symbol = symbol.and_then(|text| self.symbol(&text, context));
        let side = self.required(Column::Side, "open", "a side (buy or sell)").map(str::to_owned);
        let side = self.word(Column::Side, &["buy", "sell"], side.as_deref()).map(|w| match w {
            "buy" => Side::Buy,
            _ => Side::Sell,
        });
        let qty = self.required(Column::Qty, "open", "a quantity").map(str::to_owned);
        let qty = qty.and_then(|text| self.qty(Column::Qty, &text));
        let kind_text = self.text(Column::Type).map(str::to_owned);
        let kind = match kind_text {
            None => Some("market"),
            Some(text) => self.word(Column::Type, &["market", "limit", "stop"], Some(&text)),
        };
        let price = self.optional_price(Column::Price);
        let kind = match (kind, price) {
            (Some("market"), Some(price)) => Some((OrderKind::Market, price)),
            (Some(kind), Some(Some(price))) => {
                Some((if kind == "limit" { OrderKind::Limit { price } } else { OrderKind::Stop { price } }, None))
            }
            (Some(kind), Some(None)) => {
                self.error(Column::Price, format!("missing; a {kind} order needs its price"));
                None
            }
            _ => None,
        };
        let stop_loss = self.optional_price(Column::Sl);
        let take_profit = self.optional_price(Column::Tp);
        let position = match self.cell(Column::Position) {
            Some(_) => Some(self.position("open", context)?),
            None => None,
        };
        let (kind, reference_price) = kind?;
        Some(SignalAction::Open(OpenSignal {
            leader: position.unwrap_or_else(|| LeaderRef(fresh())),
            symbol: symbol?,
            side: side?,
            qty: qty?,
            kind,
            reference_price,
            stop_loss: stop_loss?,
            take_profit: take_profit?,
            time_in_force: TimeInForce::Gtc,
            contract_size: None,
            from_pending: None,
            risk_bp: None,
        }))
    }

    fn symbol(&mut self, text: &str, context: &Context<'_>) -> Option<Symbol> {
        let symbol = match Symbol::new(text) {
            Ok(symbol) => symbol,
            Err(error) => {
                self.error(Column::Symbol, error.to_string());
                return None;
            }
        };
        if !context.symbols.contains(&symbol) {
            let mut known: Vec<String> = context.symbols.iter().map(ToString::to_string).collect();
            known.sort();
            self.error(
                Column::Symbol,
                format!("unknown symbol `{text}`; this drop's source sends {}", known.join(", ")),
            );
            return None;
        }
        Some(symbol)
    }

    fn qty(&mut self, column: Column, text: &str) -> Option<Qty> {
        match Qty::parse(text) {
            Ok(qty) if qty.raw() > 0 => Some(qty),
            Ok(_) => {
                self.error(column, format!("must be above 0, got {text}"));
                None
            }
            Err(error) => {
                self.error(column, error.to_string());
                None
            }
        }
    }

    /// `Some(None)`: not given; `None`: given and wrong (the error is recorded).
    fn optional_price(&mut self, column: Column) -> Option<Option<Price>> {
        let Some(text) = self.text(column).map(str::to_owned) else {
            return if self.cell(column).is_some() { None } else { Some(None) };
        };
        match Price::parse(&text) {
            Ok(price) if price.raw() > 0 => Some(Some(price)),
            Ok(_) => {
                self.error(column, format!("must be above 0, got {text}"));
                None
            }
            Err(error) => {
                self.error(column, error.to_string());
                None
            }
        }
    }

    /// The sender's position key: a whole number below 2⁶³ as it is, other text mapped to a
    /// key ([`text_key`]).
    fn position(&mut self, action: &str, context: &Context<'_>) -> Option<LeaderRef> {
        let text = self.required(Column::Position, action, "the position's key (`position`)")?.to_owned();
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u64>() {
                Ok(key) if key < 1 << 63 => Some(LeaderRef(key)),
                _ => {
                    self.error(Column::Position, format!("a number key must be below 9223372036854775808, got {text}"));
                    None
                }
            };
        }
        let looks_numeric = text.trim_start_matches(['-', '+']).bytes().next().is_some_and(|b| b.is_ascii_digit())
            && Qty::parse(&text).is_ok();
        if looks_numeric {
            self.error(Column::Position, format!("expected a whole number of at least 0, or a text key, got {text}"));
            return None;
        }
        if text.chars().count() > 64 || text.chars().any(char::is_control) {
            self.error(
                Column::Position,
                format!("a text key is 1 to 64 characters without control characters, got `{text}`"),
            );
            return None;
        }
        Some(text_key(context.drop, &text))
    }
}

/// The position key of a text key in a drop: the first 8 bytes of
/// SHA-256(`mirror-file-drop` NUL drop name NUL key), with the top bit set so that it never
/// equals a number key (which are below 2⁶³). The same text in the same drop is the same
/// position in every file and after every restart.
pub(super) fn text_key(drop: &str, text: &str) -> LeaderRef {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"mirror-file-drop\0");
    hasher.update(drop.as_bytes());
    hasher.update(b"\0");
    hasher.update(text.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    LeaderRef(u64::from_be_bytes(first) | 1 << 63)
}

#[cfg(test)]
mod tests;
