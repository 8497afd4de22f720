//! What a Telegram webhook remembers: the updates it has handled (so a redelivery executes
//! nothing) and, per chat, the positions its signals opened, most recent first (so `close
//! half` or `move SL to entry` know what they are about).
//!
//! Everything is bounded. The last [`UPDATES_MAX`] update ids are kept (Telegram redelivers
//! an update until it is answered, for at most a day, and holds the later ones behind it, so
//! a redelivery is always among the most recent). Each chat keeps its [`POSITIONS_MAX`] most
//! recent positions; older ones are forgotten (a later `close` can then no longer name them,
//! but `close all` still closes them through the source). At most [`CHATS_MAX`] chats are
//! kept; beyond, the chat with the oldest signal is forgotten. Forgetting is logged.

use std::collections::{HashSet, VecDeque};

use mirror_model::{Price, Side, Symbol};
use serde::{Deserialize, Serialize};

/// Update ids remembered.
pub(crate) const UPDATES_MAX: usize = 1_024;
/// Positions remembered per chat.
pub(crate) const POSITIONS_MAX: usize = 64;
/// Chats remembered per webhook.
pub(crate) const CHATS_MAX: usize = 256;

/// Version of the file format.
const FORMAT: u32 = 1;

/// A position (or pending order) a channel signal opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Opened {
    /// The leader key its copies are known by.
    pub(crate) leader: u64,
    /// The message that opened it.
    pub(crate) message_id: i64,
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    /// A limit or stop order.
    pub(crate) pending: bool,
    /// The entry the signal gave (a pending order's price), if any.
    pub(crate) entry: Option<Price>,
    pub(crate) stop_loss: Option<Price>,
    pub(crate) take_profit: Option<Price>,
}

/// One chat's positions, most recent first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChatBook {
    pub(crate) chat: i64,
    pub(crate) positions: Vec<Opened>,
}

/// A webhook's memory.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Book {
    /// Update ids handled, oldest first.
    updates: VecDeque<i64>,
    seen: HashSet<i64>,
    /// Chats, the one with the most recent signal first.
    chats: VecDeque<ChatBook>,
}

/// The file: `{"format":1,"updates":[…],"chats":[{"chat":…,"positions":[…]}]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BookFile {
    format: u32,
    updates: Vec<i64>,
    chats: Vec<ChatBook>,
}

impl Book {
    /// Whether update `id` was handled.
    pub(crate) fn seen(&self, id: i64) -> bool {
        self.seen.contains(&id)
    }

