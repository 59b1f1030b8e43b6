#!/bin/sh
# Streaming data: the in-memory loader against a packed file.
#   sh bench/stream.sh compare [--reps 3] [--steps 20] [--threads 2]
#     (a) packs the Fashion-MNIST train set once (bench/out/fmnist-train.glowpack)
#     and trains fmnist-small (bench/ab.lua's configuration) on shuffled
#     batches from each, alternating rounds, one process per round; prints
#     the medians, packed / in-memory and the CPU (lscpu).
#   sh bench/stream.sh big [--n 200000] [--steps 300] [--quick 1] [--epoch 1 --config big64-tiny]
#     (b) packs n 64x64x3 images made from Fashion-MNIST (resized by glow,
#     gray -> RGB, repeat and flip), trains a small model on shuffled batches
#     of the packed file for --steps steps and prints the peak RSS (VmHWM),
#     which must stay under 1 GiB. --quick 1: 5,000 images, 5 steps.
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;$PWD/bench/?.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
exec lua5.4 bench/stream.lua "$@"
