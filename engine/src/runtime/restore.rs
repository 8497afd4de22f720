//! Rebuilding actors from the journal: the latest good snapshot, then every input taken since,
//! in order, with the outputs thrown away (they happened the first time); and handing
//! unfinished fan-outs to the followers that had not taken them.

use mirror_model::{Signal, SignalId};
use rustc_hash::FxHashMap;

use super::{ShardMsg, Shared};
use crate::LinkId;
use crate::account::{AccountActor, AccountSetup, Action, InboundLink, Input};
use crate::journal::{Entry, Journal, JournalError, Record, Recovery, Replayed, SignalMark};
use crate::router::Target;

/// What replay did, for the log and for `mirror-engine replay`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Accounts that resumed from a snapshot.
    pub from_snapshot: u32,
    /// Inputs replayed.
    pub inputs: u64,
    /// Inputs that could not be replayed (signal no longer kept, link gone), each logged.
    pub skipped: u64,
    /// Holes in an account's input numbers (compacted while its snapshot was unusable).
    pub holes: u64,
}

/// Replays accounts one by one, decoding each signal once for all its followers.
pub(crate) struct Replayer<'a> {
    journal: &'a Journal,
    signals: FxHashMap<SignalId, Option<Signal>>,
    scratch: Vec<Action>,
    pub(crate) stats: ReplayStats,
}

impl<'a> Replayer<'a> {
    pub(crate) fn new(journal: &'a Journal) -> Self {
        Self { journal, signals: FxHashMap::default(), scratch: Vec::with_capacity(64), stats: ReplayStats::default() }
    }

    fn signal(&mut self, id: SignalId) -> Result<Option<&Signal>, JournalError> {
        if !self.signals.contains_key(&id) {
            let signal = self.journal.signal(id)?;
            self.signals.insert(id, signal);
        }
        Ok(self.signals.get(&id).and_then(Option::as_ref))
    }

    /// The actor `setup` describes, brought to where the journal left it.
    pub(crate) fn restore(
        &mut self,
        setup: AccountSetup,
        recovery: &mut Recovery,
    ) -> Result<AccountActor, JournalError> {
        let (snapshot, records) = recovery.take_account(setup.id);
        Ok(self.replay(setup, snapshot, records, None)?.0)
    }

    /// Rebuilds the account from its earliest kept snapshot instead, checking on the way that
    /// the inputs lead exactly to its latest snapshot.
    pub(crate) fn verify(
        &mut self,
        setup: AccountSetup,
        recovery: &mut Recovery,
    ) -> Result<(AccountActor, Verification), JournalError> {
        let (earliest, latest, records) = recovery.take_account_from_earliest(setup.id);
        self.replay(setup, earliest, records, latest)
    }

    fn replay(
        &mut self,
        setup: AccountSetup,
        snapshot: Option<crate::account::ActorSnapshot>,
        records: Vec<Replayed>,
        checkpoint: Option<crate::account::ActorSnapshot>,
    ) -> Result<(AccountActor, Verification), JournalError> {
        let account = setup.id;
        let inbound = setup.inbound.clone();
        let mut verification = Verification::NothingToCompare;
        let mut checkpoint = checkpoint;
        let mut actor = match snapshot {
            Some(snapshot) => {
                self.stats.from_snapshot += 1;
                AccountActor::restore(setup, snapshot)
            }
            None => AccountActor::new(setup),
        };
        for record in records {
            let seq = record.seq();
            if checkpoint.as_ref().is_some_and(|c| seq > c.input_seq()) {
                verification = compare(&actor, checkpoint.take().expect("checked"))?;
            }
            if seq != actor.input_seq() + 1 {
                tracing::warn!(%account, from = actor.input_seq() + 1, to = seq - 1, "inputs missing from the journal");
                self.stats.holes += 1;
                actor.skip_inputs_to(seq - 1);
            }
            match record {
                Replayed::Signal { now, signal, link, .. } => {
                    let Some(signal) = self.signal(signal)?.cloned() else {
                        tracing::warn!(%account, %signal, "signal no longer kept; its input is skipped");
                        self.stats.skipped += 1;
                        actor.skip_inputs_to(seq);
                        continue;
                    };
                    let Some(link) = current_link(&inbound, link, &signal) else {
                        tracing::warn!(%account, signal = %signal.id, "the link that carried this signal is gone");
                        self.stats.skipped += 1;
                        actor.skip_inputs_to(seq);
                        continue;
                    };
                    let view = signal.view();
                    actor.on_input(now, Input::Signal { signal: &view, link }, &mut self.scratch);
                }
                Replayed::Input(record) => {
                    let Some(input) = record.input.into_input() else { continue };
                    actor.on_input(record.now, input, &mut self.scratch);
                }
            }
            self.stats.inputs += 1;
            self.scratch.clear();
        }
        if let Some(checkpoint) = checkpoint {
            verification = compare(&actor, checkpoint)?;
        }
        Ok((actor, verification))
    }
}

