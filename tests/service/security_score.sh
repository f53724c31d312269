#!/usr/bin/env bash
# The service's sandbox: `systemd-analyze security --offline=yes` must rate
# systemd/nodelayd.service at MAX (default 2.0) or lower ("OK" is below 4.0 in systemd's own
# words; issue 4 asks for 2.0). Prints the score and the settings that still cost exposure.
#   tests/service/security_score.sh [MAX]
set -euo pipefail
max=${1:-2.0}
unit="$(cd "$(dirname "$0")/../../systemd" && pwd)/nodelayd.service"

fail() { echo "security_score: FAIL: $*" >&2; exit 1; }
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (Debian package systemd)"

set +e
out=$(SYSTEMD_LOG_COLOR=0 SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 \
  timeout 60 systemd-analyze security --offline=yes --no-pager "$unit" 2>&1)
rc=$?
set -e
# The settings that cost exposure (lines marked ✗), then the overall verdict.
grep '✗' <<<"$out" || true
line=$(grep 'Overall exposure level' <<<"$out" || true)
[[ -n $line ]] || { printf '%s\n' "$out"; fail "no 'Overall exposure level' line (exit $rc)"; }
score=$(sed -E 's/.*Overall exposure level for [^:]*: ([0-9]+\.[0-9]+).*/\1/' <<<"$line")
[[ $score =~ ^[0-9]+\.[0-9]+$ ]] || fail "cannot parse the score from: $line"
echo "security_score: $line"
echo "security_score: exposure $score (must be <= $max)"
awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }' \
  || fail "exposure level $score is above $max"
