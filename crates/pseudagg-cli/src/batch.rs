//! `pseudagg run`: one month end to end, for a scheduler.
//!
//! Every step writes into a staging root beside the outputs (`OUT/.run-<month>.staging/`); each
//! output is verified there; only when every step passed are the outputs moved into place, each in
//! one atomic rename (an exchange when the month exists already). A failed step leaves the published
//! outputs as they were, is recorded in the protocol, and is named in the exit message. A lock file
//! per month keeps two runs of the same month apart.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pseudagg_core::{Error, Month};
use pseudagg_governance::Entry;
use pseudagg_io::{Encoding, StagingDir};
use pseudagg_keys::MasterKey;
use pseudagg_pipeline::Plan;
use pseudagg_report::ReportPlan;
use serde::Deserialize;
use tracing::{error, info, info_span};

use crate::commands::{dataset_refs, pseudonymise, report, report_refs, say};
use crate::governance::{
    Announced, Context, file_ref, log, neighbour_month, outcome_of, preflight, staged_findings,
};
use crate::preflight::shown;

/// `pipelines/monthly.toml`. Paths are relative to the configuration file; `{month}` is replaced
/// by the month being run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct BatchConfig {
    /// The output root.
    pub(crate) out: String,
    /// The key file (else `--key-file` or `PSEUDAGG_KEY_FILE`).
    #[serde(default)]
    pub(crate) key_file: Option<String>,
    /// The protocol (else `--protocol`, else `protocol.jsonl` in the output root).
    #[serde(default)]
    pub(crate) protocol: Option<String>,
    /// The protocol key's file (else `--protocol-key` or `PSEUDAGG_PROTOCOL_KEY_FILE`, which
    /// win over it).
    #[serde(default)]
    pub(crate) protocol_key: Option<String>,
    #[serde(default)]
    pub(crate) pseudonymise: Vec<PseudonymiseStep>,
    #[serde(default)]
    pub(crate) report: Vec<ReportStep>,
    #[serde(default)]
    pub(crate) review_sample: Option<SampleStep>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct PseudonymiseStep {
    pub(crate) pipeline: String,
    pub(crate) input: String,
    #[serde(default)]
    pub(crate) windows_1252: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct ReportStep {
    pub(crate) definition: String,
    pub(crate) input: String,
    /// The gE register (`ge_nr;rd;ge_name`), if the report's gEs come from one.
    #[serde(default)]
    pub(crate) ge_register: Option<String>,
    #[serde(default)]
    pub(crate) windows_1252: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) struct SampleStep {
    pub(crate) per_rd: usize,
    pub(crate) seed: u64,
}

pub(crate) fn encoding(windows_1252: bool) -> Encoding {
    if windows_1252 {
        Encoding::Windows1252
    } else {
        Encoding::Utf8
    }
}

/// A finished step: its protocol record, the staged output to publish, and how long it took.
struct Done {
    name: String,
    entry: Entry,
    publish: Option<(PathBuf, PathBuf)>,
    seconds: f64,
}

/// One line of the run's closing summary, for people (a table) and schedulers (JSON): counts and
/// times only, never a value from the data.
#[derive(Debug, serde::Serialize)]
struct StepSummary {
    step: String,
    outcome: String,
    rows_in: Option<u64>,
    rows_out: Option<u64>,
    /// Report steps: the cells of every scope's table, and how many are suppressed.
    cells: Option<u64>,
    suppressed: Option<u64>,
    /// Pseudonymise steps: the quasi-identifier values k-anonymity blanked.
    values_blanked: Option<u64>,
    seconds: f64,
    outputs: usize,
}

impl StepSummary {
    fn of(d: &Done) -> Self {
        let fact = |k: &str| d.entry.details.get(k).and_then(serde_json::Value::as_u64);
        Self {
            step: d.name.clone(),
            outcome: d.entry.outcome.clone(),
            rows_in: d.entry.rows_in,
            rows_out: d.entry.rows_out,
            cells: fact("cells"),
            suppressed: fact("suppressed"),
            values_blanked: fact("values_blanked"),
            seconds: (d.seconds * 10.0).round() / 10.0,
            outputs: d.entry.outputs.len(),
        }
    }
}

/// The closing summary as a table.
fn summary_table(steps: &[StepSummary]) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut text = format!(
        "  {:<32} {:<12} {:>10} {:>10} {:>8} {:>10} {:>8} {:>7} {:>7}",
        "step", "outcome", "rows in", "rows out", "cells", "suppressed", "blanked", "outputs", "s"
    );
    for s in steps {
        let _ = write!(
            text,
            "\n  {:<32} {:<12} {:>10} {:>10} {:>8} {:>10} {:>8} {:>7} {:>7.1}",
            s.step,
            s.outcome,
            n(s.rows_in),
            n(s.rows_out),
            n(s.cells),
            n(s.suppressed),
            n(s.values_blanked),
            s.outputs,
            s.seconds
        );
    }
    text
}

