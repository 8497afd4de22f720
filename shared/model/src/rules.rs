//! Copy rules of a link (leader → follower) and the pure planning of a follower's order from a
//! leader's open: filters, symbol mapping, sizing, reverse, SL/TP.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::fixed::{Money, Price, Qty, Ratio, Rounding};
use crate::instrument::{InstrumentSpec, InstrumentTable};
use crate::order::{OrderKind, Side, TimeInForce};
use crate::signal::{OpenSignal, SignalView};
use crate::sizing;
use crate::symbol::Symbol;

/// How a follower's quantity is derived from the leader's.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum SizingRule {
    /// Always this quantity, whatever the leader trades.
    Fixed {
        /// The quantity.
        qty: Qty,
    },
    /// The leader's quantity × `ratio` (× the symbol map's ratio).
    Multiplier {
        /// The multiplier.
        ratio: Ratio,
    },
    /// The leader's quantity × follower balance ÷ leader balance × `multiplier`.
    BalanceRatio {
        /// Extra multiplier (1 by default).
        #[serde(default)]
        multiplier: Ratio,
    },
    /// The leader's quantity × follower equity ÷ leader equity × `multiplier`.
    EquityRatio {
        /// Extra multiplier (1 by default).
        #[serde(default)]
        multiplier: Ratio,
    },
    /// Risk `percent` of the follower's equity between entry and stop loss.
    RiskPercent {
        /// Percent of equity at risk (1 means 1 %).
        percent: Ratio,
    },
    /// The same notional value as the leader (quantity × contract size), × `multiplier`:
    /// 1 ES ($50/pt) becomes 10 MES ($5/pt); 1 lot on a 100k-lot account becomes 100 lots on
    /// a 1k-lot account. The symbol map's ratio is not applied (the contract sizes say it).
    Notional {
        /// Extra multiplier (1 by default).
        #[serde(default)]
        multiplier: Ratio,
    },
}

impl Default for SizingRule {
    fn default() -> Self {
        Self::Multiplier { ratio: Ratio::ONE }
    }
}

/// What to do with a size that rounds below the instrument's minimum.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BelowMinimum {
    /// Do not copy; report why.
    #[default]
    Skip,
    /// Trade the minimum instead.
    RoundUpToMinimum,
}

/// Which sides a link copies.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SideFilter {
    /// Longs and shorts.
    #[default]
    Both,
    /// Only leader buys (after reverse, the follower sells).
    LongOnly,
    /// Only leader sells.
    ShortOnly,
}

/// How a stop loss or take profit is set on the copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtectionRule {
    /// The leader's level (swapped with the other one when reversing).
    #[default]
    Copy,
    /// No level on the copy.
    None,
    /// A fixed distance from the copy's entry, whatever the leader did.
    Distance(Price),
}

/// A follower symbol and the quantity ratio that goes with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize)]
pub struct MappedSymbol {
    /// The follower's symbol.
    pub symbol: Symbol,
    /// Quantity multiplier for this mapping (NQ → MNQ: 10).
    pub ratio: Ratio,
}

