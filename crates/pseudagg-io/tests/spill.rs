//! Rows held in spill files come back once, in order, through the caller's rewrite, as Parquet
//! files per partition; the spill is gone afterwards.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pseudagg_io::{PartitionSpill, sha256_file, writer_properties};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("rd", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[(&str, &str)]) -> RecordBatch {
    let rd: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let value: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    RecordBatch::try_new(schema(), vec![rd, value]).unwrap()
}

/// The rows of a part file: the partition value from its `rd=` folder (the file has no `rd`
/// column, the hive way), the value from the file.
fn read(path: &std::path::Path) -> Vec<(String, Option<String>)> {
    let folder = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let rd = folder.strip_prefix("rd=").unwrap().to_owned();
    let file = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
    {
        let batch = batch.unwrap();
        let names: Vec<&str> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["value"], "the partition key is in the path only");
        let value = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        for i in 0..batch.num_rows() {
            out.push((
                rd.clone(),
                value.is_valid(i).then(|| value.value(i).to_owned()),
            ));
        }
    }
    out
}

#[test]
fn spilled_rows_are_written_once_in_order_through_the_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut spill = PartitionSpill::new(dir.path(), "parquet", "rd", schema()).unwrap();
    spill.ensure_partition("EMPTY").unwrap();
    spill
        .write(&batch(&[("A", "a1"), ("B", "b1"), ("A", "a2")]), 0)
        .unwrap();
    spill
        .write(
            &batch(&[("B", "b2"), ("A", "a3"), ("A", "a4"), ("B", "b3")]),
            0,
        )
        .unwrap();
    assert!(dir.path().join(".spill").is_dir());

    // Partition B loses its values, as the k-anonymity step blanks quasi-identifiers.
    let files = spill
        .finish(&writer_properties(&[]), 3, |partition, batch| {
            if partition != "B" {
                return Ok(batch);
            }
            let blank: ArrayRef = Arc::new(StringArray::new_null(batch.num_rows()));
            // The rewrite still sees the key column; only the files lose it.
            Ok(RecordBatch::try_new(batch.schema(), vec![batch.column(0).clone(), blank]).unwrap())
        })
        .unwrap();

    assert!(!dir.path().join(".spill").exists(), "the spill is removed");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "parquet/rd=A/part-00000.parquet",
            "parquet/rd=A/part-00001.parquet",
            "parquet/rd=B/part-00000.parquet",
            "parquet/rd=EMPTY/part-00000.parquet",
        ]
    );
    let rows: Vec<u64> = files.iter().map(|f| f.rows).collect();
    assert_eq!(rows, [3, 1, 3, 0]);
    for f in &files {
        let path = dir.path().join(&f.path);
        assert_eq!(f.sha256, sha256_file(&path).unwrap());
        assert_eq!(f.bytes, std::fs::metadata(&path).unwrap().len());
    }
    let a: Vec<_> = [0, 1]
        .iter()
        .flat_map(|&i| read(&dir.path().join(&files[i].path)))
        .collect();
    let a_values: Vec<_> = a.iter().map(|(_, v)| v.clone().unwrap()).collect();
    assert_eq!(a_values, ["a1", "a2", "a3", "a4"]);
    let b = read(&dir.path().join(&files[2].path));
    assert_eq!(b.len(), 3);
    assert!(b.iter().all(|(rd, v)| rd == "B" && v.is_none()));
}

#[test]
fn an_unsafe_partition_value_is_refused_before_any_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut spill = PartitionSpill::new(dir.path(), "parquet", "rd", schema()).unwrap();
    let err = spill.write(&batch(&[("../x", "v")]), 0).unwrap_err();
    assert!(err.to_string().contains("folder name"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join(".spill"))
            .unwrap()
            .count(),
        0
    );
}
