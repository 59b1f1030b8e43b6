--- Training images/s of fmnist-small (28x28x1, levels 2, depth 8, width 128)
--- with the default coupling network as the fused kernel (glow.nn.Sequential)
--- and written with glow's ops and autograd (glow.autograd.Net: conv3x3,
--- ActNorm, ReLU, conv1x1, ActNorm, ReLU, ZeroConv3x3, as bench_util.ops_net),
--- alternating rounds in one process; medians and the ratio. The ops network
--- runs as autograd makes it run: its elementwise chains fused, the whole of it
--- as one plan (docs/PROTOTYPING.md, section 5). --memory "auto" (the default)
--- or "reversible" for both.
local glow = require "glow"
local bench = require "bench_util"

local opts = bench.options("autograd.lua", { reps = 5, steps = 5, batch = 64, memory = "auto" }, arg)

local ops_net = bench.ops_net

local x = glow.rand({ opts.batch, 28, 28, 1 }, 1) - 0.5
local sides = {}
for _, side in ipairs { "fused", "autograd" } do
  local m = glow.Glow { shape = { 28, 28, 1 }, levels = 2, depth = 8, width = 128, seed = 1, memory = opts.memory,
    net = side == "autograd" and ops_net or nil }
  m:initialize(x)
  sides[#sides + 1] = { name = side, model = m, opt = glow.optim.Adam(m, { lr = 1e-4 }), rates = {} }
end
for _ = 1, opts.reps do
  for _, s in ipairs(sides) do
    s.model:train_step(x, nil, s.opt) -- warm
    local t = glow.core.now()
    for _ = 1, opts.steps do s.model:train_step(x, nil, s.opt) end
    s.rates[#s.rates + 1] = opts.batch * opts.steps / (glow.core.now() - t)
  end
end
local info = glow.info()
print(string.format("%s; kernels %s, BLAS %s; %d threads; medians of %d alternating rounds of %d steps, batch %d",
  bench.cpu_model(), info.isa, info.blas_kernel, info.omp_threads, opts.reps, opts.steps,
  opts.batch))
print()
print("| coupling network | train images/s | / fused |")
print("|---|---|---|")
local fused = bench.median(sides[1].rates)
for _, s in ipairs(sides) do
  local m = bench.median(s.rates)
  print(string.format("| %s | %.1f | %.3f |", s.name, m, m / fused))
end
