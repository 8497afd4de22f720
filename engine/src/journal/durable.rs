//! The durable watermark: every log position up to it is on disk. Threads wait on it with a
//! condition variable, tasks with a watch channel; both wake on each group commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::JournalError;

#[derive(Debug)]
pub(super) struct Watermark {
    durable: AtomicU64,
    failure: Mutex<Option<String>>,
    lock: Mutex<()>,
    changed: Condvar,
    watch: tokio::sync::watch::Sender<u64>,
}

impl Watermark {
    pub(super) fn new(durable: u64) -> Self {
        Self {
            durable: AtomicU64::new(durable),
            failure: Mutex::new(None),
            lock: Mutex::new(()),
            changed: Condvar::new(),
            watch: tokio::sync::watch::Sender::new(durable),
        }
    }

    pub(super) fn get(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Everything up to `durable` is on disk.
    pub(super) fn advance(&self, durable: u64) {
        self.durable.fetch_max(durable, Ordering::AcqRel);
        self.watch.send_replace(self.get());
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.changed.notify_all();
    }

    /// The journal can no longer write: every waiter gives up with this reason.
    pub(super) fn fail(&self, reason: String) {
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        // Wake tasks: the value does not move, but they re-check the failure.
        self.watch.send_modify(|_| {});
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.changed.notify_all();
    }

    pub(super) fn failure(&self) -> Option<JournalError> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone().map(JournalError::Failed)
    }

    /// Blocks until `seq` is durable, the journal fails, or `timeout` passes.
    pub(super) fn wait(&self, seq: u64, timeout: Duration) -> Result<(), JournalError> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.get() >= seq {
                return Ok(());
            }
            if let Some(error) = self.failure() {
                return Err(error);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JournalError::NotDurable { seq, waited: timeout });
            }
            guard = self.changed.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Waits (asynchronously) until `seq` is durable or the journal fails.
    pub(super) async fn wait_async(&self, seq: u64) -> Result<(), JournalError> {
        if self.get() >= seq {
            return Ok(());
        }
        let mut receiver = self.watch.subscribe();
        loop {
            if self.get() >= seq {
                return Ok(());
            }
            if let Some(error) = self.failure() {
                return Err(error);
            }
            if receiver.changed().await.is_err() {
                return Err(JournalError::Failed("the journal writer stopped".into()));
            }
        }
    }
}
