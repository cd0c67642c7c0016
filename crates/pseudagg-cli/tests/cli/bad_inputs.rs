use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{Extract, Output, key_file, pseudagg, pseudonymise_vkb};

struct Case {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = key_file(dir.path(), [21; 32]);
        Self { dir, key }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// A generated VerBIS extract of `rows` rows as Parquet.
    fn generated_parquet(&self, rows: usize) -> PathBuf {
        let path = self.dir.path().join("good.parquet");
        let rows = rows.to_string();
        let g = pseudagg(&[
            "gen-testdata",
            "--kind",
            "verbis-vkb",
            "--rows",
            &rows,
            "--month",
            "2025-03",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert_eq!(g.code, 0, "{}", g.stderr);
        path
    }

    /// Runs the VKB pipeline on `input` and checks the contract of a refusal: exit code 2, an
    /// error on stderr, nothing on stdout and nothing written.
    fn refuse(&self, input: &Path, month: &str, extra: &[&str]) -> Output {
        let out = self.out();
        let r = pseudonymise_vkb(input, month, &self.key, &out, extra);
        assert_eq!(
            r.code, 2,
            "expected exit code 2, got {}:\n{}",
            r.code, r.stderr
        );
        assert!(r.stderr.contains("error:"), "{}", r.stderr);
        assert!(r.stdout.is_empty(), "{}", r.stdout);
        // Only the protocol, which records the refused run.
        let written: Vec<String> = crate::common::tree(&out).into_keys().collect();
        assert!(
            written.iter().all(|f| f == "protocol.jsonl"),
            "something was written to {}: {written:?}",
            out.display()
        );
        if !written.is_empty() {
            let protocol = fs::read_to_string(out.join("protocol.jsonl")).unwrap();
            assert!(
                protocol.trim_end().ends_with('}') && protocol.contains("\"outcome\":\"error\"")
            );
        }
        r
    }

    fn refuse_extract(&self, extract: &Extract) -> Output {
        let path = extract.write(&self.dir.path().join("bad.csv"));
        self.refuse(&path, "2025-03", &[])
    }
}

/// No value of the given rows' sensitive columns (nor `extra`) may appear in the output.
fn assert_no_values(r: &Output, extract: &Extract, rows: &[usize], extra: &[&str]) {
    let schema = pseudagg_core::Schema::builtin("verbis-vkb").unwrap();
    let mut values: Vec<&str> = extra.to_vec();
    for &row in rows {
        for spec in schema.columns.iter().filter(|c| c.class.is_sensitive()) {
            if let Some(c) = extract.header.iter().position(|h| *h == spec.name) {
                values.push(&extract.rows[row][c]);
            }
        }
    }
    for v in values.into_iter().filter(|v| v.chars().count() >= 4) {
        assert!(
            !r.stderr.contains(v) && !r.stdout.contains(v),
            "a value was echoed:\n{}",
            r.stderr
        );
    }
}

fn expect(r: &Output, fragments: &[&str]) {
    for f in fragments {
        assert!(r.stderr.contains(f), "missing {f:?} in:\n{}", r.stderr);
    }
}

#[test]
fn missing_column() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    let c = x.col("plz");
    x.header.remove(c);
    for r in &mut x.rows {
        r.remove(c);
    }
    let r = case.refuse_extract(&x);
    expect(&r, &["column `plz`: is missing", "bad.csv"]);
}

#[test]
fn unknown_column_is_refused_and_its_values_not_shown() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    x.header.push("bemerkung_intern".into());
    for r in &mut x.rows {
        r.push("Geheimnis Meier-Lüdenscheidt".into());
    }
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "column 32 `bemerkung_intern` is not part of the schema",
            "extra-columns",
        ],
    );
    assert_no_values(&r, &x, &[0, 1], &["Geheimnis Meier-Lüdenscheidt"]);
}

#[test]
fn impossible_date_and_bad_flag() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    x.set(4, "geburtsdatum", "31.02.1990")
        .set(9, "vkb_kennzeichen", "X");
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "(2 problems)",
            "row 5",
            "column `geburtsdatum`: is not a date",
            "row 10",
            "column `vkb_kennzeichen`: is neither J nor N",
        ],
    );
    assert_no_values(&r, &x, &[4, 9], &["31.02.1990"]);
}

