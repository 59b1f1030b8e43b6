--- Peak memory and time of training steps against depth: glow in "store"
--- and "reversible" memory modes and the PyTorch implementation of the same
--- conventions (which stores everything), one process per measurement
--- (peak RSS from the kernel's high-water mark / getrusage).
---
---   lua5.4 bench/memory.lua [--config cifar-paper] [--depths 8,16,32] [--steps 2] [--threads 2]
---       [--autograd 1] (a column with the coupling networks written with the ops and autograd)
---       [--torch 0] (leave PyTorch out)
---   (run by bench/memory.sh, which sets the paths)
local bench = require "bench_util"
local run = bench.run

local opts = bench.options("memory.lua", { config = "cifar-paper", depths = "8,16,32", steps = 2,
  threads = 2, autograd = 0, torch = 1 }, arg)

local env = string.format("OMP_NUM_THREADS=%d", opts.threads)
local rows = {}
for d in tostring(opts.depths):gmatch("[^,]+") do
  local depth = tonumber(d)
  local r = { depth = depth }
  for _, mode in ipairs { "store", "reversible" } do
    r[mode] = run(string.format("%s lua5.4 bench/glow_bench.lua %s train %d depth=%d memory=%s", env,
      opts.config, opts.steps, depth, mode))
    io.stderr:write(string.format("depth %d %s: %.0f MiB, %.2f s/step\n", depth, mode,
      r[mode].peak_rss_mib, r[mode].median_s))
  end
  if opts.autograd ~= 0 then -- the coupling networks written with the ops and autograd
    r.autograd = run(string.format("%s lua5.4 bench/glow_bench.lua %s train %d depth=%d memory=reversible "
      .. "net=autograd", env, opts.config, opts.steps, depth))
    io.stderr:write(string.format("depth %d autograd reversible: %.0f MiB, %.2f s/step\n", depth,
      r.autograd.peak_rss_mib, r.autograd.median_s))
  end
  if opts.torch ~= 0 then
    r.torch = run(string.format(
      "%s /usr/bin/python3 bench/torch_glow.py --config %s --what train --steps %d --threads %d --depth %d",
      env, opts.config, opts.steps, opts.threads, depth))
    io.stderr:write(string.format("depth %d torch: %.0f MiB, %.2f s/step\n", depth, r.torch.peak_rss_mib,
      r.torch.median_s))
  end
  rows[#rows + 1] = r
end

print(string.format("%s training steps, %d threads, median of %d steps after one warm-up step",
  opts.config, opts.threads, opts.steps))
print()
local head = "| depth | glow store: peak RSS MiB | s/step | glow reversible: peak RSS MiB | s/step "
  .. "| reversible/store time |"
local rule = "|---|---|---|---|---|---|"
if opts.autograd ~= 0 then
  head, rule = head .. " autograd nets, reversible: peak RSS MiB | s/step |", rule .. "---|---|"
end
if opts.torch ~= 0 then head, rule = head .. " torch: peak RSS MiB | s/step |", rule .. "---|---|" end
print(head)
print(rule)
for _, r in ipairs(rows) do
  local line = string.format("| %d | %.0f | %.2f | %.0f | %.2f | %.2fx |", r.depth, r.store.peak_rss_mib,
    r.store.median_s, r.reversible.peak_rss_mib, r.reversible.median_s, r.reversible.median_s / r.store.median_s)
  if r.autograd then line = line .. string.format(" %.0f | %.2f |", r.autograd.peak_rss_mib, r.autograd.median_s) end
  if r.torch then line = line .. string.format(" %.0f | %.2f |", r.torch.peak_rss_mib, r.torch.median_s) end
  print(line)
end
-- what grows with depth besides the parameters: peak RSS minus 16 bytes a
-- parameter (value, gradient and Adam's two moments), deepest against shallowest
local function rest(r) return r.peak_rss_mib - 16 * r.params / 2 ^ 20 end
if #rows > 1 then
  local a, b = rows[1], rows[#rows]
  print()
  for _, mode in ipairs { "store", "reversible" } do
    print(string.format("%s: peak RSS minus 16 bytes a parameter, depth %d %.0f MiB (%d parameters), depth %d "
      .. "%.0f MiB (%d parameters): ratio %.2f", mode, a.depth, rest(a[mode]), a[mode].params, b.depth,
      rest(b[mode]), b[mode].params, rest(b[mode]) / rest(a[mode])))
  end
end
