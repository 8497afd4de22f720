//! The secrets file: a TOML document of names, timestamps and XChaCha20-Poly1305 ciphertext.
//!
//! ```toml
//! version = 1
//! cipher = "xchacha20poly1305"
//!
//! [key_check]            # an empty plaintext sealed under the master key
//! nonce = "<base64 of 24 bytes>"
//! ciphertext = "<base64 of the 16-byte tag>"
//!
//! [[secret]]
//! name = "ctrader.client_secret"
//! created_unix_ms = 1767225600000
//! updated_unix_ms = 1767225600000
//! nonce = "<base64 of 24 bytes>"
//! ciphertext = "<base64 of the value's ciphertext and tag>"
//! ```
//!
//! The associated data of an entry is `mirror-secrets/v1/secret/<name>`, so a ciphertext moved to
//! another name fails to authenticate; the key check uses `mirror-secrets/v1/key-check`, so it
//! cannot stand in for an entry either.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::file::{io_error, write_atomically};
use super::key::fill_random;
use super::secret::validate_name;
use super::{MasterKey, Secret, SecretsError};
use crate::clock::{Clock, SystemClock};

/// The file format this build writes and reads.
const FORMAT_VERSION: u32 = 1;
/// The cipher named in the file.
const CIPHER: &str = "xchacha20poly1305";
/// Associated data of the key check.
const KEY_CHECK_AAD: &[u8] = b"mirror-secrets/v1/key-check";
/// Associated data of an entry, followed by its name.
const ENTRY_AAD_PREFIX: &[u8] = b"mirror-secrets/v1/secret/";
/// XChaCha20 nonce length.
const NONCE_LEN: usize = 24;
/// How errors about the key check name it.
const KEY_CHECK: &str = "key check";
/// Poly1305 tag length: every ciphertext is at least this long.
const TAG_LEN: usize = 16;
/// The largest secrets file read: far above any real one, and a bound on what a bad path costs.
const FILE_BYTES_MAX: u64 = 16 << 20;

/// The largest value a secret may hold, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most secrets one store holds.
pub const MAX_SECRETS: usize = 10_000;

const HEADER: &str = "\
# Mirror secrets. Values are XChaCha20-Poly1305 ciphertext under the master key
# (MIRROR_MASTER_KEY or MIRROR_MASTER_KEY_FILE). Manage with `mirror-engine secrets`;
# an edited ciphertext, nonce or name no longer decrypts.
";

/// A secret's name and times, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// The name.
    pub name: String,
    /// When it was added, Unix milliseconds.
    pub created_unix_ms: i64,
    /// When its value was last set, Unix milliseconds.
    pub updated_unix_ms: i64,
}

/// A nonce and the ciphertext sealed with it.
#[derive(Clone)]
struct Sealed {
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

#[derive(Clone)]
struct Entry {
    sealed: Sealed,
    created_unix_ms: i64,
    updated_unix_ms: i64,
}

/// The encrypted secrets file, opened under a master key.
///
/// Opening checks the key against the file's key check but decrypts nothing; [`SecretStore::get`]
/// decrypts one entry on demand. Every change is written at once and atomically (private temp
/// file, fsync, rename, fsync of the directory), and is applied in memory only once written.
/// Concurrent writers in different processes are not coordinated: the last rename wins.
pub struct SecretStore {
    path: PathBuf,
    cipher: XChaCha20Poly1305,
    key_check: Sealed,
    entries: BTreeMap<String, Entry>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretStore").field("path", &self.path).field("names", &self.entries.keys()).finish()
    }
}

impl SecretStore {
    /// Opens the store at `path` under `key`, timestamping changes with the system clock.
    /// A missing file is an empty store (the file is created by the first change).
    pub fn open(path: &Path, key: &MasterKey) -> Result<Self, SecretsError> {
        Self::open_with_clock(path, key, Arc::new(SystemClock::new()))
    }

