//! Writing a report for each recipient (the Bund, each RD, each gE) as Parquet (long format), CSV
//! (as German spreadsheets read it) and an XLSX workbook laid out for people, and the steward's
//! file of every published cell once.
//!
//! The layout below the month folder keeps each format in a folder of its own, with one
//! `recipient=<name>` folder per recipient below it, so that a folder or glob read by pyarrow,
//! pandas, polars or DuckDB meets only files of one format, and a hive key that no column of the
//! tables repeats:
//!
//! ```text
//! manifest.json, release.json                    the steward's
//! all/<report>-<month>.{parquet,csv}             every published cell once (the steward's)
//! parquet/recipient=bund/<report>-<month>.parquet
//! parquet/recipient=rd-NRW/...   parquet/recipient=ge-31501/...
//! csv/recipient=<name>/<report>-<month>.csv
//! xlsx/recipient=<name>/<report>-<month>.xlsx
//! manifests/<name>.json                          each recipient's own manifest
//! ```

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use chrono::Datelike;
use parquet::arrow::ArrowWriter;
use pseudagg_core::{Error, Month, Result};
use pseudagg_io::{FileInfo, sha256_file, writer_properties};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook};

use crate::layout::{Level, ReportTable};

/// Who receives a part of the report, and which rows it holds.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The recipient's name, the value of its `recipient=` folders: `bund`, `rd-NRW`, `ge-31501`.
    pub name: String,
    /// For people: "Bund", "Regionaldirektion NRW", "Jobcenter Köln (31501)".
    pub title: String,
    pub areas: Vec<usize>,
}

/// Can a data value name a folder? 1 to 64 ASCII letters, digits, `-` and `_`, starting with a
/// letter or digit: never a path separator, `.` or `..`.
#[must_use]
pub fn is_folder_code(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.as_bytes()[0].is_ascii_alphanumeric()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The scopes of a table: the Bund (federal values only), each RD (its gEs, its sum, the Bund),
/// each gE (its own values).
#[must_use]
pub fn scopes(rt: &ReportTable) -> Vec<Scope> {
    let bund = rt
        .areas
        .iter()
        .position(|a| a.level == Level::Bund)
        .expect("a Bund row");
    let mut out = vec![Scope {
        name: "bund".into(),
        title: "Bund".into(),
        areas: vec![bund],
    }];
    for (i, a) in rt
        .areas
        .iter()
        .enumerate()
        .filter(|(_, a)| a.level == Level::Rd)
    {
        let rd = a.rd.clone().unwrap_or_default();
        let mut areas: Vec<usize> = rt
            .areas
            .iter()
            .enumerate()
            .filter(|(_, g)| g.level == Level::Ge && g.rd.as_deref() == Some(rd.as_str()))
            .map(|(j, _)| j)
            .collect();
        areas.extend([i, bund]);
        out.push(Scope {
            name: format!("rd-{rd}"),
            title: format!("Regionaldirektion {rd}"),
            areas,
        });
    }
    for (i, a) in rt
        .areas
        .iter()
        .enumerate()
        .filter(|(_, a)| a.level == Level::Ge)
    {
        let ge = a.ge.as_ref().expect("a gE row has a gE");
        let title = if ge.name.is_empty() {
            format!("gE {}", ge.nr)
        } else {
            format!("{} ({})", ge.name, ge.nr)
        };
        out.push(Scope {
            name: format!("ge-{}", ge.nr),
            title,
            areas: vec![i],
        });
    }
    out
}

/// What the writers need besides the table.
#[derive(Debug)]
pub struct Published<'a> {
    pub rt: &'a ReportTable,
    pub suppressed: &'a [bool],
    pub report: &'a str,
    pub title: &'a str,
    /// The dimension columns of the long tables (none, one or two).
    pub dimensions: &'a [String],
    pub indicator_labels: Vec<String>,
    /// The definition, for the workbooks' headings for people and their notes sheet.
    pub definition: &'a crate::definition::ReportDefinition,
    pub month: Month,
    /// SHA-256 of the definition, for the recipients' manifests.
    pub definition_sha256: &'a str,
    /// The reference of the Traeger's request this output answers.
    pub request: Option<&'a str>,
}

