//! The HTTP server (`[http]`, actix-web): webhooks that turn TradingView alerts, signed JSON
//! signals, Telegram channel messages ([`telegram`]) and an MT4/MT5 Expert Advisor's trade
//! events ([`ea`]) into engine signals for a configured source; the REST API and the event
//! stream under `/api/v1` ([`api`], [`stream`]) with its OpenAPI document; OAuth2 bearer
//! tokens for the API ([`auth`]: the built-in issuer's `POST /oauth/token`, its keys and
//! discovery document, `GET /api/v1/whoami`); `GET /api/v1/health` and Prometheus
//! `GET /metrics`. Every route is rate-limited per client address and bounded in body size;
//! every refusal is an RFC 9457 problem document naming what is wrong, and nothing of a
//! refused request reaches the engine. A webhook is answered once
//! [`EngineHandle::submit`] has returned: with the journal on, the signal is durable then.

mod api;
mod auth;
mod catalog;
mod config_edit;
mod ea;
mod fields;
mod json;
mod limits;
mod live;
mod metrics;
mod openapi;
mod problem;
mod signal;
mod signed;
mod state_file;
mod stream;
mod submit;
mod telegram;
mod ticket;
mod tradingview;

pub use catalog::{Catalog, CatalogAccount, CatalogLink, CatalogSource};
pub(crate) use fields::kind_of;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, web};
use mirror_model::{Origin, Qty, SignalId, Symbol};

use crate::gateway::GatewayLimits;
use crate::runtime::{EngineHandle, SubmitError};
use crate::secrets::Secret;
pub use auth::{AuthClient, AuthError, AuthSettings, Authenticator, FETCH_TIMEOUT, OidcSettings, Principal, Role};
use limits::{RateLimiter, Route};
use live::Live;
use mirror_model::SignalAction;
use problem::Problem;
use signal::Order;

/// Limits of the HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request body, bytes (default 64 KiB).
    pub body_limit_bytes: usize,
    /// Sustained requests per second per client address and route (default 10).
    pub rate_per_second: u32,
    /// Requests at once before the sustained rate applies (default 20).
    pub rate_burst: u32,
    /// Longest wait for the engine to accept a signal (default 15 s).
    pub submit_timeout: Duration,
    /// Event batches queued for one WebSocket subscriber before it is dropped from the
    /// broadcast and starts again from a snapshot (default 1,024).
    pub stream_queue: usize,
    /// Longest a WebSocket write may wait for the client to read before it is disconnected
    /// (default 5 s).
    pub stream_write_timeout: Duration,
    /// WebSocket streams open at once at most (default 256).
    pub streams_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            rate_per_second: 10,
            rate_burst: 20,
            submit_timeout: Duration::from_secs(15),
            stream_queue: 1_024,
            stream_write_timeout: Duration::from_secs(5),
            streams_max: 256,
        }
    }
}

/// What a webhook accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookKind {
    /// TradingView alerts, JSON or text; the secret in the path or in the body.
    TradingView,
    /// Mirror's JSON signal with an HMAC-SHA256 signature and a timestamp.
    Signed,
    /// Telegram Bot API updates, read as channel signals (see `telegram`).
    Telegram,
    /// An MT4/MT5 Expert Advisor's trade events (see `ea`).
    MetatraderEa,
}

