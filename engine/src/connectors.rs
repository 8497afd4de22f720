//! The I/O shell around each account's connector: tokio tasks that execute the actor's
//! commands (one at a time, in order, each under a timeout, each only once the journal holds
//! the input that produced it), forward the connector's events to the actor, reconnect with
//! backoff when the session drops, reconcile the account with its broker after every
//! (re)connection, and subscribe to quotes of the account's symbols after every (re)connection,
//! writing them to the engine's [`crate::market::QuoteBoard`] (the actors do not use them).

use std::sync::Arc;
use std::time::Duration;

use mirror_connector::{
    AccountSnapshot, BrokerSnapshot, ConnectionState, Connector, ConnectorError, ConnectorEvent, SessionInfo,
};
use mirror_model::{AccountId, InstrumentSpec, Position, Symbol};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::account::{Command, Lookups, Outcome};
use crate::runtime::{AccountMailbox, ConnectorCommand, EngineHandle, OwnedInput, SubmitError};

/// Timeouts and backoff of connector calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectorSettings {
    /// Longest wait for any one call once running.
    pub call_timeout: Duration,
    /// Longest wait for each step of connecting an account and reading its state at start,
    /// of the reconciliation at start, and of connecting again after a drop. Longer than a
    /// call: a session that authorises many accounts within a broker's rate limit (cTrader:
    /// 50 requests per second) takes its time.
    pub boot_timeout: Duration,
    /// First reconnect delay; doubled after each failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            boot_timeout: Duration::from_secs(60),
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(10),
        }
    }
}

async fn within<T>(
    operation: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    tokio::time::timeout(timeout, call).await.unwrap_or(Err(ConnectorError::Timeout { operation, timeout }))
}

/// What an account looks like when its connector first comes up.
#[derive(Clone, Debug)]
pub struct Boot {
    /// The session, when connected.
    pub session: Option<SessionInfo>,
    /// Instruments.
    pub instruments: Vec<InstrumentSpec>,
    /// Balance and equity.
    pub snapshot: AccountSnapshot,
    /// Open positions.
    pub positions: Vec<Position>,
    /// Why it is not connected.
    pub error: Option<ConnectorError>,
}

/// Connects and reads what the actor starts from, each step within the boot timeout. A
/// connector that cannot connect still boots (disconnected, with no instruments) and its
/// supervisor keeps trying.
pub async fn boot(connector: &dyn Connector, settings: ConnectorSettings) -> Boot {
    let timeout = settings.boot_timeout;
    let empty = AccountSnapshot {
        balance: mirror_model::Money::ZERO,
        equity: mirror_model::Money::ZERO,
        margin_used: mirror_model::Money::ZERO,
    };
    let session = match within("connect", timeout, connector.connect()).await {
        Ok(session) => session,
        Err(error) => {
            return Boot {
                session: None,
                instruments: Vec::new(),
                snapshot: empty,
                positions: Vec::new(),
                error: Some(error),
            };
        }
    };
    let read = async {
        let instruments = within("instruments", timeout, connector.instruments()).await?;
        let snapshot = within("account", timeout, connector.account()).await?;
        let positions = within("open_positions", timeout, connector.open_positions()).await?;
        Ok::<_, ConnectorError>((instruments, snapshot, positions))
    };
    match read.await {
        Ok((instruments, snapshot, positions)) => {
            Boot { session: Some(session), instruments, snapshot, positions, error: None }
        }
        Err(error) => {
            Boot { session: None, instruments: Vec::new(), snapshot: empty, positions: Vec::new(), error: Some(error) }
        }
    }
}

/// Everything the tasks of one account need.
pub struct AccountWiring {
    /// The account.
    pub account: AccountId,
    /// Its name, for logs.
    pub name: Arc<str>,
    /// Its connector.
    pub connector: Arc<dyn Connector>,
    /// Its command queue.
    pub commands: flume::Receiver<ConnectorCommand>,
    /// Its actor's mailbox.
    pub mailbox: AccountMailbox,
    /// The engine (for the journal and reconciliation).
    pub engine: EngineHandle,
    /// Whether the connector came up at boot (if not, the supervisor starts trying at once).
    pub connected: bool,
    /// The symbols its actor trades: quoted on the engine's quote board.
    pub symbols: Vec<Symbol>,
}

impl std::fmt::Debug for AccountWiring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountWiring")
            .field("account", &self.account)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Starts the command, event and reconnect tasks of one account.
