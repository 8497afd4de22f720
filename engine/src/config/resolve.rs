//! Validation: from what the files say to what the engine runs, with every problem located.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use mirror_connector_sim::{AutoTraderConfig, SimConfig, SimInstrument, SimMarket};
use mirror_model::{
    AccountId, AccountMode, InstrumentSpec, LinkRules, Money, Origin, Platform, ProtectionRule, Ratio, ReconcilePolicy,
    SCALE, SizingRule, SourceId, SpecError, Symbol, SymbolMapping,
};

use super::file_drop::{self, ResolvedFileDrop};
use super::gateway::{self, ResolvedGateway};
use super::http::{self, ResolvedHttp};
use super::locate::{FieldPath, Located};
use super::platforms::{self, Placed, ResolvedBridge, ResolvedCtrader, Venue};
use super::schema::{AccountEntry, CtraderEntry, InstrumentEntry, LinkEntry, ReconcileMode};
use super::{ConfigError, ConfigErrors, Source};
use crate::account::RiskLimits;
use crate::connectors::ConnectorSettings;
use crate::journal::JournalSettings;
use crate::router::find_cycle;
use crate::runtime::{RuntimeSettings, default_shards};
use crate::telemetry::LoggingSettings;

/// A valid configuration, resolved into engine values.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Files read.
    pub files: Vec<PathBuf>,
    /// Their text, as read (what the gateway's `ReadConfig` answers: the configuration in
    /// force, even if a file was edited since).
    pub texts: Vec<String>,
    /// Runtime settings.
    pub runtime: RuntimeSettings,
    /// Connector timeouts.
    pub connector: ConnectorSettings,
    /// Status refresh.
    pub status_interval: Duration,
    /// Logging.
    pub logging: LoggingSettings,
    /// Simulated broker.
    pub sim: SimConfig,
    /// A simulated broker served by another process (`host:port`), instead of one inside.
    pub sim_remote: Option<String>,
    /// The journal, unless turned off.
    pub journal: Option<JournalSettings>,
    /// cTrader connections, by name.
    pub ctrader: Vec<ResolvedCtrader>,
    /// The MetaTrader bridge, when an account needs it.
    pub metatrader: Option<ResolvedBridge>,
    /// The QUIC gateway, when `[gateway]` is given.
    pub gateway: Option<ResolvedGateway>,
    /// The HTTP server, when `[http]` is given.
    pub http: Option<ResolvedHttp>,
    /// Watched folders of signal files (`[[file_drops]]`), in file order.
    pub file_drops: Vec<ResolvedFileDrop>,
    /// SHA-256 of the files' text, hex (for the audit log).
    pub digest: String,
    /// The encrypted secrets file named by `[engine] secrets`, if any.
    pub secrets: Option<PathBuf>,
    /// Simulated markets (one per catalog instrument).
    pub markets: Vec<SimMarket>,
    /// The catalog, by canonical symbol.
    pub catalog: BTreeMap<Symbol, InstrumentSpec>,
    /// Accounts, in file order.
    pub accounts: Vec<ResolvedAccount>,
    /// External sources.
    pub sources: Vec<ResolvedSource>,
    /// Links, in file order.
    pub links: Vec<ResolvedLink>,
    /// Risk profiles (`[risk.<name>]`), by name, used or not.
    pub risk_profiles: BTreeMap<String, RiskLimits>,
}

/// An account, ready to run.
#[derive(Clone, Debug)]
pub struct ResolvedAccount {
    /// Id (from the name).
    pub id: AccountId,
    /// Name.
    pub name: String,
    /// Platform.
    pub platform: Platform,
    /// Where it trades: the simulated broker, a cTrader session, the MetaTrader bridge.
    pub venue: Venue,
    /// Netting or hedging (a broker's own word replaces it once connected).
    pub mode: AccountMode,
    /// Currency (simulated accounts; empty for a broker account, which reports its own).
    pub currency: String,
    /// Starting balance (simulated accounts; zero for a broker account).
    pub balance: Money,
    /// Risk limits (from its profile).
    pub risk: RiskLimits,
    /// Its profile's name.
    pub risk_profile: Option<String>,
    /// Its instruments (its own symbols) and their feeds: every catalog instrument unless
    /// the account lists some.
    pub instruments: Vec<SimInstrument>,
    /// Whether the account lists its instruments. A broker account that does not trades what
    /// its broker reports when it connects at start, and nothing if it is offline then.
    pub instruments_listed: bool,
    /// Trades on its own.
    pub autotrade: Option<(AutoTraderConfig, u64)>,
    /// Its broker credentials (an MT terminal's token), by reference.
    pub credentials: Option<crate::secrets::CredentialRef>,
    /// Starts paused.
    pub paused: bool,
    /// Groups it belongs to.
    pub groups: Vec<String>,
}

/// An external source.
#[derive(Clone, Debug)]
pub struct ResolvedSource {
    /// Id (from the name).
    pub id: SourceId,
    /// Name.
    pub name: String,
    /// Symbols it may send (empty: any).
    pub symbols: Vec<Symbol>,
}

