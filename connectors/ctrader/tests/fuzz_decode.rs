//! Bytes from the network never panic the decoder: random bytes, truncated frames and
//! corrupted frames come back as errors (or as whatever protobuf makes of them), and every
//! message type's decoder survives every corrupted payload.

use mirror_connector_ctrader::proto::{
    ProtoMessage, ProtoOAExecutionEvent, ProtoOAGetAccountListByAccessTokenRes, ProtoOANewOrderReq,
    ProtoOAReconcileRes, ProtoOASpotEvent, ProtoOASymbolByIdRes,
};
use mirror_connector_ctrader::{CodecError, FRAME_LEN_MAX, FrameDecoder, decode_frame};
use proptest::prelude::*;

const FIXTURES: [&str; 8] = [
    "application_auth_req",
    "heartbeat_event",
    "new_order_limit",
    "execution_filled",
    "spot_event",
    "reconcile_res",
    "symbol_by_id_res",
    "account_list_res",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.trim();
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// Tries every decoder on a payload; none may panic.
fn unpack_all(message: &ProtoMessage) {
    let _ = message.unpack::<ProtoOAExecutionEvent>();
    let _ = message.unpack::<ProtoOAReconcileRes>();
    let _ = message.unpack::<ProtoOASymbolByIdRes>();
    let _ = message.unpack::<ProtoOASpotEvent>();
    let _ = message.unpack::<ProtoOANewOrderReq>();
    let _ = message.unpack::<ProtoOAGetAccountListByAccessTokenRes>();
    // And every decoder regardless of the payload type the wrapper claims.
    let payload = message.payload.clone().unwrap_or_default();
    for payload_type in [2126, 2125, 2117, 2131, 2106, 2150] {
        let _ = ProtoMessage { payload_type, payload: Some(payload.clone()), client_msg_id: None }
            .unpack::<ProtoOAExecutionEvent>();
    }
}

#[test]
fn every_proper_prefix_of_a_frame_is_truncated() {
    for name in FIXTURES {
        let frame = fixture(name);
        for len in 0..frame.len() {
            match decode_frame(&frame[..len]) {
                Err(CodecError::Truncated { .. }) => {}
                other => panic!("{name} cut to {len} bytes gave {other:?}"),
            }
            let mut decoder = FrameDecoder::new();
            decoder.extend(&frame[..len]);
            assert_eq!(decoder.next_message(), Ok(None), "{name} cut to {len} bytes");
        }
        assert!(decode_frame(&frame).is_ok(), "{name} whole");
    }
}

#[test]
fn a_length_over_the_limit_is_an_error_not_an_allocation() {
    let len = u32::try_from(FRAME_LEN_MAX + 1).unwrap().to_be_bytes();
    assert_eq!(decode_frame(&len), Err(CodecError::FrameTooLong { len: FRAME_LEN_MAX + 1, max: FRAME_LEN_MAX }));
    let mut decoder = FrameDecoder::new();
    decoder.extend(&len);
    assert!(matches!(decoder.next_message(), Err(CodecError::FrameTooLong { .. })));
}

#[test]
fn a_body_that_is_not_protobuf_is_a_decode_error() {
    // Field 1 as a length-delimited field of 200 bytes, in a 3-byte body.
    let frame = [0, 0, 0, 3, 0x0a, 0xc8, 0x01];
    assert!(matches!(decode_frame(&frame), Err(CodecError::Decode { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok((message, used)) = decode_frame(&bytes) {
            prop_assert!(used <= bytes.len());
            unpack_all(&message);
        }
        let mut decoder = FrameDecoder::new();
        decoder.extend(&bytes);
        while let Ok(Some(message)) = decoder.next_message() {
            unpack_all(&message);
        }
    }

    #[test]
    fn corrupted_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut frame = fixture(FIXTURES[which]);
        for (at, value) in flips {
            let index = at % frame.len();
            frame[index] ^= value;
        }
        let frame = &frame[..cut % (frame.len() + 1)];
        match decode_frame(frame) {
            Ok((message, used)) => {
                prop_assert!(used <= frame.len());
                unpack_all(&message);
            }
            Err(CodecError::Truncated { needed, available }) => prop_assert!(needed > available),
            Err(_) => {}
        }
    }

    #[test]
    fn valid_streams_split_anywhere_decode_the_same(cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let stream: Vec<u8> = FIXTURES.iter().flat_map(|n| fixture(n)).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = FrameDecoder::new();
        let mut seen = 0;
        for pair in points.windows(2) {
            decoder.extend(&stream[pair[0]..pair[1]]);
            while let Some(_message) = decoder.next_message().unwrap() {
                seen += 1;
            }
        }
        prop_assert_eq!(seen, FIXTURES.len());
    }
}
