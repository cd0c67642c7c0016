//! The run protocol (seed 004): one JSON line per command that read or wrote personal or
//! pseudonymised data, hash-chained so that an edited, removed, inserted or reordered record is
//! found, kept at least 12 months and removed at the latest at the end of the calendar year after
//! the record's year.
//!
//! Each record holds the SHA-256 of the previous line (`prev`); the first record of a protocol holds
//! 64 zeros. A purge rewrites the file as: a `checkpoint` record (whose `prev` is the hash of the
//! last removed line, so the first kept record still links to it), the kept records unchanged, and a
//! `purge` record that holds the SHA-256 of the checkpoint line, so the checkpoint cannot be edited
//! either.
//!
//! A hash chain alone cannot tell whether the newest records were cut off or the last one edited:
//! `protocol verify` prints the head hash, and `--head` compares it with one kept elsewhere (the
//! scheduler's log, say).
//!
//! A hash chain alone can be recomputed by anyone who can write the file. A protocol is therefore
//! sealed with a protocol key (`--protocol-key`, a key file like the master key's, from which
//! HKDF derives the chain key): every record then ends in `"mac":"hmac-sha256:{key id}:{hex}"`,
//! the HMAC-SHA256 of the record's line without that field. Once sealed, every later record is
//! sealed and the protocol's last record always is, so the chain of hashes ties every earlier
//! line to a MAC that only the key's holder can make. A protocol written before it had a key is
//! sealed once by `protocol seal`; a sealed protocol is never written or trusted without its key.
//!
//! Records hold no personal value and no key: file names, hashes, counts, the key id. The protocol
//! serves data-protection control only; nothing here counts or reports per operator.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Months, NaiveDate, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use pseudagg_core::{Error, Month, Result};
use rand::SeedableRng;
use rand::seq::index::sample;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev` of the first record of a protocol.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A file read or written, by name and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub path: String,
    pub sha256: String,
}

/// What a command tells the protocol. The time, sequence number and chain are added on append.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `run` (a command on data), `checkpoint`, `purge`, `control-sample`.
    pub kind: String,
    pub operator: String,
    /// The command: `pseudonymise`, `report`, `verify`, `sample`, `run`, ...
    pub command: String,
    /// The pipeline or report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// `ok`, `check-failed` or `error`.
    pub outcome: String,
    /// Kind-specific facts (a purge's counts, a control sample's draw), never personal data.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// A record as stored: the entry plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// UTC, RFC 3339.
    pub time: String,
    #[serde(flatten)]
    pub entry: Entry,
    pub prev: String,
    /// `hmac-sha256:{key id}:{hex}` in a sealed protocol (see the module's documentation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

impl Record {
    /// The record's day.
    #[must_use]
    pub fn date(&self) -> Option<NaiveDate> {
        DateTime::parse_from_rfc3339(&self.time)
            .ok()
            .map(|t| t.with_timezone(&Utc).date_naive())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The key that seals a protocol's chain: its id (the key file's key id, shown in every MAC) and
/// the chain key derived from it. Its `Debug` shows only the id.
#[derive(Clone)]
pub struct ChainKey {
    id: String,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

const MAC_PREFIX: &str = "hmac-sha256:";
const MAC_FIELD: &str = ",\"mac\":\"";

impl ChainKey {
    /// A chain key from the key file's id and the derived chain key bytes
    /// (`MasterKey::protocol_chain_key` in `pseudagg-keys`).
    #[must_use]
    pub fn new(id: &str, chain_key: &[u8; 32]) -> Self {
        Self {
            id: id.to_owned(),
            mac: Hmac::<Sha256>::new_from_slice(chain_key).expect("HMAC takes a key of any length"),
        }
    }

    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    fn tag(&self, unsealed: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(unsealed.as_bytes());
        format!(
            "{MAC_PREFIX}{}:{}",
            self.id,
            hex::encode(mac.finalize().into_bytes())
        )
    }

    fn holds(&self, unsealed: &str, tag_hex: &str) -> bool {
        let Ok(tag) = hex::decode(tag_hex) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(unsealed.as_bytes());
        mac.verify_slice(&tag).is_ok()
    }
}

/// The line of a record: its JSON, sealed when a key is given.
fn line_of(mut record: Record, key: Option<&ChainKey>) -> String {
    record.mac = None;
    let text = serde_json::to_string(&record).expect("a record serialises");
    match key {
        None => text,
        Some(k) => {
            let tag = k.tag(&text);
            format!("{}{MAC_FIELD}{tag}\"}}", &text[..text.len() - 1])
        }
    }
}

/// A sealed line's MAC field (key id and hex tag) and the line as it was before sealing; `None`
/// when the line does not end in a MAC field.
fn unseal(line: &str) -> Option<(&str, &str, String)> {
    let at = line.rfind(MAC_FIELD)?;
    let field = line[at + MAC_FIELD.len()..].strip_suffix("\"}")?;
    let (id, tag) = field.strip_prefix(MAC_PREFIX)?.split_once(':')?;
    Some((id, tag, format!("{}}}", &line[..at])))
}

/// The protocol file, locked for the time of one operation.
#[derive(Debug)]
pub struct Protocol {
    path: PathBuf,
    key: Option<ChainKey>,
}

/// One line of the protocol, as read.
struct Line {
    number: usize,
    text: String,
}

/// `O_NOFOLLOW`: the protocol, its lock and its purge file are never opened through a symbolic
/// link, which could point the records at `/dev/null` or at another file.
fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Opens with `options`, never through a link, and refuses anything but a regular file.
fn open_regular(path: &Path, options: &mut OpenOptions, action: &'static str) -> Result<File> {
    let f = options.custom_flags(no_follow()).open(path).map_err(|e| {
        if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            not_regular(path)
        } else {
            Error::io(action, path, e)
        }
    })?;
    let meta = f.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path));
    }
    Ok(f)
}

fn not_regular(path: &Path) -> Error {
    Error::Refused(format!(
        "{} is not a regular file (a symbolic link, a device or a folder): a protocol must be a \
         plain file that records really reach. Nothing was read or written; replace it by the \
         protocol itself (restore it from its backup) and run again",
        path.display()
    ))
}

fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let file = match open_regular(path, OpenOptions::new().read(true), "read") {
        Ok(f) => f,
        Err(Error::Io { cause, .. }) if cause.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    // Blank lines are kept: `verify` reports them, since the writer never writes one.
    BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, l)| {
            l.map(|text| Line {
                number: i + 1,
                text,
            })
            .map_err(|e| Error::io("read", path, e))
        })
        .collect()
}

/// A held lock on the protocol (a `.lock` file beside it, removed again), so appends never
/// interleave.
struct Lock(#[allow(dead_code)] crate::LockFile);

fn lock(path: &Path) -> Result<Lock> {
    let lock_path = path.with_extension("jsonl.lock");
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    match crate::LockFile::acquire(&lock_path, true) {
        Ok(Some(l)) => Ok(Lock(l)),
        Ok(None) => unreachable!("a waiting lock is always taken"),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(not_regular(&lock_path)),
        Err(e) => Err(Error::io("lock", &lock_path, e)),
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub records: usize,
    /// The id of the protocol key that sealed the records, if any is sealed.
    pub sealed_by: Option<String>,
    /// Sealed records whose MAC was not checked, because no protocol key was given: the chain
    /// of such a protocol is not verified until its key checks them.
    pub macs_unchecked: usize,
    /// SHA-256 of the last line: keep it elsewhere to detect a cut or edited tail later.
    pub head: String,
    /// When the protocol starts at a checkpoint: how many records were purged before it.
    pub purged_before: Option<u64>,
    pub problems: Vec<ChainProblem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// 1-based line in the file.
    pub line: usize,
    pub seq: Option<u64>,
    pub message: String,
}

impl Protocol {
    #[must_use]
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            key: None,
        }
    }

    /// The protocol sealed with `key` (every record this handle writes carries a MAC, and every
    /// MAC it reads is checked).
    #[must_use]
    pub fn with_key(mut self, key: Option<ChainKey>) -> Self {
        self.key = key;
        self
    }

    /// Refuses a sealed protocol when no key was given: it is neither trusted nor written without
    /// the key, which alone can tell an edited record from a true one.
    fn need_key(&self, report: &ChainReport) -> Result<()> {
        match (&self.key, &report.sealed_by) {
            (None, Some(id)) => Err(Error::Refused(format!(
                "the protocol {} is sealed with the protocol key {id}, and no protocol key was \
                 given: it can be neither checked nor written without it. Nothing was read or \
                 written; give its key file with --protocol-key (or PSEUDAGG_PROTOCOL_KEY_FILE)",
                self.path.display()
            ))),
            (Some(k), None) if report.records > 0 => Err(Error::Refused(format!(
                "the protocol {} is not sealed, and the protocol key {} was given. Nothing was \
                 read or written. If it was sealed before, its MACs were stripped: restore it \
                 from its backup. If it was written before it had a key, check it with \
                 `pseudagg protocol verify` (without --protocol-key), then seal it once with \
                 `pseudagg protocol seal --protocol-key FILE`; from then on every record is sealed",
                self.path.display(),
                k.id()
            ))),
            _ => Ok(()),
        }
    }

    /// The id of the protocol key this handle seals with, if any.
    #[must_use]
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(ChainKey::id)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record now.
    pub fn append(&self, entry: Entry) -> Result<Record> {
        self.append_at(entry, Utc::now())
    }

    /// The head hash the protocol has when `record`, just appended by this handle, is its last
    /// line: what `protocol verify` prints, to be kept elsewhere (`--head`).
    #[must_use]
    pub fn head_of(&self, record: &Record) -> String {
        sha256_hex(line_of(record.clone(), self.key.as_ref()).as_bytes())
    }

    /// Appends one record with the given time (tests and imports; commands use [`append`]).
    ///
    /// [`append`]: Protocol::append
    pub fn append_at(&self, entry: Entry, time: DateTime<Utc>) -> Result<Record> {
        self.append_sealed(entry, time, false)
    }

    /// Appends one record. The tail must be sealed when this handle has a key, unless `sealing`
    /// (the record that seals a protocol written before it had a key); a sealed tail is never
    /// appended to without the key.
    fn append_sealed(&self, entry: Entry, time: DateTime<Utc>, sealing: bool) -> Result<Record> {
        let _lock = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
        self.append_locked(&lines, entry, time, sealing)
    }

    /// [`append_sealed`] with the lock held and the lines read.
    ///
    /// [`append_sealed`]: Protocol::append_sealed
    fn append_locked(
        &self,
        lines: &[Line],
        entry: Entry,
        time: DateTime<Utc>,
        sealing: bool,
    ) -> Result<Record> {
        let (seq, prev) = match lines.last() {
            None => (1, GENESIS.to_owned()),
            Some(last) => {
                let r: Record = serde_json::from_str(&last.text).map_err(|_| Error::Format {
                    path: self.path.clone(),
                    reason: format!(
                        "line {} is not a protocol record; run `pseudagg protocol verify`",
                        last.number
                    ),
                })?;
                match (&self.key, &r.mac) {
                    (None, Some(_)) => {
                        return Err(Error::Refused(format!(
                            "the protocol {} is sealed, and no protocol key was given: give its \
                             key file with --protocol-key (or PSEUDAGG_PROTOCOL_KEY_FILE)",
                            self.path.display()
                        )));
                    }
                    (Some(_), None) if !sealing => {
                        return Err(Error::Refused(format!(
                            "the protocol {} is not sealed yet: check it with `pseudagg protocol \
                             verify`, then seal it once with `pseudagg protocol seal`",
                            self.path.display()
                        )));
                    }
                    _ => {}
                }
                (r.seq + 1, sha256_hex(last.text.as_bytes()))
            }
        };
        let record = Record {
            seq,
            time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
            entry,
            prev,
            mac: None,
        };
        let mut line = line_of(record.clone(), self.key.as_ref());
        line.push('\n');
        let mut f = open_regular(
            &self.path,
            OpenOptions::new().create(true).append(true),
            "append to",
        )?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("append to", &self.path, e))?;
        Ok(record)
    }

    /// Makes the protocol ready for a command on data, before any data is read: it is a regular
    /// file (or does not exist yet), and its chain verifies. A publication that an interrupted
    /// run announced (a `publish` record) but never confirmed is settled now with a record that
    /// says whether its outputs went live. Returns how many were settled.
    ///
    /// A protocol that fails here stops the command (exit 2): personal data is never processed
    /// without a record that can be trusted.
    pub fn ready(&self, operator: &str) -> Result<usize> {
        if let Ok(meta) = fs::symlink_metadata(&self.path)
            && !meta.is_file()
        {
            return Err(not_regular(&self.path));
        }
        let lock_held = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
        let report = verify_lines(&lines, self.key.as_ref());
        self.need_key(&report)?;
        if report.sealed_by.is_none() {
            tracing::warn!(
                "the protocol is not sealed with a protocol key: anyone who may write it can \
                 rewrite it and recompute its hashes (see `pseudagg protocol seal`)"
            );
        }
        if let Some(first) = report.problems.first() {
            return Err(Error::Refused(format!(
                "the protocol {} does not verify ({} problem(s); the first at line {}: {}). \
                 Nothing was read or written. Run `pseudagg protocol verify --protocol {}` to see \
                 every problem, then restore the protocol from its backup: a protocol is never \
                 mended by hand, and no data is processed until it is intact",
                self.path.display(),
                report.problems.len(),
                first.line,
                first.message,
                self.path.display()
            )));
        }
        let records: Vec<Record> = lines
            .iter()
            .map(|l| serde_json::from_str(&l.text).expect("verified"))
            .collect();
        drop(lock_held);
        let settled: std::collections::HashSet<u64> = records
            .iter()
            .filter_map(|r| r.entry.details.get("publish_seq").and_then(Value::as_u64))
            .collect();
        let open: Vec<&Record> = records
            .iter()
            .filter(|r| r.entry.kind == "publish" && !settled.contains(&r.seq))
            .collect();
        for intent in &open {
            let live = published(&intent.entry.outputs);
            let all = live.iter().all(|&x| x);
            let none = !live.iter().any(|&x| x);
            tracing::warn!(
                seq = intent.seq,
                published = all,
                "settling a publication an interrupted run left unconfirmed"
            );
            self.append(Entry {
                kind: "run".into(),
                operator: operator.to_owned(),
                command: intent.entry.command.clone(),
                subject: intent.entry.subject.clone(),
                month: intent.entry.month.clone(),
                request: intent.entry.request.clone(),
                outputs: intent
                    .entry
                    .outputs
                    .iter()
                    .zip(&live)
                    .filter(|&(_, &l)| l)
                    .map(|(f, _)| f.clone())
                    .collect(),
                key_id: intent.entry.key_id.clone(),
                outcome: if all { "ok" } else { "error" }.into(),
                details: serde_json::json!({
                    "publish_seq": intent.seq,
                    "recovered": true,
                    "published": if all { "all" } else if none { "none" } else { "part" },
                }),
                ..Entry::default()
            })?;
        }
        Ok(open.len())
    }

    /// Announces a publication: appended just before the outputs are moved into place, with every
    /// target file (absolute path) and the hash it will have. The command's own record then names
    /// it (`details.publish_seq`); if the command dies in between, [`ready`] settles it on the
    /// next run. So an output never goes live without a record in the protocol.
    ///
    /// [`ready`]: Protocol::ready
    pub fn announce(&self, mut entry: Entry) -> Result<Record> {
        entry.kind = "publish".into();
        entry.outcome = "pending".into();
        self.append(entry)
    }

    /// All records, in order (the chain is not checked; see [`verify`]).
    ///
    /// [`verify`]: Protocol::verify
    pub fn records(&self) -> Result<Vec<Record>> {
        read_lines(&self.path)?
            .iter()
            .map(|l| {
                serde_json::from_str(&l.text).map_err(|_| Error::Format {
                    path: self.path.clone(),
                    reason: format!("line {} is not a protocol record", l.number),
                })
            })
            .collect()
    }

    /// Checks the chain and says which record breaks it.
    pub fn verify(&self) -> Result<ChainReport> {
        let _lock = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
        Ok(verify_lines(&lines, self.key.as_ref()))
    }

    /// Seals a protocol that was written before it had a key: checks its chain, then appends a
    /// sealed `seal` record whose `prev` ties every earlier line to its MAC. Returns how many
    /// records it sealed. Done once, by the protocol's keeper, after `verify` found it intact.
    pub fn seal(&self, operator: &str) -> Result<usize> {
        self.seal_at(operator, Utc::now())
    }

    /// [`seal`] with the time the seal is recorded at.
    ///
    /// [`seal`]: Protocol::seal
    pub fn seal_at(&self, operator: &str, now: DateTime<Utc>) -> Result<usize> {
        let Some(key) = &self.key else {
            return Err(Error::Usage(
                "protocol seal needs the protocol key: give --protocol-key FILE (a key file from \
                 `pseudagg keygen`, kept apart from the pseudonym key)"
                    .into(),
            ));
        };
        let held = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
        let report = verify_lines(&lines, None);
        if lines.is_empty() {
            return Err(Error::Usage(format!(
                "the protocol {} is empty or does not exist yet: there is nothing to seal, and \
                 a new protocol is sealed from its first record when every command is given \
                 --protocol-key",
                self.path.display()
            )));
        }
        if let Some(id) = &report.sealed_by {
            return Err(Error::Usage(format!(
                "the protocol {} is already sealed (protocol key {id}); nothing to do",
                self.path.display()
            )));
        }
        if let Some(first) = report.problems.first() {
            return Err(Error::CheckFailed(format!(
                "{} does not verify ({} problem(s), the first at line {}: {}); a broken protocol \
                 is not sealed: restore it from its backup",
                self.path.display(),
                report.problems.len(),
                first.line,
                first.message
            )));
        }
        self.append_locked(
            &lines,
            Entry {
                kind: "seal".into(),
                operator: operator.to_owned(),
                command: "protocol seal".into(),
                outcome: "ok".into(),
                details: serde_json::json!({
                    "sealed_records": lines.len(),
                    "head": report.head,
                    "protocol_key_id": key.id(),
                }),
                ..Entry::default()
            },
            now,
            true,
        )?;
        drop(held);
        Ok(lines.len())
    }

    /// Removes expired records (see [`is_expired`]) and anchors the rest with a checkpoint.
    /// Returns how many were removed. Logs itself as a `purge` record. `today` may be earlier
    /// than the real date (to purge as of a past day), never later, and never before the newest
    /// record.
    pub fn purge(&self, today: NaiveDate, operator: &str) -> Result<u64> {
        self.purge_at(today, operator, Utc::now())
    }

    /// [`purge`] with the time the purge is recorded at.
    ///
    /// [`purge`]: Protocol::purge
    #[allow(clippy::too_many_lines)] // read, cut, anchor, rewrite
    pub fn purge_at(&self, today: NaiveDate, operator: &str, now: DateTime<Utc>) -> Result<u64> {
        let held = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
        let report = verify_lines(&lines, self.key.as_ref());
        self.need_key(&report)?;
        if !report.problems.is_empty() {
            return Err(Error::CheckFailed(format!(
                "{} does not verify ({} problem(s), the first at line {}); a broken protocol is not purged: run `pseudagg protocol verify`",
                self.path.display(),
                report.problems.len(),
                report.problems[0].line
            )));
        }
        let records: Vec<Record> = lines
            .iter()
            .map(|l| serde_json::from_str(&l.text).expect("verified"))
            .collect();
        // A purge removes only what is past its retention as of the real date: a day ahead of
        // it (or before the newest record, which a clock set back would give) would delete
        // records that must still be kept.
        let real = now.date_naive();
        if today > real {
            return Err(Error::Usage(format!(
                "--today {today} is after today ({real}); records are purged only once past \
                 their retention as of the real date. Nothing was removed"
            )));
        }
        if let Some(newest) = records.iter().filter_map(Record::date).max()
            && today < newest
        {
            return Err(Error::Usage(format!(
                "--today {today} is before the protocol's newest record ({newest}): the clock or \
                 the date is wrong. Nothing was removed"
            )));
        }
        // Records are in time order; remove the expired prefix (never a checkpoint's successor gap).
        let mut cut = 0;
        let mut purged_before = 0u64;
        for (i, r) in records.iter().enumerate() {
            if r.entry.kind == "checkpoint" {
                purged_before = r.entry.details["removed_records"].as_u64().unwrap_or(0);
                cut = i + 1;
                continue;
            }
            match r.date() {
                Some(d) if is_expired(d, today) => cut = i + 1,
                _ => break,
            }
        }
        let removed = records[..cut]
            .iter()
            .filter(|r| r.entry.kind != "checkpoint")
            .count() as u64;
        let mut out = String::new();
        if removed > 0 {
            let last_removed = &lines[cut - 1];
            let anchor = sha256_hex(last_removed.text.as_bytes());
            let through = records[cut - 1].time.clone();
            let checkpoint = Record {
                seq: records[cut - 1].seq,
                time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
                entry: Entry {
                    kind: "checkpoint".into(),
                    operator: operator.to_owned(),
                    command: "protocol purge".into(),
                    outcome: "ok".into(),
                    // The outputs published by the removed records are still live: the
                    // checkpoint keeps their latest publication, so that `protocol verify` can
                    // still tie each output to the protocol (paths and hashes, no data).
                    details: serde_json::json!({
                        "removed_records": purged_before + removed,
                        "removed_through": through,
                        "today": today.to_string(),
                        "publications": latest_publications(&records[..cut], &records),
                    }),
                    ..Entry::default()
                },
                prev: anchor,
                mac: None,
            };
            let text = line_of(checkpoint.clone(), self.key.as_ref());
            let checkpoint_hash = sha256_hex(text.as_bytes());
            out.push_str(&text);
            out.push('\n');
            for l in &lines[cut..] {
                out.push_str(&l.text);
                out.push('\n');
            }
            let last_hash = lines[cut..].last().map_or_else(
                || checkpoint.prev.clone(),
                |l| sha256_hex(l.text.as_bytes()),
            );
            let purge = Record {
                seq: records.last().map_or(1, |r| r.seq + 1),
                time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
                entry: Entry {
                    kind: "purge".into(),
                    operator: operator.to_owned(),
                    command: "protocol purge".into(),
                    outcome: "ok".into(),
                    details: serde_json::json!({
                        "removed_records": removed,
                        "today": today.to_string(),
                        "checkpoint_sha256": checkpoint_hash,
                    }),
                    ..Entry::default()
                },
                prev: last_hash,
                mac: None,
            };
            out.push_str(&line_of(purge, self.key.as_ref()));
            out.push('\n');
            let tmp = self.path.with_extension("jsonl.purging");
            // A leftover (or a planted link) is removed, never written through.
            match fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", &tmp, e)),
            }
            let mut f = open_regular(
                &tmp,
                OpenOptions::new().write(true).create_new(true).mode(0o600),
                "create",
            )?;
            f.write_all(out.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io("write", &tmp, e))?;
            fs::rename(&tmp, &self.path).map_err(|e| Error::io("replace", &self.path, e))?;
        } else {
            // Nothing expired: the purge is still recorded.
            drop(held);
            self.append_at(
                Entry {
                    kind: "purge".into(),
                    operator: operator.to_owned(),
                    command: "protocol purge".into(),
                    outcome: "ok".into(),
                    details: serde_json::json!({"removed_records": 0, "today": today.to_string()}),
                    ..Entry::default()
                },
                now,
            )?;
        }
        Ok(removed)
    }

    /// Draws the monthly control sample: `fraction` of the `run` records written in the calendar
    /// month `month` (at least one when there is any), reproducibly from `seed`, and logs the
    /// draw. `month` is when the records were written, not the data month of their runs.
    pub fn control_sample(
        &self,
        month: Month,
        fraction: f64,
        seed: u64,
        operator: &str,
    ) -> Result<Vec<Record>> {
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(Error::Usage(
                "--fraction is a share above 0 and at most 1".into(),
            ));
        }
        let month_text = month.to_string();
        let candidates: Vec<Record> = self
            .records()?
            .into_iter()
            .filter(|r| r.entry.kind == "run" && r.time.starts_with(&month_text))
            .collect();
        let n = candidates.len();
        let k = if n == 0 {
            0
        } else {
            ((n as f64 * fraction).ceil() as usize).clamp(1, n)
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut picked: Vec<usize> = sample(&mut rng, n, k).into_vec();
        picked.sort_unstable();
        let drawn: Vec<Record> = picked.iter().map(|&i| candidates[i].clone()).collect();
        self.append(Entry {
            kind: "control-sample".into(),
            operator: operator.to_owned(),
            command: "protocol sample".into(),
            outcome: "ok".into(),
            details: serde_json::json!({
                "written_in": month_text,
                "seed": seed,
                "fraction": fraction,
                "candidates": n,
                "drawn_seq": drawn.iter().map(|r| r.seq).collect::<Vec<_>>(),
            }),
            ..Entry::default()
        })?;
        Ok(drawn)
    }
}

/// What the seals of a protocol say, gathered line by line by [`verify_lines`].
#[derive(Default)]
struct Seals {
    /// The key id of the first sealed record.
    sealed_by: Option<String>,
    /// The line of the first sealed record that is not the opening checkpoint: every record
    /// from there on must be sealed.
    sealed_from: Option<usize>,
    unchecked: usize,
    last_sealed: bool,
}

impl Seals {
    /// Checks one record's MAC (when it has one) and whether it had to have one.
    fn check(
        &mut self,
        line: &Line,
        record: &Record,
        opening_checkpoint: bool,
        key: Option<&ChainKey>,
        problems: &mut Vec<ChainProblem>,
    ) {
        let mut problem = |message: String| {
            problems.push(ChainProblem {
                line: line.number,
                seq: Some(record.seq),
                message,
            });
        };
        self.last_sealed = record.mac.is_some();
        if record.mac.is_none() {
            if let Some(from) = self.sealed_from {
                problem(format!(
                    "not sealed, though every record from line {from} on is: it was written or \
                     rewritten without the protocol key"
                ));
            }
            return;
        }
        if !opening_checkpoint && self.sealed_from.is_none() {
            self.sealed_from = Some(line.number);
        }
        let Some((id, tag, unsealed)) = unseal(&line.text) else {
            problem("its MAC is not the record's last field in the form pseudagg writes: the record was edited".into());
            return;
        };
        match &self.sealed_by {
            None => self.sealed_by = Some(id.to_owned()),
            Some(first) if first != id => problem(format!(
                "sealed with the protocol key {id}, while the protocol's first sealed record \
                 names {first}: a protocol has one protocol key"
            )),
            Some(_) => {}
        }
        match key {
            None => self.unchecked += 1,
            Some(k) if k.id() != id => problem(format!(
                "sealed with the protocol key {id}, not with the given key {}: give the key \
                 this protocol was sealed with",
                k.id()
            )),
            Some(k) => {
                if !k.holds(&unsealed, tag) {
                    problem(
                        "its MAC does not match the record: the record was edited, or sealed by \
                         someone without the protocol key"
                            .into(),
                    );
                }
            }
        }
    }
}

#[allow(clippy::too_many_lines)] // one pass over the lines, every rule in order
fn verify_lines(lines: &[Line], key: Option<&ChainKey>) -> ChainReport {
    let mut problems = Vec::new();
    let mut purged_before = None;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq: Option<u64> = None;
    let mut checkpoint_hash = None;
    let mut checkpoint_confirmed = false;
    let mut seals = Seals::default();
    for (i, l) in lines.iter().enumerate() {
        let Ok(r) = serde_json::from_str::<Record>(&l.text) else {
            problems.push(ChainProblem {
                line: l.number,
                seq: None,
                message: if l.text.trim().is_empty() {
                    "a blank line: pseudagg never writes one, so the file was edited".into()
                } else {
                    "not a protocol record (edited, damaged or cut off)".into()
                },
            });
            expected_prev = sha256_hex(l.text.as_bytes());
            expected_seq = None;
            seals.last_sealed = false;
            continue;
        };
        let opening_checkpoint = i == 0 && r.entry.kind == "checkpoint";
        seals.check(l, &r, opening_checkpoint, key, &mut problems);
        if opening_checkpoint {
            purged_before = r.entry.details["removed_records"].as_u64();
            expected_prev.clone_from(&r.prev);
            expected_seq = Some(r.seq + 1);
            checkpoint_hash = Some(sha256_hex(l.text.as_bytes()));
            continue;
        }
        if r.entry.kind == "checkpoint" {
            problems.push(ChainProblem {
                line: l.number,
                seq: Some(r.seq),
                message: "a checkpoint may only open the protocol".into(),
            });
        }
        if r.prev != expected_prev {
            let message = if i == 0 {
                "the first record does not start the chain: records before it were removed".into()
            } else {
                format!(
                    "does not link to line {}: that record was edited, or records between were removed, inserted or reordered",
                    lines[i - 1].number
                )
            };
            problems.push(ChainProblem {
                line: l.number,
                seq: Some(r.seq),
                message,
            });
        }
        if let Some(seq) = expected_seq
            && r.seq != seq
        {
            problems.push(ChainProblem {
                line: l.number,
                seq: Some(r.seq),
                message: format!("sequence number {} where {seq} was expected", r.seq),
            });
        }
        if r.entry.kind == "purge"
            && let Some(h) = &checkpoint_hash
            && r.entry.details["checkpoint_sha256"].as_str() == Some(h.as_str())
        {
            checkpoint_confirmed = true;
        }
        expected_prev = sha256_hex(l.text.as_bytes());
        expected_seq = Some(r.seq + 1);
    }
    if checkpoint_hash.is_some() && !checkpoint_confirmed {
        problems.push(ChainProblem {
            line: 1,
            seq: None,
            message:
                "the checkpoint is not confirmed by the purge record that wrote it: it was edited"
                    .into(),
        });
    }
    if let Some(last) = lines.last() {
        if seals.sealed_by.is_some() && !seals.last_sealed && seals.sealed_from.is_none() {
            // A sealed checkpoint followed by unsealed records only: the purge that wrote it
            // was sealed, so its records were cut off or rewritten.
            problems.push(ChainProblem {
                line: last.number,
                seq: None,
                message: "the protocol is sealed, but its last record is not: records were cut \
                          off or written without the protocol key"
                    .into(),
            });
        }
        if let Some(k) = key
            && seals.sealed_by.is_none()
        {
            problems.push(ChainProblem {
                line: 1,
                seq: None,
                message: format!(
                    "no record is sealed, though the protocol key {} was given: the MACs were \
                     stripped, or the protocol was written before it had a key (then check it \
                     without --protocol-key and seal it with `pseudagg protocol seal`)",
                    k.id()
                ),
            });
        }
    }
    ChainReport {
        records: lines.len(),
        sealed_by: seals.sealed_by,
        macs_unchecked: seals.unchecked,
        head: lines
            .last()
            .map_or_else(|| GENESIS.to_owned(), |l| sha256_hex(l.text.as_bytes())),
        purged_before,
        problems,
    }
}

/// A published output whose record is missing from the protocol, or differs from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputProblem {
    /// The output's `manifest.json`, relative to the outputs' root.
    pub path: String,
    pub message: String,
}

/// What [`check_outputs`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputsReport {
    /// Outputs found (each a `manifest.json` under the root).
    pub outputs: usize,
    pub problems: Vec<OutputProblem>,
}

/// Checks that every output under `root` (every `manifest.json`, the steward's manifest of a
/// dataset or report, which lists and hashes every file of it) was published with a record in the
/// protocol: a publication of its path (a `publish` record, matched by the path relative to the
/// root, so that a root moved elsewhere still checks) names the manifest's current SHA-256.
/// A protocol that was emptied or cut, or an output changed or put in place by hand, fails here,
/// although its chain alone would hold.
///
/// Publications that the command's record (or a later settling) says never went live are not
/// counted. Hidden folders (staging) and symbolic links are not followed.
pub fn check_outputs(records: &[Record], root: &Path) -> Result<OutputsReport> {
    let publications = publications(records, records);
    let mut manifests = Vec::new();
    find_manifests(root, root, 0, &mut manifests)?;
    manifests.sort();
    let mut problems = Vec::new();
    for rel in &manifests {
        let path = root.join(rel);
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        let hash = sha256_hex(&bytes);
        let suffix = format!("/{rel}");
        let mut named = publications
            .iter()
            .filter(|(_, f)| f.path == *rel || f.path.ends_with(&suffix))
            .peekable();
        let message = if named.peek().is_none() {
            "no record of the protocol published it: it was put in place without pseudagg, or \
             the protocol lost records (restore the protocol from its backup)"
                .to_owned()
        } else if named.clone().any(|(_, f)| f.sha256 == hash) {
            continue;
        } else {
            let seq = named.map(|(seq, _)| *seq).max().unwrap_or_default();
            format!(
                "differs from every publication of it the protocol records (the latest: seq \
                 {seq}): the output was changed after it was published"
            )
        };
        problems.push(OutputProblem {
            path: rel.clone(),
            message,
        });
    }
    Ok(OutputsReport {
        outputs: manifests.len(),
        problems,
    })
}

/// The publications among `records` that went live, as (seq, file): every file of a `publish`
/// record unless the command's record (or a later settling, looked up in `all`) says none went live,
/// and the publications a purge's checkpoint carried forward.
fn publications(records: &[Record], all: &[Record]) -> Vec<(u64, FileRef)> {
    let not_live: std::collections::HashSet<u64> = all
        .iter()
        .filter(|r| {
            let p = r.entry.details.get("published");
            p.and_then(Value::as_str) == Some("none") || p.and_then(Value::as_bool) == Some(false)
        })
        .filter_map(|r| r.entry.details.get("publish_seq").and_then(Value::as_u64))
        .collect();
    let mut out = Vec::new();
    for r in records {
        if r.entry.kind == "publish" && !not_live.contains(&r.seq) {
            out.extend(r.entry.outputs.iter().map(|f| (r.seq, f.clone())));
        } else if r.entry.kind == "checkpoint"
            && let Some(carried) = r.entry.details.get("publications")
        {
            let carried: Vec<FileRef> = serde_json::from_value(carried.clone()).unwrap_or_default();
            out.extend(carried.into_iter().map(|f| (r.seq, f)));
        }
    }
    out
}

/// The latest publication of each path among `records`, to carry past a purge.
fn latest_publications(records: &[Record], all: &[Record]) -> Vec<FileRef> {
    let mut latest: std::collections::BTreeMap<String, (u64, FileRef)> =
        std::collections::BTreeMap::new();
    for (seq, f) in publications(records, all) {
        let keep = latest.get(&f.path).is_none_or(|(s, _)| *s <= seq);
        if keep {
            latest.insert(f.path.clone(), (seq, f));
        }
    }
    latest.into_values().map(|(_, f)| f).collect()
}

/// Every `manifest.json` under `dir`, as paths relative to `root` with `/`.
fn find_manifests(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) -> Result<()> {
    // Outputs sit at `<name>/<month>/manifest.json`; requests and scopes a little deeper.
    if depth > 6 {
        return Ok(());
    }
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| Error::io("inspect", entry.path(), e))?;
        if kind.is_dir() {
            find_manifests(root, &entry.path(), depth + 1, out)?;
        } else if kind.is_file() && name == "manifest.json" {
            let rel = entry
                .path()
                .strip_prefix(root)
                .expect("found under the root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push(rel);
        }
    }
    Ok(())
}

/// For each announced target: is it in place with the announced hash?
#[must_use]
pub fn published(targets: &[FileRef]) -> Vec<bool> {
    targets
        .iter()
        .map(|t| fs::read(&t.path).is_ok_and(|bytes| sha256_hex(&bytes) == t.sha256))
        .collect()
}

/// May a record of `date` be removed on `today`? Only when the calendar year after its year has
/// ended, and never before it is 12 months old.
#[must_use]
pub fn is_expired(date: NaiveDate, today: NaiveDate) -> bool {
    let end_of_next_year =
        NaiveDate::from_ymd_opt(date.year() + 1, 12, 31).expect("31 December exists");
    let twelve_months = date
        .checked_add_months(Months::new(12))
        .unwrap_or(NaiveDate::MAX);
    today > end_of_next_year && today >= twelve_months
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        day(y, m, d).and_hms_opt(12, 0, 0).unwrap().and_utc()
    }

    fn entry(command: &str) -> Entry {
        Entry {
            kind: "run".into(),
            operator: "steward".into(),
            command: command.into(),
            subject: Some("vkb".into()),
            month: Some("2025-03".into()),
            outcome: "ok".into(),
            ..Entry::default()
        }
    }

    #[test]
    fn retention_boundaries_on_31_december_and_1_january() {
        // A record of 31.12.2024 is kept through 2025 and removed from 1.1.2026 on.
        assert!(!is_expired(day(2024, 12, 31), day(2025, 12, 31)));
        assert!(is_expired(day(2024, 12, 31), day(2026, 1, 1)));
        // A record of 1.1.2025 is kept through the end of 2026.
        assert!(!is_expired(day(2025, 1, 1), day(2026, 12, 31)));
        assert!(is_expired(day(2025, 1, 1), day(2027, 1, 1)));
        // Nothing is removed that is dated after today (a clock set wrong).
        assert!(!is_expired(day(2030, 1, 1), day(2027, 1, 1)));
    }

    proptest! {
        /// The 12-month floor: whatever the dates, an expired record is at least 12 months old,
        /// and every record older than the end of the following year is expired.
        #[test]
        fn never_younger_than_twelve_months(d in 0i64..20_000, gap in 0i64..2_000) {
            let date = day(1990, 1, 1) + chrono::Duration::days(d);
            let today = date + chrono::Duration::days(gap);
            if is_expired(date, today) {
                prop_assert!(today >= date.checked_add_months(Months::new(12)).unwrap());
                prop_assert!(today.year() >= date.year() + 2);
            } else {
                prop_assert!(today.year() < date.year() + 2);
            }
        }
    }

    #[test]
    fn a_tampered_record_is_found_at_the_right_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protocol::new(&dir.path().join("protocol.jsonl"));
        for c in ["pseudonymise", "verify", "report", "verify", "sample"] {
            p.append_at(entry(c), at(2025, 4, 2)).unwrap();
        }
        assert!(p.verify().unwrap().problems.is_empty());
        let text = fs::read_to_string(p.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        // Edited record 3: line 4 no longer links.
        let mut edited = lines.clone();
        let changed = lines[2].replace("\"report\"", "\"reprot\"");
        edited[2] = &changed;
        fs::write(p.path(), edited.join("\n") + "\n").unwrap();
        let r = p.verify().unwrap();
        assert_eq!(r.problems.len(), 1, "{r:?}");
        assert_eq!(r.problems[0].line, 4);

        // Removed record 2: line 2 (formerly 3) breaks, and its sequence number jumps.
        let mut removed = lines.clone();
        removed.remove(1);
        fs::write(p.path(), removed.join("\n") + "\n").unwrap();
        let r = p.verify().unwrap();
        assert!(r.problems.iter().all(|x| x.line == 2), "{r:?}");
        assert!(r.problems.iter().any(|x| x.message.contains("sequence")));

        // Reordered records 4 and 5.
        let mut reordered = lines.clone();
        reordered.swap(3, 4);
        fs::write(p.path(), reordered.join("\n") + "\n").unwrap();
        let r = p.verify().unwrap();
        assert_eq!(r.problems.first().map(|x| x.line), Some(4), "{r:?}");

        // Inserted record (a copy of record 1) after line 2.
        let mut inserted = lines.clone();
        inserted.insert(2, lines[0]);
        fs::write(p.path(), inserted.join("\n") + "\n").unwrap();
        let r = p.verify().unwrap();
        assert_eq!(r.problems.first().map(|x| x.line), Some(3), "{r:?}");

        // Removed first record: the chain no longer starts at the genesis.
        fs::write(p.path(), lines[1..].join("\n") + "\n").unwrap();
        let r = p.verify().unwrap();
        assert_eq!(r.problems.first().map(|x| x.line), Some(1), "{r:?}");
    }

    fn chain_key(id: &str, byte: u8) -> ChainKey {
        ChainKey::new(id, &[byte; 32])
    }

    /// What someone who may write the file but has no key can do: change lines, then recompute
    /// every `prev` so the hash chain holds again.
    fn rewrite(path: &Path, edit: impl Fn(usize, &str) -> String) {
        let text = fs::read_to_string(path).unwrap();
        let mut prev = GENESIS.to_owned();
        let mut out = String::new();
        for (i, line) in text.lines().enumerate() {
            let mut line = edit(i, line);
            let at = line.find("\"prev\":\"").unwrap() + 8;
            line.replace_range(at..at + 64, &prev);
            prev = sha256_hex(line.as_bytes());
            out.push_str(&line);
            out.push('\n');
        }
        fs::write(path, out).unwrap();
    }

    fn strip_mac(line: &str) -> String {
        unseal(line).map_or_else(|| line.to_owned(), |(_, _, text)| text)
    }

    #[test]
    fn a_sealed_protocol_finds_a_rewrite_that_recomputes_the_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("protocol.jsonl");
        let p = Protocol::new(&path).with_key(Some(chain_key("k1", 7)));
        for c in ["pseudonymise", "verify", "report", "verify", "sample"] {
            p.append_at(entry(c), at(2025, 4, 2)).unwrap();
        }
        let r = p.verify().unwrap();
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!((r.sealed_by.as_deref(), r.macs_unchecked), (Some("k1"), 0));
        assert!(
            fs::read_to_string(&path)
                .unwrap()
                .lines()
                .all(|l| l.contains("\"mac\":\"hmac-sha256:k1:"))
        );

        // Record 3 edited and the chain recomputed: the hashes hold, the MACs do not.
        rewrite(&path, |i, l| {
            if i == 2 {
                l.replace("\"report\"", "\"sample\"")
            } else {
                l.to_owned()
            }
        });
        let unkeyed = Protocol::new(&path).verify().unwrap();
        assert!(
            unkeyed.problems.is_empty(),
            "without the key only the hashes are checked"
        );
        assert_eq!(unkeyed.macs_unchecked, 5);
        let r = p.verify().unwrap();
        let lines: Vec<usize> = r.problems.iter().map(|x| x.line).collect();
        assert_eq!(lines, [3, 4, 5], "{r:?}");
        assert!(
            r.problems[0].message.contains("MAC does not match"),
            "{r:?}"
        );
        // Neither a command with the key nor one without it runs on it.
        assert!(matches!(p.ready("steward"), Err(Error::Refused(_))));
        assert!(matches!(
            Protocol::new(&path).ready("steward"),
            Err(Error::Refused(_))
        ));
        assert!(Protocol::new(&path).append(entry("report")).is_err());
    }

    #[test]
    fn stripped_seals_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("protocol.jsonl");
        let p = Protocol::new(&path).with_key(Some(chain_key("k1", 7)));
        for c in ["pseudonymise", "verify", "report"] {
            p.append_at(entry(c), at(2025, 4, 2)).unwrap();
        }
        let sealed = fs::read_to_string(&path).unwrap();

        // Every MAC stripped: an unsealed protocol again, which the key does not accept.
        rewrite(&path, |_, l| strip_mac(l));
        assert!(Protocol::new(&path).verify().unwrap().problems.is_empty());
        let r = p.verify().unwrap();
        assert!(
            r.problems
                .iter()
                .any(|x| x.message.contains("no record is sealed")),
            "{r:?}"
        );
        let Err(Error::Refused(why)) = p.ready("steward") else {
            panic!("not refused")
        };
        assert!(why.contains("stripped"), "{why}");

        // Only the last MAC stripped, or one in the middle.
        for cut in [2, 1] {
            fs::write(&path, &sealed).unwrap();
            rewrite(
                &path,
                |i, l| if i == cut { strip_mac(l) } else { l.to_owned() },
            );
            let r = p.verify().unwrap();
            assert_eq!(r.problems.first().map(|x| x.line), Some(cut + 1), "{r:?}");
            assert!(r.problems[0].message.contains("not sealed"), "{r:?}");
            let r = Protocol::new(&path).verify().unwrap();
            assert!(
                !r.problems.is_empty(),
                "a gap in the seals shows without the key too"
            );
        }

        // Another key: named, and no seal is taken as checked.
        fs::write(&path, &sealed).unwrap();
        let other = Protocol::new(&path).with_key(Some(chain_key("k2", 8)));
        let r = other.verify().unwrap();
        assert_eq!(r.problems.len(), 3, "{r:?}");
        assert!(
            r.problems[0].message.contains("not with the given key k2"),
            "{r:?}"
        );
        // Same id, other bytes (a forged key file): the MACs fail.
        let forged = Protocol::new(&path).with_key(Some(chain_key("k1", 9)));
        assert_eq!(forged.verify().unwrap().problems.len(), 3);
    }

    #[test]
    fn a_protocol_written_before_its_key_is_sealed_once_and_stays_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("protocol.jsonl");
        let legacy = Protocol::new(&path);
        legacy
            .append_at(entry("pseudonymise"), at(2024, 3, 5))
            .unwrap();
        legacy.append_at(entry("report"), at(2024, 12, 31)).unwrap();
        legacy
            .append_at(entry("pseudonymise"), at(2025, 1, 1))
            .unwrap();
        let keyed = Protocol::new(&path).with_key(Some(chain_key("k1", 7)));
        // The key alone does not take an unsealed protocol over: it is sealed on purpose.
        assert!(matches!(keyed.ready("steward"), Err(Error::Refused(_))));
        assert!(keyed.append(entry("report")).is_err());
        assert!(
            matches!(legacy.seal("dpo"), Err(Error::Usage(_))),
            "seal needs the key"
        );

        assert_eq!(keyed.seal_at("dpo", at(2025, 5, 1)).unwrap(), 3);
        assert!(keyed.seal("dpo").is_err(), "sealed once");
        let r = keyed.verify().unwrap();
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.sealed_by.as_deref(), Some("k1"));
        let last = keyed.records().unwrap().pop().unwrap();
        assert_eq!(last.entry.kind, "seal");
        assert_eq!(last.entry.details["sealed_records"], 3);
        keyed.ready("steward").unwrap();
        keyed.append_at(entry("verify"), at(2025, 6, 1)).unwrap();
        assert!(
            legacy.append(entry("report")).is_err(),
            "no unsealed record after the seal"
        );
        assert!(matches!(legacy.ready("steward"), Err(Error::Refused(_))));

        // The seal ties the records before it: an edited legacy record is found by the key.
        let before = fs::read_to_string(&path).unwrap();
        rewrite(&path, |i, l| {
            if i == 0 {
                l.replace("\"vkb\"", "\"vkc\"")
            } else {
                l.to_owned()
            }
        });
        let r = keyed.verify().unwrap();
        assert_eq!(r.problems.first().map(|x| x.line), Some(4), "{r:?}");
        fs::write(&path, before).unwrap();

        // A purge keeps it sealed: its checkpoint and purge record carry MACs, the kept legacy
        // record does not need one.
        assert!(
            legacy
                .purge_at(day(2026, 1, 1), "dpo", at(2026, 1, 1))
                .is_err()
        );
        assert_eq!(
            keyed
                .purge_at(day(2026, 1, 1), "dpo", at(2026, 1, 1))
                .unwrap(),
            2
        );
        let r = keyed.verify().unwrap();
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.macs_unchecked, 0);
        let text = fs::read_to_string(&path).unwrap();
        let sealed: Vec<bool> = text.lines().map(|l| unseal(l).is_some()).collect();
        assert_eq!(sealed, [true, false, true, true, true]);
        keyed.append(entry("report")).unwrap();
        assert!(keyed.verify().unwrap().problems.is_empty());
    }

    /// Issue 17 §5: `protocol purge --today 2030-01-01` deleted records written minutes earlier.
    #[test]
    fn a_purge_as_of_a_day_ahead_of_the_real_date_or_before_the_newest_record_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protocol::new(&dir.path().join("protocol.jsonl"));
        p.append_at(entry("pseudonymise"), at(2024, 3, 5)).unwrap();
        p.append_at(entry("report"), at(2025, 6, 1)).unwrap();
        let before = fs::read_to_string(p.path()).unwrap();
        let e = p
            .purge_at(day(2030, 1, 1), "dpo", at(2025, 6, 2))
            .unwrap_err();
        assert!(matches!(e, Error::Usage(_)), "{e}");
        assert!(e.to_string().contains("is after today (2025-06-02)"), "{e}");
        let e = p
            .purge_at(day(2025, 5, 31), "dpo", at(2025, 6, 2))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("before the protocol's newest record (2025-06-01)"),
            "{e}"
        );
        assert_eq!(
            fs::read_to_string(p.path()).unwrap(),
            before,
            "nothing removed"
        );
        // As of the real date, or a day between the newest record and it: allowed.
        assert_eq!(
            p.purge_at(day(2025, 6, 1), "dpo", at(2025, 6, 2)).unwrap(),
            0
        );
        assert_eq!(
            p.purge_at(day(2026, 1, 1), "dpo", at(2026, 1, 1)).unwrap(),
            1
        );
    }

    #[test]
    fn purge_removes_expired_records_and_the_rest_still_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protocol::new(&dir.path().join("protocol.jsonl"));
        p.append_at(entry("pseudonymise"), at(2024, 3, 5)).unwrap();
        p.append_at(entry("report"), at(2024, 12, 31)).unwrap();
        p.append_at(entry("pseudonymise"), at(2025, 1, 1)).unwrap();
        p.append_at(entry("verify"), at(2025, 6, 1)).unwrap();

        // On 31.12.2025 nothing may go yet.
        assert_eq!(
            p.purge_at(day(2025, 12, 31), "dpo", at(2025, 12, 31))
                .unwrap(),
            0
        );
        assert!(p.verify().unwrap().problems.is_empty());
        assert_eq!(p.records().unwrap().len(), 5, "the empty purge is recorded");

        // On 1.1.2026 both records of 2024 go; 2025's stay.
        assert_eq!(
            p.purge_at(day(2026, 1, 1), "dpo", at(2026, 1, 1)).unwrap(),
            2
        );
        let r = p.verify().unwrap();
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.purged_before, Some(2));
        let kinds: Vec<String> = p
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.entry.kind)
            .collect();
        assert_eq!(kinds, ["checkpoint", "run", "run", "purge", "purge"]);

        // Later appends link on; a second purge replaces the checkpoint and counts on.
        p.append_at(entry("report"), at(2026, 2, 1)).unwrap();
        assert_eq!(
            p.purge_at(day(2027, 1, 1), "dpo", at(2027, 1, 1)).unwrap(),
            3
        );
        let r = p.verify().unwrap();
        assert!(r.problems.is_empty(), "{r:?}");
        assert_eq!(r.purged_before, Some(5));

        // An edited checkpoint is found.
        let text = fs::read_to_string(p.path()).unwrap();
        fs::write(
            p.path(),
            text.replacen("\"removed_records\":5", "\"removed_records\":1", 1),
        )
        .unwrap();
        assert!(!p.verify().unwrap().problems.is_empty());
    }

    #[test]
    fn the_control_sample_is_five_percent_at_least_one_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let p = Protocol::new(&dir.path().join("protocol.jsonl"));
        for i in 0..45 {
            p.append_at(entry("verify"), at(2025, 4, 1 + (i % 28)))
                .unwrap();
        }
        p.append_at(entry("verify"), at(2025, 5, 1)).unwrap();
        let month = Month::new(2025, 4).unwrap();
        let a = p.control_sample(month, 0.05, 7, "dpo").unwrap();
        assert_eq!(a.len(), 3, "ceil(45 * 0.05)");
        assert!(a.iter().all(|r| r.time.starts_with("2025-04")));
        let b = p.control_sample(month, 0.05, 7, "dpo").unwrap();
        assert_eq!(
            a, b,
            "same seed, same draw (earlier control-sample records are not candidates)"
        );
        let c = p.control_sample(month, 0.05, 8, "dpo").unwrap();
        assert_ne!(a, c);
        let one = p
            .control_sample(Month::new(2025, 5).unwrap(), 0.05, 1, "dpo")
            .unwrap();
        assert_eq!(one.len(), 1, "at least one");
        let none = p
            .control_sample(Month::new(2025, 6).unwrap(), 0.05, 1, "dpo")
            .unwrap();
        assert!(none.is_empty());
        // Each draw is itself recorded, and the chain holds.
        assert_eq!(
            p.records()
                .unwrap()
                .iter()
                .filter(|r| r.entry.kind == "control-sample")
                .count(),
            5
        );
        assert!(p.verify().unwrap().problems.is_empty());
    }
}
