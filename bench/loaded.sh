#!/bin/sh
# Training with one CPU-bound process beside it, default threads against one thread:
#   sh bench/loaded.sh [--config fmnist-small] [--reps 3] [--steps 20] [--env "OMP_WAIT_POLICY=active"]
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/loaded.lua "$@"
