//! `mirror-engine secrets` as an operator runs it: a key file, values piped in, and never a value
//! printed or stored in the clear.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
