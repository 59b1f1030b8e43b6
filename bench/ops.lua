--- Nanoseconds per element of every elementwise op on 1M floats (2^20), on
--- 1 thread and on 2 (glow.set_threads): the unary ops (the transcendental
--- ones are csrc/vmath.h's vectorized kernels), the binary ops and the
--- comparisons, same shape and broadcast. Each figure is the median of
--- several rounds, a round being the mean of enough calls to last --ms
--- milliseconds; a call includes making its output tensor. Prints the CPU,
--- the ISA copy of the core in use and one markdown table.
---
---   lua5.4 bench/ops.lua [--reps 7] [--ms 30] [--n 1048576]
local root = (arg and arg[0] or ""):match("^(.-)bench/ops%.lua$") or "./"
if root == "" then root = "./" end
package.path = root .. "bench/?.lua;" .. root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = root .. "build/?.so;" .. package.cpath

local glow = require "glow"
local tensor = require "glow.tensor"
local bench = require "bench_util"

local opts = bench.options("ops.lua", { reps = 7, ms = 30, n = 1048576 }, arg)
local n = opts.n

local x = glow.randn({ n }, 1, 3)            -- any sign
local p = glow.rand({ n }, 2) * 10 + 0.01    -- positive, for log, sqrt and pow
local y = glow.randn({ n }, 3, 3)
local rows = glow.randn({ n // 1024, 1024 }, 4, 3)
local row = glow.randn({ 1024 }, 5, 3)

-- name, the function to time
local cases = {}
local POSITIVE = { log = true, log1p = true, sqrt = true }
for _, name in ipairs(tensor.UNARY) do
  local src = POSITIVE[name] and p or x
  if name == "pow" then
    cases[#cases + 1] = { "pow 1.5", function() return p:pow(1.5) end }
    cases[#cases + 1] = { "pow 3", function() return x:pow(3) end }
    cases[#cases + 1] = { "pow 2", function() return x:pow(2) end }
  elseif name == "clamp" then
    cases[#cases + 1] = { "clamp", function() return x:clamp(-1, 1) end }
  else
    cases[#cases + 1] = { name, function() return src[name](src) end }
  end
end
local binary = { "add", "sub", "mul", "div", "maximum", "minimum" }
for _, name in ipairs(tensor.COMPARE) do binary[#binary + 1] = name end
for _, name in ipairs(binary) do
  local f = glow[name]
  cases[#cases + 1] = { name, function() return f(x, y) end }
end
cases[#cases + 1] = { "add {1024, 1024} + {1024}", function() return rows + row end }
cases[#cases + 1] = { "lt {1024, 1024} {1024}", function() return rows:lt(row) end }
cases[#cases + 1] = { "where", function() return glow.where(x, y, p) end }

-- ns per element: the median of the rounds' means
local function time(f)
  collectgarbage()
  f()
  local calls, t0 = 0, glow.core.now()
  repeat
    f()
    calls = calls + 1
  until glow.core.now() - t0 >= opts.ms / 1000
  local samples = {}
  for r = 1, opts.reps do
    local t = glow.core.now()
    for _ = 1, calls do f() end
    samples[r] = (glow.core.now() - t) / calls / n * 1e9
    collectgarbage()
  end
  return bench.median(samples)
end

local saved = glow.threads()
local results = {}
for i, c in ipairs(cases) do
  glow.set_threads(1)
  local t1 = time(c[2])
  glow.set_threads(2)
  local t2 = time(c[2])
  results[i] = { c[1], t1, t2 }
end
glow.set_threads(saved)

local info = glow.info()
print(string.format("%s; kernels %s; %d floats; ns per element, medians of %d rounds of %d ms",
  bench.cpu_model(), info.isa, n, opts.reps, opts.ms))
print()
print("| op | 1 thread ns | 2 threads ns |")
print("|---|---|---|")
local worst, worst_name = 0, ""
for _, r in ipairs(results) do
  print(string.format("| %s | %.2f | %.2f |", r[1], r[2], r[3]))
  if r[2] > worst then worst, worst_name = r[2], r[1] end
end
print()
print(string.format("slowest on 1 thread: %s, %.2f ns per element", worst_name, worst))
