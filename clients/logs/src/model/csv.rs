//! CSV export of the filtered rows (RFC 4180: CRLF line ends; a field with a comma, a double
//! quote, CR or LF is quoted, and its quotes doubled).

use std::io::Write;

use super::filter::FilteredIndex;
use super::store::LogStore;
use super::time::iso_text;

/// The header row.
pub const HEADER: [&str; 6] = ["time_utc", "engine_mono_ns", "level", "account", "signal", "text"];

/// Writes one field, quoted when it must be.
pub fn write_field(out: &mut impl Write, field: &str) -> std::io::Result<()> {
    if field.contains([',', '"', '\r', '\n']) {
        out.write_all(b"\"")?;
        out.write_all(field.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(field.as_bytes())
    }
}

/// Writes one record and its CRLF.
pub fn write_record<'a>(out: &mut impl Write, fields: impl IntoIterator<Item = &'a str>) -> std::io::Result<()> {
    for (n, field) in fields.into_iter().enumerate() {
        if n > 0 {
            out.write_all(b",")?;
        }
        write_field(out, field)?;
    }
    out.write_all(b"\r\n")
}

/// Writes the header and every row of `index`; returns the rows written.
pub fn export(out: &mut impl Write, store: &LogStore, index: &FilteredIndex) -> std::io::Result<u64> {
    write_record(out, HEADER)?;
    let mut rows = 0;
    for number in index.numbers() {
        let Some(line) = store.get(number) else { continue };
        let account = line.account.map(|key| store.account_name(key).into_owned()).unwrap_or_default();
        let signal = if line.signal == 0 { String::new() } else { line.signal.to_string() };
        let mono = line.mono_ns.map(|ns| ns.to_string()).unwrap_or_default();
        let time = iso_text(line.unix_ns);
        write_record(
            out,
            [time.as_str(), mono.as_str(), line.level.name(), account.as_str(), signal.as_str(), &line.text],
        )?;
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::filter::Filter;
    use crate::model::line::{Level, Line};

    fn csv(fields: &[&str]) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields.iter().copied()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv(&["plain", "", "two words"]), "plain,,two words\r\n");
        assert_eq!(csv(&["a,b"]), "\"a,b\"\r\n");
        assert_eq!(csv(&["say \"no\""]), "\"say \"\"no\"\"\"\r\n");
        assert_eq!(csv(&["line\nbreak", "cr\r"]), "\"line\nbreak\",\"cr\r\"\r\n");
        assert_eq!(csv(&["café — ünïcode"]), "café — ünïcode\r\n");
    }

    #[test]
    fn the_export_holds_the_filtered_rows() {
        let mut store = LogStore::default();
        store.set_account_name(4, "fut, one-lot");
        for (n, level) in [Level::Info, Level::Warn, Level::Info].into_iter().enumerate() {
            store.push(Line {
                unix_ns: 1_790_000_000_000_000_000 + i64::try_from(n).unwrap() * 1_000,
                mono_ns: Some(5_000 + n as u64),
                level,
                account: Some(4),
                signal: if n == 1 { 42 } else { 0 },
                text: format!("m42.4.0 rejected: \"NO MONEY\", line {n}").into(),
                hop: None,
            });
        }
        let mut index = FilteredIndex::default();
        index.set_filter(&Filter { min_level: Some(Level::Warn), ..Filter::default() }, &store);
        let mut out = Vec::new();
        assert_eq!(export(&mut out, &store, &index).unwrap(), 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "time_utc,engine_mono_ns,level,account,signal,text\r\n\
             2026-09-21T14:13:20.000001Z,5001,WARN,\"fut, one-lot\",42,\"m42.4.0 rejected: \"\"NO MONEY\"\", line 1\"\r\n"
        );
    }
}
