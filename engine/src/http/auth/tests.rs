//! Tokens of the built-in issuer, and of an external provider whose key set is served over
//! HTTPS on loopback: each way a token can be wrong is refused with a message naming it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::KeyPair as _;
use rustls::pki_types::pem::PemObject as _;
use serde_json::{Value, json};

use super::issuer::KEY_FILE;
use super::*;
use crate::clock::ManualClock;

/// 2025-06-01 12:00:00 UTC.
const T0_MS: i64 = 1_748_779_200_000;
const T0_S: i64 = T0_MS / 1000;
const ISSUER: &str = "https://mirror.test";
const PROVIDER: &str = "https://idp.test/realms/desk";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature`, signed by `key` with `alg` (whatever the header says).
fn sign(header: &Value, claims: &Value, key: &jsonwebtoken::EncodingKey, alg: jsonwebtoken::Algorithm) -> String {
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn built_in(dir: &Path, clock: Arc<ManualClock>) -> Authenticator {
    let settings = AuthSettings {
        issuer: Some(ISSUER.into()),
        audience: "mirror".into(),
        token_ttl: Duration::from_secs(3_600),
        clients: vec![AuthClient {
            client_id: "desk".into(),
            secret: Secret::new("desk-secret-0123456789".into()),
            role: Role::Trader,
        }],
        oidc: None,
    };
    Authenticator::new(settings, Some(dir), "http://unused", clock).unwrap()
}

/// The built-in issuer's signing key, read from its file as a client of the file would.
fn issuer_key(dir: &Path) -> jsonwebtoken::EncodingKey {
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_file(dir.join(KEY_FILE)).unwrap();
    jsonwebtoken::EncodingKey::from_ed_der(key.secret_pkcs8_der())
}

fn claims(now_s: i64) -> Value {
    json!({ "iss": ISSUER, "sub": "desk", "aud": "mirror", "iat": now_s, "nbf": now_s, "exp": now_s + 600,
            "role": "trader", "client_id": "desk" })
}

async fn refused(auth: &Authenticator, token: &str) -> AuthError {
    auth.verify(Some(&format!("Bearer {token}"))).await.unwrap_err()
}

#[tokio::test]
async fn built_in_tokens_verify_and_every_flaw_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0_MS);
    let auth = built_in(dir.path(), clock.clone());
    let issuer = auth.issuer().unwrap();
    let kid = issuer.key().kid.clone().unwrap();
    let token = issuer.issue("desk", Role::Trader, T0_S).unwrap();
    let principal = auth.verify(Some(&format!("Bearer {token}"))).await.unwrap();
    assert_eq!(principal, Principal { subject: "desk".into(), role: Role::Trader, client: Some("desk".into()) });
    // The scheme is case-insensitive (RFC 7235).
    assert!(auth.verify(Some(&format!("bearer {token}"))).await.is_ok());

    // The key survives a restart: another authenticator on the same directory takes the token.
    let again = built_in(dir.path(), clock.clone());
    assert_eq!(again.issuer().unwrap().key().kid.as_deref(), Some(kid.as_str()));
    assert!(again.verify(Some(&format!("Bearer {token}"))).await.is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let key = issuer_key(dir.path());
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": kid });
    let eddsa = jsonwebtoken::Algorithm::EdDSA;
    assert!(auth.verify(Some(&format!("Bearer {}", sign(&header, &claims(T0_S), &key, eddsa)))).await.is_ok());

    // Expired: one hour after issue, past the 60 s leeway.
    clock.advance_ms(3_600_000 + 61_000);
    let error = refused(&auth, &token).await;
    assert_eq!(error.to_string(), "expired at 2025-06-01 13:00:00 UTC (61 s ago, beyond the 60 s leeway)");
    let clock = ManualClock::new(T0_MS);
    let auth = built_in(dir.path(), clock.clone());

    // Within the leeway, still taken.
    clock.advance_ms(3_600_000 + 30_000);
    assert!(auth.verify(Some(&format!("Bearer {token}"))).await.is_ok());
    let clock = ManualClock::new(T0_MS);
    let auth = built_in(dir.path(), clock.clone());

    let mut later = claims(T0_S);
    later["nbf"] = json!(T0_S + 300);
    let error = refused(&auth, &sign(&header, &later, &key, eddsa)).await;
    assert_eq!(
        error.to_string(),
        "not yet valid: valid from 2025-06-01 12:05:00 UTC (300 s from now, beyond the 60 s leeway)"
    );

    // One byte of the signature flipped.
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 0x01;
    let forged = format!("{message}.{}", b64(&bytes));
    let error = refused(&auth, &forged).await;
    assert!(matches!(error, AuthError::BadSignature(_)), "{error}");
    assert!(
        error.to_string().starts_with(&format!("bad signature: the token is not signed by key `{kid}`")),
        "{error}"
    );
    // One byte of the claims changed, the signature kept.
    let mut tampered = claims(T0_S);
    tampered["role"] = json!("admin");
    let signed = sign(&header, &claims(T0_S), &key, eddsa);
    let signature = signed.rsplit_once('.').unwrap().1;
    let swapped =
        format!("{}.{}.{signature}", b64(header.to_string().as_bytes()), b64(tampered.to_string().as_bytes()));
    assert!(matches!(refused(&auth, &swapped).await, AuthError::BadSignature(_)));

    // Signed by the right key for another issuer: the issuer decides which keys are tried.
    let mut foreign = claims(T0_S);
    foreign["iss"] = json!("https://evil.test");
    let error = refused(&auth, &sign(&header, &foreign, &key, eddsa)).await;
    assert_eq!(error.to_string(), "wrong issuer: `https://evil.test`; this server trusts `https://mirror.test`");

    let mut elsewhere = claims(T0_S);
    elsewhere["aud"] = json!(["billing", "crm"]);
    let error = refused(&auth, &sign(&header, &elsewhere, &key, eddsa)).await;
    assert_eq!(error.to_string(), "wrong audience: `billing`, `crm`; expected `mirror`");
    elsewhere["aud"] = json!(["crm", "mirror"]);
    assert!(auth.verify(Some(&format!("Bearer {}", sign(&header, &elsewhere, &key, eddsa)))).await.is_ok());

    // `alg: none` with no signature.
    let none = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims(T0_S).to_string().as_bytes()));
    let error = refused(&auth, &none).await;
    assert_eq!(error.to_string(), "algorithm not allowed: `none`; Mirror accepts RS256, ES256, EdDSA only");

    // Alg confusion: HS256 with the issuer's public key (as published) as the HMAC secret.
    let jwk = &issuer.jwks()["keys"][0];
    let public = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    let hs_header = json!({ "alg": "HS256", "kid": kid });
    for secret in [public.clone(), jwk.to_string().into_bytes()] {
        let hmac = jsonwebtoken::EncodingKey::from_secret(&secret);
        let token = sign(&hs_header, &claims(T0_S), &hmac, jsonwebtoken::Algorithm::HS256);
        let error = refused(&auth, &token).await;
        assert_eq!(error.to_string(), "algorithm not allowed: `HS256`; Mirror accepts RS256, ES256, EdDSA only");
    }
    // An accepted algorithm, but not the key's.
    let es_header = json!({ "alg": "ES256", "kid": kid });
    let token = format!("{}.{}.AAAA", b64(es_header.to_string().as_bytes()), b64(claims(T0_S).to_string().as_bytes()));
    let error = refused(&auth, &token).await;
    assert!(error.to_string().starts_with("algorithm not allowed: the header says ES256 but key"), "{error}");

    let other_kid = json!({ "alg": "EdDSA", "kid": "rotated-away" });
    let error = refused(&auth, &sign(&other_kid, &claims(T0_S), &key, eddsa)).await;
    assert!(
        error.to_string().starts_with("unknown key id: `rotated-away` is not the built-in issuer's key"),
        "{error}"
    );

    let mut anonymous = claims(T0_S);
    anonymous.as_object_mut().unwrap().remove("sub");
    let error = refused(&auth, &sign(&header, &anonymous, &key, eddsa)).await;
    assert_eq!(error.to_string(), "missing claim: the token names no subject (`sub`)");
    let mut endless = claims(T0_S);
    endless.as_object_mut().unwrap().remove("exp");
    let error = refused(&auth, &sign(&header, &endless, &key, eddsa)).await;
    assert!(error.to_string().starts_with("missing claim: the token has no expiry (`exp`)"), "{error}");
}

