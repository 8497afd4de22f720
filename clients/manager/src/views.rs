//! What is drawn: the connection bar, the controls, the accounts table, the selected account,
//! the alerts, the copy status per signal, the plots and the ticket.

use egui::{Color32, RichText, Ui};
use egui_extras::{Column, TableBuilder};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use mirror_sdk::{CopyState, OrderStatus, Role, Side};

use crate::app::{DetailTab, ManagerApp, SortColumn, TicketStatus, health_colour, palette};
use crate::backend::{Command, ConnState};
use crate::format;
use crate::model::{AccountRow, AlertKind, Health, Model};
use crate::ticket::Kind;

const ROW_HEIGHT: f32 = 20.0;

/// A text field with a visible label that is also its accessible name.
fn labelled_field(ui: &mut Ui, label: &str, value: &mut String, width: f32) -> egui::Response {
    let label = ui.label(label);
    ui.add(egui::TextEdit::singleline(value).desired_width(width)).labelled_by(label.id)
}

fn state_words(state: &ConnState) -> (Color32, String) {
    match state {
        ConnState::Idle => (palette::DIM, "not connected".into()),
        ConnState::Connecting => (palette::AMBER, "connecting…".into()),
        ConnState::Connected { role, source, server } => {
            let source = source.map(|s| format!(", source {s:08x}")).unwrap_or_default();
            (palette::GREEN, format!("connected as {role:?}{source} · engine {server}"))
        }
        ConnState::Reconnecting { reason } => (palette::AMBER, format!("reconnecting: {reason}")),
        ConnState::Failed { reason } => (palette::RED, format!("failed: {reason}")),
    }
}

