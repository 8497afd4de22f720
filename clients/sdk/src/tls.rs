//! How the client trusts the server: a pinned SHA-256 fingerprint of its certificate (the
//! engine's self-signed default), or a CA.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::{ClientIdentity, SdkError, Trust};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts exactly one certificate, named by its SHA-256; the handshake's signatures are still
/// verified, so only the holder of that certificate's key passes.
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if presented == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Parses a fingerprint: 64 hex digits, colons and spaces allowed.
pub(crate) fn parse_fingerprint(text: &str) -> Result<[u8; 32], SdkError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    let bad = || SdkError::Config(format!("fingerprint: expected 64 hex digits (SHA-256), got `{text}`"));
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn tls(what: &str, error: impl std::fmt::Display) -> SdkError {
    SdkError::Config(format!("{what}: {error}"))
}

/// The QUIC client configuration for this trust and identity.
pub(crate) fn client_config(
    trust: &Trust,
    identity: Option<&ClientIdentity>,
) -> Result<quinn::crypto::rustls::QuicClientConfig, SdkError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls("TLS versions", e))?;
    let builder = match trust {
        Trust::Fingerprint(text) => builder.dangerous().with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: parse_fingerprint(text)?,
            provider: provider(),
        })),
        Trust::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.map_err(|e| tls("CA PEM", e))?).map_err(|e| tls("CA certificate", e))?;
            }
            if roots.is_empty() {
                return Err(SdkError::Config("CA PEM: no certificate in it".into()));
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(&identity.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls("client certificate PEM", e))?;
            let key = PrivateKeyDer::from_pem_slice(&identity.key_pem).map_err(|e| tls("client key PEM", e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| tls("client certificate", e))?
        }
    };
    config.alpn_protocols = vec![mirror_wire::proto::ALPN.to_vec()];
    quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| tls("QUIC TLS config", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let colons: String =
            hex.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
        assert_eq!(parse_fingerprint(hex).unwrap(), parse_fingerprint(&colons.to_uppercase()).unwrap());
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }
}
