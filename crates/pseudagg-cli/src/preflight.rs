//! Pre-flight of a batch (`pseudagg check --config`, `run --dry-run`, and the start of every
//! `run`): everything the month needs is checked before any data row is read, and every problem
//! is named with its file and the configuration key it comes from.
//!
//! Checked: the configuration against its schema; every pipeline and report definition; every
//! input's existence and its header row or Parquet schema (no data row is read); gE registers;
//! the key file (mode, length, and its key id against the key that wrote the month before); the
//! protocol (its chain, and that it can be appended to); the output root (writable, and no target
//! that holds files pseudagg did not write).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pseudagg_core::{Error, Location, Month, Problem, Problems, parse_known};
use pseudagg_governance::{KeyCheck, KeyRegister, Protocol};
use pseudagg_keys::MasterKey;
use pseudagg_pipeline::Plan;
use pseudagg_report::ReportPlan;

use crate::batch::{BatchConfig, encoding};
use crate::governance::{Context, keys_apart};

/// A configuration that passed the pre-flight, with what was checked.
pub(crate) struct Checked {
    pub cfg: BatchConfig,
    /// The folder the configuration's paths are relative to.
    pub base: PathBuf,
    /// One line per thing checked, for `--dry-run` and `check --config`.
    pub lines: Vec<String>,
    /// With `--new-key`: the key id of the month's earlier runs that the key replaces.
    pub replaces_key: Option<String>,
    /// The output root.
    pub out: PathBuf,
    /// The protocol (the one given, the configuration's, or `protocol.jsonl` in `out`), with
    /// its key.
    pub protocol: Protocol,
    /// The key file (the one given, else the configuration's).
    pub key_path: Option<PathBuf>,
}

impl Checked {
    /// A configuration path with `{month}` replaced, relative to the configuration's folder.
    pub fn resolve(&self, path: &str, month: Month) -> PathBuf {
        resolve(&self.base, path, Some(month)).expect("a month is given")
    }
}

/// A path as printed: `.` and `name/..` taken out (as written, not resolved: no link is followed).
pub(crate) fn shown(path: &Path) -> String {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        out.display().to_string()
    }
}

fn resolve(base: &Path, path: &str, month: Option<Month>) -> Option<PathBuf> {
    match month {
        Some(m) => Some(base.join(path.replace("{month}", &m.to_string()))),
        None if path.contains("{month}") => None,
        None => Some(base.join(path)),
    }
}

/// The problems found so far, each at a configuration key (or an option).
struct Findings {
    problems: Problems,
    lines: Vec<String>,
}

impl Findings {
    fn add(&mut self, at: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(Location::key(at), message));
    }

    /// Adds an error of a step's check; a definition's or an input's own problems are each listed
    /// with their file and place in it.
    fn absorb(&mut self, at: &str, e: &anyhow::Error) {
        match e.downcast_ref::<Error>() {
            Some(Error::Definition { file, problems } | Error::Input { file, problems, .. }) => {
                for p in problems.items() {
                    let inner = p.location.to_string();
                    let place = if inner.is_empty() {
                        shown(file)
                    } else {
                        format!("{}, {inner}", shown(file))
                    };
                    self.add(at, format!("{place}: {}", p.message));
                }
                let hidden = problems.total() - problems.items().len();
                if hidden > 0 {
                    self.add(at, format!("{} more problem(s) in {}", hidden, shown(file)));
                }
            }
            _ => self.add(at, format!("{e:#}")),
        }
    }

    fn ok(&mut self, line: String) {
        self.lines.push(line);
    }
}

