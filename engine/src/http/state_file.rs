//! What a webhook must remember across restarts (the Telegram book, the EA sequence numbers),
//! as one small JSON file per webhook, replaced atomically: written to a temporary file,
//! flushed to disk, then renamed over the old one, so a crash leaves the old state or the
//! new one, never half of either.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The file of webhook `name` of `kind` (`telegram`, `ea`) under `dir`. Webhook names are
/// letters, digits, `-`, `_` and `.` (checked by the configuration), so the prefix keeps the
/// file inside `dir`.
pub(crate) fn path(dir: &Path, kind: &str, name: &str) -> PathBuf {
    dir.join(format!("{kind}-{name}.json"))
}

/// Reads the state at `path`; `None` when there is no file yet.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: cannot be read: {error}", path.display())),
    };
    serde_json::from_str(&text).map(Some).map_err(|error| {
        format!("{}: not a webhook state file ({error}); move it away to start this webhook afresh", path.display())
    })
}

/// Replaces the state at `path` with `value` (owner-only, as the secrets store writes its files).
pub(crate) fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| format!("{}: cannot be encoded: {e}", path.display()))?;
    crate::secrets::write_atomically(path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_is_read_back_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(&dir.path().join("http"), "telegram", "signals");
        assert_eq!(load::<Vec<u32>>(&file).unwrap(), None);
        save(&file, &vec![1u32, 2]).unwrap();
        save(&file, &vec![3u32]).unwrap();
        assert_eq!(load::<Vec<u32>>(&file).unwrap(), Some(vec![3]));
        let left: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, [std::ffi::OsString::from("telegram-signals.json")], "no temporary file left");
        std::fs::write(&file, "{").unwrap();
        let error = load::<Vec<u32>>(&file).unwrap_err();
        assert!(error.contains("telegram-signals.json: not a webhook state file"), "{error}");
    }
}
