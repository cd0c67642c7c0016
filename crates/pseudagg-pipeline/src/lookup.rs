//! The owner's look-up (seeds 001 and 003): after the RD's review, the gE or agency that owns a
//! case finds the customer behind a pseudonym, for the dialogue on findings. The pseudonyms of the
//! extract's kept cases are computed again, exactly as [`crate::run`] computes them, and only the
//! asked ones are answered.

use std::collections::HashMap;
use std::path::PathBuf;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use pseudagg_core::{Month, Result};
use pseudagg_io::{Encoding, ExtractReader, ReadOptions};
use pseudagg_keys::{MasterKey, Pseudonymiser};
use tracing::info_span;

use crate::plan::Plan;
use crate::transform;

/// What the look-up reads.
#[derive(Debug)]
pub struct LookupOptions<'a> {
    pub input: PathBuf,
    pub month: Month,
    pub encoding: Encoding,
    pub key: &'a MasterKey,
}

/// The answer for one asked pseudonym: the column it pseudonymises and the value, or `None`
/// when no kept case of the extract has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pseudonym: String,
    pub hit: Option<(String, String)>,
}

/// Reads the extract (checked as `pseudonymise` checks it), keeps the rows the pipeline keeps and
/// answers each of `wanted` (in its order). Nothing else of the extract is held.
pub fn lookup(plan: &Plan, options: &LookupOptions<'_>, wanted: &[String]) -> Result<Vec<Found>> {
    let d = &plan.definition;
    let _span = info_span!("lookup", pipeline = %d.name, month = %options.month).entered();
    let mut read = ReadOptions::new(options.month);
    read.encoding = options.encoding;
    let mut reader = ExtractReader::open(&options.input, &plan.schema, read)?;
    let pseudonymiser = Pseudonymiser::new(options.key, &d.name, options.month);
    let mut open: HashMap<&str, Option<(String, String)>> =
        wanted.iter().map(|w| (w.as_str(), None)).collect();
    while let Some(batch) = reader.next_batch()? {
        let kept = transform::filter(plan, &batch).map_err(|e| {
            pseudagg_core::Error::Refused(format!("the extract could not be filtered: {e}"))
        })?;
        for (column, _) in &plan.pseudonymise {
            let values = kept.column(*column).as_string::<i32>();
            let name = &plan.schema.columns[*column].name;
            for i in (0..values.len()).filter(|&i| values.is_valid(i)) {
                let p = pseudonymiser.pseudonym(values.value(i));
                if let Some(slot) = open.get_mut(p.as_str())
                    && slot.is_none()
                {
                    *slot = Some((name.clone(), values.value(i).trim().to_owned()));
                }
            }
        }
    }
    reader.finish()?;
    Ok(wanted
        .iter()
        .map(|w| Found {
            pseudonym: w.clone(),
            hit: open.get(w.as_str()).cloned().flatten(),
        })
        .collect())
}
