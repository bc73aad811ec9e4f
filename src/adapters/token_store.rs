//! Rotated OAuth refresh tokens, kept in `<data-dir>/oauth-tokens.json`.
//!
//! Providers that rotate refresh tokens (HubSpot, Salesforce, AWeber)
//! revoke the old one when they hand out a new one. Kept in memory only, a
//! restart would go back to the token in `meshes.yaml`/the environment,
//! now revoked, and the connection would break. Each entry also holds the
//! SHA-256 of the configured token it descends from: when the operator puts
//! a new token in the environment, the fingerprint no longer matches and
//! the config wins.
//!
//! The gateway and the CLI (`meshes actions`, `validate --check-remote`
//! with `--data-dir`) share the file: a refresh holds the connection's lock
//! file from reading the current token until its successor is written, and
//! every write re-reads the file under a second lock, so neither process
//! spends a token the other already rotated nor drops the other's entries.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file's name inside the data directory.
pub const FILE: &str = "oauth-tokens.json";

/// Held while the file is read, changed and rewritten.
const FILE_LOCK: &str = "oauth-tokens.lock";

/// One lock file per connection, held for the whole of a refresh.
const LOCKS: &str = "oauth-tokens.locks";

/// Token chains kept per connection: the current one, and a few the
/// operator replaced (an adapter of the previous config, or a CLI with an
/// older config, may still finish a refresh on one; it must not write over
/// the entry of the new one).
const CHAINS_KEPT: usize = 3;

/// One chain of rotated tokens of a connection.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    /// SHA-256 (hex) of the configured refresh token the chain started from.
    configured_sha256: String,
    /// The refresh token to use next.
    refresh_token: String,
    /// Increases with each write for the connection: the newest of two
    /// copies (the file, this process's memory) wins.
    #[serde(default)]
    serial: u64,
}

/// The file's content: `<workspace>/<connection>` → its newest chain, in
/// the shape version 1 wrote (so an earlier meshes, after a rollback, still
/// reads every connection's current token), and in `chains` every chain of
/// the connections that have several, newest first (version 1 ignores it).
#[derive(Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    tokens: BTreeMap<String, Entry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    chains: BTreeMap<String, Vec<Entry>>,
}

type Tokens = BTreeMap<String, Vec<Entry>>;

