//! Configuration: TOML files under `config/` (engine, logging, simulator, broker platforms,
//! the QUIC gateway, the HTTP server, file drops, instruments, risk profiles, sources, accounts, links), split over several files with
//! `include` if wanted.
//!
//! Every error names the file, the line and column, the field (as a dotted path such as
//! `links[3].sizing.ratio`) and the reason. A configuration is either valid as a whole or
//! refused as a whole; all semantic errors are reported at once.

mod file_drop;
mod gateway;
mod http;
mod locate;
mod platforms;
mod resolve;
mod schema;

use std::fmt;
use std::path::{Path, PathBuf};

pub use file_drop::ResolvedFileDrop;
pub use gateway::{ResolvedGateway, ResolvedGatewayToken};
pub use http::{ResolvedAuth, ResolvedAuthClient, ResolvedHttp, ResolvedWebhook};
pub use locate::{FieldPath, Seg};
pub use platforms::{CtraderEndpoint, ResolvedBridge, ResolvedCtrader, Venue};
pub use resolve::{Resolved, ResolvedAccount, ResolvedLink, ResolvedSource};
pub use schema::{
    AccountEntry, AuthClientEntry, AuthSection, AutoTradeEntry, ConnectorSection, CtraderEntry, EngineSection,
    FileDropEntry, GatewayRole, GatewaySection, GatewayTokenEntry, HttpSection, InstrumentEntry, LinkEntry,
    MetatraderSection, OidcSection, RawFile, ReconcileMode, SimSection, SourceEntry, SpecOverride, StorageSection,
    WebhookEntry, WebhookKindEntry,
};

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line and column, when the problem has a place.
    pub position: Option<(usize, usize)>,
    /// The field, as a dotted path (empty for the file as a whole).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

/// One parsed file.
struct Source {
    path: PathBuf,
    text: String,
    raw: RawFile,
}

/// Largest number of files one configuration may include (transitively).
const FILES_MAX: usize = 64;

fn read_file(path: &Path) -> Result<Source, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        position: None,
        field: String::new(),
        reason: format!("cannot read the file: {e}"),
    })?;
    let raw = parse_text(path, &text)?;
    Ok(Source { path: path.to_path_buf(), text, raw })
}

/// Parses one file's text, locating syntax and type errors.
fn parse_text(path: &Path, text: &str) -> Result<RawFile, ConfigError> {
    let located_error = |span: Option<std::ops::Range<usize>>, message: &str, located: Option<&locate::Located<'_>>| {
        let (position, field) = match (span, located) {
            (Some(span), Some(located)) => {
                (Some(located.line_col(span.start)), located.path_at(span.start).to_string())
            }
            (Some(span), None) => (Some(line_col(text, span.start)), String::new()),
            _ => (None, String::new()),
        };
        ConfigError { file: path.to_path_buf(), position, field, reason: message.trim().to_owned() }
    };
    let root = toml::de::DeTable::parse(text).map_err(|e| located_error(e.span(), e.message(), None))?;
    let located = locate::Located::new(text, root);
    toml::from_str::<RawFile>(text).map_err(|e| located_error(e.span(), e.message(), Some(&located)))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
}

/// Reads `path` and every file it includes, then validates and resolves the whole.
pub fn load(path: &Path) -> Result<Resolved, ConfigErrors> {
    let mut sources: Vec<Source> = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(next) = pending.pop() {
        let canonical = next.canonicalize().unwrap_or_else(|_| next.clone());
        if sources.iter().any(|s| s.path.canonicalize().unwrap_or_else(|_| s.path.clone()) == canonical) {
            continue;
        }
        if sources.len() >= FILES_MAX {
            return Err(ConfigError {
                file: next,
                position: None,
                field: "include".into(),
                reason: format!("more than {FILES_MAX} files included"),
            }
            .into());
        }
        let source = read_file(&next)?;
        let base = next.parent().map(Path::to_path_buf).unwrap_or_default();
        for include in source.raw.include.iter().rev() {
            pending.push(base.join(include));
        }
        sources.push(source);
    }
    resolve::resolve(&sources)
}

/// Validates text as if it were the file `path` (no includes are followed).
pub fn load_str(path: &Path, text: &str) -> Result<Resolved, ConfigErrors> {
    let raw = parse_text(path, text)?;
    if !raw.include.is_empty() {
        return Err(ConfigError {
            file: path.to_path_buf(),
            position: None,
            field: "include".into(),
            reason: "includes are only followed when loading from a file".into(),
        }
        .into());
    }
    resolve::resolve(&[Source { path: path.to_path_buf(), text: text.to_owned(), raw }])
}

#[cfg(test)]
mod tests;
