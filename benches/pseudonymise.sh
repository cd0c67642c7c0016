#!/usr/bin/env bash
# Pseudonymise and verify at the speed of the hardware (issue 16): `pseudagg pseudonymise` of
# pipelines/vkb.toml on generated VerBIS extracts, CSV and Parquet, every case flagged and 12 %
# flagged, beside the peers of benches/peers/ (pandas, Python polars and DuckDB, each with the
# standard library's HMAC) and the floor (benches/peers/kept_floor.py: polars reads the extract and
# writes the kept columns per RD, untransformed), and `pseudagg verify --input --key-file` of the
# output. BASE_BIN (a release build of an earlier commit) runs beside pseudagg when given.
#
# All runs are interleaved, RUNS times each (default 3); the table gives the median wall time and
# the largest peak memory (from /usr/bin/time), then the issue's targets with the measured ratios.
#
#   benches/pseudonymise.sh                       # 1 M rows
#   ROWS="500000 5000000" benches/pseudonymise.sh # the flat-per-row target needs two sizes
#   PEERS=0 BASE_BIN=/tmp/pseudagg-main benches/pseudonymise.sh
#
# The peers need Python with pandas, polars and DuckDB (pip install -r benches/peers/requirements.txt);
# PYTHON names the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
ROWS="${ROWS:-1000000}"
PEERS="${PEERS:-1}"
PYTHON="${PYTHON:-python3}"
MONTH=2025-03
WORK="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT
cargo build --release --locked -p pseudagg-cli >&2
BIN="${CARGO_TARGET_DIR:-target}/release/pseudagg"
BASE_BIN="${BASE_BIN:-}"

# A throwaway key each time, and a fresh protocol (it would hold the key of an earlier run).
rm -f "$WORK/bench.key" "$WORK/protocol.jsonl"
PSEUDAGG_LOG=warn "$BIN" keygen --out "$WORK/bench.key" >/dev/null
KEY="$WORK/bench.key"
for n in $ROWS; do
  for share in 1 0.12; do
    for ext in csv parquet; do
      f="$WORK/vkb-$n-$share.$ext"
      [ -f "$f" ] || PSEUDAGG_LOG=warn "$BIN" gen-testdata --kind verbis-vkb --rows "$n" \
        --month $MONTH --seed 1 --flagged-share "$share" --out "$f" >&2
    done
  done
done

measure() { # tag n command... -> "tag n seconds kilobytes"
  local tag=$1 n=$2
  shift 2
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || {
    cat "$WORK/err" >&2
    exit 2
  }
  echo "$tag $n $(cat "$WORK/time")"
}

pseudonymise() { # tag binary input n
  rm -rf "$WORK/out"
  measure "$1" "$4" env PSEUDAGG_LOG=warn "$2" pseudonymise --protocol "$WORK/protocol.jsonl" \
    --pipeline pipelines/vkb.toml --input "$3" --month $MONTH --key-file "$KEY" --out "$WORK/out"
}

: >"$WORK/runs"
for _ in $(seq "$RUNS"); do
  for n in $ROWS; do
    for share in 1 0.12; do
      for ext in csv parquet; do
        f="$WORK/vkb-$n-$share.$ext"
        pseudonymise "pseudagg-$ext-$share" "$BIN" "$f" "$n" >>"$WORK/runs"
        if [ "$ext-$share" = csv-1 ]; then
          measure "verify-input" "$n" env PSEUDAGG_LOG=warn "$BIN" verify \
            --protocol "$WORK/protocol.jsonl" "$WORK/out/vkb/$MONTH" --input "$f" \
            --key-file "$KEY" >>"$WORK/runs"
          measure "verify" "$n" env PSEUDAGG_LOG=warn "$BIN" verify \
            --protocol "$WORK/protocol.jsonl" "$WORK/out/vkb/$MONTH" >>"$WORK/runs"
        fi
        if [ -n "$BASE_BIN" ]; then
          pseudonymise "base-$ext-$share" "$BASE_BIN" "$f" "$n" >>"$WORK/runs"
        fi
        if [ "$PEERS" = 1 ]; then
          rm -rf "$WORK/floor"
          measure "floor-$ext-$share" "$n" "$PYTHON" benches/peers/kept_floor.py "$f" \
            "$WORK/floor" >>"$WORK/runs"
        fi
      done
    done
    if [ "$PEERS" = 1 ]; then
      f="$WORK/vkb-$n-1.csv"
      for peer in pandas polars duckdb; do
        rm -rf "$WORK/peer"
        measure "$peer-csv-1" "$n" "$PYTHON" "benches/peers/${peer}_ref.py" "$f" "$WORK/peer" \
          "$KEY" $MONTH >>"$WORK/runs"
      done
    fi
  done
done

"$PYTHON" - "$WORK/runs" "$RUNS" "$(nproc)" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    tag, n, secs, kb = line.split()
    runs[(tag, int(n))].append((float(secs), int(kb)))
print(f"pseudonymise vkb, median of {sys.argv[2]} interleaved runs, {sys.argv[3]} cores")
print("(tag: tool-format-flagged share; verify runs on the output of pseudagg-csv-1)\n")
print("| run | rows | wall s | peak memory MB | s per million rows |")
print("|---|---|---|---|---|")
med = {}
for (tag, n), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    m = statistics.median(s for s, _ in rs)
    med[(tag, n)] = (m, max(k for _, k in rs) / 1024)
    print(f"| {tag} | {n:,} | {m:.2f} | {med[(tag, n)][1]:.0f} | {m / n * 1e6:.2f} |")
print()

def target(label, value, op, limit):
    ok = value >= limit if op == ">=" else value <= limit
    print(f"{label}: {value:.2f} {op} {limit} ({'met' if ok else 'MISSED'})")

sizes = sorted({n for _, n in med})
for n in sizes:
    t = lambda tag: med.get((tag, n), (None, None))[0]
    print(f"targets at {n:,} rows")
    if t("pandas-csv-1"):
        target("  pandas / pseudagg, csv, all flagged", t("pandas-csv-1") / t("pseudagg-csv-1"), ">=", 10)
        target("  Python polars / pseudagg, csv, all flagged", t("polars-csv-1") / t("pseudagg-csv-1"), ">=", 3)
    for fmt in ("csv", "parquet"):
        for share in ("1", "0.12"):
            if t(f"floor-{fmt}-{share}"):
                target(f"  pseudagg / floor, {fmt}, flagged {share}",
                       t(f"pseudagg-{fmt}-{share}") / t(f"floor-{fmt}-{share}"), "<=", 1.2)
    target("  verify --input --key-file / pseudonymise, csv", t("verify-input") / t("pseudagg-csv-1"), "<=", 1.5)
    mem = med[("verify-input", n)][1]
    if n >= 5_000_000:
        target("  verify --input peak memory, MB", mem, "<=", 1024)
    peak = max(v[1] for (tag, m), v in med.items() if m == n and tag.startswith("pseudagg"))
    target("  pseudonymise peak memory, MB", peak, "<=", 2048)
if len(sizes) > 1:
    lo, hi = sizes[0], sizes[-1]
    flat = (med[("pseudagg-csv-1", hi)][0] / hi) / (med[("pseudagg-csv-1", lo)][0] / lo)
    ok = 0.8 <= flat <= 1.2
    print(f"time per row, {hi:,} / {lo:,}, csv all flagged: {flat:.2f} within 0.8-1.2 ({'met' if ok else 'MISSED'})")
PY
