//! Secrets at rest: each `secrets` value of a spec is stored sealed with
//! XChaCha20-Poly1305 under the home's `secrets.key`, and opened only where its
//! value is needed: the task's environment and the masking of its output.
//!
//! This keeps the values out of the database, its WAL, `meanwhile backup` copies
//! and dumps: whoever has those without the key has no secret. It does not keep
//! them from whoever reads the home as its user, since the key is there too.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Key, KeyInit};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a sealed value starts with; a value without it was stored in clear (by a
/// version before sealing) and is used as it is.
const PREFIX: &str = "sealed:v1:";
/// Bytes of a nonce, drawn at random for each value (192 bits: no repeat to fear).
const NONCE: usize = 24;

/// The key that seals the secrets of a home's tasks.
#[derive(Clone)]
pub(crate) struct SecretsKey(XChaCha20Poly1305);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(***)")
    }
}

impl SecretsKey {
    /// The key in `path` (64 hex digits), made (mode 0600) when there is none.
    pub(crate) fn load_or_create(path: &Path) -> std::io::Result<SecretsKey> {
        let invalid = || {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a key (64 hex digits); restore it from a backup of the home, since without it no stored secret can be opened",
                    path.display()
                ),
            )
        };
        let bytes: [u8; 32] = match std::fs::read_to_string(path) {
            Ok(text) => from_hex(text.trim()).ok_or_else(invalid)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(to_hex(&bytes).as_bytes())?;
                f.sync_all()?;
                bytes
            }
            Err(e) => return Err(e),
        };
        Ok(SecretsKey(XChaCha20Poly1305::new(
            &Key::<XChaCha20Poly1305>::from(bytes),
        )))
    }

    /// `value` sealed: the prefix, then the nonce and the ciphertext in hex.
    pub(crate) fn seal(&self, value: &str) -> String {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .0
            .encrypt(&nonce.into(), value.as_bytes())
            // Encryption fails only for a message longer than 256 GiB.
            .unwrap_or_default();
        format!("{PREFIX}{}{}", to_hex(&nonce), to_hex(&sealed))
    }

    /// Seals every value of `secrets` still in clear.
    pub(crate) fn seal_all(
        &self,
        secrets: &mut std::collections::BTreeMap<String, meanwhile_core::Secret>,
    ) {
        for v in secrets.values_mut() {
            if let Some(sealed) = self.seal_clear(v.expose()) {
                *v = meanwhile_core::Secret::new(sealed);
            }
        }
    }

    /// `value` sealed, or `None` when it is sealed already or is a value validation
    /// refuses (empty, or with a NUL byte), left as it is so that it is refused by
    /// name rather than sealed into a valid look.
    pub(crate) fn seal_clear(&self, value: &str) -> Option<String> {
        let refused = value.is_empty() || value.contains('\0');
        (!refused && !value.starts_with(PREFIX)).then(|| self.seal(value))
    }

    /// The value of a stored secret: opened when sealed, as it is otherwise.
    /// `None` when it was sealed under another key, or changed since.
    pub(crate) fn open(&self, stored: &str) -> Option<String> {
        let Some(hex) = stored.strip_prefix(PREFIX) else {
            return Some(stored.to_string());
        };
        let bytes = from_hex_vec(hex)?;
        if bytes.len() < NONCE {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().ok()?;
        let clear = self.0.decrypt(&nonce.into(), sealed).ok()?;
        String::from_utf8(clear).ok()
    }
}

fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn from_hex_vec(text: &str) -> Option<Vec<u8>> {
    hex::decode(text).ok()
}

fn from_hex(text: &str) -> Option<[u8; 32]> {
    from_hex_vec(text)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_under_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let key = SecretsKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let sealed = key.seal("s3cr3t");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("s3cr3t"));
        assert_ne!(sealed, key.seal("s3cr3t"), "a nonce of its own each time");
        let again = SecretsKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed).as_deref(), Some("s3cr3t"));
        // A value stored in clear before sealing is used as it is.
        assert_eq!(again.open("old-clear").as_deref(), Some("old-clear"));
        let other = SecretsKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_eq!(other.open(&sealed), None);
        let mut changed = sealed.clone();
        changed.replace_range(changed.len() - 2.., "00");
        assert_eq!(key.open(&changed), None);
        std::fs::write(&path, "short").unwrap();
        assert!(SecretsKey::load_or_create(&path).is_err());
    }
}
