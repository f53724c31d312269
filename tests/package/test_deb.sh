#!/usr/bin/env bash
# Builds the nodelayd .deb, installs it with dpkg, checks what it installed, runs the
# installed binary on the installed configuration, verifies the installed unit, then purges
# the package and checks that nothing is left: the machine ends as it was found.
#
#   tests/package/test_deb.sh                    configure and build the source tree in a
#                                                temporary directory (Release, tests off,
#                                                prefix /usr), then cpack there
#   tests/package/test_deb.sh --build-dir DIR    package an existing, built build tree with
#                                                cpack (what ctest does: no second compile)
#
# Both give the same package: its install prefix is /usr whatever the build's
# CMAKE_INSTALL_PREFIX, because every destination is resolved at install time (see
# cmake/install.cmake). Needs root (dpkg -i), dpkg-dev (dpkg-shlibdeps), systemd
# (systemd-analyze) and man-db; fails, never skips, when something is missing.
set -euo pipefail

src="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir=""
case "${1:-}" in
--build-dir) build_dir="$(cd "${2:?--build-dir needs a directory}" && pwd)" ;;
"") ;;
*) echo "usage: $0 [--build-dir DIR]" >&2; exit 2 ;;
esac

step() { echo "test_deb: $*"; }
fail() { echo "test_deb: FAIL: $*" >&2; exit 1; }

# ---- Preconditions: never touch a machine where nodelayd is already installed. ----------
[[ $(id -u) -eq 0 ]] || fail "must run as root: it installs the package with dpkg -i and purges it (CI runs as root; locally: sudo ctest -L service)"
for tool in dpkg dpkg-deb dpkg-query dpkg-shlibdeps cpack cmake systemd-analyze man timeout; do
  command -v "$tool" >/dev/null || fail "$tool not found (scripts/install-deps installs dpkg-dev, systemd, man-db)"
done
if dpkg-query -W -f='${Status}' nodelayd 2>/dev/null | grep -qv 'not-installed'; then
  fail "package nodelayd is already known to dpkg ($(dpkg-query -W -f='${Status}' nodelayd)); this test would replace and purge it: remove it first (dpkg --purge nodelayd)"
fi
for path in /usr/bin/nodelayd /etc/nodelayd /usr/lib/systemd/system/nodelayd.service \
            /usr/lib/systemd/system/nodelayd.socket /usr/share/man/man8/nodelayd.8.gz \
            /usr/share/doc/nodelayd; do
  [[ ! -e $path ]] || fail "$path exists already; this test would overwrite and then remove it"
done

work=$(mktemp -d /tmp/nodelayd-deb.XXXXXX)
installed=0
cleanup() {
  local rc=$?
  if [[ $installed -eq 1 ]]; then
    echo "test_deb: cleaning up: dpkg --purge nodelayd" >&2
    timeout 120 dpkg --purge nodelayd >/dev/null 2>&1 || echo "test_deb: WARNING: dpkg --purge nodelayd failed: remove it by hand" >&2
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT

# ---- Build the package. ----------------------------------------------------------------
if [[ -z $build_dir ]]; then
  build_dir="$work/build"
  step "configuring and building $src in $build_dir (Release, tests off, prefix /usr)"
  timeout 300 cmake -S "$src" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX=/usr -DNODELAYD_BUILD_TESTS=OFF >"$work/configure.log" 2>&1 \
    || { cat "$work/configure.log" >&2; fail "cmake configure failed"; }
  timeout 1200 cmake --build "$build_dir" --parallel "$(nproc)" >"$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log" >&2; fail "build failed"; }
fi
[[ -f $build_dir/CPackConfig.cmake ]] || fail "$build_dir/CPackConfig.cmake missing: not a configured nodelayd build tree"
[[ -x $build_dir/nodelayd ]] || fail "$build_dir/nodelayd missing: build the tree first"
step "packaging $build_dir with cpack -G DEB"
timeout 300 cpack --config "$build_dir/CPackConfig.cmake" -G DEB -B "$work/pkg" \
  -D CPACK_PACKAGING_INSTALL_PREFIX=/usr >"$work/cpack.log" 2>&1 \
  || { cat "$work/cpack.log" >&2; fail "cpack -G DEB failed"; }
