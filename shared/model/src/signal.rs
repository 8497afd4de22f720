//! Signals: the one normalized form in which every source (a leader's trade, a webhook, an API
//! call, a file, a manual ticket, an algo) tells Mirror what to copy.
//!
//! A signal is encoded once (rkyv) and every follower reads the same bytes in place through a
//! [`SignalView`], a small `Copy` struct of native values. The owned [`Signal`] gives the
//! same view, so the copy logic does not care which one it reads.

use std::fmt;

use crate::fixed::{Money, Price, Qty};
use crate::ids::{LeaderRef, Origin, SignalId};
use crate::order::{OrderKind, Side, TimeInForce};
use crate::symbol::Symbol;

/// Longest free-text note a signal may carry, in bytes.
pub const NOTE_LEN_MAX: usize = 256;

/// `note` cut to at most [`NOTE_LEN_MAX`] bytes, at a character boundary.
pub fn fit_note(mut note: String) -> String {
    if note.len() > NOTE_LEN_MAX {
        let mut end = NOTE_LEN_MAX;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
    note
}

/// A signal to copy.
#[derive(
    Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
pub struct Signal {
    /// Unique id.
    pub id: SignalId,
    /// Leader account or external source.
    pub origin: Origin,
    /// When it happened at the source (the leader's execution time, the alert's time), Unix
    /// milliseconds. Followers refuse signals older than their link's `max_signal_age`.
    pub created_unix_ms: i64,
    /// When the engine accepted it, on the engine's monotonic clock (nanoseconds). Every
    /// latency Mirror reports is measured from here.
    pub accepted_mono_ns: u64,
    /// The leader account's balance when it traded (for balance-ratio sizing).
    pub leader_balance: Option<Money>,
    /// The leader account's equity when it traded (for equity-ratio sizing).
    pub leader_equity: Option<Money>,
    /// What to do.
    pub action: SignalAction,
    /// Free text from the source (an order comment, the alert's name), at most
    /// [`NOTE_LEN_MAX`] bytes.
    pub note: String,
}

/// What a signal asks followers to do.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalAction {
    /// Open (or add to) a position, at market or as a pending order.
    Open(OpenSignal),
    /// Change the stop loss and take profit of the copies of a leader position.
    Modify {
        /// The leader position.
        leader: LeaderRef,
        /// New stop loss (`None` removes it).
        stop_loss: Option<Price>,
        /// New take profit (`None` removes it).
        take_profit: Option<Price>,
    },
    /// Close the copies of a leader position entirely.
    Close {
        /// The leader position.
        leader: LeaderRef,
    },
    /// Close the same fraction of the copies that the leader closed of its position.
    PartialClose {
        /// The leader position.
        leader: LeaderRef,
        /// Quantity the leader closed.
        closed_qty: Qty,
        /// The leader's quantity before the close.
        qty_before: Qty,
    },
    /// Close every copy of this origin, on one symbol or all.
    CloseAll {
        /// Only this (leader) symbol, or all.
        symbol: Option<Symbol>,
    },
    /// Cancel the copies of a leader's pending order.
    CancelPending {
        /// The leader's pending order.
        leader: LeaderRef,
    },
}

/// An open: the leader's order as followers should see it.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Debug,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
pub struct OpenSignal {
    /// The leader's position (or, for a pending order, its order id).
    pub leader: LeaderRef,
    /// The leader's symbol.
    pub symbol: Symbol,
    /// Side.
    pub side: Side,
    /// The leader's quantity.
    pub qty: Qty,
    /// Market, limit or stop.
    pub kind: OrderKind,
    /// The entry price the leader got or expects (its fill price, or the quote when the
    /// signal was made); the base for SL-distance sizing and fixed-distance SL/TP.
    pub reference_price: Option<Price>,
    /// Stop loss.
    pub stop_loss: Option<Price>,
    /// Take profit.
    pub take_profit: Option<Price>,
    /// Time in force of a pending order.
    pub time_in_force: TimeInForce,
    /// Units of the underlying per quantity unit on the leader's side, for notional sizing.
    pub contract_size: Option<Qty>,
    /// When this open is the fill of a leader pending order: that order. Followers that
    /// copied the pending order already hold their own and only re-key it.
    pub from_pending: Option<LeaderRef>,
    /// Size every follower to risk this much of its equity between the entry and the stop
    /// loss, in basis points (50 = 0.5 %), instead of by its link's sizing rule (a manual
    /// ticket sized by risk; `None`: the link decides). Four bytes: an open is copied into
    /// every message of a fan-out.
    #[serde(default)]
    pub risk_bp: Option<std::num::NonZeroU32>,
}

