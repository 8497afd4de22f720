//! The writer task: tails the journal's durable entries and writes them to Postgres in
//! batches, riding out outages with exponential backoff.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::migrate;
use super::postgres::{PG_CONSUMER, PgError, PgSettings, Session, connect};
use super::rows::{self, Batch};
use super::sql::{self, Statements};
use crate::journal::Journal;

/// Longest the writer waits for the durable watermark to move before it looks again (at
/// its connection, and at a stop request).
const IDLE_RECHECK: Duration = Duration::from_millis(500);

/// What `stop` waits beyond its drain timeout for the task to notice, before aborting it.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Where the writer stands. Cheap: read from atomics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgStatus {
    /// The task is running (false once stopped, or after an error retrying cannot fix).
    pub running: bool,
    /// Connected, migrated and writing (or waiting for entries).
    pub connected: bool,
    /// The last journal position whose rows the writer saw committed (0 before it first
    /// connects).
    pub checkpoint: u64,
    /// The journal's durable watermark now.
    pub durable: u64,
    /// The latest error, if any (kept after recovery, for the record).
    pub last_error: Option<String>,
    /// Outages: runs of failed attempts, each logged once.
    pub outages: u64,
    /// Rows inserted, updated or deleted.
    pub rows_written: u64,
    /// Journal entries written.
    pub entries_written: u64,
    /// Journal entries that were compacted before the writer could write them.
    pub lost_entries: u64,
}

impl PgStatus {
    /// Durable entries not yet in Postgres.
    pub fn lag(&self) -> u64 {
        self.durable.saturating_sub(self.checkpoint)
    }
}

#[derive(Default)]
struct Shared {
    running: AtomicBool,
    connected: AtomicBool,
    checkpoint: AtomicU64,
    outages: AtomicU64,
    rows_written: AtomicU64,
    entries_written: AtomicU64,
    lost_entries: AtomicU64,
    /// Lost positions are counted once: up to here they have been.
    lost_counted_to: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn set_error(&self, error: &PgError) {
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }
}

/// Marks the task stopped however it ends (a panic included).
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
        self.0.connected.store(false, Ordering::Release);
    }
}

#[derive(Clone, Copy, Debug)]
struct StopRequest {
    /// Write up to here.
    target: u64,
    /// But no longer than this.
    deadline: Instant,
}

/// The running writer. Dropping it aborts the task; [`PgWriter::stop`] drains first.
#[derive(Debug)]
pub struct PgWriter {
    shared: Arc<Shared>,
    journal: Journal,
    stop: watch::Sender<Option<StopRequest>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("checkpoint", &self.checkpoint.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// Starts the writer as a tokio task: connect, migrate, then write every durable journal
/// entry after Postgres's checkpoint, batch by batch, for as long as it runs. Nothing waits
/// for it; when Postgres is unreachable it retries and catches up.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn_pg_writer(journal: Journal, settings: PgSettings) -> PgWriter {
    let shared = Arc::new(Shared::default());
    shared.running.store(true, Ordering::Release);
    let (stop, requests) = watch::channel(None);
    let task = tokio::spawn(run(journal.clone(), settings, Arc::clone(&shared), requests));
    PgWriter { shared, journal, stop, task: Some(task) }
}

impl PgWriter {
    /// Where the writer stands.
    pub fn status(&self) -> PgStatus {
        let shared = &self.shared;
        PgStatus {
            running: shared.running.load(Ordering::Acquire),
            connected: shared.connected.load(Ordering::Acquire),
            checkpoint: shared.checkpoint.load(Ordering::Acquire),
            durable: self.journal.durable(),
            last_error: shared.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            outages: shared.outages.load(Ordering::Acquire),
            rows_written: shared.rows_written.load(Ordering::Acquire),
            entries_written: shared.entries_written.load(Ordering::Acquire),
            lost_entries: shared.lost_entries.load(Ordering::Acquire),
        }
    }

