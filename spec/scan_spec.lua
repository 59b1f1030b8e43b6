-- The ops along a dimension, the copies and the makers of csrc/scan.c
-- (cumsum, cumprod, sort, argsort, searchsorted, bucketize, softmax,
-- log_softmax, pad, crop, flip, roll, triu, tril, scatter, eye, arange,
-- linspace, the *_like makers): each against a naive Lua reference, and the
-- differentiable ones through autograd against central differences.
local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd

-- t's elements as a nested accessor: at(t)(i1, i2, ...) with 1-based indices
local function at(t)
  local s, v = t:shape(), t:totable()
  return function(...)
    local idx, off = { ... }, 0
    for d = 1, #s do off = off * s[d] + (idx[d] - 1) end
    return v[off + 1]
  end
end

-- every multi-index of shape s, in row-major order
local function each(s, fn)
  local idx = {}
  for d = 1, #s do idx[d] = 1 end
  local n = 1
  for d = 1, #s do n = n * s[d] end
  for _ = 1, n do
    fn(table.unpack(idx))
    for d = #s, 1, -1 do
      idx[d] = idx[d] + 1
      if idx[d] <= s[d] then break end
      idx[d] = 1
    end
  end
end

-- a naive op along dim: fn(list of the values along dim) -> list, placed back
local function along(t, dim, fn)
  local s = t:shape()
  local get, out = at(t), {}
  local rest = {}
  for d = 1, #s do rest[d] = d == dim and 1 or s[d] end
  local strides = {}
  local k = 1
  for d = #s, 1, -1 do strides[d], k = k, k * s[d] end
  each(rest, function(...)
    local idx = { ... }
    local vals = {}
    for r = 1, s[dim] do
      idx[dim] = r
      vals[r] = get(table.unpack(idx))
    end
    local res = fn(vals)
    for r = 1, s[dim] do
      idx[dim] = r
      local off = 0
      for d = 1, #s do off = off + (idx[d] - 1) * strides[d] end
      out[off + 1] = res[r]
    end
  end)
  return glow.Tensor.from(out, s)
end

-- autograd.grad against central differences (spec/helper.lua), 40 elements per input
local function check_grad(name, f, inputs)
  it(name .. ": the gradient matches central finite differences", function()
    H.check_op(name, f, inputs, { max = 40 })
  end)
end

local x = H.data({ 2, 3, 4 }, 11)

describe("cumsum and cumprod", function()
  for _, dim in ipairs { 1, 2, 3, -1 } do
    it("cumsum along dim " .. dim .. " equals running sums", function()
      local d = dim < 0 and 3 + 1 + dim or dim
      local want = along(x, d, function(v)
        local r, acc = {}, 0
        for i, e in ipairs(v) do acc = acc + e; r[i] = acc end
        return r
      end)
      assert.tensor_near(want, x:cumsum(dim), H.rtol(4))
    end)
  end
  it("cumprod along each dim equals running products, zeros included", function()
    local z = glow.Tensor.from({ 0.5, 2, 0, 3, -1, 0, 2, 4, 1.5, -2, 0.5, 3 }, { 3, 4 })
    for d = 1, 2 do
      local want = along(z, d, function(v)
        local r, acc = {}, 1
        for i, e in ipairs(v) do acc = acc * e; r[i] = acc end
        return r
      end)
      assert.tensor_near(want, z:cumprod(d), H.rtol(4))
    end
  end)
  check_grad("cumsum", function(a) return a:cumsum(2) end, { x:clone() })
  check_grad("cumsum, last dim", function(a) return glow.cumsum(a, -1) end, { x:clone() })
  check_grad("cumprod", function(a) return a:cumprod(3) end, { x:clone() })
  check_grad("cumprod with zeros", function(a) return a:cumprod(2) end,
    { glow.Tensor.from({ 0.5, 0, 2, -1.5, 0, 0.7, 1.2, 0.3, 0.9, 0, 1.1, 0 }, { 3, 4 }) })
  it("gives the exact gradient at a zero of cumprod", function()
    -- y = (a, ab, abc) with b = 0: dy3/db = ac, dy2/db = a
    local t = glow.Tensor.from({ 2, 0, 3 }, { 3 })
    local _, g = ag.grad(function(v) return v:cumprod(1):sum(1) end, t)
    assert.same({ 1, 2 + 6, 0 }, g[1]:totable())
  end)
  it("names the op for a missing or bad dimension", function()
    assert.has_error(function() x:cumsum() end, "cumsum: a dimension is required")
    assert.has_error(function() x:cumsum(4) end, "cumsum: dimension 4 out of range for 3 dimensions")
  end)
end)

