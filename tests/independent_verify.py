#!/usr/bin/env python3
"""An independent logseal verifier, written from docs/FORMAT.md alone.

It shares no code with logseal: CRC32C, the segment reader with its
resynchronisation, the record decoder, the hash chain, the verification rules of
section 4 and Ed25519 (RFC 8032 with the rules of section 4.10) are implemented here
from their specifications, using only Python's standard library (hashlib for
SHA-256/SHA-512).

Usage: independent_verify.py [--trust-file F] [--live NOW_NS MAX_AGE_NS]
                             [--store | --no-checkpoints] PATH...
Prints one JSON object: per chain its verdict, its problems as [kind, first, last],
its unverified ranges as [first, last, reason] and its pending tail; exit 0 if the
run passes (section 4.9), 1 if not, 2 on a usage or I/O error. A collector's store
(one directory holding hosts/, checkpoints/, quarantine/, alerts.jsonl or
crl-floor.json, or any directory with --store) is verified as section 7 says: its
checkpoint log first (under "checkpoint_log"), then its chains against the latest
checkpoints; --no-checkpoints reads it as plain files.

Its resynchronisation checksums each candidate frame whole, the plain reading of
section 3: right, but quadratic on a crafted file. It is meant for the test
fixtures, not for hostile input (logseal's own reader is linear).
"""
import hashlib
import json
import os
import struct
import sys

# --- CRC32C (Castagnoli, reflected polynomial 0x82F63B78) -------------------------
_T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

# --- Ed25519 verification (RFC 8032 section 5.1.7, FORMAT.md section 4.10) -------
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, pt):
    acc = IDENTITY
    while s:
        if s & 1:
            acc = _add(acc, pt)
        pt = _add(pt, pt)
        s >>= 1
    return acc


def _encode(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(s):
    """A point from its canonical encoding, or None (non-canonical or not on the curve)."""
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def _small_order(pt):
    return _encode(_mul(8, pt)) == _encode(IDENTITY)


_BY = 4 * pow(5, P - 2, P) % P
BASE = _decode(_BY.to_bytes(32, "little"))


def ed25519_verify(pk, msg, sig):
    A = _decode(pk)
    R = _decode(sig[:32])
    S = int.from_bytes(sig[32:], "little")
    if A is None or R is None or S >= Q or _small_order(A) or _small_order(R):
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + pk + msg).digest(), "little") % Q
    return _encode(_mul(S, BASE)) == _encode(_add(R, _mul(h, A)))


# --- records (FORMAT.md section 1) ------------------------------------------------
class Bad(Exception):
    pass


class Reader:
    def __init__(self, b):
        self.b, self.p = b, 0

    def take(self, n):
        if self.p + n > len(self.b):
            raise Bad("record ends early")
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def i64(self):
        return struct.unpack(">q", self.take(8))[0]

    def bytes_(self):
        return self.take(self.u32())

    def str_(self):
        try:
            return self.bytes_().decode("utf-8")
        except UnicodeDecodeError:
            raise Bad("invalid UTF-8")


def decode_record(b):
    r = Reader(b)
    if r.u8() != 1:
        raise Bad("version")
    kind = r.u8()
    if kind not in (1, 2, 3, 4, 5):
        raise Bad("kind")
    rec = {"kind": kind, "chain": r.take(16), "seq": r.u64(), "time": r.i64()}
    if kind == 1:
        rec["host"], rec["agent"], rec["pk0"] = r.str_(), r.str_(), r.take(32)
        if r.u8() not in (0, 1, 2):
            raise Bad("origin")
        has = r.u8()
        if has == 1:
            rec["pred"] = (r.take(16), r.u64(), r.take(32))
        elif has != 0:
            raise Bad("has_pred")
        r.str_()
    elif kind == 2:
        rec["source"] = r.u8()
        if rec["source"] not in range(1, 9):
            raise Bad("source")
        flags = r.u8()
        if flags & ~0x03:
            raise Bad("flags")
        r.str_()
        if flags & 1:
            r.u64()
        fmt = rec["format"] = r.u8()
        if fmt == 0:
            rec["raw"] = r.bytes_()
        elif fmt == 1:
            for _ in range(r.u32()):
                r.str_()
                r.bytes_()
        else:
            raise Bad("format")
    elif kind == 3:
        rec["epoch"] = r.u64()
        rec["covers"], rec["signer"], rec["next"], rec["sig"] = r.take(32), r.take(32), r.take(32), r.take(64)
    elif kind == 4:
        if r.u8() not in range(1, 9) or r.u8() not in range(1, 6):
            raise Bad("loss enum")
        rec["count"] = r.u64()
        r.i64(), r.i64(), r.str_()
    elif kind == 5:
        ev = r.u8()
        if ev not in (1, 2, 3):
            raise Bad("lifecycle event")
        rec["event"] = ev
        r.str_(), r.u64(), r.str_()
    if r.p != len(b):
        raise Bad("trailing bytes")
    return rec


