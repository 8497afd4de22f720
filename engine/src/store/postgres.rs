//! Reaching Postgres: settings from `DATABASE_URL`, the TLS policy, timeouts on every network
//! await, and errors that never carry the password.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use crate::journal::JournalError;

/// The writer's name among the journal's consumers (list it in `JournalSettings::consumers`
/// so that compaction waits for it).
pub const PG_CONSUMER: &str = "postgres";

/// How the writer reaches Postgres and how it paces itself.
#[derive(Clone, PartialEq, Eq)]
pub struct PgSettings {
    /// The connection string (`postgres://user:password@host:port/db?sslmode=...` or the
    /// `key=value` form). Never logged as is: the password is redacted.
    pub url: String,
    /// Most journal entries written in one transaction.
    pub batch_entries: usize,
    /// Longest wait for a connection (TCP, TLS and authentication).
    pub connect_timeout: Duration,
    /// Longest a statement may run (set on the session); the client also gives up on any
    /// answer that takes longer than this plus [`PgSettings::NET_SLACK`].
    pub statement_timeout: Duration,
    /// First wait before reconnecting after an error.
    pub retry_min: Duration,
    /// Longest wait between reconnection attempts (the wait doubles up to it).
    pub retry_max: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &redact_url(&self.url))
            .field("batch_entries", &self.batch_entries)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("retry_min", &self.retry_min)
            .field("retry_max", &self.retry_max)
            .finish()
    }
}

impl PgSettings {
    /// What the client adds to the statement timeout before it gives up on an answer itself
    /// (the server's own timeout should fire first and say why).
    pub const NET_SLACK: Duration = Duration::from_secs(2);

    /// Defaults for `url`, which is checked now (its syntax and the TLS policy) so that a bad
    /// `DATABASE_URL` stops the engine at start rather than failing quietly in the writer.
    pub fn from_url(url: impl Into<String>) -> Result<Self, PgError> {
        let settings = Self {
            url: url.into(),
            batch_entries: 512,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
        };
        settings.target()?;
        Ok(settings)
    }

    /// The settings from `DATABASE_URL`, if it is set (and not empty).
    pub fn from_env() -> Result<Option<Self>, PgError> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Self::from_url(url).map(Some),
            _ => Ok(None),
        }
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The longest the client waits for one answer.
    pub(crate) fn answer_timeout(&self) -> Duration {
        self.statement_timeout + Self::NET_SLACK
    }

    /// The parsed configuration and how to secure it.
    pub(crate) fn target(&self) -> Result<Target, PgError> {
        let mut config: Config = self.url.parse().map_err(|e: tokio_postgres::Error| PgError::InvalidUrl {
            url: self.redacted_url(),
            reason: e.to_string(),
        })?;
        let scrubber = Scrubber::of(&config);
        let tls = tls_policy(&mut config);
        config.connect_timeout(self.connect_timeout);
        config.application_name("mirror-engine");
        Ok(Target { config, tls, scrubber, redacted: self.redacted_url() })
    }
}

/// A parsed connection target.
pub(crate) struct Target {
    config: Config,
    tls: Tls,
    scrubber: Scrubber,
    redacted: String,
}

/// How the connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    /// Plain TCP or a Unix socket: `sslmode=disable`, or a server on this machine.
    Plain,
    /// rustls (ring provider) verifying the server against the webpki roots.
    Rustls,
}

