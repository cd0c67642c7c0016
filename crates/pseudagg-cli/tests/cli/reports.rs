use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use calamine::{Data, Reader, Xlsx, open_workbook};

use crate::common::{Extract, Output, SAMPLE_OPDS, pseudagg, read_parquet, recipient_table, tree};

const GEFLUECHTETE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../pipelines/gefluechtete.toml"
);
const BERATUNG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../pipelines/beratung-sprachniveau.toml"
);

pub(crate) fn report(definition: &str, input: &str, month: &str, out: &Path) -> Output {
    pseudagg(&[
        "report",
        "--definition",
        definition,
        "--input",
        input,
        "--month",
        month,
        "--out",
        out.to_str().unwrap(),
    ])
}

fn strings(b: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = b.column(b.schema().index_of(name).unwrap());
    let s = col.as_string::<i32>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_owned()))
        .collect()
}

/// The sample through the refugee report: recipients see only their own cells, every published
/// count is 0 or at least 3, the workbook carries its marks and notes, and a rerun is identical.
#[test]
#[allow(clippy::too_many_lines)] // one run, checked from every side
fn sample_report_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = report(GEFLUECHTETE, SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Off a terminal the audit is never silent: a progress line names the phase, what is done and
    // what is left (then one every few seconds).
    assert!(
        r.stderr.lines().any(|l| l.contains("progress")
            && l.contains("suppression: primary cells shown safe")
            && l.contains("left=")),
        "{}",
        r.stderr
    );
    let root = out.join("gefluechtete/2025-03");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("manifest.json")).unwrap()).unwrap();

    let input = Extract::read(SAMPLE_OPDS);
    let rds: BTreeSet<String> = input
        .rows
        .iter()
        .map(|r| r[input.col("rd")].clone())
        .collect();
    let scopes: Vec<String> = manifest["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scopes[0], "bund");
    assert_eq!(
        scopes.iter().filter(|s| s.starts_with("rd-")).count(),
        rds.len()
    );

    // (level, rd, gE, category, indicator, value) of every cell some recipient sees.
    let cell_rows = |b: &RecordBatch| {
        let cols: Vec<Vec<Option<String>>> = ["level", "rd", "ge_nr", "herkunft", "indicator"]
            .iter()
            .map(|c| strings(b, c))
            .collect();
        let value = b
            .column(b.schema().index_of("value").unwrap())
            .as_primitive::<Int64Type>()
            .clone();
        (0..b.num_rows())
            .map(|i| {
                (
                    cols.iter().map(|c| c[i].clone()).collect::<Vec<_>>(),
                    value.is_valid(i).then(|| value.value(i)),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut seen = BTreeSet::new();
    let mut suppressed_cells = 0;
    for scope in &scopes {
        let batches = read_parquet(&recipient_table(
            &root,
            scope,
            "gefluechtete-2025-03",
            "parquet",
        ));
        for b in &batches {
            seen.extend(cell_rows(b));
            let level = strings(b, "level");
            let rd = strings(b, "rd");
            let ge = strings(b, "ge_nr");
            let value = b
                .column(b.schema().index_of("value").unwrap())
                .as_primitive::<Int64Type>();
            let suppressed = b
                .column(b.schema().index_of("suppressed").unwrap())
                .as_boolean();
            for i in 0..b.num_rows() {
                let level = level[i].as_deref().unwrap();
                if let Some(x) = scope.strip_prefix("rd-") {
                    match level {
                        "ge" | "rd" => {
                            assert_eq!(rd[i].as_deref(), Some(x), "another RD's row in {scope}");
                        }
                        "bund" => assert_eq!(rd[i], None),
                        other => panic!("level {other}"),
                    }
                } else if let Some(x) = scope.strip_prefix("ge-") {
                    assert_eq!(
                        (level, ge[i].as_deref()),
                        ("ge", Some(x)),
                        "another row in {scope}"
                    );
                } else {
                    assert_eq!(level, "bund", "a non-federal row in bund/");
                }
                if suppressed.value(i) {
                    assert!(value.is_null(i));
                    if scope == "bund" || scope.starts_with("ge-") {
                        suppressed_cells += 1;
                    }
                } else {
                    let v = value.value(i);
                    assert!(v == 0 || v >= 3, "a published count of {v} in {scope}");
                }
            }
        }
        for ext in ["csv", "xlsx"] {
            assert!(recipient_table(&root, scope, "gefluechtete-2025-03", ext).exists());
        }
        // The recipient's own manifest, outside the data folders.
        assert!(root.join(format!("manifests/{scope}.json")).is_file());
    }
    assert!(suppressed_cells > 0, "the sample has small cells");
    // The steward's file: every cell that some recipient sees, once, with the same value.
    let all: Vec<_> = read_parquet(&root.join("all/gefluechtete-2025-03.parquet"))
        .iter()
        .flat_map(cell_rows)
        .collect();
    assert_eq!(all.len(), seen.len(), "a cell twice or missing in all/");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), seen);

    // The audit: one entry per suppressed cell, each primary cell protected.
    let s = &manifest["suppression"];
    let audit = manifest["audit"].as_array().unwrap();
    assert_eq!(
        audit.len() as u64,
        s["primary"].as_u64().unwrap() + s["secondary"].as_u64().unwrap()
    );
    for a in audit.iter().filter(|a| a["primary"] == true) {
        let lower = a["lower"].as_f64().unwrap();
        if let Some(upper) = a["upper"].as_f64() {
            assert!(upper >= 3.0 - 1e-6 && upper - lower >= 2.0 - 1e-6, "{a}");
        }
    }
    // Every file is listed with its hash, and nothing else is there.
    let files: BTreeSet<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    let on_disk: BTreeSet<String> = tree(&root)
        .into_keys()
        .filter(|k| k != "manifest.json")
        .collect();
    assert_eq!(files, on_disk);

    // CSV as German spreadsheets read it.
    let csv = fs::read_to_string(root.join("csv/recipient=bund/gefluechtete-2025-03.csv")).unwrap();
    assert!(
        csv.starts_with("\u{feff}level;rd;ge_nr;ge_name;herkunft;indicator;value;suppressed\r\n"),
        "{csv}"
    );

    // The RD workbooks: marks, title, Datenstand, footnotes; numbers only where published.
    let mut any_number = false;
    for rd_scope in scopes.iter().filter(|s| s.starts_with("rd-")) {
        let mut wb: Xlsx<_> = open_workbook(recipient_table(
            &root,
            rd_scope,
            "gefluechtete-2025-03",
            "xlsx",
        ))
        .unwrap();
        let sheet = wb.worksheet_range_at(0).unwrap().unwrap();
        let texts: Vec<String> = sheet
            .cells()
            .filter_map(|(_, _, d)| match d {
                Data::String(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert!(
            texts
                .iter()
                .any(|t| t == "Arbeitsmarktintegration von Geflüchteten")
        );
        assert!(texts.iter().any(|t| t.contains("Datenstand: März 2025")));
        assert!(
            texts.iter().any(|t| t == "*"),
            "no suppressed mark in {rd_scope}"
        );
        assert!(texts.iter().any(|t| t == "-"), "no zero mark in {rd_scope}");
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("* Wert aus Datenschutzgründen gesperrt"))
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("nicht validierte operative Daten")
                    && t.contains("nicht für Statistik oder Controlling"))
        );
        assert!(
            !sheet
                .cells()
                .any(|(_, _, d)| matches!(d, Data::Float(v) if *v > 0.0 && *v < 3.0)),
            "a small number is shown"
        );
        any_number |= sheet
            .cells()
            .any(|(_, _, d)| matches!(d, Data::Float(v) if *v >= 3.0));
    }
    assert!(any_number, "no RD workbook shows a number");

    // Issue 15 §3: a workbook a Jobcenter's manager reads unaided: headings with the display
    // labels, a notes sheet from the definition, and a print layout.
    let xlsx = root.join("xlsx/recipient=ge-86101/gefluechtete-2025-03.xlsx");
    let mut wb: Xlsx<_> = open_workbook(&xlsx).unwrap();
    assert_eq!(wb.sheet_names(), ["Datenstand 2025-03", "Erläuterungen"]);
    let table = wb.worksheet_range_at(0).unwrap().unwrap();
    let has = |r: &calamine::Range<Data>, f: &dyn Fn(&str) -> bool| {
        r.cells()
            .any(|(_, _, d)| matches!(d, Data::String(s) if f(s)))
    };
    assert!(
        has(&table, &|s| s == "Asylherkunftsländer"),
        "display label"
    );
    assert!(
        !has(&table, &|s| s == "Asylherkunftslaender"),
        "machine name"
    );
    let notes = wb.worksheet_range("Erläuterungen").unwrap();
    for part in [
        "Erwerbsfähige Leistungsberechtigte (eLb) mit der Staatsangehörigkeit der Ukraine",
        "Afghanistan, Eritrea, Irak, Iran, Nigeria, Pakistan, Somalia, Syrien",
        "31.03.2025 (letzter Tag des Berichtsmonats)",
        "Zahlen von 1 bis 2 Personen",
        "Zeitreihen dürfen aus diesen Daten nicht gebildet werden",
        "Merkmal: darunter ohne Beratungsgespräch in den letzten 6 Wochen",
    ] {
        assert!(has(&notes, &|s| s.contains(part)), "notes lack {part}");
    }
    assert!(
        notes
            .used_cells()
            .all(|(_, _, d)| matches!(d, Data::String(s) if s != "*" && s != "-")),
        "the notes hold text only, never a value or a mark of the table"
    );
    let mut zip = zip::ZipArchive::new(fs::File::open(&xlsx).unwrap()).unwrap();
    let mut xml = |name: &str| {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut zip.by_name(name).unwrap(), &mut text).unwrap();
        text
    };
    let sheet = xml("xl/worksheets/sheet1.xml");
    for part in [
        "orientation=\"landscape\"",
        "fitToHeight=\"0\"",
        "fitToPage=\"1\"",
        "<autoFilter ref=\"A5:",
    ] {
        assert!(sheet.contains(part), "{part} not in the sheet's XML");
    }
    let workbook = xml("xl/workbook.xml");
    assert!(
        workbook.contains("_xlnm.Print_Titles") && workbook.contains("$4:$5"),
        "the heading rows are not repeated on each page"
    );

    // A rerun of the month gives the same bytes, workbooks included.
    let first = tree(&root);
    let r = report(GEFLUECHTETE, SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let second = tree(&root);
    assert_eq!(first.len(), second.len());
    for (k, v) in &first {
        assert!(second[k] == *v, "{k} differs on rerun");
    }
}

/// Issue 14: the same input in another row order gives the same pattern, the same files byte for
/// byte, and the same audit (only the steward's manifest differs, in the input's hash).
#[test]
fn a_shuffled_input_gives_byte_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut shuffled = Extract::read(SAMPLE_OPDS);
    shuffled.rows.reverse();
    let n = shuffled.rows.len();
    shuffled.rows.rotate_left(n / 3);
    let input = shuffled.write(&dir.path().join("opds-shuffled.csv"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let r = report(GEFLUECHTETE, SAMPLE_OPDS, "2025-03", &a);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = report(GEFLUECHTETE, input.to_str().unwrap(), "2025-03", &b);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let month = |root: &Path| root.join("gefluechtete/2025-03");
    let (first, second) = (tree(&month(&a)), tree(&month(&b)));
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    // The manifest and the release record name the input's hash, which the shuffle changes.
    for (k, v) in &first {
        if k != "manifest.json" && k != "release.json" {
            assert!(second[k] == *v, "{k} differs for the shuffled input");
        }
    }
    let cells = |m: &[u8]| serde_json::from_slice::<serde_json::Value>(m).unwrap()["areas"].clone();
    assert_eq!(
        cells(&first["release.json"]),
        cells(&second["release.json"])
    );
    let audit = |m: &[u8]| serde_json::from_slice::<serde_json::Value>(m).unwrap()["audit"].clone();
    assert_eq!(
        audit(&first["manifest.json"]),
        audit(&second["manifest.json"])
    );
}

#[test]
fn a_second_definition_uses_the_same_mechanism() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let r = report(BERATUNG, SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = read_parquet(
        &out.join("beratung-sprachniveau/2025-03/parquet/recipient=bund/beratung-sprachniveau-2025-03.parquet"),
    );
    let cats: BTreeSet<String> = strings(&b[0], "sprachniveau")
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(
        cats,
        ["A1-A2", "B1-B2", "C1-C2", "Zusammen", "unbekannt"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );
}

fn refused(r: &Output, out: &Path, fragments: &[&str]) {
    assert_eq!(r.code, 2, "{}", r.stderr);
    for f in fragments {
        assert!(r.stderr.contains(f), "missing {f:?} in:\n{}", r.stderr);
    }
    assert!(!out.join("gefluechtete").exists(), "something was written");
}

fn definition_with(dir: &Path, from: &str, to: &str) -> PathBuf {
    let text = fs::read_to_string(GEFLUECHTETE).unwrap();
    assert!(text.contains(from));
    let path = dir.join("def.toml");
    fs::write(&path, text.replace(from, to)).unwrap();
    path
}

#[test]
fn time_series_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    // An input with a second Datenstand.
    let mut x = Extract::read(SAMPLE_OPDS);
    let ds = x.col("datenstand");
    for r in x.rows.iter_mut().skip(1000) {
        r[ds] = "2025-02".into();
    }
    let two = x.write(&dir.path().join("two-months.csv"));
    refused(
        &report(GEFLUECHTETE, two.to_str().unwrap(), "2025-03", &out),
        &out,
        &["2 different months", "time series"],
    );

    // A definition that filters or groups by the Datenstand, or cuts dates into periods.
    let by_month = definition_with(
        dir.path(),
        "population = \"elb and",
        "population = \"datenstand = '2025-03' and elb and",
    );
    refused(
        &report(by_month.to_str().unwrap(), SAMPLE_OPDS, "2025-03", &out),
        &out,
        &["at `population`", "time series"],
    );
    let period = definition_with(
        dir.path(),
        "when = \"integrationskurs = 'abgeschlossen'\"",
        "when = \"integrationskurs_ende >= '01.01.2025' and integrationskurs_ende < '01.02.2025'\"",
    );
    refused(
        &report(period.to_str().unwrap(), SAMPLE_OPDS, "2025-03", &out),
        &out,
        &["at `indicators[2].when`", "time series"],
    );

    // More than one month requested.
    for months in ["2025-03,2025-04", "2025-01..2025-03"] {
        refused(
            &report(GEFLUECHTETE, SAMPLE_OPDS, months, &out),
            &out,
            &["more than one month", "time series"],
        );
    }

    // Writing a month into another month's output.
    let other = dir.path().join("reports/gefluechtete/2025-02");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("manifest.json"), "{}").unwrap();
    let inside = other.join("nested");
    let r = report(GEFLUECHTETE, SAMPLE_OPDS, "2025-03", &inside);
    refused(
        &r,
        &inside,
        &["lies inside the existing output", "time series"],
    );
}

#[test]
fn a_failed_audit_exits_1_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // RD and Bund values may not be suppressed: small RD cells become computable from the Bund.
    let def = definition_with(
        dir.path(),
        "min-interval-width = 2",
        "min-interval-width = 2\nnever-suppress = [\"rd\", \"bund\"]",
    );
    let r = report(def.to_str().unwrap(), SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("the disclosure audit failed, so nothing was published"),
        "{}",
        r.stderr
    );
    assert!(!out.join("gefluechtete").exists());
}

#[test]
fn bad_definitions_are_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = fs::read_to_string(GEFLUECHTETE)
        .unwrap()
        .replace(
            "when = \"beschaeftigung = 'sv_pflichtig'\"",
            "when = \"beschaftigung = 'sv_pflichtig'\"",
        )
        .replace(
            "when = \"kooperationsplan\"",
            "when = \"nachname = 'Meier'\"",
        )
        .replace("subset-of = \"ik_abgeschlossen\"", "subset-of = \"ik\"");
    let path = dir.path().join("bad.toml");
    fs::write(&path, text).unwrap();
    let r = pseudagg(&["check", "--definition", path.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    for f in [
        "(3 problems)",
        "`beschaftigung` is not a column",
        "`nachname` is personal data",
        "`ik` is not another indicator",
    ] {
        assert!(r.stderr.contains(f), "missing {f:?} in:\n{}", r.stderr);
    }
    let ok = pseudagg(&["check", "--definition", GEFLUECHTETE]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // The exclusion the audit reads from the expressions is shown for the steward to confirm.
    let said = format!("{}{}", ok.stdout, ok.stderr);
    assert!(
        said.contains("exclusive: no person is in two of `sv_beschaeftigt`, `geringfuegig` (parts of `bestand`)"),
        "{said}"
    );
}

/// Issue 18: values from the data reached the spreadsheet CSVs as given, so German Excel
/// evaluated `=HYPERLINK(...)` and the like. Each leading character is neutralised with a `'`; the
/// Parquet table keeps the exact value; verify accepts the result.
#[test]
fn csv_text_cells_that_a_spreadsheet_would_evaluate_are_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input.rows.retain(|r| r[rd] == "SAC");
    let payloads = [
        "=HYPERLINK(\"http://x\",\"y\")",
        "+1+1",
        "-2",
        "@SUM(A1)",
        "\tJobcenter",
        "\rJobcenter",
        "=cmd|' /C calc'!A0",
    ];
    let ge = input.col("ge_nr");
    let mut ges: Vec<String> = input.rows.iter().map(|r| r[ge].clone()).collect();
    ges.sort();
    ges.dedup();
    assert!(ges.len() >= payloads.len(), "{} gEs", ges.len());
    let name = input.col("ge_name");
    for row in &mut input.rows {
        if let Some(i) = ges
            .iter()
            .position(|g| *g == row[ge])
            .filter(|&i| i < payloads.len())
        {
            row[name] = payloads[i].to_owned();
        }
    }
    let path = input.write(&dir.path().join("opds.csv"));
    let out = dir.path().join("out");
    let r = report(GEFLUECHTETE, path.to_str().unwrap(), "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = out.join("gefluechtete/2025-03");
    let csv =
        fs::read_to_string(root.join("csv/recipient=rd-SAC/gefluechtete-2025-03.csv")).unwrap();
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let names: BTreeSet<String> = reader.records().map(|r| r.unwrap()[3].to_owned()).collect();
    for p in payloads {
        assert!(
            names.contains(&format!("'{p}")),
            "{p:?} not neutralised in {names:?}"
        );
        assert!(!names.contains(p), "{p:?} as given");
    }
    for n in &names {
        assert!(!n.starts_with(['=', '+', '-', '@', '\t', '\r']), "{n:?}");
    }
    let parquet: BTreeSet<String> =
        read_parquet(&root.join("parquet/recipient=rd-SAC/gefluechtete-2025-03.parquet"))
            .iter()
            .flat_map(|b| strings(b, "ge_name"))
            .flatten()
            .collect();
    for p in payloads {
        assert!(parquet.contains(p), "Parquet keeps {p:?} exactly");
    }
    let v = pseudagg(&["verify", root.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    // A definition's own names are refused by `check` instead.
    for (from, to) in [
        ("name = \"Ukraine\"", "name = \"=HYPERLINK(1)\""),
        ("label = \"Bestand\"", "label = \"@SUM(A1)\""),
        ("total = \"Insgesamt\"", "total = \"-Insgesamt\""),
    ] {
        let def = definition_with(dir.path(), from, to);
        let r = pseudagg(&["check", "--definition", def.to_str().unwrap()]);
        assert_eq!(r.code, 2, "{to}: {}", r.stderr);
        assert!(r.stderr.contains("reads as a formula"), "{}", r.stderr);
    }
}

/// Issue 18: `ge-column = "ge_name"` let data values become folder names (`../../X`).
#[test]
fn only_code_columns_name_the_recipients_folders() {
    let dir = tempfile::tempdir().unwrap();
    let def = definition_with(
        dir.path(),
        "ge-column = \"ge_nr\"",
        "ge-column = \"ge_name\"",
    );
    let r = pseudagg(&["check", "--definition", def.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("`ge-column`") && r.stderr.contains("not a code column"),
        "{}",
        r.stderr
    );
}

const REGISTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/ge-register.csv"
);

/// The sample cut to one RD, with nobody of one gE in the population (every row `elb = N`).
fn sac_with_an_empty_ge(dir: &Path) -> (PathBuf, String) {
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input.rows.retain(|r| r[rd] == "SAC");
    let ge = input.col("ge_nr");
    let empty = input.rows[0][ge].clone();
    let elb = input.col("elb");
    for r in &mut input.rows {
        if r[ge] == empty {
            "N".clone_into(&mut r[elb]);
        }
    }
    (input.write(&dir.join("opds.csv")), empty)
}

/// Rows of a scope's table per gE: (ge_nr) -> (rows, sum of published values, suppressed).
fn per_ge(path: &Path) -> std::collections::BTreeMap<String, (usize, i64, usize)> {
    let mut out = std::collections::BTreeMap::new();
    for b in read_parquet(path) {
        let ge = strings(&b, "ge_nr");
        let value = b
            .column(b.schema().index_of("value").unwrap())
            .as_primitive::<Int64Type>()
            .clone();
        let sup = b
            .column(b.schema().index_of("suppressed").unwrap())
            .as_boolean()
            .clone();
        for (i, g) in ge.iter().enumerate() {
            if let Some(g) = g {
                let e = out.entry(g.clone()).or_insert((0, 0, 0));
                e.0 += 1;
                e.1 += if value.is_null(i) { 0 } else { value.value(i) };
                e.2 += usize::from(sup.value(i));
            }
        }
    }
    out
}

/// Issue 14: a gE with nobody in the population had no row in its RD's table and no scope.
#[test]
fn a_ge_with_an_empty_population_has_zeros_and_its_own_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (input, empty) = sac_with_an_empty_ge(dir.path());
    let out = dir.path().join("out");
    let r = report(GEFLUECHTETE, input.to_str().unwrap(), "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = out.join("gefluechtete/2025-03");
    let table = per_ge(&root.join("parquet/recipient=rd-SAC/gefluechtete-2025-03.parquet"));
    let extract = Extract::read(input.to_str().unwrap());
    let ge = extract.col("ge_nr");
    let ges: BTreeSet<String> = extract.rows.iter().map(|r| r[ge].clone()).collect();
    assert_eq!(
        table.keys().cloned().collect::<BTreeSet<_>>(),
        ges,
        "every gE of the extract"
    );
    let (rows, sum, suppressed) = table[&empty];
    assert!(
        rows > 0 && sum == 0 && suppressed == 0,
        "{rows} rows, sum {sum}, {suppressed} suppressed"
    );
    assert!(
        root.join(format!(
            "parquet/recipient=ge-{empty}/gefluechtete-2025-03.parquet"
        ))
        .is_file()
    );
    assert_eq!(
        per_ge(&root.join(format!(
            "parquet/recipient=ge-{empty}/gefluechtete-2025-03.parquet"
        )))[&empty]
            .1,
        0
    );
    let v = pseudagg(&["verify", root.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

/// With `--ge-register`, every gE of the register is in the grid; a gE of the extract outside it,
/// or under another RD, is an error that writes nothing.
#[test]
fn the_ge_register_decides_the_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = sac_with_an_empty_ge(dir.path());
    let run = |register: &Path, out: &Path| {
        pseudagg(&[
            "report",
            "--definition",
            GEFLUECHTETE,
            "--input",
            input.to_str().unwrap(),
            "--month",
            "2025-03",
            "--out",
            out.to_str().unwrap(),
            "--ge-register",
            register.to_str().unwrap(),
        ])
    };
    let out = dir.path().join("out");
    let r = run(Path::new(REGISTER), &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let register = fs::read_to_string(REGISTER).unwrap();
    let sac: BTreeSet<String> = register
        .lines()
        .skip(1)
        .filter(|l| l.split(';').nth(1) == Some("SAC"))
        .map(|l| l.split(';').next().unwrap().to_owned())
        .collect();
    let root = out.join("gefluechtete/2025-03");
    let table = per_ge(&root.join("parquet/recipient=rd-SAC/gefluechtete-2025-03.parquet"));
    assert_eq!(table.keys().cloned().collect::<BTreeSet<_>>(), sac);
    for g in &sac {
        assert!(
            root.join(format!("parquet/recipient=ge-{g}")).is_dir(),
            "ge-{g}"
        );
    }
    assert_eq!(pseudagg(&["verify", root.to_str().unwrap()]).code, 0);

    // A gE of the extract that the register lacks.
    let extract = Extract::read(input.to_str().unwrap());
    let present = extract.rows[0][extract.col("ge_nr")].clone();
    let lacking: String = register
        .lines()
        .filter(|l| !l.starts_with(&present))
        .fold(String::new(), |acc, l| acc + l + "\n");
    let path = dir.path().join("lacking.csv");
    fs::write(&path, lacking).unwrap();
    let out2 = dir.path().join("out2");
    let r = run(&path, &out2);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not list"), "{}", r.stderr);
    assert!(!out2.join("gefluechtete").exists());

    // The same gE under another RD.
    let moved = register.replace(&format!("{present};SAC;"), &format!("{present};BY;"));
    assert_ne!(moved, register);
    fs::write(&path, moved).unwrap();
    let r = run(&path, &out2);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("the gE register puts it under RD BY"),
        "{}",
        r.stderr
    );
    assert!(!out2.join("gefluechtete").exists());
}

#[test]
fn the_committed_ge_register_is_the_generators() {
    assert_eq!(
        fs::read_to_string(REGISTER).unwrap(),
        pseudagg_testdata::ge_register_csv()
    );
}

/// Issue 18: a gE with two names in one extract had one of them picked silently.
#[test]
fn a_ge_named_two_ways_is_an_input_error_without_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Extract::read(SAMPLE_OPDS);
    let rd = input.col("rd");
    input.rows.retain(|r| r[rd] == "SAC");
    let (ge, name) = (input.col("ge_nr"), input.col("ge_name"));
    let first = input.rows[0][ge].clone();
    let later = input.rows.iter().rposition(|r| r[ge] == first).unwrap();
    assert!(later > 0);
    input.rows[later][name] = "Jobcenter Zweitname".to_owned();
    let path = input.write(&dir.path().join("opds.csv"));
    let out = dir.path().join("out");
    let r = report(GEFLUECHTETE, path.to_str().unwrap(), "2025-03", &out);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("row {}, column `ge_name`", later + 1)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("differently from row 1"), "{}", r.stderr);
    assert!(!r.stderr.contains("Zweitname"), "{}", r.stderr);
    assert!(!out.join("gefluechtete").exists());
}

/// Issue 14 §2: a definition with two `[[dimension]]` tables crosses them. Every combination of
/// origin and sex, with each dimension's total, is a row of each area and indicator, in a column
/// per dimension; every total that is published with all its parts adds them up, both ways; and
/// `verify` rebuilds the relations of both dimensions and passes.
#[test]
fn two_dimensions_are_crossed_with_both_totals() {
    let dir = tempfile::tempdir().unwrap();
    let input = Extract::read(SAMPLE_OPDS).only("rd", "SAC");
    let input = input.write(&dir.path().join("opds.csv"));
    let out = dir.path().join("out");
    let definition = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/gefluechtete-geschlecht.toml"
    );
    let r = report(definition, input.to_str().unwrap(), "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let month = out.join("gefluechtete-geschlecht/2025-03");
    let b = read_parquet(
        &month.join("parquet/recipient=rd-SAC/gefluechtete-geschlecht-2025-03.parquet"),
    );
    // (level, ge_nr, herkunft, geschlecht, indicator) -> value (None: suppressed)
    let mut cells: std::collections::BTreeMap<
        (String, String, String, String, String),
        Option<i64>,
    > = std::collections::BTreeMap::new();
    for batch in &b {
        let col = |n: &str| strings(batch, n);
        let (level, ge, h, g, ind) = (
            col("level"),
            col("ge_nr"),
            col("herkunft"),
            col("geschlecht"),
            col("indicator"),
        );
        let value = batch
            .column(batch.schema().index_of("value").unwrap())
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..batch.num_rows() {
            let key = (
                level[i].clone().unwrap(),
                ge[i].clone().unwrap_or_default(),
                h[i].clone().unwrap(),
                g[i].clone().unwrap(),
                ind[i].clone().unwrap(),
            );
            let v = (!value.is_null(i)).then(|| value.value(i));
            assert!(cells.insert(key, v).is_none(), "one row per cell");
        }
    }
    let herkunft = ["Ukraine", "Asylherkunftslaender", "Insgesamt"];
    let geschlecht = ["weiblich", "maennlich", "divers", "Insgesamt"];
    let areas: BTreeSet<(String, String)> =
        cells.keys().map(|k| (k.0.clone(), k.1.clone())).collect();
    assert!(areas.iter().any(|a| a.0 == "rd") && areas.iter().filter(|a| a.0 == "ge").count() > 5);
    assert_eq!(
        cells.len(),
        areas.len() * herkunft.len() * geschlecht.len() * 7
    );
    let mut checked = 0;
    for (level, ge) in &areas {
        let at = |h: &str, g: &str| {
            cells[&(
                level.clone(),
                ge.clone(),
                h.to_owned(),
                g.to_owned(),
                "bestand".to_owned(),
            )]
        };
        // Origin's total at each sex, and sex's total at each origin.
        for g in geschlecht {
            let parts: Option<i64> = herkunft[..2].iter().map(|h| at(h, g)).sum();
            if let (Some(t), Some(p)) = (at("Insgesamt", g), parts) {
                assert_eq!(t, p, "{level} {ge} Insgesamt / {g}");
                checked += 1;
            }
        }
        for h in herkunft {
            let parts: Option<i64> = geschlecht[..3].iter().map(|g| at(h, g)).sum();
            if let (Some(t), Some(p)) = (at(h, "Insgesamt"), parts) {
                assert_eq!(t, p, "{level} {ge} {h} / Insgesamt");
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0,
        "some totals are published with all their parts"
    );
    // The manifest names both dimensions; verify rebuilds their relations and passes.
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(month.join("manifest.json")).unwrap()).unwrap();
    let dims: Vec<&str> = manifest["structure"]["dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(dims, ["herkunft", "geschlecht"]);
    let v = pseudagg(&["verify", month.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}

/// The shipped refugee report's population and dimension with other indicators, as report
/// `name`, under `dir`; `indicators` are `(name, when)`, each but `bestand = true` a part of it.
fn refugee_report_with(dir: &Path, name: &str, indicators: &[(&str, &str)]) -> PathBuf {
    let head = fs::read_to_string(GEFLUECHTETE).unwrap();
    let mut text = head
        .split("[[indicators]]")
        .next()
        .unwrap()
        .replace("name = \"gefluechtete\"", &format!("name = \"{name}\""));
    text.push_str("[[indicators]]\nname = \"bestand\"\nlabel = \"Bestand\"\nwhen = \"true\"\n");
    for (n, when) in indicators {
        write!(
            text,
            "\n[[indicators]]\nname = \"{n}\"\nlabel = \"{n}\"\nwhen = \"{when}\"\nsubset-of = \"bestand\"\n"
        )
        .expect("a String takes text");
    }
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, text).unwrap();
    path
}

/// The steward's file of a report output: per (level, rd, gE, herkunft), each indicator's shown
/// value (`*` when suppressed).
fn shown_cells(root: &Path, report: &str) -> BTreeMap<[String; 4], BTreeMap<String, String>> {
    let csv = fs::read_to_string(root.join(format!("all/{report}-2025-03.csv"))).unwrap();
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
    let mut cells: BTreeMap<[String; 4], BTreeMap<String, String>> = BTreeMap::new();
    for row in reader.records() {
        let row = row.unwrap();
        cells
            .entry([0, 1, 2, 4].map(|i| row[i].to_owned()))
            .or_default()
            .insert(row[5].to_owned(), row[6].to_owned());
    }
    cells
}

/// Found on 2026-12-08: a definition with `kooperationsplan` and `not kooperationsplan` under
/// `bestand = true` was protected as if the two were unrelated. Everyone is in exactly one of
/// them, so `bestand = mit + ohne` at every area, and on the committed sample 9 small cells were
/// the difference of two published ones, while the audit and `verify` passed. Now the two are an
/// exclusive group that covers its whole (in the manifest), and no area shows exactly one of the
/// three cells suppressed.
#[test]
fn complementary_indicators_are_not_a_difference_of_published_cells() {
    let dir = tempfile::tempdir().unwrap();
    let def = refugee_report_with(
        dir.path(),
        "kooperationsplaene",
        &[
            ("mit", "kooperationsplan"),
            ("ohne", "not kooperationsplan"),
        ],
    );
    let out = dir.path().join("out");
    let r = report(def.to_str().unwrap(), SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = out.join("kooperationsplaene/2025-03");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["structure"]["exclusive"],
        serde_json::json!([{"whole": "bestand", "parts": ["mit", "ohne"], "exhaustive": true}])
    );
    let cells = shown_cells(&root, "kooperationsplaene");
    assert!(cells.len() > 500, "{} areas", cells.len());
    assert!(cells.values().all(|at| at.len() == 3));
    let hidden = |at: &BTreeMap<String, String>| at.values().filter(|v| *v == "*").count();
    let suppressed: usize = cells.values().map(hidden).sum();
    assert!(suppressed > 500, "{suppressed} suppressed");
    let alone: Vec<_> = cells.iter().filter(|(_, at)| hidden(at) == 1).collect();
    assert!(
        alone.is_empty(),
        "{} areas show one of bestand, mit and ohne suppressed, which the other two give away: {:?}",
        alone.len(),
        alone.iter().take(3).collect::<Vec<_>>()
    );
    let v = pseudagg(&["verify", root.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    // verify reads the relations from the definition itself: a manifest that leaves one out
    // (as the writer's did before) fails, naming it.
    let manifest_path = root.join("manifest.json");
    let text = fs::read_to_string(&manifest_path).unwrap();
    for (from, to, said) in [
        (
            ",\n        \"exhaustive\": true",
            "",
            "hold every person of `bestand`, which the manifest does not state",
        ),
        (
            "\"exclusive\": [",
            "\"unused\": [",
            "the definition makes `mit`, `ohne` (parts of `bestand`) exclusive",
        ),
    ] {
        assert!(text.contains(from), "{text}");
        fs::write(&manifest_path, text.replace(from, to)).unwrap();
        let v = pseudagg(&["verify", root.to_str().unwrap()]);
        assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
        assert!(v.stdout.contains(said), "{said:?} not in {}", v.stdout);
    }
    fs::write(&manifest_path, text).unwrap();
}

/// Found on 2026-12-08 beside the one above: in the shipped population (`elb and
/// staatsangehoerigkeit in (...)`) an indicator `elb` counts everyone of `bestand`, and
/// `staatsangehoerigkeit = 'UKR'` counts everyone at the position Ukraine. On the committed sample
/// 21 such pairs showed one cell published beside the other suppressed, which tells its count.
/// Now they are suppressed together, the manifest names the relations, and `verify` checks them.
#[test]
fn cells_the_population_and_categories_make_equal_are_suppressed_together() {
    let dir = tempfile::tempdir().unwrap();
    let def = refugee_report_with(
        dir.path(),
        "gleich",
        &[
            ("ukr", "staatsangehoerigkeit = 'UKR'"),
            ("elb", "elb"),
            ("kp", "kooperationsplan"),
        ],
    );
    let out = dir.path().join("out");
    let r = report(def.to_str().unwrap(), SAMPLE_OPDS, "2025-03", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = out.join("gleich/2025-03");
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let implied = &manifest["structure"]["implied_subsets"];
    assert!(
        implied
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["bestand", "elb"])),
        "{implied}"
    );
    let at = &manifest["structure"]["position_subsets"];
    assert!(
        at.as_array()
            .unwrap()
            .contains(&serde_json::json!({"at": ["Ukraine"], "part": "bestand", "whole": "ukr"})),
        "{at}"
    );
    let cells = shown_cells(&root, "gleich");
    let hidden = |at: &BTreeMap<String, String>, i: &str| at[i] == "*";
    let mut apart = Vec::new();
    let mut together = 0;
    for (key, at) in &cells {
        let mut equal = vec!["elb"];
        if key[3] == "Ukraine" {
            equal.push("ukr");
        }
        for i in equal {
            if hidden(at, "bestand") != hidden(at, i) {
                apart.push((key.clone(), i));
            } else if hidden(at, i) {
                together += 1;
            }
        }
    }
    assert!(together > 100, "{together} pairs suppressed together");
    assert!(
        apart.is_empty(),
        "{} pairs apart: {:?}",
        apart.len(),
        &apart[..apart.len().min(3)]
    );
    let v = pseudagg(&["verify", root.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
}
