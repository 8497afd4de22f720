//! The window: the connection bar, the source tabs (live, file), the filter bar, the
//! virtualised table of lines, a signal's timeline and the status bar. All state lives in the
//! model ([`crate::model`]); this module only shows it and turns clicks into model calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui::{Align, Color32, Layout, RichText, ScrollArea, Sense, TextEdit, TextStyle, Ui, vec2};
use mirror_sdk::StateUpdate;

use crate::live::LiveFold;
use crate::model::csv;
use crate::model::filter::{Filter, FilteredIndex};
use crate::model::jsonlog::{ReadSummary, read_json_lines};
use crate::model::line::{HopKind, Level, Line};
use crate::model::store::{DEFAULT_CAPACITY, LogStore};
use crate::model::time::{TimeBound, clock_text, duration_text, iso_text};
use crate::model::timeline::Timeline;
use crate::net::{ConnState, ConnectionSpec, NetEvent, NetHandle};
use crate::settings::Settings;

/// Network events the UI takes per frame at most (the rest wait in the bounded queue).
pub const EVENTS_PER_FRAME: usize = 64;

/// After this long without an update (the server sends a heartbeat every second), the bar
/// says the stream is stalled.
const STALL_AFTER: Duration = Duration::from_millis(2_500);

/// How the app starts.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Open this log file.
    pub file: Option<PathBuf>,
    /// Connect to this engine at start.
    pub connect: Option<ConnectionSpec>,
    /// The remembered-connections file (`None`: remember nothing on disk).
    pub settings_path: Option<PathBuf>,
    /// Lines held per source.
    pub capacity: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self { file: None, connect: None, settings_path: Settings::default_path(), capacity: DEFAULT_CAPACITY }
    }
}

/// The filter bar's fields, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FilterForm {
    level: Option<Level>,
    account: Option<u32>,
    signal: String,
    text: String,
    from: String,
    to: String,
}

impl FilterForm {
    /// The filter, and what could not be read (that part is left out).
    fn filter(&self) -> (Filter, Vec<String>) {
        let mut errors = Vec::new();
        let signal = self.signal.trim();
        let signal = if signal.is_empty() {
            None
        } else {
            signal.parse().map_err(|_| errors.push(format!("signal: `{signal}` is not a number"))).ok()
        };
        let mut bound = |what: &str, text: &str| {
            if text.trim().is_empty() {
                return None;
            }
            TimeBound::parse(text).map_err(|e| errors.push(format!("{what}: {e}"))).ok()
        };
        let from = bound("from", &self.from);
        let to = bound("to", &self.to);
        let filter = Filter { min_level: self.level, account: self.account, signal, text: self.text.clone(), from, to };
        (filter, errors)
    }
}

/// One source's lines and how they are looked at.
#[derive(Debug)]
struct View {
    store: LogStore,
    index: FilteredIndex,
    form: FilterForm,
    filter_errors: Vec<String>,
    /// Auto-scroll: follow new lines while the user has not scrolled up.
    follow: bool,
    jump: bool,
    /// Scroll offset of the last frame (to keep the rows in place as old lines go).
    offset_y: f32,
    timeline: Option<Timeline>,
    timeline_input: String,
}

impl View {
    fn new(store: LogStore) -> Self {
        Self {
            store,
            index: FilteredIndex::default(),
            form: FilterForm::default(),
            filter_errors: Vec::new(),
            follow: true,
            jump: false,
            offset_y: 0.0,
            timeline: None,
            timeline_input: String::new(),
        }
    }

    /// Applies the form's filter (a rebuild only when it changed) and takes in new lines.
    /// Returns rows dropped from the front since the last frame.
    fn refresh(&mut self) -> usize {
        let (filter, errors) = self.form.filter();
        self.filter_errors = errors;
        if filter != *self.index.filter() {
            self.index.set_filter(&filter, &self.store);
            return 0;
        }
        let dropped = self.index.sync(&self.store);
        if let Some(timeline) = &mut self.timeline {
            timeline.sync(&self.store);
        }
        dropped
    }

    fn select_signal(&mut self, signal: u64) {
        let mut timeline = Timeline::new(signal);
        timeline.sync(&self.store);
        self.timeline = Some(timeline);
        self.timeline_input = signal.to_string();
    }
}