impl<'de> serde::Deserialize<'de> for MappedSymbol {
    /// Either `"MNQ"` or `{ symbol = "MNQ", ratio = 10 }`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            symbol: Symbol,
            #[serde(default)]
            ratio: Ratio,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MappedSymbol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a symbol, or a table { symbol = \"MNQ\", ratio = 10 }")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<MappedSymbol, E> {
                Ok(MappedSymbol { symbol: Symbol::new(text).map_err(E::custom)?, ratio: Ratio::ONE })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<MappedSymbol, A::Error> {
                let table =
                    <Table as serde::Deserialize>::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(MappedSymbol { symbol: table.symbol, ratio: table.ratio })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// How leader symbols become follower symbols: an explicit map first, then prefix/suffix
/// rules (strip the leader broker's decoration, add the follower broker's).
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SymbolMapping {
    /// Leader symbol (after stripping) → follower symbol and ratio.
    pub map: BTreeMap<Symbol, MappedSymbol>,
    /// Removed from the front of the leader's symbol.
    pub strip_prefix: String,
    /// Removed from the end of the leader's symbol (`.x`).
    pub strip_suffix: String,
    /// Added in front for the follower.
    pub prefix: String,
    /// Added at the end for the follower (`.r`).
    pub suffix: String,
}

impl SymbolMapping {
    /// The leader's symbol without its broker decoration: the name filters apply to.
    pub fn canonical(&self, leader_symbol: &Symbol) -> Symbol {
        leader_symbol.stripped(&self.strip_prefix, &self.strip_suffix)
    }

    /// The follower's symbol and quantity ratio for `leader_symbol`.
    pub fn map(&self, leader_symbol: &Symbol) -> Result<MappedSymbol, SkipReason> {
        self.map_canonical(leader_symbol, self.canonical(leader_symbol))
    }

    fn map_canonical(&self, leader_symbol: &Symbol, canonical: Symbol) -> Result<MappedSymbol, SkipReason> {
        if let Some(mapped) = self.map.get(&canonical).or_else(|| self.map.get(leader_symbol)) {
            return Ok(*mapped);
        }
        canonical
            .decorated(&self.prefix, &self.suffix)
            .map(|symbol| MappedSymbol { symbol, ratio: Ratio::ONE })
            .map_err(|_| SkipReason::MappingFailed { symbol: *leader_symbol })
    }
}

/// Every rule of one link.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkRules {
    /// Sizing.
    pub sizing: SizingRule,
    /// Rounding to the lot step (down by default).
    pub rounding: Rounding,
    /// Sizes under the instrument minimum.
    pub below_minimum: BelowMinimum,
    /// Largest quantity this link ever sends in one order (clamped, not refused).
    pub max_qty: Option<Qty>,
    /// Copy in the opposite direction (sides swapped, SL and TP swapped).
    pub reverse: bool,
    /// Symbol mapping.
    pub symbols: SymbolMapping,
    /// Only these (canonical leader) symbols, when not empty.
    pub allow: BTreeSet<Symbol>,
    /// Never these symbols.
    pub deny: BTreeSet<Symbol>,
    /// Sides copied.
    pub sides: SideFilter,
    /// Stop loss on the copy.
    pub stop_loss: ProtectionRule,
    /// Take profit on the copy.
    pub take_profit: ProtectionRule,
    /// Copy pending (limit and stop) orders; when false, the leader's fill is copied at market.
    pub copy_pending: bool,
    /// Opens older than this are not copied (closes and modifies always are).
    pub max_signal_age_ms: Option<u64>,
    /// What reconciliation does about drift on this link.
    pub reconcile: ReconcilePolicy,
}

/// What reconciliation (after a restart or a reconnect) does about a copy that drifted from
/// its leader.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcilePolicy {
    /// Open missing copies and close orphaned ones (`true`), or only report them.
    pub repair: bool,
    /// Reopen a copy that was closed by hand (or by its own stop) while its leader still
    /// holds the position. Off by default: a trader's manual close is respected.
    pub reopen_closed_by_hand: bool,
}

impl Default for ReconcilePolicy {
    fn default() -> Self {
        Self { repair: true, reopen_closed_by_hand: false }
    }
}

impl Default for LinkRules {
    fn default() -> Self {
        Self {
            sizing: SizingRule::default(),
            rounding: Rounding::Down,
            below_minimum: BelowMinimum::Skip,
            max_qty: None,
            reverse: false,
            symbols: SymbolMapping::default(),
            allow: BTreeSet::new(),
            deny: BTreeSet::new(),
            sides: SideFilter::Both,
            stop_loss: ProtectionRule::Copy,
            take_profit: ProtectionRule::Copy,
            copy_pending: true,
            max_signal_age_ms: None,
            reconcile: ReconcilePolicy::default(),
        }
    }
}

/// Why a follower did not act on a signal. Every skip is reported with one of these,
/// counted by [`SkipReason::category`] and logged.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// The open is older than the link allows.
    SignalTooOld {
        /// Its age.
        age_ms: i64,
        /// The link's limit.
        max_ms: u64,
    },
    /// The side filter excludes it.
    SideFiltered {
        /// The leader's side.
        side: Side,
    },
    /// Not on the allow list.
    SymbolNotAllowed {
        /// Canonical leader symbol.
        symbol: Symbol,
    },
    /// On the deny list.
    SymbolDenied {
        /// Canonical leader symbol.
        symbol: Symbol,
    },
    /// Pending orders are not copied on this link.
    PendingNotCopied,
    /// The follower does not trade the mapped symbol.
    UnknownSymbol {
        /// The follower symbol looked for.
        symbol: Symbol,
    },
    /// The mapped symbol would be longer than a symbol can be.
    MappingFailed {
        /// The leader symbol.
        symbol: Symbol,
    },
    /// Risk sizing needs a stop loss.
    NeedsStopLoss,
    /// Risk sizing or a distance SL/TP needs an entry price the signal does not carry.
    NeedsEntryPrice,
    /// Balance-ratio sizing needs the leader's balance.
    NeedsLeaderBalance,
    /// Equity-ratio sizing needs the leader's equity.
    NeedsLeaderEquity,
    /// Notional sizing needs the leader's contract size.
    NeedsContractSize,
    /// The size rounds below the instrument's minimum and the link skips such sizes.
    BelowMinimum {
        /// Size after rounding to the lot step.
        computed: Qty,
        /// The instrument's minimum.
        min: Qty,
    },
    /// The size computation overflowed (absurd inputs).
    SizeOverflow,
    /// The follower account is paused.
    AccountPaused,
    /// This link is paused.
    LinkPaused,
    /// Copying is paused globally.
    GloballyPaused,
    /// The account only closes positions after a risk breach.
    CloseOnly,
    /// The account is frozen after a risk breach.
    Frozen,
    /// Over the account's per-order quantity limit.
    MaxOrderQty {
        /// Order quantity.
        qty: Qty,
        /// Limit.
        max: Qty,
    },
    /// The account already holds its maximum number of positions.
    MaxOpenPositions {
        /// Open positions and opens in flight.
        open: u32,
        /// Limit.
        max: u32,
    },
    /// The order would take the exposure on its symbol over the limit.
    SymbolExposure {
        /// Symbol.
        symbol: Symbol,
        /// Gross quantity after the order.
        after: Qty,
        /// Limit.
        max: Qty,
    },
    /// The follower holds no copy of the leader position the signal is about.
    NoCopy,
    /// The follower's link from this origin was removed (a live configuration change).
    NotLinked,
    /// A proportional partial close rounds to nothing on this follower.
    PartialCloseRoundsToZero {
        /// The follower's open quantity.
        open: Qty,
    },
    /// The account's connector queue was full; the order was not sent.
    ConnectorQueueFull,
    /// The account is not connected to its broker.
    AccountDisconnected,
}

