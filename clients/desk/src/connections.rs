//! Remembered connections: a small TOML file per app (`$XDG_CONFIG_HOME/mirror/<app>.toml`, else
//! `~/.config/mirror/<app>.toml`) with each server's address, certificate fingerprint and the
//! name of the environment variable that holds its token. Never the token itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Connections kept at most (the most recently used first).
pub const REMEMBERED_MAX: usize = 16;

/// One server the app can connect to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The gateway's UDP address (`127.0.0.1:7443`).
    pub address: String,
    /// SHA-256 of the gateway's certificate (64 hex digits), as the engine prints it.
    pub fingerprint: String,
    /// The environment variable holding the token (`MIRROR_DEMO_DESK_TOKEN`).
    pub token_env: String,
    /// The name the certificate is checked against.
    #[serde(default = "localhost")]
    pub server_name: String,
}

impl Default for Profile {
    fn default() -> Self {
        Self { address: String::new(), fingerprint: String::new(), token_env: String::new(), server_name: localhost() }
    }
}

fn localhost() -> String {
    "localhost".into()
}

impl Profile {
    /// The server name the engine's self-signed certificate is made for.
    pub fn default_server_name() -> String {
        localhost()
    }

    /// The token from its environment variable, or why there is none.
    pub fn token(&self) -> Result<String, String> {
        if self.token_env.trim().is_empty() {
            return Err("no token variable named".into());
        }
        match std::env::var(self.token_env.trim()) {
            Ok(token) if !token.is_empty() => Ok(token),
            Ok(_) => Err(format!("{} is empty", self.token_env.trim())),
            Err(_) => Err(format!("{} is not set", self.token_env.trim())),
        }
    }
}

/// The file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remembered {
    /// Most recently used first.
    #[serde(default)]
    pub connections: Vec<Profile>,
}

/// Where the app's file (`manager.toml`, `map.toml`) lives (`None` when neither
/// `XDG_CONFIG_HOME` nor `HOME` is set).
pub fn default_path(file_name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("mirror").join(file_name))
}

impl Remembered {
    /// Reads the file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(format!("{}: {error}", path.display())),
        }
    }

    /// Writes the file (through a temporary file, so a crash leaves the old one whole).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let temporary = path.with_extension("toml.tmp");
        std::fs::write(&temporary, text).map_err(|e| format!("{}: {e}", temporary.display()))?;
        std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Puts `profile` first (replacing the one with the same address), keeping at most
    /// [`REMEMBERED_MAX`].
    pub fn remember(&mut self, profile: Profile) {
        self.connections.retain(|p| p.address != profile.address);
        self.connections.insert(0, profile);
        self.connections.truncate(REMEMBERED_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_round_trip_most_recent_first_without_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror").join("manager.toml");
        assert_eq!(Remembered::load(&path).unwrap(), Remembered::default());
        let mut remembered = Remembered::default();
        let profile = |address: &str| Profile {
            address: address.into(),
            fingerprint: "ab".repeat(32),
            token_env: "MIRROR_TOKEN".into(),
            server_name: "localhost".into(),
        };
        remembered.remember(profile("127.0.0.1:7443"));
        remembered.remember(profile("10.0.0.2:7443"));
        remembered.remember(profile("127.0.0.1:7443"));
        remembered.save(&path).unwrap();
        let back = Remembered::load(&path).unwrap();
        assert_eq!(back, remembered);
        assert_eq!(
            back.connections.iter().map(|p| p.address.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:7443", "10.0.0.2:7443"]
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("token_env = \"MIRROR_TOKEN\""), "{text}");
        for n in 0..(REMEMBERED_MAX + 3) {
            remembered.remember(profile(&format!("10.0.0.{n}:1")));
        }
        assert_eq!(remembered.connections.len(), REMEMBERED_MAX);
    }
}
