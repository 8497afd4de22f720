//! Crash recovery, as it happens: the engine runs as a child process against a simulated
//! broker served from this test (its state outlives the engine), a leader trades thousands of
//! times, and the engine is killed with SIGKILL at random points, round after round, while the
//! leader keeps trading through the downtime. After the last restart every follower (hedging
//! and netting, ×1, ×2, ×3) must hold exactly the leader's book scaled: nothing lost, nothing
//! copied twice. In one round a follower's copy is closed by hand while the engine is down:
//! it must be reported and, under the default policy, never reopened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mirror_connector_sim::{SimAccountConfig, SimBroker, SimServer};
use mirror_engine::config;
use mirror_model::{OrderKind, Position, PositionId, Qty, Side, Symbol};

const LEADER: &str = "lead";
/// Followers: name, mode, multiplier.
const FOLLOWERS: [(&str, &str, i64); 6] = [
    ("h1", "hedging", 1),
    ("h2", "hedging", 2),
    ("h3", "hedging", 3),
    ("n1", "netting", 1),
    ("n2", "netting", 2),
    ("n3", "netting", 3),
];
const ROUNDS: usize = 10;
/// The round in which a copy is closed by hand while the engine is down.
const BY_HAND_ROUND: usize = 4;
/// The leader position whose copy is closed by hand is opened with this unique quantity.
const BY_HAND_QTY: &str = "7.77";

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mirror-engine")
}

fn q(text: &str) -> Qty {
    Qty::parse(text).unwrap()
}