impl SignalAction {
    /// The leader position or order the action is about (none for close-all).
    pub fn leader(&self) -> Option<LeaderRef> {
        match *self {
            Self::Open(open) => Some(open.leader),
            Self::Modify { leader, .. }
            | Self::Close { leader }
            | Self::PartialClose { leader, .. }
            | Self::CancelPending { leader } => Some(leader),
            Self::CloseAll { .. } => None,
        }
    }

    /// A short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open(open) if open.kind.is_pending() => "open_pending",
            Self::Open(_) => "open",
            Self::Modify { .. } => "modify",
            Self::Close { .. } => "close",
            Self::PartialClose { .. } => "partial_close",
            Self::CloseAll { .. } => "close_all",
            Self::CancelPending { .. } => "cancel_pending",
        }
    }

    /// Whether the action can add exposure (opens do; everything else reduces or amends).
    pub fn opens(&self) -> bool {
        matches!(self, Self::Open(_))
    }
}

/// A signal that must not be fanned out, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// A quantity that must be positive is not.
    #[error("{field} must be positive, got {value}")]
    NonPositiveQty {
        /// Field.
        field: &'static str,
        /// Value.
        value: Qty,
    },
    /// A price that must be positive is not.
    #[error("{field} must be positive, got {value}")]
    NonPositivePrice {
        /// Field.
        field: &'static str,
        /// Value.
        value: Price,
    },
    /// A stop loss or take profit on the wrong side of the entry.
    #[error("{field} {level} is on the wrong side of the entry {entry} for a {side}")]
    ProtectionWrongSide {
        /// `stop_loss` or `take_profit`.
        field: &'static str,
        /// Its price.
        level: Price,
        /// The entry.
        entry: Price,
        /// The order's side.
        side: Side,
    },
    /// A risk-sized open above 100 %.
    #[error("risk must be at most 10000 basis points (100 %), got {bp}")]
    BadRisk {
        /// Basis points.
        bp: u32,
    },
    /// A risk-sized open without a stop loss: the risk cannot be measured.
    #[error("risk_percent needs a stop_loss (the risk is the distance from the entry to the stop)")]
    RiskWithoutStop,
    /// A partial close that closes nothing, everything or more.
    #[error("partial close of {closed} out of {before} is not a partial close (0 < closed < before)")]
    BadPartialClose {
        /// Closed.
        closed: Qty,
        /// Before.
        before: Qty,
    },
    /// The note is too long.
    #[error("note is {len} bytes; at most {NOTE_LEN_MAX} are allowed")]
    NoteTooLong {
        /// Its length.
        len: usize,
    },
}

impl Signal {
    /// Checks everything that can be checked without a follower's context. A signal that
    /// fails is refused whole, before any follower sees it.
    pub fn validate(&self) -> Result<(), SignalError> {
        if self.note.len() > NOTE_LEN_MAX {
            return Err(SignalError::NoteTooLong { len: self.note.len() });
        }
        self.action.validate()
    }

    /// The view followers read.
    pub fn view(&self) -> SignalView<'_> {
        SignalView {
            id: self.id,
            origin: self.origin,
            created_unix_ms: self.created_unix_ms,
            accepted_mono_ns: self.accepted_mono_ns,
            leader_balance: self.leader_balance,
            leader_equity: self.leader_equity,
            action: self.action,
            note: &self.note,
        }
    }
}

