//! What the app reads from the engine's configuration (`Client::read_config`): each account's
//! platform and risk profile, the profiles' equity limits, and when the trading day starts.
//!
//! The state stream does not carry these, so the app parses the TOML in force. Anything it
//! cannot read is left out (shown as "—"), never guessed.

use std::collections::BTreeMap;

use mirror_model::{Money, Ratio, SourceId};

/// Separator the engine puts between files when its configuration spans several.
const FILE_MARKER: &str = "# ---- file: ";

/// The equity limits of a risk profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// The profile's name (`[risk.<name>]`).
    pub profile: String,
    /// Largest drawdown from the day's equity high, percent.
    pub max_daily_drawdown_pct: Option<Ratio>,
    /// Largest loss from the day's starting equity, money.
    pub daily_loss_limit: Option<Money>,
    /// Drawdown from the day's high that flattens this account and its copiers, percent.
    pub flatten_group_at_drawdown_pct: Option<Ratio>,
}

impl Limits {
    /// The tightest drawdown limit in basis points (percent × 100), if any.
    pub fn drawdown_limit_bp(&self) -> Option<i64> {
        let bp = |ratio: Ratio| {
            let scaled = i128::from(ratio.num()) * 100 / i128::from(ratio.den().max(1));
            i64::try_from(scaled).unwrap_or(i64::MAX)
        };
        [self.max_daily_drawdown_pct, self.flatten_group_at_drawdown_pct].into_iter().flatten().map(bp).min()
    }
}

/// One account as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountFacts {
    /// `platform` (`sim`, `ctrader`, `metatrader`, …).
    pub platform: String,
    /// Its risk profile, when it names one that exists.
    pub limits: Option<Limits>,
}

/// What the configuration says about the accounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineFacts {
    /// By account name.
    pub accounts: BTreeMap<String, AccountFacts>,
    /// `[engine] day_start_utc_hour` (0 when not given, as in the engine).
    pub day_start_utc_hour: i64,
    /// Signal sources (`[[sources]]`) by their id (as the engine derives it from the name).
    pub sources: BTreeMap<u32, String>,
    /// Links, (leader, follower) by name, in file order.
    pub links: Vec<(String, String)>,
}

/// A configuration value that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the engine's configuration: {0}")]
pub struct FactsError(String);

fn ratio(value: &toml::Value) -> Option<Ratio> {
    match value {
        toml::Value::String(text) => Ratio::parse(text).ok(),
        toml::Value::Integer(n) => Ratio::integer(*n),
        toml::Value::Float(f) => Ratio::parse(&format!("{f}")).ok(),
        _ => None,
    }
}

fn money(value: &toml::Value) -> Option<Money> {
    match value {
        toml::Value::String(text) => Money::parse(text).ok(),
        toml::Value::Integer(n) => Money::from_units(*n),
        toml::Value::Float(f) => Money::from_f64(*f).ok(),
        _ => None,
    }
}

fn limits(profile: &str, table: &toml::Table) -> Limits {
    Limits {
        profile: profile.to_owned(),
        max_daily_drawdown_pct: table.get("max_daily_drawdown_pct").and_then(ratio),
        daily_loss_limit: table.get("daily_loss_limit").and_then(money),
        flatten_group_at_drawdown_pct: table.get("flatten_group_at_drawdown_pct").and_then(ratio),
    }
}

