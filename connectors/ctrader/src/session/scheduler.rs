//! Which request goes on the wire next: rate limits and fairness, with no I/O and no clock
//! of its own (the caller passes `now`), so it is tested deterministically.
//!
//! - Three lanes: the connection's own handshake, session work (account authorisation,
//!   setup, reconciliation) and one queue per account. The first two go first; accounts
//!   take turns one request at a time, the least recently served account first (ties by
//!   arrival). With every account backlogged that is round-robin; and an account that was
//!   just served waits behind one that has not been, so a fan-out to a hundred accounts
//!   reaches every account's first order before any account's second request, even when
//!   some orders arrive a little late.
//! - Rate limits are sliding windows: at most `limit` requests in any `window` (plus a guard
//!   band that absorbs jitter between our write and the server's read). A historical request
//!   counts against both its own window and the general one.
//! - Every queue is bounded. When an account's queue is full the new request is handed back
//!   to the caller (refused, nothing sent): the caller is told at once instead of waiting
//!   behind a backlog it cannot see.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Where a request waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Lane {
    /// The connection's handshake (application auth): sent as soon as TLS is up.
    Connection,
    /// Session work, sent once the application is authenticated.
    Session,
    /// Requests of one account, sent once that account is authorised.
    Account(i64),
}

/// What the scheduler needs to know of a queued request.
pub(crate) trait Queued {
    /// Counts against the historical limit.
    fn historical(&self) -> bool;
    /// Given up by its caller before it was sent: dropped instead of sent.
    fn abandoned(&self) -> bool;
}

/// At most `limit` sends in any `window`.
#[derive(Debug)]
pub(crate) struct RateWindow {
    limit: usize,
    span: Duration,
    sent: VecDeque<Instant>,
}

impl RateWindow {
    pub(crate) fn new(limit: usize, span: Duration) -> Self {
        Self { limit: limit.max(1), span, sent: VecDeque::with_capacity(limit.max(1)) }
    }

    /// Earliest time the next send keeps the window's promise.
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        if self.sent.len() < self.limit {
            return now;
        }
        // The send `limit` places back must have left the window.
        let oldest = self.sent[self.sent.len() - self.limit];
        (oldest + self.span).max(now)
    }

    pub(crate) fn record(&mut self, now: Instant) {
        self.sent.push_back(now);
        while self.sent.len() > self.limit {
            self.sent.pop_front();
        }
    }
}

/// What to do next.
#[derive(Debug)]
pub(crate) enum Next<T> {
    /// Send this now.
    Send(T),
    /// Something is queued but the rate limit (or an account's state) holds it until then.
    WaitUntil(Instant),
    /// Nothing can be sent until something changes (a new request, an account authorised).
    Idle,
}

/// Queues, turn order and rate windows.
#[derive(Debug)]
pub(crate) struct Scheduler<T> {
    connection: VecDeque<T>,
    session: VecDeque<T>,
    accounts: HashMap<i64, VecDeque<T>>,
    /// Accounts with something queued, in turn order: (turn it was last served, arrival,
    /// account).
    turns: BTreeSet<(u64, u64, i64)>,
    /// Each queued account's key in `turns`.
    keys: HashMap<i64, (u64, u64)>,
    /// The turn each account was last served in (0: never).
    last_served: HashMap<i64, u64>,
    /// Turns served so far.
    turn: u64,
    /// Arrivals so far (ties between accounts served in the same turn go by arrival).
    arrival: u64,
    account_capacity: usize,
    session_capacity: usize,
    general: RateWindow,
    historical: RateWindow,
}

impl<T: Queued> Scheduler<T> {
    pub(crate) fn new(
        account_capacity: usize,
        session_capacity: usize,
        general: RateWindow,
        historical: RateWindow,
    ) -> Self {
        Self {
            connection: VecDeque::new(),
            session: VecDeque::new(),
            accounts: HashMap::new(),
            turns: BTreeSet::new(),
            keys: HashMap::new(),
            last_served: HashMap::new(),
            turn: 0,
            arrival: 0,
            account_capacity: account_capacity.max(1),
            session_capacity: session_capacity.max(1),
            general,
            historical,
        }
    }

    /// Queues a request; hands it back when its lane is full.
    pub(crate) fn push(&mut self, lane: Lane, item: T) -> Result<(), T> {
        match lane {
            Lane::Connection => self.connection.push_back(item),
            Lane::Session => {
                if self.session.len() >= self.session_capacity {
                    return Err(item);
                }
                self.session.push_back(item);
            }
            Lane::Account(account) => {
                let queue = self.accounts.entry(account).or_default();
                if queue.len() >= self.account_capacity {
                    return Err(item);
                }
                let was_empty = queue.is_empty();
                queue.push_back(item);
                if was_empty {
                    self.enter(account);
                }
            }
        }
        Ok(())
    }

