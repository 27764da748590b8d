//! ed25519 keys for signing manifests, and their text files.
//!
//! A key file is one line: `tickscore-ed25519-public <64 hex digits>` or
//! `tickscore-ed25519-secret <64 hex digits>` (the 32-byte seed). The tag
//! keeps a secret key from being mistaken for a public one. A key's id is
//! the first 16 hex digits of sha256 of the public key bytes.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use super::manifest::{is_lower_hex, Manifest, Signature};

const PUBLIC_TAG: &str = "tickscore-ed25519-public";
const SECRET_TAG: &str = "tickscore-ed25519-secret";

/// Why a key could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The text is not a key of the expected kind.
    #[error("not a tickscore {expected} key: {reason}")]
    Format {
        /// `public` or `secret`.
        expected: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The bytes are not a valid ed25519 public key.
    #[error("invalid ed25519 public key")]
    InvalidPoint,
    /// The operating system's random source failed.
    #[error("no randomness for key generation: {0}")]
    Random(String),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if !is_lower_hex(s, 2 * N) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn parse_tagged<const N: usize>(
    text: &str,
    tag: &str,
    expected: &'static str,
) -> Result<[u8; N], KeyError> {
    let fail = |reason: &str| KeyError::Format {
        expected,
        reason: reason.to_owned(),
    };
    let line = text.trim();
    let (found_tag, body) = line
        .split_once(' ')
        .ok_or_else(|| fail("expected '<tag> <hex>'"))?;
    if found_tag != tag {
        return Err(fail(&format!("tag {found_tag:?}, expected {tag:?}")));
    }
    unhex::<N>(body.trim()).ok_or_else(|| fail(&format!("expected {} lowercase hex digits", 2 * N)))
}

fn read(path: &Path) -> Result<String, KeyError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > 4096 {
        return Err(KeyError::Format {
            expected: "public or secret",
            reason: format!(
                "{} is {} bytes; a key file is one line",
                path.display(),
                meta.len()
            ),
        });
    }
    std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// A public key trusted to sign manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    id: String,
}

impl PublicKey {
    fn new(key: ed25519_dalek::VerifyingKey) -> PublicKey {
        let id = hex(&Sha256::digest(key.as_bytes())[..8]);
        PublicKey { key, id }
    }

    /// Parse a public key file's text.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let bytes = parse_tagged::<32>(text, PUBLIC_TAG, "public")?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPoint)?;
        Ok(PublicKey::new(key))
    }

    /// Read a public key file.
    pub fn read(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
        PublicKey::parse(&read(path.as_ref())?)
    }

    /// Read every `*.pub` file in a directory (sorted by name).
    pub fn read_dir(dir: impl AsRef<Path>) -> Result<Vec<PublicKey>, KeyError> {
        let dir = dir.as_ref();
        let io = |source| KeyError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?
            .into_iter()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pub"))
            .collect();
        paths.sort();
        paths.iter().map(PublicKey::read).collect()
    }

    /// The key id: first 16 hex digits of sha256(public key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key file text.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", hex(self.key.as_bytes()))
    }

    /// Whether `signature` is this key's signature of `manifest`.
    pub(crate) fn verifies(&self, manifest: &Manifest, signature: &Signature) -> bool {
        let Some(bytes) = unhex::<64>(&signature.ed25519) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        self.key.verify(&manifest.signing_bytes(), &sig).is_ok()
    }
}

/// A secret key that signs manifests. Keep its file private.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        f.debug_struct("SigningKey")
            .field("key_id", &self.public().id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SigningKey::from_seed(seed))
    }

    /// The key with this 32-byte seed (for tests and reproducible fixtures).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// Parse a secret key file's text.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        Ok(SigningKey::from_seed(parse_tagged::<32>(
            text, SECRET_TAG, "secret",
        )?))
    }

    /// Read a secret key file.
    pub fn read(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
        SigningKey::parse(&read(path.as_ref())?)
    }

    /// The key file text (secret!).
    pub fn to_text(&self) -> String {
        format!("{SECRET_TAG} {}\n", hex(self.key.as_bytes()))
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey::new(self.key.verifying_key())
    }

    /// Sign `manifest` in place (replacing any signature).
    pub fn sign(&self, manifest: &mut Manifest) {
        let sig = self.key.sign(&manifest.signing_bytes());
        manifest.signature = Some(Signature {
            key_id: self.public().id,
            ed25519: hex(&sig.to_bytes()),
        });
    }
}

/// sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_are_tagged() {
        let k = SigningKey::from_seed([7; 32]);
        let again = SigningKey::parse(&k.to_text()).expect("secret parses");
        assert_eq!(again.public(), k.public());
        assert_eq!(
            PublicKey::parse(&k.public().to_text()).ok(),
            Some(k.public())
        );
        // A secret key is not accepted where a public one is expected.
        assert!(matches!(
            PublicKey::parse(&k.to_text()),
            Err(KeyError::Format { .. })
        ));
        assert_eq!(k.public().id().len(), 16);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
