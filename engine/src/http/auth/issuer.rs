//! The built-in issuer: OAuth2 client credentials (RFC 6749 §4.4) for the clients listed in
//! `[[http.auth.clients]]`, access tokens signed with an Ed25519 key (EdDSA) generated at first
//! start and kept in `<state_dir>/oauth-signing-key.pem` (PKCS#8, mode 0600), its public key
//! published as a JWK Set with an OIDC discovery document, so that anything that reads an OIDC
//! provider can read Mirror's.
//!
//! Tokens (RFC 9068 shape, `typ: at+jwt`) carry `iss`, `sub` (the client id), `aud`, `iat`,
//! `nbf`, `exp`, `jti`, `client_id`, `role` and `scope` (the role's name). A client may ask for
//! a lower role than its own with `scope` (least privilege), never a higher one.

use std::fs;
use std::path::Path;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SecureRandom as _;
use ring::signature::KeyPair as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use super::jwks::thumbprint;
use super::jwt::VerifyingKey;
use super::{AuthClient, Role};
use crate::http::State;
use crate::http::limits::Route;
use crate::http::problem::Problem;

/// The signing key's file in the state directory.
pub(crate) const KEY_FILE: &str = "oauth-signing-key.pem";

/// The token endpoint's path, and the key set's.
pub(crate) const TOKEN_PATH: &str = "/oauth/token";
pub(crate) const JWKS_PATH: &str = "/oauth/jwks.json";

/// A client of the issuer: its secret kept as a SHA-256 digest, compared in constant time.
struct Client {
    id: String,
    digest: [u8; 32],
    role: Role,
}

/// The issuer: its identity, key and clients.
pub(crate) struct Issuer {
    id: String,
    audience: String,
    ttl_s: i64,
    signing: jsonwebtoken::EncodingKey,
    key: VerifyingKey,
    jwk: Value,
    clients: Vec<Client>,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("id", &self.id).field("kid", &self.key.kid).finish_non_exhaustive()
    }
}

impl Issuer {
    /// Loads the signing key from `state_dir`, or generates and keeps one there.
    pub(crate) fn open(
        id: String,
        audience: String,
        ttl_s: i64,
        clients: &[AuthClient],
        state_dir: &Path,
    ) -> Result<Self, String> {
        let pkcs8 = load_or_generate(&state_dir.join(KEY_FILE))?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| format!("{}: not an Ed25519 PKCS#8 key: {e}", state_dir.join(KEY_FILE).display()))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let kid = thumbprint(&[("crv", "Ed25519"), ("kty", "OKP"), ("x", &x)]);
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" });
        let key = VerifyingKey::ed25519(Some(kid), pair.public_key().as_ref());
        let clients = clients
            .iter()
            .map(|c| Client {
                id: c.client_id.clone(),
                digest: crate::gateway::token_digest(c.secret.expose().as_bytes()),
                role: c.role,
            })
            .collect();
        let signing = jsonwebtoken::EncodingKey::from_ed_der(&pkcs8);
        Ok(Self { id, audience, ttl_s, signing, key, jwk, clients })
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn key(&self) -> &VerifyingKey {
        &self.key
    }

    pub(crate) fn ttl_s(&self) -> i64 {
        self.ttl_s
    }

    /// The client with this id and secret. Every client's digest is compared, in constant
    /// time, whether or not the id matches, so timing tells neither.
    fn client(&self, id: &str, secret: &str) -> Option<&Client> {
        let presented = crate::gateway::token_digest(secret.as_bytes());
        let mut found = None;
        for client in &self.clients {
            let secret_matches = crate::gateway::digests_equal(&client.digest, &presented);
            if secret_matches && client.id == id {
                found = Some(client);
            }
        }
        found
    }

