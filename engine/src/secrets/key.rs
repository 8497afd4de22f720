//! The master key: 32 random bytes, read from the environment or a private key file, zeroized on drop.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::{DecodeSliceError, Engine as _};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

use super::file::{create_new_private, io_error, parent_dir, sync_dir};
use super::{KeyOrigin, MASTER_KEY_ENV, MASTER_KEY_FILE_ENV, SecretsError};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// The longest key file we read: a key with generous whitespace, far below any real file.
const KEY_FILE_BYTES_MAX: usize = 256;

/// The key every secret is sealed under. Its bytes are wiped when it is dropped, and its `Debug`
/// shows none of them.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, SecretsError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        fill_random(&mut bytes[..])?;
        Ok(Self { bytes })
    }

    /// The key named by the environment: `MIRROR_MASTER_KEY` holds it, or `MIRROR_MASTER_KEY_FILE`
    /// names a file holding it. Exactly one of them must be set (an empty one counts as unset).
    pub fn from_env() -> Result<Self, SecretsError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// [`MasterKey::from_env`] over any variable lookup, so that tests need not change the
    /// process environment.
    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, SecretsError> {
        let set = |name| lookup(name).filter(|value| !value.is_empty());
        match (set(MASTER_KEY_ENV), set(MASTER_KEY_FILE_ENV)) {
            (Some(_), Some(_)) => Err(SecretsError::MasterKeyAmbiguous),
            (None, None) => Err(SecretsError::MasterKeyMissing),
            (Some(value), None) => {
                let text = Zeroizing::new(value.into_string().map_err(|raw| {
                    wipe_os_string(raw);
                    SecretsError::InvalidMasterKey { origin: KeyOrigin::EnvVar, reason: "not valid UTF-8".into() }
                })?);
                Self::decode(&text, &KeyOrigin::EnvVar)
            }
            (None, Some(path)) => Self::from_file(Path::new(&path)),
        }
    }

    /// The key in a file: 64 hex digits or standard base64 of 32 bytes, whitespace around it
    /// ignored. On unix the file must not be accessible by group or others.
    pub fn from_file(path: &Path) -> Result<Self, SecretsError> {
        let mut file = File::open(path).map_err(io_error(path, "open the key file"))?;
        // The mode is read from the open handle, so it is the mode of the file actually read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file.metadata().map_err(io_error(path, "inspect the key file"))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(SecretsError::KeyFileTooOpen { path: path.to_path_buf(), mode: mode & 0o7777 });
            }
        }
        let origin = || KeyOrigin::File(path.to_path_buf());
        // Capacity above the read limit, so the buffer never reallocates and leaves copies behind.
        let mut raw = Zeroizing::new(Vec::with_capacity(KEY_FILE_BYTES_MAX * 2));
        (&mut file)
            .take(KEY_FILE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(io_error(path, "read the key file"))?;
        if raw.len() > KEY_FILE_BYTES_MAX {
            let reason = format!("the file is longer than {KEY_FILE_BYTES_MAX} bytes");
            return Err(SecretsError::InvalidMasterKey { origin: origin(), reason });
        }
        let text = std::str::from_utf8(&raw)
            .map_err(|_| SecretsError::InvalidMasterKey { origin: origin(), reason: "not valid UTF-8".into() })?;
        Self::decode(text, &origin())
    }

    /// Reads a key written as 64 hex digits or as standard base64 of 32 bytes.
    pub(crate) fn decode(text: &str, origin: &KeyOrigin) -> Result<Self, SecretsError> {
        let text = text.trim();
        let invalid = |reason: String| SecretsError::InvalidMasterKey { origin: origin.clone(), reason };
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if text.len() == MASTER_KEY_LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
            }
            return Ok(Self { bytes });
        }
        // A fixed buffer with room to spare: decoding never allocates, and a longer key shows as
        // too long rather than as a buffer error.
        let mut decoded = Zeroizing::new([0u8; MASTER_KEY_LEN * 2]);
        let len = match BASE64.decode_slice(text, &mut decoded[..]) {
            Ok(len) => len,
            Err(DecodeSliceError::OutputSliceTooSmall) => usize::MAX,
            // The decoder's own message names the offending byte, which is key material.
            Err(DecodeSliceError::DecodeError(_)) => {
                return Err(invalid(format!(
                    "expected 64 hex digits or standard base64 of 32 bytes; its {} characters are neither",
                    text.chars().count()
                )));
            }
        };
        if len != MASTER_KEY_LEN {
            let got = if len == usize::MAX { format!("more than {}", decoded.len()) } else { len.to_string() };
            return Err(invalid(format!("its base64 decodes to {got} bytes; a master key has {MASTER_KEY_LEN}")));
        }
        bytes.copy_from_slice(&decoded[..MASTER_KEY_LEN]);
        Ok(Self { bytes })
    }

    /// Writes the key as hex to a new file, private to its owner (0600 on unix), and syncs it.
    /// Refuses to overwrite an existing file: a lost master key loses every secret under it.
    pub fn write_new_file(&self, path: &Path) -> Result<(), SecretsError> {
        let mut file = create_new_private().open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SecretsError::KeyFileExists { path: path.to_path_buf() }
            } else {
                io_error(path, "create the key file")(source)
            }
        })?;
        let mut text = self.to_hex();
        text.push('\n');
        let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
        if let Err(source) = written {
            drop(file);
            // A half-written key file must not be mistaken for a key later.
            let _ = std::fs::remove_file(path);
            return Err(io_error(path, "write the key file")(source));
        }
        sync_dir(parent_dir(path))
    }

    /// A cipher under this key (it wipes its own copy of the key when dropped).
    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.bytes[..]))
    }

    /// The key as lowercase hex, in a buffer wiped on drop.
    fn to_hex(&self) -> Zeroizing<String> {
        // Not `crate::hex`: the key's text is written straight into memory that is wiped.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = Zeroizing::new(String::with_capacity(MASTER_KEY_LEN * 2 + 1));
        for byte in self.bytes.iter() {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        text
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), SecretsError> {
    OsRng.try_fill_bytes(buf).map_err(|error| SecretsError::Randomness { reason: error.to_string() })
}

/// Wipes an environment value that was not UTF-8 (and so not taken as a key or secret).
pub(crate) fn wipe_os_string(value: OsString) {
    #[cfg(unix)]
    zeroize::Zeroize::zeroize(&mut std::os::unix::ffi::OsStringExt::into_vec(value));
    // Elsewhere the platform's encoding offers no owned buffer to wipe.
    #[cfg(not(unix))]
    drop(value);
}

/// The value of one hex digit (the caller has checked that it is one).
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    // The same 32 bytes, standard base64.
    const BASE64_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn expected() -> [u8; MASTER_KEY_LEN] {
        std::array::from_fn(|i| u8::try_from(i).unwrap())
    }

    #[test]
    fn reads_hex_and_base64_with_surrounding_whitespace() {
        for text in [HEX, BASE64_KEY, &format!("  {}\n", HEX.to_uppercase()), &format!("\t{BASE64_KEY}\r\n")] {
            let key = MasterKey::decode(text, &KeyOrigin::EnvVar).unwrap();
            assert_eq!(*key.bytes, expected(), "{text:?}");
        }
    }

    #[test]
    fn refuses_other_forms_without_repeating_them() {
        let cases = [
            ("", "empty"),
            (&HEX[..62], "neither"),
            (&format!("{}zz", &HEX[..62]), "decodes to 48 bytes"),
            ("not a key at all!", "its 17 characters are neither"),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd", "decodes to 30 bytes"),
            (&BASE64.encode([7u8; 80]), "decodes to more than 64 bytes"),
        ];
        for (text, reason) in cases {
            let error = MasterKey::decode(text, &KeyOrigin::EnvVar).unwrap_err();
            let message = error.to_string();
            assert!(message.starts_with("environment variable MIRROR_MASTER_KEY: not a master key"), "{message}");
            assert!(message.contains(reason), "{text:?}: {message}");
            if text.len() >= 8 {
                for fragment in text.as_bytes().windows(8) {
                    let fragment = std::str::from_utf8(fragment).unwrap();
                    assert!(!message.contains(fragment), "{message} repeats {fragment}");
                }
            }
        }
    }

    #[test]
    fn env_lookup_needs_exactly_one_variable() {
        let none = |_: &str| None;
        assert!(matches!(MasterKey::from_lookup(none), Err(SecretsError::MasterKeyMissing)));
        let empty = |_: &str| Some(OsString::new());
        assert!(matches!(MasterKey::from_lookup(empty), Err(SecretsError::MasterKeyMissing)));
        let both = |_: &str| Some(OsString::from("x"));
        assert!(matches!(MasterKey::from_lookup(both), Err(SecretsError::MasterKeyAmbiguous)));
        let key_only = |name: &str| (name == MASTER_KEY_ENV).then(|| OsString::from(HEX));
        assert_eq!(*MasterKey::from_lookup(key_only).unwrap().bytes, expected());
        let file_only = |name: &str| (name == MASTER_KEY_FILE_ENV).then(|| OsString::from("/nonexistent/mirror.key"));
        let error = MasterKey::from_lookup(file_only).unwrap_err();
        assert!(error.to_string().starts_with("cannot open the key file /nonexistent/mirror.key: "), "{error}");
    }

    #[test]
    fn debug_shows_no_key_bytes() {
        let key = MasterKey::decode(HEX, &KeyOrigin::EnvVar).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(&*key.to_hex(), HEX);
    }

    #[test]
    fn generated_keys_differ() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(*a.bytes, *b.bytes);
        assert_ne!(*a.bytes, [0u8; MASTER_KEY_LEN]);
    }
}
