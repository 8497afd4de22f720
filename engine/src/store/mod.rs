//! The Postgres system of record, written from the intent journal.
//!
//! Accounts, links, signals, follower orders, fills, positions, equity history, the reasons
//! behind every copy decision and an audit log of every configuration and risk action, in
//! Postgres, for reports and for the desktop apps. Enabled by `DATABASE_URL`; without it
//! Mirror runs on the journal alone.
//!
//! # Off the hot path
//!
//! Nothing in the engine waits for Postgres. The shards journal what they did (see
//! [`crate::journal`]); one tokio task ([`spawn_pg_writer`]) tails the journal's durable
//! entries, folds each batch into rows and writes them. The journal is the writer's queue:
//! bounded on disk by compaction, which never passes the writer's checkpoint, so an outage
//! costs disk, never an entry.
//!
//! # Exactly once
//!
//! Each batch of entries is written in one transaction together with the new checkpoint
//! (the last position written) in the journal's row of `journals` (keyed by the journal's
//! identity, since positions restart in every new journal). The transaction first locks the
//! checkpoint row and checks it is still where this writer left it. On start and after every
//! reconnect the writer reads the checkpoint from Postgres, which is the truth (a commit
//! whose answer was lost to a cut connection did happen), and continues from the next
//! position. So every entry is applied once: a batch either commits with its checkpoint or
//! not at all. Rows also carry deterministic keys (journal position and index within the
//! entry, or a natural key) with `ON CONFLICT DO NOTHING`, so a replay would be harmless
//! anyway; order updates are not idempotent, which is why the checkpoint rides in the same
//! transaction. After the commit the writer records its checkpoint in the journal so that
//! compaction may proceed.
//!
//! # Outages
//!
//! A Postgres error or timeout drops the connection (logged once per outage), and the
//! writer retries with exponential backoff, then catches up from Postgres's checkpoint.
//! If the journal was compacted past that checkpoint (Postgres enabled after the engine had
//! run a while without it), the positions lost to Postgres are logged and counted, and the
//! writer continues from the journal's first position.

mod migrate;
mod postgres;
mod rows;
mod sql;
mod writer;

pub use migrate::{MIGRATIONS, Migration, SCHEMA_VERSION};
pub use postgres::{PG_CONSUMER, PgError, PgSettings};
pub use writer::{PgStatus, PgWriter, spawn_pg_writer};

#[cfg(test)]
mod tests;
