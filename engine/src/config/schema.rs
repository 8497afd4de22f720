//! The shape of a configuration file, as written.

use std::collections::BTreeMap;

use mirror_model::{
    AccountMode, BelowMinimum, InstrumentKind, MappedSymbol, Money, Platform, Price, ProtectionRule, Qty, Rounding,
    SideFilter, SizingRule, Symbol,
};
use serde::Deserialize;

use crate::account::RiskLimits;
use crate::runtime::FanoutEncoding;
use crate::secrets::CredentialRef;
use crate::telemetry::LoggingSettings;

/// One file. Every section is optional; sections of included files are merged.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawFile {
    /// Other files to read, relative to this one.
    pub include: Vec<String>,
    /// Runtime settings.
    pub engine: Option<EngineSection>,
    /// Logging.
    pub logging: Option<LoggingSettings>,
    /// The simulated broker.
    pub sim: Option<SimSection>,
    /// Durable state.
    pub storage: Option<StorageSection>,
    /// Connector timeouts.
    pub connector: Option<ConnectorSection>,
    /// cTrader Open API connections, by session name.
    pub ctrader: BTreeMap<String, CtraderEntry>,
    /// The MetaTrader bridge the terminals' EAs dial.
    pub metatrader: Option<MetatraderSection>,
    /// The QUIC gateway for `mirror-sdk` clients.
    pub gateway: Option<GatewaySection>,
    /// The HTTP server: webhooks, health, metrics.
    pub http: Option<HttpSection>,
    /// The instrument catalog, by canonical symbol.
    pub instruments: BTreeMap<String, InstrumentEntry>,
    /// Named risk profiles.
    pub risk: BTreeMap<String, RiskLimits>,
    /// External signal sources.
    pub sources: Vec<SourceEntry>,
    /// Watched folders of CSV and JSON signal files, each sent as a source.
    pub file_drops: Vec<FileDropEntry>,
    /// Accounts.
    pub accounts: Vec<AccountEntry>,
    /// Links (leader → follower with rules).
    pub links: Vec<LinkEntry>,
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSection {
    /// Shard threads (default: cores − 1, at least 1).
    pub shards: Option<usize>,
    /// Polls of an empty mailbox before a shard parks.
    pub spin_iterations: u32,
    /// Shard mailbox capacity.
    pub mailbox_capacity: usize,
    /// Connector queue capacity per account.
    pub connector_queue_capacity: usize,
    /// Pin shards to cores.
    pub pin_cores: bool,
    /// Hour (UTC) at which the trading day starts.
    pub day_start_utc_hour: u8,
    /// How signals travel to followers.
    pub encoding: FanoutEncoding,
    /// The encrypted secrets file (default: `$MIRROR_SECRETS`, else `config/secrets.enc.toml`);
    /// its master key comes from `MIRROR_MASTER_KEY` or `MIRROR_MASTER_KEY_FILE`.
    pub secrets: Option<std::path::PathBuf>,
    /// Longest wait for one connector call, ms.
    pub call_timeout_ms: u64,
    /// Status line refresh, ms.
    pub status_interval_ms: u64,
}

impl Default for EngineSection {
    fn default() -> Self {
        let runtime = crate::runtime::RuntimeSettings::default();
        Self {
            shards: None,
            spin_iterations: runtime.spin_iterations,
            mailbox_capacity: runtime.mailbox_capacity,
            connector_queue_capacity: runtime.connector_queue_capacity,
            pin_cores: runtime.pin_cores,
            day_start_utc_hour: runtime.day_start_utc_hour,
            encoding: runtime.encoding,
            secrets: None,
            call_timeout_ms: 5_000,
            status_interval_ms: 1_000,
        }
    }
}

