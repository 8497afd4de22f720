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
use std::time::Duration;

use mirror_model::{AccountId, Origin, Signal, SignalId};
use mirror_wire::SharedSignal;

use super::{ConnectorCommand, OwnedInput, ShardMsg, Shared};
use crate::account::{AccountActor, Action, Audit, AuditEvent, Control, Input, Now};
use crate::router::Target;
use crate::telemetry::{AuditRecord, Counter, FanoutDone, LocalCounts, TelemetryBatch, TelemetryMsg};

/// How long a parked shard sleeps before it looks at its clock-driven duties.
const IDLE_WAKE: Duration = Duration::from_millis(100);

/// Cross-shard messages a shard parks before it, too, waits (only reached when a peer is a
/// million messages behind).
const OUTBOX_MAX: usize = 1_000_000;

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
        }
    }

    pub(super) fn run(mut self) {
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

    /// Clock-driven work: the trading day's start.
    fn duties(&mut self) {
        let now = self.shared.clock.now();
        if now.unix_ms >= self.next_day_unix_ms {
            self.next_day_unix_ms = self.shared.next_day_start(now.unix_ms);
            self.broadcast(now, Control::NewDay);
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
            ShardMsg::Stop => {
                self.flush_telemetry();
                return false;
            }
        }
        self.flush_telemetry();
        self.duties_if_due();
        true
    }

    fn duties_if_due(&mut self) {
        // Cheap check on the hot path: only every few hundred messages would a clock read
        // matter, and the idle path catches the rest.
        if self.local.is_empty() && self.inbox.is_empty() {
            self.duties();
        }
    }

    /// The archived bytes, shared by every shard, are read in place once per shard; every
    /// follower on the shard gets the same view of them. (Kept out of line, once per message,
    /// so that profilers can measure exactly the fan-out.)
    #[inline(never)]
    fn fan_out(&mut self, signal: &SharedSignal, targets: &[Target], parts: u16) {
        let now = self.shared.clock.now();
        let view = signal.view();
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
        for (target, signal) in &items {
            let view = signal.view();
            orders += self.step(now, target.slot, Input::Signal { signal: &view, link: target.link });
        }
        self.report_fanout(id, accepted, parts, followers, orders);
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
        let audits = std::mem::replace(&mut self.audits, sink.buffer());
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
        let Some(actor) = self.actors.get_mut(slot as usize) else {
            tracing::error!(shard = self.index, slot, "input for an empty slot");
            return 0;
        };
        actor.on_input(now, input, &mut self.actions);
        let mut handed = self.apply(now, slot);
        while let Some((slot, input)) = self.feedback.pop() {
            let actor = &mut self.actors[slot as usize];
            let input = match input {
                OwnedInput::NotSent(command) => Input::NotSent(command),
                OwnedInput::Control(control) => Input::Control(control),
                OwnedInput::Event(event) => Input::Event(event),
                OwnedInput::Outcome(outcome) => Input::Outcome(outcome),
            };
            actor.on_input(now, input, &mut self.actions);
            handed += self.apply(now, slot);
        }
        handed
    }

    fn apply(&mut self, now: Now, slot: u32) -> u32 {
        let mut handed = 0;
        let account = self.actors[slot as usize].id();
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Send { command, .. } => {
                    let queued = ConnectorCommand { command, handed_mono_ns: now.mono_ns };
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
                    self.dispatch(signal);
                }
                Action::Flatten { group, reason } => {
                    let id = self.shared.ids.next();
                    let control = Control::Flatten { id, reason, freeze: group };
                    let mut accounts = vec![account];
                    if group {
                        accounts.extend_from_slice(self.shared.map.downstream(account));
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

    /// A signal emitted by one of this shard's actors (a leader, or a chain).
    fn dispatch(&mut self, signal: Signal) {
        if let Err(error) = signal.validate() {
            self.shared.refuse(self.index, signal.id, error.to_string());
            return;
        }
        match self.shared.route(self.index, signal) {
            Ok(messages) => {
                for (shard, message) in messages {
                    self.send_to_shard(shard, message);
                }
            }
            Err(error) => tracing::error!(%error, "could not encode a leader signal"),
        }
    }

    fn send_to_account(&mut self, account: AccountId, input: OwnedInput) {
        let Some(place) = self.shared.map.place(account) else {
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
