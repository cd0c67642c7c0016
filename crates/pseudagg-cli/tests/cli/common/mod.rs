//! Helpers shared by the CLI tests: running the binary, making extracts, reading outputs back with
//! the `parquet` crate (not with the writer's code).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::Date32Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const SAMPLE_VKB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/verbis-vkb-2025-03.csv"
);
pub const SAMPLE_OPDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/opds-person-2025-03.csv"
);
pub const VKB_PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/vkb.toml");

/// What a run of the binary gave.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `pseudagg` with `args`, without a terminal, at the most verbose log level.
pub fn pseudagg(args: &[&str]) -> Output {
    pseudagg_env(args, &[])
}

pub fn pseudagg_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_pseudagg"))
        .args(args)
        .env("PSEUDAGG_LOG", "trace")
        .env("RUST_BACKTRACE", "1")
        .env_remove("PSEUDAGG_KEY_FILE")
        .env_remove("PSEUDAGG_PROTOCOL_KEY_FILE")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `pseudagg pseudonymise` with the VKB pipeline and any extra options.
pub fn pseudonymise_vkb(
    input: &Path,
    month: &str,
    key: &Path,
    out: &Path,
    extra: &[&str],
) -> Output {
    pseudonymise_with(Path::new(VKB_PIPELINE), input, month, key, out, extra)
}

/// `pseudagg pseudonymise` with the given pipeline definition.
pub fn pseudonymise_with(
    pipeline: &Path,
    input: &Path,
    month: &str,
    key: &Path,
    out: &Path,
    extra: &[&str],
) -> Output {
    let mut args = vec![
        "pseudonymise",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--month",
        month,
        "--key-file",
        key.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    pseudagg(&args)
}

/// Writes a key file with the given bytes and mode 0600. A test's constant pattern (`[1; 32]`) is
/// spread into 32 different bytes first, since the loader refuses low-entropy keys; a key that is
/// strong already (the fixed vector's bytes 0..32) is written as given.
pub fn key_file(dir: &Path, bytes: [u8; 32]) -> PathBuf {
    let path = dir.join("test.key");
    let mut distinct = bytes.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut bytes = bytes;
    if distinct.len() < 16 {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b ^= (i as u8).wrapping_mul(73).wrapping_add(11);
        }
    }
    let hex: String = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .concat();
    fs::write(&path, format!("{hex}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A parsed CSV extract that tests can change cell by cell and write back.
#[derive(Debug, Clone)]
pub struct Extract {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Extract {
    pub fn read(path: &str) -> Self {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_path(path)
            .unwrap();
        let header = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        Self { header, rows }
    }

    pub fn sample_vkb() -> Self {
        Self::read(SAMPLE_VKB)
    }

    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    pub fn set(&mut self, row: usize, column: &str, value: &str) -> &mut Self {
        let c = self.col(column);
        value.clone_into(&mut self.rows[row][c]);
        self
    }

    pub fn get(&self, row: usize, column: &str) -> &str {
        &self.rows[row][self.col(column)]
    }

    /// Keeps the rows whose `column` holds `value`.
    pub fn only(mut self, column: &str, value: &str) -> Self {
        let c = self.col(column);
        self.rows.retain(|r| r[c] == value);
        self
    }

    pub fn head(mut self, n: usize) -> Self {
        self.rows.truncate(n);
        self
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .delimiter(b';')
            .from_writer(Vec::new());
        w.write_record(&self.header).unwrap();
        for r in &self.rows {
            w.write_record(r).unwrap();
        }
        w.into_inner().unwrap()
    }

    pub fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.to_bytes()).unwrap();
        path.to_owned()
    }
}

/// Every file below `dir`, relative, sorted, with its bytes.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Reads a Parquet file with the `parquet` crate.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Every cell of every batch as text (dates as TT.MM.JJJJ, booleans as J/N), with its column.
pub fn cells(batches: &[RecordBatch]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for b in batches {
        for (f, col) in b.schema().fields().iter().zip(b.columns()) {
            for i in 0..col.len() {
                if col.is_null(i) {
                    continue;
                }
                let text = match f.data_type() {
                    DataType::Utf8 => col.as_string::<i32>().value(i).to_owned(),
                    DataType::Date32 => col
                        .as_primitive::<Date32Type>()
                        .value_as_date(i)
                        .unwrap()
                        .format("%d.%m.%Y")
                        .to_string(),
                    DataType::Boolean => {
                        (if col.as_boolean().value(i) { "J" } else { "N" }).to_owned()
                    }
                    other => panic!("unexpected output type {other}"),
                };
                out.push((f.name().clone(), text));
            }
        }
    }
    out
}

/// A recipient's table in a report's month folder:
/// `<format>/recipient=<scope>/<stem>.<format>`.
pub fn recipient_table(month: &Path, scope: &str, stem: &str, format: &str) -> PathBuf {
    month.join(format!("{format}/recipient={scope}/{stem}.{format}"))
}

/// The refugee report of the sample's RDs SAC, SAT and BB (all their gEs) into `out`; returns the
/// extract it read (written into `dir`).
pub fn report_of_three_rds(dir: &Path, out: &Path) -> Extract {
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input
        .rows
        .retain(|r| ["SAC", "SAT", "BB"].contains(&r[rd].as_str()));
    let path = input.write(&dir.join("opds.csv"));
    let r = pseudagg(&[
        "report",
        "--definition",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../pipelines/gefluechtete.toml"
        ),
        "--input",
        path.to_str().unwrap(),
        "--month",
        "2025-03",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    input
}
