//! Market data: the quote board, the latest bid and ask of every (account, symbol) its
//! connector quotes.
//!
//! The connector tasks write it as quotes arrive; readers (the gateway's state hub) take what
//! changed since the number they last saw. The shards never touch it: the actors copy without
//! quotes.
//!
//! Policy: quotes are coalesced, only the latest of each (account, symbol) counts; a reader
//! that looks less often than quotes arrive sees fewer of them, never older ones. Writers
//! never wait on readers beyond one short lock (an update is a map write; a read copies the
//! changed entries). The board holds at most [`QuoteBoard::ENTRIES_MAX`] pairs; quotes of
//! further pairs are dropped and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use mirror_connector::Quote;
use mirror_model::{AccountId, Price, Symbol};
use rustc_hash::FxHashMap;

/// The latest quote of one (account, symbol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardQuote {
    /// Best bid.
    pub bid: Price,
    /// Best ask.
    pub ask: Price,
    /// Broker time of the latest quote, Unix milliseconds.
    pub time_unix_ms: i64,
    /// The board's change number when bid or ask last changed.
    pub version: u64,
}

#[derive(Default)]
struct Board {
    entries: FxHashMap<(AccountId, Symbol), BoardQuote>,
    /// Changes so far: the version of the latest.
    version: u64,
}

/// The latest quotes, shared by the connector tasks (writers) and the gateway (reader).
#[derive(Clone, Default)]
pub struct QuoteBoard {
    board: Arc<Mutex<Board>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for QuoteBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuoteBoard").field("version", &self.version()).finish_non_exhaustive()
    }
}

impl QuoteBoard {
    /// Most (account, symbol) pairs held.
    pub const ENTRIES_MAX: usize = 65_536;

    fn lock(&self) -> MutexGuard<'_, Board> {
        // A writer that panicked left a whole entry or none: the board is still usable.
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a quote of `account`. A quote with the same bid and ask as the latest only
    /// refreshes its time: readers see changes of price.
    pub fn update(&self, account: AccountId, quote: &Quote) {
        let mut board = self.lock();
        let board = &mut *board;
        let held = board.entries.len();
        let next = board.version + 1;
        match board.entries.get_mut(&(account, quote.symbol)) {
            Some(entry) if (entry.bid, entry.ask) == (quote.bid, quote.ask) => {
                entry.time_unix_ms = entry.time_unix_ms.max(quote.time_unix_ms);
            }
            Some(entry) => {
                *entry = BoardQuote { bid: quote.bid, ask: quote.ask, time_unix_ms: quote.time_unix_ms, version: next };
                board.version = next;
            }
            None if held >= Self::ENTRIES_MAX => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let entry =
                    BoardQuote { bid: quote.bid, ask: quote.ask, time_unix_ms: quote.time_unix_ms, version: next };
                board.entries.insert((account, quote.symbol), entry);
                board.version = next;
            }
        }
    }

    /// The latest quote of `symbol` for `account`.
    pub fn get(&self, account: AccountId, symbol: Symbol) -> Option<BoardQuote> {
        self.lock().entries.get(&(account, symbol)).copied()
    }

    /// The number of the latest change (0 before any quote).
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// Quotes of other pairs dropped because the board was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Appends to `out` every quote whose bid or ask changed after change `after`, oldest
    /// change first; returns the number of the latest change, to pass next time.
    pub fn changed_since(&self, after: u64, out: &mut Vec<(AccountId, Symbol, BoardQuote)>) -> u64 {
        let start = out.len();
        let version = {
            let board = self.lock();
            if board.version <= after {
                return board.version;
            }
            out.extend(
                board
                    .entries
                    .iter()
                    .filter(|(_, q)| q.version > after)
                    .map(|(&(account, symbol), q)| (account, symbol, *q)),
            );
            board.version
        };
        out[start..].sort_unstable_by_key(|(.., q)| q.version);
        version
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(symbol: &str, bid: &str, ask: &str) -> Quote {
        Quote {
            symbol: Symbol::new(symbol).unwrap(),
            bid: Price::parse(bid).unwrap(),
            ask: Price::parse(ask).unwrap(),
            time_unix_ms: 1,
        }
    }

    #[test]
    fn only_the_latest_quote_counts_and_readers_see_what_changed_since_they_looked() {
        let board = QuoteBoard::default();
        let (a, b) = (AccountId(1), AccountId(2));
        board.update(a, &quote("ES", "5000.00", "5000.25"));
        board.update(b, &quote("ES", "5000.00", "5000.25"));
        let mut seen = Vec::new();
        let version = board.changed_since(0, &mut seen);
        assert_eq!((version, seen.len()), (2, 2));
        assert_eq!(seen.iter().map(|(account, ..)| *account).collect::<Vec<_>>(), [a, b], "oldest change first");

        // Two moves of one pair between reads: one entry, the latest.
        board.update(a, &quote("ES", "5001.00", "5001.25"));
        board.update(a, &quote("ES", "5002.00", "5002.25"));
        // The same price again is no change.
        board.update(b, &quote("ES", "5000.00", "5000.25"));
        seen.clear();
        let version = board.changed_since(version, &mut seen);
        assert_eq!(version, 4);
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].0, seen[0].2.bid), (a, Price::parse("5002.00").unwrap()));
        assert_eq!(board.get(a, Symbol::new("ES").unwrap()).map(|q| q.ask), Some(Price::parse("5002.25").unwrap()));

        seen.clear();
        assert_eq!(board.changed_since(version, &mut seen), 4);
        assert!(seen.is_empty());
        assert_eq!(board.dropped(), 0);
    }
}