impl SignalAction {
    /// Checks quantities, prices and SL/TP sides.
    pub fn validate(&self) -> Result<(), SignalError> {
        match *self {
            Self::Open(open) => open.validate(),
            Self::Modify { stop_loss, take_profit, .. } => {
                positive_price("stop_loss", stop_loss)?;
                positive_price("take_profit", take_profit)
            }
            Self::PartialClose { closed_qty, qty_before, .. } => {
                if !closed_qty.is_positive() || closed_qty >= qty_before {
                    return Err(SignalError::BadPartialClose { closed: closed_qty, before: qty_before });
                }
                Ok(())
            }
            Self::Close { .. } | Self::CloseAll { .. } | Self::CancelPending { .. } => Ok(()),
        }
    }
}

impl OpenSignal {
    /// The entry the SL/TP are judged against: the pending order's price, or the reference.
    pub fn entry(&self) -> Option<Price> {
        self.kind.price().or(self.reference_price)
    }

    fn validate(&self) -> Result<(), SignalError> {
        if !self.qty.is_positive() {
            return Err(SignalError::NonPositiveQty { field: "qty", value: self.qty });
        }
        if let Some(size) = self.contract_size
            && !size.is_positive()
        {
            return Err(SignalError::NonPositiveQty { field: "contract_size", value: size });
        }
        positive_price("price", self.kind.price())?;
        positive_price("reference_price", self.reference_price)?;
        positive_price("stop_loss", self.stop_loss)?;
        positive_price("take_profit", self.take_profit)?;
        if let Some(bp) = self.risk_bp {
            if bp.get() > 10_000 {
                return Err(SignalError::BadRisk { bp: bp.get() });
            }
            if self.stop_loss.is_none() {
                return Err(SignalError::RiskWithoutStop);
            }
        }
        if let Some(entry) = self.entry() {
            let sign = self.side.sign();
            if let Some(level) = self.stop_loss
                && (level.raw() - entry.raw()).signum() != -sign
            {
                return Err(SignalError::ProtectionWrongSide { field: "stop_loss", level, entry, side: self.side });
            }
            if let Some(level) = self.take_profit
                && (level.raw() - entry.raw()).signum() != sign
            {
                return Err(SignalError::ProtectionWrongSide { field: "take_profit", level, entry, side: self.side });
            }
        }
        Ok(())
    }
}

fn positive_price(field: &'static str, price: Option<Price>) -> Result<(), SignalError> {
    match price {
        Some(value) if !value.is_positive() => Err(SignalError::NonPositivePrice { field, value }),
        _ => Ok(()),
    }
}

/// A signal as followers read it: native values, copied out of the archived bytes (or the
/// owned signal) without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SignalView<'a> {
    /// Unique id.
    pub id: SignalId,
    /// Leader account or external source.
    pub origin: Origin,
    /// Source time, Unix milliseconds.
    pub created_unix_ms: i64,
    /// Engine acceptance time, monotonic nanoseconds.
    pub accepted_mono_ns: u64,
    /// Leader balance.
    pub leader_balance: Option<Money>,
    /// Leader equity.
    pub leader_equity: Option<Money>,
    /// What to do.
    pub action: SignalAction,
    /// Free text.
    pub note: &'a str,
}

fn option_native<A, T>(value: &rkyv::option::ArchivedOption<A>, native: impl Fn(&A) -> T) -> Option<T> {
    value.as_ref().map(native)
}

impl ArchivedSignal {
    /// Reads the archived signal in place into a view (no allocation).
    pub fn view(&self) -> SignalView<'_> {
        SignalView {
            id: self.id.to_native(),
            origin: self.origin.to_native(),
            created_unix_ms: self.created_unix_ms.to_native(),
            accepted_mono_ns: self.accepted_mono_ns.to_native(),
            leader_balance: option_native(&self.leader_balance, |m| m.to_native()),
            leader_equity: option_native(&self.leader_equity, |m| m.to_native()),
            action: self.action.to_native(),
            note: self.note.as_str(),
        }
    }
}

