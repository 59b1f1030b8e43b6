#!/bin/sh
# Glow against PyTorch (Debian's python3-torch) on this machine, one run.
#   sh bench/compare.sh [--reps 3] [--steps 5] [--configs fmnist-small,cifar-k8,cifar-paper] [--threads 2]
#                       [--isa auto|avx2|avx512|native]   (the code path: bench/compare.lua)
set -eu
. "$(dirname "$0")/setup.sh"
case " $* " in
  *" native "*)
    cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=ON >/dev/null
    cmake --build build-native -j "$(nproc)" >/dev/null ;;
esac
exec lua5.4 bench/compare.lua "$@"