/// `sslmode=disable` or a server on this machine (loopback, Unix socket) without an explicit
/// `sslmode=require`: plain. Anything else: TLS, required (never `prefer`, which an attacker
/// on the path could downgrade), with the server's certificate verified.
fn tls_policy(config: &mut Config) -> Tls {
    let local = config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => {
            name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    match config.get_ssl_mode() {
        SslMode::Disable => Tls::Plain,
        SslMode::Require => {
            config.ssl_mode(SslMode::Require);
            Tls::Rustls
        }
        _ if local => {
            config.ssl_mode(SslMode::Disable);
            Tls::Plain
        }
        _ => {
            config.ssl_mode(SslMode::Require);
            Tls::Rustls
        }
    }
}

fn rustls_connector(redacted: &str) -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls { url: redacted.to_owned(), reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// An open session: the client and the task that drives its socket (stopped on drop).
pub(crate) struct Session {
    pub(crate) client: Client,
    driver: JoinHandle<()>,
    pub(crate) scrubber: Scrubber,
    pub(crate) tls: Tls,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects (bounded by the connect timeout) and sets the session's statement timeout.
pub(crate) async fn connect(settings: &PgSettings) -> Result<Session, PgError> {
    let Target { config, tls, scrubber, redacted } = settings.target()?;
    let limit = settings.connect_timeout + PgSettings::NET_SLACK;
    let refused = |e: tokio_postgres::Error| PgError::Connect { url: redacted.clone(), reason: scrubber.describe(&e) };
    let late = |_| PgError::Timeout { during: "connecting", waited: limit };
    let (client, driver) = match tls {
        Tls::Plain => {
            let (client, connection) =
                tokio::time::timeout(limit, config.connect(NoTls)).await.map_err(late)?.map_err(refused)?;
            (client, tokio::spawn(drive(connection)))
        }
        Tls::Rustls => {
            let connector = rustls_connector(&redacted)?;
            let (client, connection) =
                tokio::time::timeout(limit, config.connect(connector)).await.map_err(late)?.map_err(refused)?;
            (client, tokio::spawn(drive(connection)))
        }
    };
    let session = Session { client, driver, scrubber, tls };
    let statement_ms = settings.statement_timeout.as_millis().max(1);
    let setup = format!("SET statement_timeout = {statement_ms}; SET lock_timeout = {statement_ms}");
    answer(settings, &session.scrubber, "setting up the session", session.client.batch_execute(&setup)).await?;
    Ok(session)
}

async fn drive<F>(connection: F)
where
    F: Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(error) = connection.await {
        // The client's next call fails and says so; this is only the socket's side of it.
        tracing::debug!(%error, "Postgres connection ended");
    }
}

/// Awaits one answer from Postgres, bounded by the statement timeout plus the slack.
pub(crate) async fn answer<T>(
    settings: &PgSettings,
    scrubber: &Scrubber,
    during: &'static str,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgError> {
    let limit = settings.answer_timeout();
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(PgError::Statement { during, reason: scrubber.describe(&error) }),
        Err(_) => Err(PgError::Timeout { during, waited: limit }),
    }
}

/// Removes the password from whatever a driver error says (it should not say it; this makes
/// sure).
#[derive(Clone, Debug, Default)]
pub(crate) struct Scrubber {
    secret: Option<String>,
}

impl Scrubber {
    fn of(config: &Config) -> Self {
        let secret = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).filter(|p| p.len() >= 3);
        Self { secret }
    }

    pub(crate) fn scrub(&self, text: String) -> String {
        match &self.secret {
            Some(secret) if text.contains(secret.as_str()) => text.replace(secret.as_str(), "***"),
            _ => text,
        }
    }

    /// The error with its causes, in one line, scrubbed.
    pub(crate) fn describe(&self, error: &tokio_postgres::Error) -> String {
        let text = match error.as_db_error() {
            Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
            None => {
                let mut text = error.to_string();
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    text.push_str(": ");
                    text.push_str(&cause.to_string());
                    source = cause.source();
                }
                text
            }
        };
        self.scrub(text)
    }
}

/// The connection string with its password replaced by `***`: in the URL's user info, in a
/// `password=` query parameter and in the `key=value` form.
pub(crate) fn redact_url(url: &str) -> String {
    let mut text = url.to_owned();
    if let Some(scheme_end) = text.find("://") {
        let start = scheme_end + 3;
        let rest = &text[start..];
        // The user info ends at the last `@` before the query (a password may hold a `/`).
        let query = rest.find('?').unwrap_or(rest.len());
        if let Some(at) = rest[..query].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            text.replace_range(start + colon + 1..start + at, "***");
        }
    }
    redact_parameter(&text)
}

