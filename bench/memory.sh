#!/bin/sh
# Peak RSS and time per training step against depth, both memory modes and PyTorch:
#   sh bench/memory.sh [--config cifar-paper] [--depths 8,16,32] [--steps 2] [--threads 2] [--autograd 1] [--torch 0]
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/memory.lua "$@"
