//! Instrument specifications and the integer arithmetic that depends on them.

use std::collections::BTreeMap;

use crate::fixed::{Fraction, Money, Price, Qty, Rounding, SCALE, div_round};
use crate::order::Side;
use crate::symbol::Symbol;

/// What kind of market an instrument trades in. Used to refuse mixing futures and CFDs
/// without an explicit mapping, and for display.
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
pub enum InstrumentKind {
    /// Spot FX, traded in lots.
    #[default]
    Forex,
    /// A contract for difference (indices, metals, energies on a CFD broker).
    Cfd,
    /// An exchange-traded future.
    Future,
    /// A crypto asset or perpetual.
    Crypto,
    /// A share.
    Stock,
}

/// How one account trades one instrument: the numbers every size and price must respect.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct InstrumentSpec {
    /// The symbol as this account's broker spells it.
    pub symbol: Symbol,
    /// Market kind.
    pub kind: InstrumentKind,
    /// Units of the underlying in one quantity unit: 100,000 for a standard FX lot, 1,000
    /// for a micro-lot account, 50 for ES ($50 per point), 5 for MES.
    pub contract_size: Qty,
    /// Smallest price increment.
    pub tick_size: Price,
    /// Value, in the account's currency, of a one-tick move on quantity 1.
    pub tick_value: Money,
    /// Quantities are whole multiples of this.
    pub lot_step: Qty,
    /// Smallest order quantity.
    pub min_qty: Qty,
    /// Largest order quantity.
    pub max_qty: Qty,
    /// Decimal places prices are shown with.
    pub digits: u8,
}

/// An instrument specification that cannot be traded with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A field that must be positive is not.
    #[error("{symbol}: {field} must be positive, got {value}")]
    NotPositive {
        /// Instrument.
        symbol: Symbol,
        /// Field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
    /// `min_qty` or `max_qty` is not a whole number of lot steps.
    #[error("{symbol}: {field} {value} is not a multiple of lot_step {step}")]
    OffStep {
        /// Instrument.
        symbol: Symbol,
        /// Field name.
        field: &'static str,
        /// The value found.
        value: Qty,
        /// The lot step.
        step: Qty,
    },
    /// `max_qty < min_qty`.
    #[error("{symbol}: max_qty {max} is below min_qty {min}")]
    MaxBelowMin {
        /// Instrument.
        symbol: Symbol,
        /// Minimum.
        min: Qty,
        /// Maximum.
        max: Qty,
    },
    /// The tick size needs more decimals than `digits` shows.
    #[error("{symbol}: tick_size {tick} needs more than digits = {digits} decimal places")]
    TickFinerThanDigits {
        /// Instrument.
        symbol: Symbol,
        /// Tick size.
        tick: Price,
        /// Digits.
        digits: u8,
    },
}