    /// Writes what is durable now (for at most `drain_timeout`), then ends the task.
    pub async fn stop(mut self, drain_timeout: Duration) -> PgStatus {
        let target = self.journal.durable();
        self.stop.send_replace(Some(StopRequest { target, deadline: Instant::now() + drain_timeout }));
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(drain_timeout + STOP_GRACE, &mut task).await.is_err()
        {
            task.abort();
            let _ = task.await;
        }
        self.status()
    }
}

impl Drop for PgWriter {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What one round came to.
enum Step {
    /// Connected (and migrated, and the setups written).
    Connected,
    /// A batch was written.
    Wrote,
    /// Nothing durable to write.
    Idle,
}

async fn run(
    journal: Journal,
    settings: PgSettings,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Option<StopRequest>>,
) {
    let _running = Running(Arc::clone(&shared));
    let mut link: Option<Link> = None;
    let mut backoff = settings.retry_min;
    let mut in_outage = false;
    loop {
        if let Some(request) = *stop.borrow()
            && (shared.checkpoint.load(Ordering::Acquire) >= request.target || Instant::now() >= request.deadline)
        {
            break;
        }
        let round = async {
            match link.as_mut() {
                Some(open) => open.step(&journal, &settings, &shared).await,
                None => {
                    let opened = Link::open(&journal, &settings, &shared).await?;
                    link = Some(opened);
                    Ok(Step::Connected)
                }
            }
        };
        let result = tokio::select! {
            result = round => result,
            () = stop_deadline(&mut stop) => break,
        };
        match result {
            Ok(Step::Connected) => shared.connected.store(true, Ordering::Release),
            Ok(Step::Wrote) => {
                backoff = settings.retry_min;
                if std::mem::take(&mut in_outage) {
                    tracing::info!(
                        checkpoint = shared.checkpoint.load(Ordering::Acquire),
                        "Postgres writer caught up again"
                    );
                }
            }
            Ok(Step::Idle) => {
                backoff = settings.retry_min;
                in_outage = false;
                let next = link.as_ref().map_or(1, |open| open.next);
                tokio::select! {
                    _ = journal.wait_durable_async(next) => {}
                    () = tokio::time::sleep(IDLE_RECHECK) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(error) if !error.is_retryable() => {
                tracing::error!(%error, "the Postgres writer stops; the engine goes on without Postgres");
                shared.set_error(&error);
                break;
            }
            Err(error) => {
                link = None;
                shared.connected.store(false, Ordering::Release);
                shared.set_error(&error);
                if !in_outage {
                    in_outage = true;
                    shared.outages.fetch_add(1, Ordering::AcqRel);
                    tracing::warn!(
                        %error,
                        url = %settings.redacted_url(),
                        "Postgres unavailable; trading goes on and the writer catches up from the journal once it is back"
                    );
                } else {
                    tracing::debug!(%error, retry_in = ?backoff, "Postgres still unavailable");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop_deadline(&mut stop) => break,
                }
                backoff = (backoff * 2).min(settings.retry_max).max(settings.retry_min);
            }
        }
    }
}

/// Resolves once a stop has been asked for and its deadline has passed.
async fn stop_deadline(stop: &mut watch::Receiver<Option<StopRequest>>) {
    loop {
        let request = *stop.borrow_and_update();
        match request {
            Some(request) => return tokio::time::sleep_until(request.deadline).await,
            None => {
                if stop.changed().await.is_err() {
                    // The handle is gone (and aborts the task): nothing will ask again.
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// A connected writer: the session, its prepared statements, and where Postgres stands.
struct Link {
    session: Session,
    statements: Statements,
    /// The journal's number in the database.
    journal: i32,
    /// Postgres's checkpoint, as this writer last read or moved it.
    checkpoint: u64,
    /// The next position to read (past the checkpoint when compaction took what was between).
    next: u64,
}

impl Link {
    async fn open(journal: &Journal, settings: &PgSettings, shared: &Shared) -> Result<Self, PgError> {
        let mut session = connect(settings).await?;
        let applied = migrate::run(&mut session.client, settings, &session.scrubber).await?;
        let statements = Statements::prepare(&session.client, settings, &session.scrubber).await?;
        let (journal_number, checkpoint) =
            sql::read_checkpoint(&session.client, settings, &session.scrubber, journal.uid()).await?;
        let setups = {
            let journal = journal.clone();
            blocking(move || rows::setup_rows(&journal.setups()?)).await?
        };
        let Session { client, scrubber, .. } = &mut session;
        sql::write_setups(client, &statements, settings, scrubber, &setups).await?;
        shared.checkpoint.store(checkpoint, Ordering::Release);
        // Postgres is the truth: the journal keeps everything after its checkpoint.
        if let Err(error) = journal.set_consumer_checkpoint(PG_CONSUMER, checkpoint) {
            tracing::warn!(%error, "could not record the Postgres checkpoint in the journal");
        }
        tracing::info!(
            url = %settings.redacted_url(),
            tls = ?session.tls,
            migrated = ?applied,
            journal = journal.uid(),
            checkpoint,
            "Postgres connected; writing the journal from the position after the checkpoint"
        );
        Ok(Self { session, statements, journal: journal_number, checkpoint, next: checkpoint + 1 })
    }

    async fn step(&mut self, journal: &Journal, settings: &PgSettings, shared: &Shared) -> Result<Step, PgError> {
        let (from, max) = (self.next, settings.batch_entries.max(1));
        let read = {
            let journal = journal.clone();
            blocking(move || read_batch(&journal, from, max)).await?
        };
        if let Some((first, last)) = read.lost {
            report_lost(shared, first, last);
        }
        self.next = read.next;
        let Some(batch) = read.batch else {
            if self.session.client.is_closed() {
                return Err(PgError::Statement { during: "waiting for entries", reason: "connection closed".into() });
            }
            return Ok(Step::Idle);
        };
        let Session { client, scrubber, .. } = &mut self.session;
        let rows =
            sql::write_batch(client, &self.statements, settings, scrubber, self.journal, &batch, self.checkpoint)
                .await?;
        self.checkpoint = batch.last;
        shared.checkpoint.store(batch.last, Ordering::Release);
        shared.rows_written.fetch_add(rows, Ordering::AcqRel);
        shared.entries_written.fetch_add(batch.entries as u64, Ordering::AcqRel);
        if !batch.signals_missing.is_empty() {
            tracing::warn!(
                signals = ?batch.signals_missing,
                "signals no longer kept by the journal (or not decodable) are missing from Postgres's signals table"
            );
        }
        if let Err(error) = journal.set_consumer_checkpoint(PG_CONSUMER, batch.last) {
            tracing::warn!(%error, "could not record the Postgres checkpoint in the journal; compaction waits");
        }
        Ok(Step::Wrote)
    }
}

/// What one read of the journal gave.
struct Read {
    batch: Option<Batch>,
    /// Where the next read starts.
    next: u64,
    /// Positions compacted before the writer read them.
    lost: Option<(u64, u64)>,
}

/// Reads and folds up to `max` durable entries from `from`, noticing what compaction took.
fn read_batch(journal: &Journal, from: u64, max: usize) -> Result<Read, PgError> {
    let mut start = from;
    let mut lost = None;
    let first = journal.first_position();
    if start < first {
        lost = Some((start, first - 1));
        start = first;
    }
    let entries = journal.read(start, max)?;
    if let Some((seq, _)) = entries.first()
        && *seq > start
    {
        // Compacted between the two reads.
        lost = Some((from, seq - 1));
    }
    if entries.is_empty() {
        return Ok(Read { batch: None, next: start, lost });
    }
    let batch = rows::fold(journal, entries)?;
    Ok(Read { next: batch.last + 1, batch: Some(batch), lost })
}

fn report_lost(shared: &Shared, first: u64, last: u64) {
    let counted = shared.lost_counted_to.fetch_max(last, Ordering::AcqRel);
    if last <= counted {
        return;
    }
    let newly = last - counted.max(first - 1);
    shared.lost_entries.fetch_add(newly, Ordering::AcqRel);
    tracing::warn!(
        first,
        last,
        "the journal was compacted past the Postgres checkpoint: positions {first}..={last} will never reach Postgres; \
         list \"{PG_CONSUMER}\" among the journal's consumers so that compaction waits for the writer"
    );
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, PgError> + Send + 'static) -> Result<T, PgError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| PgError::Task(e.to_string()))?
}
