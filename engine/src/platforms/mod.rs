//! The brokers behind the accounts, built from a resolved configuration: the simulated broker
//! (in this process or `[sim] remote`), one cTrader session per `[ctrader.<session>]` shared by
//! its accounts, and one MetaTrader bridge for every MT4/MT5 terminal. Each account gets one
//! `Connector`; the rest of the engine does not know which platform is behind it.

pub(crate) mod ctrader;
pub(crate) mod metatrader;
mod sim;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use mirror_connector::{Connector, ConnectorError};
use mirror_connector_ctrader::CtraderSession;
use mirror_connector_metatrader::{MtBridge, TerminalConfig};
use mirror_connector_sim::SimBroker;
use mirror_model::{AccountId, Platform};
use rustc_hash::FxHashMap;

use crate::config::{Resolved, ResolvedAccount, Venue};
use crate::gateway::{GatewayToken, TOKEN_LEN_MIN};
use crate::secrets::{CredentialRef, CredentialVars, MasterKey, Secret, SecretStore, SecretsError};

/// The clear credentials of one cTrader session.
pub(crate) struct CtraderCredentials {
    pub(crate) client_id: Secret,
    pub(crate) client_secret: Secret,
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
}

/// Every credential a configuration refers to, read once at start. Errors name the account,
/// session or gateway token and the reference, never a value.
pub(crate) struct Credentials {
    /// Account credentials (a `[sim] remote` password, an MT terminal's token), by account.
    pub(crate) accounts: FxHashMap<AccountId, Secret>,
    /// cTrader sessions' credentials, by session name.
    pub(crate) ctrader: BTreeMap<String, CtraderCredentials>,
    /// The gateway's tokens, in configuration order.
    pub(crate) gateway: Vec<GatewayToken>,
    /// Optional gateway tokens left out because their reference does not resolve.
    pub(crate) gateway_off: Vec<GatewayTokenOff>,
    /// The HTTP webhooks' secrets, in configuration order.
    pub(crate) webhooks: Vec<Secret>,
    /// The built-in OAuth issuer's client secrets (`[[http.auth.clients]]`), in order.
    pub(crate) auth_clients: Vec<Secret>,
}

/// An optional gateway token left out at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayTokenOff {
    /// The token's name.
    pub token: String,
    /// Why (the reference and what is missing; never a value).
    pub reason: String,
}

/// Whether a credential is absent (rather than wrong): an optional gateway token is then left
/// out instead of failing the start.
fn absent(error: &SecretsError) -> bool {
    matches!(error, SecretsError::EnvNotSet { .. } | SecretsError::NotFound { .. } | SecretsError::StoreNotOpen { .. })
}

