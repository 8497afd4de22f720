//! Identifiers: accounts, signals, orders, positions, sources, platforms.

use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty), $archived:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            serde::Serialize, serde::Deserialize,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash))]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl $archived {
            /// The native value (by reference, like every archived type's `to_native`).
            #[allow(clippy::wrong_self_convention)]
            pub fn to_native(&self) -> $name {
                $name(self.0.to_native())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// An account known to the engine. Derived from the account's configured name (see
    /// [`AccountId::from_name`]) so it stays the same across restarts and config reorderings.
    AccountId(u32), ArchivedAccountId, "acct#"
);
id_type!(
    /// A signal, unique and increasing within one engine's life (and across restarts, see
    /// the engine's id generator).
    SignalId(u64), ArchivedSignalId, "sig#"
);
id_type!(
    /// A position as the broker numbers it (a ticket, a position id).
    PositionId(u64), ArchivedPositionId, "pos#"
);
id_type!(
    /// An order as the broker numbers it.
    BrokerOrderId(u64), ArchivedBrokerOrderId, "ord#"
);
id_type!(
    /// The leader's own handle on the thing a signal is about: its position id or, for a
    /// pending order, its order id. Followers key their copies by (origin, leader ref).
    LeaderRef(u64), ArchivedLeaderRef, "lead#"
);
id_type!(
    /// An external signal source: a webhook, a REST client, a file drop, a manual ticket.
    SourceId(u32), ArchivedSourceId, "src#"
);

impl AccountId {
    /// A stable id from the account's configured name (FNV-1a, 32 bits). The engine refuses
    /// a config in which two names collide, so within one config the id is unique.
    pub fn from_name(name: &str) -> Self {
        Self(fnv1a_32(name.as_bytes()))
    }
}

impl SourceId {
    /// A stable id from the source's configured name.
    pub fn from_name(name: &str) -> Self {
        Self(fnv1a_32(name.as_bytes()))
    }
}

fn fnv1a_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Where a signal comes from: a leader account, or an external source.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash))]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A leader account's own trading.
    Account(AccountId),
    /// A webhook, API call, file or manual ticket.
    Source(SourceId),
}

impl ArchivedOrigin {
    /// The native value.
    pub fn to_native(&self) -> Origin {
        match self {
            Self::Account(id) => Origin::Account(id.to_native()),
            Self::Source(id) => Origin::Source(id.to_native()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account(id) => write!(f, "{id}"),
            Self::Source(id) => write!(f, "{id}"),
        }
    }
}

/// The deterministic client order id of a follower order: a function of the signal, the
/// follower and the leg, so that resending after a crash or a disconnect is idempotent at the
/// broker.
///
/// Text form `m<signal hex>.<account hex>.<leg>` (at most 32 characters), e.g.
/// `m18c4f2a9b01.7d3e51a0.0`; it parses back.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq, Hash))]
pub struct ClientOrderId {
    /// The signal the order serves.
    pub signal: SignalId,
    /// The account placing it.
    pub account: AccountId,
    /// Which of the signal's orders for this account (0 for the open; closes of several
    /// copies of one leader position number 1, 2, …).
    pub leg: u16,
}

impl ClientOrderId {
    /// The id of `leg` of `signal` on `account`.
    pub const fn new(signal: SignalId, account: AccountId, leg: u16) -> Self {
        Self { signal, account, leg }
    }
}

impl ArchivedClientOrderId {
    /// The native value.
    pub fn to_native(&self) -> ClientOrderId {
        ClientOrderId { signal: self.signal.to_native(), account: self.account.to_native(), leg: self.leg.to_native() }
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{:x}.{:x}.{}", self.signal.0, self.account.0, self.leg)
    }
}

impl fmt::Debug for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A client order id's text did not have the `m<hex>.<hex>.<n>` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a Mirror client order id (expected m<signal hex>.<account hex>.<leg>)")]
pub struct ClientOrderIdError(pub String);

impl FromStr for ClientOrderId {
    type Err = ClientOrderIdError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ClientOrderIdError(text.to_owned());
        let body = text.strip_prefix('m').ok_or_else(error)?;
        let mut parts = body.split('.');
        let (Some(signal), Some(account), Some(leg), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(error());
        };
        Ok(Self {
            signal: SignalId(u64::from_str_radix(signal, 16).map_err(|_| error())?),
            account: AccountId(u32::from_str_radix(account, 16).map_err(|_| error())?),
            leg: leg.parse().map_err(|_| error())?,
        })
    }
}

impl serde::Serialize for ClientOrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ClientOrderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The trading platform an account lives on.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Mirror's simulated broker (paper trading).
    Sim,
    /// Spotware cTrader (Open API).
    Ctrader,
    /// MetaTrader 4 through the Mirror EA.
    Mt4,
    /// MetaTrader 5 through the Mirror EA.
    Mt5,
    /// Devexperts DXtrade.
    Dxtrade,
    /// TradeLocker.
    Tradelocker,
    /// Match-Trader.
    Matchtrader,
    /// Tradovate (futures).
    Tradovate,
    /// Rithmic (futures).
    Rithmic,
    /// ProjectX / TopstepX (futures).
    Projectx,
    /// NinjaTrader (futures).
    Ninjatrader,
}

impl Platform {
    /// Lower-case name as used in config files.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Sim => "sim",
            Self::Ctrader => "ctrader",
            Self::Mt4 => "mt4",
            Self::Mt5 => "mt5",
            Self::Dxtrade => "dxtrade",
            Self::Tradelocker => "tradelocker",
            Self::Matchtrader => "matchtrader",
            Self::Tradovate => "tradovate",
            Self::Rithmic => "rithmic",
            Self::Projectx => "projectx",
            Self::Ninjatrader => "ninjatrader",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an account holds positions.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "snake_case")]
pub enum AccountMode {
    /// One net position per symbol (futures, MT5 netting): an opposite order reduces it.
    #[default]
    Netting,
    /// Any number of positions per symbol, each with its own id (MT4, MT5 hedging,
    /// cTrader hedged): closing means closing a position by id.
    Hedging,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_order_ids_round_trip_through_text() {
        let id = ClientOrderId::new(SignalId(0x018c_4f2a_9b01), AccountId(0x7d3e_51a0), 3);
        let text = id.to_string();
        assert_eq!(text, "m18c4f2a9b01.7d3e51a0.3");
        assert_eq!(text.parse::<ClientOrderId>().unwrap(), id);
        let widest = ClientOrderId::new(SignalId(u64::MAX), AccountId(u32::MAX), u16::MAX);
        assert!(widest.to_string().len() <= 32);
        assert_eq!(widest.to_string().parse::<ClientOrderId>().unwrap(), widest);
    }

    #[test]
    fn client_order_id_text_is_validated() {
        for bad in ["", "m", "x1.2.3", "m1.2", "m1.2.3.4", "mzz.1.0", "m1.2.-1", "m1.2.70000"] {
            assert!(bad.parse::<ClientOrderId>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn account_ids_are_stable_functions_of_the_name() {
        assert_eq!(AccountId::from_name("f-01"), AccountId::from_name("f-01"));
        assert_ne!(AccountId::from_name("f-01"), AccountId::from_name("f-02"));
        // FNV-1a test vector.
        assert_eq!(AccountId::from_name("a").0, 0xe40c_292c);
    }
}