/// Runs the pre-flight of the batch configuration `config` for `month` (without a month, the
/// inputs whose path holds `{month}` and the month's key history are not checked, and say so).
/// Returns the configuration, or every problem found as one [`Error::Preflight`] (exit 2).
#[allow(clippy::too_many_lines)] // the checks, in the order of the configuration
pub(crate) fn check(
    ctx: &Context,
    config: &Path,
    month: Option<Month>,
    key_file: Option<&Path>,
    new_key: bool,
) -> Result<Checked> {
    let mut f = Findings {
        problems: Problems::with_limit(200),
        lines: Vec::new(),
    };
    let fail = |problems: Problems| -> anyhow::Error {
        Error::Preflight {
            file: config.to_owned(),
            problems,
        }
        .into()
    };
    let text = match fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) => return Err(Error::io("read the batch configuration", config, e).into()),
    };
    let (cfg, problems) = parse_known::<BatchConfig>(&text, "pipelines/monthly.toml");
    for p in problems.items() {
        f.problems.push(p.clone());
    }
    let Some(cfg) = cfg else {
        return Err(fail(f.problems));
    };
    f.ok(format!("configuration {}: valid", shown(config)));
    let base = config.parent().unwrap_or(Path::new(".")).to_owned();
    let at = |p: &str| resolve(&base, p, month);
    let month_text = month.map_or_else(|| "{month}".to_owned(), |m| m.to_string());

    // The output root, and the protocol.
    let out = at(&cfg.out);
    match &out {
        None => f.add(
            "out",
            "holds `{month}`; the output root is one folder for every month",
        ),
        Some(out) => match writable_folder(out) {
            Ok(()) => f.ok(format!("output root {}: writable", shown(out))),
            Err(why) => f.add("out", format!("{}: {why}", shown(out))),
        },
    }
    let protocol_path = ctx
        .protocol
        .clone()
        .or_else(|| cfg.protocol.as_deref().and_then(at))
        .or_else(|| out.as_ref().map(|o| o.join("protocol.jsonl")));
    let protocol_key = cfg.protocol_key.as_deref().and_then(at);
    let mut protocol = None;
    if let Some(path) = &protocol_path {
        match ctx.protocol_at(path, protocol_key.as_deref()) {
            Err(e) => f.absorb(
                if ctx.protocol_key.is_some() {
                    "--protocol-key"
                } else {
                    "protocol-key"
                },
                &e,
            ),
            Ok(p) => {
                let at_key = if ctx.protocol.is_some() {
                    "--protocol"
                } else {
                    "protocol"
                };
                match check_protocol(&p) {
                    Ok(line) => f.ok(line),
                    Err(why) => f.add(at_key, format!("{}: {why}", shown(path))),
                }
                protocol = Some(p);
            }
        }
    }

    // The key.
    let key_label = if key_file.is_some() {
        "--key-file"
    } else {
        "key-file"
    };
    let key_path = key_file
        .map(Path::to_owned)
        .or_else(|| cfg.key_file.as_deref().and_then(at));
    let mut key = None;
    if !cfg.pseudonymise.is_empty() {
        match key_path.as_deref().map(MasterKey::load) {
            None => f.add(
                key_label,
                "no key file: the `pseudonymise` steps need one; give --key-file, \
                 PSEUDAGG_KEY_FILE or `key-file` in the configuration",
            ),
            Some(Err(e)) => f.add(key_label, e.to_string()),
            Some(Ok(k)) => {
                if let Some(p) = &protocol
                    && let Err(e) = keys_apart(p, &k)
                {
                    f.absorb(key_label, &e);
                }
                f.ok(format!("key file: mode 0600, valid, key id {}", k.id()));
                key = Some(k);
            }
        }
    }

    // The steps.
    let mut replaces_key = None;
    let mut names: Vec<(String, String)> = Vec::new();
    for (i, s) in cfg.pseudonymise.iter().enumerate() {
        let step = format!("pseudonymise[{i}]");
        let Some(plan) = load(
            &mut f,
            &format!("{step}.pipeline"),
            at(&s.pipeline),
            Plan::load,
        ) else {
            continue;
        };
        let name = plan.definition.name.clone();
        step_checks(
            &mut f,
            &mut names,
            (&step, "pipeline"),
            &name,
            &plan.schema,
            (at(&s.input), &s.input, encoding(s.windows_1252)),
            out.as_deref().zip(month),
        );
        if let (Some(out), Some(m)) = (&out, month)
            && let Some(k) = &key
        {
            match month_key(out, protocol.as_ref(), &name, m, k.id().as_str(), new_key) {
                Err(e) => f.absorb(key_label, &e),
                Ok((KeyCheck::First, _)) => f.ok(format!("{name} {m}: first run of the month")),
                Ok((KeyCheck::Same, source)) => {
                    f.ok(format!("{name} {m}: the same key as before ({source})"));
                }
                Ok((KeyCheck::Replaces(id), source)) => {
                    f.ok(format!(
                            "{name} {m}: --new-key replaces the key id {id} ({source}); every pseudonym of the month changes"
                        ));
                    replaces_key = Some(id);
                }
            }
        }
    }
    for (i, s) in cfg.report.iter().enumerate() {
        let step = format!("report[{i}]");
        let Some(plan) = load(
            &mut f,
            &format!("{step}.definition"),
            at(&s.definition),
            ReportPlan::load,
        ) else {
            continue;
        };
        let name = plan.definition.name.clone();
        step_checks(
            &mut f,
            &mut names,
            (&step, "definition"),
            &name,
            &plan.schema,
            (at(&s.input), &s.input, encoding(s.windows_1252)),
            out.as_deref().zip(month),
        );
        if let Some(register) = &s.ge_register {
            load(
                &mut f,
                &format!("{step}.ge-register"),
                at(register),
                pseudagg_report::read_register,
            );
        }
    }
    for (i, (name, step)) in names.iter().enumerate() {
        if let Some((_, first)) = names[..i].iter().find(|(n, _)| n == name) {
            f.add(
                step,
                format!(
                    "writes `{name}`, as `{}` does: two steps may not write the same output; \
                     give one of the definitions another `name`",
                    pseudagg_core::key_shown(first)
                ),
            );
        }
    }
    if let Some(s) = &cfg.review_sample {
        if s.per_rd == 0 {
            f.add(
                "review-sample.per-rd",
                "is 0; at least 1 case per RD is drawn (seeds 001 and 003 ask for at least 10)",
            );
        }
        if cfg.pseudonymise.is_empty() {
            f.add(
                "review-sample",
                "draws from the pseudonymised datasets, but there is no `[[pseudonymise]]` step",
            );
        }
    }
    if cfg.pseudonymise.is_empty() && cfg.report.is_empty() {
        f.add(
            "",
            "has no step: add a `[[pseudonymise]]` or a `[[report]]` table",
        );
    }
    if month.is_none() {
        f.ok(format!(
            "not checked without --month: inputs whose path holds {{month}}, targets, the month's key history ({month_text})"
        ));
    }
    match (out, protocol) {
        (Some(out), Some(protocol)) if f.problems.is_empty() => Ok(Checked {
            cfg,
            base,
            lines: f.lines,
            replaces_key,
            out,
            protocol,
            key_path,
        }),
        _ => Err(fail(f.problems)),
    }
}

