use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use pseudagg_core::{Error, Month, Result, TOOL_VERSION};
use pseudagg_io::{
    ChunkWork, Encoding, ExtractReader, PartitionSpill, ReadOptions, StagingDir,
    writer_properties_with,
};
use pseudagg_keys::{MasterKey, Pseudonymiser, period_key_info};
use tracing::{debug, info, info_span};

use crate::kanon;
use crate::manifest::{ColumnNote, InputNote, KAnonymityNote, Manifest, PartitionCounts};
use crate::plan::Plan;
use crate::transform;

/// Rows per output file; a partition with more is split into `part-00000`, `part-00001`, ...
const MAX_ROWS_PER_FILE: u64 = 4_000_000;

/// What a pipeline run reads and where it writes.
pub struct RunOptions<'a> {
    pub input: PathBuf,
    pub month: Month,
    pub encoding: Encoding,
    /// The output root: the dataset goes to `{out}/{pipeline}/{month}/`.
    pub out: PathBuf,
    pub key: &'a MasterKey,
    /// Told ("reading", bytes read, bytes in all) after every batch.
    pub progress: Option<pseudagg_core::Progress<'a>>,
    /// Runs just before the output goes live (the protocol's announcement); an error publishes
    /// nothing.
    pub before_publish: Option<&'a pseudagg_io::PublishHook<'a>>,
}

impl std::fmt::Debug for RunOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("input", &self.input)
            .field("month", &self.month)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The dataset's folder.
    pub target: PathBuf,
    pub manifest: Manifest,
}

/// Runs a pipeline: reads and checks the extract, filters, pseudonymises, generalises and writes
/// one Parquet dataset per partition and a manifest, atomically. On any problem nothing is written.
#[allow(clippy::too_many_lines)] // one streaming pass, read to write, in order
pub fn run(plan: &Plan, options: &RunOptions<'_>) -> Result<RunOutcome> {
    let d = &plan.definition;
    let span = info_span!("pseudonymise", pipeline = %d.name, month = %options.month);
    let _guard = span.enter();

    let mut read_options = ReadOptions::new(options.month);
    read_options.encoding = options.encoding;
    // Only the columns the output is made of are kept in memory; the dropped ones (names,
    // addresses, notes) are checked cell by cell as strictly, and never copied.
    read_options.columns = Some(plan.read_columns());
    read_options.check_unread = true;
    // Each chunk is filtered and pseudonymised on the reading threads; this thread counts, and
    // hands the rows to the writer, in file order.
    let pseudonymiser = Pseudonymiser::new(options.key, &d.name, options.month);
    let reference_day = options.month.last_day();
    read_options.work = Some(ChunkWork::new({
        let (plan, pseudonymiser) = (Arc::new(plan.clone()), pseudonymiser.clone());
        move |batch: &RecordBatch, _| -> Result<RecordBatch> {
            let kept = transform::filter(&plan, batch).map_err(|e| internal(&e))?;
            project(&plan, &pseudonymiser, reference_day, &kept)
        }
    }));
    let mut reader = {
        let _s = info_span!("read_header").entered();
        ExtractReader::open(&options.input, &plan.schema, read_options)?
    };

    let target = options.out.join(&d.name).join(options.month.to_string());
    let staging = StagingDir::create(&target)?;
    let key_id = options.key.id();
    let pseudonyms: Vec<String> = plan.pseudonymise.iter().map(|(_, o)| o.clone()).collect();
    let properties = writer_properties_with(
        &[
            ("pseudagg.pipeline", d.name.clone()),
            ("pseudagg.month", options.month.to_string()),
            ("pseudagg.key_id", key_id.to_string()),
        ],
        &pseudonyms,
    );
    let mut writer = PartitionSpill::new(
        staging.path(),
        pseudagg_io::DATA_FOLDER,
        &d.partition_by,
        plan.output_schema(),
    )?;
    for value in &plan.partition_values {
        writer.ensure_partition(value)?;
    }
    let partition_input = plan
        .schema
        .index_of(&d.partition_by)
        .expect("checked by Plan");

    let mut partitions: BTreeMap<String, PartitionCounts> = plan
        .partition_values
        .iter()
        .map(|v| (v.clone(), PartitionCounts::default()))
        .collect();
    let mut groups = plan
        .k_anonymity
        .as_ref()
        .map(|(qi, _)| kanon::GroupCounter::new(qi.clone(), plan.partition_output_index));
    let (mut rows_in, mut rows_out) = (0u64, 0u64);
    while let Some((batch, out)) = reader.next_worked::<Result<RecordBatch>>()? {
        rows_in += batch.num_rows() as u64;
        count(&mut partitions, batch.column(partition_input), |c| {
            &mut c.rows_in
        });
        let out = out?;
        count(
            &mut partitions,
            out.column(plan.partition_output_index),
            |c| &mut c.rows_out,
        );
        rows_out += out.num_rows() as u64;
        // Counting the groups and holding the rows are independent; both are serial per batch.
        let (counted, held) = rayon::join(
            || groups.as_mut().map_or(Ok(()), |g| g.add(&out)),
            || writer.write(&out, plan.partition_output_index),
        );
        counted?;
        held?;
        debug!(rows_in, rows_out, "batch written");
        if let Some(progress) = options.progress {
            let (done, total) = reader.progress();
            progress("reading", done, total);
        }
    }
    let input = reader.finish()?;
    info!(rows_in, rows_out, input_sha256 = %input.sha256, "extract read and pseudonymised");

    let _write = info_span!("write", files = tracing::field::Empty).entered();
    let k_anonymity = match (&mut groups, &plan.k_anonymity) {
        (Some(g), Some((qi, k))) => {
            let decision = kanon::decide(g, u64::from(*k), partitions.keys().cloned())
                .map_err(|kanon::TooSmall(small)| too_small(&d.partition_by, *k, &small))?;
            debug!("quasi-identifier blanks decided");
            Some((qi, *k, decision))
        }
        _ => None,
    };
    let files = writer.finish(&properties, MAX_ROWS_PER_FILE, |partition, batch| {
        match (&k_anonymity, &groups) {
            (Some((_, _, decision)), Some(counter)) => match decision.blank.get(partition) {
                Some(masks) => kanon::blank(&batch, counter, partition, masks),
                None => Ok(batch),
            },
            _ => Ok(batch),
        }
    })?;
    debug!("parquet files written");
    let k_anonymity = k_anonymity.map(|(qi, k, decision)| {
        let blanked: u64 = decision.risk.values().map(|r| r.values_blanked).sum();
        info!(
            min_k = k,
            values_blanked = blanked,
            "quasi-identifiers checked"
        );
        KAnonymityNote {
            quasi_identifiers: qi
                .iter()
                .map(|&i| plan.output_schema.field(i).name().clone())
                .collect(),
            min_k: k,
            partitions: decision.risk,
        }
    });
    let manifest = Manifest {
        manifest_version: 2, // 2: the Parquet files in `parquet/`, the partition key in the folder name only
        kind: "pseudonymised-dataset",
        tool: format!("pseudagg {TOOL_VERSION}"),
        pipeline: d.name.clone(),
        pipeline_sha256: plan.definition_sha256.clone(),
        input_schema: plan.schema.name.clone(),
        month: options.month.to_string(),
        key_id: key_id.to_string(),
        pseudonym_derivation: format!(
            "hex(HMAC-SHA256(HKDF-SHA256(master key, salt = empty, info = \"{}\", 32 bytes), upper(trim(identifier))))",
            period_key_info(&d.name, options.month)
        ),
        input: InputNote::new(&options.input, &input),
        rows_in,
        rows_out,
        partitions,
        columns: column_notes(plan),
        k_anonymity,
        files,
    };
    let mut json = serde_json::to_string_pretty(&manifest).expect("manifest serialises");
    json.push('\n');
    let manifest_path = staging.path().join("manifest.json");
    std::fs::write(&manifest_path, json).map_err(|e| Error::io("write", &manifest_path, e))?;
    staging.commit_after(options.before_publish)?;
    info!(target = %target.display(), files = manifest.files.len(), "dataset written");
    Ok(RunOutcome { target, manifest })
}

