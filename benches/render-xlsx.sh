#!/usr/bin/env bash
# Renders the workbooks of one gE and one RD of the committed sample to PNG pages (issue 15 §3),
# as a Jobcenter's manager would print them: LibreOffice headless prints each workbook to PDF with
# the workbook's own print setup (landscape, one page wide, headings repeated, the notes sheet),
# pdftoppm turns the pages into PNGs. Not in CI: it needs Debian's libreoffice-calc-nogui and
# poppler-utils.
#
#   benches/render-xlsx.sh              # into a temporary folder, printed at the end
#   benches/render-xlsx.sh /tmp/xlsx    # into /tmp/xlsx
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-$(mktemp -d)}"
mkdir -p "$OUT"
command -v soffice >/dev/null || { echo "needs soffice: apt-get install libreoffice-calc-nogui" >&2; exit 2; }
command -v pdftoppm >/dev/null || { echo "needs pdftoppm: apt-get install poppler-utils" >&2; exit 2; }
cargo build --release --locked -p pseudagg-cli >&2
BIN="${CARGO_TARGET_DIR:-target}/release/pseudagg"
rm -rf "$OUT/reports"
PSEUDAGG_LOG=warn "$BIN" report --definition pipelines/gefluechtete.toml \
  --input testdata/opds-person-2025-03.csv --month 2025-03 \
  --ge-register testdata/ge-register.csv --out "$OUT/reports" >&2
for scope in ge-86101 rd-SAC; do
  xlsx="$OUT/reports/gefluechtete/2025-03/xlsx/recipient=$scope/gefluechtete-2025-03.xlsx"
  rm -rf "$OUT/$scope"
  mkdir -p "$OUT/$scope"
  soffice --headless --convert-to pdf --outdir "$OUT/$scope" "$xlsx" >&2
  pdftoppm -png -r 70 "$OUT/$scope/gefluechtete-2025-03.pdf" "$OUT/$scope/page"
done
find "$OUT" -name 'page*.png' | sort
