//! The report kernels on a national table (about 400 gEs in 10 RDs, 3 origin values, 7 indicators):
//! counting the opDs rows, and suppression with its audit. Run with `cargo bench -p pseudagg-report`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pseudagg_core::Month;
use pseudagg_io::{ExtractReader, ReadOptions, parse_date};
use pseudagg_report::layout::ReportTable;
use pseudagg_report::suppress::{Params, protect};
use pseudagg_report::{Counter, ReportPlan};
use pseudagg_testdata::{Format, GenOptions, Kind, generate};

fn bench(c: &mut Criterion) {
    let month = Month::new(2025, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    let plan = ReportPlan::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/gefluechtete.toml"
    )))
    .unwrap();
    let month_end = parse_date(&month.last_day().format("%Y-%m-%d").to_string()).unwrap();
    for rows in [1_000_000u64, 200_000] {
        let path = dir.path().join(format!("opds-{rows}.parquet"));
        generate(
            &GenOptions::new(Kind::OpdsPerson, rows, month, 1),
            Format::Parquet,
            &path,
        )
        .unwrap();
        let mut reader = ExtractReader::open(&path, &plan.schema, ReadOptions::new(month)).unwrap();
        let mut batches = Vec::new();
        while let Some(b) = reader.next_batch().unwrap() {
            batches.push(b);
        }
        let count = || {
            let mut counter = Counter::new(&plan, month_end);
            for b in &batches {
                counter.add(b);
            }
            counter.finish().unwrap()
        };
        g.throughput(Throughput::Elements(rows));
        g.bench_function(format!("count {rows} rows"), |b| b.iter(count));
        let rt = ReportTable::build(&plan, &count());
        let params = Params {
            threshold: 3,
            min_width: 2,
            insider: true,
        };
        g.throughput(Throughput::Elements(rt.table.len() as u64));
        g.bench_function(format!("suppress and audit, table of {rows} rows"), |b| {
            b.iter(|| protect(&rt.table, params).unwrap());
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