describe("softmax and log_softmax", function()
  for _, dim in ipairs { 1, 2, 3 } do
    it("softmax along dim " .. dim .. " equals exp(x) / sum exp(x), in double", function()
      local want = along(x, dim, function(v)
        local r, s = {}, 0
        for _, e in ipairs(v) do s = s + math.exp(e) end
        for i, e in ipairs(v) do r[i] = math.exp(e) / s end
        return r
      end)
      assert.tensor_near(want, x:softmax(dim), H.rtol(4))
      local lwant = along(x, dim, function(v)
        local r, s = {}, 0
        for _, e in ipairs(v) do s = s + math.exp(e) end
        for i, e in ipairs(v) do r[i] = e - math.log(s) end
        return r
      end)
      assert.tensor_near(lwant, x:log_softmax(dim), H.rtol(4))
    end)
  end
  it("is stable for large values and gives 0 for -inf", function()
    local t = glow.Tensor.from({ 1000, 1001, -math.huge, 0 }, { 4 })
    local p = t:softmax(1):totable()
    assert.near(1 / (1 + math.exp(1)), p[1], 1e-6)
    assert.near(math.exp(1) / (1 + math.exp(1)), p[2], 1e-6)
    assert.equal(0, p[3])
    assert.equal(-math.huge, t:log_softmax(1):totable()[3])
  end)
  check_grad("softmax", function(a) return a:softmax(2) end, { x:clone() })
  check_grad("log_softmax", function(a) return glow.log_softmax(a, -1) end, { x:clone() })
end)

describe("sort and argsort", function()
  it("sorts along each dim, stably, with 1-based indices that gather the values back", function()
    local t = glow.Tensor.from({ 3, 1, 2, 1, 5, 0, 2, 2, 7, -1, 3, 3 }, { 3, 4 })
    for _, desc in ipairs { false, true } do
      for d = 1, 2 do
        local vals, idx = t:sort(d, desc)
        local want_i = along(t, d, function(v)
          local order = {}
          for i = 1, #v do order[i] = i end
          table.sort(order, function(a, b)
            if v[a] ~= v[b] then
              if desc then return v[a] > v[b] end
              return v[a] < v[b]
            end
            return a < b
          end)
          return order
        end)
        assert.same(want_i:totable(), idx:totable())
        assert.same(t:gather(d, idx):totable(), vals:totable())
        assert.same(idx:totable(), t:argsort(d, desc):totable())
      end
    end
  end)
  it("puts NaN last ascending and first descending, as torch", function()
    local t = glow.Tensor.from({ 2, 0 / 0, -1 }, { 3 })
    local v = t:sort():totable()
    assert.same({ -1, 2 }, { v[1], v[2] })
    assert.is_true(v[3] ~= v[3])
    local vd = t:sort(1, true):totable()
    assert.is_true(vd[1] ~= vd[1])
    assert.same({ 2, -1 }, { vd[2], vd[3] })
  end)
  check_grad("sort's values", function(a) return (glow.sort(a, 2)) end, { x:clone() })
  it("returns plain index tensors from argsort of an autograd value", function()
    local _, g = ag.grad(function(v)
      local idx = v:argsort(1)
      assert.is_true(glow.Tensor.is(idx))
      return (v * idx):sum(1)
    end, glow.Tensor.from({ 3, 1, 2 }, { 3 }))
    assert.same({ 2, 3, 1 }, g[1]:totable())
  end)
end)

