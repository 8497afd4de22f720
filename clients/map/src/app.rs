//! The Map Editor's window: connection bar, toolbar (undo/redo, import/export, apply), the
//! graph, the side panel (a new link by name; the selected link's rules or node's facts) and
//! the bottom panel (problems found; changes against the engine's configuration).

use std::path::{Path, PathBuf};

use egui::{RichText, Ui};
use mirror_desk::{Profile, Remembered};
use mirror_sdk::Role;

use crate::backend::{Backend, Reply, Request};
use crate::diff::{Change, changes, hunks};
use crate::doc::{LinkRules, MapDoc, MapEntry, NodeKind, Protection, Sides, SizingMode};
use crate::graph::{GraphAction, GraphView, Marks, Selection};
use crate::validate::{Finding, Severity, validate};

/// Undo steps kept (each is one configuration text, a few tens of kilobytes at most).
pub const UNDO_MAX: usize = 200;

mod palette {
    use egui::Color32;
    pub(super) const RED: Color32 = Color32::from_rgb(230, 80, 70);
    pub(super) const AMBER: Color32 = Color32::from_rgb(230, 170, 60);
    pub(super) const GREEN: Color32 = Color32::from_rgb(90, 200, 110);
    pub(super) const DIM: Color32 = Color32::from_gray(150);
}

/// Where the connection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    /// No engine: editing a file, or nothing yet.
    Offline,
    /// Connecting.
    Connecting,
    /// Connected.
    Connected {
        /// The token's role (apply needs admin).
        role: Role,
        /// The engine's version.
        server: String,
    },
    /// The last attempt or request failed.
    Failed(String),
}

/// The connection bar's fields and the remembered connections.
#[derive(Clone, Debug, Default)]
pub struct ConnectionForm {
    /// What the bar shows.
    pub profile: Profile,
    /// Remembered connections.
    pub remembered: Remembered,
    /// Where they are kept.
    pub path: Option<PathBuf>,
}

/// The rules form of the selected link, as the user types it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RulesForm {
    /// The link, by index.
    pub link: usize,
    /// Rules other than the lists below.
    pub rules: LinkRules,
    /// `allow`, comma-separated.
    pub allow: String,
    /// `deny`, comma-separated.
    pub deny: String,
}

impl RulesForm {
    fn new(link: usize, rules: &LinkRules) -> Self {
        Self { link, rules: rules.clone(), allow: rules.allow.join(", "), deny: rules.deny.join(", ") }
    }

    /// The rules as the form now says.
    pub fn rules(&self) -> LinkRules {
        let list = |text: &str| -> Vec<String> {
            text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        };
        LinkRules { allow: list(&self.allow), deny: list(&self.deny), ..self.rules.clone() }
    }
}

/// One edit that can be undone: the text before it.
#[derive(Clone, Debug)]
struct Step {
    what: String,
    text: String,
}

/// The Map Editor.
pub struct MapApp {
    /// The connection bar.
    pub connection: ConnectionForm,
    backend: Option<Backend>,
    state: Connection,
    /// The configuration being edited.
    doc: Option<MapDoc>,
    /// The engine's configuration in force, when connected.
    running: Option<MapDoc>,
    findings: Vec<Finding>,
    changes: Vec<Change>,
    undo: Vec<Step>,
    redo: Vec<Step>,
    graph: GraphView,
    form: Option<RulesForm>,
    new_link: (String, String),
    /// The file import and export use.
    pub file: String,
    confirm_apply: bool,
    warnings_read: bool,
    applying: bool,
    bottom: BottomTab,
    messages: Vec<(bool, String)>,
    select_when_read: Option<(String, String)>,
    /// Counts edits of the map (the graph keeps its layout while it is unchanged).
    generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BottomTab {
    Problems,
    Changes,
}

impl MapApp {
    /// An editor with remembered connections from `path` (the most recent one in the bar).
    pub fn new(path: Option<PathBuf>) -> Self {
        let mut connection = ConnectionForm { path: path.clone(), ..ConnectionForm::default() };
        let mut messages = Vec::new();
        if let Some(path) = &path {
            match Remembered::load(path) {
                Ok(remembered) => connection.remembered = remembered,
                Err(problem) => messages.push((false, format!("remembered connections: {problem}"))),
            }
        }
        if let Some(first) = connection.remembered.connections.first() {
            connection.profile = first.clone();
        }
        Self {
            connection,
            backend: None,
            state: Connection::Offline,
            doc: None,
            running: None,
            findings: Vec::new(),
            changes: Vec::new(),
            undo: Vec::new(),
            redo: Vec::new(),
            graph: GraphView::default(),
            form: None,
            new_link: (String::new(), String::new()),
            file: "mirror-map.toml".into(),
            confirm_apply: false,
            warnings_read: false,
            applying: false,
            bottom: BottomTab::Problems,
            messages,
            select_when_read: None,
            generation: 0,
        }
    }