/// Groups of skip reasons, for the status line and counters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipCategory {
    /// Too old.
    Stale,
    /// Side, allow/deny list, pending filters.
    Filter,
    /// Symbol unknown or unmappable.
    Symbol,
    /// Sizing could not produce a tradable size.
    Size,
    /// A risk guard refused it.
    Risk,
    /// Paused.
    Paused,
    /// Nothing to act on.
    NoCopy,
    /// Back-pressure.
    Backpressure,
    /// The account is not connected.
    Connection,
}

/// Every category, in display order.
pub const SKIP_CATEGORIES: [SkipCategory; 9] = [
    SkipCategory::Stale,
    SkipCategory::Filter,
    SkipCategory::Symbol,
    SkipCategory::Size,
    SkipCategory::Risk,
    SkipCategory::Paused,
    SkipCategory::NoCopy,
    SkipCategory::Backpressure,
    SkipCategory::Connection,
];

impl SkipCategory {
    /// Short name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Stale => "stale",
            Self::Filter => "filter",
            Self::Symbol => "symbol",
            Self::Size => "size",
            Self::Risk => "risk",
            Self::Paused => "paused",
            Self::NoCopy => "no-copy",
            Self::Backpressure => "backpressure",
            Self::Connection => "disconnected",
        }
    }
}

