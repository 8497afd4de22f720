//! cTrader's units and Mirror's, converted exactly.
//!
//! - Volumes are integers in cents of a unit of the base asset; a symbol's `lotSize` is the
//!   volume of one lot. Mirror quantities are lots (10⁻⁸), so `volume = qty × lotSize` and
//!   the conversion is exact or refused, never rounded silently.
//! - Spot prices and relative SL/TP distances are integers in 10⁻⁵ of a price unit: exact in
//!   Mirror's 10⁻⁸ fixed point.
//! - Order and position prices are doubles in price units. They are read through their
//!   shortest decimal text and rounded once to the symbol's `digits`; written from Mirror's
//!   decimal text, so the double sent is the one nearest to the exact price.
//! - Money is an integer scaled by 10^`moneyDigits`.

use mirror_model::{InstrumentKind, InstrumentSpec, Money, Price, Qty, Rounding, SCALE, Symbol};

use crate::proto::ProtoOASymbol;

/// Spot prices and relative distances are integers in this many parts of a price unit.
pub(crate) const SPOT_SCALE: i64 = 100_000;
/// Mirror raw units per spot unit (10⁸ / 10⁵).
const RAW_PER_SPOT: i64 = SCALE / SPOT_SCALE;
/// Volumes are in cents of a unit.
const CENTS_PER_UNIT: i64 = 100;

/// A value that has no exact counterpart in the other system of units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnitError {
    /// The quantity is not a whole number of volume cents, or out of range.
    #[error("{qty} lots is not a whole number of volume cents with a lot size of {lot_size}")]
    InexactVolume {
        /// The quantity.
        qty: Qty,
        /// The symbol's lot size, in cents.
        lot_size: i64,
    },
    /// A volume that is not a whole number of 10⁻⁸ lots.
    #[error("volume {volume} is not a whole number of 1e-8 lots with a lot size of {lot_size}")]
    InexactQty {
        /// The volume, in cents.
        volume: i64,
        /// The symbol's lot size, in cents.
        lot_size: i64,
    },
    /// A price that is not a finite number in range.
    #[error("price {0} is not a finite number in range")]
    BadPrice(String),
    /// A symbol whose specification Mirror cannot trade with.
    #[error("symbol {symbol}: {detail}")]
    BadSymbol {
        /// The symbol's name.
        symbol: String,
        /// What is wrong.
        detail: String,
    },
}

/// Converts between Mirror quantities and cTrader volumes for one symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct VolumeScale {
    lot_size: i64,
}

impl VolumeScale {
    /// The scale of a symbol whose lot is `lot_size` cents of a unit (must be positive).
    pub(crate) fn new(lot_size: i64) -> Option<Self> {
        (lot_size > 0).then_some(Self { lot_size })
    }

    /// The protocol volume of `qty` lots, exactly.
    pub(crate) fn volume(self, qty: Qty) -> Result<i64, UnitError> {
        let product = i128::from(qty.raw()) * i128::from(self.lot_size);
        let inexact = UnitError::InexactVolume { qty, lot_size: self.lot_size };
        if product % i128::from(SCALE) != 0 {
            return Err(inexact);
        }
        i64::try_from(product / i128::from(SCALE)).map_err(|_| inexact)
    }

    /// The quantity, in lots, of a protocol volume, exactly.
    pub(crate) fn qty(self, volume: i64) -> Result<Qty, UnitError> {
        let product = i128::from(volume) * i128::from(SCALE);
        let inexact = UnitError::InexactQty { volume, lot_size: self.lot_size };
        if product % i128::from(self.lot_size) != 0 {
            return Err(inexact);
        }
        i64::try_from(product / i128::from(self.lot_size)).map(Qty::from_raw).map_err(|_| inexact)
    }
}

/// A spot price (10⁻⁵ units) as a Mirror price.
pub(crate) fn price_from_spot(spot: u64) -> Option<Price> {
    i64::try_from(spot).ok()?.checked_mul(RAW_PER_SPOT).map(Price::from_raw)
}

/// A Mirror price as a spot integer, rounded to the nearest 10⁻⁵.
pub(crate) fn spot_from_price(price: Price) -> u64 {
    let rounded = price.round_dp(5, Rounding::Nearest);
    u64::try_from(rounded.raw() / RAW_PER_SPOT).unwrap_or(0)
}

/// A price distance as a relative SL/TP (10⁻⁵ units), when it is exact at that scale.
pub(crate) fn relative_from_distance(distance: Price) -> Option<i64> {
    (distance.raw() % RAW_PER_SPOT == 0).then_some(distance.raw() / RAW_PER_SPOT)
}

