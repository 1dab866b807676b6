//! The daemon's secrets: the token file and the audit trail's key, made on first
//! use; new secrets and the hashes kept instead of them; and the tokens the TCP
//! listener accepts.

use crate::error::ServerError;
use meanwhile_core::DEFAULT_TOKEN;
use meanwhile_core::http::TOKEN_FILE;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The file holding the TCP listener's bearer token in `home`.
pub fn token_path(home: &Path) -> PathBuf {
    home.join(TOKEN_FILE)
}

/// Reads the secret at `path`, creating it (32 random bytes as hex, mode 0600) when
/// it does not exist: the token file, and the audit trail's signing key.
pub(crate) fn load_or_create(path: &Path) -> Result<String, ServerError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ServerError::io(format!("reading {}", path.display()))(e)),
    }
    let token = new_secret();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(ServerError::io(format!("creating {}", path.display())))?;
    f.write_all(token.as_bytes())
        .map_err(ServerError::io(format!("writing {}", path.display())))?;
    Ok(token)
}

/// 32 random bytes as hex. The default generator is a CSPRNG seeded from the
/// operating system.
pub(crate) fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// SHA-256 of a token, hex: what the store keeps instead of the token. Tokens are
/// 256 random bits, so a fast hash is enough: there is nothing to guess.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The tokens the TCP listener accepts, by hash. Changed by the token endpoints
/// right after their commit, so that an added token works and a removed one is
/// refused from the next request on.
pub(crate) struct Tokens {
    default_hash: String,
    named: RwLock<HashMap<String, String>>,
    /// In a fleet, where other nodes add tokens: the store to read again when a
    /// token is not known here, and when that was last done.
    shared: Option<(
        meanwhile_runtime::Runtime,
        tokio::sync::Mutex<Option<Instant>>,
    )>,
}

/// The least time between two reads of the store for an unknown token, so that
/// wrong tokens cannot make a node hammer its database.
const REREAD_AFTER: Duration = Duration::from_millis(250);

impl Tokens {
    /// The token file's token (`default`) and the named tokens of the store.
    pub(crate) fn new(default: &str, named: impl IntoIterator<Item = (String, String)>) -> Tokens {
        Tokens {
            default_hash: token_hash(default),
            named: RwLock::new(named.into_iter().map(|(n, h)| (h, n)).collect()),
            shared: None,
        }
    }

    /// Reads the store again for tokens this node does not know (a fleet's).
    pub(crate) fn shared_with(mut self, rt: meanwhile_runtime::Runtime) -> Tokens {
        self.shared = Some((rt, tokio::sync::Mutex::new(None)));
        self
    }

    /// The name of the token `given`; in a fleet, after reading the store again
    /// when it is not known (another node may have just added it).
    pub(crate) async fn find(&self, given: &str) -> Option<String> {
        if let Some(name) = self.name_of(given) {
            return Some(name);
        }
        let (rt, last) = self.shared.as_ref()?;
        let mut last = last.lock().await;
        // Another request may have read the store while this one waited.
        if let Some(name) = self.name_of(given) {
            return Some(name);
        }
        if last.is_some_and(|at| at.elapsed() < REREAD_AFTER) {
            return None;
        }
        *last = Some(Instant::now());
        match rt.tokens().await {
            Ok(named) => self.replace(named.into_iter().map(|t| (t.name, t.hash))),
            Err(e) => tracing::warn!("reading the named tokens: {e}"),
        }
        self.name_of(given)
    }

    /// The name of the token `given`, if it is one.
    fn name_of(&self, given: &str) -> Option<String> {
        let hash = token_hash(given);
        // Comparing hashes tells an attacker nothing about the secret.
        if hash == self.default_hash {
            return Some(DEFAULT_TOKEN.to_string());
        }
        self.named
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .cloned()
    }

    /// Replaces the named tokens with the store's (in a fleet, other nodes add and
    /// remove them).
    pub(crate) fn replace(&self, named: impl IntoIterator<Item = (String, String)>) {
        *self.named.write().unwrap_or_else(|e| e.into_inner()) =
            named.into_iter().map(|(n, h)| (h, n)).collect();
    }

    /// Whether the token of this hash opens the listener now.
    pub(crate) fn knows_hash(&self, hash: &str) -> bool {
        hash == self.default_hash
            || self
                .named
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(hash)
    }

    pub(crate) fn insert(&self, name: &str, hash: &str) {
        self.named
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hash.to_string(), name.to_string());
    }

    pub(crate) fn remove(&self, name: &str) {
        self.named
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, n| n != name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_known_by_hash_and_forgotten_when_removed() {
        let t = Tokens::new("secret", [("ci".to_string(), token_hash("ci-secret"))]);
        assert_eq!(t.name_of("secret").as_deref(), Some("default"));
        assert_eq!(t.name_of("ci-secret").as_deref(), Some("ci"));
        assert_eq!(t.name_of("guess"), None);
        t.insert("bot", &token_hash("bot-secret"));
        assert_eq!(t.name_of("bot-secret").as_deref(), Some("bot"));
        t.remove("ci");
        assert_eq!(t.name_of("ci-secret"), None);
        assert_eq!(token_hash("x").len(), 64);
    }
}
