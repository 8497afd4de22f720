//! One shard: an OS thread (pinned to a core when asked) that owns a set of account actors and
//! drains one bounded mailbox.
//!
//! Mailbox policy: the mailbox is bounded. Senders outside the engine (ingress, connector
//! tasks) wait when it is full, which pushes back on the source; nothing is dropped. A shard
//! never waits on another shard: what it cannot hand over at once is parked in its outbox and
//! retried before it takes new work, so two busy shards cannot deadlock each other.
//!
//! Connector queues are bounded too. A shard never waits on one (a slow broker must not stall
//! every other account on the shard): a command that does not fit is refused back to its actor,
//! which records the order as not sent (`connector queue full`), counted and logged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirror_model::{AccountId, Origin, Signal, SignalId};
use mirror_wire::SharedSignal;

use super::{AccountDetail, ConnectorCommand, OwnedInput, Routed, ShardMsg, Shared};
use crate::account::{AccountActor, Action, Audit, AuditEvent, Control, Input, Now};
use crate::journal::{Deliveries, EmittedSignal, Entry, InputRecord, JournalInput, Record, ShardEntry};
use crate::router::Target;
use crate::telemetry::{AuditRecord, Counter, FanoutDone, LocalCounts, TelemetryBatch, TelemetryMsg, TelemetrySink};

/// How long a parked shard sleeps before it looks at its clock-driven duties.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Cross-shard messages a shard parks before it, too, waits (only reached when a peer is a
/// million messages behind).
const OUTBOX_MAX: usize = 1_000_000;

/// Messages handled back to back before clock-driven duties run anyway.
const DUTIES_EVERY: u32 = 1_024;

/// Snapshots taken per round of duties (each copies one account's state), so that a busy
/// shard is not held up by many at once.
const SNAPSHOTS_PER_ROUND: usize = 8;

pub(super) struct Shard {
    pub(super) index: usize,
    pub(super) actors: Vec<AccountActor>,
    pub(super) queues: Vec<flume::Sender<ConnectorCommand>>,
    pub(super) inbox: flume::Receiver<ShardMsg>,
    pub(super) shared: Arc<Shared>,
    pub(super) spin_iterations: u32,
    local: VecDeque<ShardMsg>,
    outbox: VecDeque<(usize, ShardMsg)>,
    actions: Vec<Action>,
    feedback: Vec<(u32, OwnedInput)>,
    next_day_unix_ms: i64,
    /// Audit records of the message being handled, sent as one batch when it is done.
    audits: Vec<AuditRecord>,
    fanout: Option<FanoutDone>,
    audit_seq: u64,
    counts: LocalCounts,
    /// Journal: the entry of the message being handled and its position, once taken.
    entry: ShardEntry,
    entry_seq: Option<u64>,
    /// Signals the message's leaders emitted, routed once the message is journaled.
    emitted: Vec<Signal>,
    /// Per slot: input number and time of its last snapshot.
    snapshot_marks: Vec<(u64, Instant)>,
    snapshot_cursor: usize,
    handled_since_duties: u32,
}

impl Shard {
    pub(super) fn new(
        index: usize,
        actors: Vec<AccountActor>,
        queues: Vec<flume::Sender<ConnectorCommand>>,
        inbox: flume::Receiver<ShardMsg>,
        shared: Arc<Shared>,
        spin_iterations: u32,
    ) -> Self {
        let now = shared.clock.now();
        let next_day_unix_ms = shared.next_day_start(now.unix_ms);
        let snapshot_marks = actors.iter().map(|a| (a.input_seq(), Instant::now())).collect();
        Self {
            index,
            actors,
            queues,
            inbox,
            shared,
            spin_iterations,
            local: VecDeque::new(),
            outbox: VecDeque::new(),
            actions: Vec::with_capacity(256),
            feedback: Vec::with_capacity(16),
            next_day_unix_ms,
            audits: Vec::with_capacity(1_024),
            fanout: None,
            audit_seq: 1,
            counts: LocalCounts::default(),
            entry: ShardEntry::default(),
            entry_seq: None,
            emitted: Vec::new(),
            snapshot_marks,
            snapshot_cursor: 0,
            handled_since_duties: 0,
        }
    }

