//! The protocol at the command line: who runs, where the protocol is, one record per command that
//! touches personal or pseudonymised data (also when it fails), and the `protocol` and `sample`
//! commands.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use pseudagg_core::{Error, Month};
use pseudagg_governance::{ChainKey, Entry, FileRef, Protocol, Record};
use pseudagg_io::sha256_file;
use pseudagg_keys::MasterKey;

use crate::cli::ProtocolAction;
use crate::commands::say;

/// What every command knows besides its own arguments.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub json: bool,
    pub protocol: Option<PathBuf>,
    /// The protocol key's file (`--protocol-key`).
    pub protocol_key: Option<PathBuf>,
    pub operator: String,
}

impl Context {
    pub fn new(
        json: bool,
        protocol: Option<PathBuf>,
        protocol_key: Option<PathBuf>,
        operator: Option<String>,
    ) -> Self {
        let operator = operator
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .filter(|o| !o.trim().is_empty())
            .unwrap_or_else(|| format!("uid {}", rustix::process::getuid().as_raw()));
        Self {
            json,
            protocol,
            protocol_key,
            operator,
        }
    }

    /// The protocol: the one given, or `protocol.jsonl` in the output root.
    pub fn protocol(&self, out_root: &Path) -> Result<Protocol> {
        self.protocol_at(
            &self
                .protocol
                .clone()
                .unwrap_or_else(|| out_root.join("protocol.jsonl")),
            None,
        )
    }

    /// The protocol at `path`, sealed with `--protocol-key`, else with `key_file` (a batch
    /// configuration's), else unsealed.
    pub fn protocol_at(&self, path: &Path, key_file: Option<&Path>) -> Result<Protocol> {
        let key = match self.protocol_key.as_deref().or(key_file) {
            None => None,
            Some(file) => {
                let key = MasterKey::load(file).context("the protocol key (--protocol-key)")?;
                Some(ChainKey::new(key.id().as_str(), &key.protocol_chain_key()))
            }
        };
        Ok(Protocol::new(path).with_key(key))
    }

    /// A record of a command on data, to be completed by the caller.
    pub fn entry(&self, command: &str) -> Entry {
        Entry {
            kind: "run".into(),
            operator: self.operator.clone(),
            command: command.into(),
            ..Entry::default()
        }
    }
}

/// Refuses a protocol sealed with the pseudonym key's own key file: the two keys are kept
/// apart, so that whoever holds one cannot use the other (a protocol key may be lent to an
/// auditor, the pseudonym key never is).
pub(crate) fn keys_apart(p: &Protocol, key: &MasterKey) -> Result<()> {
    if p.key_id() == Some(key.id().as_str()) {
        return Err(Error::Key(format!(
            "the protocol key and the pseudonym key are the same key file (key id {}). Nothing \
             was read or written. Make a protocol key of its own with `pseudagg keygen` and keep \
             it apart from the pseudonym key",
            key.id()
        ))
        .into());
    }
    Ok(())
}

/// Makes sure the protocol can be trusted and written before any data is touched: it is a regular
/// file whose chain verifies (a publication an interrupted run left unconfirmed is settled), and
/// it can be appended to. A run that cannot be logged does not run.
pub(crate) fn preflight(p: &Protocol, ctx: &Context) -> Result<()> {
    let path = p.path();
    if let Some(parent) = path.parent().filter(|x| !x.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io("create the protocol's folder", parent, e))?;
    }
    p.ready(&ctx.operator)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| Error::io("open the protocol", path, e))?;
    Ok(())
}

/// The announcement of a publication, filled in by the publish hook: which record it is.
#[derive(Debug, Default)]
pub(crate) struct Announced(std::sync::Mutex<Option<Record>>);

