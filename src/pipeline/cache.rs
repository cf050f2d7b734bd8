//! Cache keys: `${hash:FILE…}` pieces, which stand for the contents of files of the
//! checkout, among text with the run's `${VAR}`s.

use std::path::Path;

use sha2::{Digest, Sha256};

const OPEN: &str = "${hash:";

/// One piece of a cache key as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPiece {
    /// Text, with `${VAR}` references of its own.
    Text(String),
    /// The files whose contents the piece stands for, relative to the checkout.
    Hash(Vec<String>),
}

/// Splits a key into text and `${hash:…}` pieces; a hash of no file, or of a path that
/// leaves the checkout, is an error.
pub fn pieces(key: &str) -> Result<Vec<KeyPiece>, String> {
    let mut pieces = Vec::new();
    let mut rest = key;
    while let Some(at) = rest.find(OPEN) {
        if at > 0 {
            pieces.push(KeyPiece::Text(rest[..at].to_owned()));
        }
        let after = &rest[at + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(format!("`{OPEN}` without a closing `}}` in `{key}`"));
        };
        let files: Vec<String> = after[..end].split_whitespace().map(str::to_owned).collect();
        if files.is_empty() {
            return Err("`${hash:}` names no file".into());
        }
        for file in &files {
            if file.starts_with('/') || file.split('/').any(|part| part == "..") {
                return Err(format!(
                    "`${{hash:…}}` hashes files of the checkout; `{file}` is not a relative path inside it"
                ));
            }
        }
        pieces.push(KeyPiece::Hash(files));
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(KeyPiece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// The key back from its pieces, as written.
pub fn join(pieces: &[KeyPiece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            KeyPiece::Text(text) => text.clone(),
            KeyPiece::Hash(files) => format!("{OPEN}{}}}", files.join(" ")),
        })
        .collect()
}

/// The key with each `${hash:…}` replaced by the first 16 hex digits of a SHA-256 over the
/// named files of `checkout` (name and contents of each; a file that is missing counts as
/// missing, so adding it changes the key).
pub fn resolve(key: &str, checkout: &Path) -> Result<String, String> {
    let mut out = String::with_capacity(key.len());
    for piece in pieces(key)? {
        match piece {
            KeyPiece::Text(text) => out.push_str(&text),
            KeyPiece::Hash(files) => {
                let mut digest = Sha256::new();
                for file in &files {
                    digest.update(file.as_bytes());
                    digest.update([0]);
                    match std::fs::read(checkout.join(file)) {
                        Ok(bytes) => {
                            digest.update(b"present\0");
                            digest.update((bytes.len() as u64).to_le_bytes());
                            digest.update(&bytes);
                        }
                        Err(_) => digest.update(b"missing\0"),
                    }
                }
                out.push_str(&hex::encode(&digest.finalize()[..8]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_into_text_and_hashes_and_resolve_from_the_checkout() {
        let key = "cargo-${GANTRY_BRANCH}-${hash:Cargo.lock rust-toolchain}";
        let split = pieces(key).unwrap();
        assert_eq!(
            split,
            [
                KeyPiece::Text("cargo-${GANTRY_BRANCH}-".into()),
                KeyPiece::Hash(vec!["Cargo.lock".into(), "rust-toolchain".into()])
            ]
        );
        assert_eq!(join(&split), key);
        assert!(pieces("${hash:../secret}").is_err());
        assert!(pieces("${hash: }").is_err());

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.lock"), "v1").unwrap();
        let first = resolve("k-${hash:Cargo.lock}", dir.path()).unwrap();
        assert!(first.starts_with("k-") && first.len() == 18, "{first}");
        assert_eq!(resolve("k-${hash:Cargo.lock}", dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("Cargo.lock"), "v2").unwrap();
        assert_ne!(resolve("k-${hash:Cargo.lock}", dir.path()).unwrap(), first);
    }
}
