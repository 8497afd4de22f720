//! What both bots share: connecting to a running engine (from the environment), or to a demo
//! engine started in this process (`--demo`).

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use mirror_sdk::{Client, ClientConfig, Trust};

#[path = "../../tests/common/mod.rs"]
mod demo;

pub use demo::Demo;

/// The connection, and the demo engine when one was started here (keep it alive).
pub struct Session {
    pub client: Client,
    pub demo: Option<Demo>,
}

/// The value after `--name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip_while(|a| a != name);
    args.next()?;
    args.next()
}

pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn env(name: &str) -> anyhow::Result<String> {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(anyhow::anyhow!(
            "{name} is not set: export MIRROR_GATEWAY (host:port), MIRROR_FINGERPRINT (the engine prints it; with \
             cert_dir it is also in <cert_dir>/gateway-fingerprint.txt) and MIRROR_TOKEN for an engine whose \
             [gateway] is on (config/demo.toml: see the README's \"Algo trading over QUIC\"), or run with --demo"
        )),
    }
}

/// `--demo`: an engine with 5 simulated followers in this process. Otherwise the engine at
/// `MIRROR_GATEWAY` (host:port), pinned by `MIRROR_FINGERPRINT` (64 hex digits), with
/// `MIRROR_TOKEN`: `mirror-engine run --config config/demo.toml` with
/// `MIRROR_DEMO_GATEWAY_TOKEN` exported, for instance.
pub async fn connect(name: &str) -> anyhow::Result<Session> {
    if flag("--demo") {
        let demo = Demo::start(demo::DemoOptions {
            followers: 5,
            without_nq: vec![4],
            ticking: true,
            ..demo::DemoOptions::default()
        })
        .await;
        let mut config = demo.client_config(demo::TRADER_TOKEN);
        config.client_name = name.into();
        let client = Client::connect(config).await?;
        println!("demo engine: 5 followers of source `algo` (f004's broker does not trade NQ)");
        return Ok(Session { client, demo: Some(demo) });
    }
    let server: std::net::SocketAddr = env("MIRROR_GATEWAY")?.trim().parse().map_err(|error| {
        anyhow::anyhow!("MIRROR_GATEWAY: expected an IP address and port such as 127.0.0.1:7443 ({error})")
    })?;
    let fingerprint = env("MIRROR_FINGERPRINT")?.trim().to_owned();
    let mut config = ClientConfig::new(server, Trust::Fingerprint(fingerprint), env("MIRROR_TOKEN")?);
    config.client_name = name.into();
    config.request_timeout = Duration::from_secs(20);
    let client = Client::connect(config).await?;
    println!("connected to {server}");
    Ok(Session { client, demo: None })
}

impl Session {
    pub async fn stop(self) {
        self.client.close().await;
        if let Some(demo) = self.demo {
            demo.stop().await;
        }
    }
}
