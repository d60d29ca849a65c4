#!/bin/bash
# Runs the README's install blocks as written (those marked
# `<!-- readme-test: package N -->`, in the order of N: the CA, a collector
# host, an agent host, `logseal status`, a certificate rotation) on this
# machine, with the .deb given, as root; then checks what they built: a
# message sent to the installed agent's syslog socket reaches the installed
# collector's store, which verifies. Both roles run on this one machine, and
# collector1.example.org is this machine for the run (a line in /etc/hosts,
# removed after). Where systemd is not PID 1 (a CI container), systemctl is
# packaging/test/systemctl, a stand-in that runs the units' commands as systemd
# would (see there). Called by packaging/check.sh; it purges the package and
# installs it afresh first, and leaves it installed, its services stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() {
    echo "README install blocks FAILED: $*" >&2
    for l in "${SYSTEMCTL_STANDIN_DIR:-/nonexistent}"/*.log; do
        [ -f "$l" ] && { echo "-- $l:"; tail -n 40 "$l"; } >&2
    done
    exit 1
}
[ $# -eq 1 ] && [ -f "$1" ] || fail "usage: $0 PACKAGE.deb"
REPO=$PWD
WORK=$(mktemp -d)
cp "$1" "$WORK/"
if [ ! -d /run/systemd/system ]; then
    export PATH="$REPO/packaging/test:$PATH"
    export SYSTEMCTL_STANDIN_DIR=/run/logseal-readme-systemctl
    rm -rf "$SYSTEMCTL_STANDIN_DIR"
fi

MARK="# logseal readme-install"
unhost() { # /etc/hosts may be a bind mount: rewrite it in place
    grep -v "$MARK\$" /etc/hosts > "$WORK/hosts" || true
    cat "$WORK/hosts" > /etc/hosts
}
cleanup() {
    systemctl stop logseal-agent.service logseal-collector.service || true
    unhost
    rm -rf "$WORK"   # the CA's and the hosts' keys
}
trap cleanup EXIT
if ! getent hosts collector1.example.org >/dev/null; then
    # A last line without its newline would take the marker with it.
    [ -z "$(tail -c 1 /etc/hosts)" ] || echo >> /etc/hosts
    echo "127.0.0.1 collector1.example.org $MARK" >> /etc/hosts
fi

# The blocks, in the order of their N.
python3 - "$REPO/README.md" "$WORK" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().split("\n")
found = {}
for i, l in enumerate(lines):
    m = re.fullmatch(r"<!-- readme-test: package (\d+) -->", l.strip())
    if m and i + 1 < len(lines) and lines[i + 1].strip() == "```sh":
        end = lines.index("```", i + 2)
        n = int(m.group(1))
        assert n not in found, f"two README blocks are package {n}"
        found[n] = "\n".join(lines[i + 2 : end]) + "\n"
assert sorted(found) == list(range(1, len(found) + 1)) and len(found) >= 5, sorted(found)
for n, text in found.items():
    open(f"{sys.argv[2]}/block-{n}.sh", "w").write(text)
EOF

wait_for() { # what, deadline in seconds, command…
    local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { "$@" || true; fail "timed out waiting for $what"; }
        sleep 0.2
    done
}

run_block() {
    echo "-- README install block $1:"
    sed 's/^/   | /' "$WORK/block-$1.sh"
    (cd "$WORK" && bash -e -o pipefail "block-$1.sh") || fail "README install block $1 failed"
}

# As on a fresh machine: no earlier configuration or state. The CA's machine
# has logseal installed; the hosts' blocks install it again (dpkg -i).
dpkg --purge logseal >/dev/null || fail "dpkg --purge logseal"
dpkg -i "$1" >/dev/null || fail "dpkg -i $1"

run_block 1   # the CA
run_block 2   # a collector host
run_block 3   # an agent host
# Not in the README: what a reader would see next, with a deadline.
wait_for "the agent to report healthy (a session with the collector)" 60 \
    logseal status --config /etc/logseal/agent.toml
wait_for "the collector to report healthy" 60 logseal status --config /etc/logseal/collector.toml
run_block 4   # logseal status

# What the blocks built works: a message to the socket unit's UDP port (the
# agent got it from the socket unit, and runs as logseal) reaches the store.
probe="readme-install probe $$ $(date +%s)"
logger --server 127.0.0.1 --port 514 --udp "$probe"
in_store() { logseal inspect /var/lib/logseal/store | grep -F "$1" >/dev/null; }
wait_for "the probe in the collector's store" 60 in_store "$probe"
agent_pid=$(pgrep -xf '/usr/bin/logseal agent --config /etc/logseal/agent.toml') \
    || fail "no agent process running /usr/bin/logseal agent --config /etc/logseal/agent.toml"
agent_user=$(ps -o user= -p "$agent_pid")
[ "$agent_user" = logseal ] || fail "the agent runs as $agent_user, not logseal"

run_block 5   # a certificate rotation, then a reload
wait_for "the agent to report healthy after the reload" 60 \
    logseal status --config /etc/logseal/agent.toml
# The new pair is used from the next connection: make one.
systemctl restart logseal-collector.service
probe2="readme-install after rotation $$"
logger --server 127.0.0.1 --port 514 --udp "$probe2"
wait_for "a message after the rotation in the store" 60 in_store "$probe2"

systemctl stop logseal-agent.service logseal-collector.service
logseal verify /var/lib/logseal/store || fail "the store does not verify after a clean stop"
echo "README install blocks: all passed"
