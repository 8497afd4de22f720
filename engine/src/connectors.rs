//! The I/O shell around each account's connector: tokio tasks that execute the actor's
//! commands (one at a time, in order, each under a timeout), forward the connector's events to
//! the actor, and reconnect with backoff when the session drops.

use std::sync::Arc;
use std::time::Duration;

use mirror_connector::{AccountSnapshot, ConnectionState, Connector, ConnectorError, ConnectorEvent, SessionInfo};
use mirror_model::{AccountId, InstrumentSpec, Position};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::account::{Command, Outcome};
use crate::runtime::{AccountMailbox, ConnectorCommand, OwnedInput};

/// Timeouts and backoff of connector calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectorSettings {
    /// Longest wait for any one call.
    pub call_timeout: Duration,
    /// First reconnect delay; doubled after each failure.
    pub reconnect_min: Duration,
    /// Longest reconnect delay.
    pub reconnect_max: Duration,
}

impl Default for ConnectorSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
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

/// Connects and reads what the actor starts from. A connector that cannot connect still
/// boots (disconnected, with no instruments) and its supervisor keeps trying.
pub async fn boot(connector: &dyn Connector, settings: ConnectorSettings) -> Boot {
    let timeout = settings.call_timeout;
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
    let events = {
        let connector = Arc::clone(&wiring.connector);
        let mailbox = wiring.mailbox.clone();
        let reconnect = Arc::clone(&reconnect);
        let name = Arc::clone(&wiring.name);
        tokio::spawn(async move {
            let stream = connector.events();
            while let Ok(event) = stream.recv_async().await {
                match &event {
                    // Quotes feed the market-data hub (not yet built); the actors do not use them.
                    ConnectorEvent::Quote(_) => continue,
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
        tokio::spawn(async move {
            while let Ok(queued) = wiring.commands.recv_async().await {
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
        tokio::spawn(async move {
            loop {
                reconnect.notified().await;
                let mut delay = settings.reconnect_min;
                loop {
                    tokio::time::sleep(delay).await;
                    match within("connect", settings.call_timeout, connector.connect()).await {
                        Ok(_) => {
                            tracing::info!(account = %name, "reconnected");
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