fn project(
    plan: &Plan,
    p: &Pseudonymiser,
    reference_day: chrono::NaiveDate,
    batch: &transform::Kept,
) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(plan.output_schema.fields().len());
    for (input, _) in &plan.pseudonymise {
        columns.push(transform::pseudonymise(p, batch.column(*input)));
    }
    for input in &plan.keep {
        columns.push(batch.column(*input).clone());
    }
    for (input, _, band) in &plan.generalise {
        columns.push(transform::generalise(
            batch.column(*input),
            band,
            reference_day,
        ));
    }
    RecordBatch::try_new(plan.output_schema(), columns).map_err(|e| internal(&e))
}

fn count(
    partitions: &mut BTreeMap<String, PartitionCounts>,
    column: &ArrayRef,
    field: fn(&mut PartitionCounts) -> &mut u64,
) {
    let values = column
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("partition column is text");
    for v in values.iter().flatten() {
        if let Some(c) = partitions.get_mut(v) {
            *field(c) += 1;
        } else {
            let mut c = PartitionCounts::default();
            *field(&mut c) += 1;
            partitions.insert(v.to_owned(), c);
        }
    }
}

fn column_notes(plan: &Plan) -> Vec<ColumnNote> {
    let class_of = |i: usize| plan.schema.columns[i].class.to_string();
    let name_of = |i: usize| plan.schema.columns[i].name.clone();
    let mut notes = Vec::new();
    for (i, out) in &plan.pseudonymise {
        notes.push(ColumnNote {
            name: out.clone(),
            from: name_of(*i),
            treatment: "pseudonymised",
            class: class_of(*i),
        });
    }
    for i in &plan.keep {
        notes.push(ColumnNote {
            name: name_of(*i),
            from: name_of(*i),
            treatment: "kept",
            class: class_of(*i),
        });
    }
    for (i, out, _) in &plan.generalise {
        notes.push(ColumnNote {
            name: out.clone(),
            from: name_of(*i),
            treatment: "generalised",
            class: class_of(*i),
        });
    }
    notes
}

fn too_small(partition_by: &str, k: u32, small: &[(String, u64)]) -> Error {
    let list: Vec<String> = small
        .iter()
        .map(|(p, n)| {
            format!(
                "{partition_by}={p} ({n} row{})",
                if *n == 1 { "" } else { "s" }
            )
        })
        .collect();
    Error::CheckFailed(format!(
        "k-anonymity cannot hold: {} hold fewer than min-k = {k} rows in all, so even with every quasi-identifier blank a group stays smaller than {k}; lower min-k in the pipeline or leave this month unpublished",
        list.join(", ")
    ))
}

/// Arrow kernels fail only on a bug of ours (types are fixed by the plan); the message names no value.
fn internal(e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: PathBuf::from("<pipeline>"),
        reason: format!("internal error while transforming a batch: {e}"),
    }
}
