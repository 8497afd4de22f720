//! The store against real files: round trips, wrong keys, tampering, re-keying, atomic writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::clock::ManualClock;

/// A distinctive value: if it shows up anywhere it should not, a test fails.
const VALUE: &str = "hunter2-Very-Secret-VALUE-42";
const OTHER_VALUE: &str = "correct-horse-battery-staple-99";
const T0_UNIX_MS: i64 = 1_767_225_600_000;

/// A fresh folder for one test's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("mirror-secrets-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn store(&self) -> PathBuf {
        self.0.join("secrets.enc.toml")
    }

    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn secret(value: &str) -> Secret {
    Secret::new(value.to_owned())
}

fn open_at(path: &Path, key: &MasterKey, clock: &Arc<ManualClock>) -> SecretStore {
    SecretStore::open_with_clock(path, key, clock.clone()).unwrap()
}

/// Rewrites the store file through `change`, as someone editing it by hand would.
fn edit(path: &Path, change: impl FnOnce(&mut Vec<toml::Value>)) {
    let mut doc: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    change(doc.get_mut("secret").unwrap().as_array_mut().unwrap());
    std::fs::write(path, toml::to_string(&doc).unwrap()).unwrap();
}

fn field<'a>(entries: &'a mut [toml::Value], name: &str, key: &str) -> &'a mut toml::Value {
    let entry = entries.iter_mut().find(|e| e["name"].as_str() == Some(name)).unwrap();
    entry.as_table_mut().unwrap().get_mut(key).unwrap()
}

/// Asserts that neither the message nor the debug form of `error` contains `value`.
fn assert_clean(error: &SecretsError, value: &str) {
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains(value), "{shown} contains {value}");
}

#[test]
fn round_trip_survives_reopening() {
    let scratch = Scratch::new("round-trip");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("broker.password", &secret(VALUE)).unwrap();
    store.put_new("api-key", &secret(OTHER_VALUE)).unwrap();
    assert_eq!(store.get("broker.password").unwrap().expose(), VALUE);

    let reopened = open_at(&scratch.store(), &key, &clock);
    assert_eq!(reopened.len(), 2);
    assert_eq!(reopened.get("broker.password").unwrap().expose(), VALUE);
    assert_eq!(reopened.get("api-key").unwrap().expose(), OTHER_VALUE);
    let names: Vec<_> = reopened.list().into_iter().map(|info| info.name).collect();
    assert_eq!(names, ["api-key", "broker.password"]);
}

#[test]
fn a_missing_file_is_an_empty_store_until_the_first_change() {
    let scratch = Scratch::new("missing");
    let key = MasterKey::generate().unwrap();
    let store = SecretStore::open(&scratch.store(), &key).unwrap();
    assert!(store.is_empty());
    assert!(store.list().is_empty());
    assert!(matches!(store.get("x"), Err(SecretsError::NotFound { name, .. }) if name == "x"));
    assert!(!scratch.store().exists());
}

#[test]
fn a_wrong_master_key_is_named_as_such() {
    let scratch = Scratch::new("wrong-key");
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &MasterKey::generate().unwrap(), &clock);
    store.put_new("broker.password", &secret(VALUE)).unwrap();

    let error = SecretStore::open(&scratch.store(), &MasterKey::generate().unwrap()).unwrap_err();
    assert!(matches!(&error, SecretsError::WrongMasterKey { path } if path == &scratch.store()), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: this master key does not open this secrets file (its key check fails): \
             wrong key, or the file was re-keyed since",
            scratch.store().display()
        )
    );
    assert_clean(&error, VALUE);
}

#[test]
fn a_wrong_key_is_caught_even_in_a_store_without_secrets() {
    let scratch = Scratch::new("wrong-key-empty");
    let key = MasterKey::generate().unwrap();
    let mut store = SecretStore::open(&scratch.store(), &key).unwrap();
    store.put_new("a", &secret(VALUE)).unwrap();
    store.remove("a").unwrap();
    let error = SecretStore::open(&scratch.store(), &MasterKey::generate().unwrap()).unwrap_err();
    assert!(matches!(error, SecretsError::WrongMasterKey { .. }), "{error:?}");
}

