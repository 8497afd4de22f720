//! The SDK against a real engine and gateway over QUIC on loopback, the engine's followers on
//! the simulated broker: no valid token, no session; a malformed, truncated or oversized frame
//! closes only its stream; a 1-leg order reaches every follower; a 2-leg pair whose second leg
//! a broker rejects is unwound (or completed, per its policy) on that follower alone; a
//! subscription that loses its connection resumes with no gap and no duplicate; the
//! followers' quotes reach the engine's quote board and subscribers of `QUOTES` as the price
//! moves.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ADMIN_TOKEN, Demo, DemoOptions, TRADER_TOKEN, VIEWER_TOKEN, eventually, p, sym};
use mirror_sdk::{
    Client, DeltaEvent, ErrorCode, LegStatus, Order, PairPolicy, PairTicket, Quote, Resolution, Response, SdkError,
    Side, StateFrame, StateUpdate, Trust, topics,
};
use mirror_wire::proto::{
    CLIENT_FRAME_MAX, Hello, HelloReply, OrderTicket, PROTOCOL_VERSION, Request, Subscribe, close_code,
};
use mirror_wire::{FrameDecoder, encode_frame};

const LIMIT: Duration = Duration::from_secs(20);

async fn raw_connection(demo: &Demo) -> (quinn::Endpoint, quinn::Connection) {
    let gateway = demo.gateway();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let trust = Trust::Fingerprint(gateway.cert_fingerprint().into());
    endpoint.set_default_client_config(mirror_sdk::quic_client_config(&trust, None).unwrap());
    let connection = endpoint.connect(gateway.local_addr(), "localhost").unwrap().await.unwrap();
    (endpoint, connection)
}

/// Sends `bytes` on a new stream, finishes it, and reads everything the server answers.
async fn exchange(connection: &quinn::Connection, bytes: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    send.finish().unwrap();
    tokio::time::timeout(LIMIT, recv.read_to_end(1 << 20)).await.expect("an answer in time").unwrap()
}

fn responses(bytes: &[u8]) -> Vec<Response> {
    let mut decoder = FrameDecoder::new();
    decoder.push(bytes);
    let mut out = Vec::new();
    while let Some(response) = decoder.next_frame::<Response>().unwrap() {
        out.push(response);
    }
    assert_eq!(decoder.buffered(), 0, "a whole number of frames");
    out
}

/// The hello's reply (`None` when the server closed the connection before it arrived).
async fn hello(connection: &quinn::Connection, token: &str) -> Option<HelloReply> {
    let frame = encode_frame(&Hello { protocol: PROTOCOL_VERSION, token: token.into(), client: "raw".into() }).unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    let bytes = tokio::time::timeout(LIMIT, recv.read_to_end(1 << 20)).await.unwrap().ok()?;
    Some(mirror_wire::decode_frame::<HelloReply>(&bytes).unwrap())
}

fn closed_with(error: &quinn::ConnectionError) -> u64 {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
        other => panic!("expected an application close, got {other:?}"),
    }
}

