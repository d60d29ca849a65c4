#!/bin/bash
# Builds the .deb and the .rpm and checks them: lintian, systemd-analyze verify,
# install / upgrade / remove / purge with dpkg, the rpm's metadata and an
# installation into a scratch root. Run by .ci/run as root on Debian; it
# installs and removes the package on the machine it runs on.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "== packaging: $*"; }
fail() { echo "packaging check FAILED: $*" >&2; exit 1; }
# A grep at the end of a pipe reads all its input (no -q): with pipefail, a
# grep -q that stops at its first match can kill the writer with SIGPIPE and
# fail the pipe although the line was there.

export PATH="$HOME/.cargo/bin:$PATH"
# Pinned: the versions these checks were written against.
command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
command -v cargo-generate-rpm >/dev/null || cargo install --locked cargo-generate-rpm@0.21.1

step "build, man pages"
# The packaged config reads the journal: the package is built with its input.
cargo build --release --features journald
target/release/logseal --version | grep "journald input built in" >/dev/null \
  || fail "the binary to package was built without the journald input"
# The packaged binary carries no test fault hooks (feature `fault-injection`):
# a crash point named in the environment is never reached.
scratch=$(mktemp -d)
echo probe | LOGSEAL_CRASH_AT=genesis.state-durable LOGSEAL_FSYNC_FAIL=1 \
  target/release/logseal stamp --state "$scratch/state" --out "$scratch/x.seg" --host probe \
  2>/dev/null || fail "the release binary obeys LOGSEAL_CRASH_AT (fault hooks compiled in)"
rm -rf "$scratch"
rm -rf target/man
target/release/logseal man --out target/man
gzip -9n target/man/*.1
ls target/man | grep '^logseal-agent.1.gz$' >/dev/null || fail "no logseal-agent man page"

step "cargo deb"
rm -rf target/debian
cargo deb --no-build --strip
DEB=$(ls target/debian/logseal_*.deb)
dpkg-deb --info "$DEB"
dpkg-deb --contents "$DEB"

step "lintian"
lintian --fail-on error,warning --info "$DEB"

step "dpkg -i"
dpkg -i "$DEB"
/usr/bin/logseal --version | grep "^logseal " >/dev/null || fail "logseal --version"
getent passwd logseal >/dev/null || fail "no logseal user"
id -nG logseal | grep -w systemd-journal >/dev/null || fail "logseal is not in group systemd-journal"
check_mode() { # path mode owner:group
    local got
    got=$(stat -c '%a %U:%G' "$1")
    [ "$got" = "$2 $3" ] || fail "$1: expected $2 $3, got $got"
}
check_mode /usr/bin/logseal 755 root:root
check_mode /etc/logseal 750 root:logseal
check_mode /etc/logseal/agent.toml 640 root:logseal
check_mode /etc/logseal/collector.toml 640 root:logseal
check_mode /var/lib/logseal 750 logseal:logseal
check_mode /run/logseal 755 logseal:logseal
for f in /lib/systemd/system/logseal-agent.service /lib/systemd/system/logseal-agent.socket \
         /lib/systemd/system/logseal-collector.service /usr/lib/sysusers.d/logseal.conf \
         /usr/lib/tmpfiles.d/logseal.conf /usr/share/man/man1/logseal.1.gz; do
    [ -f "$f" ] || fail "$f missing"
done
# The packaged alert rules (read from the .deb: a container's dpkg may be set
# to skip /usr/share/doc) are the tested ones, and pass their tests.
EX=$(mktemp -d)
dpkg-deb -x "$DEB" "$EX"
(cd "$EX/usr/share/doc/logseal/examples/prometheus" && promtool test rules logseal.rules.test.yml \
    && [ -f logseal.dashboard.json ] && [ -f prometheus.example.yml ] \
    && [ -f ../rsyslog-logseal-tcp.conf ] && [ -f ../rsyslog-logseal-tls.conf ] \
    && [ -f ../syslog-ng-logseal.conf ]) \
    || fail "the packaged examples (forwarding snippets, Prometheus rules and their tests, dashboard) are missing or fail"
rm -rf "$EX"
for c in agent collector; do
    grep -qx "/etc/logseal/$c.toml" /var/lib/dpkg/info/logseal.conffiles || fail "$c.toml is not a conffile"
done
/usr/bin/logseal agent --check-config /etc/logseal/agent.toml

step "systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/logseal-agent.service \
    /lib/systemd/system/logseal-agent.socket /lib/systemd/system/logseal-collector.service

step "the README's install blocks, as written (packaging/readme-install.sh)"
bash packaging/readme-install.sh "$DEB"

step "upgrade keeps state"
mkdir -p /var/lib/logseal/agent/spool
echo evidence > /var/lib/logseal/agent/spool/marker
dpkg -i "$DEB"
[ -f /var/lib/logseal/agent/spool/marker ] || fail "upgrade lost the state"

step "dpkg -r keeps state and configs"
dpkg -r logseal 2>&1 | tee target/debian/remove.log
[ ! -e /usr/bin/logseal ] || fail "binary left after remove"
[ -f /var/lib/logseal/agent/spool/marker ] || fail "remove lost the state"
[ -f /etc/logseal/agent.toml ] || fail "remove deleted the config"
grep -q "keeping /var/lib/logseal" target/debian/remove.log || fail "remove did not say it keeps the state"

step "dpkg --purge deletes them, saying so"
dpkg --purge logseal 2>&1 | tee target/debian/purge.log
[ ! -e /var/lib/logseal ] || fail "/var/lib/logseal left after purge"
[ ! -e /etc/logseal ] || fail "/etc/logseal left after purge"
grep -q "purge deletes /var/lib/logseal" target/debian/purge.log || fail "purge did not say what it deletes"

step "cargo generate-rpm"
rm -rf target/generate-rpm target/rpm
mkdir -p target/rpm
strip -o target/rpm/logseal target/release/logseal
cargo generate-rpm
RPM=$(ls target/generate-rpm/logseal-*.rpm)
rpm -qpi "$RPM"
rpm -qp --scripts "$RPM" | grep systemd-sysusers >/dev/null || fail "rpm %post does not create the user"
rpm -qpl "$RPM" | tee target/generate-rpm/files.txt
grep -qx /usr/bin/logseal target/generate-rpm/files.txt || fail "rpm lacks /usr/bin/logseal"
rpm -qpc "$RPM" > target/generate-rpm/config.txt
for c in agent collector; do
    grep -qx "/etc/logseal/$c.toml" target/generate-rpm/config.txt || fail "$c.toml is not an rpm config file"
done
rpm -K "$RPM"
ROOT=$(mktemp -d)
rpm -i --root "$ROOT" --nodeps --noscripts "$RPM"
"$ROOT/usr/bin/logseal" --version | grep "^logseal " >/dev/null || fail "logseal from the rpm root"
[ -f "$ROOT/usr/lib/systemd/system/logseal-collector.service" ] || fail "rpm root lacks the collector unit"
[ -f "$ROOT/usr/share/doc/logseal/examples/prometheus/logseal.rules.yml" ] || fail "rpm root lacks the alert rules"
rm -rf "$ROOT"
step "all packaging checks passed"
