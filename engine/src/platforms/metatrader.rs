//! `[metatrader]`: the bridge that every MT4/MT5 terminal's EA dials, one terminal per account.

use std::time::Duration;

use anyhow::Context as _;
use mirror_connector_metatrader::{BridgeConfig, MtBridge, TerminalConfig, TlsIdentity};

use crate::config::ResolvedBridge;

/// Longest wait for a terminal's answer to a command; kept under the engine's call timeout so
/// that the connector answers first.
const COMMAND_TIMEOUT_MAX: Duration = Duration::from_secs(4);

/// Binds the bridge and starts accepting the terminals' EAs. Returns it with its
/// certificate's SHA-1 thumbprint (the EAs' `CertThumbprint` input) when it speaks TLS.
pub(crate) async fn open_bridge(
    bridge: &ResolvedBridge,
    terminals: Vec<TerminalConfig>,
    call_timeout: Duration,
) -> anyhow::Result<(MtBridge, Option<String>)> {
    let mut config = BridgeConfig::new(bridge.listen, terminals);
    let mut thumbprint = None;
    if let Some((cert, key)) = &bridge.tls {
        let chain = std::fs::read(cert).with_context(|| format!("reading tls_cert {}", cert.display()))?;
        let private = std::fs::read(key).with_context(|| format!("reading tls_key {}", key.display()))?;
        let identity = TlsIdentity::from_pem(&chain, &private)?;
        tracing::info!(
            listen = %bridge.listen,
            thumbprint = %identity.thumbprint_sha1(),
            "MetaTrader bridge certificate: set each EA's CertThumbprint input to this thumbprint"
        );
        thumbprint = Some(identity.thumbprint_sha1());
        config.tls = Some(identity);
    }
    config.allow_plaintext = bridge.allow_plain;
    config.command_timeout = COMMAND_TIMEOUT_MAX.min(call_timeout.mul_f64(0.8));
    Ok((MtBridge::bind(config).await?, thumbprint))
}