    /// [`SecretStore::open`] with the clock that timestamps changes.
    pub fn open_with_clock(path: &Path, key: &MasterKey, clock: Arc<dyn Clock>) -> Result<Self, SecretsError> {
        let cipher = key.cipher();
        let Some(text) = read_file(path)? else {
            let key_check = seal(&cipher, &[], KEY_CHECK_AAD, KEY_CHECK)?;
            return Ok(Self { path: path.to_path_buf(), cipher, key_check, entries: BTreeMap::new(), clock });
        };
        let corrupt = |reason: String| SecretsError::StoreCorrupt { path: path.to_path_buf(), reason };
        let file = parse(path, &text)?;
        let key_check = decode_sealed(&file.key_check.nonce, &file.key_check.ciphertext)
            .map_err(|reason| corrupt(format!("key_check: {reason}")))?;
        if open_sealed(&cipher, &key_check, KEY_CHECK_AAD).is_err() {
            return Err(SecretsError::WrongMasterKey { path: path.to_path_buf() });
        }
        if file.secret.len() > MAX_SECRETS {
            return Err(corrupt(format!("{} secrets; at most {MAX_SECRETS} are kept", file.secret.len())));
        }
        let mut entries = BTreeMap::new();
        for (index, repr) in file.secret.into_iter().enumerate() {
            let place = |reason: String| corrupt(format!("secret[{index}]: {reason}"));
            validate_name(&repr.name).map_err(|error| place(error.to_string()))?;
            let sealed = decode_sealed(&repr.nonce, &repr.ciphertext).map_err(&place)?;
            let entry = Entry { sealed, created_unix_ms: repr.created_unix_ms, updated_unix_ms: repr.updated_unix_ms };
            if entries.insert(repr.name.clone(), entry).is_some() {
                return Err(place(format!("a second secret named `{}`", repr.name)));
            }
        }
        Ok(Self { path: path.to_path_buf(), cipher, key_check, entries, clock })
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many secrets it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a secret has this name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The value of a secret, decrypted now.
    pub fn get(&self, name: &str) -> Result<Secret, SecretsError> {
        validate_name(name)?;
        let entry = self.entries.get(name).ok_or_else(|| self.not_found(name))?;
        self.decrypt(name, entry)
    }

    /// Adds a secret; refuses a name already in use (see [`SecretStore::rotate`]).
    pub fn put_new(&mut self, name: &str, value: &Secret) -> Result<(), SecretsError> {
        validate_name(name)?;
        validate_value(name, value)?;
        if self.entries.contains_key(name) {
            return Err(SecretsError::AlreadyExists { path: self.path.clone(), name: name.to_owned() });
        }
        if self.entries.len() >= MAX_SECRETS {
            return Err(SecretsError::TooManySecrets { path: self.path.clone() });
        }
        let now = self.clock.now().unix_ms;
        let sealed = self.encrypt(name, value)?;
        let mut entries = self.entries.clone();
        entries.insert(name.to_owned(), Entry { sealed, created_unix_ms: now, updated_unix_ms: now });
        self.commit(entries)
    }

    /// Replaces the value of an existing secret, keeping its creation time.
    pub fn rotate(&mut self, name: &str, value: &Secret) -> Result<(), SecretsError> {
        validate_name(name)?;
        validate_value(name, value)?;
        let created_unix_ms = self.entries.get(name).ok_or_else(|| self.not_found(name))?.created_unix_ms;
        let now = self.clock.now().unix_ms;
        let sealed = self.encrypt(name, value)?;
        let mut entries = self.entries.clone();
        entries.insert(name.to_owned(), Entry { sealed, created_unix_ms, updated_unix_ms: now });
        self.commit(entries)
    }

    /// Removes a secret.
    pub fn remove(&mut self, name: &str) -> Result<(), SecretsError> {
        validate_name(name)?;
        let mut entries = self.entries.clone();
        entries.remove(name).ok_or_else(|| self.not_found(name))?;
        self.commit(entries)
    }

    /// Every secret's name and times, by name, without values.
    pub fn list(&self) -> Vec<SecretInfo> {
        self.entries
            .iter()
            .map(|(name, entry)| SecretInfo {
                name: name.clone(),
                created_unix_ms: entry.created_unix_ms,
                updated_unix_ms: entry.updated_unix_ms,
            })
            .collect()
    }

    /// Re-encrypts every secret, and the key check, under `new_key`, keeping names and times.
    /// Every entry is decrypted first: if one fails, nothing is written and the error names it.
    /// Afterwards only `new_key` opens the file.
    pub fn rekey(&mut self, new_key: &MasterKey) -> Result<(), SecretsError> {
        let cipher = new_key.cipher();
        let mut entries = BTreeMap::new();
        for (name, entry) in &self.entries {
            let value = self.decrypt(name, entry)?;
            let sealed = seal(&cipher, value.expose().as_bytes(), &entry_aad(name), name)?;
            entries.insert(name.clone(), Entry { sealed, ..entry.clone() });
        }
        let key_check = seal(&cipher, &[], KEY_CHECK_AAD, KEY_CHECK)?;
        write_atomically(&self.path, render(&key_check, &entries).as_bytes())?;
        self.cipher = cipher;
        self.key_check = key_check;
        self.entries = entries;
        Ok(())
    }

    fn not_found(&self, name: &str) -> SecretsError {
        SecretsError::NotFound { path: self.path.clone(), name: name.to_owned() }
    }

    fn encrypt(&self, name: &str, value: &Secret) -> Result<Sealed, SecretsError> {
        seal(&self.cipher, value.expose().as_bytes(), &entry_aad(name), name)
    }

    fn decrypt(&self, name: &str, entry: &Entry) -> Result<Secret, SecretsError> {
        let mut clear = open_sealed(&self.cipher, &entry.sealed, &entry_aad(name))
            .map_err(|()| SecretsError::Decrypt { path: self.path.clone(), name: name.to_owned() })?;
        // Moved out of the wiped buffer, not copied: the `Secret` takes over wiping it.
        let text = String::from_utf8(std::mem::take(&mut *clear)).map_err(|error| {
            zeroize::Zeroize::zeroize(&mut error.into_bytes());
            SecretsError::NotUtf8 { path: self.path.clone(), name: name.to_owned() }
        })?;
        Ok(Secret::new(text))
    }

    /// Writes `entries` and, once they are on disk, adopts them.
    fn commit(&mut self, entries: BTreeMap<String, Entry>) -> Result<(), SecretsError> {
        write_atomically(&self.path, render(&self.key_check, &entries).as_bytes())?;
        self.entries = entries;
        Ok(())
    }
}

fn validate_value(name: &str, value: &Secret) -> Result<(), SecretsError> {
    let len = value.expose().len();
    if len == 0 {
        return Err(SecretsError::EmptyValue { name: name.to_owned() });
    }
    if len > MAX_VALUE_BYTES {
        return Err(SecretsError::ValueTooLarge { name: name.to_owned(), len });
    }
    Ok(())
}

fn entry_aad(name: &str) -> Vec<u8> {
    [ENTRY_AAD_PREFIX, name.as_bytes()].concat()
}

/// Encrypts under a fresh random nonce (24 random bytes never repeat in practice). `what` names
/// the secret in the error.
fn seal(cipher: &XChaCha20Poly1305, clear: &[u8], aad: &[u8], what: &str) -> Result<Sealed, SecretsError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: clear, aad })
        .map_err(|_| SecretsError::Encrypt { name: what.to_owned() })?;
    Ok(Sealed { nonce, ciphertext })
}

