//! The users file (`[auth] users_file`): each user's name, role and the SHA-256 of their
//! token. Tokens are 256 random bits, shown once by `okcvm user add` and never stored; a
//! presented token is hashed and compared with every stored hash in constant time.
//!
//! The file is TOML (`[[users]]` tables), or JSON when its name ends in `.json`; it is
//! written whole to a temporary file and renamed, with mode 0600. A running server reads it
//! again within [`RELOAD_EVERY`] of a change, so adding or removing a user needs no restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Role;

/// How often a running server looks at the users file.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
const MAX_NAME_BYTES: usize = 64;
const TOKEN_PREFIX: &str = "okcvm_";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read the users file {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("cannot write the users file {path}: {error}")]
    Write { path: PathBuf, error: String },
    #[error("{0}")]
    Invalid(String),
    #[error("there is already a user named {0}")]
    Exists(String),
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub token_sha256: String,
    #[serde(default)]
    pub created_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserRecord>,
}

/// A user name: 1–64 bytes of letters, digits and `.` `_` `-` `@` `+`, not starting with
/// `.` (e-mail addresses from a proxy fit).
pub fn check_name(name: &str) -> Result<(), UsersError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@' | b'+'));
    if valid {
        Ok(())
    } else {
        Err(UsersError::Invalid(format!(
            "{name:?} is not a valid user name: 1-{MAX_NAME_BYTES} letters, digits, '.', '_', \
             '-', '@' or '+', not starting with '.'"
        )))
    }
}

/// Whether two secrets are equal, in time that depends on neither (their hashes are
/// compared).
pub fn same_secret(expected: &str, given: &str) -> bool {
    hash(expected).ct_eq(&hash(given)).into()
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh token: `okcvm_` and 256 random bits in URL-safe base64.
pub fn new_token() -> Result<String, UsersError> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| UsersError::Invalid(format!("no randomness available: {e}")))?;
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// The users in `path`; a missing file has none.
pub fn read(path: &Path) -> Result<Vec<UserRecord>, UsersError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(UsersError::Read {
                path: path.to_path_buf(),
                error: e.to_string(),
            })
        }
    };
    let parsed: UsersFile = if is_json(path) {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    }
    .map_err(|error| UsersError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    for user in &parsed.users {
        check_name(&user.name)?;
        if decode_hash(&user.token_sha256).is_none() {
            return Err(UsersError::Invalid(format!(
                "user {} in {}: token_sha256 must be 64 hex digits",
                user.name,
                path.display()
            )));
        }
    }
    Ok(parsed.users)
}

fn write(path: &Path, users: Vec<UserRecord>) -> Result<(), UsersError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |error: String| UsersError::Write {
        path: path.to_path_buf(),
        error,
    };
    let file = UsersFile { users };
    let text = if is_json(path) {
        serde_json::to_string_pretty(&file).map_err(|e| failed(e.to_string()))?
    } else {
        toml::to_string(&file).map_err(|e| failed(e.to_string()))?
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    }
    let temporary = path.with_extension("tmp");
    // A leftover temporary file could have wider permissions: start from a new one.
    match std::fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e.to_string())),
        _ => {}
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| failed(e.to_string()))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| failed(e.to_string()))?;
    std::fs::rename(&temporary, path).map_err(|e| failed(e.to_string()))
}

/// Adds user `name` and returns their token (the only time it is seen).
pub fn add(path: &Path, name: &str, role: Role) -> Result<String, UsersError> {
    check_name(name)?;
    let mut users = read(path)?;
    if users.iter().any(|user| user.name == name) {
        return Err(UsersError::Exists(name.to_string()));
    }
    let token = new_token()?;
    users.push(UserRecord {
        name: name.to_string(),
        role,
        token_sha256: hex::encode(hash(&token)),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    write(path, users)?;
    Ok(token)
}

/// Removes user `name`; whether there was one. Their records stay in the store.
pub fn remove(path: &Path, name: &str) -> Result<bool, UsersError> {
    let mut users = read(path)?;
    let before = users.len();
    users.retain(|user| user.name != name);
    if users.len() == before {
        return Ok(false);
    }
    write(path, users)?;
    Ok(true)
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

/// The users a running server knows, kept current with the file.
pub struct Users {
    table: RwLock<Vec<(String, Role, [u8; 32])>>,
}

impl Users {
    pub fn empty() -> Self {
        Self {
            table: RwLock::new(Vec::new()),
        }
    }

    /// Loads `path` and re-reads it on a background thread whenever it changes (until the
    /// returned handle is dropped). A file that becomes unreadable keeps the last good table.
    pub fn watch(path: &Path) -> Result<Arc<Self>, UsersError> {
        let users = Arc::new(Self::empty());
        users.replace(read(path)?);
        let weak: Weak<Self> = Arc::downgrade(&users);
        let path = path.to_path_buf();
        let mut seen = modified(&path);
        std::thread::Builder::new()
            .name("okcvm-users".into())
            .spawn(move || loop {
                std::thread::sleep(RELOAD_EVERY);
                let Some(users) = weak.upgrade() else { return };
                let now = modified(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                match read(&path) {
                    Ok(records) => {
                        tracing::info!(users = records.len(), "users file changed; reloaded");
                        users.replace(records);
                    }
                    Err(error) => tracing::error!(%error, "users file changed but cannot be read; keeping the previous users"),
                }
            })
            .map_err(|e| UsersError::Read {
                path: PathBuf::from("(users file watcher)"),
                error: e.to_string(),
            })?;
        Ok(users)
    }

    fn replace(&self, records: Vec<UserRecord>) {
        let table = records
            .into_iter()
            .filter_map(|user| {
                decode_hash(&user.token_sha256).map(|hash| (user.name, user.role, hash))
            })
            .collect();
        if let Ok(mut current) = self.table.write() {
            *current = table;
        }
    }

    pub fn count(&self) -> usize {
        self.table.read().map_or(0, |table| table.len())
    }

    /// The user holding `token`. Every stored hash is compared, in constant time each.
    pub fn find_by_token(&self, token: &str) -> Option<(String, Role)> {
        let wanted = hash(token);
        let table = self.table.read().ok()?;
        let mut found = None;
        for (name, role, stored) in table.iter() {
            if bool::from(stored.ct_eq(&wanted)) {
                found = Some((name.clone(), *role));
            }
        }
        found
    }
}

/// What tells a changed file apart: a rename gives a new inode, a rewrite a new time or size.
fn modified(path: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}
