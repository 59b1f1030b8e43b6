#!/bin/sh
# The test command: installs the Debian packages the tests need when they are
# missing (as root, with apt-get), builds with CMake, runs the C tests
# (ctest), luacheck over lua/, spec/ and examples/, and every busted spec.
# Ends with one line "tests: N passed, N failed".
#
#   sh spec/run.sh               # everything
#   sh spec/run.sh --build-only  # install what is missing and build (used by examples/run.sh)
set -eu
cd "$(dirname "$0")/.."

PACKAGES="gcc make cmake pkg-config lua5.4 liblua5.4-dev luarocks lua-busted lua-check
libopenblas-dev libopenblas-openmp-dev libpng-dev libjpeg62-turbo-dev zlib1g-dev libssl-dev dataset-fashion-mnist gzip
gnuplot-nox openmpi-bin libopenmpi-dev qemu-user lua-argparse lua-filesystem"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "== installing:$missing"
  if [ "$(id -u)" -ne 0 ]; then
    echo "spec/run.sh: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "== build"
# -Werror: the C must build warning-free with -Wall -Wextra. GLOW_NATIVE=OFF
# (the default, named because an older build/ may have cached ON): one copy
# of the core per x86-64 level, the best one picked when the module loads.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=OFF >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
if [ "${1:-}" = "--build-only" ]; then exit 0; fi

echo "== C tests"
c_out=$(ctest --test-dir build --output-on-failure -V 2>&1) || { echo "$c_out"; c_fail=1; }
echo "$c_out" | grep -E "passed, .* failed" || true
c_pass=$(echo "$c_out" | sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p' | awk '{s+=$1} END {print s+0}')
c_failn=$(echo "$c_out" | sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p' | awk '{s+=$1} END {print s+0}')

echo "== luacheck"
luacheck --no-color -q lua spec examples bench

echo "== busted"
# the specs compare runs that start in different processes, some beside
# others in the background: the thread count stays as asked, not fitted to
# the load (spec/threads_spec.lua turns adapting on where it checks it)
export GLOW_ADAPT_THREADS=0
set +e
b_out=$(busted -o plainTerminal 2>&1)
b_rc=$?
set -e
echo "$b_out"
summary=$(echo "$b_out" | grep -E "^[0-9]+ success" | tail -1)
b_pass=$(echo "$summary" | sed -n 's/^\([0-9]*\) success.*/\1/p')
b_fail=$(echo "$summary" | sed -n 's/.* \([0-9]*\) failure.* \([0-9]*\) error.*/\1 \2/p' | awk '{print $1+$2}')

passed=$(( ${c_pass:-0} + ${b_pass:-0} ))
failed=$(( ${c_failn:-0} + ${b_fail:-1} ))
if [ "${c_fail:-0}" -ne 0 ] || [ "$b_rc" -ne 0 ] || [ -z "$summary" ]; then
  [ "$failed" -gt 0 ] || failed=1
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
