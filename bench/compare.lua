--- Side by side with PyTorch on this machine, in one run: for each
--- configuration and metric, glow and torch alternate, several repetitions,
--- medians; then one markdown table (config | metric | glow | torch | ratio)
--- and the model's training GFLOP/s against a large square sgemm through the
--- same OpenBLAS.
---
---   lua5.4 bench/compare.lua [--reps 3] [--steps 5] [--configs fmnist-small,cifar-k8,cifar-paper]
---        [--isa auto|avx2|avx512|native]
---   (run by bench/compare.sh, which sets the paths)
---
--- --isa picks the code path on both sides, where the CPU has it:
---   auto    the environment as it is (glow and torch choose for themselves)
---   avx2    glow's x86-64-v3 copy and OpenBLAS's Haswell kernel; torch's ATen
---           AVX2 kernels, oneDNN capped at AVX2, OpenBLAS Haswell
---   avx512  glow's x86-64-v4 copy and OpenBLAS's SkylakeX kernel; torch's ATen
---           AVX-512 kernels, oneDNN uncapped, OpenBLAS SkylakeX
---   native  a -march=native build of glow (build-native/, GLOW_NATIVE=ON) and
---           each side's own choice of kernels
---
--- The torch side runs with glow's malloc settings (bench_util.TORCH_MALLOC);
--- --torch-malloc default leaves glibc's.
local bench = require "bench_util"
local run, median = bench.run, bench.median

local opts = bench.options("compare.lua", { reps = 3, steps = 5,
  configs = "fmnist-small,cifar-k8,cifar-paper", threads = 2, isa = "auto", ["torch-malloc"] = "glow" }, arg)

local PATHS = {
  auto = { glow = "", torch = "" },
  avx2 = { glow = "GLOW_ISA=x86-64-v3 OPENBLAS_CORETYPE=Haswell",
    torch = "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell" },
  avx512 = { glow = "GLOW_ISA=x86-64-v4 OPENBLAS_CORETYPE=SkylakeX",
    torch = "ATEN_CPU_CAPABILITY=avx512 OPENBLAS_CORETYPE=SkylakeX" },
  native = { glow = "env -u OPENBLAS_CORETYPE -u GLOW_ISA LUA_CPATH='build-native/?.so;;'",
    torch = "env -u OPENBLAS_CORETYPE" },
}
local path = PATHS[opts.isa]
if not path then error("compare.lua: --isa must be auto, avx2, avx512 or native, got " .. tostring(opts.isa), 0) end
local base = string.format("OMP_NUM_THREADS=%d", opts.threads)
local malloc = ({ glow = bench.TORCH_MALLOC, default = "" })[opts["torch-malloc"]]
if not malloc then error("compare.lua: --torch-malloc must be glow or default", 0) end
local genv, tenv = base .. " " .. path.glow, base .. " " .. malloc .. " " .. path.torch
local desc = run(genv .. [[ lua5.4 -e "local i = require('glow').info()
  print(require('glow.json').encode { isa = i.isa, kernel = i.blas_kernel })"]])
local tdesc = run(tenv .. [[ /usr/bin/python3 -c "import json, re, torch
m = re.search(r'CPU capability usage: (\\S+)', torch.__config__.show())
print(json.dumps({'capability': m.group(1) if m else '?'}))"]])
io.stderr:write(string.format("--isa %s: glow %s copy, OpenBLAS %s; torch ATen %s\n", opts.isa, desc.isa,
  desc.kernel, tdesc.capability))
-- The sgemm peak: a 2048^3 product on all the threads (OpenBLAS's own
-- threading), and on one thread times the thread count (the fused kernels
-- run one single-threaded product per thread, which can beat OpenBLAS's
-- threading of one product); the larger of the two.
local peak, one = {}, {}
for _ = 1, 3 do
  peak[#peak + 1] = run(genv .. " lua5.4 bench/glow_bench.lua sgemm 2048 3").gflops
  one[#one + 1] = run(genv .. " OMP_NUM_THREADS=1 lua5.4 bench/glow_bench.lua sgemm 2048 3").gflops
end
local threaded, single = median(peak), median(one)
local sgemm = math.max(threaded, single * opts.threads)
io.stderr:write(string.format("sgemm 2048^3: %.1f GFLOP/s on %d threads, %.1f on one (medians of 3)\n",
  threaded, opts.threads, single))

local rows, gflops = {}, {}
for config in tostring(opts.configs):gmatch("[^,]+") do
  for _, what in ipairs { "train", "encode", "sample" } do
    local g, t, grss, trss, gf = {}, {}, {}, {}, {}
    local steps = (config == "cifar-paper") and math.min(opts.steps, 3) or opts.steps
    for _ = 1, opts.reps do
      local a = run(string.format("%s lua5.4 bench/glow_bench.lua %s %s %d", genv, config, what, steps))
      local b = run(string.format(
        "%s /usr/bin/python3 bench/torch_glow.py --config %s --what %s --steps %d --threads %d",
        tenv, config, what, steps, opts.threads))
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

local cpu = bench.cpu_model()
print(string.format("%s; --isa %s: glow's %s copy, OpenBLAS %s, torch ATen %s; torch malloc: %s", cpu, opts.isa,
  desc.isa, desc.kernel, tdesc.capability, opts["torch-malloc"]))
print(string.format("threads: %d; medians of %d alternating runs; sgemm peak %.1f GFLOP/s (2048^3: %.1f on "
  .. "%d threads, %.1f on one)", opts.threads, opts.reps, sgemm, threaded, opts.threads, single))
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
