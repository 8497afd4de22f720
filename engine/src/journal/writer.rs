//! The journal's one writer thread: inserts what arrives, flushes once per batch (group
//! commit), advances the durable watermark, forwards the durable audit records to telemetry,
//! keeps two snapshots per account and compacts the log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mirror_model::{AccountId, SignalId};
use rustc_hash::FxHashMap;

use super::{
    Entry, Inner, JournalError, META_COMPACTED_BELOW, META_CONSUMER_PREFIX, Record, Recovery, SignalMark, StoredSignal,
    StoredSnapshot, WriterMsg, encode, key_seq, read_u64, seq_key, snapshot_key,
};
use crate::telemetry::{AuditRecord, TelemetryBatch, TelemetryMsg, TelemetrySink};

/// Most records inserted before one flush.
const BATCH_MAX: usize = 4_096;
/// How long the writer sleeps when idle before it looks at compaction.
const IDLE_WAKE: Duration = Duration::from_millis(200);

pub(super) struct Writer {
    inner: Arc<Inner>,
    receiver: flume::Receiver<WriterMsg>,
    /// Highest position up to which every record is inserted.
    contiguous: u64,
    /// Inserted positions above `contiguous` (records arrive slightly out of order).
    above: BTreeSet<u64>,
    /// Signals still being fanned out: remaining parts and the first position that marks them.
    outstanding: FxHashMap<SignalId, (u64, u16)>,
    outstanding_by_seq: BTreeMap<u64, SignalId>,
    /// Snapshot positions per account, ascending.
    snapshots: FxHashMap<AccountId, Vec<u64>>,
    accounts: Option<Vec<AccountId>>,
    telemetry: Option<TelemetrySink>,
    forward: Vec<Vec<AuditRecord>>,
    compacted_below: u64,
    last_compaction: Instant,
    failed: bool,
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Writer {
    pub(super) fn new(
        inner: Arc<Inner>,
        receiver: flume::Receiver<WriterMsg>,
        recovery: &Recovery,
    ) -> Result<Self, JournalError> {
        let mut writer = Self {
            contiguous: recovery.summary.durable_end,
            above: BTreeSet::new(),
            outstanding: FxHashMap::default(),
            outstanding_by_seq: BTreeMap::new(),
            snapshots: recovery.snapshot_positions.clone(),
            accounts: None,
            telemetry: None,
            forward: Vec::new(),
            compacted_below: recovery.summary.first_seq,
            last_compaction: Instant::now(),
            failed: false,
            inner,
            receiver,
        };
        for (fanout, missing) in &recovery.unfinished {
            writer.track(fanout.signal, fanout.first_seq, *missing);
        }
        Ok(writer)
    }

    pub(super) fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        let mut stopping = false;
        loop {
            match self.receiver.recv_timeout(IDLE_WAKE) {
                Ok(message) => batch.push(message),
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => stopping = true,
            }
            while batch.len() < BATCH_MAX
                && let Ok(message) = self.receiver.try_recv()
            {
                batch.push(message);
            }
            let mut wrote = false;
            for message in batch.drain(..) {
                match message {
                    WriterMsg::Write { seq, record } => {
                        self.write(seq, record);
                        wrote = true;
                    }
                    WriterMsg::Attach { accounts, telemetry } => {
                        self.accounts = Some(accounts);
                        self.telemetry = telemetry;
                    }
                    WriterMsg::Stop => stopping = true,
                }
            }
            if wrote {
                self.commit();
            }
            if self.last_compaction.elapsed() >= self.inner.settings.compact_interval {
                self.compact();
            }
            if stopping && self.receiver.is_empty() {
                self.compact();
                self.commit();
                return;
            }
        }
    }

    fn fail(&mut self, error: &JournalError) {
        if !self.failed {
            tracing::error!(%error, "the journal cannot write: commands are held and sources refused");
            self.inner.watermark.fail(error.to_string());
            self.failed = true;
        }
    }

