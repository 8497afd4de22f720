//! `mirror-manager`: Mirror's Trading Manager, a desktop app (eframe/egui) over `mirror-sdk`.
//!
//! - [`Model`] is the state folded from the SDK's state stream (snapshot, then deltas), with
//!   what the app derives over time (P&L today, drawdown, equity and latency histories, copy
//!   status per signal, alerts), every history bounded. No I/O and no clock reads.
//! - [`Backend`] runs the SDK on a tokio runtime in a thread of its own; the UI exchanges with
//!   it through bounded queues and never waits on the network.
//! - [`ManagerApp`] draws it and sends the trader's commands after a confirmation.

#![warn(missing_docs)]

mod app;
mod backend;
mod engine_config;
mod format;
mod model;
mod ticket;
mod views;

pub use app::{
    Confirm, ConnectionForm, DetailTab, ManagerApp, OUTCOMES_PER_FRAME, SortColumn, TableView, TicketStatus,
    TicketView, UPDATES_PER_FRAME, system_clock,
};
pub use backend::{
    Answer, Backend, COMMAND_TIMEOUT, COMMANDS_CAPACITY, Command, CommandError, ConnState, OUTCOMES_CAPACITY, Outcome,
    PING_INTERVAL, PING_TIMEOUT, RECONNECT_MAX, UPDATES_CAPACITY,
};
pub use mirror_desk::{Profile, REMEMBERED_MAX, Remembered};

/// Where the Trading Manager remembers its connections.
pub fn default_path() -> Option<std::path::PathBuf> {
    mirror_desk::default_path("manager.toml")
}
pub use engine_config::{AccountFacts, EngineFacts, FactsError, Limits};
pub use model::{
    ALERTS_MAX, AccountRow, Alert, AlertKind, CopyCounts, EQUITY_POINTS_MAX, EQUITY_SAMPLE_MS, FINISHED_ORDERS_MAX,
    Health, LATENCY_POINTS_MAX, LOG_LINES_MAX, LatencyPoint, Model, NEAR_LIMIT_PCT, PENDING_FILLS_MAX, REARM_PCT,
    SIGNALS_KEPT, SignalCopy,
};
pub use ticket::{Kind as TicketKind, TicketForm};
