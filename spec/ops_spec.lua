local H = require "spec.helper"
local glow = H.glow

-- Every op of glow.tensor against a naive reference written here over flat
-- Lua arrays and multi-indices.

local function numel(s)
  local n = 1
  for _, v in ipairs(s) do n = n * v end
  return n
end

-- the multi-index (1-based) of flat index i (1-based) in shape s, and back
local function unflat(i, s)
  local idx, r = {}, i - 1
  for d = #s, 1, -1 do
    idx[d] = r % s[d] + 1
    r = r // s[d]
  end
  return idx
end

local function flat(idx, s)
  local f = 0
  for d = 1, #s do f = f * s[d] + (idx[d] - 1) end
  return f + 1
end

-- a tensor of shape s whose element at multi-index idx is fn(idx)
local function build(s, fn)
  local v = {}
  for i = 1, numel(s) do v[i] = fn(unflat(i, s)) end
  return glow.Tensor.from(v, s)
end

local function at(t, idx) return t:totable()[flat(idx, t:shape())] end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok)
  return e
end

local function sigmoid(x) return 1 / (1 + math.exp(-x)) end

describe("glow.tensor ops", function()
  describe("elementwise", function()
    local x = H.data({ 2, 3, 4 }, 1)
    local p = glow.rand({ 2, 3, 4 }, 2) + 0.1
    local ref = {
      exp = math.exp, log1p = function(v) return math.log(1 + v) end, expm1 = function(v) return math.exp(v) - 1 end,
      abs = math.abs, neg = function(v) return -v end, sigmoid = sigmoid,
      log_sigmoid = function(v) return math.log(sigmoid(v)) end, tanh = function(v)
        return (math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v))
      end,
      softplus = function(v) return math.log(1 + math.exp(v)) end, relu = function(v) return math.max(v, 0) end,
      elu = function(v) return v > 0 and v or math.exp(v) - 1 end,
    }
    for name, f in pairs(ref) do
      it(name .. " matches the reference", function()
        assert.tensor_near(build(x:shape(), function(i) return f(at(x, i)) end), x[name](x), 1e-6, 1e-7)
        assert.tensor_near(x[name](x), glow[name](x), 0)
      end)
    end
    it("log, sqrt, pow and clamp match the reference", function()
      assert.tensor_near(build(p:shape(), function(i) return math.log(at(p, i)) end), p:log(), 1e-6, 1e-7)
      assert.tensor_near(build(p:shape(), function(i) return math.sqrt(at(p, i)) end), p:sqrt(), 1e-6)
      assert.tensor_near(build(p:shape(), function(i) return at(p, i) ^ 1.5 end), p:pow(1.5), 1e-6)
      assert.tensor_near(build(x:shape(), function(i) return math.min(math.max(at(x, i), -0.1), 0.2) end),
        x:clamp(-0.1, 0.2), 0)
      assert.tensor_near(build(x:shape(), function(i) return math.max(at(x, i), 0) end), x:clamp(0), 0)
    end)
    it("takes elu's alpha, clamp's missing bounds and pow's exponent", function()
      assert.tensor_near(build(x:shape(), function(i)
        local v = at(x, i)
        return v > 0 and v or 0.5 * (math.exp(v) - 1)
      end), x:elu(0.5), 1e-6, 1e-7)
      assert.tensor_near(build(x:shape(), function(i) return math.min(at(x, i), 0.1) end), glow.clamp(x, nil, 0.1), 0)
      assert.tensor_near(x:clone(), x:clamp(), 0)
      assert.tensor_near(build(p:shape(), function(i) return at(p, i) ^ -2 end), glow.pow(p, -2), 1e-6)
    end)
    it("returns new tensors and leaves its input alone", function()
      local before = x:clone()
      local y = x:exp()
      assert.are_not.equal(x, y)
      assert.tensor_equal(before, x) -- untouched: a bitwise compare of the same memory
    end)
    it("names the op when an argument is not what it takes", function()
      assert.matches("exp: argument 1 must be a glow.Tensor, got number", err_of(glow.exp, 5), 1, true)
      assert.matches("sigmoid: argument 1 must be a glow.Tensor, got nil", err_of(glow.sigmoid), 1, true)
      assert.matches("pow: the exponent must be a number, got no value", err_of(x.pow, x), 1, true)
      assert.matches("clamp: the lower bound must be a number, got string", err_of(x.clamp, x, "a"), 1, true)
    end)
    it("stays finite where the naive formula overflows", function()
      local big = glow.Tensor.from({ -200, 200 }, { 2 })
      assert.same({ 0, 1 }, big:sigmoid():totable())
      assert.is_true(big:log_sigmoid():all_finite() and big:softplus():all_finite())
      assert.equal(-200, big:log_sigmoid():get(1))
      -- far in the tails, to full relative precision (1 - sigmoid(20) would round to 0)
      assert.close(sigmoid(-20), glow.Tensor.from({ -20 }, { 1 }):sigmoid():get(1), 1e-6)
      assert.close(math.log(sigmoid(-20)), glow.Tensor.from({ -20 }, { 1 }):log_sigmoid():get(1), 1e-6)
    end)
  end)

  describe("broadcasting binary ops", function()
    local cases = {
      { { 3, 1 }, { 1, 4 } }, { { 2, 3, 4 }, { 4 } }, { { 2, 1, 4 }, { 3, 1 } }, { { 5 }, { 5 } },
    }
    local ops = {
      add = function(a, b) return a + b end, sub = function(a, b) return a - b end,
      mul = function(a, b) return a * b end, div = function(a, b) return a / b end,
      maximum = math.max, minimum = math.min,
    }
    for name, f in pairs(ops) do
      it(name .. " broadcasts numpy-style, with numbers too", function()
        for k, c in ipairs(cases) do
          local a, b = H.data(c[1], k), glow.rand(c[2], k + 10) + 0.5
          local y = glow[name](a, b)
          local s = y:shape()
          local ref = build(s, function(i)
            local function pick(t)
              local ts, j = t:shape(), {}
              for d = 1, #ts do
                local od = #s - #ts + d
                j[d] = ts[d] == 1 and 1 or i[od]
              end
              return at(t, j)
            end
            return f(pick(a), pick(b))
          end)
          assert.tensor_near(ref, y, 1e-6)
        end
        local a = H.data({ 2, 3 }, 3)
        assert.tensor_near(build({ 2, 3 }, function(i) return f(at(a, i), 2) end), glow[name](a, 2), 1e-6)
        assert.tensor_near(build({ 2, 3 }, function(i) return f(2, at(a, i)) end), glow[name](2, a), 1e-6)
      end)
    end
    it("has operators + - * / and unary -", function()
      local a, b = H.data({ 2, 3 }, 1), H.data({ 3 }, 2)
      assert.tensor_near(glow.add(a, b), a + b, 0)
      assert.tensor_near(glow.sub(a, b), a - b, 0)
      assert.tensor_near(glow.mul(a, b), a * b, 0)
      assert.tensor_near(glow.div(a, 2), a / 2, 0)
      assert.tensor_near(glow.sub(1, a), 1 - a, 0)
      assert.tensor_near(a:neg(), -a, 0)
    end)
    it("has numbers on either side of every operator, and a number for two numbers", function()
      local a = glow.rand({ 2, 3 }, 4) + 0.5
      local function ref(f) return build({ 2, 3 }, function(i) return f(at(a, i)) end) end
      assert.tensor_near(ref(function(v) return 3 - v end), 3 - a, 1e-6)
      assert.tensor_near(ref(function(v) return v - 3 end), a - 3, 1e-6)
      assert.tensor_near(ref(function(v) return 3 / v end), 3 / a, 1e-6)
      assert.tensor_near(ref(function(v) return 3 * v end), 3 * a, 1e-6)
      assert.tensor_near(ref(function(v) return v + 3 end), a + 3, 1e-6)
      assert.tensor_near(ref(function(v) return math.max(v, 0.8) end), a:maximum(0.8), 0)
      assert.tensor_near(ref(function(v) return math.min(v, 0.8) end), a:minimum(0.8), 0)
      assert.equal(5, glow.add(2, 3))
    end)
    it("leaves its operands alone; the old add and mul stay in place", function()
      local a, b = H.data({ 2, 3 }, 5), H.data({ 2, 3 }, 6)
      local a0, b0 = a:clone(), b:clone()
      for _, f in ipairs { glow.add, glow.mul, glow.sub, glow.div } do f(a, b) end
      local _ = -a
      assert.tensor_equal(a0, a) -- untouched memory: bitwise
      assert.tensor_equal(b0, b)
      assert.equal(a, a:add_(b))
      assert.tensor_near(glow.add(a0, b0), a, 0)
      assert.equal(a, a:mul_(b))
      assert.tensor_near(glow.mul(glow.add(a0, b0), b0), a, 0)
    end)
    it("propagates NaN through maximum and minimum", function()
      local a = glow.Tensor.from({ 0 / 0, 1, 2 }, { 3 })
      local b = glow.Tensor.from({ 1, 0 / 0, 0 }, { 3 })
      for _, y in ipairs { glow.maximum(a, b), glow.minimum(a, b), glow.maximum(b, a) } do
        local v = y:totable()
        assert.is_true(v[1] ~= v[1] and v[2] ~= v[2])
      end
      assert.same({ 2 }, { glow.maximum(a, b):get(3) })
    end)
    it("names both shapes when they do not broadcast", function()
      assert.matches("add: shapes {2, 3} and {4} do not broadcast", err_of(glow.add, H.data({ 2, 3 }, 1),
        H.data({ 4 }, 2)), 1, true)
      assert.matches("maximum: shapes {3, 1} and {2, 4, 2} do not broadcast", err_of(glow.maximum,
        H.data({ 3, 1 }, 1), H.data({ 2, 4, 2 }, 2)), 1, true)
      assert.matches("where: shapes {3} and {4} do not broadcast", err_of(glow.where, 1, H.data({ 3 }, 1),
        H.data({ 4 }, 2)), 1, true)
      assert.matches("div: argument 2 must be a glow.Tensor or a number, got table", err_of(glow.div,
        H.data({ 3 }, 1), {}), 1, true)
      local x = H.data({ 3 }, 1)
      assert.matches("mul: argument 2 must be a glow.Tensor or a number, got string", err_of(function()
        return x * "a"
      end), 1, true)
    end)
    it("selects with where, broadcasting the mask", function()
      local m = glow.checkerboard({ 2, 2, 3 }, 1)
      local a, b = H.data({ 4, 2, 2, 3 }, 1), H.data({ 3 }, 2)
      local ref = build({ 4, 2, 2, 3 }, function(i)
        return at(m, { i[2], i[3], i[4] }) ~= 0 and at(a, i) or at(b, { i[4] })
      end)
      assert.tensor_near(ref, glow.where(m, a, b), 0)
      local y = glow.where(m, 1, -1)
      assert.tensor_near(build({ 2, 2, 3 }, function(i) return at(m, i) ~= 0 and 1 or -1 end), y, 0)
      assert.tensor_near(build({ 2, 2, 3 }, function(i) return at(m, i) ~= 0 and 2 or at(b, { i[3] }) end),
        glow.where(m, 2, b), 0)
    end)
  end)

  describe("reductions", function()
    local x = H.data({ 2, 3, 4 }, 4)
    local function ref(dims, f, init, post)
      local s, keep = x:shape(), {}
      for d = 1, 3 do keep[d] = s[d] end
      for _, d in ipairs(dims) do keep[d] = 1 end
      return build(keep, function(i)
        local acc, n = init, 0
        for j = 1, numel(s) do
          local m, hit = unflat(j, s), true
          for d = 1, 3 do if keep[d] ~= 1 or s[d] == 1 then hit = hit and m[d] == i[d] end end
          if hit then acc, n = f(acc, at(x, m)), n + 1 end
        end
        return post and post(acc, n) or acc
      end)
    end
    for _, dims in ipairs { { 1 }, { 3 }, { 1, 3 }, { 2, 3 }, { 1, 2, 3 } } do
      it("sum, mean, max and logsumexp over " .. table.concat(dims, ", ") .. " with keepdim", function()
        assert.tensor_near(ref(dims, function(a, v) return a + v end, 0), x:sum(dims, true), 1e-6, 1e-7)
        assert.tensor_near(ref(dims, function(a, v) return a + v end, 0, function(a, n) return a / n end),
          x:mean(dims, true), 1e-6, 1e-7)
        assert.tensor_near(ref(dims, math.max, -math.huge), x:max(dims, true), 0)
        assert.tensor_near(ref(dims, function(a, v) return a + math.exp(v) end, 0, function(a) return math.log(a) end),
          x:logsumexp(dims, true), 1e-6)
      end)
    end
    it("drops the reduced dims without keepdim, counts negative dims from the end, and returns numbers without dims",
      function()
        assert.same({ 2, 3 }, x:sum(-1):shape())
        assert.same({ 3 }, x:mean({ 1, 3 }):shape())
        assert.same({ 1 }, x:sum({ 1, 2, 3 }):shape())
        assert.equal("number", type(x:sum()))
        assert.close(x:sum() / 24, x:mean(), 1e-6, 1e-7)
        assert.close(x:sum({ 1, 2, 3 }):get(1), x:sum(), 1e-6, 1e-7)
        assert.same({ 2, 4 }, x:max(-2):shape())
        assert.same({ 2, 1, 4 }, x:logsumexp(-2, true):shape())
        assert.tensor_near(x:sum({ 1, 3 }), x:sum({ -1, -3 }), 0)
        assert.tensor_near(x:sum({ 1, 3 }, true):reshape({ 3 }), x:sum({ 3, 1 }), 0)
        assert.close(ref({ 1, 2, 3 }, math.max, -math.huge):get(1), x:max(), 0)
        assert.close(x:logsumexp({ 1, 2, 3 }):get(1), x:logsumexp(), 1e-6)
        assert.same({ 2, 3, 4 }, x:sum({}):shape())
      end)
    it("names the op, the dim and the rank when dims are wrong", function()
      assert.matches("sum: dimension 4 out of range for 3 dimensions", err_of(x.sum, x, 4), 1, true)
      assert.matches("mean: dimension -4 out of range for 3 dimensions", err_of(x.mean, x, -4), 1, true)
      assert.matches("logsumexp: dimension 0 out of range for 3 dimensions", err_of(x.logsumexp, x, { 1, 0 }), 1,
        true)
      assert.matches("max: dimension 2 appears twice in dims", err_of(x.max, x, { 2, -2 }), 1, true)
      assert.matches("mean: a dimension must be an integer, got 1.5", err_of(x.mean, x, 1.5), 1, true)
      assert.matches("sum: dims must be an integer or an array of integers, got string", err_of(x.sum, x, "a"), 1,
        true)
      assert.matches("sum: argument 1 must be a glow.Tensor, got number", err_of(glow.sum, 2), 1, true)
    end)
    it("gives logsumexp's limits for infinite inputs and keeps large values finite", function()
      local t = glow.Tensor.from({ -math.huge, -math.huge, -math.huge, -math.huge, math.huge, 2, 1000, 1000, 0 },
        { 3, 3 })
      local v = t:logsumexp(2):totable()
      assert.equal(-math.huge, v[1])
      assert.equal(math.huge, v[2])
      assert.close(1000 + math.log(2), v[3], 1e-6)
    end)
  end)

  describe("large tensors (the parallel paths)", function()
    -- sizes above the 32768 elements where loops go parallel, one per
    -- layout of the reduction: a long one into few outputs, a wide one, one
    -- output per row, outer slices
    local function reduce_ref(t, dim)
      local s, v = t:shape(), t:totable()
      local keep = {}
      for d = 1, #s do keep[d] = d == dim and 1 or s[d] end
      local sum, max, lse = {}, {}, {}
      for i = 1, #v do
        local m = unflat(i, s)
        m[dim] = 1
        local o = flat(m, keep)
        sum[o] = (sum[o] or 0) + v[i]
        max[o] = math.max(max[o] or -math.huge, v[i])
      end
      for i = 1, #v do
        local m = unflat(i, s)
        m[dim] = 1
        local o = flat(m, keep)
        lse[o] = (lse[o] or 0) + math.exp(v[i] - max[o])
      end
      for o = 1, #lse do lse[o] = math.log(lse[o]) + max[o] end
      return glow.Tensor.from(sum, keep), glow.Tensor.from(max, keep), glow.Tensor.from(lse, keep)
    end
    for _, case in ipairs { { { 40000, 3 }, 1 }, { { 400, 100 }, 1 }, { { 3, 20000 }, 2 }, { { 4, 5000, 3 }, 2 } } do
      local s, dim = case[1], case[2]
      it(string.format("sums, maxes and logsumexps {%s} over dim %d", table.concat(s, ", "), dim), function()
        local t = glow.randn(s, dim, 1)
        local sum, max, lse = reduce_ref(t, dim)
        local n = s[dim]
        -- n float additions, each rounding by EPS times a partial sum of
        -- N(0, 1) terms (about sqrt(n)): within rtol(n) * sqrt(n) = 4 n EPS
        assert.tensor_near(sum, t:sum(dim, true), 0, H.rtol(n) * math.sqrt(n))
        assert.tensor_near(max, t:max(dim, true), 0)
        assert.tensor_near(lse, t:logsumexp(dim, true), H.rtol(n))
        -- the result depends on the sizes only: the same call twice is bitwise the same
        assert.tensor_equal(t:sum(dim), t:sum(dim))
      end)
    end
    it("broadcasts, permutes and gathers large tensors as small ones", function()
      local s = { 16, 16, 16, 8 }
      local a, b = H.data(s, 1), H.data({ 16, 1, 1, 8 }, 2)
      local av, bv = a:totable(), b:totable() -- at() would flatten the tensor per element
      local y = a * b
      assert.tensor_near(build(s, function(i)
        return av[flat(i, s)] * bv[flat({ i[1], 1, 1, i[4] }, { 16, 1, 1, 8 })]
      end), y, 1e-6)
      local p = a:permute({ 4, 2, 1, 3 })
      assert.tensor_near(build({ 8, 16, 16, 16 }, function(i) return av[flat({ i[3], i[2], i[4], i[1] }, s)] end), p, 0)
      local v = glow.rand(s, 3):totable()
      for i = 1, #v do v[i] = math.floor(v[i] * 16) + 1 end
      local idx = glow.Tensor.from(v, s)
      local g = a:gather(3, idx)
      assert.tensor_near(build(s, function(i) return av[flat({ i[1], i[2], v[flat(i, s)], i[4] }, s)] end), g, 0)
      -- scattering along dim 3 moves each element within its slice: the slice sums stay
      local sa = glow.zeros(s):scatter_add_(3, idx, a)
      assert.tensor_near(a:sum(3), sa:sum(3), H.rtol(16, 16))
    end)
  end)

  describe("shape ops", function()
    local x = H.data({ 2, 3, 4 }, 5)
    it("permute and transpose move elements", function()
      local y = x:permute({ 3, 1, 2 })
      assert.same({ 4, 2, 3 }, y:shape())
      assert.tensor_near(build({ 4, 2, 3 }, function(i) return at(x, { i[2], i[3], i[1] }) end), y, 0)
      assert.tensor_near(x:permute({ 1, 3, 2 }), x:transpose(2, 3), 0)
      assert.tensor_near(x:permute({ 1, 3, 2 }), x:transpose(-1, -2), 0)
      assert.tensor_near(x:permute({ 3, 2, 1 }), glow.permute(x, { -1, 2, 1 }), 0)
      assert.tensor_near(x, x:transpose(2, 2), 0)
      assert.matches("permute: dimension 2 appears twice", err_of(x.permute, x, { 2, 2, 1 }), 1, true)
      assert.matches("permute: a permutation of the 3 dimensions of {2, 3, 4} is needed",
        err_of(x.permute, x, { 1, 2 }), 1, true)
      assert.matches("transpose: dimension 5 out of range for 3 dimensions", err_of(x.transpose, x, 1, 5), 1, true)
    end)
    it("reshape views with one -1", function()
      assert.same({ 6, 4 }, x:reshape({ -1, 4 }):shape())
      assert.tensor_near(x, x:reshape({ 24 }):reshape({ 2, 3, 4 }), 0)
      local c = x:clone()
      local v = c:reshape({ 4, -1 })
      assert.same({ 4, 6 }, v:shape())
      v:set(5, 42) -- a view: the write shows in the original
      assert.equal(42, c:get(5))
      assert.matches("reshape: {2, 3, 4} (24 elements) does not fit {5, 5} (25)", err_of(x.reshape, x, { 5, 5 }), 1,
        true)
      assert.matches("reshape: {2, 3, 4} (24 elements) does not fit {-1, 5}", err_of(x.reshape, x, { -1, 5 }), 1,
        true)
      assert.matches("reshape: only one dimension may be -1", err_of(x.reshape, x, { -1, -1 }), 1, true)
      assert.matches("reshape: dimension 2 of {4, 0} must be a positive integer or -1",
        err_of(x.reshape, x, { 4, 0 }), 1, true)
    end)
    it("narrow, cat, chunk and narrow_add take and put slices", function()
      local n = x:narrow(2, 2, 2)
      assert.tensor_near(build({ 2, 2, 4 }, function(i) return at(x, { i[1], i[2] + 1, i[3] }) end), n, 0)
      local c = glow.cat({ x:narrow(3, 1, 1), x:narrow(3, 2, 3) }, 3)
      assert.tensor_near(x, c, 0)
      local parts = x:chunk(3, 2)
      assert.equal(3, #parts)
      assert.tensor_near(x, glow.cat(parts, 2), 0)
      assert.tensor_near(x, glow.cat(x:chunk(2), 1), 0) -- dims default to 1
      assert.tensor_near(x, glow.cat({ x:narrow(-1, 1, 3), x:narrow(-1, 4, 1) }, -1), 0)
      local function sizes(size, count)
        local out = {}
        for i, q in ipairs(glow.Tensor { size }:chunk(count, -1)) do out[i] = q:numel() end
        return out
      end
      -- torch.chunk's sizes: ceil(size / n) each, the last takes the rest, fewer when it runs out
      assert.same({ 2, 2, 2 }, sizes(6, 4))
      assert.same({ 2, 2, 1 }, sizes(5, 3))
      assert.same({ 1, 1, 1 }, sizes(3, 4))
      assert.same({ 7 }, sizes(7, 1))
      assert.matches("chunk: the number of chunks must be at least 1, got 0", err_of(x.chunk, x, 0, 1), 1, true)
      assert.matches("chunk: dimension 4 out of range for 3 dimensions", err_of(x.chunk, x, 2, 4), 1, true)
      local z0 = glow.ones({ 2, 3, 4 })
      local z = z0:narrow_add_(3, 2, x:narrow(3, 2, 2))
      assert.equal(z0, z) -- in place, returns t
      assert.tensor_near(build({ 2, 3, 4 }, function(i) return 1 + ((i[3] == 2 or i[3] == 3) and at(x, i) or 0) end),
        z, 1e-7)
      assert.matches("narrow_add: {2, 3, 2} does not fit in {2, 3, 4} at element 4 of dimension 3",
        err_of(z.narrow_add_, z, 3, 4, x:narrow(3, 2, 2)), 1, true)
      assert.matches("narrow: elements 3..5 of dimension 2 lie outside {2, 3, 4}", err_of(x.narrow, x, 2, 3, 3), 1,
        true)
      assert.matches("cat: shapes {2, 3, 4} and {2, 2, 4} differ outside dimension 3",
        err_of(glow.cat, { x, x:narrow(2, 1, 2) }, 3), 1, true)
      assert.matches("cat: element 2 of the list is not a glow.Tensor", err_of(glow.cat, { x, 1 }, 1), 1, true)
      assert.matches("cat: the list is empty", err_of(glow.cat, {}, 1), 1, true)
    end)
    it("expand and sum_to broadcast and reduce back", function()
      local b = H.data({ 3, 1 }, 6)
      local e = b:expand({ 2, 3, 4 })
      assert.tensor_near(build({ 2, 3, 4 }, function(i) return at(b, { i[2], 1 }) end), e, 0)
      assert.tensor_near(b:clone():scale_(8), e:sum_to({ 3, 1 }), 1e-6)
      assert.tensor_near(build({ 3, 4 }, function(i) return at(e, { 1, i[1], i[2] }) + at(e, { 2, i[1], i[2] }) end),
        e:sum_to({ 3, 4 }), 1e-6)
      assert.tensor_near(build({ 1, 4 }, function(i)
        local acc = 0
        for a = 1, 2 do for c = 1, 3 do acc = acc + at(e, { a, c, i[2] }) end end
        return acc
      end), e:sum_to({ 1, 4 }), 1e-6)
      assert.matches("sum_to: shape {2, 4} does not broadcast to {2, 3, 4}", err_of(e.sum_to, e, { 2, 4 }), 1, true)
      assert.matches("expand: shape {3, 1} does not broadcast to {2, 2, 4}", err_of(b.expand, b, { 2, 2, 4 }), 1, true)
    end)
  end)

  describe("indexing", function()
    local x = H.data({ 3, 4 }, 7)
    it("index_select and index_add select rows and add them back", function()
      local y = x:index_select(1, { 3, 1, 3 })
      assert.tensor_near(build({ 3, 4 }, function(i) return at(x, { ({ 3, 1, 3 })[i[1]], i[2] }) end), y, 0)
      local z = glow.zeros({ 3, 4 }):index_add_(1, { 3, 1, 3 }, y)
      assert.tensor_near(build({ 3, 4 }, function(i)
        return i[1] == 3 and 2 * at(x, i) or (i[1] == 1 and at(x, i) or 0)
      end), z, 1e-7)
      assert.matches("index_select: index 5 at position 1 is not an integer in 1..3",
        err_of(x.index_select, x, 1, { 5 }), 1, true)
      local t = x:index_select(-1, glow.Tensor.from({ 4, 2 }, { 2 }))
      assert.tensor_near(build({ 3, 2 }, function(i) return at(x, { i[1], ({ 4, 2 })[i[2]] }) end), t, 0)
      assert.matches("index_select: no indices", err_of(x.index_select, x, 1, {}), 1, true)
      assert.matches("index_select: index 1.5 at position 2 is not an integer in 1..4",
        err_of(x.index_select, x, 2, { 1, 1.5 }), 1, true)
      assert.matches("index_add: source {3, 4} does not fit {3, 4} with 2 indices along dimension 1",
        err_of(z.index_add_, z, 1, { 1, 2 }, y), 1, true)
    end)
    it("gather and scatter_add follow an index tensor", function()
      local idx = glow.Tensor.from({ 2, 1, 4, 4, 3, 3 }, { 3, 2 })
      local g = x:gather(2, idx)
      assert.tensor_near(build({ 3, 2 }, function(i) return at(x, { i[1], at(idx, i) }) end), g, 0)
      local s = glow.zeros({ 3, 4 }):scatter_add_(2, idx, g)
      assert.close(g:sum(), s:sum(), 1e-6, 1e-7)
      assert.equal(2 * at(x, { 2, 4 }), at(s, { 2, 4 }))
      assert.tensor_near(build({ 3, 4 }, function(i)
        local acc = 0
        for r = 1, 3 do for c = 1, 2 do
          if r == i[1] and at(idx, { r, c }) == i[2] then acc = acc + at(g, { r, c }) end
        end end
        return acc
      end), s, 1e-7)
      assert.tensor_near(g, x:gather(-1, idx), 0)
      local idx1 = glow.Tensor.from({ 3, 1, 2, 3 }, { 2, 2 })
      assert.tensor_near(build({ 2, 2 }, function(i) return at(x, { at(idx1, i), i[2] }) end), x:gather(1, idx1), 0)
      assert.matches("gather: index {3, 2, 1} does not fit {3, 4}", err_of(x.gather, x, 2, glow.ones({ 3, 2, 1 })), 1,
        true)
      assert.matches("gather: index 5 at position 3 is not an integer in 1..4",
        err_of(x.gather, x, 2, glow.Tensor.from({ 1, 1, 5 }, { 3, 1 })), 1, true)
      assert.matches("scatter_add: source {2, 3} and index {3, 2} differ in shape",
        err_of(s.scatter_add_, s, 2, idx, glow.ones({ 2, 3 })), 1, true)
    end)
    it("makes checkerboards and one-hot rows", function()
      assert.same({ 1, 1, 0, 0, 0, 0, 1, 1 }, glow.checkerboard({ 2, 2, 2 }, 0):totable())
      assert.same({ 0, 1, 1, 0 }, glow.checkerboard({ 1, 2, 2, 1 }, 1):totable())
      assert.same({ 0, 1, 0, 1, 0, 0 }, glow.one_hot({ 1, 0 }, 3):totable())
      assert.matches("one_hot: labels", err_of(glow.one_hot, { 3 }, 3), 1, true)
      for parity = 0, 1 do
        assert.tensor_near(build({ 2, 3, 5, 2 }, function(i) return (i[2] + i[3] + parity) % 2 == 0 and 1 or 0 end),
          glow.checkerboard({ 2, 3, 5, 2 }, parity), 0)
      end
      local labels = { 2, 0, 4, 4 }
      assert.tensor_near(build({ 4, 5 }, function(i) return labels[i[1]] + 1 == i[2] and 1 or 0 end),
        glow.one_hot(labels, 5), 0)
      assert.matches("checkerboard: parity must be 0 or 1, got 2", err_of(glow.checkerboard, { 2, 2, 1 }, 2), 1, true)
      assert.matches("checkerboard: shape must be {h, w, c} or {n, h, w, c}, got 2 dimensions",
        err_of(glow.checkerboard, { 2, 2 }, 0), 1, true)
    end)
    it("makes zeros, ones and filled tensors", function()
      assert.same({ 0, 0 }, glow.zeros({ 2 }):totable())
      assert.same({ 1, 1, 1 }, glow.ones({ 3 }):totable())
      assert.same({ 2.5, 2.5 }, glow.full({ 1, 2 }, 2.5):totable())
      assert.matches("full: the value must be a number, got string", err_of(glow.full, { 2 }, "a"), 1, true)
    end)
  end)
end)
