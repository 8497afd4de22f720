//! Errors of the bridge itself (connector calls return `mirror_connector::ConnectorError`).

use std::net::SocketAddr;

/// The bridge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The configuration cannot work.
    #[error("invalid bridge configuration: {0}")]
    Config(String),
    /// A certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
}
