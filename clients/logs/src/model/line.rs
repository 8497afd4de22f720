//! One log line as the viewer holds it, whether it came over the state stream or from a file.

/// Severity, from both sources: the stream carries debug, info and warn; files all five.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error];

    /// `INFO`, as tracing spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trace => "TRACE",
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }

    /// Reads `INFO`, `info`, `Info`.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|level| level.name().eq_ignore_ascii_case(text.trim()))
    }
}

impl From<mirror_sdk::LogLevel> for Level {
    fn from(level: mirror_sdk::LogLevel) -> Self {
        match level {
            mirror_sdk::LogLevel::Debug => Self::Debug,
            mirror_sdk::LogLevel::Info => Self::Info,
            mirror_sdk::LogLevel::Warn => Self::Warn,
        }
    }
}

/// What a line says happened to a signal on one follower: a hop of its fan-out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HopKind {
    /// The copy order was made and handed to the follower's connector.
    Copied,
    /// A closing order was handed to the connector.
    Closing,
    /// A close that never reached the broker was sent again.
    Resent,
    /// The broker acknowledged the order.
    Accepted,
    /// Part of the order filled.
    PartlyFilled,
    /// The order filled.
    Filled,
    /// Not copied to this follower (a rule; the reason is given).
    Skipped,
    /// The broker refused the order (its reason is given).
    Rejected,
    /// The order never reached the broker.
    NotSent,
    /// Cancelled.
    Cancelled,
    /// Expired.
    Expired,
    /// The broker's answer is unknown; kept in flight until reconciliation.
    Unknown,
    /// The engine took the signal itself (a line of no account): the timeline's +0.
    SignalTaken,
    /// The engine refused the signal before any follower saw it (the reason is given).
    SignalRefused,
}

impl HopKind {
    /// A short label for the timeline.
    pub fn label(self) -> &'static str {
        match self {
            Self::Copied => "copied",
            Self::Closing => "closing",
            Self::Resent => "sent again",
            Self::Accepted => "accepted",
            Self::PartlyFilled => "partly filled",
            Self::Filled => "filled",
            Self::Skipped => "skipped",
            Self::Rejected => "rejected",
            Self::NotSent => "never sent",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Unknown => "outcome unknown",
            Self::SignalTaken => "signal taken",
            Self::SignalRefused => "signal refused",
        }
    }

    /// Whether this hop ends the copy badly (drawn in red).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Rejected | Self::NotSent | Self::Unknown | Self::Expired | Self::SignalRefused)
    }
}

/// A classified hop on a line, with the reason when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// What happened.
    pub kind: HopKind,
    /// The broker's or the rule's reason, or empty.
    pub detail: Box<str>,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Wall-clock time, Unix ns: written by the engine in files; for live lines the engine's
    /// monotonic time placed on the wall clock (see [`crate::LiveFold`]).
    pub unix_ns: i64,
    /// The engine's monotonic time of the audit record, ns (live lines only).
    pub mono_ns: Option<u64>,
    /// Severity.
    pub level: Level,
    /// The account's key in its store (engine id for live lines, an interned name for files).
    pub account: Option<u32>,
    /// The signal, or 0.
    pub signal: u64,
    /// The text.
    pub text: Box<str>,
    /// The fan-out hop the line records, if any.
    pub hop: Option<Hop>,
}

impl Line {
    /// The time the timeline measures with: the monotonic time when the line has one, the wall
    /// clock otherwise.
    pub fn timeline_ns(&self) -> i64 {
        match self.mono_ns {
            Some(mono) => i64::try_from(mono).unwrap_or(i64::MAX),
            None => self.unix_ns,
        }
    }
}