impl Announced {
    /// Announces `targets` (target path, staged file whose hash it will have) in the protocol.
    pub fn announce(
        &self,
        p: &Protocol,
        entry: &Entry,
        targets: &[(PathBuf, PathBuf)],
    ) -> pseudagg_core::Result<()> {
        let mut intent = entry.clone();
        intent.outputs = targets
            .iter()
            .map(|(target, staged)| {
                Ok(FileRef {
                    path: std::path::absolute(target)
                        .map_err(|e| Error::io("resolve", target, e))?
                        .display()
                        .to_string(),
                    sha256: sha256_file(staged)?,
                })
            })
            .collect::<pseudagg_core::Result<_>>()?;
        let record = p.announce(intent)?;
        *self.0.lock().expect("not poisoned") = Some(record);
        Ok(())
    }

    /// Names the announcement in the command's record, and whether its outputs are live.
    pub fn note(&self, entry: &mut Entry) {
        if let Some(r) = self.0.lock().expect("not poisoned").as_ref() {
            let live = pseudagg_governance::protocol::published(&r.entry.outputs);
            let mut details = match std::mem::take(&mut entry.details) {
                serde_json::Value::Object(m) => m,
                serde_json::Value::Null => serde_json::Map::new(),
                other => serde_json::Map::from_iter([("details".to_owned(), other)]),
            };
            details.insert("publish_seq".into(), r.seq.into());
            details.insert("published".into(), live.iter().all(|&x| x).into());
            entry.details = serde_json::Value::Object(details);
        }
    }
}

/// The error for a staged output in which `pseudagg verify`'s checks found violations; the first
/// 20 findings are logged (they name file, row, column and rule, never a value).
pub(crate) fn staged_findings(v: &pseudagg_verify::Verdict) -> Error {
    for f in v.findings.iter().take(20) {
        tracing::error!(finding = %f, "verify finding");
    }
    let rules: Vec<String> = v.counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    Error::CheckFailed(format!(
        "verify found {} violation(s) in the staged output ({}), so nothing was published; the \
         findings are logged above: correct the extract or the pipeline and run again",
        v.counts.values().sum::<u64>(),
        rules.join(", ")
    ))
}

/// Runs `pseudagg verify`'s checks on a staged dataset before it goes live: a value shaped like
/// an e-mail address, phone number, IBAN, Kundennummer or BG-Nummer in any published column, or
/// any other violation, stops the publication (exit 1, nothing written).
///
/// With `against` (a neighbouring month's published dataset, see [`neighbour_month`]) the records
/// must not link to it one-to-one on their kept attributes beyond verify's threshold.
pub(crate) fn verify_before_publish(
    staging: &Path,
    against: Option<PathBuf>,
) -> pseudagg_core::Result<()> {
    let options = pseudagg_verify::Options {
        against,
        ..pseudagg_verify::Options::default()
    };
    let v = pseudagg_verify::verify(staging, &options)?;
    if v.passed {
        Ok(())
    } else {
        Err(staged_findings(&v))
    }
}

/// The neighbouring month's published dataset beside `target`, the one before
/// (`OUT/vkb/2025-03` -> `OUT/vkb/2025-02`) or, when a past month is regenerated and there is none
/// before, the one after: a month must not link to its neighbour.
pub(crate) fn neighbour_month(target: &Path) -> Option<PathBuf> {
    let month: pseudagg_core::Month = target.file_name()?.to_str()?.parse().ok()?;
    let next = pseudagg_core::Month::of(month.last_day() + chrono::Days::new(1));
    [month.previous(), next]
        .into_iter()
        .map(|m| target.with_file_name(m.to_string()))
        .find(|d| d.join("manifest.json").is_file())
}

/// A hook that announces a staged dataset or report (its `manifest.json`) before it goes live.
pub(crate) fn manifest_hook<'a>(
    p: &'a Protocol,
    entry: &'a Entry,
    announced: &'a Announced,
) -> impl Fn(&Path, &Path) -> pseudagg_core::Result<()> + Sync + 'a {
    move |staging: &Path, target: &Path| {
        announced.announce(
            p,
            entry,
            &[(target.join("manifest.json"), staging.join("manifest.json"))],
        )
    }
}

/// `ok`, `check-failed` or `error`.
pub(crate) fn outcome_of<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e)
            if e.downcast_ref::<Error>()
                .is_some_and(Error::is_check_failure) =>
        {
            "check-failed"
        }
        Err(_) => "error",
    }
}

