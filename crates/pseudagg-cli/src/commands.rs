use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use pseudagg_core::{Month, Progress};
use pseudagg_governance::KeyCheck;
use pseudagg_io::{Encoding, ExtractFormat, PublishHook};
use pseudagg_keys::{MasterKey, generate_key_file};
use pseudagg_pipeline::{Plan, RunOptions, RunOutcome, run as run_pipeline};
use pseudagg_report::{ReportOptions, ReportOutcome, ReportPlan, RequestScope, run as run_report};
use pseudagg_testdata::{Format, GenOptions, Kind, generate};

use crate::cli::{Command, EncodingArg, FormatArg, KindArg, OutputFormat};
use crate::governance::{
    Announced, Context, file_ref, keys_apart, log, manifest_hook, neighbour_month, outcome_of,
    preflight, protocol_command, sample_command, verify_before_publish,
};
use crate::preflight::shown;

/// The committed VerBIS sample, embedded so that `pseudagg demo` works from anywhere.
const SAMPLE_VKB: &[u8] = include_bytes!("../../../testdata/verbis-vkb-2025-03.csv");
const SAMPLE_PIPELINE: &str = include_str!("../../../pipelines/vkb.toml");

#[allow(clippy::too_many_lines)] // one arm per command
pub(crate) fn run(command: Command, ctx: &Context) -> Result<()> {
    let json = ctx.json;
    match command {
        Command::Pseudonymise {
            pipeline,
            input,
            month,
            key_file,
            out,
            encoding,
            new_key,
            ..
        } => {
            let plan = Plan::load(&pipeline)?;
            let month = Month::parse_for_run(&month)?;
            let key = MasterKey::load(&key_file)?;
            let p = ctx.protocol(&out)?;
            keys_apart(&p, &key)?;
            preflight(&p, ctx)?;
            // One key per month: another key than the month's before is refused unless asked.
            let (key_check, _) = crate::preflight::month_key(
                &out,
                Some(&p),
                &plan.definition.name,
                month,
                key.id().as_str(),
                new_key,
            )?;
            let mut entry = ctx.entry("pseudonymise");
            entry.subject = Some(plan.definition.name.clone());
            entry.month = Some(month.to_string());
            entry.key_id = Some(key.id().to_string());
            if let KeyCheck::Replaces(id) = &key_check {
                entry.details = serde_json::json!({"new_key": {"replaces": id}});
            }
            let announced = Announced::default();
            let intent = entry.clone();
            let announce = manifest_hook(&p, &intent, &announced);
            // The independent checks first: nothing verify would stop is published.
            let hook = |staging: &Path, target: &Path| {
                verify_before_publish(staging, neighbour_month(target))?;
                announce(staging, target)
            };
            let result = pseudonymise(
                &plan,
                &input,
                month,
                encoding.into(),
                &key,
                &out,
                json,
                Some(&hook),
            );
            let result = result.and_then(|o| {
                pseudagg_governance::KeyRegister::in_root(&out).record(month, key.id().as_str())?;
                Ok(o)
            });
            announced.note(&mut entry);
            match &result {
                Ok(o) => dataset_refs(&mut entry, o),
                Err(_) => entry
                    .inputs
                    .push(file_ref(&input, &input.display().to_string())),
            }
            log(&p, entry, outcome_of(&result))?;
            print_outcome(&result?);
            Ok(())
        }
        Command::Report {
            definition,
            input,
            month,
            out,
            encoding,
            request,
            traeger_register,
            ge_register,
            ..
        } => {
            let plan = ReportPlan::load(&definition)?;
            let month = Month::parse_for_run(&month)?;
            let register = traeger_register
                .as_deref()
                .map(pseudagg_governance::TraegerRegister::load)
                .transpose()?;
            let request = match (request, &register) {
                (Some(r), Some(reg)) => Some(pseudagg_governance::Request::load(&r, month, reg)?),
                (Some(_), None) => anyhow::bail!(pseudagg_core::Error::Usage(
                    "--request needs --traeger-register: the requester's area is read from the steward's register".into()
                )),
                (None, _) => None,
            };
            let p = ctx.protocol(&out)?;
            preflight(&p, ctx)?;
            let scope = request.as_ref().map(|r| RequestScope {
                reference: r.reference.clone(),
                ges: r.scope.clone(),
            });
            let mut entry = ctx.entry("report");
            entry.subject = Some(plan.definition.name.clone());
            entry.month = Some(month.to_string());
            entry.request = request.as_ref().map(|r| r.reference.clone());
            if let Some(reg) = register.as_ref().filter(|_| request.is_some()) {
                // The register that decided the area, by its hash.
                entry.inputs.push(pseudagg_governance::FileRef {
                    path: reg.path().display().to_string(),
                    sha256: reg.sha256().to_owned(),
                });
            }
            let announced = Announced::default();
            let intent = entry.clone();
            let hook = manifest_hook(&p, &intent, &announced);
            let result = report(
                &plan,
                &input,
                month,
                encoding.into(),
                &out,
                scope,
                ge_register.as_deref(),
                json,
                Some(&hook),
            );
            announced.note(&mut entry);
            match &result {
                Ok(o) => report_refs(&mut entry, o, &out),
                Err(_) => entry
                    .inputs
                    .push(file_ref(&input, &input.display().to_string())),
            }
            log(&p, entry, outcome_of(&result))?;
            let outcome = result?;
            let m = &outcome.manifest;
            let s = &m.suppression;
            say(&format!(
                "{} {}: {} rows read, {} counted; {} cells, {} suppressed (primary {}, secondary {}), audit passed\n\
                 {} recipients (bund, {} RDs, {} gEs)\noutput: {}",
                m.report,
                m.month,
                m.rows_read,
                m.rows_counted,
                s.cells,
                s.primary + s.secondary,
                s.primary,
                s.secondary,
                m.scopes.len(),
                m.scopes.iter().filter(|x| x.starts_with("rd-")).count(),
                m.scopes.iter().filter(|x| x.starts_with("ge-")).count(),
                shown(&outcome.target)
            ));
            Ok(())
        }
        Command::Check {
            config: Some(config),
            month,
            key_file,
            new_key,
            ..
        } => {
            let month = month.as_deref().map(Month::parse_for_run).transpose()?;
            let checked =
                crate::preflight::check(ctx, &config, month, key_file.as_deref(), new_key)?;
            let mut text = format!(
                "{}: pre-flight passed{}",
                shown(&config),
                month.map_or_else(String::new, |m| format!(" for {m}"))
            );
            for line in &checked.lines {
                text.push_str("\n  ok  ");
                text.push_str(line);
            }
            say(&text);
            Ok(())
        }
        Command::Check {
            definition: Some(definition),
            ..
        } => {
            refuse_batch_config(&definition, "--definition")?;
            let plan = ReportPlan::load(&definition)?;
            let mut text = format!(
                "{}: valid. Reads `{}`, counts {} indicators by {} categories per gE, RD and Bund",
                shown(&definition),
                plan.schema.name,
                plan.definition.indicators.len(),
                plan.category_count()
            );
            // What the audit assumes beyond the subsets, for the steward to confirm.
            for (whole, parts, exhaustive) in plan.exclusive_names() {
                text.push_str(&format!(
                    "\n  exclusive: no person is in two of `{}` (parts of `{whole}`{})",
                    parts.join("`, `"),
                    if exhaustive {
                        "; together they are all of it"
                    } else {
                        ""
                    }
                ));
            }
            for (part, whole) in plan.implied_subset_names() {
                text.push_str(&format!(
                    "\n  inside: everyone in `{part}` is in `{whole}` (by their expressions)"
                ));
            }
            for (at, part, whole) in plan.position_subset_names() {
                text.push_str(&format!(
                    "\n  inside at {}: everyone in `{part}` is in `{whole}` (by the categories)",
                    at.join(" / ")
                ));
            }
            say(&text);
            Ok(())
        }
        Command::Check {
            pipeline,
            definition: None,
            config: None,
            ..
        } => {
            let pipeline = pipeline.expect("clap requires one of them");
            refuse_batch_config(&pipeline, "--pipeline")?;
            let plan = Plan::load(&pipeline)?;
            let columns: Vec<String> = plan
                .output_schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            say(&format!(
                "{}: valid. Reads `{}`, writes {} columns: {}",
                shown(&pipeline),
                plan.schema.name,
                columns.len(),
                columns.join(", ")
            ));
            Ok(())
        }
        Command::Keygen { out } => {
            let id = generate_key_file(&out)?;
            say(&format!(
                "wrote a new key to {} (mode 0600); key id {id}",
                shown(&out)
            ));
            Ok(())
        }
        Command::GenTestdata {
            kind,
            rows,
            month,
            seed,
            format,
            out,
            encoding,
            bom,
            flagged_share,
        } => {
            let month = Month::parse_for_run(&month)?;
            if !(0.0..=1.0).contains(&flagged_share) {
                return Err(pseudagg_core::Error::Usage(
                    "--flagged-share is a share from 0 to 1".into(),
                )
                .into());
            }
            let format = match format {
                Some(FormatArg::Csv) => Format::Csv,
                Some(FormatArg::Parquet) => Format::Parquet,
                None => match ExtractFormat::from_path(&out)? {
                    ExtractFormat::Csv => Format::Csv,
                    ExtractFormat::Parquet => Format::Parquet,
                },
            };
            let kind = match kind {
                KindArg::VerbisVkb => Kind::VerbisVkb,
                KindArg::OpdsPerson => Kind::OpdsPerson,
            };
            let mut opts = GenOptions::new(kind, rows, month, seed);
            opts.encoding = encoding.into();
            opts.bom = bom;
            opts.flagged_share = flagged_share;
            let started = Instant::now();
            let summary = generate(&opts, format, &out)?;
            let secs = started.elapsed().as_secs_f64();
            tracing::info!(
                rows = summary.rows,
                bytes = summary.bytes,
                seconds = secs,
                "test data written"
            );
            say(&format!(
                "wrote {} rows of {} ({} bytes) to {} in {secs:.1} s",
                summary.rows,
                kind.schema_name(),
                summary.bytes,
                shown(&out)
            ));
            Ok(())
        }
        Command::Verify {
            dir,
            month: Some(month),
            input,
            input_encoding,
            key_file,
            format,
            ..
        } => {
            let root = dir.expect("clap requires DIR without --dataset");
            let options = pseudagg_verify::Options {
                input,
                input_windows_1252: input_encoding == EncodingArg::Windows1252,
                key_file,
                against: None,
                max_linkable: None,
            };
            verify_month(ctx, &root, &month, &options, format)
        }
        Command::Verify {
            dir,
            dataset,
            input,
            input_encoding,
            key_file,
            against,
            max_linkable,
            format,
            ..
        } => {
            let dir = dir.or(dataset).expect("clap requires DIR or --dataset");
            let options = pseudagg_verify::Options {
                input,
                input_windows_1252: input_encoding == EncodingArg::Windows1252,
                key_file,
                against,
                max_linkable,
            };
            // A dataset folder is OUT/<name>/<month> (a request's one level deeper): the protocol
            // is in OUT unless given.
            let root = dir
                .parent()
                .and_then(Path::parent)
                .unwrap_or(Path::new("."));
            let p = ctx.protocol(root)?;
            preflight(&p, ctx)?;
            let mut entry = ctx.entry("verify");
            entry.inputs.push(file_ref(
                &dir.join("manifest.json"),
                &dir.join("manifest.json").display().to_string(),
            ));
            if let Some(input) = &options.input {
                entry
                    .inputs
                    .push(file_ref(input, &input.display().to_string()));
            }
            let result = with_progress(json, |progress| {
                pseudagg_verify::verify_watched(&dir, &options, Some(progress))
            });
            let outcome = match &result {
                Ok(v) => {
                    entry.month = Some(v.facts.get("month").cloned().unwrap_or_default())
                        .filter(|m| !m.is_empty());
                    entry.details =
                        serde_json::json!({ "passed": v.passed, "findings_per_rule": v.counts });
                    if v.passed { "ok" } else { "check-failed" }
                }
                Err(_) => "error",
            };
            log(&p, entry, outcome)?;
            let verdict = result?;
            print_verdict(&verdict, format);
            if verdict.passed {
                Ok(())
            } else {
                Err(pseudagg_core::Error::CheckFailed(format!(
                    "verify found {} violation{} in {}",
                    verdict.counts.values().sum::<u64>(),
                    if verdict.counts.values().sum::<u64>() == 1 {
                        ""
                    } else {
                        "s"
                    },
                    shown(&dir)
                ))
                .into())
            }
        }
        Command::Sample {
            input,
            per_rd,
            seed,
            out,
            ..
        } => sample_command(ctx, &input, per_rd, seed, &out),
        Command::Reidentify {
            pipeline,
            input,
            month,
            key_file,
            pseudonyms,
            reason,
            out,
            max,
            encoding,
            ..
        } => crate::governance::reidentify_command(
            ctx,
            &crate::governance::Lookup {
                pipeline: &pipeline,
                input: &input,
                month: &month,
                key_file: &key_file,
                pseudonyms: &pseudonyms,
                reason: &reason,
                out: &out,
                max,
                encoding: encoding.into(),
            },
        ),
        Command::Protocol { action } => protocol_command(ctx, action),
        Command::Run {
            config,
            month,
            key_file,
            dry_run,
            new_key,
            ..
        } => crate::batch::run(ctx, &config, &month, key_file.as_deref(), dry_run, new_key),
        Command::Demo { out } => demo(&out, json),
        Command::Completions { shell } => {
            let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "pseudagg", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| {
                    pseudagg_core::Error::io("write the manual page to", Path::new("stdout"), e)
                })?;
            Ok(())
        }
    }
}

