--- The portable build against the native one: training images/s of each
--- configuration, the builds alternating within each round; medians and the
--- ratio portable / native. Run by bench/isa.sh, which builds both.
---
---   lua5.4 bench/isa.lua [--configs fmnist-small,cifar-k8] [--reps 3] [--steps 5] [--levels x86-64-v3,x86-64]
local bench = require "bench_util"
local run, median = bench.run, bench.median

local opts = bench.options("isa.lua", { configs = "fmnist-small,cifar-k8", reps = 3, steps = 5, levels = "" }, arg)

local function probe(cpath, env)
  local p = io.popen(string.format("%s LUA_CPATH='%s/?.so;;' lua5.4 -e \"local i = require('glow').info() "
    .. "io.write(i.isa, ' ', i.blas_kernel, ' ', i.omp_threads)\"", env, cpath))
  local out = p:read("a")
  p:close()
  return out
end

local builds = {
  { name = "native", cpath = "build-native", env = "" },
  { name = "portable", cpath = "build", env = "" },
}
for level in tostring(opts.levels):gmatch("[^,]+") do
  builds[#builds + 1] = { name = "portable, GLOW_ISA=" .. level, cpath = "build", env = "GLOW_ISA=" .. level }
end
for _, b in ipairs(builds) do
  b.info = probe(b.cpath, b.env)
  io.stderr:write(string.format("%s: kernels, BLAS kernel, threads = %s\n", b.name, b.info))
end

local cpu = bench.cpu_model()
local rows = {}
for config in opts.configs:gmatch("[^,]+") do
  local got = {}
  for r = 1, opts.reps do
    for i, b in ipairs(builds) do
      got[i] = got[i] or {}
      local v = run(string.format("%s LUA_CPATH='%s/?.so;;' lua5.4 bench/glow_bench.lua %s train %d", b.env,
        b.cpath, config, opts.steps)).images_per_s
      got[i][#got[i] + 1] = v
      io.stderr:write(string.format("%s round %d, %s: %.2f images/s\n", config, r, b.name, v))
    end
  end
  for i, b in ipairs(builds) do
    local vals = {}
    for k, v in ipairs(got[i]) do vals[k] = string.format("%.2f", v) end
    rows[#rows + 1] = { config, b, median(got[i]), median(got[1]), table.concat(vals, ", ") }
  end
end

print(string.format("Training images/s, %s, medians of %d rounds of %d steps (builds alternating)", cpu,
  opts.reps, opts.steps))
print()
print("| config | build | kernels, BLAS kernel, threads | images/s | runs | / native |")
print("|---|---|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %s | %s | %s | %.2f | %s | %.3f |", r[1], r[2].name, r[2].info, r[3], r[5], r[3] / r[4]))
end
