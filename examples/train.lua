--- Train Glow on Fashion-MNIST (or CIFAR-10, a folder of images or a packed
--- set), report the test set's bits/dim each epoch, write samples, a
--- checkpoint, a log and the training curve: the `glow train` command (see
--- lua/glow/cli/train.lua, or run with --help for every option).
---
---   lua5.4 examples/train.lua [--epochs 1] [--batch 64] [--lr 1e-3] [--warmup 200]
---       [--levels 2] [--depth 8] [--width 128] [--coupling affine] [--permutation invconv_lu]
---       [--data fashion-mnist|cifar10:DIR|DIR|FILE.glowpack] [--out DIR] [--resume CHECKPOINT] ...
---
--- Writes DIR/log.csv, DIR/checkpoint.safetensors, DIR/samples.png and
--- DIR/curve.png (out: "out"). Under mpirun (mpirun -np N lua5.4
--- examples/train.lua ...) it trains data parallel through glow.distributed.
--- The main job is run again and again: a new run replaces the previous
--- one's files in DIR (glow train's --force), unless --resume continues it.
local argv = { "train", table.unpack(arg) }
local continues = false
for _, a in ipairs(arg) do
  if a == "--resume" or a:match("^%-%-resume=") or a == "--force" or a == "--help" or a == "-h" then
    continues = true
  end
end
if not continues then argv[#argv + 1] = "--force" end
require("glow.cli").main(argv)
