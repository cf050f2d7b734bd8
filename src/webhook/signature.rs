//! HMAC-SHA256 checks shared by the forges' signature schemes.

use crate::domain::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// True when `expected` is the HMAC-SHA256 of `parts` (concatenated) under one of `keys`.
///
/// `Mac::verify_slice` compares in constant time. Every key is tried even after a match, so
/// the time taken does not tell which key of a rotation matched.
pub fn hmac_matches_any<'a>(
    keys: impl IntoIterator<Item = &'a [u8]>,
    parts: &[&[u8]],
    expected: &[u8],
) -> bool {
    let mut matched = false;
    for key in keys {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
        for part in parts {
            mac.update(part);
        }
        matched |= mac.verify_slice(expected).is_ok();
    }
    matched
}

/// The HMAC-SHA256 of `body` under `key`, as lowercase hex: what forges put in their headers.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex-encoded HMAC-SHA256 of `body` against the configured secrets.
pub fn verify_hex(secrets: &[Secret], body: &[u8], signature_hex: &str) -> bool {
    let Ok(expected) = hex::decode(signature_hex.trim()) else {
        return false;
    };
    hmac_matches_any(
        secrets.iter().map(|secret| secret.expose().as_bytes()),
        &[body],
        &expected,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in GitHub's "Validating webhook deliveries".
    #[test]
    fn github_documented_vector() {
        let secret = Secret::new("It's a Secret to Everybody");
        let signature = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_hex(&[secret], b"Hello, World!", signature));
    }

    #[test]
    fn any_secret_of_a_rotation_verifies() {
        let secrets = [Secret::new("old"), Secret::new("new")];
        let signature = hmac_hex(b"new", b"body");
        assert!(verify_hex(&secrets, b"body", &signature));
        assert!(!verify_hex(&secrets, b"other body", &signature));
        assert!(!verify_hex(&secrets, b"body", "not hex"));
        assert!(!verify_hex(&[], b"body", &signature));
    }
}
