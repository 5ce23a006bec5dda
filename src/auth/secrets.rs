//! API keys at rest: keys set through `/api/config` are sealed with ChaCha20-Poly1305 under
//! a key derived (SHA-256) from the environment variable `[auth] secret_key_env` names, and
//! stored as `enc:v1:` + base64(nonce ‖ ciphertext). Without that variable keys are stored as
//! given and the server says so at start.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};

const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_BYTES: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the stored key is encrypted, and no secret key is set (the variable [auth] secret_key_env names)")]
    NoKey,
    #[error("the stored key cannot be decrypted with the secret key set now")]
    WrongKey,
    #[error("no randomness available")]
    NoRandomness,
}

/// Seals and opens stored API keys.
pub struct SecretBox {
    cipher: Option<ChaCha20Poly1305>,
}

impl SecretBox {
    /// Under the key in the variable `variable` (none when it is unset or empty).
    pub fn from_env(variable: &str) -> Self {
        match crate::config::Secret::from_env(variable) {
            Some(secret) => Self::with_key(secret.expose()),
            None => Self::plain(),
        }
    }

    pub fn with_key(secret: &str) -> Self {
        let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        Self {
            cipher: Some(ChaCha20Poly1305::new(Key::from_slice(&key))),
        }
    }

    /// Stores keys as they are.
    pub fn plain() -> Self {
        Self { cipher: None }
    }

    pub fn encrypts(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// `plain` as it is stored: sealed when there is a key.
    pub fn seal(&self, plain: &str) -> Result<String, SecretError> {
        let Some(cipher) = &self.cipher else {
            return Ok(plain.to_string());
        };
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::getrandom(&mut nonce).map_err(|_| SecretError::NoRandomness)?;
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| SecretError::NoRandomness)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ))
    }

    /// The key `stored` holds (a key stored before encryption was turned on is read as is).
    pub fn open(&self, stored: &str) -> Result<String, SecretError> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_string());
        };
        let cipher = self.cipher.as_ref().ok_or(SecretError::NoKey)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::WrongKey)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SecretError::WrongKey);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| SecretError::WrongKey)?;
        String::from_utf8(plain).map_err(|_| SecretError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_secret() {
        let sealer = SecretBox::with_key("correct horse");
        let stored = sealer.seal("sk-live-123").unwrap();
        assert!(SecretBox::is_sealed(&stored) && !stored.contains("sk-live-123"));
        assert_ne!(
            stored,
            sealer.seal("sk-live-123").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(sealer.open(&stored).unwrap(), "sk-live-123");
        assert_eq!(
            SecretBox::with_key("wrong").open(&stored),
            Err(SecretError::WrongKey)
        );
        assert_eq!(SecretBox::plain().open(&stored), Err(SecretError::NoKey));
        assert_eq!(sealer.open("sk-old-plain").unwrap(), "sk-old-plain");
        assert_eq!(SecretBox::plain().seal("k").unwrap(), "k");
    }
}
