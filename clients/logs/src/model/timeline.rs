//! One signal's fan-out: each follower's hops (copied, accepted, filled, or skipped and
//! rejected with the reason) with their times relative to the first hop seen.
//!
//! What is measured, and what is not:
//! - live lines carry the engine's monotonic time of the audit record. A shard reads its clock
//!   once per message it handles, so the copies one shard makes for one signal share a time,
//!   and the broker's answers are timed when the shard handles them;
//! - lines read from a file carry the time the engine's telemetry thread wrote them (wall
//!   clock, µs), after the fact and in batches: they order the hops, they do not measure them
//!   finely;
//! - the live stream carries the signal itself (taken or refused, at the engine's acceptance
//!   time, on the same clock): +0 is then the acceptance, and the first copy's offset is the
//!   engine's own fan-out time; files do not, and +0 is the first hop seen.

use std::collections::BTreeMap;

use super::line::HopKind;
use super::store::LogStore;

/// One hop of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HopAt {
    /// What happened.
    pub kind: HopKind,
    /// When, in the timeline's clock (ns).
    pub at_ns: i64,
    /// The reason, or what filled.
    pub detail: Box<str>,
}

/// Which clock the hops are timed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The engine's monotonic clock, per audit record (the live stream).
    EngineMonotonic,
    /// The wall clock of the log writer (files).
    LogWritten,
}

impl Clock {
    /// What the times mean, in a sentence for the UI.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::EngineMonotonic => {
                "Times: the engine's monotonic clock at each audit record (a shard reads it once per message, so \
                 the copies one shard makes for a signal share a time). +0 is the engine's acceptance of the \
                 signal when the stream carried it, else the first hop seen."
            }
            Self::LogWritten => {
                "Times: when the engine's telemetry thread wrote each line (wall clock, µs, in batches) — they \
                 order the hops but do not measure them finely. +0 is the first hop seen."
            }
        }
    }
}

/// One follower's row of the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerHops {
    /// The account's key in the store.
    pub account: u32,
    /// Hops in the order they happened.
    pub hops: Vec<HopAt>,
}

impl FollowerHops {
    /// The time from the first hop of this kind to the first of `to`, ns.
    pub fn between(&self, from: HopKind, to: HopKind) -> Option<i64> {
        let start = self.hops.iter().find(|h| h.kind == from)?.at_ns;
        let end = self.hops.iter().find(|h| h.kind == to)?.at_ns;
        Some(end - start)
    }

    /// The last hop: how the copy ended so far.
    pub fn outcome(&self) -> Option<&HopAt> {
        self.hops.last()
    }
}

/// A signal's hops, assembled from the lines of a store and extended as lines arrive.
#[derive(Clone, Debug)]
pub struct Timeline {
    signal: u64,
    /// The signal's own hop (taken or refused), when a line carried it.
    taken: Option<HopAt>,
    followers: BTreeMap<u32, Vec<HopAt>>,
    scanned_to: u64,
    clock: Clock,
}

impl Timeline {
    /// An empty timeline of `signal`.
    pub fn new(signal: u64) -> Self {
        Self { signal, taken: None, followers: BTreeMap::new(), scanned_to: 0, clock: Clock::LogWritten }
    }

    /// The signal.
    pub fn signal(&self) -> u64 {
        self.signal
    }

    /// The clock the hops are timed with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Adds the hops of lines that arrived since the last call. Hops of lines the store has
    /// already dropped stay.
    pub fn sync(&mut self, store: &LogStore) {
        for (_, line) in store.since(self.scanned_to) {
            if line.signal != self.signal {
                continue;
            }
            let Some(hop) = &line.hop else { continue };
            if line.mono_ns.is_some() {
                self.clock = Clock::EngineMonotonic;
            }
            if matches!(hop.kind, HopKind::SignalTaken | HopKind::SignalRefused) {
                self.taken = Some(HopAt { kind: hop.kind, at_ns: line.timeline_ns(), detail: hop.detail.clone() });
                continue;
            }
            let Some(account) = line.account else { continue };
            let hops = self.followers.entry(account).or_default();
            let at = HopAt { kind: hop.kind, at_ns: line.timeline_ns(), detail: hop.detail.clone() };
            // Lines come in order; keep the hops ordered by time should a clock tie-break differ.
            let position = hops.partition_point(|h| h.at_ns <= at.at_ns);
            hops.insert(position, at);
        }
        self.scanned_to = store.end_number();
    }

    /// The timeline's +0, ns: the signal's acceptance when a line carried it, else the first hop.
    pub fn origin_ns(&self) -> Option<i64> {
        self.taken
            .as_ref()
            .map(|h| h.at_ns)
            .or_else(|| self.followers.values().filter_map(|hops| hops.first()).map(|h| h.at_ns).min())
    }

    /// The signal's own hop (taken, or refused with the reason), relative to +0.
    pub fn signal_hop(&self) -> Option<HopAt> {
        let origin = self.origin_ns().unwrap_or(0);
        self.taken.as_ref().map(|h| HopAt { at_ns: h.at_ns - origin, ..h.clone() })
    }

