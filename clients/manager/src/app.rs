//! The app: the model, the backend, and what the trader sees and does. The UI reads the model
//! and sends commands; it never waits on the network.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use egui::{Color32, RichText};
use mirror_sdk::{ErrorCode, Role};

use crate::backend::{Answer, Backend, Command, ConnState, Outcome};
use crate::engine_config::EngineFacts;
use crate::model::{Health, Model};
use crate::ticket::TicketForm;
use crate::views;
use mirror_desk::{Profile, Remembered};

/// State updates folded per frame at most; the rest wait for the next frame (which is asked
/// for at once).
pub const UPDATES_PER_FRAME: usize = 64;
/// Command outcomes taken per frame at most.
pub const OUTCOMES_PER_FRAME: usize = 16;
/// Recent command outcomes kept for the status line.
pub(crate) const RECENT_OUTCOMES_MAX: usize = 20;

/// Colours that carry meaning.
pub(crate) mod palette {
    use egui::Color32;
    /// Disconnected, refused, at a limit, losses.
    pub(crate) const RED: Color32 = Color32::from_rgb(235, 80, 80);
    /// Paused, near a limit, reconnecting.
    pub(crate) const AMBER: Color32 = Color32::from_rgb(240, 175, 50);
    /// Close-only.
    pub(crate) const ORANGE: Color32 = Color32::from_rgb(250, 130, 40);
    /// Frozen.
    pub(crate) const VIOLET: Color32 = Color32::from_rgb(190, 120, 255);
    /// Connected, gains.
    pub(crate) const GREEN: Color32 = Color32::from_rgb(90, 200, 110);
    /// Secondary text.
    pub(crate) const DIM: Color32 = Color32::from_rgb(150, 150, 150);
}

/// The colour of an account's health.
pub(crate) fn health_colour(health: Health) -> Option<Color32> {
    match health {
        Health::Disconnected | Health::AtLimit => Some(palette::RED),
        Health::Frozen => Some(palette::VIOLET),
        Health::CloseOnly => Some(palette::ORANGE),
        Health::Paused | Health::NearLimit => Some(palette::AMBER),
        Health::Ok => None,
    }
}

/// An action waiting for the trader's confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// The dialog's title.
    pub title: String,
    /// What will happen, in words.
    pub text: String,
    /// What is sent on confirmation.
    pub command: Command,
}

/// Where the ticket stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketStatus {
    /// A field is wrong (checked locally, nothing sent).
    Invalid(String),
    /// Sent as command `id`, waiting for the engine.
    Sending(u64),
    /// Accepted as this signal.
    Accepted(u64),
    /// Refused: the engine's message verbatim, and its code.
    Refused {
        /// The engine's code, when the engine answered.
        code: Option<ErrorCode>,
        /// The message.
        message: String,
    },
}

/// The ticket window.
#[derive(Clone, Debug, Default)]
pub struct TicketView {
    /// Shown.
    pub open: bool,
    /// Its fields.
    pub form: TicketForm,
    /// The latest result.
    pub status: Option<TicketStatus>,
}

/// A sortable column of the accounts table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SortColumn {
    /// Health, worst first (the default).
    Status,
    /// Name.
    Name,
    /// Platform.
    Platform,
    /// Balance.
    Balance,
    /// Equity.
    Equity,
    /// P&L today.
    Pnl,
    /// Drawdown.
    Drawdown,
    /// Open positions.
    Open,
    /// Fill latency.
    Latency,
}

/// What the accounts table shows and in which order (cached until something changes).
#[derive(Clone, Debug)]
pub struct TableView {
    /// Sorted by.
    pub sort: SortColumn,
    /// Descending.
    pub descending: bool,
    /// Only accounts whose name, platform or status contains this (case-insensitive).
    pub filter: String,
    /// The selected account.
    pub selected: Option<u32>,
    /// The rows in order.
    pub(crate) rows: Vec<u32>,
    pub(crate) key: Option<(u64, SortColumn, bool, String)>,
}