/// A step's checks once its definition is loaded: the output name is one no other step writes
/// (noted in `names`), the input exists and its header fits `schema`, and the month's target in
/// the output root holds nothing pseudagg did not write.
fn step_checks(
    f: &mut Findings,
    names: &mut Vec<(String, String)>,
    (step, definition_key): (&str, &str),
    name: &str,
    schema: &pseudagg_core::Schema,
    (path, written, encoding): (Option<PathBuf>, &str, pseudagg_io::Encoding),
    root_and_month: Option<(&Path, Month)>,
) {
    names.push((name.to_owned(), step.to_owned()));
    input(f, &format!("{step}.input"), path, written, schema, encoding);
    if let Some((out, month)) = root_and_month
        && let Err(e) = pseudagg_io::check_replaceable(&out.join(name).join(month.to_string()))
    {
        f.add(&format!("{step}.{definition_key}"), e.to_string());
    }
}

/// Loads a definition (or register) named at configuration key `at`.
fn load<T>(
    f: &mut Findings,
    at: &str,
    path: Option<PathBuf>,
    loader: impl FnOnce(&Path) -> pseudagg_core::Result<T>,
) -> Option<T> {
    let path = path.or_else(|| {
        f.add(at, "holds `{month}`; a definition is the same every month");
        None
    })?;
    if !path.is_file() {
        f.add(
            at,
            format!(
                "{} does not exist (paths are relative to the configuration's folder)",
                shown(&path)
            ),
        );
        return None;
    }
    match loader(&path) {
        Ok(v) => {
            f.ok(format!("{}: valid", shown(&path)));
            Some(v)
        }
        Err(e) => {
            f.absorb(at, &e.into());
            None
        }
    }
}

/// Checks an input's existence and header row (or Parquet schema).
fn input(
    f: &mut Findings,
    at: &str,
    path: Option<PathBuf>,
    written: &str,
    schema: &pseudagg_core::Schema,
    encoding: pseudagg_io::Encoding,
) {
    let Some(path) = path else {
        f.ok(format!("{written}: not checked without --month"));
        return;
    };
    if !path.is_file() {
        f.add(
            at,
            format!("{} does not exist (paths are relative to the configuration's folder; `{{month}}` is the month run)", shown(&path)),
        );
        return;
    }
    match pseudagg_io::check_header(&path, schema, encoding) {
        Ok(()) => f.ok(format!(
            "{}: its columns match the schema `{}` (rows are checked when it is read)",
            shown(&path),
            schema.name
        )),
        Err(e) => f.absorb(at, &e.into()),
    }
}

