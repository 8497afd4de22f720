//! The intent journal: every accepted signal, every input each account actor took (and so
//! every order intent and every execution event), and periodic checksummed snapshots of the
//! actors, in sled on local disk.
//!
//! # Positions and durability
//!
//! Every entry takes the next log position when it is created ([`Journal::reserve`]) and is
//! written by one writer thread, which inserts whatever has arrived and then flushes sled
//! once for all of it (group commit). The durable watermark is the highest position up to
//! which every entry is on disk. Two promises hang on it:
//!
//! - an external source is acknowledged only once its signal's entry is durable;
//! - with write-ahead on (the default), a command reaches the broker only once the entry of
//!   the input that produced it is durable. The fan-out itself never waits: commands wait in
//!   their connector task, off the shards.
//!
//! So after a crash, an order the broker has is always explained by the journal, and a signal
//! the journal does not have was never acknowledged nor copied.
//!
//! # Recovery
//!
//! On open, the journal reads its gap-free prefix (entries after a gap were never durable,
//! so never acknowledged nor acted on, and are dropped), the latest good snapshot of each
//! account, and the inputs each account took since ([`Recovery`]). Signals whose fan-out had
//! not completed are handed back so that the followers that had not taken them still do.
//!
//! # Compaction
//!
//! The log is cut below the point every account has a snapshot past (the older of its two
//! kept snapshots, so that a corrupt latest one still has its inputs), below every signal
//! still being fanned out and below every registered consumer's checkpoint (the Postgres
//! writer tails the log).

mod durable;
mod entry;
mod recover;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mirror_model::{AccountId, Signal, SignalId};
use mirror_wire::SharedSignal;

pub use entry::{
    AdminAction, AdminRecord, Deliveries, EmittedSignal, Entry, InputRecord, JournalInput, SetupRecord, ShardEntry,
    SignalMark,
};
pub use recover::{Recovery, RecoverySummary, Replayed, UnfinishedFanout};

use crate::account::ActorSnapshot;
use crate::telemetry::TelemetrySink;
use durable::Watermark;

pub(crate) use entry::{StoredSignal, StoredSnapshot, decode, encode};

/// Journal settings (the configuration's `[storage]` section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalSettings {
    /// The sled directory.
    pub dir: PathBuf,
    /// Hold every command until the input that produced it is durable.
    pub write_ahead: bool,
    /// Snapshot an account after this many inputs.
    pub snapshot_inputs: u64,
    /// Snapshot an account that changed at least this often.
    pub snapshot_interval: Duration,
    /// Entries waiting for the writer before appenders wait (back-pressure, never a drop).
    pub queue_capacity: usize,
    /// Drop log entries no longer needed (off: keep the whole log, for audits).
    pub compact: bool,
    /// How often the log is compacted.
    pub compact_interval: Duration,
    /// Signals are kept at least this long (for audits and late replays).
    pub signal_retention: Duration,
    /// Consumers that tail the log this run (checkpoints of others are forgotten).
    pub consumers: Vec<String>,
}

impl JournalSettings {
    /// Defaults, in `dir`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            write_ahead: true,
            snapshot_inputs: 10_000,
            snapshot_interval: Duration::from_secs(30),
            queue_capacity: 65_536,
            compact: true,
            compact_interval: Duration::from_secs(10),
            signal_retention: Duration::from_secs(7 * 24 * 3_600),
            consumers: Vec::new(),
        }
    }
}

/// What can go wrong with the journal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// sled failed.
    #[error("journal storage at {path}: {reason}")]
    Storage {
        /// The directory.
        path: PathBuf,
        /// What sled said.
        reason: String,
    },
    /// An entry could not be encoded or decoded.
    #[error("journal entry {seq}: {reason}")]
    Corrupt {
        /// Its position.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The writer failed; nothing more becomes durable.
    #[error("the journal failed: {0}")]
    Failed(String),
    /// An entry did not become durable in time.
    #[error("journal position {seq} not durable after {waited:?}")]
    NotDurable {
        /// The position.
        seq: u64,
        /// How long we waited.
        waited: Duration,
    },
    /// The journal has been closed.
    #[error("the journal is closed")]
    Closed,
}

