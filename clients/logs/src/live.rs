//! Folding the state stream into log lines: no I/O, no clock read (the caller passes the time
//! an update arrived), so it is tested by replaying updates.
//!
//! - Account names come with the accounts topic and name the lines' accounts.
//! - Each audit record reaches the stream as its structured events (order, fill, copy status)
//!   followed by its log line, all with the same account and signal. The structured events
//!   classify the line as a fan-out hop (copied, accepted, filled, skipped or rejected with the
//!   reason); the line's monotonic time times it.
//! - Log lines carry only the engine's monotonic time (ns since the engine started). To show a
//!   wall-clock time, the first line of each epoch is placed at the time it arrived; later lines
//!   keep their exact spacing from it. Shown times are thus late by that first line's delivery
//!   delay (milliseconds on a LAN); latencies use the monotonic time and are exact.
//! - A fresh snapshot in the middle of a subscription (the viewer fell behind, or the server
//!   lost records) means the log lines in between are not on the stream: it is recorded as a
//!   gap, never papered over.

use mirror_model::{Price, Qty};
use mirror_sdk::{CopyState, DeltaEvent, LogLevel, OrderStatus, SignalState, SnapshotReason, StateUpdate};

use crate::model::line::{Hop, HopKind, Line};
use crate::model::store::LogStore;

/// Gaps kept with their details (the rest are only counted).
const GAPS_KEPT: usize = 20;

/// Log lines the stream could not deliver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Numbered changes skipped (log lines among them).
    pub changes: u64,
    /// Why the server started again from a snapshot.
    pub reason: SnapshotReason,
}

#[derive(Clone, Debug)]
struct PendingHop {
    account: u32,
    signal: u64,
    kind: HopKind,
    detail: String,
}

/// Turns state updates into lines of a [`LogStore`].
#[derive(Debug, Default)]
pub struct LiveFold {
    /// (epoch, offset): a line's wall time is its monotonic time plus the offset.
    anchor: Option<(u64, i64)>,
    epoch: Option<u64>,
    /// The last sequence number applied.
    seq: Option<u64>,
    pending: Option<PendingHop>,
    gaps: Vec<Gap>,
    gap_count: u64,
    changes_missed: u64,
    lines: u64,
    /// When the first line arrived, Unix ns.
    first_line_unix_ns: Option<i64>,
}

fn order_hop(status: OrderStatus) -> Option<HopKind> {
    Some(match status {
        OrderStatus::Accepted => HopKind::Accepted,
        OrderStatus::Rejected => HopKind::Rejected,
        OrderStatus::NotSent => HopKind::NotSent,
        OrderStatus::Cancelled => HopKind::Cancelled,
        OrderStatus::Expired => HopKind::Expired,
        OrderStatus::Unknown => HopKind::Unknown,
        OrderStatus::Filled => HopKind::Filled,
        OrderStatus::PartlyFilled => HopKind::PartlyFilled,
        // Sent (a copy, a close, a resend or a correction): the copy status that follows says
        // which; alone it is ambiguous and left unclassified.
        OrderStatus::Submitted => return None,
    })
}

impl LiveFold {
    /// Applies one update; `now_unix_ns` is when it arrived. Returns the lines added.
    pub fn apply(&mut self, update: &StateUpdate, now_unix_ns: i64, store: &mut LogStore) -> usize {
        match update {
            StateUpdate::Snapshot(snapshot) => {
                if let Some(seq) = self.seq
                    && self.epoch == Some(snapshot.epoch)
                    && snapshot.seq > seq
                {
                    self.record_gap(snapshot.seq - seq, snapshot.reason);
                } else if self.seq.is_some() && self.epoch != Some(snapshot.epoch) {
                    // The engine restarted: a new epoch, a new monotonic clock.
                    self.record_gap(snapshot.seq, snapshot.reason);
                }
                self.epoch = Some(snapshot.epoch);
                self.seq = Some(snapshot.seq);
                self.pending = None;
                for account in &snapshot.accounts {
                    store.set_account_name(account.id, &account.name);
                }
                0
            }
            StateUpdate::Deltas(deltas) => {
                self.epoch = Some(deltas.epoch);
                self.seq = Some(deltas.last_seq);
                let before = self.lines;
                for delta in &deltas.events {
                    self.event(&delta.event, deltas.epoch, now_unix_ns, store);
                }
                usize::try_from(self.lines - before).unwrap_or(usize::MAX)
            }
            StateUpdate::Heartbeat { .. } | StateUpdate::Reconnected { .. } => 0,
        }
    }