#[test]
fn tampered_ciphertext_is_reported_for_that_secret_only() {
    let scratch = Scratch::new("tamper");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("broker.password", &secret(VALUE)).unwrap();
    store.put_new("api-key", &secret(OTHER_VALUE)).unwrap();

    edit(&scratch.store(), |entries| {
        let ciphertext = field(entries, "broker.password", "ciphertext");
        let mut bytes = BASE64.decode(ciphertext.as_str().unwrap()).unwrap();
        bytes[0] ^= 1;
        *ciphertext = BASE64.encode(bytes).into();
    });

    let store = open_at(&scratch.store(), &key, &clock);
    let error = store.get("broker.password").unwrap_err();
    assert!(matches!(&error, SecretsError::Decrypt { name, .. } if name == "broker.password"), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with(&format!("{}: secret `broker.password` does not decrypt", scratch.store().display())));
    assert_clean(&error, VALUE);
    assert_eq!(store.get("api-key").unwrap().expose(), OTHER_VALUE);
}

#[test]
fn a_ciphertext_moved_to_another_name_does_not_decrypt() {
    let scratch = Scratch::new("moved");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("live.password", &secret(VALUE)).unwrap();
    store.put_new("demo.password", &secret(OTHER_VALUE)).unwrap();

    // Swap the sealed values: each ciphertext now sits under the other's name.
    edit(&scratch.store(), |entries| {
        for key in ["nonce", "ciphertext"] {
            let live = field(entries, "live.password", key).clone();
            let demo = std::mem::replace(field(entries, "demo.password", key), live);
            *field(entries, "live.password", key) = demo;
        }
    });
    let store = open_at(&scratch.store(), &key, &clock);
    for name in ["live.password", "demo.password"] {
        let error = store.get(name).unwrap_err();
        assert!(matches!(&error, SecretsError::Decrypt { name: n, .. } if n == name), "{error:?}");
    }

    // Renaming an entry in the file does not carry its value over either.
    edit(&scratch.store(), |entries| *field(entries, "live.password", "name") = "stolen".into());
    let store = open_at(&scratch.store(), &key, &clock);
    assert!(matches!(store.get("stolen"), Err(SecretsError::Decrypt { .. })));
}

#[test]
fn rekey_moves_every_secret_to_the_new_key() {
    let scratch = Scratch::new("rekey");
    let old_key = MasterKey::generate().unwrap();
    let new_key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &old_key, &clock);
    store.put_new("broker.password", &secret(VALUE)).unwrap();
    clock.advance_ms(1000);
    store.put_new("api-key", &secret(OTHER_VALUE)).unwrap();
    let before = store.list();
    let file_before = std::fs::read(scratch.store()).unwrap();

    clock.advance_ms(1000);
    store.rekey(&new_key).unwrap();
    assert_ne!(std::fs::read(scratch.store()).unwrap(), file_before);
    assert_eq!(store.list(), before, "re-keying keeps names and times");
    assert_eq!(store.get("api-key").unwrap().expose(), OTHER_VALUE);

    let error = SecretStore::open(&scratch.store(), &old_key).unwrap_err();
    assert!(matches!(error, SecretsError::WrongMasterKey { .. }), "{error:?}");
    let mut reopened = open_at(&scratch.store(), &new_key, &clock);
    assert_eq!(reopened.get("broker.password").unwrap().expose(), VALUE);
    assert_eq!(reopened.get("api-key").unwrap().expose(), OTHER_VALUE);
    assert_eq!(reopened.list(), before);

    // The store keeps working under the new key.
    store.put_new("third", &secret("v3")).unwrap();
    reopened = open_at(&scratch.store(), &new_key, &clock);
    assert_eq!(reopened.get("third").unwrap().expose(), "v3");
}

