//! Encrypted secrets at rest: broker credentials and API keys.
//!
//! Values are sealed with XChaCha20-Poly1305 under a 32-byte [`MasterKey`] that comes from the
//! environment (`MIRROR_MASTER_KEY`) or a key file (`MIRROR_MASTER_KEY_FILE`), and kept in a
//! [`SecretStore`] file that holds only ciphertext. Each value is bound to its name as associated
//! data, so a ciphertext copied under another name does not decrypt. A clear value lives only in a
//! [`Secret`], which zeroizes itself on drop and prints as `***`.
//!
//! Configuration never holds a credential itself, only a [`CredentialRef`]: `secret:<name>` (an
//! entry of the store) or `env:<VAR>` (an environment variable).
//!
//! No error of this module carries a secret value or key material: a [`SecretsError`] names the
//! file, the secret, or the variable that is wrong, and why.
//!
//! `mirror-engine secrets` ([`cli`]) adds, rotates, lists, removes and re-keys entries without ever
//! printing a value.

pub mod cli;
mod file;
mod key;
mod secret;
mod store;
#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::PathBuf;

pub(crate) use file::write_atomically;
pub(crate) use key::fill_random;
pub use key::{MASTER_KEY_LEN, MasterKey};
pub use secret::{CredentialRef, CredentialVars, Secret};
pub use store::{MAX_SECRETS, MAX_VALUE_BYTES, SecretInfo, SecretStore};

/// Environment variable holding the master key itself (64 hex digits, or standard base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "MIRROR_MASTER_KEY";
/// Environment variable naming a file that holds the master key.
pub const MASTER_KEY_FILE_ENV: &str = "MIRROR_MASTER_KEY_FILE";
/// Environment variable naming the secrets file, when `--store` is not given.
pub const SECRETS_PATH_ENV: &str = "MIRROR_SECRETS";
/// The secrets file used when neither `--store` nor `MIRROR_SECRETS` says otherwise.
pub const DEFAULT_SECRETS_PATH: &str = "config/secrets.enc.toml";

/// Where a master key was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    /// The `MIRROR_MASTER_KEY` environment variable.
    EnvVar,
    /// A key file.
    File(PathBuf),
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyOrigin::EnvVar => write!(f, "environment variable {MASTER_KEY_ENV}"),
            KeyOrigin::File(path) => write!(f, "key file {}", path.display()),
        }
    }
}

