//! The wire protocol against frames as the Expert Advisors write them (`tests/data`): every
//! fixture decodes with exact decimals, carries exactly the schema's fields, and survives a
//! round trip; the bridge's own frames are byte-for-byte JSON the fixtures show; invalid
//! frames are refused with the reason named; and a live bridge shrugs off garbage.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Spec, bridge, terminal};
use mirror_connector::Connector;
use mirror_connector_metatrader::client_id_of_comment;
use mirror_connector_metatrader::protocol::{
    EngineMessage, MAX_FRAME_BYTES, MESSAGES, Message, OBJECTS, ProtocolError, TerminalMessage, decode_engine,
    decode_terminal, encode,
};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, InstrumentKind, Money, Platform, Price, Qty, Side, SignalId,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixtures(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().expect("an object").keys().cloned().collect()
}

/// The fixture's keys are exactly the schema's, nested objects included.
fn check_fields(name: &str, json: &serde_json::Value) {
    let tag = json["type"].as_str().unwrap();
    let schema = MESSAGES.iter().find(|m| m.tag == tag).unwrap_or_else(|| panic!("{name}: type {tag}"));
    let mut expected: BTreeSet<String> = schema.fields.iter().map(|f| (*f).to_owned()).collect();
    expected.extend(["type".to_owned(), "seq".to_owned()]);
    assert_eq!(keys(json), expected, "{name}");
    for object in OBJECTS {
        let list = if object.name == "done" { "done".to_owned() } else { format!("{}s", object.name) };
        for item in json.get(list.as_str()).and_then(|v| v.as_array()).into_iter().flatten().filter(|v| v.is_object()) {
            let expected: BTreeSet<String> = object.fields.iter().map(|f| (*f).to_owned()).collect();
            assert_eq!(keys(item), expected, "{name}: a `{}`", object.name);
        }
    }
}

#[test]
fn every_terminal_fixture_decodes_with_exactly_the_schemas_fields_and_round_trips() {
    for (name, bytes) in fixtures("terminal") {
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        check_fields(&name, &json);
        let frame = decode_terminal(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(frame.seq, json["seq"].as_u64().unwrap(), "{name}");
        let again = decode_terminal(&frame.message.to_json(frame.seq).unwrap()).unwrap();
        assert_eq!(again, frame, "{name} round trip");
    }
}

#[test]
fn every_engine_fixture_is_exactly_what_the_bridge_writes() {
    for (name, bytes) in fixtures("engine") {
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        check_fields(&name, &json);
        let frame = decode_engine(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written: serde_json::Value = serde_json::from_slice(&frame.message.to_json(frame.seq).unwrap()).unwrap();
        assert_eq!(written, json, "{name}: the bridge writes this frame differently");
    }
}

#[test]
fn decimals_are_exact_and_ids_decode() {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/terminal/snapshot_mt5.json")).unwrap();
    let TerminalMessage::Snapshot(snapshot) = decode_terminal(&bytes).unwrap().message else { panic!("a snapshot") };
    assert_eq!(snapshot.equity, Money::from_raw(10_001_240_000_000));
    let eurusd = &snapshot.positions[0];
    assert_eq!(
        (eurusd.side, eurusd.volume, eurusd.price_open),
        (Side::Buy, Qty::from_raw(20_000_000), Price::from_raw(108_508_000))
    );
    assert_eq!((eurusd.sl, eurusd.tp), (Some(Price::from_raw(108_000_000)), None));
    assert_eq!(
        client_id_of_comment(&eurusd.comment),
        Some(ClientOrderId::new(SignalId(1_767_225_600_123_456), AccountId(0x7d3e_51a0), 0))
    );
    let gold = &snapshot.symbols[1];
    assert_eq!((gold.kind, gold.digits, gold.tick_size), (InstrumentKind::Cfd, 2, Price::from_raw(1_000_000)));
    assert_eq!((gold.volume_max, gold.contract_size), (Qty::from_raw(10_000_000_000), Qty::from_raw(10_000_000_000)));
    assert_eq!(snapshot.done[1].price, None, "a pending order placed has no execution price");
}

#[test]
fn invalid_frames_are_refused_with_their_reason() {
    for (name, bytes) in fixtures("invalid") {
        let result = decode_terminal(&bytes);
        let kind = name.split("__").next().unwrap();
        let matches = match kind {
            "bad_fields" => matches!(result, Err(ProtocolError::BadFields { .. })),
            "unknown_type" => matches!(result, Err(ProtocolError::UnknownType(_))),
            "malformed" => matches!(result, Err(ProtocolError::Malformed(_))),
            other => panic!("{name}: unknown expectation {other}"),
        };
        assert!(matches, "{name}: {result:?}");
    }
    let error = decode_terminal(br#"{"type":"quote","seq":1,"symbol":"EURUSD","bid":1.1,"ask":"1.2","time_msc":0}"#)
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("`quote` frame: invalid type: floating point `1.1`, expected a string"), "{error}");
}

#[test]
fn frames_over_the_limit_are_not_written() {
    let huge = EngineMessage::Subscribe(mirror_connector_metatrader::protocol::Subscribe {
        symbols: vec!["X".repeat(1_000); 5_000],
    });
    assert!(matches!(encode(&huge, 1, MAX_FRAME_BYTES), Err(ProtocolError::Oversized { .. })));
    assert_eq!(huge.tag(), "subscribe");
}

/// Sends raw bytes to the bridge as a terminal would, and reads until it closes.
async fn raw_session(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the bridge kept a bad connection open");
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_closes_bad_connections_and_serves_good_ones() {
    let spec = Spec::new("t", Platform::Mt5, AccountMode::Hedging);
    let (bridge, _) = bridge(std::slice::from_ref(&spec), false).await;
    let addr = bridge.local_addr();
    // An oversized length prefix: refused before any body is read.
    raw_session(addr, &[0x7f, 0xff, 0xff, 0xff]).await;
    // Garbage JSON.
    let mut garbage = 9u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(b"{not json");
    raw_session(addr, &garbage).await;
    // A wrong token: an `error` frame, then the close.
    let hello =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/terminal/hello_mt5.json")).unwrap();
    let mut frame = u32::try_from(hello.len() - 1).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&hello[..hello.len() - 1]);
    let answer = raw_session(addr, &frame).await;
    let refusal = decode_engine(&answer[4..]).unwrap();
    assert!(matches!(&refusal.message, EngineMessage::Error(e) if e.code == "auth"), "{refusal:?}");
    let stats = bridge.stats();
    assert_eq!((stats.protocol_errors, stats.refused, stats.sessions), (2, 1, 0));
    // A real terminal still gets in.
    let _sim = terminal(&spec, 1, addr, None);
    let connector = bridge.connector("t").unwrap();
    connector.connect().await.unwrap();
    assert_eq!(connector.instruments().await.unwrap().len(), 2);
}
