//! `mirror-map`: Mirror's Map Editor, a desktop app (eframe/egui) over `mirror-sdk`.
//!
//! - [`MapDoc`] is the engine's configuration as an editable TOML document (comments and
//!   layout kept) and the copy map read from it; no I/O.
//! - [`validate`] checks a map before it is applied; [`changes`] and [`hunks`] say what an
//!   edit changes against the engine's configuration.
//! - [`Backend`] runs the SDK on a thread of its own (read the configuration, apply one).
//! - [`MapApp`] draws the map as a node graph and edits it, with undo/redo, TOML import and
//!   export, and a confirmed live apply.

#![warn(missing_docs)]

mod app;
mod backend;
mod diff;
mod doc;
mod graph;
mod validate;

pub use app::{Connection, ConnectionForm, MapApp, RulesForm, UNDO_MAX};
pub use backend::{Backend, REPLIES_CAPACITY, REQUEST_TIMEOUT, REQUESTS_CAPACITY, Reply, Request};
pub use diff::{Change, LineKind, changes, hunks, line_diff};
pub use doc::{
    CopyMap, DocError, Link, LinkRules, MapDoc, MapEntry, Node, NodeKind, Protection, Sides, Sizing, SizingMode,
};
pub use graph::{GraphAction, GraphView, Marks, NODE_SIZE, Selection};
pub use mirror_desk::Profile;
pub use validate::{Finding, Severity, validate};

/// Where the Map Editor remembers its connections.
pub fn default_path() -> Option<std::path::PathBuf> {
    mirror_desk::default_path("map.toml")
}
