//! `mirror-map`: Mirror's Map Editor.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use mirror_map::{MapApp, Profile, default_path};

/// Mirror's Map Editor: the copy map as a graph; draw and edit links, check them, see what
/// changes against the running engine and apply it live; undo/redo, TOML import and export.
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
    /// The environment variable holding the token (an admin token to apply).
    #[arg(long)]
    token_env: Option<String>,
    /// Remembered connections file (default `$XDG_CONFIG_HOME/mirror/map.toml`).
    #[arg(long)]
    connections: Option<PathBuf>,
    /// Open this configuration file to edit (offline, or to compare with the engine's).
    #[arg(long)]
    open: Option<PathBuf>,
    /// Select this link once the map is read (`leader,follower`).
    #[arg(long)]
    select_link: Option<String>,
    /// Connect at start (the default when a server is known and the token's variable is set).
    #[arg(long)]
    connect: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args = Args::parse();
    let mut app = MapApp::new(args.connections.or_else(default_path));
    if let Some(server) = args.server {
        app.connection.profile.address = server;
    }
    if let Some(fingerprint) = args.fingerprint {
        app.connection.profile.fingerprint = fingerprint;
    }
    if let Some(path) = args.fingerprint_file {
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        app.connection.profile.fingerprint = text.trim().to_owned();
    }
    if let Some(token_env) = args.token_env {
        app.connection.profile.token_env = token_env;
    }
    if app.connection.profile.server_name.is_empty() {
        app.connection.profile.server_name = Profile::default_server_name();
    }
    if let Some(path) = &args.open {
        app.open_file(path);
    }
    if let Some(link) = &args.select_link {
        let (leader, follower) =
            link.split_once(',').with_context(|| format!("--select-link {link:?}: write it as leader,follower"))?;
        app.select_link(leader.trim(), follower.trim());
    }
    let connect_now =
        args.connect || (!app.connection.profile.address.is_empty() && app.connection.profile.token().is_ok());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("Mirror Map Editor").with_inner_size([1600.0, 1000.0]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "Mirror Map Editor",
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
