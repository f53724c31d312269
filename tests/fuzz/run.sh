#!/usr/bin/env bash
# Builds one libFuzzer target and runs it for a bounded time on its seed corpus; fails (exit
# status of libFuzzer, non-zero) on a finding, whose input is left in the artifacts directory.
#   tests/fuzz/run.sh fuzz_config|fuzz_stats_http SECONDS [extra libFuzzer flags]
# Environment: NODELAYD_FUZZ_BUILD (default build-fuzz), the build directory (clang-14);
# NODELAYD_FUZZ_PREBUILT=1 skips the build (several targets running at once, built before).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ $# -lt 2 ]]; then
  echo "usage: $0 fuzz_config|fuzz_stats_http SECONDS [libFuzzer flags]" >&2
  exit 2
fi
target="$1"
seconds="$2"
shift 2
seeds="tests/fuzz/corpus/$target"
[[ -d "$seeds" ]] || { echo "fuzz: no corpus $seeds" >&2; exit 2; }
build="${NODELAYD_FUZZ_BUILD:-build-fuzz}"

if [[ "${NODELAYD_FUZZ_PREBUILT:-}" != "1" ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_COMPILER=clang++-14 -DNODELAYD_FUZZ=ON -DNODELAYD_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build" --target "$target"
fi

# New inputs go to a corpus of this build (first directory); the committed seeds stay as they
# are (second directory). Findings go to the artifacts directory.
work="$build/corpus/$target"
artifacts="$build/artifacts/$target"
mkdir -p "$work" "$artifacts"
echo "fuzz: $target for ${seconds}s (corpus $seeds + $work, findings in $artifacts/)" >&2
set +e
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -dict="tests/fuzz/$target.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
  "$@" "$work" "$seeds"
status=$?
set -e
if [[ $status -ne 0 ]]; then
  echo "fuzz: $target FAILED (status $status); reproduce with:" >&2
  for f in "$artifacts"/*; do
    [[ -e "$f" ]] && echo "  $build/tests/fuzz/$target $f" >&2
  done
  exit "$status"
fi
echo "fuzz: $target passed ${seconds}s" >&2
