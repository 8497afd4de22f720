//! Token authentication: every configured token is compared with the presented one in
//! constant time (SHA-256 digests of both, compared byte by byte without an early exit, every
//! entry looked at), so neither timing nor length tells a guesser anything. Tokens are never
//! logged; only the name of the token that matched is.

use std::sync::Arc;

use mirror_model::Origin;
use mirror_wire::proto::Role;
use sha2::{Digest, Sha256};

use super::{GatewayError, GatewayToken};

/// Shortest token accepted in the settings.
pub(crate) const TOKEN_LEN_MIN: usize = 16;

/// What a valid token grants.
#[derive(Clone, Debug)]
pub(super) struct Grant {
    /// The token's configured name (logged instead of the token).
    pub(super) name: Arc<str>,
    pub(super) role: Role,
    /// The source its orders are sent as.
    pub(super) source: Option<Origin>,
}

struct Entry {
    digest: [u8; 32],
    grant: Grant,
}

/// The configured tokens, as digests.
pub(super) struct Tokens {
    entries: Vec<Entry>,
}

/// SHA-256 of a token or secret: what is kept and compared, so lengths never show.
pub(crate) fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Equality of two digests without an early exit.
pub(crate) fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Tokens {
    pub(super) fn new(tokens: &[GatewayToken]) -> Result<Self, GatewayError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(tokens.len());
        for token in tokens {
            let secret = token.secret.as_bytes();
            if secret.len() < TOKEN_LEN_MIN {
                return Err(GatewayError::Settings(format!(
                    "token `{}`: at least {TOKEN_LEN_MIN} characters expected, got {}",
                    token.name,
                    secret.len()
                )));
            }
            if secret.len() > mirror_wire::proto::TOKEN_LEN_MAX {
                return Err(GatewayError::Settings(format!(
                    "token `{}`: at most {} characters",
                    token.name,
                    mirror_wire::proto::TOKEN_LEN_MAX
                )));
            }
            let digest = digest(secret);
            if entries.iter().any(|e| constant_time_eq(&e.digest, &digest)) {
                return Err(GatewayError::Settings(format!("token `{}` has the same value as another", token.name)));
            }
            if token.role == Role::Trader && token.source.is_none() {
                return Err(GatewayError::Settings(format!(
                    "token `{}`: a trader token needs the source its orders are sent as",
                    token.name
                )));
            }
            let grant = Grant { name: Arc::from(token.name.as_str()), role: token.role, source: token.source };
            entries.push(Entry { digest, grant });
        }
        Ok(Self { entries })
    }

    /// The grant of the token presented, if it is one of ours.
    pub(super) fn verify(&self, presented: &str) -> Option<Grant> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        // Every entry is compared, matched or not.
        for entry in &self.entries {
            if constant_time_eq(&entry.digest, &presented) {
                found = Some(entry.grant.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mirror_model::SourceId;

    fn token(name: &str, secret: &str, role: Role) -> GatewayToken {
        GatewayToken { name: name.into(), secret: secret.into(), role, source: Some(Origin::Source(SourceId(1))) }
    }

    #[test]
    fn only_a_configured_token_is_granted_and_weak_tokens_are_refused() {
        let tokens = Tokens::new(&[
            token("bot", "0123456789abcdef-bot", Role::Trader),
            token("ops", "0123456789abcdef-ops", Role::Admin),
        ])
        .unwrap();
        assert_eq!(tokens.verify("0123456789abcdef-ops").unwrap().role, Role::Admin);
        assert_eq!(&*tokens.verify("0123456789abcdef-bot").unwrap().name, "bot");
        assert!(tokens.verify("0123456789abcdef-bo").is_none());
        assert!(tokens.verify("").is_none());
        assert!(Tokens::new(&[token("short", "abc", Role::Viewer)]).is_err());
        let dup = [token("a", "0123456789abcdef", Role::Viewer), token("b", "0123456789abcdef", Role::Viewer)];
        assert!(Tokens::new(&dup).is_err());
    }
}