fn ticket(position: u64, symbol: &str, side: Side) -> OrderTicket {
    Order::market(position, symbol, side, "1").unwrap().note("gateway test").into_ticket()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_token_no_session() {
    let demo = Demo::start(DemoOptions::default()).await;

    // The SDK is told plainly.
    let error = Client::connect(demo.client_config("not-a-valid-token-at-all")).await.unwrap_err();
    assert!(matches!(error, SdkError::Unauthorized(_)), "{error:?}");
    assert!(!error.is_retryable());

    // A wrong token, with an order right behind it on a second stream: the order is never read.
    let (_endpoint, connection) = raw_connection(&demo).await;
    let hello_frame = encode_frame(&Hello {
        protocol: PROTOCOL_VERSION,
        token: "wrong-token-0123456789".into(),
        client: "raw".into(),
    })
    .unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&hello_frame).await.unwrap();
    send.finish().unwrap();
    if let Ok((mut sneaky, _)) = connection.open_bi().await {
        let _ = sneaky.write_all(&encode_frame(&Request::Submit(ticket(1, "ES", Side::Buy))).unwrap()).await;
    }
    if let Ok(bytes) = tokio::time::timeout(LIMIT, recv.read_to_end(1 << 16)).await.unwrap() {
        let reply = mirror_wire::decode_frame::<HelloReply>(&bytes).unwrap();
        assert!(matches!(reply, HelloReply::Refused(_)), "{reply:?}");
    }
    let closed = tokio::time::timeout(LIMIT, connection.closed()).await.unwrap();
    assert_eq!(closed_with(&closed), u64::from(close_code::UNAUTHORIZED));

    // A first frame that is not a valid hello closes the connection too.
    let (_endpoint, connection) = raw_connection(&demo).await;
    let mut garbage = 3u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[1, 2, 3]);
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&garbage).await.unwrap();
    send.finish().unwrap();
    let closed = tokio::time::timeout(LIMIT, connection.closed()).await.unwrap();
    assert_eq!(closed_with(&closed), u64::from(close_code::BAD_HELLO));

    // Saying nothing: closed when the hello timeout runs out.
    let (_endpoint, connection) = raw_connection(&demo).await;
    let closed = tokio::time::timeout(LIMIT, connection.closed()).await.unwrap();
    assert_eq!(closed_with(&closed), u64::from(close_code::UNAUTHORIZED));

    let engine = demo.engine.as_ref().unwrap().handle();
    assert_eq!(engine.stats().signals, 0, "nothing reached the engine without a session");
    demo.stop().await;
}