impl From<EncodingArg> for Encoding {
    fn from(e: EncodingArg) -> Self {
        match e {
            EncodingArg::Utf8 => Self::Utf8,
            EncodingArg::Windows1252 => Self::Windows1252,
        }
    }
}

/// The files of a written dataset, relative to the output root, for the protocol.
pub(crate) fn dataset_refs(entry: &mut pseudagg_governance::Entry, o: &RunOutcome) {
    let m = &o.manifest;
    entry.inputs.push(pseudagg_governance::FileRef {
        path: m.input.file.clone(),
        sha256: m.input.sha256.clone(),
    });
    let rel = |f: &str| format!("{}/{}/{f}", m.pipeline, m.month);
    entry.outputs.push(file_ref(
        &o.target.join("manifest.json"),
        &rel("manifest.json"),
    ));
    entry
        .outputs
        .extend(m.files.iter().map(|f| pseudagg_governance::FileRef {
            path: rel(&f.path),
            sha256: f.sha256.clone(),
        }));
    entry.rows_in = Some(m.rows_in);
    entry.rows_out = Some(m.rows_out);
    if let Some(k) = &m.k_anonymity {
        let (rows, values) = k.blanked();
        crate::governance::add_details(
            entry,
            serde_json::json!({"rows_blanked": rows, "values_blanked": values}),
        );
    }
}