/// A log file opened in the file tab.
#[derive(Debug)]
struct FileView {
    path: PathBuf,
    view: View,
    summary: ReadSummary,
}

type Loaded = Result<(LogStore, ReadSummary), String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tab {
    Live,
    File,
}

/// The Log Viewer.
#[derive(Debug)]
pub struct LogsApp {
    capacity: usize,
    net: Option<NetHandle>,
    conn: ConnState,
    last_update: Option<Instant>,
    form: ConnectionSpec,
    conn_error: Option<String>,
    settings: Settings,
    settings_path: Option<PathBuf>,
    settings_error: Option<String>,
    fold: LiveFold,
    live: View,
    file: Option<FileView>,
    tab: Tab,
    file_input: String,
    loading: Option<(PathBuf, flume::Receiver<Loaded>)>,
    file_error: Option<String>,
    export_input: String,
    export_result: Option<Result<String, String>>,
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn level_color(level: Level) -> Color32 {
    match level {
        Level::Trace | Level::Debug => Color32::GRAY,
        Level::Info => Color32::from_rgb(0x9c, 0xd6, 0xff),
        Level::Warn => Color32::ORANGE,
        Level::Error => Color32::from_rgb(0xff, 0x60, 0x60),
    }
}

fn hop_color(kind: HopKind) -> Color32 {
    if kind.is_failure() {
        return Color32::from_rgb(0xff, 0x60, 0x60);
    }
    match kind {
        HopKind::Copied | HopKind::Closing | HopKind::Resent => Color32::from_rgb(0x6a, 0xa8, 0xff),
        HopKind::Accepted => Color32::from_rgb(0xc0, 0x9c, 0xff),
        HopKind::Filled | HopKind::PartlyFilled => Color32::from_rgb(0x5c, 0xd6, 0x7c),
        HopKind::SignalTaken => Color32::from_rgb(0xe0, 0xc0, 0x60),
        // Skipped and cancelled: ended, not failed.
        _ => Color32::GRAY,
    }
}

/// A text field tied to its label, so that screen readers and tests find it by that label.
fn labelled_field(ui: &mut Ui, label: &str, value: &mut String, width: f32, hint: &str) -> egui::Response {
    let label = ui.label(label);
    ui.add(TextEdit::singleline(value).desired_width(width).hint_text(hint)).labelled_by(label.id)
}

impl LogsApp {
    /// A viewer; it connects and opens a file when the options say so.
    pub fn new(options: AppOptions) -> Self {
        let (settings, settings_error) = match &options.settings_path {
            Some(path) => match Settings::load(path) {
                Ok(settings) => (settings, None),
                Err(error) => (Settings::default(), Some(error)),
            },
            None => (Settings::default(), None),
        };
        let form =
            options.connect.clone().or_else(|| settings.connections.first().map(ConnectionSpec::from)).unwrap_or_else(
                || ConnectionSpec {
                    server: "127.0.0.1:7443".into(),
                    fingerprint: "file:data/gateway/gateway-fingerprint.txt".into(),
                    token_env: "MIRROR_TOKEN".into(),
                },
            );
        let mut app = Self {
            capacity: options.capacity,
            net: None,
            conn: ConnState::Idle,
            last_update: None,
            form,
            conn_error: None,
            settings,
            settings_path: options.settings_path,
            settings_error,
            fold: LiveFold::default(),
            live: View::new(LogStore::with_capacity(options.capacity)),
            file: None,
            tab: Tab::Live,
            file_input: String::new(),
            loading: None,
            file_error: None,
            export_input: "logs-export.csv".into(),
            export_result: None,
        };
        if let Some(path) = options.file {
            app.file_input = path.display().to_string();
            app.open_file(&path);
        }
        if options.connect.is_some() {
            app.connect();
        }
        app
    }

    /// Connects with the connection form's values, remembering them.
    pub fn connect(&mut self) {
        match self.form.client_config() {
            Ok(config) => self.connect_config(config),
            Err(error) => {
                self.conn_error = Some(error);
                return;
            }
        }
        self.settings.remember(&self.form);
        if let Some(path) = &self.settings_path {
            self.settings_error = self.settings.save(path).err();
        }
    }