# --- segments (FORMAT.md section 3) ----------------------------------------------
MAX_FRAME = 16 << 20


def _frame_at(data, p, prefilter):
    """Length of the valid frame at p, or None."""
    if p + 8 > len(data):
        return None
    ln, crc = struct.unpack(">II", data[p:p + 8])
    if not 1 <= ln <= MAX_FRAME or p + 8 + ln > len(data):
        return None
    body = data[p + 8:p + 8 + ln]
    if prefilter:
        if body[0] == 1:
            if ln >= 2 and body[1] != 1:
                return None
        elif body[0] == 2:
            if ln != 58:
                return None
        else:
            return None
    if crc32c(body, crc32c(data[p:p + 4])) != crc:
        return None
    return ln


def items(data):
    """(kind, offset, body) with kind "frame", "damage" or "tail" (FORMAT.md section 3)."""
    p = 16
    while p < len(data):
        ln = _frame_at(data, p, False)
        if ln is not None:
            yield ("frame", p, data[p + 9:p + 8 + ln], data[p + 8])
            p += 8 + ln
            continue
        q = p + 1
        while q < len(data) and _frame_at(data, q, True) is None:
            q += 1
        yield ("damage" if q < len(data) else "tail", p, None, None)
        p = q


def header_ok(data):
    return (len(data) >= 16 and data[:8] == b"LSEALSEG"
            and struct.unpack(">I", data[12:16])[0] == crc32c(data[:12])
            and struct.unpack(">H", data[8:10])[0] == 2
            and struct.unpack(">H", data[10:12])[0] == 0)


# --- verification (FORMAT.md section 4) ------------------------------------------
DUP_WINDOW = 4096
MAX_LISTED = 1000
MAX_U64 = 2**64 - 1


def H(b):
    return hashlib.sha256(b).digest()


def fingerprint(pk):
    return "SHA256:" + H(pk)[:16].hex()


class Chain:
    def __init__(self, cid):
        self.id = cid
        self.host = None
        self.pk0 = None
        self.next = 0
        self.head = bytes(32)
        self.keys = "notyet"   # "notyet" | (key, epoch) | ("unknown", seal_seq, from)
        self.used = {}         # key -> epoch (accepted key chain)
        self.named = {}        # next key named by any seal -> epoch
        self.window = []       # (seq, leaf), last DUP_WINDOW accepted
        self.interval_from = None
        self.interval_records = 0
        self.first = None
        self.last = None
        self.records = 0
        self.seals = 0
        self.last_seal = None
        self.ref_time = None
        self.problems = []
        self.ranges = []
        self.placement = None

    def problem(self, kind, first, last):
        self.problems.append([kind, first, last])

    def range_(self, first, last, why):
        self.ranges.append([first, last, why])


