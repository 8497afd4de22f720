//! Assembling a running Mirror from a resolved configuration: the brokers and one connector
//! per account ([`crate::platforms`]), the engine, the connector tasks, the auto-traders, and
//! the QUIC gateway for `mirror-sdk` clients (`[gateway]`), the HTTP server (`[http]`) and the
//! file drops (`[[file_drops]]`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mirror_connector_sim::{SimBroker, spawn_autotrader};
use mirror_model::{AccountId, InstrumentTable, Origin, Platform};
use rustc_hash::FxHashMap;
use tokio::task::JoinHandle;

use crate::LinkId;
use crate::account::{AccountSetup, Control};
use crate::clock::Clock;
use crate::config::{Resolved, ResolvedFileDrop, ResolvedGateway, ResolvedHttp, Venue};
use crate::connectors::{AccountWiring, Boot, boot, reconcile_all, spawn_account_tasks};
use crate::file_drop::{FileDrop, FileDropSettings, spawn_file_drop};
use crate::gateway::{ConfigService, Gateway, GatewaySettings, GatewayToken, spawn_gateway};
use crate::http::{AuthSettings, HttpServer, HttpSettings, Webhook, spawn_http};
use crate::journal::{AdminAction, AdminRecord, Journal, JournalSettings, Recovery};
use crate::live_config::LiveConfig;
pub use crate::platforms::GatewayTokenOff;
use crate::platforms::{AccountConnector, Credentials, Platforms};
use crate::router::LinkSpec;
use crate::runtime::{AccountView, ControlScope, CorePlan, Engine, EngineBuilder, EngineHandle};
use crate::secrets::{CredentialVars, Secret};
use crate::store::{PG_CONSUMER, PgSettings, PgStatus, PgWriter, spawn_pg_writer};
use crate::telemetry::{FanoutDone, PostgresGauge, Stats, StatusLine, TelemetryHandle, spawn_telemetry};

/// Longest a stop waits for the Postgres writer to write what the journal holds.
const POSTGRES_DRAIN: Duration = Duration::from_secs(10);

/// Options for starting.
#[derive(Debug, Default)]
pub struct StartOptions {
    /// Start the simulated price feed's timer (off in tests that move prices by hand).
    pub ticker: bool,
    /// Start the leaders' auto-traders.
    pub autotrade: bool,
    /// Use this clock instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Also report fan-out completions here.
    pub observer: Option<flume::Sender<FanoutDone>>,
    /// Write the system of record to Postgres (from `DATABASE_URL`); needs the journal.
    pub postgres: Option<PgSettings>,
    /// Values for `env:` credential references, read instead of the process environment
    /// (tests, and programs that embed the engine).
    pub credential_vars: Option<CredentialVars>,
}

/// An account whose connector did not come up at start (its supervisor keeps trying).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFailure {
    /// The account.
    pub account: Arc<str>,
    /// Its platform.
    pub platform: Platform,
    /// Why, in words for its platform (never a credential).
    pub reason: String,
}

/// A running Mirror.
#[derive(Debug)]
pub struct Running {
    engine: Option<Engine>,
    /// Talk to the engine.
    pub handle: EngineHandle,
    /// The brokers: the simulated one (when it runs inside this process), cTrader sessions,
    /// the MetaTrader bridge.
    platforms: Platforms,
    boot_failures: Vec<BootFailure>,
    telemetry: Option<TelemetryHandle>,
    journal: Option<Journal>,
    postgres: Option<PgWriter>,
    reconciliation: Option<JoinHandle<()>>,
    connector_tasks: Vec<JoinHandle<()>>,
    feed_tasks: Vec<JoinHandle<()>>,
    /// The QUIC gateway (`[gateway]`), until the feeds halt.
    gateway: Option<Gateway>,
    gateway_addr: Option<SocketAddr>,
    gateway_fingerprint: Option<String>,
    gateway_off: Vec<GatewayTokenOff>,
    /// The HTTP server (`[http]`), until the feeds halt.
    http: Option<HttpServer>,
    http_addr: Option<SocketAddr>,
    /// The watched folders (`[[file_drops]]`), until the feeds halt.
    file_drops: Vec<FileDrop>,
    /// Account names by id.
    pub names: FxHashMap<AccountId, Arc<str>>,
    started: std::time::Instant,
}

