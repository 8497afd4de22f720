//! File drops (`[[file_drops]]`): a watched folder whose CSV and JSON files are signals of a
//! source, fanned out to that source's links like a webhook's.
//!
//! **Which files.** `*.csv` and `*.json` (any case) directly in the folder, not in subfolders.
//! Names starting with `.` or ending in `.tmp`, `.part` or `~` are left alone, so a writer can
//! write under such a name and rename when done. Any other file is moved to `rejected/` with a
//! report saying which files are read. A file is read once its size and modification time
//! have not changed for `settle_ms` (a slow copy is not read half-way); files that are ready
//! together are taken oldest first (by modification time, then name), one at a time.
//!
//! **All or nothing per file.** Every row is validated first, with the engine's own check
//! ([`EngineHandle::precheck`]: the source's symbols, quantities above 0, SL/TP on the right
//! side of the entry). If any row is wrong, nothing of the file is sent: it goes to `rejected/`
//! with `<name>.errors.txt` naming every wrong row's line and field and what came. A
//! half-executed basket is worse than none; the trader fixes the file and drops it again. A
//! valid file's rows are sent in order; the file then goes to `processed/` with
//! `<name>.report.json` (each row's line, action and signal id). A name already taken in
//! `processed/` or `rejected/` gets a UTC timestamp before its extension; nothing is
//! overwritten.
//!
//! **Exactly once.** A file is known by its name and the SHA-256 of its content. The ledger
//! (`.mirror/ledger.jsonl`, see [`ledger`]) records, flushed to disk, when a file starts, each
//! row before it is submitted and its signal id once the engine took it, and when the file is
//! finished. The same name and content dropped again is moved to `rejected/`: "already
//! processed at <time> (signals …)"; the same name with other content is a new file. If Mirror
//! stops (or crashes) part-way, the file is still in the folder and, on the next start, rows
//! after the last one recorded as taken are sent; none is sent twice. A row the engine refused
//! after validation because it could not take it then (it is stopping, its journal failed)
//! stops the file where it is: it stays in the folder and is tried again at the next poll (at
//! the earliest a second later). A row whose outcome is unknown (no answer within the submit
//! timeout, or Mirror stopped while the engine had it) is not sent again, since it may have
//! been taken: the file stops there and goes to `rejected/` with a report listing the rows
//! sent (with their signals), the unknown row, and the rows not sent.
//!
//! **Positions.** `position` is the sender's key for a later close, partial close, modify or
//! cancel: a whole number (below 2⁶³) as it is, or text (1 to 64 characters) mapped to a key
//! by [`parse::text_key`], the same in every file of the drop and after every restart. An open
//! without one gets a fresh key (only `close_all` reaches it then).

mod csv;
mod ledger;
mod parse;
mod report;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use mirror_model::{Origin, SignalId, Symbol};
use sha2::Digest as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::{EngineHandle, SubmitError};
use ledger::{Entry, Finished, Ledger, Outcome, SentRow};
use parse::{Context, Format, Prepared, RowError};

/// Largest `max_file_bytes` that may be configured (64 MiB).
pub const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest `max_rows` that may be configured.
pub const ROWS_MAX: usize = 100_000;
/// Directory entries looked at per poll; a fuller folder is taken in parts.
const SCAN_MAX: usize = 10_000;
/// A file the engine could not take is tried again no sooner than this.
const RETRY_MIN: Duration = Duration::from_secs(1);
/// Errors listed in one report; the rest are counted.
const REPORT_ERRORS_MAX: usize = 1_000;

const PROCESSED: &str = "processed";
const REJECTED: &str = "rejected";
const STATE: &str = ".mirror";

/// How a drop folder is watched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDropLimits {
    /// How often the folder is looked at (default 500 ms).
    pub poll: Duration,
    /// How long a file must keep its size and modification time before it is read
    /// (default 1 s).
    pub settle: Duration,
    /// Largest file read, bytes (default 1 MiB).
    pub max_file_bytes: u64,
    /// Most rows in one file (default 10 000).
    pub max_rows: usize,
    /// Longest wait for the engine to take one row (default 15 s).
    pub submit_timeout: Duration,
}

impl Default for FileDropLimits {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            settle: Duration::from_secs(1),
            max_file_bytes: 1024 * 1024,
            max_rows: 10_000,
            submit_timeout: Duration::from_secs(15),
        }
    }
}

/// What a drop needs to start.
#[derive(Clone, Debug)]
pub struct FileDropSettings {
    /// Its name.
    pub name: String,
    /// The folder (created if missing, with `processed/`, `rejected/` and `.mirror/`).
    pub dir: PathBuf,
    /// The source its signals are sent as.
    pub origin: Origin,
    /// That source's name (for reports).
    pub source: String,
    /// Symbols it may send: the source's list, or the whole catalog.
    pub symbols: Vec<Symbol>,
    /// Limits.
    pub limits: FileDropLimits,
}