class Verifier:
    def __init__(self, anchors, live, expect=None):
        self.anchors, self.live = anchors, live
        self.chains, self.order, self.cur = {}, [], None
        self.outside = []
        self.claims = []
        self.in_file = 0
        self.placement = None
        # Section 7: chain id -> (seq, head) of its latest checkpoint.
        self.expect = expect or {}
        self.placed = None     # (chain, seq) of the record placed in order last
        self.checkpoints = []  # (chain id, seq, event or None: not format 0)
        self.other_events = 0  # events of another source (no checkpoint log has any)
        self.redacted = 0

    def begin_file(self, placement):
        self.in_file = 0
        self.placement = placement

    def damage(self, kind):
        if self.cur is None:
            self.outside.append(kind)
            return
        c = self.chains[self.cur]
        c.problem(kind, min(c.next, MAX_U64), min(c.next, MAX_U64))
        c.head = None

    def new_chain(self, cid):
        c = Chain(cid)
        self.chains[cid] = c
        self.order.append(cid)
        return c

    def place(self, cid, seq, is_genesis):
        first_in_file = self.in_file == 0
        self.in_file += 1
        started_here = cid not in self.chains
        if self.cur == cid:
            c = self.chains[cid]
        elif cid not in self.chains and is_genesis:
            c = self.new_chain(cid)
        elif first_in_file or self.cur is None:
            if cid in self.chains:
                c = self.chains[cid]
            else:
                c = self.new_chain(cid)
                c.next, c.head, c.unanchored = seq, None, True
        else:
            cur = self.chains[self.cur]
            cur.records += 1
            cur.problem("foreign-chain", seq, seq)
            cur.head = None
            return None
        self.cur = cid
        if (first_in_file or started_here) and self.placement is not None:
            if self.placement[1] != cid.hex() or (c.host is not None and c.host != self.placement[0]):
                c.problem("misfiled", seq, seq)
        return c

    def frame(self, ftype, payload):
        self.placed = None
        self.in_order(ftype, payload)
        if self.placed is None or self.placed[0] not in self.expect:
            return
        cid, seq = self.placed
        want_seq, want_head = self.expect[cid]
        c = self.chains[cid]
        if seq == want_seq and c.head is not None and c.head != want_head:
            c.problem("checkpoint-mismatch", seq, seq)

    def in_order(self, ftype, payload):
        if ftype == 1:
            try:
                rec = decode_record(payload)
            except Bad:
                return self.damage("malformed")
            cid, seq, kind, leaf = rec["chain"], rec["seq"], rec["kind"], H(b"\x00" + payload)
            is_genesis = kind == 1 and seq == 0
        elif ftype == 2 and len(payload) == 57:
            self.redacted += 1
            cid, seq = payload[:16], struct.unpack(">Q", payload[16:24])[0]
            kind, leaf, rec, is_genesis = payload[24], payload[25:57], None, False
        else:
            return self.damage("malformed")
        c = self.place(cid, seq, is_genesis)
        if c is None:
            return
        c.records += 1
        # 4.3 sequence
        if seq < c.next:
            seen = [l for (s, l) in c.window if s == seq]
            if seen and seen[0] == leaf:
                c.problem("duplicate", seq, seq)
            elif seen:
                c.problem("conflict", seq, seq)
                c.head = None
            else:
                c.problem("reorder", seq, seq)
                c.head = None
            return
        if seq > c.next:
            c.problem("gap", c.next, seq - 1)
            c.head = None
        c.next = seq + 1  # may pass 2^64 - 1: nothing is accepted after that
        self.placed = (cid, seq)
        if rec is not None and kind == 2 and rec["source"] == 8:
            self.checkpoints.append((cid, seq, rec.get("raw") if rec["format"] == 0 else None))
        elif rec is not None and kind == 2:
            self.other_events += 1
        c.window.append((seq, leaf))
        if len(c.window) > DUP_WINDOW:
            c.window.pop(0)
        if c.first is None:
            c.first = seq
        c.last = seq
        if c.interval_from is None:
            c.interval_from = seq
        c.interval_records += 1
        # 4.5 by kind
        if rec is None:
            if kind not in (2, 4, 5):
                c.problem("bad-redaction", seq, seq)
                c.head = None
        elif kind == 1:
            if seq != 0:
                c.problem("unexpected-genesis", seq, seq)
                c.head = None
            else:
                c.host, c.pk0 = rec["host"], rec["pk0"]
                c.keys = (rec["pk0"], 0)
                if self.anchors is not None and (rec["host"], rec["pk0"]) not in self.anchors \
                        and (rec["host"], fingerprint(rec["pk0"])) not in self.anchors:
                    c.problem("untrusted-genesis", 0, 0)
                if self.placement is not None and self.placement[0] != rec["host"] \
                        and self.placement[1] == cid.hex():
                    c.problem("misfiled", seq, seq)
                if "pred" in rec:
                    self.claims.append((cid, rec["pred"]))
        elif kind == 3:
            return self.seal(c, seq, rec, payload)
        if c.head is not None:
            c.head = H(b"\x01" + c.head + bytes([kind]) + leaf)

    def seal(self, c, seq, rec, payload):
        c.seals += 1
        interval_from = c.interval_from if c.interval_from is not None else seq
        c.named.setdefault(rec["next"], rec["epoch"] + 1)
        if isinstance(c.keys, tuple) and c.keys[0] == "unknown":
            return
        if c.keys == "notyet":
            key, epoch = rec["signer"], rec["epoch"]
        else:
            key, epoch = c.keys
        fault = None
        if rec["epoch"] != epoch or rec["epoch"] == MAX_U64:
            fault = "epoch-mismatch"
        elif rec["signer"] != key:
            fault = "key-not-in-chain"
        elif not ed25519_verify(key, b"logseal/seal/v1\x00" + payload[:-64], rec["sig"]):
            fault = "bad-signature"
        elif rec["next"] == key or rec["next"] in c.used:
            fault = "key-reused"
        if fault:
            c.problem(fault, seq, seq)
            c.keys = ("unknown", seq, interval_from)
            c.head = None
            return
        unanchored_start = c.pk0 is None and c.last_seal is None
        clean = c.head is not None and not unanchored_start
        if c.head is not None and not unanchored_start and c.head != rec["covers"]:
            c.problem("bad-link", interval_from, seq)
            clean = False
        if not clean and interval_from < seq:
            c.range_(interval_from, seq - 1, "unanchored" if unanchored_start else "problem")
        c.used[key] = epoch
        c.used[rec["next"]] = rec["epoch"] + 1
        c.keys = (rec["next"], rec["epoch"] + 1)
        leaf = H(b"\x00" + payload)
        c.head = H(b"\x01" + rec["covers"] + b"\x03" + leaf)
        c.last_seal = seq
        c.ref_time = rec["time"]
        c.interval_from = None
        c.interval_records = 0

    def finish(self):
        for chain in sorted(self.expect):
            if chain not in self.chains:
                self.outside.append("missing-chain")
        for succ, (pcid, plast, phead) in self.claims:
            if pcid not in self.chains:
                continue  # a warning only
            p = self.chains[pcid]
            if p.last is None or p.last < plast:
                p.problem("pred-cut", (p.last or 0) + 1, plast)
            elif p.last > plast or (p.head is not None and p.head != phead):
                p.problem("pred-mismatch", plast, plast)
        out = []
        for cid in self.order:
            c = self.chains[cid]
            if cid in self.expect and (c.last is None or c.last < self.expect[cid][0]):
                c.problem("checkpoint-cut", 0 if c.last is None else c.last + 1, self.expect[cid][0])
            last = c.last if c.last is not None else 0
            pending = None
            if isinstance(c.keys, tuple) and c.keys[0] == "unknown":
                c.range_(c.keys[2], last, "key-chain-unknown")
            elif c.keys == "notyet":
                c.range_(c.first, last, "unanchored")
            elif c.interval_from is not None:
                c.range_(c.interval_from, last, "unsealed")
                young = (self.live is not None and c.last_seal is not None
                         and abs(self.live[0] - c.ref_time) <= self.live[1])
                if young:
                    pending = [c.interval_from, last]
                else:
                    c.problem("unsealed-tail", c.interval_from, last)
            if c.problems:
                verdict = "broken"
            elif c.pk0 is None:
                verdict = "unanchored"
            elif pending:
                verdict = "pending"
            else:
                verdict = "intact"
            out.append({"chain": cid.hex(), "host": c.host, "verdict": verdict,
                        "records": c.records, "seals": c.seals,
                        "head": c.head.hex() if c.head is not None else None,
                        "problems": c.problems[:MAX_LISTED],
                        "unverified": c.ranges[:MAX_LISTED], "pending": pending,
                        "last_seal": c.last_seal})
        if not out and not self.outside:
            self.outside.append("no-records")
        passed = bool(out) and not self.outside and all(
            ch["verdict"] in ("intact", "pending") for ch in out)
        return passed, {"result": "intact" if passed else "not-intact", "chains": out,
                        "unattributed": self.outside[:MAX_LISTED]}


