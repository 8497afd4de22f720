//! OAuth2 on the HTTP server as `mirror-engine run` starts it (`[http.auth]`): the built-in
//! issuer's `POST /oauth/token` (client credentials in the form body or HTTP Basic), its key
//! set and discovery document, `GET /api/v1/whoami` with the tokens it issues, and the API
//! closed without `[http.auth]`. Requests are plain HTTP/1.1 written over a TCP socket.

#[macro_use]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::clock::SystemClock;
use mirror_engine::config::{self, Resolved};
use mirror_engine::http::{AuthSettings, Authenticator, Principal, Role};
use mirror_engine::secrets::{CredentialVars, Secret};
use serde_json::Value;
use support::{LOCAL, Reply};

const ADMIN_SECRET: &str = "desk-admin-secret-0123456789";
const VIEWER_SECRET: &str = "desk-viewer-secret-0123456789";
const ISSUER: &str = "https://mirror.desk.test";

const CONFIG: &str = concat!(
    engine_sim!(),
    es_nq!(),
    r#"
[[accounts]]
name = "f1"
platform = "sim"
mode = "netting"
balance = 100000

[http]
listen = "127.0.0.1:0"
rate_per_second = 1
rate_burst = 100
"#
);

const AUTH: &str = r#"
[http.auth]
issuer = "https://mirror.desk.test/"
audience = "mirror"
token_ttl_s = 600

[[http.auth.clients]]
client_id = "desk-admin"
client_secret = "env:DESK_ADMIN_SECRET"
role = "admin"

[[http.auth.clients]]
client_id = "desk-viewer"
client_secret = "env:DESK_VIEWER_SECRET"
role = "viewer"
"#;