#[tokio::test]
async fn the_header_and_the_token_shape_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let auth = built_in(dir.path(), ManualClock::new(T0_MS));
    let cases: [(Option<&str>, &str); 8] = [
        (None, "no Authorization header: send `Authorization: Bearer <token>`"),
        (Some("Basic ZGVzazpzZWNyZXQ="), "the Authorization header is not Bearer (`Basic`)"),
        (Some("eyJhbGciOiJFZERTQSJ9.e30.AAAA"), "the Authorization header is not Bearer (`eyJhbGciOiJFZERT`)"),
        (Some("Bearer"), "malformed token: `Bearer` is followed by no token"),
        (Some("Bearer abc.def"), "malformed token: a JWT is three base64url parts joined by `.`, this has 2 parts"),
        (Some("Bearer !!!.e30.AAAA"), "malformed token: the header is not unpadded base64url"),
        (Some("Bearer WzFd.e30.AAAA"), "malformed token: the header is an array, not a JSON object"),
        (Some("Bearer e30.e30.AAAA"), "malformed token: the header names no algorithm (`alg`)"),
    ];
    for (header, expected) in cases {
        let error = auth.verify(header).await.unwrap_err();
        assert!(error.to_string().starts_with(expected), "{header:?}: {error}");
    }
    let long = format!("Bearer {}", "a".repeat(9_000));
    assert!(auth.verify(Some(&long)).await.unwrap_err().to_string().contains("a token has at most 8192"));

    let closed = Authenticator::unconfigured();
    let error = closed.verify(Some("Bearer a.b.c")).await.unwrap_err();
    assert!(error.to_string().starts_with("no [http.auth] configured"), "{error}");
}

