//! Exact fixed-point numbers.
//!
//! Every price, quantity and amount of money in Mirror is an `i64` count of 10⁻⁸ units. Eight
//! decimals cover FX (5 digits), JPY pairs, futures ticks and crypto satoshis alike, and the
//! range (±9.2 × 10¹⁰) covers any price or account balance a trader will meet. Values are parsed
//! from decimal text digit by digit, never through binary floating point, and arithmetic that
//! has to divide (sizing, P&L) runs on `i128` and rounds once, at the end, with a stated rule.

use std::fmt;
use std::str::FromStr;

/// Decimal places of every fixed-point value.
pub const DECIMALS: u32 = 8;
/// Raw units per whole unit (10⁸).
pub const SCALE: i64 = 100_000_000;
/// Largest magnitude accepted from text or floats, in whole units. Anything bigger is a typo
/// or an attack; keeping values well inside `i64` also means a handful of them can be added
/// without overflow.
pub const MAX_WHOLE_UNITS: i64 = 10_000_000_000;

/// How a value that falls between two representable steps is rounded.
///
/// Directions are about magnitude: `Down` rounds toward zero, `Up` away from zero and
/// `Nearest` to the closer step with ties away from zero.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Toward zero (the default for copy sizes: never more than the rule asks for).
    #[default]
    Down,
    /// To the nearest step, ties away from zero.
    Nearest,
    /// Away from zero.
    Up,
}

/// `num / den` (`den > 0`) rounded by `mode`, for one integer width.
macro_rules! div_round_for {
    ($name:ident, $int:ty) => {
        fn $name(num: $int, den: $int, mode: Rounding) -> $int {
            let quotient = num / den;
            let remainder = num % den;
            if remainder == 0 {
                return quotient;
            }
            let away = if num < 0 { -1 } else { 1 };
            match mode {
                Rounding::Down => quotient,
                Rounding::Up => quotient + away,
                Rounding::Nearest if remainder.unsigned_abs() * 2 >= den.unsigned_abs() => quotient + away,
                Rounding::Nearest => quotient,
            }
        }
    };
}

div_round_for!(div_round_64, i64);
div_round_for!(div_round_128, i128);

/// Divides `num` by `den` (`den > 0`) and rounds the quotient by `mode`.
pub(crate) fn div_round(num: i128, den: i128, mode: Rounding) -> i128 {
    assert!(den > 0, "div_round needs a positive divisor, got {den}");
    // Sizes and prices nearly always fit in 64 bits, where division is one instruction
    // instead of a 128-bit library call.
    if let (Ok(num), Ok(den)) = (i64::try_from(num), i64::try_from(den)) {
        return i128::from(div_round_64(num, den, mode));
    }
    div_round_128(num, den, mode)
}

/// Greatest common divisor of two magnitudes (`gcd(0, 0) = 0`).
pub(crate) fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Why a piece of text or a float is not an acceptable decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Nothing to parse.
    #[error("expected a decimal number, got an empty string")]
    Empty,
    /// Not of the form `[-]digits[.digits]`.
    #[error("expected a decimal number such as 1.25, got `{0}`")]
    Invalid(String),
    /// More decimal places than the type can hold exactly.
    #[error("`{text}` has {decimals} decimal places; at most {max} are supported")]
    TooPrecise {
        /// The text as given.
        text: String,
        /// Decimal places found.
        decimals: u32,
        /// Decimal places supported.
        max: u32,
    },
    /// Larger than any real price, quantity or balance.
    #[error("`{0}` is out of range (magnitude above 10,000,000,000)")]
    OutOfRange(String),
    /// NaN or an infinity.
    #[error("expected a finite number, got {0}")]
    NotFinite(String),
}

/// A decimal as an integer mantissa and a count of decimal places: `12.5` is `(125, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decimal {
    pub(crate) mantissa: i128,
    pub(crate) decimals: u32,
}

/// Most decimal places a parsed decimal may carry before scaling (ratios use up to 12).
const PARSE_DECIMALS_MAX: u32 = 18;

