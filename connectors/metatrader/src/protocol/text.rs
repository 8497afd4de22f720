//! Serde helpers that keep numbers exact on the wire.
//!
//! Prices, volumes and money cross the wire as decimal *strings* that the Expert Advisor
//! formats with the symbol's digits or volume step (`DoubleToString`). A JSON number would go
//! through `f64` in the parser, so a number is refused here: only text is accepted, and it is
//! parsed digit by digit by the model's exact parsers.

use std::fmt::Display;
use std::str::FromStr;

use mirror_model::DecimalError;
use serde::de::{DeserializeOwned, Error as _, IntoDeserializer};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A required decimal: `"1.08512"`.
pub(crate) mod decimal {
    use super::*;

    pub(crate) fn serialize<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr<Err = DecimalError>,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// An optional level: `""` (and any zero, which MetaTrader uses for "no stop") is `None`.
pub(crate) mod level {
    use super::*;

    pub(crate) fn serialize<T: Display, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(value),
            None => serializer.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err = DecimalError> + Default + PartialEq,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: T = text.parse().map_err(D::Error::custom)?;
        Ok((value != T::default()).then_some(value))
    }
}

/// An optional word (`"buy"`, `"limit"`); `""` is `None`.
pub(crate) mod word {
    use super::*;

    pub(crate) fn serialize<T: Serialize, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub(crate) fn deserialize<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        T: DeserializeOwned,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        T::deserialize(text.as_str().into_deserializer()).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use mirror_model::{Price, Side};

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Row {
        #[serde(with = "super::decimal")]
        price: Price,
        #[serde(with = "super::level")]
        sl: Option<Price>,
        #[serde(with = "super::word")]
        side: Option<Side>,
    }

    #[test]
    fn decimals_are_text_and_exact() {
        let row: Row = serde_json::from_str(r#"{"price":"1.08512","sl":"0.00000","side":"sell"}"#).unwrap();
        assert_eq!(row, Row { price: Price::parse("1.08512").unwrap(), sl: None, side: Some(Side::Sell) });
        let row: Row = serde_json::from_str(r#"{"price":"1.1","sl":"1.05","side":""}"#).unwrap();
        assert_eq!(row.sl, Some(Price::parse("1.05").unwrap()));
        assert_eq!(row.side, None);
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"price":"1.1","sl":"1.05","side":""}"#);
    }

    #[test]
    fn numbers_and_bad_text_are_refused() {
        assert!(serde_json::from_str::<Row>(r#"{"price":1.1,"sl":"","side":""}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"price":"1e5","sl":"","side":""}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"price":"1.1","sl":"","side":"long"}"#).is_err());
    }
}