#[test]
fn rekey_refuses_a_damaged_entry_and_writes_nothing() {
    let scratch = Scratch::new("rekey-damaged");
    let old_key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &old_key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();
    store.put_new("b", &secret(OTHER_VALUE)).unwrap();
    edit(&scratch.store(), |entries| {
        let nonce = field(entries, "b", "nonce");
        let mut bytes = BASE64.decode(nonce.as_str().unwrap()).unwrap();
        bytes[23] ^= 0x80;
        *nonce = BASE64.encode(bytes).into();
    });
    let damaged = std::fs::read(scratch.store()).unwrap();

    let mut store = open_at(&scratch.store(), &old_key, &clock);
    let error = store.rekey(&MasterKey::generate().unwrap()).unwrap_err();
    assert!(matches!(&error, SecretsError::Decrypt { name, .. } if name == "b"), "{error:?}");
    assert_eq!(std::fs::read(scratch.store()).unwrap(), damaged);
    assert_eq!(open_at(&scratch.store(), &old_key, &clock).get("a").unwrap().expose(), VALUE);
}

#[test]
fn put_new_refuses_an_existing_name_and_rotate_a_missing_one() {
    let scratch = Scratch::new("exists");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();

    let error = store.put_new("a", &secret(OTHER_VALUE)).unwrap_err();
    assert!(matches!(&error, SecretsError::AlreadyExists { name, .. } if name == "a"), "{error:?}");
    assert_clean(&error, OTHER_VALUE);
    assert_eq!(store.get("a").unwrap().expose(), VALUE);

    let error = store.rotate("b", &secret(OTHER_VALUE)).unwrap_err();
    assert!(matches!(&error, SecretsError::NotFound { name, .. } if name == "b"), "{error:?}");
    assert!(!store.contains("b"));
}

#[test]
fn rotate_replaces_the_value_and_keeps_the_creation_time() {
    let scratch = Scratch::new("rotate");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();
    clock.advance_ms(5000);
    store.rotate("a", &secret(OTHER_VALUE)).unwrap();

    let reopened = open_at(&scratch.store(), &key, &clock);
    assert_eq!(reopened.get("a").unwrap().expose(), OTHER_VALUE);
    assert_eq!(
        reopened.list(),
        [SecretInfo { name: "a".into(), created_unix_ms: T0_UNIX_MS, updated_unix_ms: T0_UNIX_MS + 5000 }]
    );
}

#[test]
fn remove_deletes_and_names_a_missing_secret() {
    let scratch = Scratch::new("remove");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();
    store.put_new("b", &secret(OTHER_VALUE)).unwrap();
    store.remove("a").unwrap();

    let reopened = open_at(&scratch.store(), &key, &clock);
    assert!(matches!(reopened.get("a"), Err(SecretsError::NotFound { .. })));
    assert_eq!(reopened.get("b").unwrap().expose(), OTHER_VALUE);
    let error = store.remove("a").unwrap_err();
    assert_eq!(error.to_string(), format!("{}: no secret is named `a`", scratch.store().display()));
}