/// A link, ready to run.
#[derive(Clone, Debug)]
pub struct ResolvedLink {
    /// Leader.
    pub leader: Origin,
    /// Leader's name.
    pub leader_name: String,
    /// Follower.
    pub follower: AccountId,
    /// Follower's name.
    pub follower_name: String,
    /// Rules.
    pub rules: LinkRules,
    /// Starts paused.
    pub paused: bool,
}

pub(super) struct Errors<'a> {
    sources: &'a [Source],
    located: Vec<Located<'a>>,
    list: Vec<ConfigError>,
}

impl Errors<'_> {
    /// Problems found so far.
    pub(super) fn count(&self) -> usize {
        self.list.len()
    }

    /// A file's path, for messages.
    pub(super) fn file_name(&self, file: usize) -> String {
        self.sources[file].path.display().to_string()
    }

    pub(super) fn at(&mut self, file: usize, path: &FieldPath, reason: impl Into<String>) {
        let located = &self.located[file];
        let span = located.span_of(path);
        self.list.push(ConfigError {
            file: self.sources[file].path.clone(),
            position: Some(located.line_col(span.start)),
            field: path.to_string(),
            reason: reason.into(),
        });
    }

    /// `text` as an IP address and port, or an error at `path` giving an example of the form.
    pub(super) fn socket_address(
        &mut self,
        file: usize,
        path: &FieldPath,
        text: &str,
        example: &str,
    ) -> Option<std::net::SocketAddr> {
        let parsed = text.trim().parse().ok();
        if parsed.is_none() {
            self.at(file, path, format!("must be an IP address and {example}, got `{text}`"));
        }
        parsed
    }

    fn line_of(&self, file: usize, path: &FieldPath) -> usize {
        let located = &self.located[file];
        located.line_col(located.span_of(path).start).0
    }
}

/// The sources a reference may name, for messages about an unknown one.
pub(super) fn defined_sources(sources: &[ResolvedSource]) -> String {
    if sources.is_empty() {
        "none is defined".to_owned()
    } else {
        format!("defined: {}", sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "))
    }
}

/// Exactly `a × b` for two fixed-point values (e.g. tick size × contract size), if it fits.
fn product(a: i64, b: i64) -> Option<i64> {
    let raw = i128::from(a) * i128::from(b);
    (raw % i128::from(SCALE) == 0).then(|| i64::try_from(raw / i128::from(SCALE)).ok()).flatten()
}

fn decimals_of(raw: i64) -> u8 {
    let mut decimals = 8u8;
    let mut value = raw;
    while decimals > 0 && value % 10 == 0 {
        value /= 10;
        decimals -= 1;
    }
    decimals
}

fn spec_error_field(error: &SpecError) -> &'static str {
    match error {
        SpecError::NotPositive { field, .. } | SpecError::OffStep { field, .. } => field,
        SpecError::MaxBelowMin { .. } => "max_qty",
        SpecError::TickFinerThanDigits { .. } => "digits",
    }
}