/// Decrypts and authenticates; the clear bytes are wiped when dropped.
fn open_sealed(cipher: &XChaCha20Poly1305, sealed: &Sealed, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, ()> {
    cipher
        .decrypt(XNonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| ())
}

/// The file's text, or `None` if there is no file.
fn read_file(path: &Path) -> Result<Option<String>, SecretsError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, "open the secrets file")(error)),
    };
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(io_error(path, "read the secrets file"))?;
    let corrupt = |reason: String| SecretsError::StoreCorrupt { path: path.to_path_buf(), reason };
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Err(corrupt(format!("larger than {} MiB", FILE_BYTES_MAX >> 20)));
    }
    String::from_utf8(bytes).map(Some).map_err(|_| corrupt("not UTF-8 text".into()))
}

/// Parses the document after checking its version and cipher, so a file from a later format is
/// reported as such rather than as malformed.
fn parse(path: &Path, text: &str) -> Result<FileRepr, SecretsError> {
    // The parser's message, with a line number, but without the snippet of the file it would
    // quote: a hand-edited file could hold anything.
    let corrupt = |error: toml::de::Error| {
        let line = error.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let place = line.map(|line| format!("line {line}: ")).unwrap_or_default();
        SecretsError::StoreCorrupt { path: path.to_path_buf(), reason: format!("{place}{}", error.message().trim()) }
    };
    let header: HeaderRepr = toml::from_str(text).map_err(corrupt)?;
    let unsupported =
        |found: String, expected: String| SecretsError::UnsupportedFormat { path: path.to_path_buf(), found, expected };
    if header.version != FORMAT_VERSION {
        return Err(unsupported(format!("version {}", header.version), format!("version {FORMAT_VERSION}")));
    }
    if header.cipher != CIPHER {
        return Err(unsupported(format!("cipher `{}`", header.cipher), format!("cipher `{CIPHER}`")));
    }
    toml::from_str(text).map_err(corrupt)
}