/// Server address, state, remembered connections.
pub(crate) fn connection_bar(app: &mut ManagerApp, ui: &mut Ui) {
    egui::Panel::top("connection").show(ui, |ui| {
        ui.add_space(2.0);
        ui.horizontal(|ui| {
            let state = app.conn_state();
            let (colour, words) = state_words(&state);
            let (dot, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().circle_filled(dot.center(), 5.0, colour);
            ui.label(RichText::new(words).color(colour).strong());
            ui.separator();
            labelled_field(ui, "Server", &mut app.connection.profile.address, 130.0);
            labelled_field(ui, "Fingerprint", &mut app.connection.profile.fingerprint, 150.0)
                .on_hover_text("SHA-256 of the gateway's certificate, as the engine prints it");
            labelled_field(ui, "Token variable", &mut app.connection.profile.token_env, 210.0)
                .on_hover_text("The environment variable holding the token; the token itself is never stored");
            let connected = app.backend.is_some();
            if ui.button(if connected { "Reconnect" } else { "Connect" }).clicked() {
                app.connect(Some(ui.ctx().clone()));
            }
            if connected && ui.button("Disconnect").clicked() {
                app.disconnect();
            }
            let remembered = app.connection.remembered.connections.clone();
            egui::ComboBox::new("remembered", "Remembered")
                .selected_text(format!("{} saved", remembered.len()))
                .show_ui(ui, |ui| {
                    for profile in remembered {
                        let fingerprint: String = profile.fingerprint.chars().take(12).collect();
                        let text = format!("{}  ·  {fingerprint}…  ·  ${}", profile.address, profile.token_env);
                        if ui.selectable_label(app.connection.profile == profile, text).clicked() {
                            app.connection.profile = profile;
                        }
                    }
                });
            if let Some(problem) = &app.connection.problem {
                ui.label(RichText::new(problem).color(palette::RED));
            }
        });
        ui.add_space(2.0);
    });
}

/// Global controls and the latest outcome.
pub(crate) fn controls_bar(app: &mut ManagerApp, ui: &mut Ui) {
    egui::Panel::top("controls").show(ui, |ui| {
        ui.add_space(2.0);
        ui.horizontal(|ui| {
            let admin = app.role() == Some(Role::Admin);
            let trader = app.role().is_some_and(|r| r >= Role::Trader);
            if ui.add_enabled(trader, egui::Button::new("New ticket")).clicked() {
                app.ticket.open = true;
            }
            ui.separator();
            ui.add_enabled_ui(admin, |ui| {
                if ui.button("Pause all").on_hover_text("Stop copying new opens to every account").clicked() {
                    app.ask(
                        "Pause every account?",
                        "Every account stops taking new copies. Open positions stay open and closes are still copied.",
                        Command::Pause(None),
                    );
                }
                if ui.button("Resume all").clicked() {
                    app.ask("Resume every account?", "Every account copies new opens again.", Command::Resume(None));
                }
                if ui.button("Flatten all").clicked() {
                    app.ask(
                        "Flatten every account?",
                        "Every open position of every account is closed at the market now.",
                        Command::Flatten(None),
                    );
                }
                let kill =
                    egui::Button::new(RichText::new("Kill switch").strong().color(Color32::WHITE)).fill(palette::RED);
                if ui.add(kill).on_hover_text("Pause every account, then flatten every account").clicked() {
                    app.ask(
                        "Kill switch: pause and flatten everything?",
                        "1. Every account is paused: no new copies are opened.\n2. Every open position of every \
                         account is closed at the market.\nAccounts stay paused until resumed.",
                        Command::KillSwitch,
                    );
                }
            });
            if !admin && app.backend.is_some() {
                ui.label(RichText::new("controls need an admin token").color(palette::DIM));
            }
            ui.separator();
            if let Some((ok, text)) = app.recent.front() {
                ui.label(RichText::new(text).color(if *ok { palette::GREEN } else { palette::RED }));
            }
        });
        ui.add_space(2.0);
    });
}

/// Alerts, the fan-out latency and the copy status per signal.
pub(crate) fn side_panel(app: &mut ManagerApp, ui: &mut Ui) {
    egui::Panel::right("side").default_size(430.0).resizable(true).show(ui, |ui| {
        ui.heading("Alerts");
        alerts(&app.model, ui);
        ui.separator();
        ui.heading("Fan-out latency");
        latency_plot(&app.model, ui);
        ui.separator();
        ui.heading("Copy status per signal");
        signals(app, ui);
    });
}

fn alert_colour(kind: AlertKind) -> Color32 {
    match kind {
        AlertKind::Disconnected | AlertKind::RiskGuard => palette::RED,
        AlertKind::NearLimit | AlertKind::Drift => palette::AMBER,
        AlertKind::Resnapshot => palette::DIM,
    }
}

fn alerts(model: &Model, ui: &mut Ui) {
    if model.alerts.is_empty() {
        ui.label(RichText::new("No alerts.").color(palette::DIM));
        return;
    }
    egui::ScrollArea::vertical().id_salt("alerts").max_height(170.0).auto_shrink([false, true]).show_rows(
        ui,
        ROW_HEIGHT,
        model.alerts.len(),
        |ui, range| {
            for alert in model.alerts.range(range) {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format::clock_utc(alert.at_unix_ms)).monospace().color(palette::DIM));
                    ui.label(RichText::new(alert.kind.label()).strong().color(alert_colour(alert.kind)));
                    ui.add(egui::Label::new(&alert.text).truncate()).on_hover_text(&alert.text);
                });
            }
        },
    );
}

fn time_axis(mark: egui_plot::GridMark, _range: &std::ops::RangeInclusive<f64>) -> String {
    #[allow(clippy::cast_possible_truncation)] // seconds since 1970 fit an i64 for ages
    let ms = (mark.value * 1_000.0) as i64;
    format::clock_utc(ms)
}

