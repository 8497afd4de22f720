//! The configuration in force, and changing it while Mirror runs.
//!
//! What may change live: links (added, removed, their rules, `paused`) and risk limits (the
//! `[risk.<profile>]` tables and each account's `risk`), and account `groups`. Everything else
//! (accounts, sources, instruments, platforms, listeners, storage, the engine) is built once:
//! a new configuration that changes any of it is refused whole, naming what needs a restart.
//! An accepted configuration is checked as `mirror-engine check` would, applied to the engine
//! (a new copy map, each follower's new links and limits), then written over the file it came
//! from (the previous text kept beside it as `<file>.prev`) and recorded in the journal's
//! audit log; the next start reads it as any other.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use mirror_model::{AccountId, Origin};
use rustc_hash::FxHashMap;

use crate::LinkId;
use crate::account::Control;
use crate::config::{self, Resolved};
use crate::gateway::ConfigService;
use crate::http::Catalog;
use crate::journal::{AdminAction, AdminRecord};
use crate::router::LinkSpec;
use crate::runtime::{ControlScope, EngineHandle};

/// Keys of an account that may change live.
const ACCOUNT_LIVE_KEYS: [&str; 2] = ["risk", "groups"];
/// Top-level keys that may change live.
const TOP_LIVE_KEYS: [&str; 2] = ["links", "risk"];

/// The configuration in force, for the gateway's `ReadConfig`/`ApplyConfig` and the HTTP API.
pub struct LiveConfig {
    engine: EngineHandle,
    /// The file, when the configuration is one file (live apply writes it back).
    path: Option<PathBuf>,
    state: Mutex<InForce>,
    catalog: Arc<ArcSwap<Catalog>>,
}

struct InForce {
    text: String,
    /// SHA-256 of `text` (the configuration's digest), hex: the version an edit names (`If-Match`).
    version: String,
}