/// `[sim]`: the simulated broker.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSection {
    /// Seed of every random choice.
    pub seed: u64,
    /// Price step interval, ms (0: prices move only when told).
    pub tick_ms: u64,
    /// Shortest order latency, ms.
    pub latency_min_ms: u64,
    /// Longest order latency, ms.
    pub latency_max_ms: u64,
    /// Most ticks of adverse slippage.
    pub slippage_ticks_max: u32,
    /// Chance that a market open fills in two parts.
    pub partial_fill_probability: f64,
    /// Chance that an order is refused at random.
    pub reject_probability: f64,
    /// Address (`host:port`) of a simulated broker served by another process, whose state
    /// outlives this engine; without it the broker runs inside the engine.
    pub remote: Option<String>,
}

impl Default for SimSection {
    fn default() -> Self {
        Self {
            seed: 42,
            tick_ms: 250,
            latency_min_ms: 1,
            latency_max_ms: 5,
            slippage_ticks_max: 1,
            partial_fill_probability: 0.0,
            reject_probability: 0.0,
            remote: None,
        }
    }
}

/// `[connector]`: how patient the engine is with brokers.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorSection {
    /// Longest wait for an account to connect and load its state at start (and to connect
    /// again after a drop), ms. A cTrader session authorising a hundred accounts within
    /// cTrader's 50 requests per second needs about 20 s.
    pub boot_timeout_ms: u64,
}

impl Default for ConnectorSection {
    fn default() -> Self {
        Self { boot_timeout_ms: 60_000 }
    }
}

/// `[ctrader.<session>]`: one cTrader Open API application connection, shared by the accounts
/// that name it. Every credential is a reference (`secret:<name>` or `env:<VAR>`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtraderEntry {
    /// `demo`, `live` (Spotware's endpoints) or `host:port` (a proxy or a simulator).
    pub endpoint: String,
    /// The application's client id.
    pub client_id: CredentialRef,
    /// The application's client secret.
    pub client_secret: CredentialRef,
    /// The OAuth access token that grants the accounts.
    pub access_token: CredentialRef,
    /// Its refresh token, so the session can renew an expired access token by itself.
    pub refresh_token: Option<CredentialRef>,
    /// A PEM file of the certificates to trust instead of the public roots (a simulator's or
    /// a proxy's private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the server's certificate must carry (default: the endpoint's host).
    pub server_name: Option<String>,
}

/// `[metatrader]`: the bridge that the MetaTrader terminals' Expert Advisors dial.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetatraderSection {
    /// Address to listen on (`0.0.0.0:5200`).
    pub listen: String,
    /// PEM file of the bridge's certificate chain (leaf first).
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM file of its private key.
    pub tls_key: Option<std::path::PathBuf>,
    /// Accept plain TCP on an address other than loopback (or beside TLS).
    #[serde(default)]
    pub allow_plain: bool,
}

/// `[gateway]`: the QUIC gateway algo traders (`mirror-sdk`) and the desktop apps connect to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// UDP address to listen on (`127.0.0.1:7443`).
    pub listen: String,
    /// A directory for a self-signed certificate, generated on first run and kept (clients
    /// pin its fingerprint). Either this or `cert` and `key`.
    pub cert_dir: Option<std::path::PathBuf>,
    /// The DNS names or IP addresses the generated certificate is made for (default
    /// `["localhost"]`).
    pub names: Option<Vec<String>>,
    /// PEM file of a certificate chain (leaf first), instead of `cert_dir`.
    pub cert: Option<std::path::PathBuf>,
    /// PEM file of its private key.
    pub key: Option<std::path::PathBuf>,
    /// Require client certificates signed by this CA (PEM).
    pub client_ca: Option<std::path::PathBuf>,
    /// Connections at once; beyond, new ones are refused.
    pub connections_max: Option<usize>,
    /// A connection with no traffic is closed after this long, ms.
    pub idle_timeout_ms: Option<u64>,
    /// Longest wait for the engine to accept an order (durably, with the journal), ms.
    pub submit_timeout_ms: Option<u64>,
    /// How long a pair whose ticket names no window is watched before its policy applies, ms.
    pub pair_settle_ms: Option<u64>,
    /// The tokens clients present.
    #[serde(default)]
    pub tokens: Vec<GatewayTokenEntry>,
}

