#!/bin/sh
# The whole suite (C tests and every busted spec) under each configuration
# this CPU can run, and a table of configuration -> passed/failed:
#   - glow's own choices (the best ISA level, the BLAS kernel it picks, all cores);
#   - every OpenBLAS kernel this CPU can execute (OPENBLAS_CORETYPE = Prescott,
#     Nehalem, Sandybridge, Haswell, Zen, SkylakeX, Cooperlake);
#   - 1 and 2 OpenMP threads;
#   - each ISA level of the default build (GLOW_ISA = x86-64, x86-64-v3,
#     x86-64-v4): none of them is compiled with -march=native;
#   - a GLOW_NATIVE=ON build (-march=native) in build-native/.
# Each row's output goes to build/portability/<row>.log. About 40 s a row
# on 2 cores; not part of .ci/run.
#
#   sh spec/portability.sh            # every row
#   sh spec/portability.sh Haswell    # the rows whose name holds this text
set -eu
cd "$(dirname "$0")/.."
only="${1:-}"

sh spec/run.sh --build-only
echo "== build with GLOW_NATIVE=ON (build-native/)"
cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=ON >/dev/null
cmake --build build-native -j "$(nproc)" >/dev/null

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() {
  for f in "$@"; do
    case "$flags" in *" $f "*) ;; *) return 1 ;; esac
  done
}
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
logs=build/portability
mkdir -p "$logs"
table="$logs/table.txt"
printf '%-34s %-10s %-11s %-7s %-9s %-9s %s\n' configuration kernels "BLAS" threads "C tests" busted result >"$table"
failed_rows=0

# row NAME BUILD_DIR [VAR=VALUE ...]: the suite with glow's defaults
# (OPENBLAS_CORETYPE, GLOW_ISA and OMP_NUM_THREADS unset) plus the given ones
row() {
  name=$1 dir=$2
  shift 2
  case "$name" in *"$only"*) ;; *) return 0 ;; esac
  log="$logs/$(printf '%s' "$name" | tr -c 'A-Za-z0-9.=-' '_').log"
  echo "== $name"
  : >"$log"
  run_env() {
    # the thread count as asked, not fitted to the load (as spec/run.sh)
    env -u OPENBLAS_CORETYPE -u GLOW_ISA -u OMP_NUM_THREADS GLOW_ADAPT_THREADS=0 GLOW_BUILD="$PWD/$dir" "$@"
  }
  # what this configuration runs with
  desc=$(run_env "$@" lua5.4 -e "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
    package.cpath = '$dir/?.so;' .. package.cpath
    local i = require('glow').info()
    io.write(i.isa, ' ', i.blas_kernel, ' ', i.omp_threads)" 2>>"$log") || desc="- - -"
  set +e
  c_out=$(run_env "$@" ctest --test-dir "$dir" --output-on-failure -V 2>&1)
  c_rc=$?
  b_out=$(run_env "$@" busted -o plainTerminal 2>&1)
  b_rc=$?
  set -e
  printf '%s\n%s\n' "$c_out" "$b_out" >>"$log"
  c_pass=$(echo "$c_out" | sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p' | awk '{s+=$1} END {print s+0}')
  c_fail=$(echo "$c_out" | sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p' | awk '{s+=$1} END {print s+0}')
  summary=$(echo "$b_out" | grep -E "^[0-9]+ success" | tail -1)
  b_pass=$(echo "$summary" | sed -n 's/^\([0-9]*\) success.*/\1/p')
  b_fail=$(echo "$summary" | sed -n 's/.* \([0-9]*\) failure.* \([0-9]*\) error.*/\1 \2/p' | awk '{print $1+$2}')
  result=passed
  if [ "$c_rc" -ne 0 ] || [ "$b_rc" -ne 0 ] || [ -z "$summary" ] || [ "$c_fail" -ne 0 ] || [ "${b_fail:-1}" -ne 0 ]; then
    result="FAILED (see $log)"
    failed_rows=$((failed_rows + 1))
  fi
  # shellcheck disable=SC2086
  set -- $desc
  printf '%-34s %-10s %-11s %-7s %-9s %-9s %s\n' "$name" "$1" "$2" "$3" \
    "$c_pass/$((c_pass + c_fail))" "${b_pass:-0}/$((${b_pass:-0} + ${b_fail:-0}))" "$result" >>"$table"
  tail -1 "$table"
}

row "default (glow's own choices)" build
for k in Prescott Nehalem Sandybridge Haswell Zen SkylakeX Cooperlake; do
  case $k in
    Prescott) need="pni" ;; # SSE3 (Linux calls it pni)
    Nehalem) need="ssse3 sse4_2" ;;
    Sandybridge) need="avx" ;;
    Haswell | Zen) need="avx2 fma" ;;
    SkylakeX) need="avx512f avx512bw avx512vl avx512dq avx512cd" ;;
    Cooperlake) need="avx512f avx512bw avx512vl avx512dq avx512cd avx512_bf16" ;;
  esac
  # shellcheck disable=SC2086
  if has $need; then row "OPENBLAS_CORETYPE=$k" build OPENBLAS_CORETYPE=$k; fi
done
row "OMP_NUM_THREADS=1" build OMP_NUM_THREADS=1
row "OMP_NUM_THREADS=2" build OMP_NUM_THREADS=2
# the levels of the default build that this CPU runs: as the loader decides
for level in x86-64 x86-64-v3 x86-64-v4; do
  if env GLOW_ISA=$level LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
    lua5.4 -e 'require "glow"' >/dev/null 2>&1; then
    row "GLOW_ISA=$level" build GLOW_ISA=$level
  fi
done
row "GLOW_NATIVE=ON (-march=native)" build-native

echo
echo "CPU: $cpu, $(nproc) cores"
cat "$table"
if [ "$failed_rows" -ne 0 ]; then
  echo "portability: $failed_rows configuration(s) failed"
  exit 1
fi
echo "portability: every configuration passed"
