--- Where a parallel region pays: each class of op of csrc/ops.c (cheap
--- elementwise and copies, transcendental unary ops, reductions,
--- gather/scatter) at sizes from 4,096 to 1,048,576 elements, on 1 thread
--- and on 2 threads, with every loop forced onto threads (a build with
--- GLOW_PAR_ALWAYS: bench/par.sh makes it). Prints microseconds per call
--- (the median and the least of the calls, each timed alone, over several
--- passes: on a machine that other work keeps busy, a thread that the
--- kernel takes off its core for a time slice stalls the whole region for
--- milliseconds, which the median shows and the least filters out) and
--- the speed-ups of 2 threads; a class's threshold in ops.c is the size
--- from which 2 threads win.
---
---   sh bench/par.sh [--passes 3] [--ms 50]
local glow = require "glow"
local bench = require "bench_util"

local opts = bench.options("par.lua", { passes = 3, ms = 50 }, arg)

local SIZES = { 4096, 16384, 32768, 65536, 131072, 262144, 1048576 }

-- each case: class, name, setup(n) -> the function to time
local CASES = {
  { "cheap", "add {n} + {n}", function(n)
    local a, b = glow.randn({ n }, 1, 1), glow.randn({ n }, 2, 1)
    return function() return a + b end
  end },
  { "cheap", "add {n/64, 64} + {64}", function(n)
    local a, b = glow.randn({ n // 64, 64 }, 1, 1), glow.randn({ 64 }, 2, 1)
    return function() return a + b end
  end },
  { "cheap", "lt {n} {n}", function(n)
    local a, b = glow.randn({ n }, 1, 1), glow.randn({ n }, 2, 1)
    return function() return a:lt(b) end
  end },
  { "cheap", "relu {n}", function(n)
    local a = glow.randn({ n }, 1, 1)
    return function() return a:relu() end
  end },
  { "cheap", "transpose {n/64, 64}", function(n)
    local a = glow.randn({ n // 64, 64 }, 1, 1)
    return function() return a:transpose(1, 2) end
  end },
  { "cheap", "cat 2 x {n/128, 64}", function(n)
    local a, b = glow.randn({ n // 128, 64 }, 1, 1), glow.randn({ n // 128, 64 }, 2, 1)
    return function() return glow.cat({ a, b }, 2) end
  end },
  { "math", "exp {n}", function(n)
    local a = glow.randn({ n }, 1, 1)
    return function() return a:exp() end
  end },
  { "math", "tanh {n}", function(n)
    local a = glow.randn({ n }, 1, 1)
    return function() return a:tanh() end
  end },
  { "math", "softplus {n}", function(n)
    local a = glow.randn({ n }, 1, 1)
    return function() return a:softplus() end
  end },
  { "math", "pow {n}, 1.5", function(n)
    local a = glow.rand({ n }, 1) + 0.5
    return function() return a:pow(1.5) end
  end },
  { "reduce", "sum {n/16, 16} dim 1 (chunks)", function(n)
    local a = glow.randn({ n // 16, 16 }, 1, 1)
    return function() return a:sum(1) end
  end },
  { "reduce", "sum {64, n/64} dim 1 (columns)", function(n)
    local a = glow.randn({ 64, n // 64 }, 1, 1)
    return function() return a:sum(1) end
  end },
  { "reduce", "sum {n/64, 64} dim 2 (rows)", function(n)
    local a = glow.randn({ n // 64, 64 }, 1, 1)
    return function() return a:sum(2) end
  end },
  { "reduce", "sum {16, n/256, 16} dim 2", function(n)
    local a = glow.randn({ 16, n // 256, 16 }, 1, 1)
    return function() return a:sum(2) end
  end },
  { "reduce", "logsumexp {n/64, 64} dim 2", function(n)
    local a = glow.randn({ n // 64, 64 }, 1, 1)
    return function() return a:logsumexp(2) end
  end },
  { "gather", "index_select {n/16, 16} dim 1", function(n)
    local a = glow.randn({ n // 16, 16 }, 1, 1)
    local idx = glow.rand({ n // 16 }, 3):scale_(n // 16):floor() + 1
    return function() return a:index_select(1, idx) end
  end },
  { "gather", "gather {16, n/16} dim 2", function(n)
    local a = glow.randn({ 16, n // 16 }, 1, 1)
    local idx = glow.rand({ 16, n // 16 }, 3):scale_(n // 16):floor() + 1
    return function() return a:gather(2, idx) end
  end },
  { "gather", "scatter_add {16, n/16} dim 2", function(n)
    local a, src = glow.zeros({ 16, n // 16 }), glow.randn({ 16, n // 16 }, 2, 1)
    local idx = glow.rand({ 16, n // 16 }, 3):scale_(n // 16):floor() + 1
    return function() return a:scatter_add_(2, idx, src) end
  end },
}

-- per-call times in microseconds, each call timed alone, appended to
-- samples, for opts.ms milliseconds (at least 20 calls)
local function time(f, samples)
  f()
  local t0, k = glow.core.now(), 0
  repeat
    local t = glow.core.now()
    f()
    samples[#samples + 1] = (glow.core.now() - t) * 1e6
    k = k + 1
  until k >= 20 and glow.core.now() - t0 >= opts.ms / 1000
end

local function least(t)
  local m = math.huge
  for _, v in ipairs(t) do m = math.min(m, v) end
  return m
end

local saved = glow.threads()
local info = glow.info()
-- passes over every case, so that each is measured at several moments
local res = {}
for _ = 1, opts.passes do
  for ci, c in ipairs(CASES) do
    for si, n in ipairs(SIZES) do
      local key = ci * 100 + si
      res[key] = res[key] or { {}, {} }
      local f = c[3](n)
      glow.set_threads(1)
      time(f, res[key][1])
      glow.set_threads(2)
      time(f, res[key][2])
      collectgarbage()
    end
  end
end
glow.set_threads(saved)

print(string.format("%s; kernels %s; every loop on threads (GLOW_PAR_ALWAYS); us per call, %d passes of %d ms",
  bench.cpu_model(), info.isa, opts.passes, opts.ms))
print()
print("| class | op | elements | 1 thread us (median, least) | 2 threads us (median, least) "
  .. "| speed-up (median, least) |")
print("|---|---|---|---|---|---|")
for ci, c in ipairs(CASES) do
  for si, n in ipairs(SIZES) do
    local r = res[ci * 100 + si]
    local m1, b1 = bench.median(r[1]), least(r[1])
    local m2, b2 = bench.median(r[2]), least(r[2])
    print(string.format("| %s | %s | %d | %.1f, %.1f | %.1f, %.1f | %.2fx, %.2fx |", c[1], c[2], n, m1, b1, m2, b2,
      m1 / m2, b1 / b2))
  end
end