# --- checkpoints (FORMAT.md section 7) --------------------------------------------
CHECKPOINT_MAGIC = b"logseal/checkpoint/v1\x00"
MAX_CHECKPOINT_ENTRIES = 32768


def decode_checkpoint(b):
    """[(host, chain, seq, head)], strictly: sorted, no chain twice, nothing after."""
    r = Reader(b)
    if r.take(len(CHECKPOINT_MAGIC)) != CHECKPOINT_MAGIC:
        raise Bad("checkpoint magic")
    n = r.u32()
    if n > MAX_CHECKPOINT_ENTRIES:
        raise Bad("checkpoint count")
    entries, seen, prev = [], set(), None
    for _ in range(n):
        host, chain, seq, head = r.str_(), r.take(16), r.u64(), r.take(32)
        key = (host.encode("utf-8"), chain)
        if (prev is not None and key <= prev) or chain in seen:
            raise Bad("checkpoint order")
        prev = key
        seen.add(chain)
        entries.append((host, chain, seq, head))
    if r.p != len(b):
        raise Bad("trailing bytes")
    return entries


FORK_MAGIC = b"logseal/fork/v1\x00"
WITNESS_MAGIC = b"logseal/witness/v1\x00"
MAX_BLOCK = 16 << 10


def valid_seal(b):
    """(chain, seq, epoch, signer) of a seal valid under the key it names (section 7.3)."""
    rec = decode_record(b)
    if rec["kind"] != 3 or rec["epoch"] == MAX_U64 or rec["next"] == rec["signer"]:
        raise Bad("fork: not a valid seal")
    if not ed25519_verify(rec["signer"], b"logseal/seal/v1\x00" + b[:-64], rec["sig"]):
        raise Bad("fork: bad signature")
    return rec["chain"], rec["seq"], rec["epoch"], rec["signer"]