pub(super) fn resolve(sources: &[Source]) -> Result<Resolved, ConfigErrors> {
    let located = sources
        .iter()
        .map(|s| Located::new(&s.text, toml::de::DeTable::parse(&s.text).expect("parsed before")))
        .collect();
    let mut errors = Errors { sources, located, list: Vec::new() };
    let root = FieldPath::root();

    // Sections that only one file may define.
    let single = |errors: &mut Errors<'_>, name: &str, defined: Vec<usize>| -> Option<usize> {
        if defined.len() > 1 {
            let first = errors.sources[defined[0]].path.display().to_string();
            for file in &defined[1..] {
                errors.at(*file, &root.key(name), format!("[{name}] is already defined in {first}"));
            }
        }
        defined.first().copied()
    };
    let engine_file =
        single(&mut errors, "engine", (0..sources.len()).filter(|i| sources[*i].raw.engine.is_some()).collect());
    let logging_file =
        single(&mut errors, "logging", (0..sources.len()).filter(|i| sources[*i].raw.logging.is_some()).collect());
    let sim_file = single(&mut errors, "sim", (0..sources.len()).filter(|i| sources[*i].raw.sim.is_some()).collect());

    let engine = engine_file.and_then(|f| sources[f].raw.engine.clone()).unwrap_or_default();
    let engine_at = |key: &str| (engine_file.unwrap_or(0), root.key("engine").key(key));
    let shards = engine.shards.unwrap_or_else(default_shards);
    if !(1..=64).contains(&shards) {
        let (file, path) = engine_at("shards");
        errors.at(file, &path, format!("must be between 1 and 64, got {shards}"));
    }
    for (key, value) in
        [("mailbox_capacity", engine.mailbox_capacity), ("connector_queue_capacity", engine.connector_queue_capacity)]
    {
        if value < 16 {
            let (file, path) = engine_at(key);
            errors.at(file, &path, format!("must be at least 16, got {value}"));
        }
    }
    if engine.day_start_utc_hour > 23 {
        let (file, path) = engine_at("day_start_utc_hour");
        errors.at(file, &path, format!("must be an hour from 0 to 23, got {}", engine.day_start_utc_hour));
    }
    if engine.call_timeout_ms == 0 {
        let (file, path) = engine_at("call_timeout_ms");
        errors.at(file, &path, "must be positive");
    }
    if engine.status_interval_ms < 100 {
        let (file, path) = engine_at("status_interval_ms");
        errors.at(file, &path, format!("must be at least 100 ms, got {}", engine.status_interval_ms));
    }
    let runtime = RuntimeSettings {
        shards,
        spin_iterations: engine.spin_iterations,
        mailbox_capacity: engine.mailbox_capacity,
        connector_queue_capacity: engine.connector_queue_capacity,
        pin_cores: engine.pin_cores,
        day_start_utc_hour: engine.day_start_utc_hour,
        encoding: engine.encoding,
    };
    let connector_file =
        single(&mut errors, "connector", (0..sources.len()).filter(|i| sources[*i].raw.connector.is_some()).collect());
    let connector_section = connector_file.and_then(|f| sources[f].raw.connector.clone()).unwrap_or_default();
    if connector_section.boot_timeout_ms < 1_000 {
        errors.at(
            connector_file.unwrap_or(0),
            &root.key("connector").key("boot_timeout_ms"),
            format!("must be at least 1000 ms, got {}", connector_section.boot_timeout_ms),
        );
    }
    let connector = ConnectorSettings {
        call_timeout: Duration::from_millis(engine.call_timeout_ms.max(1)),
        boot_timeout: Duration::from_millis(connector_section.boot_timeout_ms.max(1)),
        ..ConnectorSettings::default()
    };

    // Broker platforms: cTrader connections and the MetaTrader bridge.
    let ctrader_sections: Vec<(usize, &BTreeMap<String, CtraderEntry>)> =
        sources.iter().enumerate().map(|(file, s)| (file, &s.raw.ctrader)).collect();
    // Every session defined (valid or not), with the first file that defines it.
    let mut session_at: BTreeMap<String, usize> = BTreeMap::new();
    for (file, source) in sources.iter().enumerate() {
        for name in source.raw.ctrader.keys() {
            session_at.entry(name.clone()).or_insert(file);
        }
    }
    let ctrader_sessions = platforms::ctrader_sessions(&mut errors, &ctrader_sections);
    let metatrader_file = single(
        &mut errors,
        "metatrader",
        (0..sources.len()).filter(|i| sources[*i].raw.metatrader.is_some()).collect(),
    );
    let metatrader = metatrader_file.and_then(|file| {
        let section = sources[file].raw.metatrader.as_ref()?;
        platforms::metatrader_bridge(&mut errors, file, section)
    });

    let logging = logging_file.and_then(|f| sources[f].raw.logging.clone()).unwrap_or_default();
    if !["hourly", "daily", "minutely"].contains(&logging.rotation.as_str()) {
        errors.at(
            logging_file.unwrap_or(0),
            &root.key("logging").key("rotation"),
            format!("must be hourly, daily or minutely, not `{}`", logging.rotation),
        );
    }

    let sim_section = sim_file.and_then(|f| sources[f].raw.sim.clone()).unwrap_or_default();
    let sim_at = |key: &str| (sim_file.unwrap_or(0), root.key("sim").key(key));
    for (key, value) in [
        ("partial_fill_probability", sim_section.partial_fill_probability),
        ("reject_probability", sim_section.reject_probability),
    ] {
        if !(0.0..=1.0).contains(&value) {
            let (file, path) = sim_at(key);
            errors.at(file, &path, format!("must be a probability from 0 to 1, got {value}"));
        }
    }
    if sim_section.latency_min_ms > sim_section.latency_max_ms {
        let (file, path) = sim_at("latency_max_ms");
        errors.at(file, &path, format!("must not be below latency_min_ms ({})", sim_section.latency_min_ms));
    }
    if let Some(remote) = &sim_section.remote
        && remote.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
    {
        let (file, path) = sim_at("remote");
        errors.at(file, &path, format!("must be host:port, got `{remote}`"));
    }
    let storage_file =
        single(&mut errors, "storage", (0..sources.len()).filter(|i| sources[*i].raw.storage.is_some()).collect());
    let storage = storage_file.and_then(|f| sources[f].raw.storage.clone()).unwrap_or_default();
    let storage_at = |key: &str| (storage_file.unwrap_or(0), root.key("storage").key(key));
    if storage.snapshot_every_inputs == 0 {
        let (file, path) = storage_at("snapshot_every_inputs");
        errors.at(file, &path, "must be at least 1");
    }
    if storage.snapshot_interval_ms < 100 {
        let (file, path) = storage_at("snapshot_interval_ms");
        errors.at(file, &path, format!("must be at least 100 ms, got {}", storage.snapshot_interval_ms));
    }
    if storage.dir.trim().is_empty() {
        let (file, path) = storage_at("dir");
        errors.at(file, &path, "must name a directory");
    }
    let journal = storage.journal.then(|| JournalSettings {
        write_ahead: storage.write_ahead,
        snapshot_inputs: storage.snapshot_every_inputs.max(1),
        snapshot_interval: Duration::from_millis(storage.snapshot_interval_ms),
        signal_retention: Duration::from_secs(storage.signal_retention_hours.saturating_mul(3_600)),
        compact: storage.compact,
        ..JournalSettings::in_dir(PathBuf::from(&storage.dir).join("journal"))
    });
    let digest = {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        for source in sources {
            hasher.update(source.text.as_bytes());
        }
        crate::hex::lower_hex(&hasher.finalize())
    };
    let sim = SimConfig {
        seed: sim_section.seed,
        tick_interval: (sim_section.tick_ms > 0).then(|| Duration::from_millis(sim_section.tick_ms)),
        latency_min: Duration::from_millis(sim_section.latency_min_ms),
        latency_max: Duration::from_millis(sim_section.latency_max_ms),
        slippage_ticks_max: sim_section.slippage_ticks_max,
        partial_fill_probability: sim_section.partial_fill_probability,
        reject_probability: sim_section.reject_probability,
        ..SimConfig::default()
    };

    // The instrument catalog.
    let mut catalog: BTreeMap<Symbol, InstrumentSpec> = BTreeMap::new();
    let mut markets = Vec::new();
    let mut catalog_file: BTreeMap<Symbol, usize> = BTreeMap::new();
    let mut feeds: BTreeMap<Symbol, Symbol> = BTreeMap::new();
    let mut priced_by: Vec<(usize, FieldPath, Symbol, Symbol)> = Vec::new();
    for (file, source) in sources.iter().enumerate() {
        for (key, entry) in &source.raw.instruments {
            let path = root.key("instruments").key(key);
            let symbol = match Symbol::new(key) {
                Ok(symbol) => symbol,
                Err(error) => {
                    errors.at(file, &path, error.to_string());
                    continue;
                }
            };
            if let Some(first) = catalog_file.insert(symbol, file) {
                errors.at(
                    file,
                    &path,
                    format!("instrument {symbol} is already defined in {}", sources[first].path.display()),
                );
                continue;
            }
            if let Some((spec, market)) = catalog_entry(&mut errors, file, &path, symbol, entry) {
                catalog.insert(symbol, spec);
                feeds.insert(symbol, symbol);
                match (market, entry.priced_by) {
                    (Some(market), None) => markets.push(market),
                    (None, Some(parent)) => priced_by.push((file, path.key("priced_by"), symbol, parent)),
                    _ => errors.at(file, &path, "give either a starting `price` or `priced_by`, not both"),
                }
            }
        }
    }

    for (file, path, symbol, parent) in priced_by {
        match (markets.iter().find(|m| m.symbol == parent), catalog.get(&symbol)) {
            (Some(market), Some(spec)) if market.tick_size.raw() % spec.tick_size.raw() == 0 => {
                feeds.insert(symbol, parent);
            }
            (Some(market), Some(spec)) => errors.at(
                file,
                &path,
                format!(
                    "{parent} moves in steps of {}, which are not whole ticks of {symbol} ({})",
                    market.tick_size, spec.tick_size
                ),
            ),
            _ => errors.at(file, &path, format!("{parent} is not an instrument with its own price")),
        }
    }

    // Risk profiles.
    let mut profiles: BTreeMap<String, RiskLimits> = BTreeMap::new();
    for (file, source) in sources.iter().enumerate() {
        for (name, limits) in &source.raw.risk {
            let path = root.key("risk").key(name);
            if profiles.insert(name.clone(), *limits).is_some() {
                errors.at(file, &path, format!("risk profile `{name}` is defined twice"));
            }
            check_limits(&mut errors, file, &path, limits);
        }
    }

    // Accounts.
    let mut accounts: Vec<ResolvedAccount> = Vec::new();
    let mut account_at: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut naming: BTreeMap<String, (String, String, BTreeSet<Symbol>)> = BTreeMap::new();
    let mut ids: BTreeMap<AccountId, String> = BTreeMap::new();
    let mut placed: Vec<Placed<'_>> = Vec::new();
    let mut unchecked: BTreeSet<String> = BTreeSet::new();
    for (file, source) in sources.iter().enumerate() {
        for (index, entry) in source.raw.accounts.iter().enumerate() {
            let path = root.key("accounts").index(index);
            if entry.name.trim().is_empty() {
                errors.at(file, &path.key("name"), "must not be empty");
                continue;
            }
            if let Some((other_file, other_index)) = account_at.get(&entry.name) {
                let line = errors.line_of(*other_file, &root.key("accounts").index(*other_index));
                errors.at(
                    file,
                    &path.key("name"),
                    format!(
                        "account `{}` is already defined (line {line} of {})",
                        entry.name,
                        sources[*other_file].path.display()
                    ),
                );
                continue;
            }
            account_at.insert(entry.name.clone(), (file, index));
            let id = AccountId::from_name(&entry.name);
            if let Some(other) = ids.insert(id, entry.name.clone()) {
                errors.at(
                    file,
                    &path.key("name"),
                    format!("the name hashes to the same id as account `{other}`; rename one of them"),
                );
            }
            placed.push(Placed { file, path: path.clone(), entry });
            let venue =
                platforms::account_venue(&mut errors, file, &path, entry, &session_at, metatrader_file.is_some());
            let account = resolve_account(&mut errors, file, &path, entry, &catalog, &feeds, &profiles);
            if let (Some(venue), Some(mut account)) = (venue, account) {
                // A broker account's symbols are its broker's unless it lists them: links to it
                // cannot be checked against the catalog.
                let symbols = if account.instruments_listed || venue == Venue::Sim {
                    account.instruments.iter().map(|i| i.spec.symbol).collect()
                } else {
                    unchecked.insert(entry.name.clone());
                    BTreeSet::new()
                };
                naming.insert(entry.name.clone(), (entry.symbol_prefix.clone(), entry.symbol_suffix.clone(), symbols));
                account.venue = venue;
                accounts.push(account);
            }
        }
    }

    platforms::check_shared(
        &mut errors,
        &placed,
        &ctrader_sessions,
        &session_at,
        metatrader_file.filter(|_| metatrader.is_some()),
    );

    // Sources.
    let mut resolved_sources = Vec::new();
    for (file, source) in sources.iter().enumerate() {
        for (index, entry) in source.raw.sources.iter().enumerate() {
            let path = root.key("sources").index(index);
            if entry.name.trim().is_empty() {
                errors.at(file, &path.key("name"), "must not be empty");
            } else if account_at.contains_key(&entry.name)
                || resolved_sources.iter().any(|s: &ResolvedSource| s.name == entry.name)
            {
                errors.at(
                    file,
                    &path.key("name"),
                    format!("the name `{}` is already used by an account or a source", entry.name),
                );
            } else {
                resolved_sources.push(ResolvedSource {
                    id: SourceId::from_name(&entry.name),
                    name: entry.name.clone(),
                    symbols: entry.symbols.clone(),
                });
            }
        }
    }

    // The gateway, whose tokens send orders as sources.
    let gateway_file =
        single(&mut errors, "gateway", (0..sources.len()).filter(|i| sources[*i].raw.gateway.is_some()).collect());
    let gateway = gateway_file.and_then(|file| {
        let section = sources[file].raw.gateway.as_ref()?;
        let is_account = |name: &str| account_at.contains_key(name);
        gateway::gateway(&mut errors, file, section, &resolved_sources, &is_account)
    });
    let http_file =
        single(&mut errors, "http", (0..sources.len()).filter(|i| sources[*i].raw.http.is_some()).collect());
    let http = http_file.and_then(|file| {
        let section = sources[file].raw.http.as_ref()?;
        http::http(&mut errors, file, section, &resolved_sources, &storage.dir)
    });
    let drop_entries: Vec<_> =
        sources.iter().enumerate().map(|(file, s)| (file, s.raw.file_drops.as_slice())).collect();
    let file_drops =
        file_drop::file_drops(&mut errors, &drop_entries, &resolved_sources, &|name| account_at.contains_key(name));

    // Links.
    let mut links = Vec::new();
    let mut link_at: Vec<(usize, FieldPath)> = Vec::new();
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (file, source) in sources.iter().enumerate() {
        for (index, entry) in source.raw.links.iter().enumerate() {
            let path = root.key("links").index(index);
            let leader = if let Some(account) = accounts.iter().find(|a| a.name == entry.leader) {
                Origin::Account(account.id)
            } else if let Some(source) = resolved_sources.iter().find(|s| s.name == entry.leader) {
                Origin::Source(source.id)
            } else {
                errors.at(file, &path.key("leader"), format!("no account or source is named `{}`", entry.leader));
                continue;
            };
            let Some(follower) = accounts.iter().find(|a| a.name == entry.follower) else {
                let reason = if resolved_sources.iter().any(|s| s.name == entry.follower) {
                    format!("`{}` is a source; only accounts can follow", entry.follower)
                } else {
                    format!("no account is named `{}`", entry.follower)
                };
                errors.at(file, &path.key("follower"), reason);
                continue;
            };
            if entry.leader == entry.follower {
                errors.at(file, &path.key("follower"), "an account cannot copy itself");
                continue;
            }
            if let Some(first) = pairs.insert((entry.leader.clone(), entry.follower.clone()), links.len()) {
                let (first_file, first_path) = &link_at[first];
                let line = errors.line_of(*first_file, first_path);
                errors.at(
                    file,
                    &path,
                    format!(
                        "{} → {} is already linked at line {line} of {}",
                        entry.leader,
                        entry.follower,
                        sources[*first_file].path.display()
                    ),
                );
                continue;
            }
            let rules = link_rules(&mut errors, file, &path, entry, leader, &naming, &unchecked);
            links.push(ResolvedLink {
                leader,
                leader_name: entry.leader.clone(),
                follower: follower.id,
                follower_name: follower.name.clone(),
                rules,
                paused: entry.paused,
            });
            link_at.push((file, path));
        }
    }

    // Chains must not loop.
    let mut edges: BTreeMap<AccountId, BTreeSet<AccountId>> = BTreeMap::new();
    for link in &links {
        if let Origin::Account(leader) = link.leader {
            edges.entry(leader).or_default().insert(link.follower);
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        // Report the cycle at its link that comes last in the files, and walk the cycle
        // from that link's follower so the message reads in the order the links were written.
        let edge_index = |from: AccountId, to: AccountId| {
            links.iter().position(|l| l.leader == Origin::Account(from) && l.follower == to).unwrap_or(0)
        };
        let hops: Vec<(usize, AccountId)> = cycle.windows(2).map(|w| (edge_index(w[0], w[1]), w[1])).collect();
        let closing = hops.iter().map(|(index, _)| *index).max().unwrap_or(0);
        let start = hops.iter().position(|(index, _)| *index == closing).unwrap_or(0);
        let name = |id: &AccountId| accounts.iter().find(|a| a.id == *id).map_or("?", |a| a.name.as_str());
        let mut names: Vec<&str> = (0..=hops.len()).map(|i| name(&hops[(start + i) % hops.len()].1)).collect();
        names.dedup();
        let (file, path) = link_at[closing].clone();
        errors.at(file, &path, format!("this link closes a copy cycle: {}", names.join(" → ")));
    }

    if !errors.list.is_empty() {
        return Err(ConfigErrors(errors.list));
    }
    Ok(Resolved {
        files: sources.iter().map(|s| s.path.clone()).collect(),
        texts: sources.iter().map(|s| s.text.clone()).collect(),
        runtime,
        connector,
        status_interval: Duration::from_millis(engine.status_interval_ms),
        logging,
        sim,
        sim_remote: sim_section.remote.clone(),
        journal,
        ctrader: ctrader_sessions.into_values().collect(),
        metatrader,
        gateway,
        http,
        file_drops,
        digest,
        secrets: engine.secrets.clone(),
        markets,
        catalog,
        accounts,
        sources: resolved_sources,
        links,
        risk_profiles: profiles,
    })
}

