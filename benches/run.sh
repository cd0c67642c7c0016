#!/usr/bin/env bash
# End-to-end benchmark: generates national-size inputs and times pseudagg's steps.
# Prints one table (wall time, rows per second, peak memory from /usr/bin/time -v).
#
#   benches/run.sh                 # 5,000,000 VerBIS rows, 5,500,000 opDs rows
#   VKB_ROWS=500000 OPDS_ROWS=550000 benches/run.sh   # a quicker run
#
# Peers (pandas, Python polars, DuckDB) and criterion kernels are not here yet: see the
# performance issue.
set -euo pipefail
cd "$(dirname "$0")/.."

VKB_ROWS="${VKB_ROWS:-5000000}"
OPDS_ROWS="${OPDS_ROWS:-5500000}"
MONTH=2025-03
WORK="${BENCH_DIR:-$(mktemp -d)}"
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT

if [ ! -x /usr/bin/time ]; then
  echo "benches/run.sh needs /usr/bin/time (Debian package 'time')" >&2
  exit 2
fi

cargo build --release --locked -p pseudagg-cli >&2
BIN=target/release/pseudagg

rows=()
measure() { # name rows command...
  local name=$1 n=$2; shift 2
  local log="$WORK/time.log"
  PSEUDAGG_LOG=warn /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; exit 2; }
  local wall peak
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  rows+=("$(awk -v name="$name" -v n="$n" -v wall="$wall" -v peak="$peak" \
    'BEGIN { printf "%-44s %10d %9.1f %12.0f %9.0f", name, n, wall, n / wall, peak / 1024 }')")
}

"$BIN" keygen --out "$WORK/bench.key" >/dev/null
measure "gen-testdata verbis-vkb csv" "$VKB_ROWS" "$BIN" gen-testdata --kind verbis-vkb --rows "$VKB_ROWS" --month $MONTH --seed 1 --out "$WORK/vkb.csv"
measure "gen-testdata opds-person csv" "$OPDS_ROWS" "$BIN" gen-testdata --kind opds-person --rows "$OPDS_ROWS" --month $MONTH --seed 1 --out "$WORK/opds.csv"
measure "gen-testdata verbis-vkb parquet" "$VKB_ROWS" "$BIN" gen-testdata --kind verbis-vkb --rows "$VKB_ROWS" --month $MONTH --seed 1 --out "$WORK/vkb.parquet"

measure "pseudonymise csv (12 % flagged)" "$VKB_ROWS" "$BIN" pseudonymise --pipeline pipelines/vkb.toml --input "$WORK/vkb.csv" --month $MONTH --key-file "$WORK/bench.key" --out "$WORK/out"
measure "pseudonymise parquet (12 % flagged)" "$VKB_ROWS" "$BIN" pseudonymise --pipeline pipelines/vkb.toml --input "$WORK/vkb.parquet" --month $MONTH --key-file "$WORK/bench.key" --out "$WORK/out"
measure "report gefluechtete (suppression + audit)" "$OPDS_ROWS" "$BIN" report --definition pipelines/gefluechtete.toml --input "$WORK/opds.csv" --month $MONTH --out "$WORK/reports"

echo
echo "pseudagg $(git rev-parse --short HEAD) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"
printf '%-44s %10s %9s %12s %9s\n' "step" "rows" "wall s" "rows/s" "peak MB"
printf '%s\n' "${rows[@]}"