impl Decimal {
    /// Parses `[+-]digits[.digits]` (underscores between digits allowed, as in TOML).
    pub(crate) fn parse(text: &str) -> Result<Self, DecimalError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DecimalError::Empty);
        }
        let invalid = || DecimalError::Invalid(trimmed.to_owned());
        let (negative, body) = match trimmed.as_bytes()[0] {
            b'-' => (true, &trimmed[1..]),
            b'+' => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        let (whole, fraction) = match body.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (body, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(invalid());
        }
        let mut mantissa: i128 = 0;
        let mut decimals: u32 = 0;
        let mut digits_seen = 0usize;
        for (part_index, part) in [whole, fraction].into_iter().enumerate() {
            let mut previous_was_digit = false;
            for byte in part.bytes() {
                match byte {
                    b'0'..=b'9' => {
                        mantissa = mantissa
                            .checked_mul(10)
                            .and_then(|m| m.checked_add(i128::from(byte - b'0')))
                            .ok_or_else(|| DecimalError::OutOfRange(trimmed.to_owned()))?;
                        if part_index == 1 {
                            decimals += 1;
                        }
                        digits_seen += 1;
                        previous_was_digit = true;
                    }
                    b'_' if previous_was_digit => previous_was_digit = false,
                    _ => return Err(invalid()),
                }
                if mantissa > 10i128.pow(30) {
                    return Err(DecimalError::OutOfRange(trimmed.to_owned()));
                }
            }
            if !part.is_empty() && !previous_was_digit {
                return Err(invalid());
            }
        }
        if digits_seen == 0 {
            return Err(invalid());
        }
        // Trailing zeros after the point carry no precision: `1.50000000000` is `1.5`.
        while decimals > 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            decimals -= 1;
        }
        if decimals > PARSE_DECIMALS_MAX {
            return Err(DecimalError::TooPrecise { text: trimmed.to_owned(), decimals, max: PARSE_DECIMALS_MAX });
        }
        Ok(Self { mantissa: if negative { -mantissa } else { mantissa }, decimals })
    }

    /// The exact decimal a float prints as (Rust prints the shortest text that round-trips,
    /// so the `0.1` a user typed in JSON or TOML comes back as `0.1`).
    pub(crate) fn from_f64(value: f64) -> Result<Self, DecimalError> {
        if !value.is_finite() {
            return Err(DecimalError::NotFinite(value.to_string()));
        }
        Self::parse(&format!("{value}"))
    }

    /// Scales to a count of 10⁻ᵗᵃʳᵍᵉᵗ units, refusing anything that would need rounding.
    pub(crate) fn to_scaled(self, target_decimals: u32, text: &str) -> Result<i128, DecimalError> {
        if self.decimals > target_decimals {
            return Err(DecimalError::TooPrecise {
                text: text.trim().to_owned(),
                decimals: self.decimals,
                max: target_decimals,
            });
        }
        Ok(self.mantissa * 10i128.pow(target_decimals - self.decimals))
    }
}

/// Formats `raw` (a count of 10⁻ᵈᵉᶜⁱᵐᵃˡˢ units) with as few decimals as it needs.
pub(crate) fn format_scaled(f: &mut fmt::Formatter<'_>, raw: i128, decimals: u32) -> fmt::Result {
    let scale = 10i128.pow(decimals);
    let sign = if raw < 0 { "-" } else { "" };
    let magnitude = raw.unsigned_abs();
    let whole = magnitude / scale.unsigned_abs();
    let mut fraction = magnitude % scale.unsigned_abs();
    if fraction == 0 {
        return write!(f, "{sign}{whole}");
    }
    let mut width = decimals as usize;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    write!(f, "{sign}{whole}.{fraction:0width$}")
}