/// A file by path and hash (an empty hash when it cannot be read).
pub(crate) fn file_ref(path: &Path, shown_as: &str) -> FileRef {
    FileRef {
        path: shown_as.to_owned(),
        sha256: sha256_file(path).unwrap_or_default(),
    }
}

/// Appends the record of a finished command. A protocol that cannot be written is an error.
pub(crate) fn log(p: &Protocol, mut entry: Entry, outcome: &str) -> Result<Record> {
    outcome.clone_into(&mut entry.outcome);
    let record = p
        .append(entry)
        .with_context(|| format!("the run is not in the protocol {}", p.path().display()))?;
    Ok(record)
}

/// Adds counts to a record's details (an object), keeping what is there.
pub(crate) fn add_details(entry: &mut Entry, facts: serde_json::Value) {
    if !entry.details.is_object() {
        entry.details = serde_json::json!({});
    }
    if let (Some(d), serde_json::Value::Object(new)) = (entry.details.as_object_mut(), facts) {
        d.extend(new);
    }
}

/// `protocol verify`: the chain, the noted head, and every output's publication.
fn verify_protocol(
    ctx: &Context,
    p: &Protocol,
    head: Option<&str>,
    outputs: Option<PathBuf>,
) -> Result<()> {
    if !p.path().exists() {
        return Err(Error::Usage(format!("{} does not exist", p.path().display())).into());
    }
    let report = p.verify()?;
    let root = outputs.unwrap_or_else(|| {
        p.path()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned()
    });
    let records = if report.problems.is_empty() {
        p.records()?
    } else {
        Vec::new()
    };
    let out_report = pseudagg_governance::check_outputs(&records, &root)?;
    if ctx.json {
        let mut value = serde_json::to_value(&report).expect("serialises");
        value["outputs"] = serde_json::to_value(&out_report).expect("serialises");
        value["outputs"]["root"] = root.display().to_string().into();
        say(&serde_json::to_string_pretty(&value).expect("serialises"));
    } else {
        let mut text = format!(
            "{}: {} records{}\nhead: {}\nsealed: {}",
            p.path().display(),
            report.records,
            report.purged_before.map_or_else(String::new, |n| format!(
                " ({n} purged before the checkpoint)"
            )),
            report.head,
            match (&report.sealed_by, report.macs_unchecked) {
                (None, _) => "no (anyone who may write the file can rewrite it; see `pseudagg protocol seal`)".to_owned(),
                (Some(id), 0) => format!("with the protocol key {id}, every seal checked"),
                (Some(id), n) => format!("with the protocol key {id}; {n} seal(s) NOT checked: give --protocol-key"),
            }
        );
        for problem in &report.problems {
            let _ = write!(text, "\n  - line {}: {}", problem.line, problem.message);
        }
        let _ = write!(
            text,
            "\noutputs under {}: {}",
            root.display(),
            out_report.outputs
        );
        for problem in &out_report.problems {
            let _ = write!(text, "\n  - {}: {}", problem.path, problem.message);
        }
        say(&text);
    }
    let head_differs = head.is_some_and(|h| h != report.head);
    if !report.problems.is_empty() || head_differs {
        return Err(Error::CheckFailed(if head_differs {
            "the protocol's head differs from the one noted: records at its end were removed or edited".into()
        } else {
            format!(
                "the protocol does not verify: the first problem is at line {}",
                report.problems[0].line
            )
        })
        .into());
    }
    if let Some(first) = out_report.problems.first() {
        return Err(Error::CheckFailed(format!(
            "{} of {} outputs under {} are not in the protocol as published (the first: {}); \
             restore the protocol from its backup, or find out who changed the output",
            out_report.problems.len(),
            out_report.outputs,
            root.display(),
            first.path
        ))
        .into());
    }
    if let Some(id) = &report.sealed_by
        && report.macs_unchecked > 0
    {
        return Err(Error::Refused(format!(
            "the protocol is sealed with the protocol key {id}, and no key was given: its hashes \
             hold, but only the key can tell a rewritten protocol from a true one. Give its key \
             file with --protocol-key (or PSEUDAGG_PROTOCOL_KEY_FILE)"
        ))
        .into());
    }
    say("the chain holds, and every output has its record");
    Ok(())
}