    fn track(&mut self, signal: SignalId, seq: u64, parts: u16) {
        let first = match self.outstanding.remove(&signal) {
            Some((first, _)) => first.min(seq),
            None => seq,
        };
        self.outstanding_by_seq.retain(|_, id| *id != signal);
        if parts > 0 {
            self.outstanding.insert(signal, (first, parts));
            self.outstanding_by_seq.insert(first, signal);
        }
    }

    fn complete_part(&mut self, signal: SignalId) {
        if let Some((first, remaining)) = self.outstanding.get_mut(&signal) {
            *remaining -= 1;
            if *remaining == 0 {
                let first = *first;
                self.outstanding.remove(&signal);
                self.outstanding_by_seq.remove(&first);
            }
        }
    }

    fn write(&mut self, seq: u64, record: Record) {
        if self.failed {
            return;
        }
        if let Err(error) = self.insert(seq, record) {
            self.fail(&error);
            return;
        }
        if seq == self.contiguous + 1 {
            self.contiguous = seq;
            while self.above.remove(&(self.contiguous + 1)) {
                self.contiguous += 1;
            }
        } else {
            self.above.insert(seq);
        }
    }

    fn insert(&mut self, seq: u64, record: Record) -> Result<(), JournalError> {
        let inner = Arc::clone(&self.inner);
        let path = &inner.settings.dir;
        let trees = &inner.trees;
        let storage = |e: sled::Error| JournalError::storage(path, e);
        let corrupt = |e: rmp_serde::encode::Error| JournalError::Corrupt { seq, reason: e.to_string() };
        let entry = match record {
            Record::Entry(entry) => entry,
            Record::Signal { mark, bytes } => {
                let stored = StoredSignal { seq, parts: mark.parts, kept_since_unix_ms: unix_ms(), bytes };
                trees.signals.insert(mark.id.0.to_be_bytes(), encode(&stored).map_err(corrupt)?).map_err(storage)?;
                Entry::Signal(mark)
            }
            Record::Snapshot(snapshot) => {
                let account = snapshot.account();
                let stored = StoredSnapshot::seal(&snapshot).map_err(corrupt)?;
                trees
                    .snapshots
                    .insert(snapshot_key(account, seq), encode(&stored).map_err(corrupt)?)
                    .map_err(storage)?;
                let positions = self.snapshots.entry(account).or_default();
                positions.push(seq);
                positions.sort_unstable();
                Entry::Snapshot { account, input_seq: snapshot.input_seq() }
            }
        };
        let bytes = encode(&entry).map_err(corrupt)?;
        trees.log.insert(seq_key(seq), bytes).map_err(storage)?;
        match entry {
            Entry::Signal(SignalMark { id, parts }) => self.track(id, seq, parts),
            Entry::Shard(shard) => {
                for emitted in &shard.emitted {
                    let stored = StoredSignal {
                        seq,
                        parts: emitted.parts,
                        kept_since_unix_ms: unix_ms(),
                        bytes: emitted.bytes.clone(),
                    };
                    trees
                        .signals
                        .insert(emitted.id.0.to_be_bytes(), encode(&stored).map_err(corrupt)?)
                        .map_err(storage)?;
                    self.track(emitted.id, seq, emitted.parts);
                }
                if let Some(deliveries) = &shard.deliveries {
                    self.complete_part(deliveries.signal);
                }
                if !shard.audits.is_empty() {
                    self.forward.push(shard.audits);
                }
            }
            Entry::Snapshot { .. } | Entry::Admin(_) => {}
        }
        Ok(())
    }

    /// Flushes everything inserted, then publishes the new watermark and forwards the audit
    /// records that are now durable.
    fn commit(&mut self) {
        if self.failed {
            self.forward.clear();
            return;
        }
        let durable = self.contiguous;
        if let Err(error) = self.inner.db.flush() {
            self.fail(&JournalError::storage(&self.inner.settings.dir, error));
            return;
        }
        self.inner.watermark.advance(durable);
        for audits in self.forward.drain(..) {
            if let Some(telemetry) = &self.telemetry {
                let batch = TelemetryBatch { audits, fanout: None };
                if telemetry.sender.try_send(TelemetryMsg::Batch(batch)).is_err() {
                    tracing::debug!("telemetry full; durable audit records not forwarded");
                }
            }
        }
    }

