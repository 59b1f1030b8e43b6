#!/bin/sh
# The Fashion-MNIST training curve of the default configuration: test
# bits/dim after each epoch and the wall time, for N epochs (default 5).
# Prints one markdown row per epoch; the run's files go to OUT.
#
#   sh bench/fmnist_curve.sh [EPOCHS] [OUT] [extra examples/train.lua options...]
#   sh bench/fmnist_curve.sh 20 out20      # the 20-epoch stability run
set -eu
cd "$(dirname "$0")/.."
epochs=${1:-5}
out=${2:-out-curve-$epochs}
shift 2 2>/dev/null || shift $#
sh examples/run.sh --epochs "$epochs" --out "$out" --no-progress "$@" | tee "$out.stdout"
echo
echo "| epoch | test bits/dim | train bits/dim | epoch wall s | non-finite steps skipped |"
echo "|---|---|---|---|---|"
awk -F, 'NR > 1 && $10 != "" { printf "| %d | %.4f | %s | %.0f | %s |\n", $2, $10, train[$2], $9 - last, skipped[$2] + 0; last = $9 }
         NR > 1 && $10 == "" { n[$2]++; s[$2] += $4; skipped[$2] += $11; train[$2] = sprintf("%.4f", s[$2] / n[$2]) }' "$out/log.csv"
