//! A Parquet extract is read row group by row group on the pool, in the columns the caller needs
//! (and the month and uniqueness columns) only. The rows still come in file order with their row
//! numbers; the columns read are checked cell by cell as always; the others by name and type only,
//! and come as `Null` columns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_cast::display::array_value_to_string;
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use pseudagg_core::{Error, Month, Schema};
use pseudagg_io::{ExtractReader, ReadOptions};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/opds-person-2025-03.csv"
);

fn schema() -> Schema {
    Schema::builtin("opds-person").unwrap()
}

fn options(columns: Option<Vec<usize>>) -> ReadOptions {
    let mut o = ReadOptions::new("2025-03".parse::<Month>().unwrap());
    o.batch_rows = 150;
    o.columns = columns;
    o
}

fn read(path: &Path, columns: Option<Vec<usize>>) -> pseudagg_core::Result<Vec<RecordBatch>> {
    let mut reader = ExtractReader::open(path, &schema(), options(columns))?;
    let mut out = Vec::new();
    while let Some(b) = reader.next_batch()? {
        out.push(b);
    }
    reader.finish()?;
    Ok(out)
}

/// The sample as Parquet in row groups of 300 rows (7 of them), with `change` applied to the
/// rows first.
fn sample_parquet(dir: &Path, change: impl Fn(usize, &str, &str) -> Option<String>) -> PathBuf {
    sample_parquet_with(
        dir,
        change,
        WriterProperties::builder().set_max_row_group_row_count(Some(300)),
    )
}

/// [`sample_parquet`], written with `props`.
fn sample_parquet_with(
    dir: &Path,
    change: impl Fn(usize, &str, &str) -> Option<String>,
    props: parquet::file::properties::WriterPropertiesBuilder,
) -> PathBuf {
    let batches = read(Path::new(SAMPLE), None).unwrap();
    let batch = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    let schema = batch.schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| {
            if f.data_type() != &DataType::Utf8 {
                return c.clone();
            }
            let s = c.as_any().downcast_ref::<StringArray>().unwrap();
            Arc::new(
                (0..s.len())
                    .map(|i| {
                        let v = s.is_valid(i).then(|| s.value(i));
                        change(i, f.name(), v.unwrap_or("")).or(v.map(str::to_owned))
                    })
                    .collect::<StringArray>(),
            ) as ArrayRef
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let path = dir.join("opds.parquet");
    let props = props.build();
    let mut w =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    path
}

/// Reads the file to the end and returns the problems it is refused with.
fn problems_of(path: &Path, options: ReadOptions) -> pseudagg_core::Problems {
    let mut reader = ExtractReader::open(path, &schema(), options).unwrap();
    let err = loop {
        match reader.next_batch() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the bad cells were not found"),
            Err(e) => break e,
        }
    };
    let Error::Input { problems, .. } = err else {
        panic!("{err}")
    };
    problems
}

fn cells(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(column).clone();
            (0..b.num_rows()).map(move |r| array_value_to_string(&c, r).unwrap())
        })
        .collect()
}

#[test]
fn row_groups_read_in_parallel_come_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_parquet(dir.path(), |_, _, _| None);
    let csv = read(Path::new(SAMPLE), None).unwrap();
    let parquet = read(&path, None).unwrap();
    let s = schema();
    for column in [
        "kundennummer",
        "ge_nr",
        "nachname",
        "letztes_beratungsgespraech",
    ] {
        let i = s.columns.iter().position(|c| c.name == column).unwrap();
        assert_eq!(cells(&csv, i), cells(&parquet, i), "{column}");
    }
}

