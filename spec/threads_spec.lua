local H = require "spec.helper"
local glow = H.glow

-- glow.set_threads and glow.threads, and results that do not depend on the
-- thread count: each op below runs with 1 and with 2 threads on a size
-- above the one from which its loop goes on threads (glow.info().par_min).
-- The elementwise ops, copies, gathers and scatters compute each element
-- the same way whoever computes it, and the reductions cut their work by
-- the sizes only (csrc/ops.c, DEFINE_REDUCE), so those results are bitwise
-- equal. matmul and conv2d go through OpenBLAS, which promises no such
-- thing: they are compared within the rounding of their sums.

-- run f with 1 thread and with 2, the count restored afterwards (also on an error)
local function one_and_two(f)
  local saved = glow.threads()
  local ok, a, b = pcall(function()
    glow.set_threads(1)
    local r1 = f()
    glow.set_threads(2)
    return r1, f()
  end)
  glow.set_threads(saved)
  if not ok then error(a, 0) end
  return a, b
end

-- a power of 2 at least twice the threshold of the class (and 65536)
local function size(class)
  local n, t = 65536, glow.info().par_min[class]
  while n < 2 * t do n = n * 2 end
  return n
end

local function same_bits(f)
  local a, b = one_and_two(f)
  assert.tensor_equal(a, b)
end

describe("glow.set_threads", function()
  local saved
  before_each(function() saved = glow.threads() end)
  after_each(function() glow.set_threads(saved) end)

  it("sets the threads of glow's loops and of OpenBLAS to one count, which glow.threads reads", function()
    glow.set_threads(1)
    assert.equal(1, glow.threads())
    assert.equal(1, glow.info().omp_threads)
    assert.equal(1, glow.info().blas_threads)
    glow.set_threads(2)
    assert.equal(2, glow.threads())
    assert.equal(2, glow.info().omp_threads)
    assert.equal(2, glow.info().blas_threads)
  end)

  it("refuses a count that is not an integer from 1", function()
    for _, bad in ipairs { 0, -1, 1.5, "two" } do
      local ok, e = pcall(glow.set_threads, bad)
      assert.is_false(ok)
      assert.matches("set_threads: the thread count must be an integer in 1..4096, got " .. tostring(bad), e, 1, true)
    end
    assert.equal(saved, glow.threads())
  end)

  it("reports the sizes from which each class of op runs on threads", function()
    local p = glow.info().par_min
    for _, class in ipairs { "cheap", "math", "reduce", "gather" } do
      assert.is_true(math.type(p[class]) == "integer" and p[class] >= 1)
    end
  end)
end)

describe("threads that follow the load", function()
  -- a fresh process each: whether adapting is on is decided from its environment
  local function probe(env, code)
    local cmd = string.format("cd %q && %s LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
      .. "lua5.4 -e %q 2>&1", H.root, env, os.getenv("GLOW_BUILD") or (H.root .. "build"), code)
    local p = io.popen(cmd)
    local out = p:read("a")
    p:close()
    return out
  end

  it("adapt unless OMP_NUM_THREADS, glow.set_threads or GLOW_ADAPT_THREADS chose otherwise", function()
    -- and the spin count glow gives OpenMP stays out of the environment children see
    local report = "local g = require 'glow'; io.write(tostring(g.info().threads_adapt), ' ', "
      .. "tostring(os.getenv('GOMP_SPINCOUNT')), ' ', tostring(os.getenv('OMP_WAIT_POLICY')))"
    for _, case in ipairs {
      { "env -u OMP_NUM_THREADS -u GLOW_ADAPT_THREADS -u GOMP_SPINCOUNT", "true nil nil" },
      { "env -u GLOW_ADAPT_THREADS -u GOMP_SPINCOUNT OMP_NUM_THREADS=2", "false nil nil" },
      { "env -u GOMP_SPINCOUNT OMP_NUM_THREADS=2 GLOW_ADAPT_THREADS=1", "true nil nil" },
      { "env -u OMP_NUM_THREADS -u GOMP_SPINCOUNT GLOW_ADAPT_THREADS=0", "false nil nil" },
      { "env -u OMP_NUM_THREADS -u GLOW_ADAPT_THREADS GOMP_SPINCOUNT=5", "true 5 nil" },
    } do
      assert.equal(case[2], probe(case[1], report), case[1])
    end
    assert.equal("false 1", probe("env -u OMP_NUM_THREADS -u GLOW_ADAPT_THREADS",
      "local g = require 'glow'; g.set_threads(1); io.write(tostring(g.info().threads_adapt), ' ', g.threads())"))
  end)

  it("leave the cores a busy process takes, and refuse a non-boolean switch", function()
    local saved, was = glow.threads(), glow.adapt_threads()
    local pid = io.popen("sh -c 'echo $$; exec sh -c \"while :; do :; done\"' &"):read("l")
    local ok, err = pcall(function()
      glow.set_threads(math.max(2, saved))
      assert.is_false(glow.adapt_threads())
      assert.is_true(glow.adapt_threads(true))
      -- work on the threads between the calls: with a core taken, they wait for it,
      -- and the count goes down (on a machine with cores to spare it need not)
      local core = require("glow.core")
      local a = glow.randn({ 1, 1, 384, 384 }, 1, 1)
      local n = core.fit_threads()
      for _ = 1, 4 do
        local t0 = core.now()
        while core.now() - t0 < 0.25 do core.conv2d_forward(a, a) end
        n = core.fit_threads()
      end
      -- one more task is runnable all the time: at most the other cores (at least 1)
      local online = tonumber(io.popen("getconf _NPROCESSORS_ONLN"):read("l"))
      assert.is_true(n >= 1 and n <= math.max(1, online - 1), "threads " .. n .. " of " .. online)
      assert.equal(n, glow.threads())
      assert.equal(math.max(2, saved), glow.info().threads_wanted)
      assert.is_false(glow.adapt_threads(false))
      assert.equal(math.max(2, saved), glow.threads()) -- off: back to the count asked for
      assert.matches("adapt_threads: on must be a boolean or nil, got 1", select(2, pcall(glow.adapt_threads, 1)))
    end)
    os.execute("kill " .. tostring(tonumber(pid)) .. " 2>/dev/null")
    glow.set_threads(saved)
    glow.adapt_threads(was)
    if not ok then error(err, 0) end
  end)
end)

