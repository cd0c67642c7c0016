#!/usr/bin/env python3
"""Recomputes pseudagg's fixed pseudonym vectors with Python's standard library only.

This is how a data owner recomputes a pseudonym without pseudagg (shared/spec/inputs.md):
period key = HKDF-SHA256(master key, salt empty, info "pseudagg:v1:{purpose}:{YYYY-MM}", 32 bytes),
pseudonym  = hex(HMAC-SHA256(period key, identifier.strip().upper())).
"""
import hashlib
import hmac
import sys


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    prk = hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def pseudonym(master: bytes, purpose: str, month: str, identifier: str) -> str:
    period = hkdf_sha256(master, f"pseudagg:v1:{purpose}:{month}".encode())
    return hmac.new(period, identifier.strip().upper().encode(), hashlib.sha256).hexdigest()


def key_id(master: bytes) -> str:
    return hashlib.sha256(master).hexdigest()[:16]


if __name__ == "__main__":
    if len(sys.argv) == 5:
        # pseudonym_vector.py KEYFILE PURPOSE MONTH IDENTIFIER
        master = bytes.fromhex(open(sys.argv[1]).read().strip())
        print(pseudonym(master, sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        master = bytes(range(32))
        print("key id      ", key_id(master))
        print("vkb  2025-03", pseudonym(master, "vkb", "2025-03", "325D123456"))
        print("vkb  2025-04", pseudonym(master, "vkb", "2025-04", "325D123456"))
        print("opds 2025-03", pseudonym(master, "opds", "2025-03", "325D123456"))
