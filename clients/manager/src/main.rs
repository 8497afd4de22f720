//! `mirror-manager`: Mirror's Trading Manager.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use mirror_manager::{ManagerApp, Profile, default_path};

/// Mirror's Trading Manager: every account at a glance, its positions, orders and copy status;
/// pause, resume, flatten and manual tickets.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The gateway's address (`127.0.0.1:7443`); without it, the most recent remembered one.
    #[arg(long)]
    server: Option<String>,
    /// The gateway certificate's SHA-256 fingerprint (64 hex digits).
    #[arg(long, conflicts_with = "fingerprint_file")]
    fingerprint: Option<String>,
    /// A file holding the fingerprint (`data/gateway/gateway-fingerprint.txt`).
    #[arg(long)]
    fingerprint_file: Option<PathBuf>,
    /// The environment variable holding the token.
    #[arg(long)]
    token_env: Option<String>,
    /// Remembered connections file (default `$XDG_CONFIG_HOME/mirror/manager.toml`).
    #[arg(long)]
    connections: Option<PathBuf>,
    /// Connect at start (the default when the token's variable is set).
    #[arg(long)]
    connect: bool,
    /// Select this account once it is known.
    #[arg(long)]
    select: Option<String>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let mut app = ManagerApp::new(args.connections.or_else(default_path));
    let given = args.server.is_some() || args.fingerprint.is_some() || args.fingerprint_file.is_some();
    if given {
        let mut profile = app.connection.profile.clone();
        if let Some(server) = args.server {
            profile.address = server;
        }
        if let Some(fingerprint) = args.fingerprint {
            profile.fingerprint = fingerprint;
        }
        if let Some(path) = args.fingerprint_file {
            let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
            profile.fingerprint = text.trim().to_owned();
        }
        app.connection.profile = profile;
    }
    app.select_when_known = args.select;
    if let Some(token_env) = args.token_env {
        app.connection.profile.token_env = token_env;
    }
    if app.connection.profile.server_name.is_empty() {
        app.connection.profile.server_name = Profile::default_server_name();
    }
    let connect_now =
        args.connect || (!app.connection.profile.address.is_empty() && app.connection.profile.token().is_ok());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Mirror Trading Manager")
            .with_inner_size([1600.0, 1000.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Mirror Trading Manager",
        options,
        Box::new(move |cc| {
            if connect_now {
                app.connect(Some(cc.egui_ctx.clone()));
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the window: {e}"))
}