async fn next_state(recv: &mut quinn::RecvStream, decoder: &mut FrameDecoder) -> StateFrame {
    loop {
        if let Some(frame) = decoder.next_frame::<StateFrame>().unwrap() {
            return frame;
        }
        let chunk = tokio::time::timeout(LIMIT, recv.read_chunk(64 * 1024, true)).await.unwrap().unwrap().unwrap();
        decoder.push(&chunk.bytes);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_stream_with_an_error() {
    let demo = Demo::start(DemoOptions::default()).await;
    let (_endpoint, connection) = raw_connection(&demo).await;
    assert!(matches!(hello(&connection, TRADER_TOKEN).await, Some(HelloReply::Welcome(_))));

    // A state stream stays open through everything below.
    let (mut state_send, mut state) = connection.open_bi().await.unwrap();
    let subscribe = Request::Subscribe(Subscribe { topics: topics::ALL, resume: None });
    state_send.write_all(&encode_frame(&subscribe).unwrap()).await.unwrap();
    state_send.finish().unwrap();
    let mut decoder = FrameDecoder::new();
    assert!(matches!(next_state(&mut state, &mut decoder).await, StateFrame::Snapshot(_)));

    let bad_frame = |response: &[Response], needle: &str| match response {
        [Response::Error(reply)] => {
            assert_eq!(reply.code, ErrorCode::BadFrame, "{reply:?}");
            assert!(reply.message.contains(needle), "`{}` should mention `{needle}`", reply.message);
        }
        other => panic!("expected one bad-frame error, got {other:?}"),
    };
    let mut garbage = 16u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 16]);
    bad_frame(&responses(&exchange(&connection, &garbage).await), "invalid Request frame");
    let mut truncated = 100u32.to_le_bytes().to_vec();
    truncated.extend_from_slice(&[0u8; 10]);
    bad_frame(&responses(&exchange(&connection, &truncated).await), "truncated Request frame");
    let oversized = u32::try_from(CLIENT_FRAME_MAX + 1).unwrap().to_le_bytes();
    bad_frame(&responses(&exchange(&connection, &oversized).await), "over the limit");
    let zero_qty = OrderTicket { qty: 0, ..ticket(7, "ES", Side::Buy) };
    bad_frame(&responses(&exchange(&connection, &encode_frame(&Request::Submit(zero_qty)).unwrap()).await), "qty");

    // The connection and its other streams go on.
    assert!(connection.close_reason().is_none());
    let pong = responses(&exchange(&connection, &encode_frame(&Request::Ping { nonce: 9 }).unwrap()).await);
    assert!(matches!(pong.as_slice(), [Response::Pong { nonce: 9, .. }]), "{pong:?}");
    let accepted =
        responses(&exchange(&connection, &encode_frame(&Request::Submit(ticket(8, "ES", Side::Buy))).unwrap()).await);
    let [Response::Accepted { signal }] = accepted.as_slice() else { panic!("{accepted:?}") };
    // Heartbeats and account updates keep coming, so the wait for the fill has one deadline.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the fill of {signal:?} never reached the state stream");
        match next_state(&mut state, &mut decoder).await {
            StateFrame::Deltas(deltas)
                if deltas.events.iter().any(|d| matches!(&d.event, DeltaEvent::Fill(f) if f.signal == *signal)) =>
            {
                break;
            }
            _ => {}
        }
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_leg_order_reaches_every_simulated_follower() {
    let demo = Demo::start(DemoOptions::default()).await;
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let welcome = client.welcome().unwrap();
    assert_eq!(welcome.role, mirror_sdk::Role::Trader);
    let mut state = client.subscribe(topics::FILLS | topics::ORDERS).await.unwrap();
    assert!(matches!(state.next().await.unwrap(), StateUpdate::Snapshot(_)));

    let position = client.next_position_key();
    let signal = client.submit(&ticket(position, "ES", Side::Buy)).await.unwrap();
    eventually(LIMIT, "every follower's ES copy", || {
        (0..3).all(|i| {
            let held = demo.positions(i);
            held.len() == 1 && held[0].symbol == sym("ES") && held[0].qty == common::q("1")
        })
    })
    .await;
    let mut filled = BTreeSet::new();
    while filled.len() < 3 {
        if let StateUpdate::Deltas(deltas) = state.next().await.unwrap() {
            for delta in deltas.events {
                if let DeltaEvent::Fill(fill) = delta.event
                    && fill.signal == signal.0
                {
                    filled.insert(fill.account);
                }
            }
        }
    }
    // Closing it by its key closes every copy.
    client.close_position(position).await.unwrap();
    eventually(LIMIT, "every copy closed", || (0..3).all(|i| demo.positions(i).is_empty())).await;
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_a_token_may_do() {
    let demo = Demo::start(DemoOptions::default()).await;
    let viewer = Client::connect(demo.client_config(VIEWER_TOKEN)).await.unwrap();
    let error = viewer.submit(&ticket(1, "ES", Side::Buy)).await.unwrap_err();
    assert!(matches!(&error, SdkError::Server(reply) if reply.code == ErrorCode::Forbidden), "{error:?}");
    let trader = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let error = trader.pause(None).await.unwrap_err();
    assert!(matches!(&error, SdkError::Server(reply) if reply.code == ErrorCode::Forbidden), "{error:?}");
    let error = trader.submit(&ticket(2, "GC", Side::Buy)).await.unwrap_err();
    assert!(matches!(&error, SdkError::Server(reply) if reply.code == ErrorCode::Refused), "{error:?}");
    let error = trader.read_config().await.unwrap_err();
    assert!(matches!(&error, SdkError::Server(reply) if reply.code == ErrorCode::Unavailable), "{error:?}");
    let admin = Client::connect(demo.client_config(ADMIN_TOKEN)).await.unwrap();
    admin.pause(None).await.unwrap();
    trader.submit(&ticket(3, "ES", Side::Buy)).await.unwrap();
    admin.resume(None).await.unwrap();
    assert!(admin.ping().await.unwrap() < LIMIT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!((0..3).all(|i| demo.positions(i).is_empty()), "nothing copied while paused");
    demo.stop().await;
}

fn spread(client: &Client, policy: PairPolicy) -> PairTicket {
    PairTicket {
        first: ticket(client.next_position_key(), "ES", Side::Buy),
        second: ticket(client.next_position_key(), "NQ", Side::Sell),
        policy,
        settle_ms: 5_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_whose_leg_is_rejected_on_one_follower_is_unwound_there_alone() {
    let demo = Demo::start(DemoOptions { without_nq: vec![2], ..DemoOptions::default() }).await;
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let pair = client.submit_pair(&spread(&client, PairPolicy::Unwind)).await.unwrap();
    let (first, second) = (pair.first, pair.second);
    let outcome = pair.outcome().await.unwrap();
    assert_eq!((outcome.first, outcome.second), (first.0, second.0));
    assert!(!outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.followers.len(), 3);
    for follower in &outcome.followers[..2] {
        assert_eq!(follower.resolution, Resolution::Complete, "{follower:?}");
        assert_eq!((follower.first.status, follower.second.status), (LegStatus::Filled, LegStatus::Filled));
    }
    let broken = &outcome.followers[2];
    assert_eq!(broken.name, "f002");
    assert_eq!(broken.first.status, LegStatus::Filled, "{broken:?}");
    assert_eq!(broken.second.status, LegStatus::Rejected, "{broken:?}");
    assert!(broken.second.reason.contains("NQ"), "{broken:?}");
    assert_eq!(broken.resolution, Resolution::Unwound);
    eventually(LIMIT, "the unwound follower flat", || demo.positions(2).is_empty()).await;
    for index in 0..2 {
        assert_eq!(demo.positions(index).len(), 2, "follower {index} keeps both legs");
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_under_complete_sends_the_missing_leg_again_and_reports_what_stayed_broken() {
    let demo = Demo::start(DemoOptions { without_nq: vec![1], ..DemoOptions::default() }).await;
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let pair = client.submit_pair(&spread(&client, PairPolicy::Complete)).await.unwrap();
    let second = pair.second;
    let outcome = pair.outcome().await.unwrap();
    let resolutions: Vec<Resolution> = outcome.followers.iter().map(|f| f.resolution).collect();
    assert_eq!(resolutions, [Resolution::Complete, Resolution::Broken, Resolution::Complete], "{outcome:?}");
    let broken = &outcome.followers[1];
    assert_ne!(broken.second.signal, second.0, "the missing leg was sent again under a signal of its own");
    assert_eq!(broken.second.status, LegStatus::Rejected, "{broken:?}");
    assert_eq!(broken.first.status, LegStatus::Filled);
    // Left as it is: the first leg stays.
    let held = demo.positions(1);
    assert_eq!((held.len(), held[0].symbol), (1, sym("ES")));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_after_a_lost_connection_with_no_gap_and_no_duplicate() {
    let demo = Demo::start(DemoOptions::default()).await;
    let client = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let mut state = client.subscribe(topics::ALL).await.unwrap();
    let StateUpdate::Snapshot(snapshot) = state.next().await.unwrap() else { panic!("a snapshot first") };
    let mut seqs: Vec<u64> = Vec::new();
    let mut last = snapshot.seq;
    fn fills(deltas: &mirror_sdk::Deltas, signal: u64, seqs: &mut Vec<u64>, last: &mut u64) -> usize {
        assert_eq!(deltas.first_seq, *last + 1, "contiguous");
        *last = deltas.last_seq;
        seqs.extend(deltas.events.iter().map(|d| d.seq));
        deltas.events.iter().filter(|d| matches!(&d.event, DeltaEvent::Fill(f) if f.signal == signal)).count()
    }

    let first = client.submit(&ticket(client.next_position_key(), "ES", Side::Buy)).await.unwrap();
    let mut seen = 0;
    while seen < 3 {
        if let StateUpdate::Deltas(deltas) = state.next().await.unwrap() {
            seen += fills(&deltas, first.0, &mut seqs, &mut last);
        }
    }

    // The connection drops; meanwhile another client trades.
    client.drop_connection();
    let other = Client::connect(demo.client_config(TRADER_TOKEN)).await.unwrap();
    let second = other.submit(&ticket(other.next_position_key(), "NQ", Side::Buy)).await.unwrap();
    eventually(LIMIT, "the second order at every follower", || (0..3).all(|i| demo.positions(i).len() == 2)).await;

    let mut reconnected = false;
    let mut seen = 0;
    while seen < 3 {
        match state.next().await.unwrap() {
            StateUpdate::Reconnected { .. } => reconnected = true,
            StateUpdate::Snapshot(snapshot) => {
                panic!("resumed with a snapshot ({:?}) instead of deltas", snapshot.reason)
            }
            StateUpdate::Deltas(deltas) => seen += fills(&deltas, second.0, &mut seqs, &mut last),
            StateUpdate::Heartbeat { .. } => {}
        }
    }
    assert!(reconnected, "the subscription reconnected");
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len(), seqs.len(), "no duplicate");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap: {seqs:?}");
    demo.stop().await;
}

/// The follower quotes of ES in `quotes`, by account: (bid, ask).
fn es_quotes<'a>(quotes: impl IntoIterator<Item = &'a Quote>) -> Vec<(u32, i64, i64)> {
    quotes.into_iter().filter(|q| q.symbol == "ES").map(|q| (q.account, q.bid, q.ask)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_reach_the_board_and_subscribers_of_quotes_as_the_price_moves() {
    let demo = Demo::start(DemoOptions::default()).await;
    let board = demo.engine.as_ref().unwrap().handle().quote_board().clone();
    let followers: BTreeSet<u32> = demo.followers.iter().map(|(id, _)| id.0).collect();
    let quoted = |bid: &str, ask: &str| {
        let (bid, ask) = (p(bid), p(ask));
        demo.followers.iter().all(|(id, _)| board.get(*id, sym("ES")).is_some_and(|q| (q.bid, q.ask) == (bid, ask)))
    };
    // Subscribing after the connection quotes the price as it stands.
    eventually(LIMIT, "every follower's ES quote on the board", || quoted("5000.00", "5000.25")).await;

    // A first subscriber learns of the quotes (from its snapshot or the next deltas); once it
    // has, the hub holds them, so a later snapshot does.
    let client = Client::connect(demo.client_config(VIEWER_TOKEN)).await.unwrap();
    let mut first = client.subscribe(topics::QUOTES).await.unwrap();
    let mut seen = BTreeSet::new();
    while seen != followers {
        match first.next().await.unwrap() {
            StateUpdate::Snapshot(snapshot) => seen.extend(es_quotes(&snapshot.quotes).iter().map(|q| q.0)),
            StateUpdate::Deltas(deltas) => seen.extend(deltas.events.iter().filter_map(|d| match &d.event {
                DeltaEvent::Quote(quote) if quote.symbol == "ES" => Some(quote.account),
                _ => None,
            })),
            _ => {}
        }
    }
    let mut state = client.subscribe(topics::QUOTES).await.unwrap();
    let StateUpdate::Snapshot(snapshot) = state.next().await.unwrap() else { panic!("a snapshot first") };
    assert!(snapshot.accounts.is_empty() && snapshot.positions.is_empty(), "only the topic asked for");
    let (bid, ask) = (p("5000.00").raw(), p("5000.25").raw());
    assert_eq!(es_quotes(&snapshot.quotes), followers.iter().map(|&a| (a, bid, ask)).collect::<Vec<_>>());

    // The price moves: the board, then a delta per follower with the new bid and ask.
    demo.broker.set_price(&sym("ES"), p("5010.00")).unwrap();
    eventually(LIMIT, "every follower's new ES quote on the board", || quoted("5010.00", "5010.25")).await;
    let (bid, ask) = (p("5010.00").raw(), p("5010.25").raw());
    let mut moved = BTreeSet::new();
    while moved != followers {
        match state.next().await.unwrap() {
            StateUpdate::Deltas(deltas) => {
                for delta in &deltas.events {
                    let DeltaEvent::Quote(quote) = &delta.event else { panic!("only quotes: {delta:?}") };
                    if quote.symbol == "ES" && (quote.bid, quote.ask) == (bid, ask) {
                        moved.insert(quote.account);
                    }
                }
            }
            StateUpdate::Heartbeat { .. } => {}
            other => panic!("deltas after the snapshot, not {other:?}"),
        }
    }
    demo.stop().await;
}
