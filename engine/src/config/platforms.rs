//! The broker platforms a configuration names: `[ctrader.<session>]` connections, the
//! `[metatrader]` bridge, and the keys each account needs for its platform.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use mirror_model::Platform;

use super::locate::FieldPath;
use super::resolve::Errors;
use super::schema::{AccountEntry, CtraderEntry, MetatraderSection};
use crate::secrets::CredentialRef;

/// Spotware's Open API port for protobuf messages.
const CTRADER_PORT: u16 = 5035;

/// Where a cTrader session connects.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CtraderEndpoint {
    /// `demo.ctraderapi.com:5035`.
    Demo,
    /// `live.ctraderapi.com:5035`.
    Live,
    /// Another server (a proxy, a simulator).
    Address {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

impl CtraderEndpoint {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "demo" => Some(Self::Demo),
            "live" => Some(Self::Live),
            _ => {
                let (host, port) = text.rsplit_once(':')?;
                let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
                (!host.is_empty()).then(|| Self::Address { host: host.to_owned(), port })
            }
        }
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        match self {
            Self::Demo => "demo.ctraderapi.com",
            Self::Live => "live.ctraderapi.com",
            Self::Address { host, .. } => host,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Self::Demo | Self::Live => CTRADER_PORT,
            Self::Address { port, .. } => *port,
        }
    }
}

impl fmt::Display for CtraderEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host().contains(':') {
            write!(f, "[{}]:{}", self.host(), self.port())
        } else {
            write!(f, "{}:{}", self.host(), self.port())
        }
    }
}

/// A `[ctrader.<session>]` connection, ready to open. Credentials stay references until
/// the engine starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedCtrader {
    /// The session's name (the key after `ctrader.`).
    pub name: String,
    /// Where it connects.
    pub endpoint: CtraderEndpoint,
    /// The application's client id.
    pub client_id: CredentialRef,
    /// The application's client secret.
    pub client_secret: CredentialRef,
    /// The access token.
    pub access_token: CredentialRef,
    /// The refresh token, if given.
    pub refresh_token: Option<CredentialRef>,
    /// PEM certificates to trust instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the endpoint's host).
    pub server_name: Option<String>,
}

/// The `[metatrader]` bridge, ready to bind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedBridge {
    /// Address it listens on.
    pub listen: SocketAddr,
    /// Certificate chain and key PEM files, for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain TCP accepted (always without TLS; beside TLS when `allow_plain`).
    pub allow_plain: bool,
}

/// Where an account trades.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Venue {
    /// The simulated broker (in this process, or `[sim] remote`).
    Sim,
    /// A cTrader account on a `[ctrader.<session>]` connection.
    Ctrader {
        /// The session's name.
        session: String,
        /// Its `ctidTraderAccountId`.
        ctid_trader_account_id: i64,
    },
    /// A MetaTrader terminal (its platform says MT4 or MT5) whose EA dials the bridge.
    MetaTrader {
        /// The only login its token is accepted from, if set.
        login: Option<u64>,
    },
}

/// Reads every `[ctrader.<session>]`, reporting duplicates and malformed values.
pub(super) fn ctrader_sessions(
    errors: &mut Errors<'_>,
    sections: &[(usize, &BTreeMap<String, CtraderEntry>)],
) -> BTreeMap<String, ResolvedCtrader> {
    let mut sessions: BTreeMap<String, ResolvedCtrader> = BTreeMap::new();
    let mut defined_in: BTreeMap<String, usize> = BTreeMap::new();
    for (file, entries) in sections {
        for (name, entry) in entries.iter() {
            let path = FieldPath::root().key("ctrader").key(name);
            if let Some(first) = defined_in.insert(name.clone(), *file) {
                let first = errors.file_name(first);
                errors.at(*file, &path, format!("cTrader session `{name}` is already defined in {first}"));
                continue;
            }
            let before = errors.count();
            let endpoint = CtraderEndpoint::parse(entry.endpoint.trim());
            if endpoint.is_none() {
                errors.at(
                    *file,
                    &path.key("endpoint"),
                    format!("must be `demo`, `live` or host:port, got `{}`", entry.endpoint),
                );
            }
            match (&entry.server_name, &endpoint) {
                (Some(server_name), _) if !valid_server_name(server_name) => errors.at(
                    *file,
                    &path.key("server_name"),
                    format!("`{server_name}` is not a DNS name or an IP address"),
                ),
                (None, Some(endpoint)) if !valid_server_name(endpoint.host()) => errors.at(
                    *file,
                    &path.key("endpoint"),
                    format!(
                        "the host `{}` is not a DNS name or an IP address a certificate can carry; give server_name",
                        endpoint.host()
                    ),
                ),
                _ => {}
            }
            if entry.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                errors.at(*file, &path.key("ca_file"), "must name a PEM file");
            }
            let (Some(endpoint), true) = (endpoint, errors.count() == before) else { continue };
            sessions.insert(
                name.clone(),
                ResolvedCtrader {
                    name: name.clone(),
                    endpoint,
                    client_id: entry.client_id.clone(),
                    client_secret: entry.client_secret.clone(),
                    access_token: entry.access_token.clone(),
                    refresh_token: entry.refresh_token.clone(),
                    ca_file: entry.ca_file.clone(),
                    server_name: entry.server_name.clone(),
                },
            );
        }
    }
    sessions
}

