//! The lines held, bounded: the newest [`LogStore::capacity`] are kept and the oldest dropped.
//! Lines are numbered from the first ever pushed, so indexes stay valid as old lines go.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};

use super::line::Line;

/// Lines held by default: about 40 MB of typical engine lines.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// Reading errors kept with their line numbers (the rest are only counted).
const UNREADABLE_KEPT: usize = 100;

/// A line of a file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// 1-based line number in the file.
    pub line: u64,
    /// What was wrong.
    pub error: String,
}

/// The lines of one source (the live stream, or one file), bounded.
#[derive(Debug)]
pub struct LogStore {
    lines: VecDeque<Line>,
    /// The number of `lines[0]`.
    first: u64,
    capacity: usize,
    accounts: BTreeMap<u32, String>,
    interned: HashMap<String, u32>,
    unreadable: Vec<Unreadable>,
    unreadable_count: u64,
}

impl Default for LogStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl LogStore {
    /// A store keeping at most `capacity` lines (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            lines: VecDeque::new(),
            first: 0,
            capacity: capacity.max(1),
            accounts: BTreeMap::new(),
            interned: HashMap::new(),
            unreadable: Vec::new(),
            unreadable_count: 0,
        }
    }

    /// Most lines held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lines held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Lines dropped to stay within the capacity.
    pub fn dropped(&self) -> u64 {
        self.first
    }

    /// The number of the oldest line held.
    pub fn first_number(&self) -> u64 {
        self.first
    }

    /// The number the next line will get.
    pub fn end_number(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    /// Adds a line, dropping the oldest when full.
    pub fn push(&mut self, line: Line) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.first += 1;
        }
        self.lines.push_back(line);
    }

    /// The line of this number, if still held.
    pub fn get(&self, number: u64) -> Option<&Line> {
        let offset = number.checked_sub(self.first)?;
        self.lines.get(usize::try_from(offset).ok()?)
    }

    /// Lines `from..` (clamped to what is held), with their numbers.
    pub fn since(&self, from: u64) -> impl Iterator<Item = (u64, &Line)> {
        let from = from.max(self.first);
        let skip = usize::try_from(from - self.first).unwrap_or(usize::MAX);
        self.lines.iter().skip(skip).zip(from..).map(|(line, number)| (number, line))
    }

    /// Names an account key.
    pub fn set_account_name(&mut self, key: u32, name: &str) {
        if self.accounts.get(&key).map(String::as_str) != Some(name) {
            self.accounts.insert(key, name.to_owned());
            self.interned.insert(name.to_owned(), key);
        }
    }

    /// The key of an account known by name only (file lines): the same name, the same key.
    pub fn intern_account(&mut self, name: &str) -> u32 {
        if let Some(key) = self.interned.get(name) {
            return *key;
        }
        let key = u32::try_from(self.accounts.len()).unwrap_or(u32::MAX);
        self.set_account_name(key, name);
        key
    }

    /// The account's name, or `#id` while its name is not known.
    pub fn account_name(&self, key: u32) -> Cow<'_, str> {
        match self.accounts.get(&key) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("#{key}")),
        }
    }

    /// Known accounts, by key.
    pub fn accounts(&self) -> &BTreeMap<u32, String> {
        &self.accounts
    }

    /// Records a line of a file that could not be read.
    pub fn push_unreadable(&mut self, line: u64, error: String) {
        self.unreadable_count += 1;
        if self.unreadable.len() < UNREADABLE_KEPT {
            self.unreadable.push(Unreadable { line, error });
        }
    }

    /// How many lines could not be read, and the first of them.
    pub fn unreadable(&self) -> (u64, &[Unreadable]) {
        (self.unreadable_count, &self.unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::line::Level;

    fn line(n: u64) -> Line {
        Line {
            unix_ns: i64::try_from(n).unwrap(),
            mono_ns: None,
            level: Level::Info,
            account: None,
            signal: n,
            text: format!("line {n}").into(),
            hop: None,
        }
    }

    #[test]
    fn the_oldest_lines_go_and_numbers_stay() {
        let mut store = LogStore::with_capacity(3);
        for n in 0..5 {
            store.push(line(n));
        }
        assert_eq!((store.len(), store.first_number(), store.end_number(), store.dropped()), (3, 2, 5, 2));
        assert!(store.get(1).is_none());
        assert_eq!(store.get(4).unwrap().signal, 4);
        let numbers: Vec<u64> = store.since(0).map(|(n, _)| n).collect();
        assert_eq!(numbers, [2, 3, 4]);
        let numbers: Vec<u64> = store.since(4).map(|(n, l)| n + l.signal).collect();
        assert_eq!(numbers, [8]);
        assert_eq!(store.since(9).count(), 0);
    }

    #[test]
    fn names_are_interned() {
        let mut store = LogStore::default();
        let a = store.intern_account("f1");
        let b = store.intern_account("f2");
        assert_ne!(a, b);
        assert_eq!(store.intern_account("f1"), a);
        assert_eq!(store.account_name(b), "f2");
        assert_eq!(store.account_name(77), "#77");
    }
}
