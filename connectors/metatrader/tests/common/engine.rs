//! The real engine, built by hand (as `mirror_engine::app` does for simulated accounts) with
//! bridge connectors: each account boots from its connector, and its tasks are wired with
//! `spawn_account_tasks`.

use std::sync::Arc;
use std::time::Duration;

use mirror_connector::Connector;
use mirror_connector_metatrader::MtBridge;
use mirror_engine::account::{AccountSetup, RiskLimits};
use mirror_engine::connectors::{AccountWiring, ConnectorSettings, boot, spawn_account_tasks};
use mirror_engine::router::LinkSpec;
use mirror_engine::runtime::{Engine, EngineBuilder, EngineHandle, RuntimeSettings};
use mirror_model::{AccountId, InstrumentTable, LinkRules, Origin};
use tokio::task::JoinHandle;

pub struct Running {
    engine: Option<Engine>,
    pub handle: EngineHandle,
    tasks: Vec<JoinHandle<()>>,
}

pub fn id(name: &str) -> AccountId {
    AccountId::from_name(name)
}

/// Starts an engine whose accounts are the bridge's terminals `names`, linked leader →
/// follower by `links`. Every terminal must be online (its simulator started) first.
pub async fn start(bridge: &MtBridge, names: &[String], links: Vec<(String, String, LinkRules)>) -> Running {
    let settings = ConnectorSettings {
        call_timeout: Duration::from_secs(5),
        boot_timeout: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(100),
        reconnect_max: Duration::from_secs(1),
    };
    let connectors: Vec<(String, Arc<dyn Connector>)> = names
        .iter()
        .map(|name| (name.clone(), Arc::new(bridge.connector(name).expect("configured")) as Arc<dyn Connector>))
        .collect();
    let mut boots = Vec::new();
    for (name, connector) in &connectors {
        let booted = boot(connector.as_ref(), settings).await;
        assert!(booted.error.is_none(), "{name} did not boot: {:?}", booted.error);
        boots.push(booted);
    }
    let runtime = RuntimeSettings { shards: 1, spin_iterations: 100, pin_cores: false, ..RuntimeSettings::default() };
    let mut builder = EngineBuilder::new(runtime);
    for ((name, _), booted) in connectors.iter().zip(&boots) {
        let session = booted.session.as_ref().expect("booted connected");
        builder = builder.account(AccountSetup {
            id: id(name),
            name: Arc::from(name.as_str()),
            mode: session.mode,
            instruments: InstrumentTable::from_iter(booted.instruments.iter().copied()),
            balance: booted.snapshot.balance,
            equity: booted.snapshot.equity,
            risk: RiskLimits::default(),
            inbound: Vec::new(),
            is_leader: false,
            connected: true,
            positions: booted.positions.clone(),
        });
    }
    for (leader, follower, rules) in links {
        builder = builder.link(LinkSpec {
            leader: Origin::Account(id(&leader)),
            follower: id(&follower),
            rules: Arc::new(rules),
        });
    }
    let (engine, queues) = builder.start().expect("engine starts");
    let handle = engine.handle();
    let mut tasks = Vec::new();
    for ((name, connector), (account, commands)) in connectors.into_iter().zip(queues) {
        assert_eq!(id(&name), account);
        let mailbox = handle.mailbox(account).expect("every account has a mailbox");
        let wiring = AccountWiring {
            account,
            name: Arc::from(name.as_str()),
            connector,
            commands,
            mailbox,
            engine: handle.clone(),
            connected: true,
            // These scenarios are about trading: no quote traffic beside it.
            symbols: Vec::new(),
        };
        tasks.extend(spawn_account_tasks(wiring, settings));
    }
    Running { engine: Some(engine), handle, tasks }
}

impl Running {
    pub async fn stop(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(engine) = self.engine.take() {
            tokio::task::spawn_blocking(move || engine.shutdown()).await.unwrap();
        }
    }
}