    /// Connects with a ready SDK configuration (programs that hold the token themselves; the
    /// form and the remembered connections are left as they are). The viewer's timeouts
    /// ([`crate::tune`]) replace the configuration's.
    pub fn connect_config(&mut self, mut config: mirror_sdk::ClientConfig) {
        crate::net::tune(&mut config);
        self.conn_error = None;
        if self.net.is_none() {
            match NetHandle::start() {
                Ok(net) => self.net = Some(net),
                Err(error) => {
                    self.conn_error = Some(format!("could not start the network thread: {error}"));
                    return;
                }
            }
        }
        let server = config.server;
        if let Some(net) = &self.net
            && net.connect(config)
        {
            self.conn = ConnState::Connecting { server };
        }
    }

    /// Closes the connection (the lines stay).
    pub fn disconnect(&mut self) {
        if let Some(net) = &self.net
            && net.disconnect()
        {
            self.conn = ConnState::Idle;
        }
    }

    /// The connection as the bar shows it.
    pub fn connection(&self) -> &ConnState {
        &self.conn
    }

    /// The live stream's epoch and last change number, once its first snapshot came.
    pub fn stream_position(&self) -> Option<(u64, u64)> {
        self.fold.position()
    }

    /// Folds one state update into the live lines (what the network thread's updates go
    /// through; public for the headless frame-time measurement).
    pub fn apply_update(&mut self, update: &StateUpdate, now_unix_ns: i64) {
        self.fold.apply(update, now_unix_ns, &mut self.live.store);
    }

    /// Starts reading a log file in the background; it replaces the file tab when done.
    pub fn open_file(&mut self, path: &Path) {
        let (sender, receiver) = flume::bounded(1);
        let capacity = self.capacity;
        let owned = path.to_path_buf();
        let spawned = std::thread::Builder::new().name("mirror-logs-read".into()).spawn(move || {
            let loaded =
                std::fs::File::open(&owned).map_err(|e| format!("{}: {e}", owned.display())).and_then(|file| {
                    let mut store = LogStore::with_capacity(capacity);
                    let summary = read_json_lines(std::io::BufReader::new(file), &mut store)
                        .map_err(|e| format!("{}: {e}", owned.display()))?;
                    Ok((store, summary))
                });
            let _ = sender.send(loaded);
        });
        match spawned {
            Ok(_) => {
                self.loading = Some((path.to_path_buf(), receiver));
                self.file_error = None;
            }
            Err(error) => self.file_error = Some(format!("could not start reading: {error}")),
        }
    }

    /// Sets the text filter of the tab shown (as typing in the Text field does).
    pub fn set_text_filter(&mut self, text: &str) {
        self.view_mut().form.text = text.to_owned();
    }

    /// Shows the timeline of `signal` for the tab shown (as clicking the signal does).
    pub fn show_timeline(&mut self, signal: u64) {
        self.view_mut().select_signal(signal);
    }

    /// Lines held and lines passing the filters, of the tab shown.
    pub fn counts(&mut self) -> (usize, usize) {
        let view = self.view_mut();
        view.refresh();
        (view.index.len(), view.store.len())
    }

    /// Whether a file is being read.
    pub fn is_loading(&self) -> bool {
        self.loading.is_some()
    }

    /// Takes in what arrived: at most [`EVENTS_PER_FRAME`] network events, and a file read.
    pub fn pump(&mut self) {
        for _ in 0..EVENTS_PER_FRAME {
            let Some(event) = self.net.as_ref().and_then(NetHandle::try_event) else { break };
            match event {
                NetEvent::State(state) => self.conn = state,
                NetEvent::Update(update, at) => {
                    self.last_update = Some(Instant::now());
                    self.fold.apply(&update, at, &mut self.live.store);
                }
            }
        }
        let finished = match &self.loading {
            Some((path, receiver)) => match receiver.try_recv() {
                Ok(loaded) => Some((path.clone(), loaded)),
                Err(flume::TryRecvError::Empty) => None,
                Err(flume::TryRecvError::Disconnected) => Some((path.clone(), Err("the reader stopped".into()))),
            },
            None => None,
        };
        if let Some((path, loaded)) = finished {
            self.loading = None;
            match loaded {
                Ok((store, summary)) => {
                    let mut view = View::new(store);
                    view.follow = false;
                    self.file = Some(FileView { path, view, summary });
                    self.tab = Tab::File;
                }
                Err(error) => self.file_error = Some(error),
            }
        }
    }

    fn view_mut(&mut self) -> &mut View {
        match (&mut self.file, self.tab) {
            (Some(file), Tab::File) => &mut file.view,
            _ => &mut self.live,
        }
    }

