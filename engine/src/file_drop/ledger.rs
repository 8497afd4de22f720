//! The ledger: what became of each file, by name and content (SHA-256), so that a file is
//! executed once. It is a JSON-lines file, `<drop>/.mirror/ledger.jsonl`, appended to and
//! flushed to disk (`fsync`) at every step:
//!
//! ```text
//! {"t":"start","file":"orders.csv","sha256":"…","rows":3,"at_ms":…}             before the first row is sent
//! {"t":"sending","file":"orders.csv","sha256":"…","index":0,"line":2}           before each row is submitted
//! {"t":"sent","file":"orders.csv","sha256":"…","index":0,"line":2,"signal":…,"at_ms":…}   once the engine took it
//! {"t":"not_sent","file":"orders.csv","sha256":"…","index":1,"reason":"…"}      the engine refused it (it may be sent again)
//! {"t":"finished","file":"orders.csv","sha256":"…","at_ms":…,"outcome":"processed","rows":3,"sent":3,"signals":[…],"report":"…"}
//! ```
//!
//! A file started and not finished resumes after its last `sent` row. A `sending` with no
//! outcome after it (Mirror stopped while the engine had the row) is unknown: that row may or
//! may not have been taken, so it is not sent again and the file stops there (see the module
//! documentation of [`super`]).
//!
//! Bounds: finished files are kept 30 days and at most the newest [`KEEP_FINISHED`]; the
//! ledger is rewritten without the others (to a temporary file, flushed, then renamed) when it
//! opens and whenever it holds a tenth more than that or [`COMPACT_LINES`] lines were added.
//! A finished file keeps its first [`SIGNALS_KEPT`] signal ids (its report has them all).
//! Files started and not finished are always kept. A torn last line (a crash while writing it)
//! is skipped: the step it described did not happen as far as the ledger knows.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use mirror_model::SignalId;
use serde::{Deserialize, Serialize};

/// Finished files kept at most.
pub(crate) const KEEP_FINISHED: usize = 10_000;
/// Finished files are kept this long, ms (30 days).
pub(crate) const KEEP_MS: i64 = 30 * 24 * 3_600_000;
/// Lines appended before the ledger is rewritten.
const COMPACT_LINES: usize = 50_000;
/// Signal ids kept of a finished file.
pub(crate) const SIGNALS_KEPT: usize = 10;

const FILE_NAME: &str = "ledger.jsonl";

/// One line of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Record {
    Start {
        file: String,
        sha256: String,
        rows: usize,
        at_ms: i64,
    },
    Sending {
        file: String,
        sha256: String,
        index: usize,
        line: usize,
    },
    Sent {
        file: String,
        sha256: String,
        index: usize,
        line: usize,
        signal: u64,
        at_ms: i64,
    },
    NotSent {
        file: String,
        sha256: String,
        index: usize,
        reason: String,
    },
    Finished {
        file: String,
        sha256: String,
        at_ms: i64,
        outcome: Outcome,
        rows: usize,
        sent: usize,
        signals: Vec<u64>,
        report: String,
    },
}

/// How a file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// Every row sent; the file is in `processed/`.
    Processed,
    /// Stopped part-way (a row the engine refused or may have taken); the file is in
    /// `rejected/` with a report of what was sent.
    Stopped,
    /// Started before a restart, and gone from the folder (or replaced) after it.
    Abandoned,
}

/// A row the engine took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SentRow {
    /// Its position among the file's rows, from 0.
    pub(crate) index: usize,
    /// Its line.
    pub(crate) line: usize,
    /// The signal.
    pub(crate) signal: SignalId,
}

/// How a finished file ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finished {
    /// When, unix ms.
    pub(crate) at_ms: i64,
    /// How.
    pub(crate) outcome: Outcome,
    /// Rows sent.
    pub(crate) sent: usize,
    /// The first signals' ids.
    pub(crate) signals: Vec<u64>,
    /// Its report, relative to the drop folder.
    pub(crate) report: String,
}

/// What the ledger knows of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its rows.
    pub(crate) rows: usize,
    /// When its first row was sent, unix ms.
    pub(crate) started_ms: i64,
    /// The rows sent, in order (while not finished).
    pub(crate) sent: Vec<SentRow>,
    /// A row being submitted with no outcome recorded: (index, line).
    pub(crate) sending: Option<(usize, usize)>,
    /// How it ended.
    pub(crate) finished: Option<Finished>,
}