    fn record_gap(&mut self, changes: u64, reason: SnapshotReason) {
        self.gap_count += 1;
        self.changes_missed += changes;
        if self.gaps.len() < GAPS_KEPT {
            self.gaps.push(Gap { changes, reason });
        }
    }

    fn set_pending(&mut self, account: u32, signal: u64, kind: HopKind, detail: String) {
        self.pending = Some(PendingHop { account, signal, kind, detail });
    }

    fn pending_for(&mut self, account: u32, signal: u64) -> Option<&mut PendingHop> {
        self.pending.as_mut().filter(|p| p.account == account && p.signal == signal)
    }

    fn event(&mut self, event: &DeltaEvent, epoch: u64, now_unix_ns: i64, store: &mut LogStore) {
        match event {
            DeltaEvent::Account(account) => store.set_account_name(account.id, &account.name),
            DeltaEvent::Fill(fill) => {
                let detail = format!("{} at {}", Qty::from_raw(fill.qty), Price::from_raw(fill.price));
                self.set_pending(fill.account, fill.signal, HopKind::Filled, detail);
            }
            DeltaEvent::Order(order) => {
                let Some(kind) = order_hop(order.status) else { return };
                if let Some(pending) = self.pending_for(order.account, order.signal) {
                    // A fill's order says whether it filled completely.
                    if pending.kind == HopKind::Filled && kind == HopKind::PartlyFilled {
                        pending.kind = HopKind::PartlyFilled;
                    }
                    return;
                }
                self.set_pending(order.account, order.signal, kind, order.reason.clone());
            }
            DeltaEvent::Copy(copy) => {
                if let Some(pending) = self.pending_for(copy.account, copy.signal)
                    && matches!(pending.kind, HopKind::Filled | HopKind::PartlyFilled)
                {
                    return;
                }
                let (kind, detail) = match copy.state {
                    CopyState::Copied => (HopKind::Copied, String::new()),
                    CopyState::Closing => (HopKind::Closing, String::new()),
                    CopyState::Skipped => (HopKind::Skipped, copy.detail.clone()),
                    CopyState::Rejected => (HopKind::Rejected, copy.detail.clone()),
                    CopyState::Filled => (HopKind::Filled, String::new()),
                };
                self.set_pending(copy.account, copy.signal, kind, detail);
            }
            DeltaEvent::Signal(signal) => {
                let offset = self.anchor_offset(epoch, now_unix_ns, signal.mono_ns);
                let (kind, level, text) = if signal.refused.is_empty() {
                    (HopKind::SignalTaken, LogLevel::Info, format!("signal taken: {}", signal_words(signal)))
                } else {
                    let text = format!("signal refused: {}: {}", signal_words(signal), signal.refused);
                    (HopKind::SignalRefused, LogLevel::Warn, text)
                };
                let unix_ns = i64::try_from(signal.mono_ns).unwrap_or(i64::MAX).saturating_add(offset);
                self.first_line_unix_ns.get_or_insert(unix_ns);
                store.push(Line {
                    unix_ns,
                    mono_ns: Some(signal.mono_ns),
                    level: level.into(),
                    // A leader's trade is a line of the leader account; a source's, of none.
                    account: (signal.leader_account != 0).then_some(signal.leader_account),
                    signal: signal.signal,
                    text: text.into(),
                    hop: Some(Hop { kind, detail: signal.refused.as_str().into() }),
                });
                self.lines += 1;
            }
            DeltaEvent::Log(log) => {
                let offset = self.anchor_offset(epoch, now_unix_ns, log.mono_ns);
                let hop = match self.pending.take() {
                    Some(p) if p.account == log.account && p.signal == log.signal && log.signal != 0 => {
                        Some(Hop { kind: p.kind, detail: p.detail.into() })
                    }
                    _ => None,
                };
                let unix_ns = i64::try_from(log.mono_ns).unwrap_or(i64::MAX).saturating_add(offset);
                self.first_line_unix_ns.get_or_insert(unix_ns);
                store.push(Line {
                    unix_ns,
                    mono_ns: Some(log.mono_ns),
                    level: log.level.into(),
                    account: Some(log.account),
                    signal: log.signal,
                    text: log.text.as_str().into(),
                    hop,
                });
                self.lines += 1;
            }
            DeltaEvent::Position(_) | DeltaEvent::Latency(_) | DeltaEvent::Quote(_) => {}
        }
    }