impl SkipReason {
    /// The reason's group.
    pub const fn category(&self) -> SkipCategory {
        match self {
            Self::SignalTooOld { .. } => SkipCategory::Stale,
            Self::SideFiltered { .. }
            | Self::SymbolNotAllowed { .. }
            | Self::SymbolDenied { .. }
            | Self::PendingNotCopied => SkipCategory::Filter,
            Self::UnknownSymbol { .. } | Self::MappingFailed { .. } => SkipCategory::Symbol,
            Self::NeedsStopLoss
            | Self::NeedsEntryPrice
            | Self::NeedsLeaderBalance
            | Self::NeedsLeaderEquity
            | Self::NeedsContractSize
            | Self::BelowMinimum { .. }
            | Self::SizeOverflow
            | Self::PartialCloseRoundsToZero { .. } => SkipCategory::Size,
            Self::CloseOnly
            | Self::Frozen
            | Self::MaxOrderQty { .. }
            | Self::MaxOpenPositions { .. }
            | Self::SymbolExposure { .. } => SkipCategory::Risk,
            Self::AccountPaused | Self::LinkPaused | Self::GloballyPaused => SkipCategory::Paused,
            Self::NoCopy | Self::NotLinked => SkipCategory::NoCopy,
            Self::ConnectorQueueFull => SkipCategory::Backpressure,
            Self::AccountDisconnected => SkipCategory::Connection,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SignalTooOld { age_ms, max_ms } => {
                write!(f, "signal is {age_ms} ms old; the link copies opens up to {max_ms} ms")
            }
            Self::SideFiltered { side } => write!(f, "the link does not copy {side}s"),
            Self::SymbolNotAllowed { symbol } => {
                write!(f, "{symbol} is not on the link's allow list")
            }
            Self::SymbolDenied { symbol } => write!(f, "{symbol} is on the link's deny list"),
            Self::PendingNotCopied => f.write_str("the link does not copy pending orders"),
            Self::UnknownSymbol { symbol } => write!(f, "the follower does not trade {symbol}"),
            Self::MappingFailed { symbol } => write!(f, "{symbol} cannot be mapped (the result is over 31 characters)"),
            Self::NeedsStopLoss => f.write_str("risk-percent sizing needs a stop loss and the signal has none"),
            Self::NeedsEntryPrice => f.write_str("the signal carries no entry price to measure the stop distance from"),
            Self::NeedsLeaderBalance => f.write_str("balance-ratio sizing needs the leader's balance"),
            Self::NeedsLeaderEquity => f.write_str("equity-ratio sizing needs the leader's equity"),
            Self::NeedsContractSize => f.write_str("notional sizing needs the leader's contract size"),
            Self::BelowMinimum { computed, min } => {
                write!(f, "size {computed} is below the minimum {min}")
            }
            Self::SizeOverflow => f.write_str("the size computation overflowed"),
            Self::AccountPaused => f.write_str("the account is paused"),
            Self::LinkPaused => f.write_str("the link is paused"),
            Self::GloballyPaused => f.write_str("copying is paused globally"),
            Self::CloseOnly => f.write_str("the account is close-only after a risk breach"),
            Self::Frozen => f.write_str("the account is frozen after a risk breach"),
            Self::MaxOrderQty { qty, max } => {
                write!(f, "order quantity {qty} is over the account's limit {max}")
            }
            Self::MaxOpenPositions { open, max } => {
                write!(f, "{open} positions open; the account allows {max}")
            }
            Self::SymbolExposure { symbol, after, max } => {
                write!(f, "exposure on {symbol} would be {after}; the account allows {max}")
            }
            Self::NoCopy => f.write_str("no copy of that leader position on this account"),
            Self::NotLinked => f.write_str("this account no longer copies that origin (its link was removed)"),
            Self::PartialCloseRoundsToZero { open } => {
                write!(f, "a proportional part of {open} rounds to nothing")
            }
            Self::ConnectorQueueFull => f.write_str("the account's connector queue is full"),
            Self::AccountDisconnected => f.write_str("the account is not connected to its broker"),
        }
    }
}

/// What the planner needs to know about the follower.
#[derive(Clone, Copy, Debug)]
pub struct FollowerContext<'a> {
    /// The follower's instruments, by its own symbols.
    pub instruments: &'a InstrumentTable,
    /// Its balance.
    pub balance: Money,
    /// Its equity.
    pub equity: Money,
    /// The engine's wall-clock time, Unix milliseconds (for signal age).
    pub now_unix_ms: i64,
}

/// How a size was arrived at, for the audit.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub enum SizeAdjustment {
    /// Exactly what the rule gave, rounded to the lot step.
    None,
    /// Clamped down to this maximum.
    ClampedToMax(Qty),
    /// Raised to the instrument minimum.
    RaisedToMin(Qty),
}

/// A follower's order, planned from a leader's open.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PlannedOpen {
    /// The follower's instrument.
    pub spec: InstrumentSpec,
    /// Side (reversed if the link says so).
    pub side: Side,
    /// Quantity: a whole number of lot steps within min and max.
    pub qty: Qty,
    /// Order kind, price on the follower's tick grid.
    pub kind: OrderKind,
    /// Stop loss on the tick grid.
    pub stop_loss: Option<Price>,
    /// Take profit on the tick grid.
    pub take_profit: Option<Price>,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Whether the size was clamped or raised.
    pub adjustment: SizeAdjustment,
    /// The leader's symbol without its broker decoration.
    pub leader_symbol: Symbol,
}

