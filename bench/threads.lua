--- Thread scaling: training images/s of one configuration (default
--- cifar-k8) at 1, 2, 4, 8 and 16 threads (those up to this machine's core
--- count), glow and torch alternating, medians; one markdown table with each
--- side's speed-up over its own single thread.
---
---   lua5.4 bench/threads.lua [--config cifar-k8] [--reps 3] [--steps 3] [--max 16]
---   (run by bench/threads.sh, which sets the paths)
local bench = require "bench_util"
local run, median = bench.run, bench.median

local opts = bench.options("threads.lua", { config = "cifar-k8", reps = 3, steps = 3, max = 16 }, arg)

local cores = tonumber(io.popen("nproc"):read("l")) or 1
local rows = {}
for _, n in ipairs { 1, 2, 4, 8, 16 } do
  if n <= math.min(cores, opts.max) then
    local g, t = {}, {}
    for _ = 1, opts.reps do
      local env = string.format("OMP_NUM_THREADS=%d", n)
      g[#g + 1] = run(string.format("%s lua5.4 bench/glow_bench.lua %s train %d", env, opts.config,
        opts.steps)).images_per_s
      t[#t + 1] = run(string.format(
        "%s %s /usr/bin/python3 bench/torch_glow.py --config %s --what train --steps %d --threads %d",
        env, bench.TORCH_MALLOC, opts.config, opts.steps, n)).images_per_s
      io.stderr:write(string.format("%d threads: glow %.2f img/s, torch %.2f img/s\n", n, g[#g], t[#t]))
    end
    rows[#rows + 1] = { n, median(g), median(t) }
  end
end

print(string.format("%s training, %d cores; medians of %d alternating runs of %d steps", opts.config,
  cores, opts.reps, opts.steps))
print()
print("| threads | glow images/s | glow speed-up | torch images/s | torch speed-up | glow/torch |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %d | %.2f | %.2fx | %.2f | %.2fx | %.2fx |", r[1], r[2], r[2] / rows[1][2],
    r[3], r[3] / rows[1][3], r[2] / r[3]))
end
