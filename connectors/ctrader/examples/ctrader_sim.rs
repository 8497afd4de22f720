//! Runs the cTrader simulator on loopback for a while, for outside clients (the official
//! Python SDK check in `scripts/official_sdk_check.py`).
//!
//! `cargo run -p mirror-connector-ctrader --example ctrader_sim -- [port] [seconds]`
//! prints one line `READY port=<port> client_id=… client_secret=… access_token=… account=…`,
//! then, when the time is up, every order the broker recorded.

// An example prints what a client needs to connect.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use mirror_connector_ctrader::{CtraderSimulator, SimAccount, SimSymbol, SimulatorConfig};
use mirror_model::Price;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let seconds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(60);
    let mut config = SimulatorConfig::new("sdk-check-app", "sdk-check-secret");
    config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    config.symbols = vec![SimSymbol::fx(1, "EURUSD", Price::parse("1.08500")?, Price::parse("1.08508")?)];
    config.accounts = vec![SimAccount::new(1_001, "sdk-check-token")];
    let simulator = CtraderSimulator::start(config).await?;
    println!(
        "READY port={} client_id=sdk-check-app client_secret=sdk-check-secret access_token=sdk-check-token account=1001",
        simulator.addr().port()
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for order in simulator.orders(1_001) {
        println!("ORDER {order:?}");
    }
    println!("STATS {:?}", simulator.stats());
    simulator.shutdown();
    Ok(())
}