def decode_fork(b):
    """(host, chain, epoch, stored seq, received seq), strictly (section 7.3)."""
    r = Reader(b)
    r.take(len(FORK_MAGIC))
    host, stored, received = r.str_(), r.bytes_(), r.bytes_()
    if r.p != len(b):
        raise Bad("trailing bytes")
    a, c = valid_seal(stored), valid_seal(received)
    if (a[0], a[2], a[3]) != (c[0], c[2], c[3]) or stored == received:
        raise Bad("fork: not two seals of one chain, epoch and key")
    return host, a[0], a[2], a[1], c[1]


def check_block(text):
    """Section 7.1: a witness block's record is a seal of the chain and seq it
    names, valid under its signer."""
    lines = text.split("\n")
    names = ["logseal checkpoint v1", "collector", "genesis", "seal", "time", "record"]
    if "\r" in text or len(lines) < 6 or lines[0] != names[0]:
        raise Bad("block")
    values = []
    for name, line in zip(names[1:], lines[1:6]):
        if not line.startswith(name + " "):
            raise Bad("block field")
        values.append(line[len(name) + 1:])
    if any(l for l in lines[6:]):
        raise Bad("block: text after the record")
    if any(v != v.strip() or not v or any(ord(ch) < 32 or 127 <= ord(ch) <= 159 for ch in v)
           for v in values):
        raise Bad("block: a value with white space or control characters")
    labels = values[0].split(".")
    if len(values[0]) > 253 or not all(
            0 < len(l) <= 63 and l[0] != "-" and l[-1] != "-"
            and all(ch in "abcdefghijklmnopqrstuvwxyz0123456789-" for ch in l) for l in labels):
        raise Bad("block: collector is not a host name in canonical form")
    fp = values[1][len("SHA256:"):]
    if not values[1].startswith("SHA256:") or len(fp) != 32 or not all(
            ch in "0123456789abcdef" for ch in fp):
        raise Bad("block: genesis")
    chain_hex, seq = values[2].split(" ")
    record = bytes.fromhex(values[4])
    if values[4] != record.hex() or not seq or not all(ch in "0123456789" for ch in seq):
        raise Bad("block: hex")
    if len(chain_hex) != 32 or chain_hex != bytes.fromhex(chain_hex).hex():
        raise Bad("block: chain")
    rec = decode_record(record)
    # Only the signature under the signer it names (section 7.1), not the seal rule.
    if rec["kind"] != 3 or not ed25519_verify(
            rec["signer"], b"logseal/seal/v1\x00" + record[:-64], rec["sig"]):
        raise Bad("block: not a seal signed by its signer")
    if (rec["chain"].hex(), rec["seq"]) != (chain_hex, int(seq)):
        raise Bad("block: another seal")