    /// Draws the whole window into `ui` (the eframe app and the tests call this).
    pub fn show(&mut self, ui: &mut Ui) {
        if let Some(net) = &self.net {
            net.set_repaint(ui.ctx());
        }
        self.pump();
        let dropped = self.view_mut().refresh();
        egui::Panel::top("connection").show(ui, |ui| self.connection_bar(ui));
        egui::Panel::top("source").show(ui, |ui| self.source_bar(ui));
        egui::Panel::top("filters").show(ui, |ui| self.filter_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        let live = self.tab == Tab::Live || self.file.is_none();
        let view = self.view_mut();
        egui::Panel::right("timeline")
            .resizable(true)
            .default_size(470.0)
            .show(ui, |ui| timeline_panel(ui, view, live));
        egui::CentralPanel::default().show(ui, |ui| rows_table(ui, view, dropped, live));
        if self.loading.is_some() || matches!(self.conn, ConnState::Connecting { .. } | ConnState::Reconnecting { .. })
        {
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        } else if self.net.is_some() {
            // To notice a stall even when nothing arrives.
            ui.ctx().request_repaint_after(Duration::from_secs(1));
        }
    }

    fn connection_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.strong("Mirror Log Viewer");
            ui.separator();
            labelled_field(ui, "Server", &mut self.form.server, 130.0, "127.0.0.1:7443");
            labelled_field(ui, "Fingerprint", &mut self.form.fingerprint, 230.0, "64 hex digits or file:<path>");
            labelled_field(ui, "Token variable", &mut self.form.token_env, 170.0, "MIRROR_TOKEN");
            let connected = !matches!(self.conn, ConnState::Idle | ConnState::Failed { .. });
            if connected {
                if ui.button("Disconnect").clicked() {
                    self.disconnect();
                }
            } else if ui.button("Connect").clicked() {
                self.connect();
            }
            let remembered: Vec<ConnectionSpec> = self.settings.connections.iter().map(ConnectionSpec::from).collect();
            let label = ui.label("Remembered");
            let combo = egui::ComboBox::from_id_salt("remembered")
                .selected_text(format!("{} saved", remembered.len()))
                .show_ui(ui, |ui| {
                    for spec in remembered {
                        let text = format!("{} ({})", spec.server, spec.token_env);
                        if ui.selectable_label(spec == self.form, text).clicked() {
                            self.form = spec;
                        }
                    }
                });
            combo.response.labelled_by(label.id);
        });
        ui.horizontal(|ui| {
            let (color, text) = self.connection_text();
            let (dot, _) = ui.allocate_exact_size(vec2(12.0, 12.0), Sense::hover());
            ui.painter().circle_filled(dot.center(), 5.0, color);
            ui.label(RichText::new(text).color(color)).on_hover_text(
                "The viewer subscribes to the engine's log, account, order, fill and copy-status topics. Lines from \
                 before the connection are not on the stream: open the engine's log files for those.",
            );
            if let Some(error) = &self.conn_error {
                ui.colored_label(Color32::from_rgb(0xff, 0x60, 0x60), error);
            }
            if let Some(error) = &self.settings_error {
                ui.colored_label(Color32::ORANGE, format!("remembered connections: {error}"));
            }
        });
    }

    fn connection_text(&self) -> (Color32, String) {
        let red = Color32::from_rgb(0xff, 0x60, 0x60);
        match &self.conn {
            ConnState::Idle => (Color32::GRAY, "not connected".into()),
            ConnState::Connecting { server } => (Color32::YELLOW, format!("connecting to {server}…")),
            ConnState::Connected { server, version, role, reconnects } => {
                let stalled = self.last_update.map(|at| at.elapsed()).filter(|idle| *idle > STALL_AFTER);
                let again = if *reconnects > 0 { format!(", reconnected {reconnects}×") } else { String::new() };
                match stalled {
                    Some(idle) => (
                        Color32::ORANGE,
                        format!(
                            "connected to {server} — no update for {:.0} s (heartbeats are due every second)",
                            idle.as_secs_f32()
                        ),
                    ),
                    None => (
                        Color32::from_rgb(0x5c, 0xd6, 0x7c),
                        format!("connected to {server} (engine {version}, {role:?}{again})"),
                    ),
                }
            }
            ConnState::Reconnecting { server, reason, attempt } => {
                (Color32::ORANGE, format!("reconnecting to {server} (attempt {attempt}): {reason}"))
            }
            ConnState::Failed { reason } => (red, format!("not connected: {reason}")),
        }
    }

    fn source_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let live_lines = thousands(self.live.store.len() as u64);
            ui.selectable_value(&mut self.tab, Tab::Live, format!("Live ({live_lines})"));
            if let Some(file) = &self.file {
                let name = file
                    .path
                    .file_name()
                    .map_or_else(|| file.path.display().to_string(), |n| n.to_string_lossy().into_owned());
                ui.selectable_value(&mut self.tab, Tab::File, format!("File: {name}"));
            }
            ui.separator();
            let field = labelled_field(ui, "Log file", &mut self.file_input, 320.0, "logs/mirror.2026-11-04-09.jsonl");
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.add_enabled(self.loading.is_none(), egui::Button::new("Open")).clicked() || enter)
                && !self.file_input.trim().is_empty()
            {
                let path = PathBuf::from(self.file_input.trim());
                self.open_file(&path);
            }
            if let Some((path, _)) = &self.loading {
                ui.spinner();
                ui.label(format!("reading {}…", path.display()));
            }
            if let Some(error) = &self.file_error {
                ui.colored_label(Color32::from_rgb(0xff, 0x60, 0x60), error);
            }
        });
    }

    fn filter_bar(&mut self, ui: &mut Ui) {
        let view = self.view_mut();
        ui.horizontal(|ui| {
            let level_text = view.form.level.map_or("all levels".to_owned(), |l| format!("{} and above", l.name()));
            let label = ui.label("Level");
            let combo = egui::ComboBox::from_id_salt("level").selected_text(level_text).show_ui(ui, |ui| {
                ui.selectable_value(&mut view.form.level, None, "all levels");
                for level in Level::ALL {
                    ui.selectable_value(&mut view.form.level, Some(level), format!("{} and above", level.name()));
                }
            });
            combo.response.labelled_by(label.id);
            let account_text =
                view.form.account.map_or("all accounts".to_owned(), |a| view.store.account_name(a).into_owned());
            let label = ui.label("Account");
            let combo = egui::ComboBox::from_id_salt("account").selected_text(account_text).show_ui(ui, |ui| {
                ui.selectable_value(&mut view.form.account, None, "all accounts");
                for (key, name) in view.store.accounts() {
                    ui.selectable_value(&mut view.form.account, Some(*key), name);
                }
            });
            combo.response.labelled_by(label.id);
            labelled_field(ui, "Signal", &mut view.form.signal, 140.0, "signal id");
            labelled_field(ui, "Text", &mut view.form.text, 180.0, "contains (any case)");
            labelled_field(ui, "From", &mut view.form.from, 120.0, "09:30 or 2026-11-04T09:30");
            labelled_field(ui, "To", &mut view.form.to, 120.0, "UTC");
            if ui.add_enabled(view.form != FilterForm::default(), egui::Button::new("Clear filters")).clicked() {
                view.form = FilterForm::default();
            }
            ui.separator();
            ui.strong(format!(
                "{} of {} lines",
                thousands(view.index.len() as u64),
                thousands(view.store.len() as u64)
            ));
            for error in &view.filter_errors {
                ui.colored_label(Color32::ORANGE, error);
            }
        });
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        let live = self.tab == Tab::Live || self.file.is_none();
        ui.horizontal(|ui| {
            let view = match (&self.file, live) {
                (Some(file), false) => &file.view,
                _ => &self.live,
            };
            let store = &view.store;
            ui.label(format!(
                "Holding {} lines (the latest {} are kept; {} older dropped)",
                thousands(store.len() as u64),
                thousands(store.capacity() as u64),
                thousands(store.dropped())
            ));
            ui.separator();
            if live {
                let (count, missed, gaps) = self.fold.gaps();
                match (self.fold.first_line_unix_ns(), self.fold.position()) {
                    (Some(first), _) => ui.label(format!("live since {} UTC", clock_text(first))),
                    (None, Some(_)) => ui.label("subscribed; no log line yet"),
                    (None, None) => ui.label("no live line yet"),
                };
                if count > 0 {
                    let reasons: Vec<String> = gaps.iter().map(|g| format!("{:?}", g.reason)).collect();
                    ui.colored_label(
                        Color32::ORANGE,
                        format!(
                            "{count} {}: {missed} changes not on the stream ({})",
                            if count == 1 { "gap" } else { "gaps" },
                            reasons.join(", ")
                        ),
                    );
                }
            } else if let Some(file) = &self.file {
                ui.label(format!("{}: {} lines read", file.path.display(), thousands(file.summary.read)));
                let (count, first) = file.view.store.unreadable();
                if count > 0 {
                    let shown: Vec<String> =
                        first.iter().take(3).map(|u| format!("line {}: {}", u.line, u.error)).collect();
                    let more = if count > 3 { ", …" } else { "" };
                    let text = format!("{count} lines could not be read: {}{more}", shown.join("; "));
                    let all: Vec<String> = first.iter().map(|u| format!("line {}: {}", u.line, u.error)).collect();
                    ui.colored_label(Color32::ORANGE, text).on_hover_text(all.join("\n"));
                }
            }
        });
        ui.horizontal(|ui| {
            labelled_field(ui, "CSV file", &mut self.export_input, 260.0, "export.csv");
            if ui.button("Export CSV").clicked() {
                let path = PathBuf::from(self.export_input.trim());
                let view = match (&self.file, live) {
                    (Some(file), false) => &file.view,
                    _ => &self.live,
                };
                self.export_result = Some(export_csv(&path, view));
            }
            match &self.export_result {
                Some(Ok(text)) => ui.label(text),
                Some(Err(error)) => ui.colored_label(Color32::from_rgb(0xff, 0x60, 0x60), error),
                None => ui.weak("exports the rows the filters show"),
            };
        });
    }
}