/// Starts everything a configuration describes; the gateway and the HTTP server last, once
/// the engine runs.
pub async fn start(resolved: &Resolved, options: StartOptions) -> anyhow::Result<Running> {
    let mut credentials = Credentials::resolve(resolved, options.credential_vars.as_ref())?;
    let gateway_tokens = std::mem::take(&mut credentials.gateway);
    let gateway_off = std::mem::take(&mut credentials.gateway_off);
    let webhook_secrets = std::mem::take(&mut credentials.webhooks);
    let auth_secrets = std::mem::take(&mut credentials.auth_clients);
    let (mut platforms, connectors) = Platforms::open(resolved, credentials).await?;
    let mut running = match assemble(resolved, options, &platforms, connectors).await {
        Ok(running) => running,
        Err(error) => {
            platforms.shutdown().await;
            return Err(error);
        }
    };
    running.platforms = platforms;
    let live = Arc::new(LiveConfig::new(resolved, running.handle.clone()));
    if let Some(settings) = &resolved.gateway {
        for off in &gateway_off {
            tracing::info!(token = %off.token, reason = %off.reason, "gateway token left out (optional)");
        }
        match open_gateway(settings, gateway_tokens, &running.handle, Arc::clone(&live)) {
            Ok(gateway) => {
                running.gateway_addr = Some(gateway.local_addr());
                running.gateway_fingerprint = Some(gateway.cert_fingerprint().to_owned());
                running.gateway = Some(gateway);
                running.gateway_off = gateway_off;
            }
            Err(error) => {
                running.stop().await;
                return Err(error);
            }
        }
    }
    if let Some(settings) = &resolved.http {
        match open_http(resolved, settings, webhook_secrets, auth_secrets, &running.handle, Arc::clone(&live)) {
            Ok(server) => {
                running.http_addr = Some(server.local_addr());
                running.http = Some(server);
            }
            Err(error) => {
                running.stop().await;
                return Err(error);
            }
        }
    }
    for drop in &resolved.file_drops {
        match open_file_drop(resolved, drop, &running.handle) {
            Ok(watcher) => running.file_drops.push(watcher),
            Err(error) => {
                running.stop().await;
                return Err(error);
            }
        }
    }
    Ok(running)
}

/// Starts watching a drop folder; its signals are sent as its source, with the symbols that
/// source lists, or any of the catalog's.
fn open_file_drop(resolved: &Resolved, drop: &ResolvedFileDrop, engine: &EngineHandle) -> anyhow::Result<FileDrop> {
    let listed = resolved.sources.iter().find(|s| s.name == drop.source.1).map(|s| s.symbols.clone());
    let settings = FileDropSettings {
        name: drop.name.clone(),
        dir: drop.dir.clone(),
        origin: drop.source.0,
        source: drop.source.1.clone(),
        symbols: listed.filter(|s| !s.is_empty()).unwrap_or_else(|| resolved.catalog.keys().copied().collect()),
        limits: drop.limits.clone(),
    };
    Ok(spawn_file_drop(engine.clone(), settings)?)
}

/// Starts the HTTP server on the running engine. A webhook's source sends the symbols its
/// `[[sources]]` entry lists, or any of the catalog's.
fn open_http(
    resolved: &Resolved,
    http: &ResolvedHttp,
    secrets: Vec<Secret>,
    auth_secrets: Vec<Secret>,
    engine: &EngineHandle,
    live: Arc<LiveConfig>,
) -> anyhow::Result<HttpServer> {
    let webhooks = http
        .webhooks
        .iter()
        .zip(secrets)
        .map(|(webhook, secret)| {
            let listed = resolved.sources.iter().find(|s| s.name == webhook.source.1).map(|s| s.symbols.clone());
            Webhook {
                name: webhook.name.clone(),
                kind: webhook.kind,
                secret,
                origin: webhook.source.0,
                symbols: listed.filter(|s| !s.is_empty()).unwrap_or_else(|| resolved.catalog.keys().copied().collect()),
                allow_ips: webhook.allow_ips.clone(),
                chats: webhook.chats.clone(),
                qty: webhook.qty,
            }
        })
        .collect();
    let settings = HttpSettings {
        listen: http.listen,
        tls: http.tls.clone(),
        limits: http.limits.clone(),
        webhooks,
        catalog: live.catalog(),
        config: Some(live as Arc<dyn ConfigService>),
        auth: http.auth.as_ref().map(|auth| AuthSettings::from_config(auth, auth_secrets)),
        state_dir: Some(http.state_dir.clone()),
    };
    spawn_http(engine.clone(), settings).with_context(|| format!("the HTTP server on {}", http.listen))
}