    pub(super) fn run(mut self) {
        // Every account's starting point, so that the journal can be compacted past what
        // recovery replayed.
        self.snapshot(true);
        loop {
            self.flush_outbox();
            let message = match self.local.pop_front() {
                Some(message) => message,
                None => match self.receive() {
                    Some(message) => message,
                    None => {
                        self.duties();
                        continue;
                    }
                },
            };
            if !self.handle(message) {
                break;
            }
        }
    }

    /// Spins up to `spin_iterations` polls (a wake-up from a parked thread costs tens of
    /// microseconds on small VMs), then parks until a message or the idle timer.
    fn receive(&mut self) -> Option<ShardMsg> {
        for _ in 0..self.spin_iterations {
            match self.inbox.try_recv() {
                Ok(message) => return Some(message),
                Err(flume::TryRecvError::Empty) => std::hint::spin_loop(),
                Err(flume::TryRecvError::Disconnected) => return Some(ShardMsg::Stop),
            }
        }
        match self.inbox.recv_timeout(IDLE_WAKE) {
            Ok(message) => Some(message),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => Some(ShardMsg::Stop),
        }
    }

    /// Clock-driven work: the trading day's start, snapshots.
    fn duties(&mut self) {
        self.handled_since_duties = 0;
        let now = self.shared.clock.now();
        if now.unix_ms >= self.next_day_unix_ms {
            self.next_day_unix_ms = self.shared.next_day_start(now.unix_ms);
            self.broadcast(now, Control::NewDay);
            self.finish_message();
        }
        self.snapshot(false);
    }

    /// Journals the snapshots that are due (all of them when `all`), round-robin.
    fn snapshot(&mut self, all: bool) {
        let Some(journal) = &self.shared.journal else { return };
        let settings = journal.settings();
        let count = self.actors.len();
        let now = Instant::now();
        let mut taken = 0;
        for _ in 0..count {
            let slot = self.snapshot_cursor % count;
            self.snapshot_cursor = (slot + 1) % count;
            let actor = &self.actors[slot];
            let (last_seq, last_at) = self.snapshot_marks[slot];
            let changed = actor.input_seq() - last_seq;
            let due = changed >= settings.snapshot_inputs
                || (changed > 0 && now.duration_since(last_at) >= settings.snapshot_interval);
            if !all && !due {
                continue;
            }
            if let Err(error) = journal.append(Record::Snapshot(Box::new(actor.snapshot()))) {
                tracing::error!(%error, account = %actor.id(), "could not journal a snapshot");
                return;
            }
            self.snapshot_marks[slot] = (actor.input_seq(), now);
            taken += 1;
            if !all && taken >= SNAPSHOTS_PER_ROUND {
                return;
            }
        }
    }

    fn handle(&mut self, message: ShardMsg) -> bool {
        match message {
            ShardMsg::Signal { signal, targets, parts } => self.fan_out(&signal, &targets, parts),
            ShardMsg::SignalOwned { items, parts } => self.fan_out_owned(items, parts),
            ShardMsg::Input { slot, input } => {
                let now = self.shared.clock.now();
                self.deliver(now, slot, input);
            }
            ShardMsg::Broadcast(control) => {
                let now = self.shared.clock.now();
                self.broadcast(now, control);
            }
            ShardMsg::Query { reply } => {
                let views = self.actors.iter().map(super::AccountView::of).collect();
                let _ = reply.send(views);
            }
            ShardMsg::Inspect { slot, reply } => {
                if let Some(actor) = self.actors.get(slot as usize) {
                    let _ = reply.send(AccountDetail {
                        book: actor.leader_book(),
                        live_orders: actor.live_order_ids(),
                        broker_snapshots: actor.broker_snapshots(),
                        is_leader: actor.is_leader(),
                    });
                }
            }
            ShardMsg::RepairFollower { slot, follower } => self.send_book(slot, follower),
            ShardMsg::Relink { actors, reply } => {
                for (slot, inbound, paused_new, risk) in actors {
                    if let Some(actor) = self.actors.get_mut(slot as usize) {
                        actor.relink(inbound, &paused_new, risk);
                    }
                }
                let _ = reply.send(());
            }
            ShardMsg::Stop => {
                self.finish_message();
                // A clean stop leaves nothing to replay.
                self.snapshot(true);
                return false;
            }
        }
        self.finish_message();
        self.duties_if_due();
        true
    }