    /// A signed access token for `client` with `role`, issued at `now_s`.
    pub(crate) fn issue(&self, client: &str, role: Role, now_s: i64) -> Result<String, String> {
        let mut jti = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut jti).map_err(|_| "no randomness for the token id".to_owned())?;
        let claims = json!({
            "iss": self.id,
            "sub": client,
            "aud": self.audience,
            "iat": now_s,
            "nbf": now_s,
            "exp": now_s + self.ttl_s,
            "jti": crate::hex::lower_hex(&jti),
            "client_id": client,
            "role": role.as_str(),
            "scope": role.as_str(),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some("at+jwt".into());
        header.kid = self.key.kid.clone();
        jsonwebtoken::encode(&header, &claims, &self.signing).map_err(|e| format!("signing the token: {e}"))
    }

    /// The JWK Set of the issuer's public key.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// The OIDC discovery document (OpenID Connect Discovery 1.0 §3).
    pub(crate) fn discovery(&self) -> Value {
        json!({
            "issuer": self.id,
            "token_endpoint": format!("{}{TOKEN_PATH}", self.id),
            "jwks_uri": format!("{}{JWKS_PATH}", self.id),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["viewer", "trader", "admin"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        })
    }
}

/// The key file's PKCS#8 bytes; a new key written there first if there is none.
fn load_or_generate(path: &Path) -> Result<Vec<u8>, String> {
    if path.exists() {
        check_private(path)?;
        let key = PrivatePkcs8KeyDer::from_pem_file(path)
            .map_err(|e| format!("{}: not a PKCS#8 private key (PEM `PRIVATE KEY`): {e}", path.display()))?;
        return Ok(key.secret_pkcs8_der().to_vec());
    }
    let document = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .map_err(|_| "no randomness to generate the issuer's key".to_owned())?;
    let encoded = STANDARD.encode(document.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    write_private(path, pem.as_bytes())?;
    tracing::info!(file = %path.display(), "generated the built-in OAuth issuer's signing key (Ed25519)");
    Ok(document.as_ref().to_vec())
}

/// Refuses a key file that group or others may read.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {mode:04o} lets group or others read the issuer's signing key; chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// Writes `bytes` to `path` readable by its owner only (0600), replaced atomically and made
/// durable, as the secrets store writes its files.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::secrets::write_atomically(path, bytes).map_err(|e| e.to_string())
}

/// An RFC 6749 §5.2 error answer.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl OAuthError {
    fn invalid_request(description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "invalid_request", description: description.into() }
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, code: "invalid_client", description: description.into() }
    }

    fn invalid_scope(description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "invalid_scope", description: description.into() }
    }

    fn response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"mirror\", charset=\"UTF-8\""));
        }
        response.json(json!({ "error": self.code, "error_description": self.description }))
    }
}

/// The request's parameters, each at most once (RFC 6749 §3.2).
fn form(request: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(format!(
            "the body must be application/x-www-form-urlencoded, got `{}`",
            if media.is_empty() { "(no Content-Type)" } else { media }
        )));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| OAuthError::invalid_request(format!("the form body cannot be read: {e}")))?;
    for (index, (name, _)) in pairs.iter().enumerate() {
        if pairs[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(OAuthError::invalid_request(format!("`{name}` is given more than once")));
        }
    }
    Ok(pairs)
}

/// One component of HTTP Basic client credentials: form-urlencoded (RFC 6749 §2.3.1).
fn basic_component(text: &str) -> Result<String, OAuthError> {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| OAuthError::invalid_client("the Basic credentials are not UTF-8 once decoded"))
}

/// The client id and secret, from HTTP Basic or the body (one of the two).
fn credentials(
    request: &HttpRequest,
    param: &dyn Fn(&str) -> Option<String>,
) -> Result<(String, crate::secrets::Secret), OAuthError> {
    let authorization = request.headers().get(header::AUTHORIZATION).map(HeaderValue::to_str);
    let basic = match authorization {
        None => None,
        Some(Err(_)) => return Err(OAuthError::invalid_client("the Authorization header is not text")),
        Some(Ok(value)) => {
            let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::invalid_client(format!(
                    "the client authenticates with HTTP Basic or client_id and client_secret in the body, not `{}`",
                    scheme.chars().take(16).collect::<String>()
                )));
            }
            let decoded = STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| OAuthError::invalid_client("the Basic credentials are not base64 of UTF-8 text"))?;
            let decoded = zeroize::Zeroizing::new(decoded);
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("the Basic credentials have no `:` between id and secret"))?;
            Some((basic_component(id)?, basic_component(secret)?))
        }
    };
    let (id, secret) = match (basic, param("client_id"), param("client_secret")) {
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "the client authenticates twice (HTTP Basic and client_secret in the body); use one",
            ));
        }
        (Some((id, _)), Some(body_id), None) if body_id != id => {
            return Err(OAuthError::invalid_request("client_id in the body is not the one in HTTP Basic"));
        }
        (Some(pair), _, None) => pair,
        (None, Some(id), Some(secret)) => (id, secret),
        (None, Some(_), None) => return Err(OAuthError::invalid_client("client_secret: missing")),
        (None, None, Some(_)) => return Err(OAuthError::invalid_client("client_id: missing")),
        (None, None, None) => {
            return Err(OAuthError::invalid_client(
                "no client credentials: send HTTP Basic, or client_id and client_secret in the body",
            ));
        }
    };
    Ok((id, crate::secrets::Secret::new(secret)))
}

