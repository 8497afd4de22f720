//! OAuth2 bearer tokens for the API (`/api/v1`, REST and WebSocket): who is calling, and with
//! which role (viewer < trader < admin).
//!
//! A request carries `Authorization: Bearer <JWT>` (RFC 6750). The token comes either from
//! Mirror's built-in issuer (`POST /oauth/token`, client credentials, for the clients listed
//! in `[[http.auth.clients]]`; see [`issuer`]), or from an external OIDC provider
//! (`[http.auth.oidc]`: Keycloak, Auth0, Entra ID, …) whose key set Mirror fetches over HTTPS
//! (see [`jwks`]). Either way the token must be signed with RS256, ES256 or EdDSA by a key of
//! its issuer (never `none`, never HMAC), carry the configured audience, and be within its
//! `nbf`/`exp` window (60 s leeway). A built-in token carries its role in `role`; a provider's
//! roles are read at `role_claim` and mapped through `role_map`, the highest mapped role
//! winning, and a token that maps to none is refused (403).
//!
//! Without `[http.auth]` every API request is refused (401, "no [http.auth] configured"):
//! nothing is open by default. Health and metrics do not ask for a token.
//!
//! Every refusal is a problem document naming what is wrong (no header, not Bearer,
//! malformed, algorithm not allowed, unknown key id, bad signature, expired at <time>, not yet
//! valid, wrong issuer, wrong audience, no role), with a `WWW-Authenticate: Bearer` challenge
//! (RFC 6750 §3): 401 for a missing or invalid token, 403 (`insufficient_scope`) for a role
//! too low.

mod fetch;
pub(crate) mod issuer;
pub(crate) mod jwks;
mod jwt;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value};

use super::State;
use super::limits::Route;
use super::problem::Problem;
use crate::clock::Clock;
use crate::secrets::Secret;
use issuer::Issuer;
use jwks::Provider;
use jwt::{Expected, LEEWAY_S, utc};

/// What a token allows, ordered: a higher role may do everything a lower one may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads state.
    Viewer,
    /// Also sends orders.
    Trader,
    /// Also changes settings, pauses, resumes and flattens.
    Admin,
}

impl Role {
    /// Its name as configuration and tokens write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Trader => "trader",
            Role::Admin => "admin",
        }
    }

    /// The role of this name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "viewer" => Some(Role::Viewer),
            "trader" => Some(Role::Trader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is calling, once the token is verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The token's subject (`sub`): the client id for a built-in token.
    pub subject: String,
    /// The role the token grants.
    pub role: Role,
    /// The OAuth client the token was issued to (`client_id`, or `azp`), when it says.
    pub client: Option<String>,
}

/// Why a request is not authenticated, or not allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `[http.auth]` is absent: the API is closed.
    #[error(
        "no [http.auth] configured: the API refuses every request until [http.auth] lists clients or an OIDC provider"
    )]
    NotConfigured,
    /// No `Authorization` header.
    #[error("no Authorization header: send `Authorization: Bearer <token>`")]
    Missing,
    /// Another scheme than Bearer.
    #[error("the Authorization header is not Bearer ({0}): send `Authorization: Bearer <token>`")]
    NotBearer(String),
    /// Not a JWT, or a part of it cannot be read.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// An algorithm other than RS256, ES256, EdDSA, or not the one of the key.
    #[error("algorithm not allowed: {0}")]
    AlgorithmNotAllowed(String),
    /// The issuer has no key of this id.
    #[error("unknown key id: {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// Past `exp` (and the leeway).
    #[error("expired at {} ({} s ago, beyond the {LEEWAY_S} s leeway)", utc(*.exp_s), .now_s - .exp_s)]
    Expired {
        /// `exp`.
        exp_s: i64,
        /// When it was presented.
        now_s: i64,
    },
    /// Before `nbf` (and the leeway).
    #[error(
        "not yet valid: valid from {} ({} s from now, beyond the {LEEWAY_S} s leeway)",
        utc(*.nbf_s),
        .nbf_s - .now_s
    )]
    NotYetValid {
        /// `nbf`.
        nbf_s: i64,
        /// When it was presented.
        now_s: i64,
    },
    /// Not an issuer this server trusts.
    #[error("wrong issuer: {0}")]
    WrongIssuer(String),
    /// Not meant for this server.
    #[error("wrong audience: {0}")]
    WrongAudience(String),
    /// A required claim is absent.
    #[error("missing claim: {0}")]
    MissingClaim(String),
    /// The provider's key set cannot be had.
    #[error("cannot fetch the provider's keys: {0}")]
    KeysUnavailable(String),
    /// A valid token that grants no Mirror role (403).
    #[error("{0}")]
    NoRole(String),
}

/// The realm of the challenges.
const REALM: &str = "mirror";

