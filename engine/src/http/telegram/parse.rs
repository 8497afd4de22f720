//! Reading trade signals out of Telegram channel messages: a pure function from a message's
//! text (and the symbols the webhook's source may send) to what it asks for, how sure the
//! reading is, and why.
//!
//! Channels write signals by hand, in many styles: `BUY XAUUSD @ 2350 SL 2340 TP 2360`,
//! `XAUUSD BUY NOW 2350-2345 / SL: 2340 / TP1: 2360`, `GOLD sell limit 2365`,
//! `EUR/USD long entry 1.0850 stop 1.0820 target 1.0900`, and manage them later with
//! `close half`, `close 50%`, `close all`, `close XAUUSD`, `move SL to entry`, `SL to BE`,
//! `move stop to 2345`, `new TP 2380`, `cancel the limit`. Between them come results posts
//! (`TP1 hit +50 pips 🔥`), promotions, analysis and chatter, which must never trade.
//!
//! The reading is deliberately conservative. Words are matched case-insensitively with emojis
//! and punctuation as separators; a message scores points for what makes a signal (a side
//! next to an instrument, an entry, a stop loss, a take profit) and loses them for what makes
//! it something else (results words such as `hit` or `running`, promotions, conditions such as
//! `if` or `after`, questions). Below [`CONFIDENCE_MIN`] nothing is executed. A message that
//! reads as a signal but cannot be executed as written — an instrument the source does not
//! send, a buy whose stop loss is above its entry, a stop loss in pips with no entry to measure
//! it from, two instructions at once — is [`Reading::Refused`], with the reason.
//!
//! Symbols are resolved through common aliases (`GOLD` → `XAUUSD`, `SILVER` → `XAGUSD`,
//! `DOW`/`US30`, `NASDAQ`/`NAS100`, `EUR/USD` → `EURUSD`, …), each alias trying the names a
//! source may use for the instrument, in order, against the source's symbols.

use mirror_model::{OrderKind, Price, Side, Symbol};

/// Confidence (percent) below which a reading is not executed.
pub(crate) const CONFIDENCE_MIN: u8 = 60;

// What an open scores (percent): a complete signal (side, instrument, entry or `now`, stop
// loss, take profit) scores 100; a side next to an instrument alone stays below the minimum.
const SCORE_SIDE: i32 = 30;
const SCORE_INSTRUMENT: i32 = 25;
const SCORE_ENTRY: i32 = 15;
const SCORE_STOP: i32 = 15;
const SCORE_TARGET: i32 = 15;
// What tells against an instruction: each alone takes a complete signal below the minimum,
// except a signed figure (`TP 2360 (+100 pips)` is common in real signals).
const PENALTY_RESULT: i32 = 45;
const PENALTY_SIGNED: i32 = 20;
const PENALTY_PROMO: i32 = 50;
const PENALTY_CONDITION: i32 = 45;
const PENALTY_QUESTION: i32 = 45;

/// What a message was read as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) reading: Reading,
    /// How sure the reading is, 0 to 100.
    pub(crate) confidence_pct: u8,
    /// Why, in words: what was found, or what stopped it.
    pub(crate) reason: String,
}

impl Parsed {
    /// The confidence as a fraction in [0, 1].
    pub(crate) fn confidence(&self) -> f64 {
        f64::from(self.confidence_pct) / 100.0
    }
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// An instruction to execute.
    Signal(Intent),
    /// Not an instruction, or too unsure to be treated as one.
    NotASignal,
    /// Reads as an instruction that cannot be executed as written (the reason says why).
    Refused,
}

/// What a signal asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Open a position.
    Open(OpenIntent),
    /// Close the most recent position opened from this chat.
    Close,
    /// Close what this chat opened on one instrument.
    CloseSymbol(Symbol),
    /// Close everything.
    CloseAll,
    /// Close `closed` parts out of `of` of the most recent position (`1` of `2`: half).
    PartialClose { closed: u32, of: u32 },
    /// Move the stop loss of the most recent position to its entry.
    StopToEntry,
    /// Move the stop loss of the most recent position to a price.
    MoveStop(Price),
    /// Move the take profit of the most recent position to a price.
    MoveTarget(Price),
    /// Cancel the most recent pending order.
    CancelPending,
}

/// An open as the message gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OpenIntent {
    pub(crate) symbol: Symbol,
    pub(crate) side: Side,
    /// Market, or limit/stop at the entry.
    pub(crate) kind: OrderKind,
    /// The entry (the first price of a zone).
    pub(crate) entry: Option<Price>,
    /// The other end of an entry zone (`2350-2345`).
    pub(crate) zone_end: Option<Price>,
    pub(crate) stop_loss: Option<Price>,
    /// The first take profit: a copy carries one.
    pub(crate) take_profit: Option<Price>,
    /// Take profits after the first, not copied (named in the signal's note).
    pub(crate) more_targets: Vec<Price>,
}

/// Reads `text`; `symbols` are those the webhook's source may send.
pub(crate) fn parse(text: &str, symbols: &[Symbol]) -> Parsed {
    let tokens = tokenize(text);
    let scan = Scan::new(&tokens, symbols);
    scan.verdict()
}

// ---------------------------------------------------------------------------------------
// Tokens

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// Lower-case letters and digits (`buy`, `tp1`, `us30`); `EUR/USD` and `S/L` joined.
    Word(String),
    /// A decimal number; `percent` when `%` follows.
    Number {
        value: Price,
        percent: bool,
    },
    /// Two numbers joined by a dash: `2350-2345`.
    Range(Price, Price),
    /// `+` or `-` right before a number: a result (`+50 pips`), not a level.
    Signed,
    Question,
    /// `@`.
    At,
}

fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let mut word = String::new();
            while let Some(&c) = chars.get(i) {
                let joins = matches!(c, '/' | '&')
                    && word.ends_with(|l: char| l.is_ascii_alphabetic())
                    && chars.get(i + 1).is_some_and(char::is_ascii_alphabetic);
                if c.is_ascii_alphanumeric() {
                    word.push(c);
                } else if !joins {
                    break;
                }
                i += 1;
            }
            out.push(Token::Word(word));
        } else if c.is_ascii_digit() {
            i = number(&chars, i, &mut out);
        } else {
            let before_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
            let after_number = matches!(out.last(), Some(Token::Number { .. } | Token::Range(..)));
            match c {
                // Channels label levels with emojis: 🎯 a target, 🛑/⛔ a stop.
                '🎯' => out.push(Token::Word("tp".to_owned())),
                '🛑' | '⛔' => out.push(Token::Word("sl".to_owned())),
                '+' if before_digit => out.push(Token::Signed),
                '-' | '−' if before_digit && !after_number => out.push(Token::Signed),
                '?' => out.push(Token::Question),
                '@' => out.push(Token::At),
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// Reads the number starting at `start` (with a dash-joined second one, a `%`, or a time of
/// day, which is skipped); returns where reading goes on.
fn number(chars: &[char], start: usize, out: &mut Vec<Token>) -> usize {
    let (first, mut i) = decimal(chars, start);
    // `14:30` is a time of day, not a level.
    if chars.get(i) == Some(&':') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
        let (_, end) = decimal(chars, i + 1);
        if end - (i + 1) == 2 {
            return end;
        }
    }
    let Some(first) = first else { return i };
    if chars.get(i) == Some(&'%') {
        out.push(Token::Number { value: first, percent: true });
        return i + 1;
    }
    // `2350-2345`, `2350 - 2345`, `2350–2345`: a zone.
    let mut j = i;
    while chars.get(j) == Some(&' ') {
        j += 1;
    }
    if matches!(chars.get(j), Some('-' | '–' | '—' | '~')) {
        let mut k = j + 1;
        while chars.get(k) == Some(&' ') {
            k += 1;
        }
        if chars.get(k).is_some_and(char::is_ascii_digit) {
            let (second, end) = decimal(chars, k);
            let chained = matches!(chars.get(end), Some('-' | '–'));
            if let (Some(second), false) = (second, chained) {
                out.push(Token::Range(first, second));
                return end;
            }
        }
    }
    out.push(Token::Number { value: first, percent: false });
    i = i.max(start + 1);
    i
}

/// The digits, points and commas from `start`: `2350`, `1.0850`, `2,350.50` (thousands),
/// `1,0850` (a decimal comma). `None` for what is not one number (`12.05.2024`).
fn decimal(chars: &[char], start: usize) -> (Option<Price>, usize) {
    let mut end = start;
    while chars.get(end).is_some_and(|c| c.is_ascii_digit() || *c == '.' || *c == ',') {
        end += 1;
    }
    let mut run: String = chars[start..end].iter().collect();
    while run.ends_with(['.', ',']) {
        run.pop();
    }
    let points = run.matches('.').count();
    let commas = run.matches(',').count();
    let normal = if commas == 0 {
        run
    } else if points == 1 && run.find(',') < run.find('.') {
        run.replace(',', "")
    } else if points == 0 {
        let mut groups = run.split(',');
        let head = groups.next().unwrap_or_default();
        let thousands = head.len() <= 3 && groups.clone().all(|g| g.len() == 3);
        if thousands {
            run.replace(',', "")
        } else if commas == 1 {
            run.replace(',', ".")
        } else {
            return (None, end);
        }
    } else {
        return (None, end);
    };
    if normal.matches('.').count() > 1 {
        return (None, end);
    }
    (Price::parse(&normal).ok().filter(|p| p.is_positive()), end)
}

// ---------------------------------------------------------------------------------------
// Vocabulary

const CURRENCIES: &[&str] = &[
    "usd", "eur", "gbp", "jpy", "chf", "cad", "aud", "nzd", "xau", "xag", "sek", "nok", "dkk", "sgd", "hkd", "zar",
    "try", "mxn", "pln", "cnh", "huf", "czk",
];

/// Words (one or two) naming an instrument, and the source symbols each may mean, in order.
const ALIASES: &[(&[&str], &[&str])] = &[
    (&["gold"], &["XAUUSD", "GOLD"]),
    (&["xau"], &["XAUUSD", "GOLD"]),
    (&["silver"], &["XAGUSD", "SILVER"]),
    (&["xag"], &["XAGUSD", "SILVER"]),
    (&["us30"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["dow", "jones"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["dow"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["dj30"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["ws30"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["wallstreet"], &["US30", "DJ30", "WS30", "DJI"]),
    (&["nas100"], &["NAS100", "USTEC", "US100", "NDX"]),
    (&["nasdaq"], &["NAS100", "USTEC", "US100", "NDX"]),
    (&["nas"], &["NAS100", "USTEC", "US100", "NDX"]),
    (&["ustec"], &["NAS100", "USTEC", "US100", "NDX"]),
    (&["us100"], &["NAS100", "USTEC", "US100", "NDX"]),
    (&["us500"], &["US500", "SPX500", "SP500"]),
    (&["spx500"], &["US500", "SPX500", "SP500"]),
    (&["sp500"], &["US500", "SPX500", "SP500"]),
    (&["s&p500"], &["US500", "SPX500", "SP500"]),
    (&["spx"], &["US500", "SPX500", "SP500"]),
    (&["ger40"], &["GER40", "DE40", "GER30", "DAX"]),
    (&["de40"], &["GER40", "DE40", "GER30", "DAX"]),
    (&["dax"], &["GER40", "DE40", "GER30", "DAX"]),
    (&["ger30"], &["GER30", "GER40", "DE40", "DAX"]),
    (&["uk100"], &["UK100", "FTSE100"]),
    (&["ftse"], &["UK100", "FTSE100"]),
    (&["btc"], &["BTCUSD"]),
    (&["bitcoin"], &["BTCUSD"]),
    (&["btcusd"], &["BTCUSD"]),
    (&["eth"], &["ETHUSD"]),
    (&["ethereum"], &["ETHUSD"]),
    (&["ethusd"], &["ETHUSD"]),
    (&["usoil"], &["USOIL", "WTI", "XTIUSD"]),
    (&["wti"], &["USOIL", "WTI", "XTIUSD"]),
    (&["oil"], &["USOIL", "WTI", "XTIUSD"]),
];

/// Results posts: what already happened.
const RESULT_WORDS: &[&str] = &[
    "hit",
    "hits",
    "hitted",
    "reached",
    "smashed",
    "running",
    "profit",
    "profits",
    "closed",
    "booked",
    "secured",
    "congrats",
    "congratulations",
    "boom",
    "achieved",
    "result",
    "results",
    "bought",
    "sold",
    "was",
    "were",
    "went",
    "yesterday",
    "gained",
    "banked",
    "won",
    "winning",
    "stopped",
    "triggered",
    "activated",
    "done",
];

/// Promotions.
const PROMO_WORDS: &[&str] = &[
    "join",
    "vip",
    "subscribe",
    "subscription",
    "link",
    "http",
    "https",
    "www",
    "premium",
    "offer",
    "promo",
    "discount",
    "giveaway",
    "register",
    "signup",
    "dm",
    "inbox",
    "membership",
    "members",
    "course",
    "mentorship",
    "bonus",
    "deposit",
    "telegram",
    "whatsapp",
    "contact",
    "admin",
    "referral",
    "spots",
    "slots",
];

/// Conditions and plans: not an instruction for now.
const HYPOTHETICAL_WORDS: &[&str] = &[
    "if",
    "might",
    "maybe",
    "may",
    "possible",
    "possibly",
    "could",
    "would",
    "will",
    "wait",
    "waiting",
    "watch",
    "watching",
    "looking",
    "expect",
    "expecting",
    "likely",
    "potential",
    "analysis",
    "idea",
    "prepare",
    "ready",
    "soon",
    "later",
    "tomorrow",
    "plan",
    "bias",
    "outlook",
    "forecast",
    "after",
    "when",
    "once",
    "unless",
    "until",
    "bullish",
    "bearish",
    "think",
    "thinking",
    "consider",
    "should",
    "prefer",
    "don",
    "dont",
    "not",
    "never",
];

fn is_sl_word(word: &str) -> bool {
    matches!(word, "sl" | "stoploss" | "stop" | "sls")
}

fn tp_word(word: &str) -> bool {
    matches!(word, "tp" | "tps" | "target" | "targets" | "tgt" | "takeprofit")
        || word.strip_prefix("tp").is_some_and(|n| n.len() == 1 && n.chars().all(|c| c.is_ascii_digit()))
}

fn side_word(word: &str) -> Option<(Side, bool)> {
    // The flag: an ordinary English word as well ("a long day"), so it needs the instrument
    // right next to it.
    match word {
        "buy" | "buying" => Some((Side::Buy, false)),
        "sell" | "selling" => Some((Side::Sell, false)),
        "long" => Some((Side::Buy, true)),
        "short" => Some((Side::Sell, true)),
        _ => None,
    }
}

fn entry_word(word: &str) -> bool {
    matches!(word, "entry" | "enter" | "price" | "zone" | "area" | "around" | "near" | "from" | "at" | "open" | "ep")
}

fn market_word(word: &str) -> bool {
    matches!(word, "now" | "market" | "cmp" | "instant" | "asap" | "immediately")
}

fn pips_word(word: &str) -> bool {
    matches!(word, "pips" | "pip" | "points" | "point" | "pts" | "pt")
}

fn close_verb(word: &str) -> bool {
    matches!(word, "close" | "exit")
}

fn move_verb(word: &str) -> bool {
    matches!(
        word,
        "move"
            | "set"
            | "put"
            | "adjust"
            | "update"
            | "change"
            | "trail"
            | "new"
            | "modify"
            | "shift"
            | "raise"
            | "lower"
    )
}

// ---------------------------------------------------------------------------------------
// Reading

/// An instrument named in the message.
#[derive(Clone, Debug)]
struct Named {
    /// Where (token index).
    at: usize,
    /// As written, upper-case.
    shown: String,
    /// The source's symbol it resolves to, if any.
    symbol: Option<Symbol>,
    /// What it was tried as (for the message when none matched).
    tried: Vec<String>,
    /// Tokens it spans (`nas 100`: 2).
    width: usize,
}

/// Where a number goes, by the label before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Entry,
    Stop,
    Target,
    /// After `lots` or `risk`: sizes, not levels.
    Skip,
}

/// Levels as written.
#[derive(Debug, Default)]
struct Levels {
    entry: Option<Price>,
    zone_end: Option<Price>,
    stop: Option<Price>,
    stop_pips: Option<Price>,
    targets: Vec<Price>,
    target_pips: Vec<Price>,
    /// Token index of the first stop loss or take profit label.
    first_label: Option<usize>,
}

impl Levels {
    fn any(&self) -> bool {
        self.entry.is_some()
            || self.stop.is_some()
            || self.stop_pips.is_some()
            || !self.targets.is_empty()
            || !self.target_pips.is_empty()
    }
}

/// A word that tells against an instruction, and where it is.
type Marker = Option<(usize, String)>;

/// A management instruction found: what, its base confidence, its name.
type Found = (Intent, i32, &'static str);

struct Scan<'a> {
    tokens: &'a [Token],
    words: Vec<(usize, &'a str)>,
    named: Vec<Named>,
    /// Side words: where, which side, and whether the word is also ordinary English.
    sides: Vec<(usize, Side, bool)>,
    levels: Levels,
    order_kind: Option<&'static str>,
    market: bool,
    result: Marker,
    signed_number: bool,
    promo: Marker,
    hypothetical: Marker,
    question: bool,
}

impl<'a> Scan<'a> {
    fn new(tokens: &'a [Token], symbols: &[Symbol]) -> Self {
        let words: Vec<(usize, &str)> = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t {
                Token::Word(w) => Some((i, w.as_str())),
                _ => None,
            })
            .collect();
        let find = |list: &[&str]| words.iter().find(|(_, w)| list.contains(w)).map(|(i, w)| (*i, (*w).to_owned()));
        let mut scan = Self {
            tokens,
            named: instruments(tokens, symbols),
            sides: words.iter().filter_map(|&(i, w)| side_word(w).map(|(s, weak)| (i, s, weak))).collect(),
            levels: Levels::default(),
            order_kind: None,
            market: words.iter().any(|(_, w)| market_word(w)),
            // `take profit` is a label, not a result.
            result: words
                .iter()
                .enumerate()
                .find(|(k, (_, w))| {
                    RESULT_WORDS.contains(w)
                        && !(w.starts_with("profit") && k.checked_sub(1).is_some_and(|p| words[p].1 == "take"))
                })
                .map(|(_, (i, w))| (*i, (*w).to_owned())),
            signed_number: tokens.contains(&Token::Signed),
            promo: find(PROMO_WORDS),
            hypothetical: find(HYPOTHETICAL_WORDS),
            question: tokens.contains(&Token::Question),
            words,
        };
        scan.read_levels();
        scan
    }

    fn word(&self, index: usize) -> Option<&'a str> {
        match self.tokens.get(index) {
            Some(Token::Word(w)) => Some(w.as_str()),
            _ => None,
        }
    }

    fn has(&self, list: &[&str]) -> bool {
        self.words.iter().any(|(_, w)| list.contains(w))
    }

    fn is_named(&self, index: usize) -> bool {
        self.named.iter().any(|n| n.at == index)
    }

    /// Whether the word at `index` is `limit`/`stop` as an order type: right after a side
    /// (`sell limit`), or after a side and an instrument (`buy gold limit`).
    fn order_type_at(&self, index: usize) -> bool {
        self.sides.iter().any(|(at, ..)| *at + 1 == index || (*at + 2 == index && self.is_named(index - 1)))
    }

    /// Assigns every number to the entry, the stop loss or the take profits by the label
    /// before it; a side, an instrument, `@`, `entry` or `now` open the entry.
    fn read_levels(&mut self) {
        let mut slot: Option<Slot> = None;
        let mut fillers = 0;
        // The slot the number just read went to (a `pips` after it makes it a distance).
        let mut last: Option<Slot> = None;
        let mut signed = false;
        let mut after_entry_number = false;
        for (i, token) in self.tokens.iter().enumerate() {
            let entry_number_before = std::mem::take(&mut after_entry_number);
            match token {
                Token::Word(word) => {
                    let word = word.as_str();
                    if pips_word(word) {
                        if let Some(which) = last.take() {
                            self.read_as_pips(which);
                        }
                        continue;
                    }
                    last = None;
                    let mut label = |slot_now: &mut Option<Slot>, to: Slot| {
                        *slot_now = Some(to);
                        fillers = 0;
                    };
                    if matches!(word, "limit" | "stop") && self.order_type_at(i) {
                        self.order_kind = Some(if word == "limit" { "limit" } else { "stop" });
                        label(&mut slot, Slot::Entry);
                    } else if word == "loss" && self.word(i.wrapping_sub(1)) == Some("stop") {
                        // `stop loss`: the label is open already.
                    } else if word == "profit" && self.word(i.wrapping_sub(1)) == Some("take") {
                    } else if is_sl_word(word) {
                        self.levels.first_label.get_or_insert(i);
                        label(&mut slot, Slot::Stop);
                    } else if tp_word(word) || (word == "take" && self.word(i + 1) == Some("profit")) {
                        self.levels.first_label.get_or_insert(i);
                        label(&mut slot, Slot::Target);
                    } else if matches!(word, "lot" | "lots" | "risk" | "lotsize" | "size" | "volume") {
                        // `0.05 lots`: the size came first and was read as a level; `lot 0.05`
                        // and `risk 1%` give it after.
                        let size_after = matches!(self.tokens.get(i + 1), Some(Token::Number { .. }));
                        if !size_after && matches!(self.tokens.get(i.wrapping_sub(1)), Some(Token::Number { .. })) {
                            self.unassign(i - 1);
                        }
                        label(&mut slot, Slot::Skip);
                    } else if side_word(word).is_some()
                        || self.is_named(i)
                        || ((entry_word(word) || market_word(word)) && slot != Some(Slot::Target))
                    {
                        // `at`, `now` after a take profit label are fillers (`TP at 2360`).
                        label(&mut slot, Slot::Entry);
                    } else {
                        fillers += 1;
                        if fillers > 3 {
                            slot = None;
                        }
                    }
                }
                Token::Signed => {
                    signed = true;
                    last = None;
                }
                Token::Number { value, percent } => {
                    // `+50`, `-30`, `50%` are results and sizes, never levels; the `100` of
                    // `nas 100` is a name, the `1` of `take profit 1: 2362` an index.
                    last = None;
                    let part_of_name = self.named.iter().any(|n| n.at < i && i < n.at + n.width);
                    if !std::mem::take(&mut signed) && !percent && !part_of_name && !self.target_index(i) {
                        last = self.assign(slot, *value, entry_number_before);
                        after_entry_number = last == Some(Slot::Entry);
                    }
                }
                Token::Range(a, b) => {
                    last = None;
                    if std::mem::take(&mut signed) {
                        continue;
                    }
                    let levels = &mut self.levels;
                    match slot {
                        Some(Slot::Entry) if levels.entry.is_none() => {
                            (levels.entry, levels.zone_end) = (Some(*a), Some(*b))
                        }
                        Some(Slot::Target) => levels.targets.extend([*a, *b]),
                        Some(Slot::Stop) if levels.stop.is_none() => levels.stop = Some(*a),
                        _ => {}
                    }
                }
                Token::At => {
                    (slot, fillers, last) = (Some(Slot::Entry), 0, None);
                }
                Token::Question => last = None,
            }
        }
    }

    /// Whether the number at `index` numbers a take profit (`TP 1: 2362`, `take profit 2 2356`)
    /// rather than giving it: a whole number up to 9 right after the label, a number after it.
    fn target_index(&self, index: usize) -> bool {
        let Some(Token::Number { value, .. }) = self.tokens.get(index) else { return false };
        let small = value.raw() % mirror_model::SCALE == 0 && (1..=9).contains(&(value.raw() / mirror_model::SCALE));
        let after_label = self.word(index.wrapping_sub(1)).is_some_and(|w| tp_word(w) || w == "profit");
        small && after_label && matches!(self.tokens.get(index + 1), Some(Token::Number { .. } | Token::Range(..)))
    }

    fn assign(&mut self, slot: Option<Slot>, value: Price, after_entry_number: bool) -> Option<Slot> {
        let levels = &mut self.levels;
        match slot? {
            Slot::Entry if levels.entry.is_none() => {
                levels.entry = Some(value);
                Some(Slot::Entry)
            }
            // `2350/2345`: a second number right after the entry closes a zone.
            Slot::Entry if after_entry_number && levels.zone_end.is_none() => {
                levels.zone_end = Some(value);
                None
            }
            Slot::Stop if levels.stop.is_none() && levels.stop_pips.is_none() => {
                levels.stop = Some(value);
                Some(Slot::Stop)
            }
            Slot::Target => {
                levels.targets.push(value);
                Some(Slot::Target)
            }
            _ => None,
        }
    }

    /// The number before a size word (`0.05 lots`) was taken as a level: take it back.
    fn unassign(&mut self, index: usize) {
        let Some(Token::Number { value, .. }) = self.tokens.get(index) else { return };
        let levels = &mut self.levels;
        if levels.entry == Some(*value) && levels.zone_end.is_none() {
            levels.entry = None;
        } else if levels.stop == Some(*value) {
            levels.stop = None;
        } else if levels.targets.last() == Some(value) {
            levels.targets.pop();
        }
    }

    /// `SL 30 pips`: the number just read was a distance. After a price (`TP 2360 (100
    /// pips)`) it only describes that price.
    fn read_as_pips(&mut self, which: Slot) {
        let levels = &mut self.levels;
        match which {
            Slot::Stop => levels.stop_pips = levels.stop.take(),
            Slot::Target => {
                if let Some(value) = levels.targets.pop()
                    && levels.targets.is_empty()
                {
                    levels.target_pips.push(value);
                }
            }
            Slot::Entry => levels.entry = None,
            Slot::Skip => {}
        }
    }

    /// The side and instrument of an open: a side word next to a named instrument (within
    /// three words; right next to it for `long`/`short`, which are ordinary words too).
    fn side_and_instrument(&self) -> Option<(usize, Side, &Named)> {
        let mut best: Option<(usize, usize, Side, &Named)> = None;
        for &(at, side, weak) in &self.sides {
            for named in &self.named {
                let distance = at.abs_diff(named.at);
                let limit = if weak { 1 } else { 3 };
                if distance <= limit && best.is_none_or(|(d, ..)| distance < d) {
                    best = Some((distance, at, side, named));
                }
            }
        }
        best.map(|(_, at, side, named)| (at, side, named))
    }

    fn verdict(&self) -> Parsed {
        let management = self.management();
        // A message that starts managing (`close gold buy at 2360`) is not an open.
        let manages_first =
            |side_at: usize| self.words.iter().any(|(i, w)| *i < side_at && (self.close_verb_at(*i) || cancel_verb(w)));
        match self.side_and_instrument() {
            Some((at, side, named)) if management.is_none() || (self.levels.any() && !manages_first(at)) => {
                self.open_verdict(side, named)
            }
            _ => match management {
                Some(found) => self.management_verdict(found),
                None => self.nothing(),
            },
        }
    }

    fn nothing(&self) -> Parsed {
        let reason = match (&self.result, &self.promo, self.sides.first(), self.named.first()) {
            (Some((_, word)), ..) => format!("reads like a results post (`{word}`), not an instruction"),
            (_, Some((_, word)), ..) => format!("reads like a promotion (`{word}`), not an instruction"),
            (_, _, Some(_), None) => "a side but no instrument next to it".to_owned(),
            (_, _, None, Some(named)) => format!("{} named, but no side (buy or sell) next to it", named.shown),
            (_, _, Some(_), Some(_)) => "a side and an instrument, but not next to each other".to_owned(),
            _ => "no trade instruction found".to_owned(),
        };
        let confidence = if self.sides.is_empty() && self.named.is_empty() { 0 } else { 20 };
        Parsed { reading: Reading::NotASignal, confidence_pct: confidence, reason }
    }

    /// Points off for what makes a message something other than an instruction, and why.
    /// An open's own advice after its levels (`move SL to BE after TP1`) is not held
    /// against it; results words are, wherever they are.
    fn penalties(&self, open: bool) -> (i32, Vec<String>) {
        let mut points = 0;
        let mut why = Vec::new();
        if open {
            if let Some((_, word)) = &self.result {
                points += PENALTY_RESULT;
                why.push(format!("reads like a results post (`{word}`)"));
            }
            if self.signed_number {
                points += PENALTY_SIGNED;
                why.push("a signed figure (`+50`) as in results".to_owned());
            }
        }
        if let Some((_, word)) = &self.promo {
            points += PENALTY_PROMO;
            why.push(format!("reads like a promotion (`{word}`)"));
        }
        if let Some((at, word)) = &self.hypothetical
            && !(open && self.levels.first_label.is_some_and(|label| label < *at))
        {
            points += PENALTY_CONDITION;
            why.push(format!("conditional or a plan (`{word}`)"));
        }
        if self.question {
            points += PENALTY_QUESTION;
            why.push("a question".to_owned());
        }
        (points, why)
    }

    fn open_verdict(&self, side: Side, named: &Named) -> Parsed {
        let levels = &self.levels;
        // A side next to an instrument is not enough on its own ("buying gold for the long
        // term"): an entry, `now`, or a level must come with it.
        let mut score = SCORE_SIDE + SCORE_INSTRUMENT;
        if levels.entry.is_some() || self.market {
            score += SCORE_ENTRY;
        }
        if levels.stop.is_some() || levels.stop_pips.is_some() {
            score += SCORE_STOP;
        }
        if !levels.targets.is_empty() || !levels.target_pips.is_empty() {
            score += SCORE_TARGET;
        }
        let (minus, why) = self.penalties(true);
        let confidence = clamp_pct(score - minus);
        if confidence < CONFIDENCE_MIN {
            let reason = format!(
                "{side} {} reads like a signal, but {}; confidence {} is below {}",
                named.shown,
                if why.is_empty() { "too little is given".to_owned() } else { why.join(", ") },
                fraction_text(confidence),
                fraction_text(CONFIDENCE_MIN),
            );
            return Parsed { reading: Reading::NotASignal, confidence_pct: confidence, reason };
        }
        let refuse = |reason: String| Parsed { reading: Reading::Refused, confidence_pct: confidence, reason };
        let mut distinct: Vec<&Named> = Vec::new();
        for n in &self.named {
            if !distinct.iter().any(|d| (d.symbol.is_some() && d.symbol == n.symbol) || d.shown == n.shown) {
                distinct.push(n);
            }
        }
        if distinct.len() > 1 {
            let names: Vec<&str> = distinct.iter().map(|n| n.shown.as_str()).collect();
            return refuse(format!("more than one instrument ({}); one signal per message", names.join(", ")));
        }
        if self.sides.iter().any(|(_, s, weak)| *s != side && !weak) {
            return refuse("both buy and sell in one message; one signal per message".to_owned());
        }
        let Some(symbol) = named.symbol else { return refuse(unknown(named)) };
        match self.open_intent(symbol, side) {
            Ok((intent, summary)) => {
                Parsed { reading: Reading::Signal(Intent::Open(intent)), confidence_pct: confidence, reason: summary }
            }
            Err(reason) => refuse(reason),
        }
    }

    fn open_intent(&self, symbol: Symbol, side: Side) -> Result<(OpenIntent, String), String> {
        let levels = &self.levels;
        let entry = levels.entry;
        let kind = match (self.order_kind, entry) {
            (None, _) => OrderKind::Market,
            (Some("limit"), Some(price)) => OrderKind::Limit { price },
            (Some(_), Some(price)) => OrderKind::Stop { price },
            (Some(kind), None) => return Err(format!("a {side} {kind} order needs a price, and none is given")),
        };
        let sign = side.sign();
        let stop_loss = match (levels.stop, levels.stop_pips) {
            (Some(price), _) => Some(price),
            (None, Some(pips)) => Some(from_pips(symbol, entry, pips, -sign, "stop loss")?),
            (None, None) => None,
        };
        let mut targets = levels.targets.clone();
        for pips in &levels.target_pips {
            targets.push(from_pips(symbol, entry, *pips, sign, "take profit")?);
        }
        check_levels(side, entry, levels.zone_end, stop_loss, &targets)?;
        let intent = OpenIntent {
            symbol,
            side,
            kind,
            entry,
            zone_end: levels.zone_end,
            stop_loss,
            take_profit: targets.first().copied(),
            more_targets: targets.get(1..).unwrap_or_default().to_vec(),
        };
        let summary = intent.summary();
        Ok((intent, summary))
    }

    /// Whether the word at `index` is `close`/`exit` as a verb (not `close to`, `close above`).
    fn close_verb_at(&self, index: usize) -> bool {
        self.word(index).is_some_and(close_verb)
            && !matches!(self.word(index + 1), Some("to" | "above" | "below" | "under" | "over" | "of" | "candle"))
    }

    /// Whether an entry word is where a stop loss goes: `entry`, `breakeven`, `break even`,
    /// or `be` right after `to`/`at`/`sl` (`SL to BE`, not `will be`).
    fn to_entry(&self) -> bool {
        self.words.iter().any(|&(i, w)| match w {
            "entry" | "breakeven" | "cost" | "entrypoint" => true,
            "be" => matches!(self.word(i.wrapping_sub(1)), Some("to" | "at" | "sl" | "on")),
            "break" => self.word(i + 1) == Some("even"),
            _ => false,
        })
    }

    /// The price right after a label (`SL: 2345`, `stop to 2345`), not a signed figure or a
    /// distance in pips.
    fn level_after(&self, at: usize) -> Option<Price> {
        let mut rest = self.tokens[at + 1..].iter().enumerate().take(4);
        rest.find_map(|(k, t)| match t {
            Token::Number { value, percent: false } => {
                let pips = matches!(self.tokens.get(at + k + 2), Some(Token::Word(w)) if pips_word(w));
                (!pips).then_some(*value)
            }
            _ => None,
        })
        .filter(|_| !self.tokens[at + 1..].iter().take(4).any(|t| *t == Token::Signed))
    }

    /// Every management instruction in the message.
    fn management(&self) -> Option<Vec<Found>> {
        let mut found: Vec<Found> = Vec::new();
        self.closing(&mut found);
        let moving = self.words.iter().any(|(_, w)| move_verb(w));
        // After a results word (`TP1 hit, SL to BE`) only a plain instruction counts.
        let plain = moving || self.result.is_none();
        let sl_at = self.words.iter().find(|(_, w)| is_sl_word(w)).map(|(i, _)| *i);
        let tp_at = self.words.iter().find(|(_, w)| tp_word(w)).map(|(i, _)| *i);
        let to_entry = self.to_entry();
        let instructed_to_entry = to_entry && (plain || self.has(&["to"]));
        match sl_at.map(|at| (at, self.level_after(at))) {
            Some(_) if instructed_to_entry => found.push((Intent::StopToEntry, 85, "move the stop loss to entry")),
            Some((_, Some(price))) if plain => {
                found.push((Intent::MoveStop(price), if moving { 85 } else { 65 }, "move the stop loss"));
            }
            Some(_) => {}
            None if instructed_to_entry && (moving || self.has(&["breakeven"])) => {
                found.push((Intent::StopToEntry, if moving { 80 } else { 65 }, "move the stop loss to entry"));
            }
            None if self.has(&["riskfree"]) || (self.has(&["risk"]) && self.has(&["free"])) => {
                found.push((Intent::StopToEntry, 65, "move the stop loss to entry"));
            }
            None => {}
        }
        if let Some(at) = tp_at
            && plain
            && let Some(price) = self.level_after(at)
        {
            found.push((Intent::MoveTarget(price), if moving { 85 } else { 65 }, "move the take profit"));
        }
        if self.words.iter().any(|(_, w)| cancel_verb(w)) {
            let object = self.has(&["limit", "order", "orders", "pending", "stop", "entry"]);
            found.retain(|(intent, ..)| *intent != Intent::StopToEntry || !object);
            found.push((Intent::CancelPending, if object { 85 } else { 65 }, "cancel the pending order"));
        }
        (!found.is_empty()).then_some(found)
    }

    /// Closes: partial (`close half`, `take 50%`), of all, of an instrument, or of the last.
    fn closing(&self, found: &mut Vec<Found>) {
        let close_at = self.words.iter().map(|(i, _)| *i).find(|i| self.close_verb_at(*i));
        let take_at =
            self.words.iter().find(|(_, w)| matches!(*w, "take" | "book" | "secure" | "bank")).map(|(i, _)| *i);
        let Some(verb_at) = close_at.or(take_at) else { return };
        let first = self.words.first().is_some_and(|(i, _)| *i == verb_at);
        match self.fraction() {
            Some((closed, of)) if closed == of => found.push((Intent::Close, 85, "close")),
            Some((closed, of)) if closed > 0 && closed < of => {
                found.push((Intent::PartialClose { closed, of }, 85, "partial close"));
            }
            Some(_) => {}
            None if self.has(&["partial", "partials", "partially"]) => {
                found.push((Intent::PartialClose { closed: 0, of: 0 }, 85, "partial close"));
            }
            None if close_at.is_some() => {
                let base = if first || self.market { 85 } else { 70 };
                match (self.has(&["all", "everything"]), self.named.first()) {
                    (_, Some(named)) => match named.symbol {
                        Some(symbol) => found.push((Intent::CloseSymbol(symbol), base, "close an instrument")),
                        None => found.push((Intent::CloseAll, base, "close an instrument")),
                    },
                    (true, None) => found.push((Intent::CloseAll, base, "close all")),
                    (false, None) => found.push((Intent::Close, base, "close")),
                }
            }
            None => {}
        }
    }

    /// `half`, `50%`, `a third`: closed parts out of a whole.
    fn fraction(&self) -> Option<(u32, u32)> {
        for (word, parts) in [("half", 2), ("third", 3), ("quarter", 4)] {
            if self.has(&[word]) {
                return Some((1, parts));
            }
        }
        self.tokens.iter().find_map(|t| match t {
            Token::Number { value, percent: true } if value.raw() % mirror_model::SCALE == 0 => {
                u32::try_from(value.raw() / mirror_model::SCALE).ok().filter(|p| *p <= 100).map(|p| (p, 100))
            }
            _ => None,
        })
    }

    fn management_verdict(&self, found: Vec<Found>) -> Parsed {
        let (mut minus, mut why) = self.penalties(false);
        // A price in a close (`close half at 2360`) makes it an order for later.
        let closes = found.iter().any(|(intent, ..)| {
            matches!(intent, Intent::Close | Intent::CloseAll | Intent::CloseSymbol(_) | Intent::PartialClose { .. })
        });
        let priced = self.tokens.iter().enumerate().any(|(i, t)| {
            matches!(t, Token::Number { percent: false, .. })
                && i.checked_sub(1).is_none_or(|p| self.tokens[p] != Token::Signed)
                && !matches!(self.tokens.get(i + 1), Some(Token::Word(w)) if pips_word(w))
        });
        if closes && priced && found.len() == 1 {
            minus += 30;
            why.push("a close at a price, for later".to_owned());
        }
        let names: Vec<&str> = found.iter().map(|(.., name)| *name).collect();
        let confidence = clamp_pct(found.iter().map(|(_, base, _)| *base).max().unwrap_or(0) - minus);
        if confidence < CONFIDENCE_MIN {
            let reason = format!(
                "reads like `{}`, but {}; confidence {} is below {}",
                names.join("`, `"),
                if why.is_empty() { "too vague".to_owned() } else { why.join(", ") },
                fraction_text(confidence),
                fraction_text(CONFIDENCE_MIN),
            );
            return Parsed { reading: Reading::NotASignal, confidence_pct: confidence, reason };
        }
        let refuse = |reason: String| Parsed { reading: Reading::Refused, confidence_pct: confidence, reason };
        if found.len() > 1 {
            return refuse(format!(
                "more than one instruction ({}); not executed: one instruction per message",
                names.join(", ")
            ));
        }
        let Some((intent, _, name)) = found.into_iter().next() else { return self.nothing() };
        let reason = match &intent {
            Intent::PartialClose { closed: 0, .. } => {
                return refuse("a partial close without a size (half, 50%); not executed".to_owned());
            }
            Intent::CloseAll if !self.named.is_empty() => return refuse(unknown(&self.named[0])),
            Intent::PartialClose { closed, of } => format!("{name}: {closed}/{of} of the most recent position"),
            Intent::MoveStop(price) | Intent::MoveTarget(price) => format!("{name} to {price}"),
            Intent::CloseSymbol(symbol) => format!("close {symbol}"),
            _ => name.to_owned(),
        };
        Parsed { reading: Reading::Signal(intent), confidence_pct: confidence, reason }
    }
}

impl OpenIntent {
    /// In words, for answers and notes.
    pub(crate) fn summary(&self) -> String {
        let mut summary = format!("{} {}", self.side, self.symbol);
        match self.kind {
            OrderKind::Market => {
                summary.push_str(" at market");
                if let Some(entry) = self.entry {
                    summary.push_str(&format!(", entry {entry}"));
                }
            }
            OrderKind::Limit { price } => summary.push_str(&format!(" limit {price}")),
            OrderKind::Stop { price } => summary.push_str(&format!(" stop {price}")),
        }
        if let Some(end) = self.zone_end {
            summary.push_str(&format!(" (zone to {end})"));
        }
        if let Some(price) = self.stop_loss {
            summary.push_str(&format!(", SL {price}"));
        }
        if let Some(price) = self.take_profit {
            summary.push_str(&format!(", TP {price}"));
        }
        if !self.more_targets.is_empty() {
            let rest: Vec<String> = self.more_targets.iter().map(ToString::to_string).collect();
            summary.push_str(&format!("; TP1 used, {} not copied (one take profit per copy)", rest.join(", ")));
        }
        summary
    }
}

fn cancel_verb(word: &str) -> bool {
    matches!(word, "cancel" | "delete" | "remove")
}

/// A confidence in percent as the fraction answers show (`0.6`).
fn fraction_text(pct: u8) -> String {
    format!("{}", f64::from(pct) / 100.0)
}

/// A level `pips` away from the entry, toward `toward` (+1 up, -1 down).
fn from_pips(symbol: Symbol, entry: Option<Price>, pips: Price, toward: i64, what: &str) -> Result<Price, String> {
    let Some(entry) = entry else {
        return Err(format!("the {what} is given in pips ({pips}) and there is no entry price to measure it from"));
    };
    let Some(pip) = pip_size(symbol) else {
        return Err(format!(
            "the {what} is given in pips ({pips}), and a pip on {symbol} has no agreed size; give it as a price"
        ));
    };
    let distance = i128::from(pips.raw()) * i128::from(pip.raw()) / i128::from(mirror_model::SCALE);
    let level = i128::from(entry.raw()) + i128::from(toward) * distance;
    i64::try_from(level)
        .ok()
        .filter(|raw| *raw > 0)
        .map(Price::from_raw)
        .ok_or_else(|| format!("the {what} {pips} pips from {entry} is not a price"))
}

fn clamp_pct(points: i32) -> u8 {
    u8::try_from(points.clamp(0, 100)).unwrap_or(0)
}

fn unknown(named: &Named) -> String {
    let tried = named.tried.join(", ");
    if tried == named.shown {
        format!("unknown symbol {}: this webhook's source does not send it", named.shown)
    } else {
        format!("unknown symbol {} (tried {tried}): this webhook's source sends none of them", named.shown)
    }
}

/// The instruments named: aliases, currency pairs, and the source's own symbols.
fn instruments(tokens: &[Token], symbols: &[Symbol]) -> Vec<Named> {
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let number_text = |i: usize| match tokens.get(i) {
        Some(Token::Number { value, percent: false }) => Some(value.to_string()),
        _ => None,
    };
    let resolve = |candidates: &[String]| {
        candidates.iter().find_map(|c| symbols.iter().find(|s| s.as_str().eq_ignore_ascii_case(c)).copied())
    };
    let mut named = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let Some(text) = word(i) else {
            i += 1;
            continue;
        };
        // `us 30`, `nas 100`, `ger 40`: the name split from its number.
        let joined = match (text, number_text(i + 1)) {
            ("us" | "nas" | "ger" | "de" | "uk" | "ws" | "dj" | "spx" | "sp", Some(n)) => Some(format!("{text}{n}")),
            _ => None,
        };
        let two = word(i + 1).map(|next| [text, next]);
        let alias = ALIASES.iter().find(|(words, _)| {
            (words.len() == 2 && two.is_some_and(|t| t == **words))
                || (words.len() == 1 && (words[0] == text || joined.as_deref() == Some(words[0])))
        });
        let own = symbols.iter().find(|s| s.as_str().eq_ignore_ascii_case(text));
        let pair = text.len() == 6
            && CURRENCIES.contains(&&text[..3])
            && CURRENCIES.contains(&&text[3..])
            && text[..3] != text[3..];
        let (shown, candidates, width): (String, Vec<String>, usize) = if let Some((words, candidates)) = alias {
            let width = if words.len() == 2 || joined.as_deref() == Some(words[0]) { 2 } else { 1 };
            let shown =
                if width == 2 && words.len() == 1 { joined.clone().unwrap_or_default() } else { words.join(" ") };
            let mut candidates: Vec<String> = candidates.iter().map(|c| (*c).to_owned()).collect();
            if words.len() == 1 && !candidates.iter().any(|c| c.eq_ignore_ascii_case(words[0])) {
                candidates.push(words[0].to_ascii_uppercase());
            }
            (shown.to_ascii_uppercase(), candidates, width)
        } else if own.is_some() || pair {
            (text.to_ascii_uppercase(), vec![text.to_ascii_uppercase()], 1)
        } else {
            i += 1;
            continue;
        };
        named.push(Named { at: i, symbol: resolve(&candidates), shown, tried: candidates, width });
        i += width;
    }
    named
}

/// A pip's size where it is agreed: forex pairs (0.01 for yen pairs, 0.0001 otherwise).
fn pip_size(symbol: Symbol) -> Option<Price> {
    let text = symbol.as_str().to_ascii_lowercase();
    let forex = text.len() == 6
        && CURRENCIES.contains(&&text[..3])
        && CURRENCIES.contains(&&text[3..])
        && !matches!(&text[..3], "xau" | "xag");
    if !forex {
        return None;
    }
    Price::parse(if text.ends_with("jpy") { "0.01" } else { "0.0001" }).ok()
}

/// A buy's stop loss below its entry and take profits above it; the reverse for a sell; and
/// every level within half the entry's value of it (a stop loss of `30` on gold at 2350 is a
/// distance in pips, not a price).
fn check_levels(
    side: Side,
    entry: Option<Price>,
    zone_end: Option<Price>,
    stop_loss: Option<Price>,
    targets: &[Price],
) -> Result<(), String> {
    let (low, high) = match (entry, zone_end) {
        (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
        (a, _) => (a, a),
    };
    // Whether `level` is on the winning side of `reference`: above it for a buy.
    let winning = |level: Price, reference: Price| match side {
        Side::Buy => level > reference,
        Side::Sell => level < reference,
    };
    let stop_ok = |stop: Price, reference: Price| winning(reference, stop);
    let target_ok = winning;
    // For a buy the stop loss must be under the lowest entry and targets over the highest.
    let (stop_ref, target_ref) = match side {
        Side::Buy => (low, high),
        Side::Sell => (high, low),
    };
    let (stop_word, target_word) = match side {
        Side::Buy => ("below", "above"),
        Side::Sell => ("above", "below"),
    };
    if let Some(entry) = entry {
        for (what, level) in
            stop_loss.iter().map(|l| ("stop loss", *l)).chain(targets.iter().map(|l| ("take profit", *l)))
        {
            let distance = i128::from(level.raw()) - i128::from(entry.raw());
            if distance.abs() * 2 > i128::from(entry.raw()) {
                return Err(format!(
                    "the {what} {level} is far from the entry {entry} (a distance in pips? give it as a price)"
                ));
            }
        }
    }
    if let (Some(sl), Some(reference)) = (stop_loss, stop_ref)
        && !stop_ok(sl, reference)
    {
        return Err(format!("a {side} with its stop loss {sl} not {stop_word} its entry {reference}"));
    }
    for tp in targets {
        if let Some(reference) = target_ref
            && !target_ok(*tp, reference)
        {
            return Err(format!("a {side} with a take profit {tp} not {target_word} its entry {reference}"));
        }
    }
    if entry.is_none()
        && let (Some(sl), Some(tp)) = (stop_loss, targets.first())
        && !target_ok(*tp, sl)
    {
        return Err(format!("a {side} with its take profit {tp} not {target_word} its stop loss {sl}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
