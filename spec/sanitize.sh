#!/bin/sh
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer: the
# C tests and every busted spec against a -DGLOW_SANITIZE=ON build in
# build-asan/ (the Lua interpreter itself is not instrumented, so the ASan
# runtime is preloaded into it). Any sanitizer report fails the run.
# Leak checking is off: it would report the allocations OpenBLAS and OpenMP
# keep for the life of the process. (valgrind's leak check covers a
# training run: bench/valgrind.sh.)
#
#   sh spec/sanitize.sh
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLOW_WERROR=ON -DGLOW_SANITIZE=ON -DGLOW_NATIVE=OFF >/dev/null
cmake --build build-asan -j "$(nproc)" >/dev/null
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
echo "== C tests (ASan + UBSan)"
ctest --test-dir build-asan --output-on-failure
echo "== busted (ASan + UBSan)"
export GLOW_ADAPT_THREADS=0 # as spec/run.sh: the thread count stays as asked
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" GLOW_BUILD="$PWD/build-asan" \
  busted -o plainTerminal
echo "sanitizers: clean"