impl JournalError {
    fn storage(path: &Path, error: impl std::fmt::Display) -> Self {
        Self::Storage { path: path.to_path_buf(), reason: error.to_string() }
    }
}

/// What the writer is asked to write at one position.
#[derive(Debug)]
pub(crate) enum Record {
    /// A plain entry.
    Entry(Entry),
    /// An external signal: its mark in the log, its bytes in the signals tree.
    Signal { mark: SignalMark, bytes: Vec<u8> },
    /// An actor snapshot.
    Snapshot(Box<ActorSnapshot>),
}

enum WriterMsg {
    Write { seq: u64, record: Record },
    Attach { accounts: Vec<AccountId>, telemetry: Option<TelemetrySink> },
    Stop,
}

struct Inner {
    settings: JournalSettings,
    uid: String,
    db: sled::Db,
    trees: Trees,
    next_seq: AtomicU64,
    watermark: Watermark,
    sender: flume::Sender<WriterMsg>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Clone)]
struct Trees {
    log: sled::Tree,
    snapshots: sled::Tree,
    signals: sled::Tree,
    meta: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db, path: &Path) -> Result<Self, JournalError> {
        let tree = |name: &str| db.open_tree(name).map_err(|e| JournalError::storage(path, e));
        Ok(Self { log: tree("log")?, snapshots: tree("snapshots")?, signals: tree("signals")?, meta: tree("meta")? })
    }
}

const META_COMPACTED_BELOW: &[u8] = b"compacted_below";
const META_SETUP_PREFIX: &str = "setup/";
const META_CONSUMER_PREFIX: &str = "consumer/";
/// The journal's identity: 16 random bytes drawn when it is created.
const META_UID: &[u8] = b"uid";

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn key_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

