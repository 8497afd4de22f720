//! The viewer's model, apart from the UI: lines, their store, filters and the filtered index,
//! a signal's timeline, the log-file reader and the CSV export.

pub(crate) mod csv;
pub(crate) mod filter;
pub(crate) mod jsonlog;
pub(crate) mod line;
pub(crate) mod store;
pub(crate) mod time;
pub(crate) mod timeline;