#[allow(clippy::cast_precision_loss)] // plot values only
fn latency_plot(model: &Model, ui: &mut Ui) {
    let latest = model.latency.fanout;
    ui.label(format!(
        "now p50 {} · p99 {} · p99.9 {} · max {} ({} samples) · {} signals, {} copies, {} rejects",
        format::nanos(latest.p50_ns),
        format::nanos(latest.p99_ns),
        format::nanos(latest.p999_ns),
        format::nanos(latest.max_ns),
        latest.samples,
        model.latency.signals,
        model.latency.copies,
        model.latency.rejects,
    ))
    .on_hover_text(
        "Signal accepted → every follower's order handed to its connector. The engine sends the percentiles of \
         its last window, not histogram buckets, so the plot shows those percentiles as they came: they cannot \
         be merged into percentiles over a longer time.",
    );
    let series = |pick: fn(&mirror_sdk::LatencyStats) -> u64| -> PlotPoints<'static> {
        model.latency_history.iter().map(|p| [p.at_unix_ms as f64 / 1_000.0, pick(&p.stats) as f64 / 1_000.0]).collect()
    };
    Plot::new("latency")
        .height(150.0)
        .legend(Legend::default())
        .x_axis_formatter(time_axis)
        .y_axis_label("µs")
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.line(Line::new("p50", series(|s| s.fanout.p50_ns)));
            plot.line(Line::new("p99", series(|s| s.fanout.p99_ns)));
            plot.line(Line::new("p99.9", series(|s| s.fanout.p999_ns)));
        });
}

fn copy_colour(state: CopyState) -> Color32 {
    match state {
        CopyState::Filled => palette::GREEN,
        CopyState::Copied | CopyState::Closing => Color32::LIGHT_BLUE,
        CopyState::Skipped => palette::AMBER,
        CopyState::Rejected => palette::RED,
    }
}

fn signals(app: &mut ManagerApp, ui: &mut Ui) {
    let model = &app.model;
    if model.signals.is_empty() {
        ui.label(RichText::new("No signal yet.").color(palette::DIM));
        return;
    }
    let kept: Vec<_> = model.signals_newest_first().collect();
    let mut clicked = None;
    TableBuilder::new(ui)
        .id_salt("signals")
        .striped(true)
        .max_scroll_height(150.0)
        .column(Column::exact(150.0))
        .column(Column::initial(180.0).clip(true))
        .columns(Column::exact(56.0), 4)
        .header(ROW_HEIGHT, |mut header| {
            for title in ["Signal", "What", "Filled", "Working", "Skipped", "Failed"] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(ROW_HEIGHT, kept.len(), |mut row| {
                let signal = kept[row.index()];
                let counts = signal.counts();
                row.col(|ui| {
                    let selected = app.selected_signal == Some(signal.signal);
                    if ui.selectable_label(selected, signal.signal.to_string()).clicked() {
                        clicked = Some(signal.signal);
                    }
                });
                row.col(|ui| match (&signal.refused, &signal.what) {
                    (Some(reason), what) => {
                        let text = format!("{} refused: {reason}", what.as_deref().unwrap_or_default());
                        ui.add(egui::Label::new(RichText::new(text.trim_start()).color(palette::RED)).truncate());
                    }
                    (None, Some(what)) => {
                        ui.add(egui::Label::new(what.as_str()).truncate());
                    }
                    (None, None) => {
                        ui.label(RichText::new("-").color(palette::DIM));
                    }
                });
                for (n, colour) in [
                    (counts.filled, palette::GREEN),
                    (counts.working, Color32::LIGHT_BLUE),
                    (counts.skipped, palette::AMBER),
                    (counts.failed, palette::RED),
                ] {
                    row.col(|ui| {
                        let text = RichText::new(n.to_string());
                        ui.label(if n > 0 { text.color(colour) } else { text.color(palette::DIM) });
                    });
                }
            });
        });
    if clicked.is_some() {
        app.selected_signal = clicked;
    }
    let Some(signal) = app.selected_signal.and_then(|s| app.model.signals.get(&s)) else { return };
    ui.label(RichText::new(format!("Signal {} by follower", signal.signal)).strong());
    egui::ScrollArea::vertical().id_salt("signal-followers").max_height(150.0).show(ui, |ui| {
        for (account, (state, detail)) in &signal.followers {
            ui.horizontal(|ui| {
                ui.label(app.model.account_name(*account));
                ui.label(RichText::new(format!("{state:?}")).color(copy_colour(*state)));
                if !detail.is_empty() {
                    ui.add(egui::Label::new(RichText::new(detail).color(palette::DIM)).truncate());
                }
            });
        }
    });
}