    /// Requests waiting in an account's queue.
    pub(crate) fn queued(&self, account: i64) -> usize {
        self.accounts.get(&account).map_or(0, VecDeque::len)
    }

    /// The capacity of each account's queue.
    pub(crate) fn account_capacity(&self) -> usize {
        self.account_capacity
    }

    /// Empties the connection and session lanes (their work belongs to a connection that is
    /// gone) and returns what they held. Account queues stay: nothing in them was sent.
    pub(crate) fn drain_connection_work(&mut self) -> Vec<T> {
        self.connection.drain(..).chain(self.session.drain(..)).collect()
    }

    /// Empties one account's queue.
    pub(crate) fn drain_account(&mut self, account: i64) -> Vec<T> {
        self.leave(account);
        self.accounts.remove(&account).map(Vec::from).unwrap_or_default()
    }

    /// An account with something queued takes its place in the turn order.
    fn enter(&mut self, account: i64) {
        self.arrival += 1;
        let key = (self.last_served.get(&account).copied().unwrap_or(0), self.arrival);
        self.turns.insert((key.0, key.1, account));
        self.keys.insert(account, key);
    }

    fn leave(&mut self, account: i64) {
        if let Some((turn, arrival)) = self.keys.remove(&account) {
            self.turns.remove(&(turn, arrival, account));
        }
    }

    /// The next request to send at `now`. `app_authed` opens the session lane; `ready` says
    /// which accounts may send.
    pub(crate) fn next(&mut self, now: Instant, app_authed: bool, ready: impl Fn(i64) -> bool) -> Next<T> {
        let mut wait: Option<Instant> = None;
        let mut earliest = |at: Instant| wait = Some(wait.map_or(at, |w| w.min(at)));
        if let Some(item) = self.take_from_lane(now, Lane::Connection, &mut earliest) {
            return Next::Send(item);
        }
        if app_authed && let Some(item) = self.take_from_lane(now, Lane::Session, &mut earliest) {
            return Next::Send(item);
        }
        if !app_authed {
            return wait.map_or(Next::Idle, Next::WaitUntil);
        }
        // The least recently served ready account whose head may go now.
        let order: Vec<i64> = self.turns.iter().map(|(_, _, account)| *account).collect();
        for account in order {
            if !ready(account) {
                continue;
            }
            let Some(queue) = self.accounts.get_mut(&account) else { continue };
            while queue.front().is_some_and(Queued::abandoned) {
                queue.pop_front();
            }
            let Some(head) = queue.front() else {
                // Emptied by abandonment: out of the turn order.
                self.accounts.remove(&account);
                self.leave(account);
                continue;
            };
            let at = Self::ready_at(&self.general, &self.historical, now, head.historical());
            if at > now {
                earliest(at);
                continue;
            }
            let item = queue.pop_front().expect("head seen above");
            let empty = queue.is_empty();
            self.leave(account);
            self.turn += 1;
            self.last_served.insert(account, self.turn);
            if empty {
                self.accounts.remove(&account);
            } else {
                // Its next request waits for the accounts served longer ago.
                self.enter(account);
            }
            self.record(now, item.historical());
            return Next::Send(item);
        }
        match wait {
            Some(at) => Next::WaitUntil(at),
            None => Next::Idle,
        }
    }

    fn take_from_lane(&mut self, now: Instant, lane: Lane, earliest: &mut impl FnMut(Instant)) -> Option<T> {
        let queue = match lane {
            Lane::Connection => &mut self.connection,
            Lane::Session => &mut self.session,
            Lane::Account(_) => return None,
        };
        while queue.front().is_some_and(Queued::abandoned) {
            queue.pop_front();
        }
        let historical = queue.front()?.historical();
        let at = Self::ready_at(&self.general, &self.historical, now, historical);
        if at > now {
            earliest(at);
            return None;
        }
        let item = queue.pop_front();
        self.record(now, historical);
        item
    }

    fn ready_at(general: &RateWindow, historical_window: &RateWindow, now: Instant, historical: bool) -> Instant {
        let at = general.ready_at(now);
        if historical { at.max(historical_window.ready_at(now)) } else { at }
    }

