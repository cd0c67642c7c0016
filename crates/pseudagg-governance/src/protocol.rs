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
//! Records hold no personal value and no key: file names, hashes, counts, the key id. The protocol
//! serves data-protection control only; nothing here counts or reports per operator.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Months, NaiveDate, SecondsFormat, Utc};
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

/// The protocol file, locked for the time of one operation.
#[derive(Debug)]
pub struct Protocol {
    path: PathBuf,
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

/// A held lock on the protocol (a `.lock` file beside it), so appends never interleave.
struct Lock(#[allow(dead_code)] File);

fn lock(path: &Path) -> Result<Lock> {
    let lock_path = path.with_extension("jsonl.lock");
    if let Some(parent) = lock_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
    }
    let f = open_regular(
        &lock_path,
        OpenOptions::new().create(true).truncate(false).write(true),
        "open",
    )?;
    rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io("lock", &lock_path, e.into()))?;
    Ok(Lock(f))
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub records: usize,
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
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record now.
    pub fn append(&self, entry: Entry) -> Result<Record> {
        self.append_at(entry, Utc::now())
    }

    /// Appends one record with the given time (tests and imports; commands use [`append`]).
    ///
    /// [`append`]: Protocol::append
    pub fn append_at(&self, entry: Entry, time: DateTime<Utc>) -> Result<Record> {
        let _lock = lock(&self.path)?;
        let lines = read_lines(&self.path)?;
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
                (r.seq + 1, sha256_hex(last.text.as_bytes()))
            }
        };
        let record = Record {
            seq,
            time: time.to_rfc3339_opts(SecondsFormat::Secs, true),
            entry,
            prev,
        };
        let mut line = serde_json::to_string(&record).expect("a record serialises");
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
        let report = verify_lines(&lines);
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
        Ok(verify_lines(&lines))
    }

    /// Removes expired records (see [`is_expired`]) and anchors the rest with a checkpoint.
    /// Returns how many were removed. Logs itself as a `purge` record.
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
        let report = verify_lines(&lines);
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
            };
            let text = serde_json::to_string(&checkpoint).expect("serialises");
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
            };
            out.push_str(&serde_json::to_string(&purge).expect("serialises"));
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

    /// Draws the monthly control sample: `fraction` of the `run` records of `month` (at least one
    /// when there is any), reproducibly from `seed`, and logs the draw.
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
            month: Some(month_text),
            outcome: "ok".into(),
            details: serde_json::json!({
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

fn verify_lines(lines: &[Line]) -> ChainReport {
    let mut problems = Vec::new();
    let mut purged_before = None;
    let mut expected_prev = GENESIS.to_owned();
    let mut expected_seq: Option<u64> = None;
    let mut checkpoint_hash = None;
    let mut checkpoint_confirmed = false;
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
            continue;
        };
        if i == 0 && r.entry.kind == "checkpoint" {
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
    ChainReport {
        records: lines.len(),
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