/// Why a drop did not start.
#[derive(Debug, thiserror::Error)]
#[error("file drop `{name}` at {}: {what}: {source}", dir.display())]
pub struct FileDropError {
    name: String,
    dir: PathBuf,
    what: &'static str,
    source: std::io::Error,
}

/// What a drop has done since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileDropCounts {
    /// Files whose every row was sent.
    pub processed: u64,
    /// Files moved to `rejected/` (invalid, duplicate, not CSV or JSON, or stopped part-way).
    pub rejected: u64,
    /// Signals sent.
    pub signals: u64,
}

#[derive(Debug, Default)]
struct Counts {
    processed: AtomicU64,
    rejected: AtomicU64,
    signals: AtomicU64,
}

/// A running drop.
#[derive(Debug)]
pub struct FileDrop {
    name: String,
    dir: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counts: Arc<Counts>,
}

impl FileDrop {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The folder it watches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What it has done.
    pub fn counts(&self) -> FileDropCounts {
        FileDropCounts {
            processed: self.counts.processed.load(Ordering::Relaxed),
            rejected: self.counts.rejected.load(Ordering::Relaxed),
            signals: self.counts.signals.load(Ordering::Relaxed),
        }
    }

    /// Stops watching once the row in progress (if any) has its answer; a file left part-way
    /// resumes at the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Creates the folders, opens the ledger and starts watching, on the caller's tokio runtime.
pub fn spawn_file_drop(engine: EngineHandle, settings: FileDropSettings) -> Result<FileDrop, FileDropError> {
    let error = |what: &'static str| {
        let (name, dir) = (settings.name.clone(), settings.dir.clone());
        move |source| FileDropError { name, dir, what, source }
    };
    for sub in ["", PROCESSED, REJECTED] {
        std::fs::create_dir_all(settings.dir.join(sub)).map_err(error("cannot create the folder"))?;
    }
    let now_ms = engine.clock().now().unix_ms;
    let (ledger, unreadable) =
        Ledger::open(&settings.dir.join(STATE), now_ms).map_err(error("cannot open the ledger in .mirror/"))?;
    if unreadable > 0 {
        tracing::warn!(drop = %settings.name, unreadable, "file_drop: ledger lines that could not be read were skipped");
    }
    for (file, _, entry) in ledger.unfinished() {
        tracing::info!(
            drop = %settings.name,
            "file_drop: {file}: {} of {} rows were sent before the last stop; the rest follow once it is seen again",
            entry.sent.len(),
            entry.rows
        );
    }
    let (stop, stopped) = watch::channel(false);
    let counts = Arc::new(Counts::default());
    let (name, dir) = (settings.name.clone(), settings.dir.clone());
    tracing::info!(drop = %name, dir = %dir.display(), source = %settings.source, "file_drop: watching");
    let watcher = Watcher {
        engine,
        settings: Arc::new(settings),
        ledger: Arc::new(Mutex::new(ledger)),
        tracked: HashMap::new(),
        counts: Arc::clone(&counts),
        stop: stopped,
        first_scan: true,
        scan_warning: None,
    };
    let task = tokio::spawn(watcher.run());
    Ok(FileDrop { name, dir, stop, task, counts })
}

/// A file in the folder, as last seen.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    name: String,
    size: u64,
    modified: Option<SystemTime>,
}

/// What is known of a file being watched.
#[derive(Debug)]
struct Tracked {
    seen: Seen,
    /// Since when its size and time are what `seen` says.
    unchanged_since: Instant,
    /// Not before then (the engine could not take it).
    retry_at: Option<Instant>,
    /// Why the last attempt did not finish it (logged once per reason).
    last_problem: Option<String>,
    /// It could not be moved: left alone until it changes.
    stuck: bool,
}

/// What became of an attempt at a file.
enum Step {
    /// Moved to `processed/` or `rejected/`.
    Done,
    /// Still in the folder: try again later.
    Retry(String),
    /// Changed while being read: not settled after all.
    Changed,
    /// It could not be moved out: leave it until it changes.
    Stuck,
    /// Mirror is stopping; it resumes at the next start.
    Stopping,
}

struct Watcher {
    engine: EngineHandle,
    settings: Arc<FileDropSettings>,
    ledger: Arc<Mutex<Ledger>>,
    tracked: HashMap<String, Tracked>,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
    first_scan: bool,
    scan_warning: Option<String>,
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| format!("internal error: {e}"))
}

