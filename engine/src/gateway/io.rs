//! Frames over QUIC streams, every await bounded by a timeout.

use std::time::Duration;

use mirror_wire::{FRAME_HEADER_LEN, FrameError, Message, decode_aligned, encode_frame, payload_buffer, payload_len};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Nothing (or not all of it) came in time.
    #[error("timed out after {0:?} waiting for a {1} frame")]
    Timeout(Duration, &'static str),
    /// The peer finished the stream before any frame.
    #[error("the stream ended before a {0} frame")]
    Ended(&'static str),
    /// The stream or connection failed.
    #[error("stream: {0}")]
    Stream(String),
}

impl StreamError {
    /// Whether the peer sent something wrong (answered with an error) rather than went away.
    pub(super) fn is_bad_frame(&self) -> bool {
        matches!(self, Self::Frame(_) | Self::Timeout(..))
    }
}

async fn read_exact<M: Message>(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    expected: usize,
) -> Result<(), StreamError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            Err(FrameError::Truncated { message: M::NAME, expected, got }.into())
        }
        Err(quinn::ReadExactError::ReadError(error)) => Err(StreamError::Stream(error.to_string())),
    }
}

/// Reads one frame: the header, the size check, the payload, the validation.
pub(super) async fn read_frame<M: Message>(recv: &mut quinn::RecvStream, limit: Duration) -> Result<M, StreamError> {
    let read = async {
        let mut header = [0u8; FRAME_HEADER_LEN];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(StreamError::Ended(M::NAME)),
            Err(quinn::ReadExactError::FinishedEarly(got)) => {
                return Err(FrameError::Truncated { message: M::NAME, expected: FRAME_HEADER_LEN, got }.into());
            }
            Err(quinn::ReadExactError::ReadError(error)) => return Err(StreamError::Stream(error.to_string())),
        }
        let len = payload_len::<M>(header)?;
        let mut payload = payload_buffer(len);
        read_exact::<M>(recv, &mut payload, len).await?;
        Ok(decode_aligned::<M>(&payload)?)
    };
    tokio::time::timeout(limit, read).await.map_err(|_| StreamError::Timeout(limit, M::NAME))?
}

/// Writes one frame.
pub(super) async fn write_frame<M: Message>(
    send: &mut quinn::SendStream,
    message: &M,
    limit: Duration,
) -> Result<(), StreamError> {
    let frame = encode_frame(message)?;
    write_bytes(send, &frame, limit, M::NAME).await
}

/// Writes bytes already framed.
pub(super) async fn write_bytes(
    send: &mut quinn::SendStream,
    frame: &[u8],
    limit: Duration,
    what: &'static str,
) -> Result<(), StreamError> {
    match tokio::time::timeout(limit, send.write_all(frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(StreamError::Stream(error.to_string())),
        Err(_) => Err(StreamError::Timeout(limit, what)),
    }
}
