//! TLS for both ends, on rustls with the ring provider only.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::CtraderError;

/// Which server certificates the client accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsTrust {
    /// The public web PKI (Mozilla's roots): what Spotware's endpoints present.
    PublicRoots,
    /// Only certificates issued by (or equal to) these DER certificates: a simulator's
    /// self-signed certificate, a proxy's private CA.
    Certificates(Vec<Vec<u8>>),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for a trust choice.
pub(crate) fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, CtraderError> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        TlsTrust::PublicRoots => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsTrust::Certificates(certificates) => {
            for der in certificates {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(|error| CtraderError::Tls(format!("trusted certificate refused: {error}")))?;
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| CtraderError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A self-signed certificate for `names` and the server configuration presenting it.
/// Returns the certificate's DER for clients to trust.
pub(crate) fn self_signed_server(names: &[&str]) -> Result<(Arc<rustls::ServerConfig>, Vec<u8>), CtraderError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let certified = rcgen::generate_simple_self_signed(names).map_err(|error| CtraderError::Tls(error.to_string()))?;
    let certificate = certified.cert.der().to_vec();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| CtraderError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(certificate.clone())], key)
        .map_err(|error| CtraderError::Tls(error.to_string()))?;
    Ok((Arc::new(config), certificate))
}
