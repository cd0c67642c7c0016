//! The per-batch work of a pipeline: filter, pseudonymise, generalise, project.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Date32Type;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, RecordBatch, StringArray, builder::StringBuilder,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::ArrowError;
use chrono::{Datelike, NaiveDate};
use pseudagg_keys::{PSEUDONYM_LEN, Pseudonymiser};
use rayon::prelude::*;

use crate::definition::{AgeBand, DaysBand};
use crate::plan::{FilterValue, Plan};

/// Rows per parallel task when pseudonymising.
const PAR_CHUNK: usize = 4096;

/// The rows the pipeline keeps (its `[filter]`, or every row), in the columns it publishes from.
pub(crate) fn filter(plan: &Plan, batch: &RecordBatch) -> Result<Kept, ArrowError> {
    let mut used = vec![false; batch.num_columns()];
    for c in plan.output_inputs() {
        used[c] = true;
    }
    let used = |i: usize| used[i];
    let Some((column, value)) = &plan.filter else {
        return Ok(Kept {
            columns: (0..batch.num_columns())
                .map(|i| used(i).then(|| batch.column(i).clone()))
                .collect(),
        });
    };
    let array = batch.column(*column);
    let mask: BooleanArray = match value {
        FilterValue::Bool(want) => array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .expect("bool column")
            .iter()
            .map(|v| Some(v == Some(*want)))
            .collect(),
        FilterValue::Str(want) => array
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str column")
            .iter()
            .map(|v| Some(v == Some(want.as_str())))
            .collect(),
        FilterValue::Date(want) => array
            .as_any()
            .downcast_ref::<Date32Array>()
            .expect("date column")
            .iter()
            .map(|v| Some(v == Some(*want)))
            .collect(),
    };
    // Only the columns the output is made of are filtered: the dropped ones (names, addresses,
    // notes) are never copied.
    let predicate = arrow_select::filter::FilterBuilder::new(&mask)
        .optimize()
        .build();
    let columns = (0..batch.num_columns())
        .map(|i| {
            used(i)
                .then(|| predicate.filter(batch.column(i)))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    Ok(Kept { columns })
}

/// The columns of a batch's kept rows that the output is made of (`None` for the others).
#[derive(Debug)]
pub(crate) struct Kept {
    columns: Vec<Option<ArrayRef>>,
}

impl Kept {
    /// A column the plan uses.
    pub(crate) fn column(&self, i: usize) -> &ArrayRef {
        self.columns[i]
            .as_ref()
            .expect("the plan uses this column, so it was kept")
    }
}

pub(crate) fn pseudonymise(p: &Pseudonymiser, column: &ArrayRef) -> ArrayRef {
    let values = column
        .as_any()
        .downcast_ref::<StringArray>()
        .expect("identifier is text");
    let n = values.len();
    let mut bytes = vec![0u8; n * PSEUDONYM_LEN];
    bytes
        .par_chunks_mut(PSEUDONYM_LEN * PAR_CHUNK)
        .enumerate()
        .for_each(|(chunk, out)| {
            for (j, slot) in out.chunks_exact_mut(PSEUDONYM_LEN).enumerate() {
                let i = chunk * PAR_CHUNK + j;
                if values.is_valid(i) {
                    let slot: &mut [u8; PSEUDONYM_LEN] = slot.try_into().expect("exact chunk");
                    p.pseudonym_into(values.value(i), slot);
                }
            }
        });
    let offsets = OffsetBuffer::<i32>::from_lengths(std::iter::repeat_n(PSEUDONYM_LEN, n));
    let nulls = values.nulls().cloned();
    Arc::new(StringArray::new(offsets, bytes.into(), nulls))
}

/// The band label of an age: `unter 15`, `15-19`, ..., `65 und aelter`.
#[must_use]
pub fn age_band_label(age: u32, band: &AgeBand) -> String {
    if age < band.lowest {
        format!("unter {}", band.lowest)
    } else if age >= band.highest {
        format!("{} und aelter", band.highest)
    } else {
        let start = band.lowest + (age - band.lowest) / band.width * band.width;
        format!("{start}-{}", start + band.width - 1)
    }
}

/// The band label of a number of days from an event to the month's end: `0-90 Tage`, ...,
/// `365 Tage und mehr`, or `nach Monatsende` for an event after it.
#[must_use]
pub fn days_band_label(days: i64, band: &DaysBand) -> String {
    if days < 0 {
        return "nach Monatsende".to_owned();
    }
    let i = band.from.partition_point(|&f| i64::from(f) <= days);
    match band.from.get(i) {
        Some(&next) => format!("{}-{} Tage", band.from[i.saturating_sub(1)], next - 1),
        None => format!("{} Tage und mehr", band.from[i - 1]),
    }
}

/// How a plan generalises one date column.
#[derive(Debug, Clone)]
pub(crate) enum Banding {
    Age(AgeBand),
    Days(DaysBand),
}

pub(crate) fn generalise(column: &ArrayRef, banding: &Banding, reference: NaiveDate) -> ArrayRef {
    match banding {
        Banding::Age(band) => age_band(column, band, reference),
        Banding::Days(band) => days_band(column, band, reference),
    }
}

fn days_band(column: &ArrayRef, band: &DaysBand, reference: NaiveDate) -> ArrayRef {
    let dates = column.as_primitive::<Date32Type>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let end = reference.signed_duration_since(epoch).num_days();
    // A few labels, made once: the loop runs for every row.
    let after = days_band_label(-1, band);
    let labels: Vec<String> = band
        .from
        .iter()
        .map(|&f| days_band_label(i64::from(f), band))
        .collect();
    let mut out = StringBuilder::with_capacity(dates.len(), dates.len() * 10);
    for d in dates {
        match d {
            Some(d) => {
                let days = end - i64::from(d);
                let label = if days < 0 {
                    &after
                } else {
                    &labels[band.from.partition_point(|&f| i64::from(f) <= days) - 1]
                };
                out.append_value(label);
            }
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

/// Age in whole years on `reference`.
fn age_on(birth: NaiveDate, reference: NaiveDate) -> u32 {
    let mut age = reference.year() - birth.year();
    if (reference.month(), reference.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age.max(0) as u32
}

fn age_band(column: &ArrayRef, band: &AgeBand, reference: NaiveDate) -> ArrayRef {
    let dates = column.as_primitive::<Date32Type>();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let mut out = StringBuilder::with_capacity(dates.len(), dates.len() * 6);
    for d in dates {
        match d.and_then(|d| epoch.checked_add_signed(chrono::Duration::days(i64::from(d)))) {
            Some(birth) => out.append_value(age_band_label(age_on(birth, reference), band)),
            None => out.append_null(),
        }
    }
    Arc::new(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_bands() {
        let band = AgeBand {
            width: 5,
            lowest: 15,
            highest: 65,
        };
        assert_eq!(age_band_label(14, &band), "unter 15");
        assert_eq!(age_band_label(15, &band), "15-19");
        assert_eq!(age_band_label(19, &band), "15-19");
        assert_eq!(age_band_label(20, &band), "20-24");
        assert_eq!(age_band_label(64, &band), "60-64");
        assert_eq!(age_band_label(65, &band), "65 und aelter");
    }

    #[test]
    fn days_bands() {
        let band = DaysBand {
            from: vec![0, 91, 365],
        };
        assert_eq!(days_band_label(-1, &band), "nach Monatsende");
        assert_eq!(days_band_label(0, &band), "0-90 Tage");
        assert_eq!(days_band_label(90, &band), "0-90 Tage");
        assert_eq!(days_band_label(91, &band), "91-364 Tage");
        assert_eq!(days_band_label(364, &band), "91-364 Tage");
        assert_eq!(days_band_label(365, &band), "365 Tage und mehr");
        assert_eq!(days_band_label(100_000, &band), "365 Tage und mehr");
    }

    #[test]
    fn days_count_to_the_last_day_of_the_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let epoch = d("1970-01-01");
        let day = |s: &str| i32::try_from((d(s) - epoch).num_days()).unwrap();
        let column: ArrayRef = Arc::new(Date32Array::from(vec![
            Some(day("2025-03-31")),
            Some(day("2025-01-01")),
            None,
            Some(day("2025-04-01")),
        ]));
        let band = Banding::Days(DaysBand {
            from: vec![0, 89, 90],
        });
        let out = generalise(&column, &band, d("2025-03-31"));
        let out = out.as_string::<i32>();
        let got: Vec<Option<&str>> = out.iter().collect();
        assert_eq!(
            got,
            [
                Some("0-88 Tage"),
                Some("89-89 Tage"),
                None,
                Some("nach Monatsende")
            ]
        );
    }

    #[test]
    fn age_counts_whole_years_on_the_reference_day() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(age_on(d("1990-03-31"), d("2025-03-31")), 35);
        assert_eq!(age_on(d("1990-04-01"), d("2025-03-31")), 34);
        assert_eq!(age_on(d("2000-02-29"), d("2025-02-28")), 24);
    }
}
