//! The engine runtime: shards, the router between them and the handle the outside uses.

mod restore;
mod shard;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use mirror_connector::ConnectorEvent;
use mirror_model::{AccountId, Origin, Position, Signal, SignalAction, SignalId, Symbol};
use mirror_wire::{SharedSignal, WireError};
use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use crate::account::{
    AccountActor, AccountSetup, AccountSummary, Command, Control, LeaderBook, Lookups, Outcome, Repair,
};
use crate::clock::{Clock, SystemClock};
use crate::journal::{AdminAction, AdminRecord, Journal, JournalError, Recovery};
use crate::market::QuoteBoard;
use crate::router::{CopyMap, LinkSpec, MapError, Target};
use crate::telemetry::{
    AuditFeed, Counter, FanoutDone, OUTSIDE_SLOT, SignalSeen, Stats, StatsSnapshot, TelemetryMsg, TelemetrySink,
};
pub use restore::{ReplayStats, Verification, replay_journal};
use shard::Shard;

/// How a signal travels to followers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutEncoding {
    /// Archived once with rkyv; every follower reads the same bytes in place.
    #[default]
    Archived,
    /// An owned clone of the signal per follower (kept to measure against).
    ClonedOwned,
}

/// Runtime settings (read from the configuration's `[engine]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Shard threads. Default: one per core but one (left to network I/O), at least one.
    pub shards: usize,
    /// Polls of an empty mailbox before a shard parks.
    pub spin_iterations: u32,
    /// Capacity of each shard's mailbox.
    pub mailbox_capacity: usize,
    /// Capacity of each account's connector queue.
    pub connector_queue_capacity: usize,
    /// Pin shard threads to cores (shard i to core i+1, core 0 left to I/O).
    pub pin_cores: bool,
    /// Hour (UTC) at which the trading day starts (daily guards re-arm).
    pub day_start_utc_hour: u8,
    /// How signals travel to followers.
    pub encoding: FanoutEncoding,
}

/// Which cores the shards own and which are left to everything else (connectors' I/O,
/// timers, telemetry).
///
/// A spinning shard owns its core only if nothing else is scheduled there: every thread the
/// engine starts besides the shards pins itself to the I/O cores ([`CorePlan::pin_io`]). On a
/// 2-core machine with one shard, shard 0 has core 1 and everything else core 0. Read from the
/// affinity of the thread that builds the plan, so `taskset` is respected.
#[derive(Clone, Debug, Default)]
pub struct CorePlan {
    shard_cores: Vec<core_affinity::CoreId>,
    io_cores: Vec<core_affinity::CoreId>,
}

impl CorePlan {
    /// The plan for these settings: shard i on core i+1 (when pinning is on and there are at
    /// least two cores), the remaining cores for I/O.
    pub fn new(settings: &RuntimeSettings) -> Self {
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        if !settings.pin_cores || cores.len() < 2 {
            return Self { shard_cores: Vec::new(), io_cores: cores };
        }
        let shards = settings.shards.min(cores.len() - 1);
        let shard_cores: Vec<_> = cores[1..=shards].to_vec();
        let io_cores = cores.iter().filter(|c| !shard_cores.contains(c)).copied().collect();
        Self { shard_cores, io_cores }
    }

    /// The core of shard `index`, if shards are pinned.
    pub fn shard_core(&self, index: usize) -> Option<core_affinity::CoreId> {
        (!self.shard_cores.is_empty()).then(|| self.shard_cores[index % self.shard_cores.len()])
    }

    /// Pins the calling thread to an I/O core (chosen by `index`), when shards are pinned.
    pub fn pin_io(&self, index: usize) {
        if !self.shard_cores.is_empty() && !self.io_cores.is_empty() {
            core_affinity::set_for_current(self.io_cores[index % self.io_cores.len()]);
        }
    }
}

/// One shard per core but one, at least one: on a 2-core machine a single shard leaves a core
/// to the connectors' network I/O.
pub fn default_shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        Self {
            shards: default_shards(),
            spin_iterations: 2_000,
            mailbox_capacity: 65_536,
            connector_queue_capacity: 4_096,
            pin_cores: true,
            day_start_utc_hour: 0,
            encoding: FanoutEncoding::Archived,
        }
    }
}

/// A command on its way to a connector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectorCommand {
    /// The command.
    pub command: Command,
    /// When the shard handed it over (monotonic ns).
    pub handed_mono_ns: u64,
    /// Journal position that must be durable before the command may reach the broker (0:
    /// none; write-ahead off or no journal).
    pub durable_after: u64,
}