/// An IP network (`10.0.0.0/8`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in the network (an IPv4 address seen as IPv6-mapped counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expected = || format!("expected an IP address or a network such as 10.0.0.0/8, got `{text}`");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| expected())?)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| expected())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("`{text}`: a prefix of at most {max} bits expected"));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One webhook, its secret resolved.
pub struct Webhook {
    /// Its name.
    pub name: String,
    /// What it accepts.
    pub kind: WebhookKind,
    /// Its shared secret.
    pub secret: Secret,
    /// The source its signals are sent as.
    pub origin: Origin,
    /// Symbols it may send: the source's list, or the whole catalog.
    pub symbols: Vec<Symbol>,
    /// Client addresses allowed (empty: any).
    pub allow_ips: Vec<IpNet>,
    /// Telegram: the chats whose messages are executed (empty: any).
    pub chats: Vec<i64>,
    /// Telegram: the leader quantity a channel signal opens (1 when `None`).
    pub qty: Option<Qty>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// What the server needs to start.
#[derive(Debug)]
pub struct HttpSettings {
    /// TCP address (port 0: a free one, see [`HttpServer::local_addr`]).
    pub listen: SocketAddr,
    /// HTTPS with this certificate chain (leaf first) and key, PEM files; plain HTTP without.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Limits.
    pub limits: HttpLimits,
    /// Webhooks.
    pub webhooks: Vec<Webhook>,
    /// The configuration's accounts, sources and links in force, for the REST API (replaced
    /// when the configuration is applied live).
    pub catalog: Arc<arc_swap::ArcSwap<Catalog>>,
    /// The configuration in force, read and applied live by `GET`/`PUT /api/v1/config`
    /// (admin); none: those routes answer 404.
    pub config: Option<Arc<dyn crate::gateway::ConfigService>>,
    /// Bearer tokens for the API (`[http.auth]`); without: the API refuses every request.
    pub auth: Option<AuthSettings>,
    /// Where state that outlives a restart is kept, one file each (the built-in issuer's
    /// signing key, the Telegram book, the EA sequence numbers); none: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The settings are not usable.
    #[error("{0}")]
    Settings(String),
    /// The certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The running server.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<()>,
    state: Arc<State>,
}

impl HttpServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets requests in progress finish (a few seconds at most), and returns.
    pub async fn shutdown(self) {
        // Streams end first (they would hold the graceful stop for its whole timeout).
        if let Some(live) = &self.state.live {
            live.stop().await;
        }
        self.handle.stop(true).await;
        let _ = self.task.await;
    }
}

/// State shared by the workers.
struct State {
    engine: EngineHandle,
    limits: HttpLimits,
    webhooks: Vec<Webhook>,
    /// SHA-256 of each TradingView webhook's secret, with its index.
    tradingview: Vec<([u8; 32], usize)>,
    rates: RateLimiter,
    replays: signed::ReplayCache,
    telegram: telegram::Hooks,
    ea: ea::Hooks,
    started: Instant,
    auth: Authenticator,
    /// The live state (state hub and signal board); only with `[http.auth]`, without which
    /// nothing may read it.
    live: Option<Live>,
    /// Accounts, sources and links as in force.
    catalog: Arc<arc_swap::ArcSwap<Catalog>>,
    /// The configuration service (read, apply live).
    config: Option<Arc<dyn crate::gateway::ConfigService>>,
    /// The OpenAPI document, built once.
    openapi: serde_json::Value,
    /// Write timeout and heartbeat of WebSocket streams (and the hub's queues).
    stream_limits: GatewayLimits,
    /// WebSocket streams open now.
    streams: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State").field("webhooks", &self.webhooks.len()).finish_non_exhaustive()
    }
}

