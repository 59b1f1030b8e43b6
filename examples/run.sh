#!/bin/sh
# The main job: installs the Debian packages it needs when they are missing
# (as root), builds, trains the default configuration on Fashion-MNIST for one
# epoch, prints the full test set's bits/dim, and writes out/samples.png
# (temperature 0.7), out/checkpoint.safetensors and out/log.csv.
# Options go to examples/train.lua, e.g. --epochs 5 --out out5.
#
#   sh examples/run.sh
set -eu
cd "$(dirname "$0")/.."
sh spec/run.sh --build-only
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
export LUA_CPATH="$PWD/build/?.so;;"
exec lua5.4 examples/train.lua "$@"