fn valid_server_name(name: &str) -> bool {
    rustls::pki_types::ServerName::try_from(name).is_ok()
}

/// Reads `[metatrader]`: an IP address and port, TLS files in pairs, and plain TCP only on
/// loopback unless allowed outright (the bridge itself refuses to run with neither TLS nor
/// plain TCP).
pub(super) fn metatrader_bridge(
    errors: &mut Errors<'_>,
    file: usize,
    section: &MetatraderSection,
) -> Option<ResolvedBridge> {
    let path = FieldPath::root().key("metatrader");
    let before = errors.count();
    let listen = errors.socket_address(file, &path.key("listen"), &section.listen, "port such as 0.0.0.0:5200");
    let tls = match (&section.tls_cert, &section.tls_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (Some(_), None) => {
            errors.at(file, &path.key("tls_cert"), "needs tls_key (the certificate's private key, PEM)");
            None
        }
        (None, Some(_)) => {
            errors.at(file, &path.key("tls_key"), "needs tls_cert (the certificate chain, PEM)");
            None
        }
        (None, None) => None,
    };
    if let Some(listen) = listen
        && section.tls_cert.is_none()
        && section.tls_key.is_none()
        && !listen.ip().is_loopback()
        && !section.allow_plain
    {
        errors.at(
            file,
            &path.key("listen"),
            format!(
                "{listen} is not a loopback address, and without tls_cert and tls_key the terminals would \
                 connect in plain TCP: give tls_cert and tls_key, or allow_plain = true (a VPN or a private network)"
            ),
        );
    }
    let listen = listen?;
    (errors.count() == before).then(|| ResolvedBridge {
        listen,
        allow_plain: section.allow_plain || tls.is_none(),
        tls,
    })
}