/// Holds the month's lock file for the run; the file is removed when the run ends.
struct MonthLock(#[allow(dead_code)] pseudagg_governance::LockFile);

fn lock_month(out: &Path, month: Month) -> Result<MonthLock> {
    let path = out.join(format!(".pseudagg-run-{month}.lock"));
    match pseudagg_governance::LockFile::acquire(&path, false) {
        Ok(Some(l)) => Ok(MonthLock(l)),
        Ok(None) => Err(Error::Locked(format!(
            "another run of {month} is in progress (it holds {}); this one stopped without touching anything",
            path.display()
        ))
        .into()),
        Err(e) => Err(Error::io("lock", &path, e).into()),
    }
}

#[allow(clippy::too_many_lines)] // the batch, step by step
pub(crate) fn run(
    ctx: &Context,
    config: &Path,
    month: &str,
    key_file: Option<&Path>,
    dry_run: bool,
    new_key: bool,
) -> Result<()> {
    let month = Month::parse_for_run(month)?;
    let started = std::time::Instant::now();
    // Everything the month needs, before any data row is read or anything is written.
    let checked = crate::preflight::check(ctx, config, Some(month), key_file, new_key)?;
    if dry_run {
        say(&dry_run_text(&checked, config, month));
        return Ok(());
    }
    info!(checks = checked.lines.len(), "pre-flight passed");
    let resolve = |p: &str| checked.resolve(p, month);
    let cfg = &checked.cfg;
    let out = checked.out.clone();
    fs::create_dir_all(&out).map_err(|e| Error::io("create folder", &out, e))?;
    let _lock = lock_month(&out, month)?;
    // The pre-flight checked the protocol and kept the keys apart; now, under the month's lock,
    // it is made ready (an interrupted publication settled) for this run's records.
    let protocol = &checked.protocol;
    preflight(protocol, ctx)?;
    let key_path = checked.key_path.clone();
    let span = info_span!("run", month = %month).entered();

    let staging = out.join(format!(".run-{month}.staging"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::io("remove the leftover", &staging, e))?;
    }
    fs::create_dir_all(&staging).map_err(|e| Error::io("create folder", &staging, e))?;
    // The steps' outputs wait here, unchecked, until every step passed: for the owner only. Each
    // output keeps its own mode when it moves into place.
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("make private", &staging, e))?;
    }
    let mut done: Vec<Done> = Vec::new();
    let result = steps(
        ctx,
        cfg,
        &resolve,
        month,
        key_path.as_deref(),
        &staging,
        &out,
        &mut done,
    );
    let mut batch = ctx.entry("run");
    batch.month = Some(month.to_string());
    let announced = Announced::default();
    // The outputs go live only after the protocol holds their announcement.
    if let Some(id) = &checked.replaces_key {
        batch.details = serde_json::json!({"new_key": {"replaces": id}});
    }
    let result = result
        .and_then(|()| Ok(announced.announce(protocol, &batch, &targets(&done))?))
        .and_then(|()| publish(&done, &out))
        .and_then(|()| register_keys(&done, &out, month));
    announced.note(&mut batch);
    let _ = fs::remove_dir_all(&staging);

    // The protocol: each step that ran, then the batch.
    for d in &done {
        log(protocol, d.entry.clone(), &d.entry.outcome)?;
    }
    let mut details = serde_json::json!({
        "config": config.display().to_string(),
        "steps": done.iter().map(|d| serde_json::json!({"step": d.name, "outcome": d.entry.outcome})).collect::<Vec<_>>(),
    });
    if let (Some(d), serde_json::Value::Object(noted)) = (details.as_object_mut(), &batch.details) {
        d.extend(noted.clone());
    }
    batch.details = details;
    let record = log(protocol, batch, outcome_of(&result))?;
    drop(span);
    // The closing summary: a table for people; for a scheduler one final JSON event on stderr
    // and the same summary as JSON on stdout.
    let steps: Vec<StepSummary> = done.iter().map(StepSummary::of).collect();
    let head = protocol.head_of(&record);
    let seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    let summary = serde_json::json!({
        "month": month.to_string(),
        "outcome": outcome_of(&result),
        "published": result.is_ok(),
        "output_root": shown(&out),
        "protocol": shown(protocol.path()),
        "protocol_record": record.seq,
        "protocol_head": head,
        "seconds": seconds,
        "steps": steps,
    });
    info!(
        month = %month,
        outcome = outcome_of(&result),
        published = result.is_ok(),
        steps = steps.len(),
        seconds,
        protocol_record = record.seq,
        protocol_head = %head,
        summary = %summary,
        "run summary"
    );
    match result {
        Ok(()) => {
            if ctx.json {
                say(&serde_json::to_string_pretty(&summary).expect("serialises"));
            } else {
                say(&format!(
                    "run {month}: every step passed, outputs published in {} ({seconds:.1} s)\n{}\nprotocol {}: record {}, head {head}",
                    shown(&out),
                    summary_table(&steps),
                    shown(protocol.path()),
                    record.seq
                ));
            }
            Ok(())
        }
        Err(e) => {
            // The step that failed is the last one recorded, unless that one passed: then the
            // next step failed while it was being prepared.
            let failed = match done.last() {
                None => "setup".to_owned(),
                Some(d) if d.entry.outcome == "ok" => format!("the step after `{}`", d.name),
                Some(d) => d.name.clone(),
            };
            error!(step = %failed, "run failed; nothing was published");
            if ctx.json {
                say(&serde_json::to_string_pretty(&summary).expect("serialises"));
            }
            Err(e.context(format!(
                "run {month}: step `{failed}` failed, nothing of this run was published"
            )))
        }
    }
}

