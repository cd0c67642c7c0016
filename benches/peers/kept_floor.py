"""The floor of pseudonymise: polars reads the extract and writes only what pipelines/vkb.toml
publishes, untransformed, per RD, as zstd Parquet.

It reads the columns pseudagg reads to make the output (the kept ones, the identifier, the birth
date and the three event dates, and the flag) and writes the kept ones, the identifier and the
four dates as they are, partitioned by `rd`: the same bytes in and about the same bytes out, with
no checking, no HMAC, no banding and no k-anonymity. So it is a lower bound for the same I/O.
Python polars reads and writes on every core.

    python3 kept_floor.py INPUT.csv|INPUT.parquet OUT_DIR
"""

import sys

import polars as pl

from common import KEEP

inp, out = sys.argv[1], sys.argv[2]
DATES = ["geburtsdatum", "zugang_datum", "letzter_kontakt_datum", "vkb_bewertung_datum"]
columns = [*KEEP, "kundennummer", *DATES]
scan = (
    pl.scan_parquet(inp)
    if inp.endswith(".parquet")
    else pl.scan_csv(inp, separator=";", infer_schema=False)
)
# The CSV is read untyped (the flag is `J`/`N`); the Parquet extract holds the flag as a boolean.
flag = pl.col("vkb_kennzeichen")
flagged = flag if scan.collect_schema()["vkb_kennzeichen"] == pl.Boolean else flag == "J"
df = scan.filter(flagged).select(columns).collect()
df.write_parquet(out, compression="zstd", partition_by="rd")