/// The folder of the recipients' own manifests, `manifests/<name>.json`: outside the data
/// folders, which a folder read (polars reads every file of a folder) must find holding one
/// format only.
pub const RECIPIENT_MANIFESTS: &str = "manifests";

/// The folder of the steward's file with every published cell once.
pub const ALL_CELLS: &str = "all";

/// The layout version the report's manifest records (`manifest_version`): 2 is the layout of this
/// module; 1 was one folder per recipient (`bund/`, `rd=NRW/`, `ge=31501/`) with all three
/// formats and a `_manifest.json` in it.
pub const LAYOUT_VERSION: u32 = 2;

impl Scope {
    /// The scope's table in `format` (`parquet`, `csv`, `xlsx`), relative to the month folder.
    #[must_use]
    pub fn table_path(&self, stem: &str, format: &str) -> String {
        format!("{format}/recipient={}/{stem}.{format}", self.name)
    }

    /// The recipient's own manifest, relative to the month folder.
    #[must_use]
    pub fn manifest_path(&self) -> String {
        format!("{RECIPIENT_MANIFESTS}/{}.json", self.name)
    }
}

/// The manifest of a recipient: what the recipient may know of its files and nothing more. It
/// holds no audit, no interval, no count of rows read and no suppression detail: it is handed on
/// with the recipient's three tables, so it carries only their hashes, month, definition and scope.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScopeManifest {
    pub manifest_version: u32,
    pub kind: &'static str,
    pub tool: String,
    pub report: String,
    pub report_sha256: String,
    pub month: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// The scope's tables, relative to the month folder.
    pub files: Vec<FileInfo>,
}