impl LinkRules {
    /// Plans the follower's order for the leader's `open`, or says why not.
    pub fn plan_open(
        &self,
        signal: &SignalView<'_>,
        open: &OpenSignal,
        follower: &FollowerContext<'_>,
    ) -> Result<PlannedOpen, SkipReason> {
        if let Some(max_ms) = self.max_signal_age_ms {
            let age_ms = follower.now_unix_ms.saturating_sub(signal.created_unix_ms);
            if age_ms > i64::try_from(max_ms).unwrap_or(i64::MAX) {
                return Err(SkipReason::SignalTooOld { age_ms, max_ms });
            }
        }
        match (self.sides, open.side) {
            (SideFilter::LongOnly, Side::Sell) | (SideFilter::ShortOnly, Side::Buy) => {
                return Err(SkipReason::SideFiltered { side: open.side });
            }
            _ => {}
        }
        if open.kind.is_pending() && !self.copy_pending {
            return Err(SkipReason::PendingNotCopied);
        }
        let canonical = self.symbols.canonical(&open.symbol);
        if self.deny.contains(&canonical) {
            return Err(SkipReason::SymbolDenied { symbol: canonical });
        }
        if !self.allow.is_empty() && !self.allow.contains(&canonical) {
            return Err(SkipReason::SymbolNotAllowed { symbol: canonical });
        }
        let mapped = self.symbols.map_canonical(&open.symbol, canonical)?;
        let spec =
            *follower.instruments.get(&mapped.symbol).ok_or(SkipReason::UnknownSymbol { symbol: mapped.symbol })?;

        let side = if self.reverse { open.side.opposite() } else { open.side };
        let kind = if self.reverse { open.kind.reversed() } else { open.kind };
        let kind = match kind.price() {
            Some(price) => kind.with_price(spec.round_price(price, Rounding::Nearest)),
            None => kind,
        };
        let entry = open.entry();
        let (stop_loss, take_profit) = self.protection(open, side, entry, &spec);

        // A signal sized by risk (a manual ticket) overrides the link's rule.
        let sizing = match open.risk_bp.and_then(|bp| Ratio::new(bp.get().into(), 100)) {
            Some(percent) => SizingRule::RiskPercent { percent },
            None => self.sizing,
        };
        let stop_distance = match sizing {
            SizingRule::RiskPercent { .. } => Some(match self.stop_loss {
                ProtectionRule::Distance(distance) => distance,
                _ => {
                    let level = stop_loss.ok_or(SkipReason::NeedsStopLoss)?;
                    let entry = entry.ok_or(SkipReason::NeedsEntryPrice)?;
                    (entry - level).abs()
                }
            }),
            _ => None,
        };
        let exact = sizing::exact_size(
            &sizing,
            &sizing::SizingInputs {
                leader_qty: open.qty,
                leader_contract_size: open.contract_size,
                leader_balance: signal.leader_balance,
                leader_equity: signal.leader_equity,
                map_ratio: mapped.ratio,
                follower_balance: follower.balance,
                follower_equity: follower.equity,
                stop_distance,
            },
            &spec,
        )?;
        let (qty, adjustment) = sizing::to_tradable(exact, &spec, self.rounding, self.below_minimum, self.max_qty)?;
        Ok(PlannedOpen {
            spec,
            side,
            qty,
            kind,
            stop_loss,
            take_profit,
            time_in_force: open.time_in_force,
            adjustment,
            leader_symbol: canonical,
        })
    }

    /// Stop loss and take profit for a copy on `side` entering near `entry`.
    fn protection(
        &self,
        open: &OpenSignal,
        side: Side,
        entry: Option<Price>,
        spec: &InstrumentSpec,
    ) -> (Option<Price>, Option<Price>) {
        // Reversing swaps the leader's levels: its take profit is where the reversed copy
        // must stop out, and its stop where the copy takes profit.
        let (stop_source, profit_source) =
            if self.reverse { (open.take_profit, open.stop_loss) } else { (open.stop_loss, open.take_profit) };
        self.protection_levels(side, entry, spec, stop_source, profit_source)
    }

