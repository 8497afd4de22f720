//! The wire protocol between [`crate::RemoteSimConnector`] and [`crate::SimServer`].
//!
//! One TCP connection carries one session for one account. Every frame is a 4-byte
//! big-endian length followed by that many bytes of JSON (one object, tagged by `type`).
//!
//! ```text
//! client → server  {"type":"login","account":"h1","password":null,"protocol":1}
//! server → client  {"type":"logged_in","session":{"broker_account":"h1","currency":"USD","mode":"hedging"}}
//! client → server  {"type":"request","id":7,"call":{"op":"place","order":{…}}}
//! server → client  {"type":"response","id":7,"result":{"Ok":{"reply":"placed","ack":{"broker_id":1001}}}}
//! server → client  {"type":"event","event":{"event":"order","client_id":"m1.c0ffee.0",…}}
//! client → server  {"type":"ping"}                 server → client  {"type":"pong"}
//! ```
//!
//! The login comes first and is answered with `logged_in` or `login_refused`. Requests carry
//! an id chosen by the client and are answered by a `response` with the same id, in any order.
//! Events are pushed in the order the broker produced them. The client pings while idle and
//! each side ends a connection on which nothing arrived for its idle timeout.

use mirror_connector::{
    AccountSnapshot, CancelRequest, CloseRequest, ConnectorError, ConnectorEvent, ModifyRequest, OrderLookup, PlaceAck,
    SessionInfo, WorkingOrder,
};
use mirror_model::{ClientOrderId, InstrumentSpec, OrderRequest, Position, Symbol};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The protocol version a login must name; a server refuses any other.
pub(crate) const PROTOCOL_VERSION: u32 = 1;

/// Bytes of the length prefix.
const HEADER_BYTES: usize = 4;

/// Largest frame either side accepts or sends by default (an `order_history` answer for a few
/// thousand orders is a few hundred kilobytes).
pub(crate) const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The first frame of a connection: who the client is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Login {
    /// The account's name at the simulated broker.
    pub(crate) account: String,
    /// The account's password, when it has one.
    pub(crate) password: Option<String>,
    /// The client's [`PROTOCOL_VERSION`].
    pub(crate) protocol: u32,
}

/// What a client sends.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientFrame {
    /// Log in (first frame only).
    Login(Login),
    /// A connector call.
    Request {
        /// Chosen by the client; the response carries it back.
        id: u64,
        /// The call.
        call: Call,
    },
    /// Keeps an idle connection alive; answered with `pong`.
    Ping,
}

/// One connector call, as sent over the wire.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Call {
    /// `Connector::instruments`.
    Instruments,
    /// `Connector::account`.
    Account,
    /// `Connector::place`.
    Place {
        /// The order.
        order: OrderRequest,
    },
    /// `Connector::close`.
    Close {
        /// The close.
        request: CloseRequest,
    },
    /// `Connector::modify`.
    Modify {
        /// The change.
        request: ModifyRequest,
    },
    /// `Connector::cancel`.
    Cancel {
        /// The cancel.
        request: CancelRequest,
    },
    /// `Connector::open_positions`.
    OpenPositions,
    /// `Connector::open_orders`.
    OpenOrders,
    /// `Connector::subscribe_quotes`.
    SubscribeQuotes {
        /// The symbols.
        symbols: Vec<Symbol>,
    },
    /// `Connector::order_history`.
    OrderHistory {
        /// The client order ids looked up.
        client_ids: Vec<ClientOrderId>,
    },
    /// `Connector::request_snapshot`.
    RequestSnapshot,
}

impl Call {
    /// The operation's name, as connector errors name it.
    pub(crate) fn operation(&self) -> &'static str {
        match self {
            Self::Instruments => "instruments",
            Self::Account => "account",
            Self::Place { .. } => "place",
            Self::Close { .. } => "close",
            Self::Modify { .. } => "modify",
            Self::Cancel { .. } => "cancel",
            Self::OpenPositions => "open_positions",
            Self::OpenOrders => "open_orders",
            Self::SubscribeQuotes { .. } => "subscribe_quotes",
            Self::OrderHistory { .. } => "order_history",
            Self::RequestSnapshot => "request_snapshot",
        }
    }

    /// Whether the call goes through the broker's simulated order latency.
    pub(crate) fn is_trading(&self) -> bool {
        matches!(self, Self::Place { .. } | Self::Close { .. } | Self::Modify { .. } | Self::Cancel { .. })
    }
}