fn export_csv(path: &Path, view: &View) -> Result<String, String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let rows = csv::export(&mut out, &view.store, &view.index).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::flush(&mut out).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("{} rows written to {}", thousands(rows), path.display()))
}

/// Column widths of the table.
const TIME_W: f32 = 118.0;
const LEVEL_W: f32 = 48.0;
const ACCOUNT_W: f32 = 110.0;
const SIGNAL_W: f32 = 130.0;

fn cell(ui: &mut Ui, width: f32, height: f32, add: impl FnOnce(&mut Ui)) {
    ui.allocate_ui_with_layout(vec2(width, height), Layout::left_to_right(Align::Center), |ui| {
        ui.set_width(width);
        add(ui);
    });
}

fn header(ui: &mut Ui, height: f32) {
    ui.horizontal(|ui| {
        cell(ui, TIME_W, height, |ui| {
            ui.strong("time (UTC)").on_hover_text(
                "Live lines: the engine's monotonic time placed on the wall clock at the first line received. \
                 Files: the time the engine wrote the line.",
            );
        });
        cell(ui, LEVEL_W, height, |ui| {
            ui.strong("level");
        });
        cell(ui, ACCOUNT_W, height, |ui| {
            ui.strong("account");
        });
        cell(ui, SIGNAL_W, height, |ui| {
            ui.strong("signal").on_hover_text("Click a signal to see its fan-out timeline");
        });
        ui.strong("text");
    });
}

