--- Run by bench/ab.sh: glow at an older revision (built in DIR) against this
--- working tree, the two alternating in every round; medians and now / then.
---
---   lua5.4 bench/ab.lua SHA DIR [--configs fmnist-small,cifar-k8] [--reps 3] [--steps 5] [--isa auto|avx2|avx512]
package.path = "bench/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
local bench = require "bench_util"
local run, median = bench.run, bench.median

local sha, dir = arg[1], arg[2]
local rest = {}
for i = 3, #arg do rest[#rest + 1] = arg[i] end
local opts = bench.options("ab.lua", { configs = "fmnist-small,cifar-k8", reps = 3, steps = 5, threads = 2,
  isa = "auto" }, rest)
local ISA = {
  auto = "",
  avx2 = "GLOW_ISA=x86-64-v3 OPENBLAS_CORETYPE=Haswell",
  avx512 = "GLOW_ISA=x86-64-v4 OPENBLAS_CORETYPE=SkylakeX",
}
local isa = ISA[opts.isa]
if not isa then error("ab.lua: --isa must be auto, avx2 or avx512, got " .. tostring(opts.isa), 0) end
local sides = {
  { name = sha, root = dir, cpath = dir .. "/build" },
  { name = "now", root = ".", cpath = "build" },
}
local function cmd(side, tail)
  return string.format("OMP_NUM_THREADS=%d %s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
    .. "lua5.4 %s/bench/glow_bench.lua %s", opts.threads, isa, side.root, side.root, side.cpath, side.root, tail)
end

local rows = {}
for config in opts.configs:gmatch("[^,]+") do
  for _, what in ipairs { "train", "encode", "sample" } do
    local got = { {}, {} }
    for r = 1, opts.reps do
      -- which side goes first alternates from round to round: a process that
      -- follows another can run at another speed (caches, the host's load)
      for j = 1, 2 do
        local i = (r % 2 == 1) and j or 3 - j
        local side = sides[i]
        local v = run(cmd(side, string.format("%s %s %d", config, what, opts.steps))).images_per_s
        got[i][#got[i] + 1] = v
        io.stderr:write(string.format("%s %s round %d, %s: %.2f images/s\n", config, what, r, side.name, v))
      end
    end
    rows[#rows + 1] = { config, what, median(got[1]), median(got[2]) }
  end
end

local cpu = bench.cpu_model()
print(string.format("%s; --isa %s; %d threads; medians of %d alternating rounds of %d steps", cpu, opts.isa,
  opts.threads, opts.reps, opts.steps))
print()
print(string.format("| config | metric | %s images/s | now images/s | now / %s |", sha, sha))
print("|---|---|---|---|---|")
for _, r in ipairs(rows) do
  print(string.format("| %s | %s | %.2f | %.2f | %.3f |", r[1], r[2], r[3], r[4], r[4] / r[3]))
end