impl std::fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveConfig").field("path", &self.path).finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// The configuration the engine was started from.
    pub fn new(resolved: &Resolved, engine: EngineHandle) -> Self {
        let (text, path) = match (resolved.texts.as_slice(), resolved.files.as_slice()) {
            ([one], [path]) => (one.clone(), Some(path.clone())),
            (texts, files) => (
                files
                    .iter()
                    .zip(texts)
                    .map(|(path, text)| format!("# ---- file: {} ----\n{text}", path.display()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                None,
            ),
        };
        Self {
            engine,
            path,
            state: Mutex::new(InForce { version: resolved.digest.clone(), text }),
            catalog: Arc::new(ArcSwap::from_pointee(Catalog::from_resolved(resolved))),
        }
    }

    /// Accounts, sources and links as in force, for the HTTP API (replaced on every apply).
    pub fn catalog(&self) -> Arc<ArcSwap<Catalog>> {
        Arc::clone(&self.catalog)
    }

    /// Checks and applies `text`, whole or not at all; the error says why.
    pub fn apply_text(&self, text: &str, who: &str) -> Result<(), String> {
        let mut in_force = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.apply_locked(&mut in_force, text, who)
    }

    /// Changes the configuration in force by `edit` (its text in, the new text out) and applies
    /// the result, all under one lock so that no other change slips in between. With
    /// `expected`, the configuration must still be that version. Answers the new version.
    pub fn edit_text(
        &self,
        expected: Option<&str>,
        who: &str,
        edit: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<String, EditError> {
        let mut in_force = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(expected) = expected.filter(|v| *v != in_force.version) {
            return Err(EditError::Stale { expected: expected.to_owned(), current: in_force.version.clone() });
        }
        let text = edit(&in_force.text).map_err(EditError::Edit)?;
        self.apply_locked(&mut in_force, &text, who).map_err(EditError::NotApplied)?;
        Ok(in_force.version.clone())
    }

    fn apply_locked(&self, in_force: &mut InForce, text: &str, who: &str) -> Result<(), String> {
        let path = self.path.as_deref().ok_or(
            "live apply needs a configuration in one file; this one was read from several: edit them and restart",
        )?;
        let resolved = config::load_str(path, text).map_err(|e| format!("not applied:\n{e}"))?;
        let frozen = frozen_changes(&in_force.text, text)?;
        if !frozen.is_empty() {
            return Err(format!(
                "not applied: {} cannot change while Mirror runs (links, risk limits and account groups can); edit \
                 the file and restart for that",
                frozen.join(", ")
            ));
        }
        let links: Vec<LinkSpec> = resolved
            .links
            .iter()
            .map(|l| LinkSpec { leader: l.leader, follower: l.follower, rules: Arc::new(l.rules.clone()) })
            .collect();
        let paused: Vec<(Origin, AccountId)> =
            resolved.links.iter().filter(|l| l.paused).map(|l| (l.leader, l.follower)).collect();
        // Only the limits that change: an account whose links and limits stay is not touched.
        let catalog = self.catalog.load_full();
        let risk: FxHashMap<AccountId, _> = resolved
            .accounts
            .iter()
            .filter(|a| catalog.accounts.iter().find(|c| c.id == a.id).is_none_or(|c| c.risk != a.risk))
            .map(|a| (a.id, a.risk))
            .collect();
        self.engine.relink(links, &paused, &risk).map_err(|e| format!("not applied: {e}"))?;
        // Links that stayed and whose `paused` changed: paused or resumed now.
        for (index, link) in resolved.links.iter().enumerate() {
            let (origin, follower, paused) = (link.leader, link.follower, link.paused);
            let before =
                catalog.links.iter().find(|l| l.leader == origin && l.follower == follower).map(|l| l.paused_at_start);
            if before.is_some_and(|was| was != paused) {
                let id = LinkId(u32::try_from(index).unwrap_or(u32::MAX));
                let control = if paused { Control::PauseLink(id) } else { Control::ResumeLink(id) };
                self.engine.control_by(who, ControlScope::Account(follower), control).map_err(|e| e.to_string())?;
            }
        }
        if let Some(journal) = self.engine.journal() {
            let record = AdminRecord {
                unix_ms: self.engine.clock().now().unix_ms,
                who: who.to_owned(),
                action: AdminAction::ConfigApplied {
                    path: path.display().to_string(),
                    digest: resolved.digest.clone(),
                    accounts: u32::try_from(resolved.accounts.len()).unwrap_or(u32::MAX),
                    links: u32::try_from(resolved.links.len()).unwrap_or(u32::MAX),
                },
            };
            if let Err(error) = journal.admin(record) {
                tracing::warn!(%error, "the applied configuration could not be recorded in the journal");
            }
        }
        let written = write_over(path, &in_force.text, text);
        in_force.text = text.to_owned();
        in_force.version = resolved.digest.clone();
        self.catalog.store(Arc::new(Catalog::from_resolved(&resolved)));
        tracing::info!(who, links = resolved.links.len(), file = %path.display(), "configuration applied live");
        written.map_err(|e| {
            format!(
                "applied, but {} could not be written ({e}): the engine runs the new configuration, a restart would \
                 read the old file",
                path.display()
            )
        })
    }
}

impl ConfigService for LiveConfig {
    fn read(&self) -> Result<String, String> {
        Ok(self.state.lock().unwrap_or_else(PoisonError::into_inner).text.clone())
    }

    fn read_versioned(&self) -> (String, String) {
        let in_force = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        (in_force.text.clone(), in_force.version.clone())
    }

    fn apply(&self, toml: &str, who: &str) -> Result<(), String> {
        self.apply_text(toml, who)
    }

    fn edit(
        &self,
        expected: Option<&str>,
        who: &str,
        edit: &mut dyn FnMut(&str) -> Result<String, String>,
    ) -> Result<String, EditError> {
        self.edit_text(expected, who, edit)
    }
}

/// Why an edit of the configuration in force was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditError {
    /// The configuration is no longer the version the edit was made against.
    Stale {
        /// The version the caller named.
        expected: String,
        /// The version in force.
        current: String,
    },
    /// The edit itself could not be made (what it names is not in the configuration).
    Edit(String),
    /// The edited configuration was refused: not valid, or it changes what needs a restart.
    NotApplied(String),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stale { expected, current } => write!(
                f,
                "the configuration changed since version {expected}; it is now {current}: read it again and redo the \
                 change"
            ),
            Self::Edit(reason) | Self::NotApplied(reason) => f.write_str(reason),
        }
    }
}

