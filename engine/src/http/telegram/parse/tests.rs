//! The parser against the corpus of channel messages (`engine/tests/data/telegram/corpus.toml`),
//! and the pieces it is built from.

use std::path::Path;

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    symbols: Vec<String>,
    case: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    text: String,
    expect: String,
    symbol: Option<String>,
    side: Option<String>,
    order: Option<String>,
    entry: Option<String>,
    zone_end: Option<String>,
    sl: Option<String>,
    tp: Option<String>,
    more_tp: Option<Vec<String>>,
    fraction: Option<String>,
    price: Option<String>,
    reason: Option<String>,
}

fn price_text(price: Option<Price>) -> String {
    price.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

/// What the parser read, as the corpus writes it: field → value.
fn described(parsed: &Parsed) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let expect = match &parsed.reading {
        Reading::NotASignal => "not_a_signal",
        Reading::Refused => "refused",
        Reading::Signal(intent) => match intent {
            Intent::Open(open) => {
                out.push(("symbol", open.symbol.to_string()));
                out.push(("side", open.side.to_string()));
                let order = match open.kind {
                    OrderKind::Market => "market",
                    OrderKind::Limit { .. } => "limit",
                    OrderKind::Stop { .. } => "stop",
                };
                out.push(("order", order.to_owned()));
                out.push(("entry", price_text(open.entry)));
                out.push(("zone_end", price_text(open.zone_end)));
                out.push(("sl", price_text(open.stop_loss)));
                out.push(("tp", price_text(open.take_profit)));
                let more: Vec<String> = open.more_targets.iter().map(ToString::to_string).collect();
                out.push(("more_tp", more.join(",")));
                "open"
            }
            Intent::Close => "close",
            Intent::CloseSymbol(symbol) => {
                out.push(("symbol", symbol.to_string()));
                "close_symbol"
            }
            Intent::CloseAll => "close_all",
            Intent::PartialClose { closed, of } => {
                out.push(("fraction", format!("{closed}/{of}")));
                "partial_close"
            }
            Intent::StopToEntry => "stop_to_entry",
            Intent::MoveStop(price) => {
                out.push(("price", price.to_string()));
                "move_stop"
            }
            Intent::MoveTarget(price) => {
                out.push(("price", price.to_string()));
                "move_target"
            }
            Intent::CancelPending => "cancel_pending",
        },
    };
    out.insert(0, ("expect", expect.to_owned()));
    out
}

/// The corpus' expectations of a case, as field → value.
fn expected(case: &Case) -> Vec<(&'static str, String)> {
    let normal =
        |text: &Option<String>| text.as_ref().map(|t| Price::parse(t).expect("a price in the corpus").to_string());
    let mut out = vec![("expect", case.expect.clone())];
    let mut push = |name: &'static str, value: Option<String>| {
        if let Some(value) = value {
            out.push((name, value));
        }
    };
    push("symbol", case.symbol.clone());
    push("side", case.side.clone());
    push("order", case.order.clone());
    push("entry", normal(&case.entry));
    push("zone_end", normal(&case.zone_end));
    push("sl", normal(&case.sl));
    push("tp", normal(&case.tp));
    push(
        "more_tp",
        case.more_tp.as_ref().map(|list| {
            list.iter().map(|t| Price::parse(t).expect("a price").to_string()).collect::<Vec<_>>().join(",")
        }),
    );
    push("fraction", case.fraction.clone());
    push("price", normal(&case.price));
    out
}

