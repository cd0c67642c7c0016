"""pseudonymise the way it is done with pandas: read, filter, HMAC per row, write per RD."""

import os

import pandas as pd

from common import KEEP, args, period_key, pseudonymiser

inp, out, key_file, month = args()
pseudonym = pseudonymiser(period_key(key_file, "vkb", month))
df = pd.read_csv(inp, sep=";", dtype=str, keep_default_na=False)
df = df[df["vkb_kennzeichen"] == "J"]
result = df[KEEP].copy()
result.insert(0, "pseudonym", df["kundennummer"].map(pseudonym))
born = pd.to_datetime(df["geburtsdatum"], format="%d.%m.%Y")
age = (pd.Timestamp(month + "-01") + pd.offsets.MonthEnd(0) - born).dt.days // 365
result["altersgruppe"] = (age.clip(15, 65) // 5 * 5).astype(str)
os.makedirs(out, exist_ok=True)
result.to_parquet(out, partition_cols=["rd"], compression="zstd", index=False)
