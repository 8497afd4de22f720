//! `[http]`: the HTTP server (webhooks, health, metrics): where it listens, its limits, and
//! the webhooks it serves with their secrets (by reference) and sources.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mirror_model::Origin;

use super::locate::FieldPath;
use super::resolve::{Errors, ResolvedSource, defined_sources};
use super::schema::{HttpSection, WebhookEntry, WebhookKindEntry};
use crate::http::{HttpLimits, IpNet, WebhookKind};
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
}

/// Reads `[http]`. `sources`: every valid `[[sources]]` entry.
pub(super) fn http(
    errors: &mut Errors<'_>,
    file: usize,
    section: &HttpSection,
    sources: &[ResolvedSource],
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
    let (Some(listen), true) = (listen, errors.count() == before) else { return None };
    Some(ResolvedHttp { listen, tls, limits, webhooks })
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
        };
        if let (Some(source), true) = (source, errors.count() == before) {
            resolved.push(ResolvedWebhook {
                name: entry.name.clone(),
                kind,
                secret: entry.secret.clone(),
                source,
                allow_ips,
            });
        }
    }
    resolved
}
