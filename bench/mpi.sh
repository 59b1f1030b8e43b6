#!/bin/sh
# Data-parallel throughput: training images/s of examples/train.lua's default
# model on Fashion-MNIST, one process x T threads against R ranks x 1 thread,
# the same global batch (64) and steps; medians of REPS alternating runs.
#   sh bench/mpi.sh [RANKS 2] [STEPS 60] [REPS 3]
# With more cores (a bigger machine): sh bench/mpi.sh 16 60 3
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/mpi.lua "$@"