/// `[http]`: the HTTP server (webhooks, health, metrics).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// TCP address to listen on (`127.0.0.1:8080`; port 0 picks a free one).
    pub listen: String,
    /// HTTPS: a PEM certificate chain (leaf first); with `tls_key`. Without: plain HTTP.
    pub tls_cert: Option<std::path::PathBuf>,
    /// HTTPS: the certificate's private key, PEM.
    pub tls_key: Option<std::path::PathBuf>,
    /// Largest request body accepted, bytes.
    pub body_limit_bytes: Option<usize>,
    /// Requests per second each client address may make on each route, sustained.
    pub rate_per_second: Option<u32>,
    /// Requests a client may make at once on a route before the sustained rate applies.
    pub rate_burst: Option<u32>,
    /// Longest wait for the engine to accept a signal (durably, with the journal), ms.
    pub submit_timeout_ms: Option<u64>,
    /// Event batches queued per WebSocket subscriber before it starts again from a snapshot.
    pub stream_queue: Option<usize>,
    /// Longest a WebSocket write waits for a client that does not read, ms.
    pub stream_write_timeout_ms: Option<u64>,
    /// WebSocket streams open at once at most.
    pub streams_max: Option<usize>,
    /// The webhooks it serves.
    #[serde(default)]
    pub webhooks: Vec<WebhookEntry>,
    /// Where state that outlives a restart is kept (the built-in OAuth issuer's signing key);
    /// default `<[storage] dir>/http`.
    pub state_dir: Option<std::path::PathBuf>,
    /// Bearer tokens for the API; without, the API refuses every request.
    pub auth: Option<AuthSection>,
}

/// `[http.auth]`: who may call the API, with which role.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// The built-in issuer's identifier (`iss`), the URL clients reach this server at
    /// (default `http(s)://<listen>`).
    pub issuer: Option<String>,
    /// The audience every token must carry (`aud`); default `mirror`.
    pub audience: Option<String>,
    /// Lifetime of the built-in issuer's tokens, seconds (default 3600).
    pub token_ttl_s: Option<u64>,
    /// The built-in issuer's clients (OAuth2 client credentials).
    #[serde(default)]
    pub clients: Vec<AuthClientEntry>,
    /// An external OIDC provider whose tokens are accepted too.
    pub oidc: Option<OidcSection>,
}

/// `[[http.auth.clients]]`: one client of the built-in issuer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthClientEntry {
    /// Its id.
    pub client_id: String,
    /// Its secret, by reference (`secret:<name>` or `env:<VAR>`); at least 16 characters.
    pub client_secret: CredentialRef,
    /// The highest role its tokens may have.
    pub role: crate::http::Role,
}

/// `[http.auth.oidc]`: an external OpenID Connect provider.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSection {
    /// Its issuer identifier, exactly as its tokens' `iss`.
    pub issuer: String,
    /// Its JSON Web Key Set, https://.
    pub jwks_url: String,
    /// The audience its tokens carry, when not `[http.auth] audience`.
    pub audience: Option<String>,
    /// Where its tokens carry roles: a claim or a dotted path (default `roles`).
    pub role_claim: Option<String>,
    /// Provider role → Mirror role (default: `viewer`, `trader`, `admin` as themselves).
    #[serde(default)]
    pub role_map: BTreeMap<String, crate::http::Role>,
    /// How often the key set is fetched again, seconds (default 3600).
    pub jwks_refresh_s: Option<u64>,
    /// Trust this CA (PEM) for `jwks_url` instead of the public web roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// What a webhook accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKindEntry {
    /// TradingView alerts (JSON or plain text), the secret in the path or the body.
    Tradingview,
    /// Mirror's JSON signal, signed with HMAC-SHA256 over the timestamp and the body.
    Signed,
    /// Telegram Bot API updates: channel and group messages read as trade signals.
    Telegram,
    /// Trade events an MT4/MT5 Expert Advisor posts with `WebRequest`.
    MetatraderEa,
}