def decode_statement(b):
    """Section 7: a checkpoint (its entries), a fork, or a witnessed block."""
    if b.startswith(FORK_MAGIC):
        return "fork", decode_fork(b)
    if b.startswith(WITNESS_MAGIC):
        r = Reader(b)
        r.take(len(WITNESS_MAGIC))
        block = r.bytes_()
        if r.p != len(b) or len(block) > MAX_BLOCK:
            raise Bad("witness")
        check_block(block.decode("utf-8"))
        return "witness", None
    return "checkpoint", decode_checkpoint(b)


def run_files(v, files):
    for f in files:
        data = open(f, "rb").read()
        if not header_ok(data):
            v.outside.append("bad-segment")
            continue
        v.begin_file(placement(f))
        for kind, _off, payload, ftype in items(data):
            if kind == "frame":
                v.frame(ftype, payload)
            else:
                v.damage("damaged-frame" if kind == "damage" else "truncated-tail")
    return v.finish()


STORE_MARKS = ("hosts", "checkpoints", "quarantine", "alerts.jsonl", "crl-floor.json")


def is_store(d):
    return os.path.isdir(d) and any(os.path.exists(os.path.join(d, m)) for m in STORE_MARKS)


def checkpoint_log(d, anchors, live):
    """Step 1: (the log's report, {chain: (seq, head)} or None when the log is
    absent or not believed, the finding that says why)."""
    none = {"chains": [], "unattributed": []}
    log_dir = os.path.join(d, "checkpoints", "log")
    if os.path.islink(log_dir) or not os.path.isdir(log_dir):
        return none, None, "no-checkpoint-log"
    names = sorted(os.listdir(log_dir), key=os.fsencode)
    # Nothing but regular *.seg files; only those are opened.
    paths = [os.path.join(log_dir, n) for n in names]
    files = [p for p in paths if p.endswith(".seg") and os.path.isfile(p) and not os.path.islink(p)]
    stray = len(files) != len(paths)
    if not files:
        return none, None, "no-checkpoint-log"
    lv = Verifier(anchors, live)
    passed, doc = run_files(lv, files)
    if not doc["chains"]:
        return none, None, "no-checkpoint-log"
    if not passed or stray or lv.redacted or lv.other_events:
        return doc, None, "checkpoint-log-not-believed"
    last_seal = {bytes.fromhex(ch["chain"]): ch["last_seal"] for ch in doc["chains"]}
    latest, forks, seen_forks = {}, [], set()
    for cid, cp_seq, raw in lv.checkpoints:
        if last_seal.get(cid) is None or cp_seq > last_seal[cid]:
            continue  # not covered by an accepted seal: not believed, not checked
        if raw is None:
            return doc, None, "checkpoint-log-not-believed"
        try:
            what, entries = decode_statement(raw)
        except (Bad, ValueError, UnicodeDecodeError):
            return doc, None, "checkpoint-log-not-believed"
        if what == "fork" and entries not in seen_forks:
            seen_forks.add(entries)  # one finding per (host, chain, epoch, seqs)
            forks.append("fork-recorded")
        if what != "checkpoint":
            continue
        for _host, chain, seq, head in entries:
            if chain not in latest or seq > latest[chain][0]:
                latest[chain] = (seq, head)
    doc["unattributed"] += forks
    return doc, latest, None


