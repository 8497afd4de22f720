//! Decoding what arrives from outside never panics: arbitrary bytes, any chunking, truncated
//! and oversized frames, mutated and made-up JSON. Every outcome is a frame or a typed error.

use std::path::Path;

use mirror_connector_metatrader::protocol::{FrameDecoder, MESSAGES, ProtocolError, decode_engine, decode_terminal};
use proptest::prelude::*;

const MAX: usize = 64 * 1024;
const MAX_U32: u32 = 64 * 1024;

fn decode_both(payload: &[u8]) {
    let _ = decode_terminal(payload);
    let _ = decode_engine(payload);
}

fn fixture_texts() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut texts = Vec::new();
    for dir in ["terminal", "engine", "invalid"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            texts.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    texts.sort();
    texts
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        "[0-9.eE+-]{0,12}".prop_map(serde_json::Value::String),
        ".{0,20}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_in_any_chunks_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096), cut in 1usize..64) {
        let mut decoder = FrameDecoder::new(MAX);
        for chunk in bytes.chunks(cut) {
            decoder.push(chunk);
            loop {
                match decoder.next_payload() {
                    Ok(Some(payload)) => decode_both(&payload),
                    Ok(None) => break,
                    Err(error) => {
                        let expected = matches!(error, ProtocolError::Empty | ProtocolError::Oversized { .. });
                        prop_assert!(expected, "{}", error);
                        return Ok(());
                    }
                }
            }
        }
        decode_both(&bytes);
    }

    #[test]
    fn a_truncated_frame_waits_for_the_rest(index in 0usize..64, cut in 0usize..10_000) {
        let texts = fixture_texts();
        let frame = framed(&texts[index % texts.len()]);
        let cut = cut % frame.len();
        let mut decoder = FrameDecoder::new(MAX);
        decoder.push(&frame[..cut]);
        prop_assert_eq!(decoder.next_payload(), Ok(None));
        decoder.push(&frame[cut..]);
        prop_assert!(decoder.next_payload().unwrap().is_some());
    }

    #[test]
    fn an_oversized_length_is_refused_before_its_body(len in (MAX_U32 + 1)..=u32::MAX) {
        let mut decoder = FrameDecoder::new(MAX);
        decoder.push(&len.to_be_bytes());
        let refused = matches!(decoder.next_payload(), Err(ProtocolError::Oversized { .. }));
        prop_assert!(refused);
    }

    #[test]
    fn mutated_real_frames_never_panic(
        index in 0usize..64,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let texts = fixture_texts();
        let mut bytes = texts[index % texts.len()].clone();
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at.index(bytes.len());
            match how {
                0 => bytes[at] = byte,
                1 => bytes.truncate(at),
                _ => bytes.insert(at, byte),
            }
        }
        decode_both(&bytes);
    }

    #[test]
    fn made_up_frames_of_every_type_never_panic(
        tag in prop::sample::select(MESSAGES.iter().map(|m| m.tag).collect::<Vec<_>>()),
        seq in any::<i64>(),
        fields in prop::collection::vec(any_json(), 0..16),
    ) {
        let schema = MESSAGES.iter().find(|m| m.tag == tag).unwrap();
        let mut object = serde_json::Map::new();
        object.insert("type".into(), tag.into());
        object.insert("seq".into(), seq.into());
        for (name, value) in schema.fields.iter().zip(fields) {
            object.insert((*name).to_owned(), value);
        }
        decode_both(&serde_json::to_vec(&serde_json::Value::Object(object)).unwrap());
    }
}