fn snapshot_key(account: AccountId, seq: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&account.0.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The intent journal. Cheap to clone; the writer thread stops with [`Journal::close`].
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.inner.settings.dir)
            .field("durable", &self.durable())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (or creates) the journal in `settings.dir`, reads what recovery needs and starts
    /// the writer thread.
    pub fn open(settings: JournalSettings) -> Result<(Self, Recovery), JournalError> {
        let path = settings.dir.clone();
        std::fs::create_dir_all(&path).map_err(|e| JournalError::storage(&path, e))?;
        let db = sled::Config::new()
            .path(&path)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()
            .map_err(|e| JournalError::storage(&path, e))?;
        let trees = Trees::open(&db, &path)?;
        forget_other_consumers(&trees, &settings.consumers, &path)?;
        let uid = identity(&trees, &path)?;
        let recovery = recover::read(&trees, &path)?;
        let next = recovery.summary.next_seq;
        let (sender, receiver) = flume::bounded(settings.queue_capacity.max(1));
        let inner = Arc::new(Inner {
            settings,
            uid,
            db,
            trees,
            next_seq: AtomicU64::new(next),
            watermark: Watermark::new(next - 1),
            sender,
            writer: std::sync::Mutex::new(None),
        });
        let writer = writer::Writer::new(Arc::clone(&inner), receiver, &recovery)?;
        let thread = std::thread::Builder::new()
            .name("mirror-journal".into())
            .spawn(move || writer.run())
            .map_err(|e| JournalError::storage(&path, e))?;
        *inner.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(thread);
        Ok((Self { inner }, recovery))
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &JournalSettings {
        &self.inner.settings
    }

    /// Tells the writer which accounts exist (compaction waits for a snapshot of each) and
    /// where audit records go once durable.
    pub fn attach(&self, accounts: Vec<AccountId>, telemetry: Option<TelemetrySink>) {
        let _ = self.inner.sender.send(WriterMsg::Attach { accounts, telemetry });
    }

    /// Takes the next log position. Every position taken must be written exactly once
    /// ([`Journal::write`]), or nothing after it becomes durable.
    pub(crate) fn reserve(&self) -> u64 {
        self.inner.next_seq.fetch_add(1, Ordering::AcqRel)
    }

    /// Hands a record to the writer, waiting while its queue is full.
    pub(crate) fn write(&self, seq: u64, record: Record) -> Result<(), JournalError> {
        if let Some(error) = self.inner.watermark.failure() {
            return Err(error);
        }
        self.inner.sender.send(WriterMsg::Write { seq, record }).map_err(|_| JournalError::Closed)
    }

    /// Reserves a position and writes a record there.
    pub(crate) fn append(&self, record: Record) -> Result<u64, JournalError> {
        let seq = self.reserve();
        self.write(seq, record)?;
        Ok(seq)
    }

    /// Journals an external signal; returns its position.
    pub(crate) fn append_signal(&self, shared: &SharedSignal, parts: u16) -> Result<u64, JournalError> {
        let id = shared.view().id;
        self.append(Record::Signal { mark: SignalMark { id, parts }, bytes: shared.as_bytes().to_vec() })
    }

    /// Journals an administrative action.
    pub fn admin(&self, record: AdminRecord) -> Result<u64, JournalError> {
        self.append(Record::Entry(Entry::Admin(record)))
    }

    /// The journal's identity (32 hex digits), drawn when it was created: positions are only
    /// unique within one journal.
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// The durable watermark: every position up to it is on disk.
    pub fn durable(&self) -> u64 {
        self.inner.watermark.get()
    }

    /// The last position handed out (durable or not yet).
    pub fn last_reserved(&self) -> u64 {
        self.inner.next_seq.load(Ordering::Acquire).saturating_sub(1)
    }

    /// Whether commands wait for their input to be durable.
    pub fn write_ahead(&self) -> bool {
        self.inner.settings.write_ahead
    }

    /// Blocks until `seq` is durable (or fails, or `timeout` passes).
    pub fn wait_durable(&self, seq: u64, timeout: Duration) -> Result<(), JournalError> {
        self.inner.watermark.wait(seq, timeout)
    }

    /// Waits until `seq` is durable or the journal fails.
    pub async fn wait_durable_async(&self, seq: u64) -> Result<(), JournalError> {
        self.inner.watermark.wait_async(seq).await
    }

    /// The journal's failure, if it failed.
    pub fn failure(&self) -> Option<JournalError> {
        self.inner.watermark.failure()
    }

    /// A signal by id, if still kept.
    pub fn signal(&self, id: SignalId) -> Result<Option<Signal>, JournalError> {
        let path = &self.inner.settings.dir;
        let Some(value) =
            self.inner.trees.signals.get(id.0.to_be_bytes()).map_err(|e| JournalError::storage(path, e))?
        else {
            return Ok(None);
        };
        let stored: StoredSignal =
            decode(&value).map_err(|e| JournalError::Corrupt { seq: 0, reason: format!("signal {id}: {e}") })?;
        let shared = SharedSignal::decode(&stored.bytes)
            .map_err(|e| JournalError::Corrupt { seq: stored.seq, reason: format!("signal {id}: {e}") })?;
        Ok(Some(shared.to_signal()))
    }

    /// Records the setup an account starts from (replaced at every start).
    pub fn record_setup(&self, setup: &SetupRecord) -> Result<(), JournalError> {
        let path = &self.inner.settings.dir;
        let key = format!("{META_SETUP_PREFIX}{:010}", setup.id.0);
        let value = encode(setup).map_err(|e| JournalError::Corrupt { seq: 0, reason: e.to_string() })?;
        self.inner.trees.meta.insert(key.as_bytes(), value).map(drop).map_err(|e| JournalError::storage(path, e))
    }

    /// The setups of every account the journal has seen started, by id.
    pub fn setups(&self) -> Result<Vec<SetupRecord>, JournalError> {
        let path = &self.inner.settings.dir;
        let mut setups = Vec::new();
        for item in self.inner.trees.meta.scan_prefix(META_SETUP_PREFIX.as_bytes()) {
            let (key, value) = item.map_err(|e| JournalError::storage(path, e))?;
            let setup = decode(&value).map_err(|e| JournalError::Corrupt {
                seq: 0,
                reason: format!("{}: {e}", String::from_utf8_lossy(&key)),
            })?;
            setups.push(setup);
        }
        Ok(setups)
    }

    /// The lowest position still in the log.
    pub fn first_position(&self) -> u64 {
        read_u64(&self.inner.trees.meta, META_COMPACTED_BELOW).ok().flatten().unwrap_or(1)
    }

    /// Durable entries from `from` (inclusive), at most `max`, in order. Stops at the durable
    /// watermark.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, Entry)>, JournalError> {
        let durable = self.durable();
        let path = &self.inner.settings.dir;
        let mut entries = Vec::new();
        if from > durable {
            return Ok(entries);
        }
        for item in self.inner.trees.log.range(seq_key(from)..=seq_key(durable)) {
            let (key, value) = item.map_err(|e| JournalError::storage(path, e))?;
            let seq = key_seq(&key).ok_or_else(|| JournalError::Corrupt { seq: 0, reason: "bad key".into() })?;
            let entry = decode(&value).map_err(|e| JournalError::Corrupt { seq, reason: e.to_string() })?;
            entries.push((seq, entry));
            if entries.len() >= max {
                break;
            }
        }
        Ok(entries)
    }

    /// The checkpoint of a consumer (the last position it has fully handled), 0 if none.
    pub fn consumer_checkpoint(&self, name: &str) -> Result<u64, JournalError> {
        let key = format!("{META_CONSUMER_PREFIX}{name}");
        read_u64(&self.inner.trees.meta, key.as_bytes())
            .map(Option::unwrap_or_default)
            .map_err(|e| JournalError::storage(&self.inner.settings.dir, e))
    }

    /// Records a consumer's checkpoint: the log is kept from just after it. Becomes durable
    /// with the next group commit.
    pub fn set_consumer_checkpoint(&self, name: &str, seq: u64) -> Result<(), JournalError> {
        let key = format!("{META_CONSUMER_PREFIX}{name}");
        self.inner
            .trees
            .meta
            .insert(key.as_bytes(), &seq.to_be_bytes())
            .map(drop)
            .map_err(|e| JournalError::storage(&self.inner.settings.dir, e))
    }

    /// Stops the writer after everything handed to it, with a final flush.
    pub fn close(&self) {
        let _ = self.inner.sender.send(WriterMsg::Stop);
        let thread = self.inner.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> sled::Result<Option<u64>> {
    Ok(tree.get(key)?.and_then(|v| key_seq(&v)))
}

/// The journal's identity, drawn and stored when it is created. Positions count from 1 in
/// every new journal, so a consumer outside it (Postgres) must know which journal a position
/// belongs to.
fn identity(trees: &Trees, path: &Path) -> Result<String, JournalError> {
    let storage = |e: sled::Error| JournalError::storage(path, e);
    if let Some(stored) = trees.meta.get(META_UID).map_err(storage)? {
        return Ok(crate::hex::lower_hex(&stored));
    }
    let mut bytes = [0_u8; 16];
    crate::secrets::fill_random(&mut bytes).map_err(|e| JournalError::storage(path, e))?;
    trees.meta.insert(META_UID, &bytes).map_err(storage)?;
    trees.meta.flush().map_err(storage)?;
    Ok(crate::hex::lower_hex(&bytes))
}

fn forget_other_consumers(trees: &Trees, keep: &[String], path: &Path) -> Result<(), JournalError> {
    for item in trees.meta.scan_prefix(META_CONSUMER_PREFIX.as_bytes()) {
        let (key, _) = item.map_err(|e| JournalError::storage(path, e))?;
        let name = String::from_utf8_lossy(&key[META_CONSUMER_PREFIX.len()..]).into_owned();
        if !keep.contains(&name) {
            tracing::info!(consumer = %name, "journal consumer not configured any more; its checkpoint is forgotten");
            trees.meta.remove(&key).map_err(|e| JournalError::storage(path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