impl InstrumentSpec {
    /// Checks that sizes and prices can be rounded to this spec.
    pub fn validate(&self) -> Result<(), SpecError> {
        let positive = |field: &'static str, raw: i64, shown: String| {
            if raw > 0 { Ok(()) } else { Err(SpecError::NotPositive { symbol: self.symbol, field, value: shown }) }
        };
        positive("contract_size", self.contract_size.raw(), self.contract_size.to_string())?;
        positive("tick_size", self.tick_size.raw(), self.tick_size.to_string())?;
        positive("tick_value", self.tick_value.raw(), self.tick_value.to_string())?;
        positive("lot_step", self.lot_step.raw(), self.lot_step.to_string())?;
        positive("min_qty", self.min_qty.raw(), self.min_qty.to_string())?;
        for (field, value) in [("min_qty", self.min_qty), ("max_qty", self.max_qty)] {
            if value.raw() % self.lot_step.raw() != 0 {
                return Err(SpecError::OffStep { symbol: self.symbol, field, value, step: self.lot_step });
            }
        }
        if self.max_qty < self.min_qty {
            return Err(SpecError::MaxBelowMin { symbol: self.symbol, min: self.min_qty, max: self.max_qty });
        }
        let digits_unit = SCALE / 10i64.pow(u32::from(self.digits.min(8)));
        if self.digits > 8 || self.tick_size.raw() % digits_unit != 0 {
            return Err(SpecError::TickFinerThanDigits {
                symbol: self.symbol,
                tick: self.tick_size,
                digits: self.digits,
            });
        }
        Ok(())
    }

    /// Rounds an exact size (raw 10⁻⁸ units as a fraction) to a whole number of lot steps,
    /// in raw units, without narrowing (a huge product is still comparable with the maximum).
    pub(crate) fn round_to_step_raw(&self, size: Fraction, mode: Rounding) -> Option<i128> {
        let step = i128::from(self.lot_step.raw());
        size.steps(step, mode)?.checked_mul(step)
    }

    /// Rounds an exact size to a whole number of lot steps (`None` when it does not fit a
    /// quantity).
    pub(crate) fn round_to_step(&self, size: Fraction, mode: Rounding) -> Option<Qty> {
        let raw = i64::try_from(self.round_to_step_raw(size, mode)?).ok()?;
        Some(Qty::from_raw(raw))
    }

    /// The largest whole number of lot steps not above `max_qty`.
    pub fn max_on_step(&self) -> Qty {
        let step = self.lot_step.raw();
        Qty::from_raw(self.max_qty.raw() / step * step)
    }

    /// Whether `qty` is a positive whole number of lot steps within min and max.
    pub fn qty_is_tradable(&self, qty: Qty) -> bool {
        qty.is_positive() && qty.raw() % self.lot_step.raw() == 0 && qty >= self.min_qty && qty <= self.max_qty
    }

    /// `price` rounded to a whole number of ticks.
    pub fn round_price(&self, price: Price, mode: Rounding) -> Price {
        let tick = i128::from(self.tick_size.raw());
        let ticks = div_round(i128::from(price.raw()), tick, mode);
        Price::from_raw(i64::try_from(ticks * tick).unwrap_or(price.raw()))
    }

    /// Whether `price` is a whole number of ticks.
    pub fn price_is_on_tick(&self, price: Price) -> bool {
        price.raw() % self.tick_size.raw() == 0
    }

    /// Profit or loss, in the account's currency, of `qty` held on `side` from `open` to
    /// `close`, rounded to the nearest 10⁻⁸ (ties away from zero).
    pub fn pnl(&self, side: Side, qty: Qty, open: Price, close: Price) -> Money {
        let move_raw = i128::from(close.raw() - open.raw()) * i128::from(side.sign());
        // pnl = move / tick_size × tick_value × qty, every factor in raw 10⁻⁸ units:
        // money_raw = move_raw × tick_value_raw × qty_raw / (tick_raw × SCALE).
        let numerator = move_raw * i128::from(self.tick_value.raw()) * i128::from(qty.raw());
        let denominator = i128::from(self.tick_size.raw()) * i128::from(SCALE);
        let raw = div_round(numerator, denominator, Rounding::Nearest);
        Money::from_raw(i64::try_from(raw).unwrap_or(if raw < 0 { i64::MIN } else { i64::MAX }))
    }
}

/// The instruments one account can trade, by its own symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstrumentTable {
    by_symbol: BTreeMap<Symbol, InstrumentSpec>,
}

impl InstrumentTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces one spec.
    pub fn insert(&mut self, spec: InstrumentSpec) {
        self.by_symbol.insert(spec.symbol, spec);
    }

    /// The spec of `symbol`, if this account trades it.
    pub fn get(&self, symbol: &Symbol) -> Option<&InstrumentSpec> {
        self.by_symbol.get(symbol)
    }

    /// Every spec, ordered by symbol.
    pub fn iter(&self) -> impl Iterator<Item = &InstrumentSpec> {
        self.by_symbol.values()
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.by_symbol.len()
    }

    /// No instruments.
    pub fn is_empty(&self) -> bool {
        self.by_symbol.is_empty()
    }
}