describe("searchsorted and bucketize", function()
  local b = glow.Tensor.from({ -1, 0, 0, 2.5 }, { 4 })
  local v = glow.Tensor.from({ -2, -1, -0.5, 0, 1, 2.5, 3, 0 / 0 }, { 2, 4 })
  local function naive(bs, val, right)
    local c = 0
    for _, e in ipairs(bs) do if e < val or (right and e == val) then c = c + 1 end end
    if val ~= val then c = #bs end
    return c
  end
  it("counts the boundaries below (right: at most) each value, NaN above all", function()
    for _, right in ipairs { false, true } do
      local want = {}
      for i, e in ipairs(v:totable()) do want[i] = naive(b:totable(), e, right) end
      assert.same(want, glow.searchsorted(b, v, { right = right }):totable())
      assert.same(want, glow.bucketize(v, b, { right = right }):totable())
      assert.same(want, v:bucketize(b, { right = right }):totable())
    end
  end)
  it("takes a row of boundaries per row of values", function()
    local bb = glow.Tensor.from({ 0, 1, 2, 10, 20, 30 }, { 2, 3 })
    local vv = glow.Tensor.from({ 1.5, 5, 25, 35 }, { 2, 2 })
    assert.same({ 2, 3, 2, 3 }, glow.searchsorted(bb, vv):totable())
  end)
  it("gives the 1-based bucket of a value for gather, as a spline needs", function()
    local knots = glow.linspace(0, 1, 5)                              -- 0, .25, .5, .75, 1
    local heights = glow.Tensor.from({ 10, 20, 30, 40, 50 }, { 5 })
    local k = glow.bucketize(glow.Tensor.from({ 0.1, 0.3, 0.99 }, { 3 }), knots, { right = true })
    assert.same({ 10, 20, 40 }, heights:gather(1, k):totable())
  end)
  it("refuses unsorted or NaN boundaries and mismatched rows", function()
    assert.has_error(function() glow.searchsorted(glow.Tensor.from({ 1, 0 }, { 2 }), v) end)
    assert.has_error(function() glow.searchsorted(glow.Tensor.from({ 0, 0 / 0 }, { 2 }), v) end)
    assert.has_error(function() glow.searchsorted(glow.zeros({ 3, 2 }), glow.zeros({ 2, 2 })) end)
    assert.has_error(function() glow.searchsorted(b, v, { left = true }) end, 'searchsorted: unknown option "left"')
  end)
end)

describe("pad, crop, flip and roll", function()
  it("pads with a value and crops back", function()
    local p = x:pad({ { 1, 0 }, { 0, 2 }, { 1, 1 } }, -3)
    assert.same({ 3, 5, 6 }, p:shape())
    local get, pg = at(x), at(p)
    each(p:shape(), function(i, j, k)
      local inside = i >= 2 and j <= 3 and k >= 2 and k <= 5
      assert.equal(inside and get(i - 1, j, k - 1) or -3, pg(i, j, k))
    end)
    assert.same(x:totable(), p:crop({ { 1, 0 }, { 0, 2 }, { 1, 1 } }):totable())
  end)
  it("flips one dim or several", function()
    local get = at(x)
    local f = at(x:flip(2))
    local f13 = at(glow.flip(x, { 1, 3 }))
    each(x:shape(), function(i, j, k)
      assert.equal(get(i, 4 - j, k), f(i, j, k))
      assert.equal(get(3 - i, j, 5 - k), f13(i, j, k))
    end)
  end)
  it("rolls cyclically as torch.roll", function()
    local get = at(x)
    local r = at(x:roll({ 1, -1 }, { 2, 3 }))
    each(x:shape(), function(i, j, k)
      assert.equal(get(i, (j - 2) % 3 + 1, k % 4 + 1), r(i, j, k))
    end)
    assert.same(x:totable(), x:roll(3, 2):totable())
  end)
  check_grad("pad", function(a) return a:pad({ { 0, 1 }, { 2, 0 } }, 1.5) end, { x:clone() })
  check_grad("flip", function(a) return a:flip({ 1, 3 }) end, { x:clone() })
  check_grad("roll", function(a) return glow.roll(a, 2, 3) end, { x:clone() })
  it("refuses paddings that do not fit", function()
    assert.has_error(function() x:pad({ { 1 } }) end)
    assert.has_error(function() x:pad({ {}, {}, {}, {} }) end, "pad: 4 paddings for 3 dimensions")
    assert.has_error(function() x:crop({ { 1, 1 } }) end, "crop: removes all of dimension 1 of {2, 3, 4}")
  end)
end)

