//! `mirror-engine secrets` as an operator runs it: a key file, values piped in, and never a value
//! printed or stored in the clear.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mirror_engine::secrets::{MasterKey, SecretStore};

const VALUE: &str = "hunter2-Very-Secret-VALUE-42";
const ROTATED: &str = "correct-horse-battery-staple-99";

/// A fresh folder for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("mirror-secrets-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `mirror-engine secrets ARGS` in `dir` with only the given master key variables set and
/// `stdin` piped in; checks that no value appears on stdout or stderr.
fn secrets(dir: &Path, env: &[(&str, &OsStr)], args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mirror-engine"));
    command
        .current_dir(dir)
        .arg("secrets")
        .args(args)
        .env_remove("MIRROR_MASTER_KEY")
        .env_remove("MIRROR_MASTER_KEY_FILE")
        .env_remove("MIRROR_SECRETS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    // A command that refuses before reading its input may exit before we finish writing.
    if let Err(error) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    let output = child.wait_with_output().unwrap();
    for value in [VALUE, ROTATED] {
        for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            assert!(!String::from_utf8_lossy(bytes).contains(value), "{args:?} printed a value on {stream}");
        }
    }
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns stdout.
fn ok(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "stdout: {}\nstderr: {}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

/// Asserts the exit status and returns stderr.
fn fails(output: &Output, code: i32) -> String {
    assert_eq!(output.status.code(), Some(code), "stdout: {}\nstderr: {}", text(&output.stdout), text(&output.stderr));
    text(&output.stderr)
}

fn assert_no_value_in(file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    for value in [VALUE, ROTATED] {
        assert!(!bytes.windows(value.len()).any(|w| w == value.as_bytes()), "{} holds a value", file.display());
    }
}

#[test]
fn keys_and_secrets_go_through_their_whole_life_without_a_value_showing() {
    let scratch = Scratch::new("life");
    let dir = scratch.0.as_path();
    let key = scratch.path("master.key");
    let new_key = scratch.path("new.key");
    let store = scratch.path("secrets.enc.toml");
    let with_key: &[(&str, &OsStr)] = &[("MIRROR_MASTER_KEY_FILE", key.as_os_str())];
    let with_new_key: &[(&str, &OsStr)] = &[("MIRROR_MASTER_KEY_FILE", new_key.as_os_str())];
    let store_arg = store.to_str().unwrap();

    // A key file, never overwritten.
    let out = ok(&secrets(dir, &[], &["init-key", "--out", "master.key"], ""));
    assert!(out.contains("wrote a new master key to master.key (mode 0600)"), "{out}");
    let key_text = std::fs::read_to_string(&key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let err = fails(&secrets(dir, &[], &["init-key", "--out", "master.key"], ""), 2);
    assert!(err.contains("key file master.key already exists"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), key_text);

    // Add, from a pipe: one trailing newline is not part of the value.
    let out = ok(&secrets(dir, with_key, &["--store", store_arg, "add", "broker.password"], &format!("{VALUE}\n")));
    assert!(out.contains("added `broker.password`"), "{out}");
    assert_no_value_in(&store);
    let opened = SecretStore::open(&store, &MasterKey::from_file(&key).unwrap()).unwrap();
    assert_eq!(opened.get("broker.password").unwrap().expose(), VALUE);

    let err = fails(&secrets(dir, with_key, &["add", "broker.password", "--store", store_arg], ROTATED), 2);
    assert!(err.contains("secret `broker.password` already exists"), "{err}");

    // The store from the environment, and a listing without values.
    let with_key_and_store: &[(&str, &OsStr)] =
        &[("MIRROR_MASTER_KEY_FILE", key.as_os_str()), ("MIRROR_SECRETS", store.as_os_str())];
    ok(&secrets(dir, with_key_and_store, &["add", "api-key"], "second-value-xyz"));
    let listing = ok(&secrets(dir, with_key_and_store, &["list"], ""));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    assert!(lines[0].starts_with("NAME") && lines[0].contains("CREATED (UTC)"), "{listing}");
    assert!(lines[1].starts_with("api-key ") && lines[2].starts_with("broker.password "), "{listing}");
    assert!(!listing.contains("second-value-xyz"), "{listing}");

    // Rotate replaces the value.
    ok(&secrets(dir, with_key, &["--store", store_arg, "rotate", "broker.password"], &format!("{ROTATED}\r\n")));
    assert_no_value_in(&store);
    let opened = SecretStore::open(&store, &MasterKey::from_file(&key).unwrap()).unwrap();
    assert_eq!(opened.get("broker.password").unwrap().expose(), ROTATED);
    let err = fails(&secrets(dir, with_key, &["--store", store_arg, "rotate", "nobody"], VALUE), 2);
    assert!(err.contains("no secret is named `nobody`"), "{err}");

    // Rekey: afterwards the old key is refused and the new one opens the store.
    ok(&secrets(dir, &[], &["init-key", "--out", "new.key"], ""));
    let out = ok(&secrets(dir, with_key, &["--store", store_arg, "rekey", "--new-key-file", "new.key"], ""));
    assert!(out.contains("re-encrypted 2 secrets"), "{out}");
    assert_no_value_in(&store);
    let err = fails(&secrets(dir, with_key, &["--store", store_arg, "list"], ""), 1);
    assert!(err.contains("this master key does not open this secrets file"), "{err}");
    assert_eq!(ok(&secrets(dir, with_new_key, &["--store", store_arg, "list"], "")).lines().count(), 3);
    let opened = SecretStore::open(&store, &MasterKey::from_file(&new_key).unwrap()).unwrap();
    assert_eq!(opened.get("broker.password").unwrap().expose(), ROTATED);

    // Remove.
    ok(&secrets(dir, with_new_key, &["--store", store_arg, "remove", "broker.password"], ""));
    let listing = ok(&secrets(dir, with_new_key, &["--store", store_arg, "list"], ""));
    assert!(!listing.contains("broker.password") && listing.contains("api-key"), "{listing}");
    let err = fails(&secrets(dir, with_new_key, &["--store", store_arg, "remove", "broker.password"], ""), 2);
    assert!(err.contains("no secret is named `broker.password`"), "{err}");

    assert_no_value_in(&store);
    let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "only the two keys and the store: {leftovers:?}");
}

#[test]
fn secrets_mistakes_exit_with_status_2_and_say_what_is_wrong() {
    let scratch = Scratch::new("mistakes");
    let dir = scratch.0.as_path();
    let key = scratch.path("master.key");
    ok(&secrets(dir, &[], &["init-key", "--out", "master.key"], ""));
    let with_key: &[(&str, &OsStr)] = &[("MIRROR_MASTER_KEY_FILE", key.as_os_str())];

    let err = fails(&secrets(dir, &[], &["list", "--store", "s.toml"], ""), 2);
    assert!(err.contains("no master key: set MIRROR_MASTER_KEY"), "{err}");

    let err = fails(&secrets(dir, with_key, &["--store", "s.toml", "add", "two words"], VALUE), 2);
    assert!(err.contains("invalid secret name") && !err.contains("two words"), "{err}");

    let err = fails(&secrets(dir, with_key, &["--store", "s.toml", "add", "empty"], "\n"), 2);
    assert!(err.contains("the value for `empty` is empty"), "{err}");
    assert!(!scratch.path("s.toml").exists());

    // The master key given directly, in a form that is not a key: the message does not echo it.
    let err = fails(&secrets(dir, &[("MIRROR_MASTER_KEY", OsStr::new(VALUE))], &["--store", "s.toml", "list"], ""), 2);
    assert!(err.contains("environment variable MIRROR_MASTER_KEY: not a master key"), "{err}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = fails(&secrets(dir, with_key, &["--store", "s.toml", "list"], ""), 2);
        assert!(err.contains(&format!("key file {}: mode 0644", key.display())), "{err}");
    }

    // Unknown subcommands are clap's usage errors, also status 2.
    fails(&secrets(dir, with_key, &["show", "broker.password"], ""), 2);
}

#[test]
fn the_default_store_is_config_secrets_enc_toml() {
    let scratch = Scratch::new("default-store");
    let dir = scratch.0.as_path();
    std::fs::create_dir(scratch.path("config")).unwrap();
    ok(&secrets(dir, &[], &["init-key", "--out", "k"], ""));
    let key = scratch.path("k");
    ok(&secrets(dir, &[("MIRROR_MASTER_KEY_FILE", key.as_os_str())], &["add", "a"], VALUE));
    assert_no_value_in(&scratch.path("config/secrets.enc.toml"));
    // `--key-file` stands in for the environment.
    let listing = ok(&secrets(dir, &[], &["list", "--key-file", "k"], ""));
    assert!(listing.lines().nth(1).is_some_and(|line| line.starts_with("a ")), "{listing}");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A whole run as an operator sets it up: passwords in the encrypted store and in the
/// environment, a `DATABASE_URL` with a password, an account whose password is wrong, a leader
/// trading and followers copying, `Ctrl-C`. Afterwards no secret may be found in any log,
/// journal file, console output or Postgres table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_leaves_no_secret_in_logs_journal_console_or_postgres() {
    use mirror_connector_sim::{SimAccountConfig, SimBroker, SimServer};
    use mirror_model::{OrderKind, Qty, Side, Symbol};

    const LEADER_PASSWORD: &str = "Lead-Pa55word-7f3c9e";
    const FOLLOWER_PASSWORD: &str = "Follower-Env-Pa55-b81d2";
    const WRONG_PASSWORD: &str = "Wrong-Guess-Pa55-e09a4";
    const DATABASE_PASSWORD: &str = "Db-Pa55word-c4d7a1";
    let all = [LEADER_PASSWORD, FOLLOWER_PASSWORD, WRONG_PASSWORD, DATABASE_PASSWORD];

    let scratch = Scratch::new("full-run");
    let dir = scratch.0.as_path();
    let key = scratch.path("master.key");
    let store = scratch.path("secrets.enc.toml");
    ok(&secrets(dir, &[], &["init-key", "--out", "master.key"], ""));
    let with_key: &[(&str, &OsStr)] = &[("MIRROR_MASTER_KEY_FILE", key.as_os_str())];
    ok(&secrets(
        dir,
        with_key,
        &["--store", store.to_str().unwrap(), "add", "lead.password"],
        &format!("{LEADER_PASSWORD}\n"),
    ));

    // The broker, served from here, knows the real passwords.
    let config_for = |remote: &str| {
        format!(
            r#"
[engine]
shards = 1
spin_iterations = 100
pin_cores = false
status_interval_ms = 200
secrets = {store:?}

[logging]
dir = {logs:?}
level = "debug"
file_level = "trace"

[storage]
dir = {data:?}

[sim]
remote = "{remote}"
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

[[accounts]]
name = "lead"
platform = "sim"
mode = "hedging"
balance = 100000
credentials = "secret:lead.password"

[[accounts]]
name = "follow-env"
platform = "sim"
mode = "hedging"
balance = 50000
credentials = "env:MIRROR_TEST_FOLLOWER_PASSWORD"

[[accounts]]
name = "follow-wrong"
platform = "sim"
mode = "netting"
balance = 50000
credentials = "env:MIRROR_TEST_WRONG_PASSWORD"

[[links]]
leader = "lead"
follower = "follow-env"

[[links]]
leader = "lead"
follower = "follow-wrong"
"#,
            store = store.display().to_string(),
            logs = dir.join("logs").display().to_string(),
            data = dir.join("data").display().to_string(),
        )
    };
    let resolved = mirror_engine::config::load_str(Path::new("full-run.toml"), &config_for("127.0.0.1:1")).unwrap();
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
    broker.set_password("lead", Some(LEADER_PASSWORD)).unwrap();
    broker.set_password("follow-env", Some(FOLLOWER_PASSWORD)).unwrap();
    broker.set_password("follow-wrong", Some("the-right-one-nobody-configured")).unwrap();
    let server = SimServer::bind(broker.clone(), "127.0.0.1:0").await.unwrap();
    let config = scratch.path("full-run.toml");
    std::fs::write(&config, config_for(&server.local_addr().to_string())).unwrap();

    // A database of its own, reached with a password (trust authentication accepts any).
    let admin_url =
        std::env::var("MIRROR_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (admin, connection) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("this test needs the Postgres server at {admin_url}: {e}"));
    tokio::spawn(connection);
    let database = format!("mirror_secrets_{}", std::process::id());
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await.unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {database}")).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    let (scheme, host) = base.split_once("://").unwrap();
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    let database_url = format!("{scheme}://postgres:{DATABASE_PASSWORD}@{host}/{database}");

    let stdout = std::fs::File::create(scratch.path("stdout.txt")).unwrap();
    let stderr = std::fs::File::create(scratch.path("stderr.txt")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mirror-engine"))
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(dir)
        .env("MIRROR_MASTER_KEY_FILE", &key)
        .env("MIRROR_TEST_FOLLOWER_PASSWORD", FOLLOWER_PASSWORD)
        .env("MIRROR_TEST_WRONG_PASSWORD", WRONG_PASSWORD)
        .env("DATABASE_URL", &database_url)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();

    // The leader trades once the engine is in; the follower with the right password copies.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let eurusd = Symbol::new("EURUSD").unwrap();
    let mut trades = 0;
    while broker.history("follow-env").unwrap().len() < 6 {
        assert!(std::time::Instant::now() < deadline, "the follower never copied: is the engine logged in?");
        assert!(child.try_wait().unwrap().is_none(), "the engine exited early: {}", read(&scratch.path("stderr.txt")));
        if trades < 6 && broker.positions("lead").unwrap().is_empty() || trades == 0 {
            broker
                .manual_order("lead", eurusd, Side::Buy, Qty::parse("0.5").unwrap(), OrderKind::Market, None, None)
                .unwrap();
            trades += 1;
        } else if let Some(position) = broker.positions("lead").unwrap().first() {
            broker.manual_close("lead", position.id, position.qty).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the engine did not stop on Ctrl-C");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(broker.history("follow-wrong").unwrap().is_empty(), "a wrong password must not trade");

    // The run happened, and said why the third account stayed out (without the password).
    let console = read(&scratch.path("stdout.txt")) + &read(&scratch.path("stderr.txt"));
    assert!(console.contains("wrong or missing password for `follow-wrong`"), "{console}");
    let logs: String = files_under(&dir.join("logs")).iter().map(|file| read(file)).collect();
    assert!(logs.contains("Postgres connected"), "{logs}");
    // The URL is logged, and its password is not.
    assert!(logs.contains("postgres:***@"), "{logs}");

    // No secret in any file the run left: logs, the journal, the console, the configuration.
    let files = files_under(dir);
    assert!(files.iter().any(|f| f.starts_with(dir.join("data"))), "the journal is there");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for secret in all {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds {secret}", file.display());
        }
    }

    // Nor in any Postgres table.
    let (client, connection) =
        tokio_postgres::connect(&format!("{base}/{database}"), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let tables: Vec<String> = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(tables.len() >= 10, "{tables:?}");
    let mut rows = 0;
    for table in &tables {
        for row in client.query(&format!("SELECT t::text FROM {table} t"), &[]).await.unwrap() {
            let text: String = row.get(0);
            rows += 1;
            for secret in all {
                assert!(!text.contains(secret), "{table} holds {secret}: {text}");
            }
        }
    }
    let orders: i64 = client.query_one("SELECT count(*) FROM orders", &[]).await.unwrap().get(0);
    assert!(orders >= 6 && rows > 50, "Postgres got the run: {orders} orders, {rows} rows");
    drop(client);
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await.unwrap();
}

fn read(file: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(file).unwrap_or_default()).into_owned()
}