/// The files of a written report, relative to the output root, for the protocol.
pub(crate) fn report_refs(entry: &mut pseudagg_governance::Entry, o: &ReportOutcome, out: &Path) {
    let m = &o.manifest;
    entry.inputs.push(pseudagg_governance::FileRef {
        path: m.input.file.clone(),
        sha256: m.input.sha256.clone(),
    });
    let base = o.target.strip_prefix(out).map_or_else(
        |_| o.target.display().to_string(),
        |p| p.display().to_string(),
    );
    entry.outputs.push(file_ref(
        &o.target.join("manifest.json"),
        &format!("{base}/manifest.json"),
    ));
    entry
        .outputs
        .extend(m.files.iter().map(|f| pseudagg_governance::FileRef {
            path: format!("{base}/{}", f.path),
            sha256: f.sha256.clone(),
        }));
    entry.rows_in = Some(m.rows_read);
    entry.rows_out = Some(m.rows_counted);
    let sup = &m.suppression;
    crate::governance::add_details(
        entry,
        serde_json::json!({
            "cells": sup.cells,
            "suppressed": sup.primary + sup.secondary,
            "primary": sup.primary,
            "secondary": sup.secondary,
        }),
    );
}

/// A batch configuration given where a definition belongs is named as such, instead of listing
/// its keys as unknown.
fn refuse_batch_config(path: &Path, option: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).map_err(|e| pseudagg_core::Error::io("read", path, e))?;
    let batch = text.parse::<toml::Table>().is_ok_and(|t| {
        t.contains_key("out") && (t.contains_key("pseudonymise") || t.contains_key("report"))
    });
    if batch {
        return Err(pseudagg_core::Error::Usage(format!(
            "{} is a batch configuration, not a definition for {option}: check it with \
             `pseudagg check --config {}`",
            path.display(),
            path.display()
        ))
        .into());
    }
    Ok(())
}

