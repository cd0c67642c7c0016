#!/usr/bin/env bash
# The protection engine on thin tables (issue 14): report gefluechtete over the 400 gEs of
# testdata/ge-register.csv, insider model on, on the committed 2,000-row sample and on generated
# opDs data of 20,000 and 200,000 rows. Prints, per table, the wall time, the primary and secondary
# cells, the secondary mass (people in secondary cells), the covering program's lower bound on the
# secondary cells of any safe pattern, and the ratio to it; then the same for a baseline build
# when BASE_BIN names one (e.g. a release binary of main before a change), and the targets.
#
#   benches/protection.sh
#   BASE_BIN=/tmp/pseudagg-main benches/protection.sh
#   SIZES="20000" benches/protection.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES="${SIZES:-sample 20000 200000}"
WORK="${BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$WORK"
trap '[ -z "${BENCH_DIR:-}" ] && rm -rf "$WORK"' EXIT
cargo build --release --locked -p pseudagg-cli >&2
BIN="${CARGO_TARGET_DIR:-target}/release/pseudagg"
BASE_BIN="${BASE_BIN:-}"

run() { # tag binary size -> one line: size wall primary secondary mass bound
  local tag=$1 bin=$2 n=$3 input out
  if [ "$n" = sample ]; then input=testdata/opds-person-2025-03.csv; else input="$WORK/opds-$n.csv"; fi
  out="$WORK/out-$tag-$n"
  rm -rf "$out"
  local start end
  start=$(date +%s.%N)
  PSEUDAGG_LOG=warn "$bin" report --protocol "$WORK/protocol-$tag.jsonl" --definition pipelines/gefluechtete.toml \
    --input "$input" --month 2025-03 --ge-register testdata/ge-register.csv --out "$out" >/dev/null
  end=$(date +%s.%N)
  python3 - "$out/gefluechtete/2025-03/manifest.json" "$n" "$start" "$end" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["suppression"]
print(sys.argv[2], round(float(sys.argv[4]) - float(sys.argv[3]), 1), s["primary"], s["secondary"],
      s.get("secondary_mass", "-"), s.get("secondary_lower_bound") or "-")
PY
}

declare -A NEW BASE
for n in $SIZES; do
  if [ "$n" != sample ] && [ ! -f "$WORK/opds-$n.csv" ]; then
    "$BIN" gen-testdata --kind opds-person --rows "$n" --month 2025-03 --seed 1 --out "$WORK/opds-$n.csv" >/dev/null 2>&1
  fi
  # Interleaved: the baseline and this build on the same input, one after the other.
  [ -n "$BASE_BIN" ] && BASE[$n]=$(run base "$BASE_BIN" "$n")
  NEW[$n]=$(run new "$BIN" "$n")
  echo "... $n done" >&2
done

echo "pseudagg $(git rev-parse --short HEAD) on $(nproc) cores, $(date -u +%Y-%m-%d); insider model on"
printf '%-8s %-9s %7s %8s %10s %7s %7s %10s\n' table build "wall s" primary secondary mass bound "sec/bound"
line() { # build fields...
  awk -v b="$1" '{ r = ($6 == "-") ? "-" : sprintf("%.2f", $4 / ($6 > 0 ? $6 : 1));
    printf "%-8s %-9s %7s %8s %10s %7s %7s %10s\n", $1, b, $2, $3, $4, $5, $6, r }' <<<"$2"
}
for n in $SIZES; do
  [ -n "$BASE_BIN" ] && line baseline "${BASE[$n]}"
  line this "${NEW[$n]}"
done

echo
echo "targets"
verdict() { awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN { ok = (op == "<=") ? (x <= t) : (x >= t); printf "%-6s", ok ? "met" : "MISSED" }'; }
for n in $SIZES; do
  read -r _ wall _ sec mass bound <<<"${NEW[$n]}"
  if [ "$bound" != "-" ]; then
    r=$(awk -v a="$sec" -v b="$bound" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')
    printf '%-60s %6s <= 1.5  %s\n' "$n: secondary cells / lower bound" "$r" "$(verdict "$r" "<=" 1.5)"
  fi
  if [ -n "$BASE_BIN" ]; then
    read -r _ bwall _ bsec bmass _ <<<"${BASE[$n]}"
    r=$(awk -v a="$sec" -v b="$bsec" 'BEGIN { printf "%.2f", a / b }')
    printf '%-60s %6s <= 0.6  %s\n' "$n: secondary cells / baseline's" "$r" "$(verdict "$r" "<=" 0.6)"
    if [ "$bmass" != "-" ]; then
      r=$(awk -v a="$mass" -v b="$bmass" 'BEGIN { printf "%.2f", a / b }')
      printf '%-60s %6s <= 0.6  %s\n' "$n: secondary mass / baseline's" "$r" "$(verdict "$r" "<=" 0.6)"
    fi
  fi
  if [ "$n" = sample ]; then
    printf '%-60s %6s <= 1    %s\n' "sample: report wall s" "$wall" "$(verdict "$wall" "<=" 1)"
  fi
done
