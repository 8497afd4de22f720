//! `[[file_drops]]`: watched folders of CSV and JSON signal files, each sent as a source, with
//! how often the folder is looked at, how long a file must stay unchanged before it is read,
//! and how large a file may be.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use mirror_model::Origin;

use super::locate::FieldPath;
use super::resolve::{Errors, ResolvedSource, defined_sources};
use super::schema::FileDropEntry;
use crate::file_drop::{FILE_BYTES_MAX, FileDropLimits, ROWS_MAX};

/// One `[[file_drops]]` entry, ready to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedFileDrop {
    /// Its name.
    pub name: String,
    /// The folder watched.
    pub dir: PathBuf,
    /// The source its signals are sent as, and that source's name.
    pub source: (Origin, String),
    /// Polling, settling and size limits (the defaults, with what the entry changes).
    pub limits: FileDropLimits,
}

/// Reads every `[[file_drops]]` entry of every file. `sources`: every valid `[[sources]]`
/// entry; `accounts`: whether a name is an account's (for a clearer message).
pub(super) fn file_drops(
    errors: &mut Errors<'_>,
    entries: &[(usize, &[FileDropEntry])],
    sources: &[ResolvedSource],
    accounts: &dyn Fn(&str) -> bool,
) -> Vec<ResolvedFileDrop> {
    let defined = defined_sources(sources);
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut dirs: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut resolved = Vec::new();
    for &(file, list) in entries {
        for (index, entry) in list.iter().enumerate() {
            let path = FieldPath::root().key("file_drops").index(index);
            let before = errors.count();
            let valid_name = !entry.name.is_empty()
                && entry.name.len() <= 64
                && entry.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !valid_name {
                errors.at(
                    file,
                    &path.key("name"),
                    format!("must be 1 to 64 letters, digits, `-`, `_` or `.`, got `{}`", entry.name),
                );
            } else if let Some(first) = names.insert(entry.name.clone(), format!("{}: {path}", errors.file_name(file)))
            {
                errors.at(file, &path.key("name"), format!("file drop `{}` is already defined at {first}", entry.name));
            }
            if entry.dir.as_os_str().is_empty() {
                errors.at(file, &path.key("dir"), "must name a folder");
            } else if let Some(other) = dirs.insert(normalized(&entry.dir), entry.name.clone()) {
                errors.at(
                    file,
                    &path.key("dir"),
                    format!(
                        "file drop `{other}` already watches {}; two drops on one folder would read each file twice",
                        entry.dir.display()
                    ),
                );
            }
            let source = match sources.iter().find(|s| s.name == entry.source) {
                Some(source) => Some((Origin::Source(source.id), source.name.clone())),
                None if accounts(&entry.source) => {
                    errors.at(
                        file,
                        &path.key("source"),
                        format!(
                            "`{}` is an account; a file drop's signals are sent as a source: add a [[sources]] entry \
                             and link it to the followers ({defined})",
                            entry.source
                        ),
                    );
                    None
                }
                None => {
                    errors.at(
                        file,
                        &path.key("source"),
                        format!("no [[sources]] entry is named `{}` ({defined})", entry.source),
                    );
                    None
                }
            };
            let limits = limits(errors, file, &path, entry);
            if let (Some(source), true) = (source, errors.count() == before) {
                resolved.push(ResolvedFileDrop { name: entry.name.clone(), dir: entry.dir.clone(), source, limits });
            }
        }
    }
    resolved
}

fn limits(errors: &mut Errors<'_>, file: usize, path: &FieldPath, entry: &FileDropEntry) -> FileDropLimits {
    let mut limits = FileDropLimits::default();
    let mut millis = |key: &str, value: Option<u64>, min: u64, max: u64, set: &mut Duration| {
        let Some(ms) = value else { return };
        if (min..=max).contains(&ms) {
            *set = Duration::from_millis(ms);
        } else {
            errors.at(file, &path.key(key), format!("must be between {min} and {max} ms, got {ms}"));
        }
    };
    millis("poll_ms", entry.poll_ms, 50, 60_000, &mut limits.poll);
    millis("settle_ms", entry.settle_ms, 0, 600_000, &mut limits.settle);
    if let Some(bytes) = entry.max_file_bytes {
        if (1..=FILE_BYTES_MAX).contains(&bytes) {
            limits.max_file_bytes = bytes;
        } else {
            errors.at(
                file,
                &path.key("max_file_bytes"),
                format!("must be between 1 and {FILE_BYTES_MAX} bytes (64 MiB), got {bytes}"),
            );
        }
    }
    if let Some(rows) = entry.max_rows {
        if (1..=ROWS_MAX).contains(&rows) {
            limits.max_rows = rows;
        } else {
            errors.at(file, &path.key("max_rows"), format!("must be between 1 and {ROWS_MAX}, got {rows}"));
        }
    }
    limits
}