fn sort_key_cmp(column: SortColumn, a: &AccountRow, b: &AccountRow) -> std::cmp::Ordering {
    match column {
        SortColumn::Status => a.health().cmp(&b.health()),
        SortColumn::Name => std::cmp::Ordering::Equal,
        SortColumn::Platform => a.platform.cmp(&b.platform),
        SortColumn::Balance => a.state.balance.cmp(&b.state.balance),
        SortColumn::Equity => a.state.equity.cmp(&b.state.equity),
        SortColumn::Pnl => a.pnl_today().cmp(&b.pnl_today()),
        SortColumn::Drawdown => a
            .limit_used_pct()
            .unwrap_or(0)
            .cmp(&b.limit_used_pct().unwrap_or(0))
            .then(a.drawdown_bp().cmp(&b.drawdown_bp())),
        SortColumn::Open => a.state.positions.cmp(&b.state.positions),
        SortColumn::Latency => a.fill_latency_ns.cmp(&b.fill_latency_ns),
    }
}

/// The table's rows in order, recomputed only when the model, the sort or the filter changed.
pub(crate) fn ordered_rows(app: &mut ManagerApp) {
    let key = (app.model.version, app.table.sort, app.table.descending, app.table.filter.clone());
    if app.table.key.as_ref() == Some(&key) {
        return;
    }
    let filter = app.table.filter.trim().to_lowercase();
    let mut rows: Vec<&AccountRow> = app
        .model
        .accounts
        .values()
        .filter(|row| {
            filter.is_empty()
                || row.state.name.to_lowercase().contains(&filter)
                || row.platform.as_deref().is_some_and(|p| p.to_lowercase().contains(&filter))
                || row.health().label().contains(&filter)
        })
        .collect();
    let (column, descending) = (app.table.sort, app.table.descending);
    rows.sort_by(|a, b| {
        let order = sort_key_cmp(column, a, b);
        let order = if descending { order.reverse() } else { order };
        order.then_with(|| a.state.name.cmp(&b.state.name))
    });
    app.table.rows = rows.into_iter().map(|row| row.state.id).collect();
    app.table.key = Some(key);
}

fn header_button(app: &mut ManagerApp, ui: &mut Ui, title: &str, column: SortColumn, tip: &str) {
    let arrow = if app.table.sort == column { if app.table.descending { " v" } else { " ^" } } else { "" };
    let response = ui.add(egui::Button::new(RichText::new(format!("{title}{arrow}")).strong()).frame(false));
    let response = if tip.is_empty() { response } else { response.on_hover_text(tip) };
    if response.clicked() {
        if app.table.sort == column {
            app.table.descending = !app.table.descending;
        } else {
            app.table.sort = column;
            app.table.descending = matches!(column, SortColumn::Drawdown | SortColumn::Latency | SortColumn::Open);
        }
    }
}

const PNL_TIP: &str = "Equity now minus the first equity this app saw in the current trading day (the day starts at \
                       the engine's [engine] day_start_utc_hour). The state stream carries no day-start equity, so \
                       an app started mid-day counts from when it started.";
const DRAWDOWN_TIP: &str = "Fall from the highest equity this app saw today, as a percent of that high, against the \
                            account's limit from its [risk] profile in the engine's configuration \
                            (max_daily_drawdown_pct, flatten_group_at_drawdown_pct, daily_loss_limit). \"—\": no \
                            profile, or the configuration could not be read.";
const LATENCY_TIP: &str = "From a signal's first record on this account to its first fill (engine monotonic clock, \
                           from the log and fill timestamps), for the latest filled signal.";

fn coloured(text: impl Into<String>, colour: Option<Color32>) -> RichText {
    let text = RichText::new(text.into());
    match colour {
        Some(colour) => text.color(colour),
        None => text,
    }
}