#[allow(clippy::print_stdout)] // results for the person at the terminal
pub(crate) fn say(text: &str) {
    println!("{text}");
}

#[allow(clippy::too_many_arguments)] // the command's options, passed on
pub(crate) fn pseudonymise(
    plan: &Plan,
    input: &Path,
    month: Month,
    encoding: Encoding,
    key: &MasterKey,
    out: &Path,
    json: bool,
    before_publish: Option<&PublishHook<'_>>,
) -> Result<RunOutcome> {
    with_progress(json, |progress| {
        let options = RunOptions {
            input: input.to_owned(),
            month,
            encoding,
            out: out.to_owned(),
            key,
            progress: Some(progress),
            before_publish,
        };
        Ok(run_pipeline(plan, &options)?)
    })
}

/// Runs `f` with a progress callback. On a terminal (without JSON logs) it drives a bar per
/// phase: bytes while reading, then the suppression's units. Otherwise (a scheduler, a pipe) it
/// logs a line every few seconds with the phase, what is done and what is left, so that a long
/// step is never silent.
pub(crate) fn with_progress<T>(json: bool, f: impl FnOnce(Progress<'_>) -> T) -> T {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| ProgressBar::new(0));
    // The phase shown, and when the last line was logged.
    let state: Mutex<(String, Option<Instant>)> = Mutex::new((String::new(), None));
    let progress = |phase: &str, done: u64, total: u64| {
        let mut st = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new_phase = st.0 != phase;
        if new_phase {
            phase.clone_into(&mut st.0);
        }
        match &bar {
            Some(bar) => {
                if new_phase {
                    let template = if phase == "reading" {
                        "{spinner} reading {bytes}/{total_bytes} [{bar:30}] {eta}"
                    } else {
                        "{spinner} {msg} {pos}/{len} [{bar:30}] {eta}"
                    };
                    bar.set_style(
                        ProgressStyle::with_template(template)
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    bar.set_message(phase.to_owned());
                    bar.reset_eta();
                }
                bar.set_length(total);
                bar.set_position(done);
            }
            None => {
                let due = st.1.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
                if due && done < total {
                    st.1 = Some(Instant::now());
                    tracing::info!(phase, done, left = total - done, "progress");
                }
            }
        }
    };
    let result = f(&progress);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    result
}

/// How often a long step logs its progress off a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

#[allow(clippy::too_many_arguments)] // the command's options, passed on
pub(crate) fn report(
    plan: &ReportPlan,
    input: &Path,
    month: Month,
    encoding: Encoding,
    out: &Path,
    request: Option<RequestScope>,
    ge_register: Option<&Path>,
    json: bool,
    before_publish: Option<&PublishHook<'_>>,
) -> Result<ReportOutcome> {
    with_progress(json, |progress| {
        let options = ReportOptions {
            input: input.to_owned(),
            month,
            encoding,
            out: out.to_owned(),
            progress: Some(progress),
            request,
            ge_register: ge_register.map(Path::to_owned),
            before_publish,
        };
        Ok(run_report(plan, &options)?)
    })
}

fn print_outcome(outcome: &RunOutcome) {
    let m = &outcome.manifest;
    let mut text = format!(
        "{} {}: {} rows read, {} rows written (key id {})\n",
        m.pipeline, m.month, m.rows_in, m.rows_out, m.key_id
    );
    let risk = |rd: &str| m.k_anonymity.as_ref().and_then(|k| k.partitions.get(rd));
    for (rd, c) in &m.partitions {
        let _ = write!(
            text,
            "  rd={rd:<5} {:>8} read {:>8} written",
            c.rows_in, c.rows_out
        );
        if let Some(r) = risk(rd) {
            let _ = write!(
                text,
                " {:>8} values blanked in {:>7} rows, smallest group {}",
                r.values_blanked, r.rows_blanked, r.smallest_group
            );
        }
        text.push('\n');
    }
    if let Some(k) = &m.k_anonymity {
        let (rows, values) = k.blanked();
        let _ = writeln!(
            text,
            "k-anonymity (min-k {} over {} quasi-identifiers): {values} values blanked in {rows} of {} rows",
            k.min_k,
            k.quasi_identifiers.len(),
            m.rows_out
        );
    }
    let _ = write!(text, "output: {}", shown(&outcome.target));
    say(&text);
}

/// `verify ROOT --month M`: every output of the month in the root, one after another (the reports
/// each together with the month's others), in one protocol record. Exit 1 when any fails.
fn verify_month(
    ctx: &Context,
    root: &Path,
    month: &str,
    options: &pseudagg_verify::Options,
    format: OutputFormat,
) -> Result<()> {
    let month: Month = month.parse()?;
    let json = format == OutputFormat::Json;
    let mut folders = pseudagg_core::month_folders(root, month);
    folders.retain(|d| d.join("manifest.json").is_file());
    if folders.is_empty() {
        return Err(pseudagg_core::Error::Usage(format!(
            "{} holds no output of {month} (OUT/<name>/{month}/manifest.json); give the output root the month was written to",
            shown(root)
        ))
        .into());
    }
    let p = ctx.protocol(root)?;
    preflight(&p, ctx)?;
    let mut entry = ctx.entry("verify");
    entry.month = Some(month.to_string());
    for dir in &folders {
        entry.inputs.push(file_ref(
            &dir.join("manifest.json"),
            &dir.join("manifest.json").display().to_string(),
        ));
    }
    let mut verdicts = Vec::new();
    let mut failure = None;
    for dir in &folders {
        match with_progress(json, |progress| {
            pseudagg_verify::verify_watched(dir, options, Some(progress))
        }) {
            Ok(v) => verdicts.push(v),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let passed = failure.is_none() && verdicts.iter().all(|v| v.passed);
    entry.details = serde_json::json!({
        "passed": passed,
        "outputs": verdicts.iter().map(|v| serde_json::json!({
            "folder": v.folder, "passed": v.passed, "findings_per_rule": v.counts,
        })).collect::<Vec<_>>(),
    });
    let outcome = match (&failure, passed) {
        (Some(_), _) => "error",
        (None, true) => "ok",
        (None, false) => "check-failed",
    };
    log(&p, entry, outcome)?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if json {
        say(&serde_json::to_string_pretty(&serde_json::json!({
            "month": month.to_string(),
            "passed": passed,
            "outputs": verdicts,
        }))
        .expect("verdicts serialise"));
    } else {
        for v in &verdicts {
            print_verdict(v, format);
        }
    }
    let failed: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| v.folder.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(pseudagg_core::Error::CheckFailed(format!(
            "verify found violations in {} of the {} outputs of {month}: {}",
            failed.len(),
            verdicts.len(),
            failed.join(", ")
        ))
        .into())
    }
}

fn print_verdict(v: &pseudagg_verify::Verdict, format: OutputFormat) {
    if format == OutputFormat::Json {
        say(&serde_json::to_string_pretty(v).expect("a verdict serialises"));
        return;
    }
    let mut text = format!(
        "verify {} ({}): {}\n  checks: {}\n",
        v.folder,
        v.kind,
        if v.passed { "PASSED" } else { "FAILED" },
        v.checks.join(", ")
    );
    for (k, value) in &v.facts {
        let _ = writeln!(text, "  {k}: {value}");
    }
    for (rule, n) in &v.counts {
        let _ = writeln!(text, "  {n} x {rule}");
    }
    for f in v.findings.iter().take(50) {
        let _ = writeln!(text, "  - {f}");
    }
    let listed = v.findings.len().min(50) as u64;
    let total: u64 = v.counts.values().sum();
    if total > listed {
        let _ = writeln!(
            text,
            "  ... and {} more (--format json lists up to 100 per rule)",
            total - listed
        );
    }
    say(text.trim_end());
}

fn demo(out: &Path, json: bool) -> Result<()> {
    let work = tempfile::tempdir().context("cannot create a temporary folder")?;
    let key_path = work.path().join("demo.key");
    let key_id = generate_key_file(&key_path)?;
    let input = work.path().join("verbis-vkb-2025-03.csv");
    std::fs::write(&input, SAMPLE_VKB).context("cannot write the sample to a temporary folder")?;
    let plan = Plan::from_toml(SAMPLE_PIPELINE, Path::new("pipelines/vkb.toml"))?;
    let key = MasterKey::load(&key_path)?;
    let month: Month = "2025-03".parse().expect("valid month");
    let outcome = pseudonymise(&plan, &input, month, Encoding::Utf8, &key, out, json, None)?;
    print_outcome(&outcome);
    let verdict = pseudagg_verify::verify(&outcome.target, &pseudagg_verify::Options::default())?;
    print_verdict(&verdict, OutputFormat::Text);
    anyhow::ensure!(verdict.passed, "the demo's own output did not pass verify");
    say(&format!(
        "The demo used a throw-away key (id {key_id}), now deleted: its pseudonyms cannot be recomputed.\n\
         Each parquet/rd=<RD> folder holds only that RD's cases; manifest.json lists every file with its SHA-256."
    ));
    Ok(())
}
