"""pseudonymise the way it is done with Python polars: lazy CSV scan, HMAC in a Python UDF."""

import polars as pl

from common import KEEP, args, period_key, pseudonymiser

inp, out, key_file, month = args()
pseudonym = pseudonymiser(period_key(key_file, "vkb", month))
end = pl.lit(month + "-01").str.to_date().dt.month_end()
df = (
    pl.scan_csv(inp, separator=";", infer_schema=False)
    .filter(pl.col("vkb_kennzeichen") == "J")
    .select(
        pl.col("kundennummer").map_elements(pseudonym, return_dtype=pl.String).alias("pseudonym"),
        *KEEP,
        ((end - pl.col("geburtsdatum").str.to_date("%d.%m.%Y")).dt.total_days() // 365)
        .clip(15, 65)
        .floordiv(5)
        .mul(5)
        .cast(pl.String)
        .alias("altersgruppe"),
    )
    .collect()
)
df.write_parquet(out, compression="zstd", partition_by="rd")
