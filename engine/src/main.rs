//! `mirror-engine`: run Mirror, check a configuration, manage secrets, replay the journal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mirror_engine::app::{StartOptions, start};
use mirror_engine::config;
use mirror_engine::store::PgSettings;
use mirror_engine::telemetry::{Console, init_logging};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mirror: one signal in, many correctly sized follower orders out.
#[derive(Parser, Debug)]
#[command(name = "mirror-engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the engine (Ctrl-C stops it cleanly).
    Run {
        /// Configuration file.
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration: Option<u64>,
    },
    /// Validate a configuration: prints every problem with file, line, field and reason,
    /// and exits with status 2 if there is one.
    Check {
        /// Configuration file.
        file: PathBuf,
    },
    /// Manage encrypted broker credentials and API keys (values are never printed).
    Secrets(mirror_engine::secrets::cli::SecretsArgs),
    /// Rebuild every account's state from the journal alone and print it, for audits.
    Replay(mirror_engine::replay::ReplayArgs),
    /// Serve simulators of the cTrader sessions and MetaTrader terminals a configuration
    /// names, so that `run` on it can be tried without a broker (start this first).
    Simulate(mirror_engine::simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { file } => check(&file),
        Command::Secrets(args) => mirror_engine::secrets::cli::run(args),
        Command::Replay(args) => mirror_engine::replay::run(&args),
        Command::Simulate(args) => mirror_engine::simulate::run(&args),
        Command::Run { config, duration } => run(&config, duration.map(Duration::from_secs)),
    }
}

#[allow(clippy::print_stdout)]
fn check(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(resolved) => {
            let leaders = resolved.links.iter().map(|l| l.leader).collect::<std::collections::BTreeSet<_>>().len();
            println!(
                "✓ {}: {} accounts, {} sources, {} leaders, {} links, {} instruments ({} file{})",
                file.display(),
                resolved.accounts.len(),
                resolved.sources.len(),
                leaders,
                resolved.links.len(),
                resolved.catalog.len(),
                resolved.files.len(),
                if resolved.files.len() == 1 { "" } else { "s" }
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("✗ {}: {} problem{}", file.display(), errors.0.len(), if errors.0.len() == 1 { "" } else { "s" });
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::print_stdout)]
fn run(path: &std::path::Path, duration: Option<Duration>) -> ExitCode {
    let resolved = match config::load(path) {
        Ok(resolved) => resolved,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let console = Console::stdout();
    let _log_guard = match init_logging(&resolved.logging, console.clone()) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("cannot start logging: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The shards own their cores; tokio (connectors, timers) gets the rest, at least one.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = cores.saturating_sub(resolved.runtime.shards).max(1);
    // Tokio's threads stay off the shards' cores.
    let plan = mirror_engine::runtime::CorePlan::new(&resolved.runtime);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .on_thread_start(move || plan.pin_io(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let postgres = PgSettings::from_env()?;
        let mut running =
            start(&resolved, StartOptions { ticker: true, autotrade: true, postgres, ..StartOptions::default() })
                .await?;
        if let Some(addr) = running.metatrader_addr() {
            match running.metatrader_thumbprint() {
                Some(thumbprint) => {
                    println!("MetaTrader bridge on {addr} (TLS; the EAs' CertThumbprint: {thumbprint})");
                }
                None => println!("MetaTrader bridge on {addr} (plain TCP)"),
            }
        }
        if let (Some(addr), Some(fingerprint)) = (running.gateway_addr(), running.gateway_fingerprint()) {
            println!("gateway listening on {addr}, certificate fingerprint {fingerprint}");
            if let Some(mirror_engine::gateway::Identity::Generated { dir, .. }) =
                resolved.gateway.as_ref().map(|g| &g.identity)
            {
                let file = dir.join(mirror_engine::gateway::FINGERPRINT_FILE);
                println!("  mirror-sdk clients pin the fingerprint (MIRROR_FINGERPRINT); it is also in {}", file.display());
            }
            for off in running.gateway_tokens_off() {
                println!("  gateway token `{}` is off (optional): {}", off.token, off.reason);
            }
        }
        if let Some(addr) = running.http_addr() {
            let webhooks = resolved.http.as_ref().map_or(0, |h| h.webhooks.len());
            let scheme = if resolved.http.as_ref().is_some_and(|h| h.tls.is_some()) { "https" } else { "http" };
            let api = if resolved.http.as_ref().is_some_and(|h| h.auth.is_some()) {
                "the API under /api/v1 (tokens: /oauth/token), /api/v1/openapi.json"
            } else {
                "/api/v1/health; the API needs [http.auth]"
            };
            println!("HTTP listening on {scheme}://{addr} ({api}, /metrics, {webhooks} webhooks)");
        }
        for drop in running.file_drops() {
            let dir = std::path::absolute(drop.dir()).unwrap_or_else(|_| drop.dir().to_path_buf());
            println!("file drop `{}` watching {} (.csv and .json files)", drop.name(), dir.display());
        }
        let accounts = running.accounts().await;
        tracing::info!(
            config = %path.display(),
            accounts = accounts.len(),
            links = resolved.links.len(),
            shards = resolved.runtime.shards,
            logs = %resolved.logging.dir.display(),
            "Mirror is running; Ctrl-C stops it"
        );
        let mut ticker = tokio::time::interval(resolved.status_interval);
        let stop_at = duration.map(|d| tokio::time::Instant::now() + d);
        loop {
            tokio::select! {
                biased;
                _ = tokio::signal::ctrl_c() => break,
                _ = async { if let Some(at) = stop_at { tokio::time::sleep_until(at).await } else { std::future::pending().await } } => break,
                _ = ticker.tick() => console.set_status(&running.status().await.to_string()),
            }
        }
        console.set_status(&running.status().await.to_string());
        console.finish();
        tracing::info!("stopping: leaders halted, letting orders in flight finish");
        let drops: Vec<_> = running.file_drops().iter().map(|d| (d.name().to_owned(), d.counts())).collect();
        running.halt_feeds().await;
        let accounts = running.accounts().await;
        let final_status = running.status().await;
        running.stop().await;
        console.finish();
        println!("{final_status}");
        for (name, counts) in drops {
            let files = |n: u64| if n == 1 { "file" } else { "files" };
            println!(
                "file drop `{name}`: {} {} processed ({} signals), {} {} rejected",
                counts.processed,
                files(counts.processed),
                counts.signals,
                counts.rejected,
                files(counts.rejected)
            );
        }
        println!("{:<16} {:>12} {:>12} {:>9} {:>6}  mode", "account", "balance", "equity", "positions", "legs");
        for view in accounts {
            println!(
                "{:<16} {:>12} {:>12} {:>9} {:>6}  {}{}",
                view.name,
                view.summary.balance.to_string(),
                view.summary.equity.to_string(),
                view.summary.positions,
                view.summary.legs,
                view.summary.mode,
                if view.summary.paused { " (paused)" } else { "" }
            );
        }
        Ok::<_, anyhow::Error>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