pub(crate) fn protocol_command(ctx: &Context, action: ProtocolAction) -> Result<()> {
    let p = ctx.protocol_at(
        &ctx.protocol.clone().ok_or_else(|| {
            Error::Usage("give the protocol with --protocol FILE (or PSEUDAGG_PROTOCOL)".into())
        })?,
        None,
    )?;
    match action {
        ProtocolAction::Verify { head, outputs, .. } => {
            verify_protocol(ctx, &p, head.as_deref(), outputs)
        }
        ProtocolAction::Seal { .. } => {
            let sealed = p.seal(&ctx.operator)?;
            say(&format!(
                "{}: {sealed} record(s) sealed with the protocol key {}; from now on every command \
                 on this protocol needs --protocol-key",
                p.path().display(),
                p.key_id().unwrap_or_default()
            ));
            Ok(())
        }
        ProtocolAction::Purge { today, .. } => {
            let today = match today {
                Some(t) => chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d")
                    .map_err(|_| Error::Usage("--today is a date YYYY-MM-DD".into()))?,
                None => chrono::Utc::now().date_naive(),
            };
            let removed = p.purge(today, &ctx.operator)?;
            say(&format!(
                "{removed} record(s) past their retention removed as of {today}; the purge is recorded"
            ));
            Ok(())
        }
        ProtocolAction::Sample {
            month,
            fraction,
            seed,
            ..
        } => {
            let month = Month::parse_for_run(&month)?;
            let drawn = p.control_sample(month, fraction, seed, &ctx.operator)?;
            if ctx.json {
                say(&serde_json::to_string_pretty(&drawn).expect("serialises"));
            } else {
                let mut text = format!(
                    "control sample of the runs recorded in {month} (seed {seed}, {:.0} %): {} record(s)",
                    fraction * 100.0,
                    drawn.len()
                );
                for r in &drawn {
                    let _ = write!(
                        text,
                        "\n  #{} {} {} {} {}",
                        r.seq,
                        r.time,
                        r.entry.command,
                        r.entry.subject.as_deref().unwrap_or("-"),
                        r.entry.month.as_deref().unwrap_or("-")
                    );
                }
                say(&text);
            }
            Ok(())
        }
    }
}

/// `pseudagg sample`: the review sample per RD.
pub(crate) fn sample_command(
    ctx: &Context,
    input: &Path,
    per_rd: usize,
    seed: u64,
    out: &Path,
) -> Result<()> {
    // The dataset folder is OUT/<pipeline>/<month>: its protocol is in OUT.
    let root = input
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let p = ctx.protocol(root)?;
    preflight(&p, ctx)?;
    let mut entry = ctx.entry("sample");
    entry.inputs.push(file_ref(
        &input.join("manifest.json"),
        &input.join("manifest.json").display().to_string(),
    ));
    let result = write_sample(input, per_rd, seed, out);
    if let Ok(s) = &result {
        entry.subject = Some(s.pipeline.clone());
        entry.month = Some(s.month.clone());
        entry
            .outputs
            .push(file_ref(out, &out.display().to_string()));
        entry.rows_out = Some(s.drawn.len() as u64);
        entry.details = serde_json::json!({
            "per_rd": per_rd,
            "seed": seed,
            "drawn_per_partition": s.counts.iter().map(|(k, (_, d))| (k.clone(), *d)).collect::<std::collections::BTreeMap<_, _>>(),
        });
    }
    log(&p, entry, outcome_of(&result))?;
    let s = result?;
    let short: Vec<String> = s
        .counts
        .iter()
        .filter(|(_, (n, _))| *n < per_rd)
        .map(|(rd, (n, _))| format!("{rd} ({n})"))
        .collect();
    let mut text = format!(
        "{} {}: {} cases drawn, {per_rd} per RD (seed {seed}) -> {}",
        s.pipeline,
        s.month,
        s.drawn.len(),
        out.display()
    );
    if !short.is_empty() {
        let _ = write!(
            text,
            "\n  all cases of: {} (fewer than {per_rd})",
            short.join(", ")
        );
    }
    say(&text);
    Ok(())
}

