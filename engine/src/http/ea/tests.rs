//! The numbers kept per terminal, and the reference EA against the schema the webhook reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::events::{BATCH_FIELDS, EVENT_FIELDS};
use super::*;

#[test]
fn numbers_are_kept_per_terminal_bounded_and_round_trip_the_file() {
    let mut terminals = Terminals::default();
    let key = |login: u64| (login, "Broker-Demo".to_owned());
    terminals.set(key(1), 10, 1_000);
    terminals.set((1, "Broker-Live".to_owned()), 3, 1_001);
    assert_eq!(
        (terminals.last(&key(1)), terminals.last(&(1, "Broker-Live".to_owned())), terminals.last(&key(2))),
        (10, 3, 0)
    );
    let back =
        Terminals::from_file(serde_json::from_str(&serde_json::to_string(&terminals.to_file()).unwrap()).unwrap())
            .unwrap();
    assert_eq!(back, terminals);
    for login in 100..100 + u64::try_from(TERMINALS_MAX).unwrap() {
        terminals.set(key(login), 1, 2_000 + i64::try_from(login).unwrap());
    }
    assert_eq!(terminals.by_key.len(), TERMINALS_MAX);
    assert_eq!(terminals.last(&key(1)), 0, "the least recently heard terminal is forgotten first");
}

/// The MQL source without comments; string literals kept whole.
fn strip_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(c) = chars.next() {
                    out.push(c);
                    if c == '\\' {
                        out.extend(chars.next());
                    } else if c == '"' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every function `string <prefix><name>(…)` and its body.
fn functions<'a>(source: &'a str, prefix: &str) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(rest) = line.trim_start().strip_prefix("string ") else { continue };
        let Some(name) = rest.trim_start().strip_prefix(prefix).and_then(|r| r.split_once('(')).map(|(n, _)| n) else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let open = start + source[start..].find('{').expect("a body");
        let mut depth = 0;
        let mut in_string = false;
        let mut end = open;
        for (i, c) in source[open..].char_indices() {
            match c {
                '"' => in_string = !in_string,
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        found.push((name.trim().to_owned(), &source[open + 1..end]));
    }
    found
}

/// The field names written by `JStr(o, "name", …)`, `JInt`, `JDec`, `JLevel`, `JRaw`; and the
/// value of the `type` field when it is a literal.
fn written(body: &str) -> (BTreeSet<String>, Option<String>) {
    let mut names = BTreeSet::new();
    let mut kind = None;
    for writer in ["JStr(", "JInt(", "JDec(", "JLevel(", "JRaw("] {
        let mut rest = body;
        while let Some(at) = rest.find(writer) {
            let arguments = &rest[at + writer.len()..];
            rest = arguments;
            if rest_is_identifier_tail(&body[..body.len() - arguments.len() - writer.len()]) {
                continue;
            }
            let Some((_, after)) = arguments.split_once(',') else { continue };
            let Some((name, tail)) = after.trim_start().strip_prefix('"').and_then(|a| a.split_once('"')) else {
                continue;
            };
            if name == "type"
                && let Some((value, _)) = tail
                    .trim_start()
                    .strip_prefix(',')
                    .and_then(|t| t.trim_start().strip_prefix('"'))
                    .and_then(|t| t.split_once('"'))
            {
                kind = Some(value.to_owned());
            }
            names.insert(name.to_owned());
        }
    }
    (names, kind)
}

/// Whether the text before a writer's name ends in an identifier character (`MyJStr(`).
fn rest_is_identifier_tail(before: &str) -> bool {
    before.chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every difference between what the EA writes and what the webhook reads.
fn differences(source: &str) -> Vec<String> {
    let source = strip_comments(source);
    let mut problems = Vec::new();
    let compare = |problems: &mut Vec<String>, what: &str, ours: &[&str], theirs: &BTreeSet<String>| {
        let ours: BTreeSet<String> = ours.iter().map(|s| (*s).to_owned()).collect();
        for name in ours.difference(theirs) {
            problems.push(format!("{what}: field `{name}` is read by the webhook but not written by the EA"));
        }
        for name in theirs.difference(&ours) {
            problems.push(format!("{what}: field `{name}` is written by the EA but not read by the webhook"));
        }
    };
    let events: BTreeMap<String, &str> = functions(&source, "Event_").into_iter().collect();
    for (kind, fields) in EVENT_FIELDS {
        match events.get(*kind) {
            None => problems.push(format!("Event_{kind}: missing from the EA")),
            Some(body) => {
                let (names, written_kind) = written(body);
                compare(&mut problems, &format!("Event_{kind}"), fields, &names);
                if written_kind.as_deref() != Some(kind) {
                    problems.push(format!("Event_{kind} writes type {written_kind:?}, not \"{kind}\""));
                }
            }
        }
    }
    for kind in events.keys().filter(|k| !EVENT_FIELDS.iter().any(|(name, _)| name == k)) {
        problems.push(format!("Event_{kind}: an event type the webhook does not read"));
    }
    match functions(&source, "Batch_").as_slice() {
        [(_, body)] => compare(&mut problems, "Batch_json", BATCH_FIELDS, &written(body).0),
        other => problems.push(format!("one Batch_ function expected in the EA, found {}", other.len())),
    }
    problems
}

#[test]
fn the_reference_ea_writes_exactly_the_fields_the_webhook_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/ea/MirrorWebhook.mq5");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let problems = differences(&source);
    assert!(problems.is_empty(), "{} disagrees with the webhook:\n  {}", path.display(), problems.join("\n  "));
    // The EA sends the secret in the header the webhook reads, to the webhook's route.
    assert!(source.contains("X-Mirror-Secret") && SECRET_HEADER == "x-mirror-secret");
    assert!(source.contains("WebRequest(\"POST\""), "the EA posts with WebRequest");
}

#[test]
fn the_check_names_a_field_on_one_side_only() {
    let source = r#"
string Event_open(const int i)
  {
   string o = "{";
   JInt(o, "seq", 1); // "ticket" is missing
   JStr(o, "type", "open");
   JStr(o, "symbol", s); JStr(o, "side", s); JDec(o, "lots", 1, 2); JDec(o, "price", 1, 2);
   JLevel(o, "sl", 0, 2); JLevel(o, "tp", 0, 2); JInt(o, "order", 0); JInt(o, "time", 0);
   JStr(o, "comment", "x");
   return JClose(o);
  }
string Event_close(const int i)
  {
   string o = "{";
   JStr(o, "type", "modify");
   return JClose(o);
  }
string Event_swap(const int i) { return ""; }
string Batch_json(const string events)
  {
   string o = "{";
   JInt(o, "login", 1); JStr(o, "server", s); JStr(o, "platform", "mt5"); JRaw(o, "events", events);
   return JClose(o);
  }
"#;
    let problems = differences(source);
    for expected in [
        "Event_open: field `ticket` is read by the webhook but not written by the EA",
        "Event_open: field `comment` is written by the EA but not read by the webhook",
        "Event_close writes type Some(\"modify\"), not \"close\"",
        "Event_modify: missing from the EA",
        "Event_swap: an event type the webhook does not read",
    ] {
        assert!(problems.iter().any(|p| p == expected), "`{expected}` not among {problems:#?}");
    }
    assert!(!problems.iter().any(|p| p.starts_with("Batch_json")), "{problems:#?}");
}
