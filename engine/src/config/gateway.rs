//! `[gateway]`: the QUIC gateway `mirror-sdk` clients connect to: where it listens, its
//! certificate, its limits, and the tokens it accepts with their roles and sources.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mirror_model::Origin;

use super::locate::FieldPath;
use super::resolve::{Errors, ResolvedSource, defined_sources};
use super::schema::{GatewayRole, GatewaySection, GatewayTokenEntry};
use crate::gateway::{GatewayLimits, Identity, Role};
use crate::secrets::CredentialRef;

/// Most connections a gateway may be configured to hold.
const CONNECTIONS_MAX: usize = 10_000;

/// The SDK keeps a connection alive every 5 s by default: a shorter idle timeout would close
/// quiet connections.
const IDLE_TIMEOUT_MS_MIN: u64 = 10_000;

/// The `[gateway]` section, ready to start. Token values stay references until the engine
/// starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGateway {
    /// UDP address it listens on.
    pub listen: SocketAddr,
    /// Its certificate: generated and kept in a directory, or configured files.
    pub identity: Identity,
    /// Client certificates required, signed by this CA (PEM).
    pub client_ca: Option<PathBuf>,
    /// Limits (the defaults, with what the section changes).
    pub limits: GatewayLimits,
    /// Accepted tokens, in file order.
    pub tokens: Vec<ResolvedGatewayToken>,
}

/// One `[[gateway.tokens]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedGatewayToken {
    /// Its name (logged instead of the token).
    pub name: String,
    /// Where its value comes from.
    pub token: CredentialRef,
    /// What it allows.
    pub role: Role,
    /// The source its orders are sent as, and that source's name.
    pub source: Option<(Origin, String)>,
    /// Left out, rather than failing the start, when its reference does not resolve.
    pub optional: bool,
}

fn role(role: GatewayRole) -> Role {
    match role {
        GatewayRole::Viewer => Role::Viewer,
        GatewayRole::Trader => Role::Trader,
        GatewayRole::Admin => Role::Admin,
    }
}

/// Reads `[gateway]`. `sources`: every valid `[[sources]]` entry; `accounts`: every account
/// name (for a clearer message when a token names one as its source).
pub(super) fn gateway(
    errors: &mut Errors<'_>,
    file: usize,
    section: &GatewaySection,
    sources: &[ResolvedSource],
    accounts: &dyn Fn(&str) -> bool,
) -> Option<ResolvedGateway> {
    let path = FieldPath::root().key("gateway");
    let before = errors.count();
    let listen = errors.socket_address(file, &path.key("listen"), &section.listen, "UDP port such as 127.0.0.1:7443");
    let identity = identity(errors, file, &path, section);
    if section.client_ca.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        errors.at(file, &path.key("client_ca"), "must name a PEM file");
    }
    let limits = limits(errors, file, &path, section);
    let tokens = tokens(errors, file, &path, &section.tokens, sources, accounts);
    let (Some(listen), Some(identity), true) = (listen, identity, errors.count() == before) else { return None };
    Some(ResolvedGateway { listen, identity, client_ca: section.client_ca.clone(), limits, tokens })
}

/// `cert_dir` (and `names`), or `cert` and `key`: one of the two.
fn identity(errors: &mut Errors<'_>, file: usize, path: &FieldPath, section: &GatewaySection) -> Option<Identity> {
    let files = match (&section.cert, &section.key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (Some(_), None) => {
            errors.at(file, &path.key("cert"), "needs key (the certificate's private key, PEM)");
            return None;
        }
        (None, Some(_)) => {
            errors.at(file, &path.key("key"), "needs cert (the certificate chain, PEM)");
            return None;
        }
        (None, None) => None,
    };
    for (key, value) in [("cert", &section.cert), ("key", &section.key), ("cert_dir", &section.cert_dir)] {
        if value.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            errors.at(file, &path.key(key), "must not be empty");
            return None;
        }
    }
    match (files, &section.cert_dir) {
        (Some(_), Some(_)) => {
            errors.at(
                file,
                &path.key("cert_dir"),
                "give either cert_dir (a self-signed certificate generated there) or cert and key, not both",
            );
            None
        }
        (Some((cert, key)), None) => {
            if section.names.is_some() {
                errors.at(
                    file,
                    &path.key("names"),
                    "`names` are for the certificate generated in cert_dir; a configured certificate carries its own",
                );
                return None;
            }
            Some(Identity::Files { cert, key })
        }
        (None, Some(dir)) => {
            let names = section.names.clone().unwrap_or_else(|| vec!["localhost".to_owned()]);
            if names.is_empty() {
                errors.at(file, &path.key("names"), "must list at least one DNS name or IP address");
                return None;
            }
            let before = errors.count();
            for (index, name) in names.iter().enumerate() {
                if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                    errors.at(
                        file,
                        &path.key("names").index(index),
                        format!("`{name}` is not a DNS name or an IP address"),
                    );
                }
            }
            (errors.count() == before).then(|| Identity::Generated { dir: dir.clone(), names })
        }
        (None, None) => {
            errors.at(
                file,
                path,
                "needs a certificate: cert_dir = \"<directory>\" (a self-signed one generated on first run and kept; \
                 clients pin its fingerprint) or cert and key (PEM files)",
            );
            None
        }
    }
}

