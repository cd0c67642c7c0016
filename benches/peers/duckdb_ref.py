"""pseudonymise the way it is done with DuckDB: SQL, the HMAC as a Python function."""

import duckdb

from common import KEEP, args, period_key, pseudonymiser

inp, out, key_file, month = args()
pseudonym = pseudonymiser(period_key(key_file, "vkb", month))
con = duckdb.connect()
con.create_function("pseudonym", pseudonym, ["VARCHAR"], "VARCHAR")
cols = ", ".join(KEEP)
con.execute(
    f"""
    COPY (
        SELECT pseudonym(kundennummer) AS pseudonym, {cols},
               CAST(least(greatest(date_diff('year', strptime(geburtsdatum, '%d.%m.%Y'),
                     last_day(DATE '{month}-01')), 15), 65) // 5 * 5 AS VARCHAR) AS altersgruppe
        FROM read_csv('{inp}', delim=';', header=true, all_varchar=true)
        WHERE vkb_kennzeichen = 'J'
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (rd), OVERWRITE_OR_IGNORE)
    """
)