/// `text` as a quoted-string value of a challenge: printable ASCII without `"` and `\`
/// (RFC 6750 §3: error_description), at most 300 characters.
fn challenge_text(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| match c {
            '"' | '\\' => '\'',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

impl AuthError {
    /// The problem document answering it.
    pub(crate) fn problem(&self) -> Problem {
        let detail = self.to_string();
        let (status, slug, title, error) = match self {
            // RFC 6750 §3.1: no error code when the request carries no bearer credentials.
            AuthError::NotConfigured | AuthError::Missing | AuthError::NotBearer(_) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "Not authenticated", None)
            }
            AuthError::NoRole(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed", Some("insufficient_scope")),
            _ => (StatusCode::UNAUTHORIZED, "unauthorized", "Not authenticated", Some("invalid_token")),
        };
        let mut problem = Problem::new(status, slug, title, detail);
        problem.www_authenticate = Some(match error {
            None => format!("Bearer realm=\"{REALM}\""),
            Some(error) => format!(
                "Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{}\"",
                challenge_text(&problem.detail)
            ),
        });
        problem
    }
}

/// One client of the built-in issuer.
#[derive(Debug)]
pub struct AuthClient {
    /// Its id (the tokens' `sub` and `client_id`).
    pub client_id: String,
    /// Its secret.
    pub secret: Secret,
    /// The highest role its tokens may have.
    pub role: Role,
}

/// An external OIDC provider (`[http.auth.oidc]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcSettings {
    /// Its issuer identifier, as its tokens' `iss` says.
    pub issuer: String,
    /// Its key set (JWKS), an https:// URL.
    pub jwks_url: String,
    /// The audience its tokens must carry (default: `[http.auth] audience`).
    pub audience: Option<String>,
    /// Where its tokens carry roles: a claim name or a dotted path (`realm_access.roles`).
    pub role_claim: String,
    /// Provider role → Mirror role.
    pub role_map: BTreeMap<String, Role>,
    /// How often the key set is fetched again.
    pub jwks_refresh: Duration,
    /// Trust this CA (PEM) for `jwks_url` instead of the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for the key set (5 s).
    pub fetch_timeout: Duration,
}

/// Longest wait for a provider's key set.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// `[http.auth]`, its client secrets resolved.
#[derive(Debug)]
pub struct AuthSettings {
    /// The built-in issuer's identifier (`iss`, and the base of its endpoints' URLs); default
    /// `http(s)://<the address the server listens on>`.
    pub issuer: Option<String>,
    /// The audience tokens must carry (`aud`), and the built-in issuer's tokens do.
    pub audience: String,
    /// Lifetime of a built-in token.
    pub token_ttl: Duration,
    /// The built-in issuer's clients (none: no built-in issuer).
    pub clients: Vec<AuthClient>,
    /// An external provider.
    pub oidc: Option<OidcSettings>,
}

struct Inner {
    audience: String,
    issuer: Option<Issuer>,
    provider: Option<Provider>,
    clock: Arc<dyn Clock>,
}

/// Verifies bearer tokens; cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Authenticator(not configured)"),
            Some(inner) => f
                .debug_struct("Authenticator")
                .field("issuer", &inner.issuer)
                .field("provider", &inner.provider)
                .finish(),
        }
    }
}

impl Authenticator {
    /// Without `[http.auth]`: refuses every token.
    pub fn unconfigured() -> Self {
        Self { inner: None }
    }

    /// Whether `[http.auth]` is given (otherwise every token is refused).
    pub fn is_configured(&self) -> bool {
        self.inner.is_some()
    }

    /// From `[http.auth]`. The built-in issuer (when there are clients) keeps its signing key
    /// in `state_dir`; `default_issuer` is its identifier when the settings name none.
    pub fn new(
        settings: AuthSettings,
        state_dir: Option<&Path>,
        default_issuer: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let issuer = if settings.clients.is_empty() {
            None
        } else {
            let dir = state_dir.ok_or("the built-in issuer needs a state directory to keep its signing key in")?;
            let id = settings.issuer.unwrap_or_else(|| default_issuer.to_owned());
            let ttl_s = i64::try_from(settings.token_ttl.as_secs()).unwrap_or(i64::MAX);
            Some(Issuer::open(id, settings.audience.clone(), ttl_s, &settings.clients, dir)?)
        };
        let provider = match settings.oidc {
            Some(oidc) => Some(Provider::new(oidc, &settings.audience, Arc::clone(&clock))?),
            None => None,
        };
        if issuer.is_none() && provider.is_none() {
            return Err("[http.auth] needs [[http.auth.clients]] (the built-in issuer) or [http.auth.oidc]".into());
        }
        if let (Some(issuer), Some(provider)) = (&issuer, &provider)
            && issuer.id() == provider.issuer
        {
            return Err(format!("the built-in issuer and [http.auth.oidc] have the same issuer `{}`", issuer.id()));
        }
        Ok(Self { inner: Some(Arc::new(Inner { audience: settings.audience, issuer, provider, clock })) })
    }

    /// The built-in issuer, when there is one.
    pub(crate) fn issuer(&self) -> Option<&Issuer> {
        self.inner.as_ref().and_then(|inner| inner.issuer.as_ref())
    }

