#!/bin/sh
# Glow against PyTorch (Debian's python3-torch) on this machine, one run.
#   sh bench/compare.sh [--reps 3] [--steps 5] [--configs fmnist-small,cifar-k8,cifar-paper] [--threads 2]
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/compare.lua "$@"
