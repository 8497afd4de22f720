//! The audit feed: audit records as the telemetry thread receives them, for subscribers
//! outside the engine (the QUIC gateway's state streams, a pair's outcome watcher).
//!
//! Off the hot path and never blocking it: the telemetry thread, not a shard, hands each batch
//! (one shared `Arc`, however many subscribers) to every subscriber's bounded queue without
//! waiting. A subscriber whose queue is full misses that batch; the records it missed are
//! counted on its subscription, so that it knows to rebuild its state from a snapshot. Without
//! subscribers a batch costs one atomic load.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::{AuditRecord, LatencySummary, SignalSeen};

/// A batch of audit records, shared by every subscriber.
pub type AuditBatch = Arc<[AuditRecord]>;

#[derive(Debug)]
struct Subscriber {
    sender: flume::Sender<AuditBatch>,
    lost: Arc<AtomicU64>,
}

#[derive(Debug, Default)]
struct Inner {
    subscribers: Mutex<Vec<Subscriber>>,
    count: AtomicUsize,
    signal_subscribers: Mutex<Vec<SignalSubscriber>>,
    signal_count: AtomicUsize,
    latency: Arc<Mutex<LatencySummary>>,
}

#[derive(Debug)]
struct SignalSubscriber {
    sender: flume::Sender<Arc<SignalSeen>>,
    lost: Arc<AtomicU64>,
}

/// One subscriber's end of the signals: each signal the engine takes or refuses.
#[derive(Debug)]
pub struct SignalSubscription {
    receiver: flume::Receiver<Arc<SignalSeen>>,
    lost: Arc<AtomicU64>,
}

/// Where subscribers sign up for audit records. Cloning it clones a pointer.
#[derive(Clone, Debug, Default)]
pub struct AuditFeed {
    inner: Arc<Inner>,
}

/// One subscriber's end of the feed.
#[derive(Debug)]
pub struct AuditSubscription {
    receiver: flume::Receiver<AuditBatch>,
    lost: Arc<AtomicU64>,
}

impl AuditFeed {
    /// A feed that reads the fan-out latency published by its telemetry thread.
    pub(crate) fn new(latency: Arc<Mutex<LatencySummary>>) -> Self {
        Self { inner: Arc::new(Inner { latency, ..Inner::default() }) }
    }

    /// Subscribes with a queue of `capacity` batches (policy when full: the batch is dropped
    /// for this subscriber and its records counted in [`AuditSubscription::take_lost`]).
    /// Dropping the subscription unsubscribes.
    pub fn subscribe(&self, capacity: usize) -> AuditSubscription {
        let (sender, receiver) = flume::bounded(capacity.max(1));
        let lost = Arc::new(AtomicU64::new(0));
        let mut subscribers = self.inner.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.push(Subscriber { sender, lost: Arc::clone(&lost) });
        self.inner.count.store(subscribers.len(), Ordering::Release);
        AuditSubscription { receiver, lost }
    }

    /// Subscribes to signals with a queue of `capacity` (policy when full: the signal is
    /// dropped for this subscriber and counted in [`SignalSubscription::take_lost`]). While
    /// nobody subscribes, the engine does not even copy its signals for the feed.
    pub fn subscribe_signals(&self, capacity: usize) -> SignalSubscription {
        let (sender, receiver) = flume::bounded(capacity.max(1));
        let lost = Arc::new(AtomicU64::new(0));
        let mut subscribers = self.inner.signal_subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.push(SignalSubscriber { sender, lost: Arc::clone(&lost) });
        self.inner.signal_count.store(subscribers.len(), Ordering::Release);
        SignalSubscription { receiver, lost }
    }

    /// Whether anyone subscribes to signals (one atomic load: the engine asks per signal).
    pub(crate) fn wants_signals(&self) -> bool {
        self.inner.signal_count.load(Ordering::Acquire) > 0
    }