    /// Applies the SL/TP rules for a copy on `side` at `entry`, given the leader's levels
    /// already swapped for reverse where needed.
    pub fn protection_levels(
        &self,
        side: Side,
        entry: Option<Price>,
        spec: &InstrumentSpec,
        stop_source: Option<Price>,
        profit_source: Option<Price>,
    ) -> (Option<Price>, Option<Price>) {
        let level = |rule: ProtectionRule, source: Option<Price>, direction: i64| -> Option<Price> {
            let raw = match rule {
                ProtectionRule::Copy => source?,
                ProtectionRule::None => return None,
                ProtectionRule::Distance(distance) => {
                    let entry = entry?;
                    let signed = distance.raw().checked_mul(direction)?;
                    Price::from_raw(entry.raw().checked_add(signed)?)
                }
            };
            raw.is_positive().then(|| spec.round_price(raw, Rounding::Nearest))
        };
        let sign = side.sign();
        (level(self.stop_loss, stop_source, -sign), level(self.take_profit, profit_source, sign))
    }

    /// Whether SL/TP levels depend on the copy's own fill price (fixed distances), so that
    /// they are amended once the copy has filled.
    pub fn protection_follows_fill(&self) -> bool {
        matches!(self.stop_loss, ProtectionRule::Distance(_)) || matches!(self.take_profit, ProtectionRule::Distance(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::LeaderRef;
    use crate::instrument::tests::{es, eurusd, spec};
    use crate::signal::SignalAction;
    use crate::signal::tests::{open, signal};

    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }
    fn p(text: &str) -> Price {
        Price::parse(text).unwrap()
    }
    fn r(text: &str) -> Ratio {
        Ratio::parse(text).unwrap()
    }

    fn table() -> InstrumentTable {
        let mut mes = es();
        mes.symbol = Symbol::new("MES").unwrap();
        mes.contract_size = q("5");
        mes.tick_value = Money::parse("1.25").unwrap();
        let mut mnq = es();
        mnq.symbol = Symbol::new("MNQ").unwrap();
        mnq.contract_size = q("2");
        let mut eurusd_r = eurusd();
        eurusd_r.symbol = Symbol::new("EURUSD.r").unwrap();
        let micro = spec("EURUSD.m", "1000", "0.00001", "0.01", "0.01", "0.01", "1000", 5);
        [eurusd(), eurusd_r, micro, es(), mes, mnq].into_iter().collect()
    }

    fn ctx(table: &InstrumentTable) -> FollowerContext<'_> {
        FollowerContext {
            instruments: table,
            balance: Money::parse("50000").unwrap(),
            equity: Money::parse("49000").unwrap(),
            now_unix_ms: 1_700_000_000_500,
        }
    }

    fn plan(rules: &LinkRules, open: OpenSignal) -> Result<PlannedOpen, SkipReason> {
        let signal = signal(SignalAction::Open(open));
        let table = table();
        rules.plan_open(&signal.view(), &open, &ctx(&table))
    }

    #[test]
    fn multiplier_sizes_and_rounds_down_to_the_lot_step() {
        let rules = LinkRules { sizing: SizingRule::Multiplier { ratio: r("0.37") }, ..LinkRules::default() };
        let planned = plan(&rules, open("EURUSD", Side::Buy, "1.5")).unwrap();
        assert_eq!(planned.qty, q("0.55")); // 0.555 rounded down
        let rules = LinkRules { rounding: Rounding::Nearest, ..rules };
        assert_eq!(plan(&rules, open("EURUSD", Side::Buy, "1.5")).unwrap().qty, q("0.56"));
    }

    #[test]
    fn balance_and_equity_ratios_use_the_leader_snapshot() {
        // Follower balance 50k / leader 100k = 0.5.
        let rules = LinkRules { sizing: SizingRule::BalanceRatio { multiplier: Ratio::ONE }, ..LinkRules::default() };
        assert_eq!(plan(&rules, open("EURUSD", Side::Buy, "1")).unwrap().qty, q("0.5"));
        // Follower equity 49k / leader 101k × 2 = 0.970297… → 0.97.
        let rules = LinkRules { sizing: SizingRule::EquityRatio { multiplier: r("2") }, ..LinkRules::default() };
        assert_eq!(plan(&rules, open("EURUSD", Side::Buy, "1")).unwrap().qty, q("0.97"));
    }

    #[test]
    fn risk_percent_sizes_from_the_stop_distance() {
        // 1 % of 49,000 = 490 at risk; 50 pips × $1/tick... EURUSD tick 0.00001 = $1 per lot,
        // stop 0.00500 away = 500 ticks = $500 per lot → 0.98 lots.
        let rules = LinkRules { sizing: SizingRule::RiskPercent { percent: r("1") }, ..LinkRules::default() };
        let mut leader = open("EURUSD", Side::Buy, "3");
        leader.reference_price = Some(p("1.085"));
        leader.stop_loss = Some(p("1.08"));
        assert_eq!(plan(&rules, leader).unwrap().qty, q("0.98"));
        leader.stop_loss = None;
        assert_eq!(plan(&rules, leader), Err(SkipReason::NeedsStopLoss));
        // With a fixed stop distance the leader's stop is not needed.
        let rules = LinkRules { stop_loss: ProtectionRule::Distance(p("0.0098")), ..rules };
        let planned = plan(&rules, leader).unwrap();
        assert_eq!(planned.qty, q("0.5"));
        assert_eq!(planned.stop_loss, Some(p("1.0752")));
    }

    #[test]
    fn notional_sizing_is_contract_size_aware() {
        let rules = LinkRules { sizing: SizingRule::Notional { multiplier: Ratio::ONE }, ..LinkRules::default() };
        let explicit = |to: &str| SymbolMapping {
            map: [(Symbol::new("ES").unwrap(), MappedSymbol { symbol: Symbol::new(to).unwrap(), ratio: r("7") })]
                .into(),
            ..SymbolMapping::default()
        };
        let mut leader = open("ES", Side::Buy, "3");
        leader.contract_size = Some(q("50"));
        // ES → MES: 3 × 50 / 5 = 30; the map's ratio (7) is ignored for notional sizing.
        let to_mes = LinkRules { symbols: explicit("MES"), ..rules.clone() };
        assert_eq!(plan(&to_mes, leader).unwrap().qty, q("30"));
        // 100k-lot FX account → 1k-lot account: 0.5 lots → 50 lots.
        let mut fx = open("EURUSD", Side::Sell, "0.5");
        fx.contract_size = Some(q("100000"));
        let to_micro =
            LinkRules { symbols: SymbolMapping { suffix: ".m".into(), ..SymbolMapping::default() }, ..rules.clone() };
        assert_eq!(plan(&to_micro, fx).unwrap().qty, q("50"));
        // MES → ES: 7 MES = 0.7 ES, below the 1-contract minimum.
        let mut micro = open("MES", Side::Buy, "7");
        micro.contract_size = Some(q("5"));
        let to_es = LinkRules {
            symbols: SymbolMapping {
                map: [(
                    Symbol::new("MES").unwrap(),
                    MappedSymbol { symbol: Symbol::new("ES").unwrap(), ratio: Ratio::ONE },
                )]
                .into(),
                ..SymbolMapping::default()
            },
            ..rules.clone()
        };
        assert_eq!(plan(&to_es, micro), Err(SkipReason::BelowMinimum { computed: Qty::ZERO, min: q("1") }));
        let round_up = LinkRules { below_minimum: BelowMinimum::RoundUpToMinimum, ..to_es };
        let planned = plan(&round_up, micro).unwrap();
        assert_eq!((planned.qty, planned.adjustment), (q("1"), SizeAdjustment::RaisedToMin(q("1"))));
        micro.contract_size = None;
        assert_eq!(plan(&rules, micro), Err(SkipReason::NeedsContractSize));
    }

    #[test]
    fn symbol_map_ratio_applies_to_multiplier_sizing() {
        let rules = LinkRules {
            symbols: SymbolMapping {
                map: [(
                    Symbol::new("NQ").unwrap(),
                    MappedSymbol { symbol: Symbol::new("MNQ").unwrap(), ratio: r("10") },
                )]
                .into(),
                ..SymbolMapping::default()
            },
            ..LinkRules::default()
        };
        let planned = plan(&rules, open("NQ", Side::Buy, "2")).unwrap();
        assert_eq!((planned.spec.symbol.as_str(), planned.qty), ("MNQ", q("20")));
    }

    #[test]
    fn prefix_and_suffix_rules_map_broker_names() {
        let rules = LinkRules {
            symbols: SymbolMapping { strip_suffix: ".x".into(), suffix: ".r".into(), ..SymbolMapping::default() },
            allow: [Symbol::new("EURUSD").unwrap()].into(),
            ..LinkRules::default()
        };
        let planned = plan(&rules, open("EURUSD.x", Side::Buy, "1")).unwrap();
        assert_eq!(planned.spec.symbol.as_str(), "EURUSD.r");
        assert_eq!(
            plan(&rules, open("GBPUSD.x", Side::Buy, "1")),
            Err(SkipReason::SymbolNotAllowed { symbol: Symbol::new("GBPUSD").unwrap() })
        );
        let unknown = LinkRules { allow: BTreeSet::new(), ..rules };
        assert_eq!(
            plan(&unknown, open("GBPUSD.x", Side::Buy, "1")),
            Err(SkipReason::UnknownSymbol { symbol: Symbol::new("GBPUSD.r").unwrap() })
        );
    }

    #[test]
    fn filters_refuse_with_reasons() {
        let deny = LinkRules { deny: [Symbol::new("ES").unwrap()].into(), ..LinkRules::default() };
        assert_eq!(
            plan(&deny, open("ES", Side::Buy, "1")),
            Err(SkipReason::SymbolDenied { symbol: Symbol::new("ES").unwrap() })
        );
        let longs = LinkRules { sides: SideFilter::LongOnly, ..LinkRules::default() };
        assert_eq!(plan(&longs, open("ES", Side::Sell, "1")), Err(SkipReason::SideFiltered { side: Side::Sell }));
        assert!(plan(&longs, open("ES", Side::Buy, "1")).is_ok());
        let no_pending = LinkRules { copy_pending: false, ..LinkRules::default() };
        let mut limit = open("ES", Side::Buy, "1");
        limit.kind = OrderKind::Limit { price: p("4990") };
        assert_eq!(plan(&no_pending, limit), Err(SkipReason::PendingNotCopied));
        let fresh = LinkRules { max_signal_age_ms: Some(400), ..LinkRules::default() };
        assert_eq!(
            plan(&fresh, open("ES", Side::Buy, "1")),
            Err(SkipReason::SignalTooOld { age_ms: 500, max_ms: 400 })
        );
        let fresh = LinkRules { max_signal_age_ms: Some(500), ..LinkRules::default() };
        assert!(plan(&fresh, open("ES", Side::Buy, "1")).is_ok());
    }

    #[test]
    fn reverse_swaps_sides_levels_and_pending_kinds() {
        let mut leader = open("ES", Side::Buy, "2");
        leader.reference_price = Some(p("5000"));
        leader.stop_loss = Some(p("4990"));
        leader.take_profit = Some(p("5020"));
        let rules = LinkRules { reverse: true, ..LinkRules::default() };
        let planned = plan(&rules, leader).unwrap();
        assert_eq!(planned.side, Side::Sell);
        assert_eq!(planned.stop_loss, Some(p("5020")));
        assert_eq!(planned.take_profit, Some(p("4990")));
        leader.kind = OrderKind::Limit { price: p("4995") };
        let planned = plan(&rules, leader).unwrap();
        assert_eq!(planned.kind, OrderKind::Stop { price: p("4995") });
        // Fixed distances are measured from the copy's own entry on its own side.
        let rules = LinkRules {
            reverse: true,
            stop_loss: ProtectionRule::Distance(p("4")),
            take_profit: ProtectionRule::Distance(p("8.1")),
            ..LinkRules::default()
        };
        let planned = plan(&rules, leader).unwrap();
        assert_eq!(planned.stop_loss, Some(p("4999")));
        assert_eq!(planned.take_profit, Some(p("4987"))); // 4986.9 on a 0.25 tick grid
        let none =
            LinkRules { stop_loss: ProtectionRule::None, take_profit: ProtectionRule::None, ..LinkRules::default() };
        let planned = plan(&none, leader).unwrap();
        assert_eq!((planned.stop_loss, planned.take_profit), (None, None));
    }

    #[test]
    fn max_quantities_clamp() {
        let rules = LinkRules {
            sizing: SizingRule::Multiplier { ratio: r("1000") },
            max_qty: Some(q("7.777")),
            ..LinkRules::default()
        };
        let planned = plan(&rules, open("EURUSD", Side::Buy, "1")).unwrap();
        assert_eq!((planned.qty, planned.adjustment), (q("7.77"), SizeAdjustment::ClampedToMax(q("7.77"))));
        let rules = LinkRules { max_qty: None, ..rules };
        assert_eq!(plan(&rules, open("EURUSD", Side::Buy, "1")).unwrap().qty, q("100"));
        let _ = LeaderRef(0);
    }
}
