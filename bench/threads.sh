#!/bin/sh
# Thread scaling of training, glow and PyTorch side by side, one run:
#   sh bench/threads.sh [--config cifar-k8] [--reps 3] [--steps 3] [--max 16]
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/threads.lua "$@"
