//! Filters and the filtered index: the numbers of the lines that pass, extended as lines
//! arrive and rebuilt only when the filter changes.

use std::collections::VecDeque;

use super::line::{Level, Line};
use super::store::LogStore;
use super::time::TimeBound;

/// What the user filters by; every part set must match (they combine with AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Lowest level shown (`None`: all).
    pub min_level: Option<Level>,
    /// Only this account (its key in the store).
    pub account: Option<u32>,
    /// Only this signal.
    pub signal: Option<u64>,
    /// A substring of the text, compared without regard to case (empty: any).
    pub text: String,
    /// Not before.
    pub from: Option<TimeBound>,
    /// Not after.
    pub to: Option<TimeBound>,
}

impl Filter {
    fn compile(&self) -> Compiled {
        let needle = self.text.trim().to_lowercase();
        Compiled { filter: self.clone(), ascii: needle.is_ascii(), needle }
    }
}

/// A filter ready to test lines with.
#[derive(Clone, Debug, Default)]
struct Compiled {
    filter: Filter,
    needle: String,
    ascii: bool,
}

fn contains_ascii_ignore_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

impl Compiled {
    fn matches(&self, line: &Line) -> bool {
        let f = &self.filter;
        if f.min_level.is_some_and(|min| line.level < min)
            || f.account.is_some_and(|account| line.account != Some(account))
            || f.signal.is_some_and(|signal| line.signal != signal)
        {
            return false;
        }
        if let Some(from) = f.from {
            let (value, bound) = from.project(line.unix_ns);
            if value < bound {
                return false;
            }
        }
        if let Some(to) = f.to {
            let (value, bound) = to.project(line.unix_ns);
            if value > bound {
                return false;
            }
        }
        if self.needle.is_empty() {
            true
        } else if self.ascii {
            contains_ascii_ignore_case(&line.text, &self.needle)
        } else {
            line.text.to_lowercase().contains(&self.needle)
        }
    }
}

/// The numbers of the store's lines that pass the filter, in order.
#[derive(Debug, Default)]
pub struct FilteredIndex {
    compiled: Compiled,
    rows: VecDeque<u64>,
    /// Lines up to here were looked at.
    scanned_to: u64,
    /// Full passes over the store (a filter changed), for tests and the status line.
    rebuilds: u64,
}

impl FilteredIndex {
    /// The filter in force.
    pub fn filter(&self) -> &Filter {
        &self.compiled.filter
    }

    /// Sets the filter; when it differs, the index is rebuilt from the lines held.
    pub fn set_filter(&mut self, filter: &Filter, store: &LogStore) {
        if *filter == self.compiled.filter {
            return;
        }
        self.compiled = filter.compile();
        self.rows.clear();
        self.scanned_to = store.first_number();
        self.rebuilds += 1;
        self.sync(store);
    }

    /// Catches up with the store: drops rows of lines it no longer holds and tests the lines
    /// that arrived since the last call. Returns how many rows were dropped from the front.
    pub fn sync(&mut self, store: &LogStore) -> usize {
        let first = store.first_number();
        let mut dropped = 0;
        while self.rows.front().is_some_and(|number| *number < first) {
            self.rows.pop_front();
            dropped += 1;
        }
        for (number, line) in store.since(self.scanned_to) {
            if self.compiled.matches(line) {
                self.rows.push_back(number);
            }
        }
        self.scanned_to = store.end_number();
        dropped
    }

    /// Rows that pass.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row passes.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The line number of the `row`-th passing line.
    pub fn number(&self, row: usize) -> Option<u64> {
        self.rows.get(row).copied()
    }

