//! `[http]`: the HTTP server (webhooks, health, metrics, the API): where it listens, its
//! limits, the webhooks it serves with their secrets (by reference) and sources, and
//! `[http.auth]`: the bearer tokens the API accepts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mirror_model::{Origin, Qty};

use super::locate::FieldPath;
use super::resolve::{Errors, ResolvedSource, defined_sources};
use super::schema::{AuthSection, HttpSection, OidcSection, WebhookEntry, WebhookKindEntry};
use crate::http::{FETCH_TIMEOUT, HttpLimits, IpNet, OidcSettings, Role, WebhookKind};
use crate::secrets::CredentialRef;

/// Largest body limit that may be configured: webhooks carry one small signal.
const BODY_LIMIT_MAX: usize = 1024 * 1024;

/// The `[http]` section, ready to start. Secrets stay references until the engine starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedHttp {
    /// TCP address it listens on.
    pub listen: SocketAddr,
    /// HTTPS: the certificate chain and key files (PEM); plain HTTP without.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Limits (the defaults, with what the section changes).
    pub limits: HttpLimits,
    /// The webhooks, in file order.
    pub webhooks: Vec<ResolvedWebhook>,
    /// Where state that outlives a restart is kept: `state_dir`, or `<[storage] dir>/http`.
    pub state_dir: PathBuf,
    /// `[http.auth]`, when given (without it the API refuses every request).
    pub auth: Option<ResolvedAuth>,
}

/// `[http.auth]`. Client secrets stay references until the engine starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedAuth {
    /// The built-in issuer's identifier, when configured.
    pub issuer: Option<String>,
    /// The audience tokens carry.
    pub audience: String,
    /// Lifetime of the built-in issuer's tokens.
    pub token_ttl: Duration,
    /// The built-in issuer's clients, in file order.
    pub clients: Vec<ResolvedAuthClient>,
    /// An external provider.
    pub oidc: Option<OidcSettings>,
}

/// One `[[http.auth.clients]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedAuthClient {
    /// Its id.
    pub client_id: String,
    /// Where its secret comes from.
    pub secret: CredentialRef,
    /// The highest role its tokens may have.
    pub role: Role,
}

/// One `[[http.webhooks]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedWebhook {
    /// Its name.
    pub name: String,
    /// What it accepts.
    pub kind: WebhookKind,
    /// Where its secret comes from.
    pub secret: CredentialRef,
    /// The source its signals are sent as, and that source's name.
    pub source: (Origin, String),
    /// Client addresses allowed (empty: any).
    pub allow_ips: Vec<IpNet>,
    /// Telegram: the chats whose messages are executed (empty: any).
    pub chats: Vec<i64>,
    /// Telegram: the leader quantity each channel signal opens with (1 unless configured);
    /// `None` for other kinds.
    pub qty: Option<Qty>,
}

/// Reads `[http]`. `sources`: every valid `[[sources]]` entry; `storage_dir`: `[storage] dir`.
pub(super) fn http(
    errors: &mut Errors<'_>,
    file: usize,
    section: &HttpSection,
    sources: &[ResolvedSource],
    storage_dir: &str,
) -> Option<ResolvedHttp> {
    let path = FieldPath::root().key("http");
    let before = errors.count();
    let listen = errors.socket_address(file, &path.key("listen"), &section.listen, "TCP port such as 127.0.0.1:8080");
    let tls = match (&section.tls_cert, &section.tls_key) {
        (Some(cert), Some(key)) if !cert.as_os_str().is_empty() && !key.as_os_str().is_empty() => {
            Some((cert.clone(), key.clone()))
        }
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.at(file, &path.key("tls_cert"), "tls_cert and tls_key must name PEM files");
            None
        }
        (Some(_), None) => {
            errors.at(file, &path.key("tls_cert"), "needs tls_key (the certificate's private key, PEM)");
            None
        }
        (None, Some(_)) => {
            errors.at(file, &path.key("tls_key"), "needs tls_cert (the certificate chain, PEM, leaf first)");
            None
        }
    };
    let limits = limits(errors, file, &path, section);
    let webhooks = webhooks(errors, file, &path, &section.webhooks, sources);
    let auth = section.auth.as_ref().map(|auth| self::auth(errors, file, &path.key("auth"), auth, &section.webhooks));
    let state_dir = match &section.state_dir {
        Some(dir) if dir.as_os_str().is_empty() => {
            errors.at(file, &path.key("state_dir"), "must name a directory");
            PathBuf::new()
        }
        Some(dir) => dir.clone(),
        None => PathBuf::from(storage_dir).join("http"),
    };
    let (Some(listen), true) = (listen, errors.count() == before) else { return None };
    Some(ResolvedHttp { listen, tls, limits, webhooks, state_dir, auth })
}

