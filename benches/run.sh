#!/usr/bin/env bash
# End-to-end benchmark at national size, with the tools people would use instead.
#
#   benches/run.sh                                      # 5,000,000 VerBIS rows, 5,500,000 opDs rows
#   VKB_ROWS=500000 OPDS_ROWS=550000 benches/run.sh     # a quicker run
#   PEERS=0 benches/run.sh                              # pseudagg only
#
# Generates the inputs (the VerBIS extract with EVERY row flagged: the worst case for
# pseudonymise), runs pseudagg's steps and the reference runs of benches/peers/ (pandas, Python
# polars, DuckDB, and the I/O floor: polars reading the CSV and writing Parquet with no transform),
# and prints one table: wall time, rows per second, peak memory (from /usr/bin/time -v), then the
# targets of the performance issue with the measured ratios. Single runs: the machine is noisy.
set -euo pipefail
cd "$(dirname "$0")/.."

VKB_ROWS="${VKB_ROWS:-5000000}"
OPDS_ROWS="${OPDS_ROWS:-5500000}"
SMALL_ROWS=$((VKB_ROWS / 10))
PEERS="${PEERS:-1}"
MONTH=2025-03
WORK="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT

if [ ! -x /usr/bin/time ]; then
  echo "benches/run.sh needs /usr/bin/time (Debian package 'time')" >&2
  exit 2
fi
if [ "$PEERS" = 1 ]; then
  python3 -m pip install --quiet -r benches/peers/requirements.txt >&2
fi

cargo build --release --locked -p pseudagg-cli >&2
BIN=target/release/pseudagg

declare -A WALL PEAK
rows=()
measure() { # key label rows command...
  local key=$1 name=$2 n=$3; shift 3
  local log="$WORK/time.log"
  echo "... $name" >&2
  PSEUDAGG_LOG=warn /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; exit 2; }
  local wall peak
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  WALL[$key]=$wall
  PEAK[$key]=$((peak / 1024))
  rows+=("$(awk -v name="$name" -v n="$n" -v wall="$wall" -v peak="$peak" \
    'BEGIN { printf "%-52s %10d %8.1f %11.0f %8.0f", name, n, wall, n / wall, peak / 1024 }')")
}

rm -f "$WORK/bench.key"  # a throwaway key; BENCH_DIR may hold the one of an earlier run
"$BIN" keygen --out "$WORK/bench.key" >/dev/null
KEY="$WORK/bench.key"
P="--protocol $WORK/protocol.jsonl"

measure gen_csv "gen-testdata verbis-vkb csv (all flagged)" "$VKB_ROWS" "$BIN" gen-testdata --kind verbis-vkb --rows "$VKB_ROWS" --month $MONTH --seed 1 --flagged-share 1 --out "$WORK/vkb.csv"
measure gen_pq "gen-testdata verbis-vkb parquet (all flagged)" "$VKB_ROWS" "$BIN" gen-testdata --kind verbis-vkb --rows "$VKB_ROWS" --month $MONTH --seed 1 --flagged-share 1 --out "$WORK/vkb.parquet"
measure gen_small "gen-testdata verbis-vkb csv, 1/10 (all flagged)" "$SMALL_ROWS" "$BIN" gen-testdata --kind verbis-vkb --rows "$SMALL_ROWS" --month $MONTH --seed 1 --flagged-share 1 --out "$WORK/vkb-small.csv"
measure gen_opds "gen-testdata opds-person csv" "$OPDS_ROWS" "$BIN" gen-testdata --kind opds-person --rows "$OPDS_ROWS" --month $MONTH --seed 1 --out "$WORK/opds.csv"
measure gen_opds_small "gen-testdata opds-person csv, 1/10" "$((OPDS_ROWS / 10))" "$BIN" gen-testdata --kind opds-person --rows "$((OPDS_ROWS / 10))" --month $MONTH --seed 1 --out "$WORK/opds-small.csv"

measure ps_csv "pseudagg pseudonymise csv (all flagged)" "$VKB_ROWS" "$BIN" pseudonymise $P --pipeline pipelines/vkb.toml --input "$WORK/vkb.csv" --month $MONTH --key-file "$KEY" --out "$WORK/out"
measure ps_small "pseudagg pseudonymise csv, 1/10 (all flagged)" "$SMALL_ROWS" "$BIN" pseudonymise $P --pipeline pipelines/vkb.toml --input "$WORK/vkb-small.csv" --month $MONTH --key-file "$KEY" --out "$WORK/out-small"
measure ps_pq "pseudagg pseudonymise parquet (all flagged)" "$VKB_ROWS" "$BIN" pseudonymise $P --pipeline pipelines/vkb.toml --input "$WORK/vkb.parquet" --month $MONTH --key-file "$KEY" --out "$WORK/out-pq"
measure report "pseudagg report gefluechtete (suppression, audit)" "$OPDS_ROWS" "$BIN" report $P --definition pipelines/gefluechtete.toml --input "$WORK/opds.csv" --month $MONTH --out "$WORK/reports"
measure report_small "pseudagg report gefluechtete, 1/10" "$((OPDS_ROWS / 10))" "$BIN" report $P --definition pipelines/gefluechtete.toml --input "$WORK/opds-small.csv" --month $MONTH --out "$WORK/reports-small"
# Issue 19: the same report protected together with the month's released language report.
measure joint_first "pseudagg report beratung-sprachniveau, 1/10" "$((OPDS_ROWS / 10))" "$BIN" report $P --definition pipelines/beratung-sprachniveau.toml --input "$WORK/opds-small.csv" --month $MONTH --out "$WORK/joint"
measure joint "pseudagg report gefluechtete with it released, 1/10" "$((OPDS_ROWS / 10))" "$BIN" report $P --definition pipelines/gefluechtete.toml --input "$WORK/opds-small.csv" --month $MONTH --out "$WORK/joint"
suppressed() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["suppression"]; print(s["primary"] + s["secondary"])' "$1/gefluechtete/$MONTH/manifest.json"; }
measure verify_ds "pseudagg verify vkb (structure, values, k)" "$VKB_ROWS" "$BIN" verify $P "$WORK/out/vkb/$MONTH"
measure verify_full "pseudagg verify vkb --input --key-file" "$VKB_ROWS" "$BIN" verify $P "$WORK/out/vkb/$MONTH" --input "$WORK/vkb.csv" --key-file "$KEY"
measure verify_rep "pseudagg verify report (per-scope audit)" "$OPDS_ROWS" "$BIN" verify $P "$WORK/reports/gefluechtete/$MONTH"
# The thin table: the committed 2,000-row sample over the 400 gEs of the register, insider model on.
measure report_sample "pseudagg report gefluechtete, committed sample" 2000 "$BIN" report $P --definition pipelines/gefluechtete.toml --input testdata/opds-person-2025-03.csv --month 2025-03 --ge-register testdata/ge-register.csv --out "$WORK/reports-sample"
measure verify_sample "pseudagg verify report, committed sample" 2000 "$BIN" verify $P "$WORK/reports-sample/gefluechtete/2025-03"