    fn duties_if_due(&mut self) {
        // Cheap check on the hot path: an idle shard does its duties at once, a busy one every
        // thousand messages.
        self.handled_since_duties += 1;
        if (self.local.is_empty() && self.inbox.is_empty()) || self.handled_since_duties >= DUTIES_EVERY {
            self.duties();
        }
    }

    /// Ends the handling of one message: journals what it did (inputs, emitted signals,
    /// audits) as one entry, reports telemetry, then routes the emitted signals, so that every
    /// follower's record of a signal comes after the leader's.
    fn finish_message(&mut self) {
        let mut routed: Vec<Routed> = Vec::new();
        for signal in std::mem::take(&mut self.emitted) {
            if let Err(error) = signal.validate() {
                self.shared.refuse(self.index, &signal, error.to_string());
                continue;
            }
            match self.shared.route(self.index, signal) {
                Ok(signal) => routed.push(signal),
                Err(error) => tracing::error!(%error, "could not encode a leader signal"),
            }
        }
        if let (Some(journal), Some(seq)) = (&self.shared.journal, self.entry_seq.take()) {
            let mut entry = std::mem::take(&mut self.entry);
            entry.shard = u16::try_from(self.index).unwrap_or(u16::MAX);
            entry.unix_ms = self.shared.clock.now().unix_ms;
            for signal in &routed {
                if let Some(shared) = &signal.shared {
                    let (id, bytes) = (shared.view().id, shared.as_bytes().to_vec());
                    entry.emitted.push(EmittedSignal { id, bytes, parts: signal.parts });
                }
            }
            let fresh = self.shared.telemetry.as_ref().map_or_else(Vec::new, TelemetrySink::buffer);
            entry.audits = std::mem::replace(&mut self.audits, fresh);
            if let Err(error) = journal.write(seq, Record::Entry(Entry::Shard(entry))) {
                tracing::error!(%error, shard = self.index, "could not journal; the commands of this message are held");
            }
        }
        self.flush_telemetry();
        for signal in routed {
            for (shard, message) in signal.messages {
                self.send_to_shard(shard, message);
            }
        }
    }

    /// The archived bytes, shared by every shard, are read in place once per shard; every
    /// follower on the shard gets the same view of them. (Kept out of line, once per message,
    /// so that profilers can measure exactly the fan-out.)
    #[inline(never)]
    fn fan_out(&mut self, signal: &SharedSignal, targets: &[Target], parts: u16) {
        let now = self.shared.clock.now();
        let view = signal.view();
        self.begin_deliveries(view.id, now, targets.len());
        let mut orders = 0;
        for target in targets {
            orders += self.step(now, target.slot, Input::Signal { signal: &view, link: target.link });
        }
        self.report_fanout(view.id, view.accepted_mono_ns, parts, targets.len(), orders);
    }

    /// The alternative measured against zero-copy: every follower got its own clone.
    fn fan_out_owned(&mut self, items: Vec<(Target, Signal)>, parts: u16) {
        let now = self.shared.clock.now();
        let mut orders = 0;
        let Some((_, first)) = items.first() else { return };
        let (id, accepted) = (first.id, first.accepted_mono_ns);
        let followers = items.len();
        self.begin_deliveries(id, now, followers);
        for (target, signal) in &items {
            let view = signal.view();
            orders += self.step(now, target.slot, Input::Signal { signal: &view, link: target.link });
        }
        self.report_fanout(id, accepted, parts, followers, orders);
    }

    /// Sends a leader's book to one of its followers for a repair pass, with a block of ids
    /// for the orders it may send (one per leader position, plus one for closing orphans).
    fn send_book(&mut self, slot: u32, follower: AccountId) {
        let Some(leader) = self.actors.get(slot as usize) else { return };
        if !leader.summary().connected {
            tracing::info!(leader = %leader.name(), %follower, "leader not connected; no repair against its book");
            return;
        }
        let book = leader.leader_book();
        let ids = u32::try_from(book.positions.len() + 1).unwrap_or(u32::MAX);
        let first_id = self.shared.ids.reserve(ids);
        let repair = crate::account::Repair { first_id, ids, books: vec![book] };
        self.send_to_account(follower, OwnedInput::Repair(Box::new(repair)));
    }