    /// Remembers that update `id` was handled, forgetting the oldest beyond the bound.
    pub(crate) fn remember(&mut self, id: i64) {
        if !self.seen.insert(id) {
            return;
        }
        self.updates.push_back(id);
        while self.updates.len() > UPDATES_MAX {
            if let Some(old) = self.updates.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Forgets update `id` (its handling was undone).
    pub(crate) fn forget(&mut self, id: i64) {
        if self.seen.remove(&id) {
            self.updates.retain(|u| *u != id);
        }
    }

    /// The chat's positions, most recent first.
    pub(crate) fn positions(&self, chat: i64) -> &[Opened] {
        match self.chats.iter().find(|c| c.chat == chat) {
            Some(book) => &book.positions,
            None => &[],
        }
    }

    /// The chat's book as it is (to put back after a refused signal).
    pub(crate) fn chat(&self, chat: i64) -> Option<ChatBook> {
        self.chats.iter().find(|c| c.chat == chat).cloned()
    }

    /// Puts a chat's book back as [`Self::chat`] returned it.
    pub(crate) fn restore(&mut self, chat: i64, saved: Option<ChatBook>) {
        self.chats.retain(|c| c.chat != chat);
        if let Some(saved) = saved {
            self.chats.push_front(saved);
        }
    }

    /// Records a new position, most recent first; the chat becomes the most recent.
    pub(crate) fn open(&mut self, chat: i64, opened: Opened) {
        let mut book = match self.chats.iter().position(|c| c.chat == chat) {
            Some(index) => self.chats.remove(index).unwrap_or_default(),
            None => ChatBook { chat, positions: Vec::new() },
        };
        // At most POSITIONS_MAX small entries: inserting at the front is cheap.
        book.positions.insert(0, opened);
        for old in book.positions.drain(POSITIONS_MAX.min(book.positions.len())..) {
            tracing::info!(chat, leader = old.leader, "telegram book: the oldest position of the chat is forgotten");
        }
        self.chats.push_front(book);
        while self.chats.len() > CHATS_MAX {
            if let Some(old) = self.chats.pop_back() {
                tracing::warn!(
                    chat = old.chat,
                    "telegram book: more than {CHATS_MAX} chats; the least recent is forgotten"
                );
            }
        }
    }

    /// Changes one position.
    pub(crate) fn update(&mut self, chat: i64, leader: u64, change: impl FnOnce(&mut Opened)) {
        if let Some(opened) = self
            .chats
            .iter_mut()
            .filter(|c| c.chat == chat)
            .flat_map(|c| c.positions.iter_mut())
            .find(|o| o.leader == leader)
        {
            change(opened);
        }
    }

    /// Forgets the chat's positions that `closed` says are gone.
    pub(crate) fn remove(&mut self, chat: i64, closed: impl Fn(&Opened) -> bool) {
        for book in self.chats.iter_mut().filter(|c| c.chat == chat) {
            book.positions.retain(|o| !closed(o));
        }
        self.chats.retain(|c| !c.positions.is_empty());
    }

    /// The file form.
    pub(crate) fn to_file(&self) -> BookFile {
        BookFile {
            format: FORMAT,
            updates: self.updates.iter().copied().collect(),
            chats: self.chats.iter().cloned().collect(),
        }
    }

    /// Reads the file form back.
    pub(crate) fn from_file(file: BookFile) -> Result<Self, String> {
        if file.format != FORMAT {
            return Err(format!("format {} is not understood (this build reads {FORMAT})", file.format));
        }
        let mut book = Self::default();
        for id in file.updates {
            book.remember(id);
        }
        for mut chat in file.chats.into_iter().take(CHATS_MAX) {
            chat.positions.truncate(POSITIONS_MAX);
            if !chat.positions.is_empty() && !book.chats.iter().any(|c| c.chat == chat.chat) {
                book.chats.push_back(chat);
            }
        }
        Ok(book)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(leader: u64) -> Opened {
        Opened {
            leader,
            message_id: i64::try_from(leader).unwrap(),
            symbol: Symbol::new("XAUUSD").unwrap(),
            side: Side::Buy,
            pending: false,
            entry: Some(Price::parse("2350").unwrap()),
            stop_loss: Some(Price::parse("2340").unwrap()),
            take_profit: None,
        }
    }

    #[test]
    fn updates_and_positions_stay_bounded_most_recent_first() {
        let mut book = Book::default();
        for id in 0..i64::try_from(UPDATES_MAX).unwrap() + 10 {
            book.remember(id);
        }
        assert!(!book.seen(9) && book.seen(10) && book.seen(1_033));
        for leader in 0..u64::try_from(POSITIONS_MAX).unwrap() + 5 {
            book.open(-100, opened(leader));
        }
        let positions = book.positions(-100);
        assert_eq!(positions.len(), POSITIONS_MAX);
        assert_eq!((positions[0].leader, positions[POSITIONS_MAX - 1].leader), (68, 5));
        for chat in 0..i64::try_from(CHATS_MAX).unwrap() + 1 {
            book.open(chat, opened(1));
        }
        assert_eq!(book.chats.len(), CHATS_MAX);
        assert!(book.positions(-100).is_empty(), "the chat with the oldest signal is forgotten first");
    }

    #[test]
    fn changes_restores_and_the_file_round_trip() {
        let mut book = Book::default();
        book.open(-7, opened(1));
        book.open(-7, opened(2));
        book.remember(41);
        let saved = book.chat(-7);
        book.update(-7, 1, |o| o.take_profit = Some(Price::parse("2360").unwrap()));
        book.remove(-7, |o| o.leader == 2);
        assert_eq!(book.positions(-7).iter().map(|o| o.leader).collect::<Vec<_>>(), [1]);
        assert_eq!(book.positions(-7)[0].take_profit, Some(Price::parse("2360").unwrap()));
        let text = serde_json::to_string(&book.to_file()).unwrap();
        let back = Book::from_file(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, book);
        book.restore(-7, saved);
        assert_eq!(book.positions(-7).iter().map(|o| o.leader).collect::<Vec<_>>(), [2, 1]);
        book.remove(-7, |_| true);
        assert!(book.chat(-7).is_none());
        let future = text.replace("\"format\":1", "\"format\":9");
        assert!(Book::from_file(serde_json::from_str(&future).unwrap()).unwrap_err().contains("format 9"));
    }
}
