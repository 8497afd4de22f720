//! JSON Web Keys (RFC 7517) and an external OIDC provider's key set: read, cached, and
//! fetched again when it is due (every `jwks_refresh_s`) or when a token names a key id the
//! set does not hold (a rotation), at most once per [`REFETCH_MIN`].
//!
//! Only keys that verify an accepted algorithm are kept: RSA (RS256, 2048 bits or more),
//! EC P-256 (ES256) and OKP Ed25519 (EdDSA). Symmetric keys (`kty: oct`) are never read: a
//! key set that offers one cannot make Mirror take an HMAC-signed token.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::fetch::HttpsClient;
use super::jwt::{Alg, VerifyingKey};
use super::{AuthError, OidcSettings, Role};
use crate::clock::Clock;

/// Shortest time between two fetches of the key set that are not due by the refresh period
/// (an unknown key id, or a failed fetch): a stream of tokens with made-up key ids cannot
/// make Mirror hammer the provider.
pub(crate) const REFETCH_MIN: Duration = Duration::from_secs(REFETCH_MIN_S);
const REFETCH_MIN_S: u64 = 30;
/// Most keys kept from one key set (providers publish two or three).
pub(crate) const KEYS_MAX: usize = 64;

/// The RFC 7638 thumbprint of a key given by its required members (in any order):
/// base64url of SHA-256 over the members as JSON, sorted, without whitespace.
pub(crate) fn thumbprint(members: &[(&str, &str)]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort_by_key(|(name, _)| *name);
    let body: Vec<String> =
        sorted.iter().map(|(name, value)| format!("{}:{}", Value::from(*name), Value::from(*value))).collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{}}}", body.join(","))))
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match jwk.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(format!("`{name}` is not a string")),
        None => Err(format!("no `{name}`")),
    }
}

fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(member(jwk, name)?).map_err(|e| format!("`{name}` is not unpadded base64url: {e}"))
}

/// A verifying key from one JWK, or why it cannot be one.
pub(crate) fn key_from_jwk(jwk: &Map<String, Value>) -> Result<VerifyingKey, String> {
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    if let Some(usage) = jwk.get("use").and_then(Value::as_str)
        && usage != "sig"
    {
        return Err(format!("its use is `{usage}`, not `sig`"));
    }
    let kty = member(jwk, "kty")?;
    let key = match kty {
        "RSA" => {
            let n = bytes(jwk, "n")?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant * 8 < 2048 {
                return Err(format!("an RSA key of {} bits; 2048 at least", significant * 8));
            }
            VerifyingKey::rsa(kid, &n, &bytes(jwk, "e")?)
        }
        "EC" => match member(jwk, "crv")? {
            "P-256" => {
                let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("a P-256 key's `x` and `y` are 32 bytes each".into());
                }
                VerifyingKey::p256(kid, &x, &y)
            }
            other => return Err(format!("an EC key on `{other}`; only P-256 (ES256) is accepted")),
        },
        "OKP" => match member(jwk, "crv")? {
            "Ed25519" => {
                let x = bytes(jwk, "x")?;
                if x.len() != 32 {
                    return Err(format!("an Ed25519 key is 32 bytes, this `x` has {}", x.len()));
                }
                VerifyingKey::ed25519(kid, &x)
            }
            other => return Err(format!("an OKP key on `{other}`; only Ed25519 (EdDSA) is accepted")),
        },
        "oct" => return Err("a symmetric key (`oct`); Mirror accepts no HMAC-signed token".into()),
        other => return Err(format!("key type `{other}` is not RSA, EC or OKP")),
    };
    // A key that names its algorithm must name the one its type verifies here.
    if let Some(alg) = jwk.get("alg").and_then(Value::as_str)
        && alg != key.alg.name()
    {
        return Err(format!("its `alg` is `{alg}`; Mirror verifies a {kty} key with {} only", key.alg));
    }
    Ok(key)
}

