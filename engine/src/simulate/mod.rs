//! `mirror-engine simulate`: the broker platforms a configuration names, simulated, so that
//! `mirror-engine run` on the same configuration can be tried without a broker.
//!
//! - One cTrader Open API server per `[ctrader.<session>]` endpoint (`host:port`), holding the
//!   accounts the configuration names under the session's credentials and tokens. Its
//!   certificate is self-signed: it is written where the session's `ca_file` points, for the
//!   engine to trust.
//! - One simulated MetaTrader terminal per MT4/MT5 account, dialling the engine's bridge with
//!   the account's token, as the EA does.
//! - Prices move on every simulator together (one random walk per market of the catalog, every
//!   `[sim] tick_ms`), and accounts with `autotrade` trade by hand at their terminal.
//!
//! Simulated accounts (`platform = "sim"`) are not served here: `run` holds them itself.

mod trader;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mirror_connector_ctrader::{CtraderSimulator, SimAccount, SimSymbol, SimulatorConfig};
use mirror_connector_metatrader::sim::{SimSymbol as TerminalSymbol, SimTls, TerminalSim, TerminalSimConfig};
use mirror_model::{AccountMode, InstrumentSpec, Money, SCALE, Symbol};
use tokio::task::JoinHandle;

use crate::config::{CtraderEndpoint, Resolved, ResolvedAccount, Venue};
use crate::platforms::ctrader::{certificate_pem, read_certificates};
use crate::platforms::{Credentials, CtraderCredentials};
use crate::secrets::CredentialVars;
use trader::{CtraderSymbol, Desk, Markets, spawn_market, spawn_trader};

/// The names the cTrader simulator's self-signed certificate carries.
const CTRADER_CERTIFICATE_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];
/// The balance every simulated cTrader or MetaTrader account starts with.
const STARTING_BALANCE: i64 = 100_000;
/// The magic number the simulated EAs put on Mirror's orders (the EA's default).
const MAGIC: u64 = 7_460_531;

/// `mirror-engine simulate`.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Configuration file (the one `mirror-engine run` is given).
    #[arg(long, short, default_value = "config/platforms-demo.toml")]
    pub config: PathBuf,
    /// The bridge address the terminals dial (default: `[metatrader] listen`, on loopback when
    /// it listens on every address).
    #[arg(long)]
    pub bridge: Option<SocketAddr>,
    /// With a TLS bridge: the name its certificate is checked against.
    #[arg(long, default_value = "localhost")]
    pub bridge_server_name: String,
    /// Do not trade the accounts that have `autotrade`.
    #[arg(long)]
    pub no_trade: bool,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<u64>,
}

/// How to simulate.
#[derive(Debug, Default)]
pub struct SimulateOptions {
    /// The bridge address the terminals dial (default: from `[metatrader] listen`).
    pub bridge: Option<SocketAddr>,
    /// With a TLS bridge: the name its certificate is checked against (default `localhost`).
    pub bridge_server_name: Option<String>,
    /// Trade the accounts that have `autotrade`.
    pub trade: bool,
    /// Values for `env:` credential references, instead of the process environment.
    pub credential_vars: Option<CredentialVars>,
}

/// One simulated cTrader server.
#[derive(Debug)]
struct CtraderServer {
    sessions: Vec<String>,
    simulator: CtraderSimulator,
    symbols: Arc<BTreeMap<Symbol, CtraderSymbol>>,
}

