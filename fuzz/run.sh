#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): a smoke run in CI, or
# longer by hand (`fuzz/run.sh 3600`, or one target: `fuzz/run.sh 3600 segment`).
# Corpora are seeded from crates/logseal-core/tests/vectors and the shipped configs; what a run
# finds is kept under fuzz/corpus (not committed). A crash stops the run with
# exit 1 and leaves its input in fuzz/artifacts/TARGET/: reproduce it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, fix it, and
# keep the input as a regression test (tests/hostile.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(segment record ingest wire config crcspan status)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# Seeds: segments (after their 16-byte header), their records, the wire
# target's segment mode (a leading 3), configs, syslog lines.
python3 - <<'PY'
import os, glob, struct
root = "crates/logseal-core/tests/vectors"
def put(target, name, data):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
for path in glob.glob(os.path.join(root, "**", "*.seg"), recursive=True):
    b = open(path, "rb").read()[16:]
    name = os.path.relpath(path, root).replace(os.sep, "_")
    put("segment", name, b)
    put("wire", name, b"\x03" + b)
    at, i = 0, 0
    while at + 8 <= len(b) and i < 40:
        n = struct.unpack(">I", b[at:at + 4])[0]
        if n < 1 or at + 8 + n > len(b):
            break
        put("record", f"{name}_{i}", b[at + 9:at + 8 + n])
        at, i = at + 8 + n, i + 1
for cfg in ("config/agent.toml", "config/collector.toml"):
    put("config", os.path.basename(cfg), open(cfg, "rb").read())
for i, line in enumerate([
    b"<13>Nov 29 12:00:00 host app[42]: a message\n",
    b"<165>1 2026-11-29T12:00:00.123Z host app 42 ID7 [a@1 k=\"v\"] msg\n",
    b"27 <13>1 - - - - - - counted\n",
    b"\x00<13>\xff\xfebad utf8\n",
]):
    put("ingest", f"line{i}", b"\x20" + line)
put("crcspan", "seed", bytes(range(256)) * 4)
import json
certs = [{"what": "ship.cert", "file": "/etc/logseal/pki/web-01.crt", "until": "2027-12-01T00:00:00Z", "crl": False},
         {"what": "tls.crl", "file": "/etc/logseal/pki/crl.pem", "until": "bad", "error": "unreadable", "crl": True}]
agent = {"time": "2027-01-15T08:00:00Z", "version": "0.2.0", "pid": 1, "running": True, "interval_secs": 5,
         "host": "web-01", "chain": "00" * 16, "heartbeat_secs": 60, "last_seal_time": "2027-01-15T07:59:59Z",
         "unsealed_records": 3, "events": 10, "spool_bytes": 900, "spool_limit_bytes": 1000, "shipping": True,
         "collector_up": False, "last_ack_time": None, "unacknowledged_bytes": 5, "unacknowledged_records": 2,
         "oldest_unacknowledged_time": "2027-01-15T07:00:00Z", "inputs": [{"input": "udp://127.0.0.1:514", "dropped": 4}],
         "journal": {"read": 9, "sent": 9, "lag_seconds": 1200.5}, "certificates": certs}
collector = {"time": "2027-01-15T08:00:00Z", "pid": 1, "running": True, "interval_secs": 10, "quarantined_batches": 1,
             "store": "/var/lib/logseal/store", "certificates": certs,
             "hosts": [{"host": "web\u001b[31m-01", "silent": True, "last_seal_time": "2027-01-15T07:00:00Z",
                        "chains": [{"chain": "ab" * 16, "damaged": "bad-link at seq 7"}]}]}
put("status", "agent", b"\x00" + json.dumps(agent).encode())
put("status", "collector", b"\x02" + json.dumps(collector).encode())
put("status", "head", b"\x01GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: application/openmetrics-text\r\n\r\n")
PY

cargo +nightly fuzz build -O --fuzz-dir fuzz
for t in "${targets[@]}"; do
  echo "== fuzz $t: ${secs}s"
  cargo +nightly fuzz run -O --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -seed=1 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1
done
