//! The gateway's TLS 1.3 identity (rustls on the ring provider): a configured certificate, or
//! a self-signed one generated on first run and kept, which clients pin by its SHA-256
//! fingerprint. The HTTP server's HTTPS loads its configured certificate here too.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::{GatewayError, Identity};

/// File names of the generated pair in its directory.
const GENERATED_CERT: &str = "gateway-cert.pem";
const GENERATED_KEY: &str = "gateway-key.pem";

/// Beside a generated pair: its fingerprint as clients pin it (64 hex digits and a newline),
/// so that a script can read it (`MIRROR_FINGERPRINT=$(cat data/gateway/gateway-fingerprint.txt)`).
pub const FINGERPRINT_FILE: &str = "gateway-fingerprint.txt";

/// A certificate chain and its key.
pub(crate) struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn tls_error(what: &str, error: impl std::fmt::Display) -> GatewayError {
    GatewayError::Tls(format!("{what}: {error}"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsIdentity {
    /// Loads or generates the identity.
    pub(super) fn load(identity: &Identity) -> Result<Self, GatewayError> {
        match identity {
            Identity::Files { cert, key } => Self::from_files(cert, key),
            Identity::Generated { dir, names } => {
                let (cert, key) = (dir.join(GENERATED_CERT), dir.join(GENERATED_KEY));
                let identity = if cert.exists() && key.exists() {
                    Self::from_files(&cert, &key)?
                } else {
                    Self::generate(dir, names)?
                };
                identity.write_fingerprint(dir)?;
                Ok(identity)
            }
        }
    }

    /// Writes the fingerprint file unless it already holds this fingerprint.
    fn write_fingerprint(&self, dir: &Path) -> Result<(), GatewayError> {
        let path = dir.join(FINGERPRINT_FILE);
        let line = format!("{}\n", self.fingerprint());
        if fs::read_to_string(&path).is_ok_and(|held| held == line) {
            return Ok(());
        }
        fs::write(&path, line).map_err(|e| tls_error(&format!("writing {}", path.display()), e))
    }

    /// A configured chain (leaf first) and key, PEM files.
    pub(crate) fn from_files(cert: &Path, key: &Path) -> Result<Self, GatewayError> {
        let chain_pem = fs::read(cert).map_err(|e| tls_error(&format!("reading {}", cert.display()), e))?;
        let key_pem = fs::read(key).map_err(|e| tls_error(&format!("reading {}", key.display()), e))?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error(&format!("certificate PEM {}", cert.display()), e))?;
        if chain.is_empty() {
            return Err(GatewayError::Tls(format!("{} holds no certificate", cert.display())));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| tls_error(&format!("key PEM {}", key.display()), e))?;
        Ok(Self { chain, key })
    }

    /// A new self-signed certificate for `names`, written to `dir` (the key readable by its
    /// owner only) so that the fingerprint clients pinned survives a restart.
    fn generate(dir: &Path, names: &[String]) -> Result<Self, GatewayError> {
        let names = if names.is_empty() { vec!["localhost".to_owned()] } else { names.to_vec() };
        let generated =
            rcgen::generate_simple_self_signed(names).map_err(|e| tls_error("generating a certificate", e))?;
        fs::create_dir_all(dir).map_err(|e| tls_error(&format!("creating {}", dir.display()), e))?;
        write_private(&dir.join(GENERATED_KEY), generated.signing_key.serialize_pem().as_bytes())?;
        fs::write(dir.join(GENERATED_CERT), generated.cert.pem())
            .map_err(|e| tls_error(&format!("writing {}", dir.join(GENERATED_CERT).display()), e))?;
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).map_err(|e| tls_error("key", e))?;
        tracing::info!(dir = %dir.display(), "generated the gateway's self-signed certificate");
        Ok(Self { chain: vec![generated.cert.der().clone()], key })
    }

    /// SHA-256 of the leaf certificate, lower-case hex: what clients pin.
    pub(super) fn fingerprint(&self) -> String {
        fingerprint(self.chain[0].as_ref())
    }

    /// The leaf certificate, DER.
    pub(super) fn certificate_der(&self) -> Vec<u8> {
        self.chain[0].as_ref().to_vec()
    }

    /// A TLS server configuration over TCP (TLS 1.2 and 1.3, the ring provider), offering
    /// `alpn` (for HTTPS: `http/1.1`).
    pub(crate) fn tcp_config(&self, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, GatewayError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| tls_error("TLS versions", e))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_error("certificate and key", e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A QUIC server configuration: TLS 1.3, the protocol's ALPN, and client certificates
    /// required (verified against `client_ca`) when one is given.
    pub(super) fn quic_config(&self, client_ca: Option<&Path>) -> Result<quinn::ServerConfig, GatewayError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error("TLS versions", e))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let pem = fs::read(path).map_err(|e| tls_error(&format!("reading {}", path.display()), e))?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| tls_error(&format!("client CA PEM {}", path.display()), e))?;
                    roots.add(cert).map_err(|e| tls_error("client CA", e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| tls_error("client certificate verifier", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| tls_error("certificate and key", e))?;
        config.alpn_protocols = vec![mirror_wire::proto::ALPN.to_vec()];
        let crypto =
            quinn::crypto::rustls::QuicServerConfig::try_from(config).map_err(|e| tls_error("QUIC TLS config", e))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
    }
}

/// SHA-256 of DER bytes, lower-case hex.
pub(super) fn fingerprint(der: &[u8]) -> String {
    crate::hex::lower_hex(&Sha256::digest(der))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), GatewayError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| tls_error(&format!("writing {}", path.display()), e))?;
    file.write_all(bytes).map_err(|e| tls_error(&format!("writing {}", path.display()), e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), GatewayError> {
    let mut file = fs::File::create(path).map_err(|e| tls_error(&format!("writing {}", path.display()), e))?;
    file.write_all(bytes).map_err(|e| tls_error(&format!("writing {}", path.display()), e))
}
