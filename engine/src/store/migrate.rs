//! Schema migrations, embedded in the binary and run when the writer connects.
//!
//! Each migration runs once, in its own transaction, in version order, and is recorded in
//! `mirror_migrations`. The transactions take an advisory lock, so two engines starting
//! against one database do not run a migration twice. A database at a version this binary
//! does not know (a newer Mirror migrated it) is refused rather than written with an older
//! idea of the schema.

use tokio_postgres::Client;

use super::postgres::{PgError, PgSettings, Scrubber, answer};

/// One schema change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migration {
    /// Its version: 1, 2, … without gaps.
    pub version: i32,
    /// A short name, recorded with it.
    pub name: &'static str,
    /// The SQL, run as one batch inside the migration's transaction.
    pub sql: &'static str,
}

/// Every migration this binary knows, in order.
pub const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "initial", sql: include_str!("migrations/0001_initial.sql") }];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Advisory lock key of the migrations ("mirror" in ASCII).
const LOCK_KEY: i64 = 0x6d69_7272_6f72;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS mirror_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)";

/// Brings the database to [`SCHEMA_VERSION`]; returns the versions applied now (none when it
/// was already there).
pub(crate) async fn run(client: &mut Client, settings: &PgSettings, scrubber: &Scrubber) -> Result<Vec<i32>, PgError> {
    let mut applied = Vec::new();
    loop {
        let transaction = answer(settings, scrubber, "starting a migration", client.transaction()).await?;
        answer(
            settings,
            scrubber,
            "locking migrations",
            transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY]),
        )
        .await?;
        answer(settings, scrubber, "creating mirror_migrations", transaction.batch_execute(CREATE_TABLE)).await?;
        let rows = answer(
            settings,
            scrubber,
            "reading mirror_migrations",
            transaction.query("SELECT version, name FROM mirror_migrations ORDER BY version", &[]),
        )
        .await?;
        let recorded: Vec<(i32, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        let next = pending(&recorded)?;
        let Some(migration) = next else {
            answer(settings, scrubber, "ending migrations", transaction.commit()).await?;
            return Ok(applied);
        };
        answer(settings, scrubber, "running a migration", transaction.batch_execute(migration.sql)).await?;
        answer(
            settings,
            scrubber,
            "recording a migration",
            transaction.execute(
                "INSERT INTO mirror_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            ),
        )
        .await?;
        answer(settings, scrubber, "committing a migration", transaction.commit()).await?;
        tracing::info!(version = migration.version, name = migration.name, "Postgres schema migrated");
        applied.push(migration.version);
    }
}

/// The first migration not yet recorded, after checking that what is recorded is ours.
fn pending(recorded: &[(i32, String)]) -> Result<Option<&'static Migration>, PgError> {
    if let Some((found, _)) = recorded.iter().find(|(version, _)| *version > SCHEMA_VERSION) {
        return Err(PgError::SchemaTooNew { found: *found, known: SCHEMA_VERSION });
    }
    for (version, name) in recorded {
        let ours = MIGRATIONS.iter().find(|m| m.version == *version);
        match ours {
            Some(migration) if migration.name == name => {}
            Some(migration) => {
                return Err(PgError::SchemaMismatch {
                    version: *version,
                    expected: migration.name,
                    found: name.clone(),
                });
            }
            None => {
                return Err(PgError::SchemaMismatch { version: *version, expected: "(none)", found: name.clone() });
            }
        }
    }
    Ok(MIGRATIONS.iter().find(|m| !recorded.iter().any(|(version, _)| *version == m.version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i32::try_from(index).unwrap() + 1, "{}", migration.name);
        }
    }

    #[test]
    fn what_is_pending_follows_what_is_recorded() {
        assert_eq!(pending(&[]).unwrap().map(|m| m.version), Some(1));
        assert_eq!(pending(&[(1, "initial".into())]).unwrap(), None);
        assert!(matches!(
            pending(&[(1, "initial".into()), (SCHEMA_VERSION + 1, "later".into())]),
            Err(PgError::SchemaTooNew { found, known: SCHEMA_VERSION }) if found == SCHEMA_VERSION + 1
        ));
        assert!(matches!(pending(&[(1, "other".into())]), Err(PgError::SchemaMismatch { version: 1, .. })));
    }
}