#[test]
fn the_file_list_and_debug_output_hold_no_values() {
    let scratch = Scratch::new("no-values");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("broker.password", &secret(VALUE)).unwrap();
    store.put_new("api-key", &secret(OTHER_VALUE)).unwrap();

    let bytes = std::fs::read(scratch.store()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    for value in [VALUE, OTHER_VALUE] {
        for encoded in [value.to_owned(), BASE64.encode(value), value.to_lowercase()] {
            assert!(!text.contains(&encoded), "the file holds {encoded}:\n{text}");
        }
        assert!(!format!("{:?}", store.list()).contains(value));
        assert!(!format!("{store:?}").contains(value));
        assert!(!format!("{:?}", store.get("broker.password").unwrap()).contains(value));
    }
    assert!(text.contains("name = \"broker.password\""), "{text}");
    assert!(text.contains("version = 1"), "{text}");
    assert!(text.contains(&format!("created_unix_ms = {T0_UNIX_MS}")), "{text}");
}

#[test]
fn errors_never_contain_values_or_key_material() {
    let scratch = Scratch::new("clean-errors");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();

    let mut errors = vec![
        store.put_new("a", &secret(VALUE)).unwrap_err(),
        store.put_new("b", &secret("")).unwrap_err(),
        store.put_new("b", &secret(&VALUE.repeat(3000))).unwrap_err(),
        // A value typed where a name belongs.
        store.put_new(&format!("{VALUE}!"), &secret(VALUE)).unwrap_err(),
        store.get(&format!("{VALUE} ")).unwrap_err(),
        VALUE.parse::<CredentialRef>().unwrap_err(),
        format!("secret:{VALUE}?").parse::<CredentialRef>().unwrap_err(),
        format!("env:{VALUE}").parse::<CredentialRef>().unwrap_err(),
        MasterKey::decode(VALUE, &KeyOrigin::EnvVar).unwrap_err(),
        SecretStore::open(&scratch.store(), &MasterKey::generate().unwrap()).unwrap_err(),
    ];
    let key_file = scratch.0.join("bad.key");
    std::fs::write(&key_file, VALUE).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    errors.push(MasterKey::from_file(&key_file).unwrap_err());
    edit(&scratch.store(), |entries| *field(entries, "a", "ciphertext") = BASE64.encode([0u8; 40]).into());
    errors.push(open_at(&scratch.store(), &key, &clock).get("a").unwrap_err());

    assert_eq!(errors.len(), 12);
    for error in &errors {
        assert_clean(error, VALUE);
        // Nor a telling piece of it.
        assert_clean(error, &VALUE[4..16]);
    }
    assert!(matches!(errors[2], SecretsError::ValueTooLarge { len: 84_000, .. }), "{:?}", errors[2]);
}

#[test]
fn names_are_checked_by_every_operation() {
    let scratch = Scratch::new("names");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    let bad = "two words";
    let results = [
        store.get(bad).map(drop),
        store.put_new(bad, &secret(VALUE)),
        store.rotate(bad, &secret(VALUE)),
        store.remove(bad),
    ];
    for result in results {
        assert!(matches!(result, Err(SecretsError::InvalidName { .. })), "{result:?}");
    }
    assert!(!scratch.store().exists());
}

#[test]
fn a_failed_write_leaves_neither_temp_files_nor_a_changed_store() {
    let scratch = Scratch::new("failed-write");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    for i in 0..5 {
        store.put_new(&format!("s{i}"), &secret(VALUE)).unwrap();
        store.rotate(&format!("s{i}"), &secret(OTHER_VALUE)).unwrap();
    }
    store.remove("s0").unwrap();
    store.rekey(&MasterKey::generate().unwrap()).unwrap();
    assert_eq!(scratch.files(), ["secrets.enc.toml"]);

    // A directory where the file should go: the rename fails after the temp file was written.
    let blocked = scratch.0.join("blocked.toml");
    let mut store = open_at(&blocked, &key, &clock);
    std::fs::create_dir_all(blocked.join("occupied")).unwrap();
    let error = store.put_new("a", &secret(VALUE)).unwrap_err();
    assert!(matches!(&error, SecretsError::Io { action: "replace", path, .. } if path == &blocked), "{error:?}");
    assert!(!store.contains("a"), "a change that was not written is not kept");
    assert_eq!(scratch.files(), ["blocked.toml", "secrets.enc.toml"]);
}

#[cfg(unix)]
#[test]
fn files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let scratch = Scratch::new("modes");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);

    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();
    assert_eq!(mode(&scratch.store()), 0o600);
    // A store someone loosened is private again after the next change.
    std::fs::set_permissions(scratch.store(), std::fs::Permissions::from_mode(0o644)).unwrap();
    store.rotate("a", &secret(OTHER_VALUE)).unwrap();
    assert_eq!(mode(&scratch.store()), 0o600);

    let key_file = scratch.0.join("master.key");
    key.write_new_file(&key_file).unwrap();
    assert_eq!(mode(&key_file), 0o600);
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("key-mode");
    let key_file = scratch.0.join("master.key");
    MasterKey::generate().unwrap().write_new_file(&key_file).unwrap();
    for mode in [0o640, 0o604, 0o660, 0o602] {
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(mode)).unwrap();
        let error = MasterKey::from_file(&key_file).unwrap_err();
        assert!(matches!(&error, SecretsError::KeyFileTooOpen { mode: m, .. } if *m == mode), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "key file {}: mode {mode:04o} lets group or others access it; it must be private to its owner \
                 (chmod 600 {})",
                key_file.display(),
                key_file.display()
            )
        );
    }
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    MasterKey::from_file(&key_file).unwrap();
}