impl Watcher {
    fn name(&self) -> &str {
        &self.settings.name
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    async fn run(mut self) {
        loop {
            if self.stopping() {
                break;
            }
            self.poll().await;
            tokio::select! {
                biased;
                changed = self.stop.changed() => if changed.is_err() || self.stopping() { break },
                () = tokio::time::sleep(self.settings.limits.poll) => {}
            }
        }
        tracing::info!(drop = %self.name(), "file_drop: stopped watching");
    }

    async fn poll(&mut self) {
        let dir = self.settings.dir.clone();
        let scanned = match blocking(move || scan(&dir)).await.and_then(|r| r.map_err(|e| e.to_string())) {
            Ok(scanned) => scanned,
            Err(error) => {
                if self.scan_warning.as_ref() != Some(&error) {
                    tracing::warn!(drop = %self.name(), dir = %self.settings.dir.display(), %error, "file_drop: cannot read the folder");
                    self.scan_warning = Some(error);
                }
                return;
            }
        };
        self.scan_warning = None;
        if self.first_scan {
            self.first_scan = false;
            self.abandon_missing(&scanned).await;
        }
        let now = Instant::now();
        self.tracked.retain(|name, _| scanned.iter().any(|s| &s.name == name));
        for seen in scanned {
            match self.tracked.get_mut(&seen.name) {
                Some(tracked) if tracked.seen == seen => {}
                Some(tracked) => {
                    *tracked = Tracked { seen, unchanged_since: now, retry_at: None, last_problem: None, stuck: false };
                }
                None => {
                    let name = seen.name.clone();
                    let tracked =
                        Tracked { seen, unchanged_since: now, retry_at: None, last_problem: None, stuck: false };
                    self.tracked.insert(name, tracked);
                }
            }
        }
        let settle = self.settings.limits.settle;
        let mut ready: Vec<Seen> = self
            .tracked
            .values()
            .filter(|t| {
                !t.stuck && now.duration_since(t.unchanged_since) >= settle && t.retry_at.is_none_or(|at| now >= at)
            })
            .map(|t| t.seen.clone())
            .collect();
        ready.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        for seen in ready {
            if self.stopping() {
                return;
            }
            let step = self.handle(&seen).await;
            let Some(tracked) = self.tracked.get_mut(&seen.name) else { continue };
            match step {
                Step::Done => {
                    self.tracked.remove(&seen.name);
                }
                Step::Retry(reason) => {
                    if tracked.last_problem.as_ref() != Some(&reason) {
                        tracing::warn!(drop = %self.settings.name, file = %seen.name, %reason, "file_drop: stopped; it stays in the folder and is tried again");
                        tracked.last_problem = Some(reason);
                    }
                    tracked.retry_at = Some(Instant::now() + RETRY_MIN.max(self.settings.limits.poll));
                }
                Step::Changed => tracked.unchanged_since = Instant::now(),
                Step::Stuck => tracked.stuck = true,
                Step::Stopping => return,
            }
        }
    }

    /// Files started before the last stop and no longer in the folder will not be finished.
    async fn abandon_missing(&mut self, scanned: &[Seen]) {
        let ledger = Arc::clone(&self.ledger);
        let present: Vec<String> = scanned.iter().map(|s| s.name.clone()).collect();
        let now_ms = self.engine.clock().now().unix_ms;
        let drop_name = self.settings.name.clone();
        let _ = blocking(move || {
            let mut ledger = lock(&ledger);
            let gone: Vec<(String, String, Entry)> = ledger
                .unfinished()
                .filter(|(file, _, _)| !present.iter().any(|p| p == file))
                .map(|(f, s, e)| (f.to_owned(), s.to_owned(), e.clone()))
                .collect();
            for (file, sha256, entry) in gone {
                abandon(&mut ledger, &drop_name, &file, &sha256, &entry, "is no longer in the folder", now_ms);
            }
        })
        .await;
    }

    /// One ready file: rejected if it is not CSV or JSON or too large, else processed.
    async fn handle(&mut self, seen: &Seen) -> Step {
        let Some(format) = Format::of(&seen.name) else {
            let extension = seen.name.rsplit_once('.').map_or("no extension".to_owned(), |(_, e)| format!("`.{e}`"));
            let text = format!(
                "{} was not read: Mirror reads .csv and .json files in this folder (this one has {extension}).\n\
                 Files whose names start with `.` or end in .tmp, .part or ~ are left alone while they are written.\n",
                seen.name
            );
            return self.reject(seen, &text, "not a .csv or .json file").await;
        };
        let limit = self.settings.limits.max_file_bytes;
        if seen.size > limit {
            let text = format!(
                "{} was not read: it is {} bytes; at most {limit} are read (file_drops.max_file_bytes). Nothing of it \
                 was sent; split it into smaller files.\n",
                seen.name, seen.size
            );
            return self.reject(seen, &text, "too large").await;
        }
        self.process(seen, format).await
    }

    /// Moves a file to `rejected/` with `text` as its report.
    async fn reject(&self, seen: &Seen, text: &str, why: &str) -> Step {
        match self.rejected(seen, text, why).await {
            Moved::To(_) => Step::Done,
            Moved::Changed(_) => Step::Changed,
            Moved::Failed => Step::Stuck,
        }
    }

    /// [`Watcher::reject`], telling where the report went. Nothing was sent of a file
    /// rejected here, so one replaced meanwhile gets no report: its new content is read anew.
    async fn rejected(&self, seen: &Seen, text: &str, why: &str) -> Moved {
        let moved = self.move_with_report(seen, REJECTED, ".errors.txt", text.as_bytes().to_vec(), false).await;
        match &moved {
            Moved::To(report) => {
                self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(drop = %self.name(), file = %seen.name, report = %report, "file_drop: {}: rejected ({why})", seen.name);
            }
            Moved::Changed(_) => {}
            Moved::Failed => {
                tracing::error!(drop = %self.name(), file = %seen.name, "file_drop: cannot move the file to rejected/; it is left alone until it changes");
            }
        }
        moved
    }

    /// Writes the report to `<folder>/<base><suffix>`, then moves the file to `<folder>/<base>`,
    /// unless the file in the folder is no longer the one read (a writer replaced it): then
    /// the file stays, to be read anew, and the report is written only if `always`.
    async fn move_with_report(&self, seen: &Seen, folder: &str, suffix: &str, report: Vec<u8>, always: bool) -> Moved {
        let dir = self.settings.dir.clone();
        let (seen, folder, suffix) = (seen.clone(), folder.to_owned(), suffix.to_owned());
        let now_ms = self.engine.clock().now().unix_ms;
        let drop_name = self.settings.name.clone();
        let moved = blocking(move || {
            let (target, source) = (dir.join(&folder), dir.join(&seen.name));
            let unchanged =
                || std::fs::metadata(&source).is_ok_and(|m| m.len() == seen.size && m.modified().ok() == seen.modified);
            if !always && !unchanged() {
                return Ok(Moved::Changed(None));
            }
            let base = report::free_name(&target, &seen.name, &suffix, now_ms);
            let report_name = format!("{base}{suffix}");
            report::write_new(&target.join(&report_name), &report)
                .map_err(|e| format!("writing {report_name}: {e}"))?;
            let report = format!("{folder}/{report_name}");
            if !unchanged() {
                return Ok(Moved::Changed(Some(report)));
            }
            report::move_file(&source, &target.join(&base)).map_err(|e| format!("moving it to {folder}/: {e}"))?;
            Ok(Moved::To(report))
        })
        .await;
        match moved {
            Ok(Ok(moved)) => moved,
            Ok(Err(error)) | Err(error) => {
                tracing::error!(drop = %drop_name, %error, "file_drop: cannot write a report or move a file");
                Moved::Failed
            }
        }
    }

    /// Reads, validates and sends a CSV or JSON file.
    async fn process(&mut self, seen: &Seen, format: Format) -> Step {
        let started = Instant::now();
        let loaded = {
            let (engine, settings, ledger, seen) =
                (self.engine.clone(), Arc::clone(&self.settings), Arc::clone(&self.ledger), seen.clone());
            blocking(move || load(&engine, &settings, &ledger, &seen, format)).await
        };
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => return Step::Retry(error),
        };
        let name = seen.name.as_str();
        match loaded {
            Loaded::Changed => Step::Changed,
            Loaded::Unreadable(error) => Step::Retry(format!("cannot read it: {error}")),
            Loaded::Invalid(errors, resumed) => {
                let first = errors.first().map(ToString::to_string).unwrap_or_default();
                let why = format!("{} problems, the first: {first}", errors.len());
                let Some((sha256, sent)) = resumed else {
                    return self.reject(seen, &invalid_report(name, &errors), &why).await;
                };
                // Rows went out before the restart: the file is stopped, and says which.
                let text = resumed_invalid_report(name, &errors, &sent);
                match self.rejected(seen, &text, &why).await {
                    Moved::To(report) => {
                        self.record_finish(name, &sha256, Outcome::Stopped, &report).await;
                        Step::Done
                    }
                    Moved::Changed(_) => Step::Changed,
                    Moved::Failed => Step::Stuck,
                }
            }
            Loaded::Duplicate(finished) => {
                let text = duplicate_report(name, &finished);
                self.reject(seen, &text, "already processed").await
            }
            Loaded::Send(batch) => self.send(seen, batch, started).await,
        }
    }