/// Starts the server on the caller's tokio runtime (actix-web runs its workers on threads of
/// their own).
pub fn spawn_http(engine: EngineHandle, settings: HttpSettings) -> Result<HttpServer, HttpError> {
    let mut tradingview: Vec<([u8; 32], usize)> = Vec::new();
    for (index, webhook) in settings.webhooks.iter().enumerate() {
        if webhook.secret.expose().len() < crate::gateway::TOKEN_LEN_MIN {
            return Err(HttpError::Settings(format!(
                "webhook `{}`: a secret of at least {} characters expected",
                webhook.name,
                crate::gateway::TOKEN_LEN_MIN
            )));
        }
        if webhook.kind == WebhookKind::TradingView {
            let digest = crate::gateway::token_digest(webhook.secret.expose().as_bytes());
            // The secret in the path is what tells TradingView webhooks apart.
            if let Some((_, other)) = tradingview.iter().find(|(d, _)| crate::gateway::digests_equal(d, &digest)) {
                return Err(HttpError::Settings(format!(
                    "webhooks `{}` and `{}` have the same secret; each TradingView webhook needs its own",
                    settings.webhooks[*other].name, webhook.name
                )));
            }
            tradingview.push((digest, index));
        }
    }
    let tls = match &settings.tls {
        Some((cert, key)) => Some(
            crate::gateway::TlsIdentity::from_files(cert, key)
                .and_then(|identity| identity.tcp_config(&[b"http/1.1"]))
                .map_err(|e| HttpError::Tls(e.to_string()))?,
        ),
        None => None,
    };
    let stream_limits = GatewayLimits {
        subscriber_queue: settings.limits.stream_queue,
        write_timeout: settings.limits.stream_write_timeout,
        submit_timeout: settings.limits.submit_timeout,
        ..GatewayLimits::default()
    };
    let listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|source| HttpError::Bind { addr: settings.listen, source })?;
    let local_addr = listener.local_addr().map_err(|source| HttpError::Bind { addr: settings.listen, source })?;
    let auth = match settings.auth {
        Some(auth) => {
            let scheme = if tls.is_some() { "https" } else { "http" };
            Authenticator::new(
                auth,
                settings.state_dir.as_deref(),
                &format!("{scheme}://{local_addr}"),
                engine.clock().clone(),
            )
            .map_err(|e| HttpError::Settings(format!("[http.auth]: {e}")))?
        }
        None => Authenticator::unconfigured(),
    };
    let telegram =
        telegram::Hooks::open(&settings.webhooks, settings.state_dir.as_deref()).map_err(HttpError::Settings)?;
    let ea = ea::Hooks::open(&settings.webhooks, settings.state_dir.as_deref()).map_err(HttpError::Settings)?;
    let state = Arc::new(State {
        live: auth.is_configured().then(|| Live::start(engine.clone(), stream_limits.clone())),
        catalog: settings.catalog,
        config: settings.config,
        openapi: openapi::build(),
        stream_limits,
        streams: std::sync::atomic::AtomicUsize::new(0),
        engine,
        rates: RateLimiter::new(settings.limits.rate_per_second, settings.limits.rate_burst, limits::BUCKETS_MAX),
        limits: settings.limits,
        webhooks: settings.webhooks,
        tradingview,
        replays: signed::ReplayCache::default(),
        telegram,
        ea,
        started: Instant::now(),
        auth,
    });
    let data = web::Data::from(Arc::clone(&state));
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(resource("/api/v1/health", web::get().to(health)))
            .service(resource("/metrics", web::get().to(metrics::metrics)))
            .service(resource("/webhooks/tradingview", web::post().to(tradingview_hook)))
            .service(resource("/webhooks/tradingview/{secret}", web::post().to(tradingview_hook)))
            .service(resource("/webhooks/signed/{name}", web::post().to(signed_hook)))
            .service(resource(auth::issuer::TOKEN_PATH, web::post().to(auth::token)))
            .service(resource(auth::issuer::JWKS_PATH, web::get().to(auth::jwks_document)))
            .service(resource("/.well-known/openid-configuration", web::get().to(auth::discovery)))
            .service(resource("/api/v1/whoami", web::get().to(auth::whoami)))
            .configure(api::routes)
            .service(resource("/webhooks/telegram/{name}", web::post().to(telegram::hook)))
            .service(resource("/webhooks/ea/{name}", web::post().to(ea::hook)))
            .default_service(web::to(not_found))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5)
    .max_connections(1_024)
    // Slow clients are cut off: headers within 5 s, idle keep-alive 30 s.
    .client_request_timeout(Duration::from_secs(5))
    .keep_alive(Duration::from_secs(30));
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config),
        None => server.listen(listener),
    }
    .map_err(|source| HttpError::Bind { addr: local_addr, source })?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::warn!(%error, "the HTTP server stopped with an error");
        }
    });
    tracing::info!(%local_addr, tls = settings.tls.is_some(), "HTTP server listening");
    Ok(HttpServer { local_addr, handle, task, state })
}

/// The path as messages show it: a route's pattern (`/webhooks/tradingview/{secret}`, never
/// the secret in it), or the first characters of an unknown path.
fn shown_path(request: &HttpRequest) -> String {
    request.match_pattern().unwrap_or_else(|| request.path().chars().take(64).collect())
}

