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

/// The names connectors give their operations (what a timeout or a lost connection
/// interrupted), so that a journaled error reads back as the same static name.
const OPERATIONS: [&str; 14] = [
    "connect",
    "disconnect",
    "instruments",
    "account",
    "place",
    "close",
    "modify",
    "cancel",
    "open_positions",
    "open_orders",
    "order_history",
    "subscribe_quotes",
    "authenticate",
    "reconcile",
];

fn operation_name(name: &str) -> &'static str {
    OPERATIONS.iter().find(|known| **known == name).copied().unwrap_or("call")
}

/// The serialized form of a [`ConnectorError`] (errors are journaled with the outcomes they
/// end, and must read back the same).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
enum Wire {
    Rejected { reason: RejectReason },
    NotConnected,
    Auth { detail: String },
    Timeout { operation: String, timeout_ms: u64 },
    ConnectionLost { operation: String, detail: String },
    Protocol { detail: String },
    Unsupported { detail: String },
}

impl serde::Serialize for ConnectorError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self.clone() {
            Self::Rejected(reason) => Wire::Rejected { reason },
            Self::NotConnected => Wire::NotConnected,
            Self::Auth(detail) => Wire::Auth { detail },
            Self::Timeout { operation, timeout } => Wire::Timeout {
                operation: operation.to_owned(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            Self::ConnectionLost { operation, detail } => {
                Wire::ConnectionLost { operation: operation.to_owned(), detail }
            }
            Self::Protocol(detail) => Wire::Protocol { detail },
            Self::Unsupported(detail) => Wire::Unsupported { detail },
        };
        wire.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for ConnectorError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Wire::deserialize(deserializer)? {
            Wire::Rejected { reason } => Self::Rejected(reason),
            Wire::NotConnected => Self::NotConnected,
            Wire::Auth { detail } => Self::Auth(detail),
            Wire::Timeout { operation, timeout_ms } => {
                Self::Timeout { operation: operation_name(&operation), timeout: Duration::from_millis(timeout_ms) }
            }
            Wire::ConnectionLost { operation, detail } => {
                Self::ConnectionLost { operation: operation_name(&operation), detail }
            }
            Wire::Protocol { detail } => Self::Protocol(detail),
            Wire::Unsupported { detail } => Self::Unsupported(detail),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::RejectCode;

    #[test]
    fn errors_read_back_the_same() {
        let errors = [
            ConnectorError::Rejected(RejectReason::new(RejectCode::InvalidQty, "0.015 is off the step")),
            ConnectorError::NotConnected,
            ConnectorError::Auth("token expired".into()),
            ConnectorError::Timeout { operation: "place", timeout: Duration::from_millis(5_000) },
            ConnectorError::ConnectionLost { operation: "close", detail: "reset by peer".into() },
            ConnectorError::Protocol("bad frame".into()),
            ConnectorError::Unsupported("stop-limit".into()),
        ];
        for error in errors {
            let text = serde_json::to_string(&error).unwrap();
            assert_eq!(serde_json::from_str::<ConnectorError>(&text).unwrap(), error, "{text}");
        }
    }
}
