//! `mirror-logs`: the Log Viewer's window.
//!
//! ```text
//! mirror-logs [--file logs/mirror.2026-11-04-09.jsonl]
//!             [--server 127.0.0.1:7443 --fingerprint file:data/gateway/gateway-fingerprint.txt
//!              --token-env MIRROR_DEMO_DESK_TOKEN]
//! ```

use std::path::PathBuf;

use clap::Parser;
use mirror_logs::{AppOptions, ConnectionSpec, LogsApp, Settings};

/// Mirror's Log Viewer: the engine's log lines live over QUIC, or from its JSON log files.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A log file to open (JSON lines, as the engine writes under logs/).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Connect at start to this gateway (host:port, UDP).
    #[arg(long)]
    server: Option<String>,
    /// The gateway certificate's SHA-256 (64 hex digits), or file:<path> of
    /// gateway-fingerprint.txt.
    #[arg(long, default_value = "file:data/gateway/gateway-fingerprint.txt")]
    fingerprint: String,
    /// The environment variable that holds the token (the token itself is never an argument).
    #[arg(long, default_value = "MIRROR_TOKEN")]
    token_env: String,
    /// Lines held per source (the oldest go first).
    #[arg(long, default_value_t = mirror_logs::DEFAULT_CAPACITY)]
    keep: usize,
    /// Remember connections in this file instead of $XDG_CONFIG_HOME/mirror/logs.toml.
    #[arg(long)]
    settings: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let connect = args.server.map(|server| ConnectionSpec {
        server,
        fingerprint: args.fingerprint.clone(),
        token_env: args.token_env.clone(),
    });
    let options = AppOptions {
        file: args.file,
        connect,
        settings_path: args.settings.or_else(Settings::default_path),
        capacity: args.keep,
    };
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("Mirror Log Viewer").with_inner_size([1560.0, 940.0]),
        ..Default::default()
    };
    eframe::run_native("Mirror Log Viewer", native, Box::new(move |_cc| Ok(Box::new(LogsApp::new(options)))))
        .map_err(|e| anyhow::anyhow!("the window could not be opened: {e}"))
}
