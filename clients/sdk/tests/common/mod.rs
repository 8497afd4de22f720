//! A demo engine in this process: the simulated broker with ES and NQ futures, a source
//! `algo` copied one for one by N followers, telemetry (for state streams and pairs), and the
//! QUIC gateway on a free loopback port with a self-signed certificate. Shared by the
//! integration tests, the examples (when no engine is given) and the bench.

#![allow(dead_code, unreachable_pub, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use mirror_connector::Connector;
use mirror_connector_sim::{SimAccountConfig, SimBroker, SimConfig, SimConnector, SimInstrument, SimMarket};
use mirror_engine::account::{AccountSetup, RiskLimits};
use mirror_engine::connectors::{AccountWiring, ConnectorSettings, boot, spawn_account_tasks};
use mirror_engine::gateway::{Gateway, GatewayLimits, GatewaySettings, GatewayToken, Role, spawn_gateway};
use mirror_engine::router::LinkSpec;
use mirror_engine::runtime::{CorePlan, Engine, EngineBuilder, RuntimeSettings};
use mirror_engine::telemetry::{FanoutDone, Stats, TelemetryHandle, spawn_telemetry};
use mirror_model::{
    AccountId, AccountMode, InstrumentKind, InstrumentSpec, InstrumentTable, LinkRules, Money, Origin, Position, Price,
    Qty, SizingRule, SourceId, Symbol,
};
use mirror_sdk::{ClientConfig, Trust};

pub const TRADER_TOKEN: &str = "trader-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";

pub fn sym(text: &str) -> Symbol {
    Symbol::new(text).unwrap()
}

pub fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

pub fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

fn future(symbol: &str, tick_value: &str) -> SimInstrument {
    SimInstrument {
        spec: InstrumentSpec {
            symbol: sym(symbol),
            kind: InstrumentKind::Future,
            contract_size: q("1"),
            tick_size: p("0.25"),
            tick_value: Money::parse(tick_value).unwrap(),
            lot_step: q("1"),
            min_qty: q("1"),
            max_qty: q("100"),
            digits: 2,
        },
        feed: sym(symbol),
    }
}

fn market(symbol: &str, bid: &str) -> SimMarket {
    SimMarket { symbol: sym(symbol), bid: p(bid), tick_size: p("0.25"), spread_ticks: 1, volatility_ticks: 2 }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Followers of the source.
    pub followers: usize,
    /// Followers whose broker account does not trade NQ (their NQ orders are rejected by the
    /// broker, while the engine believes they trade it).
    pub without_nq: Vec<usize>,
    /// Gateway limits.
    pub limits: GatewayLimits,
    /// Prices move on their own (the demo) or only when told (tests).
    pub ticking: bool,
    /// Also send every fan-out completion here.
    pub observer: Option<flume::Sender<FanoutDone>>,
    /// The engine's clock (default: the system clock), so that a benchmark can read the
    /// fan-out's own timestamps against its own.
    pub clock: Option<Arc<dyn mirror_engine::clock::Clock>>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            followers: 3,
            without_nq: Vec::new(),
            limits: GatewayLimits { hello_timeout: Duration::from_millis(800), ..GatewayLimits::default() },
            ticking: false,
            observer: None,
            clock: None,
        }
    }
}

/// A follower's id, broker login, connector and the symbols its actor trades.
type FollowerConnector = (AccountId, String, Arc<dyn Connector>, Vec<Symbol>);

pub struct Demo {
    pub engine: Option<Engine>,
    pub telemetry: Option<TelemetryHandle>,
    pub gateway: Option<Gateway>,
    pub broker: SimBroker,
    pub source: Origin,
    /// Engine id and broker login of each follower.
    pub followers: Vec<(AccountId, String)>,
    _dir: tempfile::TempDir,
}

pub fn follower_id(index: usize) -> AccountId {
    AccountId(100 + u32::try_from(index).unwrap())
}

