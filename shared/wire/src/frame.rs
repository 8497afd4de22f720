//! Length-prefixed rkyv frames: a 4-byte little-endian length, then that many bytes of one
//! archived message.
//!
//! Every frame read from outside is size-capped before anything is allocated, copied into an
//! aligned buffer, validated with bytecheck (`rkyv::from_bytes` checks every byte before it
//! deserializes) and then checked for meaning (symbols well formed, quantities positive,
//! strings within their limits). Each failure is a [`FrameError`] that names the message, the
//! length and what is wrong.

use rkyv::util::AlignedVec;

/// Bytes of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// A frame that could not be written or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more than the reader accepts.
    #[error("{message} frame of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The message expected.
        message: &'static str,
        /// Announced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A frame with a zero length prefix.
    #[error("empty {message} frame (length prefix 0)")]
    Empty {
        /// The message expected.
        message: &'static str,
    },
    /// The stream ended inside a frame.
    #[error("truncated {message} frame: expected {expected} bytes, the stream ended after {got}")]
    Truncated {
        /// The message expected.
        message: &'static str,
        /// Bytes the frame needed (header or payload).
        expected: usize,
        /// Bytes that came.
        got: usize,
    },
    /// The bytes are not a valid archive of the message (bytecheck refused them).
    #[error("invalid {message} frame ({len} bytes): {detail}")]
    Invalid {
        /// The message expected.
        message: &'static str,
        /// Payload length.
        len: usize,
        /// What the validator said.
        detail: String,
    },
    /// The archive is well formed but a field's value is not acceptable.
    #[error("{message}.{field}: {reason}")]
    Field {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Serialization failed (a bug, or a message over the sender's limit).
    #[error("could not encode a {message} frame: {detail}")]
    Encode {
        /// The message.
        message: &'static str,
        /// What went wrong.
        detail: String,
    },
}

impl FrameError {
    /// A field error.
    pub fn field(message: &'static str, field: &'static str, reason: impl Into<String>) -> Self {
        Self::Field { message, field, reason: reason.into() }
    }
}

/// A message that travels in frames. Implemented for the protocol's top-level messages.
pub trait Message: Sized {
    /// Its name in errors.
    const NAME: &'static str;
    /// The largest frame payload a reader accepts for it.
    const LEN_MAX: usize;

    /// Archives it.
    fn archive(&self) -> Result<AlignedVec, FrameError>;

    /// Validates `bytes` (aligned) with bytecheck and deserializes them.
    fn unarchive(bytes: &AlignedVec) -> Result<Self, FrameError>;

    /// Checks the values (after a successful validation). Default: nothing to check.
    fn check(&self) -> Result<(), FrameError> {
        Ok(())
    }
}

/// Implements [`Message`] for a concrete type (the rkyv bounds are spelled out once, here).
macro_rules! message {
    ($type:ty, $name:literal, $max:expr) => {
        message!($type, $name, $max, |_value: &$type| Ok(()));
    };
    ($type:ty, $name:literal, $max:expr, $check:expr) => {
        impl $crate::frame::Message for $type {
            const NAME: &'static str = $name;
            const LEN_MAX: usize = $max;

            fn archive(&self) -> Result<rkyv::util::AlignedVec, $crate::frame::FrameError> {
                rkyv::to_bytes::<rkyv::rancor::Error>(self)
                    .map_err(|e| $crate::frame::FrameError::Encode { message: $name, detail: e.to_string() })
            }

            fn unarchive(bytes: &rkyv::util::AlignedVec) -> Result<Self, $crate::frame::FrameError> {
                rkyv::from_bytes::<$type, rkyv::rancor::Error>(bytes).map_err(|e| $crate::frame::FrameError::Invalid {
                    message: $name,
                    len: bytes.len(),
                    detail: e.to_string(),
                })
            }

            fn check(&self) -> Result<(), $crate::frame::FrameError> {
                let check: fn(&$type) -> Result<(), $crate::frame::FrameError> = $check;
                check(self)
            }
        }
    };
}
pub(crate) use message;

/// One frame: the length prefix and the archived message. Refuses a message whose archive is
/// over the message's own limit (the peer would refuse it anyway).
pub fn encode_frame<M: Message>(message: &M) -> Result<Vec<u8>, FrameError> {
    let archived = message.archive()?;
    if archived.len() > M::LEN_MAX {
        return Err(FrameError::Encode {
            message: M::NAME,
            detail: format!("{} bytes is over the limit of {} bytes", archived.len(), M::LEN_MAX),
        });
    }
    let len = u32::try_from(archived.len())
        .map_err(|_| FrameError::Encode { message: M::NAME, detail: "longer than 4 GiB".into() })?;
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + archived.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&archived);
    Ok(frame)
}