/// Writes `text` over `path` atomically, keeping `previous` as `<path>.prev`.
fn write_over(path: &Path, previous: &str, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let with_suffix = |suffix: &str| {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(suffix);
        path.with_file_name(name)
    };
    std::fs::write(with_suffix(".prev"), previous)?;
    let temporary = with_suffix(".applying");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// What differs between two configurations outside what may change live, as `[section]`,
/// `accounts[2]`…; an error when either is not TOML.
fn frozen_changes(before: &str, after: &str) -> Result<Vec<String>, String> {
    let parse = |text: &str| text.parse::<toml::Table>().map_err(|e| format!("not applied: not TOML: {e}"));
    let (mut before, mut after) = (parse(before)?, parse(after)?);
    for table in [&mut before, &mut after] {
        for key in TOP_LIVE_KEYS {
            table.remove(key);
        }
        if let Some(toml::Value::Array(accounts)) = table.get_mut("accounts") {
            for account in accounts.iter_mut().filter_map(toml::Value::as_table_mut) {
                for key in ACCOUNT_LIVE_KEYS {
                    account.remove(key);
                }
            }
        }
    }
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    let mut changed = Vec::new();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (Some(toml::Value::Array(a)), Some(toml::Value::Array(b))) if a.len() == b.len() => {
                changed.extend((0..a.len()).filter(|i| a[*i] != b[*i]).map(|i| format!("{key}[{i}]")));
            }
            (Some(toml::Value::Array(_)), Some(toml::Value::Array(_))) => changed.push(format!("the number of {key}")),
            (a, b) if a == b => {}
            (Some(toml::Value::Table(_)), _) | (_, Some(toml::Value::Table(_))) => changed.push(format!("[{key}]")),
            _ => changed.push(key.clone()),
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_risk_and_groups_may_change_live() {
        let base = r#"
[engine]
shards = 1
[risk.prop]
max_daily_loss_pct = 5
[[accounts]]
name = "a"
platform = "sim"
risk = "prop"
[[accounts]]
name = "b"
platform = "sim"
[[links]]
leader = "a"
follower = "b"
"#;
        let live = base.replace("max_daily_loss_pct = 5", "max_daily_loss_pct = 3").replace(
            "[[links]]\nleader = \"a\"\nfollower = \"b\"\n",
            "[[links]]\nleader = \"a\"\nfollower = \"b\"\nsizing = { mode = \"multiplier\", ratio = 2 }\n",
        );
        assert!(frozen_changes(base, &live).unwrap().is_empty());
        let groups = base.replace("name = \"b\"\n", "name = \"b\"\ngroups = [\"evals\"]\n");
        assert!(frozen_changes(base, &groups).unwrap().is_empty());
        let frozen = base
            .replace("shards = 1", "shards = 2")
            .replace("name = \"b\"\nplatform = \"sim\"", "name = \"b\"\nplatform = \"ctrader\"");
        assert_eq!(frozen_changes(base, &frozen).unwrap(), ["accounts[1]", "[engine]"]);
        let more = format!("{base}\n[[accounts]]\nname = \"c\"\nplatform = \"sim\"\n");
        assert_eq!(frozen_changes(base, &more).unwrap(), ["the number of accounts"]);
        assert!(frozen_changes(base, "not = [toml").unwrap_err().contains("not TOML"));
    }
}