    /// Connects with the token from the profile's environment variable.
    pub fn connect(&mut self, repaint: Option<egui::Context>) {
        match self.connection.profile.token() {
            Ok(token) => self.connect_with_token(token, repaint),
            Err(problem) => self.state = Connection::Failed(format!("token: {problem}")),
        }
    }

    /// Connects with this token (for programs that hold it, such as tests); the profile is
    /// remembered with its variable's name only.
    pub fn connect_with_token(&mut self, token: String, repaint: Option<egui::Context>) {
        let profile = self.connection.profile.clone();
        let wake = repaint.map(|ctx| -> std::sync::Arc<dyn Fn() + Send + Sync> {
            std::sync::Arc::new(move || ctx.request_repaint())
        });
        self.backend = None;
        match Backend::start(profile.clone(), token, wake) {
            Ok(backend) => {
                self.backend = Some(backend);
                self.state = Connection::Connecting;
                self.connection.remembered.remember(profile);
                if let Some(path) = &self.connection.path
                    && let Err(problem) = self.connection.remembered.save(path)
                {
                    self.note(false, format!("remembered connections not saved: {problem}"));
                }
            }
            Err(problem) => self.state = Connection::Failed(problem),
        }
    }

    /// Where the connection stands.
    pub fn connection_state(&self) -> &Connection {
        &self.state
    }

    /// The configuration being edited.
    pub fn doc(&self) -> Option<&MapDoc> {
        self.doc.as_ref()
    }

    /// The engine's configuration in force.
    pub fn running(&self) -> Option<&MapDoc> {
        self.running.as_ref()
    }

    /// What validation found in the edited map.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// What the edited map changes against the engine's.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Messages shown in the status line, oldest first (`true`: it went well).
    pub fn messages(&self) -> &[(bool, String)] {
        &self.messages
    }