/// The receiving end of one account's connector queue.
pub type CommandQueue = (AccountId, flume::Receiver<ConnectorCommand>);

/// An input for an actor that comes from outside its shard.
#[derive(Clone, Debug)]
pub enum OwnedInput {
    /// A connector event.
    Event(ConnectorEvent),
    /// A command's outcome.
    Outcome(Outcome),
    /// A command that was not sent.
    NotSent(Command),
    /// An instruction.
    Control(Control),
    /// Reconciliation: what the broker knows of the live orders.
    Lookups(Box<Lookups>),
    /// Reconciliation: the origins' books.
    Repair(Box<Repair>),
}

/// What reconciliation needs to know of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDetail {
    /// Its book, as a leader.
    pub book: LeaderBook,
    /// Orders whose fate is not known yet.
    pub live_orders: Vec<mirror_model::ClientOrderId>,
    /// Broker snapshots it has handled.
    pub broker_snapshots: u64,
    /// Whether other accounts copy it.
    pub is_leader: bool,
}

/// An account as a shard sees it, for displays and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    /// Id.
    pub id: AccountId,
    /// Name.
    pub name: Arc<str>,
    /// State summary.
    pub summary: AccountSummary,
    /// Open positions.
    pub positions: Vec<Position>,
}

impl AccountView {
    fn of(actor: &AccountActor) -> Self {
        Self { id: actor.id(), name: Arc::clone(actor.name()), summary: actor.summary(), positions: actor.positions() }
    }
}

/// One actor's part of a live configuration change: its slot, its links, the origins of its
/// new links that start paused, and its new risk limits (if they changed).
pub(crate) type Relinked = (u32, Vec<crate::account::InboundLink>, Vec<Origin>, Option<crate::account::RiskLimits>);

pub(crate) enum ShardMsg {
    Signal {
        signal: SharedSignal,
        targets: Arc<[Target]>,
        parts: u16,
    },
    SignalOwned {
        items: Vec<(Target, Signal)>,
        parts: u16,
    },
    Input {
        slot: u32,
        input: OwnedInput,
    },
    Broadcast(Control),
    Query {
        reply: flume::Sender<Vec<AccountView>>,
    },
    Inspect {
        slot: u32,
        reply: flume::Sender<AccountDetail>,
    },
    /// The configuration changed live: new inbound links and risk limits for some actors
    /// (slot, links, origins of new links that start paused, limits); answered when applied.
    Relink {
        actors: Vec<Relinked>,
        reply: flume::Sender<()>,
    },
    /// Send a follower the book of the leader in `slot`, in the same stream as the leader's
    /// signals, so that the follower sees the book exactly as of the signals before it.
    RepairFollower {
        slot: u32,
        follower: AccountId,
    },
    Stop,
}

/// Signal ids: increasing, and started from the wall clock in microseconds so that a
/// restarted engine never reuses an id (client order ids are derived from them).
#[derive(Debug)]
pub struct SignalIds {
    next: AtomicU64,
}