/// `[[http.webhooks]]`: one webhook and the source its signals are sent as.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// Its name (logged instead of the secret; the path of a signed webhook).
    pub name: String,
    /// What it accepts.
    pub kind: WebhookKindEntry,
    /// The shared secret, by reference.
    pub secret: CredentialRef,
    /// The `[[sources]]` entry its signals are sent as.
    pub source: String,
    /// Client addresses allowed (IP addresses or CIDR networks); empty: any.
    #[serde(default)]
    pub allow_ips: Vec<String>,
    /// Telegram: the chats (ids such as -1001234567890) whose messages are executed; absent:
    /// any chat the bot is in.
    pub chats: Option<Vec<i64>>,
    /// Telegram: the leader quantity each channel signal opens with (default 1).
    pub qty: Option<Qty>,
}

/// `[[gateway.tokens]]`: one token a client may present, and what it allows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayTokenEntry {
    /// Its name, logged instead of the token.
    pub name: String,
    /// The token, by reference: `secret:<name>` or `env:<VAR>`; never the value itself. At
    /// least 16 characters.
    pub token: CredentialRef,
    /// What it allows.
    pub role: GatewayRole,
    /// The `[[sources]]` entry its orders are sent as (required for `trader`).
    pub source: Option<String>,
    /// When the reference does not resolve at start (the variable is not set, the secret is
    /// not in the store), the token is left out and the start says so, instead of failing.
    #[serde(default)]
    pub optional: bool,
}

/// `gateway.tokens.role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayRole {
    /// Reads state and the configuration.
    Viewer,
    /// Also sends orders, as its source.
    Trader,
    /// Also pauses, resumes and flattens.
    Admin,
}

/// `[storage]`: the journal (sled) and, with `DATABASE_URL` set, Postgres.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Keep the intent journal (recovery after a crash needs it).
    pub journal: bool,
    /// Directory of the journal and snapshots.
    pub dir: String,
    /// Hold every order until the input behind it is on disk (no order the journal cannot
    /// explain, at the cost of one disk flush of latency).
    pub write_ahead: bool,
    /// Snapshot an account after this many inputs.
    pub snapshot_every_inputs: u64,
    /// Snapshot a changed account at least this often, ms.
    pub snapshot_interval_ms: u64,
    /// Keep signals at least this long, hours.
    pub signal_retention_hours: u64,
    /// Drop journal entries once snapshots and Postgres no longer need them (false: keep
    /// the whole log, for audits; it grows without bound).
    pub compact: bool,
}

impl Default for StorageSection {
    fn default() -> Self {
        Self {
            journal: true,
            dir: "data".into(),
            write_ahead: true,
            snapshot_every_inputs: 10_000,
            snapshot_interval_ms: 30_000,
            signal_retention_hours: 168,
            compact: true,
        }
    }
}

/// `[instruments.<SYMBOL>]`: an instrument of the catalog and its simulated market.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentEntry {
    /// Market kind.
    #[serde(default)]
    pub kind: InstrumentKind,
    /// Units per quantity unit.
    pub contract_size: Qty,
    /// Price increment.
    pub tick_size: Price,
    /// Value of one tick on quantity 1 (default: tick size × contract size).
    pub tick_value: Option<Money>,
    /// Quantity increment.
    pub lot_step: Qty,
    /// Smallest order.
    pub min_qty: Qty,
    /// Largest order.
    pub max_qty: Qty,
    /// Decimals shown (default: those of the tick size).
    pub digits: Option<u8>,
    /// The simulated market's starting bid (not needed with `priced_by`).
    pub price: Option<Price>,
    /// Priced by another instrument's market (MES by ES): the two move together.
    pub priced_by: Option<Symbol>,
    /// Simulated spread, ticks.
    #[serde(default = "default_spread")]
    pub spread_ticks: u32,
    /// Simulated move per step, ticks.
    #[serde(default = "default_volatility")]
    pub volatility_ticks: u32,
}

