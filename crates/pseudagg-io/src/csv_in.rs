//! CSV extracts as the BA data warehouse exports them: `;`, `"`, a header row, UTF-8 (with or
//! without BOM) or windows-1252.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::Schema as ArrowSchema;
use csv::ByteRecord;
use pseudagg_core::{Error, Location, Problem, Result, Schema};
use rayon::prelude::*;

use crate::cell::{ColumnCheck, TextColumn};
use crate::extract::{Chunk, Encoding, batch_of, match_columns};
use crate::hashing::HashingReader;

type Input = std::io::Chain<Cursor<Vec<u8>>, HashingReader<File>>;

pub(crate) struct CsvSource {
    path: PathBuf,
    reader: csv::Reader<Input>,
    encoding: Encoding,
    mapping: Vec<usize>,
    n_fields: usize,
    records: Vec<ByteRecord>,
    size: u64,
    max_problems: usize,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl CsvSource {
    pub(crate) fn open(
        path: &Path,
        schema: &Schema,
        encoding: Encoding,
        max_problems: usize,
    ) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("inspect", path, e))?
            .len();
        if size == 0 {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: "the file is empty; an extract has a header row and at least one data row"
                    .to_owned(),
            });
        }
        let mut hashing = HashingReader::new(file);
        let mut head = Vec::with_capacity(3);
        (&mut hashing)
            .take(3)
            .read_to_end(&mut head)
            .map_err(|e| Error::io("read", path, e))?;
        if head == BOM {
            head.clear();
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .quote(b'"')
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 20)
            .from_reader(Cursor::new(head).chain(hashing));

        let mut header = ByteRecord::new();
        let has_header = reader
            .read_byte_record(&mut header)
            .map_err(|e| csv_error(path, &e))?;
        if !has_header {
            return Err(Error::Format {
                path: path.to_owned(),
                reason: "the file holds no header row".to_owned(),
            });
        }
        let names: Vec<String> = header
            .iter()
            .map(|raw| {
                decode(raw, encoding).map_or_else(|_| String::new(), |s| s.trim().to_owned())
            })
            .collect();
        let mapping = match_columns(&names, schema).map_err(|problems| Error::Input {
            file: path.to_owned(),
            schema: schema.name.clone(),
            problems,
        })?;
        Ok(Self {
            path: path.to_owned(),
            reader,
            encoding,
            mapping,
            n_fields: names.len(),
            records: Vec::new(),
            size,
            max_problems,
        })
    }

    pub(crate) fn progress(&self) -> (u64, u64) {
        (self.reader.position().byte(), self.size)
    }

    pub(crate) fn next_chunk(
        &mut self,
        checks: &[ColumnCheck],
        arrow: &Arc<ArrowSchema>,
        first_row: u64,
        batch_rows: usize,
    ) -> Result<Option<Chunk>> {
        let mut n = 0;
        while n < batch_rows {
            if n == self.records.len() {
                self.records.push(ByteRecord::new());
            }
            let more = self
                .reader
                .read_byte_record(&mut self.records[n])
                .map_err(|e| csv_error(&self.path, &e))?;
            if !more {
                break;
            }
            n += 1;
        }
        if n == 0 {
            if first_row == 1 {
                return Err(Error::Format {
                    path: self.path.clone(),
                    reason: "the file holds a header row but no data rows".to_owned(),
                });
            }
            return Ok(None);
        }
        let records = &self.records[..n];
        let line_of = |r: &ByteRecord| r.position().map(csv::Position::line);

        let mut problems = Vec::new();
        for (i, rec) in records.iter().enumerate() {
            if rec.len() != self.n_fields {
                problems.push(Problem::new(
                    Location {
                        row: Some(first_row + i as u64),
                        line: line_of(rec),
                        ..Location::default()
                    },
                    format!(
                        "has {} fields, but the header has {}; a value that holds `;` must be enclosed in double quotes",
                        rec.len(),
                        self.n_fields
                    ),
                ));
            }
        }

        let encoding = self.encoding;
        let n_fields = self.n_fields;
        let max = self.max_problems;
        let columns: Vec<_> = checks
            .par_iter()
            .zip(self.mapping.par_iter())
            .map(|(check, &fi)| {
                let mut column = TextColumn::new(check.spec.ty, n);
                let mut problems = Vec::new();
                let mut hidden = 0;
                for (i, rec) in records.iter().enumerate() {
                    if rec.len() != n_fields {
                        column.append_null();
                        continue;
                    }
                    let result = match decode(&rec[fi], encoding) {
                        Ok(text) => column.append(check, Some(&text)).map_err(Cow::Owned),
                        Err(message) => {
                            column.append_null();
                            Err(message)
                        }
                    };
                    if let Err(message) = result {
                        if problems.len() < max {
                            let row = first_row + i as u64;
                            let at = Location::cell(row, line_of(rec), check.spec.name.clone());
                            problems.push(Problem::new(at, message));
                        } else {
                            hidden += 1;
                        }
                    }
                }
                (column.finish(), problems, hidden)
            })
            .collect();
        let mut arrays = Vec::with_capacity(columns.len());
        let mut hidden = 0;
        for (array, column_problems, column_hidden) in columns {
            arrays.push(array);
            problems.extend(column_problems);
            hidden += column_hidden;
        }
        problems.sort_by_key(|p| p.location.row);
        let batch = batch_of(arrow, arrays, !problems.is_empty());
        Ok(Some(Chunk {
            batch,
            problems,
            hidden,
        }))
    }

    pub(crate) fn finish(self) -> (String, u64) {
        let (_, hashing) = self.reader.into_inner().into_inner();
        hashing.finish()
    }
}

/// The longest field an extract may hold. A note of a few pages fits many times; a longer field is
/// a broken export (an unclosed quote swallowing the rest of the file) or not an extract at all.
pub const MAX_FIELD_BYTES: usize = 1 << 20;

/// Decodes a field; an empty field is the empty string (the caller treats it as null).
fn decode(raw: &[u8], encoding: Encoding) -> std::result::Result<Cow<'_, str>, Cow<'static, str>> {
    if raw.len() > MAX_FIELD_BYTES {
        return Err(Cow::Owned(format!(
            "is {} bytes long, more than the {MAX_FIELD_BYTES} a field may hold; look for an unclosed double quote in or before this row",
            raw.len()
        )));
    }
    if raw.contains(&0) {
        return Err(Cow::Borrowed(
            "holds a NUL byte: binary data, not text; is this a CSV export?",
        ));
    }
    match encoding {
        Encoding::Utf8 => std::str::from_utf8(raw).map(Cow::Borrowed).map_err(|_| {
            Cow::Borrowed(
                "is not valid UTF-8; if the file is encoded as windows-1252, run with --encoding windows-1252",
            )
        }),
        Encoding::Windows1252 => Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0),
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> Error {
    match e.kind() {
        csv::ErrorKind::Io(io) => {
            Error::io("read", path, std::io::Error::new(io.kind(), io.to_string()))
        }
        _ => Error::Format {
            path: path.to_owned(),
            reason: format!(
                "the CSV structure is broken{}",
                e.position()
                    .map(|p| format!(" at line {}", p.line()))
                    .unwrap_or_default()
            ),
        },
    }
}