impl Credentials {
    /// Reads every credential from where the configuration points: the encrypted store (opened
    /// only if something needs it) or the environment (`vars` instead of the process's, when
    /// given).
    pub(crate) fn resolve(resolved: &Resolved, vars: Option<&CredentialVars>) -> anyhow::Result<Self> {
        let session_refs = resolved.ctrader.iter().flat_map(|s| {
            [Some(&s.client_id), Some(&s.client_secret), Some(&s.access_token), s.refresh_token.as_ref()]
                .into_iter()
                .flatten()
        });
        let gateway_tokens = resolved.gateway.iter().flat_map(|g| &g.tokens);
        let needs_store = resolved
            .accounts
            .iter()
            .filter_map(|a| a.credentials.as_ref())
            .chain(session_refs)
            .chain(gateway_tokens.clone().filter(|t| !t.optional).map(|t| &t.token))
            .chain(resolved.http.iter().flat_map(|h| &h.webhooks).map(|w| &w.secret))
            .chain(resolved.http.iter().flat_map(|h| &h.auth).flat_map(|a| &a.clients).map(|c| &c.secret))
            .any(|r| matches!(r, CredentialRef::Secret(_)));
        // Only optional tokens in the store: a store that does not open leaves them out.
        let wants_store = gateway_tokens.clone().any(|t| matches!(t.token, CredentialRef::Secret(_)));
        let open_store = || -> anyhow::Result<SecretStore> {
            let path = resolved.secrets.clone().unwrap_or_else(crate::secrets::cli::default_store_path);
            let key = MasterKey::from_env().context("the master key of the secrets store")?;
            SecretStore::open(&path, &key).with_context(|| format!("opening the secrets store {}", path.display()))
        };
        let (store, store_error) = if needs_store {
            (Some(open_store()?), None)
        } else if wants_store {
            match open_store() {
                Ok(store) => (Some(store), None),
                Err(error) => (None, Some(format!("{error:#}"))),
            }
        } else {
            (None, None)
        };
        let read = |reference: &CredentialRef, whose: &dyn Fn() -> String| {
            reference.resolve_with(store.as_ref(), vars).with_context(|| format!("{}: {reference}", whose()))
        };
        let mut accounts = FxHashMap::default();
        for account in &resolved.accounts {
            if let Some(reference) = &account.credentials {
                let secret = read(reference, &|| format!("account {}: credentials", account.name))?;
                accounts.insert(account.id, secret);
            }
        }
        let mut ctrader = BTreeMap::new();
        for session in &resolved.ctrader {
            let key = |key: &'static str| move || format!("[ctrader.{}] {key}", session.name);
            let credentials = CtraderCredentials {
                client_id: read(&session.client_id, &key("client_id"))?,
                client_secret: read(&session.client_secret, &key("client_secret"))?,
                access_token: read(&session.access_token, &key("access_token"))?,
                refresh_token: match &session.refresh_token {
                    Some(reference) => Some(read(reference, &key("refresh_token"))?),
                    None => None,
                },
            };
            ctrader.insert(session.name.clone(), credentials);
        }
        let mut gateway = Vec::new();
        let mut gateway_off = Vec::new();
        for token in gateway_tokens {
            let reference = &token.token;
            let whose = format!("[[gateway.tokens]] `{}` ({reference})", token.name);
            let secret = match reference.resolve_with(store.as_ref(), vars) {
                Ok(secret) => secret,
                Err(error) if token.optional && absent(&error) => {
                    let reason = match (&error, &store_error) {
                        (SecretsError::StoreNotOpen { .. }, Some(why)) => {
                            format!("{reference}: the secrets store did not open: {why}")
                        }
                        _ => error.to_string(),
                    };
                    gateway_off.push(GatewayTokenOff { token: token.name.clone(), reason });
                    continue;
                }
                Err(error) => return Err(anyhow::Error::new(error).context(whose)),
            };
            // The value is never repeated, nor its length.
            anyhow::ensure!(
                secret.expose().chars().count() >= TOKEN_LEN_MIN,
                "{whose}: a gateway token needs at least {TOKEN_LEN_MIN} characters; choose a longer one (for \
                 example 32 random hex digits: `openssl rand -hex 16`)"
            );
            anyhow::ensure!(
                secret.expose().len() <= mirror_wire::proto::TOKEN_LEN_MAX,
                "{whose}: a gateway token has at most {} bytes",
                mirror_wire::proto::TOKEN_LEN_MAX
            );
            gateway.push(GatewayToken {
                name: token.name.clone(),
                secret: secret.expose().to_owned(),
                role: token.role,
                source: token.source.as_ref().map(|(origin, _)| *origin),
            });
        }
        let mut webhooks = Vec::new();
        for webhook in resolved.http.iter().flat_map(|h| &h.webhooks) {
            let reference = &webhook.secret;
            let whose = || format!("[[http.webhooks]] `{}`: secret", webhook.name);
            let secret = read(reference, &whose)?;
            // The value is never repeated, nor its length.
            anyhow::ensure!(
                secret.expose().chars().count() >= TOKEN_LEN_MIN,
                "{}: {reference}: a webhook secret needs at least {TOKEN_LEN_MIN} characters; choose a longer one (for \
                 example 32 random hex digits: `openssl rand -hex 16`)",
                whose()
            );
            webhooks.push(secret);
        }
        let mut auth_clients = Vec::new();
        for client in resolved.http.iter().flat_map(|h| &h.auth).flat_map(|a| &a.clients) {
            let reference = &client.secret;
            let whose = || format!("[[http.auth.clients]] `{}`: client_secret", client.client_id);
            let secret = read(reference, &whose)?;
            // The value is never repeated, nor its length.
            anyhow::ensure!(
                secret.expose().chars().count() >= TOKEN_LEN_MIN,
                "{}: {reference}: a client secret needs at least {TOKEN_LEN_MIN} characters; choose a longer one (for \
                 example 32 random hex digits: `openssl rand -hex 16`)",
                whose()
            );
            auth_clients.push(secret);
        }
        Ok(Self { accounts, ctrader, gateway, gateway_off, webhooks, auth_clients })
    }
}

/// One account and the connector it trades through.
pub(crate) struct AccountConnector {
    pub(crate) id: AccountId,
    pub(crate) name: Arc<str>,
    pub(crate) connector: Arc<dyn Connector>,
}

/// Everything the accounts trade through, kept to be shut down once the engine has stopped.
#[derive(Debug, Default)]
pub(crate) struct Platforms {
    broker: Option<SimBroker>,
    ctrader: BTreeMap<String, CtraderSession>,
    bridge: Option<MtBridge>,
    bridge_thumbprint: Option<String>,
}