fn row(ui: &mut Ui, line: &Line, store: &LogStore, height: f32) -> Option<u64> {
    let mut clicked = None;
    ui.horizontal(|ui| {
        ui.set_height(height);
        cell(ui, TIME_W, height, |ui| {
            let unix_ns = line.unix_ns;
            ui.monospace(clock_text(unix_ns)).on_hover_ui(|ui| {
                ui.label(iso_text(unix_ns));
            });
        });
        cell(ui, LEVEL_W, height, |ui| {
            ui.label(RichText::new(line.level.name()).monospace().color(level_color(line.level)));
        });
        let name = line.account.map(|key| store.account_name(key));
        cell(ui, ACCOUNT_W, height, |ui| {
            if let Some(name) = &name {
                ui.add(egui::Label::new(name.as_ref()).truncate());
            }
        });
        cell(ui, SIGNAL_W, height, |ui| {
            if line.signal != 0 && ui.link(RichText::new(line.signal.to_string()).monospace()).clicked() {
                clicked = Some(line.signal);
            }
        });
        // The stream prefixes the account's name; the column shows it already.
        let text = name.as_deref().and_then(|n| line.text.strip_prefix(n)).and_then(|t| t.strip_prefix(": "));
        let text = text.unwrap_or(&line.text);
        let color = if line.level >= Level::Warn { level_color(line.level) } else { ui.visuals().text_color() };
        ui.add(egui::Label::new(RichText::new(text).color(color)).truncate());
    });
    clicked
}