impl Published<'_> {
    fn value(&self, cell: usize) -> Option<u64> {
        (!self.suppressed[cell]).then(|| self.rt.table.values[cell])
    }

    fn area_label(&self, area: usize) -> (String, String, String) {
        let a = &self.rt.areas[area];
        match a.level {
            Level::Ge => {
                let ge = a.ge.as_ref().expect("gE");
                ("gE".into(), ge.nr.clone(), ge.name.clone())
            }
            Level::Rd => (
                "RD".into(),
                String::new(),
                format!("Regionaldirektion {}", a.rd.as_deref().unwrap_or("")),
            ),
            Level::Bund => ("Bund".into(), String::new(), "Bund insgesamt".into()),
        }
    }

    /// Each format and its writer: the long tables first, then the workbook.
    fn writers() -> [(&'static str, fn(&Self, &Scope, &Path) -> Result<()>); 3] {
        [
            ("parquet", Self::write_parquet),
            ("csv", Self::write_csv),
            ("xlsx", Self::write_xlsx),
        ]
    }

    /// Writes the three tables of a scope and its manifest below the month folder `root`, and
    /// lists them relative to it.
    pub fn write_scope(&self, scope: &Scope, root: &Path) -> Result<Vec<FileInfo>> {
        let stem = format!("{}-{}", self.report, self.month);
        let mut files = Vec::new();
        for (format, write) in Self::writers() {
            let rel = scope.table_path(&stem, format);
            files.push(self.write_file(scope, root, &rel, write)?);
        }
        let own = ScopeManifest {
            manifest_version: LAYOUT_VERSION,
            kind: "report-scope",
            tool: format!("pseudagg {}", pseudagg_core::TOOL_VERSION),
            report: self.report.to_owned(),
            report_sha256: self.definition_sha256.to_owned(),
            month: self.month.to_string(),
            scope: scope.name.clone(),
            request: self.request.map(str::to_owned),
            // The recipient's manifest: hashes only.
            files: files
                .iter()
                .map(|f| FileInfo {
                    value_sum: None,
                    ..f.clone()
                })
                .collect(),
        };
        let mut json = serde_json::to_string_pretty(&own).expect("a scope manifest serialises");
        json.push('\n');
        let rel = scope.manifest_path();
        let path = root.join(&rel);
        create_parent(&path)?;
        fs::write(&path, &json).map_err(|e| Error::io("write", &path, e))?;
        files.push(FileInfo {
            path: rel,
            rows: 0,
            bytes: json.len() as u64,
            sha256: sha256_file(&path)?,
            value_sum: None,
        });
        Ok(files)
    }

    /// Writes the steward's tables of every published cell once, `all/<report>-<month>.parquet`
    /// and `.csv`: the areas of `scope` (the union of the recipients' areas) in the long form.
    pub fn write_all(&self, scope: &Scope, root: &Path) -> Result<Vec<FileInfo>> {
        let stem = format!("{}-{}", self.report, self.month);
        // The long tables only: a workbook of every gE is no table for people.
        Self::writers()[..2]
            .iter()
            .map(|&(format, write)| {
                self.write_file(scope, root, &format!("{ALL_CELLS}/{stem}.{format}"), write)
            })
            .collect()
    }

    fn write_file(
        &self,
        scope: &Scope,
        root: &Path,
        rel: &str,
        write: fn(&Self, &Scope, &Path) -> Result<()>,
    ) -> Result<FileInfo> {
        let path = root.join(rel);
        create_parent(&path)?;
        write(self, scope, &path)?;
        let bytes = fs::metadata(&path)
            .map_err(|e| Error::io("inspect", &path, e))?
            .len();
        Ok(FileInfo {
            path: rel.to_owned(),
            rows: self.long_rows(scope).count() as u64,
            bytes,
            sha256: sha256_file(&path)?,
            value_sum: Some(
                self.long_rows(scope)
                    .filter_map(|(_, _, _, cell)| self.value(cell))
                    .sum(),
            ),
        })
    }

    /// The long rows of a scope: (area, category, indicator, cell).
    fn long_rows<'s>(
        &'s self,
        scope: &'s Scope,
    ) -> impl Iterator<Item = (usize, usize, usize, usize)> + 's {
        let (nc, ni) = (self.rt.categories.len(), self.rt.indicators.len());
        scope.areas.iter().flat_map(move |&a| {
            (0..nc).flat_map(move |c| (0..ni).map(move |k| (a, c, k, self.rt.cell(a, c, k))))
        })
    }

    fn write_parquet(&self, scope: &Scope, path: &Path) -> Result<()> {
        let mut fields = vec![
            Field::new("level", DataType::Utf8, false),
            Field::new("rd", DataType::Utf8, true),
            Field::new("ge_nr", DataType::Utf8, true),
            Field::new("ge_name", DataType::Utf8, true),
        ];
        for d in self.dimensions {
            fields.push(Field::new(d, DataType::Utf8, false));
        }
        fields.extend([
            Field::new("indicator", DataType::Utf8, false),
            Field::new("value", DataType::Int64, true),
            Field::new("suppressed", DataType::Boolean, false),
        ]);
        let (mut level, mut rd, mut ge, mut name, mut ind) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut dims: Vec<StringBuilder> = self
            .dimensions
            .iter()
            .map(|_| StringBuilder::new())
            .collect();
        let mut value = Int64Builder::new();
        let mut suppressed = BooleanBuilder::new();
        for (a, c, k, cell) in self.long_rows(scope) {
            let area = &self.rt.areas[a];
            level.append_value(area.level.as_str());
            rd.append_option(area.rd.as_deref());
            ge.append_option(area.ge.as_ref().map(|g| g.nr.as_str()));
            name.append_option(area.ge.as_ref().map(|g| g.name.as_str()));
            for (d, b) in dims.iter_mut().enumerate() {
                b.append_value(&self.rt.coordinates[c][d]);
            }
            ind.append_value(&self.rt.indicators[k]);
            value.append_option(self.value(cell).map(|v| v as i64));
            suppressed.append_value(self.suppressed[cell]);
        }
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(level.finish()),
            Arc::new(rd.finish()),
            Arc::new(ge.finish()),
            Arc::new(name.finish()),
        ];
        for mut b in dims {
            columns.push(Arc::new(b.finish()));
        }
        columns.extend([
            Arc::new(ind.finish()) as ArrayRef,
            Arc::new(value.finish()),
            Arc::new(suppressed.finish()),
        ]);
        let schema = Arc::new(Schema::new(fields));
        let batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(|e| format_error(path, &e))?;
        let props = writer_properties(&[
            ("pseudagg.report", self.report.to_owned()),
            ("pseudagg.month", self.month.to_string()),
            ("pseudagg.scope", scope.name.clone()),
        ]);
        let file = fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut w =
            ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| format_error(path, &e))?;
        w.write(&batch).map_err(|e| format_error(path, &e))?;
        w.close().map_err(|e| format_error(path, &e))?;
        Ok(())
    }

    /// `;`-separated, UTF-8 with byte-order mark (so spreadsheets show umlauts), `*` for suppressed.
    fn write_csv(&self, scope: &Scope, path: &Path) -> Result<()> {
        let mut out = String::from("\u{feff}");
        out.push_str("level;rd;ge_nr;ge_name;");
        for d in self.dimensions {
            out.push_str(d);
            out.push(';');
        }
        out.push_str("indicator;value;suppressed\r\n");
        for (a, c, k, cell) in self.long_rows(scope) {
            let area = &self.rt.areas[a];
            let fields = [
                area.level.as_str().to_owned(),
                area.rd.clone().unwrap_or_default(),
                area.ge.as_ref().map(|g| g.nr.clone()).unwrap_or_default(),
                area.ge.as_ref().map(|g| g.name.clone()).unwrap_or_default(),
            ];
            let mut line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            for coordinate in &self.rt.coordinates[c] {
                line.push(csv_field(coordinate));
            }
            line.push(csv_field(&self.rt.indicators[k]));
            line.push(
                self.value(cell)
                    .map_or_else(|| "*".to_owned(), |v| v.to_string()),
            );
            line.push(if self.suppressed[cell] { "J" } else { "N" }.to_owned());
            out.push_str(&line.join(";"));
            out.push_str("\r\n");
        }
        fs::write(path, out).map_err(|e| Error::io("write", path, e))
    }

    #[allow(clippy::too_many_lines)] // a layout, cell by cell
    fn write_xlsx(&self, scope: &Scope, path: &Path) -> Result<()> {
        let x = |e: rust_xlsxwriter::XlsxError| format_error(path, &e);
        let mut wb = Workbook::new();
        // A fixed creation time keeps reruns byte-identical: the last day of the report month.
        let day = self.month.last_day();
        let created =
            ExcelDateTime::from_ymd(day.year() as u16, day.month() as u8, day.day() as u8)
                .map_err(x)?;
        wb.set_properties(
            &DocProperties::new()
                .set_title(self.title)
                .set_creation_datetime(&created),
        );
        let ws = wb.add_worksheet();
        ws.set_name(format!("Datenstand {}", self.month))
            .map_err(x)?;
        let bold = Format::new().set_bold();
        let title = Format::new().set_bold().set_font_size(14);
        let head = Format::new()
            .set_bold()
            .set_align(FormatAlign::Center)
            .set_border(rust_xlsxwriter::FormatBorder::Thin)
            .set_text_wrap();
        let right = Format::new().set_align(FormatAlign::Right);
        let number = Format::new().set_num_format("#,##0");
        let note = Format::new().set_italic();

        ws.write_string_with_format(0, 0, self.title, &title)
            .map_err(x)?;
        ws.write_string(
            1,
            0,
            format!(
                "{} · Datenstand: {} {}",
                scope.title,
                month_name(self.month.month()),
                self.month.year()
            ),
        )
        .map_err(x)?;
        let (nc, ni) = (
            self.rt.categories.len() as u16,
            self.rt.indicators.len() as u16,
        );
        let header_row = 3;
        for (col, h) in ["Ebene", "gE-Nr.", "Bezeichnung"].iter().enumerate() {
            ws.merge_range(header_row, col as u16, header_row + 1, col as u16, h, &head)
                .map_err(x)?;
        }
        for k in 0..ni {
            let first = 3 + k * nc;
            let label = &self.indicator_labels[k as usize];
            if nc > 1 {
                ws.merge_range(header_row, first, header_row, first + nc - 1, label, &head)
                    .map_err(x)?;
            } else {
                ws.write_string_with_format(header_row, first, label, &head)
                    .map_err(x)?;
            }
            for c in 0..nc {
                ws.write_string_with_format(
                    header_row + 1,
                    first + c,
                    self.category_label(c as usize),
                    &head,
                )
                .map_err(x)?;
            }
        }
        let mut row = header_row + 2;
        for &a in &scope.areas {
            let (level, nr, name) = self.area_label(a);
            let style = if self.rt.areas[a].level == Level::Ge {
                &Format::new()
            } else {
                &bold
            };
            ws.write_string_with_format(row, 0, &level, style)
                .map_err(x)?;
            ws.write_string_with_format(row, 1, &nr, style).map_err(x)?;
            ws.write_string_with_format(row, 2, &name, style)
                .map_err(x)?;
            for k in 0..ni {
                for c in 0..nc {
                    let col = 3 + k * nc + c;
                    let cell = self.rt.cell(a, c as usize, k as usize);
                    match self.value(cell) {
                        None => ws
                            .write_string_with_format(row, col, "*", &right)
                            .map_err(x)?,
                        Some(0) => ws
                            .write_string_with_format(row, col, "-", &right)
                            .map_err(x)?,
                        Some(v) => ws
                            .write_number_with_format(row, col, v as f64, &number)
                            .map_err(x)?,
                    };
                }
            }
            row += 1;
        }
        row += 1;
        for line in footnotes() {
            ws.write_string_with_format(row, 0, line, &note)
                .map_err(x)?;
            row += 1;
        }
        ws.set_column_width(0, 7).map_err(x)?;
        ws.set_column_width(1, 8).map_err(x)?;
        ws.set_column_width(2, 34).map_err(x)?;
        // Wide enough for each category's heading on one line.
        for k in 0..ni {
            for c in 0..nc {
                let heading = self.category_label(c as usize).chars().count();
                ws.set_column_width(3 + k * nc + c, (heading + 2).max(12) as f64)
                    .map_err(x)?;
            }
        }
        ws.set_freeze_panes(header_row + 2, 3).map_err(x)?;
        // Merged indicator headings wrap: room for three lines.
        ws.set_row_height(header_row, 45).map_err(x)?;
        ws.set_row_height(header_row + 1, 30).map_err(x)?;
        let last_row = header_row + 1 + scope.areas.len() as u32;
        let last_col = 2 + ni * nc;
        ws.autofilter(header_row + 1, 0, last_row, last_col)
            .map_err(x)?;
        // Printed: landscape, one page wide, the headings on every page.
        ws.set_landscape();
        ws.set_paper_size(9); // A4
        ws.set_print_fit_to_pages(1, 0);
        ws.set_repeat_rows(header_row, header_row + 1).map_err(x)?;
        ws.set_print_gridlines(false);
        ws.set_header(format!(
            "&L{}&R{}",
            self.title.replace('&', "&&"),
            self.month
        ));
        ws.set_footer("&LSeite &P von &N");
        self.write_notes(&mut wb, scope).map_err(x)?;
        wb.save(path).map_err(x)
    }

    /// The heading of position `c` for people: per dimension the category's label, else its
    /// name (the total's name), joined by ` / `.
    fn category_label(&self, c: usize) -> String {
        let dims = self.definition.dimension.all();
        self.rt.coordinates[c]
            .iter()
            .zip(dims)
            .map(|(name, d)| {
                d.categories
                    .iter()
                    .find(|k| &k.name == name)
                    .and_then(|k| k.label.as_deref())
                    .unwrap_or(name)
            })
            .collect::<Vec<&str>>()
            .join(" / ")
    }

    /// The sheet "Erläuterungen": what a Jobcenter's manager needs to read the table unaided. Text
    /// only (no number cell), so that it never looks like a value of the table.
    fn write_notes(
        &self,
        wb: &mut Workbook,
        scope: &Scope,
    ) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
        let d = self.definition;
        let ws = wb.add_worksheet();
        ws.set_name("Erläuterungen")?;
        let bold = Format::new().set_bold();
        let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
        let title = Format::new().set_bold().set_font_size(14);
        let day = self.month.last_day();
        let stichtag = format!("{:02}.{:02}.{}", day.day(), day.month(), day.year());
        let threshold = d.suppression.threshold;
        let small = if threshold <= 2 {
            "1".to_owned()
        } else {
            format!("1 bis {}", threshold - 1)
        };
        let mut rows: Vec<(String, String)> = vec![
            ("Bericht".into(), d.title.clone()),
            ("Empfänger".into(), scope.title.clone()),
            (
                "Datenstand".into(),
                format!("{} {}", month_name(self.month.month()), self.month.year()),
            ),
            (
                "Stichtag".into(),
                format!(
                    "{stichtag} (letzter Tag des Berichtsmonats); Zeiträume wie „in den letzten 6 Wochen“ zählen von diesem Tag zurück"
                ),
            ),
            (
                "Personenkreis".into(),
                d.population_text
                    .clone()
                    .unwrap_or_else(|| format!("{} (Auswahl: {})", d.description, d.population)),
            ),
        ];
        for dim in d.dimension.all() {
            let heading = dim.label.clone().unwrap_or_else(|| dim.name.clone());
            for k in &dim.categories {
                let label = k.label.as_deref().unwrap_or(&k.name);
                let what = k.note.clone().unwrap_or_else(|| k.when.clone());
                rows.push((format!("{heading}: {label}"), what));
            }
            rows.push((
                format!("{heading}: {}", dim.total),
                "alle Personen des Personenkreises".into(),
            ));
        }
        for i in &d.indicators {
            let part = i
                .subset_of
                .as_ref()
                .and_then(|p| d.indicators.iter().find(|j| &j.name == p))
                .map_or_else(String::new, |p| format!(" (Teilmenge von „{}“)", p.label));
            let what = if i.when.trim() == "true" {
                "alle Personen des Personenkreises".to_owned()
            } else {
                format!("Auswahl: {}", i.when)
            };
            rows.push((format!("Merkmal: {}", i.label), format!("{what}{part}")));
        }
        rows.push((
            "Geheimhaltung".into(),
            format!(
                "Zahlen von {small} Personen und Werte, aus denen sie errechnet werden könnten, sind gesperrt (*); 0 wird als - gezeigt."
            ),
        ));
        rows.push((
            "Hinweis".into(),
            "Operative Daten (opDs), nicht validiert; nicht für Statistik oder Controlling bestimmt. Zeitreihen dürfen aus diesen Daten nicht gebildet werden.".into(),
        ));
        ws.write_string_with_format(0, 0, "Erläuterungen", &title)?;
        let bold_wrap = bold.clone().set_text_wrap().set_align(FormatAlign::Top);
        // Spreadsheets do not grow a row for wrapped text they did not write themselves: each
        // row gets the height of its longer cell's lines.
        let (key_width, text_width) = (44usize, 90usize);
        let lines = |text: &str, width: usize| text.chars().count().div_ceil(width - 4).max(1);
        for (r, (k, v)) in rows.iter().enumerate() {
            let r = r as u32 + 2;
            ws.write_string_with_format(r, 0, k, &bold_wrap)?;
            ws.write_string_with_format(r, 1, v, &wrap)?;
            let n = lines(k, key_width).max(lines(v, text_width));
            ws.set_row_height(r, 15.0 * n as f64)?;
        }
        ws.set_column_width(0, key_width as f64)?;
        ws.set_column_width(1, text_width as f64)?;
        ws.set_portrait();
        ws.set_paper_size(9);
        ws.set_print_fit_to_pages(1, 0);
        Ok(())
    }
}