impl Platforms {
    /// Starts what the configuration needs and makes one connector per account, in the
    /// configuration's order. Nothing connects yet, except that the bridge starts listening
    /// (its terminals dial in).
    pub(crate) async fn open(
        resolved: &Resolved,
        mut credentials: Credentials,
    ) -> anyhow::Result<(Self, Vec<AccountConnector>)> {
        let mut platforms = Self::default();
        let simulated = resolved.accounts.iter().any(|a| a.platform == Platform::Sim);
        if simulated && resolved.sim_remote.is_none() {
            platforms.broker = Some(SimBroker::new(resolved.sim.clone(), resolved.markets.clone()));
        }
        for session in &resolved.ctrader {
            let secrets = credentials.ctrader.remove(&session.name).expect("resolved with the configuration");
            let opened = ctrader::open_session(session, secrets)
                .with_context(|| format!("cTrader session `{}` ({})", session.name, session.endpoint))?;
            platforms.ctrader.insert(session.name.clone(), opened);
        }
        if let Some(bridge) = &resolved.metatrader {
            let terminals = resolved
                .accounts
                .iter()
                .filter_map(|account| {
                    let Venue::MetaTrader { login } = account.venue else { return None };
                    let token = credentials.accounts.remove(&account.id)?;
                    let token = token.expose().to_owned();
                    Some(TerminalConfig { name: account.name.clone(), platform: account.platform, token, login })
                })
                .collect();
            let (opened, thumbprint) = metatrader::open_bridge(bridge, terminals, resolved.connector.call_timeout)
                .await
                .with_context(|| format!("the MetaTrader bridge on {}", bridge.listen))?;
            platforms.bridge = Some(opened);
            platforms.bridge_thumbprint = thumbprint;
        }
        let mut connectors = Vec::with_capacity(resolved.accounts.len());
        for account in &resolved.accounts {
            let connector: Arc<dyn Connector> = match &account.venue {
                Venue::Sim => sim::connector(
                    platforms.broker.as_ref(),
                    resolved,
                    account,
                    credentials.accounts.remove(&account.id),
                )?,
                Venue::Ctrader { session, ctid_trader_account_id } => {
                    Arc::new(platforms.ctrader[session].connector(*ctid_trader_account_id))
                }
                Venue::MetaTrader { .. } => {
                    let bridge = platforms.bridge.as_ref().expect("MT accounts have a bridge");
                    Arc::new(bridge.connector(&account.name).expect("every MT account is a terminal of the bridge"))
                }
            };
            connectors.push(AccountConnector { id: account.id, name: Arc::from(account.name.as_str()), connector });
        }
        Ok((platforms, connectors))
    }

    /// The simulated broker, when it runs in this process.
    pub(crate) fn broker(&self) -> Option<&SimBroker> {
        self.broker.as_ref()
    }

    /// The MetaTrader bridge's address, when there is one.
    pub(crate) fn bridge_addr(&self) -> Option<SocketAddr> {
        self.bridge.as_ref().map(MtBridge::local_addr)
    }

    /// The bridge certificate's SHA-1 thumbprint (the EAs' `CertThumbprint`), with TLS.
    pub(crate) fn bridge_thumbprint(&self) -> Option<&str> {
        self.bridge_thumbprint.as_deref()
    }

    /// Why an account did not come up at start, in words for its platform. Never a
    /// credential: connector errors do not carry them.
    pub(crate) fn boot_failure(&self, account: &ResolvedAccount, error: &ConnectorError) -> String {
        match (&account.venue, error) {
            (Venue::MetaTrader { .. }, ConnectorError::NotConnected) => format!(
                "its terminal's EA did not connect to the bridge on {}: is the terminal running with the EA, \
                 dialling this address with this account's token? (a refused token is logged as `terminal refused`)",
                self.bridge_addr().map_or_else(|| "?".to_owned(), |a| a.to_string())
            ),
            (Venue::Ctrader { session, ctid_trader_account_id }, error) => {
                format!("cTrader session `{session}`, account {ctid_trader_account_id}: {error}")
            }
            (_, error) => error.to_string(),
        }
    }

    /// Closes the cTrader sessions and the bridge (after the engine has stopped).
    pub(crate) async fn shutdown(&mut self) {
        for session in std::mem::take(&mut self.ctrader).into_values() {
            session.shutdown().await;
        }
        if let Some(bridge) = self.bridge.take() {
            bridge.shutdown();
        }
    }
}