def verify_store(d, anchors, live):
    """Section 7: the checkpoint log, then the store's chains against it."""
    log, latest, finding = checkpoint_log(d, anchors, live)
    log_chains = log["chains"]
    files = []
    walk(d, files, skip_top=("checkpoints", "quarantine"))
    passed, doc = run_files(Verifier(anchors, live, latest), files)
    for ch in doc["chains"]:
        named = latest is not None and bytes.fromhex(ch["chain"]) in latest
        ch["warnings"] = [] if named or latest is None else ["not-checkpointed"]
    # What the log's own verification found outside its chains counts too.
    doc["unattributed"] += [k for k in log["unattributed"] if k != "no-records"]
    if finding:
        doc["unattributed"].append(finding)
    log_ok = all(ch["verdict"] in ("intact", "pending") for ch in log_chains)
    # (A fork the log records fails the run, the log still believed.)
    passed = passed and finding is None and log_ok and "fork-recorded" not in doc["unattributed"]
    doc["result"] = "intact" if passed else "not-intact"
    doc["checkpoint_log"] = log_chains
    return passed, doc


# --- input (FORMAT.md section 4.1) -----------------------------------------------
NOT_EVIDENCE = {"signer.state", "genesis.record", "journal-cursor", "acked", "alerts.jsonl",
                "status.json", "tip.json", "tips.json", "lock"}


def walk(d, out, skip_top=()):
    for name in sorted(os.listdir(d), key=os.fsencode):
        p = os.path.join(d, name)
        if os.path.islink(p) or name in skip_top:
            continue
        if os.path.isdir(p):
            if name == "quarantine" and os.path.isdir(os.path.join(d, "hosts")):
                continue
            walk(p, out)
        elif os.path.isfile(p):
            if name in NOT_EVIDENCE or (name.startswith(".") and name.endswith(".tmp")):
                continue
            with open(p, "rb") as f:
                magic = f.read(8)
            if magic == b"LSEALSEG" or name.endswith(".seg"):
                out.append(p)


def placement(path):
    parts = os.path.normpath(path).split(os.sep)
    if len(parts) >= 4 and parts[-4] == "hosts":
        return (parts[-3], parts[-2])
    return None


def read_anchors(path):
    anchors = set()
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if not line:
            continue
        host, key = line.split()
        if key.startswith("SHA256:"):
            fp = key[len("SHA256:"):]
            if len(fp) != 32:
                raise ValueError("fingerprint: SHA256: and 32 hex digits")
            anchors.add((host, "SHA256:" + bytes.fromhex(fp).hex()))
        else:
            if len(key) != 64:
                raise ValueError("a genesis key is 64 hex digits")
            anchors.add((host, bytes.fromhex(key)))
    if not anchors:
        raise ValueError("the trust file holds no anchors")
    return anchors


def main(argv):
    anchors, live, paths, store = None, None, [], None
    i = 0
    while i < len(argv):
        if argv[i] in ("--store", "--no-checkpoints"):
            store = argv[i] == "--store"
            i += 1
        elif argv[i] == "--trust-file":
            anchors = read_anchors(argv[i + 1])
            i += 2
        elif argv[i] == "--live":
            live = (int(argv[i + 1]), int(argv[i + 2]))
            i += 3
        else:
            paths.append(argv[i])
            i += 1
    if store is None:
        store = len(paths) == 1 and is_store(paths[0])
    if store:
        if len(paths) != 1 or not os.path.isdir(paths[0]):
            raise ValueError("--store takes one directory")
        passed, doc = verify_store(paths[0], anchors, live)
        print(json.dumps(doc))
        return 0 if passed else 1
    files = []
    for p in paths:
        if os.path.isdir(p):
            before = len(files)
            walk(p, files)
            if len(files) == before:
                raise ValueError("%s: no segment files" % p)
        else:
            if not os.path.isfile(p):
                raise ValueError("%s: not a regular file" % p)
            with open(p, "rb") as f:
                if f.read(8) != b"LSEALSEG" and not p.endswith(".seg"):
                    raise ValueError("%s: not a segment" % p)
            files.append(p)
    passed, doc = run_files(Verifier(anchors, live), files)
    print(json.dumps(doc))
    return 0 if passed else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, ValueError) as e:
        print(json.dumps({"result": "error", "reason": str(e)}))
        sys.exit(2)
