//! Reading the journal back on open: the gap-free prefix of the log, the latest good snapshot
//! of each account, the inputs each account took since, and the fan-outs that had not
//! finished.

use std::collections::BTreeMap;
use std::path::Path;

use mirror_model::{AccountId, SignalId};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    Entry, InputRecord, JournalError, JournalInput, META_COMPACTED_BELOW, StoredSnapshot, Trees, decode, key_seq,
    read_u64, seq_key,
};
use crate::LinkId;
use crate::account::{ActorSnapshot, Control, Now};

/// One input an account took, as read back.
#[derive(Clone, Debug, PartialEq)]
pub enum Replayed {
    /// A signal on a link.
    Signal {
        /// The actor's input number.
        seq: u64,
        /// The time it was given.
        now: Now,
        /// The signal.
        signal: SignalId,
        /// The link.
        link: LinkId,
    },
    /// Any other input.
    Input(InputRecord),
}

impl Replayed {
    /// The actor's input number.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Signal { seq, .. } => *seq,
            Self::Input(record) => record.seq,
        }
    }
}

/// A signal whose fan-out had not finished when the engine stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedFanout {
    /// The signal.
    pub signal: SignalId,
    /// Log position of its first mark.
    pub first_seq: u64,
    /// Accounts that took it.
    pub delivered: FxHashSet<AccountId>,
}

/// Figures of a recovery, for the log and for `mirror-engine replay`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoverySummary {
    /// First position in the log.
    pub first_seq: u64,
    /// Last position of the gap-free prefix.
    pub durable_end: u64,
    /// Position the next entry takes.
    pub next_seq: u64,
    /// Entries read.
    pub entries: u64,
    /// Entries after a gap: never durable, so never acknowledged nor acted on; dropped.
    pub dropped_after_gap: u64,
    /// Snapshots whose checksum failed (an older one was used).
    pub corrupt_snapshots: u32,
    /// Accounts with a snapshot.
    pub snapshots: u32,
    /// The highest signal id the journal has seen (new ids start above it).
    pub max_signal_id: Option<SignalId>,
}

/// What the journal knew when it was opened.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Figures.
    pub summary: RecoverySummary,
    /// Valid snapshots per account, newest first.
    snapshots: FxHashMap<AccountId, Vec<ActorSnapshot>>,
    /// Valid snapshot positions per account, ascending, for compaction.
    pub(super) snapshot_positions: FxHashMap<AccountId, Vec<u64>>,
    records: FxHashMap<AccountId, Vec<Replayed>>,
    /// Unfinished fan-outs with the parts they still lacked.
    pub(super) unfinished: Vec<(UnfinishedFanout, u16)>,
}

impl Recovery {
    /// The latest good snapshot of an account, and the inputs it took after it, in order.
    pub fn take_account(&mut self, account: AccountId) -> (Option<ActorSnapshot>, Vec<Replayed>) {
        let snapshot = self.snapshots.remove(&account).and_then(|kept| kept.into_iter().next());
        let after = snapshot.as_ref().map_or(0, ActorSnapshot::input_seq);
        let mut records = self.records.remove(&account).unwrap_or_default();
        records.retain(|r| r.seq() > after);
        records.sort_by_key(Replayed::seq);
        (snapshot, records)
    }

    /// For verification: the earliest good snapshot kept, the latest one, and every input
    /// after the earliest, in order.
    pub fn take_account_from_earliest(
        &mut self,
        account: AccountId,
    ) -> (Option<ActorSnapshot>, Option<ActorSnapshot>, Vec<Replayed>) {
        let mut kept = self.snapshots.remove(&account).unwrap_or_default();
        let earliest = kept.pop();
        let latest = if kept.is_empty() { None } else { Some(kept.swap_remove(0)) };
        let after = earliest.as_ref().map_or(0, ActorSnapshot::input_seq);
        let mut records = self.records.remove(&account).unwrap_or_default();
        records.retain(|r| r.seq() > after);
        records.sort_by_key(Replayed::seq);
        (earliest, latest, records)
    }

    /// Fan-outs that had not finished: their followers that had not taken them still must.
    pub fn unfinished(&self) -> impl Iterator<Item = &UnfinishedFanout> {
        self.unfinished.iter().map(|(fanout, _)| fanout)
    }

    /// Accounts the journal knows about (with a snapshot or inputs).
    pub fn accounts(&self) -> Vec<AccountId> {
        let mut accounts: Vec<AccountId> = self.snapshots.keys().chain(self.records.keys()).copied().collect();
        accounts.sort_unstable();
        accounts.dedup();
        accounts
    }
}

#[derive(Default)]
struct FanoutState {
    first_seq: u64,
    parts: u16,
    completed: u16,
    delivered: FxHashSet<AccountId>,
}

