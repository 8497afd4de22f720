//! File helpers: private (0600) files, atomic replacement, directory sync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SecretsError;

/// Permission bits of every file this module creates (owner read and write only).
#[cfg(unix)]
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// A closure turning an I/O error into a [`SecretsError::Io`] about `path`.
pub(crate) fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SecretsError {
    let path = path.to_path_buf();
    move |source| SecretsError::Io { action, path, source }
}

/// The directory a file lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Options that create a new file, refusing an existing one, private to its owner on unix.
pub(crate) fn create_new_private() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_MODE);
    }
    options
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SecretsError> {
    // Only unix can open and fsync a directory; elsewhere the rename is as durable as it gets.
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir, "sync the directory"))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replaces `path` with `bytes` so that a reader, or a crash, sees either the old file or the new
/// one in full: a private temp file in the same directory, fsync, rename over, fsync the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SecretsError> {
    let dir = parent_dir(path);
    fs::create_dir_all(dir).map_err(io_error(dir, "create the directory"))?;
    let temp = temp_path(path);
    let written = create_new_private()
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .map_err(io_error(&temp, "write the temporary file"))
        .and_then(|()| fs::rename(&temp, path).map_err(io_error(path, "replace")));
    if written.is_err() {
        // Best effort: the error that matters is the one above.
        let _ = fs::remove_file(&temp);
    }
    written?;
    sync_dir(dir)
}

/// A temp file name beside `path` that no other writer in this or another process picks.
fn temp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "secrets".into(), |n| n.to_string_lossy());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}
