//! Assembling a running Mirror from a resolved configuration: the simulated broker, one
//! connector per account, the engine, the connector tasks, the auto-traders.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mirror_connector::Connector;
use mirror_connector_sim::{
    RemoteSimConfig, RemoteSimConnector, SimAccountConfig, SimBroker, SimConnector, spawn_autotrader,
};
use mirror_model::{AccountId, InstrumentTable, Origin, Platform};
use rustc_hash::FxHashMap;
use tokio::task::JoinHandle;

use crate::LinkId;
use crate::account::{AccountSetup, Control};
use crate::clock::Clock;
use crate::config::Resolved;
use crate::connectors::{AccountWiring, boot, reconcile_all, spawn_account_tasks};
use crate::journal::{AdminAction, AdminRecord, Journal, JournalSettings, Recovery};
use crate::router::LinkSpec;
use crate::runtime::{AccountView, ControlScope, CorePlan, Engine, EngineBuilder, EngineHandle};
use crate::telemetry::{FanoutDone, Stats, StatusLine, TelemetryHandle, spawn_telemetry};

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
}

/// A running Mirror.
#[derive(Debug)]
pub struct Running {
    engine: Option<Engine>,
    /// Talk to the engine.
    pub handle: EngineHandle,
    /// The simulated broker, when it runs inside this process (not with `[sim] remote`).
    broker: Option<SimBroker>,
    telemetry: Option<TelemetryHandle>,
    journal: Option<Journal>,
    reconciliation: Option<JoinHandle<()>>,
    connector_tasks: Vec<JoinHandle<()>>,
    feed_tasks: Vec<JoinHandle<()>>,
    /// Account names by id.
    pub names: FxHashMap<AccountId, Arc<str>>,
    started: std::time::Instant,
}

/// Starts everything a configuration describes.
pub async fn start(resolved: &Resolved, options: StartOptions) -> anyhow::Result<Running> {
    // The simulated broker runs here, or in another process (whose state outlives ours).
    let broker = resolved.sim_remote.is_none().then(|| SimBroker::new(resolved.sim.clone(), resolved.markets.clone()));
    let mut connectors: Vec<(AccountId, Arc<str>, Arc<dyn Connector>)> = Vec::new();
    for account in &resolved.accounts {
        anyhow::ensure!(
            account.platform == Platform::Sim,
            "account {}: only simulated accounts can run in this build",
            account.name
        );
        let connector: Arc<dyn Connector> = match (&broker, &resolved.sim_remote) {
            (Some(broker), _) => {
                broker
                    .open_account(SimAccountConfig {
                        name: account.name.clone(),
                        mode: account.mode,
                        currency: account.currency.clone(),
                        balance: account.balance,
                        instruments: account.instruments.clone(),
                    })
                    .with_context(|| format!("opening simulated account {}", account.name))?;
                Arc::new(SimConnector::new(broker.clone(), &account.name)?)
            }
            (None, Some(remote)) => Arc::new(RemoteSimConnector::new(RemoteSimConfig {
                request_timeout: resolved.connector.call_timeout,
                ..RemoteSimConfig::new(remote.clone(), account.name.clone())
            })),
            (None, None) => unreachable!("a broker or an address"),
        };
        connectors.push((account.id, Arc::from(account.name.as_str()), connector));
    }

    let boots = futures_join(connectors.iter().map(|(_, _, connector)| {
        let connector = Arc::clone(connector);
        let settings = resolved.connector;
        async move { boot(connector.as_ref(), settings).await }
    }))
    .await;

    let stats = Stats::new();
    let names: FxHashMap<AccountId, Arc<str>> =
        connectors.iter().map(|(id, name, _)| (*id, Arc::clone(name))).collect();
    let telemetry = spawn_telemetry(
        names.clone(),
        Arc::clone(&stats),
        65_536,
        Duration::from_secs(30),
        CorePlan::new(&resolved.runtime),
    );
    let mut builder = EngineBuilder::new(resolved.runtime.clone()).stats(stats).telemetry(telemetry.sink());
    let journal = match &resolved.journal {
        Some(settings) => {
            let settings = settings.clone();
            let fresh = resolved.sim_remote.is_none();
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
    for ((account, (_, name, _)), boot) in resolved.accounts.iter().zip(&connectors).zip(&boots) {
        if let Some(error) = &boot.error {
            tracing::warn!(account = %name, %error, "connector did not come up; it will keep trying");
        }
        builder = builder.account(AccountSetup {
            id: account.id,
            name: Arc::clone(name),
            mode: boot.session.as_ref().map_or(account.mode, |s| s.mode),
            // A broker that is not up yet: the configuration's instruments (the same the
            // simulated broker serves) until it is.
            instruments: if boot.instruments.is_empty() {
                account.instruments.iter().map(|i| i.spec).collect()
            } else {
                InstrumentTable::from_iter(boot.instruments.iter().copied())
            },
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
    for (((id, name, connector), (account, commands)), boot) in connectors.into_iter().zip(receivers).zip(&boots) {
        debug_assert_eq!(id, account);
        let mailbox = handle.mailbox(id).expect("every account has a mailbox");
        let connected = boot.session.is_some();
        if connected {
            to_reconcile.push((id, Arc::clone(&name), Arc::clone(&connector), mailbox.clone()));
        }
        let wiring =
            AccountWiring { account: id, name, connector, commands, mailbox, engine: handle.clone(), connected };
        connector_tasks.extend(spawn_account_tasks(wiring, resolved.connector));
    }
    let reconciliation = {
        let (handle, timeout) = (handle.clone(), resolved.connector.call_timeout);
        tokio::spawn(async move { reconcile_all(&handle, to_reconcile, timeout).await })
    };

    let mut feed_tasks = Vec::new();
    if options.ticker
        && let Some(ticker) = broker.as_ref().and_then(SimBroker::start_ticker)
    {
        feed_tasks.push(ticker);
    }
    if options.autotrade
        && let Some(broker) = &broker
    {
        for account in &resolved.accounts {
            if let Some((config, seed)) = &account.autotrade {
                feed_tasks.push(spawn_autotrader(broker.clone(), account.name.clone(), config.clone(), *seed));
            }
        }
    }
    Ok(Running {
        engine: Some(engine),
        handle,
        broker,
        telemetry: Some(telemetry),
        journal: journal_handle,
        reconciliation: Some(reconciliation),
        connector_tasks,
        feed_tasks,
        names,
        started: std::time::Instant::now(),
    })
}

/// Opens the journal. `fresh`: the simulated broker lives inside this process and starts
/// empty, so a journal of an earlier run would describe positions no broker holds any more.
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
        }
    }

    /// The simulated broker running inside this process.
    ///
    /// # Panics
    /// With `[sim] remote`: the broker is in another process.
    pub fn broker(&self) -> &SimBroker {
        self.broker.as_ref().expect("the simulated broker runs in another process ([sim] remote)")
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

    /// Stops the auto-trading leaders and the price feed, then waits for the orders in flight
    /// to finish, so that what follows sees a settled state.
    pub async fn halt_feeds(&mut self) {
        for task in self.feed_tasks.drain(..) {
            task.abort();
        }
        self.settle(Duration::from_millis(200), Duration::from_secs(3)).await;
    }

    /// Halts the feeds ([`Running::halt_feeds`]), then stops the connector tasks, the shards
    /// and telemetry.
    pub async fn stop(mut self) {
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
        if let Some(journal) = self.journal.take() {
            let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        }
        if let Some(telemetry) = self.telemetry.take() {
            let _ = tokio::task::spawn_blocking(move || telemetry.stop()).await;
        }
    }
}