    /// Sends a validated file's rows from where the ledger says, then finishes it.
    async fn send(&mut self, seen: &Seen, mut batch: Batch, started: Instant) -> Step {
        let name = seen.name.clone();
        if let Some((index, line)) = batch.unknown {
            let reason = format!(
                "line {line} was handed to the engine and its outcome was not recorded (Mirror stopped, or the ledger \
                 could not be written); it may or may not have been taken, so it is not sent again"
            );
            return self.stop_file(seen, &batch, index + 1, &reason).await;
        }
        if batch.sent.is_empty() && !batch.resumed {
            let (ledger, sha, rows) = (Arc::clone(&self.ledger), batch.sha256.clone(), batch.rows.len());
            let (file, now_ms, drop_name) =
                (name.clone(), self.engine.clock().now().unix_ms, self.settings.name.clone());
            let started_ok = blocking(move || {
                let mut ledger = lock(&ledger);
                // An earlier content under this name that was started is replaced: it will not be finished.
                let replaced: Vec<(String, Entry)> = ledger
                    .unfinished()
                    .filter(|(f, s, _)| *f == file && *s != sha)
                    .map(|(_, s, e)| (s.to_owned(), e.clone()))
                    .collect();
                for (old, entry) in replaced {
                    abandon(&mut ledger, &drop_name, &file, &old, &entry, "was replaced by other content", now_ms);
                }
                ledger.start(&file, &sha, rows, now_ms)
            })
            .await;
            match started_ok {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Step::Retry(format!("cannot write the ledger: {error}")),
                Err(error) => return Step::Retry(error),
            }
            batch.started_ms = now_ms;
        }
        let from = batch.sent.len();
        for index in from..batch.rows.len() {
            if self.stopping() {
                tracing::info!(drop = %self.name(), "file_drop: {name}: stopping after {index} of {} rows; the rest follow at the next start", batch.rows.len());
                return Step::Stopping;
            }
            match self.send_row(&name, &batch, index).await {
                Sent::Taken(row) => {
                    self.counts.signals.fetch_add(1, Ordering::Relaxed);
                    batch.sent.push(row);
                }
                Sent::Ledger(error) => return Step::Retry(format!("cannot write the ledger: {error}")),
                Sent::NotTaken(reason) => return Step::Retry(format!("line {}: {reason}", batch.rows[index].line)),
                Sent::Refused(reason) => {
                    let reason = format!("the engine refused line {}: {reason}", batch.rows[index].line);
                    return self.stop_file(seen, &batch, index, &reason).await;
                }
                Sent::Unknown(reason) => {
                    let reason = format!(
                        "line {}: {reason}; it may or may not have been taken, so it is not sent again",
                        batch.rows[index].line
                    );
                    return self.stop_file(seen, &batch, index + 1, &reason).await;
                }
            }
        }
        self.finish(seen, &batch, started).await
    }