type Key = (String, String);

/// The ledger of one drop folder.
#[derive(Debug)]
pub(crate) struct Ledger {
    path: PathBuf,
    file: File,
    entries: BTreeMap<Key, Entry>,
    lines_since_compaction: usize,
    /// [`KEEP_FINISHED`] (smaller in tests).
    keep_finished: usize,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir` and rewrites it within its bounds. Also
    /// returns how many lines could not be read.
    pub(crate) fn open(dir: &Path, now_ms: i64) -> std::io::Result<(Self, usize)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut entries = BTreeMap::new();
        let mut unreadable = 0;
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line?;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Record>(&line) {
                        Ok(record) => apply(&mut entries, record),
                        Err(_) => unreadable += 1,
                    }
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let file = append(&path)?;
        let mut ledger = Self { path, file, entries, lines_since_compaction: 0, keep_finished: KEEP_FINISHED };
        ledger.compact(now_ms)?;
        Ok((ledger, unreadable))
    }

    /// What is known of this file.
    pub(crate) fn get(&self, file: &str, sha256: &str) -> Option<&Entry> {
        self.entries.get(&(file.to_owned(), sha256.to_owned()))
    }

    /// The files started and not finished.
    pub(crate) fn unfinished(&self) -> impl Iterator<Item = (&str, &str, &Entry)> {
        self.entries.iter().filter(|(_, e)| e.finished.is_none()).map(|((f, s), e)| (f.as_str(), s.as_str(), e))
    }

    /// Before the first row of a file is sent.
    pub(crate) fn start(&mut self, file: &str, sha256: &str, rows: usize, at_ms: i64) -> std::io::Result<()> {
        self.record(Record::Start { file: file.into(), sha256: sha256.into(), rows, at_ms })
    }

    /// Before a row is submitted.
    pub(crate) fn sending(&mut self, file: &str, sha256: &str, index: usize, line: usize) -> std::io::Result<()> {
        self.record(Record::Sending { file: file.into(), sha256: sha256.into(), index, line })
    }

    /// The engine took the row.
    pub(crate) fn sent(&mut self, file: &str, sha256: &str, row: SentRow, at_ms: i64) -> std::io::Result<()> {
        let SentRow { index, line, signal } = row;
        self.record(Record::Sent { file: file.into(), sha256: sha256.into(), index, line, signal: signal.0, at_ms })
    }

    /// The engine refused the row: it was not sent.
    pub(crate) fn not_sent(&mut self, file: &str, sha256: &str, index: usize, reason: &str) -> std::io::Result<()> {
        self.record(Record::NotSent { file: file.into(), sha256: sha256.into(), index, reason: reason.into() })
    }

    /// The file is done with; `report` is its report's path in the drop folder.
    pub(crate) fn finish(
        &mut self,
        file: &str,
        sha256: &str,
        outcome: Outcome,
        report: &str,
        at_ms: i64,
    ) -> std::io::Result<()> {
        let entry = self.get(file, sha256);
        let sent = entry.map_or(0, |e| e.sent.len());
        let signals = entry.map(|e| e.sent.iter().take(SIGNALS_KEPT).map(|r| r.signal.0).collect()).unwrap_or_default();
        let rows = entry.map_or(0, |e| e.rows);
        self.record(Record::Finished {
            file: file.into(),
            sha256: sha256.into(),
            at_ms,
            outcome,
            rows,
            sent,
            signals,
            report: report.into(),
        })?;
        let finished = self.entries.values().filter(|e| e.finished.is_some()).count();
        if finished > self.keep_finished + self.keep_finished / 10 || self.lines_since_compaction > COMPACT_LINES {
            self.compact(at_ms)?;
        }
        Ok(())
    }

    /// Appends the record durably, then applies it in memory. When the write fails the
    /// memory keeps the older word, as a restart would: a `sending` not written leaves the row
    /// to be sent again; a `sent` not written leaves the row unknown, never sent twice.
    fn record(&mut self, record: Record) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.lines_since_compaction += 1;
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        apply(&mut self.entries, record);
        Ok(())
    }

    /// Drops finished files older than [`KEEP_MS`] or beyond the newest [`KEEP_FINISHED`],
    /// and rewrites the ledger with what is left.
    fn compact(&mut self, now_ms: i64) -> std::io::Result<()> {
        let mut finished: Vec<(i64, Key)> =
            self.entries.iter().filter_map(|(key, e)| e.finished.as_ref().map(|f| (f.at_ms, key.clone()))).collect();
        finished.sort();
        let beyond = finished.len().saturating_sub(self.keep_finished);
        for (index, (at_ms, key)) in finished.into_iter().enumerate() {
            if index < beyond || now_ms.saturating_sub(at_ms) > KEEP_MS {
                self.entries.remove(&key);
            }
        }
        let temporary = self.path.with_extension("jsonl.tmp");
        {
            let mut out = std::io::BufWriter::new(File::create(&temporary)?);
            for ((file, sha256), entry) in &self.entries {
                for record in records_of(file, sha256, entry) {
                    serde_json::to_writer(&mut out, &record).map_err(std::io::Error::other)?;
                    out.write_all(b"\n")?;
                }
            }
            let out = out.into_inner().map_err(|e| e.into_error())?;
            out.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = append(&self.path)?;
        self.lines_since_compaction = 0;
        Ok(())
    }
}

/// The ledger file, for appending.
fn append(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    // A torn last line (no line break) must not swallow the next record.
    let length = file.metadata()?.len();
    if length > 0 {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut last = [0u8; 1];
        let mut reader = File::open(path)?;
        reader.seek(SeekFrom::Start(length - 1))?;
        reader.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
            file.sync_data()?;
        }
    }
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(file)
}

/// The records that rebuild an entry.
fn records_of(file: &str, sha256: &str, entry: &Entry) -> Vec<Record> {
    let (file, sha256) = (file.to_owned(), sha256.to_owned());
    if let Some(finished) = &entry.finished {
        return vec![Record::Finished {
            file,
            sha256,
            at_ms: finished.at_ms,
            outcome: finished.outcome,
            rows: entry.rows,
            sent: finished.sent,
            signals: finished.signals.clone(),
            report: finished.report.clone(),
        }];
    }
    let mut records =
        vec![Record::Start { file: file.clone(), sha256: sha256.clone(), rows: entry.rows, at_ms: entry.started_ms }];
    for row in &entry.sent {
        records.push(Record::Sent {
            file: file.clone(),
            sha256: sha256.clone(),
            index: row.index,
            line: row.line,
            signal: row.signal.0,
            at_ms: entry.started_ms,
        });
    }
    if let Some((index, line)) = entry.sending {
        records.push(Record::Sending { file, sha256, index, line });
    }
    records
}

fn apply(entries: &mut BTreeMap<Key, Entry>, record: Record) {
    match record {
        Record::Start { file, sha256, rows, at_ms } => {
            entries.insert(
                (file, sha256),
                Entry { rows, started_ms: at_ms, sent: Vec::new(), sending: None, finished: None },
            );
        }
        Record::Sending { file, sha256, index, line } => {
            if let Some(entry) = entries.get_mut(&(file, sha256)) {
                entry.sending = Some((index, line));
            }
        }
        Record::Sent { file, sha256, index, line, signal, .. } => {
            if let Some(entry) = entries.get_mut(&(file, sha256)) {
                entry.sending = None;
                entry.sent.push(SentRow { index, line, signal: SignalId(signal) });
            }
        }
        Record::NotSent { file, sha256, index, .. } => {
            if let Some(entry) = entries.get_mut(&(file, sha256))
                && entry.sending.is_some_and(|(i, _)| i == index)
            {
                entry.sending = None;
            }
        }
        Record::Finished { file, sha256, at_ms, outcome, rows, sent, signals, report } => {
            let entry = entries.entry((file, sha256)).or_insert_with(|| Entry {
                rows,
                started_ms: at_ms,
                sent: Vec::new(),
                sending: None,
                finished: None,
            });
            entry.rows = rows;
            entry.sent = Vec::new();
            entry.sending = None;
            entry.finished = Some(Finished { at_ms, outcome, sent, signals, report });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = 24 * 3_600_000;

    fn row(index: usize, signal: u64) -> SentRow {
        SentRow { index, line: index + 2, signal: SignalId(signal) }
    }

    #[test]
    fn a_started_file_resumes_after_its_last_sent_row_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = Ledger::open(dir.path(), 0).unwrap();
        ledger.start("a.csv", "h1", 4, 10).unwrap();
        for (index, signal) in [(0, 100), (1, 101)] {
            ledger.sending("a.csv", "h1", index, index + 2).unwrap();
            ledger.sent("a.csv", "h1", row(index, signal), 11).unwrap();
        }
        // The engine refused the third row: it may be sent again.
        ledger.sending("a.csv", "h1", 2, 4).unwrap();
        ledger.not_sent("a.csv", "h1", 2, "the engine has stopped").unwrap();
        drop(ledger);
        let (ledger, unreadable) = Ledger::open(dir.path(), 20).unwrap();
        assert_eq!(unreadable, 0);
        let entry = ledger.get("a.csv", "h1").unwrap();
        assert_eq!(entry.sent, [row(0, 100), row(1, 101)]);
        assert_eq!((entry.sending, entry.finished.as_ref(), entry.rows), (None, None, 4));
        assert_eq!(ledger.unfinished().count(), 1);
        assert!(ledger.get("a.csv", "h2").is_none(), "the same name with other content is another file");
    }

    #[test]
    fn a_row_with_no_outcome_stays_unknown_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = Ledger::open(dir.path(), 0).unwrap();
        ledger.start("a.csv", "h1", 2, 10).unwrap();
        ledger.sending("a.csv", "h1", 0, 2).unwrap();
        drop(ledger);
        // A crash while the `sent` line was written.
        let path = dir.path().join(FILE_NAME);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"t":"sent","file":"a.csv","sha256":"h1","ind"#).unwrap();
        drop(file);
        let (mut ledger, unreadable) = Ledger::open(dir.path(), 20).unwrap();
        assert_eq!(unreadable, 1);
        assert_eq!(ledger.get("a.csv", "h1").unwrap().sending, Some((0, 2)));
        // Appending after the torn line starts a new line.
        ledger.finish("a.csv", "h1", Outcome::Stopped, "rejected/a.csv.errors.txt", 30).unwrap();
        drop(ledger);
        let (ledger, unreadable) = Ledger::open(dir.path(), 40).unwrap();
        assert_eq!(unreadable, 0, "the rewrite leaves only readable lines");
        let finished = ledger.get("a.csv", "h1").unwrap().finished.clone().unwrap();
        assert_eq!((finished.outcome, finished.sent, finished.at_ms), (Outcome::Stopped, 0, 30));
    }

    #[test]
    fn finished_files_are_kept_thirty_days_and_at_most_the_newest_ten_thousand() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = Ledger::open(dir.path(), 0).unwrap();
        ledger.start("old.csv", "h", 1, 0).unwrap();
        ledger.sent("old.csv", "h", row(0, 7), 0).unwrap();
        ledger.finish("old.csv", "h", Outcome::Processed, "processed/old.csv.report.json", 0).unwrap();
        ledger.start("open.csv", "h", 3, 0).unwrap();
        ledger.sent("open.csv", "h", row(0, 8), 0).unwrap();
        drop(ledger);
        // 31 days on: the finished file is forgotten, the unfinished one kept.
        let (mut ledger, _) = Ledger::open(dir.path(), 31 * DAY_MS).unwrap();
        assert!(ledger.get("old.csv", "h").is_none());
        assert_eq!(ledger.get("open.csv", "h").unwrap().sent, [row(0, 8)]);
        // Beyond the count bound (KEEP_FINISHED, here 100), the oldest go.
        ledger.keep_finished = 100;
        let now = 31 * DAY_MS;
        for i in 0..111i64 {
            let at = now + i;
            let name = format!("f{i}.csv");
            ledger.start(&name, "h", 1, at).unwrap();
            ledger.finish(&name, "h", Outcome::Processed, "r", at).unwrap();
        }
        let finished = ledger.entries.values().filter(|e| e.finished.is_some()).count();
        assert_eq!(finished, 100);
        assert!(ledger.get("f10.csv", "h").is_none() && ledger.get("f11.csv", "h").is_some());
        assert!(ledger.get("f110.csv", "h").is_some() && ledger.get("open.csv", "h").is_some());
        // The rewrite holds one line per finished file and the unfinished one's start and row.
        let lines = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap().lines().count();
        assert_eq!(lines, 102);
    }
}
