//! Remembered connections: a small TOML file, `$XDG_CONFIG_HOME/mirror/logs.toml` (or
//! `~/.config/mirror/logs.toml`). Tokens are kept as the name of the environment variable that
//! holds them, never as values.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::net::ConnectionSpec;

/// Connections remembered at most (the least recently used go first).
pub const REMEMBERED_MAX: usize = 16;

/// One remembered connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    /// The gateway's address.
    pub server: String,
    /// 64 hex digits, or `file:<path>`.
    pub fingerprint: String,
    /// The environment variable holding the token.
    pub token_env: String,
}

impl From<&ConnectionSpec> for Remembered {
    fn from(spec: &ConnectionSpec) -> Self {
        Self { server: spec.server.clone(), fingerprint: spec.fingerprint.clone(), token_env: spec.token_env.clone() }
    }
}

impl From<&Remembered> for ConnectionSpec {
    fn from(remembered: &Remembered) -> Self {
        Self {
            server: remembered.server.clone(),
            fingerprint: remembered.fingerprint.clone(),
            token_env: remembered.token_env.clone(),
        }
    }
}

/// The settings file's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Most recently used first.
    pub connections: Vec<Remembered>,
}

impl Settings {
    /// Where the file lives by default.
    pub fn default_path() -> Option<PathBuf> {
        let base = match std::env::var_os("XDG_CONFIG_HOME") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
        };
        Some(base.join("mirror").join("logs.toml"))
    }

    /// Reads the file; a missing file is empty settings.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// Writes the file (and its folder).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = toml::to_string(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Puts a connection first (moving it if it was remembered), keeping at most
    /// [`REMEMBERED_MAX`].
    pub fn remember(&mut self, spec: &ConnectionSpec) {
        let entry = Remembered::from(spec);
        self.connections.retain(|c| c.server != entry.server || c.token_env != entry.token_env);
        self.connections.insert(0, entry);
        self.connections.truncate(REMEMBERED_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_remembered_most_recent_first_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror").join("logs.toml");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let spec = |server: &str| ConnectionSpec {
            server: server.into(),
            fingerprint: "file:data/gateway/gateway-fingerprint.txt".into(),
            token_env: "MIRROR_DEMO_DESK_TOKEN".into(),
        };
        let mut settings = Settings::default();
        settings.remember(&spec("127.0.0.1:7443"));
        settings.remember(&spec("10.0.0.5:7443"));
        settings.remember(&spec("127.0.0.1:7443"));
        settings.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("token_env = \"MIRROR_DEMO_DESK_TOKEN\""), "{text}");
        let loaded = Settings::load(&path).unwrap();
        let servers: Vec<&str> = loaded.connections.iter().map(|c| c.server.as_str()).collect();
        assert_eq!(servers, ["127.0.0.1:7443", "10.0.0.5:7443"]);
        std::fs::write(&path, "connections = 3").unwrap();
        assert!(Settings::load(&path).is_err());
    }
}