#[test]
fn malformed_kundennummer() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    x.set(6, "kundennummer", "325d12345");
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "row 7",
            "column `kundennummer`: does not match the pattern ^[0-9]{3}[A-Z][0-9]{6}$",
        ],
    );
    assert_no_values(&r, &x, &[6], &["325d12345"]);
}

/// pseudonymise keeps only the columns it publishes from; the ones it drops are checked cell by
/// cell all the same (a pattern, a date, an empty required cell), in the CSV and in Parquet.
#[test]
fn a_dropped_column_is_checked_as_strictly_as_a_kept_one() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    x.set(3, "plz", "5O667")
        .set(11, "vorname", "")
        .set(14, "fachkraft_name", "x\u{0}y");
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "(3 problems)",
            "row 4",
            "column `plz`: does not match the pattern ^[0-9]{5}$",
            "row 12",
            "column `vorname`: is empty",
            "row 15",
            "column `fachkraft_name`",
            "NUL",
        ],
    );
    assert_no_values(&r, &x, &[3, 11, 14], &["5O667"]);
}

#[test]
fn null_where_none_is_allowed() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    x.set(2, "nachname", "");
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "row 3",
            "column `nachname`: is empty, but `nachname` may not be empty",
        ],
    );
    assert_no_values(&r, &x, &[2], &[]);
}

#[test]
fn datenstand_of_another_month() {
    let case = Case::new();
    let x = Extract::sample_vkb().head(20);
    let path = x.write(&case.dir.path().join("march.csv"));
    let r = case.refuse(&path, "2025-04", &[]);
    expect(
        &r,
        &[
            "row 1",
            "column `datenstand`: holds the Datenstand 2025-03, but the run is for 2025-04",
        ],
    );
    // One message for the month, not one per row.
    assert_eq!(
        r.stderr.matches("holds the Datenstand").count(),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn second_datenstand_in_the_file() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    for row in 10..20 {
        x.set(row, "datenstand", "2025-02");
    }
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "row 11",
            "holds the Datenstand 2025-02",
            "the file holds 2 different months (2025-02, 2025-03)",
            "time series",
        ],
    );
}

#[test]
fn every_problem_is_listed_up_to_the_limit() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(200);
    for row in 0..120 {
        x.set(row, "plz", "1234");
    }
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "(120 problems)",
            "row 1 (",
            "row 50 (",
            "... and 70 more (the first 50 are listed)",
        ],
    );
    assert!(!r.stderr.contains("row 51 ("), "{}", r.stderr);
}

#[test]
fn duplicate_kundennummer() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(20);
    let first = x.get(2, "kundennummer").to_owned();
    x.set(12, "kundennummer", &first);
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "row 13",
            "column `kundennummer`: repeats the value of row 3",
        ],
    );
    assert_no_values(&r, &x, &[2, 12], &[]);
}

#[test]
fn wrong_field_count() {
    let case = Case::new();
    let x = Extract::sample_vkb().head(20);
    let mut text = String::from_utf8(x.to_bytes()).unwrap();
    // Break row 4: an unquoted `;` inside a value.
    let line_start: usize = text.split_inclusive('\n').take(4).map(str::len).sum();
    text.insert_str(line_start + 11, "Meier;");
    let path = case.dir.path().join("ragged.csv");
    fs::write(&path, text).unwrap();
    let r = case.refuse(&path, "2025-03", &[]);
    expect(
        &r,
        &[
            "row 4 (line 5): has 32 fields, but the header has 31",
            "double quotes",
        ],
    );
    assert_no_values(&r, &x, &[3], &["Meier"]);
}