/// Whether replaying the journal reproduced a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Only one snapshot is kept: nothing to compare with.
    NothingToCompare,
    /// The replayed state equals the snapshot, byte for byte.
    Matches {
        /// Inputs the snapshot includes.
        input_seq: u64,
    },
    /// It does not.
    Differs {
        /// Inputs the snapshot includes.
        input_seq: u64,
        /// Inputs the replayed state includes.
        replayed_seq: u64,
    },
}

fn compare(actor: &AccountActor, checkpoint: crate::account::ActorSnapshot) -> Result<Verification, JournalError> {
    let encode = |snapshot: &crate::account::ActorSnapshot| {
        crate::journal::encode(snapshot).map_err(|e| JournalError::Corrupt { seq: 0, reason: e.to_string() })
    };
    let replayed = actor.snapshot();
    let input_seq = checkpoint.input_seq();
    Ok(if replayed.input_seq() == input_seq && encode(&replayed)? == encode(&checkpoint)? {
        Verification::Matches { input_seq }
    } else {
        Verification::Differs { input_seq, replayed_seq: replayed.input_seq() }
    })
}

/// The link of this follower that carries the signal's origin now: the same id if it still
/// does (links are numbered in configuration order, so an edited file can renumber them).
fn current_link(inbound: &[InboundLink], link: LinkId, signal: &Signal) -> Option<LinkId> {
    inbound
        .iter()
        .find(|i| i.link == link && i.origin == signal.origin)
        .or_else(|| inbound.iter().find(|i| i.origin == signal.origin))
        .map(|i| i.link)
}

/// Rebuilds every account the journal has seen started, without a broker or a
/// configuration (`mirror-engine replay`): from its latest good snapshot and the inputs after
/// it, or (`verify`) from its earliest kept snapshot, checking that the inputs lead exactly
/// to the latest one.
pub fn replay_journal(
    journal: &Journal,
    mut recovery: Recovery,
    verify: bool,
) -> Result<(Vec<(AccountActor, Verification)>, ReplayStats), JournalError> {
    let mut replayer = Replayer::new(journal);
    let mut actors = Vec::new();
    for setup in journal.setups()? {
        let setup = setup.into_setup();
        actors.push(if verify {
            replayer.verify(setup, &mut recovery)?
        } else {
            (replayer.restore(setup, &mut recovery)?, Verification::NothingToCompare)
        });
    }
    Ok((actors, replayer.stats))
}

/// Hands every fan-out that had not finished to the followers that had not taken it, marking
/// it again in the journal with its new number of parts. Returns how many followers got one.
pub(super) fn redeliver(shared: &Shared, journal: &Journal, recovery: &Recovery) -> Result<usize, JournalError> {
    let mut delivered = 0;
    for unfinished in recovery.unfinished() {
        let Some(signal) = journal.signal(unfinished.signal)? else {
            tracing::warn!(signal = %unfinished.signal, "an unfinished signal is no longer kept");
            journal.append(Record::Entry(Entry::Signal(SignalMark { id: unfinished.signal, parts: 0 })))?;
            continue;
        };
        let shared_signal = mirror_wire::SharedSignal::encode(&signal)
            .map_err(|e| JournalError::Corrupt { seq: unfinished.first_seq, reason: e.to_string() })?;
        let mut groups: Vec<(usize, Vec<Target>)> = Vec::new();
        let map = shared.map.load();
        for group in map.fanout(&signal.origin) {
            let targets: Vec<Target> = group
                .targets
                .iter()
                .filter(|t| {
                    let follower = map.links().get(t.link.0 as usize).map(|link| link.follower);
                    follower.is_some_and(|a| !unfinished.delivered.contains(&a))
                })
                .copied()
                .collect();
            if !targets.is_empty() {
                groups.push((group.shard, targets));
            }
        }
        let parts = u16::try_from(groups.len()).unwrap_or(u16::MAX);
        journal.append(Record::Entry(Entry::Signal(SignalMark { id: signal.id, parts })))?;
        for (shard, targets) in groups {
            delivered += targets.len();
            tracing::info!(signal = %signal.id, followers = targets.len(), "resuming an interrupted fan-out");
            let message = ShardMsg::Signal { signal: shared_signal.clone(), targets: targets.into(), parts };
            if shared.mailboxes[shard].send(message).is_err() {
                break;
            }
        }
    }
    Ok(delivered)
}