/// The usable keys of a JWK Set document; the others are logged and left out.
pub(crate) fn read_key_set(body: &[u8], source: &str) -> Result<Vec<VerifyingKey>, String> {
    let document: Value = serde_json::from_slice(body).map_err(|e| format!("the key set is not JSON: {e}"))?;
    let Some(Value::Array(entries)) = document.get("keys") else {
        return Err("the key set has no `keys` array".into());
    };
    let mut keys = Vec::new();
    let mut refused = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let Value::Object(jwk) = entry else {
            refused.push(format!("keys[{index}]: not an object"));
            continue;
        };
        match key_from_jwk(jwk) {
            Ok(key) if keys.len() < KEYS_MAX => keys.push(key),
            Ok(_) => refused.push(format!("keys[{index}]: more than {KEYS_MAX} keys")),
            Err(reason) => {
                refused.push(format!("keys[{index}] ({}): {reason}", jwk.get("kid").unwrap_or(&Value::Null)))
            }
        }
    }
    for reason in refused.iter().take(8) {
        tracing::debug!(%source, %reason, "a key of the provider's key set is left out");
    }
    if keys.is_empty() {
        let reasons = if refused.is_empty() { "it is empty".to_owned() } else { refused.join("; ") };
        return Err(format!("no usable key ({} only): {reasons}", Alg::ALLOWED));
    }
    Ok(keys)
}

/// The key set as last fetched, and how the last fetch went. Times are the clock's
/// monotonic nanoseconds.
#[derive(Debug, Default)]
struct Fetched {
    keys: Vec<VerifyingKey>,
    /// When `keys` were fetched.
    fetched_ns: Option<u64>,
    /// When a fetch last ended, well or not.
    attempted_ns: Option<u64>,
    /// Why the last fetch failed, when it did.
    error: Option<String>,
}

/// An external OIDC provider: its identity, how its tokens carry roles, and its keys.
pub(crate) struct Provider {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    settings: OidcSettings,
    url: url::Url,
    client: HttpsClient,
    clock: Arc<dyn Clock>,
    state: Mutex<Arc<Fetched>>,
    /// Held while fetching, so that concurrent requests wait for one fetch instead of each
    /// making their own.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("issuer", &self.issuer).field("jwks_url", &self.url.as_str()).finish()
    }
}

fn seconds(ns: u64) -> u64 {
    ns / 1_000_000_000
}

