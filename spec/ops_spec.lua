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
    it("names both shapes when they do not broadcast", function()
      assert.matches("add: shapes {2, 3} and {4} do not broadcast", err_of(glow.add, H.data({ 2, 3 }, 1),
        H.data({ 4 }, 2)), 1, true)
    end)
    it("selects with where, broadcasting the mask", function()
      local m = glow.checkerboard({ 2, 2, 3 }, 1)
      local a, b = H.data({ 4, 2, 2, 3 }, 1), H.data({ 3 }, 2)
      local ref = build({ 4, 2, 2, 3 }, function(i)
        return at(m, { i[2], i[3], i[4] }) ~= 0 and at(a, i) or at(b, { i[4] })
      end)
      assert.tensor_near(ref, glow.where(m, a, b), 0)
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
        assert.matches("sum: dimension 4 out of range for 3 dimensions", err_of(x.sum, x, 4), 1, true)
      end)
  end)

  describe("shape ops", function()
    local x = H.data({ 2, 3, 4 }, 5)
    it("permute and transpose move elements", function()
      local y = x:permute({ 3, 1, 2 })
      assert.same({ 4, 2, 3 }, y:shape())
      assert.tensor_near(build({ 4, 2, 3 }, function(i) return at(x, { i[2], i[3], i[1] }) end), y, 0)
      assert.tensor_near(x:permute({ 1, 3, 2 }), x:transpose(2, 3), 0)
    end)
    it("reshape views with one -1", function()
      assert.same({ 6, 4 }, x:reshape({ -1, 4 }):shape())
      assert.tensor_near(x, x:reshape({ 24 }):reshape({ 2, 3, 4 }), 0)
    end)
    it("narrow, cat, chunk and narrow_add take and put slices", function()
      local n = x:narrow(2, 2, 2)
      assert.tensor_near(build({ 2, 2, 4 }, function(i) return at(x, { i[1], i[2] + 1, i[3] }) end), n, 0)
      local c = glow.cat({ x:narrow(3, 1, 1), x:narrow(3, 2, 3) }, 3)
      assert.tensor_near(x, c, 0)
      local parts = x:chunk(3, 2)
      assert.equal(3, #parts)
      assert.tensor_near(x, glow.cat(parts, 2), 0)
      local z = glow.zeros({ 2, 3, 4 }):narrow_add(3, 2, x:narrow(3, 2, 2))
      assert.tensor_near(build({ 2, 3, 4 }, function(i) return (i[3] == 2 or i[3] == 3) and at(x, i) or 0 end), z, 0)
      assert.matches("narrow: elements 3..5 of dimension 2 lie outside {2, 3, 4}", err_of(x.narrow, x, 2, 3, 3), 1,
        true)
      assert.matches("cat: shapes {2, 3, 4} and {2, 2, 4} differ outside dimension 3",
        err_of(glow.cat, { x, x:narrow(2, 1, 2) }, 3), 1, true)
    end)
    it("expand and sum_to broadcast and reduce back", function()
      local b = H.data({ 3, 1 }, 6)
      local e = b:expand({ 2, 3, 4 })
      assert.tensor_near(build({ 2, 3, 4 }, function(i) return at(b, { i[2], 1 }) end), e, 0)
      assert.tensor_near(b:scale(8), e:sum_to({ 3, 1 }), 1e-6)
      assert.matches("expand: shape {3, 1} does not broadcast to {2, 2, 4}", err_of(b.expand, b, { 2, 2, 4 }), 1, true)
    end)
  end)

  describe("indexing", function()
    local x = H.data({ 3, 4 }, 7)
    it("index_select and index_add select rows and add them back", function()
      local y = x:index_select(1, { 3, 1, 3 })
      assert.tensor_near(build({ 3, 4 }, function(i) return at(x, { ({ 3, 1, 3 })[i[1]], i[2] }) end), y, 0)
      local z = glow.zeros({ 3, 4 }):index_add(1, { 3, 1, 3 }, y)
      assert.tensor_near(build({ 3, 4 }, function(i)
        return i[1] == 3 and 2 * at(x, i) or (i[1] == 1 and at(x, i) or 0)
      end), z, 1e-7)
      assert.matches("index_select: index 5 at position 1 is not an integer in 1..3",
        err_of(x.index_select, x, 1, { 5 }), 1, true)
    end)
    it("gather and scatter_add follow an index tensor", function()
      local idx = glow.Tensor.from({ 2, 1, 4, 4, 3, 3 }, { 3, 2 })
      local g = x:gather(2, idx)
      assert.tensor_near(build({ 3, 2 }, function(i) return at(x, { i[1], at(idx, i) }) end), g, 0)
      local s = glow.zeros({ 3, 4 }):scatter_add(2, idx, g)
      assert.close(g:sum(), s:sum(), 1e-6, 1e-7)
      assert.equal(2 * at(x, { 2, 4 }), at(s, { 2, 4 }))
    end)
    it("makes checkerboards and one-hot rows", function()
      assert.same({ 1, 1, 0, 0, 0, 0, 1, 1 }, glow.checkerboard({ 2, 2, 2 }, 0):totable())
      assert.same({ 0, 1, 1, 0 }, glow.checkerboard({ 1, 2, 2, 1 }, 1):totable())
      assert.same({ 0, 1, 0, 1, 0, 0 }, glow.one_hot({ 1, 0 }, 3):totable())
      assert.matches("one_hot: labels", err_of(glow.one_hot, { 3 }, 3), 1, true)
    end)
  end)
end)