fn accounts_table(app: &mut ManagerApp, ui: &mut Ui, height: f32) {
    ordered_rows(app);
    let rows = app.table.rows.clone();
    let mut clicked = None;
    let headers: [(&str, SortColumn, &str); 10] = [
        ("Account", SortColumn::Name, ""),
        ("Platform", SortColumn::Platform, ""),
        ("Status", SortColumn::Status, "Worst first: disconnected, frozen, at limit, close-only, paused, near limit"),
        ("Balance", SortColumn::Balance, ""),
        ("Equity", SortColumn::Equity, ""),
        ("P&L today", SortColumn::Pnl, PNL_TIP),
        ("Drawdown / limit", SortColumn::Drawdown, DRAWDOWN_TIP),
        ("Open", SortColumn::Open, "Open positions · live orders"),
        ("Last copy", SortColumn::Status, "The latest copy status of a signal on this account"),
        ("Fill latency", SortColumn::Latency, LATENCY_TIP),
    ];
    TableBuilder::new(ui)
        .id_salt("accounts")
        .striped(true)
        .max_scroll_height(height)
        .min_scrolled_height(height)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(135.0).at_least(90.0).clip(true))
        .column(Column::initial(62.0).clip(true))
        .column(Column::initial(88.0).clip(true))
        .column(Column::initial(92.0))
        .column(Column::initial(92.0))
        .column(Column::initial(84.0))
        .column(Column::initial(128.0).clip(true))
        .column(Column::initial(82.0))
        .column(Column::initial(150.0).clip(true))
        .column(Column::remainder().at_least(70.0).clip(true))
        .header(22.0, |mut header| {
            for (title, column, tip) in headers {
                header.col(|ui| {
                    if title == "Last copy" {
                        ui.strong(title).on_hover_text(tip);
                    } else {
                        header_button(app, ui, title, column, tip);
                    }
                });
            }
        })
        .body(|body| {
            body.rows(ROW_HEIGHT, rows.len(), |mut table_row| {
                let Some(row) = app.model.accounts.get(&rows[table_row.index()]) else { return };
                let health = row.health();
                let colour = health_colour(health);
                let selected = app.table.selected == Some(row.state.id);
                table_row.set_selected(selected);
                table_row.col(|ui| {
                    let name = coloured(&row.state.name, colour).strong();
                    if ui.selectable_label(selected, name).clicked() {
                        clicked = Some(row.state.id);
                    }
                });
                table_row.col(|ui| {
                    ui.label(row.platform.as_deref().unwrap_or("—"));
                });
                table_row.col(|ui| {
                    ui.label(coloured(health.label(), colour).strong());
                });
                table_row.col(|ui| {
                    ui.label(format::money(row.state.balance));
                });
                table_row.col(|ui| {
                    ui.label(format::money(row.state.equity));
                });
                table_row.col(|ui| {
                    let pnl = row.pnl_today();
                    let tint = match pnl.signum() {
                        1 => Some(palette::GREEN),
                        -1 => Some(palette::RED),
                        _ => None,
                    };
                    ui.label(coloured(format::signed_money(pnl), tint));
                });
                table_row.col(|ui| {
                    let used = row.limit_used_pct();
                    let tint = match used {
                        Some(u) if u >= 100 => Some(palette::RED),
                        Some(u) if u >= crate::model::NEAR_LIMIT_PCT => Some(palette::AMBER),
                        _ => None,
                    };
                    let text = format!("{} / {}", format::basis_points(row.drawdown_bp()), row.limit_text());
                    ui.label(coloured(text, tint));
                });
                table_row.col(|ui| {
                    ui.label(format!("{} pos · {} ord", row.state.positions, row.state.live_orders));
                });
                table_row.col(|ui| match &row.last_copy {
                    Some(copy) => {
                        let detail = if copy.detail.is_empty() { String::new() } else { format!(": {}", copy.detail) };
                        let text = format!("{:?}{detail}", copy.state);
                        ui.add(egui::Label::new(coloured(text.clone(), Some(copy_colour(copy.state)))).truncate())
                            .on_hover_text(text);
                    }
                    None => {
                        ui.label(RichText::new("—").color(palette::DIM));
                    }
                });
                table_row.col(|ui| {
                    ui.label(row.fill_latency_ns.map_or_else(|| "—".to_owned(), format::nanos));
                });
            });
        });
    if let Some(id) = clicked {
        app.table.selected = if app.table.selected == Some(id) { None } else { Some(id) };
    }
}

