#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a few minutes each (issue 18 §4), never in CI: libFuzzer
# needs the nightly toolchain. Prints one line per target: runs, coverage, corpus size, and whether
# it found a crash, a leak, a time-out or an out-of-memory; the inputs that did are kept under
# fuzz/artifacts/<target>/ (copy a fixed one to fuzz/regressions/<target>/ so every `cargo test`
# replays it on stable Rust).
#
#   benches/fuzz.sh                       # every target, 180 s each
#   SECONDS_EACH=600 benches/fuzz.sh expression report_definition
#
# Needs `cargo install cargo-fuzz` and `rustup toolchain install nightly`.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${SECONDS_EACH:-180}"
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }

LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
for t in "${TARGETS[@]}"; do
  cargo +nightly fuzz build --release "$t" >&2
done

printf '%-22s %8s %10s %8s %8s %s\n' target seconds runs cov corpus result
for t in "${TARGETS[@]}"; do
  # A working copy of the committed corpus: the run grows it, the repository keeps the minimised one.
  work="$LOGS/corpus-$t"
  mkdir -p "$work"
  cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  set +e
  # -rss_limit_mb: a definition or extract that needs more than this is a finding; -timeout: one
  # input that takes longer than 10 s is one (the bounded parser must never get there).
  cargo +nightly fuzz run --release "$t" "$work" -- \
    -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$LOGS/$t.log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$' || echo "-")
  cov=$(grep -o 'cov: [0-9]*' "$LOGS/$t.log" | tail -1 | grep -o '[0-9]*' || echo "-")
  corpus=$(find "$work" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    result="no finding"
  else
    result="FINDING (exit $rc): $(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|panicked at [^ ]+|deadly signal|stack-overflow|out-of-memory|timeout' "$LOGS/$t.log" || echo 'see log')"
    cp "$LOGS/$t.log" "artifacts/$t.log" 2>/dev/null || true
  fi
  printf '%-22s %8s %10s %8s %8s %s\n' "$t" "$SECONDS_EACH" "$runs" "$cov" "$corpus" "$result"
done