/// The catalog spec of an instrument, and its own market unless it is priced by another.
fn catalog_entry(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    symbol: Symbol,
    entry: &InstrumentEntry,
) -> Option<(InstrumentSpec, Option<SimMarket>)> {
    let tick_value = match entry.tick_value {
        Some(value) => value,
        None => match product(entry.tick_size.raw(), entry.contract_size.raw()) {
            Some(raw) => Money::from_raw(raw),
            None => {
                errors.at(
                    file,
                    &path.key("tick_value"),
                    "tick size × contract size is not exact at 8 decimals; give tick_value explicitly",
                );
                return None;
            }
        },
    };
    let spec = InstrumentSpec {
        symbol,
        kind: entry.kind,
        contract_size: entry.contract_size,
        tick_size: entry.tick_size,
        tick_value,
        lot_step: entry.lot_step,
        min_qty: entry.min_qty,
        max_qty: entry.max_qty,
        digits: entry.digits.unwrap_or_else(|| decimals_of(entry.tick_size.raw())),
    };
    if let Err(error) = spec.validate() {
        errors.at(file, &path.key(spec_error_field(&error)), error.to_string());
        return None;
    }
    let Some(price) = entry.price else {
        if entry.priced_by.is_none() {
            errors.at(file, path, "needs a starting `price` for its simulated market, or `priced_by`");
            return None;
        }
        return Some((spec, None));
    };
    if !price.is_positive() || !spec.price_is_on_tick(price) {
        errors.at(
            file,
            &path.key("price"),
            format!("the starting price {price} must be positive and on the {} tick grid", spec.tick_size),
        );
        return None;
    }
    let market = SimMarket {
        symbol,
        bid: price,
        tick_size: entry.tick_size,
        spread_ticks: entry.spread_ticks,
        volatility_ticks: entry.volatility_ticks,
    };
    Some((spec, Some(market)))
}