fn limits(errors: &mut Errors<'_>, file: usize, path: &FieldPath, section: &GatewaySection) -> GatewayLimits {
    let mut limits = GatewayLimits::default();
    if let Some(max) = section.connections_max {
        if (1..=CONNECTIONS_MAX).contains(&max) {
            limits.connections_max = max;
        } else {
            errors.at(
                file,
                &path.key("connections_max"),
                format!("must be between 1 and {CONNECTIONS_MAX}, got {max}"),
            );
        }
    }
    let mut millis = |key: &str, value: Option<u64>, min: u64, max: u64, why: &str, set: &mut Duration| {
        let Some(ms) = value else { return };
        if (min..=max).contains(&ms) {
            *set = Duration::from_millis(ms);
        } else {
            errors.at(file, &path.key(key), format!("must be between {min} and {max} ms{why}, got {ms}"));
        }
    };
    millis(
        "idle_timeout_ms",
        section.idle_timeout_ms,
        IDLE_TIMEOUT_MS_MIN,
        3_600_000,
        " (clients keep alive every 5 s)",
        &mut limits.idle_timeout,
    );
    millis("submit_timeout_ms", section.submit_timeout_ms, 1_000, 120_000, "", &mut limits.submit_timeout);
    millis("pair_settle_ms", section.pair_settle_ms, 100, 60_000, "", &mut limits.pair_settle);
    limits
}

fn tokens(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entries: &[GatewayTokenEntry],
    sources: &[ResolvedSource],
    accounts: &dyn Fn(&str) -> bool,
) -> Vec<ResolvedGatewayToken> {
    if entries.is_empty() {
        errors.at(
            file,
            path,
            "needs at least one [[gateway.tokens]] entry (name, token = \"env:<VAR>\" or \"secret:<name>\", role); \
             without one nobody can connect",
        );
        return Vec::new();
    }
    let defined = defined_sources(sources);
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut references: BTreeMap<&CredentialRef, &str> = BTreeMap::new();
    let mut resolved = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let path = path.key("tokens").index(index);
        let before = errors.count();
        if entry.name.trim().is_empty() {
            errors.at(file, &path.key("name"), "must not be empty");
        } else if let Some(first) = names.insert(&entry.name, index) {
            errors.at(file, &path.key("name"), format!("token `{}` is already gateway.tokens[{first}]", entry.name));
        }
        if let Some(other) = references.insert(&entry.token, &entry.name) {
            errors.at(
                file,
                &path.key("token"),
                format!("token `{other}` uses the same reference ({}); each token needs its own value", entry.token),
            );
        }
        let source = match (entry.role, &entry.source) {
            (GatewayRole::Viewer, Some(_)) => {
                errors.at(file, &path.key("source"), "a viewer token sends no orders; `source` is not used");
                None
            }
            (GatewayRole::Trader, None) => {
                errors.at(
                    file,
                    &path,
                    format!(
                        "a trader token needs `source = \"<name>\"`, the [[sources]] entry its orders are sent as \
                         ({defined})"
                    ),
                );
                None
            }
            (_, Some(name)) => match sources.iter().find(|s| &s.name == name) {
                Some(source) => Some((Origin::Source(source.id), source.name.clone())),
                None if accounts(name) => {
                    errors.at(
                        file,
                        &path.key("source"),
                        format!(
                            "`{name}` is an account; a token's orders are sent as a source: add a [[sources]] entry \
                             and link it to the followers ({defined})"
                        ),
                    );
                    None
                }
                None => {
                    errors.at(file, &path.key("source"), format!("no [[sources]] entry is named `{name}` ({defined})"));
                    None
                }
            },
            (_, None) => None,
        };
        if errors.count() == before {
            resolved.push(ResolvedGatewayToken {
                name: entry.name.clone(),
                token: entry.token.clone(),
                role: role(entry.role),
                source,
                optional: entry.optional,
            });
        }
    }
    resolved
}