#[test]
fn the_corpus_reads_as_expected() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/telegram/corpus.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let corpus: Corpus = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(corpus.case.len() >= 80, "the corpus holds {} messages; at least 80 expected", corpus.case.len());
    let symbols: Vec<Symbol> = corpus.symbols.iter().map(|s| Symbol::new(s).unwrap()).collect();
    let mut mismatches = Vec::new();
    let mut executed = 0;
    for (index, case) in corpus.case.iter().enumerate() {
        let parsed = parse(&case.text, &symbols);
        assert!(parsed.confidence_pct <= 100);
        if matches!(parsed.reading, Reading::Signal(_)) {
            executed += 1;
            assert!(parsed.confidence_pct >= CONFIDENCE_MIN, "case {index}: {parsed:?}");
        }
        let got = described(&parsed);
        let mut wrong: Vec<String> = Vec::new();
        for (field, want) in expected(case) {
            let have = got.iter().find(|(f, _)| *f == field).map_or("(not read)", |(_, v)| v.as_str());
            if have != want {
                wrong.push(format!("{field}: expected {want}, read {have}"));
            }
        }
        if let Some(part) = &case.reason
            && !parsed.reason.contains(part.as_str())
        {
            wrong.push(format!("reason: expected it to contain {part:?}"));
        }
        if !wrong.is_empty() {
            mismatches.push(format!(
                "case {index} {:?}\n    {}\n    read: {:?} confidence {} — {}",
                case.text,
                wrong.join("\n    "),
                got,
                parsed.confidence(),
                parsed.reason
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} corpus messages read differently:\n  {}",
        mismatches.len(),
        corpus.case.len(),
        mismatches.join("\n  ")
    );
    // The corpus exercises both sides of the line.
    assert!(executed > 30 && executed < corpus.case.len() - 30, "{executed} executed");
}

#[test]
fn numbers_in_the_forms_channels_write_them() {
    let numbers = |text: &str| -> Vec<String> {
        tokenize(text)
            .into_iter()
            .filter_map(|t| match t {
                Token::Number { value, percent } => Some(format!("{value}{}", if percent { "%" } else { "" })),
                Token::Range(a, b) => Some(format!("{a}..{b}")),
                _ => None,
            })
            .collect()
    };
    assert_eq!(numbers("2,350.50 and 1,0850 and 12,500,000"), ["2350.5", "1.085", "12500000"]);
    assert_eq!(numbers("2350-2345, 2350 – 2345, 2350 - TP"), ["2350..2345", "2350..2345", "2350"]);
    assert_eq!(numbers("close 50% at 14:30 on 12.05.2024"), ["50%"]);
    assert_eq!(numbers("+50 pips -30"), ["50", "30"]);
    assert_eq!(
        tokenize("EUR/USD S/L t.me/x"),
        ["eurusd", "sl", "t", "mex"].map(|w| Token::Word(w.to_owned())).to_vec()
    );
}

#[test]
fn aliases_try_the_names_a_source_may_use() {
    let only = |name: &str| vec![Symbol::new(name).unwrap()];
    let symbol_of = |text: &str, symbols: &[Symbol]| match parse(text, symbols).reading {
        Reading::Signal(Intent::Open(open)) => Some(open.symbol.to_string()),
        _ => None,
    };
    assert_eq!(symbol_of("GOLD buy now", &only("GOLD")).as_deref(), Some("GOLD"));
    assert_eq!(symbol_of("GOLD buy now", &only("XAUUSD")).as_deref(), Some("XAUUSD"));
    assert_eq!(symbol_of("dow sell now", &only("DJ30")).as_deref(), Some("DJ30"));
    assert_eq!(symbol_of("NASDAQ sell now", &only("USTEC")).as_deref(), Some("USTEC"));
    let refused = parse("GOLD buy now", &only("EURUSD"));
    assert_eq!(refused.reading, Reading::Refused);
    assert_eq!(refused.reason, "unknown symbol GOLD (tried XAUUSD, GOLD): this webhook's source sends none of them");
}

#[test]
fn the_confidence_is_a_fraction_with_the_threshold_named() {
    let symbols = [Symbol::new("XAUUSD").unwrap()];
    let full = parse("BUY XAUUSD @ 2350 SL 2340 TP 2360", &symbols);
    assert_eq!((full.confidence_pct, full.confidence()), (100, 1.0));
    let bare = parse("gold buy", &symbols);
    assert_eq!(bare.reading, Reading::NotASignal);
    assert!(bare.reason.ends_with("confidence 0.55 is below 0.6"), "{}", bare.reason);
    assert_eq!(parse("", &symbols).confidence_pct, 0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, ..Default::default() })]

    /// Whatever a chat sends, reading it ends with a verdict: no panic, a confidence within
    /// 0 to 100, and an executed reading only at or above the minimum.
    #[test]
    fn any_text_gets_a_verdict(text in "[ -~\\n🔥🎯✅⛔€–]{0,120}") {
        let symbols = [Symbol::new("XAUUSD").unwrap(), Symbol::new("EURUSD").unwrap()];
        let parsed = parse(&text, &symbols);
        proptest::prop_assert!(parsed.confidence_pct <= 100);
        if matches!(parsed.reading, Reading::Signal(_)) {
            proptest::prop_assert!(parsed.confidence_pct >= CONFIDENCE_MIN, "{parsed:?}");
        }
        proptest::prop_assert!(!parsed.reason.is_empty());
    }

    /// Signal-like word salads exercise the level reader rather than the early exits.
    #[test]
    fn signal_shaped_text_gets_a_verdict(
        words in proptest::collection::vec(
            proptest::sample::select(vec![
                "buy", "sell", "gold", "XAUUSD", "EUR/USD", "@", "sl", "tp", "tp2", "stop", "limit", "loss", "take",
                "profit", "entry", "now", "close", "half", "50%", "move", "to", "be", "pips", "lots", "2350", "2340",
                "2,360.5", "1,0850", "-", "+30", "?", "nas", "100", "cancel", "14:30", "0.05", "1",
            ]),
            0..24,
        )
    ) {
        let symbols = [Symbol::new("XAUUSD").unwrap(), Symbol::new("EURUSD").unwrap(), Symbol::new("NAS100").unwrap()];
        let parsed = parse(&words.join(" "), &symbols);
        proptest::prop_assert!(parsed.confidence_pct <= 100);
        if let Reading::Signal(Intent::Open(open)) = &parsed.reading {
            proptest::prop_assert!(parsed.confidence_pct >= CONFIDENCE_MIN);
            proptest::prop_assert!(symbols.contains(&open.symbol));
        }
    }
}