/// The rotated tokens of every connection of a gateway, shared by the
/// adapters of every config version (a reload builds new adapters, which
/// must see what the old ones rotated), and the token caches they share.
pub struct TokenStore {
    dir: PathBuf,
    /// What this process last wrote: when the file cannot be written, the
    /// rotated token still serves from here.
    memory: Mutex<Tokens>,
    caches: super::oauth::SharedCaches,
    refreshes: tokio_util::task::TaskTracker,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// SHA-256 of `token`, in hex: what the file remembers of a configured token.
pub fn fingerprint(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenStore {
    /// The store of `<dir>/oauth-tokens.json`. An unreadable file is logged
    /// and ignored (the configured tokens are used, and the next rotation
    /// rewrites it).
    pub fn open(dir: &Path) -> Arc<Self> {
        let store = TokenStore {
            dir: dir.to_path_buf(),
            memory: Mutex::new(Tokens::new()),
            caches: super::oauth::SharedCaches::default(),
            refreshes: tokio_util::task::TaskTracker::new(),
        };
        if let Err(e) = store.read() {
            // serde_json's message names a position, never the content.
            tracing::warn!(file = %store.path().display(), error = %e, "ignoring unreadable OAuth token file");
        }
        Arc::new(store)
    }

    /// Whether this process can write the store's files (takes and drops
    /// the file lock): a CLI must not refresh what it cannot keep.
    pub fn check_writable(&self) -> std::io::Result<()> {
        lock_file(&self.dir.join(FILE_LOCK)).map(drop)
    }

    /// The handle one connection's token cache uses.
    pub fn slot(self: &Arc<Self>, key: String) -> TokenSlot {
        TokenSlot { store: self.clone(), key }
    }

    /// The token caches shared across config versions.
    pub(super) fn caches(&self) -> &super::oauth::SharedCaches {
        &self.caches
    }

    /// Token requests in flight, which a CLI waits for before it exits.
    pub(super) fn refreshes(&self) -> &tokio_util::task::TaskTracker {
        &self.refreshes
    }

    /// Waits for every token request in flight to finish and keep what it
    /// got: a command that exits while one runs would drop a rotated token.
    pub async fn settle(&self) {
        self.refreshes.close();
        self.refreshes.wait().await;
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The file's tokens as they are now (another process may have written).
    fn read(&self) -> Result<Tokens, String> {
        let bytes = match std::fs::read(self.path()) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tokens::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut doc = serde_json::from_slice::<Document>(&bytes).map_err(|e| e.to_string())?;
        let tokens = doc.tokens.into_iter().map(|(key, newest)| {
            let list = doc.chains.remove(&key).unwrap_or_else(|| vec![newest]);
            (key, list)
        });
        Ok(tokens.collect())
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The newest token of the chain that started from the configured token
    /// with fingerprint `configured`, in the file or in memory.
    fn current(&self, key: &str, configured: &str) -> Option<String> {
        let file = self.read().unwrap_or_else(|e| {
            // The refresh goes on from memory; the file may hold a newer token.
            tracing::warn!(file = %self.path().display(), error = %e, "cannot read the OAuth token file; refreshing with the token this process holds");
            Tokens::new()
        });
        let memory = self.memory();
        let found = |tokens: &Tokens| {
            tokens.get(key)?.iter().find(|e| e.configured_sha256 == configured).cloned()
        };
        let newest = match (found(&file), found(&memory)) {
            (Some(f), Some(m)) => Some(if m.serial > f.serial { m } else { f }),
            (f, m) => f.or(m),
        };
        newest.map(|e| e.refresh_token)
    }

    /// Records `token` for `key`'s chain `configured` and rewrites the file,
    /// under the file lock and from the file as it is now, so that the
    /// other process's entries survive.
    fn put(&self, key: &str, configured: &str, token: &str) -> std::io::Result<()> {
        let _lock = lock_file(&self.dir.join(FILE_LOCK))?;
        let mut tokens = self.read().unwrap_or_else(|_| self.memory().clone());
        let mut memory = self.memory();
        let serials = tokens.get(key).into_iter().chain(memory.get(key)).flatten();
        let serial = serials.map(|e| e.serial).max().unwrap_or(0) + 1;
        let entry = Entry {
            configured_sha256: configured.to_string(),
            refresh_token: token.to_string(),
            serial,
        };
        for copy in [&mut tokens, &mut *memory] {
            let chains = copy.entry(key.to_string()).or_default();
            chains.retain(|e| e.configured_sha256 != configured);
            chains.insert(0, entry.clone());
            chains.sort_by_key(|e| std::cmp::Reverse(e.serial));
            chains.truncate(CHAINS_KEPT);
        }
        drop(memory);
        let mut doc = Document { version: 2, ..Document::default() };
        for (key, list) in tokens {
            let Some(newest) = list.first() else { continue };
            doc.tokens.insert(key.clone(), newest.clone());
            if list.len() > 1 {
                doc.chains.insert(key, list);
            }
        }
        let bytes = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
        write_atomically(&self.path(), &bytes)
    }

    /// Blocks until this process holds `key`'s refresh lock.
    fn lock_connection(&self, key: &str) -> std::io::Result<std::fs::File> {
        let dir = self.dir.join(LOCKS);
        std::fs::create_dir_all(&dir)?;
        // Named by a hash: connection names need not be valid file names.
        lock_file(&dir.join(format!("{}.lock", &fingerprint(key)[..32])))
    }
}

/// Opens (creating, mode 0600) and exclusively locks `path`; the lock goes
/// with the returned file (also when the process dies).
fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    file.lock()?;
    Ok(file)
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
    /// The store it belongs to.
    pub(super) fn store(&self) -> &Arc<TokenStore> {
        &self.store
    }

    /// The connection's key (`<workspace>/<connection>`).
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The persisted token, if it descends from the configured token with
    /// this fingerprint (read from the file: another process may have
    /// rotated it).
    pub fn current(&self, configured: &str) -> Option<String> {
        self.store.current(&self.key, configured)
    }

    /// Takes the connection's refresh lock, waiting at most `wait` for
    /// another refresh (in this process or another) to end. `Ok(None)`: the
    /// lock file cannot be used (logged); the refresh goes on without it.
    pub async fn lock(&self, wait: Duration) -> Result<Option<ConnectionLock>, LockTimeout> {
        let (store, key) = (self.store.clone(), self.key.clone());
        let taking = tokio::task::spawn_blocking(move || store.lock_connection(&key));
        match tokio::time::timeout(wait, taking).await {
            Err(_) => Err(LockTimeout),
            Ok(Ok(Ok(file))) => Ok(Some(ConnectionLock { _file: file })),
            Ok(Ok(Err(e))) => {
                tracing::warn!(connection = %self.key, error = %e, "could not lock the OAuth token file; refreshing without the lock");
                Ok(None)
            }
            Ok(Err(e)) => {
                tracing::warn!(connection = %self.key, error = %e, "could not lock the OAuth token file; refreshing without the lock");
                Ok(None)
            }
        }
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

/// A connection's refresh lock, released when dropped.
#[derive(Debug)]
pub struct ConnectionLock {
    _file: std::fs::File,
}

/// Another refresh held the connection's lock for too long.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error(
    "another refresh of this connection's OAuth token (by the gateway or a CLI) did not end in time"
)]
pub struct LockTimeout;

#[cfg(test)]
#[path = "token_store_tests.rs"]
mod tests;