/// The folder without `.` parts and trailing separators, so `drops/` and `./drops` are one.
fn normalized(dir: &Path) -> PathBuf {
    dir.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::load_str;

    const BASE: &str = r#"
[instruments.ES]
contract_size = 50
tick_size = "0.25"
lot_step = 1
min_qty = 1
max_qty = 200
price = 5000

[[accounts]]
name = "f1"
platform = "sim"
balance = 100000

[[sources]]
name = "desk"

[[links]]
leader = "desk"
follower = "f1"
"#;

    #[test]
    fn a_drop_resolves_with_its_defaults_and_limits() {
        let text = format!(
            "{BASE}\n[[file_drops]]\nname = \"desk\"\ndir = \"drops/desk\"\nsource = \"desk\"\n\n\
             [[file_drops]]\nname = \"slow\"\ndir = \"drops/slow\"\nsource = \"desk\"\npoll_ms = 2000\n\
             settle_ms = 5000\nmax_file_bytes = 4096\nmax_rows = 10\n"
        );
        let resolved = load_str(Path::new("drops.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
        let [desk, slow] = resolved.file_drops.as_slice() else { panic!("{:?}", resolved.file_drops) };
        assert_eq!((desk.name.as_str(), desk.dir.as_path()), ("desk", Path::new("drops/desk")));
        assert_eq!(desk.source.1, "desk");
        assert_eq!(desk.limits, FileDropLimits::default());
        assert_eq!(desk.limits.poll, Duration::from_millis(500));
        assert_eq!(desk.limits.settle, Duration::from_millis(1_000));
        assert_eq!((desk.limits.max_file_bytes, desk.limits.max_rows), (1024 * 1024, 10_000));
        assert_eq!((slow.limits.poll, slow.limits.settle), (Duration::from_secs(2), Duration::from_secs(5)));
        assert_eq!((slow.limits.max_file_bytes, slow.limits.max_rows), (4096, 10));
    }

    #[test]
    fn mistakes_name_the_file_line_and_field() {
        let text = format!(
            "{BASE}\n[[file_drops]]\nname = \"a b\"\ndir = \"drops\"\nsource = \"nobody\"\npoll_ms = 10\n\
             settle_ms = 700000\nmax_file_bytes = 100000000\nmax_rows = 0\n\n\
             [[file_drops]]\nname = \"second\"\ndir = \"./drops/\"\nsource = \"f1\"\n\n\
             [[file_drops]]\nname = \"second\"\ndir = \"\"\nsource = \"desk\"\n"
        );
        let errors = load_str(Path::new("drops.toml"), &text).unwrap_err().to_string();
        // Each problem on the line of its key (the first entry's with that text), or anywhere.
        let line = |needle: &str| text.lines().position(|l| l == needle).unwrap() + 1;
        for (at, expected) in [
            (Some(line("name = \"a b\"")), "file_drops[0].name: must be 1 to 64 letters"),
            (
                Some(line("source = \"nobody\"")),
                "file_drops[0].source: no [[sources]] entry is named `nobody` (defined: desk)",
            ),
            (Some(line("poll_ms = 10")), "file_drops[0].poll_ms: must be between 50 and 60000 ms, got 10"),
            (Some(line("settle_ms = 700000")), "file_drops[0].settle_ms: must be between 0 and 600000 ms, got 700000"),
            (None, "file_drops[0].max_file_bytes: must be between 1 and 67108864 bytes (64 MiB), got 100000000"),
            (None, "file_drops[0].max_rows: must be between 1 and 100000, got 0"),
            (Some(line("dir = \"./drops/\"")), "file_drops[1].dir: file drop `a b` already watches ./drops/"),
            (None, "file_drops[1].source: `f1` is an account; a file drop's signals are sent as a source"),
            (None, "file_drops[2].name: file drop `second` is already defined at drops.toml: file_drops[1]"),
            (None, "file_drops[2].dir: must name a folder"),
        ] {
            let found = errors.lines().find(|l| l.contains(expected));
            let found = found.unwrap_or_else(|| panic!("{expected:?} in\n{errors}"));
            if let Some(at) = at {
                assert!(found.starts_with(&format!("drops.toml:{at}:")), "line {at}: {found}");
            }
        }
        assert_eq!(errors.lines().count(), 10, "{errors}");
    }
}
