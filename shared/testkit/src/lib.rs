//! What the desktop apps' tests share: an engine run in the test's process, as `mirror-engine
//! run` runs it (from a configuration file, its journal in a temporary folder, its QUIC gateway
//! on a free loopback port with a self-signed certificate), and the configuration blocks the
//! tests write their configurations from. The apps are then driven against it over real QUIC.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config;
use mirror_engine::secrets::CredentialVars;
use mirror_model::Qty;
use mirror_sdk::{ClientConfig, Trust};

/// Longest wait for anything in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// `[engine]`: one unpinned shard that spins briefly (the tests share two cores).
pub const ENGINE: &str = "
[engine]
shards = 1
spin_iterations = 100
pin_cores = false
";

/// `[sim]`: a simulated broker that answers at once, at the price, with no ticking.
pub const SIM_INSTANT: &str = "
[sim]
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 0
slippage_ticks_max = 0
";

/// `[instruments.ES]`: the E-mini S&P 500 future, one contract steps, at 5000.
pub const ES: &str = r#"
[instruments.ES]
kind = "future"
contract_size = 50
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 5000
"#;

/// `[instruments.NQ]`: the E-mini Nasdaq-100 future, at 18000.
pub const NQ: &str = r#"
[instruments.NQ]
kind = "future"
contract_size = 20
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 18000
"#;

/// An engine running in this process with its gateway, stopped when dropped.
pub struct InProcessEngine {
    /// The runtime the engine's tasks run on (tests use it to drive SDK clients too).
    pub runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    config: String,
    file: PathBuf,
    tokens: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl InProcessEngine {
    /// Starts `config` (everything but `[storage]` and `[gateway]`, which this adds) with the
    /// gateway on a free port. `tokens` give the values of `env:` references, as
    /// `(variable, value)`.
    pub fn start(config: &str, tokens: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut engine = Self {
            runtime,
            running: None,
            config: config.to_owned(),
            file: dir.path().join("mirror.toml"),
            tokens: tokens.iter().map(|(var, value)| ((*var).to_owned(), (*value).to_owned())).collect(),
            dir,
        };
        engine.restart("127.0.0.1:0");
        engine
    }

    /// Starts the engine again with the gateway on `listen` (after [`InProcessEngine::stop`]:
    /// the same address, certificate and journal).
    pub fn restart(&mut self, listen: &str) {
        assert!(self.running.is_none(), "the engine runs already");
        let dir = self.dir.path();
        let text = format!(
            "{}\n[storage]\ndir = {:?}\n\n[gateway]\nlisten = {listen:?}\ncert_dir = {:?}\n",
            self.config,
            dir.join("data").display().to_string(),
            dir.join("gateway").display().to_string(),
        );
        std::fs::write(&self.file, text).expect("the configuration file written");
        let resolved = config::load(&self.file).unwrap_or_else(|e| panic!("{e}"));
        let vars = self.tokens.iter().fold(CredentialVars::new(), |vars, (var, value)| vars.with(var, value));
        let options = StartOptions { credential_vars: Some(vars), ..StartOptions::default() };
        self.running = Some(self.runtime.block_on(start(&resolved, options)).unwrap_or_else(|e| panic!("{e:#}")));
    }

    /// Stops the engine; the gateway's address, to start it again on.
    pub fn stop(&mut self) -> String {
        let running = self.running.take().expect("the engine runs");
        let listen = running.gateway_addr().expect("the gateway runs").to_string();
        self.runtime.block_on(running.stop());
        listen
    }

    /// The running engine.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("the engine runs")
    }

    /// The configuration file it was started from (a live apply rewrites it).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The gateway's address.
    pub fn gateway_address(&self) -> String {
        self.running().gateway_addr().expect("the gateway runs").to_string()
    }

    /// The gateway certificate's SHA-256 fingerprint (hex).
    pub fn fingerprint(&self) -> String {
        self.running().gateway_fingerprint().expect("the gateway runs").to_owned()
    }

    /// An SDK client configuration for `token`, trusting the gateway by its fingerprint.
    pub fn client_config(&self, token: &str) -> ClientConfig {
        let address = self.running().gateway_addr().expect("the gateway runs");
        ClientConfig::new(address, Trust::Fingerprint(self.fingerprint()), token)
    }

    /// What a desktop app connects with: this gateway, its fingerprint, and the token read from
    /// `token_env` (the apps never hold a token in their profile).
    pub fn desk_profile(&self, token_env: &str) -> mirror_desk::Profile {
        mirror_desk::Profile {
            address: self.gateway_address(),
            fingerprint: self.fingerprint(),
            token_env: token_env.to_owned(),
            server_name: "localhost".into(),
        }
    }

    /// Net quantity of `symbol` the simulated broker holds for `account` (short negative).
    pub fn holds(&self, account: &str, symbol: &str) -> Qty {
        let positions = self.running().broker().positions(account).expect("a simulated account");
        positions.iter().filter(|p| p.symbol.as_str() == symbol).fold(Qty::ZERO, |sum, p| match p.side {
            mirror_model::Side::Buy => sum + p.qty,
            mirror_model::Side::Sell => sum - p.qty,
        })
    }
}

impl Drop for InProcessEngine {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.stop());
        }
    }
}