/// The table: a header and only the visible rows laid out (`show_rows`).
fn rows_table(ui: &mut Ui, view: &mut View, dropped_rows: usize, live: bool) {
    let row_height = ui.text_style_height(&TextStyle::Monospace).max(ui.text_style_height(&TextStyle::Body)) + 2.0;
    let spacing = ui.spacing().item_spacing.y;
    header(ui, row_height);
    ui.separator();
    // The live tail follows new lines (until the user scrolls up); a file opens at its top.
    let mut area = ScrollArea::vertical().id_salt(if live { "live-rows" } else { "file-rows" }).auto_shrink(false);
    if live {
        area = area.stick_to_bottom(true);
    }
    if view.jump {
        area = area.vertical_scroll_offset(f32::MAX);
        view.jump = false;
    } else if dropped_rows > 0 && !view.follow {
        // Old lines went: keep the rows the user looks at in place.
        area = area.vertical_scroll_offset((view.offset_y - dropped_rows as f32 * (row_height + spacing)).max(0.0));
    }
    let mut selected = None;
    let output = area.show_rows(ui, row_height, view.index.len(), |ui, range| {
        for row_number in range {
            let Some(line) = view.index.number(row_number).and_then(|n| view.store.get(n)) else { continue };
            if let Some(signal) = row(ui, line, &view.store, row_height) {
                selected = Some(signal);
            }
        }
    });
    if let Some(signal) = selected {
        view.select_signal(signal);
    }
    view.offset_y = output.state.clamped_offset().y;
    let bottom = (output.content_size.y - output.inner_rect.height()).max(0.0);
    view.follow = output.state.clamped_offset().y >= bottom - 1.0;
    if !view.follow {
        let button = egui::Button::new(RichText::new("Jump to latest").strong());
        let at = output.inner_rect.right_bottom() - vec2(150.0, 40.0);
        let clicked = ui.put(egui::Rect::from_min_size(at, vec2(130.0, 28.0)), button).clicked();
        if clicked {
            view.jump = true;
            ui.ctx().request_repaint();
        }
    }
}

/// A signal's fan-out: a table of every follower's hops, and the hops drawn on a time axis.
fn timeline_panel(ui: &mut Ui, view: &mut View, live: bool) {
    ui.heading("Signal timeline");
    ui.horizontal(|ui| {
        let field = labelled_field(ui, "Timeline signal", &mut view.timeline_input, 150.0, "click a signal, or type");
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Show").clicked() || enter {
            match view.timeline_input.trim().parse() {
                Ok(signal) => view.select_signal(signal),
                Err(_) => view.timeline = None,
            }
        }
    });
    let Some(timeline) = &view.timeline else {
        ui.weak("Click a signal id in the table to see how it fanned out to each follower.");
        return;
    };
    let followers = timeline.followers();
    // The signal's own line: taken (+0), or refused before any follower saw it.
    if let Some(hop) = timeline.signal_hop() {
        let text = match hop.kind {
            HopKind::SignalRefused => format!("Signal {} refused by the engine: {}", timeline.signal(), hop.detail),
            _ => format!("Signal {} taken by the engine at +0", timeline.signal()),
        };
        ui.label(RichText::new(text).color(hop_color(hop.kind)));
    }
    if followers.is_empty() {
        ui.label(format!("No hop of signal {} on a follower in the lines held.", timeline.signal()));
        if live {
            ui.weak("Live lines start at the connection; older signals are in the engine's log files.");
        }
        return;
    }
    let hops: usize = followers.iter().map(|f| f.hops.len()).sum();
    ui.label(format!(
        "Signal {}: {} followers, {hops} hops over {}",
        timeline.signal(),
        followers.len(),
        duration_text(timeline.span_ns())
    ));
    ui.add(egui::Label::new(RichText::new(timeline.clock().explanation()).small().weak()).wrap());
    ui.add_space(4.0);
    timeline_drawing(ui, &followers, &view.store, timeline.span_ns());
    ui.add_space(4.0);
    ScrollArea::vertical().id_salt("timeline-table").auto_shrink([false, true]).show(ui, |ui| {
        egui::Grid::new("timeline-grid").striped(true).num_columns(5).show(ui, |ui| {
            ui.strong("follower");
            ui.strong("hop");
            ui.strong("at");
            ui.strong("step");
            ui.strong("detail");
            ui.end_row();
            for follower in &followers {
                let name = view.store.account_name(follower.account);
                let mut previous = None;
                for hop in &follower.hops {
                    ui.label(name.as_ref());
                    ui.colored_label(hop_color(hop.kind), hop.kind.label());
                    ui.monospace(format!("+{}", duration_text(hop.at_ns)));
                    match previous {
                        Some(at) => ui.monospace(format!("+{}", duration_text(hop.at_ns - at))),
                        None => ui.weak("—"),
                    };
                    ui.label(hop.detail.as_ref());
                    ui.end_row();
                    previous = Some(hop.at_ns);
                }
            }
        });
    });
}