fn resource(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path).route(route).default_service(web::to(method_not_allowed))
}

async fn not_found(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Other)?;
    Err(Problem::not_found(format!("no route {} {}", request.method(), shown_path(&request))))
}

async fn method_not_allowed(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Other)?;
    Err(Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("{} is not accepted on {}", request.method(), shown_path(&request)),
    ))
}

impl State {
    fn client(request: &HttpRequest) -> IpAddr {
        request.peer_addr().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
    }

    fn admit(&self, request: &HttpRequest, route: Route) -> Result<(), Problem> {
        self.rates.admit(route, Self::client(request), Instant::now()).map_err(|seconds| {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                format!(
                    "more than {} requests per second (bursts of {}) from {} on {}; retry in {seconds} s",
                    self.limits.rate_per_second,
                    self.limits.rate_burst,
                    Self::client(request),
                    shown_path(request)
                ),
            );
            problem.retry_after_s = Some(seconds);
            problem
        })
    }

    fn allowed(webhook: &Webhook, request: &HttpRequest) -> Result<(), Problem> {
        let client = Self::client(request);
        if webhook.allow_ips.is_empty() || webhook.allow_ips.iter().any(|net| net.contains(client)) {
            return Ok(());
        }
        tracing::warn!(webhook = %webhook.name, %client, "webhook call from an address not allowed");
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "address-not-allowed",
            "Address not allowed",
            format!("{client} is not in this webhook's allow_ips"),
        ))
    }

    /// The TradingView webhook whose secret this is, comparing every one in constant time.
    fn tradingview_webhook(&self, presented: &str) -> Option<&Webhook> {
        let presented = crate::gateway::token_digest(presented.as_bytes());
        let mut found = None;
        for (digest, index) in &self.tradingview {
            if crate::gateway::digests_equal(digest, &presented) {
                found = Some(*index);
            }
        }
        found.map(|index| &self.webhooks[index])
    }

    async fn body(&self, payload: web::Payload) -> Result<web::Bytes, Problem> {
        let limit = self.limits.body_limit_bytes;
        match payload.to_bytes_limited(limit).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(error)) => Err(Problem::malformed(format!("the body could not be read: {error}"))),
            Err(_) => Err(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Body too large",
                format!("the body is over the limit of {limit} bytes (http.body_limit_bytes)"),
            )),
        }
    }

    /// Sends the order as the webhook's source; answered once the engine has taken it.
    async fn submit(&self, webhook: &Webhook, order: Order, note: String) -> Result<HttpResponse, Problem> {
        let action = order.into_action(|| self.engine.next_signal_id().0);
        let signal = self.submit_action(webhook.origin, &webhook.name, action, note).await?;
        Ok(accepted(signal, &webhook.name))
    }

    /// Sends a signal as `origin` (`label` names the webhook or source in logs); its id once
    /// the engine has taken it (durably, with the journal).
    pub(crate) async fn submit_action(
        &self,
        origin: Origin,
        label: &str,
        action: SignalAction,
        note: String,
    ) -> Result<SignalId, Problem> {
        match submit::submit(self, origin, action, None, note).await {
            Ok(signal) => {
                tracing::info!(from = label, %signal, "signal accepted");
                Ok(signal)
            }
            Err(refusal) => {
                tracing::info!(from = label, %refusal, "signal refused");
                Err(refusal.problem())
            }
        }
    }

    /// Admits the request (rate limit) and authenticates its bearer token for `needed`.
    pub(crate) async fn authorize(
        &self,
        request: &HttpRequest,
        route: Route,
        needed: Role,
    ) -> Result<Principal, Problem> {
        self.admit(request, route)?;
        let header = request.headers().get("authorization").and_then(|v| v.to_str().ok());
        self.authenticate(header, needed).await
    }

    /// Authenticates an `Authorization` header value for `needed`.
    pub(crate) async fn authenticate(&self, authorization: Option<&str>, needed: Role) -> Result<Principal, Problem> {
        let principal = self.auth.authenticate(authorization).await?;
        Authenticator::require(&principal, needed)?;
        Ok(principal)
    }
}

