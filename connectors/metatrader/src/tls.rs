//! The bridge's TLS identity (rustls on the ring provider).
//!
//! MQL5's `SocketTlsHandshake` runs on the terminal's Windows TLS stack; whether it accepts a
//! certificate that no Windows root trusts has not been verified here. The EA therefore pins
//! the certificate by its SHA-1 thumbprint (what `SocketTlsCertificate` reports), which
//! [`TlsIdentity::thumbprint_sha1`] prints for the operator to paste into the EA's inputs.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::BridgeError;

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

/// The ring provider, the only one compiled in.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsIdentity {
    /// A self-signed certificate for these host names or IP addresses (what a terminal dials).
    pub fn self_signed(names: &[&str]) -> Result<Self, BridgeError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names).map_err(|e| BridgeError::Tls(e.to_string()))?;
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
            .map_err(|e| BridgeError::Tls(e.to_owned()))?;
        Ok(Self { chain: vec![generated.cert.der().clone()], key })
    }

    /// A chain and key from PEM text (leaf first).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, BridgeError> {
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BridgeError::Tls(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(BridgeError::Tls("the certificate PEM holds no certificate".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| BridgeError::Tls(format!("key PEM: {e}")))?;
        Ok(Self { chain, key })
    }

    /// The leaf certificate, DER (for a client to trust it).
    pub fn certificate_der(&self) -> &[u8] {
        self.chain[0].as_ref()
    }

    /// The leaf certificate's SHA-1 thumbprint in upper-case hex, as Windows and MQL5's
    /// `SocketTlsCertificate` show it: the value for the EA's `CertThumbprint` input.
    pub fn thumbprint_sha1(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, self.certificate_der());
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
    }

    pub(crate) fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, BridgeError> {
        // TLS 1.2 stays enabled: terminals on older Windows builds negotiate nothing newer.
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| BridgeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| BridgeError::Tls(e.to_string()))?;
        Ok(Arc::new(config))
    }
}