#[test]
fn refusals_are_problems_with_bearer_challenges() {
    let missing = AuthError::Missing.problem();
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.www_authenticate.as_deref(), Some("Bearer realm=\"mirror\""));
    let expired = AuthError::Expired { exp_s: T0_S, now_s: T0_S + 100 }.problem();
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        expired.www_authenticate.as_deref(),
        Some(
            "Bearer realm=\"mirror\", error=\"invalid_token\", error_description=\"expired at 2025-06-01 12:00:00 UTC \
             (100 s ago, beyond the 60 s leeway)\""
        )
    );
    let quoted = AuthError::WrongIssuer("`a\"b\\c` é".into()).problem();
    assert!(quoted.www_authenticate.unwrap().ends_with("error_description=\"wrong issuer: `a'b'c` ?\""));
    let no_role = AuthError::NoRole("none".into()).problem();
    assert_eq!(no_role.status, StatusCode::FORBIDDEN);
    assert!(no_role.www_authenticate.unwrap().contains("error=\"insufficient_scope\""));
}

#[test]
fn roles_are_ordered_and_required() {
    assert!(Role::Viewer < Role::Trader && Role::Trader < Role::Admin);
    assert_eq!([Role::Trader, Role::Admin, Role::Viewer].iter().max(), Some(&Role::Admin));
    let trader = Principal { subject: "desk".into(), role: Role::Trader, client: None };
    assert!(Authenticator::require(&trader, Role::Viewer).is_ok());
    assert!(Authenticator::require(&trader, Role::Trader).is_ok());
    let problem = Authenticator::require(&trader, Role::Admin).unwrap_err();
    assert_eq!(problem.status, StatusCode::FORBIDDEN);
    assert_eq!(problem.detail, "this needs the admin role; `desk` holds trader");
    assert!(problem.www_authenticate.unwrap().contains("error=\"insufficient_scope\", scope=\"admin\""));
    for role in [Role::Viewer, Role::Trader, Role::Admin] {
        assert_eq!(Role::parse(role.as_str()), Some(role));
    }
    assert_eq!(Role::parse("Admin"), None);
}

#[test]
fn roles_are_read_from_nested_claims_and_mapped() {
    let map: BTreeMap<String, Role> =
        [("mirror-admin", Role::Admin), ("mirror-trader", Role::Trader), ("read", Role::Viewer)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
    let claims = |value: Value| value.as_object().unwrap().clone();
    let keycloak = claims(json!({ "realm_access": { "roles": ["offline_access", "mirror-trader", "read"] } }));
    assert_eq!(jwks::role_from_claims(&keycloak, "realm_access.roles", &map), Ok(Role::Trader));
    let both = claims(json!({ "realm_access": { "roles": ["mirror-admin", "mirror-trader"] } }));
    assert_eq!(jwks::role_from_claims(&both, "realm_access.roles", &map), Ok(Role::Admin));
    let scope = claims(json!({ "scope": "openid read profile" }));
    assert_eq!(jwks::role_from_claims(&scope, "scope", &map), Ok(Role::Viewer));
    // A namespaced claim whose name has dots is read as one name.
    let auth0 = claims(json!({ "https://mirror.example/roles": ["mirror-admin"] }));
    assert_eq!(jwks::role_from_claims(&auth0, "https://mirror.example/roles", &map), Ok(Role::Admin));

    let none = claims(json!({ "realm_access": { "roles": ["offline_access", "uma_authorization"] } }));
    let error = jwks::role_from_claims(&none, "realm_access.roles", &map).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the token grants no Mirror role: `realm_access.roles` holds [`offline_access`, `uma_authorization`]; \
         [http.auth.oidc] role_map maps `mirror-admin`, `mirror-trader`, `read`"
    );
    let error = jwks::role_from_claims(&none, "resource_access.mirror.roles", &map).unwrap_err();
    assert!(error.to_string().starts_with("the token has no `resource_access.mirror.roles` claim"), "{error}");
    let error = jwks::role_from_claims(&claims(json!({ "roles": 3 })), "roles", &map).unwrap_err();
    assert!(error.to_string().ends_with("is a number, not a string or an array of strings"), "{error}");
}