fn accepted(signal: SignalId, webhook: &str) -> HttpResponse {
    HttpResponse::Accepted().json(serde_json::json!({ "signal": signal.0, "webhook": webhook, "status": "accepted" }))
}

fn submit_problem(error: &SubmitError) -> Problem {
    match error {
        SubmitError::Invalid(_) | SubmitError::UnknownSymbol { .. } | SubmitError::UnknownOrigin(_) => {
            Problem::invalid(error.to_string())
        }
        SubmitError::Stopped => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "stopped", "Engine stopped", error.to_string())
        }
        SubmitError::Unconfirmed(_) => {
            Problem::new(StatusCode::GATEWAY_TIMEOUT, "unconfirmed", "Not confirmed", error.to_string())
        }
        SubmitError::Encode(_) | SubmitError::Journal(_) => Problem::internal(error.to_string()),
    }
}

async fn health(request: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Health)?;
    let engine = state.engine.clone();
    let views = tokio::task::spawn_blocking(move || engine.accounts())
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| submit_problem(&e))?;
    let connected = views.iter().filter(|v| v.summary.connected).count();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "uptime_s": state.started.elapsed().as_secs(),
        "accounts": views.len(),
        "connected": connected,
        "signals": state.engine.stats().signals,
    })))
}

async fn tradingview_hook(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::TradingView)?;
    let in_path = request.match_info().get("secret").map(str::to_owned);
    let from_path =
        match &in_path {
            Some(secret) => Some(state.tradingview_webhook(secret).ok_or_else(|| {
                Problem::unauthorized("the secret in the path does not match any TradingView webhook")
            })?),
            None => None,
        };
    if let Some(webhook) = from_path {
        State::allowed(webhook, &request)?;
    }
    let body = state.body(payload).await?;
    let alert = tradingview::read(&body)?;
    let webhook = match (from_path, alert.secret()?) {
        (Some(webhook), None) => webhook,
        (Some(webhook), Some(secret)) => {
            if state.tradingview_webhook(secret).map(|w| &w.name) != Some(&webhook.name) {
                return Err(Problem::unauthorized("secret: does not match the secret in the path"));
            }
            webhook
        }
        (None, Some(secret)) => {
            let webhook = state
                .tradingview_webhook(secret)
                .ok_or_else(|| Problem::unauthorized("secret: does not match any TradingView webhook"))?;
            State::allowed(webhook, &request)?;
            webhook
        }
        (None, None) => {
            return Err(Problem::unauthorized(
                "no secret: post to /webhooks/tradingview/<secret> or put \"secret\" in the JSON alert",
            ));
        }
    };
    let order = alert.order(&webhook.symbols)?;
    let note = format!("tradingview:{}", webhook.name);
    state.submit(webhook, order, note).await
}

async fn signed_hook(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, Problem> {
    state.admit(&request, Route::Signed)?;
    let name = request.match_info().get("name").unwrap_or_default();
    let webhook = state
        .webhooks
        .iter()
        .find(|w| w.kind == WebhookKind::Signed && w.name == name)
        .ok_or_else(|| Problem::not_found(format!("no signed webhook is named `{name}`")))?;
    State::allowed(webhook, &request)?;
    let body = state.body(payload).await?;
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let now_s = state.engine.clock().now().unix_ms.div_euclid(1000);
    let signature = signed::verify(
        webhook.secret.expose().as_bytes(),
        header(signed::TIMESTAMP_HEADER),
        header(signed::SIGNATURE_HEADER),
        &body,
        now_s,
    )?;
    state.replays.check(signature, now_s, signed::REPLAY_CACHE_MAX)?;
    let (order, note) = signed::parse(&body, &webhook.symbols)?;
    state.submit(webhook, order, note).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()) && !one.contains("127.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("localhost".parse::<IpNet>().is_err());
        assert!("0.0.0.0/0".parse::<IpNet>().unwrap().contains("8.8.8.8".parse().unwrap()));
    }
}
