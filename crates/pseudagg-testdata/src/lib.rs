//! Deterministic synthetic extracts.
//!
//! [`generate`] writes a VerBIS (`verbis-vkb`) or opDs (`opds-person`) extract as the contract in
//! `shared/spec/inputs.md` describes it: German names with umlauts, ß, hyphens and apostrophes, valid
//! and unique Kundennummern, the 10 RDs with agencies and Jobcenters of very different sizes, about
//! 12 % of VerBIS cases flagged, and free-text notes that sometimes name the customer and a phone
//! number and contain `;` and `"`. The same options give the same bytes, on any number of threads:
//! rows are made in chunks, each from its own seeded generator.
//!
//! ```
//! use pseudagg_testdata::{GenOptions, Kind, generate_csv_bytes};
//!
//! let opts = GenOptions::new(Kind::VerbisVkb, 100, "2025-03".parse().unwrap(), 7);
//! let a = generate_csv_bytes(&opts);
//! assert_eq!(a, generate_csv_bytes(&opts));
//! assert!(String::from_utf8(a).unwrap().starts_with("kundennummer;vorname;"));
//! ```

mod geography;
mod names;
mod rows;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use parquet::arrow::ArrowWriter;
use pseudagg_core::{Error, Month, Result, Schema};
use pseudagg_io::{Encoding, arrow_schema, text_column_to_array, writer_properties};
use rayon::prelude::*;

pub use geography::{Ge, jobcenters, rd_codes};

/// Which extract to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VerbisVkb,
    OpdsPerson,
}

impl Kind {
    /// The input schema's name.
    #[must_use]
    pub fn schema_name(self) -> &'static str {
        match self {
            Self::VerbisVkb => "verbis-vkb",
            Self::OpdsPerson => "opds-person",
        }
    }
}

/// The file format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Parquet,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub kind: Kind,
    pub rows: u64,
    pub month: Month,
    pub seed: u64,
    /// CSV only.
    pub encoding: Encoding,
    /// CSV only: start with a UTF-8 byte-order mark.
    pub bom: bool,
    /// VerBIS: the share of cases a team lead flagged (0.12 by default; 1.0 for the worst case).
    pub flagged_share: f64,
}

impl GenOptions {
    #[must_use]
    pub fn new(kind: Kind, rows: u64, month: Month, seed: u64) -> Self {
        Self {
            kind,
            rows,
            month,
            seed,
            encoding: Encoding::Utf8,
            bom: false,
            flagged_share: 0.12,
        }
    }
}

/// Rows per independently seeded chunk.
const CHUNK_ROWS: u64 = 8192;
/// The Kundennummer space per agency prefix: 26 letters times 10^6.
const MAX_ROWS: u64 = 26_000_000;

fn chunks(opts: &GenOptions) -> impl Iterator<Item = (u64, u64)> + use<> {
    let rows = opts.rows;
    (0..rows.div_ceil(CHUNK_ROWS)).map(move |c| (c * CHUNK_ROWS, ((c + 1) * CHUNK_ROWS).min(rows)))
}

fn header(kind: Kind) -> String {
    let schema = Schema::builtin(kind.schema_name()).expect("built-in schema");
    let names: Vec<_> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    names.join(";") + "\n"
}

fn check(opts: &GenOptions) -> Result<()> {
    if opts.rows == 0 || opts.rows > MAX_ROWS {
        return Err(Error::Usage(format!(
            "--rows must be between 1 and {MAX_ROWS}"
        )));
    }
    Ok(())
}

/// The whole extract as UTF-8 CSV in memory (for tests and small samples).
#[must_use]
pub fn generate_csv_bytes(opts: &GenOptions) -> Vec<u8> {
    let mut out = header(opts.kind).into_bytes();
    let ctx = rows::Context::new(opts);
    let parts: Vec<Vec<u8>> = chunks(opts)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(from, to)| ctx.chunk(from, to))
        .collect();
    for p in parts {
        out.extend_from_slice(&p);
    }
    out
}

/// What was written.
#[derive(Debug, Clone, Copy)]
pub struct GenSummary {
    pub rows: u64,
    pub bytes: u64,
}