pub fn spawn_account_tasks(wiring: AccountWiring, settings: ConnectorSettings) -> Vec<JoinHandle<()>> {
    let reconnect = Arc::new(Notify::new());
    if !wiring.connected {
        reconnect.notify_one();
    }
    let events = {
        let connector = Arc::clone(&wiring.connector);
        let mailbox = wiring.mailbox.clone();
        let reconnect = Arc::clone(&reconnect);
        let name = Arc::clone(&wiring.name);
        let (board, account) = (wiring.engine.quote_board().clone(), wiring.account);
        tokio::spawn(async move {
            let stream = connector.events();
            while let Ok(event) = stream.recv_async().await {
                match &event {
                    // Quotes go to the quote board (coalesced there); the actors do not use them.
                    ConnectorEvent::Quote(quote) => {
                        board.update(account, quote);
                        continue;
                    }
                    ConnectorEvent::Connection(ConnectionState::Reconnecting { reason }) => {
                        tracing::warn!(account = %name, reason, "session lost; reconnecting");
                        reconnect.notify_one();
                    }
                    _ => {}
                }
                if mailbox.send(OwnedInput::Event(event)).await.is_err() {
                    break;
                }
            }
        })
    };
    let commands = {
        let connector = Arc::clone(&wiring.connector);
        let mailbox = wiring.mailbox.clone();
        let journal = wiring.engine.journal().cloned();
        let name = Arc::clone(&wiring.name);
        tokio::spawn(async move {
            while let Ok(queued) = wiring.commands.recv_async().await {
                // Write-ahead: the broker never has an order the journal cannot explain.
                if queued.durable_after > 0
                    && let Some(journal) = &journal
                    && let Err(error) = journal.wait_durable_async(queued.durable_after).await
                {
                    tracing::error!(account = %name, %error, "journal failed; command not sent");
                    if mailbox.send(OwnedInput::NotSent(queued.command)).await.is_err() {
                        break;
                    }
                    continue;
                }
                let outcome = execute(connector.as_ref(), queued.command, settings.call_timeout).await;
                if mailbox.send(OwnedInput::Outcome(outcome)).await.is_err() {
                    break;
                }
            }
        })
    };
    let supervisor = {
        let connector = Arc::clone(&wiring.connector);
        let name = Arc::clone(&wiring.name);
        let (engine, account, mailbox) = (wiring.engine.clone(), wiring.account, wiring.mailbox.clone());
        let (symbols, connected) = (wiring.symbols, wiring.connected);
        tokio::spawn(async move {
            if connected {
                subscribe_quotes(connector.as_ref(), &symbols, settings.call_timeout, &name).await;
            }
            loop {
                reconnect.notified().await;
                let mut delay = settings.reconnect_min;
                loop {
                    tokio::time::sleep(delay).await;
                    match within("connect", settings.boot_timeout, connector.connect()).await {
                        Ok(_) => {
                            tracing::info!(account = %name, "reconnected");
                            if let Err(error) =
                                reconcile(&engine, account, connector.as_ref(), &mailbox, settings.call_timeout).await
                            {
                                tracing::warn!(account = %name, %error, "reconciliation after reconnect failed");
                            }
                            // After the reconciliation: quotes never hold up the account's repair.
                            subscribe_quotes(connector.as_ref(), &symbols, settings.call_timeout, &name).await;
                            break;
                        }
                        Err(error) => {
                            tracing::warn!(account = %name, %error, retry_in = ?delay, "reconnect failed");
                            delay = (delay * 2).min(settings.reconnect_max);
                        }
                    }
                }
            }
        })
    };
    vec![events, commands, supervisor]
}

/// Asks the connector for quotes of `symbols`. Market data is never essential: a failure is
/// logged, and the next reconnection asks again.
async fn subscribe_quotes(connector: &dyn Connector, symbols: &[Symbol], timeout: Duration, name: &str) {
    if symbols.is_empty() {
        return;
    }
    match within("subscribe_quotes", timeout, connector.subscribe_quotes(symbols)).await {
        Ok(()) => tracing::debug!(account = %name, symbols = symbols.len(), "quotes subscribed"),
        Err(ConnectorError::Unsupported(what)) => tracing::debug!(account = %name, %what, "no quotes"),
        Err(error) => tracing::warn!(account = %name, %error, "quote subscription failed; no quotes until reconnected"),
    }
}