    /// Engine monotonic time to wall clock: anchored at the first timed event of an epoch.
    fn anchor_offset(&mut self, epoch: u64, now_unix_ns: i64, mono_ns: u64) -> i64 {
        match self.anchor {
            Some((anchored, offset)) if anchored == epoch => offset,
            _ => {
                let offset = now_unix_ns.saturating_sub(i64::try_from(mono_ns).unwrap_or(i64::MAX));
                self.anchor = Some((epoch, offset));
                offset
            }
        }
    }

    /// The epoch and last sequence number applied, once the first snapshot came.
    pub fn position(&self) -> Option<(u64, u64)> {
        self.epoch.zip(self.seq)
    }

    /// How many times the stream restarted from a snapshot mid-way, the numbered changes
    /// skipped in all, and the first of those gaps.
    pub fn gaps(&self) -> (u64, u64, &[Gap]) {
        (self.gap_count, self.changes_missed, &self.gaps)
    }

    /// The (wall-clock placed) time of the first line received.
    pub fn first_line_unix_ns(&self) -> Option<i64> {
        self.first_line_unix_ns
    }
}

/// What a signal asked: `open buy 2 ES (source 563151331)`.
fn signal_words(signal: &SignalState) -> String {
    let mut words = vec![signal.action.clone()];
    if let Some(side) = signal.side {
        words.push(if side == mirror_sdk::Side::Buy { "buy" } else { "sell" }.to_owned());
    }
    if signal.qty != 0 {
        words.push(Qty::from_raw(signal.qty).to_string());
    }
    if !signal.symbol.is_empty() {
        words.push(signal.symbol.clone());
    }
    if signal.position != 0 {
        words.push(format!("position {}", signal.position));
    }
    words.push(if signal.leader_account != 0 {
        "(its trade)".to_owned()
    } else {
        format!("(source {})", signal.source)
    });
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_sdk::{
        AccountState, CopyStatus, Delta, Deltas, FillState, LatencyStats, LogLevel, LogLine, OrderState, Snapshot,
    };

    fn account(id: u32, name: &str) -> AccountState {
        AccountState {
            id,
            name: name.into(),
            balance: 0,
            equity: 0,
            positions: 0,
            live_orders: 0,
            mode: "normal".into(),
            paused: false,
            connected: true,
        }
    }

    fn snapshot(epoch: u64, seq: u64, reason: SnapshotReason) -> StateUpdate {
        StateUpdate::Snapshot(Box::new(Snapshot {
            epoch,
            seq,
            reason,
            accounts: vec![account(1, "f1"), account(2, "f2")],
            positions: vec![],
            orders: vec![],
            fills: vec![],
            copy: vec![],
            latency: LatencyStats::default(),
            quotes: vec![],
        }))
    }

    fn log(account: u32, signal: u64, mono_ns: u64, text: &str) -> DeltaEvent {
        DeltaEvent::Log(LogLine { level: LogLevel::Info, account, signal, text: text.into(), mono_ns })
    }

    fn order(account: u32, signal: u64, status: OrderStatus, reason: &str) -> DeltaEvent {
        DeltaEvent::Order(OrderState {
            account,
            client_id: format!("m{signal}.{account}.0"),
            signal,
            symbol: "ES".into(),
            side: None,
            position: None,
            qty: 100_000_000,
            filled: 0,
            status,
            reason: reason.into(),
        })
    }

    fn copy(account: u32, signal: u64, state: CopyState, detail: &str) -> DeltaEvent {
        DeltaEvent::Copy(CopyStatus { account, signal, state, detail: detail.into() })
    }

    fn deltas(epoch: u64, first_seq: u64, events: Vec<DeltaEvent>) -> StateUpdate {
        let last_seq = first_seq + events.len() as u64 - 1;
        let events = events.into_iter().zip(first_seq..).map(|(event, seq)| Delta { seq, event }).collect();
        StateUpdate::Deltas(Deltas { epoch, first_seq, last_seq, events })
    }

    fn signal(signal: u64, leader_account: u32, source: u32, refused: &str) -> DeltaEvent {
        DeltaEvent::Signal(SignalState {
            signal,
            leader_account,
            source,
            action: "open".into(),
            symbol: "NQ".into(),
            side: Some(mirror_sdk::Side::Sell),
            qty: 200_000_000,
            position: 0,
            note: String::new(),
            created_unix_ms: 0,
            mono_ns: 4_000_000,
            refused: refused.into(),
        })
    }

    #[test]
    fn a_signal_is_a_line_of_its_leader_or_of_no_account_with_its_own_hop() {
        let mut store = LogStore::default();
        let mut fold = LiveFold::default();
        fold.apply(&snapshot(3, 10, SnapshotReason::Initial), 0, &mut store);
        let events = vec![signal(20, 1, 0, ""), signal(21, 0, 9, "unknown symbol NQ for src#9")];
        fold.apply(&deltas(3, 11, events), 1_000_000_000, &mut store);
        let lines: Vec<&Line> = store.since(0).map(|(_, line)| line).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].account, lines[0].signal, lines[0].mono_ns), (Some(1), 20, Some(4_000_000)));
        assert_eq!(&*lines[0].text, "signal taken: open sell 2 NQ (its trade)");
        assert_eq!(lines[0].hop.as_ref().map(|h| h.kind), Some(HopKind::SignalTaken));
        assert_eq!((lines[1].account, lines[1].level), (None, LogLevel::Warn.into()));
        assert_eq!(&*lines[1].text, "signal refused: open sell 2 NQ (source 9): unknown symbol NQ for src#9");
        let hop = lines[1].hop.as_ref().unwrap();
        assert_eq!((hop.kind, &*hop.detail), (HopKind::SignalRefused, "unknown symbol NQ for src#9"));
    }

    #[test]
    fn records_become_lines_classified_by_their_events_and_timed_by_the_engine() {
        let mut store = LogStore::default();
        let mut fold = LiveFold::default();
        fold.apply(&snapshot(3, 10, SnapshotReason::Initial), 0, &mut store);
        let fill = DeltaEvent::Fill(FillState {
            account: 1,
            client_id: "m7.1.0".into(),
            signal: 7,
            qty: 100_000_000,
            price: 500_025_000_000,
            position: 5,
            mono_ns: 9_000_000,
        });
        let events = vec![
            order(1, 7, OrderStatus::Submitted, ""),
            copy(1, 7, CopyState::Copied, "m7.1.0"),
            log(1, 7, 5_000_000, "f1: copied buy 1 ES as m7.1.0"),
            copy(2, 7, CopyState::Skipped, "symbol NQ is denied"),
            log(2, 7, 5_000_000, "f2: skipped open: symbol NQ is denied"),
            order(1, 7, OrderStatus::Accepted, ""),
            log(1, 7, 6_500_000, "f1: m7.1.0 accepted as b1"),
            fill,
            order(1, 7, OrderStatus::Filled, ""),
            copy(1, 7, CopyState::Filled, "m7.1.0"),
            log(1, 7, 9_000_000, "f1: m7.1.0 filled 1 at 5000.25"),
            DeltaEvent::Account(account(3, "f3")),
            log(3, 0, 9_500_000, "f3: connection Up"),
        ];
        let added = fold.apply(&deltas(3, 11, events), 1_800_000_000_000_000_000, &mut store);
        assert_eq!(added, 5);
        let lines: Vec<&Line> = store.since(0).map(|(_, line)| line).collect();
        let hops: Vec<Option<(HopKind, &str)>> =
            lines.iter().map(|l| l.hop.as_ref().map(|h| (h.kind, h.detail.as_ref()))).collect();
        assert_eq!(
            hops,
            [
                Some((HopKind::Copied, "")),
                Some((HopKind::Skipped, "symbol NQ is denied")),
                Some((HopKind::Accepted, "")),
                Some((HopKind::Filled, "1 at 5000.25")),
                None,
            ]
        );
        // The first line is placed at its arrival; the rest keep their monotonic spacing.
        assert_eq!(lines[0].unix_ns, 1_800_000_000_000_000_000);
        assert_eq!(lines[3].unix_ns - lines[0].unix_ns, 4_000_000);
        assert_eq!(lines[3].mono_ns, Some(9_000_000));
        assert_eq!(store.account_name(3), "f3");
        assert_eq!(store.account_name(2), "f2");
        assert_eq!(fold.gaps().0, 0);
    }

    #[test]
    fn a_partial_fill_and_a_rejection_carry_their_state_and_reason() {
        let mut store = LogStore::default();
        let mut fold = LiveFold::default();
        let fill = DeltaEvent::Fill(FillState {
            account: 1,
            client_id: "m8.1.0".into(),
            signal: 8,
            qty: 50_000_000,
            price: 100_000_000,
            position: 1,
            mono_ns: 2,
        });
        let events = vec![
            fill,
            order(1, 8, OrderStatus::PartlyFilled, ""),
            copy(1, 8, CopyState::Filled, "m8.1.0"),
            log(1, 8, 2, "f1: m8.1.0 filled 0.5 at 1"),
            order(2, 8, OrderStatus::Rejected, "NO MONEY"),
            copy(2, 8, CopyState::Rejected, "NO MONEY"),
            log(2, 8, 3, "f2: m8.2.0 rejected: NO MONEY"),
            // An order event for another record must not classify a line of another signal.
            order(1, 9, OrderStatus::Accepted, ""),
            log(1, 10, 4, "f1: something else"),
        ];
        fold.apply(&deltas(1, 1, events), 0, &mut store);
        let hops: Vec<Option<(HopKind, String)>> =
            store.since(0).map(|(_, l)| l.hop.as_ref().map(|h| (h.kind, h.detail.to_string()))).collect();
        assert_eq!(
            hops,
            [
                Some((HopKind::PartlyFilled, "0.5 at 1".to_owned())),
                Some((HopKind::Rejected, "NO MONEY".to_owned())),
                None,
            ]
        );
    }

    #[test]
    fn a_fresh_snapshot_mid_stream_is_a_gap() {
        let mut store = LogStore::default();
        let mut fold = LiveFold::default();
        fold.apply(&snapshot(1, 10, SnapshotReason::Initial), 0, &mut store);
        fold.apply(&deltas(1, 11, vec![log(1, 0, 1, "a")]), 0, &mut store);
        fold.apply(&snapshot(1, 500, SnapshotReason::Lagged), 0, &mut store);
        let (count, missed, gaps) = fold.gaps();
        assert_eq!((count, missed), (1, 489));
        assert_eq!(gaps[0], Gap { changes: 489, reason: SnapshotReason::Lagged });
        // A new epoch (the engine restarted) re-anchors the clock.
        fold.apply(&snapshot(2, 3, SnapshotReason::ResumeUnavailable), 0, &mut store);
        fold.apply(&deltas(2, 4, vec![log(1, 0, 10, "b")]), 1_000, &mut store);
        assert_eq!(fold.gaps().0, 2);
        assert_eq!(store.get(1).unwrap().unix_ns, 1_000);
    }
}