/// Registers the key of the month's pseudonymise steps in the output root's key register.
fn register_keys(done: &[Done], out: &Path, month: Month) -> Result<()> {
    let register = pseudagg_governance::KeyRegister::in_root(out);
    for d in done.iter().filter(|d| d.entry.command == "pseudonymise") {
        if let Some(id) = &d.entry.key_id {
            register.record(month, id)?;
        }
    }
    Ok(())
}

/// What `run --dry-run` prints: what was checked, and the steps a run would take.
fn dry_run_text(checked: &crate::preflight::Checked, config: &Path, month: Month) -> String {
    let mut text = format!(
        "dry run of {} for {month}: pre-flight passed, no data row was read, nothing was written\nchecked:",
        shown(config)
    );
    for line in &checked.lines {
        let _ = write!(text, "\n  ok  {line}");
    }
    let cfg = &checked.cfg;
    let _ = write!(text, "\na run would:");
    for s in &cfg.pseudonymise {
        let _ = write!(
            text,
            "\n  pseudonymise {} with {}, then verify it",
            shown(&checked.resolve(&s.input, month)),
            shown(&checked.resolve(&s.pipeline, month))
        );
    }
    for s in &cfg.report {
        let _ = write!(
            text,
            "\n  report {} with {}, then verify it",
            shown(&checked.resolve(&s.input, month)),
            shown(&checked.resolve(&s.definition, month))
        );
    }
    if let Some(s) = &cfg.review_sample {
        let _ = write!(text, "\n  draw the review sample, {} per RD", s.per_rd);
    }
    let _ = write!(
        text,
        "\n  publish into {} and record the run in the protocol",
        shown(&checked.resolve(&cfg.out, month))
    );
    text
}