fn check_limits(errors: &mut Errors<'_>, file: usize, path: &FieldPath, limits: &RiskLimits) {
    for (key, value) in [("max_order_qty", limits.max_order_qty), ("max_symbol_exposure", limits.max_symbol_exposure)] {
        if value.is_some_and(|v| !v.is_positive()) {
            errors.at(file, &path.key(key), "must be positive");
        }
    }
    if limits.max_open_positions == Some(0) {
        errors.at(file, &path.key("max_open_positions"), "must be at least 1");
    }
    if limits.daily_loss_limit.is_some_and(|v| !v.is_positive()) {
        errors.at(file, &path.key("daily_loss_limit"), "must be positive");
    }
    for (key, value) in [
        ("max_daily_drawdown_pct", limits.max_daily_drawdown_pct),
        ("flatten_group_at_drawdown_pct", limits.flatten_group_at_drawdown_pct),
    ] {
        if let Some(pct) = value
            && (!pct.is_positive() || pct.num() > 100 * pct.den())
        {
            errors.at(file, &path.key(key), format!("must be a percentage above 0 and at most 100, got {pct}"));
        }
    }
}

fn resolve_account(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entry: &AccountEntry,
    catalog: &BTreeMap<Symbol, InstrumentSpec>,
    feeds: &BTreeMap<Symbol, Symbol>,
    profiles: &BTreeMap<String, RiskLimits>,
) -> Option<ResolvedAccount> {
    let before = errors.list.len();
    let simulated = entry.platform == Platform::Sim;
    let balance = match entry.balance {
        Some(balance) if simulated && !balance.is_positive() => {
            errors.at(file, &path.key("balance"), format!("must be positive, got {balance}"));
            balance
        }
        Some(balance) => balance,
        None if simulated => {
            errors.at(file, path, "a simulated account needs a starting `balance`");
            Money::ZERO
        }
        None => Money::ZERO,
    };
    let risk = match &entry.risk {
        Some(name) => match profiles.get(name) {
            Some(limits) => *limits,
            None => {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                errors.at(
                    file,
                    &path.key("risk"),
                    format!("no risk profile is named `{name}` (known: {})", known.join(", ")),
                );
                RiskLimits::default()
            }
        },
        None => RiskLimits::default(),
    };
    let chosen: Vec<Symbol> = match &entry.instruments {
        Some(list) => {
            for (index, symbol) in list.iter().enumerate() {
                if !catalog.contains_key(symbol) {
                    errors.at(
                        file,
                        &path.key("instruments").index(index),
                        format!("{symbol} is not in the [instruments] catalog"),
                    );
                }
            }
            list.iter().filter(|s| catalog.contains_key(s)).copied().collect()
        }
        None => catalog.keys().copied().collect(),
    };
    for key in entry.overrides.keys() {
        if !Symbol::new(key).is_ok_and(|s| chosen.contains(&s)) {
            errors.at(file, &path.key("overrides").key(key), format!("{key} is not one of the account's instruments"));
        }
    }
    let mut instruments = Vec::new();
    for canonical in &chosen {
        let mut spec = catalog[canonical];
        let symbol = match canonical.decorated(&entry.symbol_prefix, &entry.symbol_suffix) {
            Ok(symbol) => symbol,
            Err(error) => {
                errors.at(file, &path.key("symbol_suffix"), error.to_string());
                continue;
            }
        };
        spec.symbol = symbol;
        if let Some(change) = entry.overrides.get(canonical.as_str()) {
            spec.contract_size = change.contract_size.unwrap_or(spec.contract_size);
            spec.tick_value = change.tick_value.unwrap_or(spec.tick_value);
            spec.lot_step = change.lot_step.unwrap_or(spec.lot_step);
            spec.min_qty = change.min_qty.unwrap_or(spec.min_qty);
            spec.max_qty = change.max_qty.unwrap_or(spec.max_qty);
            if let Err(error) = spec.validate() {
                errors.at(
                    file,
                    &path.key("overrides").key(canonical.as_str()).key(spec_error_field(&error)),
                    error.to_string(),
                );
            }
        }
        instruments.push(SimInstrument { spec, feed: feeds.get(canonical).copied().unwrap_or(*canonical) });
    }
    let autotrade = entry.autotrade.as_ref().map(|auto| {
        let auto_path = path.key("autotrade");
        if auto.every_ms < 50 {
            errors.at(file, &auto_path.key("every_ms"), format!("must be at least 50 ms, got {}", auto.every_ms));
        }
        if auto.quantities.is_empty() {
            errors.at(file, &auto_path.key("quantities"), "must list at least one quantity");
        }
        let symbols: Vec<Symbol> = if auto.symbols.is_empty() { chosen.clone() } else { auto.symbols.clone() };
        let mut own = Vec::new();
        for (index, canonical) in symbols.iter().enumerate() {
            let Some(instrument) =
                instruments.iter().zip(&chosen).find(|(_, chosen)| *chosen == canonical).map(|(i, _)| i)
            else {
                errors.at(
                    file,
                    &auto_path.key("symbols").index(index),
                    format!("the account does not trade {canonical}"),
                );
                continue;
            };
            for (q_index, qty) in auto.quantities.iter().enumerate() {
                if !instrument.spec.qty_is_tradable(*qty) {
                    errors.at(
                        file,
                        &auto_path.key("quantities").index(q_index),
                        format!(
                            "{qty} is not a tradable quantity of {} (step {}, min {}, max {})",
                            instrument.spec.symbol,
                            instrument.spec.lot_step,
                            instrument.spec.min_qty,
                            instrument.spec.max_qty
                        ),
                    );
                }
            }
            own.push(instrument.spec.symbol);
        }
        let seed = auto.seed.unwrap_or_else(|| u64::from(AccountId::from_name(&entry.name).0));
        (
            AutoTraderConfig {
                every: Duration::from_millis(auto.every_ms),
                symbols: own,
                quantities: auto.quantities.clone(),
                max_positions: auto.max_positions,
                stop_ticks: auto.stop_ticks,
                profit_ticks: auto.profit_ticks,
            },
            seed,
        )
    });
    for (index, group) in entry.groups.iter().enumerate() {
        let valid = !group.is_empty()
            && group.len() <= 64
            && group.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            errors.at(
                file,
                &path.key("groups").index(index),
                format!("`{group}`: a group name is 1 to 64 letters, digits, `-`, `_` or `.`"),
            );
        }
    }
    if errors.list.len() > before {
        return None;
    }
    Some(ResolvedAccount {
        id: AccountId::from_name(&entry.name),
        name: entry.name.clone(),
        platform: entry.platform,
        venue: Venue::Sim,
        mode: entry.mode,
        currency: match &entry.currency {
            Some(currency) => currency.clone(),
            None if simulated => "USD".into(),
            None => String::new(),
        },
        balance,
        risk,
        risk_profile: entry.risk.clone(),
        instruments,
        instruments_listed: entry.instruments.is_some(),
        autotrade,
        paused: entry.paused,
        groups: entry.groups.clone(),
        credentials: entry.credentials.clone(),
    })
}