fn summary(model: &Model) -> String {
    let mut counts = [0usize; 7];
    for row in model.accounts.values() {
        counts[row.health() as usize] += 1;
    }
    let mut parts = vec![format!("{} accounts", model.accounts.len())];
    for health in
        [Health::Disconnected, Health::Frozen, Health::AtLimit, Health::CloseOnly, Health::Paused, Health::NearLimit]
    {
        let n = counts[health as usize];
        if n > 0 {
            parts.push(format!("{n} {}", health.label()));
        }
    }
    parts.join(" · ")
}

/// The accounts table and the selected account.
pub(crate) fn central(app: &mut ManagerApp, ui: &mut Ui) {
    ui.horizontal(|ui| {
        labelled_field(ui, "Filter", &mut app.table.filter, 180.0)
            .on_hover_text("Name, platform or status (disconnected, paused, frozen, …)");
        ui.label(RichText::new(summary(&app.model)).strong());
        let stream = match app.model.position {
            Some((_, seq)) => format!("stream at #{seq} · {} snapshot(s)", app.model.snapshots),
            None => "no state yet".into(),
        };
        ui.label(RichText::new(stream).color(palette::DIM));
        if let Some(problem) = app.config_problem() {
            ui.label(RichText::new(format!("configuration: {problem}")).color(palette::AMBER));
        }
    });
    let table_height = (ui.available_height() * 0.55).max(160.0);
    accounts_table(app, ui, table_height);
    ui.separator();
    detail(app, ui);
}

fn detail(app: &mut ManagerApp, ui: &mut Ui) {
    let Some(row) = app.table.selected.and_then(|id| app.model.accounts.get(&id)).cloned() else {
        ui.label(RichText::new("Select an account to see its positions, orders and equity.").color(palette::DIM));
        if app.detail_tab == DetailTab::Log {
            log_lines(&app.model, None, ui);
        } else if ui.button("Show the log").clicked() {
            app.detail_tab = DetailTab::Log;
        }
        return;
    };
    let id = row.state.id;
    let name = row.state.name.clone();
    let admin = app.role() == Some(Role::Admin);
    ui.horizontal(|ui| {
        ui.heading(&name);
        let health = row.health();
        ui.label(coloured(health.label(), health_colour(health)).strong());
        ui.label(RichText::new(format!("mode {}", row.state.mode)).color(palette::DIM));
        ui.separator();
        ui.add_enabled_ui(admin, |ui| {
            if ui.button("Pause account").clicked() {
                app.ask(
                    format!("Pause {name}?"),
                    format!(
                        "{name} stops taking new copies. Its open positions stay open and closes are still copied."
                    ),
                    Command::Pause(Some(id)),
                );
            }
            if ui.button("Resume account").clicked() {
                app.ask(
                    format!("Resume {name}?"),
                    format!("{name} copies new opens again."),
                    Command::Resume(Some(id)),
                );
            }
            if ui.button("Flatten account").clicked() {
                let open = app.model.positions_of(id).count();
                app.ask(
                    format!("Flatten {name}?"),
                    format!("The {open} open position(s) of {name} are closed at the market now."),
                    Command::Flatten(Some(id)),
                );
            }
        });
        ui.separator();
        ui.selectable_value(&mut app.detail_tab, DetailTab::Trading, "Positions & orders");
        ui.selectable_value(&mut app.detail_tab, DetailTab::Log, "Log");
    });
    if app.detail_tab == DetailTab::Log {
        log_lines(&app.model, Some(id), ui);
        return;
    }
    let now_unix_ms = (app.clock)();
    ui.columns(2, |columns| {
        positions_and_orders(&app.model, id, &mut columns[0]);
        equity_plot(&row, now_unix_ms, &mut columns[1]);
    });
}

