#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60): a smoke run in CI, or
# longer by hand (`fuzz/run.sh 3600`, or one target: `fuzz/run.sh 3600 segment`).
# Corpora are seeded from tests/vectors and the shipped configs; what a run
# finds is kept under fuzz/corpus (not committed). A crash stops the run with
# exit 1 and leaves its input in fuzz/artifacts/TARGET/: reproduce it with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…`, fix it, and
# keep the input as a regression test (tests/hostile.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(segment record ingest wire config crcspan)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

# Seeds: segments (after their 16-byte header), their records, the wire
# target's segment mode (a leading 3), configs, syslog lines.
python3 - <<'PY'
import os, glob, struct
root = "tests/vectors"
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
PY

cargo +nightly fuzz build -O --fuzz-dir fuzz
for t in "${targets[@]}"; do
  echo "== fuzz $t: ${secs}s"
  cargo +nightly fuzz run -O --fuzz-dir fuzz "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -seed=1 -rss_limit_mb=2048 -timeout=20 -print_final_stats=1
done
