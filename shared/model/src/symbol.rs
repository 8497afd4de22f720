//! Instrument symbols as small inline strings.

use std::fmt;
use std::str::FromStr;

/// Longest symbol accepted, in bytes. Broker symbols (`EURUSD.raw`, `MNQZ6`, `XAUUSD.r`,
/// `US30.cash`) are far shorter; 31 keeps the whole value in 32 bytes.
pub const SYMBOL_LEN_MAX: usize = 31;

/// An instrument's symbol as its broker spells it, stored inline (`Copy`, no heap), so that
/// copying a symbol on the hot path never allocates.
///
/// Accepted: 1 to 31 printable ASCII characters without spaces.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Symbol {
    len: u8,
    bytes: [u8; SYMBOL_LEN_MAX],
}

/// Why a piece of text is not a valid symbol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Nothing there.
    #[error("expected a symbol, got an empty string")]
    Empty,
    /// Over [`SYMBOL_LEN_MAX`] bytes.
    #[error("symbol `{0}` is longer than 31 characters")]
    TooLong(String),
    /// A space, control character or non-ASCII character.
    #[error("symbol `{text}` contains {found:?}; symbols are printable ASCII without spaces")]
    BadCharacter {
        /// The text as given.
        text: String,
        /// The first offending character.
        found: char,
    },
}

impl Symbol {
    /// Validates and stores `text`.
    pub fn new(text: &str) -> Result<Self, SymbolError> {
        if text.is_empty() {
            return Err(SymbolError::Empty);
        }
        if let Some(found) = text.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(SymbolError::BadCharacter { text: text.to_owned(), found });
        }
        if text.len() > SYMBOL_LEN_MAX {
            return Err(SymbolError::TooLong(text.to_owned()));
        }
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Self { len: u8::try_from(text.len()).expect("length checked above"), bytes })
    }

    /// The symbol text.
    pub fn as_str(&self) -> &str {
        // Only validated ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("symbols hold ASCII")
    }

    /// `prefix + self + suffix`, for broker naming rules (`EURUSD` → `EURUSD.r`).
    pub fn decorated(&self, prefix: &str, suffix: &str) -> Result<Self, SymbolError> {
        if prefix.is_empty() && suffix.is_empty() {
            return Ok(*self);
        }
        // The symbol is valid already: only the decoration needs checking.
        for part in [prefix, suffix] {
            if let Some(found) = part.chars().find(|c| !c.is_ascii_graphic()) {
                return Err(SymbolError::BadCharacter { text: format!("{prefix}{self}{suffix}"), found });
            }
        }
        let len = usize::from(self.len);
        let total = prefix.len() + len + suffix.len();
        if total > SYMBOL_LEN_MAX {
            return Err(SymbolError::TooLong(format!("{prefix}{self}{suffix}")));
        }
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        bytes[..prefix.len()].copy_from_slice(prefix.as_bytes());
        bytes[prefix.len()..prefix.len() + len].copy_from_slice(&self.bytes[..len]);
        bytes[prefix.len() + len..total].copy_from_slice(suffix.as_bytes());
        Ok(Self { len: u8::try_from(total).expect("checked above"), bytes })
    }

    /// The symbol with `prefix` and `suffix` removed where present (`EURUSD.x` → `EURUSD`).
    /// Removing either must leave something; otherwise the symbol is returned whole.
    pub fn stripped(&self, prefix: &str, suffix: &str) -> Self {
        let text = &self.bytes[..usize::from(self.len)];
        let mut start = 0;
        let mut end = text.len();
        if !prefix.is_empty() && text.starts_with(prefix.as_bytes()) {
            start = prefix.len();
        }
        if !suffix.is_empty() && text[start..].ends_with(suffix.as_bytes()) {
            end -= suffix.len();
        }
        if (start, end) == (0, text.len()) || start >= end {
            return *self;
        }
        // A slice of valid ASCII is valid ASCII.
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        bytes[..end - start].copy_from_slice(&text[start..end]);
        Self { len: u8::try_from(end - start).expect("shorter than before"), bytes }
    }
}

impl ArchivedSymbol {
    /// The symbol text, read in place.
    pub fn as_str(&self) -> &str {
        let len = usize::from(self.len).min(SYMBOL_LEN_MAX);
        std::str::from_utf8(&self.bytes[..len]).unwrap_or("?")
    }

    /// The native value.
    pub fn to_native(&self) -> Symbol {
        Symbol { len: self.len, bytes: self.bytes }
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl FromStr for Symbol {
    type Err = SymbolError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl serde::Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_broker_symbols() {
        for text in ["EURUSD", "EURUSD.r", "MNQZ6", "US30.cash", "XAU/USD", "BTC-PERP", "#AAPL"] {
            assert_eq!(Symbol::new(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn refuses_bad_symbols_with_reasons() {
        assert_eq!(Symbol::new(""), Err(SymbolError::Empty));
        assert!(matches!(Symbol::new("EUR USD"), Err(SymbolError::BadCharacter { found: ' ', .. })));
        assert!(matches!(Symbol::new("EURÜSD"), Err(SymbolError::BadCharacter { .. })));
        assert!(matches!(Symbol::new(&"X".repeat(32)), Err(SymbolError::TooLong(_))));
        assert!(Symbol::new(&"X".repeat(31)).is_ok());
    }

    #[test]
    fn decorates_and_strips() {
        let eurusd = Symbol::new("EURUSD").unwrap();
        assert_eq!(eurusd.decorated("", ".r").unwrap().as_str(), "EURUSD.r");
        assert_eq!(eurusd.decorated("m", "").unwrap().as_str(), "mEURUSD");
        let leader = Symbol::new("EURUSD.x").unwrap();
        assert_eq!(leader.stripped("", ".x"), eurusd);
        assert_eq!(eurusd.stripped("", ".x"), eurusd);
        assert!(Symbol::new(&"X".repeat(30)).unwrap().decorated("", ".r").is_err());
        assert!(matches!(eurusd.decorated("", " r"), Err(SymbolError::BadCharacter { found: ' ', .. })));
        assert_eq!(Symbol::new("mEURUSD.x").unwrap().stripped("m", ".x"), eurusd);
        // Stripping never leaves nothing.
        let bare = Symbol::new(".x").unwrap();
        assert_eq!(bare.stripped("", ".x"), bare);
        assert_eq!(Symbol::new("m").unwrap().stripped("m", ""), Symbol::new("m").unwrap());
    }
}
