//! `mirror-engine secrets`: create a master key, and add, rotate, list, remove and re-key secrets.
//! No subcommand ever prints a value.
//!
//! Exit status: 0 done, 2 a usage or validation error (a bad name, an existing or missing
//! secret, a missing or malformed key), 1 anything else (a wrong key, a damaged file, I/O).

use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use zeroize::Zeroizing;

use super::file::io_error;
use super::secret::validate_name;
use super::{DEFAULT_SECRETS_PATH, MAX_VALUE_BYTES, MasterKey, SECRETS_PATH_ENV, Secret, SecretStore, SecretsError};

/// Options of `mirror-engine secrets`.
#[derive(clap::Args, Debug)]
pub struct SecretsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SecretsAction,
    /// The secrets file [default: $MIRROR_SECRETS, else config/secrets.enc.toml].
    #[arg(long, global = true, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// The master key file [default: the key in $MIRROR_MASTER_KEY, or the file named by
    /// $MIRROR_MASTER_KEY_FILE].
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// The subcommands of `mirror-engine secrets`.
#[derive(clap::Subcommand, Debug)]
pub enum SecretsAction {
    /// Write a new random master key to a file (mode 0600); never overwrites one.
    InitKey {
        /// The key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Add a secret. The value is read from standard input (typed without echo on a terminal;
    /// piped input is taken whole, less one trailing newline).
    Add {
        /// Its name: 1 to 64 characters from A-Z a-z 0-9 . _ -
        name: String,
    },
    /// Replace the value of an existing secret, read as for `add`.
    Rotate {
        /// Its name.
        name: String,
    },
    /// List the secrets: names, creation and update times (never values).
    List,
    /// Remove a secret.
    Remove {
        /// Its name.
        name: String,
    },
    /// Re-encrypt every secret under the master key in another file. Afterwards only that key
    /// opens the store.
    Rekey {
        /// The file holding the new master key (see `init-key`).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
}

/// Runs a `secrets` subcommand: reports to stdout, errors to stderr, and returns the exit status.
pub fn run(args: SecretsArgs) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match execute(args, &mut stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(if error.is_usage() { 2 } else { 1 })
        }
    }
}

fn execute(args: SecretsArgs, out: &mut dyn Write) -> Result<(), SecretsError> {
    let SecretsArgs { action, store, key_file } = args;
    let store_path = store.unwrap_or_else(default_store_path);
    let open = || {
        let key = match &key_file {
            Some(path) => MasterKey::from_file(path)?,
            None => MasterKey::from_env()?,
        };
        SecretStore::open(&store_path, &key)
    };
    match action {
        SecretsAction::InitKey { out: path } => {
            MasterKey::generate()?.write_new_file(&path)?;
            say(
                out,
                format_args!(
                    "wrote a new master key to {} (mode 0600)\n\
                     keep a copy somewhere safe: the secrets sealed under it cannot be read without it\n\
                     use it with: export MIRROR_MASTER_KEY_FILE={}",
                    path.display(),
                    path.display()
                ),
            )
        }
        SecretsAction::Add { name } => {
            validate_name(&name)?;
            let mut store = open()?;
            // Checked before the value is asked for, so nobody types a secret for nothing.
            if store.contains(&name) {
                return Err(SecretsError::AlreadyExists { path: store_path, name });
            }
            store.put_new(&name, &read_value(&name)?)?;
            say(out, format_args!("added `{name}` to {}", store_path.display()))
        }
        SecretsAction::Rotate { name } => {
            validate_name(&name)?;
            let mut store = open()?;
            if !store.contains(&name) {
                return Err(SecretsError::NotFound { path: store_path, name });
            }
            store.rotate(&name, &read_value(&name)?)?;
            say(out, format_args!("rotated `{name}` in {}", store_path.display()))
        }
        SecretsAction::List => list(&open()?, out),
        SecretsAction::Remove { name } => {
            open()?.remove(&name)?;
            say(out, format_args!("removed `{name}` from {}", store_path.display()))
        }
        SecretsAction::Rekey { new_key_file } => {
            let new_key = MasterKey::from_file(&new_key_file)?;
            let mut store = open()?;
            store.rekey(&new_key)?;
            say(
                out,
                format_args!(
                    "re-encrypted {} secret{} in {} under the key in {}\n\
                     from now on only that key opens it: export MIRROR_MASTER_KEY_FILE={}",
                    store.len(),
                    if store.len() == 1 { "" } else { "s" },
                    store_path.display(),
                    new_key_file.display(),
                    new_key_file.display()
                ),
            )
        }
    }
}