fn limits(errors: &mut Errors<'_>, file: usize, path: &FieldPath, section: &HttpSection) -> HttpLimits {
    let mut limits = HttpLimits::default();
    if let Some(bytes) = section.body_limit_bytes {
        if (256..=BODY_LIMIT_MAX).contains(&bytes) {
            limits.body_limit_bytes = bytes;
        } else {
            errors.at(
                file,
                &path.key("body_limit_bytes"),
                format!("must be between 256 and {BODY_LIMIT_MAX} bytes, got {bytes}"),
            );
        }
    }
    let mut count = |key: &str, value: Option<u32>, set: &mut u32| {
        let Some(value) = value else { return };
        if (1..=100_000).contains(&value) {
            *set = value;
        } else {
            errors.at(file, &path.key(key), format!("must be between 1 and 100000, got {value}"));
        }
    };
    count("rate_per_second", section.rate_per_second, &mut limits.rate_per_second);
    count("rate_burst", section.rate_burst, &mut limits.rate_burst);
    if let Some(ms) = section.submit_timeout_ms {
        if (1_000..=120_000).contains(&ms) {
            limits.submit_timeout = Duration::from_millis(ms);
        } else {
            errors.at(file, &path.key("submit_timeout_ms"), format!("must be between 1000 and 120000 ms, got {ms}"));
        }
    }
    let mut size = |key: &str, value: Option<usize>, range: std::ops::RangeInclusive<usize>, set: &mut usize| {
        let Some(value) = value else { return };
        if range.contains(&value) {
            *set = value;
        } else {
            errors.at(
                file,
                &path.key(key),
                format!("must be between {} and {}, got {value}", range.start(), range.end()),
            );
        }
    };
    size("stream_queue", section.stream_queue, 1..=65_536, &mut limits.stream_queue);
    size("streams_max", section.streams_max, 1..=10_000, &mut limits.streams_max);
    if let Some(ms) = section.stream_write_timeout_ms {
        if (100..=60_000).contains(&ms) {
            limits.stream_write_timeout = Duration::from_millis(ms);
        } else {
            errors.at(
                file,
                &path.key("stream_write_timeout_ms"),
                format!("must be between 100 and 60000 ms, got {ms}"),
            );
        }
    }
    limits
}

fn webhooks(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entries: &[WebhookEntry],
    sources: &[ResolvedSource],
) -> Vec<ResolvedWebhook> {
    let defined = defined_sources(sources);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut references: BTreeMap<&CredentialRef, &str> = BTreeMap::new();
    let mut resolved = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path = path.key("webhooks").index(index);
        let before = errors.count();
        let valid_name = !entry.name.is_empty()
            && entry.name.len() <= 64
            && entry.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid_name {
            errors.at(
                file,
                &path.key("name"),
                format!(
                    "must be 1 to 64 letters, digits, `-`, `_` or `.` (it is a URL path segment), got `{}`",
                    entry.name
                ),
            );
        } else if let Some(first) = names.insert(&entry.name, index) {
            errors.at(file, &path.key("name"), format!("webhook `{}` is already http.webhooks[{first}]", entry.name));
        }
        if let Some(other) = references.insert(&entry.secret, &entry.name) {
            errors.at(
                file,
                &path.key("secret"),
                format!(
                    "webhook `{other}` uses the same reference ({}); each webhook needs its own secret",
                    entry.secret
                ),
            );
        }
        let source = match sources.iter().find(|s| s.name == entry.source) {
            Some(source) => Some((Origin::Source(source.id), source.name.clone())),
            None => {
                errors.at(
                    file,
                    &path.key("source"),
                    format!("no [[sources]] entry is named `{}` ({defined})", entry.source),
                );
                None
            }
        };
        let mut allow_ips = Vec::with_capacity(entry.allow_ips.len());
        for (i, text) in entry.allow_ips.iter().enumerate() {
            match text.parse::<IpNet>() {
                Ok(net) => allow_ips.push(net),
                Err(reason) => errors.at(file, &path.key("allow_ips").index(i), reason),
            }
        }
        let kind = match entry.kind {
            WebhookKindEntry::Tradingview => WebhookKind::TradingView,
            WebhookKindEntry::Signed => WebhookKind::Signed,
            WebhookKindEntry::Telegram => WebhookKind::Telegram,
            WebhookKindEntry::MetatraderEa => WebhookKind::MetatraderEa,
        };
        let (chats, qty) = telegram_options(errors, file, &path, entry, kind);
        if let (Some(source), true) = (source, errors.count() == before) {
            resolved.push(ResolvedWebhook {
                name: entry.name.clone(),
                kind,
                secret: entry.secret.clone(),
                source,
                allow_ips,
                chats,
                qty,
            });
        }
    }
    resolved
}

