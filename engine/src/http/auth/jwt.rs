//! Reading a JSON Web Token (RFC 7519, compact JWS of RFC 7515): split, decode, check the
//! header's algorithm against the key that is to verify it, check the signature, then the
//! registered claims. No clock is read here: the caller passes the time.
//!
//! Only asymmetric algorithms are accepted (RS256, ES256, EdDSA). Each verifying key carries
//! the one algorithm its type allows (an RSA key RS256, a P-256 key ES256, an Ed25519 key
//! EdDSA), and the signature is checked with that algorithm, never with the one the header
//! names: a token whose header says `HS256` to have a public key used as an HMAC secret, or
//! `none` to skip the signature, is refused before any key is looked at.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::AuthError;

/// Longest token read, bytes. Access tokens are a few hundred bytes to a few KiB; anything
/// longer is not one, and is not decoded.
pub(crate) const TOKEN_LEN_MAX: usize = 8 * 1024;
/// Clock difference tolerated on `exp` and `nbf`, seconds.
pub(crate) const LEEWAY_S: i64 = 60;

/// A signature algorithm Mirror accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The accepted algorithms, for messages.
    pub(crate) const ALLOWED: &'static str = "RS256, ES256, EdDSA";

    /// The algorithm a header names, if accepted (names are case-sensitive, RFC 7518 §3.1).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::Rs256),
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A public key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Alg,
    key: jsonwebtoken::DecodingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// An RSA key from its modulus and exponent (big-endian bytes).
    pub(crate) fn rsa(kid: Option<String>, n: &[u8], e: &[u8]) -> Self {
        Self { kid, alg: Alg::Rs256, key: jsonwebtoken::DecodingKey::from_rsa_raw_components(n, e) }
    }

    /// A P-256 key from its coordinates (32 bytes each).
    pub(crate) fn p256(kid: Option<String>, x: &[u8], y: &[u8]) -> Self {
        let mut point = Vec::with_capacity(65);
        point.push(0x04);
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        Self { kid, alg: Alg::Es256, key: jsonwebtoken::DecodingKey::from_ec_der(&point) }
    }

    /// An Ed25519 key (32 bytes).
    pub(crate) fn ed25519(kid: Option<String>, x: &[u8]) -> Self {
        Self { kid, alg: Alg::EdDsa, key: jsonwebtoken::DecodingKey::from_ed_der(x) }
    }

    /// `kid` or, without one, how messages name the key.
    pub(crate) fn shown_kid(&self) -> &str {
        self.kid.as_deref().unwrap_or("(no kid)")
    }
}

/// A token split and decoded, its signature not checked yet. Nothing in it is to be trusted
/// before [`Unverified::verify`]; its issuer only chooses which keys to try.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    pub(crate) claims: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    message: &'a str,
    signature: &'a str,
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|e| AuthError::Malformed(format!("the {what} is not unpadded base64url: {e}")))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, AuthError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(AuthError::Malformed(format!(
            "the {what} is {}, not a JSON object",
            crate::http::fields::kind_of(&other)
        ))),
        Err(e) => Err(AuthError::Malformed(format!("the {what} is not JSON: {e}"))),
    }
}

/// Splits and decodes a compact JWS, and refuses a header whose algorithm is not accepted.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, AuthError> {
    if token.len() > TOKEN_LEN_MAX {
        return Err(AuthError::Malformed(format!("{} bytes; a token has at most {TOKEN_LEN_MAX}", token.len())));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(AuthError::Malformed(format!(
            "a JWT is three base64url parts joined by `.`, this has {} part{}",
            parts.len(),
            if parts.len() == 1 { "" } else { "s" }
        )));
    };
    let header_json = json_object(&decode_part(header, "header")?, "header")?;
    let alg = match header_json.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(AuthError::Malformed("the header's `alg` is not a string".into())),
        None => return Err(AuthError::Malformed("the header names no algorithm (`alg`)".into())),
    };
    let Some(alg) = Alg::from_name(alg) else {
        return Err(AuthError::AlgorithmNotAllowed(format!(
            "`{}`; Mirror accepts {} only",
            alg.chars().take(32).collect::<String>(),
            Alg::ALLOWED
        )));
    };
    // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; Mirror knows none.
    if header_json.contains_key("crit") {
        return Err(AuthError::Malformed(
            "the header lists critical extensions (`crit`), which Mirror does not know".into(),
        ));
    }
    let kid = match header_json.get("kid") {
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed("the header's `kid` is not a string".into())),
        None => None,
    };
    let claims = json_object(&decode_part(payload, "payload")?, "payload")?;
    if signature.is_empty() {
        return Err(AuthError::Malformed("the signature part is empty".into()));
    }
    decode_part(signature, "signature")?;
    let message = &token[..header.len() + 1 + payload.len()];
    Ok(Unverified { alg, kid, claims, message, signature })
}