    /// The passing line numbers, in order.
    pub fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        self.rows.iter().copied()
    }

    /// Full passes so far.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(level: Level, account: u32, signal: u64, text: &str, second: i64) -> Line {
        Line {
            unix_ns: 1_790_000_000_000_000_000 + second * 1_000_000_000,
            mono_ns: None,
            level,
            account: Some(account),
            signal,
            text: text.into(),
            hop: None,
        }
    }

    fn store() -> LogStore {
        let mut store = LogStore::default();
        store.push(line(Level::Info, 1, 10, "copied Buy 1 ES", 0));
        store.push(line(Level::Debug, 1, 10, "m10.1.0 accepted", 1));
        store.push(line(Level::Warn, 2, 10, "m10.2.0 Rejected: NO MONEY", 2));
        store.push(line(Level::Info, 2, 11, "skipped open: symbol denied", 3));
        store.push(line(Level::Info, 3, 0, "Connection Up — café", 4));
        store
    }

    fn rows(index: &FilteredIndex) -> Vec<u64> {
        index.numbers().collect()
    }

    #[test]
    fn each_filter_narrows_and_they_combine() {
        let store = store();
        let mut index = FilteredIndex::default();
        index.sync(&store);
        assert_eq!(rows(&index), [0, 1, 2, 3, 4]);
        let cases: [(Filter, &[u64]); 8] = [
            (Filter { min_level: Some(Level::Info), ..Filter::default() }, &[0, 2, 3, 4]),
            (Filter { min_level: Some(Level::Warn), ..Filter::default() }, &[2]),
            (Filter { account: Some(2), ..Filter::default() }, &[2, 3]),
            (Filter { signal: Some(10), ..Filter::default() }, &[0, 1, 2]),
            (Filter { text: "REJECTED: no".into(), ..Filter::default() }, &[2]),
            (Filter { text: "CAFÉ".into(), ..Filter::default() }, &[4]),
            (
                Filter {
                    from: Some(TimeBound::parse("2026-09-21T14:13:21Z").unwrap()),
                    to: Some(TimeBound::parse("2026-09-21T14:13:23Z").unwrap()),
                    ..Filter::default()
                },
                &[1, 2, 3],
            ),
            (Filter { signal: Some(10), account: Some(1), min_level: Some(Level::Info), ..Filter::default() }, &[0]),
        ];
        for (filter, expected) in cases {
            index.set_filter(&filter, &store);
            assert_eq!(rows(&index), expected, "{filter:?}");
        }
    }

    #[test]
    fn a_time_of_day_bound_compares_the_clock() {
        let store = store();
        let mut index = FilteredIndex::default();
        // The lines are at 14:13:20 .. 14:13:24 UTC.
        let filter = Filter { from: Some(TimeBound::parse("14:13:23").unwrap()), ..Filter::default() };
        index.set_filter(&filter, &store);
        assert_eq!(rows(&index), [3, 4]);
    }

    #[test]
    fn the_index_grows_with_the_store_without_a_rebuild_and_forgets_dropped_lines() {
        let mut store = LogStore::with_capacity(4);
        let mut index = FilteredIndex::default();
        index.set_filter(&Filter { text: "keep".into(), ..Filter::default() }, &store);
        let rebuilds = index.rebuilds();
        for n in 0..6 {
            let text = if n % 2 == 0 { "keep" } else { "drop" };
            store.push(line(Level::Info, 1, n, text, 0));
            index.sync(&store);
        }
        assert_eq!(index.rebuilds(), rebuilds, "arrivals never rebuild");
        // Lines 0 and 1 were dropped by the store; 2 and 4 pass.
        assert_eq!(rows(&index), [2, 4]);
        store.push(line(Level::Info, 1, 6, "keep", 0));
        store.push(line(Level::Info, 1, 7, "KEEP", 0));
        assert_eq!(index.sync(&store), 1, "row of line 2 dropped");
        assert_eq!(rows(&index), [4, 6, 7]);
        // The same filter again: no rebuild.
        index.set_filter(&Filter { text: "keep".into(), ..Filter::default() }, &store);
        assert_eq!(index.rebuilds(), rebuilds);
    }
}
