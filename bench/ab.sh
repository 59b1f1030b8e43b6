#!/bin/sh
# glow at another revision against this working tree, alternating, one run:
# training, encode and sample images/s of each configuration, medians, and
# the ratio now / then. The other revision is exported with git archive and
# built as it builds itself (an older one with -march=native).
#   sh bench/ab.sh REV [--configs fmnist-small,cifar-k8] [--reps 3] [--steps 5] [--isa auto|avx2|avx512]
# --isa sets GLOW_ISA and OPENBLAS_CORETYPE for both sides as in
# bench/compare.sh. A revision without per-level copies ignores GLOW_ISA, so
# with --isa avx2 or avx512 the other revision is built for that level
# (GLOW_NATIVE=OFF, CFLAGS -march=x86-64-v3 or -v4) instead of -march=native.
set -eu
cd "$(dirname "$0")/.."
rev=${1:?usage: sh bench/ab.sh REV [options]}
shift
sh spec/run.sh --build-only
sha=$(git rev-parse --short "$rev")
march=""
case " $* " in
  *" avx2 "*) march=x86-64-v3 ;;
  *" avx512 "*) march=x86-64-v4 ;;
esac
dir="build-ab/$sha${march:+-$march}"
if [ ! -f "$dir/build/glow/core.so" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  git archive "$sha" | tar -x -C "$dir"
  if [ -n "$march" ]; then
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DGLOW_NATIVE=OFF \
      -DCMAKE_C_FLAGS="-march=$march -mtune=generic" >/dev/null
  else
    cmake -S "$dir" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  cmake --build "$dir/build" -j "$(nproc)" >/dev/null
fi
exec lua5.4 bench/ab.lua "$sha" "$dir" "$@"
