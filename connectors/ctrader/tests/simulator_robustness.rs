//! The simulator reads bytes from clients too: a client that sends garbage frames, valid
//! wrappers with corrupted payloads and absurd values gets errors or a dropped connection,
//! and the simulator goes on serving everyone else.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{account_id, q, session, simulator, sym};
use mirror_connector::Connector;
use mirror_connector_ctrader::proto::{
    ProtoMessage, ProtoOAAccountAuthReq, ProtoOAApplicationAuthReq, ProtoOANewOrderReq, ProtoOAOrderType,
    ProtoOATradeSide,
};
use mirror_connector_ctrader::{FrameDecoder, encode_frame, encode_message};
use mirror_model::{AccountId, ClientOrderId, OrderIntent, OrderKind, OrderRequest, Side, SignalId, TimeInForce};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A small deterministic generator, so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| (self.next() & 0xff) as u8).collect()
    }
}

async fn raw_client(
    addr: std::net::SocketAddr,
    certificate: Vec<u8>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(certificate)).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap()
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_harms_no_one() {
    // A panic in any simulator task is counted, not just printed.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
    let simulator = simulator(1).await;
    let mut random = Lcg(42);
    for round in 0..20 {
        let mut stream = raw_client(simulator.addr(), simulator.certificate_der()).await;
        let mut bytes = encode_message(
            &ProtoOAApplicationAuthReq {
                payload_type: None,
                client_id: common::CLIENT_ID.into(),
                client_secret: common::CLIENT_SECRET.into(),
            },
            Some("a".into()),
        )
        .unwrap();
        bytes.extend(
            encode_message(
                &ProtoOAAccountAuthReq {
                    payload_type: None,
                    ctid_trader_account_id: account_id(0),
                    access_token: "token".into(),
                },
                None,
            )
            .unwrap(),
        );
        // Absurd but well-formed orders.
        for volume in [i64::MIN, -1, 0, 1, i64::MAX] {
            let order = ProtoOANewOrderReq {
                ctid_trader_account_id: account_id(0),
                symbol_id: 1,
                order_type: ProtoOAOrderType::Market as i32,
                trade_side: ProtoOATradeSide::Sell as i32,
                volume,
                relative_stop_loss: Some(i64::MAX),
                relative_take_profit: Some(i64::MIN),
                position_id: Some(-7),
                ..ProtoOANewOrderReq::default()
            };
            bytes.extend(encode_message(&order, None).unwrap());
        }
        // Wrappers of every payload type with random payloads.
        for _ in 0..40 {
            let payload_type = 2100 + u32::try_from(random.next() % 90).unwrap();
            let len = usize::try_from(random.next() % 64).unwrap();
            let message = ProtoMessage { payload_type, payload: Some(random.bytes(len)), client_msg_id: None };
            encode_frame(&message, &mut bytes).unwrap();
        }
        // Some rounds end with bytes that are not a frame at all.
        if round % 2 == 0 {
            bytes.extend(random.bytes(64));
        }
        stream.write_all(&bytes).await.unwrap();
        stream.flush().await.unwrap();
        // Read whatever comes back until the server closes or goes quiet.
        let mut decoder = FrameDecoder::new();
        let mut answers = 0;
        loop {
            match tokio::time::timeout(Duration::from_millis(300), stream.read_buf(decoder.buffer_mut())).await {
                Ok(Ok(n)) if n > 0 => {
                    while let Ok(Some(_)) = decoder.next_message() {
                        answers += 1;
                    }
                }
                _ => break,
            }
        }
        assert!(answers >= 2, "round {round}: the server answered the valid requests ({answers} answers)");
    }
    // Nothing absurd was booked, and a well-behaved client is served as usual.
    assert!(simulator.positions(account_id(0)).is_empty());
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the simulator panicked");
    let session = session(&simulator);
    let connector = session.connector(account_id(0));
    connector.connect().await.unwrap();
    let order = OrderRequest {
        client_id: ClientOrderId::new(SignalId(1), AccountId(1), 0),
        symbol: sym("EURUSD"),
        side: Side::Buy,
        qty: q("0.01"),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
        time_in_force: TimeInForce::Gtc,
        intent: OrderIntent::Open,
    };
    connector.place(&order).await.unwrap();
    assert_eq!(simulator.positions(account_id(0)).len(), 1);
    session.shutdown().await;
}