pub(super) fn read(trees: &Trees, path: &Path) -> Result<Recovery, JournalError> {
    let storage = |e: sled::Error| JournalError::storage(path, e);
    let first = read_u64(&trees.meta, META_COMPACTED_BELOW).map_err(storage)?.unwrap_or(1);
    let mut recovery = Recovery::default();
    let mut fanouts: BTreeMap<SignalId, FanoutState> = BTreeMap::new();
    let mut max_id: Option<SignalId> = None;
    let mut bump = |id: SignalId| max_id = Some(max_id.map_or(id, |m| m.max(id)));
    // Entries below the start are left over from a compaction cut short.
    let mut leftovers = sled::Batch::default();
    for key in trees.log.range(..seq_key(first)).keys() {
        leftovers.remove(key.map_err(storage)?);
    }
    trees.log.apply_batch(leftovers).map_err(storage)?;
    let mut expected = first;
    let mut after_gap = Vec::new();
    for item in trees.log.range(seq_key(first)..) {
        let (key, value) = item.map_err(storage)?;
        let seq = key_seq(&key).ok_or_else(|| JournalError::Corrupt { seq: 0, reason: "log key".into() })?;
        if seq != expected || !after_gap.is_empty() {
            after_gap.push(key);
            continue;
        }
        expected += 1;
        recovery.summary.entries += 1;
        let entry: Entry = decode(&value).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?;
        match entry {
            Entry::Signal(mark) => {
                bump(mark.id);
                let state =
                    fanouts.entry(mark.id).or_insert_with(|| FanoutState { first_seq: seq, ..Default::default() });
                // A later mark (a redelivery after a restart) restarts the count of parts.
                state.parts = mark.parts;
                state.completed = 0;
            }
            Entry::Shard(shard) => {
                if let Some(deliveries) = shard.deliveries {
                    let state = fanouts.get_mut(&deliveries.signal);
                    for (account, input, link) in &deliveries.followers {
                        recovery.records.entry(*account).or_default().push(Replayed::Signal {
                            seq: *input,
                            now: deliveries.now,
                            signal: deliveries.signal,
                            link: *link,
                        });
                    }
                    if let Some(state) = state {
                        state.completed = state.completed.saturating_add(1);
                        state.delivered.extend(deliveries.followers.iter().map(|(account, _, _)| *account));
                    }
                }
                for record in shard.inputs {
                    match &record.input {
                        JournalInput::Control(Control::Flatten { id, .. }) => bump(*id),
                        JournalInput::Repair(repair) => {
                            bump(SignalId(repair.first_id.0 + u64::from(repair.ids.max(1)) - 1));
                        }
                        _ => {}
                    }
                    recovery.records.entry(record.account).or_default().push(Replayed::Input(record));
                }
                for emitted in shard.emitted {
                    bump(emitted.id);
                    fanouts
                        .insert(emitted.id, FanoutState { first_seq: seq, parts: emitted.parts, ..Default::default() });
                }
            }
            Entry::Snapshot { .. } | Entry::Admin(_) => {}
        }
    }
    let durable_end = expected - 1;
    recovery.summary.dropped_after_gap = after_gap.len() as u64;
    if !after_gap.is_empty() {
        tracing::warn!(
            dropped = after_gap.len(),
            durable_end,
            "journal entries after a gap were never durable (so never acknowledged nor acted on); dropping them"
        );
        for key in after_gap {
            trees.log.remove(key).map_err(storage)?;
        }
    }
    read_snapshots(trees, path, durable_end, &mut recovery)?;
    if let Some(last) = trees.signals.last().map_err(storage)?
        && let Some(id) = key_seq(&last.0)
    {
        bump(SignalId(id));
    }
    recovery.unfinished = fanouts
        .into_iter()
        .filter(|(_, state)| state.completed < state.parts)
        .map(|(signal, state)| {
            let missing = state.parts - state.completed;
            (UnfinishedFanout { signal, first_seq: state.first_seq, delivered: state.delivered }, missing)
        })
        .collect();
    recovery.summary.first_seq = first;
    recovery.summary.durable_end = durable_end;
    recovery.summary.next_seq = durable_end + 1;
    recovery.summary.max_signal_id = max_id;
    Ok(recovery)
}

/// Per account, the newest snapshot inside the durable prefix whose checksum holds (older
/// ones are fallbacks). Snapshots past the prefix belong to entries that were dropped.
fn read_snapshots(trees: &Trees, path: &Path, durable_end: u64, recovery: &mut Recovery) -> Result<(), JournalError> {
    let storage = |e: sled::Error| JournalError::storage(path, e);
    let mut per_account: BTreeMap<AccountId, Vec<(u64, sled::IVec)>> = BTreeMap::new();
    for item in &trees.snapshots {
        let (key, value) = item.map_err(storage)?;
        if key.len() != 12 {
            continue;
        }
        let account = AccountId(u32::from_be_bytes(key[..4].try_into().expect("4 bytes")));
        let seq = u64::from_be_bytes(key[4..].try_into().expect("8 bytes"));
        if seq > durable_end {
            trees.snapshots.remove(&key).map_err(storage)?;
            continue;
        }
        per_account.entry(account).or_default().push((seq, value));
    }
    for (account, mut kept) in per_account {
        kept.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        let mut valid = Vec::new();
        for (seq, value) in kept {
            let snapshot = decode::<StoredSnapshot>(&value).ok().and_then(|stored| stored.open());
            match snapshot {
                Some(snapshot) if snapshot.account() == account => valid.push((seq, snapshot)),
                _ => {
                    recovery.summary.corrupt_snapshots += 1;
                    tracing::warn!(%account, position = seq, "snapshot fails its checksum; using an older one");
                }
            }
        }
        let mut positions: Vec<u64> = valid.iter().map(|(seq, _)| *seq).collect();
        positions.reverse();
        if !valid.is_empty() {
            recovery.snapshot_positions.insert(account, positions);
            recovery.snapshots.insert(account, valid.into_iter().map(|(_, snapshot)| snapshot).collect());
            recovery.summary.snapshots += 1;
        }
    }
    Ok(())
}