#[test]
fn only_the_columns_asked_for_are_read_and_checked_cell_by_cell() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let at = |name: &str| s.columns.iter().position(|c| c.name == name).unwrap();
    // Row 1,500 (the fifth row group): a `plz` that breaks its pattern, and an unknown
    // `beschaeftigung`.
    let path = sample_parquet(dir.path(), |row, column, _| {
        (row == 1_499 && ["plz", "beschaeftigung"].contains(&column)).then(|| "x?".to_owned())
    });
    let wanted = vec![at("rd"), at("ge_nr"), at("beschaeftigung")];

    // Asked for: the bad cell stops the read, named by row and column, never by value.
    let err = read(&path, Some(wanted.clone())).unwrap_err();
    let Error::Input { problems, .. } = &err else {
        panic!("{err}")
    };
    let listed: Vec<String> = problems.items().iter().map(ToString::to_string).collect();
    assert_eq!(problems.total(), 1, "{listed:?}");
    assert!(
        listed[0].contains("row 1500") && listed[0].contains("beschaeftigung"),
        "{listed:?}"
    );
    assert!(!err.to_string().contains("x?"));

    // Not asked for: `plz` is checked by name and type only, and comes as nulls.
    let path = sample_parquet(dir.path(), |row, column, _| {
        (row == 1_499 && column == "plz").then(|| "x?".to_owned())
    });
    let batches = read(&path, Some(wanted)).unwrap();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        2000
    );
    let b = &batches[0];
    assert_eq!(b.column(at("plz")).data_type(), &DataType::Null);
    assert_eq!(b.column(at("nachname")).data_type(), &DataType::Null);
    // The month and uniqueness columns are read whatever the caller asks.
    assert_eq!(b.column(at("datenstand")).data_type(), &DataType::Utf8);
    assert_eq!(b.column(at("kundennummer")).data_type(), &DataType::Utf8);
    assert_eq!(b.column(at("beschaeftigung")).data_type(), &DataType::Utf8);
    // Read whole, the same file fails at the `plz` cell.
    assert!(read(&path, None).is_err());
}

/// A CSV extract the same way: the columns asked for are decoded and checked, the others only
/// counted as fields of their record.
#[test]
fn a_csv_extract_is_checked_in_the_columns_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let s = schema();
    let at = |name: &str| s.columns.iter().position(|c| c.name == name).unwrap();
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(';').collect();
    let plant = |column: &str| {
        let i = header.iter().position(|h| *h == column).unwrap();
        let lines: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(n, l)| {
                if n != 1_500 {
                    return l.to_owned();
                }
                let mut f: Vec<&str> = l.split(';').collect();
                f[i] = "x?";
                f.join(";")
            })
            .collect();
        let path = dir.path().join(format!("{column}.csv"));
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    let wanted = vec![at("rd"), at("ge_nr"), at("beschaeftigung")];
    let bad = read(&plant("beschaeftigung"), Some(wanted.clone())).unwrap_err();
    assert!(bad.to_string().contains("beschaeftigung"), "{bad}");
    let path = plant("plz");
    let batches = read(&path, Some(wanted)).unwrap();
    assert_eq!(
        batches.iter().map(RecordBatch::num_rows).sum::<usize>(),
        2000
    );
    assert_eq!(batches[0].column(at("plz")).data_type(), &DataType::Null);
    assert!(
        read(&path, None).is_err(),
        "read whole, the `plz` cell is found"
    );
}

/// Each distinct value of a column is checked once per batch, yet every cell that holds a bad
/// value is named, in its own row, however often the value repeats; a good value that repeats
/// passes each time.
#[test]
fn a_bad_value_repeated_over_many_rows_is_named_in_every_row() {
    let dir = tempfile::tempdir().unwrap();
    // Every tenth row from 100 to 999 (within and across row groups and batches of 150): the same
    // unknown `beschaeftigung`.
    let bad_rows: Vec<usize> = (100..1_000).step_by(10).collect();
    let path = sample_parquet(dir.path(), |row, column, _| {
        (column == "beschaeftigung" && bad_rows.contains(&row)).then(|| "x?".to_owned())
    });
    // Plain, as dictionaries (each value of the row group's dictionary judged once), and not
    // read but checked (as `pseudonymise` checks the columns it drops: as dictionaries too).
    let at = schema().index_of("beschaeftigung").unwrap();
    for (columns, dictionaries, check_unread) in [
        (None, false, false),
        (Some(vec![at]), true, false),
        (Some(vec![]), false, true),
    ] {
        let mut options = options(columns);
        options.max_problems = 1_000;
        options.dictionaries = dictionaries;
        options.check_unread = check_unread;
        let problems = problems_of(&path, options);
        let listed: Vec<String> = problems.items().iter().map(ToString::to_string).collect();
        assert_eq!(problems.total(), bad_rows.len(), "{listed:?}");
        for (row, line) in bad_rows.iter().zip(&listed) {
            assert!(
                line.contains(&format!("row {}", row + 1)) && line.contains("beschaeftigung"),
                "{line}"
            );
        }
    }
}