fn side_words(side: Side) -> &'static str {
    match side {
        Side::Buy => "Buy",
        Side::Sell => "Sell",
    }
}

fn order_colour(status: OrderStatus) -> Option<Color32> {
    match status {
        OrderStatus::Filled => Some(palette::GREEN),
        OrderStatus::Rejected | OrderStatus::NotSent => Some(palette::RED),
        OrderStatus::Unknown => Some(palette::AMBER),
        _ => None,
    }
}

fn positions_and_orders(model: &Model, account: u32, ui: &mut Ui) {
    let positions: Vec<_> = model.positions_of(account).collect();
    ui.strong(format!("Positions ({})", positions.len()));
    egui::ScrollArea::vertical().id_salt("positions").max_height(110.0).auto_shrink([false, true]).show(ui, |ui| {
        egui::Grid::new("positions-grid").striped(true).num_columns(7).show(ui, |ui| {
            for title in ["Symbol", "Side", "Qty", "Open", "SL", "TP", "Bid / ask"] {
                ui.label(RichText::new(title).color(palette::DIM));
            }
            ui.end_row();
            for p in positions {
                ui.label(&p.symbol);
                ui.label(coloured(
                    side_words(p.side),
                    Some(if p.side == Side::Buy { palette::GREEN } else { palette::RED }),
                ));
                ui.label(format::qty(p.qty));
                ui.label(format::price(p.open_price));
                ui.label(p.stop_loss.map_or_else(|| "—".into(), format::price));
                ui.label(p.take_profit.map_or_else(|| "—".into(), format::price));
                let quote = model.quotes.get(&(account, p.symbol.clone()));
                ui.label(
                    quote
                        .map_or_else(|| "—".into(), |q| format!("{} / {}", format::price(q.bid), format::price(q.ask))),
                );
                ui.end_row();
            }
        });
    });
    ui.add_space(4.0);
    let orders: Vec<_> = model.orders_of(account).take(200).collect();
    ui.strong(format!("Orders, live then recent ({})", orders.len()));
    egui::ScrollArea::vertical().id_salt("orders").auto_shrink([false, false]).show_rows(
        ui,
        ROW_HEIGHT,
        orders.len(),
        |ui, range| {
            for order in &orders[range] {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(&order.client_id).monospace());
                    let what = match (order.side, order.position) {
                        (Some(side), _) => format!("{} {} {}", side_words(side), format::qty(order.qty), order.symbol),
                        (None, Some(position)) => format!("close {} of {position}", format::qty(order.qty)),
                        (None, None) => format!("close {} {}", format::qty(order.qty), order.symbol),
                    };
                    ui.label(what);
                    ui.label(coloured(format!("{:?}", order.status), order_colour(order.status)));
                    ui.label(format!("filled {}", format::qty(order.filled)));
                    if !order.reason.is_empty() {
                        ui.label(RichText::new(&order.reason).color(palette::RED));
                    }
                });
            }
        },
    );
}

fn equity_plot(row: &AccountRow, now_unix_ms: i64, ui: &mut Ui) {
    ui.strong(format!(
        "Equity {} · P&L today {} · peak today {}",
        format::money(row.state.equity),
        format::signed_money(row.pnl_today()),
        format::money(row.peak_equity)
    ));
    // Equity only arrives when it changes: the curve is carried flat to now.
    #[allow(clippy::cast_precision_loss)] // plot values only
    let now = [now_unix_ms as f64 / 1_000.0, row.equity_history.back().map_or(0.0, |p| p[1])];
    let carried = row.equity_history.back().filter(|last| last[0] < now[0]).map(|_| now);
    let points: PlotPoints<'_> = row.equity_history.iter().copied().chain(carried).collect();
    Plot::new(("equity", row.state.id)).x_axis_formatter(time_axis).allow_scroll(false).show(ui, |plot| {
        plot.line(Line::new("equity", points));
    });
}

