//! The readers (CSV, JSON) and the row checks: every problem names its line and field.

use mirror_model::{Origin, Signal, SignalId, SourceId};

use super::*;

fn symbols() -> Vec<Symbol> {
    ["ES", "NQ"].into_iter().map(|s| Symbol::new(s).unwrap()).collect()
}

/// What the engine checks, without an engine: the signal's own validation.
fn check(action: SignalAction, note: &str) -> Result<(), SubmitError> {
    let signal = Signal {
        id: SignalId(1),
        origin: Origin::Source(SourceId(1)),
        created_unix_ms: 0,
        accepted_mono_ns: 0,
        leader_balance: None,
        leader_equity: None,
        action,
        note: note.to_owned(),
    };
    signal.validate().map_err(SubmitError::Invalid)
}

/// Every row of a file validated: the signals, or every problem as the report shows it.
fn read(format: Format, text: &str) -> Result<Vec<Prepared>, Vec<String>> {
    let raw = rows(format, text, 100).map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let symbols = symbols();
    let context = Context { drop: "desk", file: "orders.csv", symbols: &symbols };
    let mut next = 1_000;
    let mut fresh = || {
        next += 1;
        next
    };
    let (mut prepared, mut errors) = (Vec::new(), Vec::new());
    for row in &raw {
        match validate(row, &context, &mut fresh, &check) {
            Ok(row) => prepared.push(row),
            Err(found) => errors.extend(found.iter().map(ToString::to_string)),
        }
    }
    if errors.is_empty() { Ok(prepared) } else { Err(errors) }
}

fn csv(text: &str) -> Result<Vec<Prepared>, Vec<String>> {
    read(Format::Csv, text)
}

fn json(text: &str) -> Result<Vec<Prepared>, Vec<String>> {
    read(Format::Json, text)
}

fn errors_of(result: Result<Vec<Prepared>, Vec<String>>) -> Vec<String> {
    match result {
        Ok(rows) => panic!("expected problems, got {rows:?}"),
        Err(errors) => errors,
    }
}

fn price(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn qty(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

fn open_of(prepared: &Prepared) -> OpenSignal {
    match prepared.action {
        SignalAction::Open(open) => open,
        other => panic!("expected an open, got {other:?}"),
    }
}

#[test]
fn a_spreadsheet_csv_with_bom_crlf_quotes_blank_lines_and_a_trailing_comma() {
    let text = "\u{feff}Action,Symbol,Side,Qty,Type,Price,SL,TP,Position,Note,\r\n\
                open,ES,buy,2,market,5000.25,4990,5020,7,\"breakout, 1st leg\",\r\n\
                \r\n\
                ,,,,,,,,,,\r\n\
                open,NQ,SELL,1,limit,18100,18150,18000,hedge-A,,\r\n\
                close,,,,,,,,7,,\r\n";
    let rows = csv(text).unwrap();
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 5, 6]);
    let first = open_of(&rows[0]);
    assert_eq!((first.symbol.as_str(), first.side, first.qty), ("ES", Side::Buy, qty("2")));
    assert_eq!((first.kind, first.reference_price), (OrderKind::Market, Some(price("5000.25"))));
    assert_eq!(
        (first.stop_loss, first.take_profit, first.leader),
        (Some(price("4990")), Some(price("5020")), LeaderRef(7))
    );
    assert_eq!(rows[0].note, "breakout, 1st leg");
    let second = open_of(&rows[1]);
    assert_eq!(
        (second.side, second.kind, second.reference_price),
        (Side::Sell, OrderKind::Limit { price: price("18100") }, None)
    );
    assert_eq!(second.leader, text_key("desk", "hedge-A"));
    // Without a note, the signal says where it came from.
    assert_eq!(rows[1].note, "file:desk/orders.csv:5");
    assert_eq!(rows[2].action, SignalAction::Close { leader: LeaderRef(7) });
}

#[test]
fn an_open_without_a_position_gets_a_fresh_key_and_text_keys_are_stable_per_drop() {
    let rows = csv("action,symbol,side,qty\nopen,ES,buy,1\nopen,ES,buy,1\n").unwrap();
    assert_eq!((open_of(&rows[0]).leader, open_of(&rows[1]).leader), (LeaderRef(1_001), LeaderRef(1_002)));
    let key = text_key("desk", "hedge-A");
    assert_eq!(key, text_key("desk", "hedge-A"));
    assert_ne!(key, text_key("desk", "hedge-B"));
    assert_ne!(key, text_key("other-drop", "hedge-A"));
    assert!(key.0 >= 1 << 63, "text keys never equal number keys");
}

