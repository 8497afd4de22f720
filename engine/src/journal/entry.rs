//! What the journal holds: one entry per log position.
//!
//! Entries are MessagePack with field names (self-describing, so internally tagged enums read
//! back and a field added later with a default still reads old entries). The signals
//! themselves are kept as the rkyv bytes every follower read in place.

use mirror_connector::ConnectorEvent;
use mirror_model::{AccountId, SignalId};
use serde::{Deserialize, Serialize};

use crate::LinkId;
use crate::account::{ActorSnapshot, Command, Control, Input, Lookups, Now, Outcome, Repair};
use crate::telemetry::AuditRecord;

/// One log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A signal accepted from an external source (its bytes are in the signals tree).
    Signal(SignalMark),
    /// What one shard did while handling one message: the inputs its actors took, the
    /// signals its leaders emitted and the audit records that came out.
    Shard(ShardEntry),
    /// An actor's snapshot was taken here (the snapshot itself is in the snapshots tree).
    Snapshot {
        /// The account.
        account: AccountId,
        /// Inputs it includes.
        input_seq: u64,
    },
    /// An operator's or the configuration's action, for the audit log.
    Admin(AdminRecord),
}

/// A signal's place in the log; its bytes are kept by id in the signals tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalMark {
    /// The signal.
    pub id: SignalId,
    /// How many shard messages carry it to followers (its fan-out is complete when as many
    /// shard entries have reported it).
    pub parts: u16,
}

/// A signal emitted by a leader account while a shard handled a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmittedSignal {
    /// The signal's id.
    pub id: SignalId,
    /// Its archived bytes.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
    /// Shard messages that carry it.
    pub parts: u16,
}

/// The followers one fan-out message reached: the signal once, then per follower its input
/// number and link (the compact form of a thousand `Input::Signal`s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deliveries {
    /// The signal.
    pub signal: SignalId,
    /// When the shard handled it.
    pub now: Now,
    /// `(account, input number, link)` per follower.
    pub followers: Vec<(AccountId, u64, LinkId)>,
}

/// Everything one shard message did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// The shard.
    pub shard: u16,
    /// When the shard finished the message (wall clock, Unix ms).
    #[serde(default)]
    pub unix_ms: i64,
    /// The fan-out this message carried, if any (it completes one part of that signal).
    pub deliveries: Option<Deliveries>,
    /// Every other input, in the order taken.
    pub inputs: Vec<InputRecord>,
    /// Signals emitted by leaders, in order.
    pub emitted: Vec<EmittedSignal>,
    /// What came out.
    pub audits: Vec<AuditRecord>,
}

impl ShardEntry {
    /// Nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_none() && self.inputs.is_empty() && self.emitted.is_empty() && self.audits.is_empty()
    }
}

/// One input to one actor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The account.
    pub account: AccountId,
    /// The actor's input number (its first input is 1).
    pub seq: u64,
    /// The time the actor was given.
    pub now: Now,
    /// The input.
    pub input: JournalInput,
}

/// An owned actor input, as journaled. Large variants are boxed so that a record stays small.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalInput {
    /// A signal (by id: its bytes are in the signals tree) on a link.
    Signal {
        /// The signal.
        id: SignalId,
        /// The link.
        link: LinkId,
    },
    /// A connector event.
    Event(Box<ConnectorEvent>),
    /// A command's outcome.
    Outcome(Box<Outcome>),
    /// A command not sent.
    NotSent(Command),
    /// An instruction.
    Control(Control),
    /// Reconciliation lookups.
    Lookups(Box<Lookups>),
    /// A repair pass.
    Repair(Box<Repair>),
}

impl JournalInput {
    /// The owned copy of an input that is about to be handled, or `None` for a signal (which
    /// is recorded by id by its caller).
    pub(crate) fn of(input: &Input<'_>) -> Option<Self> {
        Some(match input {
            Input::Signal { .. } => return None,
            Input::Event(event) => Self::Event(Box::new(event.clone())),
            Input::Outcome(outcome) => Self::Outcome(Box::new(outcome.clone())),
            Input::NotSent(command) => Self::NotSent(*command),
            Input::Control(control) => Self::Control(*control),
            Input::Lookups(lookups) => Self::Lookups(lookups.clone()),
            Input::Repair(repair) => Self::Repair(repair.clone()),
        })
    }

    /// The input to hand an actor on replay (signals are resolved by the caller).
    pub(crate) fn into_input(self) -> Option<Input<'static>> {
        Some(match self {
            Self::Signal { .. } => return None,
            Self::Event(event) => Input::Event(*event),
            Self::Outcome(outcome) => Input::Outcome(*outcome),
            Self::NotSent(command) => Input::NotSent(command),
            Self::Control(control) => Input::Control(control),
            Self::Lookups(lookups) => Input::Lookups(lookups),
            Self::Repair(repair) => Input::Repair(repair),
        })
    }
}

