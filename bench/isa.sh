#!/bin/sh
# The portable build (one copy of the core per x86-64 level, the best picked
# when it loads) against a -march=native build (GLOW_NATIVE=ON, in
# build-native/), training images/s, alternating, one run:
#   sh bench/isa.sh [--configs fmnist-small,cifar-k8] [--reps 3] [--steps 5] [--levels x86-64-v3,x86-64]
# --levels adds rows for lower levels forced with GLOW_ISA (what an older CPU
# runs, measured here). OPENBLAS_CORETYPE is left to glow's own choice.
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
cmake -S . -B build-native -DCMAKE_BUILD_TYPE=Release -DGLOW_WERROR=ON -DGLOW_NATIVE=ON >/dev/null
cmake --build build-native -j "$(nproc)" >/dev/null
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/bench/?.lua;;"
unset OPENBLAS_CORETYPE GLOW_ISA
exec lua5.4 bench/isa.lua "$@"
