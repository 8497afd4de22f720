//! Logging: human-readable lines on stdout (above the status line) and JSON lines in a
//! rotating file.

use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use super::Console;

/// Where and how to log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// Folder of the JSON log files.
    pub dir: PathBuf,
    /// Level filter for stdout (`RUST_LOG` overrides it), e.g. `info` or `mirror_engine=debug`.
    pub level: String,
    /// Level filter for the JSON file.
    pub file_level: String,
    /// `hourly` or `daily` rotation.
    pub rotation: String,
    /// Files kept; older ones are deleted.
    pub max_files: usize,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("logs"),
            level: "info".into(),
            file_level: "debug".into(),
            rotation: "hourly".into(),
            max_files: 48,
        }
    }
}

/// Keeps the file writer flushing; drop it last.
#[derive(Debug)]
pub struct LogGuard {
    _file: WorkerGuard,
    /// The folder the JSON logs go to.
    pub dir: PathBuf,
}

/// Installs the global subscriber: stdout through `console`, JSON lines to a rotating file.
pub fn init_logging(settings: &LoggingSettings, console: Console) -> anyhow::Result<LogGuard> {
    let rotation = match settings.rotation.as_str() {
        "hourly" => Rotation::HOURLY,
        "daily" => Rotation::DAILY,
        "minutely" => Rotation::MINUTELY,
        other => anyhow::bail!("logging.rotation must be hourly, daily or minutely, not `{other}`"),
    };
    std::fs::create_dir_all(&settings.dir)
        .map_err(|e| anyhow::anyhow!("cannot create the log folder {}: {e}", settings.dir.display()))?;
    let appender = RollingFileAppender::builder()
        .rotation(rotation)
        .filename_prefix("mirror")
        .filename_suffix("jsonl")
        .max_log_files(settings.max_files.max(1))
        .build(&settings.dir)?;
    // Lossy: when the disk falls 128k lines behind, lines are dropped rather than stalling
    // the telemetry thread; the engine's counters are unaffected.
    let (file_writer, file_guard) = tracing_appender::non_blocking(appender);
    let stdout_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let file_filter = EnvFilter::new(&settings.file_level);
    let stdout_layer = tracing_subscriber::fmt::layer()
        .with_writer(console.clone())
        .with_ansi(console.is_tty())
        .with_target(false)
        .compact()
        .with_filter(stdout_filter);
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_writer(file_writer)
        .with_filter(file_filter);
    tracing_subscriber::registry().with(stdout_layer).with(file_layer).try_init()?;
    Ok(LogGuard { _file: file_guard, dir: settings.dir.clone() })
}

use tracing_subscriber::Layer as _;
