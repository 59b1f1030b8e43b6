local H = require "spec.helper"
local glow = H.glow

-- floor, ceil, round and sign, and the comparisons lt, le, gt, ge, eq and
-- ne: against a naive Lua reference on a few hundred values (specials,
-- halves, the edge of float's integers, denormals), with broadcasting, and
-- how autograd treats them. These are exact (no rounding), so they are
-- compared exactly, the sign of a zero included.

local inf, nan = math.huge, 0 / 0

-- a few hundred float32 values: specials, halves and their neighbours,
-- integers near 2^23 and 2^24, denormals, and random ones over many scales
local function values()
  local v = { 0.0, -0.0, inf, -inf, nan, 2 ^ -149, -2 ^ -149, 2 ^ -126, 3.4028234663852886e38,
    -3.4028234663852886e38, 2 ^ 23, 2 ^ 23 + 1, 2 ^ 23 - 0.5, 2 ^ 22 + 0.5, 2 ^ 24, -2 ^ 23 + 0.5, 1e30, -1e30 }
  for k = -6, 6 do
    for _, d in ipairs { 0.5, 0.25, 0.75, 0.49999997, 0.50000006, 0.0 } do
      v[#v + 1] = k + d
      v[#v + 1] = -(k + d)
    end
  end
  local r = glow.randn({ 200 }, 7, 1):totable()
  for i, x in ipairs(r) do v[#v + 1] = x * 10 ^ ((i % 13) - 6) end
  -- through float32, so the reference sees the values the kernels see
  return glow.Tensor.from(v, { #v })
end

local function is_nan(x) return x ~= x end

-- exactly equal, NaN matching NaN and -0 told from +0
local function same(a, b)
  if is_nan(a) or is_nan(b) then return is_nan(a) and is_nan(b) end
  if a == 0 and b == 0 then return 1 / a == 1 / b end
  return a == b
end

-- two tensors equal element by element in the sense of same
local function same_tensor(a, b)
  local at, bt = a:totable(), b:totable()
  assert.same(a:shape(), b:shape())
  for i = 1, #at do
    if not same(at[i], bt[i]) then error(string.format("element %d: %.9g against %.9g", i, at[i], bt[i]), 2) end
  end
end

local function check_unary(name, ref)
  local x = values()
  local got, xs = x[name](x):totable(), x:totable()
  for i, v in ipairs(xs) do
    local want = ref(v)
    if not same(got[i], want) then
      error(string.format("%s(%.9g): got %.9g, expected %.9g", name, v, got[i], want), 2)
    end
  end
  assert.same(x:shape(), x[name](x):shape())
end

-- references on doubles (each float value is exact in a double)
local function floor_ref(v)
  if v ~= v or v == inf or v == -inf then return v end
  local r = math.floor(v) + 0.0
  if r == 0 then return 1 / v < 0 and -0.0 or 0.0 end -- floor(-0) = -0
  return r
end

local function ceil_ref(v)
  if v ~= v or v == inf or v == -inf then return v end
  local r = math.ceil(v) + 0.0
  if r == 0 then return v < 0 and -0.0 or (1 / v < 0 and -0.0 or 0.0) end -- ceil(-0.5) = -0
  return r
end

-- half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0
local function round_ref(v)
  if v ~= v or v == inf or v == -inf then return v end
  local r = math.floor(v + 0.5)
  if r - v == 0.5 and r % 2 ~= 0 then r = r - 1 end
  r = r + 0.0
  if r == 0 then return (v < 0 or 1 / v < 0) and -0.0 or 0.0 end
  return r
end

local function sign_ref(v)
  if v > 0 then return 1.0 elseif v < 0 then return -1.0 end
  return v -- ±0 and NaN stay
end

describe("glow elementwise ops", function()
  describe("floor", function()
    it("matches math.floor on specials, halves and random values, keeping -0", function()
      check_unary("floor", floor_ref)
    end)
  end)

  describe("ceil", function()
    it("matches math.ceil on specials, halves and random values, giving -0 above -1", function()
      check_unary("ceil", ceil_ref)
    end)
  end)

  describe("round", function()
    it("rounds half to even, as torch.round and rintf do", function()
      check_unary("round", round_ref)
      local t = glow.Tensor.from({ 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5 }, { 7 })
      assert.same({ 0, 2, 2, -0.0, -2, -2, 4 }, t:round():totable())
    end)
  end)

  describe("sign", function()
    it("gives -1, 1, and keeps 0 and NaN", function()
      check_unary("sign", sign_ref)
    end)
  end)

  describe("glow.floor, glow.ceil, glow.round and glow.sign", function()
    it("take tensors and autograd values and refuse other arguments", function()
      local x = values()
      for _, name in ipairs { "floor", "ceil", "round", "sign" } do
        same_tensor(x[name](x), glow[name](x))
        local ok, e = pcall(glow[name], 5)
        assert.is_false(ok)
        assert.matches(name .. ": argument 1 must be a glow.Tensor, got number", e, 1, true)
      end
    end)

    it("have a zero gradient under autograd", function()
      local x = glow.Tensor.from({ -1.7, -0.5, 0.2, 1.5, 2.5, 3.9 }, { 2, 3 })
      for _, name in ipairs { "floor", "ceil", "round", "sign" } do
        -- d/dx sum(f(x) * x) = f(x) where f is piecewise constant
        local value, g = glow.autograd.grad(function(v) return (v[name](v) * v):sum() end, x)
        assert.tensor_equal(x[name](x), g[1])
        assert.close((x[name](x) * x):sum(), value, 1e-6)
        local _, g2 = glow.autograd.grad(function(v) return glow[name](v):sum() end, x)
        assert.tensor_equal(glow.zeros({ 2, 3 }), g2[1])
      end
    end)
  end)

  local OPS = {
    lt = function(a, b) return a < b end,
    le = function(a, b) return a <= b end,
    gt = function(a, b) return a > b end,
    ge = function(a, b) return a >= b end,
    eq = function(a, b) return a == b end,
    ne = function(a, b) return a ~= b end,
  }

  for _, name in ipairs { "lt", "le", "gt", "ge", "eq", "ne" } do
    local op = OPS[name]
    describe(name, function()
      it("compares every pair of specials and halves as Lua does, NaN false except in ne", function()
        local v = { 0.0, -0.0, 1.5, -1.5, 0.5, inf, -inf, nan, 2 ^ -149, 3 }
        local n = #v
        local a, b = {}, {}
        for i = 1, n do
          for j = 1, n do
            a[#a + 1], b[#b + 1] = v[i], v[j]
          end
        end
        local got = glow[name](glow.Tensor.from(a, { n, n }), glow.Tensor.from(b, { n, n })):totable()
        for k = 1, #a do
          local want = op(a[k], b[k]) and 1 or 0
          if got[k] ~= want then
            error(string.format("%s(%g, %g): got %g, expected %g", name, a[k], b[k], got[k], want))
          end
        end
      end)

      it("broadcasts tensors and numbers on either side", function()
        local x = values():narrow(1, 1, 24):reshape({ 2, 3, 4 })
        local y = glow.Tensor.from({ 0.5, -0.5, 0.0, nan }, { 4 })
        local z = glow.Tensor.from({ 1, -1, 0.25 }, { 3, 1 })
        local xs, ys, zs = x:totable(), y:totable(), z:totable()
        local r1, r2 = x[name](x, y), glow[name](z, x)
        local r3, r4 = x[name](x, 0.5), glow[name](0.5, x)
        assert.same({ 2, 3, 4 }, r1:shape())
        assert.same({ 2, 3, 4 }, r2:shape())
        local t1, t2, t3, t4 = r1:totable(), r2:totable(), r3:totable(), r4:totable()
        for i = 1, 24 do
          local k, j = (i - 1) % 4 + 1, ((i - 1) // 4) % 3 + 1
          assert.equal(op(xs[i], ys[k]) and 1 or 0, t1[i])
          assert.equal(op(zs[j], xs[i]) and 1 or 0, t2[i])
          assert.equal(op(xs[i], 0.5) and 1 or 0, t3[i])
          assert.equal(op(0.5, xs[i]) and 1 or 0, t4[i])
        end
        -- two numbers give a number
        assert.equal(op(1, 2) and 1 or 0, glow[name](1, 2))
      end)

      it("names itself and both shapes when they do not broadcast", function()
        local ok, e = pcall(glow[name], glow.zeros({ 2, 3 }), glow.zeros({ 4 }))
        assert.is_false(ok)
        assert.matches(name .. ": shapes {2, 3} and {4} do not broadcast", e, 1, true)
      end)

      it("returns a plain tensor of the raw values for autograd values, with no gradient", function()
        local x = glow.Tensor.from({ -1, 0.5, 2, -3 }, { 2, 2 })
        local seen
        local _, g = glow.autograd.grad(function(v)
          local m = v[name](v, 0.5)
          seen = m
          local m2 = glow[name](0.5, v)
          assert.is_true(glow.Tensor.is(m2))
          return (v * m):sum()
        end, x)
        assert.is_true(glow.Tensor.is(seen))
        assert.tensor_equal(x[name](x, 0.5), seen)
        -- the mask is a constant: d/dx sum(x * m) = m
        assert.tensor_equal(seen, g[1])
      end)
    end)
  end
end)