/// Checks the keys an account needs (and must not have) for its platform, and says where it
/// trades. `sessions`: every `[ctrader.<session>]` defined, valid or not.
pub(super) fn account_venue(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entry: &AccountEntry,
    sessions: &BTreeMap<String, usize>,
    bridge: bool,
) -> Option<Venue> {
    let before = errors.count();
    let platform = entry.platform;
    if platform != Platform::Sim {
        for (key, given) in [
            ("balance", entry.balance.is_some()),
            ("currency", entry.currency.is_some()),
            ("overrides", !entry.overrides.is_empty()),
        ] {
            if given {
                errors.at(
                    file,
                    &path.key(key),
                    format!("`{key}` is for simulated accounts: a {platform} account's broker reports its own"),
                );
            }
        }
    }
    let ctrader_keys = [("ctrader", entry.ctrader.is_some()), ("ctrader_account", entry.ctrader_account.is_some())];
    let refuse = |errors: &mut Errors<'_>, keys: &[(&str, bool)], owner: &str| {
        for (key, given) in keys {
            if *given {
                errors.at(file, &path.key(key), format!("`{key}` is for {owner} accounts; this one is {platform}"));
            }
        }
    };
    let venue = match platform {
        Platform::Sim => {
            refuse(errors, &ctrader_keys, "ctrader");
            refuse(errors, &[("login", entry.login.is_some())], "mt4 and mt5");
            Venue::Sim
        }
        Platform::Ctrader => {
            refuse(errors, &[("login", entry.login.is_some())], "mt4 and mt5");
            if entry.credentials.is_some() {
                errors.at(
                    file,
                    &path.key("credentials"),
                    "a cTrader account is authorised by its session's access_token ([ctrader.<session>]); \
                     `credentials` is not used",
                );
            }
            let defined = if sessions.is_empty() {
                "none is defined".to_owned()
            } else {
                format!("defined: {}", sessions.keys().map(String::as_str).collect::<Vec<_>>().join(", "))
            };
            let session = match &entry.ctrader {
                None => {
                    errors.at(
                        file,
                        path,
                        format!(
                            "a cTrader account needs `ctrader = \"<session>\"`, the [ctrader.<session>] connection \
                             it trades through ({defined})"
                        ),
                    );
                    None
                }
                Some(name) if !sessions.contains_key(name) => {
                    errors.at(file, &path.key("ctrader"), format!("no [ctrader.{name}] section ({defined})"));
                    None
                }
                Some(name) => Some(name.clone()),
            };
            let account = match entry.ctrader_account {
                None => {
                    errors.at(
                        file,
                        path,
                        "a cTrader account needs `ctrader_account = <ctidTraderAccountId>` (the id the Open API \
                         lists for the access token, not the login)",
                    );
                    None
                }
                Some(id) if id <= 0 => {
                    errors.at(
                        file,
                        &path.key("ctrader_account"),
                        format!("must be a positive ctidTraderAccountId, got {id}"),
                    );
                    None
                }
                Some(id) => Some(id),
            };
            match (session, account) {
                (Some(session), Some(ctid_trader_account_id)) => Venue::Ctrader { session, ctid_trader_account_id },
                _ => Venue::Sim,
            }
        }
        Platform::Mt4 | Platform::Mt5 => {
            refuse(errors, &ctrader_keys, "ctrader");
            if !bridge {
                errors.at(
                    file,
                    &path.key("platform"),
                    format!(
                        "{platform} accounts trade through the MetaTrader bridge: add a [metatrader] section with \
                         the address their EAs dial"
                    ),
                );
            }
            if entry.credentials.is_none() {
                errors.at(
                    file,
                    path,
                    format!(
                        "an {platform} account needs `credentials = \"secret:<name>\"` or `\"env:<VAR>\"`: its \
                         terminal's token (the EA's Token input, at least 16 characters)"
                    ),
                );
            }
            Venue::MetaTrader { login: entry.login }
        }
        other => {
            errors.at(
                file,
                &path.key("platform"),
                format!(
                    "platform `{other}` has no connector in this build yet; sim, ctrader, mt4 and mt5 accounts can run"
                ),
            );
            Venue::Sim
        }
    };
    (errors.count() == before).then_some(venue)
}

/// One account as the checks across accounts see it.
pub(super) struct Placed<'a> {
    pub(super) file: usize,
    pub(super) path: FieldPath,
    pub(super) entry: &'a AccountEntry,
}

/// Checks across accounts and sections: one account per cTrader id and server, one token
/// per terminal, no session or bridge that nobody uses.
pub(super) fn check_shared(
    errors: &mut Errors<'_>,
    accounts: &[Placed<'_>],
    sessions: &BTreeMap<String, ResolvedCtrader>,
    session_at: &BTreeMap<String, usize>,
    bridge_file: Option<usize>,
) {
    let mut ctids: BTreeMap<(CtraderEndpoint, i64), &str> = BTreeMap::new();
    let mut tokens: BTreeMap<&CredentialRef, &str> = BTreeMap::new();
    for placed in accounts {
        let entry = placed.entry;
        match entry.platform {
            Platform::Ctrader => {
                let (Some(session), Some(ctid)) =
                    (entry.ctrader.as_ref().and_then(|s| sessions.get(s)), entry.ctrader_account)
                else {
                    continue;
                };
                if let Some(other) = ctids.insert((session.endpoint.clone(), ctid), &entry.name) {
                    errors.at(
                        placed.file,
                        &placed.path.key("ctrader_account"),
                        format!("ctidTraderAccountId {ctid} on {} is already account `{other}`", session.endpoint),
                    );
                }
            }
            Platform::Mt4 | Platform::Mt5 => {
                let Some(token) = &entry.credentials else { continue };
                if let Some(other) = tokens.insert(token, &entry.name) {
                    errors.at(
                        placed.file,
                        &placed.path.key("credentials"),
                        format!("account `{other}` uses the same token ({token}); each terminal needs its own"),
                    );
                }
            }
            _ => {}
        }
    }
    for (name, file) in session_at {
        if !accounts.iter().any(|a| a.entry.platform == Platform::Ctrader && a.entry.ctrader.as_ref() == Some(name)) {
            errors.at(
                *file,
                &FieldPath::root().key("ctrader").key(name),
                format!("no account trades through cTrader session `{name}`"),
            );
        }
    }
    if let Some(file) = bridge_file
        && !accounts.iter().any(|a| matches!(a.entry.platform, Platform::Mt4 | Platform::Mt5))
    {
        errors.at(file, &FieldPath::root().key("metatrader"), "no mt4 or mt5 account uses the bridge");
    }
}