    fn begin_deliveries(&mut self, signal: SignalId, now: Now, followers: usize) {
        if self.shared.journal.is_some() {
            self.entry.deliveries = Some(Deliveries { signal, now, followers: Vec::with_capacity(followers) });
        }
    }

    fn report_fanout(&mut self, signal: SignalId, accepted_mono_ns: u64, parts: u16, followers: usize, orders: u32) {
        let done = FanoutDone {
            signal,
            shard: u16::try_from(self.index).unwrap_or(u16::MAX),
            parts,
            followers: u32::try_from(followers).unwrap_or(u32::MAX),
            orders,
            accepted_mono_ns,
            done_mono_ns: self.shared.clock.now().mono_ns,
        };
        if let Some(observer) = &self.shared.observer {
            let _ = observer.try_send(done);
        }
        self.fanout = Some(done);
    }

    /// Publishes the handled message's counts, and sends its audit records and fan-out timing
    /// as one batch.
    fn flush_telemetry(&mut self) {
        self.counts.publish(&self.shared.stats, self.index);
        if self.audits.is_empty() && self.fanout.is_none() {
            return;
        }
        let Some(sink) = &self.shared.telemetry else {
            self.audits.clear();
            self.fanout = None;
            return;
        };
        // With a journal the audits went into its entry (its writer forwards them once durable).
        let audits =
            if self.audits.is_empty() { Vec::new() } else { std::mem::replace(&mut self.audits, sink.buffer()) };
        let dropped = audits.len() as u64;
        let batch = TelemetryBatch { audits, fanout: self.fanout.take() };
        if let Err(error) = sink.sender.try_send(TelemetryMsg::Batch(batch)) {
            self.counts.add(Counter::TelemetryDropped, dropped.max(1));
            // Keep the buffer rather than allocate another.
            if let TelemetryMsg::Batch(mut batch) = error.into_inner() {
                batch.audits.clear();
                self.audits = batch.audits;
            }
        }
    }

    fn deliver(&mut self, now: Now, slot: u32, input: OwnedInput) {
        let input = match input {
            OwnedInput::Event(event) => Input::Event(event),
            OwnedInput::Outcome(outcome) => Input::Outcome(outcome),
            OwnedInput::NotSent(command) => Input::NotSent(command),
            OwnedInput::Control(control) => Input::Control(control),
            OwnedInput::Lookups(lookups) => Input::Lookups(lookups),
            OwnedInput::Repair(repair) => Input::Repair(repair),
        };
        self.step(now, slot, input);
    }

    fn broadcast(&mut self, now: Now, control: Control) {
        for slot in 0..self.actors.len() {
            self.step(now, u32::try_from(slot).expect("fewer than 2³² actors"), Input::Control(control));
        }
    }

    /// One input into one actor, then its actions, then whatever they fed back. Returns the
    /// number of commands handed to the connector.
    fn step(&mut self, now: Now, slot: u32, input: Input<'_>) -> u32 {
        if self.actors.get(slot as usize).is_none() {
            tracing::error!(shard = self.index, slot, "input for an empty slot");
            return 0;
        }
        self.feed(now, slot, input);
        let mut handed = self.apply(now, slot);
        while let Some((slot, input)) = self.feedback.pop() {
            let input = match input {
                OwnedInput::NotSent(command) => Input::NotSent(command),
                OwnedInput::Control(control) => Input::Control(control),
                OwnedInput::Event(event) => Input::Event(event),
                OwnedInput::Outcome(outcome) => Input::Outcome(outcome),
                OwnedInput::Lookups(lookups) => Input::Lookups(lookups),
                OwnedInput::Repair(repair) => Input::Repair(repair),
            };
            self.feed(now, slot, input);
            handed += self.apply(now, slot);
        }
        handed
    }

