#!/usr/bin/env python3
"""An independent logseal verifier, written from docs/FORMAT.md alone.

It shares no code with logseal: CRC32C, the record decoder, the hash chain and
Ed25519 (RFC 8032, section 5.1.7) are implemented here from their specifications,
using only Python's standard library (hashlib for SHA-256/SHA-512).

Usage: independent_verify.py FILE...   prints one JSON object; exit 0 intact, 1 not.
It checks what FORMAT.md section 4 requires of an intact chain and stops a chain at
its first problem (it does not classify problems like logseal does).
"""
import hashlib
import json
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

# --- Ed25519 verification (RFC 8032) ----------------------------------------------
P = 2**255 - 19
Q = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


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
    acc = (0, 1, 1, 0)
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


_BY = 4 * pow(5, P - 2, P) % P
BASE = _decode(_BY.to_bytes(32, "little"))


def ed25519_verify(pk, msg, sig):
    A = _decode(pk)
    R = _decode(sig[:32])
    S = int.from_bytes(sig[32:], "little")
    if A is None or R is None or S >= Q:
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
        return self.bytes_().decode("utf-8")  # raises on invalid UTF-8


def decode_record(b):
    r = Reader(b)
    if r.u8() != 1:
        raise Bad("version")
    kind = r.u8()
    rec = {"kind": kind, "chain": r.take(16), "seq": r.u64(), "time": r.i64()}
    if kind == 1:
        rec["host"], rec["agent"], rec["pk0"] = r.str_(), r.str_(), r.take(32)
        if r.u8() not in (0, 1, 2):
            raise Bad("origin")
        has = r.u8()
        if has == 1:
            r.take(16 + 8 + 32)
        elif has != 0:
            raise Bad("has_pred")
        r.str_()
    elif kind == 2:
        if r.u8() not in range(1, 8):
            raise Bad("source")
        flags = r.u8()
        if flags & ~0x03:
            raise Bad("flags")
        r.str_()
        if flags & 1:
            r.u64()
        fmt = r.u8()
        if fmt == 0:
            r.bytes_()
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
        if r.u8() not in range(1, 8) or r.u8() not in range(1, 5):
            raise Bad("loss enum")
        r.u64(), r.i64(), r.i64(), r.str_()
    elif kind == 5:
        if r.u8() not in (1, 2, 3):
            raise Bad("lifecycle event")
        r.str_(), r.u64(), r.str_()
    else:
        raise Bad("kind")
    if r.p != len(b):
        raise Bad("trailing bytes")
    return rec


# --- segments (FORMAT.md section 3) and the chain (sections 2, 4) ---------------
def frames(path):
    data = open(path, "rb").read()
    if data[:8] != b"LSEALSEG" or struct.unpack(">I", data[12:16])[0] != crc32c(data[:12]):
        raise Bad("bad segment header")
    if struct.unpack(">H", data[8:10])[0] != 1:
        raise Bad("segment version")
    p = 16
    while p < len(data):
        if p + 8 > len(data):
            raise Bad("torn tail at %d" % p)
        ln, crc = struct.unpack(">II", data[p:p + 8])
        body = data[p + 8:p + 8 + ln]
        if not 1 <= ln <= 16 << 20 or len(body) != ln or crc32c(body, crc32c(data[p:p + 4])) != crc:
            raise Bad("bad frame at %d" % p)
        yield body
        p += 8 + ln


def verify(paths):
    chains, order, cur = {}, [], None
    for path in paths:
        for body in frames(path):
            if body[0] == 1:
                payload = body[1:]
                rec = decode_record(payload)
                cid, seq, kind = rec["chain"], rec["seq"], rec["kind"]
                leaf = hashlib.sha256(b"\x00" + payload).digest()
            elif body[0] == 2 and len(body) == 58:
                cid, seq, kind, leaf, rec = body[1:17], struct.unpack(">Q", body[17:25])[0], body[25], body[26:58], None
                if kind not in (2, 4, 5):
                    raise Bad("redacted %d record" % kind)
            else:
                raise Bad("frame type")
            if cid not in chains:
                if kind != 1 or seq != 0:
                    raise Bad("chain does not start with its genesis")
                chains[cid] = c = {"next": 0, "head": bytes(32), "key": rec["pk0"], "epoch": 0,
                                   "records": 0, "seals": 0, "unsealed": 0, "host": rec["host"]}
                order.append(cid)
                cur = cid
            elif cid != cur:
                raise Bad("foreign record")
            c = chains[cid]
            if seq != c["next"]:
                raise Bad("seq %d where %d expected" % (seq, c["next"]))
            if kind == 3:
                if rec["epoch"] != c["epoch"] or rec["signer"] != c["key"]:
                    raise Bad("key chain broken at seq %d" % seq)
                if not ed25519_verify(rec["signer"], b"logseal/seal/v1\x00" + payload[:-64], rec["sig"]):
                    raise Bad("bad signature at seq %d" % seq)
                if rec["covers"] != c["head"]:
                    raise Bad("bad link at seal %d" % seq)
                c["key"], c["epoch"], c["seals"], c["unsealed"] = rec["next"], c["epoch"] + 1, c["seals"] + 1, 0
            elif kind == 1 and seq != 0:
                raise Bad("genesis at seq %d" % seq)
            else:
                c["unsealed"] += 1
            c["head"] = hashlib.sha256(b"\x01" + c["head"] + leaf).digest()
            c["next"] += 1
            c["records"] += 1
    out = []
    for cid in order:
        c = chains[cid]
        if c["unsealed"]:
            raise Bad("unsealed tail of %d records" % c["unsealed"])
        out.append({"chain": cid.hex(), "host": c["host"], "records": c["records"],
                    "seals": c["seals"], "head": c["head"].hex()})
    return out


if __name__ == "__main__":
    try:
        print(json.dumps({"result": "intact", "chains": verify(sys.argv[1:])}))
        sys.exit(0)
    except (Bad, UnicodeDecodeError) as e:
        print(json.dumps({"result": "integrity-failure", "reason": str(e)}))
        sys.exit(1)