    /// Opens a configuration file to edit (without an engine, or to import into the edit).
    pub fn open_file(&mut self, path: &Path) {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.file = path.display().to_string();
                self.replace_text(&format!("import {}", path.display()), &text);
            }
            Err(error) => self.note(false, format!("{}: {error}", path.display())),
        }
    }

    fn note(&mut self, ok: bool, message: String) {
        self.messages.push((ok, message));
        if self.messages.len() > 50 {
            self.messages.remove(0);
        }
    }

    /// Replaces the whole edited text (import, discard), as one undoable step.
    fn replace_text(&mut self, what: &str, text: &str) {
        match MapDoc::parse(text) {
            Ok(doc) => {
                if let Some(old) = self.doc.replace(doc) {
                    self.push_undo(what, old.text().to_owned());
                }
                self.after_edit();
                self.note(true, format!("{what}: done"));
            }
            Err(error) => self.note(false, format!("{what}: {error}")),
        }
    }

    fn push_undo(&mut self, what: &str, text: String) {
        self.undo.push(Step { what: what.to_owned(), text });
        if self.undo.len() > UNDO_MAX {
            self.undo.remove(0);
        }
        self.redo.clear();
    }

    /// Makes one edit of the document as one undoable step.
    fn edit<T>(&mut self, what: &str, change: impl FnOnce(&mut MapDoc) -> Result<T, crate::DocError>) -> Option<T> {
        let doc = self.doc.as_mut()?;
        let before = doc.text().to_owned();
        match change(doc) {
            Ok(value) => {
                if doc.text() != before {
                    self.push_undo(what, before);
                }
                self.after_edit();
                Some(value)
            }
            Err(error) => {
                self.note(false, format!("{what}: {error}"));
                None
            }
        }
    }

    /// Adds a link (as drawing one in the graph does).
    pub fn add_link(&mut self, leader: &str, follower: &str) -> Option<usize> {
        let index = self.edit(&format!("link {leader} -> {follower}"), |doc| doc.add_link(leader, follower))?;
        self.select(Selection::Link(index));
        Some(index)
    }

    /// Selects the link `leader -> follower` (now, or once a configuration is read).
    pub fn select_link(&mut self, leader: &str, follower: &str) {
        self.select_when_read = Some((leader.to_owned(), follower.to_owned()));
        self.select_pending();
    }

    fn select_pending(&mut self) {
        let Some((leader, follower)) = &self.select_when_read else { return };
        let found = self
            .doc
            .as_ref()
            .and_then(|d| d.map().links.iter().position(|l| l.leader == *leader && l.follower == *follower));
        if let Some(index) = found {
            self.select_when_read = None;
            self.select(Selection::Link(index));
        }
    }

    /// Undoes the last edit.
    pub fn undo(&mut self) {
        self.step_history(true);
    }

    /// Redoes the last undone edit.
    pub fn redo(&mut self) {
        self.step_history(false);
    }

    fn step_history(&mut self, back: bool) {
        let (from, to) = if back { (&mut self.undo, &mut self.redo) } else { (&mut self.redo, &mut self.undo) };
        let Some(step) = from.pop() else { return };
        let Some(doc) = self.doc.as_ref() else { return };
        to.push(Step { what: step.what.clone(), text: doc.text().to_owned() });
        match MapDoc::parse(&step.text) {
            Ok(doc) => {
                self.doc = Some(doc);
                self.after_edit();
                self.note(true, format!("{} {}", if back { "undone:" } else { "redone:" }, step.what));
            }
            Err(error) => self.note(false, format!("history: {error}")),
        }
    }

    fn after_edit(&mut self) {
        self.generation += 1;
        let Some(doc) = &self.doc else { return };
        self.findings = validate(doc.map());
        self.changes = match &self.running {
            Some(running) => changes(running.map(), running.text(), doc.map(), doc.text()),
            None => Vec::new(),
        };
        // A selection the edit took away goes; the rules form shows the link as it now is.
        let gone = match &self.graph.selection {
            Selection::Link(index) => *index >= doc.map().links.len(),
            Selection::Node(name) => doc.map().node(name).is_none(),
            Selection::None => false,
        };
        let form = self
            .form
            .as_ref()
            .and_then(|form| doc.map().links.get(form.link).map(|link| RulesForm::new(form.link, &link.rules)));
        self.form = form;
        if gone {
            self.select(Selection::None);
        }
        self.select_pending();
    }

    fn select(&mut self, selection: Selection) {
        self.form = match (&selection, &self.doc) {
            (Selection::Link(index), Some(doc)) => {
                doc.map().links.get(*index).map(|l| RulesForm::new(*index, &l.rules))
            }
            _ => None,
        };
        self.graph.selection = selection;
    }

    fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }

    fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Warning).count()
    }

    /// Whether the edit differs from the engine's configuration.
    pub fn has_changes(&self) -> bool {
        match (&self.doc, &self.running) {
            (Some(doc), Some(running)) => doc.text() != running.text(),
            _ => false,
        }
    }

    fn drain(&mut self) {
        let Some(backend) = &self.backend else { return };
        for reply in backend.replies() {
            match reply {
                Reply::Connected { role, server } => {
                    if role < Role::Admin {
                        self.note(false, format!("connected as {role:?}: applying needs an admin token"));
                    }
                    self.state = Connection::Connected { role, server };
                }
                Reply::Config(text) => self.engine_config(&text),
                Reply::Applied => {
                    self.applying = false;
                    let summary = self.changes.len();
                    self.note(true, format!("applied live: {summary} change(s) in force"));
                }
                Reply::Refused(message) => {
                    self.applying = false;
                    self.note(false, format!("the engine refused it: {message}"));
                    self.bottom = BottomTab::Problems;
                }
                Reply::Failed { message, unknown } => {
                    self.applying = false;
                    if !unknown && !matches!(self.state, Connection::Connected { .. }) {
                        self.state = Connection::Failed(message.clone());
                    }
                    self.note(false, message);
                }
            }
        }
    }

    /// The engine's configuration arrived: it becomes what edits are compared with, and the
    /// edit itself when there was none or it had no changes of its own.
    fn engine_config(&mut self, text: &str) {
        let running = match MapDoc::parse(text) {
            Ok(running) => running,
            Err(error) => {
                self.note(false, format!("the engine's configuration does not read: {error}"));
                return;
            }
        };
        let unedited = match (&self.doc, &self.running) {
            (None, _) => true,
            (Some(doc), Some(old)) => doc.text() == old.text(),
            (Some(_), None) => false,
        };
        self.running = Some(running.clone());
        if unedited {
            self.doc = Some(running);
            self.note(true, "read the engine's configuration".into());
        } else if !self.has_changes() {
            self.note(true, "read the engine's configuration: it is the edit".into());
        } else {
            self.note(true, "read the engine's configuration; your edits are kept (see Changes)".into());
        }
        self.after_edit();
    }

    /// Draws the editor.
    pub fn show(&mut self, ui: &mut Ui) {
        self.drain();
        if self.backend.is_some() {
            ui.ctx().request_repaint_after(std::time::Duration::from_millis(250));
        }
        self.connection_bar(ui);
        self.toolbar(ui);
        self.bottom_panel(ui);
        self.side_panel(ui);
        egui::CentralPanel::default().show(ui, |ui| self.graph_view(ui));
        self.apply_dialog(ui);
    }

    fn connection_bar(&mut self, ui: &mut Ui) {
        egui::Panel::top("connection").show(ui, |ui| {
            ui.horizontal(|ui| {
                let (colour, words) = match &self.state {
                    Connection::Offline => (palette::DIM, "offline".to_owned()),
                    Connection::Connecting => (palette::AMBER, "connecting…".to_owned()),
                    Connection::Connected { role, server } => {
                        (palette::GREEN, format!("connected as {role:?} · engine {server}"))
                    }
                    Connection::Failed(reason) => (palette::RED, format!("failed: {reason}")),
                };
                ui.label(RichText::new(words).color(colour).strong());
                ui.separator();
                field(ui, "Server", &mut self.connection.profile.address, 130.0);
                field(ui, "Fingerprint", &mut self.connection.profile.fingerprint, 150.0)
                    .on_hover_text("SHA-256 of the gateway's certificate, as the engine prints it");
                field(ui, "Token variable", &mut self.connection.profile.token_env, 200.0)
                    .on_hover_text("The environment variable holding the token; the token itself is never stored");
                if ui.button(if self.backend.is_some() { "Reconnect" } else { "Connect" }).clicked() {
                    self.connect(Some(ui.ctx().clone()));
                }
                let remembered = self.connection.remembered.connections.clone();
                egui::ComboBox::new("remembered", "Remembered")
                    .selected_text(format!("{} saved", remembered.len()))
                    .show_ui(ui, |ui| {
                        for profile in remembered {
                            let text = format!("{}  ·  ${}", profile.address, profile.token_env);
                            if ui.selectable_label(self.connection.profile == profile, text).clicked() {
                                self.connection.profile = profile;
                            }
                        }
                    });
            });
        });
    }

    fn toolbar(&mut self, ui: &mut Ui) {
        egui::Panel::top("toolbar").show(ui, |ui| {
            ui.horizontal(|ui| {
                let undo_text = self.undo.last().map(|s| format!("Undo {}", s.what));
                if ui
                    .add_enabled(undo_text.is_some(), egui::Button::new("Undo"))
                    .on_hover_text(undo_text.unwrap_or_default())
                    .clicked()
                    || ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Z))
                {
                    self.undo();
                }
                let redo_text = self.redo.last().map(|s| format!("Redo {}", s.what));
                if ui
                    .add_enabled(redo_text.is_some(), egui::Button::new("Redo"))
                    .on_hover_text(redo_text.unwrap_or_default())
                    .clicked()
                    || ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Y))
                {
                    self.redo();
                }
                if ui.button("Arrange").on_hover_text("Put every node back in its column").clicked() {
                    self.graph.arrange();
                }
                ui.separator();
                field(ui, "File", &mut self.file, 220.0);
                if ui.button("Import").on_hover_text("Replace the edit with this TOML file (undoable)").clicked() {
                    let path = PathBuf::from(self.file.trim());
                    self.open_file(&path);
                }
                if ui
                    .add_enabled(self.doc.is_some(), egui::Button::new("Export"))
                    .on_hover_text("Write the edited configuration to this file")
                    .clicked()
                {
                    self.export();
                }
                ui.separator();
                let connected = matches!(self.state, Connection::Connected { role: Role::Admin, .. });
                if ui.add_enabled(self.backend.is_some(), egui::Button::new("Re-read engine")).clicked()
                    && let Some(backend) = &self.backend
                    && let Err(problem) = backend.send(Request::ReadConfig)
                {
                    self.note(false, problem);
                }
                if ui
                    .add_enabled(self.has_changes(), egui::Button::new("Discard edits"))
                    .on_hover_text("Back to the engine's configuration (undoable)")
                    .clicked()
                    && let Some(running) = self.running.as_ref().map(|r| r.text().to_owned())
                {
                    self.replace_text("discard edits", &running);
                }
                let errors = self.errors();
                let ready = connected && self.has_changes() && errors == 0 && !self.applying;
                let why = if !connected {
                    "connect with an admin token to apply".to_owned()
                } else if errors > 0 {
                    format!("fix {errors} error(s) first")
                } else if !self.has_changes() {
                    "nothing to apply: the edit is what the engine runs".to_owned()
                } else {
                    "review the changes, then apply them live".to_owned()
                };
                if ui
                    .add_enabled(ready, egui::Button::new(RichText::new("Apply to engine…").strong()))
                    .on_hover_text(&why)
                    .on_disabled_hover_text(&why)
                    .clicked()
                {
                    self.confirm_apply = true;
                    self.warnings_read = self.warnings() == 0;
                }
                ui.separator();
                let (colour, words) = if self.applying {
                    (palette::AMBER, "applying…".to_owned())
                } else if errors > 0 {
                    (palette::RED, format!("{errors} error(s)"))
                } else if self.running.is_none() {
                    (palette::DIM, "not compared with an engine".to_owned())
                } else if self.has_changes() {
                    (palette::AMBER, format!("{} change(s) not applied", self.changes.len().max(1)))
                } else {
                    (palette::GREEN, "in step with the engine".to_owned())
                };
                ui.label(RichText::new(words).color(colour).strong());
            });
        });
    }

    fn export(&mut self) {
        let Some(doc) = &self.doc else { return };
        let path = PathBuf::from(self.file.trim());
        let temporary = path.with_extension("toml.tmp");
        let written = std::fs::write(&temporary, doc.text()).and_then(|()| std::fs::rename(&temporary, &path));
        match written {
            Ok(()) => self.note(true, format!("exported to {}", path.display())),
            Err(error) => self.note(false, format!("{}: {error}", path.display())),
        }
    }

    fn bottom_panel(&mut self, ui: &mut Ui) {
        egui::Panel::bottom("findings").resizable(true).default_size(210.0).show(ui, |ui| {
            ui.horizontal(|ui| {
                let problems = format!("Problems ({} errors, {} warnings)", self.errors(), self.warnings());
                ui.selectable_value(&mut self.bottom, BottomTab::Problems, problems);
                let changed = format!("Changes vs engine ({})", self.changes.len());
                ui.selectable_value(&mut self.bottom, BottomTab::Changes, changed);
                if let Some((ok, message)) = self.messages.last() {
                    ui.separator();
                    ui.label(RichText::new(message).color(if *ok { palette::GREEN } else { palette::RED }));
                }
            });
            ui.separator();
            egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| match self.bottom {
                BottomTab::Problems => {
                    if self.findings.is_empty() {
                        ui.label(RichText::new("No problems found.").color(palette::GREEN));
                    }
                    let mut chosen = None;
                    for finding in &self.findings {
                        let (colour, tag) = match finding.severity {
                            Severity::Error => (palette::RED, "error"),
                            Severity::Warning => (palette::AMBER, "warning"),
                        };
                        let text = RichText::new(format!("{tag}: {}", finding.message)).color(colour);
                        if ui.add(egui::Label::new(text).sense(egui::Sense::click())).clicked() {
                            chosen = finding.link;
                        }
                    }
                    if let Some(link) = chosen {
                        self.select(Selection::Link(link));
                    }
                }
                BottomTab::Changes => {
                    let (Some(doc), Some(running)) = (&self.doc, &self.running) else {
                        ui.label("Not connected: there is no running configuration to compare with.");
                        return;
                    };
                    if self.changes.is_empty() {
                        ui.label(RichText::new("The edit is what the engine runs.").color(palette::GREEN));
                    }
                    for change in &self.changes {
                        ui.label(change.to_string());
                    }
                    ui.separator();
                    for line in hunks(running.text(), doc.text(), 3) {
                        let colour = match line.chars().next() {
                            Some('+') => palette::GREEN,
                            Some('-') => palette::RED,
                            _ => palette::DIM,
                        };
                        ui.label(RichText::new(line).monospace().color(colour));
                    }
                }
            });
        });
    }

    fn side_panel(&mut self, ui: &mut Ui) {
        egui::Panel::right("details").default_size(360.0).resizable(true).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.new_link_form(ui);
                ui.separator();
                match self.graph.selection.clone() {
                    Selection::Link(_) => self.rules_form(ui),
                    Selection::Node(name) => self.node_facts(ui, &name),
                    Selection::None => {
                        ui.label("Drag from a node's right-hand port onto an account to link them; click a link's label to edit its rules.");
                    }
                }
            });
        });
    }

    fn new_link_form(&mut self, ui: &mut Ui) {
        let Some(doc) = &self.doc else {
            ui.label("Connect to an engine, or import a configuration file.");
            return;
        };
        ui.heading("New link");
        let names: Vec<(String, NodeKind)> = doc.map().nodes.iter().map(|n| (n.name.clone(), n.kind)).collect();
        let (mut leader, mut follower) = self.new_link.clone();
        egui::ComboBox::new("new-leader", "Leader").selected_text(&leader).show_ui(ui, |ui| {
            for (name, _) in &names {
                ui.selectable_value(&mut leader, name.clone(), name);
            }
        });
        egui::ComboBox::new("new-follower", "Follower").selected_text(&follower).show_ui(ui, |ui| {
            for (name, kind) in &names {
                if *kind == NodeKind::Account {
                    ui.selectable_value(&mut follower, name.clone(), name);
                }
            }
        });
        self.new_link = (leader.clone(), follower.clone());
        if ui.add_enabled(!leader.is_empty() && !follower.is_empty(), egui::Button::new("Add link")).clicked() {
            self.add_link(&leader, &follower);
        }
    }

    fn node_facts(&self, ui: &mut Ui, name: &str) {
        let Some(doc) = &self.doc else { return };
        let Some(node) = doc.map().node(name) else { return };
        ui.heading(&node.name);
        ui.label(format!("{} · {}", if node.kind == NodeKind::Source { "source" } else { "account" }, node.platform));
        let symbols = node.symbols.as_ref().map_or("every catalog symbol".to_owned(), |s| s.join(", "));
        ui.label(format!("Trades: {symbols}"));
        if !node.groups.is_empty() {
            ui.label(format!("Groups: {}", node.groups.join(", ")));
        }
        for link in doc.map().links.iter().filter(|l| l.leader == name || l.follower == name) {
            ui.label(format!("{} ({})", link.title(), link.rules.sizing.label()));
        }
    }

    fn rules_form(&mut self, ui: &mut Ui) {
        let Some(mut form) = self.form.clone() else { return };
        let Some(link) = self.doc.as_ref().and_then(|d| d.map().links.get(form.link)).cloned() else { return };
        ui.heading(link.title());
        for finding in self.findings.iter().filter(|f| f.link == Some(form.link)) {
            let colour = if finding.severity == Severity::Error { palette::RED } else { palette::AMBER };
            ui.label(RichText::new(&finding.message).color(colour));
        }
        egui::Grid::new("rules").num_columns(2).spacing([10.0, 6.0]).show(ui, |ui| {
            ui.label("Paused");
            ui.checkbox(&mut form.rules.paused, "no new opens copied");
            ui.end_row();
            ui.label("Sizing");
            egui::ComboBox::new("sizing-mode", "mode").selected_text(form.rules.sizing.mode.name()).show_ui(ui, |ui| {
                for mode in SizingMode::ALL {
                    ui.selectable_value(&mut form.rules.sizing.mode, mode, mode.name());
                }
            });
            ui.end_row();
            let (parameter, optional) = form.rules.sizing.mode.parameter();
            field_row(
                ui,
                &format!("Sizing {parameter}{}", if optional { " (optional)" } else { "" }),
                &mut form.rules.sizing.value,
            );
            ui.label("Reverse");
            ui.checkbox(&mut form.rules.reverse, "buy becomes sell");
            ui.end_row();
            ui.label("Sides");
            egui::ComboBox::new("sides", "copied").selected_text(form.rules.sides.name()).show_ui(ui, |ui| {
                for sides in Sides::ALL {
                    ui.selectable_value(&mut form.rules.sides, sides, sides.name());
                }
            });
            ui.end_row();
            field_row(ui, "Allow", &mut form.allow);
            field_row(ui, "Deny", &mut form.deny);
            field_row(ui, "Max qty", &mut form.rules.max_qty);
            protection_row(ui, "Stop loss", &mut form.rules.stop_loss);
            protection_row(ui, "Take profit", &mut form.rules.take_profit);
        });
        ui.label(RichText::new("Symbol map (leader -> follower, ratio)").strong());
        let mut remove = None;
        for (n, entry) in form.rules.symbol_map.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut entry.from).desired_width(70.0).hint_text("ES"));
                ui.label("->");
                ui.add(egui::TextEdit::singleline(&mut entry.to).desired_width(70.0).hint_text("MES"));
                ui.add(egui::TextEdit::singleline(&mut entry.ratio).desired_width(50.0).hint_text("1"));
                if ui.small_button("Remove").on_hover_text("Remove this entry").clicked() {
                    remove = Some(n);
                }
            });
        }
        if let Some(n) = remove {
            form.rules.symbol_map.remove(n);
        }
        if ui.small_button("Add symbol").clicked() {
            form.rules.symbol_map.push(MapEntry::default());
        }
        if !link.other_keys.is_empty() {
            ui.label(
                RichText::new(format!("Also set in the file (kept as is): {}", link.other_keys.join(", ")))
                    .color(palette::DIM),
            );
        }
        let edited = form.rules() != link.rules;
        ui.horizontal(|ui| {
            if ui.add_enabled(edited, egui::Button::new("Save rules")).clicked() {
                let rules = form.rules();
                let index = form.link;
                self.edit(&format!("rules of {}", link.title()), |doc| doc.set_rules(index, &rules));
                form = self.form.clone().unwrap_or(form.clone());
            }
            if ui.add_enabled(edited, egui::Button::new("Revert")).clicked() {
                form = RulesForm::new(form.link, &link.rules);
            }
            if ui.button(RichText::new("Remove link").color(palette::RED)).clicked() {
                let index = form.link;
                self.edit(&format!("remove {}", link.title()), |doc| doc.remove_link(index));
                self.select(Selection::None);
                return;
            }
            if self.form.is_some() {
                self.form = Some(form.clone());
            }
        });
    }

    fn graph_view(&mut self, ui: &mut Ui) {
        let Some(doc) = &self.doc else {
            ui.centered_and_justified(|ui| ui.label("No configuration yet: connect to an engine, or import a file."));
            return;
        };
        let marks = Marks {
            added: match &self.running {
                Some(running) => doc
                    .map()
                    .links
                    .iter()
                    .filter(|l| !running.map().links.iter().any(|r| r.leader == l.leader && r.follower == l.follower))
                    .map(|l| (l.leader.clone(), l.follower.clone()))
                    .collect(),
                None => Default::default(),
            },
        };
        let (graph, findings, generation) = (&mut self.graph, &self.findings, self.generation);
        let action = egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| graph.show(ui, generation, doc.map(), findings, &marks))
            .inner;
        match action {
            Some(GraphAction::Select(selection)) => self.select(selection),
            Some(GraphAction::Connect { leader, follower }) => {
                self.add_link(&leader, &follower);
            }
            None => {}
        }
    }

    fn apply_dialog(&mut self, ui: &mut Ui) {
        if !self.confirm_apply {
            return;
        }
        let mut decided = None;
        let warnings: Vec<String> =
            self.findings.iter().filter(|f| f.severity == Severity::Warning).map(|f| f.message.clone()).collect();
        egui::Modal::new(egui::Id::unique("apply")).show(ui.ctx(), |ui| {
            ui.set_max_width(640.0);
            ui.heading("Apply these changes live?");
            ui.label("The engine applies the whole configuration or none of it; links, risk limits and groups change while it runs.");
            ui.add_space(6.0);
            for change in &self.changes {
                ui.label(RichText::new(change.to_string()).strong());
            }
            if !warnings.is_empty() {
                ui.add_space(6.0);
                for warning in &warnings {
                    ui.label(RichText::new(format!("warning: {warning}")).color(palette::AMBER));
                }
                ui.checkbox(&mut self.warnings_read, format!("I have read the {} warning(s)", warnings.len()));
            }
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                if ui.add_enabled(self.warnings_read, egui::Button::new(RichText::new("Apply live").strong())).clicked() {
                    decided = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decided = Some(false);
                }
            });
        });
        match decided {
            Some(true) => {
                self.confirm_apply = false;
                let (Some(doc), Some(backend)) = (&self.doc, &self.backend) else { return };
                match backend.send(Request::Apply(doc.text().to_owned())) {
                    Ok(()) => self.applying = true,
                    Err(problem) => self.note(false, problem),
                }
            }
            Some(false) => self.confirm_apply = false,
            None => {}
        }
    }
}

