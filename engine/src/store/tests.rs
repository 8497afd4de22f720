//! The Postgres writer against the real server on this machine (`127.0.0.1:5432`, or the
//! server `MIRROR_TEST_POSTGRES` names): a fresh database per test, dropped afterwards. A
//! missing server fails these tests; it never skips them.
//!
//! What is written is checked against the simulated broker (every execution of a Mirror order
//! is one `fills` row, every open position one `positions` row) and, where an outage or a
//! restart cut the writing into pieces, against a second database written from the same
//! journal in one go: the two must hold the same rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use mirror_connector_sim::SimBroker;
use mirror_model::{AccountId, OrderKind, Qty, Side, Symbol};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

use super::*;
use crate::app::{Running, StartOptions, start};
use crate::config;
use crate::journal::{Journal, JournalSettings};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Every table a batch writes from the journal (compared row by row, as text).
const TABLES: &[&str] = &[
    "signals",
    "deliveries",
    "orders",
    "fills",
    "positions",
    "position_events",
    "equity_history",
    "copy_events",
    "audit_log",
];

fn admin_url() -> String {
    std::env::var("MIRROR_TEST_POSTGRES").unwrap_or_else(|_| ADMIN_URL.to_owned())
}

async fn connect(url: &str) -> Client {
    let connected = tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(url, NoTls)).await;
    let (client, connection) = match connected {
        Ok(Ok(pair)) => pair,
        Ok(Err(error)) => panic!(
            "these tests need the Postgres server at {url} (MIRROR_TEST_POSTGRES names another); it refused: {error}"
        ),
        Err(_) => panic!("these tests need the Postgres server at {url}; it did not answer within 10 s"),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database of its own, dropped (with its sessions) when the test ends, passed or failed.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("mirror_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = admin_url();
        let client = connect(&admin).await;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.unwrap();
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let base = admin.rsplit_once('/').expect("a URL with a database").0;
        Self { url: format!("{base}/{name}"), name }
    }

    fn settings(&self) -> PgSettings {
        let mut settings = PgSettings::from_url(&self.url).unwrap();
        settings.retry_max = Duration::from_millis(500);
        settings
    }

    async fn client(&self) -> Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::env::var_os("MIRROR_KEEP_TEST_DB").is_some() {
            eprintln!("kept the test database {} (MIRROR_KEEP_TEST_DB)", self.name);
            return;
        }
        let name = self.name.clone();
        // Its own thread and runtime: this may run inside (or after) the test's runtime.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
                let client = connect(&admin_url()).await;
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

/// A TCP hop in front of Postgres that can be cut (every session dropped, new ones refused)
/// and restored: an outage the writer cannot tell from a real one.
struct Proxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0_u64);
        let task = {
            let (open, cuts) = (Arc::clone(&open), cuts.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else { return };
                    if !open.load(Ordering::Acquire) {
                        continue; // dropped: the connection is refused
                    }
                    let mut cut = cuts.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Self { addr, open, cuts, task }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::Release);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// `url` (of the real server) as reached through this proxy.
    fn url(&self, url: &str) -> String {
        let upstream = upstream_of(url);
        url.replacen(&upstream.to_string(), &self.addr.to_string(), 1)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

fn upstream_of(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => panic!("the proxy needs a TCP address"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().expect("the test server's host as an IP address")
}

const FOLLOWERS: &[(&str, &str, &str)] = &[
    ("f-mult", "hedging", "sizing = { mode = \"multiplier\", ratio = 1 }"),
    ("f-net2", "netting", "sizing = { mode = \"multiplier\", ratio = 2 }"),
    ("f-fixed", "hedging", "sizing = { mode = \"fixed\", qty = \"0.3\" }"),
    ("f-rev", "hedging", "reverse = true"),
    ("f-bal", "netting", "sizing = { mode = \"balance_ratio\" }"),
    ("f-stops", "hedging", "stop_loss = { distance = \"0.002\" }\ntake_profit = { distance = \"0.004\" }"),
];

fn config_text(dir: &Path, compact: bool) -> String {
    let mut text = format!(
        r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false

[sim]
tick_ms = 0
latency_min_ms = 0
latency_max_ms = 0
slippage_ticks_max = 0

[storage]
dir = {dir:?}
compact = {compact}
snapshot_every_inputs = 50
snapshot_interval_ms = 200

[instruments.EURUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.08500"
spread_ticks = 8
volatility_ticks = 0

[instruments.GBPUSD]
contract_size = 100000
tick_size = "0.00001"
lot_step = "0.01"
min_qty = "0.01"
max_qty = 100
price = "1.26400"
spread_ticks = 12
volatility_ticks = 0

[[accounts]]
name = "lead"
platform = "sim"
mode = "hedging"
balance = 100000
"#,
        dir = dir.display().to_string()
    );
    for (index, (name, mode, rules)) in FOLLOWERS.iter().enumerate() {
        let balance = 20_000 + index * 10_000;
        let _ = write!(
            text,
            "\n[[accounts]]\nname = \"{name}\"\nplatform = \"sim\"\nmode = \"{mode}\"\nbalance = {balance}\n\
             \n[[links]]\nleader = \"lead\"\nfollower = \"{name}\"\n{rules}\n"
        );
    }
    text
}

/// A run of the engine on the simulated broker, with its journal's folder.
struct Run {
    running: Running,
    broker: SimBroker,
    names: BTreeMap<String, AccountId>,
    dir: tempfile::TempDir,
}

async fn run_engine(compact: bool, postgres: Option<PgSettings>, tune: impl FnOnce(&mut JournalSettings)) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), compact);
    let mut resolved = config::load_str(Path::new("postgres.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    tune(resolved.journal.as_mut().expect("the journal is on"));
    let mut running = start(&resolved, StartOptions { postgres, ..StartOptions::default() }).await.unwrap();
    running.reconciled().await;
    let broker = running.broker().clone();
    let names = running.names.iter().map(|(id, name)| (name.to_string(), *id)).collect();
    Run { running, broker, names, dir }
}

/// The leader trades by hand: `trades` opens, adds, partial and full closes on two symbols,
/// drawn from `seed`, a few at a time so that the writer's batches fall between them.
async fn burst(broker: &SimBroker, trades: usize, seed: u64) {
    let symbols = [Symbol::new("EURUSD").unwrap(), Symbol::new("GBPUSD").unwrap()];
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    for trade in 0..trades {
        let held = broker.positions("lead").unwrap();
        let draw = next();
        if held.len() < 3 || draw % 3 != 0 {
            let symbol = symbols[usize::try_from(draw % 2).unwrap()];
            let side = if draw % 5 < 3 { Side::Buy } else { Side::Sell };
            let qty = Qty::from_raw(i64::try_from(10_000_000 * (1 + draw % 4)).unwrap());
            broker.manual_order("lead", symbol, side, qty, OrderKind::Market, None, None).unwrap();
        } else {
            let position = &held[usize::try_from(draw).unwrap() % held.len()];
            let half = position.qty.raw() / 2 / 1_000_000 * 1_000_000;
            let qty = if draw % 4 == 0 && half > 0 { Qty::from_raw(half) } else { position.qty };
            broker.manual_close("lead", position.id, qty).unwrap();
        }
        if trade % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
}

async fn settle(running: &Running) {
    running.settle(Duration::from_millis(200), Duration::from_secs(20)).await;
}

/// Waits until the writer has written everything durable (or panics after `limit`).
async fn caught_up(status: impl Fn() -> PgStatus, limit: Duration) -> PgStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let now = status();
        if now.connected && now.lag() == 0 && now.checkpoint > 0 {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "the writer did not catch up: {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every row of every table, as text, in a stable order.
async fn dump(client: &Client) -> BTreeMap<&'static str, Vec<String>> {
    let mut tables = BTreeMap::new();
    for table in TABLES {
        let rows = client.query(&format!("SELECT t::text FROM {table} t ORDER BY t::text"), &[]).await.unwrap();
        tables.insert(*table, rows.iter().map(|row| row.get(0)).collect());
    }
    tables
}

fn assert_same_rows(written: &BTreeMap<&'static str, Vec<String>>, reference: &BTreeMap<&'static str, Vec<String>>) {
    for table in TABLES {
        let (ours, theirs) = (&written[table], &reference[table]);
        let missing: Vec<_> = theirs.iter().filter(|row| !ours.contains(row)).take(3).collect();
        let extra: Vec<_> = ours.iter().filter(|row| !theirs.contains(row)).take(3).collect();
        assert!(
            ours == theirs,
            "{table}: {} rows against {} in one go; missing {missing:?}; extra {extra:?}",
            ours.len(),
            theirs.len()
        );
    }
}

/// What Postgres says agrees with the broker: one `fills` row per execution of a Mirror
/// order, the open positions exactly, every executed order present and filled by its fills.
async fn assert_matches_broker(client: &Client, run_broker: &SimBroker, names: &BTreeMap<String, AccountId>) {
    let mut executions = 0;
    for (name, id) in names {
        let account = i64::from(id.0);
        let mut expected: Vec<(String, Qty, String, String)> = run_broker
            .history(name)
            .unwrap()
            .into_iter()
            .filter_map(|e| Some((e.client_id?.to_string(), e.qty, e.price.to_string(), e.position.0.to_string())))
            .collect();
        expected.sort();
        executions += expected.len();
        let rows = client
            .query(
                "SELECT client_id, qty::text, price::text, position_id::text FROM fills WHERE account = $1
                 ORDER BY client_id, qty, price, position_id",
                &[&account],
            )
            .await
            .unwrap();
        let mut found: Vec<(String, Qty, String, String)> = rows
            .iter()
            .map(|row| {
                let price: String = row.get(2);
                let price = mirror_model::Price::parse(&price).unwrap().to_string();
                (row.get(0), Qty::parse(row.get::<_, &str>(1)).unwrap(), price, row.get(3))
            })
            .collect();
        found.sort();
        assert_eq!(found, expected, "fills of {name}");

        let mut held: Vec<(String, String, String, Qty)> = run_broker
            .positions(name)
            .unwrap()
            .iter()
            .map(|p| (p.id.0.to_string(), p.symbol.to_string(), side(p.side).to_owned(), p.qty))
            .collect();
        held.sort();
        let rows = client
            .query("SELECT position_id::text, symbol, side, qty::text FROM positions WHERE account = $1", &[&account])
            .await
            .unwrap();
        let mut stored: Vec<(String, String, String, Qty)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), Qty::parse(row.get::<_, &str>(3)).unwrap()))
            .collect();
        stored.sort();
        assert_eq!(stored, held, "positions of {name}");
    }
    assert!(executions > 100, "the burst made only {executions} executions");
    let unfilled: Vec<String> = client
        .query(
            "SELECT o::text FROM orders o WHERE o.filled_qty <> COALESCE(
                (SELECT sum(f.qty) FROM fills f WHERE f.journal = o.journal AND f.client_id = o.client_id), 0)
             OR (o.status = 'filled') <> (o.filled_qty = o.qty)",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(unfilled.is_empty(), "orders whose filled quantity or status disagrees with their fills: {unfilled:#?}");
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM fills f WHERE NOT EXISTS
                (SELECT 1 FROM orders o WHERE o.journal = f.journal AND o.client_id = f.client_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "fills of orders missing from the orders table");
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// Writes `journal` to a fresh database in one go: the reference the others must equal.
async fn reference(journal: &Journal) -> (TestDb, BTreeMap<&'static str, Vec<String>>) {
    let db = TestDb::create().await;
    let writer = spawn_pg_writer(journal.clone(), db.settings());
    caught_up(|| writer.status(), Duration::from_secs(60)).await;
    let status = writer.stop(Duration::from_secs(5)).await;
    assert_eq!(status.outages, 0, "{status:?}");
    let rows = dump(&db.client().await).await;
    (db, rows)
}

fn reopen(dir: &Path) -> Journal {
    let settings = JournalSettings {
        compact: false,
        consumers: vec![PG_CONSUMER.to_owned()],
        ..JournalSettings::in_dir(dir.join("journal"))
    };
    Journal::open(settings).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_off_during_a_burst_and_restored_holds_every_row_exactly_once() {
    let db = TestDb::create().await;
    let proxy = Proxy::start(upstream_of(&db.url)).await;
    let mut settings = PgSettings::from_url(proxy.url(&db.url)).unwrap();
    settings.retry_max = Duration::from_millis(400);
    settings.batch_entries = 64;
    let run = run_engine(false, Some(settings), |_| {}).await;
    let status = || run.running.postgres().expect("the writer runs");

    burst(&run.broker, 150, 1).await;
    caught_up(status, Duration::from_secs(30)).await;

    // The cut: trading goes on while Postgres is out of reach.
    proxy.cut();
    let copies_before = run.running.handle.stats().copies;
    burst(&run.broker, 250, 2).await;
    settle(&run.running).await;
    let during = status();
    assert!(!during.connected, "the writer should have lost Postgres: {during:?}");
    assert!(during.lag() > 0, "entries should wait for Postgres: {during:?}");
    assert!(run.running.handle.stats().copies > copies_before + 100, "trading must go on without Postgres");
    let line = run.running.status().await.to_string();
    assert!(line.contains("postgres DOWN"), "{line}");

    proxy.restore();
    burst(&run.broker, 150, 3).await;
    settle(&run.running).await;
    let after = caught_up(status, Duration::from_secs(30)).await;
    assert!(after.outages >= 1, "{after:?}");
    assert_eq!(after.lost_entries, 0, "{after:?}");

    let signals = run.running.handle.stats().signals;
    let Run { running, broker, names, dir } = run;
    let stopped = running.stop().await.expect("the writer's last status");
    assert_eq!(stopped.lag(), 0, "{stopped:?}");

    let client = db.client().await;
    assert_matches_broker(&client, &broker, &names).await;
    let stored: i64 = client.query_one("SELECT count(*) FROM signals", &[]).await.unwrap().get(0);
    assert_eq!(u64::try_from(stored).unwrap(), signals, "one row per signal");
    let written = dump(&client).await;
    let journal = reopen(dir.path());
    let (_reference_db, one_go) = reference(&journal).await;
    journal.close();
    assert_same_rows(&written, &one_go);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_way_is_continued_from_postgres_checkpoint_without_gap_or_duplicate() {
    let run = run_engine(false, None, |_| {}).await;
    burst(&run.broker, 300, 7).await;
    settle(&run.running).await;
    let Run { running, broker, names, dir } = run;
    assert!(running.stop().await.is_none());
    let journal = reopen(dir.path());
    let durable = journal.durable();

    let db = TestDb::create().await;
    let mut small = db.settings();
    small.batch_entries = 5;
    let first = spawn_pg_writer(journal.clone(), small.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while first.status().checkpoint < durable / 2 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", first.status());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Dropped: the task is aborted wherever it is, a transaction perhaps half sent.
    let cut_at = first.status().checkpoint;
    drop(first);

    let second = spawn_pg_writer(journal.clone(), small);
    let done = caught_up(|| second.status(), Duration::from_secs(60)).await;
    assert!(
        done.entries_written < durable - cut_at / 2,
        "the second writer should continue from the checkpoint ({cut_at}), not start over: {done:?}"
    );
    second.stop(Duration::from_secs(5)).await;

    let client = db.client().await;
    assert_matches_broker(&client, &broker, &names).await;
    let written = dump(&client).await;
    let (_reference_db, one_go) = reference(&journal).await;
    journal.close();
    assert_same_rows(&written, &one_go);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_compacted_before_postgres_saw_them_are_counted_and_the_rest_written() {
    // No Postgres at first, compaction on: the journal drops what the snapshots cover.
    let run = run_engine(true, None, |journal| journal.compact_interval = Duration::from_millis(50)).await;
    burst(&run.broker, 300, 11).await;
    settle(&run.running).await;
    let journal = run.running.journal().unwrap().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while journal.first_position() <= 1 {
        assert!(tokio::time::Instant::now() < deadline, "the journal was never compacted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = journal.first_position();

    // Postgres enabled late: what is gone is reported, never passed over in silence.
    let db = TestDb::create().await;
    let writer = spawn_pg_writer(journal.clone(), db.settings());
    let done = caught_up(|| writer.status(), Duration::from_secs(30)).await;
    assert!(done.lost_entries >= first - 1, "{done:?} (journal starts at {first})");
    assert_eq!(done.lost_entries + done.entries_written, done.checkpoint, "{done:?}");
    writer.stop(Duration::from_secs(5)).await;
    let client = db.client().await;
    let checkpoint: i64 = client.query_one("SELECT checkpoint FROM journals", &[]).await.unwrap().get(0);
    assert_eq!(u64::try_from(checkpoint).unwrap(), done.checkpoint);
    let accounts: i64 = client.query_one("SELECT count(*) FROM accounts", &[]).await.unwrap().get(0);
    assert_eq!(accounts, i64::try_from(FOLLOWERS.len() + 1).unwrap(), "accounts come from the setups, never compacted");
    run.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_mirror_is_refused_and_trading_is_not_touched() {
    let db = TestDb::create().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE mirror_migrations (version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO mirror_migrations (version, name) VALUES (1, 'initial'), (999, 'from the future')",
        )
        .await
        .unwrap();
    let run = run_engine(false, Some(db.settings()), |_| {}).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = run.running.postgres().unwrap();
        if !status.running {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = status.last_error.unwrap();
    assert!(error.contains("version 999") && error.contains("refusing"), "{error}");
    burst(&run.broker, 20, 3).await;
    settle(&run.running).await;
    assert!(run.running.handle.stats().copies > 0, "trading goes on without Postgres");
    let tables: i64 = client
        .query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing is created in a database this Mirror does not understand");
    run.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_database_url_never_reaches_an_error_or_the_status() {
    // Nothing listens on port 9: the connection fails, and says so without the password.
    let journal_dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(JournalSettings::in_dir(journal_dir.path())).unwrap();
    let url = "postgres://mirror:Tr0ub4dor-3@127.0.0.1:9/mirror?connect_timeout=1";
    let mut settings = PgSettings::from_url(url).unwrap();
    settings.connect_timeout = Duration::from_millis(500);
    assert!(!format!("{settings:?}").contains("Tr0ub4dor"), "{settings:?}");
    let writer = spawn_pg_writer(journal.clone(), settings);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = writer.status();
        if status.last_error.is_some() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = status.last_error.clone().unwrap();
    assert!(error.contains("mirror:***@127.0.0.1:9"), "{error}");
    assert!(!format!("{status:?}").contains("Tr0ub4dor"), "{status:?}");
    writer.stop(Duration::from_millis(100)).await;
    journal.close();
}
