use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use pseudagg_core::{Error, Month, Result, TOOL_VERSION};
use pseudagg_io::{
    ChunkWork, Encoding, ExtractReader, FileInfo, InputNote, ReadOptions, StagingDir, parse_date,
};
use rayon::prelude::*;
use serde::Serialize;
use tracing::{info, info_span};

use crate::aggregate::{Counter, Partial, read_register};
use crate::joint::{self, AtomCounter, Release, ReleaseHead, Released};
use crate::layout::{Level, ReportTable};
use crate::output::{Published, is_folder_code, scopes};
use crate::plan::ReportPlan;
use crate::suppress::{Params, protect_watched};

/// What a report run reads and where it writes.
pub struct ReportOptions<'a> {
    pub input: PathBuf,
    pub month: Month,
    pub encoding: Encoding,
    /// The output root: the report goes to `{out}/{report}/{month}/`.
    pub out: PathBuf,
    /// Told where the run is: ("reading", bytes read, bytes in all) after every batch, then the
    /// suppression's phases and their units.
    pub progress: Option<pseudagg_core::Progress<'a>>,
    /// A Traeger's request: only its gEs are written, to `{out}/{report}/requests/{reference}/{month}/`.
    pub request: Option<RequestScope>,
    /// A gE register (`ge_nr;rd;ge_name`): its gEs are the report's, and a gE of the extract
    /// outside it is an error. Without one, the gEs are those on any row of the extract.
    pub ge_register: Option<PathBuf>,
    /// Runs just before the output goes live (the protocol's announcement); an error publishes
    /// nothing.
    pub before_publish: Option<&'a pseudagg_io::PublishHook<'a>>,
}

/// What a checked request allows: its reference and the gEs it may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestScope {
    pub reference: String,
    pub ges: Vec<String>,
}

impl std::fmt::Debug for ReportOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportOptions")
            .field("input", &self.input)
            .field("month", &self.month)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

/// `manifest.json` of a report: for the data steward, not for recipients (it holds the audit).
#[derive(Debug, Clone, Serialize)]
pub struct ReportManifest {
    pub manifest_version: u32,
    pub kind: &'static str,
    pub tool: String,
    pub report: String,
    pub report_sha256: String,
    /// The reference of the Traeger's request this output answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub input_schema: String,
    pub month: String,
    pub input: InputNote,
    pub rows_read: u64,
    pub rows_counted: u64,
    pub suppression: SuppressionNote,
    /// Every suppressed cell with an interval: a secondary cell's feasible interval, a primary
    /// cell's certificate (an interval its feasible interval contains: the attacker cannot narrow
    /// the cell further). For the steward only: this manifest stays beside the recipient folders,
    /// never in one.
    pub audit: Vec<AuditNote>,
    /// What an attacker knows of the published tables besides the values: which rows add up to
    /// which. `pseudagg verify` rebuilds the relations from this and the published files.
    pub structure: StructureNote,
    pub scopes: Vec<String>,
    pub files: Vec<FileInfo>,
}

/// The additive and subset relations of the published tables. Areas: every `gE` row of an RD adds
/// up to its `RD` row, the RD rows to the `Bund` row. Categories add up to `total`.
#[derive(Debug, Clone, Serialize)]
pub struct StructureNote {
    /// The dimension column of the long tables, when there is exactly one (as before two could
    /// be declared; see `dimensions`).
    pub dimension: Option<String>,
    /// The positions of the table: with one dimension its categories and total, with two their
    /// combinations (`Ukraine / weiblich`).
    pub categories: Vec<String>,
    /// The category that is the sum of the others, when there is exactly one dimension.
    pub total: Option<String>,
    /// Every dimension: its column, its categories and its total, which sums them at every
    /// position of the other dimension.
    pub dimensions: Vec<DimensionNote>,
    pub indicators: Vec<IndicatorNote>,
    /// Groups of indicators no person is counted in two of, each with the indicator all of them
    /// are parts of (directly or through others), whose cells theirs add up to no more than:
    /// the audit uses this, as an attacker who reads the definition would.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclusive: Vec<ExclusiveNote>,
    /// `[part, whole]`: indicators whose expressions put every person of one among the other's,
    /// beyond the declared `subset_of` (the audit uses these too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub implied_subsets: Vec<[String; 2]>,
    /// Subsets that hold at one position only, where its categories put every person of one
    /// indicator among another's (the audit uses these too).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub position_subsets: Vec<PositionSubsetNote>,
}

