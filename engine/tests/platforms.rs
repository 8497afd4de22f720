//! cTrader and MetaTrader accounts selected in the configuration, as a user runs them: the
//! engine is started from configuration text through `mirror_engine::app::start`, against the
//! platforms' simulators on loopback (a cTrader Open API server trusted through `ca_file`,
//! simulated MT4/MT5 terminals dialling the bridge the engine opened). What is checked is what
//! each simulator holds.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use mirror_connector_ctrader::{CtraderSimulator, ManualOrder, SimAccount, SimSymbol, SimulatorConfig};
use mirror_connector_metatrader::client_id_of_comment;
use mirror_connector_metatrader::sim::{SimSymbol as TerminalSymbol, TerminalSim, TerminalSimConfig};
use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config::{self, Resolved};
use mirror_engine::secrets::CredentialVars;
use mirror_engine::simulate::{self, SimulateOptions};
use mirror_model::{
    AccountId, AccountMode, ClientOrderId, InstrumentKind, InstrumentSpec, Money, OrderKind, Platform, Price, Qty,
    Side, Symbol,
};

const WAIT: Duration = Duration::from_secs(15);

const MARKETS: &str = r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false

[connector]
boot_timeout_ms = 15000

[sim]
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 0
slippage_ticks_max = 0

[instruments.EURUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.08500"
spread_ticks = 8
volatility_ticks = 0
"#;

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

fn p(text: &str) -> Price {
    Price::parse(text).unwrap()
}

fn eurusd() -> Symbol {
    Symbol::new("EURUSD").unwrap()
}

/// A loopback port free now (the OS picks it; it is released at once for the code under test).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn resolve(dir: &Path, text: &str) -> Resolved {
    let storage = format!("\n[storage]\ndir = {:?}\n", dir.join("data").display().to_string());
    config::load_str(Path::new("platforms.toml"), &format!("{MARKETS}{storage}{text}"))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `check` until it holds, or fails after `WAIT` with what was last seen.
async fn eventually<T: std::fmt::Debug>(what: &str, mut seen: impl FnMut() -> T, done: impl Fn(&T) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = seen();
        if done(&now) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; last seen: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn account_of(client_id: &ClientOrderId) -> AccountId {
    client_id.account
}

fn ctrader_held(simulator: &CtraderSimulator, account: i64) -> Vec<(Side, Qty)> {
    simulator.positions(account).iter().map(|p| (p.side, p.qty)).collect()
}

fn terminal_held(terminal: &TerminalSim) -> Vec<(Side, Qty)> {
    terminal.positions().iter().map(|p| (p.side, p.qty)).collect()
}

fn sim_held(running: &Running, account: &str) -> Vec<(Side, Qty)> {
    running.broker().positions(account).unwrap().iter().map(|p| (p.side, p.qty)).collect()
}

/// The PEM the engine reads from `ca_file`, for a certificate the test holds as DER.
fn write_ca(path: &Path, der: &[u8]) {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    std::fs::write(path, format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n")))
        .unwrap();
}

fn ctrader_simulator_config(accounts: Vec<SimAccount>) -> SimulatorConfig {
    let mut config = SimulatorConfig::new("app-id", "app-secret");
    config.symbols = vec![SimSymbol::fx(1, "EURUSD", p("1.08500"), p("1.08508"))];
    config.accounts = accounts;
    config
}

fn ctrader_session(name: &str, port: u16, token_var: &str, ca_file: &Path) -> String {
    format!(
        "\n[ctrader.{name}]\nendpoint = \"127.0.0.1:{port}\"\nclient_id = \"env:APP_ID\"\nclient_secret = \
         \"env:APP_SECRET\"\naccess_token = \"env:{token_var}\"\nca_file = {:?}\nserver_name = \"localhost\"\n",
        ca_file.display().to_string()
    )
}

fn account(name: &str, platform: &str, extra: &str) -> String {
    format!("\n[[accounts]]\nname = \"{name}\"\nplatform = \"{platform}\"\nmode = \"hedging\"\n{extra}\n")
}

fn link(leader: &str, follower: &str, ratio: &str) -> String {
    format!(
        "\n[[links]]\nleader = \"{leader}\"\nfollower = \"{follower}\"\nsizing = {{ mode = \"multiplier\", ratio = \
         {ratio} }}\n"
    )
}

fn terminal(name: &str, platform: Platform, token: &str, bridge_port: u16, index: u64) -> TerminalSim {
    let spec = InstrumentSpec {
        symbol: eurusd(),
        kind: InstrumentKind::Forex,
        contract_size: q("100000"),
        tick_size: p("0.00001"),
        tick_value: Money::parse("1").unwrap(),
        lot_step: q("0.01"),
        min_qty: q("0.01"),
        max_qty: q("50"),
        digits: 5,
    };
    TerminalSim::start(TerminalSimConfig {
        name: name.to_owned(),
        platform,
        mode: AccountMode::Hedging,
        login: 7_000_000 + index,
        currency: "USD".into(),
        balance: Money::parse("50000").unwrap(),
        token: token.to_owned(),
        bridge: ([127, 0, 0, 1], bridge_port).into(),
        tls: None,
        symbols: vec![TerminalSymbol { spec, bid: p("1.08500"), spread: p("0.00008") }],
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(400),
        magic: 7_460_531,
        first_ticket: 1_000_000 * (index + 1),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_leader_is_copied_to_ctrader_and_metatrader_followers_that_run_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (ctrader_port, bridge_port) = (free_port(), free_port());
    let ca_file = dir.path().join("ctrader-ca.pem");
    let text = format!(
        "{}\n[metatrader]\nlisten = \"127.0.0.1:{bridge_port}\"\n{}{}{}{}{}{}{}{}{}",
        ctrader_session("desk", ctrader_port, "DESK_TOKEN", &ca_file),
        account("leader", "sim", "balance = 100000"),
        account("ct-1", "ctrader", "ctrader = \"desk\"\nctrader_account = 2001"),
        account("ct-2", "ctrader", "ctrader = \"desk\"\nctrader_account = 2002"),
        account("mt5-1", "mt5", "credentials = \"env:MT5_TOKEN\""),
        account("mt4-1", "mt4", "credentials = \"env:MT4_TOKEN\""),
        link("leader", "ct-1", "1"),
        link("leader", "ct-2", "2"),
        link("leader", "mt5-1", "1"),
        link("leader", "mt4-1", "0.5"),
    );
    let resolved = resolve(dir.path(), &text);
    let vars = CredentialVars::new()
        .with("APP_ID", "desk-app")
        .with("APP_SECRET", "desk-app-secret")
        .with("DESK_TOKEN", "desk-access-token")
        .with("MT5_TOKEN", "mt5-terminal-token-0123456789")
        .with("MT4_TOKEN", "mt4-terminal-token-0123456789");
    // What `mirror-engine simulate` serves for this configuration: the cTrader server (its
    // certificate written to ca_file) and the terminals, which dial until the bridge is up.
    let simulation = simulate::start(
        &resolved,
        SimulateOptions { credential_vars: Some(vars.clone()), ..SimulateOptions::default() },
    )
    .await
    .unwrap();
    assert!(ca_file.exists(), "the simulator's certificate is where ca_file points");
    let mut running =
        start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() }).await.unwrap();
    assert_eq!(running.boot_failures(), [], "every account came up");
    assert_eq!(running.metatrader_addr().map(|a| a.port()), Some(bridge_port));
    running.reconciled().await;
    assert!(running.accounts().await.iter().all(|a| a.summary.connected));

    let (ctrader, _) = simulation.ctrader_account("ct-1").unwrap();
    let (mt5, mt4) = (simulation.terminal("mt5-1").unwrap(), simulation.terminal("mt4-1").unwrap());
    let all = || (ctrader_held(ctrader, 2001), ctrader_held(ctrader, 2002), terminal_held(mt5), terminal_held(mt4));
    let holding = |ct1: &str, ct2: &str, mt5: &str, mt4: &str| {
        let one = |qty: &str| vec![(Side::Buy, q(qty))];
        (one(ct1), one(ct2), one(mt5), one(mt4))
    };

    // The leader opens 0.4 lot: ratio 1, 2, 1 and 0.5.
    running.broker().manual_order("leader", eurusd(), Side::Buy, q("0.4"), OrderKind::Market, None, None).unwrap();
    let expected = holding("0.4", "0.8", "0.4", "0.2");
    eventually("the copies", all, |held| *held == expected).await;

    // A quarter closed: every copy closes a quarter of itself.
    let position = running.broker().positions("leader").unwrap()[0].id;
    running.broker().manual_close("leader", position, q("0.1")).unwrap();
    let expected = holding("0.3", "0.6", "0.3", "0.15");
    eventually("the partial closes", all, |held| *held == expected).await;

    // The rest: every follower is flat.
    running.broker().manual_close("leader", position, q("0.3")).unwrap();
    let flat = (vec![], vec![], vec![], vec![]);
    eventually("the closes", all, |held| *held == flat).await;

    // Each follower's broker got exactly an open, a partial close and a close, each under
    // Mirror's client id for that follower.
    for (name, ctid) in [("ct-1", 2001), ("ct-2", 2002)] {
        let orders = ctrader.orders(ctid);
        assert_eq!(orders.len(), 3, "{name}: {orders:?}");
        assert_eq!(orders.iter().map(|o| o.closing).collect::<Vec<_>>(), [false, true, true], "{name}");
        for order in &orders {
            let id: ClientOrderId = order.client_order_id.as_deref().unwrap().parse().unwrap();
            assert_eq!(account_of(&id), AccountId::from_name(name), "{name}: {order:?}");
        }
    }
    for (name, terminal) in [("mt5-1", mt5), ("mt4-1", mt4)] {
        let deals = terminal.history();
        assert_eq!(deals.len(), 3, "{name}: {deals:?}");
        assert_eq!(deals.iter().map(|d| d.opening).collect::<Vec<_>>(), [true, false, false], "{name}");
        for deal in &deals {
            let id = client_id_of_comment(&deal.cid).unwrap_or_else(|| panic!("{name}: no Mirror id on {deal:?}"));
            assert_eq!(account_of(&id), AccountId::from_name(name), "{name}: {deal:?}");
        }
    }
    let stats = running.handle.stats();
    assert_eq!((stats.rejects, stats.invalid_transitions), (0, 0), "{stats:?}");
    running.stop().await;
    simulation.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctrader_leaders_own_trades_are_copied_to_simulated_followers() {
    let dir = tempfile::tempdir().unwrap();
    let simulator =
        CtraderSimulator::start(ctrader_simulator_config(vec![SimAccount::new(3001, "lead-token")])).await.unwrap();
    let ca_file = dir.path().join("ca.pem");
    write_ca(&ca_file, &simulator.certificate_der());
    let text = format!(
        "{}{}{}{}{}{}",
        ctrader_session("lead", simulator.addr().port(), "LEAD_TOKEN", &ca_file),
        account("ct-leader", "ctrader", "ctrader = \"lead\"\nctrader_account = 3001"),
        account("f1", "sim", "balance = 10000"),
        account("f2", "sim", "balance = 10000"),
        link("ct-leader", "f1", "1"),
        link("ct-leader", "f2", "0.5"),
    );
    let resolved = resolve(dir.path(), &text);
    let vars = CredentialVars::new()
        .with("APP_ID", "app-id")
        .with("APP_SECRET", "app-secret")
        .with("LEAD_TOKEN", "lead-token");
    let mut running =
        start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() }).await.unwrap();
    assert_eq!(running.boot_failures(), []);
    running.reconciled().await;

    // The user buys 0.3 lot by hand on the cTrader leader, then closes two thirds, then the rest.
    let buy = ManualOrder {
        symbol_id: 1,
        side: Side::Buy,
        volume: 3_000_000,
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
        label: None,
    };
    simulator.trade_by_hand(3001, &buy).unwrap();
    let both = || (sim_held(&running, "f1"), sim_held(&running, "f2"));
    eventually("the copies", both, |held| *held == (vec![(Side::Buy, q("0.3"))], vec![(Side::Buy, q("0.15"))])).await;
    let position = i64::try_from(simulator.positions(3001)[0].id.0).unwrap();
    simulator.close_by_hand(3001, position, 2_000_000).unwrap();
    eventually("the partial closes", both, |held| *held == (vec![(Side::Buy, q("0.1"))], vec![(Side::Buy, q("0.05"))]))
        .await;
    simulator.close_by_hand(3001, position, 1_000_000).unwrap();
    eventually("the closes", both, |held| *held == (vec![], vec![])).await;
    running.stop().await;
    simulator.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_leaves_its_account_disconnected_with_a_reason_and_the_others_trade() {
    const WRONG_ACCESS_TOKEN: &str = "wrong-access-token-Zq81";
    const CONFIGURED_TERMINAL_TOKEN: &str = "configured-terminal-token-Kp27";
    const DIALLED_TERMINAL_TOKEN: &str = "dialled-terminal-token-Xw55";
    let dir = tempfile::tempdir().unwrap();
    let simulator = CtraderSimulator::start(ctrader_simulator_config(vec![
        SimAccount::new(4001, "good-token"),
        SimAccount::new(4002, "other-token"),
    ]))
    .await
    .unwrap();
    let ca_file = dir.path().join("ca.pem");
    write_ca(&ca_file, &simulator.certificate_der());
    let bridge_port = free_port();
    let port = simulator.addr().port();
    let text = format!(
        "{}{}\n[metatrader]\nlisten = \"127.0.0.1:{bridge_port}\"\n{}{}{}{}{}{}{}{}{}",
        ctrader_session("good", port, "GOOD_TOKEN", &ca_file),
        ctrader_session("bad", port, "BAD_TOKEN", &ca_file),
        account("leader", "sim", "balance = 100000"),
        account("ct-good", "ctrader", "ctrader = \"good\"\nctrader_account = 4001"),
        account("ct-bad", "ctrader", "ctrader = \"bad\"\nctrader_account = 4002"),
        account("mt5-good", "mt5", "credentials = \"env:MT5_GOOD\""),
        account("mt5-bad", "mt5", "credentials = \"env:MT5_BAD\""),
        link("leader", "ct-good", "1"),
        link("leader", "ct-bad", "1"),
        link("leader", "mt5-good", "1"),
        link("leader", "mt5-bad", "1"),
    );
    let resolved = resolve(dir.path(), &text);
    let vars = CredentialVars::new()
        .with("APP_ID", "app-id")
        .with("APP_SECRET", "app-secret")
        .with("GOOD_TOKEN", "good-token")
        .with("BAD_TOKEN", WRONG_ACCESS_TOKEN)
        .with("MT5_GOOD", "mt5-good-terminal-token-01")
        .with("MT5_BAD", CONFIGURED_TERMINAL_TOKEN);
    let good = terminal("mt5-good", Platform::Mt5, "mt5-good-terminal-token-01", bridge_port, 1);
    let bad = terminal("mt5-bad", Platform::Mt5, DIALLED_TERMINAL_TOKEN, bridge_port, 2);
    let mut running =
        start(&resolved, StartOptions { credential_vars: Some(vars), ..StartOptions::default() }).await.unwrap();
    running.reconciled().await;

    let failures = running.boot_failures();
    let names: Vec<&str> = failures.iter().map(|f| &*f.account).collect();
    assert_eq!(names, ["ct-bad", "mt5-bad"], "{failures:?}");
    // The server refuses the token; with no refresh token to try, the session gives up.
    assert!(
        failures[0].reason.starts_with("cTrader session `bad`, account 4002: authentication failed"),
        "{failures:?}"
    );
    assert!(failures[1].reason.contains(&format!("the bridge on 127.0.0.1:{bridge_port}")), "{failures:?}");
    for failure in failures {
        for token in [WRONG_ACCESS_TOKEN, CONFIGURED_TERMINAL_TOKEN, DIALLED_TERMINAL_TOKEN] {
            assert!(!failure.reason.contains(token), "a token in {failure:?}");
        }
    }
    let connected: Vec<(String, bool)> =
        running.accounts().await.iter().map(|a| (a.name.to_string(), a.summary.connected)).collect();
    for (name, up) in &connected {
        assert_eq!(*up, !name.ends_with("-bad"), "{connected:?}");
    }

    // The others trade; the refused accounts hold nothing.
    running.broker().manual_order("leader", eurusd(), Side::Sell, q("0.2"), OrderKind::Market, None, None).unwrap();
    let seen = || (ctrader_held(&simulator, 4001), terminal_held(&good));
    let sold = vec![(Side::Sell, q("0.2"))];
    eventually("the copies of the connected followers", seen, |held| *held == (sold.clone(), sold.clone())).await;
    assert!(simulator.positions(4002).is_empty());
    assert!(bad.positions().is_empty() && !bad.is_connected());
    assert_eq!(running.status().await.connected, (3, 5));
    running.stop().await;
    simulator.shutdown();
}

/// `mirror-engine check` as a user runs it on a configuration with platform mistakes.
#[test]
fn check_names_the_line_and_field_of_each_platform_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("platforms.toml");
    let text = "\
[ctrader.live-app]
endpoint = \"live\"
client_id = \"env:CT_ID\"
client_secret = \"env:CT_SECRET\"
access_token = \"secret:ctrader.token\"

[ctrader.spare]
endpoint = \"demo\"
client_id = \"env:CT_ID\"
client_secret = \"env:CT_SECRET\"
access_token = \"env:CT_SPARE\"

[[accounts]]
name = \"ct-1\"
platform = \"ctrader\"
ctrader = \"live-app\"
ctrader_account = 1001

[[accounts]]
name = \"ct-2\"
platform = \"ctrader\"
ctrader = \"live\"
ctrader_account = 1002

[[accounts]]
name = \"ct-3\"
platform = \"ctrader\"
ctrader = \"live-app\"
ctrader_account = 1001
balance = 5000

[[accounts]]
name = \"mt5-1\"
platform = \"mt5\"
";
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-engine"))
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let f = file.display();
    for expected in [
        format!("{f}:22:11: accounts[1].ctrader: no [ctrader.live] section (defined: live-app, spare)"),
        format!(
            "{f}:29:19: accounts[2].ctrader_account: ctidTraderAccountId 1001 on live.ctraderapi.com:5035 is \
             already account `ct-1`"
        ),
        format!(
            "{f}:30:11: accounts[2].balance: `balance` is for simulated accounts: a ctrader account's broker \
             reports its own"
        ),
        format!(
            "{f}:34:12: accounts[3].platform: mt5 accounts trade through the MetaTrader bridge: add a [metatrader] \
             section with the address their EAs dial"
        ),
        format!(
            "{f}:32:1: accounts[3]: an mt5 account needs `credentials = \"secret:<name>\"` or `\"env:<VAR>\"`: its \
             terminal's token (the EA's Token input, at least 16 characters)"
        ),
        format!("{f}:7:1: ctrader.spare: no account trades through cTrader session `spare`"),
    ] {
        assert!(stderr.contains(&expected), "missing\n{expected}\nin\n{stderr}");
    }
    assert!(stderr.contains("✗") && stderr.contains("6 problems"), "{stderr}");

    // A token written in the clear is refused at its line, and not repeated.
    std::fs::write(&file, text.replace("\"env:CT_SPARE\"", "\"sk-live-0123456789\"")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-engine"))
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{f}:11:16: ctrader.spare.access_token: ")), "{stderr}");
    assert!(stderr.contains("plain-text credentials are not accepted") && !stderr.contains("sk-live"), "{stderr}");

    // The demo configuration is valid.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mirror-engine"))
        .current_dir(repo)
        .args(["check", "config/platforms-demo.toml"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
