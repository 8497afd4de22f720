//! The Expert Advisors send and read exactly the protocol's message types and field names.
//!
//! MQL cannot share the Rust types, so the EAs follow a convention this test reads: a frame
//! of type `T` is built by a function `Send_T` (fields written with `JStr`/`JInt`/`JBool`/
//! `JDec`/`JLevel`/`JRaw`), a nested object `O` by `Json_O`, and a frame of type `T` from the
//! bridge is read by `OnFrame_T` (fields read with `JGetStr`/`JGetLong`/`JGetBool`/`JGetArr`).
//! Each EA, with the includes it uses, must match the schema the Rust side exposes
//! (`protocol::MESSAGES`, `protocol::OBJECTS`) exactly: a name on one side only fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mirror_connector_metatrader::protocol::{Direction, MESSAGES, OBJECTS};

/// What one EA builds and reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Vocabulary {
    sent: BTreeMap<String, BTreeSet<String>>,
    objects: BTreeMap<String, BTreeSet<String>>,
    read: BTreeMap<String, BTreeSet<String>>,
    dispatched: BTreeSet<String>,
    frame_tags: BTreeMap<String, BTreeSet<String>>,
}

/// The source without comments (string literals kept whole, so `"https://…"` stays).
fn strip_comments(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&source[start..i]);
            }
            b'\'' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                out.push_str(&source[start..i]);
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            _ => {
                let start = i;
                i += 1;
                while i < bytes.len() && !matches!(bytes[i], b'"' | b'\'' | b'/') {
                    i += 1;
                }
                out.push_str(&source[start..i]);
            }
        }
    }
    out
}

/// The body (between its braces) of the function whose definition starts at `at`.
fn body(source: &str, at: usize) -> &str {
    let open = at + source[at..].find('{').expect("a function body");
    let mut depth = 0;
    let mut in_string = false;
    let bytes = source.as_bytes();
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'{' if !in_string => depth += 1,
            b'}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return &source[open + 1..i];
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced braces after offset {at}");
}

/// The string literals passed second to any of `functions` (`JStr(j, "field", …)`), or first
/// when `first` (`FrameBegin("tag")`).
fn literal_arguments(text: &str, functions: &[&str], first: bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for function in functions {
        let pattern = format!("{function}(");
        let mut rest = text;
        while let Some(at) = rest.find(&pattern) {
            let preceded_by_identifier =
                rest[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            let arguments = &rest[at + pattern.len()..];
            rest = arguments;
            if preceded_by_identifier {
                continue;
            }
            let argument = if first { arguments } else { arguments.split_once(',').map_or("", |(_, after)| after) };
            let argument = argument.trim_start();
            if let Some(literal) = argument.strip_prefix('"').and_then(|a| a.split_once('"')).map(|(name, _)| name) {
                found.insert(literal.to_owned());
            }
        }
    }
    found
}

/// Every function defined as `<type> <prefix><name>(` at the start of a line.
fn definitions<'a>(source: &'a str, prefix: &str) -> Vec<(String, &'a str)> {
    let mut found = Vec::new();
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let mut words = trimmed.splitn(2, char::is_whitespace);
        let (Some(kind), Some(rest)) = (words.next(), words.next()) else {
            offset += line.len();
            continue;
        };
        let rest = rest.trim_start();
        if matches!(kind, "void" | "string" | "bool" | "int" | "long")
            && let Some(name) = rest.strip_prefix(prefix)
            && let Some((name, _)) = name.split_once('(')
            && !line.trim_end().ends_with(';')
        {
            found.push((name.trim().to_owned(), body(source, offset)));
        }
        offset += line.len();
    }
    found
}

const WRITERS: &[&str] = &["JStr", "JInt", "JBool", "JDec", "JLevel", "JRaw"];
const READERS: &[&str] = &["JGetStr", "JGetLong", "JGetBool", "JGetArr"];