/// Starts the QUIC gateway on the running engine.
fn open_gateway(
    gateway: &ResolvedGateway,
    tokens: Vec<GatewayToken>,
    engine: &EngineHandle,
    live: Arc<LiveConfig>,
) -> anyhow::Result<Gateway> {
    let settings = GatewaySettings {
        listen: gateway.listen,
        identity: gateway.identity.clone(),
        client_ca: gateway.client_ca.clone(),
        tokens,
        limits: gateway.limits.clone(),
        config: Some(live as Arc<dyn ConfigService>),
    };
    spawn_gateway(engine.clone(), settings).with_context(|| format!("the QUIC gateway on {}", gateway.listen))
}

/// Boots every account's connector concurrently (each step within the boot timeout: a
/// cTrader session authorises its accounts in turns).
async fn boot_all(connectors: &[AccountConnector], resolved: &Resolved) -> Vec<Boot> {
    futures_join(connectors.iter().map(|account| {
        let connector = Arc::clone(&account.connector);
        let settings = resolved.connector;
        async move { boot(connector.as_ref(), settings).await }
    }))
    .await
}

/// Says which accounts did not come up and why, and which will copy nothing because nothing
/// tells what they trade.
fn boot_failures(resolved: &Resolved, platforms: &Platforms, boots: &[Boot]) -> Vec<BootFailure> {
    let mut failures = Vec::new();
    for (account, boot) in resolved.accounts.iter().zip(boots) {
        let Some(error) = &boot.error else { continue };
        let reason = platforms.boot_failure(account, error);
        tracing::warn!(
            account = %account.name,
            platform = %account.platform,
            %reason,
            "connector did not come up; it will keep trying"
        );
        if account.venue != Venue::Sim {
            if account.instruments_listed {
                tracing::warn!(
                    account = %account.name,
                    "offline at start: it trades the instruments its configuration lists until Mirror restarts \
                     with it online"
                );
            } else {
                tracing::warn!(
                    account = %account.name,
                    "offline at start and its configuration lists no instruments: it copies nothing (every copy is \
                     skipped as `symbol`) until Mirror restarts with it online; list `instruments` to trade meanwhile"
                );
            }
        }
        failures.push(BootFailure { account: Arc::from(account.name.as_str()), platform: account.platform, reason });
    }
    failures
}