/// A relative SL/TP (10⁻⁵ units) as a price distance.
pub(crate) fn distance_from_relative(relative: i64) -> Option<Price> {
    relative.checked_mul(RAW_PER_SPOT).map(Price::from_raw)
}

/// A price double from the wire, rounded once to `digits` decimals. The rounding is done by
/// Rust's exact decimal formatting of the double, then parsed as decimal text: no binary
/// arithmetic touches the value (a server's average price may carry many more decimals).
pub(crate) fn price_from_double(value: f64, digits: u8) -> Result<Price, UnitError> {
    if !value.is_finite() {
        return Err(UnitError::BadPrice(value.to_string()));
    }
    let digits = usize::from(digits.min(8));
    let text = format!("{value:.digits$}");
    Price::parse(&text).map_err(|_| UnitError::BadPrice(value.to_string()))
}

/// The double nearest to an exact Mirror price (through its decimal text, never through a
/// division that would add binary error).
pub(crate) fn double_from_price(price: Price) -> f64 {
    // Mirror prints every price as plain decimal text, which always parses.
    price.to_string().parse().unwrap_or(f64::NAN)
}

/// Money scaled by 10^`money_digits`, as Mirror money (`None` when out of range).
pub(crate) fn money_from_scaled(value: i64, money_digits: u32) -> Option<Money> {
    let digits = money_digits.min(8);
    let factor = 10i64.pow(8 - digits);
    value.checked_mul(factor).map(Money::from_raw)
}

/// Mirror money as an integer scaled by 10^`money_digits`, rounded to the nearest.
pub(crate) fn scaled_from_money(money: Money, money_digits: u32) -> i64 {
    let digits = money_digits.min(8);
    money.round_dp(digits, Rounding::Nearest).raw() / 10i64.pow(8 - digits)
}

/// Names of base assets that make a pair of three-letter assets a commodity or crypto CFD
/// rather than spot FX.
const NOT_FX_BASES: [&str; 8] = ["XAU", "XAG", "XPT", "XPD", "BTC", "ETH", "LTC", "XRP"];

