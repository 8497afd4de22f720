//! `mirror-logs`: Mirror's Log Viewer.
//!
//! - A live tail of the engine's log lines over QUIC (`mirror-sdk`), with account names from
//!   the accounts topic and each line's fan-out hop (copied, accepted, filled, skipped,
//!   rejected) read from the orders, fills and copy-status events of the same audit record.
//! - The engine's JSON log files, opened offline; unreadable lines are counted and shown.
//! - Filters by level, account, signal, text and time range, combined, applied to an index of
//!   passing lines that grows as lines arrive and is rebuilt only when a filter changes.
//! - One signal's fan-out timeline, per follower, relative to the first hop seen.
//! - CSV export (RFC 4180) of the filtered rows.
//!
//! The model ([`LogStore`], [`FilteredIndex`], [`Timeline`], [`LiveFold`], the reader and the
//! CSV writer) knows nothing of the UI; [`LogsApp`] draws it with egui.

#![warn(missing_docs)]

mod app;
mod live;
mod model;
mod net;
mod settings;

pub use app::{AppOptions, EVENTS_PER_FRAME, LogsApp};
pub use live::{Gap, LiveFold};
pub use model::csv::{
    HEADER as CSV_HEADER, export as export_csv, write_field as write_csv_field, write_record as write_csv_record,
};
pub use model::filter::{Filter, FilteredIndex};
pub use model::jsonlog::{LINE_LEN_MAX, ReadSummary, parse_line, read_json_lines};
pub use model::line::{Hop, HopKind, Level, Line};
pub use model::store::{DEFAULT_CAPACITY, LogStore, Unreadable};
pub use model::time::{TimeBound, clock_text, duration_text, iso_text, parse_datetime};
pub use model::timeline::{Clock, FollowerHops, HopAt, Timeline};
pub use net::{
    CONNECT_TIMEOUT, ConnState, ConnectionSpec, EVENTS, KEEP_ALIVE, NetEvent, NetHandle, STREAM_TIMEOUT, TOPICS, tune,
};
pub use settings::{REMEMBERED_MAX, Remembered, Settings};