if [ "$PEERS" = 1 ]; then
  measure floor "I/O floor: polars csv -> parquet, vkb" "$VKB_ROWS" python3 benches/peers/io_floor.py "$WORK/vkb.csv" "$WORK/floor-vkb.parquet"
  measure floor_opds "I/O floor: polars csv -> parquet, opds" "$OPDS_ROWS" python3 benches/peers/io_floor.py "$WORK/opds.csv" "$WORK/floor-opds.parquet"
  measure polars "peer: Python polars + hmac UDF" "$VKB_ROWS" python3 benches/peers/polars_ref.py "$WORK/vkb.csv" "$WORK/peer-polars" "$KEY" $MONTH
  measure duckdb "peer: DuckDB + hmac UDF" "$VKB_ROWS" python3 benches/peers/duckdb_ref.py "$WORK/vkb.csv" "$WORK/peer-duckdb" "$KEY" $MONTH
  measure pandas "peer: pandas + hmac" "$VKB_ROWS" python3 benches/peers/pandas_ref.py "$WORK/vkb.csv" "$WORK/peer-pandas" "$KEY" $MONTH
fi

echo
echo "pseudagg $(git rev-parse --short HEAD) on $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"
printf '%-52s %10s %8s %11s %8s\n' "step" "rows" "wall s" "rows/s" "peak MB"
printf '%s\n' "${rows[@]}"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { # value op threshold; op "1+-" means within the threshold of 1 either way
  awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN {
    if (op == ">=") ok = (x >= t); else if (op == "<=") ok = (x <= t); else ok = (x >= 1 - t && x <= 1 + t)
    print ok ? "met" : "MISSED" }'
}
target() { # label value op threshold
  printf '%-60s %8s %3s %-6s %s\n' "$1" "$2" "$3" "$4" "$(verdict "$2" "$3" "$4")"
}
echo
echo "targets (ratios of the runs above)"
target "report on the committed sample: wall s" "${WALL[report_sample]}" "<=" 1
target "verify of the sample report / the report itself" "$(ratio "${WALL[verify_sample]}" "${WALL[report_sample]}")" "<=" 1
target "joint protection: suppressed cells together / alone" "$(ratio "$(suppressed "$WORK/joint")" "$(suppressed "$WORK/reports-small")")" "<=" 1.1
target "joint protection: report with a released report / alone" "$(ratio "${WALL[joint]}" "${WALL[report_small]}")" "<=" 2
if [ "$PEERS" = 1 ]; then
  target "pseudonymise csv: pandas time / pseudagg time" "$(ratio "${WALL[pandas]}" "${WALL[ps_csv]}")" ">=" 10
  target "pseudonymise csv: Python polars time / pseudagg time" "$(ratio "${WALL[polars]}" "${WALL[ps_csv]}")" ">=" 3
  target "pseudonymise csv: pseudagg time / I/O floor" "$(ratio "${WALL[ps_csv]}" "${WALL[floor]}")" "<=" 1.5
  target "report: pseudagg time / I/O floor of reading the opDs csv" "$(ratio "${WALL[report]}" "${WALL[floor_opds]}")" "<=" 2
fi
max_peak=0
for k in ps_csv ps_small ps_pq report report_small verify_ds verify_full verify_rep; do
  [ "${PEAK[$k]}" -gt "$max_peak" ] && max_peak=${PEAK[$k]}
done
target "peak memory of any pseudagg step, MB" "$max_peak" "<=" 2048
per_row_big=$(awk -v t="${WALL[ps_csv]}" -v n="$VKB_ROWS" 'BEGIN { print t / n }')
per_row_small=$(awk -v t="${WALL[ps_small]}" -v n="$SMALL_ROWS" 'BEGIN { print t / n }')
target "pseudonymise time per row, full size / one tenth" "$(ratio "$per_row_big" "$per_row_small")" "1+-" 0.2
per_row_big=$(awk -v t="${WALL[report]}" -v n="$OPDS_ROWS" 'BEGIN { print t / n }')
per_row_small=$(awk -v t="${WALL[report_small]}" -v n="$((OPDS_ROWS / 10))" 'BEGIN { print t / n }')
target "report time per row, full size / one tenth" "$(ratio "$per_row_big" "$per_row_small")" "1+-" 0.2