/// Longest lifetime of a built-in token: a day; shorter is safer (a token cannot be revoked).
const TOKEN_TTL_MAX_S: u64 = 86_400;

/// An identifier or URL as configured: no surrounding whitespace, no trailing `/`.
fn url_text(text: &str) -> String {
    text.trim().trim_end_matches('/').to_owned()
}

/// An http(s) URL without query or fragment, or why not.
fn check_url(text: &str, https_only: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if !https_only => {}
        scheme => {
            let expected = if https_only { "https://" } else { "http:// or https://" };
            return Err(format!("`{text}`: expected an {expected} URL, not {scheme}://"));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` names no host"));
    }
    if url.fragment().is_some() || (!https_only && url.query().is_some()) {
        let what = if https_only { "a fragment" } else { "a query or fragment" };
        return Err(format!("`{text}`: this URL may not have {what}"));
    }
    Ok(url)
}

fn auth(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    section: &AuthSection,
    webhooks: &[WebhookEntry],
) -> ResolvedAuth {
    let issuer = section.issuer.as_deref().map(url_text);
    if let Some(issuer) = &issuer
        && let Err(reason) = check_url(issuer, false)
    {
        errors.at(file, &path.key("issuer"), reason);
    }
    let audience = section.audience.clone().unwrap_or_else(|| "mirror".to_owned());
    if audience.trim().is_empty() {
        errors.at(file, &path.key("audience"), "must not be empty");
    }
    let mut token_ttl = Duration::from_secs(3_600);
    if let Some(seconds) = section.token_ttl_s {
        if (60..=TOKEN_TTL_MAX_S).contains(&seconds) {
            token_ttl = Duration::from_secs(seconds);
        } else {
            errors.at(
                file,
                &path.key("token_ttl_s"),
                format!("must be between 60 and {TOKEN_TTL_MAX_S} seconds, got {seconds}"),
            );
        }
    }
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut references: BTreeMap<&CredentialRef, String> =
        webhooks.iter().map(|w| (&w.secret, format!("webhook `{}`", w.name))).collect();
    let mut clients = Vec::with_capacity(section.clients.len());
    for (index, entry) in section.clients.iter().enumerate() {
        let path = path.key("clients").index(index);
        let valid_id = !entry.client_id.is_empty()
            && entry.client_id.len() <= 64
            && entry.client_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_id {
            errors.at(
                file,
                &path.key("client_id"),
                format!("must be 1 to 64 letters, digits, `-`, `_` or `.`, got `{}`", entry.client_id),
            );
        } else if let Some(first) = ids.insert(&entry.client_id, index) {
            errors.at(
                file,
                &path.key("client_id"),
                format!("client `{}` is already http.auth.clients[{first}]", entry.client_id),
            );
        }
        if let Some(other) = references.insert(&entry.client_secret, format!("client `{}`", entry.client_id)) {
            errors.at(
                file,
                &path.key("client_secret"),
                format!("{other} uses the same reference ({}); each client needs its own secret", entry.client_secret),
            );
        }
        clients.push(ResolvedAuthClient {
            client_id: entry.client_id.clone(),
            secret: entry.client_secret.clone(),
            role: entry.role,
        });
    }
    let oidc = section.oidc.as_ref().map(|oidc| self::oidc(errors, file, &path.key("oidc"), oidc));
    if section.clients.is_empty() && section.oidc.is_none() {
        errors.at(
            file,
            path,
            "needs [[http.auth.clients]] (Mirror issues tokens itself) or [http.auth.oidc] (an external provider \
             issues them), or both",
        );
    }
    if let (Some(issuer), Some(oidc)) = (&issuer, &oidc)
        && *issuer == oidc.issuer
    {
        errors.at(file, &path.key("oidc").key("issuer"), "is the built-in issuer's too; the two must differ");
    }
    ResolvedAuth { issuer, audience, token_ttl, clients, oidc }
}

fn oidc(errors: &mut Errors<'_>, file: usize, path: &FieldPath, section: &OidcSection) -> OidcSettings {
    let issuer = section.issuer.trim().to_owned();
    if issuer.is_empty() {
        errors.at(file, &path.key("issuer"), "must name the provider's issuer, as its tokens' `iss` claim does");
    }
    if let Err(reason) = check_url(section.jwks_url.trim(), true) {
        errors.at(file, &path.key("jwks_url"), reason);
    }
    if section.audience.as_ref().is_some_and(|a| a.trim().is_empty()) {
        errors.at(file, &path.key("audience"), "must not be empty (leave it out to use [http.auth] audience)");
    }
    let role_claim = section.role_claim.clone().unwrap_or_else(|| "roles".to_owned());
    if role_claim.is_empty() || role_claim.split('.').any(str::is_empty) {
        errors.at(
            file,
            &path.key("role_claim"),
            format!("must be a claim name or a dotted path such as realm_access.roles, got `{role_claim}`"),
        );
    }
    let role_map = if section.role_map.is_empty() {
        [Role::Viewer, Role::Trader, Role::Admin].into_iter().map(|r| (r.as_str().to_owned(), r)).collect()
    } else {
        section.role_map.clone()
    };
    let mut jwks_refresh = Duration::from_secs(3_600);
    if let Some(seconds) = section.jwks_refresh_s {
        if (60..=86_400).contains(&seconds) {
            jwks_refresh = Duration::from_secs(seconds);
        } else {
            errors.at(
                file,
                &path.key("jwks_refresh_s"),
                format!("must be between 60 and 86400 seconds, got {seconds}"),
            );
        }
    }
    if section.ca_file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        errors.at(file, &path.key("ca_file"), "must name a PEM file (leave it out to trust the public web roots)");
    }
    OidcSettings {
        issuer,
        jwks_url: section.jwks_url.trim().to_owned(),
        audience: section.audience.clone(),
        role_claim,
        role_map,
        jwks_refresh,
        ca_file: section.ca_file.clone(),
        fetch_timeout: FETCH_TIMEOUT,
    }
}

/// `chats` and `qty`: read for Telegram webhooks, refused on the others.
fn telegram_options(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entry: &WebhookEntry,
    kind: WebhookKind,
) -> (Vec<i64>, Option<Qty>) {
    if kind != WebhookKind::Telegram {
        let named = match kind {
            WebhookKind::TradingView => "tradingview",
            WebhookKind::Signed => "signed",
            WebhookKind::MetatraderEa => "metatrader_ea",
            WebhookKind::Telegram => "telegram",
        };
        for (key, present) in [("chats", entry.chats.is_some()), ("qty", entry.qty.is_some())] {
            if present {
                errors.at(
                    file,
                    &path.key(key),
                    format!("only telegram webhooks read `{key}`; a {named} webhook's signals carry their own"),
                );
            }
        }
        return (Vec::new(), None);
    }
    let mut chats: Vec<i64> = Vec::new();
    match &entry.chats {
        Some(list) if list.is_empty() => errors.at(
            file,
            &path.key("chats"),
            "list at least one chat id (such as -1001234567890), or leave `chats` out to accept every chat the bot is in",
        ),
        Some(list) => {
            for (i, chat) in list.iter().enumerate() {
                if *chat == 0 {
                    errors.at(file, &path.key("chats").index(i), "0 is not a Telegram chat id");
                } else if let Some(first) = chats.iter().position(|c| c == chat) {
                    errors.at(file, &path.key("chats").index(i), format!("chat {chat} is already chats[{first}]"));
                }
                chats.push(*chat);
            }
        }
        None => {}
    }
    let qty = entry.qty.unwrap_or_else(|| Qty::from_units(1).expect("1 is in range"));
    if !qty.is_positive() {
        errors.at(file, &path.key("qty"), format!("must be above 0, got {qty}"));
    }
    (chats, Some(qty))
}