describe("results across thread counts", function()
  describe("unary ops", function()
    it("are bitwise the same on 1 and 2 threads", function()
      local n = math.max(size("math"), size("cheap"))
      local x = glow.randn({ n }, 1, 4)
      local p = x:abs() + 0.01
      for _, name in ipairs { "exp", "expm1", "tanh", "sigmoid", "log_sigmoid", "softplus", "elu", "relu", "abs",
        "neg", "floor", "ceil", "round", "sign" } do
        same_bits(function() return x[name](x) end)
      end
      for _, name in ipairs { "log", "log1p", "sqrt" } do same_bits(function() return p[name](p) end) end
      same_bits(function() return p:pow(1.5) end)
      same_bits(function() return x:pow(3) end)
      same_bits(function() return x:clamp(-1, 1) end)
    end)
  end)

  describe("binary ops, where and copies", function()
    it("are bitwise the same on 1 and 2 threads, broadcasting or not", function()
      local n = size("cheap")
      local a = glow.randn({ n // 64, 64 }, 1, 1)
      local b, c, d = glow.randn({ 64 }, 2, 1), glow.randn({ n // 64, 1 }, 3, 1), glow.randn({ n // 64, 64 }, 4, 1)
      same_bits(function() return a + b end)
      same_bits(function() return a * c end)
      same_bits(function() return a / d end)
      same_bits(function() return glow.maximum(a, b) end)
      same_bits(function() return a:lt(c) end)
      same_bits(function() return glow.where(a:gt(0), a, c) end)
      same_bits(function() return a:transpose(1, 2) end)
      same_bits(function() return glow.cat({ a, d }, 2) end)
      same_bits(function() return a:narrow(2, 3, 40) end)
      same_bits(function() return b:expand({ n // 64, 64 }) end)
    end)
  end)

  describe("reductions", function()
    local n = size("reduce")
    -- one case per layout of DEFINE_REDUCE: a long reduction into few
    -- outputs (cut into chunks), a wide one (outer 1), rows (inner 1), and
    -- the general one; and the whole tensor
    local layouts = {
      { { n // 16, 16 }, 1 },
      { { 64, n // 64 }, 1 },
      { { n // 64, 64 }, 2 },
      { { 16, n // 256, 16 }, 2 },
      { { n }, 1 },
    }
    for _, l in ipairs(layouts) do
      local shape, dim = l[1], l[2]
      it(string.format("sum, mean, max and logsumexp of {%s} over dim %d are bitwise the same on 1 and 2 threads",
        table.concat(shape, ", "), dim), function()
        local x = glow.randn(shape, 5, 2)
        for _, name in ipairs { "sum", "mean", "max", "logsumexp" } do
          same_bits(function() return x[name](x, dim) end)
        end
      end)
    end
  end)

  describe("gather and scatter", function()
    it("index_select, index_add, gather and scatter_add are bitwise the same on 1 and 2 threads", function()
      local n = size("gather")
      local rows = n // 16
      local x = glow.randn({ rows, 16 }, 6, 1)
      local idx = (glow.rand({ rows }, 7):scale_(rows)):floor() + 1
      same_bits(function() return x:index_select(1, idx) end)
      same_bits(function() return glow.zeros({ rows, 16 }):index_add_(1, idx, x) end)
      local wide = glow.randn({ 16, rows }, 8, 1)
      local gidx = (glow.rand({ 16, rows }, 9):scale_(rows)):floor() + 1
      same_bits(function() return wide:gather(2, gidx) end)
      same_bits(function() return glow.zeros({ 16, rows }):scatter_add_(2, gidx, wide) end)
      local tall_idx = (glow.rand({ rows, 16 }, 10):scale_(rows)):floor() + 1
      same_bits(function() return x:gather(1, tall_idx) end)
      same_bits(function() return glow.zeros({ rows, 16 }):scatter_add_(1, tall_idx, x) end)
    end)
  end)

  describe("matmul and conv2d", function()
    it("agree on 1 and 2 threads within the rounding of their sums", function()
      local a, b = glow.randn({ 192, 256 }, 11, 1), glow.randn({ 256, 160 }, 12, 1)
      local y1, y2 = one_and_two(function() return glow.matmul(a, b) end)
      assert.tensor_near(y1, y2, H.rtol(256))
      local ba, bb = glow.randn({ 64, 24, 32 }, 13, 1), glow.randn({ 32, 24 }, 14, 1)
      y1, y2 = one_and_two(function() return glow.matmul(ba, bb) end)
      assert.tensor_near(y1, y2, H.rtol(32))
      local x = glow.randn({ 4, 24, 24, 16 }, 15, 1)
      for _, k in ipairs { 1, 3, 5 } do
        local w = glow.randn({ k, k, 16, 24 }, 16 + k, 0.2)
        y1, y2 = one_and_two(function() return glow.conv2d(x, w) end)
        assert.tensor_near(y1, y2, H.rtol(k * k * 16))
      end
    end)
  end)
end)
