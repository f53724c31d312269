#!/usr/bin/env bash
# `systemd-analyze verify` must accept systemd/nodelayd.service and nodelayd.socket without
# a single message (it exits 0 on "Unknown key" and similar warnings, so any output fails).
#   tests/service/verify_units.sh NODELAYD_BINARY MANPATH_DIR
# The units name /usr/bin/nodelayd, which exists only once the package is installed: this
# check verifies copies whose ExecStart=/ExecReload= point at the built NODELAYD_BINARY
# (nothing else is changed), with MANPATH at the build's compressed man page so that
# Documentation=man:nodelayd(8) resolves. tests/package/test_deb.sh verifies the units
# as installed by the .deb, unmodified.
set -euo pipefail
binary=${1:?usage: verify_units.sh NODELAYD_BINARY MANPATH_DIR}
manpath=${2:?usage: verify_units.sh NODELAYD_BINARY MANPATH_DIR}
units_dir="$(cd "$(dirname "$0")/../../systemd" && pwd)"

fail() { echo "verify_units: FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"
command -v man >/dev/null || fail "man not found (Debian package man-db): verify checks Documentation=man:"
[[ -x $binary ]] || fail "$binary is not an executable (build the nodelayd target first)"
[[ -f $manpath/man8/nodelayd.8.gz ]] || fail "$manpath/man8/nodelayd.8.gz is missing (build target nodelayd_manpage)"
grep -q '^ExecStart=/usr/bin/nodelayd ' "$units_dir/nodelayd.service" \
  || fail "$units_dir/nodelayd.service: ExecStart= does not start /usr/bin/nodelayd"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$units_dir/nodelayd.service" "$units_dir/nodelayd.socket" "$work/"
sed -i "s|/usr/bin/nodelayd|$binary|g" "$work/nodelayd.service"

set +e
out=$(cd "$work" && MANPATH="$manpath" SYSTEMD_LOG_COLOR=0 SYSTEMD_PAGER=cat \
  timeout 60 systemd-analyze verify "$work/nodelayd.service" "$work/nodelayd.socket" 2>&1)
rc=$?
set -e
[[ -n $out ]] && printf '%s\n' "$out"
[[ $rc -eq 0 ]] || fail "systemd-analyze verify exited $rc"
[[ -z $out ]] || fail "systemd-analyze verify printed messages (above)"
echo "verify_units: systemd-analyze verify: nodelayd.service and nodelayd.socket are clean"
