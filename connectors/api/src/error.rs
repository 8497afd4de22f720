//! Errors a connector returns, with what a caller can do about them.

use std::time::Duration;

use crate::types::RejectReason;

/// A connector call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// The broker refused the request; nothing was done.
    #[error("refused by the broker: {0}")]
    Rejected(RejectReason),
    /// Not connected: the request was not sent.
    #[error("not connected to the broker")]
    NotConnected,
    /// Credentials refused.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// No answer in time. For a request that was sent, the outcome is unknown.
    #[error("no answer to {operation} within {timeout:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// How long was waited.
        timeout: Duration,
    },
    /// The connection dropped after the request was sent: the outcome is unknown.
    #[error("connection lost during {operation}: {detail}")]
    ConnectionLost {
        /// The operation.
        operation: &'static str,
        /// What happened.
        detail: String,
    },
    /// The broker sent something the connector does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connector cannot express the request on this platform.
    #[error("not supported by this platform: {0}")]
    Unsupported(String),
}

impl ConnectorError {
    /// Whether the request may have reached the broker and been executed. Such an order is
    /// kept in flight (never assumed rejected) until reconciliation with the broker decides.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::ConnectionLost { .. })
    }

    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Rejected(reason) => reason.code.retryable(),
            Self::NotConnected | Self::Timeout { .. } | Self::ConnectionLost { .. } => true,
            Self::Auth(_) | Self::Protocol(_) | Self::Unsupported(_) => false,
        }
    }
}
