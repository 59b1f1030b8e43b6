#!/bin/sh
# Glow against PyTorch (Debian's python3-torch) on this machine, one run.
#   sh bench/compare.sh [--reps 3] [--steps 5] [--configs fmnist-small,cifar-k8,cifar-paper] [--threads 2]
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
for p in python3-torch python3-scipy; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
exec lua5.4 bench/compare.lua "$@"