    /// Submits one row, recording it in the ledger before and after.
    async fn send_row(&self, name: &str, batch: &Batch, index: usize) -> Sent {
        let row = &batch.rows[index];
        let (ledger, file, sha) = (Arc::clone(&self.ledger), name.to_owned(), batch.sha256.clone());
        let line = row.line;
        match blocking(move || lock(&ledger).sending(&file, &sha, index, line)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Sent::Ledger(error.to_string()),
            Err(error) => return Sent::Ledger(error),
        }
        let (engine, origin, action, note) = (self.engine.clone(), self.settings.origin, row.action, row.note.clone());
        let limit = self.settings.limits.submit_timeout;
        let answer = tokio::time::timeout(
            limit,
            tokio::task::spawn_blocking(move || engine.submit(origin, action, None, &note)),
        )
        .await;
        let signal = match answer {
            Ok(Ok(Ok(signal))) => signal,
            Ok(Ok(Err(SubmitError::Unconfirmed(signal)))) => {
                tracing::warn!(drop = %self.name(), file = %name, line, %signal, "file_drop: the engine took the row but the disk has not confirmed it yet; it is not sent again");
                signal
            }
            Ok(Ok(Err(error @ (SubmitError::Stopped | SubmitError::Journal(_))))) => {
                let reason = error.to_string();
                let (ledger, file, sha, why) =
                    (Arc::clone(&self.ledger), name.to_owned(), batch.sha256.clone(), reason.clone());
                return match blocking(move || lock(&ledger).not_sent(&file, &sha, index, &why)).await {
                    Ok(Ok(())) => Sent::NotTaken(reason),
                    Ok(Err(error)) => Sent::Ledger(error.to_string()),
                    Err(error) => Sent::Ledger(error),
                };
            }
            Ok(Ok(Err(error))) => {
                let reason = error.to_string();
                let (ledger, file, sha, why) =
                    (Arc::clone(&self.ledger), name.to_owned(), batch.sha256.clone(), reason.clone());
                let _ = blocking(move || lock(&ledger).not_sent(&file, &sha, index, &why)).await;
                return Sent::Refused(reason);
            }
            Ok(Err(error)) => return Sent::Unknown(format!("the engine call failed: {error}")),
            Err(_) => return Sent::Unknown(format!("no answer from the engine in {} s", limit.as_secs_f64())),
        };
        let taken = SentRow { index, line, signal };
        let (ledger, file, sha, now_ms) =
            (Arc::clone(&self.ledger), name.to_owned(), batch.sha256.clone(), self.engine.clock().now().unix_ms);
        match blocking(move || lock(&ledger).sent(&file, &sha, taken, now_ms)).await {
            Ok(Ok(())) => Sent::Taken(taken),
            // The row stays unknown in the ledger: it is not sent again, and the file stops
            // at the next attempt with a report saying so.
            Ok(Err(error)) => Sent::Ledger(error.to_string()),
            Err(error) => Sent::Ledger(error),
        }
    }