fn timeline_drawing(ui: &mut Ui, followers: &[crate::model::timeline::FollowerHops], store: &LogStore, span_ns: i64) {
    let lane = 18.0;
    let name_w = 110.0;
    let axis_h = 18.0;
    let lanes = followers.len().min(24);
    let width = ui.available_width().max(200.0);
    let (rect, response) = ui.allocate_exact_size(vec2(width, lane * lanes as f32 + axis_h), Sense::hover());
    let painter = ui.painter_at(rect);
    let plot_left = rect.left() + name_w;
    let plot_w = (rect.right() - plot_left - 10.0).max(10.0);
    let span = span_ns.max(1) as f32;
    let x_of = |at_ns: i64| plot_left + plot_w * (at_ns as f32 / span);
    let font = egui::FontId::proportional(11.0);
    let text_color = ui.visuals().text_color();
    let weak = ui.visuals().weak_text_color();
    let mut hovered: Option<String> = None;
    let pointer = response.hover_pos();
    for (n, follower) in followers.iter().take(lanes).enumerate() {
        let y = rect.top() + lane * n as f32 + lane / 2.0;
        let name = store.account_name(follower.account);
        painter.text(egui::pos2(rect.left(), y), egui::Align2::LEFT_CENTER, name.as_ref(), font.clone(), text_color);
        painter.hline(plot_left..=plot_left + plot_w, y, egui::Stroke::new(1.0, weak.gamma_multiply(0.4)));
        if let (Some(first), Some(last)) = (follower.hops.first(), follower.hops.last()) {
            painter.line_segment(
                [egui::pos2(x_of(first.at_ns), y), egui::pos2(x_of(last.at_ns), y)],
                egui::Stroke::new(2.0, hop_color(last.kind).gamma_multiply(0.6)),
            );
        }
        for hop in &follower.hops {
            let center = egui::pos2(x_of(hop.at_ns), y);
            painter.circle_filled(center, 4.5, hop_color(hop.kind));
            if pointer.is_some_and(|p| p.distance(center) < 7.0) {
                let detail = if hop.detail.is_empty() { String::new() } else { format!(": {}", hop.detail) };
                hovered = Some(format!("{name} {} at +{}{detail}", hop.kind.label(), duration_text(hop.at_ns)));
            }
        }
    }
    let axis_y = rect.top() + lane * lanes as f32 + 4.0;
    painter.hline(plot_left..=plot_left + plot_w, axis_y, egui::Stroke::new(1.0, weak));
    for quarter in 0..=4_i64 {
        let x = plot_left + plot_w * quarter as f32 / 4.0;
        painter.vline(x, axis_y..=axis_y + 4.0, egui::Stroke::new(1.0, weak));
        let at = span_ns * quarter / 4;
        let align = if quarter == 4 { egui::Align2::RIGHT_TOP } else { egui::Align2::CENTER_TOP };
        painter.text(egui::pos2(x, axis_y + 4.0), align, format!("+{}", duration_text(at)), font.clone(), weak);
    }
    if followers.len() > lanes {
        painter.text(
            egui::pos2(rect.left(), axis_y + 4.0),
            egui::Align2::LEFT_TOP,
            format!("{} more below", followers.len() - lanes),
            font,
            weak,
        );
    }
    if let Some(text) = hovered {
        response.on_hover_text(text);
    }
}

impl eframe::App for LogsApp {
    // `show` takes in what arrived (once per frame: a second pump here would double the
    // per-frame budget).
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
