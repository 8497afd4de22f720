//! One HTTPS GET, for an OIDC provider's key set: HTTP/1.1 over tokio-rustls (the ring
//! provider; the public web roots, or one configured CA instead), the whole exchange under a
//! timeout, the answer bounded in size. Redirects are not followed: `jwks_url` names the
//! document itself.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use url::{Host, Url};

/// Largest answer read, headers included. Key sets are a few KiB.
pub(crate) const RESPONSE_MAX_BYTES: usize = 256 * 1024;

/// A client for HTTPS GETs.
pub(crate) struct HttpsClient {
    connector: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl HttpsClient {
    /// Trusting the certificates in `ca_file` (PEM) only, or the public web roots without.
    pub(crate) fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    roots.add(cert).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!("ca_file {} holds no certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS versions: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), timeout })
    }

    /// The body of a `200 OK` answer to `GET url`.
    pub(crate) async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(self.timeout, self.exchange(url)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no complete answer in {} ms", self.timeout.as_millis())),
        }
    }

    async fn exchange(&self, url: &Url) -> Result<Vec<u8>, String> {
        if url.scheme() != "https" {
            return Err(format!("`{url}` is not an https:// URL"));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let (server_name, stream) = match url.host() {
            Some(Host::Domain(name)) => {
                let server_name = ServerName::try_from(name.to_owned()).map_err(|e| format!("host `{name}`: {e}"))?;
                (server_name, tokio::net::TcpStream::connect((name, port)).await)
            }
            Some(Host::Ipv4(ip)) => {
                (ServerName::from(std::net::IpAddr::V4(ip)), tokio::net::TcpStream::connect((ip, port)).await)
            }
            Some(Host::Ipv6(ip)) => {
                (ServerName::from(std::net::IpAddr::V6(ip)), tokio::net::TcpStream::connect((ip, port)).await)
            }
            None => return Err(format!("`{url}` names no host")),
        };
        let host = url.host_str().unwrap_or_default();
        let stream = stream.map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let mut tls =
            self.connector.connect(server_name, stream).await.map_err(|e| format!("TLS with {host}:{port}: {e}"))?;
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nAccept-Encoding: \
             identity\r\nUser-Agent: mirror-engine\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(request.as_bytes()).await.map_err(|e| format!("sending to {host}:{port}: {e}"))?;
        let mut received = Vec::with_capacity(8 * 1024);
        let mut chunk = [0u8; 8 * 1024];
        loop {
            if let Some(body) = complete(&received, false)? {
                return Ok(body);
            }
            let read = match tls.read(&mut chunk).await {
                Ok(read) => read,
                // A server that closes without TLS close_notify: the framing says whether
                // everything came.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(format!("reading from {host}:{port}: {e}")),
            };
            if read == 0 {
                return complete(&received, true)?
                    .ok_or_else(|| format!("{host}:{port} closed the connection before the answer was complete"));
            }
            if received.len() + read > RESPONSE_MAX_BYTES {
                return Err(format!("the answer is over {RESPONSE_MAX_BYTES} bytes"));
            }
            received.extend_from_slice(&chunk[..read]);
        }
    }
}

/// The body once `received` holds a whole answer (`eof`: nothing more will come), `None`
/// while more is to come; an error for anything but `200 OK`.
fn complete(received: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(received) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP answer: {e}")),
    };
    let code = response.code.unwrap_or(0);
    if code != 200 {
        let location = header(response.headers, "location").map(|l| format!(" (to {l}; redirects are not followed)"));
        return Err(format!("HTTP {code} {}{}", response.reason.unwrap_or(""), location.unwrap_or_default()));
    }
    let body = &received[head_len..];
    if header(response.headers, "transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return dechunk(body);
    }
    if let Some(length) = header(response.headers, "content-length") {
        let length: usize = length.trim().parse().map_err(|_| format!("Content-Length `{length}` is not a number"))?;
        return match body.len() {
            n if n >= length => Ok(Some(body[..length].to_vec())),
            _ => Ok(None),
        };
    }
    Ok(eof.then(|| body.to_vec()))
}

fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h str> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).and_then(|h| std::str::from_utf8(h.value).ok())
}

/// A chunked body (RFC 9112 §7.1) once its last chunk has come.
fn dechunk(mut body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&body[..line_end]).map_err(|_| "a chunk size is not text".to_owned())?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size `{size}` is not hexadecimal"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            // Trailers, if any, are not read: the body is whole.
            return Ok(Some(out));
        }
        if body.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(complete(whole, false).unwrap().unwrap(), b"hello");
        assert_eq!(complete(&whole[..whole.len() - 1], false).unwrap(), None);
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-", false).unwrap(), None);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(complete(chunked, false).unwrap().unwrap(), b"abcde");
        assert_eq!(complete(&chunked[..chunked.len() - 7], false).unwrap(), None);
        let until_close = b"HTTP/1.1 200 OK\r\n\r\n{}";
        assert_eq!(complete(until_close, false).unwrap(), None);
        assert_eq!(complete(until_close, true).unwrap().unwrap(), b"{}");
        let moved = b"HTTP/1.1 301 Moved Permanently\r\nLocation: https://elsewhere/\r\n\r\n";
        assert_eq!(
            complete(moved, false).unwrap_err(),
            "HTTP 301 Moved Permanently (to https://elsewhere/; redirects are not followed)"
        );
        assert!(complete(b"SSH-2.0-OpenSSH\r\n\r\n", false).unwrap_err().starts_with("not an HTTP answer"));
    }
}
