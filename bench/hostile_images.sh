#!/bin/sh
# Hostile image folders against glow pack and glow eval: each case's exit
# code, last line, wall time and peak resident set (/usr/bin/time -v); every
# case must end within 30 s at a peak under 512 MiB (exit 1 otherwise).
# The files are made in seconds (spec/hostile_files.lua, glow's synthetic
# writer), in bench/out/hostile.
#   sh bench/hostile_images.sh            # this tree
#   sh bench/hostile_images.sh --old REV  # and REV's, side by side (built in build-ab/REV as bench/ab.sh does)
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=OFF >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
[ -x /usr/bin/time ] || { echo "bench/hostile_images.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
status=0
if [ "${1:-}" = "--old" ]; then
  sha=$(git rev-parse --short "${2:?--old needs a revision}")
  dir="build-ab/$sha"
  if [ ! -f "$dir/build/glow/core.so" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    git archive "$sha" | tar -x -C "$dir"
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGLOW_TESTS=OFF >/dev/null
    cmake --build "$dir/build" -j "$(nproc)" >/dev/null
  fi
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/hostile_images.lua \
    "$PWD/bench/out/hostile" "$sha" "$PWD/$dir" || status=$?
else
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' lua5.4 bench/hostile_images.lua \
    "$PWD/bench/out/hostile" || status=$?
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $status