/// The engine and its tasks over opened platforms.
async fn assemble(
    resolved: &Resolved,
    options: StartOptions,
    platforms: &Platforms,
    connectors: Vec<AccountConnector>,
) -> anyhow::Result<Running> {
    let boots = boot_all(&connectors, resolved).await;
    let boot_failures = boot_failures(resolved, platforms, &boots);
    let broker = platforms.broker();

    let stats = Stats::new();
    let names: FxHashMap<AccountId, Arc<str>> =
        connectors.iter().map(|account| (account.id, Arc::clone(&account.name))).collect();
    let telemetry = spawn_telemetry(
        names.clone(),
        Arc::clone(&stats),
        65_536,
        Duration::from_secs(30),
        CorePlan::new(&resolved.runtime),
    );
    let mut builder = EngineBuilder::new(resolved.runtime.clone()).stats(stats).telemetry(telemetry.sink());
    anyhow::ensure!(
        options.postgres.is_none() || resolved.journal.is_some(),
        "DATABASE_URL is set but the journal is off ([storage] journal = false): the Postgres writer is fed from \
         the journal"
    );
    let journal = match &resolved.journal {
        Some(settings) => {
            let mut settings = settings.clone();
            // Compaction waits for the writer's checkpoint: an outage costs disk, never a row.
            if options.postgres.is_some() && !settings.consumers.iter().any(|c| c == PG_CONSUMER) {
                settings.consumers.push(PG_CONSUMER.to_owned());
            }
            // Brokers whose state outlives this process (cTrader, MetaTrader, `[sim] remote`)
            // resume from the journal.
            let fresh = broker.is_some() && resolved.accounts.iter().all(|a| a.venue == Venue::Sim);
            Some(tokio::task::spawn_blocking(move || open_journal(settings, fresh)).await??)
        }
        None => None,
    };
    let journal_handle = journal.as_ref().map(|(journal, _)| journal.clone());
    if let Some((journal, recovery)) = journal {
        builder = builder.journal(journal, recovery);
    }
    if let Some(clock) = options.clock {
        builder = builder.clock(clock);
    }
    if let Some(observer) = options.observer {
        builder = builder.observer(observer);
    }
    // The symbols each actor trades, quoted once its connector is up.
    let mut quoted = Vec::with_capacity(connectors.len());
    for ((account, connector), boot) in resolved.accounts.iter().zip(&connectors).zip(&boots) {
        // A broker that is not up yet: the configuration's instruments (the same the
        // simulated broker serves; a broker account's only when it lists them).
        let instruments: InstrumentTable = if !boot.instruments.is_empty() {
            InstrumentTable::from_iter(boot.instruments.iter().copied())
        } else if account.venue == Venue::Sim || account.instruments_listed {
            account.instruments.iter().map(|i| i.spec).collect()
        } else {
            InstrumentTable::default()
        };
        quoted.push(instruments.iter().map(|spec| spec.symbol).collect::<Vec<_>>());
        builder = builder.account(AccountSetup {
            id: account.id,
            name: Arc::clone(&connector.name),
            mode: boot.session.as_ref().map_or(account.mode, |s| s.mode),
            instruments,
            balance: boot.snapshot.balance,
            equity: boot.snapshot.equity,
            risk: account.risk,
            inbound: Vec::new(),
            is_leader: false,
            connected: boot.session.is_some(),
            positions: boot.positions.clone(),
        });
    }
    for link in &resolved.links {
        builder = builder.link(LinkSpec {
            leader: link.leader,
            follower: link.follower,
            rules: Arc::new(link.rules.clone()),
        });
    }
    for source in &resolved.sources {
        builder = builder.source(Origin::Source(source.id), source.symbols.iter().copied());
    }
    let (engine, receivers) = builder.start()?;
    let handle = engine.handle();
    if let Some(journal) = &journal_handle {
        journal.admin(AdminRecord {
            unix_ms: handle.clock().now().unix_ms,
            who: "config".into(),
            action: AdminAction::ConfigApplied {
                path: resolved.files.first().map(|p| p.display().to_string()).unwrap_or_default(),
                digest: resolved.digest.clone(),
                accounts: u32::try_from(resolved.accounts.len()).unwrap_or(u32::MAX),
                links: u32::try_from(resolved.links.len()).unwrap_or(u32::MAX),
            },
        })?;
    }

    for account in resolved.accounts.iter().filter(|a| a.paused) {
        handle.control(ControlScope::Account(account.id), Control::Pause)?;
    }
    for (index, link) in resolved.links.iter().enumerate().filter(|(_, l)| l.paused) {
        let id = LinkId(u32::try_from(index).expect("fewer than 2³² links"));
        handle.control(ControlScope::Account(link.follower), Control::PauseLink(id))?;
    }

    let mut connector_tasks = Vec::new();
    let mut to_reconcile = Vec::new();
    for (((AccountConnector { id, name, connector }, (account, commands)), boot), symbols) in
        connectors.into_iter().zip(receivers).zip(&boots).zip(quoted)
    {
        debug_assert_eq!(id, account);
        let mailbox = handle.mailbox(id).expect("every account has a mailbox");
        let connected = boot.session.is_some();
        if connected {
            to_reconcile.push((id, Arc::clone(&name), Arc::clone(&connector), mailbox.clone()));
        }
        let engine = handle.clone();
        let wiring = AccountWiring { account: id, name, connector, commands, mailbox, engine, connected, symbols };
        connector_tasks.extend(spawn_account_tasks(wiring, resolved.connector));
    }
    let reconciliation = {
        // Part of the start: as patient as the boot (a cTrader session reconciles its
        // accounts in turns).
        let (handle, timeout) = (handle.clone(), resolved.connector.boot_timeout);
        tokio::spawn(async move { reconcile_all(&handle, to_reconcile, timeout).await })
    };

    // After the configuration record, so the writer's first batch names the accounts.
    let postgres = match (options.postgres, &journal_handle) {
        (Some(settings), Some(journal)) => Some(spawn_pg_writer(journal.clone(), settings)),
        _ => None,
    };

    let mut feed_tasks = Vec::new();
    if options.ticker
        && let Some(ticker) = broker.and_then(SimBroker::start_ticker)
    {
        feed_tasks.push(ticker);
    }
    if options.autotrade {
        for account in &resolved.accounts {
            let Some((config, seed)) = &account.autotrade else { continue };
            match broker {
                Some(broker) if account.venue == Venue::Sim => {
                    feed_tasks.push(spawn_autotrader(broker.clone(), account.name.clone(), config.clone(), *seed));
                }
                _ if account.venue != Venue::Sim => tracing::info!(
                    account = %account.name,
                    "`autotrade` on a {} account is played by `mirror-engine simulate` at its simulated terminal; \
                     Mirror never trades a broker account by itself",
                    account.platform
                ),
                _ => {}
            }
        }
    }
    Ok(Running {
        engine: Some(engine),
        handle,
        platforms: Platforms::default(),
        boot_failures,
        telemetry: Some(telemetry),
        journal: journal_handle,
        postgres,
        reconciliation: Some(reconciliation),
        connector_tasks,
        feed_tasks,
        gateway: None,
        gateway_addr: None,
        gateway_fingerprint: None,
        gateway_off: Vec::new(),
        http: None,
        http_addr: None,
        file_drops: Vec::new(),
        names,
        started: std::time::Instant::now(),
    })
}