    /// One input into one actor, recorded in the message's journal entry first.
    fn feed(&mut self, now: Now, slot: u32, input: Input<'_>) {
        let actor = &mut self.actors[slot as usize];
        if let Some(journal) = &self.shared.journal {
            let (account, seq) = (actor.id(), actor.input_seq() + 1);
            match &input {
                Input::Signal { link, .. } => {
                    if let Some(deliveries) = &mut self.entry.deliveries {
                        deliveries.followers.push((account, seq, *link));
                    }
                }
                other => {
                    if let Some(input) = JournalInput::of(other) {
                        self.entry.inputs.push(InputRecord { account, seq, now, input });
                    }
                }
            }
            if self.entry_seq.is_none() {
                self.entry_seq = Some(journal.reserve());
            }
        }
        actor.on_input(now, input, &mut self.actions);
    }

    fn apply(&mut self, now: Now, slot: u32) -> u32 {
        let mut handed = 0;
        let account = self.actors[slot as usize].id();
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Send { command, .. } => {
                    let durable_after = match &self.shared.journal {
                        Some(journal) if journal.write_ahead() => self.entry_seq.unwrap_or(0),
                        _ => 0,
                    };
                    let queued = ConnectorCommand { command, handed_mono_ns: now.mono_ns, durable_after };
                    match self.queues[slot as usize].try_send(queued) {
                        Ok(()) => handed += 1,
                        Err(flume::TrySendError::Full(rejected) | flume::TrySendError::Disconnected(rejected)) => {
                            self.feedback.push((slot, OwnedInput::NotSent(rejected.command)));
                        }
                    }
                }
                Action::Emit(draft) => {
                    let signal = Signal {
                        id: self.shared.ids.next(),
                        origin: Origin::Account(account),
                        created_unix_ms: draft.created_unix_ms,
                        accepted_mono_ns: now.mono_ns,
                        leader_balance: Some(draft.leader_balance),
                        leader_equity: Some(draft.leader_equity),
                        action: draft.action,
                        note: String::new(),
                    };
                    self.emitted.push(signal);
                }
                Action::Flatten { group, reason } => {
                    let id = self.shared.ids.next();
                    let control = Control::Flatten { id, reason, freeze: group };
                    let mut accounts = vec![account];
                    if group {
                        accounts.extend_from_slice(self.shared.map.load().downstream(account));
                    }
                    for target in accounts {
                        self.send_to_account(target, OwnedInput::Control(control));
                    }
                }
                Action::Audit(audit) => self.record(now, account, audit),
            }
        }
        self.actions = actions;
        handed
    }

    fn record(&mut self, now: Now, account: AccountId, audit: Audit) {
        self.counts.count(&audit.event);
        if matches!(audit.event, AuditEvent::Led { .. }) {
            return;
        }
        let seq = self.audit_seq;
        self.audit_seq += 1;
        let shard = u16::try_from(self.index).unwrap_or(u16::MAX);
        self.audits.push(AuditRecord { shard, seq, mono_ns: now.mono_ns, account, audit });
    }

    fn send_to_account(&mut self, account: AccountId, input: OwnedInput) {
        let Some(place) = self.shared.map.load().place(account) else {
            return;
        };
        self.send_to_shard(place.shard, ShardMsg::Input { slot: place.slot, input });
    }

    fn send_to_shard(&mut self, shard: usize, message: ShardMsg) {
        if shard == self.index {
            self.local.push_back(message);
            return;
        }
        if !self.outbox.is_empty() {
            self.outbox.push_back((shard, message));
            return;
        }
        match self.shared.mailboxes[shard].try_send(message) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(message)) => {
                self.counts.add(Counter::MailboxFull, 1);
                self.outbox.push_back((shard, message));
            }
            Err(flume::TrySendError::Disconnected(_)) => {}
        }
    }

    fn flush_outbox(&mut self) {
        while let Some((shard, message)) = self.outbox.pop_front() {
            let mailbox = &self.shared.mailboxes[shard];
            if self.outbox.len() >= OUTBOX_MAX {
                let _ = mailbox.send(message);
                continue;
            }
            match mailbox.try_send(message) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(message)) => {
                    self.outbox.push_front((shard, message));
                    return;
                }
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        }
    }
}