/// What a step does: fills its protocol record, and names the staged output to publish.
type StepFn<'a> = dyn FnMut(&mut Entry) -> Result<Option<(PathBuf, PathBuf)>> + 'a;

/// Runs the steps in order into `staging`; stops at the first that fails (recorded in `done`).
#[allow(clippy::too_many_arguments, clippy::too_many_lines)] // the batch's state, and its steps in order
fn steps(
    ctx: &Context,
    cfg: &BatchConfig,
    resolve: &dyn Fn(&str) -> PathBuf,
    month: Month,
    key_path: Option<&Path>,
    staging: &Path,
    out: &Path,
    done: &mut Vec<Done>,
) -> Result<()> {
    let mut step = |name: String, entry: Entry, f: &mut StepFn<'_>| -> Result<()> {
        let _s = info_span!("step", step = %name).entered();
        let mut entry = entry;
        let started = std::time::Instant::now();
        let result = f(&mut entry);
        let seconds = started.elapsed().as_secs_f64();
        outcome_of(&result).clone_into(&mut entry.outcome);
        let publish = result.as_ref().ok().cloned().flatten();
        done.push(Done {
            name: name.clone(),
            entry,
            publish,
            seconds,
        });
        match result {
            Ok(_) => {
                info!(step = %name, seconds = format!("{seconds:.1}"), "step passed");
                Ok(())
            }
            Err(e) => Err(e),
        }
    };

    let mut datasets = Vec::new();
    for s in &cfg.pseudonymise {
        let plan = Plan::load(&resolve(&s.pipeline))?;
        let input = resolve(&s.input);
        let key_path = key_path.ok_or_else(|| {
            Error::Usage("no key file: give --key-file, PSEUDAGG_KEY_FILE or `key-file` in the configuration".into())
        })?;
        let key = MasterKey::load(key_path)?;
        let name = plan.definition.name.clone();
        let mut entry = ctx.entry("pseudonymise");
        entry.subject = Some(name.clone());
        entry.month = Some(month.to_string());
        entry.key_id = Some(key.id().to_string());
        step(format!("pseudonymise {name}"), entry, &mut |entry| {
            let o = pseudonymise(
                &plan,
                &input,
                month,
                encoding(s.windows_1252),
                &key,
                staging,
                true,
                None,
            )?;
            dataset_refs(entry, &o);
            Ok(None)
        })?;
        let dir = staging.join(&name).join(month.to_string());
        let mut entry = ctx.entry("verify");
        entry.subject = Some(name.clone());
        entry.month = Some(month.to_string());
        step(format!("verify {name}"), entry, &mut |entry| {
            let target = out.join(&name).join(month.to_string());
            verify_staged(
                &dir,
                Some(&input),
                Some(key_path),
                neighbour_month(&target),
                entry,
                ctx.json,
            )?;
            Ok(Some((dir.clone(), out.join(&name).join(month.to_string()))))
        })?;
        datasets.push((name, dir));
    }
    for s in &cfg.report {
        let plan = ReportPlan::load(&resolve(&s.definition))?;
        let input = resolve(&s.input);
        let name = plan.definition.name.clone();
        let mut entry = ctx.entry("report");
        entry.subject = Some(name.clone());
        entry.month = Some(month.to_string());
        step(format!("report {name}"), entry, &mut |entry| {
            let o = report(
                &plan,
                &input,
                month,
                encoding(s.windows_1252),
                staging,
                None,
                s.ge_register.as_deref().map(resolve).as_deref(),
                true,
                None,
            )?;
            report_refs(entry, &o, staging);
            Ok(None)
        })?;
        let dir = staging.join(&name).join(month.to_string());
        let mut entry = ctx.entry("verify");
        entry.subject = Some(name.clone());
        entry.month = Some(month.to_string());
        step(format!("verify {name}"), entry, &mut |entry| {
            verify_staged(&dir, None, None, None, entry, ctx.json)?;
            Ok(Some((dir.clone(), out.join(&name).join(month.to_string()))))
        })?;
    }
    if let Some(s) = &cfg.review_sample {
        for (name, dir) in &datasets {
            let file = staging.join(format!("review-sample-{name}-{month}.csv"));
            let target = out
                .join("review-samples")
                .join(format!("{name}-{month}.csv"));
            let mut entry = ctx.entry("sample");
            entry.subject = Some(name.clone());
            entry.month = Some(month.to_string());
            step(format!("review-sample {name}"), entry, &mut |entry| {
                let sample = crate::governance::write_sample(dir, s.per_rd, s.seed, &file)?;
                entry.rows_out = Some(sample.drawn.len() as u64);
                entry.outputs.push(file_ref(
                    &file,
                    &format!("review-samples/{name}-{month}.csv"),
                ));
                entry.details = serde_json::json!({"per_rd": s.per_rd, "seed": s.seed});
                Ok(Some((file.clone(), target.clone())))
            })?;
        }
    }
    Ok(())
}