/// Opens the journal. `fresh`: every account is on the simulated broker inside this process,
/// which starts empty, so a journal of an earlier run would describe positions no broker
/// holds any more.
fn open_journal(settings: JournalSettings, fresh: bool) -> anyhow::Result<(Journal, Recovery)> {
    if fresh && settings.dir.exists() {
        tracing::info!(dir = %settings.dir.display(), "in-process simulated broker: the journal starts empty with it");
        std::fs::remove_dir_all(&settings.dir)
            .with_context(|| format!("clearing the journal at {}", settings.dir.display()))?;
    }
    let dir = settings.dir.clone();
    Journal::open(settings).with_context(|| format!("opening the journal at {}", dir.display()))
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join<F: Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("boot task panicked"));
    }
    outputs
}

impl Running {
    /// The status line now.
    pub async fn status(&self) -> StatusLine {
        let handle = self.handle.clone();
        let views =
            tokio::task::spawn_blocking(move || handle.accounts()).await.ok().and_then(Result::ok).unwrap_or_default();
        StatusLine {
            stats: self.handle.stats(),
            latency: self.telemetry.as_ref().map(TelemetryHandle::fanout_latency).unwrap_or_default(),
            connected: (views.iter().filter(|v| v.summary.connected).count(), views.len()),
            restricted: views.iter().filter(|v| v.summary.mode != crate::account::RiskMode::Normal).count(),
            uptime_s: self.started.elapsed().as_secs(),
            postgres: self.postgres().map(|status| PostgresGauge { connected: status.connected, behind: status.lag() }),
        }
    }

    /// The simulated broker running inside this process.
    ///
    /// # Panics
    /// With `[sim] remote` (the broker is in another process), or without simulated accounts.
    pub fn broker(&self) -> &SimBroker {
        self.platforms.broker().expect("no simulated broker runs in this process ([sim] remote, or no sim account)")
    }

    /// The accounts whose connector did not come up at start, and why (each keeps trying).
    pub fn boot_failures(&self) -> &[BootFailure] {
        &self.boot_failures
    }

    /// The address the MetaTrader bridge listens on, when MT accounts are configured.
    pub fn metatrader_addr(&self) -> Option<SocketAddr> {
        self.platforms.bridge_addr()
    }

    /// The bridge certificate's SHA-1 thumbprint, for the EAs' `CertThumbprint` input.
    pub fn metatrader_thumbprint(&self) -> Option<&str> {
        self.platforms.bridge_thumbprint()
    }

