"""What every reference run shares: the key derivation of shared/spec/inputs.md and the VKB columns."""

import hashlib
import hmac
import sys

# pipelines/vkb.toml no longer keeps the three event dates (it publishes banded durations, which
# the peers do not compute): the peers do a little less work than pseudagg, never more.
KEEP = [
    "rd", "agentur_nr", "ge_nr", "rechtskreis", "kundenprozess", "geschlecht",
    "staatsangehoerigkeit", "profillage", "kooperationsplan", "massnahme", "datenstand",
]


def period_key(key_file: str, purpose: str, month: str) -> bytes:
    master = bytes.fromhex(open(key_file).read().strip())
    info = f"pseudagg:v1:{purpose}:{month}".encode()
    prk = hmac.new(b"\0" * 32, master, hashlib.sha256).digest()  # HKDF extract, empty salt
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()  # HKDF expand, 32 bytes


def pseudonymiser(key: bytes):
    # Pre-keyed HMAC, copied per value: the fastest the standard library allows.
    base = hmac.new(key, digestmod=hashlib.sha256)

    def pseudonym(identifier: str) -> str:
        h = base.copy()
        h.update(identifier.strip().upper().encode())
        return h.hexdigest()

    return pseudonym


def args():
    if len(sys.argv) != 5:
        sys.exit(f"usage: {sys.argv[0]} INPUT.csv OUT_DIR KEY_FILE MONTH")
    return sys.argv[1:]