impl Default for TableView {
    fn default() -> Self {
        Self {
            sort: SortColumn::Status,
            descending: false,
            filter: String::new(),
            selected: None,
            rows: Vec::new(),
            key: None,
        }
    }
}

/// What the lower half shows for the selected account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DetailTab {
    /// Positions and orders.
    #[default]
    Trading,
    /// Log lines.
    Log,
}

/// The connection bar's fields.
#[derive(Clone, Debug, Default)]
pub struct ConnectionForm {
    /// What is typed.
    pub profile: Profile,
    /// Remembered connections.
    pub remembered: Remembered,
    /// Where they are kept (`None`: not kept).
    pub path: Option<PathBuf>,
    /// Why the last attempt to connect did not start, or the file could not be written.
    pub problem: Option<String>,
}

/// The Trading Manager.
pub struct ManagerApp {
    /// The state folded from the stream.
    pub model: Model,
    /// The network side, while connected or connecting.
    pub backend: Option<Backend>,
    /// The connection bar.
    pub connection: ConnectionForm,
    /// The accounts table.
    pub table: TableView,
    /// The lower half's tab.
    pub detail_tab: DetailTab,
    /// The selected signal in the copy status panel.
    pub selected_signal: Option<u64>,
    /// The ticket.
    pub ticket: TicketView,
    /// The action waiting for confirmation.
    pub confirm: Option<Confirm>,
    /// Recent command outcomes, newest first, in words.
    pub recent: VecDeque<(bool, String)>,
    /// Wall-clock time in Unix ms (injected for tests and the frame-time measurement).
    pub clock: fn() -> i64,
    /// Whether to ask for repaints on a timer (off for headless frame-time runs).
    pub live: bool,
    /// An account to select once the stream names it.
    pub select_when_known: Option<String>,
    config_problem: Option<String>,
}

