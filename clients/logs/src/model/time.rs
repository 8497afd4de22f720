//! UTC civil time without a calendar crate: Unix nanoseconds to and from the text the engine's
//! log files carry (RFC 3339) and the viewer shows.

const NS_PER_S: i64 = 1_000_000_000;
const S_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// The parts of a Unix time in ns: (year, month, day, seconds of the day, ns of the second).
fn split(unix_ns: i64) -> (i64, u32, u32, i64, i64) {
    let secs = unix_ns.div_euclid(NS_PER_S);
    let nanos = unix_ns.rem_euclid(NS_PER_S);
    let (year, month, day) = civil_from_days(secs.div_euclid(S_PER_DAY));
    (year, month, day, secs.rem_euclid(S_PER_DAY), nanos)
}

/// `HH:MM:SS.ffffff` (UTC), what the table shows.
pub fn clock_text(unix_ns: i64) -> String {
    let (_, _, _, sod, nanos) = split(unix_ns);
    format!("{:02}:{:02}:{:02}.{:06}", sod / 3_600, sod / 60 % 60, sod % 60, nanos / 1_000)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC), what the CSV export and tooltips carry.
pub fn iso_text(unix_ns: i64) -> String {
    let (year, month, day, sod, nanos) = split(unix_ns);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3_600,
        sod / 60 % 60,
        sod % 60,
        nanos / 1_000
    )
}

/// A duration in ns as people read latencies: `850 ns`, `412 µs`, `3.25 ms`, `1.500 s`.
pub fn duration_text(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let abs = ns.unsigned_abs();
    if abs < 1_000 {
        format!("{sign}{abs} ns")
    } else if abs < 1_000_000 {
        format!("{sign}{} µs", abs / 1_000)
    } else if abs < 1_000_000_000 {
        format!("{sign}{}.{:02} ms", abs / 1_000_000, abs / 10_000 % 100)
    } else {
        format!("{sign}{}.{:03} s", abs / 1_000_000_000, abs / 1_000_000 % 1_000)
    }
}

fn digits(text: &str, what: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: expected digits, got `{text}`"));
    }
    text.parse().map_err(|_| format!("{what}: `{text}` is too large"))
}

/// Seconds of the day and ns of `HH:MM[:SS[.fraction]]`.
fn parse_clock(text: &str) -> Result<(i64, i64), String> {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (text, None),
    };
    let mut parts = hms.split(':');
    let hour = digits(parts.next().unwrap_or(""), "hour")?;
    let minute = digits(parts.next().ok_or("expected HH:MM")?, "minute")?;
    let second = parts.next().map(|s| digits(s, "second")).transpose()?.unwrap_or(0);
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(format!("`{text}` is not a time of day (HH:MM[:SS[.ffffff]])"));
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!("`{f}` is not a fraction of a second (1 to 9 digits)"));
        }
        Some(f) => {
            let value: i64 = f.parse().map_err(|_| format!("`{f}`: not a number"))?;
            value * 10_i64.pow(9 - u32::try_from(f.len()).unwrap_or(9))
        }
    };
    Ok((i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second), nanos))
}

/// Unix ns of `YYYY-MM-DD` followed by `T` or a space and a time of day, then `Z`, an offset
/// (`+01:00`) or nothing (UTC).
pub fn parse_datetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10).ok_or_else(|| format!("`{text}`: expected YYYY-MM-DDTHH:MM:SS"))?;
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{date}` is not a date (YYYY-MM-DD)"));
    };
    let (year, month, day) = (digits(y, "year")?, digits(m, "month")?, digits(d, "day")?);
    if y.len() != 4 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(format!("`{date}` is not a date (YYYY-MM-DD)"));
    }
    let rest = rest.strip_prefix(['T', 't', ' ']).ok_or_else(|| format!("`{text}`: expected a time after the date"))?;
    let (clock, offset_s) = if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (clock, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (h, m) = offset[1..].split_once(':').ok_or_else(|| format!("`{offset}`: expected an offset ±HH:MM"))?;
        (clock, sign * (i64::from(digits(h, "offset hours")?) * 3_600 + i64::from(digits(m, "offset minutes")?) * 60))
    } else {
        (rest, 0)
    };
    let (sod, nanos) = parse_clock(clock)?;
    let days = days_from_civil(i64::from(year), month, day);
    Ok(((days * S_PER_DAY + sod - offset_s) * NS_PER_S) + nanos)
}

/// A bound of the time-range filter: a full date and time, or a time of day (UTC) that every
/// day's lines are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    /// Unix ns.
    At(i64),
    /// ns since midnight UTC.
    TimeOfDay(i64),
}

impl TimeBound {
    /// Reads `2026-11-04T09:30:00`, `09:30`, `09:30:15.250` (UTC unless an offset is given).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-') {
            return parse_datetime(text).map(Self::At);
        }
        let (sod, nanos) = parse_clock(text)?;
        Ok(Self::TimeOfDay(sod * NS_PER_S + nanos))
    }

    /// The value `unix_ns` is compared with for this bound.
    pub fn project(self, unix_ns: i64) -> (i64, i64) {
        match self {
            Self::At(at) => (unix_ns, at),
            Self::TimeOfDay(of_day) => (unix_ns.rem_euclid(S_PER_DAY * NS_PER_S), of_day),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_text() {
        let ns = parse_datetime("2026-11-04T09:30:15.123456Z").unwrap();
        assert_eq!(iso_text(ns), "2026-11-04T09:30:15.123456Z");
        assert_eq!(clock_text(ns), "09:30:15.123456");
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_datetime("2000-03-01T00:00:00Z").unwrap(), 951_868_800 * NS_PER_S);
        // An offset moves the instant; a missing zone is UTC.
        assert_eq!(parse_datetime("2026-11-04T10:30:15.123456+01:00").unwrap(), ns);
        assert_eq!(parse_datetime("2026-11-04 09:30:15.123456").unwrap(), ns);
        assert!(parse_datetime("2026-13-04T09:30:15Z").is_err());
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn bounds_read_a_time_of_day_or_an_instant() {
        assert_eq!(TimeBound::parse("09:30").unwrap(), TimeBound::TimeOfDay(34_200 * NS_PER_S));
        assert_eq!(TimeBound::parse("00:00:01.5").unwrap(), TimeBound::TimeOfDay(1_500_000_000));
        assert!(matches!(TimeBound::parse("2026-11-04T09:30:00").unwrap(), TimeBound::At(_)));
        assert!(TimeBound::parse("25:00").is_err());
        assert!(TimeBound::parse("9").is_err());
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration_text(850), "850 ns");
        assert_eq!(duration_text(412_345), "412 µs");
        assert_eq!(duration_text(3_254_000), "3.25 ms");
        assert_eq!(duration_text(1_500_000_000), "1.500 s");
        assert_eq!(duration_text(-2_000), "-2 µs");
    }
}
