//! What the configuration says about accounts, sources and links, for the REST API: names,
//! platforms, groups, risk limits and link rules. Live state (balances, positions, orders)
//! comes from the state hub; this is what does not change while Mirror runs.

use std::collections::BTreeMap;

use mirror_model::{AccountId, LinkRules, Origin, SourceId, Symbol};
use serde_json::{Value, json};

use crate::account::RiskLimits;
use crate::config::{Resolved, Venue};

/// One account as configured.
#[derive(Clone, Debug)]
pub struct CatalogAccount {
    /// Id.
    pub id: AccountId,
    /// Name.
    pub name: String,
    /// Platform (`sim`, `ctrader`, `mt5` …).
    pub platform: String,
    /// Where it trades (`sim`, `ctrader:<session>`, `metatrader`).
    pub venue: String,
    /// Its risk profile's name.
    pub risk_profile: Option<String>,
    /// Its risk limits.
    pub risk: RiskLimits,
    /// Groups it belongs to.
    pub groups: Vec<String>,
}

/// One external source as configured.
#[derive(Clone, Debug)]
pub struct CatalogSource {
    /// Id.
    pub id: SourceId,
    /// Name.
    pub name: String,
    /// Symbols it may send: its own list, or every instrument of the catalog.
    pub symbols: Vec<Symbol>,
}

/// One link as configured, in the copy map's order (its index is its link id).
#[derive(Clone, Debug)]
pub struct CatalogLink {
    /// Leader account or source.
    pub leader: Origin,
    /// Its name.
    pub leader_name: String,
    /// Follower.
    pub follower: AccountId,
    /// Its name.
    pub follower_name: String,
    /// Rules.
    pub rules: LinkRules,
    /// Configured to start paused.
    pub paused_at_start: bool,
}

/// The configuration's accounts, sources and links.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// Accounts, in file order.
    pub accounts: Vec<CatalogAccount>,
    /// Sources.
    pub sources: Vec<CatalogSource>,
    /// Links, in the copy map's order.
    pub links: Vec<CatalogLink>,
    /// Risk profiles by name, whether an account uses them or not.
    pub risk_profiles: BTreeMap<String, RiskLimits>,
}

impl Catalog {
    /// From a resolved configuration (the same one the engine runs).
    pub fn from_resolved(resolved: &Resolved) -> Self {
        let accounts = resolved
            .accounts
            .iter()
            .map(|account| CatalogAccount {
                id: account.id,
                name: account.name.clone(),
                platform: account.platform.to_string(),
                venue: match &account.venue {
                    Venue::Sim => "sim".to_owned(),
                    Venue::Ctrader { session, .. } => format!("ctrader:{session}"),
                    Venue::MetaTrader { .. } => "metatrader".to_owned(),
                },
                risk_profile: account.risk_profile.clone(),
                risk: account.risk,
                groups: account.groups.clone(),
            })
            .collect();
        let sources = resolved
            .sources
            .iter()
            .map(|source| CatalogSource {
                id: source.id,
                name: source.name.clone(),
                symbols: if source.symbols.is_empty() {
                    resolved.catalog.keys().copied().collect()
                } else {
                    source.symbols.clone()
                },
            })
            .collect();
        let links = resolved
            .links
            .iter()
            .map(|link| CatalogLink {
                leader: link.leader,
                leader_name: link.leader_name.clone(),
                follower: link.follower,
                follower_name: link.follower_name.clone(),
                rules: link.rules.clone(),
                paused_at_start: link.paused,
            })
            .collect();
        Self { accounts, sources, links, risk_profiles: resolved.risk_profiles.clone() }
    }

    /// An account by id (`17`) or name.
    pub(crate) fn account(&self, key: &str) -> Option<&CatalogAccount> {
        match key.parse::<u32>() {
            Ok(id) => self.accounts.iter().find(|a| a.id.0 == id),
            Err(_) => self.accounts.iter().find(|a| a.name == key),
        }
    }

    /// A source by name.
    pub(crate) fn source(&self, name: &str) -> Option<&CatalogSource> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The name of an account or source.
    pub(crate) fn origin_name(&self, origin: Origin) -> String {
        match origin {
            Origin::Account(id) => self.accounts.iter().find(|a| a.id == id).map(|a| a.name.clone()),
            Origin::Source(id) => self.sources.iter().find(|s| s.id == id).map(|s| s.name.clone()),
        }
        .unwrap_or_else(|| origin.to_string())
    }
}

fn origin_json(origin: Origin) -> Value {
    match origin {
        Origin::Account(id) => json!({ "kind": "account", "id": id.0 }),
        Origin::Source(id) => json!({ "kind": "source", "id": id.0 }),
    }
}

pub(crate) fn account_json(account: &CatalogAccount) -> Value {
    json!({
        "id": account.id.0,
        "name": account.name,
        "platform": account.platform,
        "venue": account.venue,
        "groups": account.groups,
        "risk_profile": account.risk_profile,
    })
}

pub(crate) fn source_json(source: &CatalogSource) -> Value {
    json!({
        "id": source.id.0,
        "name": source.name,
        "symbols": source.symbols.iter().map(Symbol::as_str).collect::<Vec<_>>(),
    })
}

pub(crate) fn link_json(index: usize, link: &CatalogLink) -> Value {
    json!({
        "id": index,
        "leader": origin_json(link.leader),
        "leader_name": link.leader_name,
        "follower": link.follower.0,
        "follower_name": link.follower_name,
        "rules": serde_json::to_value(&link.rules).unwrap_or(Value::Null),
        "paused_at_start": link.paused_at_start,
    })
}