shopt -s nullglob
debs=("$work"/pkg/nodelayd_*.deb)
[[ ${#debs[@]} -eq 1 ]] || { cat "$work/cpack.log" >&2; fail "expected one nodelayd_*.deb in $work/pkg, found ${#debs[@]}"; }
deb=${debs[0]}
step "built $(basename "$deb")"

# ---- The package's metadata. -----------------------------------------------------------
[[ $(dpkg-deb -f "$deb" Package) == nodelayd ]] || fail "Package: is not nodelayd"
[[ $(dpkg-deb -f "$deb" Section) == net ]] || fail "Section: is not net"
depends=$(dpkg-deb -f "$deb" Depends)
[[ $depends == *libc6* ]] || fail "Depends: lacks libc6 (dpkg-shlibdeps did not run?): '$depends'"
step "Depends: $depends"
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qx '/etc/nodelayd/nodelayd.conf' "$work/control/conffiles" \
  || fail "conffiles does not list /etc/nodelayd/nodelayd.conf"
for script in postinst prerm postrm; do
  [[ -x $work/control/$script ]] || fail "maintainer script $script missing or not executable"
done

# ---- Install. ---------------------------------------------------------------------------
step "dpkg -i $(basename "$deb")"
installed=1
DEBIAN_FRONTEND=noninteractive timeout 120 dpkg -i "$deb" >"$work/dpkg-install.log" 2>&1 \
  || { cat "$work/dpkg-install.log" >&2; fail "dpkg -i failed"; }
[[ $(dpkg-query -W -f='${Status}' nodelayd) == "install ok installed" ]] \
  || fail "dpkg says: $(dpkg-query -W -f='${Status}' nodelayd)"
dpkg-query -W -f='${Conffiles}\n' nodelayd | grep -q '^ /etc/nodelayd/nodelayd.conf ' \
  || fail "dpkg does not track /etc/nodelayd/nodelayd.conf as a conffile"

expect_file() { [[ -f $1 ]] || fail "$1 was not installed"; }
[[ -x /usr/bin/nodelayd ]] || fail "/usr/bin/nodelayd was not installed (or is not executable)"
expect_file /usr/lib/systemd/system/nodelayd.service
expect_file /usr/lib/systemd/system/nodelayd.socket
expect_file /lib/systemd/system/nodelayd.service
expect_file /etc/nodelayd/nodelayd.conf
expect_file /usr/share/man/man8/nodelayd.8.gz
expect_file /usr/share/doc/nodelayd/examples/nodelayd.conf
cmp -s /usr/lib/systemd/system/nodelayd.service "$src/systemd/nodelayd.service" \
  || fail "the installed nodelayd.service differs from systemd/nodelayd.service"
step "files are in place"

# ---- The installed binary, configuration, man page and unit. ---------------------------
version=$(timeout 10 /usr/bin/nodelayd --version) || fail "/usr/bin/nodelayd --version failed"
[[ $version == "nodelayd $(dpkg-query -W -f='${Version}' nodelayd)" ]] \
  || fail "--version says '$version', the package is $(dpkg-query -W -f='${Version}' nodelayd)"
set +e
check_out=$(timeout 30 /usr/bin/nodelayd --check --config /etc/nodelayd/nodelayd.conf 2>&1)
check_rc=$?
set -e
[[ $check_rc -eq 0 ]] || { echo "$check_out" >&2
  fail "/usr/bin/nodelayd --check --config /etc/nodelayd/nodelayd.conf exited $check_rc"; }
step "installed binary: $check_out"
man_path=$(timeout 30 man -w nodelayd 2>&1) || fail "man -w nodelayd: $man_path"
[[ $man_path == /usr/share/man/man8/nodelayd.8.gz ]] || fail "man -w nodelayd found '$man_path'"
man_text=$(MANWIDTH=80 timeout 30 man nodelayd 2>&1 | head -20) || true
grep -q 'nodelayd - TCP proxy' <<<"$man_text" || { echo "$man_text" >&2; fail "man nodelayd does not render the NAME section"; }
set +e
verify_out=$(SYSTEMD_LOG_COLOR=0 timeout 60 systemd-analyze verify \
  /lib/systemd/system/nodelayd.service /lib/systemd/system/nodelayd.socket 2>&1)
verify_rc=$?
set -e
[[ -z $verify_out ]] || echo "$verify_out" >&2
[[ $verify_rc -eq 0 && -z $verify_out ]] \
  || fail "systemd-analyze verify on the installed units: exit $verify_rc, output above"
step "systemd-analyze verify: installed units are clean"

# ---- Purge, and check that nothing is left. ---------------------------------------------
step "dpkg --purge nodelayd"
timeout 120 dpkg --purge nodelayd >"$work/dpkg-purge.log" 2>&1 \
  || { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge failed"; }
installed=0
status=$(dpkg-query -W -f='${Status}' nodelayd 2>/dev/null || true)
[[ -z $status || $status == *not-installed* ]] || fail "after purge dpkg says: $status"
for path in /usr/bin/nodelayd /etc/nodelayd /usr/lib/systemd/system/nodelayd.service \
            /usr/lib/systemd/system/nodelayd.socket /usr/share/man/man8/nodelayd.8.gz \
            /usr/share/doc/nodelayd; do
  [[ ! -e $path ]] || fail "$path is still there after dpkg --purge"
done
step "PASS: installed, checked and purged $(basename "$deb")"