fn default_spread() -> u32 {
    1
}
fn default_volatility() -> u32 {
    2
}

/// `[[sources]]`: an external signal source (webhook, API client, file drop, manual ticket).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Unique name.
    pub name: String,
    /// Symbols it may send (empty: any).
    #[serde(default)]
    pub symbols: Vec<Symbol>,
}

/// `[[file_drops]]`: a watched folder whose CSV and JSON files are signals of a source.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDropEntry {
    /// Its name (in logs, reports and the notes of its signals).
    pub name: String,
    /// The folder watched (created at start if missing), relative to the working directory.
    pub dir: std::path::PathBuf,
    /// The `[[sources]]` entry its signals are sent as.
    pub source: String,
    /// How often the folder is looked at, ms (default 500).
    pub poll_ms: Option<u64>,
    /// How long a file must keep its size and modification time before it is read, ms
    /// (default 1000), so that a file still being written is not read half-way.
    pub settle_ms: Option<u64>,
    /// Largest file read, bytes (default 1 MiB); a larger one is rejected.
    pub max_file_bytes: Option<u64>,
    /// Most signal rows in one file (default 10000); a longer file is rejected.
    pub max_rows: Option<usize>,
}

/// Per-account changes to a catalog instrument (a micro-lot account's contract size).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpecOverride {
    /// Contract size.
    pub contract_size: Option<Qty>,
    /// Tick value.
    pub tick_value: Option<Money>,
    /// Lot step.
    pub lot_step: Option<Qty>,
    /// Minimum.
    pub min_qty: Option<Qty>,
    /// Maximum.
    pub max_qty: Option<Qty>,
}

/// `[accounts.autotrade]`: the account trades on its own (simulated leaders, for the demo).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoTradeEntry {
    /// Time between decisions, ms.
    pub every_ms: u64,
    /// Catalog symbols it trades (default: all of the account's).
    #[serde(default)]
    pub symbols: Vec<Symbol>,
    /// Quantities it picks from.
    pub quantities: Vec<Qty>,
    /// Most positions at once.
    #[serde(default = "default_max_positions")]
    pub max_positions: usize,
    /// Stop distance, ticks.
    #[serde(default = "default_stop_ticks")]
    pub stop_ticks: u32,
    /// Target distance, ticks.
    #[serde(default = "default_profit_ticks")]
    pub profit_ticks: u32,
    /// Seed (default: derived from the account name).
    pub seed: Option<u64>,
}

fn default_max_positions() -> usize {
    3
}
fn default_stop_ticks() -> u32 {
    40
}
fn default_profit_ticks() -> u32 {
    80
}

