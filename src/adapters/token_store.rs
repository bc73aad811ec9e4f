//! Rotated OAuth refresh tokens, kept in `<data-dir>/oauth-tokens.json`.
//!
//! Providers that rotate refresh tokens (HubSpot, Salesforce, AWeber)
//! revoke the old one when they hand out a new one. Kept in memory only, a
//! restart would go back to the token in `meshes.yaml`/the environment,
//! now revoked, and the connection would break. Each entry also holds the
//! SHA-256 of the configured token it descends from: when the operator puts
//! a new token in the environment, the fingerprint no longer matches and
//! the config wins.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file's name inside the data directory.
pub const FILE: &str = "oauth-tokens.json";

/// One connection's rotated token.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// SHA-256 (hex) of the configured refresh token this one replaced.
    configured_sha256: String,
    /// The refresh token to use next.
    refresh_token: String,
}

/// The file's content: `<workspace>/<connection>` → entry.
#[derive(Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    tokens: BTreeMap<String, Entry>,
}

/// The rotated tokens of every connection of a gateway, shared by the
/// adapters of every config version (a reload builds new adapters, which
/// must see what the old ones rotated).
pub struct TokenStore {
    path: PathBuf,
    tokens: Mutex<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// SHA-256 of `token`, in hex: what the file remembers of a configured token.
pub fn fingerprint(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenStore {
    /// Reads `<dir>/oauth-tokens.json`. A missing file is an empty store; an
    /// unreadable one is logged and ignored (the configured tokens are used,
    /// and the next rotation rewrites it).
    pub fn open(dir: &Path) -> Arc<Self> {
        let path = dir.join(FILE);
        let tokens = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Document>(&bytes) {
                Ok(doc) => doc.tokens,
                Err(e) => {
                    // serde_json's message names a position, never the content.
                    tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable OAuth token file");
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring unreadable OAuth token file");
                BTreeMap::new()
            }
        };
        Arc::new(TokenStore { path, tokens: Mutex::new(tokens) })
    }

    /// The handle one connection's token cache uses.
    pub fn slot(self: &Arc<Self>, key: String) -> TokenSlot {
        TokenSlot { store: self.clone(), key }
    }

    fn current(&self, key: &str, configured: &str) -> Option<String> {
        let tokens = self.tokens.lock().ok()?;
        let entry = tokens.get(key)?;
        (entry.configured_sha256 == configured).then(|| entry.refresh_token.clone())
    }

    /// Records `token` for `key` and rewrites the file (under the lock, so
    /// the file always holds the latest of concurrent rotations).
    fn put(&self, key: &str, configured: &str, token: &str) -> std::io::Result<()> {
        let mut tokens = self.tokens.lock().map_err(|_| std::io::Error::other("lock poisoned"))?;
        let entry =
            Entry { configured_sha256: configured.to_string(), refresh_token: token.to_string() };
        tokens.insert(key.to_string(), entry);
        let doc = Document { version: 1, tokens: tokens.clone() };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Write a temporary file (mode 0600), fsync it, rename it over `path`,
/// fsync the directory: after a crash the file is the old or the new
/// version, never a torn one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    // A leftover from a crash may have other permissions: start afresh.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// One connection's place in the store (`<workspace>/<connection>`).
#[derive(Clone)]
pub struct TokenSlot {
    store: Arc<TokenStore>,
    key: String,
}

impl std::fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSlot").field("key", &self.key).finish_non_exhaustive()
    }
}

impl TokenSlot {
    /// The persisted token, if it descends from the configured token with
    /// this fingerprint.
    pub fn current(&self, configured: &str) -> Option<String> {
        self.store.current(&self.key, configured)
    }

    /// Persists a rotated token (blocking file I/O off the async workers).
    /// A failure is logged: the token still serves from memory.
    pub async fn save(&self, configured: &str, token: &str) {
        let (slot, configured, token) = (self.clone(), configured.to_string(), token.to_string());
        let key = self.key.clone();
        let result =
            tokio::task::spawn_blocking(move || slot.store.put(&slot.key, &configured, &token))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match result {
            Ok(()) => tracing::info!(connection = %key, "persisted a rotated OAuth refresh token"),
            Err(e) => tracing::warn!(
                connection = %key, error = %e,
                "could not persist the rotated OAuth refresh token; a restart will use the configured one"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_survive_a_reopen_only_for_the_same_configured_token() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path());
        store.put("ws/crm", &fingerprint("configured"), "rotated-1").unwrap();
        let again = TokenStore::open(dir.path());
        let slot = again.slot("ws/crm".into());
        assert_eq!(slot.current(&fingerprint("configured")).as_deref(), Some("rotated-1"));
        assert_eq!(slot.current(&fingerprint("new-from-env")), None);
        assert_eq!(again.slot("ws/other".into()).current(&fingerprint("configured")), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("oauth-tokens.json.tmp").exists());
    }

    #[test]
    fn an_unreadable_file_is_an_empty_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let store = TokenStore::open(dir.path());
        assert_eq!(store.slot("ws/crm".into()).current(&fingerprint("x")), None);
        // The next rotation replaces it with a good file.
        store.put("ws/crm", &fingerprint("x"), "r").unwrap();
        assert_eq!(TokenStore::open(dir.path()).current("ws/crm", &fingerprint("x")).unwrap(), "r");
    }
}
