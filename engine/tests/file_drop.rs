//! File drops as `mirror-engine run` starts them: from `[[file_drops]]` in the configuration,
//! through `mirror_engine::app::start`, watching a temporary folder. Files are dropped as a
//! trader's tools would (written under a `.part` name and renamed, or written slowly in
//! place), and what is checked is what the simulated broker holds for each follower, what
//! the folder's `processed/` and `rejected/` hold, and that refused files reach nothing.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use mirror_engine::app::{Running, StartOptions, start};
use mirror_engine::config::{self, Resolved};
use mirror_model::Qty;
use sha2::Digest as _;
use support::WAIT;

const CONFIG: &str = concat!(
    engine_sim!(),
    es_nq!(),
    r#"

[[sources]]
name = "desk"
symbols = ["ES", "NQ"]

[[accounts]]
name = "f1"
platform = "sim"
mode = "netting"
balance = 100000

[[accounts]]
name = "f2"
platform = "sim"
mode = "netting"
balance = 100000

[[links]]
leader = "desk"
follower = "f1"

[[links]]
leader = "desk"
follower = "f2"
sizing = { mode = "multiplier", ratio = 2 }
"#
);

/// The configuration with its journal and the drop folder under `dir`.
fn resolve(dir: &Path, settle_ms: u64) -> Resolved {
    let text = format!(
        "{CONFIG}\n[storage]\ndir = {:?}\n\n[[file_drops]]\nname = \"desk-drop\"\ndir = {:?}\nsource = \"desk\"\n\
         poll_ms = 50\nsettle_ms = {settle_ms}\n",
        dir.join("data").display().to_string(),
        drops(dir).display().to_string(),
    );
    config::load_str(Path::new("file_drop.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
}

fn drops(dir: &Path) -> PathBuf {
    dir.join("drops")
}

async fn start_mirror(dir: &Path, settle_ms: u64) -> Running {
    start(&resolve(dir, settle_ms), StartOptions::default()).await.unwrap_or_else(|e| panic!("{e:#}"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/file_drop").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Drops a file as a careful writer does: under a name the drop ignores, then renamed.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let partial = drops(dir).join(format!("{name}.part"));
    std::fs::write(&partial, bytes).unwrap();
    std::fs::rename(&partial, drops(dir).join(name)).unwrap();
}

/// A follower's net ES and NQ at the broker.
fn holdings(running: &Running, follower: &str) -> (Qty, Qty) {
    let positions = running.broker().positions(follower).unwrap();
    let net = |symbol: &str| {
        positions.iter().filter(|p| p.symbol.as_str() == symbol).fold(Qty::ZERO, |sum, p| match p.side {
            mirror_model::Side::Buy => sum + p.qty,
            mirror_model::Side::Sell => sum - p.qty,
        })
    };
    (net("ES"), net("NQ"))
}

async fn eventually(running: &Running, what: &str, expected: [(i64, i64); 2]) {
    let q = |n: i64| Qty::parse(&n.to_string()).unwrap();
    let expected = expected.map(|(es, nq)| (q(es), q(nq)));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = [holdings(running, "f1"), holdings(running, "f2")];
        if seen == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: expected {expected:?}, the broker holds {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a file to appear, and reads it.
async fn appears(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{} did not appear", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a file has left the drop folder (moved to `processed/` or `rejected/`).
async fn gone(dir: &Path, name: &str) {
    let path = drops(dir).join(name);
    let deadline = tokio::time::Instant::now() + WAIT;
    while path.exists() {
        assert!(tokio::time::Instant::now() < deadline, "{} is still in the folder", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A processed file's report, once it is written and the file moved beside it.
async fn report(dir: &Path, name: &str) -> serde_json::Value {
    let text = appears(&drops(dir).join("processed").join(format!("{name}.report.json"))).await;
    gone(dir, name).await;
    // Written in full before the file moves.
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn signals_of(report: &serde_json::Value) -> Vec<(u64, String, u64)> {
    report["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["line"].as_u64().unwrap(), s["action"].as_str().unwrap().to_owned(), s["signal"].as_u64().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_opens_then_closes_and_a_json_file_reach_every_follower() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path(), 200).await;
    assert_eq!(running.file_drops().len(), 1);
    assert_eq!(running.file_drops()[0].dir(), drops(dir.path()));

    // A spreadsheet export: byte order mark, CRLF, quoted notes with commas, text position keys.
    drop_file(dir.path(), "basket-open.csv", &fixture("basket-open.csv"));
    eventually(&running, "the opening basket", [(3, -1), (6, -2)]).await;
    let opened = report(dir.path(), "basket-open.csv").await;
    assert!(drops(dir.path()).join("processed/basket-open.csv").exists());
    assert!(!drops(dir.path()).join("basket-open.csv").exists());
    let sent = signals_of(&opened);
    assert_eq!(
        sent.iter().map(|(line, action, _)| (*line, action.as_str())).collect::<Vec<_>>(),
        [(2, "open"), (3, "open"), (4, "open")]
    );
    assert_eq!(
        (opened["rows"].as_u64(), opened["source"].as_str(), opened["resumed"].as_bool()),
        (Some(3), Some("desk"), Some(false))
    );
    let sha = format!("{:x}", sha2::Sha256::digest(fixture("basket-open.csv")));
    assert_eq!(opened["sha256"].as_str(), Some(sha.as_str()));

    // The closes name the same text keys: a partial close, then two closes.
    drop_file(dir.path(), "basket-close.csv", &fixture("basket-close.csv"));
    eventually(&running, "the closing basket", [(1, 0), (2, 0)]).await;
    let closed = signals_of(&report(dir.path(), "basket-close.csv").await);
    assert_eq!(closed.iter().map(|(_, a, _)| a.as_str()).collect::<Vec<_>>(), ["partial_close", "close", "close"]);

    // JSON: {"signals": [...]}, numbers and numeric text, number keys.
    drop_file(dir.path(), "signals.json", &fixture("signals.json"));
    eventually(&running, "the JSON file", [(0, 1), (0, 2)]).await;
    let json = report(dir.path(), "signals.json").await;
    let sent = signals_of(&json);
    assert_eq!(
        sent.iter().map(|(line, action, _)| (*line, action.as_str())).collect::<Vec<_>>(),
        [(3, "open"), (14, "open"), (15, "close"), (16, "close_all")]
    );
    let mut ids: Vec<u64> = [&opened, &json].iter().flat_map(|r| signals_of(r)).map(|(_, _, id)| id).collect();
    ids.extend(closed.iter().map(|(_, _, id)| *id));
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 10, "every row its own signal");
    running.settle(Duration::from_millis(100), WAIT).await;
    assert_eq!(running.handle.stats().signals, 10);
    assert_eq!(running.file_drops()[0].counts().processed, 3);
    running.stop().await;
}

fn rejected_report(dir: &Path, name: &str) -> PathBuf {
    drops(dir).join("rejected").join(format!("{name}.errors.txt"))
}

/// The names in a folder of the drop that start with `prefix`, sorted.
fn names_in(dir: &Path, folder: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(drops(dir).join(folder))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_row_sends_nothing_and_the_same_file_again_is_refused_as_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path(), 200).await;

    // One bad row among good ones: nothing of the file is sent.
    drop_file(dir.path(), "bad-rows.csv", &fixture("bad-rows.csv"));
    let errors = appears(&rejected_report(dir.path(), "bad-rows.csv")).await;
    assert!(
        errors.starts_with("bad-rows.csv was not executed: 1 problem on 1 line. Nothing of this file was sent"),
        "{errors}"
    );
    assert!(errors.contains("\nline 3, field qty: must be above 0, got -1\n"), "{errors}");
    gone(dir.path(), "bad-rows.csv").await;
    assert!(drops(dir.path()).join("rejected/bad-rows.csv").exists());
    // A misspelt column is named, not ignored.
    drop_file(dir.path(), "stoploss-typo.csv", &fixture("stoploss-typo.csv"));
    let errors = appears(&rejected_report(dir.path(), "stoploss-typo.csv")).await;
    assert!(errors.contains("line 1, field stoploss: unknown field (did you mean `sl`?)"), "{errors}");
    // Neither CSV nor JSON.
    drop_file(dir.path(), "notes.txt", b"buy ES 1\n");
    let errors = appears(&rejected_report(dir.path(), "notes.txt")).await;
    assert!(errors.contains("Mirror reads .csv and .json files in this folder (this one has `.txt`)"), "{errors}");
    // Dropped again, the bad file is rejected again, beside the first (nothing overwritten).
    drop_file(dir.path(), "bad-rows.csv", &fixture("bad-rows.csv"));
    let deadline = tokio::time::Instant::now() + WAIT;
    while names_in(dir.path(), "rejected", "bad-rows").len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", names_in(dir.path(), "rejected", "bad-rows"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names = names_in(dir.path(), "rejected", "bad-rows");
    assert!(names[0].starts_with("bad-rows-") && names[0].ends_with("Z.csv"), "{names:?}");
    running.settle(Duration::from_millis(100), WAIT).await;
    let stats = running.handle.stats();
    assert_eq!((stats.signals, stats.signals_refused, stats.copies), (0, 0, 0), "{stats:?}");

    // A good file, then the same name and content again: refused, and nothing more is sent.
    drop_file(dir.path(), "basket-open.csv", &fixture("basket-open.csv"));
    eventually(&running, "the opening basket", [(3, -1), (6, -2)]).await;
    let first = signals_of(&report(dir.path(), "basket-open.csv").await);
    drop_file(dir.path(), "basket-open.csv", &fixture("basket-open.csv"));
    let errors = appears(&rejected_report(dir.path(), "basket-open.csv")).await;
    assert!(errors.contains("was already processed at 20"), "{errors}");
    assert!(
        errors.contains(&format!(
            "(signals sig#{}, sig#{}, sig#{}; report processed/basket-open.csv.report.json)",
            first[0].2, first[1].2, first[2].2
        )),
        "{errors}"
    );
    assert!(errors.contains("Nothing of it was sent again"), "{errors}");
    running.settle(Duration::from_millis(200), WAIT).await;
    assert_eq!(running.handle.stats().signals, 3);
    eventually(&running, "nothing more", [(3, -1), (6, -2)]).await;

    // The same name with other content is a new file, kept beside the first.
    drop_file(dir.path(), "basket-open.csv", b"action,symbol,side,qty,position\nopen,ES,buy,1,second-basket\n");
    eventually(&running, "the second basket of that name", [(4, -1), (8, -2)]).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while names_in(dir.path(), "processed", "basket-open").len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", names_in(dir.path(), "processed", "basket-open"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names = names_in(dir.path(), "processed", "basket-open");
    let stamp = names[0].strip_prefix("basket-open-").and_then(|n| n.strip_suffix(".csv")).unwrap_or_default();
    let digits =
        |range: std::ops::Range<usize>| stamp.get(range).is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()));
    assert!(
        stamp.len() == 16 && digits(0..8) && &stamp[8..9] == "T" && digits(9..15) && stamp.ends_with('Z'),
        "a UTC time stamp before the extension: {names:?}"
    );
    // The counters move once the file's step is finished, just after it is moved.
    let expected = mirror_engine::file_drop::FileDropCounts { processed: 2, rejected: 5, signals: 4 };
    while running.file_drops()[0].counts() != expected {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", running.file_drops()[0].counts());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await;
}

/// The ledger lines the drop writes, for a file whose first rows were sent before a crash.
fn ledger_line(fields: &str, file: &str, sha: &str) -> String {
    format!("{{{fields},\"file\":\"{file}\",\"sha256\":\"{sha}\"}}\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_part_way_only_the_rows_not_sent_are_sent_and_an_unknown_row_is_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let state = drops(dir.path()).join(".mirror");
    std::fs::create_dir_all(&state).unwrap();
    let open = fixture("basket-open.csv");
    let close = fixture("basket-close.csv");
    let (open_sha, close_sha) =
        (format!("{:x}", sha2::Sha256::digest(&open)), format!("{:x}", sha2::Sha256::digest(&close)));
    // basket-open.csv: rows 1 and 2 (lines 2, 3) were taken before the crash.
    // basket-close.csv: row 1 taken, row 2 (line 3) handed to the engine with no answer recorded.
    let mut ledger = String::new();
    for (fields, file, sha) in [
        (r#""t":"start","rows":3,"at_ms":1700000000000"#, "basket-open.csv", &open_sha),
        (r#""t":"sending","index":0,"line":2"#, "basket-open.csv", &open_sha),
        (r#""t":"sent","index":0,"line":2,"signal":900001,"at_ms":1700000000001"#, "basket-open.csv", &open_sha),
        (r#""t":"sending","index":1,"line":3"#, "basket-open.csv", &open_sha),
        (r#""t":"sent","index":1,"line":3,"signal":900002,"at_ms":1700000000002"#, "basket-open.csv", &open_sha),
        (r#""t":"start","rows":3,"at_ms":1700000000003"#, "basket-close.csv", &close_sha),
        (r#""t":"sending","index":0,"line":2"#, "basket-close.csv", &close_sha),
        (r#""t":"sent","index":0,"line":2,"signal":900011,"at_ms":1700000000004"#, "basket-close.csv", &close_sha),
        (r#""t":"sending","index":1,"line":3"#, "basket-close.csv", &close_sha),
    ] {
        ledger.push_str(&ledger_line(fields, file, sha));
    }
    std::fs::write(state.join("ledger.jsonl"), ledger).unwrap();
    // Both files are still in the folder, as a crash leaves them.
    std::fs::write(drops(dir.path()).join("basket-open.csv"), &open).unwrap();
    std::fs::write(drops(dir.path()).join("basket-close.csv"), &close).unwrap();

    let running = start_mirror(dir.path(), 100).await;
    // Only line 4 of the opening basket (ES buy 1) is sent.
    eventually(&running, "the rest of the opening basket", [(1, 0), (2, 0)]).await;
    let opened = report(dir.path(), "basket-open.csv").await;
    assert_eq!(opened["resumed"].as_bool(), Some(true));
    let sent = signals_of(&opened);
    assert_eq!((sent[0].0, sent[0].2), (2, 900001));
    assert_eq!((sent[1].0, sent[1].2), (3, 900002));
    assert_eq!((sent.len(), sent[2].0), (3, 4));
    assert!(sent[2].2 != 900001 && sent[2].2 != 900002);

    // The closing basket stops at the unknown row and says what was and was not sent.
    let errors = appears(&rejected_report(dir.path(), "basket-close.csv")).await;
    assert!(
        errors.starts_with("basket-close.csv was stopped part-way: line 3 was handed to the engine and its outcome was not recorded (Mirror stopped"),
        "{errors}"
    );
    assert!(errors.contains("Sent (do not send these again):\n  line 2 → signal sig#900011\n"), "{errors}");
    assert!(errors.contains("Not known whether sent: line 3 (check the followers"), "{errors}");
    assert!(errors.contains("Not sent: lines 4.\n"), "{errors}");
    gone(dir.path(), "basket-close.csv").await;
    running.settle(Duration::from_millis(200), WAIT).await;
    assert_eq!(running.handle.stats().signals, 1, "only the one row not yet sent");

    // The ledger knows both files as finished: the same content again is a duplicate.
    drop_file(dir.path(), "basket-open.csv", &open);
    let errors = appears(&rejected_report(dir.path(), "basket-open.csv")).await;
    assert!(errors.contains("(signals sig#900001, sig#900002, sig#"), "{errors}");
    drop_file(dir.path(), "basket-close.csv", &close);
    let deadline = tokio::time::Instant::now() + WAIT;
    while names_in(dir.path(), "rejected", "basket-close").len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", names_in(dir.path(), "rejected", "basket-close"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names = names_in(dir.path(), "rejected", "basket-close");
    let again = std::fs::read_to_string(drops(dir.path()).join("rejected").join(&names[1])).unwrap();
    assert!(again.contains("was already stopped part-way at"), "{names:?}: {again}");
    running.settle(Duration::from_millis(200), WAIT).await;
    assert_eq!(running.handle.stats().signals, 1);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_is_not_read_until_it_settles() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let running = start_mirror(dir.path(), 1_000).await;
    let path = drops(dir.path()).join("slow.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"action,symbol,side,qty,position\nopen,ES,buy,1,slow-1\n").unwrap();
    for row in 2..=5 {
        // A slow copy: a row every 100 ms, each a valid file on its own if read too early.
        tokio::time::sleep(Duration::from_millis(100)).await;
        file.write_all(format!("open,ES,buy,1,slow-{row}\n").as_bytes()).unwrap();
        file.flush().unwrap();
        assert_eq!(running.handle.stats().signals, 0, "read before it settled (row {row})");
        assert!(path.exists());
    }
    drop(file);
    eventually(&running, "the whole file once settled", [(5, 0), (10, 0)]).await;
    assert_eq!(report(dir.path(), "slow.csv").await["rows"].as_u64(), Some(5));
    running.settle(Duration::from_millis(100), WAIT).await;
    assert_eq!(running.handle.stats().signals, 5);
    running.stop().await;
}