impl SignalIds {
    /// Ids starting at the current Unix time in microseconds.
    pub fn from_wall_clock() -> Self {
        let micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_micros());
        Self { next: AtomicU64::new(u64::try_from(micros).unwrap_or(u64::MAX / 2)) }
    }

    /// Ids starting at `first`.
    pub fn starting_at(first: u64) -> Self {
        Self { next: AtomicU64::new(first) }
    }

    /// The next id.
    pub fn next(&self) -> SignalId {
        SignalId(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A block of `count` consecutive ids; returns the first.
    pub fn reserve(&self, count: u32) -> SignalId {
        SignalId(self.next.fetch_add(u64::from(count.max(1)), Ordering::Relaxed))
    }

    /// Makes sure no id below `floor` is handed out from now on.
    pub fn at_least(&self, floor: u64) {
        self.next.fetch_max(floor, Ordering::Relaxed);
    }
}

pub(crate) struct Shared {
    /// The copy map; replaced whole when links change live ([`EngineHandle::relink`]).
    map: arc_swap::ArcSwap<CopyMap>,
    mailboxes: Vec<flume::Sender<ShardMsg>>,
    clock: Arc<dyn Clock>,
    ids: SignalIds,
    stats: Arc<Stats>,
    telemetry: Option<TelemetrySink>,
    observer: Option<flume::Sender<FanoutDone>>,
    encoding: FanoutEncoding,
    day_start_utc_hour: u8,
    origin_symbols: FxHashMap<Origin, FxHashSet<Symbol>>,
    sources: FxHashSet<Origin>,
    journal: Option<Journal>,
    quotes: QuoteBoard,
}

/// A signal ready to travel: the per-shard messages, and its archived bytes (when archived).
struct Routed {
    messages: SmallVec<[(usize, ShardMsg); 4]>,
    shared: Option<SharedSignal>,
    parts: u16,
}

impl Shared {
    /// Sends to telemetry without waiting; a message that does not fit is dropped and
    /// counted in `slot`.
    fn send_telemetry(&self, slot: usize, message: TelemetryMsg) {
        if let Some(telemetry) = &self.telemetry
            && telemetry.sender.try_send(message).is_err()
        {
            self.stats.add(slot, Counter::TelemetryDropped, 1);
        }
    }

    fn refuse(&self, slot: usize, signal: &Signal, reason: String) {
        self.stats.add(slot, Counter::SignalsRefused, 1);
        self.publish_signal(slot, signal, Some(reason.clone()));
        self.send_telemetry(slot, TelemetryMsg::Refused { signal: signal.id, reason });
    }

    /// Tells the feed's signal subscribers about `signal`, if there are any (otherwise the
    /// signal is not even copied).
    fn publish_signal(&self, slot: usize, signal: &Signal, refused: Option<String>) {
        if self.telemetry.as_ref().is_some_and(|t| t.feed.wants_signals()) {
            // The acceptance time (what fan-out latency is measured from), when the signal has one.
            let mono_ns = match signal.accepted_mono_ns {
                0 => self.clock.now().mono_ns,
                accepted => accepted,
            };
            let seen = SignalSeen { signal: signal.clone(), mono_ns, refused };
            self.send_telemetry(slot, TelemetryMsg::Signal(Box::new(seen)));
        }
    }

    /// The Unix millisecond at which the trading day after `unix_ms` starts.
    fn next_day_start(&self, unix_ms: i64) -> i64 {
        const DAY_MS: i64 = 86_400_000;
        let offset = i64::from(self.day_start_utc_hour) * 3_600_000;
        let day = (unix_ms - offset).div_euclid(DAY_MS);
        (day + 1) * DAY_MS + offset
    }

    /// The per-shard messages that carry `signal` to every follower of its origin. With a
    /// journal the signal is always archived (the journal keeps those bytes).
    fn route(&self, slot: usize, signal: Signal) -> Result<Routed, WireError> {
        self.stats.add(slot, Counter::Signals, 1);
        let map = self.map.load();
        let fanout = map.fanout(&signal.origin);
        let parts = u16::try_from(fanout.len()).unwrap_or(u16::MAX);
        let mut messages = SmallVec::new();
        let mut archived = None;
        if self.encoding == FanoutEncoding::Archived || self.journal.is_some() {
            archived = Some(SharedSignal::encode(&signal)?);
        }
        match (self.encoding, &archived) {
            (FanoutEncoding::Archived, Some(shared)) => {
                for group in fanout {
                    messages.push((
                        group.shard,
                        ShardMsg::Signal { signal: shared.clone(), targets: Arc::clone(&group.targets), parts },
                    ));
                }
            }
            _ => {
                for group in fanout {
                    let items = group.targets.iter().map(|target| (*target, signal.clone())).collect();
                    messages.push((group.shard, ShardMsg::SignalOwned { items, parts }));
                }
            }
        }
        self.publish_signal(slot, &signal, None);
        Ok(Routed { messages, shared: archived, parts })
    }
}

/// Why a signal submitted from outside was refused. Nothing of a refused signal reaches any
/// follower.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The signal itself is invalid (size, prices, SL/TP sides).
    #[error("invalid signal: {0}")]
    Invalid(#[from] mirror_model::SignalError),
    /// The origin is neither a configured source nor a leader account.
    #[error("unknown signal origin {0}")]
    UnknownOrigin(Origin),
    /// The origin does not trade this symbol.
    #[error("unknown symbol {symbol} for {origin}")]
    UnknownSymbol {
        /// The origin.
        origin: Origin,
        /// The symbol.
        symbol: Symbol,
    },
    /// The signal could not be encoded.
    #[error("could not encode the signal: {0}")]
    Encode(#[from] WireError),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
    /// The journal could not take the signal; nothing of it reaches a broker.
    #[error("not accepted: {0}")]
    Journal(#[from] JournalError),
    /// The signal was fanned out but the disk has not confirmed it in time: its copies wait
    /// for that confirmation before reaching any broker. Resending would duplicate it.
    #[error("signal {0} accepted but not yet durable; its copies wait for the disk; do not resend")]
    Unconfirmed(SignalId),
}

/// Why links could not be changed while running.
#[derive(Debug, thiserror::Error)]
pub enum RelinkError {
    /// The new links do not make a valid copy map.
    #[error("{0}")]
    Map(#[from] MapError),
    /// A link from an account that leads no one now.
    #[error("account {0} does not lead anyone now; making an account a leader needs a restart")]
    NewLeader(AccountId),
    /// A link from a source the engine does not know.
    #[error("{0} is not a configured source; adding a source needs a restart")]
    UnknownSource(Origin),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

/// A copy map or runtime that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The copy map is invalid.
    #[error(transparent)]
    Map(#[from] MapError),
    /// Two accounts share an id.
    #[error("two accounts have the id {0}")]
    DuplicateAccount(AccountId),
    /// A shard thread could not start.
    #[error("could not start a shard thread: {0}")]
    Thread(#[from] std::io::Error),
    /// The journal could not be read back.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Longest wait of a source for its signal to become durable (a healthy journal takes
/// milliseconds; past this the source is told its signal was not accepted).
const SUBMIT_DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Builds and starts an engine.
#[derive(Debug)]
pub struct EngineBuilder {
    settings: RuntimeSettings,
    accounts: Vec<AccountSetup>,
    links: Vec<LinkSpec>,
    sources: Vec<Origin>,
    origin_symbols: FxHashMap<Origin, FxHashSet<Symbol>>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    telemetry: Option<TelemetrySink>,
    observer: Option<flume::Sender<FanoutDone>>,
    ids: Option<SignalIds>,
    cores: Option<CorePlan>,
    journal: Option<(Journal, Recovery)>,
}

impl EngineBuilder {
    /// A builder with these settings, the system clock and fresh counters.
    pub fn new(settings: RuntimeSettings) -> Self {
        Self {
            settings,
            accounts: Vec::new(),
            links: Vec::new(),
            sources: Vec::new(),
            origin_symbols: FxHashMap::default(),
            clock: Arc::new(SystemClock::new()),
            stats: Stats::new(),
            telemetry: None,
            observer: None,
            ids: None,
            cores: None,
            journal: None,
        }
    }

    /// Journals to `journal`, resuming from what it held when opened.
    pub fn journal(mut self, journal: Journal, recovery: Recovery) -> Self {
        self.journal = Some((journal, recovery));
        self
    }

    /// Adds an account (its inbound links and leader role come from the links).
    pub fn account(mut self, setup: AccountSetup) -> Self {
        self.accounts.push(setup);
        self
    }

    /// Adds a link.
    pub fn link(mut self, link: LinkSpec) -> Self {
        self.links.push(link);
        self
    }

    /// Declares an external signal source, optionally with the symbols it may send.
    pub fn source(mut self, origin: Origin, symbols: impl IntoIterator<Item = Symbol>) -> Self {
        self.sources.push(origin);
        let symbols: FxHashSet<Symbol> = symbols.into_iter().collect();
        if !symbols.is_empty() {
            self.origin_symbols.insert(origin, symbols);
        }
        self
    }

    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Counts into these counters.
    pub fn stats(mut self, stats: Arc<Stats>) -> Self {
        self.stats = stats;
        self
    }

    /// Sends audit records and fan-out timings here.
    pub fn telemetry(mut self, telemetry: TelemetrySink) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// Also sends every shard's fan-out completion here (benchmarks, tests).
    pub fn observer(mut self, observer: flume::Sender<FanoutDone>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Places shards by this plan (default: [`CorePlan::new`] from the calling thread).
    pub fn core_plan(mut self, plan: CorePlan) -> Self {
        self.cores = Some(plan);
        self
    }

    /// Numbers signals from here.
    pub fn signal_ids(mut self, ids: SignalIds) -> Self {
        self.ids = Some(ids);
        self
    }

    /// Starts the shards. Returns the engine and, per account, the receiving end of its
    /// connector queue (to be drained by its connector task).
    pub fn start(self) -> Result<(Engine, Vec<CommandQueue>), BuildError> {
        let mut seen = FxHashSet::default();
        for setup in &self.accounts {
            if !seen.insert(setup.id) {
                return Err(BuildError::DuplicateAccount(setup.id));
            }
        }
        let order: Vec<AccountId> = self.accounts.iter().map(|a| a.id).collect();
        let map = Arc::new(CopyMap::build(&order, self.settings.shards, self.links)?);
        let shard_count = map.shards();
        let ids = self.ids.unwrap_or_else(SignalIds::from_wall_clock);
        let (journal, mut recovery) = self.journal.unzip();
        if let Some(max) = recovery.as_ref().and_then(|r| r.summary.max_signal_id) {
            ids.at_least(max.0 + 1);
        }
        let mut replayer = journal.as_ref().map(restore::Replayer::new);
        let mut origin_symbols = self.origin_symbols;
        let mut per_shard: Vec<Vec<(AccountActor, flume::Sender<ConnectorCommand>)>> =
            (0..shard_count).map(|_| Vec::new()).collect();
        let mut receivers = Vec::with_capacity(self.accounts.len());
        for mut setup in self.accounts {
            setup.inbound = map.inbound(setup.id);
            setup.is_leader = map.is_leader(setup.id);
            if setup.is_leader {
                origin_symbols.insert(Origin::Account(setup.id), setup.instruments.iter().map(|s| s.symbol).collect());
            }
            let place = map.place(setup.id).expect("every account has a place");
            let (sender, receiver) = flume::bounded(self.settings.connector_queue_capacity.max(1));
            receivers.push((setup.id, receiver));
            if let Some(journal) = &journal {
                journal.record_setup(&crate::journal::SetupRecord::of(&setup))?;
            }
            let actor = match (&mut replayer, &mut recovery) {
                (Some(replayer), Some(recovery)) => replayer.restore(setup, recovery)?,
                _ => AccountActor::new(setup),
            };
            per_shard[place.shard].push((actor, sender));
        }
        if let (Some(replayer), Some(recovery)) = (&replayer, &recovery) {
            let summary = &recovery.summary;
            tracing::info!(
                entries = summary.entries,
                from = summary.first_seq,
                to = summary.durable_end,
                snapshots = replayer.stats.from_snapshot,
                replayed = replayer.stats.inputs,
                skipped = replayer.stats.skipped,
                dropped_after_gap = summary.dropped_after_gap,
                "state recovered from the journal"
            );
        }
        drop(replayer);
        if let Some(journal) = &journal {
            journal.attach(order.clone(), self.telemetry.clone());
        }
        let (mailboxes, inboxes): (Vec<_>, Vec<_>) =
            (0..shard_count).map(|_| flume::bounded(self.settings.mailbox_capacity.max(1))).unzip();
        let shared = Arc::new(Shared {
            map: arc_swap::ArcSwap::new(Arc::clone(&map)),
            mailboxes,
            clock: self.clock,
            ids,
            stats: self.stats,
            telemetry: self.telemetry,
            observer: self.observer,
            encoding: self.settings.encoding,
            day_start_utc_hour: self.settings.day_start_utc_hour % 24,
            origin_symbols,
            sources: self.sources.into_iter().collect(),
            journal: journal.clone(),
            quotes: QuoteBoard::default(),
        });
        let plan = self.cores.unwrap_or_else(|| CorePlan::new(&self.settings));
        let mut threads = Vec::with_capacity(shard_count);
        for (index, (actors, inbox)) in per_shard.into_iter().zip(inboxes).enumerate() {
            let (actors, queues): (Vec<_>, Vec<_>) = actors.into_iter().unzip();
            let shard = Shard::new(index, actors, queues, inbox, Arc::clone(&shared), self.settings.spin_iterations);
            let core = plan.shard_core(index);
            let thread = std::thread::Builder::new().name(format!("mirror-shard-{index}")).spawn(move || {
                if let Some(core) = core
                    && !core_affinity::set_for_current(core)
                {
                    tracing::warn!(shard = index, "could not pin the shard thread to a core");
                }
                shard.run();
            })?;
            threads.push(thread);
        }
        if let (Some(journal), Some(recovery)) = (&journal, &recovery) {
            if recovery.summary.entries > 0 {
                // Before anything new: orders of the last run still without an outcome.
                for mailbox in &shared.mailboxes {
                    let _ = mailbox.send(ShardMsg::Broadcast(Control::Restarted));
                }
            }
            restore::redeliver(&shared, journal, recovery)?;
        }
        Ok((Engine { handle: EngineHandle { shared }, threads }, receivers))
    }
}

/// A running engine. Dropping it without [`Engine::shutdown`] leaves the shard threads
/// running until every handle is gone.
#[derive(Debug)]
pub struct Engine {
    handle: EngineHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Engine {
    /// A handle to talk to the engine.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Stops every shard after it has finished the messages already in its mailbox, and
    /// waits for the threads.
    pub fn shutdown(self) {
        for mailbox in &self.handle.shared.mailboxes {
            let _ = mailbox.send(ShardMsg::Stop);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Where an account's inputs go (used by its connector tasks).
#[derive(Clone, Debug)]
pub struct AccountMailbox {
    sender: flume::Sender<ShardMsg>,
    slot: u32,
}

impl AccountMailbox {
    /// Delivers an input, waiting while the shard's mailbox is full (back-pressure to the
    /// connector, never a drop). Fails only when the engine has stopped.
    pub async fn send(&self, input: OwnedInput) -> Result<(), SubmitError> {
        self.sender.send_async(ShardMsg::Input { slot: self.slot, input }).await.map_err(|_| SubmitError::Stopped)
    }

    /// The same, from a thread.
    pub fn send_blocking(&self, input: OwnedInput) -> Result<(), SubmitError> {
        self.sender.send(ShardMsg::Input { slot: self.slot, input }).map_err(|_| SubmitError::Stopped)
    }
}

/// A cheap, cloneable handle on a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").field("shards", &self.shared.mailboxes.len()).finish_non_exhaustive()
    }
}

/// Which accounts a control goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlScope {
    /// One account.
    Account(AccountId),
    /// Every account.
    All,
}

impl EngineHandle {
    /// Validates a signal from an external source and fans it out. Returns its id once every
    /// shard's message is in its mailbox (waiting while a mailbox is full). A refused signal
    /// reaches no follower.
    pub fn submit(
        &self,
        origin: Origin,
        action: SignalAction,
        created_unix_ms: Option<i64>,
        note: &str,
    ) -> Result<SignalId, SubmitError> {
        let now = self.shared.clock.now();
        let id = self.shared.ids.next();
        let signal = Signal {
            id,
            origin,
            created_unix_ms: created_unix_ms.unwrap_or(now.unix_ms),
            accepted_mono_ns: now.mono_ns,
            leader_balance: None,
            leader_equity: None,
            action,
            note: note.to_owned(),
        };
        if let Err(error) = self.check(&signal) {
            self.shared.refuse(OUTSIDE_SLOT, &signal, error.to_string());
            return Err(error);
        }
        if let Some(error) = self.shared.journal.as_ref().and_then(Journal::failure) {
            self.shared.refuse(OUTSIDE_SLOT, &signal, error.to_string());
            return Err(error.into());
        }
        let routed = self.shared.route(OUTSIDE_SLOT, signal)?;
        // Journaled before any follower can see it: every follower's record of it comes after.
        let durable = match (&self.shared.journal, &routed.shared) {
            (Some(journal), Some(shared)) => Some(journal.append_signal(shared, routed.parts)?),
            _ => None,
        };
        for (shard, message) in routed.messages {
            self.shared.mailboxes[shard].send(message).map_err(|_| SubmitError::Stopped)?;
        }
        if let (Some(journal), Some(seq)) = (&self.shared.journal, durable) {
            match journal.wait_durable(seq, SUBMIT_DURABLE_WAIT) {
                Ok(()) => {}
                Err(JournalError::NotDurable { .. }) => return Err(SubmitError::Unconfirmed(id)),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(id)
    }

    /// Checks what [`EngineHandle::submit`] would check (origin, symbol, quantities, prices,
    /// SL/TP sides, note), without sending anything: the two legs of a pair are both checked
    /// before either is fanned out.
    pub fn precheck(&self, origin: Origin, action: SignalAction, note: &str) -> Result<(), SubmitError> {
        let signal = Signal {
            id: SignalId(0),
            origin,
            created_unix_ms: 0,
            accepted_mono_ns: 0,
            leader_balance: None,
            leader_equity: None,
            action,
            note: note.to_owned(),
        };
        self.check(&signal)
    }

    /// The accounts that copy `origin` directly, in the copy map's order.
    pub fn followers(&self, origin: Origin) -> Vec<AccountId> {
        let map = self.shared.map.load();
        let links = map.links();
        let mut followers: Vec<AccountId> = map
            .fanout(&origin)
            .iter()
            .flat_map(|group| group.targets.iter())
            .filter_map(|target| links.get(target.link.0 as usize).map(|link| link.follower))
            .collect();
        let order: FxHashMap<AccountId, usize> = map.accounts().iter().enumerate().map(|(i, id)| (*id, i)).collect();
        followers.sort_by_key(|id| order.get(id).copied().unwrap_or(usize::MAX));
        followers.dedup();
        followers
    }

    /// A fresh signal id (to number the orders of a [`Control::CloseCopy`] or
    /// [`Control::CopyOpen`]).
    pub fn next_signal_id(&self) -> SignalId {
        self.shared.ids.next()
    }

    /// The audit records as telemetry receives them (durable ones, when journaling), for
    /// subscribers; `None` when the engine was built without telemetry.
    pub fn audit_feed(&self) -> Option<AuditFeed> {
        self.shared.telemetry.as_ref().map(|telemetry| telemetry.feed.clone())
    }

    /// The latest quotes of every account's symbols (written by the connector tasks, never by
    /// the shards).
    pub fn quote_board(&self) -> &QuoteBoard {
        &self.shared.quotes
    }

    fn check(&self, signal: &Signal) -> Result<(), SubmitError> {
        let origin = signal.origin;
        if !self.shared.sources.contains(&origin) && self.shared.map.load().fanout(&origin).is_empty() {
            return Err(SubmitError::UnknownOrigin(origin));
        }
        signal.validate()?;
        if let SignalAction::Open(open) = signal.action
            && let Some(symbols) = self.shared.origin_symbols.get(&origin)
            && !symbols.contains(&open.symbol)
        {
            return Err(SubmitError::UnknownSymbol { origin, symbol: open.symbol });
        }
        Ok(())
    }

    /// The mailbox of an account.
    pub fn mailbox(&self, account: AccountId) -> Option<AccountMailbox> {
        let place = self.shared.map.load().place(account)?;
        Some(AccountMailbox { sender: self.shared.mailboxes[place.shard].clone(), slot: place.slot })
    }

    /// Sends an operator's instruction to one account or to all.
    pub fn control(&self, scope: ControlScope, control: Control) -> Result<(), SubmitError> {
        self.control_by("operator", scope, control)
    }

    /// Sends an instruction, recording who gave it in the journal's audit log.
    pub fn control_by(&self, who: &str, scope: ControlScope, control: Control) -> Result<(), SubmitError> {
        if let Some(journal) = &self.shared.journal {
            let account = match scope {
                ControlScope::Account(account) => Some(account),
                ControlScope::All => None,
            };
            journal.admin(AdminRecord {
                unix_ms: self.shared.clock.now().unix_ms,
                who: who.to_owned(),
                action: AdminAction::Control { account, control },
            })?;
        }
        match scope {
            ControlScope::Account(account) => {
                let mailbox = self.mailbox(account).ok_or(SubmitError::UnknownOrigin(Origin::Account(account)))?;
                mailbox.send_blocking(OwnedInput::Control(control))
            }
            ControlScope::All => {
                for mailbox in &self.shared.mailboxes {
                    mailbox.send(ShardMsg::Broadcast(control)).map_err(|_| SubmitError::Stopped)?;
                }
                Ok(())
            }
        }
    }

    /// Returns once every control sent before this call has been taken by its shard and, with
    /// the journal on, is on disk: what a control-borne order (a manual ticket to named
    /// accounts) waits for before it is acknowledged, as a source's signal does. `id` names the
    /// order in the error when the disk does not confirm it in time.
    pub fn confirm_controls(&self, id: SignalId) -> Result<(), SubmitError> {
        let Some(journal) = &self.shared.journal else { return Ok(()) };
        // A query is answered after everything already in the shards' mailboxes, so once it is
        // back every earlier control is journaled (reserved): waiting for the last reserved
        // position covers them.
        self.accounts()?;
        match journal.wait_durable(journal.last_reserved(), SUBMIT_DURABLE_WAIT) {
            Ok(()) => Ok(()),
            Err(JournalError::NotDurable { .. }) => Err(SubmitError::Unconfirmed(id)),
            Err(error) => Err(error.into()),
        }
    }

    /// Closes every position of one account or of all, with fresh client order ids.
    pub fn flatten(&self, scope: ControlScope) -> Result<SignalId, SubmitError> {
        let id = self.shared.ids.next();
        self.control(scope, Control::Flatten { id, reason: crate::account::FlattenReason::Operator, freeze: false })?;
        Ok(id)
    }

    /// Every account's state, as its shard sees it after the messages already queued.
    pub fn accounts(&self) -> Result<Vec<AccountView>, SubmitError> {
        let mut views = Vec::new();
        for mailbox in &self.shared.mailboxes {
            let (reply, answer) = flume::bounded(1);
            mailbox.send(ShardMsg::Query { reply }).map_err(|_| SubmitError::Stopped)?;
            views.extend(answer.recv().map_err(|_| SubmitError::Stopped)?);
        }
        let order: FxHashMap<AccountId, usize> =
            self.shared.map.load().accounts().iter().enumerate().map(|(i, id)| (*id, i)).collect();
        views.sort_by_key(|v| order.get(&v.id).copied().unwrap_or(usize::MAX));
        Ok(views)
    }

    /// What reconciliation needs to know of one account, after the messages already queued
    /// for its shard.
    pub fn inspect(&self, account: AccountId) -> Result<AccountDetail, SubmitError> {
        let place =
            self.shared.map.load().place(account).ok_or(SubmitError::UnknownOrigin(Origin::Account(account)))?;
        let (reply, answer) = flume::bounded(1);
        self.shared.mailboxes[place.shard]
            .send(ShardMsg::Inspect { slot: place.slot, reply })
            .map_err(|_| SubmitError::Stopped)?;
        answer.recv().map_err(|_| SubmitError::Stopped)
    }

    /// The same, from a task.
    pub async fn inspect_async(&self, account: AccountId) -> Result<AccountDetail, SubmitError> {
        let place =
            self.shared.map.load().place(account).ok_or(SubmitError::UnknownOrigin(Origin::Account(account)))?;
        let (reply, answer) = flume::bounded(1);
        self.shared.mailboxes[place.shard]
            .send_async(ShardMsg::Inspect { slot: place.slot, reply })
            .await
            .map_err(|_| SubmitError::Stopped)?;
        answer.recv_async().await.map_err(|_| SubmitError::Stopped)
    }

    /// Asks every leader account this follower copies to send it its book, for a repair pass
    /// (missing copies and orphans, per each link's policy). Returns how many were asked.
    pub async fn repair(&self, follower: AccountId) -> Result<usize, SubmitError> {
        let mut asked = 0;
        let map = self.shared.map.load_full();
        for link in map.inbound(follower) {
            let Origin::Account(leader) = link.origin else { continue };
            let Some(place) = map.place(leader) else { continue };
            self.shared.mailboxes[place.shard]
                .send_async(ShardMsg::RepairFollower { slot: place.slot, follower })
                .await
                .map_err(|_| SubmitError::Stopped)?;
            asked += 1;
        }
        Ok(asked)
    }

    /// Replaces the copy map's links and some accounts' risk limits while running. The
    /// accounts stay; a link may come from a source or from an account that already leads
    /// (making an account a leader needs a restart: it has not kept a leader's book). `paused`:
    /// the (origin, follower) links that start paused if they are new. Signals routed before
    /// the change reach followers with the links they then had; a signal racing the change on
    /// a link just added or removed is skipped with `not linked`. Returns once every shard has
    /// applied it.
    pub fn relink(
        &self,
        links: Vec<LinkSpec>,
        paused: &[(Origin, AccountId)],
        risk: &FxHashMap<AccountId, crate::account::RiskLimits>,
    ) -> Result<(), RelinkError> {
        let current = self.shared.map.load_full();
        for link in &links {
            if let Origin::Source(_) = link.leader
                && !self.shared.sources.contains(&link.leader)
            {
                return Err(RelinkError::UnknownSource(link.leader));
            }
        }
        let map = Arc::new(CopyMap::build(current.accounts(), current.shards(), links)?);
        if let Some(account) = current.accounts().iter().find(|a| map.is_leader(**a) && !current.is_leader(**a)) {
            return Err(RelinkError::NewLeader(*account));
        }
        let mut per_shard: Vec<Vec<_>> = (0..map.shards()).map(|_| Vec::new()).collect();
        for account in current.accounts() {
            let Some(place) = map.place(*account) else { continue };
            let limits = risk.get(account).copied();
            let inbound = map.inbound(*account);
            let unchanged = limits.is_none() && inbound == current.inbound(*account);
            if unchanged {
                continue;
            }
            let paused_new: Vec<Origin> =
                paused.iter().filter(|(_, follower)| follower == account).map(|(origin, _)| *origin).collect();
            per_shard[place.shard].push((place.slot, inbound, paused_new, limits));
        }
        // The new map first: whatever is routed from now on uses it, and each shard takes its
        // new links before any message routed with them (same mailbox, in order).
        self.shared.map.store(Arc::clone(&map));
        let mut waiting = Vec::new();
        for (shard, actors) in per_shard.into_iter().enumerate() {
            if actors.is_empty() {
                continue;
            }
            let (reply, answer) = flume::bounded(1);
            self.shared.mailboxes[shard].send(ShardMsg::Relink { actors, reply }).map_err(|_| RelinkError::Stopped)?;
            waiting.push(answer);
        }
        for answer in waiting {
            answer.recv().map_err(|_| RelinkError::Stopped)?;
        }
        Ok(())
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<&Journal> {
        self.shared.journal.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// The copy map in force.
    pub fn copy_map(&self) -> Arc<CopyMap> {
        self.shared.map.load_full()
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }
}
