//! The session key and what is made from it: signed cookie values, tokens encrypted at
//! rest, and fresh random secrets.
//!
//! One master key (`auth.session_key`, or one generated and kept in the store) gives two
//! keys by HMAC with a label each, so signing and encryption never share a key. A cookie
//! signed with another master key, or a token encrypted with one, is refused.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Name of the generated master key in the store.
pub const STORED_KEY_NAME: &str = "session";
const NONCE_BYTES: usize = 24;

#[derive(Clone)]
pub struct Keys {
    signing: [u8; 32],
    cipher: XChaCha20Poly1305,
}

impl Keys {
    pub fn derive(master: &[u8]) -> Self {
        let signing = subkey(master, b"gantry cookie signing");
        let encryption = subkey(master, b"gantry token encryption");
        Self {
            signing,
            cipher: XChaCha20Poly1305::new(&encryption.into()),
        }
    }

    /// `value.signature`, for a cookie.
    pub fn sign(&self, value: &str) -> String {
        let signature = hmac(&self.signing, value.as_bytes())
            .finalize()
            .into_bytes();
        format!("{value}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The value `signed` carries, if this key signed it (compared in constant time).
    pub fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, signature) = signed.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        hmac(&self.signing, value.as_bytes())
            .verify_slice(&signature)
            .ok()?;
        Some(value)
    }

    /// `plain` encrypted and authenticated, as text for a store column.
    pub fn encrypt(&self, plain: &str) -> anyhow::Result<String> {
        let mut nonce = [0_u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).context("reading random bytes")?;
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), plain.as_bytes())
            .map_err(|_| anyhow::anyhow!("encrypting a token failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend(sealed);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What [`Keys::encrypt`] sealed, if this key sealed it and nothing changed it.
    pub fn decrypt(&self, text: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(<[u8; NONCE_BYTES]>::try_from(nonce).ok()?),
                sealed,
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

fn subkey(master: &[u8], label: &[u8]) -> [u8; 32] {
    hmac(master, label).finalize().into_bytes().into()
}

/// HMAC-SHA256 of `data` under `key`, not yet finalised.
fn hmac(key: &[u8], data: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac
}

/// 32 random bytes as URL-safe text: session secrets, CSRF tokens, generated keys.
pub fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).context("reading random bytes")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// How a secret is looked up in the store without the store holding it.
pub fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_holds_only_under_its_own_key() {
        let keys = Keys::derive(b"one key that is long enough to use");
        let other = Keys::derive(b"another key that is long enough too");
        let signed = keys.sign("abc");
        assert_eq!(keys.verify(&signed), Some("abc"));
        assert_eq!(other.verify(&signed), None);
        assert_eq!(keys.verify("abd.".to_owned().as_str()), None);
        let tampered = signed.replacen("abc", "abd", 1);
        assert_eq!(keys.verify(&tampered), None);
    }

    #[test]
    fn tokens_decrypt_only_under_their_key_and_unchanged() {
        let keys = Keys::derive(b"one key that is long enough to use");
        let other = Keys::derive(b"another key that is long enough too");
        let sealed = keys.encrypt("gho_token").unwrap();
        assert!(!sealed.contains("gho_token"));
        assert_eq!(keys.decrypt(&sealed).as_deref(), Some("gho_token"));
        assert_eq!(other.decrypt(&sealed), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        assert_eq!(keys.decrypt(&URL_SAFE_NO_PAD.encode(bytes)), None);
        assert_eq!(keys.decrypt("short"), None);
    }
}
