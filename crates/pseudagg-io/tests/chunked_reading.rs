//! The CSV reader cuts the file into chunks that are decoded in parallel. Wherever the cuts fall,
//! the batches, the problems (row, line, column) and the file hash must be those of one pass.

use std::path::{Path, PathBuf};

use arrow_array::{Array, RecordBatch};
use arrow_cast::display::array_value_to_string;
use pseudagg_core::{Error, Month, Schema};
use pseudagg_io::{ExtractReader, ReadOptions, sha256_file};

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/verbis-vkb-2025-03.csv")
}

fn options(batch_rows: usize) -> ReadOptions {
    let mut o = ReadOptions::new("2025-03".parse::<Month>().unwrap());
    o.batch_rows = batch_rows;
    o
}

/// Every cell of every batch as text, row by row, and the batch sizes.
fn read_all(path: &Path, batch_rows: usize) -> (Vec<Vec<String>>, Vec<usize>, String) {
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let mut reader = ExtractReader::open(path, &schema, options(batch_rows)).unwrap();
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    while let Some(batch) = reader.next_batch().unwrap() {
        sizes.push(batch.num_rows());
        rows.extend(texts(&batch));
    }
    let summary = reader.finish().unwrap();
    assert_eq!(summary.rows, rows.len() as u64);
    (rows, sizes, summary.sha256)
}

fn texts(batch: &RecordBatch) -> Vec<Vec<String>> {
    (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| {
                    if c.is_null(r) {
                        "<null>".to_owned()
                    } else {
                        array_value_to_string(c, r).unwrap()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_cut_reads_the_same_rows_and_hash() {
    let path = sample();
    let (whole, sizes, sha) = read_all(&path, 1 << 16);
    assert_eq!(whole.len(), 2000);
    assert_eq!(sizes, vec![2000]);
    assert_eq!(sha, sha256_file(&path).unwrap());
    // The sample's notes hold quotes, `;` and line breaks inside quoted fields.
    assert!(whole.iter().flatten().any(|v| v.contains('\n')));
    assert!(whole.iter().flatten().any(|v| v.contains(';')));
    for batch_rows in [1, 2, 3, 7, 333, 1999] {
        let (rows, sizes, sha_cut) = read_all(&path, batch_rows);
        assert_eq!(rows, whole, "batch_rows = {batch_rows}");
        assert!(sizes.iter().all(|&n| n <= batch_rows));
        assert_eq!(sizes.iter().sum::<usize>(), 2000);
        assert_eq!(sha_cut, sha);
    }
}

#[test]
fn crlf_and_bom_read_the_same_outside_free_text() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample()).unwrap();
    let crlf = dir.path().join("crlf.csv");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(text.replace('\n', "\r\n").into_bytes());
    std::fs::write(&crlf, bytes).unwrap();
    let (whole, _, _) = read_all(&sample(), 1 << 16);
    let (rows, _, _) = read_all(&crlf, 5);
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let compared: Vec<usize> = schema
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.class != pseudagg_core::ColumnClass::FreeText)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(rows.len(), whole.len());
    for (a, b) in rows.iter().zip(&whole) {
        for &i in &compared {
            assert_eq!(a[i], b[i]);
        }
    }
}

/// The sample with the customer number of data row `row` (1-based) broken, and the line that row
/// starts on, as the csv crate counts it.
fn with_bad_row(dir: &Path, row: usize) -> (PathBuf, u64) {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_path(sample())
        .unwrap();
    let header = reader.headers().unwrap().clone();
    let path = dir.join("bad.csv");
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_path(&path)
        .unwrap();
    writer.write_record(&header).unwrap();
    let mut line = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.unwrap();
        let mut fields: Vec<String> = record.iter().map(str::to_owned).collect();
        if i + 1 == row {
            "12-not-a-number".clone_into(&mut fields[0]);
            line = record.position().unwrap().line();
        }
        writer.write_record(&fields).unwrap();
    }
    writer.flush().unwrap();
    (path, line)
}

/// Reads `path` until the reader refuses it, and returns the problems it names.
fn input_problems(path: &Path, schema: &Schema, batch_rows: usize) -> pseudagg_core::Problems {
    let mut reader = ExtractReader::open(path, schema, options(batch_rows)).unwrap();
    let err = loop {
        match reader.next_batch() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the file was read without a problem"),
            Err(e) => break e,
        }
    };
    let Error::Input { problems, .. } = err else {
        panic!("not an input error: {err}");
    };
    problems
}