#[test]
fn csv_structure_problems_name_their_line() {
    let errors = errors_of(csv("action,symbol,side,qty\nopen,ES,buy,1,5\nopen,ES\nopen,ES,buy,1,\n"));
    assert_eq!(
        errors,
        [
            "line 2: 5 fields, the header has 4 columns (every row has one field per column; leave a field empty for none)",
            "line 3: 2 fields, the header has 4 columns (every row has one field per column; leave a field empty for none)",
        ]
    );
    let errors = errors_of(csv("action,symbol,side,qty,\nopen,ES,buy,1,oops\n"));
    assert_eq!(errors, ["line 2: `oops` in the last column, which has no name in the header"]);
    let errors = errors_of(csv("action,symbol,side,qty,stoploss,Qty,,note\nopen,ES,buy,1,4990,1,,\n"));
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0]
            .starts_with("line 1, field stoploss: unknown field (did you mean `sl`?); the fields are action, symbol"),
        "{errors:?}"
    );
    assert_eq!(errors[1], "line 1, field Qty: this column is named twice");
    assert_eq!(errors[2], "line 1: column 7 has no name");
    assert_eq!(
        errors_of(csv("symbol,qty\nES,1\n")),
        ["line 1: no `action` column; the first row names the columns (action,symbol,side,qty,…)"]
    );
    assert!(
        errors_of(csv("action;symbol;side;qty\nopen;ES;buy;1\n"))[0]
            .starts_with("line 1: the header `action;symbol;side;qty` has no commas")
    );
    assert_eq!(
        errors_of(csv("\u{feff}\r\n\r\n")),
        ["the file is empty; a header row (action,symbol,side,qty,…) and rows expected"]
    );
    assert!(errors_of(csv("action,note\nopen,\"unclosed\n"))[0].starts_with("line 2: a quoted field is not closed"));
    assert_eq!(errors_of(csv("action,symbol\n\n")), ["the file holds no signals (a header row and no rows)"]);
}

#[test]
fn too_many_rows_is_refused_whole() {
    let mut text = "action,symbol\n".to_owned();
    for _ in 0..101 {
        text.push_str("close_all,ES\n");
    }
    assert_eq!(errors_of(csv(&text)), ["line 102: more than 100 rows (file_drops.max_rows)"]);
    let json_text = format!("[{}]", vec![r#"{"action":"close_all"}"#; 101].join(","));
    assert_eq!(errors_of(json(&json_text)), ["more than 100 rows (file_drops.max_rows)"]);
}

#[test]
fn every_field_problem_names_its_line_and_field_and_what_came() {
    let text = "action,symbol,side,qty,type,price,sl,tp,position,closed_qty,qty_before,note\n\
                open,ES,buy,-1,,,,,,,,\n\
                open,ES,buy,NaN,,,,,,,,\n\
                open,ZZ,long,1,market_if_touched,,,,,,,\n\
                open,ES,buy,1,limit,,,,,,,\n\
                open,ES,buy,1,market,5000,5010,,,,,\n\
                open,ES,sell,1,stop,4990,,5000,,,,\n\
                partial_close,,,,,,,,7,2,2,\n\
                close,ES,,1,,,,,7,,,\n\
                close,,,,,,,,,,,\n\
                close,,,,,,,,-5,,,\n\
                close_all,ES,,,,,,,3,,,\n\
                hold,ES,,,,,,,,,,\n\
                ,,,,,,,,,,,why\n\
                open,ES,buy,0.123456789,,0,,,,,,\n\
                modify,,,,,,abc,,9,,,\n";
    let errors = errors_of(csv(text));
    let expected = [
        "line 2, field qty: must be above 0, got -1",
        "line 3, field qty: expected a decimal number such as 1.25, got `NaN`",
        "line 4, field symbol: unknown symbol `ZZ`; this drop's source sends ES, NQ",
        "line 4, field side: expected buy, sell, got `long`",
        "line 4, field type: expected market, limit, stop, got `market_if_touched`",
        "line 5, field price: missing; a limit order needs its price",
        "line 6, field sl: must be below the entry 5000 for a buy, got 5010",
        "line 7, field tp: must be below the entry 4990 for a sell, got 5000",
        "line 8, field closed_qty: must be above 0 and below qty_before (2), got 2",
        "line 9, field symbol: not used by close (it acts on the position named by `position`; close_all closes a symbol); leave it empty",
        "line 9, field qty: not used by close (partial_close with closed_qty and qty_before closes part of a position); leave it empty",
        "line 10, field position: missing; close needs the position's key (`position`)",
        "line 11, field position: expected a whole number of at least 0, or a text key, got -5",
        "line 12, field position: not used by close_all (close closes one position); leave it empty",
        "line 13, field action: expected open, close, partial_close, close_all, modify, cancel, got `hold`",
        "line 14, field action: missing; expected open, close, partial_close, close_all, modify, cancel",
        "line 15, field qty: `0.123456789` has 9 decimal places; at most 8 are supported",
        "line 15, field price: must be above 0, got 0",
        "line 16, field sl: expected a decimal number such as 1.25, got `abc`",
    ];
    assert_eq!(errors, expected, "\n{}", errors.join("\n"));
}

#[test]
fn every_action_makes_its_signal() {
    let text = "action,symbol,side,qty,type,price,sl,tp,position,closed_qty,qty_before,note\n\
                partial_close,,,,,,,,7,1,3,scale out\n\
                modify,,,,,,4995,,7,,,\n\
                cancel,,,,,,,,12,,,\n\
                close_all,NQ,,,,,,,,,,\n\
                CLOSE_ALL,,,,,,,,,,,\n";
    let rows = csv(text).unwrap();
    let actions: Vec<SignalAction> = rows.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            SignalAction::PartialClose { leader: LeaderRef(7), closed_qty: qty("1"), qty_before: qty("3") },
            // An empty tp removes it: modify sets both levels.
            SignalAction::Modify { leader: LeaderRef(7), stop_loss: Some(price("4995")), take_profit: None },
            SignalAction::CancelPending { leader: LeaderRef(12) },
            SignalAction::CloseAll { symbol: Some(Symbol::new("NQ").unwrap()) },
            SignalAction::CloseAll { symbol: None },
        ]
    );
    assert_eq!(rows[0].note, "scale out");
}

