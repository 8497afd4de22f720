//! Errors of the session, and how cTrader's error codes map onto Mirror's refusals.

use std::time::Duration;

use mirror_connector::{ConnectorError, RejectCode, RejectReason};

use crate::codec::CodecError;

/// A session operation that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CtraderError {
    /// The TLS client could not be set up (bad certificate, bad server name).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// No answer in time. `sent` says whether the request had reached the socket.
    #[error("no answer to {operation} within {timeout:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// How long was waited.
        timeout: Duration,
        /// Whether the request was written to the socket (then its outcome is unknown).
        sent: bool,
    },
    /// The connection dropped before the answer came.
    #[error("connection lost during {operation} (request sent: {sent})")]
    ConnectionLost {
        /// The operation.
        operation: &'static str,
        /// Whether the request was written to the socket (then its outcome is unknown).
        sent: bool,
    },
    /// The server said no, with cTrader's error code (`CH_ACCESS_TOKEN_INVALID`, ...).
    #[error("{operation} refused by the server: {code}: {description}")]
    Refused {
        /// The operation.
        operation: &'static str,
        /// cTrader's error code name.
        code: String,
        /// The server's words.
        description: String,
    },
    /// The request queue of this account is full; nothing was sent.
    #[error("request queue full ({capacity} waiting); nothing was sent")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// A frame that could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The server answered with something that does not fit the request.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The session was shut down, or its credentials were refused for good.
    #[error("the session is down: {0}")]
    Down(String),
}

impl CtraderError {
    /// Whether the request may have been executed by the server.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { sent: true, .. } | Self::ConnectionLost { sent: true, .. })
    }

    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::ConnectionLost { .. } | Self::QueueFull { .. } => true,
            Self::Refused { code, .. } => reject_code(code).retryable() || code == "REQUEST_FREQUENCY_EXCEEDED",
            Self::Tls(_) | Self::Codec(_) | Self::Protocol(_) | Self::Down(_) => false,
        }
    }
}

/// Error codes that mean the credentials or the account's authorisation are at fault.
const AUTH_CODES: [&str; 9] = [
    "OA_AUTH_TOKEN_EXPIRED",
    "ACCOUNT_NOT_AUTHORIZED",
    "CH_CLIENT_AUTH_FAILURE",
    "CH_CLIENT_NOT_AUTHENTICATED",
    "CH_ACCESS_TOKEN_INVALID",
    "CH_CTID_TRADER_ACCOUNT_NOT_FOUND",
    "CH_OA_CLIENT_NOT_FOUND",
    "CHANNEL_IS_BLOCKED",
    "CONNECTIONS_LIMIT_EXCEEDED",
];

/// Whether a cTrader error code is about credentials or authorisation.
pub(crate) fn is_auth_code(code: &str) -> bool {
    AUTH_CODES.contains(&code)
}

/// Mirror's refusal code for a cTrader error code (`ProtoOAErrorCode` / `ProtoErrorCode`
/// names, as they travel in `errorCode`).
pub fn reject_code(code: &str) -> RejectCode {
    match code {
        "TRADING_BAD_VOLUME" => RejectCode::InvalidQty,
        "TRADING_BAD_PRICES" | "TRADING_BAD_EXPIRATION_DATE" | "INCORRECT_BOUNDARIES" => RejectCode::InvalidPrice,
        "TRADING_BAD_STOPS" | "PROTECTION_IS_TOO_CLOSE_TO_MARKET" | "WORSE_GSL_NOT_ALLOWED" => RejectCode::InvalidStops,
        "NOT_ENOUGH_MONEY" | "MAX_EXPOSURE_REACHED" | "TOO_MANY_POSITIONS" => RejectCode::InsufficientMargin,
        "MARKET_CLOSED" | "SYMBOL_HAS_HOLIDAY" | "NO_QUOTES" | "SERVER_IS_UNDER_MAINTENANCE" => {
            RejectCode::MarketClosed
        }
        "REQUEST_FREQUENCY_EXCEEDED" => RejectCode::RateLimited,
        "POSITION_NOT_FOUND" | "ORDER_NOT_FOUND" | "POSITION_NOT_OPEN" | "ENTITY_NOT_FOUND" => RejectCode::NotFound,
        "SYMBOL_NOT_FOUND" | "UNKNOWN_SYMBOL" => RejectCode::UnknownSymbol,
        "TRADING_DISABLED" | "TRADING_NOT_ALLOWED" | "SHORT_SELLING_NOT_ALLOWED" | "POSITION_LOCKED" => {
            RejectCode::TradingDisabled
        }
        _ => RejectCode::Other,
    }
}

impl CtraderError {
    /// The same failure in the `Connector` trait's terms.
    pub(crate) fn into_connector(self) -> ConnectorError {
        match self {
            Self::Timeout { operation, timeout, sent: true } => ConnectorError::Timeout { operation, timeout },
            Self::ConnectionLost { operation, sent: true } => {
                ConnectorError::ConnectionLost { operation, detail: "the connection dropped before the answer".into() }
            }
            Self::Timeout { sent: false, .. } | Self::ConnectionLost { sent: false, .. } | Self::Down(_) => {
                ConnectorError::NotConnected
            }
            Self::Refused { code, description, .. } if is_auth_code(&code) => {
                ConnectorError::Auth(format!("{code}: {description}"))
            }
            Self::Refused { code, description, .. } => {
                ConnectorError::Rejected(RejectReason::new(reject_code(&code), format!("{code}: {description}")))
            }
            Self::QueueFull { capacity } => ConnectorError::Rejected(RejectReason::new(
                RejectCode::RateLimited,
                format!("{capacity} requests already wait for this account; nothing was sent"),
            )),
            Self::Tls(detail) | Self::Protocol(detail) => ConnectorError::Protocol(detail),
            Self::Codec(error) => ConnectorError::Protocol(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trading_codes_map_to_mirror_refusals() {
        assert_eq!(reject_code("TRADING_BAD_VOLUME"), RejectCode::InvalidQty);
        assert_eq!(reject_code("POSITION_NOT_FOUND"), RejectCode::NotFound);
        assert_eq!(reject_code("REQUEST_FREQUENCY_EXCEEDED"), RejectCode::RateLimited);
        assert_eq!(reject_code("SOMETHING_NEW"), RejectCode::Other);
    }

    #[test]
    fn only_sent_requests_have_an_unknown_outcome() {
        let lost = CtraderError::ConnectionLost { operation: "place", sent: true };
        assert!(lost.outcome_unknown() && lost.into_connector().outcome_unknown());
        let queued = CtraderError::ConnectionLost { operation: "place", sent: false };
        assert_eq!(queued.into_connector(), ConnectorError::NotConnected);
    }
}