macro_rules! fixed_point {
    ($(#[$meta:meta])* $name:ident, $archived:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
        pub struct $name(i64);

        impl $name {
            /// Zero.
            pub const ZERO: Self = Self(0);

            /// From a raw count of 10⁻⁸ units.
            pub const fn from_raw(raw: i64) -> Self {
                Self(raw)
            }

            /// The raw count of 10⁻⁸ units.
            pub const fn raw(self) -> i64 {
                self.0
            }

            /// From whole units (`None` when out of range).
            pub const fn from_units(units: i64) -> Option<Self> {
                if units > MAX_WHOLE_UNITS || units < -MAX_WHOLE_UNITS {
                    return None;
                }
                Some(Self(units * SCALE))
            }

            /// Parses decimal text exactly; more than eight decimals is an error, not a rounding.
            pub fn parse(text: &str) -> Result<Self, DecimalError> {
                let raw = Decimal::parse(text)?.to_scaled(DECIMALS, text)?;
                Self::from_scaled(raw, text)
            }

            /// Converts a float from outside (a JSON number) through its shortest decimal text.
            /// NaN and infinities are refused.
            pub fn from_f64(value: f64) -> Result<Self, DecimalError> {
                let text = format!("{value}");
                let raw = Decimal::from_f64(value)?.to_scaled(DECIMALS, &text)?;
                Self::from_scaled(raw, &text)
            }

            fn from_scaled(raw: i128, text: &str) -> Result<Self, DecimalError> {
                let limit = i128::from(MAX_WHOLE_UNITS) * i128::from(SCALE);
                if raw.abs() > limit {
                    return Err(DecimalError::OutOfRange(text.trim().to_owned()));
                }
                Ok(Self(i64::try_from(raw).map_err(|_| DecimalError::OutOfRange(text.trim().to_owned()))?))
            }

            /// Sum, or `None` on overflow.
            pub const fn checked_add(self, other: Self) -> Option<Self> {
                match self.0.checked_add(other.0) {
                    Some(raw) => Some(Self(raw)),
                    None => None,
                }
            }

            /// Difference, or `None` on overflow.
            pub const fn checked_sub(self, other: Self) -> Option<Self> {
                match self.0.checked_sub(other.0) {
                    Some(raw) => Some(Self(raw)),
                    None => None,
                }
            }

            /// Magnitude.
            pub const fn abs(self) -> Self {
                Self(self.0.abs())
            }

            /// `> 0`.
            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }

            /// `< 0`.
            pub const fn is_negative(self) -> bool {
                self.0 < 0
            }

            /// `== 0`.
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            /// The nearest `f64`, for display and metrics only, never for arithmetic.
            #[allow(clippy::cast_precision_loss)]
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / SCALE as f64
            }

            /// Rounded to `decimals` places (at most 8) by `mode`: money to cents, say.
            pub fn round_dp(self, decimals: u32, mode: Rounding) -> Self {
                let unit = 10i128.pow(DECIMALS - decimals.min(DECIMALS));
                let raw = div_round(i128::from(self.0), unit, mode) * unit;
                Self(i64::try_from(raw).unwrap_or(self.0))
            }
        }

        impl $archived {
            /// The native value.
            pub fn to_native(&self) -> $name {
                $name(self.0.to_native())
            }
        }

        impl std::ops::Add for $name {
            type Output = Self;
            /// Values are bounded to ±10¹⁰ units on entry, so only a programming error can
            /// overflow here; that is a bug worth stopping for.
            fn add(self, other: Self) -> Self {
                self.checked_add(other).expect(concat!($what, " addition overflowed"))
            }
        }

        impl std::ops::Sub for $name {
            type Output = Self;
            fn sub(self, other: Self) -> Self {
                self.checked_sub(other).expect(concat!($what, " subtraction overflowed"))
            }
        }

        impl std::ops::Neg for $name {
            type Output = Self;
            fn neg(self) -> Self {
                Self(-self.0)
            }
        }

        impl std::ops::AddAssign for $name {
            fn add_assign(&mut self, other: Self) {
                *self = *self + other;
            }
        }

        impl std::ops::SubAssign for $name {
            fn sub_assign(&mut self, other: Self) {
                *self = *self - other;
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_scaled(f, i128::from(self.0), DECIMALS)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = DecimalError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_any(DecimalVisitor::new(concat!("a ", $what, " such as \"1.25\""), |decimal, text| {
                    let raw = decimal.to_scaled(DECIMALS, text)?;
                    $name::from_scaled(raw, text)
                }))
            }
        }
    };
}

/// Accepts decimal text, integers and finite floats, and hands the exact decimal to `build`.
pub(crate) struct DecimalVisitor<T> {
    expecting: &'static str,
    build: fn(Decimal, &str) -> Result<T, DecimalError>,
}

impl<T> DecimalVisitor<T> {
    pub(crate) fn new(expecting: &'static str, build: fn(Decimal, &str) -> Result<T, DecimalError>) -> Self {
        Self { expecting, build }
    }
}

impl<T> serde::de::Visitor<'_> for DecimalVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
        let decimal = Decimal::parse(text).map_err(E::custom)?;
        (self.build)(decimal, text).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
        let text = value.to_string();
        (self.build)(Decimal { mantissa: i128::from(value), decimals: 0 }, &text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
        let text = value.to_string();
        (self.build)(Decimal { mantissa: i128::from(value), decimals: 0 }, &text).map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
        let decimal = Decimal::from_f64(value).map_err(E::custom)?;
        (self.build)(decimal, &format!("{value}")).map_err(E::custom)
    }
}

