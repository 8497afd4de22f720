//! Framing of the protobuf port: a 4-byte big-endian length, then that many bytes of a
//! serialized `ProtoMessage`.
//!
//! Decoding reads bytes from the network, so it never panics and never trusts a length: a
//! frame longer than the limit is an error before any byte of it is buffered.

use bytes::{Buf, BytesMut};
use prost::Message;

use crate::proto::{OpenApiMessage, ProtoMessage};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Largest frame body accepted or produced, in bytes: the official SDK's `MAX_LENGTH`.
pub const FRAME_LEN_MAX: usize = 15_000_000;

/// A frame that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The length prefix announces more than the limit.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    FrameTooLong {
        /// Announced (or produced) length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A buffer that should hold one whole frame ends early.
    #[error("frame truncated: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes the frame needs (prefix included).
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The bytes are not the protobuf message expected.
    #[error("cannot decode the {what}: {detail}")]
    Decode {
        /// The wrapper or the payload.
        what: &'static str,
        /// What prost said.
        detail: String,
    },
    /// The wrapper carries another message than the one asked for.
    #[error("expected payload type {expected}, got {found}")]
    UnexpectedPayload {
        /// The payload type asked for.
        expected: u32,
        /// The payload type found.
        found: u32,
    },
}

/// Appends one frame (prefix and body) carrying `message` to `out`.
pub fn encode_frame(message: &ProtoMessage, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let len = message.encoded_len();
    if len > FRAME_LEN_MAX {
        return Err(CodecError::FrameTooLong { len, max: FRAME_LEN_MAX });
    }
    out.reserve(LENGTH_PREFIX_LEN + len);
    // `len` is at most FRAME_LEN_MAX, far below 2³².
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    message.encode(out).map_err(|error| CodecError::Decode { what: "wrapper", detail: error.to_string() })
}

/// One frame carrying `message` under its payload type, as a new buffer.
pub fn encode_message<M: OpenApiMessage>(message: &M, client_msg_id: Option<String>) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_frame(&ProtoMessage::wrap(message, client_msg_id), &mut out)?;
    Ok(out)
}

/// Decodes the first frame of `bytes`, which must hold it whole. Returns the message and the
/// number of bytes the frame took.
pub fn decode_frame(bytes: &[u8]) -> Result<(ProtoMessage, usize), CodecError> {
    let Some(len) = announced_len(bytes)? else {
        return Err(CodecError::Truncated { needed: LENGTH_PREFIX_LEN, available: bytes.len() });
    };
    let needed = LENGTH_PREFIX_LEN + len;
    let body = bytes.get(LENGTH_PREFIX_LEN..needed).ok_or(CodecError::Truncated { needed, available: bytes.len() })?;
    let message = ProtoMessage::decode(body)
        .map_err(|error| CodecError::Decode { what: "wrapper", detail: error.to_string() })?;
    Ok((message, needed))
}

/// The length a prefix announces, checked against the limit (`None` when fewer than four
/// bytes are there).
fn announced_len(bytes: &[u8]) -> Result<Option<usize>, CodecError> {
    let Some(prefix) = bytes.first_chunk::<LENGTH_PREFIX_LEN>() else {
        return Ok(None);
    };
    let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
    if len > FRAME_LEN_MAX {
        return Err(CodecError::FrameTooLong { len, max: FRAME_LEN_MAX });
    }
    Ok(Some(len))
}

/// Cuts a byte stream into frames. Feed it what the socket gives; take whole messages out.
///
/// After an error the stream is out of step (a wrong length cannot be skipped reliably), so
/// the caller drops the connection.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: BytesMut,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer the socket reads into (`read_buf` appends to it).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// Appends bytes received.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet make a whole frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole message, `None` until one is complete.
    pub fn next_message(&mut self) -> Result<Option<ProtoMessage>, CodecError> {
        let Some(len) = announced_len(&self.buffer)? else {
            return Ok(None);
        };
        if self.buffer.len() < LENGTH_PREFIX_LEN + len {
            // Reserve once for the whole frame rather than growing read by read.
            self.buffer.reserve(LENGTH_PREFIX_LEN + len - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(LENGTH_PREFIX_LEN);
        let body = self.buffer.split_to(len);
        ProtoMessage::decode(body.freeze())
            .map(Some)
            .map_err(|error| CodecError::Decode { what: "wrapper", detail: error.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ProtoOAApplicationAuthReq;

    #[test]
    fn frames_split_anywhere_reassemble() {
        let auth =
            ProtoOAApplicationAuthReq { payload_type: None, client_id: "id".into(), client_secret: "sec".into() };
        let mut stream = encode_message(&auth, Some("a".into())).unwrap();
        stream.extend(encode_message(&auth, None).unwrap());
        for cut in 0..stream.len() {
            let mut decoder = FrameDecoder::new();
            let mut seen = Vec::new();
            for part in [&stream[..cut], &stream[cut..]] {
                decoder.extend(part);
                while let Some(message) = decoder.next_message().unwrap() {
                    seen.push(message.client_msg_id.clone());
                }
            }
            assert_eq!(seen, vec![Some("a".to_owned()), None], "cut at {cut}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn an_oversized_length_is_refused_before_buffering() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decoder.next_message(), Err(CodecError::FrameTooLong { len: 0xffff_ffff, max: FRAME_LEN_MAX }));
    }
}