    fn record(&mut self, now: Instant, historical: bool) {
        self.general.record(now);
        if historical {
            self.historical.record(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item {
        account: i64,
        n: u32,
        historical: bool,
        abandoned: bool,
    }

    impl Queued for Item {
        fn historical(&self) -> bool {
            self.historical
        }
        fn abandoned(&self) -> bool {
            self.abandoned
        }
    }

    fn item(account: i64, n: u32) -> Item {
        Item { account, n, historical: false, abandoned: false }
    }

    fn scheduler(limit: usize) -> Scheduler<Item> {
        Scheduler::new(
            4,
            16,
            RateWindow::new(limit, Duration::from_secs(1)),
            RateWindow::new(2, Duration::from_secs(1)),
        )
    }

    fn drain(scheduler: &mut Scheduler<Item>, now: Instant) -> Vec<(i64, u32)> {
        let mut sent = Vec::new();
        while let Next::Send(item) = scheduler.next(now, true, |_| true) {
            sent.push((item.account, item.n));
        }
        sent
    }

    #[test]
    fn accounts_take_turns_one_request_each() {
        let mut s = scheduler(100);
        for n in 0..3 {
            s.push(Lane::Account(1), item(1, n)).unwrap();
        }
        s.push(Lane::Account(2), item(2, 0)).unwrap();
        s.push(Lane::Account(3), item(3, 0)).unwrap();
        s.push(Lane::Account(3), item(3, 1)).unwrap();
        let now = Instant::now();
        assert_eq!(drain(&mut s, now), vec![(1, 0), (2, 0), (3, 0), (1, 1), (3, 1), (1, 2)]);
    }

    #[test]
    fn the_window_holds_the_rest_until_the_oldest_send_leaves_it() {
        let mut s = scheduler(3);
        for account in 0..5 {
            s.push(Lane::Account(account), item(account, 0)).unwrap();
        }
        let start = Instant::now();
        assert_eq!(drain(&mut s, start).len(), 3);
        match s.next(start, true, |_| true) {
            Next::WaitUntil(at) => assert_eq!(at, start + Duration::from_secs(1)),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert_eq!(drain(&mut s, start + Duration::from_secs(1)), vec![(3, 0), (4, 0)]);
    }

    #[test]
    fn historical_requests_have_their_own_smaller_window() {
        let mut s = scheduler(100);
        for n in 0..3 {
            s.push(Lane::Account(7), Item { historical: true, ..item(7, n) }).unwrap();
        }
        s.push(Lane::Account(8), item(8, 0)).unwrap();
        let now = Instant::now();
        // Two historical, then account 8's ordinary request passes the held third.
        assert_eq!(drain(&mut s, now), vec![(7, 0), (8, 0), (7, 1)]);
        assert!(matches!(s.next(now, true, |_| true), Next::WaitUntil(_)));
    }

    #[test]
    fn full_queues_hand_the_request_back() {
        let mut s = scheduler(100);
        for n in 0..4 {
            s.push(Lane::Account(1), item(1, n)).unwrap();
        }
        assert_eq!(s.push(Lane::Account(1), item(1, 4)).unwrap_err().n, 4);
        assert_eq!(s.queued(1), 4);
    }

    #[test]
    fn accounts_that_are_not_ready_wait_and_lanes_come_first() {
        let mut s = scheduler(100);
        s.push(Lane::Account(1), item(1, 0)).unwrap();
        s.push(Lane::Session, item(0, 1)).unwrap();
        s.push(Lane::Connection, item(0, 0)).unwrap();
        let now = Instant::now();
        // Before app auth only the connection lane moves.
        assert!(matches!(s.next(now, false, |_| true), Next::Send(Item { n: 0, account: 0, .. })));
        assert!(matches!(s.next(now, false, |_| true), Next::Idle));
        assert!(matches!(s.next(now, true, |_| false), Next::Send(Item { n: 1, account: 0, .. })));
        assert!(matches!(s.next(now, true, |_| false), Next::Idle));
        assert!(matches!(s.next(now, true, |_| true), Next::Send(Item { account: 1, .. })));
    }

    #[test]
    fn an_account_just_served_waits_behind_one_that_was_not() {
        let mut s = scheduler(100);
        s.push(Lane::Account(1), item(1, 0)).unwrap();
        let now = Instant::now();
        assert_eq!(drain(&mut s, now), vec![(1, 0)]);
        // Account 1's second request arrives before account 2's first: 2 still goes first.
        s.push(Lane::Account(1), item(1, 1)).unwrap();
        s.push(Lane::Account(2), item(2, 0)).unwrap();
        assert_eq!(drain(&mut s, now), vec![(2, 0), (1, 1)]);
    }

    #[test]
    fn abandoned_requests_are_dropped_not_sent() {
        let mut s = scheduler(100);
        s.push(Lane::Account(1), Item { abandoned: true, ..item(1, 0) }).unwrap();
        s.push(Lane::Account(1), item(1, 1)).unwrap();
        assert_eq!(drain(&mut s, Instant::now()), vec![(1, 1)]);
        assert!(matches!(s.next(Instant::now(), true, |_| true), Next::Idle));
    }
}
