//! The `mirror-engine` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mirror-engine")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A fresh folder for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("mirror-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn check_accepts_the_demo_config() {
    let output = Command::new(binary()).current_dir(repo()).args(["check", "config/demo.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("✓ config/demo.toml: 22 accounts"), "{stdout}");
}

#[test]
fn check_names_file_line_field_and_reason_and_exits_non_zero() {
    let scratch = Scratch::new("check");
    let file = scratch.0.join("bad.toml");
    std::fs::write(
        &file,
        "[instruments.EURUSD]\ncontract_size = 100000\ntick_size = \"0.00001\"\nlot_step = \"0.01\"\n\
         min_qty = \"0.01\"\nmax_qty = 100\nprice = \"1.085\"\n\n[[accounts]]\nname = \"a\"\nplatform = \"sim\"\n\
         balance = 1000\n\n[[links]]\nleader = \"a\"\nfollower = \"ghost\"\nsizing = { mode = \"multiplier\", ratio = 0 }\n",
    )
    .unwrap();
    let output = Command::new(binary()).args(["check", file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:16:12: links[0].follower: no account is named `ghost`", file.display())),
        "{stderr}"
    );
    assert!(stderr.contains("1 problem"), "{stderr}");

    let missing = Command::new(binary()).args(["check", "/nonexistent/mirror.toml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/mirror.toml: cannot read the file"));
}

#[test]
fn check_reports_gateway_mistakes_at_their_lines() {
    let scratch = Scratch::new("check-gateway");
    let file = scratch.0.join("gateway.toml");
    std::fs::write(
        &file,
        "[instruments.ES]\ncontract_size = 50\ntick_size = \"0.25\"\nlot_step = 1\nmin_qty = 1\nmax_qty = 10\n\
         price = 5000\n\n[[sources]]\nname = \"algo\"\n\n[gateway]\nlisten = \"127.0.0.1\"\ncert_dir = \"gw\"\n\n\
         [[gateway.tokens]]\nname = \"bot\"\ntoken = \"env:BOT_TOKEN\"\nrole = \"trader\"\nsource = \"ghost\"\n",
    )
    .unwrap();
    let output = Command::new(binary()).args(["check", file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let at = |place: &str| format!("{}:{place}", file.display());
    assert!(
        stderr.contains(&format!(
            "{}: gateway.listen: must be an IP address and UDP port such as 127.0.0.1:7443, got `127.0.0.1`",
            at("13:10")
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}: gateway.tokens[0].source: no [[sources]] entry is named `ghost` (defined: algo)",
            at("20:10")
        )),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems"), "{stderr}");

    // A token written in the clear is refused where it stands, and not repeated.
    let text = std::fs::read_to_string(&file).unwrap().replace("env:BOT_TOKEN", "s3cret-token-in-the-clear");
    std::fs::write(&file, text).unwrap();
    let output = Command::new(binary()).args(["check", file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("{}: gateway.tokens[0].token: ", at("18:9"))), "{stderr}");
    assert!(stderr.contains("plain-text credentials are not accepted") && !stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn run_streams_status_and_stops_cleanly_on_ctrl_c() {
    let scratch = Scratch::new("run");
    let demo = std::fs::read_to_string(repo().join("config/demo.toml")).unwrap();
    let logs = scratch.0.join("logs");
    let gateway = scratch.0.join("gateway");
    let config = demo
        .replace("dir = \"logs\"", &format!("dir = \"{}\"", logs.display()))
        .replace("dir = \"data\"", &format!("dir = \"{}\"", scratch.0.join("data").display()))
        .replace("cert_dir = \"data/gateway\"", &format!("cert_dir = \"{}\"", gateway.display()))
        .replace("listen = \"127.0.0.1:7443\"", "listen = \"127.0.0.1:0\"");
    let file = scratch.0.join("demo.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = Command::new(binary())
        .args(["run", "--config", file.to_str().unwrap()])
        .env_remove("MIRROR_DEMO_GATEWAY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Wait until the leaders have traded and followers copied.
    let started = Instant::now();
    let mut copies_seen = false;
    let mut before_copies = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("│ copies ") && !line.contains("│ copies 0 ") {
            copies_seen = true;
            break;
        }
        before_copies.push(line);
        assert!(started.elapsed() < Duration::from_secs(60), "no copies within a minute");
    }
    assert!(copies_seen, "the status line never showed copies");
    // The gateway is up, with the fingerprint clients pin; the demo's optional token is off
    // without its variable, and the demo runs all the same.
    let fingerprint = std::fs::read_to_string(gateway.join("gateway-fingerprint.txt")).unwrap();
    let listening = before_copies.iter().find(|l| l.starts_with("gateway listening on 127.0.0.1:"));
    let listening = listening.unwrap_or_else(|| panic!("{before_copies:?}"));
    assert!(listening.ends_with(&format!(", certificate fingerprint {}", fingerprint.trim())), "{listening}");
    assert!(
        before_copies.iter().any(|l| l.contains("gateway token `demo-algo` is off (optional)")
            && l.contains("MIRROR_DEMO_GATEWAY_TOKEN is not set")),
        "{before_copies:?}"
    );
    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupted.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit {status:?}; stderr: {stderr}");
    assert!(rest.iter().any(|l| l.starts_with("account ") && l.contains("balance")), "no final summary: {rest:?}");
    assert!(rest.iter().any(|l| l.starts_with("alpha-fx ")), "{rest:?}");
    let log_files: Vec<_> = std::fs::read_dir(&logs).unwrap().filter_map(Result::ok).collect();
    assert_eq!(log_files.len(), 1);
    let first = std::fs::read_to_string(log_files[0].path()).unwrap();
    let record: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert!(record.get("timestamp").is_some() && record.get("level").is_some(), "{record}");

    // The journal of that run rebuilds every account: from the earliest snapshot, its inputs
    // lead exactly, byte for byte, to the snapshot the clean stop took.
    let journal = scratch.0.join("data").join("journal");
    let replay = Command::new(binary())
        .args(["replay", "--journal", journal.to_str().unwrap(), "--verify", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{stdout}{}", String::from_utf8_lossy(&replay.stderr));
    let document: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let accounts = document["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 22);
    for account in accounts {
        let check = account["verification"].as_str().unwrap();
        assert!(check.starts_with("✓ reproduces input"), "{account}");
    }
    assert!(document["journal"]["inputs_replayed"].as_u64().unwrap() > 100, "{document}");
    let copied: usize = accounts.iter().map(|a| a["positions"].as_array().unwrap().len()).sum();
    assert!(copied > 0, "the replayed state holds the run's positions: {document}");
}