/// `part <= whole` at the position `at` (its category of each dimension, a total's name for a
/// total).
#[derive(Debug, Clone, Serialize)]
pub struct PositionSubsetNote {
    pub at: Vec<String>,
    pub part: String,
    pub whole: String,
}

/// A group of indicators no person is counted in two of, and the indicator they are parts of.
#[derive(Debug, Clone, Serialize)]
pub struct ExclusiveNote {
    pub whole: String,
    pub parts: Vec<String>,
    /// The parts hold every person of the whole, which is then their sum (written only then:
    /// a manifest without it says no more than the parts' sum is at most the whole).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub exhaustive: bool,
}

/// One dimension of the published tables.
#[derive(Debug, Clone, Serialize)]
pub struct DimensionNote {
    pub name: String,
    pub categories: Vec<String>,
    pub total: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndicatorNote {
    pub name: String,
    /// This indicator counts a subset of the named one.
    pub subset_of: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuppressionNote {
    pub threshold: u64,
    pub min_interval_width: u64,
    /// The attacker models protected against: `published` (everything published for the month,
    /// together) and, by default, `insider-ge` (plus one gE's own exact counts).
    pub attacker_models: Vec<&'static str>,
    pub cells: usize,
    pub primary: usize,
    pub secondary: usize,
    /// The people the secondary cells count (the sum of their true values): the information
    /// they cost. For the steward: this manifest never reaches a recipient.
    pub secondary_mass: u64,
    /// Secondary cells any safe pattern needs at least: the covering program's bound
    /// (every relation holding a suppressed cell holds another; under the insider model, one
    /// that no other single gE knows). `None` when the program did not run.
    pub secondary_lower_bound: Option<usize>,
    pub rounds: usize,
    /// The month's released reports this one was protected together with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joint: Option<JointNote>,
}

/// How a report was protected together with the month's released reports.
#[derive(Debug, Clone, Serialize)]
pub struct JointNote {
    /// The released reports (`report` or `report (request R)`).
    pub with: Vec<String>,
    /// Combinations of every definition's predicates, per gE, with people in them (from which the
    /// containments between the reports' cells are found).
    pub atoms: usize,
    /// Groups of people one report's cell counts beyond another's, protected like cells.
    pub groups: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditNote {
    pub level: &'static str,
    pub rd: Option<String>,
    pub ge_nr: Option<String>,
    pub category: String,
    pub indicator: String,
    pub primary: bool,
    /// `feasible` (secondary cells: the whole interval the attacker can compute) or `certificate`
    /// (primary cells: an interval inside it that already shows protection).
    pub interval: &'static str,
    pub lower: f64,
    /// `None`: unbounded.
    pub upper: Option<f64>,
}

/// The outcome of a report run.
#[derive(Debug, Clone)]
pub struct ReportOutcome {
    pub target: PathBuf,
    pub manifest: ReportManifest,
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Refuses an output root inside an existing output: each month's report is a dataset of its own.
fn check_out(out: &Path) -> Result<()> {
    let mut at = Some(out);
    while let Some(dir) = at {
        if dir.join("manifest.json").is_file() {
            return Err(Error::Refused(format!(
                "{} lies inside the existing output {}; each month's report is a dataset of its own, \
                 and writing months together would build a time series: choose an output root outside it",
                out.display(),
                dir.display()
            )));
        }
        at = dir.parent();
    }
    Ok(())
}

/// Reads the extract, counts, suppresses, audits and writes every recipient's part, atomically.
/// A failed audit is [`Error::CheckFailed`]: nothing is published.
#[allow(clippy::too_many_lines)] // the stages in order
pub fn run(plan: &ReportPlan, options: &ReportOptions<'_>) -> Result<ReportOutcome> {
    let d = &plan.definition;
    let _span = info_span!("report", report = %d.name, month = %options.month).entered();
    check_out(&options.out)?;
    let target = target_of(plan, options)?;
    // The month's released reports: this one is protected together with them (a regenerated
    // report replaces its own release).
    let (previous, fixed): (Vec<Released>, Vec<Released>) =
        joint::find_releases(&options.out, options.month)?
            .into_iter()
            .partition(|r| r.output == target);
    // Recipients keep what they received: a released month's report is regenerated with its
    // own definition, never redefined under its name (the two would be differenced).
    if let Some(p) = previous
        .iter()
        .find(|p| p.release.definition_sha256 != plan.definition_sha256)
    {
        return Err(Error::Refused(format!(
            "{} of {} was released with another definition (SHA-256 {}), and its recipients keep it; nothing was written. Give the changed definition another `name`: it is then protected together with the released one",
            p.release.label(),
            options.month,
            p.release.definition_sha256
        )));
    }
    let fixed_plans: Vec<ReportPlan> = fixed
        .iter()
        .map(|r| released_plan(r, plan))
        .collect::<Result<_>>()?;

    let mut read = ReadOptions::new(options.month);
    read.encoding = options.encoding;
    // Only the columns the definitions count by (and the month and uniqueness checks) are read
    // from a Parquet extract, each checked cell by cell; the others by name and type.
    let mut columns: Vec<usize> = std::iter::once(plan)
        .chain(&fixed_plans)
        .flat_map(ReportPlan::columns_read)
        .collect();
    columns.sort_unstable();
    columns.dedup();
    read.columns = Some(columns);
    // A Parquet extract's text columns come as dictionaries: each value is judged once, by the
    // checks and by the definitions' expressions, and rows are told apart by key.
    read.dictionaries = true;
    let month_end =
        parse_date(&options.month.last_day().format("%Y-%m-%d").to_string()).expect("a valid day");
    let register = options
        .ge_register
        .as_deref()
        .map(read_register)
        .transpose()?;
    // Each chunk is counted on the reading threads, by every report of the month; the counts
    // are merged here in file order.
    let classify = !fixed_plans.is_empty();
    // This report's plan first, then the released ones.
    let plans: Arc<Vec<ReportPlan>> =
        Arc::new(std::iter::once(plan.clone()).chain(fixed_plans).collect());
    read.work = Some(ChunkWork::new({
        let plans = plans.clone();
        move |batch: &RecordBatch, first_row| {
            plans
                .iter()
                .map(|p| Partial::count(p, month_end, batch, first_row, classify))
                .collect::<Vec<_>>()
        }
    }));
    let mut reader = ExtractReader::open(&options.input, &plan.schema, read)?;
    let mut counters: Vec<Counter> = plans
        .iter()
        .map(|p| match &register {
            Some(r) => Counter::with_register(p, month_end, r.clone()),
            None => Counter::new(p, month_end),
        })
        .collect();
    let mut atoms = AtomCounter::default();
    {
        let _s = info_span!("aggregate", reports = counters.len()).entered();
        while let Some((batch, partials)) = reader.next_worked::<Vec<Partial>>()? {
            let classes: Vec<_> = counters
                .iter_mut()
                .zip(partials)
                .map(|(c, p)| c.merge(p, &batch, classify))
                .collect();
            if classify {
                atoms.add(&classes);
            }
            if let Some(progress) = options.progress {
                let (done, total) = reader.progress();
                progress("reading", done, total);
            }
        }
    }
    let input = reader.finish()?;
    let mut all_counts = Vec::new();
    for counter in counters {
        all_counts.push(counter.finish().map_err(|problems| Error::Input {
            file: options.input.clone(),
            schema: plan.schema.name.clone(),
            problems,
        })?);
    }
    for r in &fixed {
        if r.release.input_sha256 != input.sha256 {
            return Err(Error::Refused(format!(
                "{} of {} was counted from another extract (SHA-256 {}), and two extracts of one month must not be published side by side; nothing was written. To publish a corrected extract, move the month's released reports out of {} and run every report of the month again",
                r.release.label(),
                options.month,
                r.release.input_sha256,
                options.out.display()
            )));
        }
    }
    let counts = all_counts.remove(0);
    info!(
        rows_read = counts.rows_read,
        rows_counted = counts.rows_counted,
        ges = counts.ges.len(),
        "extract counted"
    );

    let rt = ReportTable::build(plan, &counts);
    let released_rts: Vec<ReportTable> = plans[1..]
        .iter()
        .zip(&all_counts)
        .map(|(p, c)| ReportTable::build(p, c))
        .collect();
    let params = Params {
        threshold: d.suppression.threshold,
        min_width: d.suppression.min_interval_width,
        insider: d.suppression.insider,
    };
    let narrowed = |iv: &crate::audit::Interval| {
        format!(
            "could be narrowed to [{:.1}, {}]",
            iv.lower,
            iv.upper.map_or("unbounded".into(), |u| format!("{u:.1}"))
        )
    };
    // Counts that break what the definition says of its indicators (a guard: the count refuses
    // such rows first).
    let unrelated = |e: String| Error::CheckFailed(format!("{e}; nothing was published"));
    let (pattern, joint_note, relations) = if fixed.is_empty() {
        // The engine's table: the published one, plus what exclusive indicators tell.
        let mut table = rt.table.clone();
        rt.add_exclusions(&mut table, 0).map_err(unrelated)?;
        let _s = info_span!("suppress", cells = table.len()).entered();
        let mut pattern = protect_watched(&table, params, options.progress).map_err(|u| {
            let cells: Vec<String> = u
                .cells
                .iter()
                .filter(|(c, _)| *c < rt.table.len())
                .take(20)
                .map(|(c, iv)| {
                    let (area, cat, ind) = locate(&rt, *c);
                    format!("  - {area}, {cat}{ind}: {}", narrowed(iv))
                })
                .collect();
            Error::CheckFailed(format!(
                "the disclosure audit failed, so nothing was published: {}.\n{}",
                u.reason,
                listed(cells, u.cells.len())
            ))
        })?;
        let n = rt.table.len();
        pattern.suppressed.truncate(n);
        pattern.primary.truncate(n);
        pattern.audit.retain(|&(c, _)| c < n);
        (pattern, None, joint::Records::default())
    } else {
        // A regenerated report (or a request of a released definition) starts from the released
        // pattern: the same extract and definitions give the same cells.
        let start = previous
            .iter()
            .chain(&fixed)
            .find(|r| {
                r.release.definition_sha256 == plan.definition_sha256
                    && r.release.input_sha256 == input.sha256
            })
            .map(|r| joint::pattern_of(&r.release, &rt));
        let tables: Vec<&ReportTable> = std::iter::once(&rt).chain(&released_rts).collect();
        let releases: Vec<&Release> = fixed.iter().map(|r| &r.release).collect();
        let atom_counts = atoms.finish();
        let mut joint = joint::build(
            &tables,
            &releases,
            &atom_counts,
            start.as_deref(),
            params.threshold,
        )?;
        for (t, (rt, &offset)) in tables.iter().zip(&joint.offsets).enumerate() {
            let wholes = rt
                .add_exclusions(&mut joint.table, offset)
                .map_err(unrelated)?;
            joint.origin.extend(
                wholes
                    .into_iter()
                    .map(|whole| joint::Origin::Rest { table: t, whole }),
            );
        }
        debug_assert_eq!(joint.origin.len(), joint.table.len());
        let labels: Vec<String> = releases.iter().map(|r| r.label()).collect();
        info!(
            with = %labels.join(", "),
            atoms = joint.atoms,
            groups = joint.groups,
            cells = joint.table.len(),
            "protecting the report together with the month's released reports"
        );
        let _s = info_span!("suppress", cells = joint.table.len()).entered();
        let describe = |c: usize| -> String {
            let of = |(t, cell): (usize, usize)| {
                let (area, cat, ind) = locate(tables[t], cell);
                if t == 0 {
                    format!("this report: {area}, {cat}{ind}")
                } else {
                    format!("{}: {area}, {cat}{ind}", labels[t - 1])
                }
            };
            let Some(&origin) = joint.origin.get(c) else {
                return "people of one combination of the reports' predicates".to_owned();
            };
            match origin {
                joint::Origin::Cell { table, cell } => of((table, cell)),
                joint::Origin::Group { x, y } => {
                    format!("the people {} counts beyond {}", of(x), of(y))
                }
                joint::Origin::Rest { table, whole } => {
                    format!(
                        "the people of {} in none of its exclusive indicators",
                        of((table, whole))
                    )
                }
                joint::Origin::Both { x, y } => {
                    format!("the people both {} and {} count", of(x), of(y))
                }
            }
        };
        // The atoms of the month's reports hold every relation between their cells; the final
        // audit lifts the pattern's points onto them (see `lift`). Where it finds a cell
        // narrowed, the atoms of the gEs concerned join the table, and the pattern is sought
        // again, until the audit passes or the protection is refused.
        let area_of_nr: std::collections::HashMap<&str, usize> = rt
            .areas
            .iter()
            .enumerate()
            .filter_map(|(a, area)| area.ge.as_ref().map(|g| (g.nr.as_str(), a)))
            .collect();
        let ge_area: Vec<usize> = counts
            .ges
            .iter()
            .map(|g| {
                area_of_nr.get(g.nr.as_str()).copied().ok_or_else(|| {
                    Error::Refused(
                        "a counted gE has no row in the report's grid (a bug); nothing was written"
                            .into(),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let mut view = crate::lift::Atoms::new(&tables, &joint.offsets, &atom_counts, &ge_area);
        view.restrict(&joint.table);
        // The first 20 cells, each with how far it could be narrowed.
        let narrowed_cells = |cells: &[(usize, crate::audit::Interval)]| {
            let shown: Vec<String> = cells
                .iter()
                .take(20)
                .map(|(c, iv)| format!("  - {}: {}", describe(*c), narrowed(iv)))
                .collect();
            listed(shown, cells.len())
        };
        let (mut pattern, lifted) =
            crate::lift::protect_together(&joint, &view, params, options.progress).map_err(
                |refusal| match refusal {
                    crate::lift::Refusal::Engine(u) => {
                        Error::CheckFailed(format!(
                            "this report cannot be protected together with the month's released reports ({}) without changing them, so nothing was published: {}.\n{}\nChange the definition, or, if the released reports may be withdrawn, move their outputs away and run every report of the month again",
                            labels.join(", "),
                            u.reason,
                            narrowed_cells(&u.cells)
                        ))
                    }
                    crate::lift::Refusal::Narrowed(lifted) => {
                        Error::CheckFailed(format!(
                            "this report cannot be published beside the month's released reports ({}): the people their cells count in common let these cells be narrowed, so nothing was published.\n{}\nChange the definition, or, if the released reports may be withdrawn, move their outputs away and run every report of the month again",
                            labels.join(", "),
                            narrowed_cells(&lifted.unprotected)
                        ))
                    }
                    crate::lift::Refusal::Failed(e) => Error::CheckFailed(format!(
                        "the audit over the atoms of the month's reports failed ({e}), so nothing was published"
                    )),
                },
            )?;
        if !lifted.inherited.is_empty() {
            let cells: Vec<String> = lifted
                .inherited
                .iter()
                .take(20)
                .map(|&c| format!("  - {}", describe(c)))
                .collect();
            tracing::warn!(
                cells = lifted.inherited.len(),
                "these cells can be narrowed by their own report alone, through what one person can be counted in together beyond the subsets its definition declares (two indicators that exclude each other, say), which the single-report audit does not model; the reports of the month together narrow them no further, so this is not refused. Coarser categories or fewer indicators in that definition avoid it:\n{}",
                listed(cells, lifted.inherited.len())
            );
        }
        let n = rt.table.len();
        pattern.suppressed.truncate(n);
        pattern.primary.truncate(n);
        pattern.audit.retain(|&(c, _)| c < n);
        let note = JointNote {
            with: labels,
            atoms: joint.atoms,
            groups: joint.groups,
        };
        let names: Vec<(String, Option<String>)> = std::iter::once((
            d.name.clone(),
            options.request.as_ref().map(|r| r.reference.clone()),
        ))
        .chain(
            releases
                .iter()
                .map(|r| (r.report.clone(), r.request.clone())),
        )
        .collect();
        let relations = joint.records(&tables, &names);
        (pattern, Some(note), relations)
    };
    let primary = pattern.primary.iter().filter(|&&p| p).count();
    let suppressed = pattern.suppressed.iter().filter(|&&p| p).count();
    let secondary_mass: u64 = (0..rt.table.len())
        .filter(|&c| pattern.suppressed[c] && !pattern.primary[c])
        .map(|c| rt.table.values[c])
        .sum();
    info!(
        cells = rt.table.len(),
        primary,
        secondary = suppressed - primary,
        secondary_mass,
        lower_bound = pattern.lower_bound,
        rounds = pattern.rounds,
        "suppressed and audited"
    );

    let mut scopes = scopes(&rt);
    // Every folder name built from data is a code; anything else (a path, `..`) is refused
    // before a file is written. The plan admits only code columns; this holds whatever a
    // schema's pattern lets through.
    for a in &rt.areas {
        let rd_ok = a.rd.as_deref().is_none_or(is_folder_code);
        let ge_ok = a.ge.as_ref().is_none_or(|g| is_folder_code(&g.nr));
        if !(rd_ok && ge_ok) {
            return Err(Error::Refused(format!(
                "a value of the column `{}` cannot name a recipient's folder (only letters, digits, `-` and `_`); nothing was written: correct the extract or the schema's pattern for that column",
                if rd_ok { &d.ge_column } else { &d.rd_column }
            )));
        }
    }
    if let Some(request) = &options.request {
        {
            let wanted: Vec<String> = request.ges.iter().map(|g| format!("ge-{g}")).collect();
            if let Some(missing) = wanted
                .iter()
                .find(|w| !scopes.iter().any(|s| &s.name == *w))
            {
                return Err(Error::Refused(format!(
                    "the request {} asks for {missing}, which has no row in this month's extract; check the request's scope",
                    request.reference
                )));
            }
            scopes.retain(|s| wanted.contains(&s.name));
        }
    }
    let staging = StagingDir::create(&target)?;
    let one_dimension = match d.dimension.all() {
        [one] => Some(one),
        _ => None,
    };
    let published = Published {
        rt: &rt,
        suppressed: &pattern.suppressed,
        report: &d.name,
        title: &d.title,
        dimensions: &rt.dimensions,
        indicator_labels: d.indicators.iter().map(|i| i.label.clone()).collect(),
        definition: d,
        month: options.month,
        definition_sha256: &plan.definition_sha256,
        request: options.request.as_ref().map(|r| r.reference.as_str()),
    };
    let mut files = Vec::new();
    {
        let _s = info_span!("write", scopes = scopes.len()).entered();
        // The recipients' files on every core; listed in scope order whatever the threads did.
        let written: Vec<Vec<FileInfo>> = scopes
            .par_iter()
            .map(|scope| published.write_scope(scope, staging.path()))
            .collect::<Result<_>>()?;
        files.extend(written.into_iter().flatten());
    }
    // A requester's manifest describes only the cells it received.
    let shown: std::collections::BTreeSet<usize> = scopes
        .iter()
        .flat_map(|s| s.areas.iter().copied())
        .collect();
    // The steward's file: every cell that some recipient sees, once.
    files.extend(published.write_all(
        &crate::output::Scope {
            name: crate::output::ALL_CELLS.to_owned(),
            title: "alle Empfänger".to_owned(),
            areas: shown.iter().copied().collect(),
        },
        staging.path(),
    )?);
    // The release record: what this output shows, for the month's later reports.
    let mut release = Release::of(
        &rt,
        &pattern.suppressed,
        &shown.iter().copied().collect::<Vec<_>>(),
        ReleaseHead {
            report: d.name.clone(),
            request: options.request.as_ref().map(|r| r.reference.clone()),
            month: options.month,
            definition_sha256: plan.definition_sha256.clone(),
            definition: plan.definition_text.clone(),
            input_sha256: input.sha256.clone(),
            threshold: params.threshold,
            min_interval_width: params.min_width,
        },
    );
    // A regenerated report keeps the relations its release recorded: they hold for the same
    // extract, and those with the month's later reports are in their records (so the rerun gives
    // the same bytes).
    previous
        .iter()
        .find(|p| {
            p.release.input_sha256 == input.sha256
                && p.release.release_version >= joint::RELEASE_VERSION
        })
        .map_or(relations, |p| joint::Records::of(&p.release))
        .record(&mut release);
    let mut json = serde_json::to_string(&release).expect("a release serialises");
    json.push('\n');
    let path = staging.path().join(joint::RELEASE_FILE);
    std::fs::write(&path, &json).map_err(|e| Error::io("write", &path, e))?;
    files.push(FileInfo {
        path: joint::RELEASE_FILE.to_owned(),
        rows: release.areas.len() as u64,
        bytes: json.len() as u64,
        sha256: pseudagg_io::sha256_hex(json.as_bytes()),
        value_sum: None,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let audit = pattern
        .audit
        .iter()
        .filter(|&&(cell, _)| shown.contains(&rt_position(&rt, cell).0))
        .map(|&(cell, iv)| {
            let (area, c, k) = rt_position(&rt, cell);
            let a = &rt.areas[area];
            AuditNote {
                level: a.level.as_str(),
                rd: a.rd.clone(),
                ge_nr: a.ge.as_ref().map(|g| g.nr.clone()),
                category: rt.categories[c].clone(),
                indicator: rt.indicators[k].clone(),
                primary: pattern.primary[cell],
                interval: if pattern.primary[cell] {
                    "certificate"
                } else {
                    "feasible"
                },
                lower: round(iv.lower),
                upper: iv.upper.map(round),
            }
        })
        .collect();
    let manifest = ReportManifest {
        manifest_version: crate::output::LAYOUT_VERSION,
        kind: "report",
        tool: format!("pseudagg {TOOL_VERSION}"),
        report: d.name.clone(),
        report_sha256: plan.definition_sha256.clone(),
        request: options.request.as_ref().map(|r| r.reference.clone()),
        input_schema: plan.schema.name.clone(),
        month: options.month.to_string(),
        input: InputNote::new(&options.input, &input),
        rows_read: counts.rows_read,
        rows_counted: counts.rows_counted,
        suppression: SuppressionNote {
            threshold: params.threshold,
            min_interval_width: params.min_width,
            attacker_models: if params.insider {
                vec!["published", "insider-ge"]
            } else {
                vec!["published"]
            },
            cells: rt.table.len(),
            primary,
            secondary: suppressed - primary,
            secondary_mass,
            secondary_lower_bound: pattern.lower_bound,
            rounds: pattern.rounds,
            joint: joint_note,
        },
        audit,
        structure: StructureNote {
            dimension: one_dimension.map(|x| x.name.clone()),
            categories: rt.categories.clone(),
            total: one_dimension.map(|x| x.total.clone()),
            dimensions: d
                .dimension
                .all()
                .iter()
                .map(|x| DimensionNote {
                    name: x.name.clone(),
                    categories: x.categories.iter().map(|c| c.name.clone()).collect(),
                    total: x.total.clone(),
                })
                .collect(),
            indicators: d
                .indicators
                .iter()
                .map(|i| IndicatorNote {
                    name: i.name.clone(),
                    subset_of: i.subset_of.clone(),
                })
                .collect(),
            exclusive: plan
                .exclusive_names()
                .into_iter()
                .map(|(whole, parts, exhaustive)| ExclusiveNote {
                    whole,
                    parts,
                    exhaustive,
                })
                .collect(),
            implied_subsets: plan
                .implied_subset_names()
                .into_iter()
                .map(|(part, whole)| [part, whole])
                .collect(),
            position_subsets: plan
                .position_subset_names()
                .into_iter()
                .map(|(at, part, whole)| PositionSubsetNote { at, part, whole })
                .collect(),
        },
        scopes: scopes.iter().map(|s| s.name.clone()).collect(),
        files,
    };
    let mut json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    json.push('\n');
    let path = staging.path().join("manifest.json");
    std::fs::write(&path, json).map_err(|e| Error::io("write", &path, e))?;
    staging.commit_after(options.before_publish)?;
    info!(target = %target.display(), files = manifest.files.len(), "report written");
    Ok(ReportOutcome { target, manifest })
}

fn rt_position(rt: &ReportTable, cell: usize) -> (usize, usize, usize) {
    let (nc, ni) = (rt.categories.len(), rt.indicators.len());
    (cell / (nc * ni), (cell / ni) % nc, cell % ni)
}

/// A cell described for people: "gE 31501 (RD NRW)", "Ukraine / ", "bestand".
fn locate(rt: &ReportTable, cell: usize) -> (String, String, String) {
    let (area, c, k) = rt_position(rt, cell);
    let a = &rt.areas[area];
    let place = match a.level {
        Level::Ge => format!(
            "gE {} (RD {})",
            a.ge.as_ref().map_or("", |g| g.nr.as_str()),
            a.rd.as_deref().unwrap_or("")
        ),
        Level::Rd => format!("RD {}", a.rd.as_deref().unwrap_or("")),
        Level::Bund => "Bund".to_owned(),
    };
    let cat = if rt.categories[c].is_empty() {
        String::new()
    } else {
        format!("{} / ", rt.categories[c])
    };
    (place, cat, rt.indicators[k].clone())
}

/// Where the report goes: `{out}/{report}/{month}/`, or for a request
/// `{out}/{report}/requests/{reference}/{month}/`.
fn target_of(plan: &ReportPlan, options: &ReportOptions<'_>) -> Result<PathBuf> {
    let d = &plan.definition;
    Ok(match &options.request {
        None => options.out.join(&d.name).join(options.month.to_string()),
        Some(request) => {
            let r = &request.reference;
            if r.starts_with('.')
                || !r
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(Error::Refused(
                    "the request's reference cannot name a folder (letters, digits, `-`, `_`, `.` only, not starting with `.`); nothing was written".into(),
                ));
            }
            options
                .out
                .join(&d.name)
                .join("requests")
                .join(r)
                .join(options.month.to_string())
        }
    })
}

/// The plan of a released report, from the definition its release record keeps. It must be the
/// definition the record names, over this run's input schema, with this run's protection limits.
fn released_plan(r: &Released, plan: &ReportPlan) -> Result<ReportPlan> {
    let file = r.output.join(joint::RELEASE_FILE);
    let rel = &r.release;
    if pseudagg_io::sha256_hex(rel.definition.as_bytes()) != rel.definition_sha256 {
        return Err(Error::Refused(format!(
            "the release record {} holds another definition than the one it names; restore it from backup",
            file.display()
        )));
    }
    let p = ReportPlan::from_toml(&rel.definition, &file)?;
    if p.schema.name != plan.schema.name {
        return Err(Error::Refused(format!(
            "the released report {} reads the input schema {}, this one {}; reports of one month protected together read one extract",
            rel.label(),
            p.schema.name,
            plan.schema.name
        )));
    }
    let (a, b) = (&p.definition.suppression, &plan.definition.suppression);
    if (a.threshold, a.min_interval_width) != (b.threshold, b.min_interval_width) {
        return Err(Error::Refused(format!(
            "the released report {} protects with threshold {} and interval width {}, this one with {} and {}; the reports of a month are protected together, with one threshold",
            rel.label(),
            a.threshold,
            a.min_interval_width,
            b.threshold,
            b.min_interval_width
        )));
    }
    Ok(p)
}

/// The lines of a list of cells cut short, with how many more there are of `total`.
fn listed(mut lines: Vec<String>, total: usize) -> String {
    if total > lines.len() {
        lines.push(format!("  ... and {} more cells", total - lines.len()));
    }
    lines.join("\n")
}