impl Provider {
    pub(crate) fn new(settings: OidcSettings, audience: &str, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let url = url::Url::parse(&settings.jwks_url).map_err(|e| format!("jwks_url `{}`: {e}", settings.jwks_url))?;
        let client = HttpsClient::new(settings.ca_file.as_deref(), settings.fetch_timeout)?;
        Ok(Self {
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone().unwrap_or_else(|| audience.to_owned()),
            url,
            client,
            clock,
            settings,
            state: Mutex::new(Arc::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn snapshot(&self) -> Arc<Fetched> {
        Arc::clone(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn now_ns(&self) -> u64 {
        self.clock.now().mono_ns
    }

    /// The key that is to verify a token naming `kid`, fetching the key set when it is due
    /// or does not hold `kid`.
    pub(crate) async fn key(&self, kid: Option<&str>) -> Result<VerifyingKey, AuthError> {
        let mut state = self.snapshot();
        let now = self.now_ns();
        let refresh_ns = u64::try_from(self.settings.jwks_refresh.as_nanos()).unwrap_or(u64::MAX);
        let due = state.fetched_ns.is_none_or(|at| now.saturating_sub(at) >= refresh_ns);
        let may_refetch = state.attempted_ns.is_none_or(|at| now.saturating_sub(at) >= REFETCH_MIN_S * 1_000_000_000);
        if (due || find(&state.keys, kid).is_err()) && may_refetch {
            state = self.refresh(state.attempted_ns).await;
        }
        match find(&state.keys, kid) {
            Ok(key) => Ok(key.clone()),
            Err(_) if state.keys.is_empty() => Err(self.unavailable(&state)),
            Err(reason) => {
                let age = state.fetched_ns.map_or(0, |at| seconds(self.now_ns().saturating_sub(at)));
                let failed = state.error.as_ref().map(|e| format!("; the last fetch failed: {e}")).unwrap_or_default();
                Err(AuthError::UnknownKey(format!(
                    "{reason} of {} (fetched {age} s ago; fetched again at most every {} s{failed})",
                    self.url,
                    REFETCH_MIN.as_secs()
                )))
            }
        }
    }

    fn unavailable(&self, state: &Fetched) -> AuthError {
        let since = state.attempted_ns.map_or(0, |at| seconds(self.now_ns().saturating_sub(at)));
        let wait = REFETCH_MIN.as_secs().saturating_sub(since);
        AuthError::KeysUnavailable(format!(
            "{} (tried {since} s ago; next try in {wait} s at the earliest)",
            state.error.as_deref().unwrap_or("not fetched yet")
        ))
    }

    /// Fetches the key set unless another request did while this one waited (`seen`: when
    /// the last fetch ended as this request saw it).
    async fn refresh(&self, seen: Option<u64>) -> Arc<Fetched> {
        let _turn = self.fetching.lock().await;
        let current = self.snapshot();
        if current.attempted_ns != seen {
            return current;
        }
        let result = match self.client.get(&self.url).await {
            Ok(body) => read_key_set(&body, self.url.as_str()),
            Err(error) => Err(error),
        };
        let now = self.now_ns();
        let next = match result {
            Ok(keys) => {
                let kids: Vec<&str> = keys.iter().map(VerifyingKey::shown_kid).collect();
                tracing::info!(provider = %self.issuer, keys = ?kids, "fetched the OIDC provider's keys");
                Fetched { keys, fetched_ns: Some(now), attempted_ns: Some(now), error: None }
            }
            Err(error) => {
                // The keys fetched before stay in use: a provider that is briefly unreachable
                // does not lock every client out.
                tracing::warn!(
                    provider = %self.issuer,
                    url = %self.url,
                    %error,
                    "cannot fetch the OIDC provider's keys"
                );
                Fetched {
                    keys: current.keys.clone(),
                    fetched_ns: current.fetched_ns,
                    attempted_ns: Some(now),
                    error: Some(format!("{}: {error}", self.url)),
                }
            }
        };
        let next = Arc::new(next);
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        next
    }

    /// The Mirror role the claims grant: the highest that `role_map` gives any value found
    /// at `role_claim`.
    pub(crate) fn role(&self, claims: &Map<String, Value>) -> Result<Role, AuthError> {
        role_from_claims(claims, &self.settings.role_claim, &self.settings.role_map)
    }
}

fn find<'k>(keys: &'k [VerifyingKey], kid: Option<&str>) -> Result<&'k VerifyingKey, String> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).ok_or_else(|| {
            let known: Vec<&str> = keys.iter().take(8).map(VerifyingKey::shown_kid).collect();
            format!("`{}` is not in the key set ({})", kid.chars().take(64).collect::<String>(), known.join(", "))
        }),
        // A token without `kid` is taken only when the set leaves no choice.
        None => match keys {
            [only] => Ok(only),
            _ => Err(format!("the token names no key id (`kid`) and the key set holds {} keys", keys.len())),
        },
    }
}

/// The value at `path`: the top-level claim of that exact name (namespaced claims such as
/// `https://example.com/roles` have dots in their name), else the dotted path through
/// nested objects (`realm_access.roles`).
fn claim_at<'c>(claims: &'c Map<String, Value>, path: &str) -> Option<&'c Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let mut value = claims.get(segments.next()?)?;
    for segment in segments {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// See [`Provider::role`]. A string claim is split on whitespace (`scope`).
pub(crate) fn role_from_claims(
    claims: &Map<String, Value>,
    path: &str,
    map: &BTreeMap<String, Role>,
) -> Result<Role, AuthError> {
    let mapped = || map.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
    let Some(value) = claim_at(claims, path) else {
        return Err(AuthError::NoRole(format!(
            "the token has no `{path}` claim, where [http.auth.oidc] role_claim says roles are; role_map maps {}",
            mapped()
        )));
    };
    let values: Vec<&str> = match value {
        Value::String(text) => text.split_whitespace().collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        other => {
            return Err(AuthError::NoRole(format!(
                "the token's `{path}` claim is {}, not a string or an array of strings",
                crate::http::fields::kind_of(other)
            )));
        }
    };
    values.iter().filter_map(|v| map.get(*v).copied()).max().ok_or_else(|| {
        let shown: Vec<String> = values.iter().take(10).map(|v| format!("`{v}`")).collect();
        AuthError::NoRole(format!(
            "the token grants no Mirror role: `{path}` holds [{}]; [http.auth.oidc] role_map maps {}",
            shown.join(", "),
            mapped()
        ))
    })
}