    /// The position below which nothing is needed any more, if compaction may run.
    fn cut(&self) -> Option<u64> {
        let accounts = self.accounts.as_ref()?;
        let durable = self.inner.watermark.get();
        let mut cut = durable + 1;
        for account in accounts {
            let positions = self.snapshots.get(account)?;
            // The older of the two newest durable snapshots: if the newest turns out corrupt,
            // the inputs after the older one are still here.
            let mut kept = positions.iter().rev().filter(|seq| **seq <= durable).take(2);
            let newest = kept.next()?;
            cut = cut.min(*kept.next().unwrap_or(newest));
        }
        if let Some((first, _)) = self.outstanding_by_seq.first_key_value() {
            cut = cut.min(*first);
        }
        for item in self.inner.trees.meta.scan_prefix(META_CONSUMER_PREFIX.as_bytes()) {
            let (_, value) = item.ok()?;
            cut = cut.min(key_seq(&value)? + 1);
        }
        for consumer in &self.inner.settings.consumers {
            let key = format!("{META_CONSUMER_PREFIX}{consumer}");
            // A consumer that has not started yet keeps everything.
            read_u64(&self.inner.trees.meta, key.as_bytes()).ok()??;
        }
        Some(cut)
    }

    fn compact(&mut self) {
        self.last_compaction = Instant::now();
        if self.failed {
            return;
        }
        if let Err(error) = self.prune_snapshots() {
            self.fail(&error);
            return;
        }
        if !self.inner.settings.compact {
            return;
        }
        let Some(cut) = self.cut() else { return };
        if cut <= self.compacted_below {
            return;
        }
        if let Err(error) = self.remove_below(cut) {
            self.fail(&error);
            return;
        }
        tracing::debug!(from = self.compacted_below, to = cut, "journal compacted");
        self.compacted_below = cut;
    }

    /// Keeps, per account, the two newest durable snapshots and any newer one not yet durable.
    fn prune_snapshots(&mut self) -> Result<(), JournalError> {
        let durable = self.inner.watermark.get();
        let path = &self.inner.settings.dir;
        for (account, positions) in &mut self.snapshots {
            let durable_count = positions.iter().filter(|seq| **seq <= durable).count();
            let drop = durable_count.saturating_sub(2);
            for seq in positions.drain(..drop) {
                self.inner
                    .trees
                    .snapshots
                    .remove(snapshot_key(*account, seq))
                    .map_err(|e| JournalError::storage(path, e))?;
            }
        }
        Ok(())
    }

    fn remove_below(&self, cut: u64) -> Result<(), JournalError> {
        let path = &self.inner.settings.dir;
        let trees = &self.inner.trees;
        let storage = |e: sled::Error| JournalError::storage(path, e);
        // The new start first: a crash in the middle leaves entries below it, which recovery
        // skips, never a log that starts past what it claims.
        trees.meta.insert(META_COMPACTED_BELOW, &cut.to_be_bytes()).map_err(storage)?;
        let mut batch = sled::Batch::default();
        for key in trees.log.range(seq_key(self.compacted_below)..seq_key(cut)).keys() {
            batch.remove(key.map_err(storage)?);
        }
        trees.log.apply_batch(batch).map_err(storage)?;
        let retention = i64::try_from(self.inner.settings.signal_retention.as_millis()).unwrap_or(i64::MAX);
        let expired_before = unix_ms().saturating_sub(retention);
        let mut batch = sled::Batch::default();
        for item in &trees.signals {
            let (key, value) = item.map_err(storage)?;
            let Ok(stored) = super::decode::<StoredSignal>(&value) else {
                batch.remove(key);
                continue;
            };
            if stored.seq >= cut || stored.kept_since_unix_ms > expired_before {
                break;
            }
            batch.remove(key);
        }
        trees.signals.apply_batch(batch).map_err(storage)?;
        Ok(())
    }
}
