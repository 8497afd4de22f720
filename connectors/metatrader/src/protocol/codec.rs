//! Framing and JSON encoding of messages. Decoding never panics on any input: every failure
//! is a [`ProtocolError`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{EngineMessage, Frame, ProtocolError, TerminalMessage};

/// Bytes of the length prefix.
const HEADER_BYTES: usize = 4;

/// The tag and sequence number every frame carries; read first, so that the body is decoded
/// as the type it claims to be and an unknown type is named as such.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "type")]
    tag: String,
    seq: u64,
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    #[serde(rename = "type")]
    tag: &'a str,
    seq: u64,
    #[serde(flatten)]
    body: &'a T,
}

fn body<T: DeserializeOwned>(tag: &str, json: &[u8]) -> Result<T, ProtocolError> {
    serde_json::from_slice(json)
        .map_err(|error| ProtocolError::BadFields { tag: tag.to_owned(), detail: error.to_string() })
}

fn head(json: &[u8]) -> Result<Head, ProtocolError> {
    serde_json::from_slice(json).map_err(|error| ProtocolError::Malformed(error.to_string()))
}

/// Decodes the JSON payload of a frame an Expert Advisor sent.
pub fn decode_terminal(json: &[u8]) -> Result<Frame<TerminalMessage>, ProtocolError> {
    let Head { tag, seq } = head(json)?;
    let message = match tag.as_str() {
        "hello" => TerminalMessage::Hello(body(&tag, json)?),
        "snapshot" => TerminalMessage::Snapshot(body(&tag, json)?),
        "deal" => TerminalMessage::Deal(body(&tag, json)?),
        "sltp" => TerminalMessage::Sltp(body(&tag, json)?),
        "pending_add" => TerminalMessage::PendingAdd(body(&tag, json)?),
        "pending_del" => TerminalMessage::PendingDel(body(&tag, json)?),
        "account" => TerminalMessage::Account(body(&tag, json)?),
        "quote" => TerminalMessage::Quote(body(&tag, json)?),
        "ack" => TerminalMessage::Ack(body(&tag, json)?),
        "pong" => TerminalMessage::Pong(body(&tag, json)?),
        _ => return Err(ProtocolError::UnknownType(tag)),
    };
    Ok(Frame { seq, message })
}

/// Decodes the JSON payload of a frame the bridge sent (the terminal simulator's side).
pub fn decode_engine(json: &[u8]) -> Result<Frame<EngineMessage>, ProtocolError> {
    let Head { tag, seq } = head(json)?;
    let message = match tag.as_str() {
        "welcome" => EngineMessage::Welcome(body(&tag, json)?),
        "error" => EngineMessage::Error(body(&tag, json)?),
        "cmd" => EngineMessage::Cmd(body(&tag, json)?),
        "ping" => EngineMessage::Ping(body(&tag, json)?),
        "subscribe" => EngineMessage::Subscribe(body(&tag, json)?),
        "sync" => EngineMessage::Sync(body(&tag, json)?),
        _ => return Err(ProtocolError::UnknownType(tag)),
    };
    Ok(Frame { seq, message })
}

/// A message that can be put on the wire.
pub trait Message {
    /// The `type` tag.
    fn tag(&self) -> &'static str;
    /// The JSON payload with `type` and `seq`.
    fn to_json(&self, seq: u64) -> Result<Vec<u8>, ProtocolError>;
}

fn json<T: Serialize>(tag: &'static str, seq: u64, body: &T) -> Result<Vec<u8>, ProtocolError> {
    serde_json::to_vec(&Envelope { tag, seq, body })
        .map_err(|error| ProtocolError::Encode { tag, detail: error.to_string() })
}

impl Message for TerminalMessage {
    fn tag(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Snapshot(_) => "snapshot",
            Self::Deal(_) => "deal",
            Self::Sltp(_) => "sltp",
            Self::PendingAdd(_) => "pending_add",
            Self::PendingDel(_) => "pending_del",
            Self::Account(_) => "account",
            Self::Quote(_) => "quote",
            Self::Ack(_) => "ack",
            Self::Pong(_) => "pong",
        }
    }

    fn to_json(&self, seq: u64) -> Result<Vec<u8>, ProtocolError> {
        let tag = self.tag();
        match self {
            Self::Hello(m) => json(tag, seq, m),
            Self::Snapshot(m) => json(tag, seq, m),
            Self::Deal(m) => json(tag, seq, m),
            Self::Sltp(m) => json(tag, seq, m),
            Self::PendingAdd(m) => json(tag, seq, m),
            Self::PendingDel(m) => json(tag, seq, m),
            Self::Account(m) => json(tag, seq, m),
            Self::Quote(m) => json(tag, seq, m),
            Self::Ack(m) => json(tag, seq, m),
            Self::Pong(m) => json(tag, seq, m),
        }
    }
}