#[test]
fn a_written_key_file_reads_back_as_the_same_key_and_is_never_overwritten() {
    let scratch = Scratch::new("key-file");
    let key = MasterKey::generate().unwrap();
    let key_file = scratch.0.join("master.key");
    key.write_new_file(&key_file).unwrap();
    let written = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(written.len(), 65, "64 hex digits and a newline: {}", written.len());

    let mut store = SecretStore::open(&scratch.store(), &key).unwrap();
    store.put_new("a", &secret(VALUE)).unwrap();
    let loaded = MasterKey::from_file(&key_file).unwrap();
    assert_eq!(SecretStore::open(&scratch.store(), &loaded).unwrap().get("a").unwrap().expose(), VALUE);

    let error = MasterKey::generate().unwrap().write_new_file(&key_file).unwrap_err();
    assert!(matches!(&error, SecretsError::KeyFileExists { path } if path == &key_file), "{error:?}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), written);
}

#[test]
fn unreadable_and_future_files_are_named_precisely() {
    let scratch = Scratch::new("formats");
    let key = MasterKey::generate().unwrap();
    let clock = ManualClock::new(T0_UNIX_MS);
    let mut store = open_at(&scratch.store(), &key, &clock);
    store.put_new("a", &secret(VALUE)).unwrap();
    let good = std::fs::read_to_string(scratch.store()).unwrap();
    let path = scratch.store().display().to_string();

    let cases = [
        (
            good.replace("version = 1", "version = 2"),
            format!("{path}: format version 2 is not supported; this build reads version 1"),
        ),
        (good.replace("xchacha20poly1305", "aes-gcm"), format!("{path}: format cipher `aes-gcm` is not supported")),
        (
            "version = 1\ncipher = \"xchacha20poly1305\"\n[key_check\n".to_owned(),
            format!("{path}: not a valid secrets file: line 3: "),
        ),
        (good.replace("name = \"a\"", "name = \"a\"\ncolour = \"blue\""), "unknown field `colour`".to_owned()),
        (
            format!("{good}\n{}", &good[good.find("[[secret]]").unwrap()..]),
            "secret[1]: a second secret named `a`".to_owned(),
        ),
        (good.replacen("nonce = \"", "nonce = \"AAAA", 2), "key_check: nonce is not base64 of 24 bytes".to_owned()),
        (good.replace("name = \"a\"", "name = \"a b\""), "secret[0]: invalid secret name".to_owned()),
    ];
    for (text, expected) in cases {
        std::fs::write(scratch.store(), &text).unwrap();
        let error = SecretStore::open(&scratch.store(), &key).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&expected), "expected {expected:?} in {message:?}\nfile:\n{text}");
        assert!(!error.is_usage());
    }
}

#[test]
fn credential_refs_resolve_from_the_store() {
    let scratch = Scratch::new("cred-ref");
    let key = MasterKey::generate().unwrap();
    let mut store = SecretStore::open(&scratch.store(), &key).unwrap();
    store.put_new("broker.password", &secret(VALUE)).unwrap();
    let reference: CredentialRef = "secret:broker.password".parse().unwrap();
    assert_eq!(reference.resolve(Some(&store)).unwrap().expose(), VALUE);
    let missing: CredentialRef = "secret:other".parse().unwrap();
    assert!(matches!(missing.resolve(Some(&store)), Err(SecretsError::NotFound { name, .. }) if name == "other"));
}
