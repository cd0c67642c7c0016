"""The gefluechtete report the way it is done with Python polars: the peer of `pseudagg report`.

    python polars_report.py OPDS.parquet MONTH OUT.parquet

Lazy scan of the Parquet extract with projection pushdown (the columns pipelines/gefluechtete.toml
counts by), the population, the categories and indicators of the definition, counts per gE, the RD
sums and the Bund, each origin's total, and primary suppression only (1 and 2 become null): one
long Parquet table of every cell. No secondary suppression, no audit, no per-recipient files, no
cell-by-cell checks of the input: it does less than pseudagg, never more.
"""

import sys

import polars as pl

inp, month, out = sys.argv[1:4]
ASYL = ["AFG", "ERI", "IRQ", "IRN", "NGA", "PAK", "SOM", "SYR"]
end = pl.lit(month + "-01").str.to_date().dt.month_end()
six_weeks = end - pl.duration(weeks=6)
flags = {
    "bestand": pl.lit(True),
    "ik_abgeschlossen": pl.col("integrationskurs") == "abgeschlossen",
    "ik_abgeschlossen_ohne_beratung_6w": (pl.col("integrationskurs") == "abgeschlossen")
    & ~(pl.col("letztes_beratungsgespraech") > six_weeks).fill_null(False),
    "sv_beschaeftigt": pl.col("beschaeftigung") == "sv_pflichtig",
    "geringfuegig": pl.col("beschaeftigung") == "geringfuegig",
    "berufssprachkurs": pl.col("massnahme") == "Berufssprachkurs",
    "kooperationsplan": pl.col("kooperationsplan"),
}
people = (
    pl.scan_parquet(inp)
    .filter(pl.col("elb") & pl.col("staatsangehoerigkeit").is_in(["UKR", *ASYL]))
    .with_columns(
        herkunft=pl.when(pl.col("staatsangehoerigkeit") == "UKR")
        .then(pl.lit("Ukraine"))
        .otherwise(pl.lit("Asylherkunftslaender")),
        **{k: v.fill_null(False).cast(pl.Int64) for k, v in flags.items()},
    )
)
per_ge = people.group_by("rd", "ge_nr", "herkunft").agg(pl.col(list(flags)).sum())
per_ge = pl.concat([per_ge, per_ge.group_by("rd", "ge_nr").agg(pl.col(list(flags)).sum())
                    .with_columns(herkunft=pl.lit("Insgesamt"))], how="diagonal")
levels = [
    per_ge.with_columns(level=pl.lit("ge")),
    per_ge.group_by("rd", "herkunft").agg(pl.col(list(flags)).sum()).with_columns(level=pl.lit("rd")),
    per_ge.group_by("herkunft").agg(pl.col(list(flags)).sum()).with_columns(level=pl.lit("bund")),
]
cells = (
    pl.concat(levels, how="diagonal")
    .unpivot(index=["level", "rd", "ge_nr", "herkunft"], on=list(flags), variable_name="indicator")
    .with_columns(value=pl.when(pl.col("value").is_between(1, 2)).then(None).otherwise(pl.col("value")))
    .collect()
)
cells.write_parquet(out, compression="zstd")
print(f"{cells.height} cells, {cells['value'].null_count()} suppressed")