impl eframe::App for MapApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}

fn field(ui: &mut Ui, label: &str, value: &mut String, width: f32) -> egui::Response {
    let label = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(width)).labelled_by(label.id)
}

fn field_row(ui: &mut Ui, label: &str, value: &mut String) {
    field(ui, label, value, 150.0);
    ui.end_row();
}

fn protection_row(ui: &mut Ui, label: &str, protection: &mut Protection) {
    ui.label(label);
    ui.horizontal(|ui| {
        let mut kind = match protection {
            Protection::Copy => 0,
            Protection::None => 1,
            Protection::Distance(_) => 2,
        };
        let before = kind;
        ui.selectable_value(&mut kind, 0, "copy");
        ui.selectable_value(&mut kind, 1, "none");
        ui.selectable_value(&mut kind, 2, "distance");
        if kind != before {
            *protection = match kind {
                0 => Protection::Copy,
                1 => Protection::None,
                _ => Protection::Distance(String::new()),
            };
        }
        if let Protection::Distance(distance) = protection {
            ui.add(egui::TextEdit::singleline(distance).desired_width(70.0).hint_text("0.0020"));
        }
    });
    ui.end_row();
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[[sources]]\nname = \"algo\"\n\n[[accounts]]\nname = \"f1\"\nplatform = \"sim\"\n\n[[accounts]]\nname = \"f2\"\nplatform = \"sim\"\n";

    #[test]
    fn edits_undo_and_redo_one_step_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("map.toml");
        std::fs::write(&file, TEXT).unwrap();
        let mut app = MapApp::new(None);
        app.open_file(&file);
        assert_eq!(app.doc().unwrap().text(), TEXT);
        app.add_link("algo", "f1").unwrap();
        app.add_link("algo", "f2").unwrap();
        assert_eq!(app.doc().unwrap().map().links.len(), 2);
        assert_eq!(app.add_link("algo", "f2"), None, "refused");
        assert!(app.messages().last().unwrap().1.contains("already linked"));
        app.undo();
        assert_eq!(app.doc().unwrap().map().links.len(), 1);
        app.undo();
        app.undo();
        assert_eq!(app.doc().unwrap().map().links.len(), 0);
        app.undo();
        assert_eq!(app.doc().unwrap().text(), TEXT, "nothing left to undo: unchanged");
        app.redo();
        app.redo();
        assert_eq!(app.doc().unwrap().map().links.len(), 2);
        // A new edit after an undo drops what could be redone.
        app.undo();
        app.add_link("f1", "f2").unwrap();
        app.redo();
        let titles: Vec<String> = app.doc().unwrap().map().links.iter().map(|l| l.title()).collect();
        assert_eq!(titles, ["algo -> f1", "f1 -> f2"]);
        // Export writes what is edited; import reads it back as one undoable step.
        app.file = dir.path().join("out.toml").display().to_string();
        app.export();
        let exported = std::fs::read_to_string(dir.path().join("out.toml")).unwrap();
        assert_eq!(exported, app.doc().unwrap().text());
        app.open_file(&file);
        assert_eq!(app.doc().unwrap().map().links.len(), 0);
        app.undo();
        assert_eq!(app.doc().unwrap().text(), exported);
        app.open_file(&dir.path().join("missing.toml"));
        assert!(!app.messages().last().unwrap().0, "a missing file is said");
    }

    #[test]
    fn the_rules_form_reads_lists_loosely() {
        let form = RulesForm::new(0, &LinkRules::default());
        let form = RulesForm { allow: "ES, NQ  MES".into(), deny: " ,".into(), ..form };
        assert_eq!(form.rules().allow, ["ES", "NQ", "MES"]);
        assert!(form.rules().deny.is_empty());
    }
}
