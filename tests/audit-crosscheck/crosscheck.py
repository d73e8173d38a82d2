#!/usr/bin/env python3
"""Independent verifier for Pliuz audit exports and receipts.

Written from the public specs only (RFC 9162, C2SP signed-note,
C2SP tlog-checkpoint, RFC 8785), sharing no code with the Rust crate:

* tree hashes use the recursive RFC 9162 definition of MTH;
* signatures are checked with the C2SP key-ID rule
  (key ID = SHA-256(name || 0x0A || 0x01 || pubkey)[:4]);
* entries are checked for canonical form by re-encoding them in Python.

Usage:
    crosscheck.py export DIR --keys KEYFILE
    crosscheck.py receipt RECEIPT.json --keys KEYFILE

Exits 0 when everything verifies, 1 with a message otherwise.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014 "


class Failure(Exception):
    pass


# --- RFC 9162 ---------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves: list[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes, RFC 9162 section 2.1.1."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- C2SP signed-note ---------------------------------------------------------


class Key:
    def __init__(self, vkey: str):
        name, key_id, material = vkey.strip().split("+", 2)
        raw = base64.b64decode(material, validate=True)
        if len(raw) != 33 or raw[0] != 1:
            raise Failure(f"unsupported verifier key {vkey!r}")
        computed = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if computed.hex() != key_id.lower():
            raise Failure(
                f"key ID of {vkey!r} does not match (computed {computed.hex()})"
            )
        self.name, self.id = name, computed
        self.public = Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note: str, keys: list[Key]) -> tuple[str, list[Key]]:
    """Returns (text, keys that signed); raises unless a known key signed."""
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise Failure("malformed note")
    text, sigs = note[: split + 1], note[split + 2 :]
    signers = []
    for line in sigs.splitlines():
        if not line.startswith(EM_DASH):
            raise Failure(f"malformed signature line {line!r}")
        name, b64 = line[len(EM_DASH) :].split(" ", 1)
        blob = base64.b64decode(b64, validate=True)
        for k in keys:
            if k.name == name and k.id == blob[:4]:
                try:
                    k.public.verify(blob[4:], text.encode())
                except InvalidSignature:
                    raise Failure(f"bad signature by {name}+{blob[:4].hex()}") from None
                signers.append(k)
    if not signers:
        raise Failure("no signature from a trusted key")
    return text, signers


def open_checkpoint(note: str, keys: list[Key]) -> tuple[str, int, bytes]:
    text, signers = open_note(note, keys)
    lines = text.split("\n")
    if len(lines) != 4 or lines[3] != "":
        raise Failure("checkpoint body must be origin, size, root")
    origin, size, root = (
        lines[0],
        int(lines[1]),
        base64.b64decode(lines[2], validate=True),
    )
    if str(size) != lines[1] or len(root) != 32:
        raise Failure("malformed checkpoint")
    if not any(k.name == origin for k in signers):
        raise Failure(f"checkpoint not signed by a key named {origin!r}")
    return origin, size, root


# --- RFC 8785 canonical JSON ---------------------------------------------------


def jcs_number(x) -> str:
    if isinstance(x, bool):
        raise Failure("bool is not a number")
    if isinstance(x, int) and abs(x) < 2**53:
        return str(x)
    f = float(x)
    if not math.isfinite(f):
        raise Failure("non-finite number")
    if f == 0:
        return "0"
    # ECMAScript Number.prototype.toString: Python's repr gives the same
    # shortest round-trip digits; only the layout differs.
    sign = "-" if f < 0 else ""
    mant, _, exp = repr(abs(f)).partition("e")
    ip, _, fp = mant.partition(".")
    all_digits = ip + fp
    stripped = all_digits.lstrip("0")
    n = len(ip) + (int(exp) if exp else 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    return (
        sign
        + digits[0]
        + ("." + digits[1:] if k > 1 else "")
        + "e"
        + ("+" if e >= 0 else "-")
        + str(abs(e))
    )


def jcs_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\f\n\r\t":
            out.append(
                {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch]
            )
        elif o < 0x20:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(v) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return jcs_number(v)
    if isinstance(v, str):
        return jcs_string(v)
    if isinstance(v, list):
        return "[" + ",".join(jcs(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(jcs_string(k) + ":" + jcs(x) for k, x in items) + "}"
    raise Failure(f"unexpected JSON value {v!r}")


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Failure(f"duplicate key {k!r}")
        d[k] = v
    return d


def check_entry(raw: bytes, position: int) -> dict:
    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise Failure(f"entry {position}: not JSON ({e})") from None
    if (
        not isinstance(obj, dict)
        or not {"index", "time", "type", "actor", "data"} <= obj.keys()
        or not obj.keys() <= {"index", "time", "type", "actor", "data", "approval_id"}
    ):
        raise Failure(f"entry {position}: wrong fields")
    if jcs(obj).encode() != raw:
        raise Failure(f"entry {position}: not canonical JSON")
    if obj["index"] != position:
        raise Failure(f"entry {position}: index field says {obj['index']}")
    return obj


# --- commands -------------------------------------------------------------------


def load_keys(path: str) -> list[Key]:
    with open(path, encoding="utf-8") as f:
        return [Key(line) for line in f if line.strip() and not line.startswith("#")]


def verify_export(d: str, keys: list[Key]) -> str:
    with open(os.path.join(d, "entries.jsonl"), "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    leaves = []
    for i, raw in enumerate(lines):
        check_entry(raw, i)
        leaves.append(leaf_hash(raw))
    cps = sorted(int(n) for n in os.listdir(os.path.join(d, "checkpoints")))
    if not cps:
        raise Failure("no checkpoints")
    origins = set()
    for size in cps:
        with open(os.path.join(d, "checkpoints", str(size)), encoding="utf-8") as f:
            try:
                origin, csize, root = open_checkpoint(f.read(), keys)
            except Failure as e:
                raise Failure(f"checkpoint {size}: {e}") from None
        origins.add(origin)
        if csize != size:
            raise Failure(f"checkpoint {size}: body says size {csize}")
        if size > len(leaves):
            raise Failure(
                f"checkpoint {size}: export has only {len(leaves)} entries (truncated)"
            )
        if mth(leaves[:size]) != root:
            raise Failure(f"checkpoint {size}: root hash does not match entries")
    if len(origins) != 1:
        raise Failure(f"checkpoints name several origins: {sorted(origins)}")
    return f"export OK: {len(leaves)} entries, {len(cps)} checkpoints, origin {origins.pop()}"


def verify_receipt(path: str, keys: list[Key]) -> str:
    with open(path, encoding="utf-8") as f:
        r = json.load(f)
    if r.get("format") != "pliuz-receipt/v1":
        raise Failure("unknown receipt format")
    origin, size, root = open_checkpoint(r["checkpoint"], keys)
    if origin != r["origin"] or size != r["tree_size"]:
        raise Failure("receipt origin/tree_size differ from its checkpoint")
    if not r["entries"]:
        raise Failure("receipt has no entries")
    for e in r["entries"]:
        raw = e["entry"].encode("utf-8")
        obj = check_entry(raw, e["index"])
        if obj.get("approval_id") != r["approval_id"]:
            raise Failure(f"entry {e['index']}: belongs to another approval")
        proof = [base64.b64decode(p, validate=True) for p in e["inclusion_proof"]]
        if not verify_inclusion(e["index"], size, leaf_hash(raw), proof, root):
            raise Failure(f"entry {e['index']}: inclusion proof does not verify")
    return f"receipt OK: {len(r['entries'])} entries of {r['approval_id']} in tree of size {size}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=["export", "receipt"])
    ap.add_argument("path")
    ap.add_argument(
        "--keys", required=True, help="file with trusted verifier keys, one per line"
    )
    args = ap.parse_args(argv)
    try:
        keys = load_keys(args.keys)
        msg = (
            verify_export(args.path, keys)
            if args.what == "export"
            else verify_receipt(args.path, keys)
        )
    except (Failure, OSError, ValueError, KeyError, TypeError) as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    print(msg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