fn render(key_check: &Sealed, entries: &BTreeMap<String, Entry>) -> String {
    let file = FileRepr {
        version: FORMAT_VERSION,
        cipher: CIPHER.to_owned(),
        key_check: SealedRepr {
            nonce: BASE64.encode(key_check.nonce),
            ciphertext: BASE64.encode(&key_check.ciphertext),
        },
        secret: entries
            .iter()
            .map(|(name, entry)| EntryRepr {
                name: name.clone(),
                created_unix_ms: entry.created_unix_ms,
                updated_unix_ms: entry.updated_unix_ms,
                nonce: BASE64.encode(entry.sealed.nonce),
                ciphertext: BASE64.encode(&entry.sealed.ciphertext),
            })
            .collect(),
    };
    // Serializing plain strings and integers cannot fail.
    let body = toml::to_string(&file).unwrap_or_else(|error| unreachable!("secrets file does not serialize: {error}"));
    format!("{HEADER}\n{body}")
}

/// Just enough of the file to know whether the rest is in a format this build reads.
#[derive(serde::Deserialize)]
struct HeaderRepr {
    version: u32,
    cipher: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRepr {
    version: u32,
    cipher: String,
    key_check: SealedRepr,
    #[serde(default)]
    secret: Vec<EntryRepr>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryRepr {
    name: String,
    created_unix_ms: i64,
    updated_unix_ms: i64,
    nonce: String,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SealedRepr {
    nonce: String,
    ciphertext: String,
}

/// A nonce and ciphertext as the file writes them, checked for size.
fn decode_sealed(nonce: &str, ciphertext: &str) -> Result<Sealed, String> {
    let nonce = BASE64
        .decode(nonce)
        .ok()
        .and_then(|bytes| <[u8; NONCE_LEN]>::try_from(bytes).ok())
        .ok_or_else(|| format!("nonce is not base64 of {NONCE_LEN} bytes"))?;
    let ciphertext = BASE64
        .decode(ciphertext)
        .ok()
        .filter(|bytes| bytes.len() >= TAG_LEN)
        .ok_or_else(|| format!("ciphertext is not base64 of at least {TAG_LEN} bytes"))?;
    Ok(Sealed { nonce, ciphertext })
}
