//! The pseudonym derivation, written again from its specification (`shared/spec/inputs.md`):
//! period key = HKDF-SHA256(master key, salt empty, info `pseudagg:v1:{purpose}:{month}`, 32 bytes);
//! pseudonym = lower-case hex of HMAC-SHA256(period key, upper(trim(identifier))).

use std::path::Path;

use hmac::{KeyInit, Mac};
use pseudagg_core::{Error, Result};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub(crate) struct PeriodKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for PeriodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeriodKey(..)")
    }
}

/// Reads a key file: 64 hex characters, readable by its owner only. Returns the master key's id
/// (the first 8 bytes of its SHA-256, in hex) and the period key.
pub(crate) fn load(path: &Path, purpose: &str, month: &str) -> Result<(String, PeriodKey)> {
    let bad = |reason: &str| {
        Error::Key(format!(
            "the key file {} {reason}",
            pseudagg_core::key_path_shown(path)
        ))
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(bad(
                "is readable by others than its owner; run `chmod 600` on it",
            ));
        }
    }
    let text =
        Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?);
    let hex_text = text.trim();
    let mut master = Zeroizing::new([0u8; 32]);
    if hex_text.len() != 64 || hex::decode_to_slice(hex_text, master.as_mut_slice()).is_err() {
        return Err(bad("must hold exactly 64 hex characters (a 32-byte key)"));
    }
    let id = hex::encode(&Sha256::digest(master.as_slice())[..8]);
    let info = format!("pseudagg:v1:{purpose}:{month}");
    let mut period = Zeroizing::new([0u8; 32]);
    hkdf::Hkdf::<Sha256>::new(None, master.as_slice())
        .expand(info.as_bytes(), period.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA256 length");
    Ok((id, PeriodKey(period)))
}

impl PeriodKey {
    /// The pseudonym's 32 bytes, before hex.
    pub fn raw_pseudonym(&self, identifier: &str) -> [u8; 32] {
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(self.0.as_slice()).expect("any key length");
        mac.update(identifier.trim().to_uppercase().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixed vector of `testdata/vectors/pseudonym_vector.py` (Python's standard library).
    #[test]
    fn fixed_vector_from_an_independent_implementation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let bytes: Vec<u8> = (0..32).collect();
        std::fs::write(&path, hex::encode(bytes)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let (id, key) = load(&path, "vkb", "2025-03").unwrap();
        assert_eq!(id, "630dcd2966c43366");
        assert_eq!(
            hex::encode(key.raw_pseudonym(" 325d123456 ")),
            "78f0399c47c50cb7fe24900a9391b415a79563dd14e7aa7d46e30e178974358e"
        );
    }
}