/// Who did what to the configuration or to risk, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    /// Wall clock, Unix ms.
    pub unix_ms: i64,
    /// Who: `operator:<user>`, `config`, `engine`.
    pub who: String,
    /// What.
    pub action: AdminAction,
}

/// An administrative action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AdminAction {
    /// A configuration was loaded and applied.
    ConfigApplied {
        /// The file.
        path: String,
        /// SHA-256 of its resolved content, hex.
        digest: String,
        /// Accounts.
        accounts: u32,
        /// Links.
        links: u32,
    },
    /// An instruction to one account or to all.
    Control {
        /// The account, or none for all.
        account: Option<AccountId>,
        /// The instruction.
        control: Control,
    },
    /// The engine started (after recovery) or stopped.
    Lifecycle {
        /// `started`, `stopped`, `recovered`.
        what: String,
        /// Details.
        detail: String,
    },
}

/// A snapshot as stored: the bytes and their checksum, so that a torn or corrupted one is
/// recognised and an older one used instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) crc32: u32,
    #[serde(with = "serde_bytes")]
    pub(crate) bytes: Vec<u8>,
}

impl StoredSnapshot {
    pub(crate) fn seal(snapshot: &ActorSnapshot) -> Result<Self, rmp_serde::encode::Error> {
        let bytes = rmp_serde::to_vec_named(snapshot)?;
        Ok(Self { crc32: crc32fast::hash(&bytes), bytes })
    }

    /// The snapshot, if its checksum holds and it decodes.
    pub(crate) fn open(&self) -> Option<ActorSnapshot> {
        (crc32fast::hash(&self.bytes) == self.crc32).then(|| rmp_serde::from_slice(&self.bytes).ok()).flatten()
    }
}

/// A signal as kept in the signals tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSignal {
    /// The log position of the entry that brought it.
    pub(crate) seq: u64,
    /// Shard messages that carry it.
    pub(crate) parts: u16,
    /// When it was written (wall clock, Unix ms), for retention.
    pub(crate) kept_since_unix_ms: i64,
    /// Archived bytes.
    #[serde(with = "serde_bytes")]
    pub(crate) bytes: Vec<u8>,
}

/// Encodes an entry.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// Decodes an entry.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}

/// An account's setup as the engine last started it: what `mirror-engine replay` rebuilds
/// the account from without a broker or a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupRecord {
    /// Id.
    pub id: AccountId,
    /// Name.
    pub name: String,
    /// Netting or hedging.
    pub mode: mirror_model::AccountMode,
    /// Instruments, as the broker described them.
    pub instruments: Vec<mirror_model::InstrumentSpec>,
    /// Balance at start.
    pub balance: mirror_model::Money,
    /// Equity at start.
    pub equity: mirror_model::Money,
    /// Risk limits.
    pub risk: crate::account::RiskLimits,
    /// Inbound links: id, origin, rules.
    pub inbound: Vec<(LinkId, mirror_model::Origin, mirror_model::LinkRules)>,
    /// Whether other accounts copy it.
    pub is_leader: bool,
    /// Connected at start.
    pub connected: bool,
    /// Positions at start.
    pub positions: Vec<mirror_model::Position>,
}

impl SetupRecord {
    /// The record of a setup.
    pub fn of(setup: &crate::account::AccountSetup) -> Self {
        Self {
            id: setup.id,
            name: setup.name.to_string(),
            mode: setup.mode,
            instruments: setup.instruments.iter().copied().collect(),
            balance: setup.balance,
            equity: setup.equity,
            risk: setup.risk,
            inbound: setup.inbound.iter().map(|i| (i.link, i.origin, (*i.rules).clone())).collect(),
            is_leader: setup.is_leader,
            connected: setup.connected,
            positions: setup.positions.clone(),
        }
    }

    /// The setup again.
    pub fn into_setup(self) -> crate::account::AccountSetup {
        crate::account::AccountSetup {
            id: self.id,
            name: self.name.into(),
            mode: self.mode,
            instruments: self.instruments.into_iter().collect(),
            balance: self.balance,
            equity: self.equity,
            risk: self.risk,
            inbound: self
                .inbound
                .into_iter()
                .map(|(link, origin, rules)| crate::account::InboundLink {
                    link,
                    origin,
                    rules: std::sync::Arc::new(rules),
                })
                .collect(),
            is_leader: self.is_leader,
            connected: self.connected,
            positions: self.positions,
        }
    }
}