#[test]
fn thumbprints_follow_rfc_7638() {
    // The example of RFC 7638 §3.1.
    let n = concat!(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc",
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ",
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF",
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    );
    assert_eq!(
        jwks::thumbprint(&[("n", n), ("kty", "RSA"), ("e", "AQAB")]),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn key_sets_keep_only_asymmetric_signing_keys() {
    let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let set = json!({ "keys": [
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
        { "kty": "RSA", "kid": "small", "n": b64(&[0xc3; 128]), "e": "AQAB" },
        { "kty": "EC", "kid": "p384", "crv": "P-384", "x": "AA", "y": "AA" },
        { "kty": "OKP", "kid": "enc", "crv": "X25519", "x": b64(&[1; 32]), "use": "enc" },
        { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(&[1; 32]), "alg": "ES256" },
        es256_jwk("good", &p256_public(p256.as_ref())),
    ]});
    let keys = jwks::read_key_set(set.to_string().as_bytes(), "test").unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_deref().unwrap()).collect::<Vec<_>>(), ["good"]);
    let only_bad = json!({ "keys": [{ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" }] });
    let error = jwks::read_key_set(only_bad.to_string().as_bytes(), "test").unwrap_err();
    assert_eq!(
        error,
        "no usable key (RS256, ES256, EdDSA only): keys[0] (\"hmac\"): a symmetric key (`oct`); Mirror accepts no \
         HMAC-signed token"
    );
    let small = &set["keys"][1];
    assert_eq!(jwks::key_from_jwk(small.as_object().unwrap()).unwrap_err(), "an RSA key of 1024 bits; 2048 at least");
}

// ---- An external provider, its key set served over HTTPS on loopback ----

/// The uncompressed public point of a P-256 PKCS#8 key.
fn p256_public(pkcs8: &[u8]) -> Vec<u8> {
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    pair.public_key().as_ref().to_vec()
}

fn es256_jwk(kid: &str, point: &[u8]) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65]) })
}

/// A test-only RSA key (PKCS#1 DER, 2048 bits), made with `openssl genrsa` for these tests.
const RSA_KEY: &[u8] = include_bytes!("testdata/rsa-2048-test-only.der");

fn rs256_jwk(kid: &str) -> Value {
    let pair = ring::rsa::KeyPair::from_der(RSA_KEY).unwrap();
    let components: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&components.n), "e": b64(&components.e) })
}