/// Splits the engine's answer into its files (one when there is no marker).
fn files(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (offset, _) in text.match_indices(FILE_MARKER) {
        if offset == 0 || text[..offset].ends_with('\n') {
            pieces.push(&text[start..offset]);
            start = offset;
        }
    }
    pieces.push(&text[start..]);
    pieces.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

impl EngineFacts {
    /// Reads the configuration text the engine answered `ReadConfig` with.
    pub fn parse(text: &str) -> Result<Self, FactsError> {
        let mut profiles: BTreeMap<String, Limits> = BTreeMap::new();
        let mut accounts: Vec<(String, String, Option<String>)> = Vec::new();
        let mut day_start_utc_hour = 0;
        let mut sources = BTreeMap::new();
        let mut links = Vec::new();
        for file in files(text) {
            let table: toml::Table = toml::from_str(file).map_err(|e| FactsError(e.to_string()))?;
            if let Some(hour) =
                table.get("engine").and_then(|e| e.get("day_start_utc_hour")).and_then(|h| h.as_integer())
            {
                day_start_utc_hour = hour.clamp(0, 23);
            }
            if let Some(risk) = table.get("risk").and_then(toml::Value::as_table) {
                for (name, profile) in risk {
                    if let Some(profile) = profile.as_table() {
                        profiles.insert(name.clone(), limits(name, profile));
                    }
                }
            }
            for source in table.get("sources").and_then(toml::Value::as_array).into_iter().flatten() {
                if let Some(name) = source.get("name").and_then(toml::Value::as_str) {
                    sources.insert(SourceId::from_name(name).0, name.to_owned());
                }
            }
            for link in table.get("links").and_then(toml::Value::as_array).into_iter().flatten() {
                let leader = link.get("leader").and_then(toml::Value::as_str);
                let follower = link.get("follower").and_then(toml::Value::as_str);
                if let (Some(leader), Some(follower)) = (leader, follower) {
                    links.push((leader.to_owned(), follower.to_owned()));
                }
            }
            for account in table.get("accounts").and_then(toml::Value::as_array).into_iter().flatten() {
                let Some(name) = account.get("name").and_then(toml::Value::as_str) else { continue };
                let platform = account.get("platform").and_then(toml::Value::as_str).unwrap_or("").to_owned();
                let risk = account.get("risk").and_then(toml::Value::as_str).map(str::to_owned);
                accounts.push((name.to_owned(), platform, risk));
            }
        }
        let accounts = accounts
            .into_iter()
            .map(|(name, platform, risk)| {
                let limits = risk.and_then(|profile| profiles.get(&profile).cloned());
                (name, AccountFacts { platform, limits })
            })
            .collect();
        Ok(Self { accounts, day_start_utc_hour, sources, links })
    }

    /// The followers of a leader (an account or a source), by name, in file order.
    pub fn followers_of(&self, leader: &str) -> Vec<&str> {
        self.links.iter().filter(|(l, _)| l == leader).map(|(_, f)| f.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"
[engine]
day_start_utc_hour = 22

[risk.prop-2pct]
max_daily_drawdown_pct = 2
on_breach = "freeze"

[risk.standard]
daily_loss_limit = "2000.50"

[risk.master]
flatten_group_at_drawdown_pct = 3.5

[[accounts]]
name = "a"
platform = "sim"
risk = "prop-2pct"

[[accounts]]
name = "b"
platform = "ctrader"
risk = "standard"

[[accounts]]
name = "c"
platform = "metatrader"

[[sources]]
name = "algo"

[[links]]
leader = "algo"
follower = "a"

[[links]]
leader = "algo"
follower = "c"
"#;

    #[test]
    fn platforms_profiles_and_the_day_start_are_read() {
        let facts = EngineFacts::parse(ONE).unwrap();
        assert_eq!(facts.day_start_utc_hour, 22);
        let a = &facts.accounts["a"];
        assert_eq!(a.platform, "sim");
        assert_eq!(a.limits.as_ref().unwrap().drawdown_limit_bp(), Some(200));
        let b = &facts.accounts["b"];
        assert_eq!(b.limits.as_ref().unwrap().daily_loss_limit, Some(Money::parse("2000.5").unwrap()));
        assert_eq!(b.limits.as_ref().unwrap().drawdown_limit_bp(), None);
        assert_eq!(facts.accounts["c"].limits, None);
        assert_eq!(facts.sources[&SourceId::from_name("algo").0], "algo");
        assert_eq!(facts.followers_of("algo"), ["a", "c"]);
    }

    #[test]
    fn several_files_are_read_one_by_one_and_a_profile_may_live_in_another() {
        let text = "# ---- file: a.toml ----\n[risk.p]\nmax_daily_drawdown_pct = \"1.5\"\n\
                    # ---- file: b.toml ----\n[[accounts]]\nname = \"x\"\nplatform = \"sim\"\nrisk = \"p\"\n";
        let facts = EngineFacts::parse(text).unwrap();
        assert_eq!(facts.accounts["x"].limits.as_ref().unwrap().drawdown_limit_bp(), Some(150));
        assert!(EngineFacts::parse("[[accounts]\n").is_err());
    }
}