fixed_point!(
    /// A price in the instrument's quote currency, in 10⁻⁸ units.
    Price, ArchivedPrice, "price"
);
fixed_point!(
    /// A quantity in the instrument's own unit (lots, contracts, coins), in 10⁻⁸ units.
    Qty, ArchivedQty, "quantity"
);
fixed_point!(
    /// An amount of money in the account's currency, in 10⁻⁸ units.
    Money, ArchivedMoney, "amount of money"
);

/// An exact non-negative ratio such as a size multiplier (`0.5`, `1/3`) or a percentage.
///
/// Held as a reduced fraction so that `1/3` stays exact; decimal text with up to 12 decimals
/// becomes `mantissa / 10ᵈᵉᶜⁱᵐᵃˡˢ`, reduced.
#[derive(Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug, Clone, Copy, PartialEq, Eq))]
pub struct Ratio {
    num: i64,
    den: i64,
}

/// Decimal places a ratio may be written with.
const RATIO_DECIMALS_MAX: u32 = 12;

impl Ratio {
    /// 1.
    pub const ONE: Self = Self { num: 1, den: 1 };
    /// 0.
    pub const ZERO: Self = Self { num: 0, den: 1 };

    /// `num / den`, reduced; `None` when `den` is not positive or `num` is negative.
    pub fn new(num: i64, den: i64) -> Option<Self> {
        if den <= 0 || num < 0 {
            return None;
        }
        let divisor = gcd(num.unsigned_abs().into(), den.unsigned_abs().into()).max(1);
        let divisor = i64::try_from(divisor).ok()?;
        Some(Self { num: num / divisor, den: den / divisor })
    }

    /// Whole number `n`.
    pub fn integer(n: i64) -> Option<Self> {
        Self::new(n, 1)
    }

    /// Numerator of the reduced fraction.
    pub const fn num(self) -> i64 {
        self.num
    }

    /// Denominator of the reduced fraction (always positive).
    pub const fn den(self) -> i64 {
        self.den
    }

    /// `> 0`.
    pub const fn is_positive(self) -> bool {
        self.num > 0
    }

    /// Parses `0.5`, `2`, `1/3`; negative values and zero denominators are refused.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let trimmed = text.trim();
        if let Some((num, den)) = trimmed.split_once('/') {
            let num = Self::parse(num)?;
            let den = Self::parse(den)?;
            if den.num == 0 {
                return Err(DecimalError::Invalid(trimmed.to_owned()));
            }
            return num
                .checked_mul(Self { num: den.den, den: den.num })
                .ok_or_else(|| DecimalError::OutOfRange(trimmed.to_owned()));
        }
        Self::from_decimal(Decimal::parse(trimmed)?, trimmed)
    }

    fn from_decimal(decimal: Decimal, text: &str) -> Result<Self, DecimalError> {
        if decimal.mantissa < 0 {
            return Err(DecimalError::Invalid(format!("{} (a ratio cannot be negative)", text.trim())));
        }
        if decimal.decimals > RATIO_DECIMALS_MAX {
            return Err(DecimalError::TooPrecise {
                text: text.trim().to_owned(),
                decimals: decimal.decimals,
                max: RATIO_DECIMALS_MAX,
            });
        }
        let den = 10i128.pow(decimal.decimals);
        if decimal.mantissa > i128::from(MAX_WHOLE_UNITS) * den {
            return Err(DecimalError::OutOfRange(text.trim().to_owned()));
        }
        let num = i64::try_from(decimal.mantissa).map_err(|_| DecimalError::OutOfRange(text.trim().to_owned()))?;
        let den = i64::try_from(den).map_err(|_| DecimalError::OutOfRange(text.trim().to_owned()))?;
        Self::new(num, den).ok_or_else(|| DecimalError::Invalid(text.trim().to_owned()))
    }

    /// Product, reduced; `None` when it does not fit.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        let num = i128::from(self.num) * i128::from(other.num);
        let den = i128::from(self.den) * i128::from(other.den);
        let divisor = gcd(num.unsigned_abs(), den.unsigned_abs()).max(1);
        let divisor = i128::try_from(divisor).ok()?;
        Some(Self { num: i64::try_from(num / divisor).ok()?, den: i64::try_from(den / divisor).ok()? })
    }

    /// The nearest `f64`, for display only.
    #[allow(clippy::cast_precision_loss)]
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl ArchivedRatio {
    /// The native value.
    pub fn to_native(&self) -> Ratio {
        Ratio { num: self.num.to_native(), den: self.den.to_native() }
    }
}