fn verify_staged(
    dir: &Path,
    input: Option<&Path>,
    key_file: Option<&Path>,
    against: Option<PathBuf>,
    entry: &mut Entry,
    json: bool,
) -> Result<()> {
    let options = pseudagg_verify::Options {
        input: input.map(Path::to_owned),
        input_windows_1252: false,
        key_file: key_file.map(Path::to_owned),
        against,
        max_linkable: None,
    };
    let v = crate::commands::with_progress(json, |progress| {
        pseudagg_verify::verify_watched(dir, &options, Some(progress))
    })?;
    entry.details = serde_json::json!({"passed": v.passed, "findings_per_rule": v.counts});
    if v.passed {
        Ok(())
    } else {
        Err(staged_findings(&v).into())
    }
}

/// What the batch will publish: each target and the staged file whose hash it will have (a
/// folder's `manifest.json`, or the file itself).
fn targets(done: &[Done]) -> Vec<(PathBuf, PathBuf)> {
    done.iter()
        .filter_map(|d| d.publish.as_ref())
        .map(|(from, to)| {
            if from.is_dir() {
                (to.join("manifest.json"), from.join("manifest.json"))
            } else {
                (to.clone(), from.clone())
            }
        })
        .collect()
}

/// Moves every staged output into place: folders by an atomic rename (or exchange), files by a
/// rename over the earlier one.
fn publish(done: &[Done], out: &Path) -> Result<()> {
    let _s = info_span!("publish").entered();
    // Every target first: a month folder holding files pseudagg did not write stops the run
    // before any output moves, never half-way.
    for (from, to) in done.iter().filter_map(|d| d.publish.as_ref()) {
        if from.is_dir() {
            pseudagg_io::check_replaceable(to)?;
        }
    }
    for (from, to) in done.iter().filter_map(|d| d.publish.as_ref()) {
        if from.is_dir() {
            let target = StagingDir::create(to)?;
            fs::remove_dir(target.path()).map_err(|e| Error::io("prepare", target.path(), e))?;
            fs::rename(from, target.path()).map_err(|e| Error::io("move", from, e))?;
            target.commit()?;
        } else {
            let parent = to.parent().unwrap_or(out);
            fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
            fs::rename(from, to).map_err(|e| Error::io("move into place", to, e))?;
        }
        info!(target = %to.display(), "published");
    }
    Ok(())
}