/// The simulated platforms of a configuration, running.
#[derive(Debug)]
pub struct Simulation {
    ctrader: Vec<CtraderServer>,
    terminals: BTreeMap<String, Arc<TerminalSim>>,
    /// cTrader accounts by name: the server's index and the account's id.
    ctrader_accounts: BTreeMap<String, (usize, i64)>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the simulators of every cTrader session and MetaTrader terminal in `resolved`.
pub async fn start(resolved: &Resolved, options: SimulateOptions) -> anyhow::Result<Simulation> {
    let mut credentials = Credentials::resolve(resolved, options.credential_vars.as_ref())?;
    let markets = Markets::new(&resolved.markets);
    let mut simulation = Simulation {
        ctrader: Vec::new(),
        terminals: BTreeMap::new(),
        ctrader_accounts: BTreeMap::new(),
        tasks: Vec::new(),
    };
    start_ctrader(resolved, &mut credentials, &markets, &mut simulation).await?;
    start_terminals(resolved, &mut credentials, &markets, &options, &mut simulation)?;

    if let Some(every) = resolved.sim.tick_interval {
        let ctrader = simulation.ctrader.iter().map(|s| (s.simulator.clone(), Arc::clone(&s.symbols))).collect();
        let terminals = resolved
            .accounts
            .iter()
            .filter_map(|a| Some((Arc::clone(simulation.terminals.get(&a.name)?), Arc::new(own_symbols(a)))))
            .collect();
        simulation.tasks.push(spawn_market(markets.clone(), every, resolved.sim.seed, ctrader, terminals));
    }
    if options.trade {
        for account in resolved.accounts.iter().filter(|a| a.venue != Venue::Sim) {
            let (Some((config, seed)), Some(desk)) = (&account.autotrade, simulation.desk(account)) else { continue };
            simulation.tasks.push(spawn_trader(account.name.clone(), desk, markets.clone(), config.clone(), *seed));
        }
    }
    Ok(simulation)
}

/// An account's own symbols and, for each, its spec and the market that prices it.
fn own_symbols(account: &ResolvedAccount) -> BTreeMap<Symbol, (InstrumentSpec, Symbol)> {
    account.instruments.iter().map(|i| (i.spec.symbol, (i.spec, i.feed))).collect()
}

async fn start_ctrader(
    resolved: &Resolved,
    credentials: &mut Credentials,
    markets: &Markets,
    simulation: &mut Simulation,
) -> anyhow::Result<()> {
    // Sessions on one endpoint share one server, and so must share one application.
    let mut by_endpoint: BTreeMap<&CtraderEndpoint, Vec<&crate::config::ResolvedCtrader>> = BTreeMap::new();
    for session in &resolved.ctrader {
        by_endpoint.entry(&session.endpoint).or_default().push(session);
    }
    for (endpoint, sessions) in by_endpoint {
        let names: Vec<String> = sessions.iter().map(|s| s.name.clone()).collect();
        let described = format!("cTrader session{} `{}`", if names.len() > 1 { "s" } else { "" }, names.join("`, `"));
        let CtraderEndpoint::Address { host, port } = endpoint else {
            anyhow::bail!("{described}: {endpoint} is Spotware's; simulate serves only `host:port` endpoints");
        };
        let bind = tokio::net::lookup_host((host.as_str(), *port))
            .await
            .with_context(|| format!("{described}: resolving {endpoint}"))?
            .next()
            .with_context(|| format!("{described}: {endpoint} resolves to no address"))?;
        let mut application: Option<(String, String)> = None;
        let mut accounts = Vec::new();
        let mut symbols: BTreeMap<Symbol, CtraderSymbol> = BTreeMap::new();
        let mut listed: Vec<SimSymbol> = Vec::new();
        for session in &sessions {
            let name = session.server_name.as_deref().unwrap_or(host);
            anyhow::ensure!(
                CTRADER_CERTIFICATE_NAMES.contains(&name),
                "[ctrader.{}]: the simulator's certificate names {}; set server_name = \"localhost\"",
                session.name,
                CTRADER_CERTIFICATE_NAMES.join(" and ")
            );
            anyhow::ensure!(
                session.ca_file.is_some(),
                "[ctrader.{}]: give ca_file: the simulator's certificate is self-signed, and it is written there for \
                 the engine to trust",
                session.name
            );
            let secrets: CtraderCredentials = credentials.ctrader.remove(&session.name).expect("resolved");
            let app = (secrets.client_id.expose().to_owned(), secrets.client_secret.expose().to_owned());
            match &application {
                Some(first) if *first != app => anyhow::bail!(
                    "{described} share {endpoint} with different applications (client_id, client_secret): one \
                     simulator serves one application"
                ),
                _ => application = Some(app),
            }
            for account in &resolved.accounts {
                let Venue::Ctrader { session: of, ctid_trader_account_id } = &account.venue else { continue };
                if *of != session.name {
                    continue;
                }
                let mut simulated = SimAccount::new(*ctid_trader_account_id, secrets.access_token.expose());
                if let Some(refresh) = &secrets.refresh_token {
                    simulated.refresh_token = refresh.expose().to_owned();
                }
                simulated.hedged = account.mode == AccountMode::Hedging;
                simulated.balance = Money::from_units(STARTING_BALANCE).unwrap_or(Money::ZERO);
                accounts.push(simulated);
                simulation
                    .ctrader_accounts
                    .insert(account.name.clone(), (simulation.ctrader.len(), *ctid_trader_account_id));
                for instrument in &account.instruments {
                    if symbols.contains_key(&instrument.spec.symbol) {
                        continue;
                    }
                    let id = i64::try_from(symbols.len()).unwrap_or(0) + 1;
                    let Some((bid, ask)) = markets.quote(&instrument.feed) else { continue };
                    match ctrader_symbol(&instrument.spec, id) {
                        Ok((lot_size, mut symbol)) => {
                            (symbol.bid, symbol.ask) = (bid, ask);
                            listed.push(symbol);
                            let spec = instrument.spec;
                            symbols.insert(spec.symbol, CtraderSymbol { id, feed: instrument.feed, spec, lot_size });
                        }
                        Err(why) => {
                            let symbol = instrument.spec.symbol;
                            tracing::warn!(%symbol, %why, "not listed by the cTrader simulator");
                        }
                    }
                }
            }
        }
        let (client_id, client_secret) = application.expect("at least one session per endpoint");
        let mut config = SimulatorConfig::new(&client_id, &client_secret);
        config.bind = bind;
        config.accounts = accounts;
        config.symbols = listed;
        let simulator = CtraderSimulator::start(config).await.with_context(|| format!("{described} on {bind}"))?;
        let pem = certificate_pem(&simulator.certificate_der());
        for session in &sessions {
            let path = session.ca_file.as_ref().expect("checked above");
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(path, &pem).with_context(|| format!("writing ca_file {}", path.display()))?;
        }
        tracing::info!(%bind, sessions = %names.join(", "), symbols = symbols.len(), "cTrader simulator listening");
        simulation.ctrader.push(CtraderServer { sessions: names, simulator, symbols: Arc::new(symbols) });
    }
    Ok(())
}

/// A catalog instrument as a cTrader symbol (in cTrader's units: prices in steps of
/// 10^-digits, volumes in cents of a unit), with its lot size; or why it cannot be one.
fn ctrader_symbol(spec: &InstrumentSpec, id: i64) -> Result<(i64, SimSymbol), String> {
    let digits = u32::from(spec.digits.min(8));
    if spec.tick_size.raw() != 10i64.pow(8 - digits) {
        return Err(format!("cTrader prices move in steps of 10^-digits; the tick size {} is not one", spec.tick_size));
    }
    let cents = i128::from(spec.contract_size.raw()) * 100;
    if cents % i128::from(SCALE) != 0 {
        return Err(format!("the contract size {} is not a whole number of cents", spec.contract_size));
    }
    let lot_size = i64::try_from(cents / i128::from(SCALE)).map_err(|_| "contract size out of range".to_owned())?;
    let volume = |qty: mirror_model::Qty| {
        let raw = i128::from(qty.raw()) * i128::from(lot_size);
        (raw % i128::from(SCALE) == 0)
            .then(|| i64::try_from(raw / i128::from(SCALE)).ok())
            .flatten()
            .ok_or_else(|| format!("{qty} lots is not a whole volume"))
    };
    let name = spec.symbol.as_str();
    let letters = name.len() >= 6 && name.bytes().take(6).all(|b| b.is_ascii_uppercase());
    let mut symbol = SimSymbol::fx(id, name, spec.tick_size, spec.tick_size);
    symbol.base_asset = if letters { name[..3].to_owned() } else { name.to_owned() };
    symbol.quote_asset = if letters { name[3..6].to_owned() } else { "USD".to_owned() };
    symbol.digits = i32::try_from(digits).unwrap_or(5);
    symbol.pip_position = symbol.digits.saturating_sub(1);
    symbol.lot_size = lot_size;
    symbol.min_volume = volume(spec.min_qty)?;
    symbol.step_volume = volume(spec.lot_step)?;
    symbol.max_volume = volume(spec.max_qty)?;
    Ok((lot_size, symbol))
}

fn start_terminals(
    resolved: &Resolved,
    credentials: &mut Credentials,
    markets: &Markets,
    options: &SimulateOptions,
    simulation: &mut Simulation,
) -> anyhow::Result<()> {
    let Some(bridge) = &resolved.metatrader else { return Ok(()) };
    let address = options.bridge.unwrap_or_else(|| {
        let mut address = bridge.listen;
        if address.ip().is_unspecified() {
            address.set_ip(if address.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        address
    });
    let tls = match &bridge.tls {
        Some((cert, _)) => {
            let certificate_der = read_certificates(cert)?.swap_remove(0);
            let server_name = options.bridge_server_name.clone().unwrap_or_else(|| "localhost".to_owned());
            Some(SimTls { certificate_der, server_name })
        }
        None => None,
    };
    for (index, account) in resolved.accounts.iter().enumerate() {
        let Venue::MetaTrader { login } = account.venue else { continue };
        let token = credentials.accounts.remove(&account.id).context("an MT account has its token")?;
        let symbols = account
            .instruments
            .iter()
            .filter_map(|instrument| {
                let (bid, ask) = markets.quote(&instrument.feed)?;
                let spread = mirror_model::Price::from_raw(ask.raw() - bid.raw());
                Some(TerminalSymbol { spec: instrument.spec, bid, spread })
            })
            .collect();
        let ordinal = u64::try_from(index).unwrap_or(0) + 1;
        let terminal = TerminalSim::start(TerminalSimConfig {
            name: account.name.clone(),
            platform: account.platform,
            mode: account.mode,
            login: login.unwrap_or(50_000_000 + ordinal),
            currency: "USD".into(),
            balance: Money::from_units(STARTING_BALANCE).unwrap_or(Money::ZERO),
            token: token.expose().to_owned(),
            bridge: address,
            tls: tls.clone(),
            symbols,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(2),
            magic: MAGIC,
            first_ticket: 1_000_000 * ordinal,
        });
        let (name, platform) = (&account.name, account.platform);
        tracing::info!(terminal = %name, %platform, bridge = %address, "simulated terminal dialling");
        simulation.terminals.insert(account.name.clone(), Arc::new(terminal));
    }
    Ok(())
}

impl Simulation {
    /// The cTrader simulator serving a session.
    pub fn ctrader(&self, session: &str) -> Option<&CtraderSimulator> {
        self.ctrader.iter().find(|s| s.sessions.iter().any(|n| n == session)).map(|s| &s.simulator)
    }

    /// A cTrader account's simulator and id, by account name.
    pub fn ctrader_account(&self, account: &str) -> Option<(&CtraderSimulator, i64)> {
        let (server, id) = self.ctrader_accounts.get(account)?;
        Some((&self.ctrader[*server].simulator, *id))
    }

    /// The simulated terminal of an MT4/MT5 account.
    pub fn terminal(&self, account: &str) -> Option<&TerminalSim> {
        self.terminals.get(account).map(AsRef::as_ref)
    }

    fn desk(&self, account: &ResolvedAccount) -> Option<Desk> {
        if let Some((server, id)) = self.ctrader_accounts.get(&account.name) {
            let server = &self.ctrader[*server];
            return Some(Desk::Ctrader {
                simulator: server.simulator.clone(),
                account: *id,
                symbols: Arc::clone(&server.symbols),
            });
        }
        let terminal = self.terminals.get(&account.name)?;
        Some(Desk::Terminal { terminal: Arc::clone(terminal), specs: Arc::new(own_symbols(account)) })
    }

    /// One line per simulated account: positions held, and whether a terminal is connected.
    pub fn summary(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, (server, id)) in &self.ctrader_accounts {
            let held = self.ctrader[*server].simulator.positions(*id).len();
            lines.push(format!("{name:<16} cTrader {id:<10} {held} positions"));
        }
        for (name, terminal) in &self.terminals {
            let link = if terminal.is_connected() { "connected" } else { "not connected" };
            lines.push(format!("{name:<16} terminal {link:<14} {} positions", terminal.positions().len()));
        }
        lines
    }

    /// Stops trading and moving prices, drops the terminals and stops the servers.
    pub fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.terminals.clear();
        for server in &self.ctrader {
            server.simulator.shutdown();
        }
    }
}

/// Runs `mirror-engine simulate` until Ctrl-C (or `--duration`).
#[allow(clippy::print_stdout)]
pub fn run(args: &SimulateArgs) -> ExitCode {
    let resolved = match crate::config::load(&args.config) {
        Ok(resolved) => resolved,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,mirror_engine=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let options = SimulateOptions {
            bridge: args.bridge,
            bridge_server_name: Some(args.bridge_server_name.clone()),
            trade: !args.no_trade,
            credential_vars: None,
        };
        let simulation = start(&resolved, options).await?;
        for server in &simulation.ctrader {
            println!(
                "cTrader Open API simulator on {} for [ctrader.{}]",
                server.simulator.addr(),
                server.sessions.join("], [ctrader.")
            );
        }
        for session in &resolved.ctrader {
            if let Some(path) = &session.ca_file {
                println!("  its certificate, for the engine to trust: {}", path.display());
            }
        }
        if !simulation.terminals.is_empty() {
            println!("{} MetaTrader terminal(s) dialling the engine's bridge", simulation.terminals.len());
        }
        let config = args.config.display();
        println!("Now start the engine on the same configuration: mirror-engine run --config {config}");
        let duration = args.duration.map(Duration::from_secs);
        let elapsed = async move {
            match duration {
                Some(duration) => tokio::time::sleep(duration).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(elapsed);
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                biased;
                _ = tokio::signal::ctrl_c() => break,
                () = &mut elapsed => break,
                _ = ticker.tick() => {
                    println!("--");
                    for line in simulation.summary() {
                        println!("{line}");
                    }
                }
            }
        }
        simulation.stop();
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