/// The successful answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// To `instruments`.
    Instruments {
        /// The account's instruments.
        instruments: Vec<InstrumentSpec>,
    },
    /// To `account`.
    Account {
        /// Balance and equity.
        account: AccountSnapshot,
    },
    /// To `place` and `close`.
    Placed {
        /// The broker's order id.
        ack: PlaceAck,
    },
    /// To `modify`, `cancel`, `subscribe_quotes` and `request_snapshot`.
    Done,
    /// To `open_positions`.
    Positions {
        /// Open positions.
        positions: Vec<Position>,
    },
    /// To `open_orders`.
    Orders {
        /// Working orders.
        orders: Vec<WorkingOrder>,
    },
    /// To `order_history`.
    History {
        /// The orders found.
        orders: Vec<OrderLookup>,
    },
}

impl Reply {
    /// The reply's tag, for errors that name what came.
    pub(crate) fn tag(&self) -> &'static str {
        match self {
            Self::Instruments { .. } => "instruments",
            Self::Account { .. } => "account",
            Self::Placed { .. } => "placed",
            Self::Done => "done",
            Self::Positions { .. } => "positions",
            Self::Orders { .. } => "orders",
            Self::History { .. } => "history",
        }
    }
}

/// What a server sends.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame {
    /// The login succeeded; requests may follow.
    LoggedIn {
        /// Who the session is logged in as.
        session: SessionInfo,
    },
    /// The login failed; the server closes the connection.
    LoginRefused {
        /// Why.
        error: ConnectorError,
    },
    /// The answer to the request with this id.
    Response {
        /// The request's id.
        id: u64,
        /// Its outcome.
        result: Result<Reply, ConnectorError>,
    },
    /// A connector event of the session's account.
    Event {
        /// The event.
        event: ConnectorEvent,
    },
    /// The answer to a ping.
    Pong,
}

/// Why a connection could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// A read or a write failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// Nothing arrived, or a write did not complete, in time.
    #[error("{0}")]
    Timeout(String),
    /// A frame announced more bytes than allowed.
    #[error("a frame of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Bytes announced.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame's JSON did not decode as the message expected.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The peer sent a message that has no place at this point.
    #[error("unexpected message: {0}")]
    Unexpected(String),
}

impl From<std::io::Error> for LinkError {
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => Self::Closed,
            _ => Self::Io(error.to_string()),
        }
    }
}

/// A frame ready for the wire: the length prefix and the JSON.
pub(crate) fn encode(message: &impl Serialize, max: usize) -> Result<Vec<u8>, LinkError> {
    let mut frame = vec![0; HEADER_BYTES];
    serde_json::to_writer(&mut frame, message).map_err(|error| LinkError::Malformed(error.to_string()))?;
    let len = frame.len() - HEADER_BYTES;
    if len > max {
        return Err(LinkError::TooLarge { len, max });
    }
    let header = u32::try_from(len).map_err(|_| LinkError::TooLarge { len, max })?.to_be_bytes();
    frame[..HEADER_BYTES].copy_from_slice(&header);
    Ok(frame)
}

/// Decodes one frame's JSON payload.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, LinkError> {
    serde_json::from_slice(payload).map_err(|error| LinkError::Malformed(error.to_string()))
}