fn config_text(remote: &str, dir: &Path) -> String {
    let mut text = format!(
        r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false
status_interval_ms = 500

[logging]
dir = {logs:?}
level = "error"
file_level = "info"

[storage]
dir = {data:?}
snapshot_every_inputs = 300
snapshot_interval_ms = 400
compact = {compact}

[sim]
remote = "{remote}"
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 1
slippage_ticks_max = 0
partial_fill_probability = 0.2

[instruments.EURUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 1000
price = "1.08500"
spread_ticks = 8
volatility_ticks = 0

[instruments.GBPUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 1000
price = "1.26400"
spread_ticks = 12
volatility_ticks = 0

[[accounts]]
name = "{LEADER}"
platform = "sim"
mode = "hedging"
balance = 100000000
"#,
        logs = dir.join("logs").display().to_string(),
        data = dir.join("data").display().to_string(),
        // To investigate a failure, keep the whole journal (`replay --log` shows it all).
        compact = std::env::var_os("MIRROR_CRASH_FULL_JOURNAL").is_none(),
    );
    for (name, mode, _) in FOLLOWERS {
        text.push_str(&format!(
            "\n[[accounts]]\nname = \"{name}\"\nplatform = \"sim\"\nmode = \"{mode}\"\nbalance = 100000000\n"
        ));
    }
    for (name, _, multiplier) in FOLLOWERS {
        text.push_str(&format!(
            "\n[[links]]\nleader = \"{LEADER}\"\nfollower = \"{name}\"\nsizing = {{ mode = \"multiplier\", ratio = {multiplier} }}\n"
        ));
    }
    text
}

/// The leader's trading: opens, partial and full closes, from a seeded generator.
struct Driver {
    state: u64,
    /// The leader position whose copy was closed by hand: never touched again.
    frozen: Option<PositionId>,
    trades: usize,
}

impl Driver {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn trade(&mut self, broker: &SimBroker) {
        let positions: Vec<Position> =
            broker.positions(LEADER).unwrap().into_iter().filter(|p| Some(p.id) != self.frozen).collect();
        let roll = self.next() % 100;
        if positions.len() < 3 || (roll < 45 && positions.len() < 12) {
            let symbol = Symbol::new(if self.next().is_multiple_of(2) { "EURUSD" } else { "GBPUSD" }).unwrap();
            let side = if self.next().is_multiple_of(2) { Side::Buy } else { Side::Sell };
            let qty = Qty::from_raw(i64::try_from(1 + self.next() % 150).unwrap() * Qty::parse("0.01").unwrap().raw());
            broker.manual_order(LEADER, symbol, side, qty, OrderKind::Market, None, None).unwrap();
        } else {
            let index = usize::try_from(self.next()).unwrap() % positions.len();
            let position = positions[index];
            let step = q("0.01").raw();
            let steps = position.qty.raw() / step;
            let close = if roll < 75 && steps > 1 {
                // A partial close of 10-90 %, on the lot step.
                let percent = 10 + i64::try_from(self.next() % 81).unwrap();
                Qty::from_raw(((steps * percent / 100).max(1)) * step)
            } else {
                position.qty
            };
            broker.manual_close(LEADER, position.id, close).unwrap();
        }
        self.trades += 1;
    }
}

struct Engine {
    child: Child,
}

impl Engine {
    fn start(config: &Path, dir: &Path, round: usize) -> Self {
        let stdout = std::fs::File::create(dir.join(format!("stdout-{round}.txt"))).unwrap();
        let stderr = std::fs::File::create(dir.join(format!("stderr-{round}.txt"))).unwrap();
        let child = Command::new(binary())
            .args(["run", "--config", config.to_str().unwrap()])
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        Self { child }
    }

    /// SIGKILL: no chance to flush, snapshot or say goodbye.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Engine {
    /// A failing test leaves no engine behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Engine {
    /// SIGINT: a clean stop.
    fn interrupt(mut self) {
        let status = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the engine did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What a follower must hold: (symbol, side, qty) of each hedging position, or the net per
/// symbol of a netting account.
fn expected(leader: &[Position], multiplier: i64, mode: &str, without: Option<PositionId>) -> Vec<(Symbol, Side, Qty)> {
    let scaled = |p: &Position| Qty::from_raw(p.qty.raw() * multiplier);
    let kept = leader.iter().filter(|p| Some(p.id) != without);
    let mut held: Vec<(Symbol, Side, Qty)> = if mode == "hedging" {
        kept.map(|p| (p.symbol, p.side, scaled(p))).collect()
    } else {
        let mut net: BTreeMap<Symbol, i64> = BTreeMap::new();
        for p in kept {
            let signed = if p.side == Side::Buy { scaled(p).raw() } else { -scaled(p).raw() };
            *net.entry(p.symbol).or_default() += signed;
        }
        net.into_iter()
            .filter(|(_, qty)| *qty != 0)
            .map(|(symbol, qty)| (symbol, if qty > 0 { Side::Buy } else { Side::Sell }, Qty::from_raw(qty.abs())))
            .collect()
    };
    held.sort_by_key(|(symbol, side, qty)| (*symbol, *side == Side::Buy, *qty));
    held
}

fn held(broker: &SimBroker, account: &str) -> Vec<(Symbol, Side, Qty)> {
    let mut held: Vec<_> = broker.positions(account).unwrap().iter().map(|p| (p.symbol, p.side, p.qty)).collect();
    held.sort_by_key(|(symbol, side, qty)| (*symbol, *side == Side::Buy, *qty));
    held
}

fn differences(broker: &SimBroker, by_hand: Option<PositionId>) -> Vec<String> {
    let leader = broker.positions(LEADER).unwrap();
    let mut differences = Vec::new();
    for (name, mode, multiplier) in FOLLOWERS {
        let without = if name == "h2" { by_hand } else { None };
        let want = expected(&leader, multiplier, mode, without);
        let have = held(broker, name);
        if want != have {
            differences.push(format!("{name}: expected {want:?}, holds {have:?}"));
        }
    }
    differences
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mirror-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_loses_nothing_and_copies_nothing_twice() {
    let dir = scratch();
    // The broker lives here, with the accounts the configuration names.
    let placeholder = config_text("127.0.0.1:1", &dir);
    let resolved = config::load_str(Path::new("crash.toml"), &placeholder).unwrap();
    let broker = SimBroker::new(resolved.sim.clone(), resolved.markets.clone());
    for account in &resolved.accounts {
        broker
            .open_account(SimAccountConfig {
                name: account.name.clone(),
                mode: account.mode,
                currency: account.currency.clone(),
                balance: account.balance,
                instruments: account.instruments.clone(),
            })
            .unwrap();
    }
    let server = SimServer::bind(broker.clone(), "127.0.0.1:0").await.unwrap();
    let config = dir.join("crash.toml");
    std::fs::write(&config, config_text(&server.local_addr().to_string(), &dir)).unwrap();

    let mut driver = Driver { state: 0x9e37_79b9_7f4a_7c15, frozen: None, trades: 0 };
    let mut by_hand: Option<PositionId> = None;
    for round in 0..ROUNDS {
        let engine = Engine::start(&config, &dir, round);
        if round == BY_HAND_ROUND {
            // A position whose copy the user will close by hand: wait until h2 holds its copy.
            let id = broker
                .manual_order(
                    LEADER,
                    Symbol::new("EURUSD").unwrap(),
                    Side::Buy,
                    q(BY_HAND_QTY),
                    OrderKind::Market,
                    None,
                    None,
                )
                .unwrap();
            let leader = broker.positions(LEADER).unwrap();
            let position = leader.iter().find(|p| p.qty == q(BY_HAND_QTY)).expect("the leader's position");
            let _ = id;
            driver.frozen = Some(position.id);
            let deadline = Instant::now() + Duration::from_secs(30);
            while !held(&broker, "h2").iter().any(|(_, _, qty)| *qty == q("15.54")) {
                assert!(Instant::now() < deadline, "h2 never copied the position");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Trade at full speed for a random while, then kill the engine wherever it is.
        let run_for = Duration::from_millis(300 + driver.next() % 900);
        let until = Instant::now() + run_for;
        while Instant::now() < until {
            for _ in 0..4 {
                driver.trade(&broker);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        engine.kill();
        // The leader goes on trading while nobody copies.
        for _ in 0..(20 + driver.next() % 60) {
            driver.trade(&broker);
        }
        if round == BY_HAND_ROUND {
            let copy = broker
                .positions("h2")
                .unwrap()
                .into_iter()
                .find(|p| p.qty == q("15.54"))
                .expect("h2's copy of the frozen position");
            broker.manual_close("h2", copy.id, copy.qty).unwrap();
            by_hand = driver.frozen;
        }
    }
    assert!(driver.trades >= 2_000, "a burst of thousands of leader trades: {}", driver.trades);

    // The last start: the engine reconciles with the broker and catches up.
    let engine = Engine::start(&config, &dir, ROUNDS);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = differences(&broker, by_hand);
    while !last.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = differences(&broker, by_hand);
    }
    if !last.is_empty() {
        // Leave the broker's side of the story next to the engine's logs and journal.
        for account in std::iter::once(LEADER).chain(FOLLOWERS.iter().map(|f| f.0)) {
            let lines: Vec<String> = broker.history(account).unwrap().iter().map(|e| format!("{e:?}")).collect();
            std::fs::write(dir.join(format!("history-{account}.txt")), lines.join("\n")).unwrap();
        }
        let leader: Vec<String> = broker.positions(LEADER).unwrap().iter().map(|p| format!("{p:?}")).collect();
        std::fs::write(dir.join("leader-positions.txt"), leader.join("\n")).unwrap();
    }
    assert!(
        last.is_empty(),
        "after {} trades and {ROUNDS} kills (files in {}):\n{}",
        driver.trades,
        dir.display(),
        last.join("\n")
    );
    // Settled means settled: nothing more arrives later.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(differences(&broker, by_hand), Vec::<String>::new());
    engine.interrupt();

    // The copy closed by hand was reported as such.
    let mut logs = String::new();
    for file in std::fs::read_dir(dir.join("logs")).unwrap() {
        logs.push_str(&std::fs::read_to_string(file.unwrap().path()).unwrap());
    }
    assert!(
        logs.lines().any(|l| l.contains("ClosedByHand") && l.contains("\"account\":\"h2\"")),
        "no closed-by-hand drift reported for h2"
    );
    // And the journal still rebuilds every account exactly.
    let replay = Command::new(binary())
        .args(["replay", "--journal", dir.join("data").join("journal").to_str().unwrap(), "--verify"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{stdout}{}", String::from_utf8_lossy(&replay.stderr));
    server.shutdown().await;
    if std::env::var_os("MIRROR_KEEP_CRASH_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