fn link_rules(
    errors: &mut Errors<'_>,
    file: usize,
    path: &FieldPath,
    entry: &LinkEntry,
    leader: Origin,
    naming: &BTreeMap<String, (String, String, BTreeSet<Symbol>)>,
    unchecked: &BTreeSet<String>,
) -> LinkRules {
    let sizing = path.key("sizing");
    let positive = |ratio: Ratio| ratio.is_positive();
    match entry.sizing {
        SizingRule::Fixed { qty } if !qty.is_positive() => {
            errors.at(file, &sizing.key("qty"), format!("must be positive, got {qty}"))
        }
        SizingRule::Multiplier { ratio } if !positive(ratio) => {
            errors.at(file, &sizing.key("ratio"), "must be above 0")
        }
        SizingRule::BalanceRatio { multiplier }
        | SizingRule::EquityRatio { multiplier }
        | SizingRule::Notional { multiplier }
            if !positive(multiplier) =>
        {
            errors.at(file, &sizing.key("multiplier"), "must be above 0");
        }
        SizingRule::RiskPercent { percent } if !positive(percent) || percent.num() > 100 * percent.den() => {
            errors.at(file, &sizing.key("percent"), format!("must be above 0 and at most 100, got {percent}"));
        }
        _ => {}
    }
    if matches!(entry.sizing, SizingRule::BalanceRatio { .. } | SizingRule::EquityRatio { .. })
        && matches!(leader, Origin::Source(_))
    {
        errors.at(
            file,
            &sizing.key("mode"),
            format!("balance and equity ratios need a leader account; `{}` is a source", entry.leader),
        );
    }
    if entry.max_qty.is_some_and(|q| !q.is_positive()) {
        errors.at(file, &path.key("max_qty"), "must be positive");
    }
    for (key, rule) in [("stop_loss", entry.stop_loss), ("take_profit", entry.take_profit)] {
        if let ProtectionRule::Distance(distance) = rule
            && !distance.is_positive()
        {
            errors.at(file, &path.key(key).key("distance"), format!("must be positive, got {distance}"));
        }
    }
    if entry.max_signal_age_ms == Some(0) {
        errors.at(file, &path.key("max_signal_age_ms"), "must be positive");
    }
    let (leader_prefix, leader_suffix) =
        naming.get(&entry.leader).map_or((String::new(), String::new()), |(p, s, _)| (p.clone(), s.clone()));
    let (follower_prefix, follower_suffix, follower_symbols) = naming.get(&entry.follower).cloned().unwrap_or_default();
    for (leader_symbol, mapped) in &entry.symbol_map {
        if !unchecked.contains(&entry.follower) && !follower_symbols.contains(&mapped.symbol) {
            errors.at(
                file,
                &path.key("symbol_map").key(leader_symbol.as_str()),
                format!("{} → {}: `{}` does not trade {}", leader_symbol, mapped.symbol, entry.follower, mapped.symbol),
            );
        }
        if !mapped.ratio.is_positive() {
            errors.at(file, &path.key("symbol_map").key(leader_symbol.as_str()).key("ratio"), "must be above 0");
        }
    }
    LinkRules {
        sizing: entry.sizing,
        rounding: entry.rounding,
        below_minimum: entry.below_minimum,
        max_qty: entry.max_qty,
        reverse: entry.reverse,
        symbols: SymbolMapping {
            map: entry.symbol_map.clone(),
            strip_prefix: entry.strip_prefix.clone().unwrap_or(leader_prefix),
            strip_suffix: entry.strip_suffix.clone().unwrap_or(leader_suffix),
            prefix: entry.symbol_prefix.clone().unwrap_or(follower_prefix),
            suffix: entry.symbol_suffix.clone().unwrap_or(follower_suffix),
        },
        allow: entry.allow.iter().copied().collect(),
        deny: entry.deny.iter().copied().collect(),
        sides: entry.sides,
        stop_loss: entry.stop_loss,
        take_profit: entry.take_profit,
        copy_pending: entry.copy_pending,
        max_signal_age_ms: entry.max_signal_age_ms,
        reconcile: ReconcilePolicy {
            repair: entry.reconcile == ReconcileMode::Repair,
            reopen_closed_by_hand: entry.reopen_closed_by_hand,
        },
    }
}