/// The configuration, its state under `dir`, with `extra` appended.
fn resolve(dir: &Path, extra: &str) -> Resolved {
    let text = format!(
        "{CONFIG}state_dir = {:?}\n{extra}\n[storage]\ndir = {:?}\n",
        dir.join("http-state").display().to_string(),
        dir.join("data").display().to_string()
    );
    config::load_str(Path::new("auth.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn vars() -> CredentialVars {
    CredentialVars::new().with("DESK_ADMIN_SECRET", ADMIN_SECRET).with("DESK_VIEWER_SECRET", VIEWER_SECRET)
}

async fn start_with(resolved: &Resolved) -> Running {
    start(resolved, StartOptions { credential_vars: Some(vars()), ..StartOptions::default() })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

async fn request(server: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let headers: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
    support::request(server, LOCAL, method, path, &headers, body.as_bytes()).await
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

async fn token_request(server: SocketAddr, headers: &[(&str, &str)], body: &str) -> Reply {
    request(server, "POST", "/oauth/token", headers, body).await
}

/// A token for `client` (form style), and its answer.
async fn token_for(server: SocketAddr, client: &str, secret: &str, scope: Option<&str>) -> (String, Value) {
    let mut body = format!("grant_type=client_credentials&client_id={client}&client_secret={secret}");
    if let Some(scope) = scope {
        body.push_str(&format!("&scope={scope}"));
    }
    let reply = token_request(server, &[FORM], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let json = reply.json();
    (json["access_token"].as_str().unwrap().to_owned(), json)
}

async fn whoami(server: SocketAddr, token: Option<&str>, query: &str) -> Reply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer.iter().map(|b| ("Authorization", b.as_str())).collect();
    request(server, "GET", &format!("/api/v1/whoami{query}"), &headers, "").await
}

fn oauth_error(reply: &Reply) -> (u16, String, String) {
    let json = reply.json();
    (reply.status, json["error"].as_str().unwrap().to_owned(), json["error_description"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn client_credentials_tokens_keys_discovery_and_whoami() {
    let dir = tempfile::tempdir().unwrap();
    let resolved = resolve(dir.path(), AUTH);
    let running = start_with(&resolved).await;
    let server = running.http_addr().unwrap();

    // Form style.
    let reply = token_request(
        server,
        &[FORM],
        &format!("grant_type=client_credentials&client_id=desk-admin&client_secret={ADMIN_SECRET}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let answer = reply.json();
    assert_eq!((answer["token_type"].as_str(), answer["expires_in"].as_i64()), (Some("Bearer"), Some(600)));
    assert_eq!(answer["scope"], "admin");
    let admin_token = answer["access_token"].as_str().unwrap().to_owned();

    // HTTP Basic, the secret form-urlencoded then base64 (RFC 6749 §2.3.1).
    let basic = format!("Basic {}", STANDARD.encode(format!("desk-viewer:{VIEWER_SECRET}")));
    let reply = token_request(server, &[FORM, ("Authorization", &basic)], "grant_type=client_credentials").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let viewer_token = reply.json()["access_token"].as_str().unwrap().to_owned();

    // Wrong secret, unknown client: 401 invalid_client with a Basic challenge.
    let reply = token_request(
        server,
        &[FORM],
        "grant_type=client_credentials&client_id=desk-admin&client_secret=not-the-secret-at-all",
    )
    .await;
    assert_eq!(
        oauth_error(&reply),
        (401, "invalid_client".into(), "client `desk-admin`: unknown, or the secret is wrong".into())
    );
    assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"mirror\", charset=\"UTF-8\""));
    let wrong_basic = format!("Basic {}", STANDARD.encode(format!("desk-viewer:{ADMIN_SECRET}")));
    let reply = token_request(server, &[FORM, ("Authorization", &wrong_basic)], "grant_type=client_credentials").await;
    assert_eq!(oauth_error(&reply).1, "invalid_client");
    let reply = token_request(
        server,
        &[FORM],
        &format!("grant_type=client_credentials&client_id=nobody&client_secret={ADMIN_SECRET}"),
    )
    .await;
    assert_eq!(oauth_error(&reply).0, 401);

    // The request itself wrong.
    let reply = token_request(server, &[FORM], "grant_type=password&username=a&password=b").await;
    assert_eq!(
        oauth_error(&reply),
        (
            400,
            "unsupported_grant_type".into(),
            "grant_type `password` is not supported; this issuer grants client_credentials only".into()
        )
    );
    let reply = token_request(server, &[FORM], "client_id=desk-admin").await;
    assert_eq!(
        oauth_error(&reply),
        (400, "invalid_request".into(), "grant_type: missing (client_credentials expected)".into())
    );
    let reply = token_request(server, &[("Content-Type", "application/json")], "{}").await;
    assert_eq!(oauth_error(&reply).2, "the body must be application/x-www-form-urlencoded, got `application/json`");
    let reply = token_request(
        server,
        &[FORM, ("Authorization", &basic)],
        &format!("grant_type=client_credentials&client_secret={VIEWER_SECRET}"),
    )
    .await;
    assert_eq!(oauth_error(&reply).1, "invalid_request");
    let reply = token_request(server, &[FORM], "grant_type=client_credentials&grant_type=client_credentials").await;
    assert_eq!(oauth_error(&reply).2, "`grant_type` is given more than once");

    // Scopes: a lower role on request, never a higher one.
    let (lowered, answer) = token_for(server, "desk-admin", ADMIN_SECRET, Some("viewer")).await;
    assert_eq!(answer["scope"], "viewer");
    let reply = token_request(
        server,
        &[FORM],
        &format!("grant_type=client_credentials&client_id=desk-viewer&client_secret={VIEWER_SECRET}&scope=admin"),
    )
    .await;
    assert_eq!(
        oauth_error(&reply),
        (400, "invalid_scope".into(), "client `desk-viewer` may have viewer at most, not admin".into())
    );
    let reply = token_request(
        server,
        &[FORM],
        &format!("grant_type=client_credentials&client_id=desk-viewer&client_secret={VIEWER_SECRET}&scope=root"),
    )
    .await;
    assert_eq!(oauth_error(&reply).2, "unknown scope `root`; this issuer grants viewer, trader or admin");

    // The key set and discovery document, as an OIDC client reads them.
    let reply = request(server, "GET", "/oauth/jwks.json", &[], "").await;
    assert_eq!(reply.status, 200);
    let jwks = reply.json();
    let jwk = &jwks["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(admin_token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!((header["alg"].as_str(), header["kid"].as_str()), (Some("EdDSA"), jwk["kid"].as_str()));
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(admin_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for name in ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "role"] {
        assert!(claims.get(name).is_some(), "no `{name}` in {claims}");
    }
    assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some(ISSUER), Some("desk-admin")));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);
    let reply = request(server, "GET", "/.well-known/openid-configuration", &[], "").await;
    assert_eq!(reply.status, 200);
    let discovery = reply.json();
    assert_eq!(discovery["issuer"], ISSUER);
    assert_eq!(discovery["token_endpoint"], format!("{ISSUER}/oauth/token"));
    assert_eq!(discovery["jwks_uri"], format!("{ISSUER}/oauth/jwks.json"));
    assert_eq!(discovery["grant_types_supported"], serde_json::json!(["client_credentials"]));

    // An authenticator built for the same configuration takes the server's tokens.
    let http = resolved.http.as_ref().unwrap();
    let secrets = vec![Secret::new(ADMIN_SECRET.into()), Secret::new(VIEWER_SECRET.into())];
    let settings = AuthSettings::from_config(http.auth.as_ref().unwrap(), secrets);
    let auth =
        Authenticator::new(settings, Some(&http.state_dir), "http://unused", Arc::new(SystemClock::new())).unwrap();
    let principal = auth.verify(Some(&format!("Bearer {admin_token}"))).await.unwrap();
    assert_eq!(
        principal,
        Principal { subject: "desk-admin".into(), role: Role::Admin, client: Some("desk-admin".into()) }
    );
    assert_eq!(auth.verify(Some(&format!("Bearer {lowered}"))).await.unwrap().role, Role::Viewer);

    // whoami: the principal, or 401 / 403 naming why.
    let reply = whoami(server, Some(&viewer_token), "").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "subject": "desk-viewer", "role": "viewer", "client": "desk-viewer" })
    );
    let reply = whoami(server, None, "").await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"mirror\""));
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    assert_eq!(reply.json()["detail"], "no Authorization header: send `Authorization: Bearer <token>`");
    let (message, signature) = viewer_token.rsplit_once('.').unwrap();
    let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
    flipped[0] ^= 0x80;
    let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(flipped));
    let reply = whoami(server, Some(&forged), "").await;
    assert_eq!(reply.status, 401);
    assert!(reply.json()["detail"].as_str().unwrap().starts_with("bad signature: "), "{}", reply.body);
    assert!(reply.header("www-authenticate").unwrap().starts_with("Bearer realm=\"mirror\", error=\"invalid_token\""));
    let reply = whoami(server, Some(&viewer_token), "?role=trader").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["detail"], "this needs the trader role; `desk-viewer` holds viewer");
    assert!(reply.header("www-authenticate").unwrap().contains("error=\"insufficient_scope\", scope=\"trader\""));
    assert_eq!(whoami(server, Some(&admin_token), "?role=admin").await.status, 200);
    assert_eq!(whoami(server, Some(&admin_token), "?role=root").await.status, 400);
    running.stop().await;

    // The signing key outlives a restart: tokens issued before are still taken.
    let running = start_with(&resolved).await;
    let server = running.http_addr().unwrap();
    assert_eq!(whoami(server, Some(&admin_token), "?role=admin").await.status, 200);
    running.stop().await;
}