    /// The address the QUIC gateway listens on, with `[gateway]` (it stays known after the
    /// gateway has closed).
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway_addr
    }

    /// SHA-256 of the gateway's certificate, lower-case hex: what `mirror-sdk` clients pin.
    pub fn gateway_fingerprint(&self) -> Option<&str> {
        self.gateway_fingerprint.as_deref()
    }

    /// The address the HTTP server listens on, with `[http]` (the bound port when the
    /// configuration says 0; it stays known after the server has closed).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The watched folders (`[[file_drops]]`), until the feeds halt.
    pub fn file_drops(&self) -> &[FileDrop] {
        &self.file_drops
    }

    /// The optional gateway tokens left out at start, and why.
    pub fn gateway_tokens_off(&self) -> &[GatewayTokenOff] {
        &self.gateway_off
    }

    /// Waits until the reconciliation of the start has gone through every account.
    pub async fn reconciled(&mut self) {
        if let Some(task) = self.reconciliation.take() {
            let _ = task.await;
        }
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    /// Where the Postgres writer stands, when `DATABASE_URL` turned it on.
    pub fn postgres(&self) -> Option<PgStatus> {
        self.postgres.as_ref().map(PgWriter::status)
    }

    /// Every account as the engine sees it.
    pub async fn accounts(&self) -> Vec<AccountView> {
        let handle = self.handle.clone();
        tokio::task::spawn_blocking(move || handle.accounts()).await.ok().and_then(Result::ok).unwrap_or_default()
    }

    /// Waits until nothing moves: connector queues drained and counters still for `quiet`
    /// (or `limit` passes). For tests and a clean stop.
    pub async fn settle(&self, quiet: Duration, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = self.handle.stats();
        let mut still_since = tokio::time::Instant::now();
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = self.handle.stats();
            if now != last {
                last = now;
                still_since = tokio::time::Instant::now();
            } else if still_since.elapsed() >= quiet {
                return;
            }
        }
    }

    /// Closes the gateway and the HTTP server (their clients send nothing more) and stops
    /// watching the drop folders (a file part-way resumes at the next start), stops the
    /// auto-trading leaders and the price feed, then waits for the orders in flight to finish,
    /// so that what follows sees a settled state.
    pub async fn halt_feeds(&mut self) {
        for drop in self.file_drops.drain(..) {
            drop.shutdown().await;
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
        if let Some(http) = self.http.take() {
            http.shutdown().await;
        }
        for task in self.feed_tasks.drain(..) {
            task.abort();
        }
        self.settle(Duration::from_millis(200), Duration::from_secs(3)).await;
    }

    /// Halts the feeds ([`Running::halt_feeds`]: the gateway and the HTTP server first), then stops the connector
    /// tasks, the shards, the broker sessions and telemetry.
    ///
    /// Returns where the Postgres writer ended, when there was one.
    pub async fn stop(mut self) -> Option<PgStatus> {
        // Stopping telemetry needs no sender to be gone: it stops on a message, after
        // everything queued before it.
        self.halt_feeds().await;
        for task in self.connector_tasks.drain(..) {
            task.abort();
        }
        if let Some(task) = self.reconciliation.take() {
            task.abort();
        }
        if let Some(engine) = self.engine.take() {
            let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
        }
        // The engine sends nothing more: the sessions and the bridge can close.
        self.platforms.shutdown().await;
        // Everything the engine journaled is durable now; Postgres gets it before the journal
        // closes, or (if it is down) on the next start.
        let postgres = match self.postgres.take() {
            Some(writer) => {
                if let Some(journal) = self.journal.clone() {
                    let _ = tokio::task::spawn_blocking(move || {
                        journal.wait_durable(journal.last_reserved(), POSTGRES_DRAIN)
                    })
                    .await;
                }
                Some(writer.stop(POSTGRES_DRAIN).await)
            }
            None => None,
        };
        if let Some(status) = &postgres {
            if status.lag() == 0 {
                tracing::info!(checkpoint = status.checkpoint, rows = status.rows_written, "Postgres is up to date");
            } else {
                tracing::warn!(
                    checkpoint = status.checkpoint,
                    behind = status.lag(),
                    "Postgres is behind the journal; the writer catches up on the next start"
                );
            }
        }
        if let Some(journal) = self.journal.take() {
            let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        }
        if let Some(telemetry) = self.telemetry.take() {
            let _ = tokio::task::spawn_blocking(move || telemetry.stop()).await;
        }
        postgres
    }
}