impl Message for EngineMessage {
    fn tag(&self) -> &'static str {
        match self {
            Self::Welcome(_) => "welcome",
            Self::Error(_) => "error",
            Self::Cmd(_) => "cmd",
            Self::Ping(_) => "ping",
            Self::Subscribe(_) => "subscribe",
            Self::Sync(_) => "sync",
        }
    }

    fn to_json(&self, seq: u64) -> Result<Vec<u8>, ProtocolError> {
        let tag = self.tag();
        match self {
            Self::Welcome(m) => json(tag, seq, m),
            Self::Error(m) => json(tag, seq, m),
            Self::Cmd(m) => json(tag, seq, m),
            Self::Ping(m) => json(tag, seq, m),
            Self::Subscribe(m) => json(tag, seq, m),
            Self::Sync(m) => json(tag, seq, m),
        }
    }
}

/// A whole frame, length prefix included.
pub fn encode(message: &impl Message, seq: u64, max: usize) -> Result<Vec<u8>, ProtocolError> {
    let payload = message.to_json(seq)?;
    if payload.len() > max {
        return Err(ProtocolError::Oversized { len: payload.len(), max });
    }
    let len = u32::try_from(payload.len()).map_err(|_| ProtocolError::Oversized { len: payload.len(), max })?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Splits a byte stream into frame payloads. Bytes are pushed as they arrive; a length over
/// the limit is an error at once (before the body arrives), so a hostile peer cannot make the
/// reader buffer more than `max` bytes.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder refusing frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { buffer: Vec::new(), max }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete payload, `None` when more bytes are needed.
    pub fn next_payload(&mut self) -> Result<Option<Vec<u8>>, ProtocolError> {
        let Some(header) = self.buffer.first_chunk::<HEADER_BYTES>() else {
            return Ok(None);
        };
        let len = usize::try_from(u32::from_be_bytes(*header)).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(ProtocolError::Empty);
        }
        if len > self.max {
            return Err(ProtocolError::Oversized { len, max: self.max });
        }
        if self.buffer.len() < HEADER_BYTES + len {
            return Ok(None);
        }
        let payload = self.buffer[HEADER_BYTES..HEADER_BYTES + len].to_vec();
        self.buffer.drain(..HEADER_BYTES + len);
        Ok(Some(payload))
    }

    /// Bytes held that do not make a whole frame yet.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Ping, Pong};

    #[test]
    fn frames_round_trip_and_split_anywhere() {
        let frame = encode(&EngineMessage::Ping(Ping { t: 42 }), 7, 1 << 20).unwrap();
        assert_eq!(&frame[..4], &u32::try_from(frame.len() - 4).unwrap().to_be_bytes());
        let mut decoder = FrameDecoder::new(1 << 20);
        for byte in frame.iter().chain(frame.iter()) {
            decoder.push(std::slice::from_ref(byte));
        }
        for _ in 0..2 {
            let payload = decoder.next_payload().unwrap().unwrap();
            assert_eq!(
                decode_engine(&payload).unwrap(),
                Frame { seq: 7, message: EngineMessage::Ping(Ping { t: 42 }) }
            );
        }
        assert_eq!(decoder.next_payload().unwrap(), None);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn bad_frames_are_named() {
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&[0, 0, 0, 17]);
        assert_eq!(decoder.next_payload(), Err(ProtocolError::Oversized { len: 17, max: 16 }));
        let mut decoder = FrameDecoder::new(16);
        decoder.push(&[0, 0, 0, 0]);
        assert_eq!(decoder.next_payload(), Err(ProtocolError::Empty));
        assert!(matches!(decode_terminal(b"[1,2]"), Err(ProtocolError::Malformed(_))));
        assert_eq!(decode_terminal(br#"{"type":"nope","seq":1}"#), Err(ProtocolError::UnknownType("nope".into())));
        assert!(matches!(decode_terminal(br#"{"type":"pong","seq":1,"t":5}"#), Err(ProtocolError::BadFields { .. })));
        let pong = decode_terminal(br#"{"type":"pong","seq":3,"t":5,"connected":true,"trade_allowed":false,"new":1}"#);
        assert_eq!(
            pong.unwrap().message,
            TerminalMessage::Pong(Pong { t: 5, connected: true, trade_allowed: false }),
            "fields a newer EA adds are ignored"
        );
        let too_big = encode(&EngineMessage::Ping(Ping { t: 1 }), 1, 8);
        assert!(matches!(too_big, Err(ProtocolError::Oversized { .. })));
    }
}
