//! The network side: the SDK on a tokio runtime in a thread of its own. The UI thread never
//! waits on it; they exchange through bounded queues, each with a stated policy:
//!
//! - state updates, backend → UI: [`UPDATES_CAPACITY`] updates. When the UI falls behind, the
//!   subscription task waits (it stops reading the stream); the engine then finds this
//!   subscriber slow, drops its queue and later sends a fresh snapshot (`Lagged`), which the
//!   model takes in. Nothing is lost silently, and memory stays bounded.
//! - command outcomes, backend → UI: [`OUTCOMES_CAPACITY`]; the command's task waits for room.
//! - commands, UI → backend: [`COMMANDS_CAPACITY`]; when full the UI is told at once (`try_send`)
//!   and the command is not sent. At most [`COMMANDS_CAPACITY`] commands run at once; the
//!   others wait in that queue.
//! - the connection state is a `watch`: only the latest counts.
//!
//! The UI drains at most a fixed number of updates per frame. Every network await has a
//! timeout (the SDK's own, and [`COMMAND_TIMEOUT`] around each command).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mirror_sdk::{Client, ClientConfig, ErrorCode, OrderTicket, Role, SdkError, StateUpdate, Trust, topics};
use tokio::sync::watch;

use mirror_desk::Profile;

/// State updates waiting for the UI.
pub const UPDATES_CAPACITY: usize = 256;
/// Command outcomes waiting for the UI.
pub const OUTCOMES_CAPACITY: usize = 64;
/// Commands waiting for the backend.
pub const COMMANDS_CAPACITY: usize = 32;
/// Longest a command may take, end to end.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(25);
/// Interval of the liveness ping (it also finds the reason when the connection is lost).
pub const PING_INTERVAL: Duration = Duration::from_secs(2);
/// Longest a liveness ping may take.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between connection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Where the connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected, and not trying.
    Idle,
    /// Connecting (the first time).
    Connecting,
    /// A session is open.
    Connected {
        /// The token's role.
        role: Role,
        /// The source the token's orders are sent as.
        source: Option<u32>,
        /// The engine's version.
        server: String,
    },
    /// Lost, and trying again.
    Reconnecting {
        /// Why it was lost or the last attempt failed.
        reason: String,
    },
    /// Given up: trying again cannot help (token refused, bad fingerprint or address).
    Failed {
        /// Why.
        reason: String,
    },
}

/// What the UI asks the engine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// One order for the token's source, fanned out to its followers.
    Submit(OrderTicket),
    /// Stop copying new opens to one account, or all.
    Pause(Option<u32>),
    /// Copy again to one account, or all.
    Resume(Option<u32>),
    /// Close every position of one account, or all.
    Flatten(Option<u32>),
    /// Pause every account, then close every position.
    KillSwitch,
    /// Read the configuration in force again.
    ReadConfig,
}

/// A command's failure as the UI shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError {
    /// The engine's code, when the engine refused it.
    pub code: Option<ErrorCode>,
    /// The engine's message verbatim, or the SDK's error.
    pub message: String,
    /// Whether the outcome is unknown (sent, then no answer): do not resend.
    pub unknown: bool,
}

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The number [`Backend::send`] gave it.
    pub id: u64,
    /// The command.
    pub command: Command,
    /// What it returned: a signal id, or "done", or the configuration text.
    pub result: Result<Answer, CommandError>,
}

/// A successful command's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An order was accepted as this signal.
    Signal(u64),
    /// A control was applied.
    Done,
    /// The configuration in force.
    Config(String),
}

fn command_error(error: &SdkError) -> CommandError {
    match error {
        SdkError::Server(reply) => {
            CommandError { code: Some(reply.code), message: reply.message.clone(), unknown: false }
        }
        SdkError::Connection { sent: true, .. } | SdkError::Timeout { .. } => {
            CommandError { code: None, message: format!("{error}; do not resend before checking"), unknown: true }
        }
        other => CommandError { code: None, message: other.to_string(), unknown: false },
    }
}