impl Unverified<'_> {
    /// Checks the signature with `key`, using the algorithm of the key (which must be the one
    /// the header names).
    pub(crate) fn verify(&self, key: &VerifyingKey, issuer: &str) -> Result<(), AuthError> {
        if key.alg != self.alg {
            return Err(AuthError::AlgorithmNotAllowed(format!(
                "the header says {} but key `{}` of {issuer} is a {} key",
                self.alg,
                key.shown_kid(),
                key.alg
            )));
        }
        match jsonwebtoken::crypto::verify(self.signature, self.message.as_bytes(), &key.key, key.alg.jsonwebtoken()) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(AuthError::BadSignature(format!(
                "the token is not signed by key `{}` of {issuer} ({})",
                key.shown_kid(),
                key.alg
            ))),
        }
    }

    /// The `iss` claim.
    pub(crate) fn issuer(&self) -> Result<&str, AuthError> {
        match self.claims.get("iss") {
            Some(Value::String(iss)) => Ok(iss),
            Some(_) => Err(AuthError::Malformed("`iss` is not a string".into())),
            None => Err(AuthError::MissingClaim("the token names no issuer (`iss`)".into())),
        }
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds since 1970, possibly with a fraction).
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    let Some(value) = claims.get(name) else { return Ok(None) };
    if let Some(seconds) = value.as_i64() {
        return Ok(Some(seconds));
    }
    match value.as_f64() {
        // Whole seconds are what every check here needs; the range keeps the cast exact.
        #[allow(clippy::cast_possible_truncation)]
        Some(seconds) if seconds.is_finite() && seconds.abs() < 1e15 => Ok(Some(seconds.floor() as i64)),
        _ => Err(AuthError::Malformed(format!(
            "`{name}` is {}, not seconds since 1970",
            crate::http::fields::kind_of(value)
        ))),
    }
}

/// Unix seconds as messages show them.
pub(crate) fn utc(seconds: i64) -> String {
    format!("{} UTC", crate::secrets::cli::format_utc(seconds.saturating_mul(1000)))
}

/// What the claims must say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) now_s: i64,
}

/// Checks `iss`, `exp` (required), `nbf`, `aud` (required) and `sub` (required), with
/// [`LEEWAY_S`] on the times; returns the subject.
pub(crate) fn check_claims<'c>(claims: &'c Map<String, Value>, expected: Expected<'_>) -> Result<&'c str, AuthError> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == expected.issuer => {}
        other => {
            return Err(AuthError::WrongIssuer(format!(
                "`{}`; expected `{}`",
                other.unwrap_or("(none)"),
                expected.issuer
            )));
        }
    }
    let now = expected.now_s;
    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| AuthError::MissingClaim("the token has no expiry (`exp`); Mirror takes none without".into()))?;
    if now >= exp.saturating_add(LEEWAY_S) {
        return Err(AuthError::Expired { exp_s: exp, now_s: now });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && now.saturating_add(LEEWAY_S) < nbf
    {
        return Err(AuthError::NotYetValid { nbf_s: nbf, now_s: now });
    }
    numeric_date(claims, "iat")?;
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            return Err(AuthError::Malformed(format!(
                "`aud` is {}, not a string or an array of strings",
                crate::http::fields::kind_of(other)
            )));
        }
        None => {
            return Err(AuthError::WrongAudience(format!(
                "the token names no audience (`aud`); expected `{}`",
                expected.audience
            )));
        }
    };
    if !audiences.contains(&expected.audience) {
        let shown: Vec<String> = audiences.iter().take(8).map(|a| format!("`{a}`")).collect();
        return Err(AuthError::WrongAudience(format!(
            "{}; expected `{}`",
            if shown.is_empty() { "(none)".to_owned() } else { shown.join(", ") },
            expected.audience
        )));
    }
    match claims.get("sub") {
        Some(Value::String(sub)) if !sub.is_empty() => Ok(sub),
        Some(Value::String(_)) => Err(AuthError::MissingClaim("the subject (`sub`) is empty".into())),
        Some(_) => Err(AuthError::Malformed("`sub` is not a string".into())),
        None => Err(AuthError::MissingClaim("the token names no subject (`sub`)".into())),
    }
}