/// The footnotes of every workbook.
#[must_use]
pub fn footnotes() -> [&'static str; 3] {
    [
        "* Wert aus Datenschutzgründen gesperrt: Zahlen von 1 bis 2 und Werte, aus denen sie errechnet werden könnten, werden nicht veröffentlicht.",
        "- Wert ist null (nichts vorhanden).",
        "Hinweis: Die Daten stammen aus dem operativen Datensatz (opDs). Es sind nicht validierte operative Daten, nicht für Statistik oder Controlling bestimmt; Zeitreihen dürfen daraus nicht gebildet werden.",
    ]
}

fn month_name(m: u32) -> &'static str {
    [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ][(m as usize).saturating_sub(1).min(11)]
}

/// Would a spreadsheet read this text as a formula (OWASP, CSV injection)?
#[must_use]
pub fn starts_like_a_formula(s: &str) -> bool {
    s.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// A text cell of a CSV for people: a value that a spreadsheet would evaluate (`=`, `+`, `-`, `@`,
/// a tab or a carriage return first) gets a leading `'`, which Excel and LibreOffice show as text
/// and do not display; then quoted where `;`, `"` or a line break need it. The Parquet tables keep
/// the exact value.
fn csv_field(s: &str) -> String {
    let s = if starts_like_a_formula(s) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([';', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn create_parent(path: &Path) -> Result<()> {
    let dir = path.parent().expect("a file below the month folder");
    fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))
}

fn format_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Format {
        path: path.to_owned(),
        reason: format!("writing the report failed: {e}"),
    }
}