    /// Who presents this `Authorization` header value.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        let inner = self.inner.as_ref().ok_or(AuthError::NotConfigured)?;
        let value = authorization.ok_or(AuthError::Missing)?.trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            let shown: String = scheme.chars().take(16).collect();
            return Err(AuthError::NotBearer(format!("`{shown}`")));
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Malformed("`Bearer` is followed by no token".into()));
        }
        let unverified = jwt::parse(token)?;
        let iss = unverified.issuer()?;
        let now_s = inner.clock.now().unix_ms.div_euclid(1000);
        if let Some(issuer) = inner.issuer.as_ref().filter(|i| i.id() == iss) {
            let key = issuer.key();
            if unverified.kid.is_some() && unverified.kid != key.kid {
                return Err(AuthError::UnknownKey(format!(
                    "`{}` is not the built-in issuer's key (`{}`); a token signed before its key file was replaced is \
                     no longer valid",
                    unverified.kid.as_deref().unwrap_or_default().chars().take(64).collect::<String>(),
                    key.shown_kid()
                )));
            }
            unverified.verify(key, issuer.id())?;
            let expected = Expected { issuer: issuer.id(), audience: &inner.audience, now_s };
            let subject = jwt::check_claims(&unverified.claims, expected)?;
            let role = match unverified.claims.get("role").and_then(Value::as_str).and_then(Role::parse) {
                Some(role) => role,
                None => return Err(AuthError::Malformed("the built-in issuer's token has no valid `role`".into())),
            };
            return Ok(Principal { subject: subject.to_owned(), role, client: client_of(&unverified.claims) });
        }
        if let Some(provider) = inner.provider.as_ref().filter(|p| p.issuer == iss) {
            let key = provider.key(unverified.kid.as_deref()).await?;
            unverified.verify(&key, &provider.issuer)?;
            let expected = Expected { issuer: &provider.issuer, audience: &provider.audience, now_s };
            let subject = jwt::check_claims(&unverified.claims, expected)?;
            let role = provider.role(&unverified.claims)?;
            return Ok(Principal { subject: subject.to_owned(), role, client: client_of(&unverified.claims) });
        }
        let trusted: Vec<String> = inner
            .issuer
            .iter()
            .map(|i| format!("`{}`", i.id()))
            .chain(inner.provider.iter().map(|p| format!("`{}`", p.issuer)))
            .collect();
        Err(AuthError::WrongIssuer(format!(
            "`{}`; this server trusts {}",
            iss.chars().take(128).collect::<String>(),
            trusted.join(" and ")
        )))
    }

    /// [`Authenticator::verify`], refusals as problem documents (401, or 403 for no role).
    pub(crate) async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Problem> {
        self.verify(authorization).await.map_err(|error| {
            tracing::debug!(%error, "bearer token refused");
            error.problem()
        })
    }

    /// 403 unless `principal` holds `needed` or a higher role.
    pub(crate) fn require(principal: &Principal, needed: Role) -> Result<(), Problem> {
        if principal.role >= needed {
            return Ok(());
        }
        let mut problem = Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Not allowed",
            format!("this needs the {needed} role; `{}` holds {}", principal.subject, principal.role),
        );
        problem.www_authenticate = Some(format!(
            "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{needed}\", error_description=\"{}\"",
            challenge_text(&problem.detail)
        ));
        Err(problem)
    }
}

/// The client a token was issued to: `client_id` (RFC 9068), else `azp` (OIDC).
fn client_of(claims: &Map<String, Value>) -> Option<String> {
    ["client_id", "azp"].iter().find_map(|name| claims.get(*name).and_then(Value::as_str)).map(str::to_owned)
}

/// `GET /api/v1/whoami[?role=<role>]`: the caller's principal, for a client checking its
/// token; with `role`, 403 unless the token holds that role or a higher one.
pub(crate) async fn whoami(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Auth)?;
    let header = request.headers().get(actix_web::http::header::AUTHORIZATION);
    let header = match header.map(|v| v.to_str()) {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => {
            return Err(AuthError::Malformed("the Authorization header is not visible ASCII".into()).problem());
        }
        None => None,
    };
    let principal = state.auth.authenticate(header).await?;
    let query = web::Query::<BTreeMap<String, String>>::from_query(request.query_string())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-query", "Bad query", e.to_string()))?;
    if let Some(name) = query.get("role") {
        let needed = Role::parse(name).ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad-query",
                "Bad query",
                format!("role: expected viewer, trader or admin, got `{}`", name.chars().take(32).collect::<String>()),
            )
        })?;
        Authenticator::require(&principal, needed)?;
    }
    Ok(HttpResponse::Ok().insert_header((actix_web::http::header::CACHE_CONTROL, "no-store")).json(&principal))
}

pub(crate) use issuer::{discovery, jwks as jwks_document, token};

impl AuthSettings {
    /// `[http.auth]` as resolved, with its clients' secrets (in the same order).
    pub fn from_config(auth: &crate::config::ResolvedAuth, secrets: Vec<Secret>) -> Self {
        let clients = auth
            .clients
            .iter()
            .zip(secrets)
            .map(|(client, secret)| AuthClient { client_id: client.client_id.clone(), secret, role: client.role })
            .collect();
        Self {
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            token_ttl: auth.token_ttl,
            clients,
            oidc: auth.oidc.clone(),
        }
    }
}
