//! MetaTrader's answers in Mirror's terms: trade server return codes (MT5), `GetLastError`
//! codes (MT4) and the EA's own refusals, mapped to [`RejectCode`]s.

use mirror_connector::{ConnectorError, RejectCode, RejectReason};
use mirror_model::Platform;

/// The EA could not read or carry out a command at all (a malformed `cmd`).
pub(crate) const EA_BAD_COMMAND: i64 = -1;

fn mt5(retcode: i64) -> Option<RejectCode> {
    use RejectCode::*;
    Some(match retcode {
        // MQL5 runtime errors the EA reports before any request is sent.
        4301 | 4302 => UnknownSymbol,
        4753 | 4754 => NotFound,
        10014 | 10034 | 10038 => InvalidQty,
        10015 | 10021 => InvalidPrice,
        10016 => InvalidStops,
        10017 | 10026 | 10027 | 10032 | 10042 | 10043 | 10044 => TradingDisabled,
        10018 => MarketClosed,
        10019 => InsufficientMargin,
        10024 => RateLimited,
        10036 => NotFound,
        10031 => return None,
        _ => Other,
    })
}

fn mt4(error: i64) -> Option<RejectCode> {
    use RejectCode::*;
    Some(match error {
        4106 => UnknownSymbol,
        4108 => NotFound,
        131 => InvalidQty,
        129 | 135 | 136 | 138 => InvalidPrice,
        130 | 145 => InvalidStops,
        64 | 65 | 133 | 140 => TradingDisabled,
        132 => MarketClosed,
        134 => InsufficientMargin,
        4 | 8 | 137 | 141 | 146 => RateLimited,
        6 => return None,
        _ => Other,
    })
}

/// The error for a refused command. Codes that mean the terminal could not reach its trade
/// server (MT5 10031, MT4 6) are `NotConnected`: nothing was sent, and it can be tried again.
pub(crate) fn refusal(platform: Platform, retcode: i64, message: &str) -> ConnectorError {
    let code = if retcode == EA_BAD_COMMAND {
        Some(RejectCode::Other)
    } else if platform == Platform::Mt4 {
        mt4(retcode)
    } else {
        mt5(retcode)
    };
    match code {
        Some(code) => ConnectorError::Rejected(RejectReason::new(code, format!("{message} (code {retcode})"))),
        None => ConnectorError::NotConnected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(platform: Platform, retcode: i64) -> Option<RejectCode> {
        match refusal(platform, retcode, "x") {
            ConnectorError::Rejected(reason) => Some(reason.code),
            _ => None,
        }
    }

    #[test]
    fn codes_map_per_platform() {
        assert_eq!(code(Platform::Mt5, 10014), Some(RejectCode::InvalidQty));
        assert_eq!(code(Platform::Mt5, 10016), Some(RejectCode::InvalidStops));
        assert_eq!(code(Platform::Mt5, 10019), Some(RejectCode::InsufficientMargin));
        assert_eq!(code(Platform::Mt5, 10027), Some(RejectCode::TradingDisabled));
        assert_eq!(code(Platform::Mt5, 4301), Some(RejectCode::UnknownSymbol));
        assert_eq!(code(Platform::Mt5, 10006), Some(RejectCode::Other));
        assert_eq!(refusal(Platform::Mt5, 10031, "no connection"), ConnectorError::NotConnected);
        assert_eq!(code(Platform::Mt4, 131), Some(RejectCode::InvalidQty));
        assert_eq!(code(Platform::Mt4, 146), Some(RejectCode::RateLimited));
        assert_eq!(code(Platform::Mt4, 4108), Some(RejectCode::NotFound));
        assert_eq!(refusal(Platform::Mt4, 6, "no connection"), ConnectorError::NotConnected);
        let ConnectorError::Rejected(reason) = refusal(Platform::Mt4, 134, "not enough money") else { panic!() };
        assert_eq!(reason.message, "not enough money (code 134)");
    }
}