#[test]
fn a_note_too_long_is_refused_on_its_field() {
    let text = format!("action,note\nclose_all,{}\n", "x".repeat(300));
    assert_eq!(errors_of(csv(&text)), ["line 2, field note: at most 256 bytes, got 300"]);
}

#[test]
fn json_arrays_and_the_signals_object_with_the_line_of_each_object() {
    let text = r#"[
  {"action": "open", "symbol": "ES", "side": "buy", "qty": 2, "price": 5000.25, "sl": "4990", "position": 7},
  {
    "action": "close",
    "position": 7,
    "note": null
  }
]"#;
    let rows = json(text).unwrap();
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
    let open = open_of(&rows[0]);
    assert_eq!(
        (open.qty, open.reference_price, open.stop_loss),
        (qty("2"), Some(price("5000.25")), Some(price("4990")))
    );
    assert_eq!(rows[1].action, SignalAction::Close { leader: LeaderRef(7) });

    let wrapped =
        "{\"signals\": [\n{\"action\":\"close_all\"},\n\n  {\"action\":\"close\",\"position\":\"a \\\"b\\\" [c]\"}]}";
    let rows = json(wrapped).unwrap();
    assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(rows[1].action, SignalAction::Close { leader: text_key("desk", "a \"b\" [c]") });
}

#[test]
fn json_problems_name_their_line_and_field() {
    let text = r#"[
  {"action": "open", "symbol": "ES", "side": "buy", "qty": true, "stoploss": 4990},
  {"action": "open", "symbol": "ES", "side": "buy", "qty": -2},
  {"action": "close", "position": 7.5},
  {"action": "close", "position": 7, "POSITION": 8}
]"#;
    let errors = errors_of(json(text));
    // Which of the two spellings is named depends on the JSON map's key order.
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("line 5, field "), "{errors:?}");
    assert!(errors[0].ends_with(": given twice (field names are matched without case)"), "{errors:?}");
    let text = r#"[
  {"action": "open", "symbol": "ES", "side": "buy", "qty": true, "stoploss": 4990},
  {"action": "open", "symbol": "ES", "side": "buy", "qty": -2},
  {"action": "close", "position": 7.5},
  3
]"#;
    assert_eq!(errors_of(json(text)), ["line 5: expected a signal object, got a number"]);
    let text = r#"[
  {"action": "open", "symbol": "ES", "side": "buy", "qty": true, "stoploss": 4990},
  {"action": "open", "symbol": "ES", "side": "buy", "qty": -2},
  {"action": "close", "position": 7.5}
]"#;
    let errors = errors_of(json(text));
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert!(errors[0].starts_with("line 2, field stoploss: unknown field (did you mean `sl`?)"), "{errors:?}");
    assert_eq!(errors[1], "line 2, field qty: expected text or a number, got a boolean");
    assert_eq!(errors[2], "line 3, field qty: must be above 0, got -2");
    assert_eq!(errors[3], "line 4, field position: expected a whole number of at least 0, or a text key, got 7.5");

    let malformed = errors_of(json("[\n{\"action\": \"open\",\n}\n]"));
    assert!(malformed[0].starts_with("line 3: malformed JSON: "), "{malformed:?}");
    assert_eq!(
        errors_of(json("\"open\"")),
        ["line 1: expected an array of signal objects, or {\"signals\": [...]}, got a string"]
    );
    assert_eq!(
        errors_of(json("{\"signal\": []}")),
        ["line 1, field signal: unknown key; expected an array of signal objects, or {\"signals\": [...]}"]
    );
    assert_eq!(
        errors_of(json("{\"signals\": {}}")),
        ["line 1, field signals: expected an array of signal objects, got an object"]
    );
    assert_eq!(errors_of(json("[]")), ["the file holds no signals"]);
}