impl Default for Ratio {
    fn default() -> Self {
        Self::ONE
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Print as a decimal when the fraction has one (the denominator divides a power of
        // ten: 5/2 is 2.5), otherwise as a fraction (1/3).
        let mut power: i128 = 1;
        for decimals in 0..=18u32 {
            if power % i128::from(self.den) == 0 {
                let scaled = i128::from(self.num) * (power / i128::from(self.den));
                return format_scaled(f, scaled, decimals);
            }
            power *= 10;
        }
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl fmt::Debug for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ratio({self})")
    }
}

impl FromStr for Ratio {
    type Err = DecimalError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl serde::Serialize for Ratio {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RatioVisitor;
        impl serde::de::Visitor<'_> for RatioVisitor {
            type Value = Ratio;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative ratio such as 0.5, \"1/3\" or 2")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Ratio, E> {
                Ratio::parse(text).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Ratio, E> {
                Ratio::parse(&value.to_string()).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Ratio, E> {
                Ratio::parse(&value.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Ratio, E> {
                let decimal = Decimal::from_f64(value).map_err(E::custom)?;
                Ratio::from_decimal(decimal, &format!("{value}")).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(RatioVisitor)
    }
}

/// An exact non-negative fraction on `i128`, used to carry a computation (size × ratios ÷
/// contract sizes …) to its single final rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fraction {
    num: i128,
    den: i128,
}

impl Fraction {
    pub(crate) fn from_int(value: i128) -> Self {
        Self { num: value, den: 1 }
    }

    fn reduced(num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        let (num, den) = if den < 0 { (num.checked_neg()?, den.checked_neg()?) } else { (num, den) };
        let divisor = i128::try_from(gcd(num.unsigned_abs(), den.unsigned_abs()).max(1)).ok()?;
        Some(Self { num: num / divisor, den: den / divisor })
    }

    /// `self × num ÷ den`. The fraction is only reduced (by GCD, which costs a loop of
    /// 128-bit divisions) when the plain product would overflow.
    pub(crate) fn scale(self, num: i128, den: i128) -> Option<Self> {
        if den == 0 {
            return None;
        }
        if let (Some(n), Some(d)) = (self.num.checked_mul(num), self.den.checked_mul(den)) {
            return if d < 0 {
                Some(Self { num: n.checked_neg()?, den: d.checked_neg()? })
            } else {
                Some(Self { num: n, den: d })
            };
        }
        let left = Self::reduced(self.num, den)?;
        let right = Self::reduced(num, self.den)?;
        Self::reduced(left.num.checked_mul(right.num)?, left.den.checked_mul(right.den)?)
    }

    pub(crate) fn mul_ratio(self, ratio: Ratio) -> Option<Self> {
        self.scale(ratio.num.into(), ratio.den.into())
    }

    /// Rounds `self ÷ step` to a whole count of steps.
    pub(crate) fn steps(self, step: i128, mode: Rounding) -> Option<i128> {
        Some(div_round(self.num, self.den.checked_mul(step)?, mode))
    }

    pub(crate) fn round(self, mode: Rounding) -> i128 {
        div_round(self.num, self.den, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(Price::parse("1.08500").unwrap().raw(), 108_500_000);
        assert_eq!(Qty::parse("0.01").unwrap().raw(), 1_000_000);
        assert_eq!(Qty::parse("-2").unwrap().raw(), -200_000_000);
        assert_eq!(Money::parse("100_000").unwrap().raw(), 100_000 * SCALE);
        assert_eq!(Price::parse("+.5").unwrap().raw(), 50_000_000);
        assert_eq!(Price::parse("5.").unwrap().raw(), 500_000_000);
        assert_eq!(Price::parse("0.000000010000").unwrap().raw(), 1);
    }

    #[test]
    fn refuses_bad_text_with_a_reason() {
        assert_eq!(Price::parse(""), Err(DecimalError::Empty));
        assert!(matches!(Price::parse("1.2.3"), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("1e5"), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("NaN"), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("-"), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("."), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("1__0"), Err(DecimalError::Invalid(_))));
        assert!(matches!(Price::parse("10_"), Err(DecimalError::Invalid(_))));
        let err = Price::parse("0.000000001").unwrap_err();
        assert_eq!(err.to_string(), "`0.000000001` has 9 decimal places; at most 8 are supported");
        assert!(matches!(Money::parse("99999999999"), Err(DecimalError::OutOfRange(_))));
    }

    #[test]
    fn floats_are_refused_when_not_finite_and_exact_otherwise() {
        assert!(matches!(Price::from_f64(f64::NAN), Err(DecimalError::NotFinite(_))));
        assert!(matches!(Price::from_f64(f64::INFINITY), Err(DecimalError::NotFinite(_))));
        assert_eq!(Price::from_f64(0.1).unwrap().raw(), 10_000_000);
        assert_eq!(Qty::from_f64(2.3).unwrap(), Qty::parse("2.3").unwrap());
    }

    #[test]
    fn displays_with_as_few_decimals_as_needed() {
        assert_eq!(Price::parse("1.08500").unwrap().to_string(), "1.085");
        assert_eq!(Price::parse("5000").unwrap().to_string(), "5000");
        assert_eq!(Money::parse("-0.5").unwrap().to_string(), "-0.5");
        assert_eq!(Qty::from_raw(1).to_string(), "0.00000001");
    }

    #[test]
    fn rounds_to_decimal_places() {
        let money = Money::parse("25025.04000025").unwrap();
        assert_eq!(money.round_dp(2, Rounding::Nearest).to_string(), "25025.04");
        assert_eq!(Money::parse("-0.005").unwrap().round_dp(2, Rounding::Nearest).to_string(), "-0.01");
        assert_eq!(Money::parse("1.239").unwrap().round_dp(2, Rounding::Down).to_string(), "1.23");
        assert_eq!(money.round_dp(9, Rounding::Down), money);
    }

    #[test]
    fn ratios_parse_exactly() {
        assert_eq!(Ratio::parse("0.5").unwrap(), Ratio::new(1, 2).unwrap());
        assert_eq!(Ratio::parse("1/3").unwrap(), Ratio::new(1, 3).unwrap());
        assert_eq!(Ratio::parse("0.25/0.5").unwrap(), Ratio::new(1, 2).unwrap());
        assert_eq!(Ratio::parse("1/3").unwrap().to_string(), "1/3");
        assert_eq!(Ratio::parse("2.50").unwrap().to_string(), "2.5");
        assert_eq!(Ratio::new(5, 2).unwrap().to_string(), "2.5");
        assert_eq!(Ratio::new(1, 8).unwrap().to_string(), "0.125");
        assert_eq!(Ratio::parse("0.000000000001").unwrap().to_string(), "0.000000000001");
        assert!(Ratio::parse("-1").is_err());
        assert!(Ratio::parse("1/0").is_err());
        assert!(Ratio::parse("0.0000000000001").is_err());
    }

    proptest::proptest! {
        /// The 64-bit fast path rounds exactly like the 128-bit path.
        #[test]
        fn fast_division_agrees_with_wide_division(num in proptest::num::i64::ANY, den in 1i64..=i64::MAX) {
            for mode in [Rounding::Down, Rounding::Nearest, Rounding::Up] {
                proptest::prop_assert_eq!(
                    i128::from(div_round_64(num, den, mode)),
                    div_round_128(i128::from(num), i128::from(den), mode)
                );
            }
        }
    }

    #[test]
    fn division_rounds_by_magnitude() {
        assert_eq!(div_round(7, 2, Rounding::Down), 3);
        assert_eq!(div_round(7, 2, Rounding::Up), 4);
        assert_eq!(div_round(7, 2, Rounding::Nearest), 4);
        assert_eq!(div_round(-7, 2, Rounding::Down), -3);
        assert_eq!(div_round(-7, 2, Rounding::Up), -4);
        assert_eq!(div_round(-7, 2, Rounding::Nearest), -4);
        assert_eq!(div_round(5, 3, Rounding::Nearest), 2);
        assert_eq!(div_round(4, 3, Rounding::Nearest), 1);
        assert_eq!(div_round(6, 3, Rounding::Up), 2);
    }

    #[test]
    fn serde_accepts_strings_integers_and_floats() {
        #[derive(Debug, serde::Deserialize)]
        struct Row {
            a: Price,
            b: Price,
            c: Price,
            r: Ratio,
        }
        let row: Row = serde_json::from_str(r#"{"a":"1.5","b":2,"c":0.25,"r":0.1}"#).unwrap();
        assert_eq!(row.a.to_string(), "1.5");
        assert_eq!(row.b.to_string(), "2");
        assert_eq!(row.c.to_string(), "0.25");
        assert_eq!(row.r, Ratio::new(1, 10).unwrap());
        let err = serde_json::from_str::<Row>(r#"{"a":"abc","b":2,"c":0.25,"r":0.1}"#).unwrap_err();
        assert!(err.to_string().contains("expected a decimal number such as 1.25, got `abc`"), "{err}");
    }
}