/// Writes the extract to `out` (CSV or Parquet), through a temporary file renamed into place.
pub fn generate(opts: &GenOptions, format: Format, out: &Path) -> Result<GenSummary> {
    check(opts)?;
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        std::process::id()
    ));
    let result = match format {
        Format::Csv => write_csv(opts, &tmp),
        Format::Parquet => write_parquet(opts, &tmp),
    };
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, out).map_err(|e| Error::io("move into place", out, e))?;
    let bytes = fs::metadata(out)
        .map_err(|e| Error::io("inspect", out, e))?
        .len();
    Ok(GenSummary {
        rows: opts.rows,
        bytes,
    })
}

/// Chunks made in parallel at a time before they are written in order; bounds memory.
const WINDOW: usize = 64;

fn for_each_window(
    opts: &GenOptions,
    mut write: impl FnMut(Vec<Vec<u8>>) -> Result<()>,
) -> Result<()> {
    let ctx = rows::Context::new(opts);
    let all: Vec<(u64, u64)> = chunks(opts).collect();
    for window in all.chunks(WINDOW) {
        let parts: Vec<Vec<u8>> = window
            .par_iter()
            .map(|&(from, to)| ctx.chunk(from, to))
            .collect();
        write(parts)?;
    }
    Ok(())
}

fn write_csv(opts: &GenOptions, path: &Path) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e| Error::io("write", path, e);
    if opts.bom && opts.encoding == Encoding::Utf8 {
        w.write_all(b"\xEF\xBB\xBF").map_err(io)?;
    }
    let encode = |text: &[u8]| -> Vec<u8> {
        match opts.encoding {
            Encoding::Utf8 => text.to_vec(),
            Encoding::Windows1252 => {
                let s = std::str::from_utf8(text).expect("generated text is UTF-8");
                encoding_rs::WINDOWS_1252.encode(s).0.into_owned()
            }
        }
    };
    w.write_all(&encode(header(opts.kind).as_bytes()))
        .map_err(io)?;
    for_each_window(opts, |parts| {
        for p in parts {
            w.write_all(&encode(&p)).map_err(io)?;
        }
        Ok(())
    })?;
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

fn write_parquet(opts: &GenOptions, path: &Path) -> Result<()> {
    let schema = Schema::builtin(opts.kind.schema_name()).expect("built-in schema");
    let arrow = arrow_schema(&schema);
    let file = File::create(path).map_err(|e| Error::io("create", path, e))?;
    let perr = |e: parquet::errors::ParquetError| Error::Format {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let mut writer =
        ArrowWriter::try_new(file, arrow.clone(), Some(writer_properties(&[]))).map_err(perr)?;
    for_each_window(opts, |parts| {
        let batches: Vec<RecordBatch> = parts
            .par_iter()
            .map(|p| csv_chunk_to_batch(p, &schema, &arrow))
            .collect();
        for b in batches {
            writer.write(&b).map_err(perr)?;
        }
        Ok(())
    })?;
    let file = writer.into_inner().map_err(perr)?;
    file.sync_all().map_err(|e| Error::io("write", path, e))
}

fn csv_chunk_to_batch(
    text: &[u8],
    schema: &Schema,
    arrow: &Arc<arrow_schema::Schema>,
) -> RecordBatch {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_reader(text);
    let records: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.expect("generated CSV parses"))
        .collect();
    let columns: Vec<ArrayRef> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let cells: Vec<Option<&str>> = records
                .iter()
                .map(|r| Some(&r[i]).filter(|s| !s.is_empty()))
                .collect();
            text_column_to_array(spec, &cells).expect("generated data matches its schema")
        })
        .collect();
    RecordBatch::try_new(arrow.clone(), columns).expect("columns match the schema")
}

/// The gE register of the synthetic geography, as `pseudagg report --ge-register` reads it
/// (`testdata/ge-register.csv` is this text).
#[must_use]
pub fn ge_register_csv() -> String {
    use std::fmt::Write as _;
    let mut ges = jobcenters();
    ges.sort_by(|a, b| (a.rd, &a.ge_nr).cmp(&(b.rd, &b.ge_nr)));
    let mut out = String::from("ge_nr;rd;ge_name\n");
    for g in ges {
        let _ = writeln!(out, "{};{};{}", g.ge_nr, g.rd, g.name);
    }
    out
}