#[test]
fn windows_1252_read_as_utf8_names_the_option() {
    let case = Case::new();
    let path = case.dir.path().join("cp.csv");
    let g = pseudagg(&[
        "gen-testdata",
        "--kind",
        "verbis-vkb",
        "--rows",
        "50",
        "--month",
        "2025-03",
        "--encoding",
        "windows-1252",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert_eq!(g.code, 0);
    let r = case.refuse(&path, "2025-03", &[]);
    expect(&r, &["is not valid UTF-8", "--encoding windows-1252"]);
}

#[test]
fn empty_file_header_only_and_no_header() {
    let case = Case::new();
    let empty = case.dir.path().join("empty.csv");
    fs::write(&empty, "").unwrap();
    expect(&case.refuse(&empty, "2025-03", &[]), &["the file is empty"]);

    let x = Extract::sample_vkb().head(5);
    let header_only = case.dir.path().join("header.csv");
    fs::write(&header_only, format!("{}\n", x.header.join(";"))).unwrap();
    expect(
        &case.refuse(&header_only, "2025-03", &[]),
        &["header row but no data rows"],
    );

    let text = String::from_utf8(x.to_bytes()).unwrap();
    let headless = case.dir.path().join("headless.csv");
    fs::write(&headless, text.split_once('\n').unwrap().1).unwrap();
    let r = case.refuse(&headless, "2025-03", &[]);
    expect(&r, &["the file has no header row"]);
    assert_no_values(&r, &x, &[0], &[]);
}

#[test]
fn damaged_parquet() {
    let case = Case::new();
    let good = case.generated_parquet(500);
    let bytes = fs::read(&good).unwrap();
    let cut = case.dir.path().join("cut.parquet");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    expect(
        &case.refuse(&cut, "2025-03", &[]),
        &["not a readable Parquet file"],
    );
}

#[test]
fn extract_of_the_wrong_kind() {
    let case = Case::new();
    let r = case.refuse(Path::new(crate::common::SAMPLE_OPDS), "2025-03", &[]);
    expect(
        &r,
        &[
            "is not part of the schema `verbis-vkb`",
            "`bg_nummer`",
            "column `telefon`: is missing",
        ],
    );
}

#[test]
fn parquet_with_a_wrong_type_and_a_null() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    // The sample as Parquet with every column as text: dates and flags have the wrong type.
    let case = Case::new();
    let x = Extract::sample_vkb().head(10);
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, name) in x.header.iter().enumerate() {
        let values: Vec<Option<String>> = x
            .rows
            .iter()
            .enumerate()
            .map(|(r, row)| {
                if name == "kundennummer" && r == 3 {
                    None
                } else {
                    Some(row[i].clone()).filter(|v| !v.is_empty())
                }
            })
            .collect();
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values)));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let path = case.dir.path().join("text-only.parquet");
    let file = fs::File::create(&path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();

    let r = case.refuse(&path, "2025-03", &[]);
    expect(
        &r,
        &[
            "column `geburtsdatum`: has the Parquet type Utf8, but the schema wants Date32",
            "column `vkb_kennzeichen`: has the Parquet type Utf8, but the schema wants Boolean",
        ],
    );
    assert_no_values(&r, &x, &[0, 1, 2, 3], &[]);
}

#[test]
fn missing_file() {
    let case = Case::new();
    let r = case.refuse(&case.dir.path().join("nowhere.csv"), "2025-03", &[]);
    expect(&r, &["nowhere.csv", "No such file"]);
}

#[test]
fn a_nul_byte_is_refused_by_row_and_column() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(10);
    x.set(6, "vermerk", "Rueckruf\0erbeten");
    let r = case.refuse_extract(&x);
    expect(&r, &["row 7", "column `vermerk`: holds a NUL byte"]);
    assert_no_values(&r, &x, &[6], &["Rueckruf"]);
}

#[test]
fn a_ten_megabyte_field_is_refused() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(5);
    let huge = "Notiz ".repeat(10 * 1024 * 1024 / 6);
    x.set(2, "vermerk", &huge);
    let r = case.refuse_extract(&x);
    expect(
        &r,
        &[
            "row 3",
            "column `vermerk`: is 10485756 bytes long",
            "unclosed double quote",
        ],
    );
    assert!(r.stderr.len() < 10_000, "the message stays short");
}

#[test]
fn duplicate_column_names_are_refused() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(5);
    let c = x.col("ort");
    x.header[c] = "nachname".into();
    let r = case.refuse_extract(&x);
    expect(&r, &["`nachname`"]);
    assert_no_values(&r, &x, &[0, 1, 2, 3, 4], &[]);
}