impl ArchivedSignalAction {
    /// The native value.
    pub fn to_native(&self) -> SignalAction {
        match self {
            Self::Open(open) => SignalAction::Open(open.to_native()),
            Self::Modify { leader, stop_loss, take_profit } => SignalAction::Modify {
                leader: leader.to_native(),
                stop_loss: option_native(stop_loss, |p| p.to_native()),
                take_profit: option_native(take_profit, |p| p.to_native()),
            },
            Self::Close { leader } => SignalAction::Close { leader: leader.to_native() },
            Self::PartialClose { leader, closed_qty, qty_before } => SignalAction::PartialClose {
                leader: leader.to_native(),
                closed_qty: closed_qty.to_native(),
                qty_before: qty_before.to_native(),
            },
            Self::CloseAll { symbol } => SignalAction::CloseAll { symbol: option_native(symbol, |s| s.to_native()) },
            Self::CancelPending { leader } => SignalAction::CancelPending { leader: leader.to_native() },
        }
    }
}

impl ArchivedOpenSignal {
    /// The native value.
    pub fn to_native(&self) -> OpenSignal {
        OpenSignal {
            leader: self.leader.to_native(),
            symbol: self.symbol.to_native(),
            side: self.side.to_native(),
            qty: self.qty.to_native(),
            kind: self.kind.to_native(),
            reference_price: option_native(&self.reference_price, |p| p.to_native()),
            stop_loss: option_native(&self.stop_loss, |p| p.to_native()),
            take_profit: option_native(&self.take_profit, |p| p.to_native()),
            time_in_force: self.time_in_force.to_native(),
            contract_size: option_native(&self.contract_size, |q| q.to_native()),
            from_pending: option_native(&self.from_pending, |l| l.to_native()),
            risk_bp: option_native(&self.risk_bp, |r| {
                std::num::NonZeroU32::new(r.get()).unwrap_or(std::num::NonZeroU32::MIN)
            }),
        }
    }
}

