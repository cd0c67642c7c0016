use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use pseudagg_core::{Error, Result};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The HKDF info of the protocol chain key (see [`MasterKey::protocol_chain_key`]).
pub const PROTOCOL_CHAIN_INFO: &str = "pseudagg:v1:protocol-chain";

/// The largest key file we read: a key file is 65 bytes; anything much larger is not one.
const MAX_KEY_FILE_LEN: u64 = 256;

/// The master key: 32 secret bytes. Zeroized on drop; its `Debug` shows only the key id.
pub struct MasterKey {
    bytes: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id())
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// The public id of a key: the first 16 hex characters of SHA-256 of the key bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl MasterKey {
    /// A key from raw bytes (tests and derived tooling; real keys come from a key file).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes: Zeroizing::new(bytes),
        }
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The key id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        let digest = Sha256::digest(self.bytes.as_slice());
        KeyId(hex::encode(&digest[..8]))
    }

    /// The key that seals the run protocol's chain (HMAC-SHA256 over each record): HKDF-SHA256
    /// of this key with an empty salt and the info [`PROTOCOL_CHAIN_INFO`]. No pseudonym period
    /// key can equal it (their infos end in `:{YYYY-MM}`), so even a protocol keyed with the
    /// master key file says nothing about any pseudonym.
    #[must_use]
    pub fn protocol_chain_key(&self) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<Sha256>::new(None, self.bytes.as_slice());
        let mut key = Zeroizing::new([0u8; 32]);
        hk.expand(PROTOCOL_CHAIN_INFO.as_bytes(), key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    /// Reads a key file, refusing one that group or others may read, of the wrong length or not hex.
    pub fn load(path: &Path) -> Result<Self> {
        let shown = pseudagg_core::key_path_shown(path);
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Key(format!(
                "key file {shown} does not exist. A production key is restored from its backup, \
                 never made anew (a new key changes every pseudonym); for a test key, see \
                 `pseudagg keygen --help`"
            )),
            _ => Error::Key(format!("cannot read key file {shown}: {e}")),
        })?;
        if !meta.is_file() {
            return Err(Error::Key(format!(
                "key file {shown} is not a regular file"
            )));
        }
        check_mode(path, &meta)?;
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(Error::Key(format!(
                "key file {shown} is {} bytes long; a key file holds 64 hex characters and a newline",
                meta.len()
            )));
        }
        let mut text = Zeroizing::new(Vec::with_capacity(80));
        fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut text))
            .map_err(|e| Error::Key(format!("cannot read key file {shown}: {e}")))?;
        let key =
            Self::parse(&text).map_err(|why| Error::Key(format!("key file {shown} {why}")))?;
        if key.is_weak() {
            return Err(Error::Key(format!(
                "key file {shown} holds a key with too few different bytes (all zeros, a repeated \
                 pattern, or typed by hand): it could be guessed. Use a key from `pseudagg keygen`"
            )));
        }
        Ok(key)
    }

    /// A key with fewer than 16 different byte values: 32 random bytes have about 30, and fewer
    /// than 16 happen by chance with a probability below 10^-12.
    fn is_weak(&self) -> bool {
        let mut seen = [false; 256];
        for &b in self.bytes.iter() {
            seen[b as usize] = true;
        }
        seen.iter().filter(|&&x| x).count() < 16
    }

    /// Parses the key file's content: 64 lower-case hex characters, optionally followed by a newline.
    fn parse(text: &[u8]) -> std::result::Result<Self, String> {
        let body = text
            .strip_suffix(b"\n")
            .map_or(text, |b| b.strip_suffix(b"\r").unwrap_or(b));
        if body.len() != 64 {
            return Err(format!(
                "holds {} characters before the newline; a key is exactly 64 hex characters (32 bytes)",
                body.len()
            ));
        }
        if !body
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Err("is not lower-case hex; a key is 64 characters of 0-9 and a-f".to_owned());
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(body, bytes.as_mut_slice())
            .map_err(|_| "is not lower-case hex".to_owned())?;
        Ok(Self { bytes })
    }
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let shown = pseudagg_core::key_path_shown(path);
        return Err(Error::Key(format!(
            "key file {shown} has mode {mode:04o}, so group or others may read it; \
             only its owner may: run `chmod 600` on it"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path, _meta: &fs::Metadata) -> Result<()> {
    Ok(())
}

/// Writes a new random key to `path` with mode 0600 and returns its id. Never overwrites a file.
pub fn generate_key_file(path: &Path) -> Result<KeyId> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut_slice())
        .map_err(|e| Error::Key(format!("the operating system gave no random bytes: {e}")))?;
    let key = MasterKey { bytes };

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::Key(format!(
            "{} already exists; pseudagg never overwrites a key (move the old one away first)",
            path.display()
        )),
        _ => Error::io("create key file", path, e),
    })?;
    let mut text = Zeroizing::new(hex::encode(key.bytes()));
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    text.zeroize();
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(Error::io("write key file", path, e));
    }
    Ok(key.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_key(dir: &Path, content: &[u8], mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("key");
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn generated_key_loads_and_has_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let id = generate_key_file(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = MasterKey::load(&path).unwrap();
        assert_eq!(key.id(), id);
        assert_eq!(id.as_str().len(), 16);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn keygen_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, "precious").unwrap();
        let err = generate_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn key_id_is_sha256_prefix() {
        // sha256 of 32 zero bytes is 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925
        assert_eq!(
            MasterKey::from_bytes([0; 32]).id().as_str(),
            "66687aadf862bd77"
        );
    }

    #[test]
    fn refuses_group_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key(dir.path(), &[b'a'; 64], 0o640);
        let err = MasterKey::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("mode 0640") && err.contains("chmod 600"),
            "{err}"
        );
    }

    #[test]
    fn refuses_wrong_length_and_non_hex_without_echoing_it() {
        let dir = tempfile::tempdir().unwrap();
        let short = write_key(dir.path(), b"abcdef\n", 0o600);
        let err = MasterKey::load(&short).unwrap_err().to_string();
        assert!(err.contains("64 hex"), "{err}");
        assert!(!err.contains("abcdef"), "{err}");

        let secret = "g".repeat(64);
        let bad = write_key(dir.path(), secret.as_bytes(), 0o600);
        let err = MasterKey::load(&bad).unwrap_err().to_string();
        assert!(err.contains("not lower-case hex"), "{err}");
        assert!(!err.contains(&secret), "{err}");

        let upper = write_key(dir.path(), "AB".repeat(32).as_bytes(), 0o600);
        assert!(MasterKey::load(&upper).is_err());
    }

    #[test]
    fn accepts_key_with_and_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let hexkey = hex::encode((0u8..32).map(|i| i * 7 + 3).collect::<Vec<u8>>());
        let a = write_key(dir.path(), format!("{hexkey}\n").as_bytes(), 0o600);
        let ida = MasterKey::load(&a).unwrap().id();
        let b = write_key(dir.path(), hexkey.as_bytes(), 0o400);
        assert_eq!(MasterKey::load(&b).unwrap().id(), ida);
    }

    /// Issue 18: an all-zero or hand-typed key was accepted.
    #[test]
    fn refuses_low_entropy_keys() {
        let dir = tempfile::tempdir().unwrap();
        for weak in [
            "0".repeat(64),
            "ab".repeat(32),
            "0123456789abcdef".repeat(4),
        ] {
            let path = write_key(dir.path(), weak.as_bytes(), 0o600);
            let err = MasterKey::load(&path).unwrap_err().to_string();
            assert!(err.contains("too few different bytes"), "{err}");
            assert!(!err.contains(&weak), "{err}");
        }
    }

    /// Issue 18: the key's hex given as `--key-file` was printed in the error.
    #[test]
    fn a_key_given_as_its_path_is_never_echoed() {
        let hexkey = hex::encode((0u8..32).map(|i| i * 7 + 3).collect::<Vec<u8>>());
        let err = MasterKey::load(Path::new(&hexkey)).unwrap_err().to_string();
        assert!(!err.contains(&hexkey), "{err}");
        assert!(!err.contains(&hexkey[..32]), "{err}");
        assert!(err.contains("withheld"), "{err}");
        // An ordinary path is shown.
        let err = MasterKey::load(Path::new("/secure/vkb.key"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/secure/vkb.key") && !err.contains("keygen --out"),
            "{err}"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let key = MasterKey::from_bytes([0xab; 32]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"));
    }
}