/// A provider's key set on `https://127.0.0.1:<port>/certs`, its certificate signed by a CA
/// of its own (PEM in `ca.pem` of `dir`).
struct KeyServer {
    url: String,
    ca_file: std::path::PathBuf,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl KeyServer {
    fn start(dir: &Path, document: Value) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Mirror test provider CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &ca).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![leaf.der().clone()], key)
                .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let document = Arc::new(Mutex::new(document.to_string()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&document), Arc::clone(&fetches));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            let (served, counted) = (Arc::clone(&served), Arc::clone(&counted));
            App::new().route(
                "/certs",
                web::get().to(move || {
                    let body = served.lock().unwrap_or_else(PoisonError::into_inner).clone();
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { HttpResponse::Ok().content_type("application/json").body(body) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen_rustls_0_23(listener, config)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { url: format!("https://127.0.0.1:{port}/certs"), ca_file, document, fetches, handle }
    }

    fn serve(&self, document: Value) {
        *self.document.lock().unwrap() = document.to_string();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn oidc(url: &str, ca_file: Option<&Path>, timeout: Duration) -> OidcSettings {
    OidcSettings {
        issuer: PROVIDER.into(),
        jwks_url: url.into(),
        audience: Some("mirror-api".into()),
        role_claim: "realm_access.roles".into(),
        role_map: [("mirror-admin", Role::Admin), ("mirror-trader", Role::Trader), ("mirror-viewer", Role::Viewer)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        jwks_refresh: Duration::from_secs(600),
        ca_file: ca_file.map(Path::to_path_buf),
        fetch_timeout: timeout,
    }
}

fn provider_auth(settings: OidcSettings, clock: Arc<ManualClock>) -> Authenticator {
    let settings = AuthSettings {
        issuer: None,
        audience: "mirror".into(),
        token_ttl: Duration::from_secs(3_600),
        clients: Vec::new(),
        oidc: Some(settings),
    };
    Authenticator::new(settings, None, "http://unused", clock).unwrap()
}

fn provider_claims(now_s: i64, roles: &[&str]) -> Value {
    json!({ "iss": PROVIDER, "sub": "0b5c-user", "aud": ["account", "mirror-api"], "azp": "desk-ui",
            "iat": now_s, "exp": now_s + 300, "realm_access": { "roles": roles } })
}

#[tokio::test]
async fn a_providers_keys_are_fetched_over_https_cached_and_refreshed_on_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let es_key = jsonwebtoken::EncodingKey::from_ec_der(p256.as_ref());
    let server = KeyServer::start(dir.path(), json!({ "keys": [es256_jwk("k1", &p256_public(p256.as_ref()))] }));
    let clock = ManualClock::new(T0_MS);
    let auth = provider_auth(oidc(&server.url, Some(&server.ca_file), FETCH_TIMEOUT), clock.clone());
    let es256 = |kid: &str, claims: &Value| {
        sign(&json!({ "alg": "ES256", "kid": kid, "typ": "JWT" }), claims, &es_key, jsonwebtoken::Algorithm::ES256)
    };

    let token = es256("k1", &provider_claims(T0_S, &["offline_access", "mirror-trader"]));
    let principal = auth.verify(Some(&format!("Bearer {token}"))).await.unwrap();
    assert_eq!(
        principal,
        Principal { subject: "0b5c-user".into(), role: Role::Trader, client: Some("desk-ui".into()) }
    );
    assert_eq!(server.fetches(), 1);
    // Cached: no fetch for a known key.
    let admin = es256("k1", &provider_claims(T0_S, &["mirror-admin", "mirror-viewer"]));
    assert_eq!(auth.verify(Some(&format!("Bearer {admin}"))).await.unwrap().role, Role::Admin);
    assert_eq!(server.fetches(), 1);

    // A valid token that maps to no Mirror role: 403.
    let nobody = es256("k1", &provider_claims(T0_S, &["offline_access"]));
    let error = refused(&auth, &nobody).await;
    assert!(error.to_string().starts_with("the token grants no Mirror role"), "{error}");
    assert_eq!(error.problem().status, StatusCode::FORBIDDEN);
    // The provider's audience, not the built-in one.
    let mut elsewhere = provider_claims(T0_S, &["mirror-admin"]);
    elsewhere["aud"] = json!("mirror");
    assert_eq!(
        refused(&auth, &es256("k1", &elsewhere)).await.to_string(),
        "wrong audience: `mirror`; expected `mirror-api`"
    );

    // The provider rotates to an RSA key `k2`. Within 30 s of the last fetch the new id is
    // not fetched for.
    server.serve(json!({ "keys": [rs256_jwk("k2")] }));
    let rsa = jsonwebtoken::EncodingKey::from_rsa_der(RSA_KEY);
    let rs_token = sign(
        &json!({ "alg": "RS256", "kid": "k2" }),
        &provider_claims(T0_S, &["mirror-viewer"]),
        &rsa,
        jsonwebtoken::Algorithm::RS256,
    );
    let error = refused(&auth, &rs_token).await;
    assert!(
        error.to_string().starts_with("unknown key id: `k2` is not in the key set (k1) of https://127.0.0.1:"),
        "{error}"
    );
    assert!(error.to_string().ends_with("(fetched 0 s ago; fetched again at most every 30 s)"), "{error}");
    assert_eq!(server.fetches(), 1);
    clock.advance_ms(31_000);
    assert_eq!(auth.verify(Some(&format!("Bearer {rs_token}"))).await.unwrap().role, Role::Viewer);
    assert_eq!(server.fetches(), 2);
    // The old key is gone with the rotation.
    let error = refused(&auth, &token).await;
    assert!(error.to_string().starts_with("unknown key id: `k1` is not in the key set (k2)"), "{error}");
    assert_eq!(server.fetches(), 2);

    // Alg confusion with the provider's RSA public key as an HMAC secret.
    let components: ring::rsa::PublicKeyComponents<Vec<u8>> =
        ring::rsa::KeyPair::from_der(RSA_KEY).unwrap().public().into();
    let hmac = jsonwebtoken::EncodingKey::from_secret(&components.n);
    let confused = sign(
        &json!({ "alg": "HS256", "kid": "k2" }),
        &provider_claims(T0_S + 31, &["mirror-admin"]),
        &hmac,
        jsonwebtoken::Algorithm::HS256,
    );
    assert!(matches!(refused(&auth, &confused).await, AuthError::AlgorithmNotAllowed(_)));

    // Every jwks_refresh_s the set is fetched again, even for known keys.
    clock.advance_ms(600_000);
    let fresh = sign(
        &json!({ "alg": "RS256", "kid": "k2" }),
        &provider_claims(T0_S + 631, &["mirror-trader"]),
        &rsa,
        jsonwebtoken::Algorithm::RS256,
    );
    assert_eq!(auth.verify(Some(&format!("Bearer {fresh}"))).await.unwrap().role, Role::Trader);
    assert_eq!(server.fetches(), 3);
    server.handle.stop(false).await;
}

#[tokio::test]
async fn an_unreachable_provider_is_named_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let p256 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let es_key = jsonwebtoken::EncodingKey::from_ec_der(p256.as_ref());
    let token = sign(
        &json!({ "alg": "ES256", "kid": "k1" }),
        &provider_claims(T0_S, &["mirror-admin"]),
        &es_key,
        jsonwebtoken::Algorithm::ES256,
    );
    let bearer = format!("Bearer {token}");

    // Nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let clock = ManualClock::new(T0_MS);
    let url = format!("https://127.0.0.1:{port}/certs");
    let auth = provider_auth(oidc(&url, None, FETCH_TIMEOUT), clock.clone());
    let error = auth.verify(Some(&bearer)).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("cannot fetch the provider's keys: {url}: connecting to 127.0.0.1:{port}:")),
        "{text}"
    );
    assert!(text.ends_with("(tried 0 s ago; next try in 30 s at the earliest)"), "{text}");
    assert_eq!(error.problem().status, StatusCode::UNAUTHORIZED);

    // A server that accepts and never answers: refused once the timeout has passed, and
    // the next request within 30 s does not wait again.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/certs", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let auth = provider_auth(oidc(&url, None, Duration::from_millis(700)), clock.clone());
    let started = Instant::now();
    let error = auth.verify(Some(&bearer)).await.unwrap_err();
    let waited = started.elapsed();
    // It gave up at its timeout: not before, and not hanging on (a generous bound, for a busy
    // machine).
    assert!(waited >= Duration::from_millis(700) && waited < Duration::from_secs(15), "{waited:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot fetch the provider's keys: {url}: no complete answer in 700 ms")),
        "{error}"
    );
    let started = Instant::now();
    assert!(matches!(auth.verify(Some(&bearer)).await.unwrap_err(), AuthError::KeysUnavailable(_)));
    // The failure is remembered: no second fetch, which would wait the 700 ms timeout again.
    assert!(started.elapsed() < Duration::from_millis(700), "{:?}", started.elapsed());
    held.abort();

    // A certificate the client does not trust (the public roots, not the provider's CA).
    let server = KeyServer::start(dir.path(), json!({ "keys": [es256_jwk("k1", &p256_public(p256.as_ref()))] }));
    let auth = provider_auth(oidc(&server.url, None, FETCH_TIMEOUT), clock.clone());
    let error = auth.verify(Some(&bearer)).await.unwrap_err();
    assert!(error.to_string().contains("TLS with 127.0.0.1:"), "{error}");
    assert!(error.to_string().contains("invalid peer certificate"), "{error}");
    assert_eq!(server.fetches(), 0);
    // Trusting its CA, the same token verifies.
    let auth = provider_auth(oidc(&server.url, Some(&server.ca_file), FETCH_TIMEOUT), clock);
    assert_eq!(auth.verify(Some(&bearer)).await.unwrap().role, Role::Admin);
    server.handle.stop(false).await;
}
