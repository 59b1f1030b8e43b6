#!/bin/sh
# Run every libFuzzer target (ASan + UBSan) for SECONDS each, two at a time
# (one core each), and print one table row per target: executions, new
# corpus units, findings. Corpora grow in OUT/corpus/<target>; the committed
# seeds (csrc/fuzz/corpus) are read, never written. A finding leaves its
# input in OUT/<target>/ (crash-*, oom-*, timeout-*, leak-*).
#
#   sh bench/fuzz.sh [SECONDS [OUT [TARGET...]]]    # defaults: 600 out/fuzz, all
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_EACH=${1:-600}
OUT=${2:-out/fuzz}
if [ $# -ge 2 ]; then shift 2; else set --; fi
TARGETS=${*:-idx cifar png jpeg pack checkpoint load}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac

if ! command -v clang-14 >/dev/null || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev libfuzzer-14-dev >/dev/null
fi
sh spec/run.sh --build-only # the packages: lua5.4, liblua5.4-dev, libopenblas, libpng, zlib
CC=clang-14 cmake -S . -B build-fuzz -DGLOW_FUZZ=ON -DGLOW_MPI=OFF >/dev/null
for t in $TARGETS; do cmake --build build-fuzz -j "$(nproc)" --target "fuzz_$t" >/dev/null; done

corpus_of() { case $1 in load) echo checkpoint ;; *) echo "$1" ;; esac; }
extra_of() { case $1 in cifar) echo "-max_len=13000" ;; *) echo "" ;; esac; }

run_one() {
  t=$1
  mkdir -p "$OUT/corpus/$t" "$OUT/$t"
  cd "$OUT/$t"
  # shellcheck disable=SC2046
  OMP_NUM_THREADS=1 "$ROOT/build-fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
    -print_final_stats=1 $(extra_of "$t") "$OUT/corpus/$t" "$ROOT/csrc/fuzz/corpus/$(corpus_of "$t")" \
    >"$OUT/$t.log" 2>&1 || true
  cd "$ROOT"
}

set -- $TARGETS
while [ $# -gt 0 ]; do
  run_one "$1" &
  if [ $# -gt 1 ]; then run_one "$2" & fi
  wait
  shift; [ $# -gt 0 ] && shift
done

echo "| target | seconds | executions | new corpus units | findings |"
echo "|---|---|---|---|---|"
status=0
for t in $TARGETS; do
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
  units=$(sed -n 's/^stat::new_units_added: *//p' "$OUT/$t.log")
  found=$(find "$OUT/$t" -maxdepth 1 \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  echo "| fuzz_$t | $SECONDS_EACH | ${runs:-?} | ${units:-?} | $found |"
  [ "$found" -eq 0 ] && [ -n "$runs" ] || status=1
done
[ $status -eq 0 ] && echo "fuzz: no findings" || echo "fuzz: findings or failed runs; see $OUT/<target>.log"
exit $status