/// `[[accounts]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    /// Unique name.
    pub name: String,
    /// Platform.
    pub platform: Platform,
    /// Netting or hedging.
    #[serde(default)]
    pub mode: AccountMode,
    /// Starting balance (simulated accounts only: a broker reports its own).
    pub balance: Option<Money>,
    /// Currency (simulated accounts only; default USD).
    pub currency: Option<String>,
    /// Risk profile name.
    pub risk: Option<String>,
    /// Catalog symbols it trades (default: all). A broker account trades what its broker
    /// reports once connected; listed here, they are what it trades if it is offline at start
    /// (and what `mirror-engine simulate` lists for it).
    pub instruments: Option<Vec<Symbol>>,
    /// The broker's symbol prefix (`m` in `mEURUSD`).
    #[serde(default)]
    pub symbol_prefix: String,
    /// The broker's symbol suffix (`.r` in `EURUSD.r`).
    #[serde(default)]
    pub symbol_suffix: String,
    /// Per-instrument spec changes, by catalog symbol (simulated accounts only).
    #[serde(default)]
    pub overrides: BTreeMap<String, SpecOverride>,
    /// Trade on its own: the in-process simulated broker does it for a `sim` account,
    /// `mirror-engine simulate` for a simulated cTrader or MetaTrader account; `run` never
    /// trades a broker account by itself.
    pub autotrade: Option<AutoTradeEntry>,
    /// Start paused (no new opens copied to it).
    #[serde(default)]
    pub paused: bool,
    /// Groups it belongs to (`["prop-firm-a", "evaluations"]`): a manual ticket can target a
    /// group instead of naming accounts.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The broker login's password or API key, by reference: `secret:<name>` (in the
    /// encrypted store, `mirror-engine secrets`) or `env:<VAR>`. Never the value itself.
    /// For `mt4`/`mt5`: the terminal's token (the EA's `Token` input).
    #[serde(default)]
    pub credentials: Option<CredentialRef>,
    /// For `ctrader`: the `[ctrader.<session>]` the account trades through.
    pub ctrader: Option<String>,
    /// For `ctrader`: its `ctidTraderAccountId`.
    pub ctrader_account: Option<i64>,
    /// For `mt4`/`mt5`: the only login the terminal's token is accepted from.
    pub login: Option<u64>,
}

/// `[[links]]`: a leader (account or source) copied to a follower account, with rules.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkEntry {
    /// Leader account or source name.
    pub leader: String,
    /// Follower account name.
    pub follower: String,
    /// Start paused.
    #[serde(default)]
    pub paused: bool,
    /// Sizing (`{ mode = "multiplier", ratio = 0.5 }` …).
    #[serde(default)]
    pub sizing: SizingRule,
    /// Rounding to the lot step.
    #[serde(default)]
    pub rounding: Rounding,
    /// Sizes under the minimum.
    #[serde(default)]
    pub below_minimum: BelowMinimum,
    /// Largest quantity per order on this link.
    pub max_qty: Option<Qty>,
    /// Copy in the opposite direction.
    #[serde(default)]
    pub reverse: bool,
    /// Explicit symbol map (`{ NQ = { symbol = "MNQ", ratio = 10 } }`).
    #[serde(default)]
    pub symbol_map: BTreeMap<Symbol, MappedSymbol>,
    /// Removed from the leader's symbols (default: the leader account's suffix/prefix).
    pub strip_prefix: Option<String>,
    /// Removed from the leader's symbols.
    pub strip_suffix: Option<String>,
    /// Added for the follower (default: the follower account's prefix).
    pub symbol_prefix: Option<String>,
    /// Added for the follower (default: the follower account's suffix).
    pub symbol_suffix: Option<String>,
    /// Only these canonical symbols.
    #[serde(default)]
    pub allow: Vec<Symbol>,
    /// Never these.
    #[serde(default)]
    pub deny: Vec<Symbol>,
    /// Sides copied.
    #[serde(default)]
    pub sides: SideFilter,
    /// Stop loss: `"copy"`, `"none"` or `{ distance = "0.0020" }`.
    #[serde(default)]
    pub stop_loss: ProtectionRule,
    /// Take profit, likewise.
    #[serde(default)]
    pub take_profit: ProtectionRule,
    /// Copy pending orders.
    #[serde(default = "default_true")]
    pub copy_pending: bool,
    /// Opens older than this are not copied, ms.
    pub max_signal_age_ms: Option<u64>,
    /// What reconciliation does about drift: `repair` (default) or `alert`.
    #[serde(default)]
    pub reconcile: ReconcileMode,
    /// Reopen a copy closed by hand while its leader still holds the position.
    #[serde(default)]
    pub reopen_closed_by_hand: bool,
}

/// `links.reconcile`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReconcileMode {
    /// Open missing copies and close orphaned ones.
    #[default]
    Repair,
    /// Only report drift.
    Alert,
}

fn default_true() -> bool {
    true
}