/// What Mirror needs of a cTrader symbol to trade it, in Mirror's units.
///
/// The tick value is in the quote currency: it is the account's currency only when the
/// quote asset is the deposit asset (EURUSD on a USD account). Converting it needs a
/// conversion rate, which this connector does not fetch (see the crate docs).
pub(crate) fn instrument_spec(
    name: &str,
    symbol: &ProtoOASymbol,
    base_asset: Option<&str>,
    quote_asset: Option<&str>,
) -> Result<(InstrumentSpec, VolumeScale), UnitError> {
    let bad = |detail: String| UnitError::BadSymbol { symbol: name.to_owned(), detail };
    let symbol_text = Symbol::new(name).map_err(|error| bad(error.to_string()))?;
    let digits = u8::try_from(symbol.digits)
        .ok()
        .filter(|d| *d <= 8)
        .ok_or_else(|| bad(format!("digits {} is outside 0..=8", symbol.digits)))?;
    let lot_size = symbol.lot_size.ok_or_else(|| bad("no lotSize".into()))?;
    let scale = VolumeScale::new(lot_size).ok_or_else(|| bad(format!("lotSize {lot_size} is not positive")))?;
    let step_volume = symbol.step_volume.ok_or_else(|| bad("no stepVolume".into()))?;
    let min_volume = symbol.min_volume.unwrap_or(step_volume);
    let lot_step = scale.qty(step_volume).map_err(|error| bad(error.to_string()))?;
    let min_qty = scale.qty(min_volume).map_err(|error| bad(error.to_string()))?;
    // A missing maximum is the largest quantity Mirror represents, on the step grid.
    let max_qty = match symbol.max_volume {
        Some(volume) => scale.qty(volume).map_err(|error| bad(error.to_string()))?,
        None => Qty::from_units(mirror_model::MAX_WHOLE_UNITS).unwrap_or(Qty::from_raw(i64::MAX)),
    };
    let tick_size = Price::from_raw(10i64.pow(8 - u32::from(digits)));
    // One lot is lotSize / 100 units of the base asset.
    let contract_raw = i128::from(lot_size) * i128::from(SCALE) / i128::from(CENTS_PER_UNIT);
    let contract_size =
        Qty::from_raw(i64::try_from(contract_raw).map_err(|_| bad(format!("lotSize {lot_size} is out of range")))?);
    // Value of one tick on one lot, in the quote currency: tick × units.
    let tick_value_raw = i128::from(tick_size.raw()) * contract_raw / i128::from(SCALE);
    let tick_value = Money::from_raw(i64::try_from(tick_value_raw).map_err(|_| bad("tick value out of range".into()))?);
    let kind = match (base_asset, quote_asset) {
        (Some(base), Some(quote))
            if base.len() == 3
                && quote.len() == 3
                && base.bytes().all(|b| b.is_ascii_uppercase())
                && quote.bytes().all(|b| b.is_ascii_uppercase())
                && !NOT_FX_BASES.contains(&base) =>
        {
            InstrumentKind::Forex
        }
        (Some(base), _) if ["BTC", "ETH", "LTC", "XRP"].contains(&base) => InstrumentKind::Crypto,
        _ => InstrumentKind::Cfd,
    };
    let step = lot_step.raw();
    let spec = InstrumentSpec {
        symbol: symbol_text,
        kind,
        contract_size,
        tick_size,
        tick_value,
        lot_step,
        min_qty,
        max_qty: Qty::from_raw(max_qty.raw() / step.max(1) * step),
        digits,
    };
    spec.validate().map_err(|error| bad(error.to_string()))?;
    Ok((spec, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Qty {
        Qty::parse(text).unwrap()
    }

    #[test]
    fn volumes_follow_the_brief_example() {
        // EURUSD: a lot of 100,000 units is lotSize 10,000,000; 0.01 lot is 100,000.
        let scale = VolumeScale::new(10_000_000).unwrap();
        assert_eq!(scale.volume(q("0.01")).unwrap(), 100_000);
        assert_eq!(scale.volume(q("1.5")).unwrap(), 15_000_000);
        assert_eq!(scale.qty(100_000).unwrap(), q("0.01"));
        // 1e-8 lot is a tenth of a cent: not expressible.
        assert!(scale.volume(Qty::from_raw(1)).is_err());
    }

    #[test]
    fn spot_prices_are_exact() {
        assert_eq!(price_from_spot(123_000).unwrap(), Price::parse("1.23").unwrap());
        assert_eq!(spot_from_price(Price::parse("1.08512").unwrap()), 108_512);
        assert_eq!(relative_from_distance(Price::parse("0.0025").unwrap()), Some(250));
        assert_eq!(relative_from_distance(Price::parse("0.000001").unwrap()), None);
    }

    #[test]
    fn doubles_round_once_to_digits() {
        assert_eq!(price_from_double(1.08512, 5).unwrap(), Price::parse("1.08512").unwrap());
        assert_eq!(price_from_double(1.085_119_999_9, 5).unwrap(), Price::parse("1.08512").unwrap());
        // An average price with more decimals than Mirror keeps.
        assert_eq!(price_from_double(1.085_123_333_333_3, 5).unwrap(), Price::parse("1.08512").unwrap());
        assert_eq!(price_from_double(150.125_000_01, 2).unwrap(), Price::parse("150.13").unwrap());
        assert_eq!(double_from_price(Price::parse("1.08512").unwrap()), 1.08512);
        assert!(price_from_double(f64::NAN, 5).is_err());
    }

    #[test]
    fn money_scales_both_ways() {
        assert_eq!(money_from_scaled(12_345, 2).unwrap(), Money::parse("123.45").unwrap());
        assert_eq!(scaled_from_money(Money::parse("123.455").unwrap(), 2), 12_346);
    }

    #[test]
    fn a_symbol_maps_to_a_valid_spec() {
        let symbol = ProtoOASymbol {
            symbol_id: 1,
            digits: 5,
            pip_position: 4,
            lot_size: Some(10_000_000),
            step_volume: Some(100_000),
            min_volume: Some(100_000),
            max_volume: Some(10_000_000_000),
            ..ProtoOASymbol::default()
        };
        let (spec, _) = instrument_spec("EURUSD", &symbol, Some("EUR"), Some("USD")).unwrap();
        assert_eq!(spec.contract_size, q("100000"));
        assert_eq!(spec.lot_step, q("0.01"));
        assert_eq!(spec.min_qty, q("0.01"));
        assert_eq!(spec.max_qty, q("1000"));
        assert_eq!(spec.tick_size, Price::parse("0.00001").unwrap());
        assert_eq!(spec.tick_value, Money::parse("1").unwrap());
        assert_eq!(spec.kind, InstrumentKind::Forex);
    }
}