    /// The time of the last hop relative to the first, ns.
    pub fn span_ns(&self) -> i64 {
        let last = self.followers.values().filter_map(|hops| hops.last()).map(|h| h.at_ns).max();
        match (self.origin_ns(), last) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        }
    }

    /// Followers with their hops, relative to the first hop (+0), ordered by their first hop
    /// and then by account.
    pub fn followers(&self) -> Vec<FollowerHops> {
        let origin = self.origin_ns().unwrap_or(0);
        let mut rows: Vec<FollowerHops> = self
            .followers
            .iter()
            .map(|(account, hops)| FollowerHops {
                account: *account,
                hops: hops.iter().map(|h| HopAt { at_ns: h.at_ns - origin, ..h.clone() }).collect(),
            })
            .collect();
        rows.sort_by_key(|row| (row.hops.first().map_or(i64::MAX, |h| h.at_ns), row.account));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::line::{Hop, Level, Line};

    fn hop_line(account: u32, signal: u64, kind: HopKind, mono_ns: u64, detail: &str) -> Line {
        Line {
            unix_ns: 0,
            mono_ns: Some(mono_ns),
            level: Level::Info,
            account: Some(account),
            signal,
            text: kind.label().into(),
            hop: Some(Hop { kind, detail: detail.into() }),
        }
    }

    #[test]
    fn hops_are_grouped_by_follower_relative_to_the_first() {
        let mut store = LogStore::default();
        store.push(hop_line(1, 7, HopKind::Copied, 1_000_000, ""));
        store.push(hop_line(2, 7, HopKind::Copied, 1_000_000, ""));
        store.push(hop_line(3, 7, HopKind::Skipped, 1_000_000, "NQ denied"));
        store.push(hop_line(1, 8, HopKind::Copied, 1_100_000, "")); // another signal
        let mut plain = hop_line(2, 7, HopKind::Accepted, 1_200_000, "");
        plain.hop = None; // a line of the signal that is no hop
        store.push(plain);
        store.push(hop_line(1, 7, HopKind::Accepted, 1_350_000, ""));
        let mut timeline = Timeline::new(7);
        timeline.sync(&store);
        store.push(hop_line(2, 7, HopKind::Rejected, 2_000_000, "no margin"));
        store.push(hop_line(1, 7, HopKind::Filled, 3_500_000, "1 at 5000"));
        timeline.sync(&store);

        assert_eq!(timeline.clock(), Clock::EngineMonotonic);
        assert_eq!(timeline.origin_ns(), Some(1_000_000));
        assert_eq!(timeline.span_ns(), 2_500_000);
        let rows = timeline.followers();
        assert_eq!(rows.iter().map(|r| r.account).collect::<Vec<_>>(), [1, 2, 3]);
        let kinds = |row: &FollowerHops| row.hops.iter().map(|h| (h.kind, h.at_ns)).collect::<Vec<_>>();
        assert_eq!(kinds(&rows[0]), [(HopKind::Copied, 0), (HopKind::Accepted, 350_000), (HopKind::Filled, 2_500_000)]);
        assert_eq!(kinds(&rows[1]), [(HopKind::Copied, 0), (HopKind::Rejected, 1_000_000)]);
        assert_eq!(timeline.signal_hop(), None, "no line carried the signal itself");
        assert_eq!(rows[1].outcome().unwrap().detail.as_ref(), "no margin");
        assert_eq!(rows[2].outcome().unwrap().kind, HopKind::Skipped);
        assert_eq!(rows[0].between(HopKind::Copied, HopKind::Filled), Some(2_500_000));
        assert_eq!(rows[2].between(HopKind::Copied, HopKind::Filled), None);
    }

    #[test]
    fn hops_outlive_the_lines_the_store_drops() {
        let mut store = LogStore::with_capacity(2);
        let mut timeline = Timeline::new(9);
        store.push(hop_line(1, 9, HopKind::Copied, 10, ""));
        timeline.sync(&store);
        for n in 0..5 {
            store.push(hop_line(1, 100 + n, HopKind::Copied, 20, ""));
        }
        store.push(hop_line(1, 9, HopKind::Filled, 30, ""));
        timeline.sync(&store);
        let rows = timeline.followers();
        assert_eq!(rows[0].hops.len(), 2);
        assert_eq!(rows[0].between(HopKind::Copied, HopKind::Filled), Some(20));
    }

    #[test]
    fn the_signals_own_line_is_the_timelines_zero() {
        let mut store = LogStore::default();
        let mut taken = hop_line(0, 7, HopKind::SignalTaken, 900_000, "");
        taken.account = None;
        store.push(taken);
        store.push(hop_line(1, 7, HopKind::Copied, 1_000_000, ""));
        store.push(hop_line(1, 7, HopKind::Filled, 1_400_000, "1 at 5000"));
        let mut timeline = Timeline::new(7);
        timeline.sync(&store);
        assert_eq!(timeline.origin_ns(), Some(900_000));
        assert_eq!(timeline.signal_hop().map(|h| (h.kind, h.at_ns)), Some((HopKind::SignalTaken, 0)));
        let rows = timeline.followers();
        assert_eq!(rows.len(), 1, "the signal's line is no follower");
        let kinds: Vec<_> = rows[0].hops.iter().map(|h| (h.kind, h.at_ns)).collect();
        assert_eq!(kinds, [(HopKind::Copied, 100_000), (HopKind::Filled, 500_000)], "from the acceptance");
        assert_eq!(timeline.span_ns(), 500_000);
    }
}
