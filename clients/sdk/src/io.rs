//! Frames over QUIC streams, every await bounded by a timeout.

use std::time::Duration;

use mirror_wire::{FRAME_HEADER_LEN, FrameError, Message, decode_aligned, encode_frame, payload_buffer, payload_len};

use crate::SdkError;

fn lost(reason: impl std::fmt::Display, sent: bool) -> SdkError {
    SdkError::Connection { reason: reason.to_string(), sent }
}

async fn read_exact<M: Message>(recv: &mut quinn::RecvStream, buf: &mut [u8]) -> Result<(), SdkError> {
    match recv.read_exact(buf).await {
        Ok(()) => Ok(()),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            Err(FrameError::Truncated { message: M::NAME, expected: buf.len(), got }.into())
        }
        Err(quinn::ReadExactError::ReadError(error)) => Err(lost(error, true)),
    }
}

/// Reads one frame from the server, validated.
pub(crate) async fn read_frame<M: Message>(
    recv: &mut quinn::RecvStream,
    limit: Duration,
    what: &'static str,
) -> Result<M, SdkError> {
    let read = async {
        let mut header = [0u8; FRAME_HEADER_LEN];
        match recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => {
                return Err(lost(format!("the server ended the stream before {what}"), true));
            }
            Err(quinn::ReadExactError::FinishedEarly(got)) => {
                return Err(FrameError::Truncated { message: M::NAME, expected: FRAME_HEADER_LEN, got }.into());
            }
            Err(quinn::ReadExactError::ReadError(error)) => return Err(lost(error, true)),
        }
        let len = payload_len::<M>(header)?;
        let mut payload = payload_buffer(len);
        read_exact::<M>(recv, &mut payload).await?;
        Ok(decode_aligned::<M>(&payload)?)
    };
    tokio::time::timeout(limit, read).await.map_err(|_| SdkError::Timeout { what, after: limit })?
}

/// Writes one frame.
pub(crate) async fn write_frame<M: Message>(
    send: &mut quinn::SendStream,
    message: &M,
    limit: Duration,
) -> Result<(), SdkError> {
    let frame = encode_frame(message)?;
    match tokio::time::timeout(limit, send.write_all(&frame)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(lost(error, false)),
        Err(_) => Err(SdkError::Timeout { what: "the server to take the request", after: limit }),
    }
}