    /// Every row sent: the report and the file go to `processed/`.
    async fn finish(&self, seen: &Seen, batch: &Batch, started: Instant) -> Step {
        let now_ms = self.engine.clock().now().unix_ms;
        let report = processed_report(&self.settings, &seen.name, batch, now_ms);
        let report = serde_json::to_vec_pretty(&report).unwrap_or_default();
        match self.move_with_report(seen, PROCESSED, ".report.json", report, true).await {
            Moved::To(report) | Moved::Changed(Some(report)) => {
                self.record_finish(&seen.name, &batch.sha256, Outcome::Processed, &report).await;
                self.counts.processed.fetch_add(1, Ordering::Relaxed);
                let resumed = if batch.resumed { " (resumed after a restart)" } else { "" };
                tracing::info!(
                    drop = %self.name(),
                    file = %seen.name,
                    report = %report,
                    "file_drop: {}: {} rows → {} signals in {:.1} s{resumed}",
                    seen.name,
                    batch.rows.len(),
                    batch.sent.len(),
                    started.elapsed().as_secs_f64()
                );
                self.after_replaced(seen, &report)
            }
            Moved::Changed(None) | Moved::Failed => {
                tracing::error!(drop = %self.name(), file = %seen.name, "file_drop: every row was sent but its report cannot be written; it is left alone until it changes");
                Step::Stuck
            }
        }
    }

    /// `Done`, or `Changed` when the file in the folder was replaced while it was sent (its
    /// report is written; the new content is read as a new file).
    fn after_replaced(&self, seen: &Seen, report: &str) -> Step {
        let path = self.settings.dir.join(&seen.name);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() != seen.size || m.modified().ok() != seen.modified) {
            tracing::warn!(drop = %self.name(), file = %seen.name, report, "file_drop: {}: replaced while it was sent; the new content is read as a new file", seen.name);
            return Step::Changed;
        }
        Step::Done
    }

    /// Stops a file part-way: rows before `next` may have been sent (the ledger says which);
    /// the file goes to `rejected/` with a report of what was and was not sent.
    async fn stop_file(&self, seen: &Seen, batch: &Batch, next: usize, reason: &str) -> Step {
        let text = stopped_report(&seen.name, batch, next, reason);
        match self.move_with_report(seen, REJECTED, ".errors.txt", text.into_bytes(), true).await {
            Moved::To(report) | Moved::Changed(Some(report)) => {
                self.record_finish(&seen.name, &batch.sha256, Outcome::Stopped, &report).await;
                self.counts.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(drop = %self.name(), file = %seen.name, report = %report, "file_drop: {}: stopped after {} of {} rows: {reason}", seen.name, batch.sent.len(), batch.rows.len());
                self.after_replaced(seen, &report)
            }
            Moved::Changed(None) | Moved::Failed => {
                tracing::error!(drop = %self.name(), file = %seen.name, %reason, "file_drop: stopped part-way and its report cannot be written; it is left alone until it changes");
                Step::Stuck
            }
        }
    }

    async fn record_finish(&self, file: &str, sha256: &str, outcome: Outcome, report: &str) {
        let (ledger, file, sha, report) =
            (Arc::clone(&self.ledger), file.to_owned(), sha256.to_owned(), report.to_owned());
        let now_ms = self.engine.clock().now().unix_ms;
        let name = self.settings.name.clone();
        match blocking(move || lock(&ledger).finish(&file, &sha, outcome, &report, now_ms)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(drop = %name, %error, "file_drop: cannot write the ledger"),
            Err(error) => tracing::error!(drop = %name, %error, "file_drop: cannot write the ledger"),
        }
    }
}

/// Where a file and its report went.
enum Moved {
    /// The report was written and the file moved beside it (the report's path).
    To(String),
    /// The file in the folder is not the one read any more: it stays. The report's path,
    /// when it was written all the same.
    Changed(Option<String>),
    /// Writing or moving failed (logged).
    Failed,
}

/// The answer for one row.
enum Sent {
    Taken(SentRow),
    /// The ledger could not be written: stop, try again later.
    Ledger(String),
    /// The engine could not take it now: try again later.
    NotTaken(String),
    /// The engine will not take it.
    Refused(String),
    /// It may or may not have been taken.
    Unknown(String),
}

