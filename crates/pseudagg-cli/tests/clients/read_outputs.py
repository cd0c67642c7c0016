"""Reads pseudagg's outputs with one client, by the README's recipe, and checks what it got.

    python read_outputs.py CLIENT README OUT

CLIENT is pyarrow, pandas, polars or duckdb. The README has a ```python block for each client,
whose first line is `# <client>`: that block is run as written, with `OUT/` standing for the
output root OUT (which holds vkb/2025-03 and gefluechtete/2025-03). It reads every output in one
call each into `vkb`, `cells`, `cells_csv`, `recipients` and `sac`. Everything after that only
turns the client's results into Python rows, to check them against the steward's manifests: row
counts, the sums of the published values, every key once. Exit 0 when every check holds, 1 with
the failed checks otherwise.
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path

PSEUDONYM = re.compile(r"^[0-9a-f]{64}$")
NAMES = ["vkb", "cells", "cells_csv", "recipients", "sac"]


def recipe(readme, client):
    """The README's ```python block that starts with `# <client>`."""
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), flags=re.M | re.S)
    for block in blocks:
        first = block.splitlines()[0].strip()
        if first == f"# {client}" or first.startswith(f"# {client} "):
            return block
    raise SystemExit(f"the README has no ```python block starting with `# {client}`")


def run_recipe(readme, client, out):
    code = recipe(readme, client).replace("OUT/", f"{out}/")
    scope = {}
    exec(compile(code, f"README ({client})", "exec"), scope)  # noqa: S102 - the README's own code
    missing = [n for n in NAMES if n not in scope]
    if missing:
        raise SystemExit(f"the {client} recipe does not set {missing}")
    return {n: rows_of(scope[n]) for n in NAMES}


def rows_of(result):
    """A client's result as a list of dicts, None for a missing value."""
    kind = type(result).__module__.split(".")[0]
    if kind == "pyarrow":
        return result.to_pylist()
    if kind == "pandas":
        return [
            {k: (None if _is_na(v) else v) for k, v in row.items()}
            for row in result.astype(object).to_dict("records")
        ]
    if kind == "polars":
        return result.to_dicts()
    if kind in ("duckdb", "_duckdb"):
        names = result.columns
        return [dict(zip(names, row)) for row in result.fetchall()]
    raise SystemExit(f"cannot turn a {type(result)} into rows")


def _is_na(v):
    try:
        return v != v  # NaN
    except Exception:  # noqa: BLE001
        return False


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


def check_vkb(got, month_dir, checks):
    manifest = json.loads((month_dir / "manifest.json").read_text())
    rows = got["vkb"]
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


def check_report(got, month_dir, checks):
    manifest = json.loads((month_dir / "manifest.json").read_text())
    files = {f["path"]: f for f in manifest["files"]}
    dims = [d["name"] for d in manifest["structure"]["dimensions"]]
    stem = f"{manifest['report']}-{manifest['month']}"

    # The steward's file: every published cell once.
    all_pq = f"all/{stem}.parquet"
    rows = got["cells"]
    checks.equal("all rows", len(rows), files[all_pq]["rows"])
    checks.equal("all sum", published_sum(rows), files[all_pq]["value_sum"])
    keys = Counter(cell_key(r, dims) for r in rows)
    checks.equal("all cells once", max(keys.values()), 1)
    suppressed = sum(1 for r in rows if r["value"] is None)

    all_csv = f"all/{stem}.csv"
    rows = got["cells_csv"]
    checks.equal("all csv rows", len(rows), files[all_csv]["rows"])
    checks.equal("all csv sum", published_sum(rows), files[all_csv]["value_sum"])
    checks.equal("all csv suppressed", sum(1 for r in rows if r["value"] == "*"), suppressed)

    # Every recipient's table, with the recipient from its folder.
    rows = got["recipients"]
    by = {}
    for r in rows:
        by.setdefault(str(r["recipient"]), []).append(r)
    checks.equal("recipients", sorted(by), sorted(manifest["scopes"]))
    for scope in manifest["scopes"]:
        entry = files[f"parquet/recipient={scope}/{stem}.parquet"]
        mine = by.get(scope, [])
        checks.equal(f"rows of {scope}", len(mine), entry["rows"])
        checks.equal(f"sum of {scope}", published_sum(mine), entry["value_sum"])
        keys = Counter(cell_key(r, dims) for r in mine)
        checks.equal(f"cells of {scope} once", max(keys.values()), 1)
    bund = by.get("bund", [])
    checks.equal("the Bund's table holds only Bund rows", {text(r["level"]) for r in bund}, {"bund"})

    # One recipient's folder alone.
    rd = "rd-SAC"
    rows = got["sac"]
    entry = files[f"parquet/recipient={rd}/{stem}.parquet"]
    checks.equal(f"{rd} alone: rows", len(rows), entry["rows"])
    checks.equal(f"{rd} alone: sum", published_sum(rows), entry["value_sum"])


def main():
    client, readme, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    got = run_recipe(readme, client, out)
    checks = Checks()
    check_vkb(got, out / "vkb/2025-03", checks)
    check_report(got, out / "gefluechtete/2025-03", checks)
    if checks.failed:
        print(f"{client}: {len(checks.failed)} checks failed", file=sys.stderr)
        for f in checks.failed:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print(f"{client}: {checks.passed} checks passed")


if __name__ == "__main__":
    main()