    /// Hands a signal to every signal subscriber without waiting (the telemetry thread).
    pub(crate) fn publish_signal(&self, seen: Box<SignalSeen>) {
        if !self.wants_signals() {
            return;
        }
        let seen: Arc<SignalSeen> = Arc::from(seen);
        let mut subscribers = self.inner.signal_subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|subscriber| match subscriber.sender.try_send(Arc::clone(&seen)) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                subscriber.lost.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        });
        self.inner.signal_count.store(subscribers.len(), Ordering::Release);
    }

    /// Subscribers now.
    pub fn subscribers(&self) -> usize {
        self.inner.count.load(Ordering::Acquire)
    }

    /// Fan-out latency (signal accepted → every follower order handed to its connector) over
    /// the telemetry thread's window.
    pub fn fanout_latency(&self) -> LatencySummary {
        *self.inner.latency.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a batch to every subscriber without waiting (the telemetry thread calls this).
    pub(crate) fn publish(&self, audits: &[AuditRecord]) {
        if audits.is_empty() || self.inner.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let batch: AuditBatch = audits.into();
        let mut subscribers = self.inner.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers.retain(|subscriber| match subscriber.sender.try_send(Arc::clone(&batch)) {
            Ok(()) => true,
            Err(flume::TrySendError::Full(_)) => {
                subscriber.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Err(flume::TrySendError::Disconnected(_)) => false,
        });
        self.inner.count.store(subscribers.len(), Ordering::Release);
    }
}

impl SignalSubscription {
    /// The next signal, waiting; `None` once the feed is gone.
    pub async fn recv(&self) -> Option<Arc<SignalSeen>> {
        self.receiver.recv_async().await.ok()
    }

    /// The next signal if one is queued.
    pub fn try_recv(&self) -> Option<Arc<SignalSeen>> {
        self.receiver.try_recv().ok()
    }

    /// Signals missed because the queue was full since the last call (0: none).
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }
}

impl AuditSubscription {
    /// The next batch, waiting; `None` once the feed is gone.
    pub async fn recv(&self) -> Option<AuditBatch> {
        self.receiver.recv_async().await.ok()
    }

    /// The next batch if one is queued.
    pub fn try_recv(&self) -> Option<AuditBatch> {
        self.receiver.try_recv().ok()
    }

    /// Records missed because the queue was full since the last call (0: none).
    pub fn take_lost(&self) -> u64 {
        self.lost.swap(0, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Audit, AuditEvent};
    use mirror_model::AccountId;

    fn record(seq: u64) -> AuditRecord {
        AuditRecord {
            shard: 0,
            seq,
            mono_ns: seq,
            account: AccountId(1),
            audit: Audit { signal: None, event: AuditEvent::Reconciled { positions: 0, orders: 0 } },
        }
    }

    #[test]
    fn a_full_subscriber_loses_batches_counted_and_others_are_not_held_up() {
        let feed = AuditFeed::default();
        let slow = feed.subscribe(1);
        let fast = feed.subscribe(8);
        feed.publish(&[record(1), record(2)]);
        feed.publish(&[record(3)]);
        assert_eq!(slow.take_lost(), 1);
        assert_eq!(slow.try_recv().unwrap().len(), 2);
        assert_eq!(fast.take_lost(), 0);
        assert_eq!((fast.try_recv().unwrap().len(), fast.try_recv().unwrap().len()), (2, 1));
        drop(slow);
        feed.publish(&[record(4)]);
        assert_eq!(feed.subscribers(), 1, "a dropped subscription is forgotten");
    }

    fn seen(id: u64) -> SignalSeen {
        let signal = mirror_model::Signal {
            id: mirror_model::SignalId(id),
            origin: mirror_model::Origin::Source(mirror_model::SourceId(7)),
            created_unix_ms: 0,
            accepted_mono_ns: 0,
            leader_balance: None,
            leader_equity: None,
            action: mirror_model::SignalAction::CloseAll { symbol: None },
            note: String::new(),
        };
        SignalSeen { signal, mono_ns: id, refused: None }
    }

    #[test]
    fn signals_go_only_to_signal_subscribers_and_a_full_one_counts_what_it_missed() {
        let feed = AuditFeed::default();
        assert!(!feed.wants_signals(), "nobody asked: the engine does not copy its signals");
        let audits = feed.subscribe(8);
        assert!(!feed.wants_signals(), "audit subscribers do not ask for signals");
        let slow = feed.subscribe_signals(1);
        assert!(feed.wants_signals());
        feed.publish_signal(Box::new(seen(1)));
        feed.publish_signal(Box::new(seen(2)));
        assert_eq!(slow.take_lost(), 1);
        assert_eq!(slow.try_recv().unwrap().signal.id.0, 1);
        assert!(audits.try_recv().is_none(), "signals are not audit records");
        drop(slow);
        feed.publish_signal(Box::new(seen(3)));
        assert!(!feed.wants_signals(), "a dropped subscription is forgotten");
    }
}