pub(crate) fn write_sample(
    input: &Path,
    per_rd: usize,
    seed: u64,
    out: &Path,
) -> Result<pseudagg_governance::ReviewSample> {
    let (sample, key) = pseudagg_governance::draw(input, per_rd, seed)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| Error::io("create (it must not exist yet)", out, e))?;
    std::io::Write::write_all(&mut f, sample.to_csv(&key).as_bytes())
        .map_err(|e| Error::io("write", out, e))?;
    Ok(sample)
}

/// What `reidentify` was asked.
pub(crate) struct Lookup<'a> {
    pub pipeline: &'a Path,
    pub input: &'a Path,
    pub month: &'a str,
    pub key_file: &'a Path,
    pub pseudonyms: &'a Path,
    pub reason: &'a str,
    pub out: &'a Path,
    pub max: usize,
    pub encoding: pseudagg_io::Encoding,
}

/// Reads the asked pseudonyms: a `;`-separated CSV with a `pseudonym` column and optionally a
/// `month` column, each pseudonym 64 lower-case hex characters; duplicates count once. Problems
/// name the line, never the value.
fn asked_pseudonyms(path: &Path, month: Month) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let bad =
        |line: usize, what: &str| Error::Usage(format!("{}, line {line}: {what}", path.display()));
    let mut lines = text.trim_start_matches('\u{feff}').lines().enumerate();
    let header: Vec<&str> = lines
        .next()
        .map(|(_, h)| h.trim_end_matches('\r').split(';').map(str::trim).collect())
        .unwrap_or_default();
    let Some(at) = header.iter().position(|h| *h == "pseudonym") else {
        return Err(bad(
            1,
            "the header has no `pseudonym` column (a `;`-separated CSV, like the review sample)",
        )
        .into());
    };
    let month_at = header.iter().position(|h| *h == "month");
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, line) in lines {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        let p = fields.get(at).copied().unwrap_or_default();
        if p.len() != pseudagg_keys::PSEUDONYM_LEN
            || !p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(bad(i + 1, "is not a pseudonym (64 lower-case hex characters)").into());
        }
        if let Some(m) = month_at {
            let theirs = fields.get(m).copied().unwrap_or_default();
            if theirs != month.to_string() {
                return Err(Error::Refused(format!(
                    "{}, line {}: the pseudonym is of month {theirs}, not {month}; pseudonyms are bound to their month, so look it up with that month's extract",
                    path.display(),
                    i + 1
                ))
                .into());
            }
        }
        if seen.insert(p.to_owned()) {
            out.push(p.to_owned());
        }
    }
    if out.is_empty() {
        return Err(bad(1, "lists no pseudonym").into());
    }
    Ok(out)
}

