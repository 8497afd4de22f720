//! Clear values ([`Secret`]), the names they go by, and the references configuration holds
//! instead of values ([`CredentialRef`]).

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

use super::{SecretStore, SecretsError};

/// The longest secret name.
const NAME_LEN_MAX: usize = 64;
/// The longest environment variable name a credential may refer to.
const ENV_VAR_LEN_MAX: usize = 128;

/// A clear secret value. Its memory is wiped on drop; `Debug` prints `Secret(***)` and `Display`
/// prints `<redacted>`, so neither logs nor error chains can show it. It cannot be serialized.
/// [`Secret::expose`] is the one way to the value, for the moment it is handed to a broker.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value (taking the string, so no copy of it is left behind).
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The clear value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<Zeroizing<String>> for Secret {
    fn from(value: Zeroizing<String>) -> Self {
        Self(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Checks a secret name: 1 to 64 characters from `A-Z a-z 0-9 . _ -`. The error says which rule
/// is broken without repeating the name, in case a value was typed where a name belongs.
pub(crate) fn validate_name(name: &str) -> Result<(), SecretsError> {
    let rule = "a secret name is 1 to 64 characters from A-Z a-z 0-9 . _ -";
    let invalid = |detail: String| SecretsError::InvalidName { reason: format!("{rule}; {detail}") };
    if name.is_empty() {
        return Err(invalid("this one is empty".into()));
    }
    if let Some(position) = name.chars().position(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(invalid(format!("character {} of this one is not allowed", position + 1)));
    }
    if name.len() > NAME_LEN_MAX {
        return Err(invalid(format!("this one has {} characters", name.len())));
    }
    Ok(())
}

/// Checks an environment variable name: a letter or `_`, then letters, digits and `_`.
fn validate_env_var(var: &str) -> Result<(), SecretsError> {
    let rule = "`env:` must be followed by a variable name (a letter or _, then letters, digits and _, \
                at most 128)";
    let invalid = |detail: String| SecretsError::InvalidCredentialRef { reason: format!("{rule}; {detail}") };
    let mut chars = var.chars();
    match chars.next() {
        None => return Err(invalid("it is empty".into())),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return Err(invalid("its first character is not allowed".into()));
        }
        Some(_) => {}
    }
    if let Some(position) = chars.position(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
        return Err(invalid(format!("its character {} is not allowed", position + 2)));
    }
    if var.len() > ENV_VAR_LEN_MAX {
        return Err(invalid(format!("it has {} characters", var.len())));
    }
    Ok(())
}

/// Where a credential comes from, as configuration writes it: `secret:<name>` for an entry of the
/// [`SecretStore`], or `env:<VAR>` for an environment variable. A plain-text credential is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CredentialRef {
    /// An entry of the secrets store, by name.
    Secret(String),
    /// An environment variable, by name.
    Env(String),
}

/// Values for `env:` credential references, read instead of the process environment: for
/// tests, and for programs that embed the engine and hold credentials themselves. `Debug`
/// shows the variables' names, never their values.
#[derive(Clone, Default)]
pub struct CredentialVars(std::collections::BTreeMap<String, Zeroizing<String>>);

impl CredentialVars {
    /// No variables.
    pub fn new() -> Self {
        Self::default()
    }

    /// These variables and `var` = `value`.
    pub fn with(mut self, var: &str, value: &str) -> Self {
        self.0.insert(var.to_owned(), Zeroizing::new(value.to_owned()));
        self
    }
}

impl fmt::Debug for CredentialVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CredentialVars").field(&self.0.keys().collect::<Vec<_>>()).finish()
    }
}

impl CredentialRef {
    /// Like [`CredentialRef::resolve`], with `env:` variables read from `vars` instead of the
    /// process environment when `vars` is given.
    pub fn resolve_with(
        &self,
        store: Option<&SecretStore>,
        vars: Option<&CredentialVars>,
    ) -> Result<Secret, SecretsError> {
        match (self, vars) {
            (CredentialRef::Env(var), Some(vars)) => match vars.0.get(var) {
                Some(value) if value.is_empty() => Err(SecretsError::EmptyValue { name: format!("env:{var}") }),
                Some(value) => Ok(Secret::new(value.as_str().to_owned())),
                None => Err(SecretsError::EnvNotSet { var: var.clone() }),
            },
            _ => self.resolve(store),
        }
    }

    /// The clear value: from the store for `secret:` (which must be given), from the process
    /// environment for `env:`. An empty environment variable is refused as a mistake.
    pub fn resolve(&self, store: Option<&SecretStore>) -> Result<Secret, SecretsError> {
        match self {
            CredentialRef::Secret(name) => {
                store.ok_or_else(|| SecretsError::StoreNotOpen { name: name.clone() })?.get(name)
            }
            CredentialRef::Env(var) => match std::env::var(var) {
                Ok(value) if value.is_empty() => Err(SecretsError::EmptyValue { name: format!("env:{var}") }),
                Ok(value) => Ok(Secret::new(value)),
                Err(std::env::VarError::NotPresent) => Err(SecretsError::EnvNotSet { var: var.clone() }),
                Err(std::env::VarError::NotUnicode(raw)) => {
                    super::key::wipe_os_string(raw);
                    Err(SecretsError::EnvNotUnicode { var: var.clone() })
                }
            },
        }
    }
}