impl FromIterator<InstrumentSpec> for InstrumentTable {
    fn from_iter<I: IntoIterator<Item = InstrumentSpec>>(iter: I) -> Self {
        let mut table = Self::new();
        for spec in iter {
            table.insert(spec);
        }
        table
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spec(
        symbol: &str,
        contract: &str,
        tick: &str,
        tick_value: &str,
        step: &str,
        min: &str,
        max: &str,
        digits: u8,
    ) -> InstrumentSpec {
        InstrumentSpec {
            symbol: Symbol::new(symbol).unwrap(),
            kind: InstrumentKind::Forex,
            contract_size: Qty::parse(contract).unwrap(),
            tick_size: Price::parse(tick).unwrap(),
            tick_value: Money::parse(tick_value).unwrap(),
            lot_step: Qty::parse(step).unwrap(),
            min_qty: Qty::parse(min).unwrap(),
            max_qty: Qty::parse(max).unwrap(),
            digits,
        }
    }

    pub(crate) fn eurusd() -> InstrumentSpec {
        spec("EURUSD", "100000", "0.00001", "1", "0.01", "0.01", "100", 5)
    }

    pub(crate) fn es() -> InstrumentSpec {
        let mut es = spec("ES", "50", "0.25", "12.5", "1", "1", "500", 2);
        es.kind = InstrumentKind::Future;
        es
    }

    #[test]
    fn pnl_is_exact() {
        let spec = eurusd();
        let pnl = spec.pnl(
            Side::Buy,
            Qty::parse("1").unwrap(),
            Price::parse("1.08500").unwrap(),
            Price::parse("1.08600").unwrap(),
        );
        assert_eq!(pnl, Money::parse("100").unwrap());
        let pnl = spec.pnl(
            Side::Sell,
            Qty::parse("0.37").unwrap(),
            Price::parse("1.08500").unwrap(),
            Price::parse("1.08600").unwrap(),
        );
        assert_eq!(pnl, Money::parse("-37").unwrap());
        let es = es();
        let pnl = es.pnl(
            Side::Buy,
            Qty::parse("2").unwrap(),
            Price::parse("5000").unwrap(),
            Price::parse("4990.25").unwrap(),
        );
        assert_eq!(pnl, Money::parse("-975").unwrap());
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(eurusd().validate().is_ok());
        let mut bad = eurusd();
        bad.min_qty = Qty::parse("0.015").unwrap();
        assert_eq!(bad.validate().unwrap_err().to_string(), "EURUSD: min_qty 0.015 is not a multiple of lot_step 0.01");
        let mut bad = eurusd();
        bad.tick_size = Price::ZERO;
        assert_eq!(bad.validate().unwrap_err().to_string(), "EURUSD: tick_size must be positive, got 0");
        let mut bad = eurusd();
        bad.digits = 4;
        assert!(matches!(bad.validate(), Err(SpecError::TickFinerThanDigits { .. })));
        let mut bad = eurusd();
        bad.max_qty = Qty::ZERO;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn prices_round_to_ticks() {
        let es = es();
        assert_eq!(
            es.round_price(Price::parse("5000.30").unwrap(), Rounding::Nearest),
            Price::parse("5000.25").unwrap()
        );
        assert_eq!(
            es.round_price(Price::parse("5000.13").unwrap(), Rounding::Nearest),
            Price::parse("5000.25").unwrap()
        );
        assert_eq!(es.round_price(Price::parse("5000.12").unwrap(), Rounding::Nearest), Price::parse("5000").unwrap());
        assert!(es.price_is_on_tick(Price::parse("5000.75").unwrap()));
        assert!(!es.price_is_on_tick(Price::parse("5000.7").unwrap()));
    }
}