#[tokio::test]
async fn without_http_auth_the_api_is_closed_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_with(&resolve(dir.path(), "")).await;
    let server = running.http_addr().unwrap();
    let reply = whoami(server, Some("a.b.c"), "").await;
    assert_eq!(reply.status, 401);
    assert!(reply.json()["detail"].as_str().unwrap().starts_with("no [http.auth] configured"), "{}", reply.body);
    let reply = token_request(server, &[FORM], "grant_type=client_credentials&client_id=a&client_secret=b").await;
    assert_eq!(
        oauth_error(&reply),
        (
            401,
            "invalid_client".into(),
            "this server issues no tokens: [http.auth] lists no [[http.auth.clients]]".into()
        )
    );
    assert_eq!(request(server, "GET", "/oauth/jwks.json", &[], "").await.status, 404);
    assert_eq!(request(server, "GET", "/api/v1/health", &[], "").await.status, 200);
    assert_eq!(request(server, "GET", "/metrics", &[], "").await.status, 200);
    running.stop().await;
}

#[test]
fn the_auth_section_is_checked_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let check = |extra: &str| {
        let text = format!("{CONFIG}{extra}\n[storage]\ndir = {:?}\n", dir.path().display().to_string());
        config::load_str(Path::new("auth.toml"), &text).map(|_| ()).unwrap_err().to_string()
    };
    let literal = AUTH.replace("env:DESK_ADMIN_SECRET", "hunter2-very-secret-value");
    let error = check(&literal);
    assert!(error.contains("http.auth.clients[0].client_secret"), "{error}");
    assert!(error.contains("plain-text credentials are not accepted"), "{error}");
    assert!(!error.contains("very-secret"), "{error}");

    let error = check("[http.auth]\naudience = \"mirror\"\n");
    assert!(error.contains("http.auth: needs [[http.auth.clients]]"), "{error}");
    let error = check(&AUTH.replace("token_ttl_s = 600", "token_ttl_s = 5"));
    assert!(error.contains("http.auth.token_ttl_s: must be between 60 and 86400 seconds, got 5"), "{error}");
    let error = check(&AUTH.replace("role = \"viewer\"", "role = \"root\""));
    assert!(error.contains("http.auth.clients[1].role") && error.contains("unknown variant `root`"), "{error}");
    let error = check(&AUTH.replace("env:DESK_VIEWER_SECRET", "env:DESK_ADMIN_SECRET"));
    assert!(error.contains("client `desk-admin` uses the same reference (env:DESK_ADMIN_SECRET)"), "{error}");
    let error = check(&AUTH.replace("client_id = \"desk-viewer\"", "client_id = \"desk-admin\""));
    assert!(
        error.contains("http.auth.clients[1].client_id: client `desk-admin` is already http.auth.clients[0]"),
        "{error}"
    );
    let oidc = r#"
[http.auth.oidc]
issuer = "https://login.example.com/realms/desk"
jwks_url = "http://login.example.com/certs"
role_claim = "realm_access..roles"
"#;
    let error = check(&format!("{AUTH}{oidc}"));
    assert!(
        error.contains("http.auth.oidc.jwks_url: `http://login.example.com/certs`: expected an https:// URL"),
        "{error}"
    );
    assert!(error.contains("http.auth.oidc.role_claim: must be a claim name or a dotted path"), "{error}");
}

#[tokio::test]
async fn a_short_client_secret_is_refused_at_start_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let resolved = resolve(dir.path(), AUTH);
    let vars = CredentialVars::new().with("DESK_ADMIN_SECRET", "short-one").with("DESK_VIEWER_SECRET", VIEWER_SECRET);
    let error =
        start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() }).await.unwrap_err();
    let text = format!("{error:#}");
    let expected = "[[http.auth.clients]] `desk-admin`: client_secret: env:DESK_ADMIN_SECRET: a client secret needs at \
                    least 16 characters";
    assert!(text.contains(expected), "{text}");
    assert!(!text.contains("short-one"), "{text}");
}
