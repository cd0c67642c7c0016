//! The key-id register of an output root (`OUT/key-ids.json`): which key wrote each month.
//!
//! A month's pseudonyms are those of one key. A run of a month with another key than before
//! would silently change every pseudonym of the month (and leave two sets of pseudonyms of the
//! same people in circulation), so it is refused unless the operator says `--new-key`, and the
//! change is recorded. The register holds key ids only (a fingerprint of the key, never the key).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use pseudagg_core::{Error, Month, Result};
use serde::{Deserialize, Serialize};

/// The register's file name in the output root.
pub const KEY_REGISTER: &str = "key-ids.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    /// Month (YYYY-MM) to the key id that writes it.
    months: BTreeMap<String, String>,
}

/// What the register says of a key for a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// No key is registered for the month yet.
    First,
    /// The key is the month's registered key.
    Same,
    /// `--new-key`: the key replaces the month's registered key (its id).
    Replaces(String),
}

/// The key-id register of one output root.
#[derive(Debug, Clone)]
pub struct KeyRegister {
    path: PathBuf,
}

impl KeyRegister {
    /// The register of the output root `root`.
    #[must_use]
    pub fn in_root(root: &Path) -> Self {
        Self {
            path: root.join(KEY_REGISTER),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<Register> {
        match fs::read(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Register::default()),
            Err(e) => Err(Error::io("read the key register", &self.path, e)),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Format {
                path: self.path.clone(),
                reason: format!(
                    "it is not a key register ({e}): restore it from the backup of the output root"
                ),
            }),
        }
    }

    /// The key id registered for `month`, if any.
    pub fn get(&self, month: Month) -> Result<Option<String>> {
        Ok(self.read()?.months.remove(&month.to_string()))
    }

    /// Checks `key_id` against the month's registered key: another key is refused (exit 2) unless
    /// `new_key` is given.
    pub fn check(&self, month: Month, key_id: &str, new_key: bool) -> Result<KeyCheck> {
        match self.get(month)? {
            None => Ok(KeyCheck::First),
            Some(id) if id == key_id => Ok(KeyCheck::Same),
            Some(id) if new_key => Ok(KeyCheck::Replaces(id)),
            Some(id) => Err(Error::Key(format!(
                "the key (id {key_id}) is not the key that wrote {month} before (id {id}, in \
                 {}): every pseudonym of the month would change. Nothing was read or written. \
                 Give the month's key (a production key is restored from its backup); to replace \
                 the month's key on purpose (it leaked, say), give --new-key: the change is \
                 recorded in the protocol",
                self.path.display()
            ))),
        }
    }

    /// Registers `key_id` as `month`'s key (after a successful run). The register is rewritten
    /// atomically, under a lock of the output root, so that runs of two months do not lose an
    /// entry.
    pub fn record(&self, month: Month, key_id: &str) -> Result<()> {
        let root = self.path.parent().unwrap_or(Path::new("."));
        let dir = File::open(root).map_err(|e| Error::io("open the output root", root, e))?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::io("lock the output root", root, e.into()))?;
        let mut register = self.read()?;
        if register.months.get(&month.to_string()).map(String::as_str) == Some(key_id) {
            return Ok(());
        }
        register.months.insert(month.to_string(), key_id.to_owned());
        let tmp = root.join(format!(".{KEY_REGISTER}.tmp"));
        let mut text = serde_json::to_string_pretty(&register).expect("serialises");
        text.push('\n');
        let written = File::create(&tmp)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
        written.map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| Error::io("replace", &self.path, e))?;
        dir.sync_all()
            .map_err(|e| Error::io("sync the output root", root, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_keeps_its_key_unless_a_new_key_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let r = KeyRegister::in_root(dir.path());
        let m = Month::new(2025, 3).unwrap();
        let april = Month::new(2025, 4).unwrap();
        assert_eq!(r.check(m, "aaaa", false).unwrap(), KeyCheck::First);
        r.record(m, "aaaa").unwrap();
        r.record(april, "bbbb").unwrap();
        assert_eq!(r.check(m, "aaaa", false).unwrap(), KeyCheck::Same);
        let e = r.check(m, "cccc", false).unwrap_err();
        assert!(matches!(e, Error::Key(_)), "{e}");
        assert!(e.to_string().contains("id aaaa"), "{e}");
        assert_eq!(
            r.check(m, "cccc", true).unwrap(),
            KeyCheck::Replaces("aaaa".into())
        );
        r.record(m, "cccc").unwrap();
        assert_eq!(r.get(m).unwrap().as_deref(), Some("cccc"));
        assert_eq!(
            r.get(april).unwrap().as_deref(),
            Some("bbbb"),
            "other months kept"
        );
        fs::write(r.path(), "{\"months\": 3}").unwrap();
        assert!(matches!(r.get(m), Err(Error::Format { .. })));
    }
}