#[test]
fn problems_keep_their_row_and_line_wherever_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (path, line) = with_bad_row(dir.path(), 1500);
    assert!(line > 1501, "notes with line breaks come before row 1500");
    let schema = Schema::builtin("verbis-vkb").unwrap();
    for batch_rows in [1, 7, 1 << 16] {
        let problems = input_problems(&path, &schema, batch_rows);
        assert_eq!(problems.total(), 1, "batch_rows = {batch_rows}");
        let at = &problems.items()[0].location;
        assert_eq!(at.row, Some(1500));
        assert_eq!(at.line, Some(line));
        assert_eq!(at.column.as_deref(), Some("kundennummer"));
    }
}

#[test]
fn a_repeated_identifier_is_found_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample()).unwrap();
    let first_id = text
        .lines()
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let path = dir.path().join("dup.csv");
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_path(&path)
        .unwrap();
    writer.write_record(&header).unwrap();
    for (i, record) in reader.records().enumerate() {
        let mut fields: Vec<String> = record.unwrap().iter().map(str::to_owned).collect();
        if i + 1 == 1800 {
            fields[0].clone_from(&first_id);
        }
        writer.write_record(&fields).unwrap();
    }
    writer.flush().unwrap();
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let mut reader = ExtractReader::open(&path, &schema, options(64)).unwrap();
    let err = loop {
        match reader.next_batch() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the duplicate was not found"),
            Err(e) => break e,
        }
    };
    let Error::Input { problems, .. } = err else {
        panic!("not an input error: {err}");
    };
    let p = &problems.items()[0];
    assert_eq!(p.location.row, Some(1800));
    assert!(p.message.contains("row 1;"), "{}", p.message);
    assert!(!p.message.contains(&first_id));
}

#[test]
fn an_unclosed_quote_is_refused_before_the_rest_of_the_file_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample()).unwrap();
    let header = text.lines().next().unwrap();
    let path = dir.path().join("unclosed.csv");
    let mut bytes = format!("{header}\n\"").into_bytes();
    // 70 MiB after an opening quote that is never closed: one "field" swallowing the file.
    let line = b"x;y;z\n".repeat((70 << 20) / 6);
    bytes.extend_from_slice(&line);
    std::fs::write(&path, bytes).unwrap();
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let mut reader = ExtractReader::open(&path, &schema, options(1 << 16)).unwrap();
    let err = reader.next_batch().unwrap_err();
    let Error::Format { reason, .. } = &err else {
        panic!("not a format error: {err}");
    };
    assert!(reason.contains("line 2"), "{reason}");
    assert!(reason.contains("unclosed double quote"), "{reason}");
}

/// A chunk's text is checked once; a field is then its slice of that text. Two neighbouring
/// fields that each hold half of a two-byte character make a chunk that is valid UTF-8 as a
/// whole, but neither field is: both must be refused, each in its own cell.
#[test]
fn a_character_split_over_two_fields_is_refused_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_path(sample())
        .unwrap();
    let path = dir.path().join("split.csv");
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_path(&path)
        .unwrap();
    let mut names = Vec::new();
    for (i, record) in reader.byte_records().enumerate() {
        let record = record.unwrap();
        if i == 0 {
            names = record.iter().map(<[u8]>::to_vec).collect();
        }
        let mut fields: Vec<Vec<u8>> = record.iter().map(<[u8]>::to_vec).collect();
        if i == 3 {
            let first = names.iter().position(|n| n == b"vorname").unwrap();
            let last = names.iter().position(|n| n == b"nachname").unwrap();
            assert_eq!(last, first + 1, "the two name columns are neighbours");
            fields[first] = b"Ann\xC3".to_vec();
            fields[last] = b"\xA4rger".to_vec();
        }
        writer
            .write_byte_record(&csv::ByteRecord::from(fields))
            .unwrap();
    }
    writer.flush().unwrap();
    let schema = Schema::builtin("verbis-vkb").unwrap();
    let problems = input_problems(&path, &schema, 1 << 16);
    let cells: Vec<(Option<u64>, Option<&str>, &str)> = problems
        .items()
        .iter()
        .map(|p| {
            (
                p.location.row,
                p.location.column.as_deref(),
                p.message.as_str(),
            )
        })
        .collect();
    assert_eq!(cells.len(), 2, "{cells:?}");
    for (cell, column) in cells.iter().zip(["vorname", "nachname"]) {
        assert_eq!(cell.0, Some(3));
        assert_eq!(cell.1, Some(column));
        assert!(cell.2.contains("UTF-8"), "{cell:?}");
    }
}