/// What went wrong with a secret, the store or the master key.
///
/// Every message names the file, secret or variable concerned and never contains a secret value
/// or key material (not even a fragment of a malformed one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    /// Neither master key variable is set.
    #[error(
        "no master key: set {MASTER_KEY_ENV} (64 hex digits or standard base64 of 32 bytes) \
         or {MASTER_KEY_FILE_ENV} (a file holding one, mode 0600)"
    )]
    MasterKeyMissing,
    /// Both master key variables are set, so which one is meant is unclear.
    #[error("both {MASTER_KEY_ENV} and {MASTER_KEY_FILE_ENV} are set; set only one")]
    MasterKeyAmbiguous,
    /// A master key is not in a form we read.
    #[error("{origin}: not a master key: {reason}")]
    InvalidMasterKey {
        /// Where it was read from.
        origin: KeyOrigin,
        /// What is wrong with its form (never its content).
        reason: String,
    },
    /// A key file that group or others can access.
    #[error(
        "key file {}: mode {mode:04o} lets group or others access it; it must be private to its owner \
         (chmod 600 {})",
        path.display(),
        path.display()
    )]
    KeyFileTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// `init-key` would overwrite an existing key file.
    #[error("key file {} already exists; a master key is never overwritten", path.display())]
    KeyFileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The master key does not open this store (its key check fails).
    #[error(
        "{}: this master key does not open this secrets file (its key check fails): \
         wrong key, or the file was re-keyed since",
        path.display()
    )]
    WrongMasterKey {
        /// The store file.
        path: PathBuf,
    },
    /// One entry's ciphertext does not authenticate under the key and its name.
    #[error(
        "{}: secret `{name}` does not decrypt although the master key is right: \
         its ciphertext was altered or copied from another name",
        path.display()
    )]
    Decrypt {
        /// The store file.
        path: PathBuf,
        /// The secret.
        name: String,
    },
    /// A decrypted value is not UTF-8.
    #[error("{}: secret `{name}` decrypts to bytes that are not UTF-8", path.display())]
    NotUtf8 {
        /// The store file.
        path: PathBuf,
        /// The secret.
        name: String,
    },
    /// No secret has this name.
    #[error("{}: no secret is named `{name}`", path.display())]
    NotFound {
        /// The store file.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// `put_new` with a name already in use.
    #[error("{}: secret `{name}` already exists; rotate it to replace its value", path.display())]
    AlreadyExists {
        /// The store file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A secret name breaks the naming rule. The name itself is not repeated, in case a value
    /// was typed where a name was expected.
    #[error("invalid secret name: {reason}")]
    InvalidName {
        /// Which rule it breaks.
        reason: String,
    },
    /// An empty value, which is always a mistake for a credential.
    #[error("the value for `{name}` is empty")]
    EmptyValue {
        /// The secret or variable.
        name: String,
    },
    /// A value that is not UTF-8 text.
    #[error("the value for `{name}` is not UTF-8 text")]
    ValueNotUtf8 {
        /// The secret.
        name: String,
    },
    /// A value larger than [`MAX_VALUE_BYTES`].
    #[error("the value for `{name}` has {len} bytes; at most {max} are accepted", max = MAX_VALUE_BYTES)]
    ValueTooLarge {
        /// The secret.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The store already holds [`MAX_SECRETS`] entries.
    #[error("{}: already holds {max} secrets, the most a store keeps", path.display(), max = MAX_SECRETS)]
    TooManySecrets {
        /// The store file.
        path: PathBuf,
    },
    /// The store file is not a secrets file we can read.
    #[error("{}: not a valid secrets file: {reason}", path.display())]
    StoreCorrupt {
        /// The store file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store file was written by a newer or different format.
    #[error("{}: format {found} is not supported; this build reads {expected}", path.display())]
    UnsupportedFormat {
        /// The store file.
        path: PathBuf,
        /// The format found.
        found: String,
        /// The format this build reads.
        expected: String,
    },
    /// A credential reference that is neither `secret:<name>` nor `env:<VAR>`.
    #[error("invalid credential: {reason}")]
    InvalidCredentialRef {
        /// What is wrong (the text itself is not repeated: it may be a plain-text credential).
        reason: String,
    },
    /// `secret:<name>` was resolved without a store.
    #[error("credential `secret:{name}` needs the secrets store, and none is open")]
    StoreNotOpen {
        /// The secret.
        name: String,
    },
    /// `env:<VAR>` names a variable that is not set.
    #[error("credential `env:{var}`: environment variable {var} is not set")]
    EnvNotSet {
        /// The variable.
        var: String,
    },
    /// `env:<VAR>` names a variable whose value is not UTF-8.
    #[error("credential `env:{var}`: environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable.
        var: String,
    },
    /// The operating system's random source failed.
    #[error("cannot draw random bytes from the operating system: {reason}")]
    Randomness {
        /// The system's reason.
        reason: String,
    },
    /// Encryption refused a value (only possible for absurd sizes).
    #[error("cannot encrypt the value for `{name}`")]
    Encrypt {
        /// The secret.
        name: String,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read the secrets file".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl SecretsError {
    /// Whether trying the same operation again can help (a transient I/O or randomness failure).
    /// Everything else needs a different key, file, name or value.
    pub fn is_retryable(&self) -> bool {
        match self {
            SecretsError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                )
            }
            SecretsError::Randomness { .. } => true,
            _ => false,
        }
    }

    /// Whether the error is the caller's input (a name, value, key or reference to fix) rather
    /// than the state of the files or the system. The CLI exits with status 2 for these.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SecretsError::MasterKeyMissing
                | SecretsError::MasterKeyAmbiguous
                | SecretsError::InvalidMasterKey { .. }
                | SecretsError::KeyFileTooOpen { .. }
                | SecretsError::KeyFileExists { .. }
                | SecretsError::NotFound { .. }
                | SecretsError::AlreadyExists { .. }
                | SecretsError::InvalidName { .. }
                | SecretsError::EmptyValue { .. }
                | SecretsError::ValueNotUtf8 { .. }
                | SecretsError::ValueTooLarge { .. }
                | SecretsError::TooManySecrets { .. }
                | SecretsError::InvalidCredentialRef { .. }
                | SecretsError::StoreNotOpen { .. }
                | SecretsError::EnvNotSet { .. }
                | SecretsError::EnvNotUnicode { .. }
        )
    }
}
