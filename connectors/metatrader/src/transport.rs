//! Frames over a byte stream (plain TCP or TLS), both directions, with sequence checks and a
//! timeout on every write. Shared by the bridge and the terminal simulator.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::protocol::{Frame, FrameDecoder, Message, ProtocolError, encode};

/// Any stream a session runs on.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    /// The peer closed the connection.
    #[error("the peer closed the connection")]
    Closed,
    /// A read or write failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// Nothing arrived, or a write did not complete, in time.
    #[error("{0}")]
    Timeout(String),
    /// The peer broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The peer said something out of place.
    #[error("{0}")]
    Unexpected(String),
}

impl From<std::io::Error> for LinkError {
    fn from(error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::UnexpectedEof { Self::Closed } else { Self::Io(error.to_string()) }
    }
}

/// Reads frames of one direction; checks that their sequence numbers run 1, 2, 3, ….
pub(crate) struct FrameReader<R, M> {
    inner: R,
    decoder: FrameDecoder,
    decode: fn(&[u8]) -> Result<Frame<M>, ProtocolError>,
    chunk: Box<[u8]>,
    next_seq: u64,
}

impl<R: AsyncRead + Unpin, M> FrameReader<R, M> {
    pub(crate) fn new(inner: R, max: usize, decode: fn(&[u8]) -> Result<Frame<M>, ProtocolError>) -> Self {
        Self { inner, decoder: FrameDecoder::new(max), decode, chunk: vec![0; 16 * 1024].into(), next_seq: 1 }
    }

    /// The next frame. Cancel-safe: bytes read are kept in the decoder.
    pub(crate) async fn next(&mut self) -> Result<M, LinkError> {
        loop {
            if let Some(payload) = self.decoder.next_payload()? {
                let frame = (self.decode)(&payload)?;
                if frame.seq != self.next_seq {
                    return Err(ProtocolError::Sequence { expected: self.next_seq, got: frame.seq }.into());
                }
                self.next_seq += 1;
                return Ok(frame.message);
            }
            let read = self.inner.read(&mut self.chunk).await?;
            if read == 0 {
                return Err(LinkError::Closed);
            }
            self.decoder.push(&self.chunk[..read]);
        }
    }

    /// The next frame, or a timeout after `limit` (`what` names the wait in the error).
    pub(crate) async fn next_within(&mut self, limit: Duration, what: &str) -> Result<M, LinkError> {
        tokio::time::timeout(limit, self.next())
            .await
            .unwrap_or_else(|_| Err(LinkError::Timeout(format!("no {what} within {limit:?}"))))
    }
}

/// Writes frames of one direction, numbering them.
pub(crate) struct FrameWriter<W> {
    inner: W,
    max: usize,
    write_timeout: Duration,
    next_seq: u64,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub(crate) fn new(inner: W, max: usize, write_timeout: Duration) -> Self {
        Self { inner, max, write_timeout, next_seq: 1 }
    }

    pub(crate) async fn send(&mut self, message: &impl Message) -> Result<(), LinkError> {
        let frame = encode(message, self.next_seq, self.max)?;
        self.next_seq += 1;
        let write = async {
            self.inner.write_all(&frame).await?;
            self.inner.flush().await
        };
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(LinkError::Timeout(format!(
                "a `{}` frame was not written within {:?}",
                message.tag(),
                self.write_timeout
            ))),
        }
    }

    /// Closes the write side (a TLS close_notify first), under the write timeout.
    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.write_timeout, self.inner.shutdown()).await;
    }
}

/// Unix milliseconds now (for `ping` and the simulator's time stamps).
pub(crate) fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
