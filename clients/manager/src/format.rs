//! Display of exact values: every number goes through the model's decimal formatting
//! (`Money`, `Qty`, `Price` and their `Display`), never through `f64`.

use mirror_model::{Money, Price, Qty, Rounding};

/// Inserts thousands separators into the whole part of decimal text (`-1234567.5` →
/// `-1,234,567.5`).
fn group_thousands(text: &str) -> String {
    let (sign, rest) = text.strip_prefix('-').map_or(("", text), |rest| ("-", rest));
    let (whole, fraction) = rest.split_once('.').map_or((rest, None), |(w, f)| (w, Some(f)));
    let mut grouped = String::with_capacity(text.len() + whole.len() / 3);
    grouped.push_str(sign);
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(fraction);
    }
    grouped
}

/// An amount of money (raw 10⁻⁸ units) to the cent, with thousands separators: `100,000.50`.
pub(crate) fn money(raw: i64) -> String {
    let cents = Money::from_raw(raw).round_dp(2, Rounding::Nearest).to_string();
    let padded = match cents.split_once('.') {
        None => format!("{cents}.00"),
        Some((_, fraction)) if fraction.len() == 1 => format!("{cents}0"),
        Some(_) => cents,
    };
    group_thousands(&padded)
}

/// A signed amount of money with an explicit `+` for gains.
pub(crate) fn signed_money(raw: i64) -> String {
    if raw > 0 { format!("+{}", money(raw)) } else { money(raw) }
}

/// A quantity, with as many decimals as it has.
pub(crate) fn qty(raw: i64) -> String {
    Qty::from_raw(raw).to_string()
}

/// A price, with as many decimals as it has.
pub(crate) fn price(raw: i64) -> String {
    Price::from_raw(raw).to_string()
}

/// Basis points as a percentage with two decimals (`123` → `1.23%`), integer arithmetic only.
pub(crate) fn basis_points(bp: i64) -> String {
    let sign = if bp < 0 { "-" } else { "" };
    let magnitude = bp.unsigned_abs();
    format!("{sign}{}.{:02}%", magnitude / 100, magnitude % 100)
}

/// A duration in nanoseconds, in the unit that reads best (`850 µs`, `3.2 ms`).
pub(crate) fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{} µs", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{}.{} ms", ns / 1_000_000, (ns % 1_000_000) / 100_000),
        _ => format!("{}.{} s", ns / 1_000_000_000, (ns % 1_000_000_000) / 100_000_000),
    }
}

/// Unix milliseconds as `HH:MM:SS` UTC.
pub(crate) fn clock_utc(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1_000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", seconds / 3_600, (seconds / 60) % 60, seconds % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> i64 {
        Money::parse(text).unwrap().raw()
    }

    #[test]
    fn money_is_shown_to_the_cent_with_separators() {
        assert_eq!(money(raw("100000")), "100,000.00");
        assert_eq!(money(raw("1234567.5")), "1,234,567.50");
        assert_eq!(money(raw("-999.995")), "-1,000.00");
        assert_eq!(money(raw("0.004")), "0.00");
        assert_eq!(signed_money(raw("12.3")), "+12.30");
        assert_eq!(signed_money(raw("-12.3")), "-12.30");
        assert_eq!(money(raw("123")), "123.00");
    }

    #[test]
    fn percentages_durations_and_clock_read_plainly() {
        assert_eq!(basis_points(123), "1.23%");
        assert_eq!(basis_points(5), "0.05%");
        assert_eq!(basis_points(-250), "-2.50%");
        assert_eq!(nanos(850_000), "850 µs");
        assert_eq!(nanos(3_250_000), "3.2 ms");
        assert_eq!(clock_utc(3_723_000), "01:02:03");
        assert_eq!(qty(Qty::parse("0.10").unwrap().raw()), "0.1");
        assert_eq!(price(Price::parse("5000.25").unwrap().raw()), "5000.25");
    }
}