/// `reidentify`: the owner's logged look-up of the cases behind pseudonyms.
pub(crate) fn reidentify_command(ctx: &Context, a: &Lookup<'_>) -> Result<()> {
    let month = Month::parse_for_run(a.month)?;
    if a.reason.trim().is_empty() {
        return Err(Error::Usage(
            "--reason must say why the cases are looked up (it goes to the protocol)".into(),
        )
        .into());
    }
    if ctx.protocol.is_none() {
        return Err(Error::Usage(
            "reidentify needs --protocol (or PSEUDAGG_PROTOCOL): the protocol of the outputs the pseudonyms come from, where the look-up is recorded".into(),
        )
        .into());
    }
    let p = ctx.protocol(Path::new("."))?;
    preflight(&p, ctx)?;
    let mut entry = ctx.entry("reidentify");
    entry.month = Some(month.to_string());
    entry
        .inputs
        .push(file_ref(a.input, &a.input.display().to_string()));
    entry
        .inputs
        .push(file_ref(a.pseudonyms, &a.pseudonyms.display().to_string()));
    // Every attempt is recorded, a refused one too.
    let mut asked = 0;
    let result = (|| -> Result<usize> {
        let wanted = asked_pseudonyms(a.pseudonyms, month)?;
        asked = wanted.len();
        if wanted.len() > a.max {
            return Err(Error::Refused(format!(
                "{} pseudonyms asked, at most {} per call (--max); a look-up is for the cases of a finding, not for a whole sample",
                wanted.len(),
                a.max
            ))
            .into());
        }
        if a.out.exists() {
            return Err(Error::Usage(format!(
                "{} exists; the look-up never overwrites a file",
                a.out.display()
            ))
            .into());
        }
        let plan = pseudagg_pipeline::Plan::load(a.pipeline)?;
        let key = MasterKey::load(a.key_file)?;
        keys_apart(&p, &key)?;
        entry.subject = Some(plan.definition.name.clone());
        entry.key_id = Some(key.id().to_string());
        let found = pseudagg_pipeline::lookup(
            &plan,
            &pseudagg_pipeline::LookupOptions {
                input: a.input.to_owned(),
                month,
                encoding: a.encoding,
                key: &key,
            },
            &wanted,
        )?;
        let mut text = String::from("pseudonym;column;value;status\n");
        for f in &found {
            match &f.hit {
                Some((column, value)) => {
                    let _ = writeln!(text, "{};{column};{value};found", f.pseudonym);
                }
                None => {
                    let _ = writeln!(text, "{};;;not-found", f.pseudonym);
                }
            }
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(a.out)
            .map_err(|e| Error::io("create (it must not exist yet)", a.out, e))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .map_err(|e| Error::io("write", a.out, e))?;
        Ok(found.iter().filter(|f| f.hit.is_some()).count())
    })();
    // The answer's path, never its hash: a hash of a few customer numbers could be guessed.
    entry.outputs.push(FileRef {
        path: a.out.display().to_string(),
        sha256: String::new(),
    });
    entry.rows_out = result.as_ref().ok().map(|&n| n as u64);
    entry.details = serde_json::json!({
        "reason": a.reason.trim(),
        "asked": asked,
        "found": result.as_ref().ok(),
        "max": a.max,
    });
    log(&p, entry, outcome_of(&result))?;
    let found = result?;
    say(&format!(
        "{found} of {asked} pseudonyms found; the answer is in {} (mode 0600): handle it as personal data",
        a.out.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use pseudagg_io::Encoding;
    use pseudagg_keys::MasterKey;
    use pseudagg_pipeline::{Plan, RunOptions, run};

    use super::verify_before_publish;

    fn pseudonymise(out: &Path, hook: &pseudagg_io::PublishHook<'_>) -> pseudagg_core::Result<()> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let plan = Plan::load(Path::new(&format!("{root}/pipelines/vkb.toml"))).unwrap();
        let bytes: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
        let key = MasterKey::from_bytes(bytes);
        let options = RunOptions {
            input: format!("{root}/testdata/verbis-vkb-2025-03.csv").into(),
            month: "2025-03".parse().unwrap(),
            encoding: Encoding::Utf8,
            out: out.to_owned(),
            key: &key,
            progress: None,
            before_publish: Some(hook),
        };
        run(&plan, &options).map(|_| ())
    }

    /// The gate `pseudonymise` puts before publishing: a staged dataset that verify would fail
    /// does not go live. The input check already refuses free text in kept columns, so here the
    /// staged dataset is spoilt in the hook itself, the way a writer's bug would spoil it.
    #[test]
    fn a_staged_dataset_that_verify_fails_is_not_published() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        pseudonymise(&good, &|staging: &Path, _: &Path| {
            verify_before_publish(staging, None)
        })
        .unwrap();
        assert!(good.join("vkb/2025-03/manifest.json").is_file());

        let bad = dir.path().join("bad");
        let err = pseudonymise(&bad, &|staging: &Path, _: &Path| {
            std::fs::write(
                staging.join("parquet/rd=BY/notes.csv"),
                "Meier;0221 1234567\n",
            )
            .unwrap();
            verify_before_publish(staging, None)
        })
        .unwrap_err();
        assert!(err.is_check_failure(), "{err}");
        assert!(err.to_string().contains("unlisted-file"), "{err}");
        assert!(!bad.join("vkb/2025-03").exists(), "nothing went live");
    }
}
