//! An RFC 4180 reader: comma-separated fields, records ended by CRLF or LF (a lone CR too),
//! fields in double quotes may hold commas, line breaks and doubled quotes (`""`). A UTF-8
//! byte order mark at the start is skipped. Records whose every field is empty (blank lines,
//! a spreadsheet's `,,,,` rows) are skipped. Each record keeps the line it starts on, so
//! errors can name it.

use std::fmt;

/// One record: the line it starts on (1-based) and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) line: usize,
    pub(super) fields: Vec<String>,
}

/// Text that is not CSV, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CsvError {
    pub(super) line: usize,
    pub(super) message: String,
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    /// Inside a field without quotes.
    Bare,
    /// Inside a quoted field.
    Quoted,
    /// After a quoted field's closing quote.
    Closed,
}

/// Reads every record of `text`. More than `limit` records (blank ones not counted) is an
/// error, so a huge file costs no more than `limit` records of memory.
pub(super) fn records(text: &str, limit: usize) -> Result<Vec<Record>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader { records: Vec::new(), fields: Vec::new(), field: String::new(), record_line: 1, limit };
    let mut state = State::Start;
    let mut line = 1;
    // Where the open quoted field started, for an unclosed quote.
    let mut quote_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // A line break: CRLF, LF or a lone CR.
        let newline = c == '\n' || c == '\r';
        if c == '\r' && chars.peek() == Some(&'\n') && state != State::Quoted {
            chars.next();
        }
        match (state, c) {
            (State::Quoted, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                reader.field.push('"');
            }
            (State::Quoted, '"') => state = State::Closed,
            (State::Quoted, c) => {
                if c == '\n' || (c == '\r' && chars.peek() != Some(&'\n')) {
                    line += 1;
                }
                reader.field.push(c);
            }
            (State::Start, '"') => {
                state = State::Quoted;
                quote_line = line;
            }
            (State::Bare, '"') => {
                return Err(CsvError {
                    line,
                    message: format!(
                        "a quote inside a field that does not start with one (`{}\"`); put the whole field in quotes \
                         and double the quotes inside it",
                        reader.field
                    ),
                });
            }
            (State::Closed, ' ' | '\t') => {}
            (_, ',') => {
                reader.end_field();
                state = State::Start;
            }
            (_, _) if newline => {
                reader.end_record(line)?;
                line += 1;
                reader.record_line = line;
                state = State::Start;
            }
            (State::Closed, c) => {
                return Err(CsvError {
                    line,
                    message: format!(
                        "`{c}` after the closing quote of `\"{}\"`; a quoted field ends at a comma or the end of the line",
                        reader.field
                    ),
                });
            }
            (State::Start | State::Bare, c) => {
                reader.field.push(c);
                state = State::Bare;
            }
        }
    }
    if state == State::Quoted {
        return Err(CsvError {
            line: quote_line,
            message: "a quoted field is not closed (a `\"` is missing before the end of the file)".to_owned(),
        });
    }
    if state != State::Start || !reader.fields.is_empty() {
        reader.end_record(line)?;
    }
    Ok(reader.records)
}

struct Reader {
    records: Vec<Record>,
    fields: Vec<String>,
    field: String,
    record_line: usize,
    limit: usize,
}

impl Reader {
    fn end_field(&mut self) {
        self.fields.push(std::mem::take(&mut self.field));
    }

    fn end_record(&mut self, line: usize) -> Result<(), CsvError> {
        self.end_field();
        let fields = std::mem::take(&mut self.fields);
        if fields.iter().all(|f| f.trim().is_empty()) {
            return Ok(());
        }
        if self.records.len() >= self.limit {
            return Err(CsvError { line, message: format!("more than {} records", self.limit) });
        }
        self.records.push(Record { line: self.record_line, fields });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each record's line and its fields joined with `|`.
    fn read(text: &str) -> Vec<(usize, String)> {
        let records = records(text, 100).unwrap_or_else(|e| panic!("{e}"));
        records.into_iter().map(|r| (r.line, r.fields.join("|"))).collect()
    }

    #[test]
    fn plain_records_with_lf_crlf_and_cr() {
        assert_eq!(read("a,b\n1,2\n"), [(1, "a|b".to_owned()), (2, "1|2".to_owned())]);
        assert_eq!(read("a,b\r\n1,2\r\n3,4"), [(1, "a|b".to_owned()), (2, "1|2".to_owned()), (3, "3|4".to_owned())]);
        assert_eq!(read("a,b\r1,2\r"), [(1, "a|b".to_owned()), (2, "1|2".to_owned())]);
        // No line break at the end, an empty last field.
        assert_eq!(read("a,b\n1,"), [(1, "a|b".to_owned()), (2, "1|".to_owned())]);
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let text = "note,qty\n\"a, b\",1\n\"say \"\"hi\"\"\",2\r\n\"two\r\nlines\",3\n\"\",4\n";
        assert_eq!(
            read(text),
            [
                (1, "note|qty".to_owned()),
                (2, "a, b|1".to_owned()),
                (3, "say \"hi\"|2".to_owned()),
                (4, "two\r\nlines|3".to_owned()),
                (6, "|4".to_owned()),
            ]
        );
        // Spaces after a closing quote are allowed.
        assert_eq!(read("\"a\" ,b\n"), [(1, "a|b".to_owned())]);
    }

    #[test]
    fn a_byte_order_mark_and_blank_lines_are_skipped_and_lines_still_count() {
        let text = "\u{feff}action,qty\r\n\r\n,\r\nopen,1\r\n\n  \nclose,\n";
        assert_eq!(read(text), [(1, "action|qty".to_owned()), (4, "open|1".to_owned()), (7, "close|".to_owned())]);
    }

    #[test]
    fn trailing_commas_and_extra_columns_come_through_as_fields() {
        // The header decides what they mean (parse.rs); the reader keeps them.
        assert_eq!(
            read("a,b,\n1,2,\n1,2,3\n"),
            [(1, "a|b|".to_owned()), (2, "1|2|".to_owned()), (3, "1|2|3".to_owned())]
        );
    }

    #[test]
    fn malformed_quotes_name_their_line() {
        let error = records("a,b\n1,2\n3,\"open\n4,5\n", 100).unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.message.contains("not closed"), "{error}");
        let error = records("a,b\n1,ab\"c\n", 100).unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2: a quote inside a field that does not start with one (`ab\"`); put the whole field in quotes and double the quotes inside it"
        );
        let error = records("a,b\n\"x\"y,1\n", 100).unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.starts_with("`y` after the closing quote of `\"x\"`"), "{error}");
    }

    #[test]
    fn the_record_limit_is_enforced() {
        assert!(records("a\n1\n2\n", 3).is_ok());
        let error = records("a\n1\n2\n3\n", 3).unwrap_err();
        assert_eq!((error.line, error.message.as_str()), (4, "more than 3 records"));
    }
}