#[test]
fn ten_thousand_columns_are_refused_with_a_short_message() {
    let case = Case::new();
    let mut x = Extract::sample_vkb().head(3);
    for i in 0..10_000 {
        x.header.push(format!("extra_{i}"));
        for r in &mut x.rows {
            r.push(format!("v{i}"));
        }
    }
    let r = case.refuse_extract(&x);
    expect(&r, &["`extra_0`", "more"]);
    assert!(
        r.stderr.len() < 20_000,
        "{} bytes of message",
        r.stderr.len()
    );
}

/// Runs `pseudagg pseudonymise` with its output root on a tmpfs of `options` (size, ro) in a
/// private user and mount namespace, and reports the exit code, stderr and what is left on the
/// tmpfs afterwards. `None` where the machine allows no user namespaces.
#[allow(clippy::print_stderr)] // says in the test output why the test did not run here
fn in_small_fs(case: &Case, options: &str) -> Option<(i32, String, String)> {
    let out = case.dir.path().join("mnt");
    fs::create_dir_all(&out).unwrap();
    let protocol = case.dir.path().join("protocol.jsonl");
    let script = r#"mount -t tmpfs -o "$1" tmpfs "$2" || exit 99
out="$2"; shift 2
"$@" 2>"$out.stderr"; code=$?
echo "left:$(find "$out" -mindepth 1 | sort | tr '\n' ' ')"
cat "$out.stderr" >&2
exit $code"#;
    let r = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
            options,
        ])
        .arg(&out)
        .arg(env!("CARGO_BIN_EXE_pseudagg"))
        .args([
            "pseudonymise",
            "--pipeline",
            crate::common::VKB_PIPELINE,
            "--input",
        ])
        .arg(crate::common::SAMPLE_VKB)
        .args(["--month", "2025-03", "--key-file"])
        .arg(&case.key)
        .arg("--out")
        .arg(&out)
        .arg("--protocol")
        .arg(&protocol)
        .env("PSEUDAGG_LOG", "trace")
        .output()
        .ok()?;
    let code = r.status.code().unwrap_or(-1);
    if code == 99 || (code != 0 && r.stdout.is_empty()) {
        eprintln!(
            "no user namespace here: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        return None;
    }
    Some((
        code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    ))
}

#[test]
fn a_full_disk_stops_the_run_and_leaves_nothing() {
    let case = Case::new();
    // 48 KiB: the ten per-RD files do not fit.
    let Some((code, stdout, stderr)) = in_small_fs(&case, "size=48k") else {
        return;
    };
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        stdout.contains("left: \n") || stdout.trim_end() == "left:",
        "{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The protocol (elsewhere) records the failure.
    let protocol = fs::read_to_string(case.dir.path().join("protocol.jsonl")).unwrap();
    assert!(protocol.contains("\"outcome\":\"error\""));
}

#[test]
fn an_output_folder_that_is_not_writable_is_an_error() {
    let case = Case::new();
    let Some((code, stdout, stderr)) = in_small_fs(&case, "ro") else {
        return;
    };
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert!(stdout.trim_end() == "left:", "{stdout}");
}

/// Issue 18: the CSV reader refused a field over 1 MiB, but the same in a Parquet cell passed.
#[test]
fn a_parquet_cell_over_the_field_limit_is_refused_like_a_csv_field() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, RecordBatch, StringArray};

    let case = Case::new();
    let good = case.generated_parquet(200);
    let batches = crate::common::read_parquet(&good);
    let schema = batches[0].schema();
    let batch = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let at = schema.index_of("nachname").unwrap();
    let huge = "x".repeat(2 << 20);
    let names: StringArray = (0..batch.num_rows())
        .map(|i| {
            Some(if i == 7 {
                huge.clone()
            } else {
                "Meier".to_owned()
            })
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[at] = Arc::new(names);
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let path = case.dir.path().join("huge.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let r = case.refuse(&path, "2025-03", &[]);
    expect(
        &r,
        &[
            "row 8, column `nachname`",
            "more than the 1048576 a field may hold",
        ],
    );
}
