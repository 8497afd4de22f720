//! What a drop folder tells the trader: reports beside the files it moved, under names that
//! never overwrite one already there, and UTC times.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;

/// The name (in `folder`) a file and its report get: `name` itself, or with a UTC timestamp
/// (and a counter if need be) before its extension, so that neither `<base>` nor
/// `<base><report_suffix>` exists yet.
pub(super) fn free_name(folder: &Path, name: &str, report_suffix: &str, now_ms: i64) -> String {
    let free = |base: &str| !folder.join(base).exists() && !folder.join(format!("{base}{report_suffix}")).exists();
    if free(name) {
        return name.to_owned();
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, extension)) if !stem.is_empty() => (stem, format!(".{extension}")),
        _ => (name, String::new()),
    };
    let stamp = compact_utc(now_ms);
    let mut counter = 1u32;
    loop {
        let base = if counter == 1 {
            format!("{stem}-{stamp}{extension}")
        } else {
            format!("{stem}-{stamp}-{counter}{extension}")
        };
        if free(&base) {
            return base;
        }
        counter += 1;
    }
}

/// Moves `from` to `to`, never replacing a file at `to`: a hard link then the removal of the
/// original (atomic where the folder's file system has links), else a rename after checking.
pub(super) fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => std::fs::remove_file(from),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Err(error),
        Err(_) => {
            if to.exists() {
                return Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, format!("{} exists", to.display())));
            }
            std::fs::rename(from, to)
        }
    }?;
    sync_folder(to)
}

/// Writes a new file (never an existing one) and flushes it to disk.
pub(super) fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    sync_folder(path)
}

/// Flushes the folder holding `path`, so a new name in it survives a crash.
fn sync_folder(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(folder) => File::open(folder)?.sync_all(),
        None => Ok(()),
    }
}

/// `2025-01-02T10:15:00Z`.
pub(super) fn utc(unix_ms: i64) -> String {
    let (year, month, day, hour, minute, second) = crate::clock::civil_utc(unix_ms);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// `20250102T101500Z`, for file names.
fn compact_utc(unix_ms: i64) -> String {
    let (year, month, day, hour, minute, second) = crate::clock::civil_utc(unix_ms);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_735_812_900_999), "2025-01-02T10:15:00Z");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31T23:59:59Z");
        assert_eq!(utc(-1_000), "1969-12-31T23:59:59Z");
        assert_eq!(compact_utc(1_735_812_900_000), "20250102T101500Z");
    }

    #[test]
    fn names_that_exist_get_a_timestamp_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let at = 1_735_812_900_000;
        assert_eq!(free_name(dir.path(), "orders.csv", ".report.json", at), "orders.csv");
        write_new(&dir.path().join("orders.csv"), b"1").unwrap();
        assert_eq!(free_name(dir.path(), "orders.csv", ".report.json", at), "orders-20250102T101500Z.csv");
        // Its report's name alone is enough to move on.
        write_new(&dir.path().join("orders-20250102T101500Z.csv.report.json"), b"{}").unwrap();
        assert_eq!(free_name(dir.path(), "orders.csv", ".report.json", at), "orders-20250102T101500Z-2.csv");
        assert_eq!(free_name(dir.path(), "README", ".errors.txt", at), "README");
        assert!(write_new(&dir.path().join("orders.csv"), b"2").is_err());
        assert_eq!(std::fs::read(dir.path().join("orders.csv")).unwrap(), b"1");

        let source = dir.path().join("new.csv");
        write_new(&source, b"3").unwrap();
        assert!(move_file(&source, &dir.path().join("orders.csv")).is_err(), "an existing file is not replaced");
        move_file(&source, &dir.path().join("moved.csv")).unwrap();
        assert!(!source.exists());
        assert_eq!(std::fs::read(dir.path().join("moved.csv")).unwrap(), b"3");
    }
}
