#!/bin/sh
# valgrind memcheck over a short training run: a tiny model, a few steps of
# glow.train.run on made-up data, a checkpoint saved and loaded, samples.
# Passes when memcheck reports no invalid access and no definitely lost
# block (--errors-for-leak-kinds=definite). Takes a few minutes.
#
#   sh bench/valgrind.sh
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
command -v valgrind >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
# valgrind does not run AVX-512 code: under it the core's loader sees no
# AVX-512 and takes its x86-64-v3 copy by itself; OpenBLAS's Haswell (AVX2)
# kernel is set here the way a user would
cmake -S . -B build-valgrind -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGLOW_NATIVE=OFF -DGLOW_MPI=OFF >/dev/null
cmake --build build-valgrind -j "$(nproc)" >/dev/null
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/build-valgrind/?.so;;"
# one thread: valgrind runs threads one at a time anyway
OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
  --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes \
  lua5.4 bench/valgrind_run.lua
echo "valgrind: clean"
