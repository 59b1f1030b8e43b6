#!/bin/sh
# Where threads pay, per class of op (bench/par.lua): builds build-par, the
# core with every loop of csrc/ops.c on threads (GLOW_PAR_ALWAYS), and times
# each class on 1 and 2 threads.
#   sh bench/par.sh [--passes 3] [--ms 50]
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build-par -DCMAKE_BUILD_TYPE=Release -DGLOW_TESTS=OFF -DGLOW_MPI=OFF \
  -DCMAKE_C_FLAGS=-DGLOW_PAR_ALWAYS >/dev/null
cmake --build build-par -j "$(nproc)" --target glow_core >/dev/null
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/bench/?.lua;;"
export LUA_CPATH="$PWD/build-par/?.so;;"
exec lua5.4 bench/par.lua "$@"