/// Reads the next frame. Not cancel-safe: each connection has one reader task, and a read it
/// gives up on (an idle timeout) ends the connection.
pub(crate) async fn read_frame<T: DeserializeOwned>(
    reader: &mut (impl AsyncRead + Unpin),
    buffer: &mut Vec<u8>,
    max: usize,
) -> Result<T, LinkError> {
    let mut header = [0; HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > max {
        return Err(LinkError::TooLarge { len, max });
    }
    buffer.clear();
    buffer.resize(len, 0);
    reader.read_exact(buffer).await?;
    let message = decode(buffer);
    // A rare large frame must not pin its memory for the connection's lifetime.
    if buffer.capacity() > 64 * 1024 {
        *buffer = Vec::new();
    }
    message
}

/// Completes once the watched value satisfies `condition`, or its sender is gone. (Unlike
/// `wait_for` it holds no borrow of the value, so a task awaiting it stays `Send`.)
pub(crate) async fn until<T>(watched: &mut tokio::sync::watch::Receiver<T>, condition: impl FnMut(&T) -> bool) {
    let _ = watched.wait_for(condition).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_connector::{ConnectionState, RejectCode, RejectReason};
    use mirror_model::{
        AccountId, AccountMode, BrokerOrderId, OrderIntent, OrderKind, Qty, Side, SignalId, TimeInForce,
    };
    use proptest::prelude::*;

    fn order() -> OrderRequest {
        OrderRequest {
            client_id: ClientOrderId::new(SignalId(1), AccountId(0x00c0_ffee), 0),
            symbol: Symbol::new("EURUSD").unwrap(),
            side: Side::Buy,
            qty: Qty::parse("0.02").unwrap(),
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            intent: OrderIntent::Open,
        }
    }

    async fn round_trip<T: Serialize + DeserializeOwned>(message: &T) -> T {
        let frame = encode(message, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut buffer = Vec::new();
        read_frame(&mut frame.as_slice(), &mut buffer, DEFAULT_MAX_FRAME_BYTES).await.unwrap()
    }

    #[tokio::test]
    async fn every_frame_kind_reads_back_the_same() {
        let client = [
            ClientFrame::Login(Login { account: "h1".into(), password: None, protocol: PROTOCOL_VERSION }),
            ClientFrame::Request { id: 7, call: Call::Place { order: order() } },
            ClientFrame::Request {
                id: 8,
                call: Call::SubscribeQuotes { symbols: vec![Symbol::new("EURUSD").unwrap()] },
            },
            ClientFrame::Request { id: 9, call: Call::OrderHistory { client_ids: vec![order().client_id] } },
            ClientFrame::Request { id: 10, call: Call::RequestSnapshot },
            ClientFrame::Ping,
        ];
        for frame in client {
            assert_eq!(round_trip(&frame).await, frame);
        }
        let server = [
            ServerFrame::LoggedIn {
                session: SessionInfo {
                    broker_account: "h1".into(),
                    currency: "USD".into(),
                    mode: AccountMode::Hedging,
                },
            },
            ServerFrame::LoginRefused { error: ConnectorError::Auth("no account `x`".into()) },
            ServerFrame::Response {
                id: 7,
                result: Ok(Reply::Placed { ack: PlaceAck { broker_id: BrokerOrderId(1001) } }),
            },
            ServerFrame::Response {
                id: 8,
                result: Err(ConnectorError::Rejected(RejectReason::new(RejectCode::InvalidQty, "0.015"))),
            },
            ServerFrame::Event {
                event: ConnectorEvent::Connection(ConnectionState::Reconnecting { reason: "cut".into() }),
            },
            ServerFrame::Pong,
        ];
        for frame in server {
            assert_eq!(round_trip(&frame).await, frame);
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let mut bytes = u32::MAX.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let mut buffer = Vec::new();
        let result = read_frame::<ClientFrame>(&mut bytes.as_slice(), &mut buffer, 1024).await;
        assert!(matches!(result, Err(LinkError::TooLarge { max: 1024, .. })), "{result:?}");
        assert!(buffer.capacity() < 1024, "nothing was allocated for the announced length");
        assert!(matches!(encode(&ClientFrame::Ping, 4), Err(LinkError::TooLarge { max: 4, .. })));
    }

    #[tokio::test]
    async fn a_truncated_frame_reads_as_closed() {
        let frame = encode(&ClientFrame::Ping, DEFAULT_MAX_FRAME_BYTES).unwrap();
        let mut buffer = Vec::new();
        let result = read_frame::<ClientFrame>(&mut &frame[..frame.len() - 1], &mut buffer, 1024).await;
        assert_eq!(result, Err(LinkError::Closed));
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<ClientFrame>(&bytes);
            let _ = decode::<ServerFrame>(&bytes);
        }

        #[test]
        fn reading_any_byte_stream_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut buffer = Vec::new();
            let mut reader = bytes.as_slice();
            runtime.block_on(async {
                while read_frame::<ClientFrame>(&mut reader, &mut buffer, 128).await.is_ok() {}
            });
        }
    }
}