fn vocabulary(source: &str) -> Vocabulary {
    let source = strip_comments(source);
    let mut vocabulary = Vocabulary::default();
    for (tag, text) in definitions(&source, "Send_") {
        vocabulary.frame_tags.insert(tag.clone(), literal_arguments(text, &["FrameBegin"], true));
        vocabulary.sent.insert(tag, literal_arguments(text, WRITERS, false));
    }
    for (name, text) in definitions(&source, "Json_") {
        vocabulary.objects.insert(name, literal_arguments(text, WRITERS, false));
    }
    for (tag, text) in definitions(&source, "OnFrame_") {
        vocabulary.read.insert(tag, literal_arguments(text, READERS, false));
    }
    for (_, text) in definitions(&source, "Dispatch") {
        let mut rest = text;
        while let Some(at) = rest.find("type == \"") {
            rest = &rest[at + 9..];
            if let Some((tag, _)) = rest.split_once('"') {
                vocabulary.dispatched.insert(tag.to_owned());
            }
        }
    }
    vocabulary
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every difference between an EA's vocabulary and the schema, in words.
fn differences(ea: &Vocabulary) -> Vec<String> {
    let mut problems = Vec::new();
    let compare =
        |problems: &mut Vec<String>, what: String, ours: &BTreeSet<String>, theirs: Option<&BTreeSet<String>>| {
            match theirs {
                None => problems.push(format!("{what}: missing from the EA")),
                Some(theirs) => {
                    for name in ours.difference(theirs) {
                        problems.push(format!("{what}: field `{name}` is in the schema but not in the EA"));
                    }
                    for name in theirs.difference(ours) {
                        problems.push(format!("{what}: field `{name}` is in the EA but not in the schema"));
                    }
                }
            }
        };
    for message in MESSAGES {
        let fields = names(message.fields);
        match message.direction {
            Direction::FromTerminal => {
                compare(&mut problems, format!("Send_{}", message.tag), &fields, ea.sent.get(message.tag));
                if ea.frame_tags.get(message.tag).is_some_and(|tags| tags != &names(&[message.tag])) {
                    problems.push(format!("Send_{} does not begin a `{}` frame", message.tag, message.tag));
                }
            }
            Direction::FromEngine => {
                compare(&mut problems, format!("OnFrame_{}", message.tag), &fields, ea.read.get(message.tag));
                if !ea.dispatched.contains(message.tag) {
                    problems.push(format!("Dispatch does not route `{}` frames", message.tag));
                }
            }
        }
    }
    for object in OBJECTS {
        compare(&mut problems, format!("Json_{}", object.name), &names(object.fields), ea.objects.get(object.name));
    }
    let known = |direction: Direction| -> BTreeSet<&str> {
        MESSAGES.iter().filter(|m| m.direction == direction).map(|m| m.tag).collect()
    };
    for tag in ea.sent.keys().filter(|t| !known(Direction::FromTerminal).contains(t.as_str())) {
        problems.push(format!("Send_{tag}: a message type the schema does not have"));
    }
    for tag in ea.read.keys().filter(|t| !known(Direction::FromEngine).contains(t.as_str())) {
        problems.push(format!("OnFrame_{tag}: a message type the schema does not have"));
    }
    for name in ea.objects.keys().filter(|n| !OBJECTS.iter().any(|o| o.name == n.as_str())) {
        problems.push(format!("Json_{name}: an object the schema does not have"));
    }
    problems
}

fn ea_with_includes(file: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mql");
    let mut source = std::fs::read_to_string(root.join("Experts").join(file)).unwrap();
    let includes = root.join("Include").join("MirrorBridge");
    let mut entries: Vec<_> = std::fs::read_dir(&includes).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        source.push('\n');
        source.push_str(&std::fs::read_to_string(path).unwrap());
    }
    source
}

fn check(file: &str) {
    let ea = vocabulary(&ea_with_includes(file));
    // The scan itself found something: every message and object of the schema.
    assert_eq!(ea.sent.len() + ea.read.len(), MESSAGES.len(), "{file}: {ea:#?}");
    let problems = differences(&ea);
    assert!(problems.is_empty(), "{file} disagrees with the protocol schema:\n  {}", problems.join("\n  "));
}

#[test]
fn the_mql5_expert_advisor_speaks_exactly_the_schema() {
    check("MirrorBridge.mq5");
}

#[test]
fn the_mql4_expert_advisor_speaks_exactly_the_schema() {
    check("MirrorBridge.mq4");
}

#[test]
fn the_check_names_a_field_on_one_side_only() {
    let source = r#"
void Send_pong(const long t)
  {
   string j = FrameBegin("pong");
   JInt(j, "t", t);   // "connected" is missing
   JBool(j, "trade_allowed", true);
   JBool(j, "extra", true);
   LinkSend(JClose(j));
  }
void OnFrame_ping(const string frame)
  {
   Send_pong(JGetLong(frame, "tt"));
  }
void Dispatch(const string frame)
  {
   if(type == "ping") OnFrame_ping(frame);
  }
string Json_oops(const int i)
  {
   string o = "{";
   JInt(o, "x", i);
   return JClose(o);
  }
"#;
    let problems = differences(&vocabulary(source));
    for expected in [
        "Send_pong: field `connected` is in the schema but not in the EA",
        "Send_pong: field `extra` is in the EA but not in the schema",
        "OnFrame_ping: field `t` is in the schema but not in the EA",
        "OnFrame_ping: field `tt` is in the EA but not in the schema",
        "Send_hello: missing from the EA",
        "Dispatch does not route `cmd` frames",
        "Json_oops: an object the schema does not have",
    ] {
        assert!(problems.iter().any(|p| p == expected), "`{expected}` not among {problems:#?}");
    }
    assert!(!problems.iter().any(|p| p.starts_with("Send_pong does not begin")), "{problems:#?}");
}
