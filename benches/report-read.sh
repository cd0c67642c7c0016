#!/usr/bin/env bash
# Report reading at the speed of the data it needs (issue 15 §2): `pseudagg report` of
# pipelines/gefluechtete.toml on generated opDs Parquet extracts of 0.5 M and 5.5 M rows, beside
# the Python polars peer (benches/peers/polars_report.py: lazy scan with projection pushdown, the
# same counts, primary suppression only, one file), and beside BASE_BIN (a release build of an
# earlier commit) when given. Runs interleaved, RUNS times each (default 3); prints the median wall
# time and the largest peak memory of each, and the targets: pseudagg at most 1.5x the peer at
# 5.5 M rows, peak memory under 1 GB, time per row within 20 % from 0.5 M to 5.5 M rows.
#
#   benches/report-read.sh
#   BASE_BIN=/tmp/pseudagg-main RUNS=5 benches/report-read.sh
#
# The peer needs Python with polars (pip install -r benches/peers/requirements.txt); PYTHON names
# the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
PYTHON="${PYTHON:-python3}"
WORK="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT
cargo build --release --locked -p pseudagg-cli >&2
BIN="${CARGO_TARGET_DIR:-target}/release/pseudagg"
BASE_BIN="${BASE_BIN:-}"

for n in 500000 5500000; do
  [ -f "$WORK/opds-$n.parquet" ] ||
    PSEUDAGG_LOG=warn "$BIN" gen-testdata --kind opds-person --rows "$n" --month 2025-03 --seed 1 \
      --out "$WORK/opds-$n.parquet" >&2
done

# Each run writes into a folder and a protocol of its own, removed only after the last run: ext4
# skips inodes freed in the last 30 s when it allocates new ones, and a report's 1,647 files and
# 1,241 folders written right after the previous run's were removed took about 1 s longer
# (`recently_deleted` in the kernel profile). A monthly run writes a month that is not there yet.
RUN=0
measure() { # tag n command... -> "tag n seconds kilobytes"
  local tag=$1 n=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || {
    cat "$WORK/err" >&2
    exit 2
  }
  echo "$tag $n $(cat "$WORK/time")"
}

report() { # tag binary n: one run of `pseudagg report`, measured
  RUN=$((RUN + 1))
  measure "$1" "$3" env PSEUDAGG_LOG=warn "$2" report --protocol "$WORK/runs.d/$RUN.jsonl" \
    --definition pipelines/gefluechtete.toml --input "$WORK/opds-$3.parquet" --month 2025-03 \
    --out "$WORK/runs.d/out-$RUN"
}

rm -rf "$WORK/runs.d"
mkdir -p "$WORK/runs.d"
: >"$WORK/runs"
for _ in $(seq "$RUNS"); do
  for n in 500000 5500000; do
    report pseudagg "$BIN" "$n" >>"$WORK/runs"
    if [ -n "$BASE_BIN" ]; then report base "$BASE_BIN" "$n" >>"$WORK/runs"; fi
    measure polars "$n" "$PYTHON" benches/peers/polars_report.py "$WORK/opds-$n.parquet" 2025-03 \
      "$WORK/peer.parquet" >>"$WORK/runs"
  done
done

rm -rf "$WORK/runs.d"

"$PYTHON" - "$WORK/runs" "$RUNS" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    tag, n, secs, kb = line.split()
    runs[(tag, int(n))].append((float(secs), int(kb)))
print(f"report gefluechtete on Parquet, median of {sys.argv[2]} interleaved runs, 2 cores\n")
print("| tool | rows | wall s | peak memory MB | s per million rows |")
print("|---|---|---|---|---|")
med = {}
for (tag, n), rs in sorted(runs.items()):
    m = statistics.median(s for s, _ in rs)
    med[(tag, n)] = m
    print(f"| {tag} | {n:,} | {m:.2f} | {max(k for _, k in rs) / 1024:.0f} | {m / n * 1e6:.2f} |")
big, small = 5_500_000, 500_000
ratio = med[("pseudagg", big)] / med[("polars", big)]
flat = (med[("pseudagg", big)] / big) / (med[("pseudagg", small)] / small)
mem = max(k for _, k in runs[("pseudagg", big)]) / 1024
print()
print(f"target: pseudagg / polars at 5.5 M rows <= 1.5: {ratio:.2f} ({'met' if ratio <= 1.5 else 'missed'})")
print(f"target: peak memory at 5.5 M rows < 1024 MB: {mem:.0f} ({'met' if mem < 1024 else 'missed'})")
print(f"target: time per row 5.5 M / 0.5 M within 0.8-1.2: {flat:.2f} ({'met' if 0.8 <= flat <= 1.2 else 'missed'})")
PY
