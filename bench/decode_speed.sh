#!/bin/sh
# Packing a folder of ordinary photos (200 generated JPEGs of 1 to 4
# megapixels, 40 PNGs of 1 to 2) with this tree against REV, alternating,
# medians of 3: wall time and peak resident set. REV defaults to 29a8d7d,
# the last revision that decoded each image whole before fitting it.
#   sh bench/decode_speed.sh [REV] [--n 200] [--png 40] [--reps 3]
set -eu
cd "$(dirname "$0")/.."
rev=29a8d7d
case "${1:-}" in
  --*|"") ;;
  *) rev=$1; shift ;;
esac
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=OFF >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
[ -x /usr/bin/time ] || { echo "bench/decode_speed.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
sha=$(git rev-parse --short "$rev")
dir="build-ab/$sha"
if [ ! -f "$dir/build/glow/core.so" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  git archive "$sha" | tar -x -C "$dir"
  cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGLOW_TESTS=OFF >/dev/null
  cmake --build "$dir/build" -j "$(nproc)" >/dev/null
fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/decode_speed.lua \
  "$PWD/bench/out/decode" "$sha" "$PWD/$dir" "$@" || status=$?
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