/// `password=...` (query parameter or `key=value` pair, quoted or not) becomes `password=***`.
fn redact_parameter(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("password=") {
        let boundary = found == 0 || rest[..found].ends_with([' ', '?', '&', '\t']);
        out.push_str(&rest[..found + "password=".len()]);
        rest = &rest[found + "password=".len()..];
        if !boundary {
            continue;
        }
        let end = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|(_, c)| {
                    let closes = *c == '\'' && !escaped;
                    escaped = *c == '\\' && !escaped;
                    closes
                })
                .map_or(rest.len(), |(at, _)| at + 2)
        } else {
            rest.find([' ', '&', '\t']).unwrap_or(rest.len())
        };
        out.push_str("***");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// What can go wrong writing the system of record.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string does not parse.
    #[error("DATABASE_URL ({url}) is not a Postgres connection string Mirror can use: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// TLS could not be set up.
    #[error("TLS to Postgres at {url} could not be set up: {reason}")]
    Tls {
        /// The URL, password redacted.
        url: String,
        /// What rustls said.
        reason: String,
    },
    /// The server could not be reached, refused the session, or failed the TLS handshake.
    #[error("could not connect to Postgres at {url}: {reason}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("Postgres did not answer while {during} within {waited:?}")]
    Timeout {
        /// What the writer was doing.
        during: &'static str,
        /// How long it waited.
        waited: Duration,
    },
    /// A statement failed, or the connection broke during it.
    #[error("Postgres failed while {during}: {reason}")]
    Statement {
        /// What the writer was doing.
        during: &'static str,
        /// What Postgres or the driver said.
        reason: String,
    },
    /// The database was migrated by a newer Mirror.
    #[error(
        "the database schema is at version {found} but this Mirror knows versions up to {known}; refusing to write \
         (upgrade Mirror, or point DATABASE_URL at another database)"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i32,
        /// The newest this binary knows.
        known: i32,
    },
    /// A recorded migration is not the one this binary has under that version.
    #[error(
        "schema migration {version} is `{found}` in the database but `{expected}` in this Mirror; refusing to write"
    )]
    SchemaMismatch {
        /// The version.
        version: i32,
        /// This binary's name for it.
        expected: &'static str,
        /// The database's.
        found: String,
    },
    /// The checkpoint moved under this writer (another writer on the same database).
    #[error(
        "the Postgres checkpoint is at {found}, not at {expected} where this writer left it: is another engine writing \
         to the same database?"
    )]
    CheckpointMoved {
        /// Where this writer left it.
        expected: u64,
        /// Where it is.
        found: u64,
    },
    /// A value from the journal that the schema cannot hold.
    #[error("{what} {value} does not fit in a Postgres bigint")]
    OutOfRange {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// The journal could not be read.
    #[error("reading the journal for Postgres: {0}")]
    Journal(#[from] JournalError),
    /// A journal value could not be turned into JSON.
    #[error("encoding {what} as JSON: {reason}")]
    Json {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The blocking part of a batch (reading and folding the journal) panicked or was cut.
    #[error("preparing a batch failed: {0}")]
    Task(String),
}

impl PgError {
    /// Whether trying again (after a reconnect) can help. The others stop the writer: a
    /// configuration or a schema to fix, or a value the schema cannot hold.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::InvalidUrl { .. }
                | Self::Tls { .. }
                | Self::SchemaTooNew { .. }
                | Self::SchemaMismatch { .. }
                | Self::OutOfRange { .. }
                | Self::Json { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form_of_connection_string() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/mirror"), "postgres://app:***@db:5432/mirror");
        // A password holding `@` and `/`: the user info ends at the last `@` before the query.
        assert_eq!(
            redact_url("postgresql://app:a@b/c@db/mirror?sslmode=require"),
            "postgresql://app:***@db/mirror?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://db/mirror?user=app&password=s3cret&x=1"),
            "postgres://db/mirror?user=app&password=***&x=1"
        );
        assert_eq!(
            redact_url("host=db user=app password='se cr\\'et' dbname=m"),
            "host=db user=app password=*** dbname=m"
        );
        assert_eq!(redact_url("host=db password=s3cret"), "host=db password=***");
        // Nothing to hide: unchanged (and `old_password=` is not a password parameter).
        assert_eq!(redact_url("postgres://app@db/mirror"), "postgres://app@db/mirror");
        assert_eq!(redact_url("host=db old_password=x"), "host=db old_password=x");
    }

    #[test]
    fn a_server_elsewhere_gets_verified_tls_and_this_machine_plain_unless_asked() {
        let policy = |url: &str| PgSettings::from_url(url).unwrap().target().unwrap().tls;
        assert_eq!(policy("postgres://postgres@127.0.0.1:5432/test"), Tls::Plain);
        assert_eq!(policy("postgres://postgres@localhost/test"), Tls::Plain);
        assert_eq!(policy("postgres://postgres@db.example.com/test"), Tls::Rustls);
        // `prefer` (the driver's default) could be downgraded by whoever is on the path.
        assert_eq!(policy("postgres://postgres@db.example.com/test?sslmode=prefer"), Tls::Rustls);
        assert_eq!(policy("postgres://postgres@db.example.com/test?sslmode=disable"), Tls::Plain);
        assert_eq!(policy("postgres://postgres@127.0.0.1/test?sslmode=require"), Tls::Rustls);
    }

    #[test]
    fn a_bad_database_url_is_refused_at_start_with_the_password_hidden() {
        let error = PgSettings::from_url("postgres://app:s3cret@db:notaport/mirror").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("DATABASE_URL") && text.contains("app:***@db"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!error.is_retryable());
    }
}