/// The role a request's `scope` asks for: role names, space-separated; the highest asked
/// for, which must not be above the client's own. Without `scope`: the client's role.
fn scope_role(scope: Option<&str>, client: &Client) -> Result<Role, OAuthError> {
    let Some(scope) = scope.filter(|s| !s.trim().is_empty()) else { return Ok(client.role) };
    let mut highest = None;
    for word in scope.split_whitespace() {
        let role = Role::parse(word).ok_or_else(|| {
            OAuthError::invalid_scope(format!(
                "unknown scope `{}`; this issuer grants viewer, trader or admin",
                word.chars().take(32).collect::<String>()
            ))
        })?;
        highest = highest.max(Some(role));
    }
    let role = highest.unwrap_or(client.role);
    if role > client.role {
        return Err(OAuthError::invalid_scope(format!(
            "client `{}` may have {} at most, not {role}",
            client.id, client.role
        )));
    }
    Ok(role)
}

/// `POST /oauth/token`.
pub(crate) async fn token(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Auth)?;
    let body = state.body(payload).await?;
    let Some(issuer) = state.auth.issuer() else {
        return Ok(OAuthError::invalid_client(
            "this server issues no tokens: [http.auth] lists no [[http.auth.clients]]",
        )
        .response());
    };
    let now_s = state.engine.clock().now().unix_ms.div_euclid(1000);
    Ok(match grant(&request, &body, issuer, now_s) {
        Ok(response) => response,
        Err(error) => {
            tracing::info!(
                client_address = %State::client(&request),
                error = error.code,
                detail = %error.description,
                "token request refused"
            );
            error.response()
        }
    })
}

fn grant(request: &HttpRequest, body: &[u8], issuer: &Issuer, now_s: i64) -> Result<HttpResponse, OAuthError> {
    let pairs = form(request, body)?;
    let param = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    match param("grant_type").as_deref() {
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                code: "unsupported_grant_type",
                description: format!(
                    "grant_type `{}` is not supported; this issuer grants client_credentials only",
                    other.chars().take(64).collect::<String>()
                ),
            });
        }
        None => return Err(OAuthError::invalid_request("grant_type: missing (client_credentials expected)")),
    }
    let (id, secret) = credentials(request, &param)?;
    let Some(client) = issuer.client(&id, secret.expose()) else {
        tracing::warn!(client = %id.chars().take(64).collect::<String>(), client_address = %State::client(request),
            "token request with an unknown client or a wrong secret");
        return Err(OAuthError::invalid_client(format!(
            "client `{}`: unknown, or the secret is wrong",
            id.chars().take(64).collect::<String>()
        )));
    };
    let role = scope_role(param("scope").as_deref(), client)?;
    let token = issuer.issue(&client.id, role, now_s).map_err(|e| OAuthError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "server_error",
        description: e,
    })?;
    tracing::info!(client = %client.id, %role, "issued an access token");
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": issuer.ttl_s(),
            "scope": role.as_str(),
        })))
}

fn no_issuer() -> Problem {
    Problem::not_found("this server issues no tokens: [http.auth] lists no [[http.auth.clients]]")
}

/// `GET /oauth/jwks.json`.
pub(crate) async fn jwks(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Auth)?;
    let issuer = state.auth.issuer().ok_or_else(no_issuer)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/jwk-set+json")
        .body(issuer.jwks().to_string()))
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn discovery(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Auth)?;
    let issuer = state.auth.issuer().ok_or_else(no_issuer)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(issuer.discovery()))
}