/// The system clock, Unix ms.
pub fn system_clock() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ManagerApp {
    /// An app showing `model`, not connected.
    pub fn with_model(model: Model) -> Self {
        Self {
            model,
            backend: None,
            connection: ConnectionForm::default(),
            table: TableView::default(),
            detail_tab: DetailTab::default(),
            selected_signal: None,
            ticket: TicketView::default(),
            confirm: None,
            recent: VecDeque::new(),
            clock: system_clock,
            live: true,
            select_when_known: None,
            config_problem: None,
        }
    }

    /// An app with remembered connections from `path` (the most recent one in the bar).
    pub fn new(path: Option<PathBuf>) -> Self {
        let mut app = Self::with_model(Model::new());
        if let Some(path) = &path {
            match Remembered::load(path) {
                Ok(remembered) => app.connection.remembered = remembered,
                Err(problem) => app.connection.problem = Some(problem),
            }
        }
        if let Some(first) = app.connection.remembered.connections.first() {
            app.connection.profile = first.clone();
        }
        app.connection.path = path;
        app
    }

    /// Connects to the profile in the bar (dropping any current connection), with the token
    /// from its environment variable; the model starts afresh.
    pub fn connect(&mut self, repaint: Option<egui::Context>) {
        self.backend = None;
        match self.connection.profile.token() {
            Ok(token) => self.connect_with_token(token, repaint),
            Err(problem) => self.connection.problem = Some(format!("token: {problem}")),
        }
    }

    /// Connects to the profile in the bar with this token (for programs that hold the token
    /// themselves, such as tests); the profile is remembered with its variable's name only.
    pub fn connect_with_token(&mut self, token: String, repaint: Option<egui::Context>) {
        self.backend = None;
        let profile = self.connection.profile.clone();
        let wake = repaint.map(|ctx| -> std::sync::Arc<dyn Fn() + Send + Sync> {
            std::sync::Arc::new(move || ctx.request_repaint())
        });
        match Backend::start(profile.clone(), token, wake) {
            Ok(backend) => {
                self.backend = Some(backend);
                self.model = Model::new();
                self.table.key = None;
                self.connection.problem = None;
                self.connection.remembered.remember(profile);
                if let Some(path) = &self.connection.path
                    && let Err(problem) = self.connection.remembered.save(path)
                {
                    self.connection.problem = Some(format!("remembered connections not saved: {problem}"));
                }
            }
            Err(problem) => self.connection.problem = Some(problem),
        }
    }

    /// Drops the connection.
    pub fn disconnect(&mut self) {
        self.backend = None;
    }

    /// The connection state now.
    pub fn conn_state(&self) -> ConnState {
        self.backend.as_ref().map_or(ConnState::Idle, Backend::state)
    }

    /// The token's role, while connected.
    pub fn role(&self) -> Option<Role> {
        match self.conn_state() {
            ConnState::Connected { role, .. } => Some(role),
            _ => None,
        }
    }

    /// Why configuration facts are missing, if they are.
    pub fn config_problem(&self) -> Option<&str> {
        self.config_problem.as_deref()
    }

    /// Queues a command (after its confirmation).
    pub fn send(&mut self, command: Command) -> Option<u64> {
        let Some(backend) = self.backend.as_mut() else {
            self.note(false, "not connected: nothing sent".into());
            return None;
        };
        match backend.send(command) {
            Ok(id) => Some(id),
            Err(problem) => {
                self.note(false, problem);
                None
            }
        }
    }

    fn note(&mut self, ok: bool, text: String) {
        self.recent.push_front((ok, text));
        self.recent.truncate(RECENT_OUTCOMES_MAX);
    }

    /// Folds what arrived (bounded per frame); whether more is waiting.
    pub fn drain(&mut self) -> bool {
        let Some(backend) = self.backend.as_ref() else { return false };
        let now = (self.clock)();
        let updates: Vec<_> = backend.take_updates(UPDATES_PER_FRAME).collect();
        let outcomes: Vec<_> = backend.take_outcomes(OUTCOMES_PER_FRAME).collect();
        let more = backend.updates_waiting() > 0;
        // An engine that restarted (a new epoch) may run another configuration: read it again.
        let restarted = updates.iter().any(|u| {
            matches!(u, mirror_sdk::StateUpdate::Snapshot(s) if s.reason == mirror_sdk::SnapshotReason::ResumeUnavailable)
        });
        for update in &updates {
            self.model.apply(now, update);
        }
        if restarted {
            self.send(Command::ReadConfig);
        }
        if let Some(name) = &self.select_when_known
            && let Some(row) = self.model.accounts.values().find(|r| &r.state.name == name)
        {
            self.table.selected = Some(row.state.id);
            self.select_when_known = None;
        }
        for outcome in outcomes {
            self.take_outcome(outcome);
        }
        more
    }

    fn account_words(&self, account: Option<u32>) -> String {
        account.map_or_else(|| "all accounts".to_owned(), |id| self.model.account_name(id))
    }

    fn take_outcome(&mut self, outcome: Outcome) {
        let Outcome { id, command, result } = outcome;
        if let Command::Submit(_) = command
            && self.ticket.status == Some(TicketStatus::Sending(id))
        {
            self.ticket.status = Some(match &result {
                Ok(Answer::Signal(signal)) => TicketStatus::Accepted(*signal),
                Ok(_) => TicketStatus::Accepted(0),
                Err(error) => TicketStatus::Refused { code: error.code, message: error.message.clone() },
            });
        }
        let what = match &command {
            Command::Submit(ticket) => format!("ticket {}", TicketForm::describe(ticket)),
            Command::Pause(account) => format!("pause {}", self.account_words(*account)),
            Command::Resume(account) => format!("resume {}", self.account_words(*account)),
            Command::Flatten(account) => format!("flatten {}", self.account_words(*account)),
            Command::KillSwitch => "kill switch (pause all, flatten all)".into(),
            Command::ReadConfig => "read the configuration".into(),
        };
        match result {
            Ok(Answer::Config(text)) => match EngineFacts::parse(&text) {
                Ok(facts) => {
                    self.model.set_facts(facts);
                    self.config_problem = None;
                }
                Err(problem) => self.config_problem = Some(problem.to_string()),
            },
            Ok(Answer::Signal(signal)) => self.note(true, format!("{what}: accepted as signal {signal}")),
            Ok(Answer::Done) => self.note(true, format!("{what}: done")),
            Err(error) => {
                if command == Command::ReadConfig {
                    self.config_problem = Some(format!("could not read it: {}", error.message));
                } else {
                    let code = error.code.map(|c| format!(" ({c:?})")).unwrap_or_default();
                    self.note(false, format!("{what}: refused{code}: {}", error.message));
                }
            }
        }
    }

    /// Opens the confirmation for `command`.
    pub fn ask(&mut self, title: impl Into<String>, text: impl Into<String>, command: Command) {
        self.confirm = Some(Confirm { title: title.into(), text: text.into(), command });
    }

    /// Sends the ticket's order for confirmation, or says what is wrong with it.
    pub fn check_ticket(&mut self) {
        match self.ticket.form.to_ticket() {
            Ok(ticket) => {
                let source = self.source_words();
                let text = format!(
                    "Send {} as {source}. It is fanned out to every follower of the source, each sized by its \
                     own link rules.",
                    TicketForm::describe(&ticket)
                );
                self.ticket.status = None;
                self.ask("Send this order?", text, Command::Submit(ticket));
            }
            Err(problem) => self.ticket.status = Some(TicketStatus::Invalid(problem)),
        }
    }

    /// "source algo (followers: a, b)" from the welcome and the configuration.
    pub fn source_words(&self) -> String {
        let ConnState::Connected { source: Some(source), .. } = self.conn_state() else {
            return "the token's source".into();
        };
        let Some(facts) = &self.model.facts else { return format!("source {source:08x}") };
        let Some(name) = facts.sources.get(&source) else { return format!("source {source:08x}") };
        let followers = facts.followers_of(name);
        if followers.is_empty() {
            format!("source {name} (no followers configured)")
        } else {
            format!("source {name} (followers: {})", followers.join(", "))
        }
    }

    fn confirmed(&mut self, command: Command) {
        let id = self.send(command.clone());
        if let (Command::Submit(_), Some(id)) = (&command, id) {
            self.ticket.status = Some(TicketStatus::Sending(id));
        }
    }

    /// Draws one frame.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let more = self.drain();
        if self.live {
            if more {
                ui.ctx().request_repaint();
            } else {
                ui.ctx().request_repaint_after(Duration::from_millis(500));
            }
        }
        views::connection_bar(self, ui);
        views::controls_bar(self, ui);
        views::side_panel(self, ui);
        egui::CentralPanel::default().show(ui, |ui| views::central(self, ui));
        views::ticket_window(self, ui);
        self.confirm_dialog(ui);
    }

    fn confirm_dialog(&mut self, ui: &mut egui::Ui) {
        let Some(confirm) = self.confirm.clone() else { return };
        let mut decided = None;
        let response = egui::Modal::new(egui::Id::unique("confirm")).show(ui.ctx(), |ui| {
            ui.set_max_width(520.0);
            ui.heading(&confirm.title);
            ui.add_space(6.0);
            ui.label(&confirm.text);
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                let danger = matches!(confirm.command, Command::Flatten(_) | Command::KillSwitch);
                let text = RichText::new("Confirm").strong();
                let button = if danger {
                    egui::Button::new(text.color(Color32::WHITE)).fill(palette::RED)
                } else {
                    egui::Button::new(text)
                };
                if ui.add(button).clicked() {
                    decided = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    decided = Some(false);
                }
            });
        });
        if response.should_close() && decided.is_none() {
            decided = Some(false);
        }
        if let Some(yes) = decided {
            self.confirm = None;
            if yes {
                self.confirmed(confirm.command);
            }
        }
    }
}

impl eframe::App for ManagerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