/// The key id that wrote `name`'s month before, and where that is known from: the output root's
/// key register, else the published output's manifest, else the protocol's last successful
/// pseudonymise of the month.
fn key_before(
    out: &Path,
    protocol: Option<&Protocol>,
    name: &str,
    month: Month,
) -> Result<Option<(String, String)>> {
    let register = KeyRegister::in_root(out);
    if let Some(id) = register.get(month)? {
        return Ok(Some((id, shown(register.path()))));
    }
    let manifest = out.join(name).join(month.to_string()).join("manifest.json");
    let from_manifest = fs::read(&manifest)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| Some(v.get("key_id")?.as_str()?.to_owned()));
    if let Some(id) = from_manifest {
        return Ok(Some((id, shown(&manifest))));
    }
    let m = month.to_string();
    Ok(protocol
        .filter(|p| p.path().exists())
        .and_then(|p| p.records().ok())
        .and_then(|records| {
            records.into_iter().rev().find(|r| {
                r.entry.command == "pseudonymise"
                    && r.entry.outcome == "ok"
                    && r.entry.month.as_deref() == Some(&m)
                    && r.entry.key_id.is_some()
            })
        })
        .map(|r| {
            (
                r.entry.key_id.unwrap_or_default(),
                format!("protocol record {}", r.seq),
            )
        }))
}

/// Checks that `key_id` is the key that wrote the month before (see [`key_before`]): another key
/// is refused (exit 2) unless `new_key`. Returns what was found, and where.
pub(crate) fn month_key(
    out: &Path,
    protocol: Option<&Protocol>,
    name: &str,
    month: Month,
    key_id: &str,
    new_key: bool,
) -> Result<(KeyCheck, String)> {
    Ok(match key_before(out, protocol, name, month)? {
        None => (KeyCheck::First, String::new()),
        Some((id, source)) if id == key_id => (KeyCheck::Same, source),
        Some((id, source)) if new_key => (KeyCheck::Replaces(id), source),
        Some((id, source)) => {
            return Err(Error::Key(format!(
                "the key (id {key_id}) is not the key that wrote {name} {month} before (id {id}, \
                 {source}): every pseudonym of the month would change. Nothing was read or \
                 written. Give the month's key (a production key is restored from its backup); \
                 to replace the month's key on purpose (it leaked, say), give --new-key: the \
                 change is recorded in the protocol"
            ))
            .into());
        }
    })
}

/// The protocol can be trusted and appended to: a regular file whose chain verifies (sealed
/// records need their key), or a new file in a writable folder.
fn check_protocol(p: &Protocol) -> std::result::Result<String, String> {
    let path = p.path();
    match fs::symlink_metadata(path) {
        Err(_) => {
            let folder = path
                .parent()
                .filter(|x| !x.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            writable_folder(folder)?;
            Ok(format!(
                "protocol {}: new, its folder is writable",
                shown(path)
            ))
        }
        Ok(meta) if !meta.is_file() => Err("is not a regular file".into()),
        Ok(_) => {
            rustix::fs::access(path, rustix::fs::Access::WRITE_OK)
                .map_err(|_| "cannot be appended to by this user".to_owned())?;
            let report = p.verify().map_err(|e| e.to_string())?;
            if let Some(first) = report.problems.first() {
                return Err(format!(
                    "does not verify ({} problem(s), the first at line {}: {}); see `pseudagg protocol verify`",
                    report.problems.len(),
                    first.line,
                    first.message
                ));
            }
            if report.macs_unchecked > 0 {
                return Err(format!(
                    "is sealed (protocol key id {}), but no protocol key is given: give \
                     --protocol-key, PSEUDAGG_PROTOCOL_KEY_FILE or `protocol-key`",
                    report.sealed_by.unwrap_or_default()
                ));
            }
            Ok(format!(
                "protocol {}: {} records, chain intact{}",
                shown(path),
                report.records,
                report
                    .sealed_by
                    .map_or_else(|| ", not sealed".to_owned(), |k| format!(", sealed by {k}"))
            ))
        }
    }
}

/// The folder exists and can be written, or the nearest existing folder above it can.
fn writable_folder(path: &Path) -> std::result::Result<(), String> {
    let mut at = path;
    loop {
        match fs::metadata(at) {
            Ok(meta) if meta.is_dir() => {
                return rustix::fs::access(
                    at,
                    rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
                )
                .map_err(|_| {
                    if at == path {
                        "cannot be written by this user".to_owned()
                    } else {
                        format!(
                            "does not exist, and {} cannot be written by this user",
                            shown(at)
                        )
                    }
                });
            }
            Ok(_) => {
                return Err(if at == path {
                    "is not a folder".to_owned()
                } else {
                    format!("cannot be made: {} is not a folder", shown(at))
                });
            }
            Err(e) if at == Path::new(".") => return Err(format!("cannot be inspected: {e}")),
            Err(_) => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => at = Path::new("."),
            },
        }
    }
}
