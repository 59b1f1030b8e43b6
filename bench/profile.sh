#!/bin/sh
# Where training time goes, by category (perf): sh bench/profile.sh [--configs fmnist-small,cifar-k8]
#   [--steps 30] [--threads 2] [--delay 3000] [--tree DIR --label before]   (bench/profile.lua)
set -eu
. "$(dirname "$0")/setup.sh"
exec lua5.4 bench/profile.lua "$@"
