//! A state subscription that survives lost connections: it remembers the last sequence number
//! it delivered and, after a reconnect, asks for what followed it.

use std::time::Duration;

use mirror_wire::proto::{Deltas, Request, ResumeFrom, Snapshot, StateFrame, Subscribe};

use crate::io::read_frame;
use crate::{Client, SdkError};

/// What a subscription delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateUpdate {
    /// Start from this state (every earlier delta is in it).
    Snapshot(Box<Snapshot>),
    /// What changed next: numbers `first_seq ..= last_seq`, following the previous update.
    Deltas(Deltas),
    /// Nothing changed; the stream is alive.
    Heartbeat {
        /// Epoch.
        epoch: u64,
        /// The latest number.
        seq: u64,
    },
    /// The stream was lost and opened again after `attempts` tries, resuming after the last
    /// number delivered; the next update is the deltas that followed (or a snapshot, if the
    /// server no longer had them).
    Reconnected {
        /// Tries it took.
        attempts: u32,
    },
}

/// A state stream. [`Subscription::next`] reconnects by itself.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    topics: u32,
    stream: Option<(quinn::SendStream, quinn::RecvStream)>,
    position: Option<ResumeFrom>,
}

impl Subscription {
    pub(crate) async fn open(client: Client, topics: u32) -> Result<Self, SdkError> {
        let mut subscription = Self { client, topics, stream: None, position: None };
        subscription.start().await?;
        Ok(subscription)
    }

    /// The epoch and last sequence number delivered.
    pub fn position(&self) -> Option<ResumeFrom> {
        self.position
    }

    async fn start(&mut self) -> Result<(), SdkError> {
        let request = Request::Subscribe(Subscribe { topics: self.topics, resume: self.position });
        self.stream = Some(self.client.send_request(&request).await?);
        Ok(())
    }

    /// Opens the stream again, with backoff; how many tries it took.
    async fn restart(&mut self) -> Result<u32, SdkError> {
        let backoff = self.client.config().backoff;
        let mut wait = backoff.min;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.start().await {
                Ok(()) => return Ok(attempts),
                Err(error @ (SdkError::Unauthorized(_) | SdkError::Version { .. } | SdkError::Config(_))) => {
                    return Err(error);
                }
                Err(error) if backoff.attempts > 0 && attempts >= backoff.attempts => return Err(error),
                Err(error) => {
                    tracing::info!(%error, attempts, "mirror-sdk: state stream not reopened yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(backoff.max.max(Duration::from_millis(1)));
                }
            }
        }
    }

    /// The next update. A lost stream or connection is reopened (with backoff) and resumed
    /// after the last number delivered; only an unrecoverable error (the token refused) ends
    /// the subscription.
    pub async fn next(&mut self) -> Result<StateUpdate, SdkError> {
        let limit = self.client.config().stream_timeout;
        loop {
            let Some((_, recv)) = self.stream.as_mut() else {
                let attempts = self.restart().await?;
                return Ok(StateUpdate::Reconnected { attempts });
            };
            match read_frame::<StateFrame>(recv, limit, "state").await {
                Ok(StateFrame::Snapshot(snapshot)) => {
                    self.position = Some(ResumeFrom { epoch: snapshot.epoch, seq: snapshot.seq });
                    return Ok(StateUpdate::Snapshot(Box::new(snapshot)));
                }
                Ok(StateFrame::Deltas(deltas)) => {
                    if let Some(position) = self.position
                        && (deltas.epoch != position.epoch || deltas.first_seq != position.seq + 1)
                    {
                        // Should not happen; resume from what was delivered.
                        self.stream = None;
                        return Err(SdkError::Gap { expected: position.seq + 1, got: deltas.first_seq });
                    }
                    self.position = Some(ResumeFrom { epoch: deltas.epoch, seq: deltas.last_seq });
                    return Ok(StateUpdate::Deltas(deltas));
                }
                Ok(StateFrame::Heartbeat { epoch, seq }) => return Ok(StateUpdate::Heartbeat { epoch, seq }),
                Err(error @ (SdkError::Connection { .. } | SdkError::Timeout { .. } | SdkError::Frame(_))) => {
                    tracing::info!(%error, "mirror-sdk: state stream lost; resuming");
                    self.stream = None;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
