"""Reads pseudagg's outputs with one client, by the README's recipe, and checks what it got.

    python read_outputs.py CLIENT VKB_MONTH_DIR REPORT_MONTH_DIR

CLIENT is pyarrow, pandas, polars or duckdb. The read calls below are the README's recipes, one
call each; everything after a read only turns the client's result into Python rows to check them
against the steward's manifests: row counts, the sums of the published values, every key once.
Exit 0 when every check holds, 1 with the failed checks otherwise.
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path

PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")


# --- the recipes: one call per output -------------------------------------------------------


def read_pyarrow(kind, path):
    import pyarrow.csv as pc
    import pyarrow.parquet as pq

    if kind == "csv":
        table = pc.read_csv(
            path,
            parse_options=pc.ParseOptions(delimiter=";"),
            convert_options=pc.ConvertOptions(column_types={"value": "string", "rd": "string", "ge_nr": "string"}),
        )
    else:
        table = pq.read_table(path)
    return table.to_pylist()


def read_pandas(kind, path):
    import pandas as pd

    if kind == "csv":
        frame = pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    else:
        frame = pd.read_parquet(path)
    # The hive key comes back as a categorical; its values are what count here.
    return [
        {k: (None if _is_na(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def read_polars(kind, path):
    import polars as pl

    if kind == "csv":
        frame = pl.read_csv(path, separator=";", infer_schema=False)
    else:
        frame = pl.read_parquet(path)
    return frame.to_dicts()


def read_duckdb(kind, path):
    import duckdb

    if kind == "csv":
        rel = duckdb.sql(f"select * from read_csv('{path}', delim=';', header=true, all_varchar=true)")
    elif kind == "parquet-tree":
        rel = duckdb.sql(f"select * from read_parquet('{path}/**/*.parquet', hive_partitioning=true)")
    else:
        rel = duckdb.sql(f"select * from read_parquet('{path}')")
    names = rel.columns
    return [dict(zip(names, row)) for row in rel.fetchall()]


def _is_na(v):
    try:
        return v != v  # NaN
    except Exception:  # noqa: BLE001
        return False


READERS = {
    "pyarrow": read_pyarrow,
    "pandas": read_pandas,
    "polars": read_polars,
    "duckdb": read_duckdb,
}


def read(client, kind, path):
    """kind: parquet-tree (a hive folder), parquet (one file), csv (one file)."""
    reader = READERS[client]
    if client == "duckdb" or kind != "parquet-tree":
        return reader(kind, str(path))
    return reader("parquet", str(path))


# --- the checks ---------------------------------------------------------------------------------


class Checks:
    def __init__(self):
        self.failed = []
        self.passed = 0

    def equal(self, what, got, want):
        if got == want:
            self.passed += 1
        else:
            self.failed.append(f"{what}: got {got!r}, want {want!r}")


def text(v):
    return None if v is None or v == "" else str(v)


def check_vkb(client, month_dir, checks):
    manifest = json.loads((month_dir / "manifest.json").read_text())
    rows = read(client, "parquet-tree", month_dir / "parquet")
    key = manifest["partitions"] and "rd"
    checks.equal("vkb rows", len(rows), manifest["rows_out"])
    per_rd = Counter(str(r[key]) for r in rows)
    want = {rd: c["rows_out"] for rd, c in manifest["partitions"].items() if c["rows_out"] > 0}
    checks.equal("vkb rows per rd", dict(per_rd), want)
    columns = set(rows[0]) if rows else set()
    checks.equal("vkb columns", columns, {c["name"] for c in manifest["columns"]})
    pseudonyms = [r["pseudonym"] for r in rows]
    checks.equal("vkb pseudonyms unique", len(set(pseudonyms)), len(pseudonyms))
    checks.equal("vkb pseudonyms are HMAC hex", all(PSEUDONYM.match(p) for p in pseudonyms), True)


def cell_key(row, dims):
    return (
        text(row["level"]),
        text(row["rd"]),
        text(row["ge_nr"]),
        tuple(text(row[d]) for d in dims),
        text(row["indicator"]),
    )


def published_sum(rows):
    total = 0
    for r in rows:
        v = r["value"]
        if v is None or v in ("*", ""):
            continue
        total += int(v)
    return total


def check_report(client, month_dir, checks):
    manifest = json.loads((month_dir / "manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    dims = [d["name"] for d in manifest["structure"]["dimensions"]]
    stem = f"{manifest['report']}-{manifest['month']}"

    # The steward's file: every published cell once.
    all_pq = f"all/{stem}.parquet"
    rows = read(client, "parquet", month_dir / all_pq)
    checks.equal("all rows", len(rows), files[all_pq]["rows"])
    checks.equal("all sum", published_sum(rows), files[all_pq]["value_sum"])
    keys = Counter(cell_key(r, dims) for r in rows)
    checks.equal("all cells once", max(keys.values()), 1)
    suppressed = sum(1 for r in rows if r["value"] is None)

    all_csv = f"all/{stem}.csv"
    rows = read(client, "csv", month_dir / all_csv)
    checks.equal("all csv rows", len(rows), files[all_csv]["rows"])
    checks.equal("all csv sum", published_sum(rows), files[all_csv]["value_sum"])
    checks.equal("all csv suppressed", sum(1 for r in rows if r["value"] == "*"), suppressed)

    # Every recipient's table, with the recipient from its folder.
    rows = read(client, "parquet-tree", month_dir / "parquet")
    by = {}
    for r in rows:
        by.setdefault(str(r["recipient"]), []).append(r)
    checks.equal("recipients", sorted(by), sorted(manifest["scopes"]))
    for scope in manifest["scopes"]:
        entry = files[f"parquet/recipient={scope}/{stem}.parquet"]
        got = by.get(scope, [])
        checks.equal(f"rows of {scope}", len(got), entry["rows"])
        checks.equal(f"sum of {scope}", published_sum(got), entry["value_sum"])
        keys = Counter(cell_key(r, dims) for r in got)
        checks.equal(f"cells of {scope} once", max(keys.values()), 1)
    bund = by.get("bund", [])
    checks.equal("the Bund's table holds only Bund rows", {text(r["level"]) for r in bund}, {"bund"})

    # One recipient's folder alone.
    rd = next(s for s in manifest["scopes"] if s.startswith("rd-"))
    rows = read(client, "parquet-tree", month_dir / "parquet" / f"recipient={rd}")
    entry = files[f"parquet/recipient={rd}/{stem}.parquet"]
    checks.equal(f"{rd} alone: rows", len(rows), entry["rows"])
    checks.equal(f"{rd} alone: sum", published_sum(rows), entry["value_sum"])


def main():
    client, vkb, report = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    checks = Checks()
    check_vkb(client, vkb, checks)
    check_report(client, report, checks)
    if checks.failed:
        print(f"{client}: {len(checks.failed)} checks failed", file=sys.stderr)
        for f in checks.failed:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print(f"{client}: {checks.passed} checks passed")


if __name__ == "__main__":
    main()