/// Why a reconciliation did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The broker could not answer.
    #[error("broker: {0}")]
    Connector(#[from] ConnectorError),
    /// The engine stopped.
    #[error(transparent)]
    Engine(#[from] SubmitError),
    /// The snapshot was not handled in time.
    #[error("the broker snapshot did not reach the account within {0:?}")]
    SnapshotTimeout(Duration),
}

/// Reconciles one account with its broker, in three steps each under `timeout`: what the
/// broker knows of the orders still live in the journal; a snapshot of positions, working
/// orders and balance, in the event stream's order (a leader leads the difference, a
/// follower reports and cuts what the broker closed by itself); then, for a follower, its
/// leaders' books (missing copies and orphans, per each link's policy).
pub async fn reconcile(
    engine: &EngineHandle,
    account: AccountId,
    connector: &dyn Connector,
    mailbox: &AccountMailbox,
    timeout: Duration,
) -> Result<(), ReconcileError> {
    let detail = engine.inspect_async(account).await?;
    if !detail.live_orders.is_empty() {
        match within("order_history", timeout, connector.order_history(&detail.live_orders)).await {
            Ok(found) => {
                let lookups = Lookups { asked: detail.live_orders.clone(), found };
                mailbox.send(OwnedInput::Lookups(Box::new(lookups))).await?;
            }
            Err(ConnectorError::Unsupported(what)) => {
                tracing::warn!(%account, %what, orders = detail.live_orders.len(), "no order lookup; orders stay in flight");
            }
            Err(error) => return Err(error.into()),
        }
    }
    match within("request_snapshot", timeout, connector.request_snapshot()).await {
        Ok(()) => {}
        Err(ConnectorError::Unsupported(_)) => {
            // No in-stream snapshot: read the parts one by one (events in flight meanwhile are
            // applied after it, which position states tolerate).
            let snapshot = BrokerSnapshot {
                positions: within("open_positions", timeout, connector.open_positions()).await?,
                orders: within("open_orders", timeout, connector.open_orders()).await?,
                account: within("account", timeout, connector.account()).await?,
            };
            mailbox.send(OwnedInput::Event(ConnectorEvent::Snapshot(Box::new(snapshot)))).await?;
        }
        Err(error) => return Err(error.into()),
    }
    let deadline = tokio::time::Instant::now() + timeout;
    while engine.inspect_async(account).await?.broker_snapshots <= detail.broker_snapshots {
        if tokio::time::Instant::now() >= deadline {
            return Err(ReconcileError::SnapshotTimeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    engine.repair(account).await?;
    Ok(())
}

/// One account to reconcile: id, name (for logs), connector and mailbox.
pub type ReconcileTarget = (AccountId, Arc<str>, Arc<dyn Connector>, AccountMailbox);

/// Reconciles every connected account after a start: leaders before their followers (a
/// follower's repair works from its leaders' reconciled books), accounts of one depth of
/// the copy graph concurrently.
pub async fn reconcile_all(engine: &EngineHandle, accounts: Vec<ReconcileTarget>, timeout: Duration) {
    let depths = engine.copy_map().depths();
    let deepest = accounts.iter().filter_map(|(id, ..)| depths.get(id)).copied().max().unwrap_or(0);
    for depth in 0..=deepest {
        let mut tasks = Vec::new();
        for (account, name, connector, mailbox) in &accounts {
            if depths.get(account).copied().unwrap_or(0) != depth {
                continue;
            }
            let (engine, account, name) = (engine.clone(), *account, Arc::clone(name));
            let (connector, mailbox) = (Arc::clone(connector), mailbox.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(error) = reconcile(&engine, account, connector.as_ref(), &mailbox, timeout).await {
                    tracing::warn!(account = %name, %error, "reconciliation at start failed");
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Runs one command against the connector.
pub async fn execute(connector: &dyn Connector, command: Command, timeout: Duration) -> Outcome {
    match command {
        Command::Place(request) => Outcome::Order {
            client_id: request.client_id,
            result: within("place", timeout, connector.place(&request)).await,
        },
        Command::Close(request) => Outcome::Order {
            client_id: request.client_id,
            result: within("close", timeout, connector.close(&request)).await,
        },
        Command::Modify(request) => Outcome::Modify {
            position: request.position,
            result: within("modify", timeout, connector.modify(&request)).await,
        },
        Command::Cancel(request) => Outcome::Cancel {
            client_id: request.client_id,
            result: within("cancel", timeout, connector.cancel(&request)).await,
        },
    }
}