/// With `dictionaries`, a Parquet extract's text columns asked for come dictionary-encoded with
/// the same values; the unique and month columns, and a CSV extract's columns, stay plain.
#[test]
fn text_columns_may_come_as_dictionaries_with_the_same_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = sample_parquet(dir.path(), |_, _, _| None);
    let s = schema();
    let at = |name: &str| s.index_of(name).unwrap();
    let wanted = vec![at("ge_nr"), at("ge_name"), at("massnahme"), at("elb")];
    let plain = read(&path, Some(wanted.clone())).unwrap();
    for source in [path.as_path(), Path::new(SAMPLE)] {
        let mut o = options(Some(wanted.clone()));
        o.dictionaries = true;
        let mut reader = ExtractReader::open(source, &s, o).unwrap();
        let mut batches = Vec::new();
        while let Some(b) = reader.next_batch().unwrap() {
            batches.push(b);
        }
        reader.finish().unwrap();
        for name in [
            "ge_nr",
            "ge_name",
            "massnahme",
            "elb",
            "kundennummer",
            "datenstand",
        ] {
            assert_eq!(cells(&batches, at(name)), cells(&plain, at(name)), "{name}");
            let ty = batches[0].column(at(name)).data_type();
            let dictionary =
                source == path.as_path() && ["ge_nr", "ge_name", "massnahme"].contains(&name);
            assert_eq!(
                ty == &pseudagg_io::dictionary_text(),
                dictionary,
                "{name}: {ty}"
            );
            assert_eq!(batches[0].schema().field(at(name)).data_type(), ty);
        }
    }
}

/// Work done on the reading threads comes with its batch, in file order, and sees the batch's
/// first row number: the same for a CSV and a Parquet extract, whatever the threads did.
#[test]
fn chunk_work_comes_with_its_batch_and_its_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = sample_parquet(dir.path(), |_, _, _| None);
    let ge = schema().index_of("ge_nr").unwrap();
    for path in [Path::new(SAMPLE), parquet.as_path()] {
        let mut o = options(Some(vec![ge]));
        // The work: the batch's first row, its length and its gE numbers joined.
        o.work = Some(pseudagg_io::ChunkWork::new(
            move |batch: &RecordBatch, first_row| {
                let ges = batch
                    .column(ge)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap();
                (
                    first_row,
                    batch.num_rows(),
                    ges.iter().flatten().collect::<Vec<_>>().join(","),
                )
            },
        ));
        let mut reader = ExtractReader::open(path, &schema(), o).unwrap();
        let mut next_row = 1;
        let mut batches = 0;
        while let Some((batch, (first_row, rows, ges))) =
            reader.next_worked::<(u64, usize, String)>().unwrap()
        {
            assert_eq!(first_row, next_row, "{}", path.display());
            assert_eq!(rows, batch.num_rows());
            assert_eq!(ges, cells(&[batch], ge).join(","));
            next_row += rows as u64;
            batches += 1;
        }
        reader.finish().unwrap();
        assert_eq!(next_row, 2001);
        assert!(batches > 7, "{batches} batches");
    }
}

/// A customer number repeated in another row group is found (at the end of reading: the row
/// groups are checked on different threads), with the first row that holds it.
#[test]
fn a_repeated_identifier_is_found_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let first = cells(&read(Path::new(SAMPLE), None).unwrap(), 0)[0].clone();
    let path = sample_parquet(dir.path(), |i, column, _| {
        (column == "kundennummer" && (i == 1499 || i == 1999)).then(|| first.clone())
    });
    let Err(Error::Input { problems, .. }) = read(&path, Some(vec![])) else {
        panic!("the repeats were not found");
    };
    let found: Vec<(Option<u64>, String)> = problems
        .items()
        .iter()
        .map(|p| (p.location.row, p.message.clone()))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].0, Some(1500));
    assert_eq!(found[1].0, Some(2000));
    assert!(
        found
            .iter()
            .all(|(_, m)| m.starts_with("repeats the value of row 1;"))
    );
    assert!(found.iter().all(|(_, m)| !m.contains(&first)));
}

