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
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set (or run with --demo)"))
}

/// `--demo`: an engine with 5 simulated followers in this process. Otherwise the engine at
/// `MIRROR_GATEWAY` (host:port), pinned by `MIRROR_FINGERPRINT`, with `MIRROR_TOKEN`.
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
    let server = env("MIRROR_GATEWAY")?.parse()?;
    let mut config = ClientConfig::new(server, Trust::Fingerprint(env("MIRROR_FINGERPRINT")?), env("MIRROR_TOKEN")?);
    config.client_name = name.into();
    config.request_timeout = Duration::from_secs(20);
    let client = Client::connect(config).await?;
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