/// A valid file, and how far it got before.
struct Batch {
    sha256: String,
    rows: Vec<Prepared>,
    /// Rows taken so far, in order.
    sent: Vec<SentRow>,
    /// A row with no recorded outcome before a restart: (index, line).
    unknown: Option<(usize, usize)>,
    /// Started before a restart.
    resumed: bool,
    started_ms: i64,
}

enum Loaded {
    Changed,
    Unreadable(String),
    /// Wrong rows; and, for a file started before a restart, its content hash and the rows
    /// sent then.
    Invalid(Vec<RowError>, Option<(String, Vec<SentRow>)>),
    Duplicate(Finished),
    Send(Batch),
}

/// The files of the folder that may be signal files (regular files, not hidden or partial),
/// at most [`SCAN_MAX`].
fn scan(dir: &Path) -> std::io::Result<Vec<Seen>> {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        if seen.len() >= SCAN_MAX {
            break;
        }
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if ignored(&name) {
            continue;
        }
        let Ok(metadata) = std::fs::metadata(entry.path()) else { continue };
        if !metadata.is_file() {
            continue;
        }
        seen.push(Seen { name, size: metadata.len(), modified: metadata.modified().ok() });
    }
    Ok(seen)
}

/// Names a writer uses while it writes, and hidden files.
fn ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") || name.ends_with('~')
}

/// Reads and validates a file, and looks it up in the ledger.
fn load(
    engine: &EngineHandle,
    settings: &FileDropSettings,
    ledger: &Mutex<Ledger>,
    seen: &Seen,
    format: Format,
) -> Loaded {
    let bytes = match read_at_most(&settings.dir.join(&seen.name), settings.limits.max_file_bytes) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Loaded::Changed,
        Err(error) => return Loaded::Unreadable(error.to_string()),
    };
    if u64::try_from(bytes.len()).ok() != Some(seen.size) {
        return Loaded::Changed;
    }
    let sha256 = crate::hex::lower_hex(&sha2::Sha256::digest(&bytes));
    let known = lock(ledger).get(&seen.name, &sha256).cloned();
    if let Some(Entry { finished: Some(finished), .. }) = known {
        return Loaded::Duplicate(finished);
    }
    let text = match std::str::from_utf8(&bytes) {
        Ok(text) => text,
        Err(error) => {
            let line = bytes[..error.valid_up_to()].iter().filter(|b| **b == b'\n').count() + 1;
            let message = "not UTF-8 text; save the file as UTF-8 (\"CSV UTF-8\" in a spreadsheet)";
            return Loaded::Invalid(vec![RowError { line, field: None, message: message.to_owned() }], None);
        }
    };
    let resumed = known.as_ref().map(|e| (sha256.clone(), e.sent.clone()));
    let raw = match parse::rows(format, text, settings.limits.max_rows) {
        Ok(raw) => raw,
        Err(errors) => return Loaded::Invalid(errors, resumed),
    };
    let context = Context { drop: &settings.name, file: &seen.name, symbols: &settings.symbols };
    let origin = settings.origin;
    let check = |action, note: &str| engine.precheck(origin, action, note);
    let mut fresh = || engine.next_signal_id().0;
    let (mut rows, mut errors) = (Vec::with_capacity(raw.len()), Vec::new());
    for row in &raw {
        match parse::validate(row, &context, &mut fresh, &check) {
            Ok(prepared) => rows.push(prepared),
            Err(found) => errors.extend(found),
        }
    }
    let (sent, unknown, started_ms) = match &known {
        Some(entry) => (entry.sent.clone(), entry.sending, entry.started_ms),
        None => (Vec::new(), None, 0),
    };
    // Rows already sent are not judged again (the configuration may have changed since).
    errors.retain(|e| !sent.iter().any(|s| s.line == e.line));
    if let Some(entry) = known.as_ref().filter(|e| e.rows != rows.len()) {
        let message =
            format!("the ledger counted {} rows in this file before the restart, now {}", entry.rows, rows.len());
        errors.push(RowError { line: 0, field: None, message });
    }
    if !errors.is_empty() {
        return Loaded::Invalid(errors, resumed);
    }
    Loaded::Send(Batch { sha256, rows, sent, unknown, resumed: known.is_some(), started_ms })
}

fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Marks a file started before the last stop as one that will not be finished.
fn abandon(ledger: &mut Ledger, drop: &str, file: &str, sha256: &str, entry: &Entry, why: &str, now_ms: i64) {
    let signals = entry.sent.iter().map(|r| r.signal.to_string()).collect::<Vec<_>>().join(", ");
    tracing::warn!(
        drop,
        file,
        "file_drop: {file}: {} of {} rows were sent before the last stop (signals: {}) and the file {why}; the other \
         rows will not be sent",
        entry.sent.len(),
        entry.rows,
        if signals.is_empty() { "none" } else { &signals }
    );
    if let Err(error) = ledger.finish(file, sha256, Outcome::Abandoned, "", now_ms) {
        tracing::error!(drop, %error, "file_drop: cannot write the ledger");
    }
}

