//! `[ctrader.<session>]`: one cTrader Open API connection carrying every account that names
//! it.

use std::path::Path;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mirror_connector_ctrader::{CtraderSession, SessionConfig, TlsTrust, Tokens};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::CtraderCredentials;
use crate::config::ResolvedCtrader;

/// The session of `[ctrader.<name>]`: its endpoint, the certificates it trusts, its
/// application credentials and tokens. Nothing connects until an account does.
pub(crate) fn open_session(session: &ResolvedCtrader, secrets: CtraderCredentials) -> anyhow::Result<CtraderSession> {
    let tokens = Tokens {
        access_token: secrets.access_token.expose().to_owned(),
        refresh_token: secrets.refresh_token.as_ref().map(|s| s.expose().to_owned()),
        expires_in_s: None,
    };
    let mut config = SessionConfig::new(
        session.endpoint.host(),
        session.endpoint.port(),
        secrets.client_id.expose(),
        secrets.client_secret.expose(),
        tokens,
    );
    if let Some(name) = &session.server_name {
        config.server_name.clone_from(name);
    }
    if let Some(path) = &session.ca_file {
        config.trust = TlsTrust::Certificates(read_certificates(path)?);
    }
    Ok(CtraderSession::new(config)?)
}

/// Every certificate (DER) in a PEM file.
pub(crate) fn read_certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path).with_context(|| format!("reading ca_file {}", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| anyhow::anyhow!("ca_file {}: not PEM certificates: {error}", path.display()))?;
    anyhow::ensure!(!certificates.is_empty(), "ca_file {}: holds no certificate", path.display());
    Ok(certificates)
}

/// A DER certificate as PEM text.
pub(crate) fn certificate_pem(der: &[u8]) -> String {
    let encoded = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_written_as_pem_reads_back() {
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let pem = certificate_pem(&der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, format!("{pem}{pem}")).unwrap();
        assert_eq!(read_certificates(&path).unwrap(), vec![der.clone(), der]);
        std::fs::write(&path, "no certificate here\n").unwrap();
        assert!(read_certificates(&path).unwrap_err().to_string().contains("holds no certificate"));
    }
}