/// A text column the file stores without a dictionary (or whose dictionary fell back to plain
/// pages) is handed on plain even when dictionaries are asked for: as a dictionary, every value
/// would be hashed again.
#[test]
fn a_column_stored_without_a_dictionary_comes_plain() {
    let dir = tempfile::tempdir().unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(300))
        .set_column_dictionary_enabled("ge_name".into(), false);
    let path = sample_parquet_with(dir.path(), |_, _, _| None, props);
    let s = schema();
    let at = |name: &str| s.index_of(name).unwrap();
    let mut o = options(Some(vec![at("ge_nr"), at("ge_name")]));
    o.dictionaries = true;
    let mut reader = ExtractReader::open(&path, &s, o).unwrap();
    assert_eq!(
        reader.arrow_schema().field(at("ge_name")).data_type(),
        &DataType::Utf8
    );
    assert_eq!(
        reader.arrow_schema().field(at("ge_nr")).data_type(),
        &pseudagg_io::dictionary_text()
    );
    let mut batches = Vec::new();
    while let Some(b) = reader.next_batch().unwrap() {
        assert_eq!(b.column(at("ge_name")).data_type(), &DataType::Utf8);
        batches.push(b);
    }
    reader.finish().unwrap();
    let plain = read(&path, None).unwrap();
    for name in ["ge_nr", "ge_name"] {
        assert_eq!(cells(&batches, at(name)), cells(&plain, at(name)), "{name}");
    }
}

/// A file of one large row group is read in parts on several threads (each skipping to its rows):
/// the rows come in file order with their numbers, a bad cell is named in its row, and work sees
/// each batch's first row.
#[test]
fn one_large_row_group_is_read_in_parts_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 rows in one row group; batches of 150 rows make parts of 600.
    let one_group = |change: &dyn Fn(usize, &str, &str) -> Option<String>| {
        let props = WriterProperties::builder().set_max_row_group_row_count(Some(1 << 20));
        let path = sample_parquet_with(dir.path(), change, props);
        let meta = parquet::file::reader::FileReader::metadata(
            &parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&path).unwrap())
                .unwrap(),
        )
        .clone();
        assert_eq!(meta.num_row_groups(), 1);
        path
    };
    let path = one_group(&|_, _, _| None);
    let s = schema();
    for column in ["kundennummer", "ge_nr", "letztes_beratungsgespraech"] {
        let i = s.index_of(column).unwrap();
        assert_eq!(
            cells(&read(&path, None).unwrap(), i),
            cells(&read(Path::new(SAMPLE), None).unwrap(), i),
            "{column}"
        );
    }
    let ge = s.index_of("ge_nr").unwrap();
    let mut o = options(Some(vec![ge]));
    o.work = Some(pseudagg_io::ChunkWork::new(
        |batch: &RecordBatch, first_row| (first_row, batch.num_rows()),
    ));
    let mut reader = ExtractReader::open(&path, &s, o).unwrap();
    let mut next_row = 1;
    while let Some((_, (first_row, rows))) = reader.next_worked::<(u64, usize)>().unwrap() {
        assert_eq!(first_row, next_row);
        next_row += rows as u64;
    }
    assert_eq!(next_row, 2001);
    let bad = one_group(&|row, column, _| {
        (column == "beschaeftigung" && (row == 1_234 || row == 1_999)).then(|| "x?".to_owned())
    });
    let Err(Error::Input { problems, .. }) = read(&bad, None) else {
        panic!("the bad cells were not found");
    };
    let rows: Vec<Option<u64>> = problems.items().iter().map(|p| p.location.row).collect();
    assert_eq!(rows, vec![Some(1_235), Some(2_000)]);
}

/// A CSV chunk remembers the values of a column that passed their check; a bad value is still
/// named in every row that holds it, read or only checked, however often it repeats.
#[test]
fn a_bad_value_repeated_in_a_csv_is_named_in_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(';').collect();
    let i = header.iter().position(|h| *h == "beschaeftigung").unwrap();
    let bad_rows: Vec<usize> = (100..1_000).step_by(10).collect();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(n, l)| {
            if n == 0 || !bad_rows.contains(&(n - 1)) {
                return l.to_owned();
            }
            let mut f: Vec<&str> = l.split(';').collect();
            f[i] = "x?";
            f.join(";")
        })
        .collect();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    for (columns, check_unread) in [(None, false), (Some(vec![]), true)] {
        let mut o = options(columns);
        o.max_problems = 1_000;
        o.check_unread = check_unread;
        let problems = problems_of(&path, o);
        let rows: Vec<u64> = problems
            .items()
            .iter()
            .filter(|p| p.location.column.as_deref() == Some("beschaeftigung"))
            .filter_map(|p| p.location.row)
            .collect();
        let wanted: Vec<u64> = bad_rows.iter().map(|r| *r as u64 + 1).collect();
        assert_eq!(rows, wanted, "check_unread = {check_unread}");
        assert_eq!(problems.total(), bad_rows.len());
    }
}