fn log_lines(model: &Model, account: Option<u32>, ui: &mut Ui) {
    let lines: Vec<_> =
        model.logs.iter().rev().filter(|l| account.is_none_or(|a| l.account == a)).take(2_000).collect();
    ui.label(RichText::new(format!("{} latest log lines, newest first", lines.len())).color(palette::DIM));
    egui::ScrollArea::vertical().id_salt("log").auto_shrink([false, false]).show_rows(
        ui,
        ROW_HEIGHT,
        lines.len(),
        |ui, range| {
            for line in &lines[range] {
                let colour = match line.level {
                    mirror_sdk::LogLevel::Warn => Some(palette::AMBER),
                    mirror_sdk::LogLevel::Debug => Some(palette::DIM),
                    mirror_sdk::LogLevel::Info => None,
                };
                ui.add(egui::Label::new(coloured(&line.text, colour).monospace()).truncate());
            }
        },
    );
}

/// The manual ticket.
pub(crate) fn ticket_window(app: &mut ManagerApp, ui: &mut Ui) {
    let mut open = app.ticket.open;
    egui::Window::new("Manual ticket")
        .open(&mut open)
        .resizable(false)
        .default_width(360.0)
        .default_pos([1100.0, 90.0])
        .show(ui.ctx(), |ui| {
            let form = &mut app.ticket.form;
            egui::Grid::new("ticket-grid").num_columns(2).spacing([10.0, 6.0]).show(ui, |ui| {
                labelled_field(ui, "Symbol", &mut form.symbol, 140.0);
                ui.end_row();
                ui.label("Side");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut form.side, Side::Buy, "Buy");
                    ui.selectable_value(&mut form.side, Side::Sell, "Sell");
                });
                ui.end_row();
                labelled_field(ui, "Quantity", &mut form.qty, 140.0);
                ui.end_row();
                ui.label("Type");
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut form.kind, Kind::Market, "Market");
                    ui.selectable_value(&mut form.kind, Kind::Limit, "Limit");
                    ui.selectable_value(&mut form.kind, Kind::Stop, "Stop");
                });
                ui.end_row();
                if form.kind != Kind::Market {
                    labelled_field(ui, "Price", &mut form.price, 140.0);
                    ui.end_row();
                }
                labelled_field(ui, "Stop loss", &mut form.stop_loss, 140.0);
                ui.end_row();
                labelled_field(ui, "Take profit", &mut form.take_profit, 140.0);
                ui.end_row();
            });
            ui.add_space(4.0);
            ui.label(
                RichText::new(format!(
                    "Sent as {}. The ticket names no target accounts and no risk sizing: each follower sizes it by its \
                 own link.",
                    app.source_words()
                ))
                .color(palette::DIM)
                .small(),
            );
            ui.add_space(4.0);
            let sending = matches!(app.ticket.status, Some(TicketStatus::Sending(_)));
            if ui.add_enabled(!sending, egui::Button::new(RichText::new("Send").strong())).clicked() {
                app.check_ticket();
            }
            match &app.ticket.status {
                None => {}
                Some(TicketStatus::Invalid(problem)) => {
                    ui.label(RichText::new("Not sent, a field is wrong:").color(palette::RED));
                    ui.label(RichText::new(problem).color(palette::RED));
                }
                Some(TicketStatus::Sending(_)) => {
                    ui.label(RichText::new("Sent; waiting for the engine…").color(palette::AMBER));
                }
                Some(TicketStatus::Accepted(signal)) => {
                    ui.label(RichText::new(format!("Accepted as signal {signal}")).color(palette::GREEN));
                }
                Some(TicketStatus::Refused { code, message }) => {
                    let code = code.map(|c| format!(" ({c:?})")).unwrap_or_default();
                    ui.label(RichText::new(format!("Refused by the engine{code}:")).color(palette::RED));
                    ui.label(RichText::new(message).color(palette::RED));
                }
            }
        });
    app.ticket.open = open;
}