impl FromStr for CredentialRef {
    type Err = SecretsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(name) = text.strip_prefix("secret:") {
            validate_name(name).map_err(|error| match error {
                SecretsError::InvalidName { reason } => {
                    SecretsError::InvalidCredentialRef { reason: format!("after `secret:`, {reason}") }
                }
                other => other,
            })?;
            Ok(CredentialRef::Secret(name.to_owned()))
        } else if let Some(var) = text.strip_prefix("env:") {
            validate_env_var(var)?;
            Ok(CredentialRef::Env(var.to_owned()))
        } else {
            // The text is not repeated: it is most likely a plain-text credential.
            Err(SecretsError::InvalidCredentialRef {
                reason: "expected `secret:<name>` (an entry of the secrets store, see `mirror-engine secrets`) \
                         or `env:<VAR>` (an environment variable); plain-text credentials are not accepted"
                    .into(),
            })
        }
    }
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::Secret(name) => write!(f, "secret:{name}"),
            CredentialRef::Env(var) => write!(f, "env:{var}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for CredentialRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Held in a wiped buffer: a refused text is probably a credential typed in the clear.
        let text = Zeroizing::new(<String as serde::Deserialize>::deserialize(deserializer)?);
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prints_redacted() {
        let secret = Secret::new("hunter2-visible".into());
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{secret:#?} {secret:>30}"), "Secret(***) <redacted>");
        assert_eq!(secret.expose(), "hunter2-visible");
    }

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "ctrader.client_secret", "IC-Markets_live.2", &"x".repeat(64)] {
            validate_name(good).unwrap();
        }
        let cases = [
            ("", "this one is empty"),
            ("has space", "character 4 of this one is not allowed"),
            ("slash/name", "character 6 of this one is not allowed"),
            ("é", "character 1 of this one is not allowed"),
            (&"x".repeat(65), "this one has 65 characters"),
        ];
        for (bad, detail) in cases {
            let message = validate_name(bad).unwrap_err().to_string();
            assert!(message.starts_with("invalid secret name: a secret name is 1 to 64 characters"), "{message}");
            assert!(message.ends_with(detail), "{bad:?}: {message}");
        }
    }

    #[test]
    fn parses_secret_and_env_references() {
        assert_eq!(
            "secret:ctrader.client_secret".parse::<CredentialRef>().unwrap(),
            CredentialRef::Secret("ctrader.client_secret".into())
        );
        assert_eq!("env:CTRADER_SECRET".parse::<CredentialRef>().unwrap(), CredentialRef::Env("CTRADER_SECRET".into()));
        assert_eq!(CredentialRef::Env("X".into()).to_string(), "env:X");
        assert_eq!(CredentialRef::Secret("a.b".into()).to_string(), "secret:a.b");
    }

    #[test]
    fn refuses_plain_text_without_repeating_it() {
        let cases = [
            ("correct-horse-battery", "plain-text credentials are not accepted"),
            ("Secret:abc", "plain-text credentials are not accepted"),
            ("secret:", "after `secret:`, a secret name is 1 to 64 characters"),
            ("secret:pass word!", "character 5 of this one is not allowed"),
            ("env:", "it is empty"),
            ("env:9LIVES", "its first character is not allowed"),
            ("env:MY-VAR", "its character 3 is not allowed"),
        ];
        for (text, reason) in cases {
            let message = text.parse::<CredentialRef>().unwrap_err().to_string();
            assert!(message.starts_with("invalid credential: "), "{message}");
            assert!(message.contains(reason), "{text:?}: {message}");
            let payload = text.split_once(':').map_or(text, |(_, rest)| rest);
            if payload.len() > 3 {
                assert!(!message.contains(payload), "{message} repeats {payload}");
            }
        }
    }

    #[derive(serde::Deserialize, Debug)]
    struct BrokerConfig {
        #[allow(dead_code)]
        login: u64,
        password: CredentialRef,
    }

    #[test]
    fn deserializes_from_configuration() {
        let config: BrokerConfig = toml::from_str("login = 7\npassword = \"secret:broker.password\"\n").unwrap();
        assert_eq!(config.password, CredentialRef::Secret("broker.password".into()));

        let error = toml::from_str::<BrokerConfig>("login = 7\npassword = \"Tr0ub4dor&3\"\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("plain-text credentials are not accepted"), "{message}");
        assert!(error.message().contains("expected `secret:<name>`"), "{message}");
        assert!(!error.message().contains("Tr0ub4dor"), "{message}");

        let error = toml::from_str::<BrokerConfig>("login = 7\npassword = 12345\n").unwrap_err();
        assert!(error.message().contains("invalid type"), "{error}");
    }

    #[test]
    fn resolves_env_references() {
        // Cargo sets this for every test process, so the test needs no change to the environment.
        let value = CredentialRef::Env("CARGO_PKG_NAME".into()).resolve(None).unwrap();
        assert_eq!(value.expose(), "mirror-engine");

        let missing = CredentialRef::Env("MIRROR_TEST_SURELY_UNSET_7F3A".into()).resolve(None).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "credential `env:MIRROR_TEST_SURELY_UNSET_7F3A`: environment variable MIRROR_TEST_SURELY_UNSET_7F3A is not set"
        );

        let no_store = CredentialRef::Secret("broker.password".into()).resolve(None).unwrap_err();
        assert_eq!(
            no_store.to_string(),
            "credential `secret:broker.password` needs the secrets store, and none is open"
        );
    }
}