impl fmt::Display for SignalView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}: ", self.id, self.origin)?;
        match self.action {
            SignalAction::Open(open) => {
                write!(f, "{} {} {} {:?}", open.side, open.qty, open.symbol, open.kind)?;
                if let Some(sl) = open.stop_loss {
                    write!(f, " sl {sl}")?;
                }
                if let Some(tp) = open.take_profit {
                    write!(f, " tp {tp}")?;
                }
                write!(f, " ({})", open.leader)
            }
            SignalAction::Modify { leader, stop_loss, take_profit } => {
                write!(f, "modify {leader} sl {stop_loss:?} tp {take_profit:?}")
            }
            SignalAction::Close { leader } => write!(f, "close {leader}"),
            SignalAction::PartialClose { leader, closed_qty, qty_before } => {
                write!(f, "partial close {leader} {closed_qty} of {qty_before}")
            }
            SignalAction::CloseAll { symbol: Some(symbol) } => write!(f, "close all {symbol}"),
            SignalAction::CloseAll { symbol: None } => write!(f, "close all"),
            SignalAction::CancelPending { leader } => write!(f, "cancel pending {leader}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::AccountId;

    pub(crate) fn open(symbol: &str, side: Side, qty: &str) -> OpenSignal {
        OpenSignal {
            leader: LeaderRef(1),
            symbol: Symbol::new(symbol).unwrap(),
            side,
            qty: Qty::parse(qty).unwrap(),
            kind: OrderKind::Market,
            reference_price: None,
            stop_loss: None,
            take_profit: None,
            time_in_force: TimeInForce::Gtc,
            contract_size: None,
            from_pending: None,
            risk_bp: None,
        }
    }

    pub(crate) fn signal(action: SignalAction) -> Signal {
        Signal {
            id: SignalId(42),
            origin: Origin::Account(AccountId(7)),
            created_unix_ms: 1_700_000_000_000,
            accepted_mono_ns: 123,
            leader_balance: Some(Money::parse("100000").unwrap()),
            leader_equity: Some(Money::parse("101000").unwrap()),
            action,
            note: "breakout long".to_owned(),
        }
    }

    #[test]
    fn archived_and_owned_signals_give_the_same_view() {
        let mut open = open("EURUSD", Side::Buy, "1.5");
        open.kind = OrderKind::Limit { price: Price::parse("1.08").unwrap() };
        open.stop_loss = Some(Price::parse("1.07").unwrap());
        open.take_profit = Some(Price::parse("1.1").unwrap());
        open.contract_size = Some(Qty::parse("100000").unwrap());
        open.from_pending = Some(LeaderRef(5));
        let actions = [
            SignalAction::Open(open),
            SignalAction::Modify {
                leader: LeaderRef(3),
                stop_loss: None,
                take_profit: Some(Price::parse("2").unwrap()),
            },
            SignalAction::Close { leader: LeaderRef(3) },
            SignalAction::PartialClose {
                leader: LeaderRef(3),
                closed_qty: Qty::parse("1").unwrap(),
                qty_before: Qty::parse("2").unwrap(),
            },
            SignalAction::CloseAll { symbol: Some(Symbol::new("ES").unwrap()) },
            SignalAction::CloseAll { symbol: None },
            SignalAction::CancelPending { leader: LeaderRef(9) },
        ];
        for action in actions {
            let signal = signal(action);
            let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&signal).unwrap();
            let archived = rkyv::access::<ArchivedSignal, rkyv::rancor::Error>(&bytes).unwrap();
            assert_eq!(archived.view(), signal.view());
            let back: Signal = rkyv::deserialize::<Signal, rkyv::rancor::Error>(archived).unwrap();
            assert_eq!(back, signal);
        }
    }

    #[test]
    fn bad_signals_are_refused_with_the_field_named() {
        let mut bad = open("EURUSD", Side::Buy, "0");
        assert_eq!(SignalAction::Open(bad).validate().unwrap_err().to_string(), "qty must be positive, got 0");
        bad.qty = Qty::parse("-1").unwrap();
        assert!(SignalAction::Open(bad).validate().is_err());
        let mut bad = open("EURUSD", Side::Buy, "1");
        bad.reference_price = Some(Price::parse("1.085").unwrap());
        bad.stop_loss = Some(Price::parse("1.09").unwrap());
        assert_eq!(
            SignalAction::Open(bad).validate().unwrap_err().to_string(),
            "stop_loss 1.09 is on the wrong side of the entry 1.085 for a buy"
        );
        let mut bad = open("EURUSD", Side::Sell, "1");
        bad.reference_price = Some(Price::parse("1.085").unwrap());
        bad.take_profit = Some(Price::parse("1.09").unwrap());
        assert!(matches!(
            SignalAction::Open(bad).validate(),
            Err(SignalError::ProtectionWrongSide { field: "take_profit", .. })
        ));
        let mut bad = open("EURUSD", Side::Sell, "1");
        bad.kind = OrderKind::Limit { price: Price::ZERO };
        assert_eq!(SignalAction::Open(bad).validate().unwrap_err().to_string(), "price must be positive, got 0");
        let half = SignalAction::PartialClose {
            leader: LeaderRef(1),
            closed_qty: Qty::parse("2").unwrap(),
            qty_before: Qty::parse("2").unwrap(),
        };
        assert!(matches!(half.validate(), Err(SignalError::BadPartialClose { .. })));
        let mut long_note = signal(SignalAction::Close { leader: LeaderRef(1) });
        long_note.note = "x".repeat(NOTE_LEN_MAX + 1);
        assert!(matches!(long_note.validate(), Err(SignalError::NoteTooLong { .. })));
    }
}