impl Demo {
    pub async fn start(options: DemoOptions) -> Self {
        let sim =
            SimConfig { tick_interval: options.ticking.then(|| Duration::from_millis(250)), ..SimConfig::default() };
        let broker = SimBroker::new(sim, [market("ES", "5000.00"), market("NQ", "18000.00")]);
        let settings = ConnectorSettings { call_timeout: Duration::from_secs(5), ..ConnectorSettings::default() };
        let source = Origin::Source(SourceId(1));
        let mut builder = EngineBuilder::new(RuntimeSettings {
            shards: 1,
            pin_cores: false,
            spin_iterations: 100,
            ..RuntimeSettings::default()
        })
        .source(source, [sym("ES"), sym("NQ")]);
        let mut names = rustc_hash::FxHashMap::default();
        let mut connectors: Vec<FollowerConnector> = Vec::new();
        let rules = Arc::new(LinkRules {
            sizing: SizingRule::Multiplier { ratio: mirror_model::Ratio::ONE },
            ..LinkRules::default()
        });
        for index in 0..options.followers {
            let login = format!("f{index:03}");
            let mut instruments = vec![future("ES", "12.5")];
            if !options.without_nq.contains(&index) {
                instruments.push(future("NQ", "5"));
            }
            broker
                .open_account(SimAccountConfig {
                    name: login.clone(),
                    mode: AccountMode::Hedging,
                    currency: "USD".into(),
                    balance: Money::parse("100000").unwrap(),
                    instruments,
                })
                .unwrap();
            let connector: Arc<dyn Connector> = Arc::new(SimConnector::new(broker.clone(), &login).unwrap());
            let booted = boot(connector.as_ref(), settings).await;
            assert!(booted.error.is_none(), "{login} did not boot: {:?}", booted.error);
            // The engine believes every follower trades NQ.
            let mut table: Vec<InstrumentSpec> = booted.instruments.clone();
            if !table.iter().any(|s| s.symbol == sym("NQ")) {
                table.push(future("NQ", "5").spec);
            }
            let symbols: Vec<Symbol> = table.iter().map(|spec| spec.symbol).collect();
            let id = follower_id(index);
            names.insert(id, Arc::<str>::from(login.as_str()));
            builder = builder
                .account(AccountSetup {
                    id,
                    name: Arc::from(login.as_str()),
                    mode: AccountMode::Hedging,
                    instruments: InstrumentTable::from_iter(table),
                    balance: booted.snapshot.balance,
                    equity: booted.snapshot.equity,
                    risk: RiskLimits::default(),
                    inbound: Vec::new(),
                    is_leader: false,
                    connected: true,
                    positions: booted.positions.clone(),
                })
                .link(LinkSpec { leader: source, follower: id, rules: Arc::clone(&rules) });
            connectors.push((id, login, connector, symbols));
        }
        let stats = Stats::new();
        let telemetry =
            spawn_telemetry(names, Arc::clone(&stats), 65_536, Duration::from_secs(60), CorePlan::default());
        builder = builder.stats(stats).telemetry(telemetry.sink());
        if let Some(clock) = options.clock {
            builder = builder.clock(clock);
        }
        if let Some(observer) = options.observer {
            builder = builder.observer(observer);
        }
        let (engine, queues) = builder.start().unwrap();
        let handle = engine.handle();
        for (account, commands) in queues {
            let (_, login, connector, symbols) = connectors.iter().find(|(id, ..)| *id == account).unwrap();
            spawn_account_tasks(
                AccountWiring {
                    account,
                    name: Arc::from(login.as_str()),
                    connector: Arc::clone(connector),
                    commands,
                    mailbox: handle.mailbox(account).unwrap(),
                    engine: handle.clone(),
                    connected: true,
                    symbols: symbols.clone(),
                },
                settings,
            );
        }
        if options.ticking {
            broker.start_ticker();
        }
        let dir = tempfile::tempdir().unwrap();
        let token = |name: &str, secret: &str, role: Role| GatewayToken {
            name: name.into(),
            secret: secret.into(),
            role,
            source: Some(source),
        };
        let mut gateway_settings = GatewaySettings::new(
            "127.0.0.1:0".parse().unwrap(),
            dir.path().join("gateway"),
            vec![
                token("bot", TRADER_TOKEN, Role::Trader),
                token("ops", ADMIN_TOKEN, Role::Admin),
                token("screen", VIEWER_TOKEN, Role::Viewer),
            ],
        );
        gateway_settings.limits = options.limits;
        let gateway = spawn_gateway(handle, gateway_settings).unwrap();
        let followers = connectors.into_iter().map(|(id, login, ..)| (id, login)).collect();
        Self {
            engine: Some(engine),
            telemetry: Some(telemetry),
            gateway: Some(gateway),
            broker,
            source,
            followers,
            _dir: dir,
        }
    }

    pub fn gateway(&self) -> &Gateway {
        self.gateway.as_ref().unwrap()
    }

    pub fn client_config(&self, token: &str) -> ClientConfig {
        let gateway = self.gateway();
        let mut config =
            ClientConfig::new(gateway.local_addr(), Trust::Fingerprint(gateway.cert_fingerprint().into()), token);
        config.stream_timeout = Duration::from_secs(3);
        config
    }

    pub fn positions(&self, follower: usize) -> Vec<Position> {
        self.broker.positions(&self.followers[follower].1).unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown().await;
        }
        let engine = self.engine.take();
        let telemetry = self.telemetry.take();
        tokio::task::spawn_blocking(move || {
            if let Some(engine) = engine {
                engine.shutdown();
            }
            if let Some(telemetry) = telemetry {
                telemetry.stop();
            }
        })
        .await
        .unwrap();
    }
}

/// Polls until `done` holds; panics after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
