"""The I/O floor: polars reads the CSV and writes it as Parquet, with no transform at all."""

import sys

import polars as pl

inp, out = sys.argv[1], sys.argv[2]
pl.scan_csv(inp, separator=";", infer_schema=False).sink_parquet(out, compression="zstd")