fn invalid_report(name: &str, errors: &[RowError]) -> String {
    let lines: std::collections::BTreeSet<usize> = errors.iter().map(|e| e.line).collect();
    let mut text = format!(
        "{name} was not executed: {} problem{} on {} line{}. Nothing of this file was sent; fix it and drop it \
         again.\n\n",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
    );
    for error in errors.iter().take(REPORT_ERRORS_MAX) {
        text.push_str(&format!("{error}\n"));
    }
    if errors.len() > REPORT_ERRORS_MAX {
        text.push_str(&format!("… and {} more\n", errors.len() - REPORT_ERRORS_MAX));
    }
    text
}

fn resumed_invalid_report(name: &str, errors: &[RowError], sent: &[SentRow]) -> String {
    let mut text = format!(
        "{name} was stopped part-way: {} rows were sent before Mirror last stopped, and now the file has problems, so \
         nothing more of it was sent.\n\n",
        sent.len()
    );
    for error in errors.iter().take(REPORT_ERRORS_MAX) {
        text.push_str(&format!("{error}\n"));
    }
    text.push_str("\nSent (do not send these again):\n");
    for row in sent {
        text.push_str(&format!("  line {} → signal {}\n", row.line, row.signal));
    }
    text.push_str("Not sent: every other line.\n");
    text
}

fn duplicate_report(name: &str, finished: &Finished) -> String {
    let mut signals = finished.signals.iter().map(|s| SignalId(*s).to_string()).collect::<Vec<_>>().join(", ");
    if finished.sent > finished.signals.len() {
        signals.push_str(&format!(", … {} in all", finished.sent));
    }
    let how = match finished.outcome {
        Outcome::Processed => "processed",
        Outcome::Stopped => "stopped part-way",
        Outcome::Abandoned => "abandoned part-way",
    };
    let report = if finished.report.is_empty() { String::new() } else { format!("; report {}", finished.report) };
    format!(
        "{name} was not executed: this file (the same name and content) was already {how} at {} (signals {}{report}). \
         Nothing of it was sent again. To send the same signals again, drop them under another name.\n",
        report::utc(finished.at_ms),
        if signals.is_empty() { "none".to_owned() } else { signals }
    )
}

fn stopped_report(name: &str, batch: &Batch, next: usize, reason: &str) -> String {
    let mut text = format!("{name} was stopped part-way: {reason}.\n\n");
    if batch.sent.is_empty() {
        text.push_str("Sent: none.\n");
    } else {
        text.push_str("Sent (do not send these again):\n");
        for row in &batch.sent {
            text.push_str(&format!("  line {} → signal {}\n", row.line, row.signal));
        }
    }
    let sent = batch.sent.len();
    if next > sent {
        let unknown: Vec<String> = batch.rows[sent..next].iter().map(|r| r.line.to_string()).collect();
        text.push_str(&format!(
            "Not known whether sent: line {} (check the followers before sending it again).\n",
            unknown.join(", ")
        ));
    }
    let rest: Vec<String> = batch.rows[next.min(batch.rows.len())..].iter().map(|r| r.line.to_string()).collect();
    if rest.is_empty() {
        text.push_str("Not sent: none.\n");
    } else {
        text.push_str(&format!("Not sent: lines {}.\n", rest.join(", ")));
    }
    text
}

fn processed_report(settings: &FileDropSettings, name: &str, batch: &Batch, now_ms: i64) -> serde_json::Value {
    let signals: Vec<serde_json::Value> = batch
        .sent
        .iter()
        .map(|row| {
            let action = batch.rows.get(row.index).map_or("?", |r| r.action.name());
            serde_json::json!({ "line": row.line, "action": action, "signal": row.signal.0 })
        })
        .collect();
    serde_json::json!({
        "file": name,
        "drop": settings.name,
        "source": settings.source,
        "sha256": batch.sha256,
        "rows": batch.rows.len(),
        "started": report::utc(batch.started_ms),
        "finished": report::utc(now_ms),
        "resumed": batch.resumed,
        "signals": signals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_names_and_hidden_files_are_ignored() {
        for name in [".orders.csv", "orders.csv.tmp", "orders.csv.part", "orders.csv~", ".mirror"] {
            assert!(ignored(name), "{name}");
        }
        for name in ["orders.csv", "orders.JSON", "notes.txt", "tmp.csv"] {
            assert!(!ignored(name), "{name}");
        }
        assert_eq!(Format::of("a.CSV"), Some(Format::Csv));
        assert_eq!(Format::of("a.json"), Some(Format::Json));
        assert_eq!(Format::of("a.txt"), None);
        assert_eq!(Format::of("csv"), None);
    }
}
