--- Side by side with PyTorch on this machine, in one run: for each
--- configuration and metric, glow and torch alternate, several repetitions,
--- medians; then one markdown table (config | metric | glow | torch | ratio)
--- and the model's training GFLOP/s against a large square sgemm through the
--- same OpenBLAS.
---
---   lua5.4 bench/compare.lua [--reps 3] [--steps 5] [--configs fmnist-small,cifar-k8,cifar-paper]
---   (run by bench/compare.sh, which sets the paths)
local bench = require "bench_util"
local run, median = bench.run, bench.median

local opts = bench.options("compare.lua", { reps = 3, steps = 5,
  configs = "fmnist-small,cifar-k8,cifar-paper", threads = 2 }, arg)

local env = string.format("OMP_NUM_THREADS=%d", opts.threads)
local peak = {}
for _ = 1, 3 do peak[#peak + 1] = run(env .. " lua5.4 bench/glow_bench.lua sgemm 2048 3").gflops end
local sgemm = median(peak)
io.stderr:write(string.format("sgemm 2048^3: %.1f GFLOP/s (median of 3)\n", sgemm))

local rows, gflops = {}, {}
for config in tostring(opts.configs):gmatch("[^,]+") do
  for _, what in ipairs { "train", "encode", "sample" } do
    local g, t, grss, trss, gf = {}, {}, {}, {}, {}
    local steps = (config == "cifar-paper") and math.min(opts.steps, 3) or opts.steps
    for _ = 1, opts.reps do
      local a = run(string.format("%s lua5.4 bench/glow_bench.lua %s %s %d", env, config, what, steps))
      local b = run(string.format(
        "%s /usr/bin/python3 bench/torch_glow.py --config %s --what %s --steps %d --threads %d",
        env, config, what, steps, opts.threads))
      g[#g + 1], t[#t + 1] = a.images_per_s, b.images_per_s
      grss[#grss + 1], trss[#trss + 1] = a.peak_rss_mib, b.peak_rss_mib
      gf[#gf + 1] = a.gflops
      io.stderr:write(string.format("%s %s: glow %.1f img/s, torch %.1f img/s\n", config, what,
        a.images_per_s, b.images_per_s))
    end
    rows[#rows + 1] = { config, what .. " images/s", median(g), median(t) }
    if what == "train" then
      rows[#rows + 1] = { config, "peak RSS MiB (train)", median(grss), median(trss) }
      gflops[config] = median(gf)
    end
  end
end

print(string.format("threads: %d; medians of %d alternating runs; sgemm peak %.1f GFLOP/s", opts.threads,
  opts.reps, sgemm))
print()
print("| config | metric | glow | torch | ratio |")
print("|---|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %s | %s | %.1f | %.1f | %.2fx |", r[1], r[2], r[3], r[4], r[3] / r[4]))
end
print()
for config, v in pairs(gflops) do
  print(string.format("%s training: %.1f GFLOP/s = %.0f%% of the sgemm peak", config, v, 100 * v / sgemm))
end