describe("triu, tril and scatter", function()
  it("keeps a triangle of the last two dims", function()
    local get = at(x)
    for _, k in ipairs { -1, 0, 2 } do
      local u, l = at(x:triu(k)), at(glow.tril(x, k))
      each(x:shape(), function(i, j, c)
        assert.equal(c - j >= k and get(i, j, c) or 0, u(i, j, c))
        assert.equal(c - j <= k and get(i, j, c) or 0, l(i, j, c))
      end)
    end
  end)
  check_grad("triu", function(a) return a:triu(1) end, { x:clone() })
  check_grad("tril", function(a) return a:tril(0) end, { x:clone() })
  it("scatter replaces the indexed elements of a copy", function()
    local t = glow.zeros({ 2, 3 })
    local idx = glow.Tensor.from({ 3, 1, 2, 2 }, { 2, 2 })
    local s = t:scatter(2, idx, glow.Tensor.from({ 5, 6, 7, 8 }, { 2, 2 }))
    assert.is_true(s:totable()[1] == 6 and s:totable()[3] == 5)
    assert.equal(0, t:sum())
    local r = s:totable()
    assert.is_true(r[5] == 7 or r[5] == 8)
  end)
  local idx = glow.Tensor.from({ 2, 4, 1, 3, 4, 2 }, { 2, 3, 1 })
  check_grad("scatter", function(a, s) return glow.scatter(a, 3, idx, s) end,
    { x:clone(), H.data({ 2, 3, 1 }, 3) })
end)

describe("makers", function()
  it("eye, arange, linspace and the *_like makers", function()
    assert.same({ 1, 0, 0, 0, 1, 0 }, glow.eye(2, 3):totable())
    assert.same({ 0, 1, 2, 3 }, glow.arange(4):totable())
    assert.same({ 1, 1.5, 2, 2.5 }, glow.arange(1, 3, 0.5):totable())
    assert.same({ 5, 3 }, glow.arange(5, 1, -2):totable())
    assert.same({ 0, 0.25, 0.5, 0.75, 1 }, glow.linspace(0, 1, 5):totable())
    local l = glow.linspace(-1, 0.3, 7):totable()
    assert.equal(-1, l[1])
    assert.near(0.3, l[7], 1e-7)
    assert.same({ 2, 3, 4 }, glow.zeros_like(x):shape())
    assert.equal(24, glow.ones_like(x):sum())
    assert.equal(48, glow.full_like(x, 2):sum())
  end)
  it("refuses empty or infinite ranges", function()
    assert.has_error(function() glow.arange(3, 1) end, "arange: no values from 3 to 1 by 1")
    assert.has_error(function() glow.arange(0, 1, 0) end, "arange: step must not be 0")
    assert.has_error(function() glow.arange(0, math.huge) end)
    assert.has_error(function() glow.linspace(0, 1, 0) end)
  end)
end)
