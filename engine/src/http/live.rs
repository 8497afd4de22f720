//! The HTTP server's view of the live state: the same hub that feeds the QUIC gateway's state
//! streams (a replica folded from the engine's audit records and account polls, numbered
//! deltas, snapshots), plus a board of recent signals and what became of each on every
//! follower, folded from the hub's copy events.
//!
//! The REST routes read a fresh snapshot from the hub per request; each WebSocket subscriber
//! is a hub subscriber with its own bounded queue (see [`crate::gateway::state`] for the
//! policies: a subscriber that falls behind is dropped from the broadcast and starts again
//! from a snapshot; the engine never waits for it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mirror_wire::proto::{CopyStatus, DeltaEvent, Snapshot, SnapshotReason};
use tokio::sync::watch;

use crate::gateway::GatewayLimits;
use crate::gateway::state::{HubHandle, Registration, Start, spawn_hub};
use crate::runtime::EngineHandle;

/// Signals whose copy status is kept; the oldest (lowest id) is forgotten first.
pub(crate) const SIGNALS_KEPT: usize = 10_000;

/// What became of one signal on each follower (the latest status per follower).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SignalCopies {
    pub(crate) by_account: BTreeMap<u32, CopyStatus>,
}

/// Recent signals' copy status, bounded.
#[derive(Debug, Default)]
pub(crate) struct SignalBoard {
    signals: BTreeMap<u64, SignalCopies>,
}

impl SignalBoard {
    fn record(&mut self, status: &CopyStatus) {
        if status.signal == 0 {
            return;
        }
        if !self.signals.contains_key(&status.signal)
            && self.signals.len() >= SIGNALS_KEPT
            && let Some(oldest) = self.signals.keys().next().copied()
        {
            if oldest > status.signal {
                return; // older than everything kept: it would be the next one forgotten
            }
            self.signals.remove(&oldest);
        }
        self.signals.entry(status.signal).or_default().by_account.insert(status.account, status.clone());
    }

    /// One signal's copies, if kept.
    pub(crate) fn get(&self, signal: u64) -> Option<SignalCopies> {
        self.signals.get(&signal).cloned()
    }

    /// The latest `limit` signals, newest first.
    pub(crate) fn latest(&self, limit: usize) -> Vec<(u64, SignalCopies)> {
        self.signals.iter().rev().take(limit).map(|(id, copies)| (*id, copies.clone())).collect()
    }
}

/// The live state, shared by the workers.
pub(crate) struct Live {
    hub: HubHandle,
    board: Arc<Mutex<SignalBoard>>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// How long a REST read waits for the hub.
    read_timeout: Duration,
}

impl Live {
    /// Starts a hub on the engine and the task that folds the signal board.
    pub(crate) fn start(engine: EngineHandle, limits: GatewayLimits) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let read_timeout = limits.submit_timeout;
        let (hub, hub_task) = spawn_hub(engine, limits, shutdown_rx.clone());
        let board = Arc::new(Mutex::new(SignalBoard::default()));
        let fold = tokio::spawn(fold_board(hub.clone(), Arc::clone(&board), shutdown_rx));
        Self { hub, board, shutdown, tasks: Mutex::new(vec![hub_task, fold]), read_timeout }
    }

    /// The hub, for stream subscribers.
    pub(crate) fn hub(&self) -> &HubHandle {
        &self.hub
    }

    /// A stop signal for stream subscribers.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The state now (every topic), or `None` when the hub does not answer in time.
    pub(crate) async fn snapshot(&self) -> Option<Snapshot> {
        let registration =
            tokio::time::timeout(self.read_timeout, self.hub.subscribe(None, SnapshotReason::Initial)).await.ok()??;
        match registration.start {
            Start::Snapshot(snapshot) => Some(*snapshot),
            Start::Replay(_) => None,
        }
    }

    /// The signal board.
    pub(crate) fn board(&self) -> std::sync::MutexGuard<'_, SignalBoard> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the hub and the board's task.
    pub(crate) async fn stop(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn fold_board(hub: HubHandle, board: Arc<Mutex<SignalBoard>>, mut shutdown: watch::Receiver<bool>) {
    let mut reason = SnapshotReason::Initial;
    loop {
        let Some(registration) = hub.subscribe(None, reason).await else { return };
        if let Start::Snapshot(snapshot) = &registration.start {
            let mut board = board.lock().unwrap_or_else(PoisonError::into_inner);
            for status in &snapshot.copy {
                board.record(status);
            }
        }
        match follow(&registration, &board, &mut shutdown).await {
            Some(again) => reason = again,
            None => return,
        }
    }
}

/// Folds copy events until the hub drops this subscriber (why, to start again) or stops.
async fn follow(
    registration: &Registration,
    board: &Mutex<SignalBoard>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<SnapshotReason> {
    loop {
        let batch = tokio::select! {
            biased;
            _ = shutdown.changed() => return None,
            batch = registration.live.recv_async() => batch,
        };
        let Ok(batch) = batch else { return registration.restart_reason() };
        let mut board = board.lock().unwrap_or_else(PoisonError::into_inner);
        for delta in batch.iter() {
            if let DeltaEvent::Copy(status) = &delta.event {
                board.record(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_wire::proto::CopyState;

    fn status(signal: u64, account: u32, state: CopyState) -> CopyStatus {
        CopyStatus { account, signal, state, detail: String::new() }
    }

    #[test]
    fn the_board_keeps_the_latest_status_per_follower_and_forgets_the_oldest_signals() {
        let mut board = SignalBoard::default();
        board.record(&status(5, 1, CopyState::Copied));
        board.record(&status(5, 1, CopyState::Filled));
        board.record(&status(5, 2, CopyState::Skipped));
        let copies = board.get(5).unwrap();
        assert_eq!(copies.by_account[&1].state, CopyState::Filled);
        assert_eq!(copies.by_account[&2].state, CopyState::Skipped);
        for signal in 6..(6 + SIGNALS_KEPT as u64) {
            board.record(&status(signal, 1, CopyState::Copied));
        }
        assert_eq!(board.signals.len(), SIGNALS_KEPT);
        assert!(board.get(5).is_none(), "the oldest went first");
        board.record(&status(1, 1, CopyState::Copied));
        assert!(board.get(1).is_none(), "older than everything kept");
        assert_eq!(
            board.latest(2).iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [SIGNALS_KEPT as u64 + 5, SIGNALS_KEPT as u64 + 4]
        );
    }
}
