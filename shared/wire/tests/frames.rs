//! Gateway frames: every message round-trips; malformed, truncated, oversized and meaningless
//! input is refused with an error that names the message and what is wrong; random bytes and
//! random corruptions never panic the decoder.

use mirror_wire::proto::{
    AccountState, CLIENT_FRAME_MAX, Delta, DeltaEvent, Deltas, Hello, HelloReply, OrderTicket, OrderType, PairPolicy,
    PairTicket, Quote, Request, Response, ResumeFrom, Role, Side, Snapshot, SnapshotReason, StateFrame, Subscribe, Tif,
    Welcome, topics,
};
use mirror_wire::{FRAME_HEADER_LEN, FrameDecoder, FrameError, Message, decode_frame, decode_payload, encode_frame};
use proptest::prelude::*;

fn ticket(position: u64, symbol: &str) -> OrderTicket {
    OrderTicket {
        position,
        symbol: symbol.into(),
        side: Side::Buy,
        qty: 100_000_000,
        order_type: OrderType::Market,
        reference_price: Some(500_000_000_000),
        stop_loss: Some(490_000_000_000),
        take_profit: None,
        time_in_force: Tif::Gtc,
        contract_size: None,
        note: "spread".into(),
    }
}

fn requests() -> Vec<Request> {
    vec![
        Request::Submit(ticket(1, "ES")),
        Request::SubmitPair(PairTicket {
            first: ticket(2, "ES"),
            second: OrderTicket { side: Side::Sell, ..ticket(3, "NQ") },
            policy: PairPolicy::Unwind,
            settle_ms: 2_000,
        }),
        Request::Modify { position: 1, stop_loss: Some(1), take_profit: None },
        Request::Close { position: 1, partial: Some((1, 3)) },
        Request::CloseAll { symbol: Some("ES".into()) },
        Request::Cancel { position: 9 },
        Request::Flatten { account: None },
        Request::Pause { account: Some(4) },
        Request::Resume { account: None },
        Request::ReadConfig,
        Request::ApplyConfig { toml: "[engine]\n".into() },
        Request::Subscribe(Subscribe { topics: topics::ALL, resume: Some(ResumeFrom { epoch: 3, seq: 99 }) }),
        Request::Ping { nonce: 7 },
    ]
}

#[test]
fn every_request_round_trips() {
    for request in requests() {
        let frame = encode_frame(&request).unwrap();
        assert_eq!(decode_frame::<Request>(&frame).unwrap(), request);
    }
}

#[test]
fn hello_and_state_round_trip_and_hello_debug_hides_the_token() {
    let hello = Hello { protocol: 1, token: "s3cret-token".into(), client: "test".into() };
    assert_eq!(decode_frame::<Hello>(&encode_frame(&hello).unwrap()).unwrap(), hello);
    assert!(!format!("{hello:?}").contains("s3cret"), "{hello:?}");
    let reply = HelloReply::Welcome(Welcome {
        protocol: 1,
        session: 5,
        role: Role::Trader,
        epoch: 77,
        source: Some(3),
        server: "mirror 0.1".into(),
    });
    assert_eq!(decode_frame::<HelloReply>(&encode_frame(&reply).unwrap()).unwrap(), reply);
    let account = AccountState {
        id: 1,
        name: "f1".into(),
        balance: 1,
        equity: 2,
        positions: 0,
        live_orders: 0,
        mode: "normal".into(),
        paused: false,
        connected: true,
    };
    let frames = [
        StateFrame::Snapshot(Snapshot {
            epoch: 1,
            seq: 10,
            reason: SnapshotReason::Initial,
            accounts: vec![account.clone()],
            positions: vec![],
            orders: vec![],
            fills: vec![],
            copy: vec![],
            latency: Default::default(),
            quotes: vec![Quote { account: 1, symbol: "ES".into(), bid: 500_000, ask: 500_025, time_unix_ms: 1 }],
        }),
        StateFrame::Deltas(Deltas {
            epoch: 1,
            first_seq: 11,
            last_seq: 12,
            events: vec![
                Delta {
                    seq: 11,
                    event: DeltaEvent::Quote(Quote {
                        account: 1,
                        symbol: "ES".into(),
                        bid: 1,
                        ask: 2,
                        time_unix_ms: 3,
                    }),
                },
                Delta { seq: 12, event: DeltaEvent::Account(account) },
            ],
        }),
        StateFrame::Heartbeat { epoch: 1, seq: 12 },
    ];
    for frame in frames {
        assert_eq!(decode_frame::<StateFrame>(&encode_frame(&frame).unwrap()).unwrap(), frame);
    }
    let response = Response::Accepted { signal: 4 };
    assert_eq!(decode_frame::<Response>(&encode_frame(&response).unwrap()).unwrap(), response);
}

#[test]
fn a_truncated_frame_says_how_much_was_missing() {
    let frame = encode_frame(&Request::Ping { nonce: 1 }).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame[..frame.len() - 2]);
    assert_eq!(decoder.next_frame::<Request>().unwrap(), None, "not whole yet");
    let error = decoder.truncation::<Request>();
    let payload = frame.len() - FRAME_HEADER_LEN;
    assert_eq!(error, FrameError::Truncated { message: "Request", expected: payload, got: payload - 2 });
    assert!(error.to_string().contains("truncated Request frame"), "{error}");
    let header_only = decode_frame::<Request>(&frame[..2]).unwrap_err();
    assert_eq!(header_only, FrameError::Truncated { message: "Request", expected: FRAME_HEADER_LEN, got: 2 });
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let announced = u32::try_from(CLIENT_FRAME_MAX + 1).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&announced.to_le_bytes());
    let error = decoder.next_frame::<Request>().unwrap_err();
    assert_eq!(error, FrameError::TooLarge { message: "Request", len: CLIENT_FRAME_MAX + 1, max: CLIENT_FRAME_MAX });
    // And no message over the limit is ever written.
    let huge = Request::ApplyConfig { toml: "x".repeat(CLIENT_FRAME_MAX) };
    assert!(matches!(encode_frame(&huge), Err(FrameError::Encode { message: "Request", .. })));
}