/// The payload length a header announces, checked against the message's limit before anything
/// is allocated for it.
pub fn payload_len<M: Message>(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = usize::try_from(u32::from_le_bytes(header)).unwrap_or(usize::MAX);
    if len == 0 {
        return Err(FrameError::Empty { message: M::NAME });
    }
    if len > M::LEN_MAX {
        return Err(FrameError::TooLarge { message: M::NAME, len, max: M::LEN_MAX });
    }
    Ok(len)
}

/// An aligned buffer of `len` zeroes for a payload to be read into.
pub fn payload_buffer(len: usize) -> AlignedVec {
    let mut buffer = AlignedVec::with_capacity(len);
    buffer.resize(len, 0);
    buffer
}

/// Validates and checks a payload already in an aligned buffer.
pub fn decode_aligned<M: Message>(payload: &AlignedVec) -> Result<M, FrameError> {
    if payload.is_empty() {
        return Err(FrameError::Empty { message: M::NAME });
    }
    if payload.len() > M::LEN_MAX {
        return Err(FrameError::TooLarge { message: M::NAME, len: payload.len(), max: M::LEN_MAX });
    }
    let message = M::unarchive(payload)?;
    message.check()?;
    Ok(message)
}

/// Validates and checks a payload from any buffer (copied once into an aligned one).
pub fn decode_payload<M: Message>(payload: &[u8]) -> Result<M, FrameError> {
    if payload.len() > M::LEN_MAX {
        return Err(FrameError::TooLarge { message: M::NAME, len: payload.len(), max: M::LEN_MAX });
    }
    let mut aligned = AlignedVec::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    decode_aligned(&aligned)
}

/// Decodes exactly one whole frame (header and payload, nothing after it).
pub fn decode_frame<M: Message>(frame: &[u8]) -> Result<M, FrameError> {
    let mut decoder = FrameDecoder::new();
    decoder.push(frame);
    let message = decoder.next_frame::<M>()?.ok_or_else(|| decoder.truncation::<M>())?;
    if decoder.buffered() > 0 {
        return Err(FrameError::field(M::NAME, "frame", format!("{} bytes after the frame", decoder.buffered())));
    }
    Ok(message)
}

/// Splits a byte stream into frames without I/O: push what arrived, take whole frames out.
/// A header over the limit is refused as soon as its four bytes are in, before the payload.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole frame.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The next whole frame, `None` when more bytes are needed.
    pub fn next_frame<M: Message>(&mut self) -> Result<Option<M>, FrameError> {
        let Some(header) = self.buffer.first_chunk::<FRAME_HEADER_LEN>() else { return Ok(None) };
        let len = payload_len::<M>(*header)?;
        let end = FRAME_HEADER_LEN + len;
        if self.buffer.len() < end {
            return Ok(None);
        }
        let message = decode_payload::<M>(&self.buffer[FRAME_HEADER_LEN..end]);
        self.buffer.drain(..end);
        message.map(Some)
    }

    /// The error for a stream that ended now: what the frame in progress still needed.
    pub fn truncation<M: Message>(&self) -> FrameError {
        match self.buffer.first_chunk::<FRAME_HEADER_LEN>() {
            None => FrameError::Truncated { message: M::NAME, expected: FRAME_HEADER_LEN, got: self.buffer.len() },
            Some(header) => {
                let len = usize::try_from(u32::from_le_bytes(*header)).unwrap_or(usize::MAX);
                FrameError::Truncated { message: M::NAME, expected: len, got: self.buffer.len() - FRAME_HEADER_LEN }
            }
        }
    }
}
