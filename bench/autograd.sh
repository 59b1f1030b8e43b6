#!/bin/sh
# The default coupling network written with glow's ops and autograd against
# the fused kernel, training fmnist-small, alternating in one run:
#   sh bench/autograd.sh [--reps 5] [--steps 5] [--batch 64]
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/bench/?.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
exec lua5.4 bench/autograd.lua "$@"