/// The running backend. Dropping it stops the thread (without waiting for it).
pub struct Backend {
    commands: flume::Sender<(u64, Command)>,
    updates: flume::Receiver<StateUpdate>,
    outcomes: flume::Receiver<Outcome>,
    state: watch::Receiver<ConnState>,
    stop: watch::Sender<bool>,
    next_id: u64,
    /// Where it connects.
    pub profile: Profile,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("profile", &self.profile).finish_non_exhaustive()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

type Repaint = Arc<dyn Fn() + Send + Sync>;

impl Backend {
    /// Starts connecting to `profile` with `token`; `repaint` is called whenever something
    /// arrives for the UI.
    pub fn start(profile: Profile, token: String, repaint: Option<Repaint>) -> Result<Self, String> {
        let server: SocketAddr =
            profile.address.trim().parse().map_err(|e| format!("address {:?}: {e}", profile.address))?;
        let mut config = ClientConfig::new(server, Trust::Fingerprint(profile.fingerprint.trim().to_owned()), token);
        config.server_name = profile.server_name.clone();
        config.client_name = format!("mirror-manager/{}", env!("CARGO_PKG_VERSION"));
        let (commands, command_inbox) = flume::bounded(COMMANDS_CAPACITY);
        let (update_sender, updates) = flume::bounded(UPDATES_CAPACITY);
        let (outcome_sender, outcomes) = flume::bounded(OUTCOMES_CAPACITY);
        let (state_sender, state) = watch::channel(ConnState::Connecting);
        let (stop, stop_inbox) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("mirror-manager-net")
            .build()
            .map_err(|e| format!("network runtime: {e}"))?;
        let wake: Repaint = repaint.unwrap_or_else(|| Arc::new(|| {}));
        let links = Links { updates: update_sender, outcomes: outcome_sender, state: state_sender, wake };
        std::thread::Builder::new()
            .name("mirror-manager-backend".into())
            .spawn(move || {
                runtime.block_on(run(config, links, command_inbox, stop_inbox));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(|e| format!("network thread: {e}"))?;
        Ok(Self { commands, updates, outcomes, state, stop, next_id: 1, profile })
    }

    /// Queues a command; its number, or why it was not queued.
    pub fn send(&mut self, command: Command) -> Result<u64, String> {
        let id = self.next_id;
        match self.commands.try_send((id, command)) {
            Ok(()) => {
                self.next_id += 1;
                Ok(id)
            }
            Err(flume::TrySendError::Full(_)) => {
                Err(format!("{COMMANDS_CAPACITY} commands are already waiting: not sent, try again"))
            }
            Err(flume::TrySendError::Disconnected(_)) => Err("the network thread stopped: not sent".into()),
        }
    }

    /// The connection state now.
    pub fn state(&self) -> ConnState {
        self.state.borrow().clone()
    }

    /// Up to `max` state updates that arrived, without waiting.
    pub fn take_updates(&self, max: usize) -> impl Iterator<Item = StateUpdate> + '_ {
        self.updates.try_iter().take(max)
    }

    /// Whether more updates are waiting.
    pub fn updates_waiting(&self) -> usize {
        self.updates.len()
    }

    /// Up to `max` command outcomes, without waiting.
    pub fn take_outcomes(&self, max: usize) -> impl Iterator<Item = Outcome> + '_ {
        self.outcomes.try_iter().take(max)
    }
}

#[derive(Clone)]
struct Links {
    updates: flume::Sender<StateUpdate>,
    outcomes: flume::Sender<Outcome>,
    state: watch::Sender<ConnState>,
    wake: Repaint,
}

impl Links {
    fn state(&self, state: ConnState) {
        self.state.send_replace(state);
        (self.wake)();
    }
}

fn connected(client: &Client) -> ConnState {
    match client.welcome() {
        Some(w) => ConnState::Connected { role: w.role, source: w.source, server: w.server },
        None => ConnState::Reconnecting { reason: "no session".into() },
    }
}

/// Errors after which trying again cannot help.
fn fatal(error: &SdkError) -> bool {
    matches!(error, SdkError::Unauthorized(_) | SdkError::Version { .. } | SdkError::Config(_))
}

async fn run(
    config: ClientConfig,
    links: Links,
    commands: flume::Receiver<(u64, Command)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut wait = Duration::from_millis(250);
    let client = loop {
        let attempt = tokio::select! {
            _ = stop.changed() => return,
            attempt = Client::connect(config.clone()) => attempt,
        };
        match attempt {
            Ok(client) => break client,
            Err(error) if fatal(&error) => {
                links.state(ConnState::Failed { reason: error.to_string() });
                let _ = stop.changed().await;
                return;
            }
            Err(error) => {
                links.state(ConnState::Reconnecting { reason: error.to_string() });
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(RECONNECT_MAX);
            }
        }
    };
    links.state(connected(&client));
    let mut streams = tokio::task::JoinSet::new();
    streams.spawn(subscribe(client.clone(), links.clone()));
    streams.spawn(watchdog(client.clone(), links.clone()));
    let mut running = tokio::task::JoinSet::new();
    running.spawn(execute(client.clone(), 0, Command::ReadConfig, links.clone()));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            // Taken from the queue only while fewer than its capacity run: the queue bounds them.
            command = commands.recv_async(), if running.len() < COMMANDS_CAPACITY => match command {
                Ok((id, command)) => {
                    running.spawn(execute(client.clone(), id, command, links.clone()));
                }
                Err(_) => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
    running.abort_all();
    streams.abort_all();
    client.close().await;
}

/// Reads the state stream and hands it to the UI. The SDK reconnects and resumes by itself;
/// `next` is never cancelled half-way through a frame (this task owns it alone).
async fn subscribe(client: Client, links: Links) {
    let mut wait = Duration::from_millis(250);
    loop {
        let mut subscription = match client.subscribe(topics::ALL).await {
            Ok(subscription) => subscription,
            Err(error) => {
                let fatal = fatal(&error);
                let reason = format!("state stream: {error}");
                links.state(if fatal { ConnState::Failed { reason } } else { ConnState::Reconnecting { reason } });
                if fatal {
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        wait = Duration::from_millis(250);
        loop {
            match subscription.next().await {
                Ok(update) => {
                    if matches!(update, StateUpdate::Reconnected { .. }) {
                        links.state(connected(&client));
                    }
                    if links.updates.send_async(update).await.is_err() {
                        return;
                    }
                    (links.wake)();
                }
                Err(error) => {
                    let fatal = fatal(&error);
                    let reason = format!("state stream: {error}");
                    links.state(if fatal { ConnState::Failed { reason } } else { ConnState::Reconnecting { reason } });
                    if fatal {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Pings now and then: the state stream's own reconnection is silent, and this is how the UI
/// learns that, and why, the connection is down and when it is back.
async fn watchdog(client: Client, links: Links) {
    let mut ticker = tokio::time::interval(PING_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let state = match tokio::time::timeout(PING_TIMEOUT, client.ping()).await {
            Ok(Ok(_)) => connected(&client),
            Ok(Err(error)) if fatal(&error) => ConnState::Failed { reason: error.to_string() },
            Ok(Err(error)) => ConnState::Reconnecting { reason: error.to_string() },
            Err(_) => ConnState::Reconnecting { reason: format!("no answer to a ping in {PING_TIMEOUT:?}") },
        };
        if *links.state.borrow() != state {
            links.state(state);
        }
    }
}

async fn execute(client: Client, id: u64, command: Command, links: Links) {
    let call = async {
        let answer = match &command {
            Command::Submit(ticket) => {
                let mut ticket = ticket.clone();
                ticket.position = client.next_position_key();
                client.submit(&ticket).await.map(|signal| Answer::Signal(signal.0))
            }
            Command::Pause(account) => client.pause(*account).await.map(|()| Answer::Done),
            Command::Resume(account) => client.resume(*account).await.map(|()| Answer::Done),
            Command::Flatten(account) => client.flatten(*account).await.map(|()| Answer::Done),
            Command::KillSwitch => {
                // Flatten even when the pause failed: closing what is open matters most.
                let paused = client.pause(None).await;
                client.flatten(None).await.map_err(|e| command_error(&e))?;
                return paused.map(|()| Answer::Done).map_err(|e| {
                    let mut error = command_error(&e);
                    error.message = format!("every account was flattened, but the pause failed: {}", error.message);
                    error
                });
            }
            Command::ReadConfig => client.read_config().await.map(Answer::Config),
        };
        answer.map_err(|e| command_error(&e))
    };
    let result = match tokio::time::timeout(COMMAND_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(CommandError {
            code: None,
            message: format!("no answer in {COMMAND_TIMEOUT:?}; the command may have been applied: do not resend"),
            unknown: true,
        }),
    };
    if links.outcomes.send_async(Outcome { id, command, result }).await.is_ok() {
        (links.wake)();
    }
}