#[test]
fn empty_and_garbage_frames_are_refused_with_the_message_named() {
    assert_eq!(decode_frame::<Request>(&[0, 0, 0, 0]).unwrap_err(), FrameError::Empty { message: "Request" });
    let mut garbage = 16u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 16]);
    let error = decode_frame::<Request>(&garbage).unwrap_err();
    assert!(matches!(error, FrameError::Invalid { message: "Request", len: 16, .. }), "{error:?}");
    let mut trailing = encode_frame(&Request::ReadConfig).unwrap();
    trailing.push(0);
    assert!(matches!(decode_frame::<Request>(&trailing), Err(FrameError::Field { field: "frame", .. })));
}

#[test]
fn well_formed_but_meaningless_requests_name_the_field() {
    let cases: Vec<(Request, &str, &str)> = vec![
        (Request::Submit(OrderTicket { qty: 0, ..ticket(1, "ES") }), "OrderTicket", "qty"),
        (Request::Submit(OrderTicket { qty: -5, ..ticket(1, "ES") }), "OrderTicket", "qty"),
        (Request::Submit(ticket(1, "E S")), "OrderTicket", "symbol"),
        (Request::Submit(ticket(1, "")), "OrderTicket", "symbol"),
        (Request::Submit(OrderTicket { stop_loss: Some(-1), ..ticket(1, "ES") }), "OrderTicket", "stop_loss"),
        (
            Request::Submit(OrderTicket { order_type: OrderType::Limit { price: 0 }, ..ticket(1, "ES") }),
            "OrderTicket",
            "price",
        ),
        (Request::Submit(OrderTicket { note: "n".repeat(300), ..ticket(1, "ES") }), "OrderTicket", "note"),
        (
            Request::SubmitPair(PairTicket {
                first: ticket(1, "ES"),
                second: ticket(1, "NQ"),
                policy: PairPolicy::Complete,
                settle_ms: 0,
            }),
            "PairTicket",
            "second.position",
        ),
        (Request::Close { position: 1, partial: Some((0, 3)) }, "Request", "partial.closed"),
        (Request::Subscribe(Subscribe { topics: 1 << 20, resume: None }), "Subscribe", "topics"),
    ];
    for (request, message, field) in cases {
        let frame = encode_frame(&request).unwrap();
        match decode_frame::<Request>(&frame) {
            Err(FrameError::Field { message: m, field: f, reason }) => {
                assert_eq!((m, f), (message, field), "{request:?}: {reason}")
            }
            other => panic!("{request:?} gave {other:?}"),
        }
    }
    let long_token = Hello { protocol: 1, token: "t".repeat(600), client: String::new() };
    assert!(matches!(
        decode_frame::<Hello>(&encode_frame(&long_token).unwrap()),
        Err(FrameError::Field { message: "Hello", field: "token", .. })
    ));
}

/// Every single-byte corruption of every request is refused or decodes to a request that
/// passes its own checks and encodes again: validation, not luck, stands between outside
/// bytes and the server.
#[test]
fn single_byte_corruptions_are_refused_or_consistent() {
    let mut refused = 0;
    for request in requests() {
        let frame = encode_frame(&request).unwrap();
        for index in FRAME_HEADER_LEN..frame.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut corrupted = frame.clone();
                corrupted[index] ^= mask;
                match decode_frame::<Request>(&corrupted) {
                    Err(_) => refused += 1,
                    Ok(decoded) => {
                        decoded.check().unwrap();
                        encode_frame(&decoded).unwrap();
                    }
                }
            }
        }
    }
    assert!(refused > 100, "only {refused} corruptions were caught");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Random payloads never panic any decoder.
    #[test]
    fn random_payloads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload::<Request>(&bytes);
        let _ = decode_payload::<Hello>(&bytes);
        let _ = decode_payload::<StateFrame>(&bytes);
        let _ = decode_payload::<Response>(&bytes);
        let _ = decode_payload::<HelloReply>(&bytes);
    }

    /// A stream of frames cut at random points decodes to the same frames in order.
    #[test]
    fn frames_survive_any_split(cuts in proptest::collection::vec(0usize..4_000, 0..12)) {
        let sent = requests();
        let stream: Vec<u8> = sent.iter().flat_map(|r| encode_frame(r).unwrap()).collect();
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
        points.push(stream.len());
        points.sort_unstable();
        let mut decoder = FrameDecoder::new();
        let mut received = Vec::new();
        let mut from = 0;
        for to in points {
            decoder.push(&stream[from..to]);
            from = to;
            while let Some(request) = decoder.next_frame::<Request>().unwrap() {
                received.push(request);
            }
        }
        prop_assert_eq!(received, sent);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    /// Random bytes after a valid header never panic and never yield a frame longer than
    /// announced.
    #[test]
    fn random_frames_never_panic(len in 0u32..2_048, body in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let mut frame = len.to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let _ = decode_frame::<Request>(&frame);
        let _ = decode_frame::<StateFrame>(&frame);
    }
}