/// `--store`, else `$MIRROR_SECRETS`, else `config/secrets.enc.toml`.
pub(crate) fn default_store_path() -> PathBuf {
    std::env::var_os(SECRETS_PATH_ENV)
        .filter(|path| !path.is_empty())
        .map_or_else(|| DEFAULT_SECRETS_PATH.into(), PathBuf::from)
}

fn list(store: &SecretStore, out: &mut dyn Write) -> Result<(), SecretsError> {
    let infos = store.list();
    if infos.is_empty() {
        return say(out, format_args!("no secrets in {}", store.path().display()));
    }
    let width = infos.iter().map(|info| info.name.len()).max().unwrap_or(0).max("NAME".len());
    let mut table = format!("{:<width$}  {:<19}  {}\n", "NAME", "CREATED (UTC)", "UPDATED (UTC)");
    for info in &infos {
        table.push_str(&format!(
            "{:<width$}  {}  {}\n",
            info.name,
            format_utc(info.created_unix_ms),
            format_utc(info.updated_unix_ms)
        ));
    }
    out.write_all(table.as_bytes()).map_err(io_error(Path::new("standard output"), "write to"))
}

fn say(out: &mut dyn Write, message: std::fmt::Arguments<'_>) -> Result<(), SecretsError> {
    writeln!(out, "{message}").map_err(io_error(Path::new("standard output"), "write to"))
}

/// A value from standard input: typed without echo on a terminal, else everything piped in
/// (bounded), less one trailing newline.
fn read_value(name: &str) -> Result<Secret, SecretsError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let value = rpassword::prompt_password(format!("value for `{name}` (not echoed): "))
            .map_err(io_error(Path::new("the terminal"), "read the value from"))?;
        return Ok(Secret::new(value));
    }
    // Room for the largest value and a "\r\n", plus one byte to notice a larger one; the spare
    // capacity means the buffer never grows, so no stray copy is left in freed memory.
    let limit = MAX_VALUE_BYTES + 2;
    let mut raw = Zeroizing::new(Vec::with_capacity(limit + 64));
    stdin
        .lock()
        .take(limit as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(io_error(Path::new("standard input"), "read the value from"))?;
    let newline = if raw.ends_with(b"\r\n") { 2 } else { usize::from(raw.ends_with(b"\n")) };
    let len = raw.len() - newline;
    raw.truncate(len);
    if raw.len() > MAX_VALUE_BYTES {
        return Err(SecretsError::ValueTooLarge { name: name.to_owned(), len: raw.len() });
    }
    let text = String::from_utf8(std::mem::take(&mut *raw)).map_err(|error| {
        zeroize::Zeroize::zeroize(&mut error.into_bytes());
        SecretsError::ValueNotUtf8 { name: name.to_owned() }
    })?;
    Ok(Secret::new(text))
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC (proleptic Gregorian, Howard Hinnant's
/// civil-from-days).
pub(crate) fn format_utc(unix_ms: i64) -> String {
    let (year, month, day, hour, minute, second) = crate::clock::civil_utc(unix_ms);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(format_utc(1_767_225_599_999), "2025-12-31 23:59:59");
        assert_eq!(format_utc(1_767_225_600_000), "2026-01-01 00:00:00");
        assert_eq!(format_utc(-1), "1969-12-31 23:59:59");
    }
}
