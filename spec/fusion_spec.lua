--- Fused elementwise programs (glow.autograd, core.ew_forward/ew_backward):
--- a chain of elementwise ops on autograd values runs as one C pass. Its
--- values equal the ops run one by one to the bit (the same kernels, element
--- by element); its gradients equal the unfused rules' to the rounding of
--- their sums, and central differences; nothing depends on the thread count.
local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd
local core = require "glow.core"

-- fn's value and gradients with fusion on or off
local function both(fn, ...)
  local args = table.pack(...)
  ag.set_fusion(false)
  local ok, v0, g0 = pcall(ag.grad, fn, table.unpack(args, 1, args.n))
  ag.set_fusion(true)
  assert(ok, v0)
  local v1, g1 = ag.grad(fn, table.unpack(args, 1, args.n))
  return v0, g0, v1, g1
end

-- the output tensor of fn on values, fused and not (no gradient)
local function outputs(fn, ...)
  local args = table.pack(...)
  local vals = {}
  for i = 1, args.n do vals[i] = glow.Tensor.is(args[i]) and ag.leaf(args[i]) or args[i] end
  ag.set_fusion(false)
  local ok, y0 = pcall(fn, table.unpack(vals, 1, args.n))
  ag.set_fusion(true)
  assert(ok, y0)
  local y1 = fn(table.unpack(vals, 1, args.n))
  return ag.value_of(y0), ag.value_of(y1)
end

describe("fused elementwise programs", function()
  after_each(function() ag.set_fusion(true) end)

  local x = glow.randn({ 3, 4, 5, 6 }, 1)
  local pos = glow.rand({ 3, 4, 5, 6 }, 2) + 0.1
  local b = glow.randn({ 6 }, 3)
  local s = glow.randn({ 6 }, 4)
  local per_image = glow.randn({ 3, 1, 1, 1 }, 5)
  local plane = glow.randn({ 1, 4, 5, 6 }, 6)

  -- every fused op, alone and in chains, with every kind of operand
  local cases = {
    { "exp", function(a) return a:exp() end, { x } },
    { "log", function(a) return a:log() end, { pos } },
    { "log1p", function(a) return a:log1p() end, { pos } },
    { "expm1", function(a) return a:expm1() end, { x } },
    { "sqrt", function(a) return a:sqrt() end, { pos } },
    { "abs", function(a) return a:abs() end, { x } },
    { "neg", function(a) return -a end, { x } },
    { "sigmoid", function(a) return a:sigmoid() end, { x } },
    { "log_sigmoid", function(a) return a:log_sigmoid() end, { x } },
    { "tanh", function(a) return a:tanh() end, { x } },
    { "softplus", function(a) return a:softplus() end, { x } },
    { "relu", function(a) return a:relu() end, { x } },
    { "elu", function(a) return a:elu(0.7) end, { x } },
    { "clamp", function(a) return a:clamp(-0.5, 0.25) end, { x } },
    { "clamp below", function(a) return a:clamp(-0.5) end, { x } },
    { "pow 2", function(a) return a:pow(2) end, { x } },
    { "pow 0.5", function(a) return a:pow(0.5) end, { pos } },
    { "pow 3", function(a) return a:pow(3) end, { x } },
    { "pow -1.5", function(a) return a:pow(-1.5) end, { pos } },
    { "add vector", function(a, c) return a + c end, { x, b } },
    { "sub number", function(a) return 2 - a - 0.5 end, { x } },
    { "mul per image", function(a, c) return a * c end, { x, per_image } },
    { "div plane", function(a, c) return c / (a:abs() + 1) end, { x, plane } },
    { "maximum", function(a, c) return glow.maximum(a, c) end, { x, b } },
    { "minimum", function(a, c) return glow.minimum(c, a) end, { x, plane } },
    { "actnorm relu", function(a, c, d) return ((a + c) * d:exp()):relu() end, { x, b, s } },
    { "a shared operand", function(a, c) local t = a + c; return t * t:sigmoid() - t:tanh() end, { x, b } },
    { "x * x", function(a) return a * a + a end, { x } },
    { "a long chain", function(a, c)
      local t = a
      for i = 1, 70 do t = (t * 0.9 + c * (i % 3)):tanh() end
      return t
    end, { x, b } },
  }

  for _, case in ipairs(cases) do
    local name, fn, inputs = case[1], case[2], case[3]
    it(name .. ": the values of the ops run one by one, to the bit", function()
      local y0, y1 = outputs(fn, table.unpack(inputs))
      assert.same(y0:shape(), y1:shape())
      assert.tensor_equal(y0, y1)
    end)
    it(name .. ": gradients as unfused and as central differences", function()
      local w = glow.randn(outputs(fn, table.unpack(inputs)):shape(), 9)
      local function scalar(...) return (fn(...) * w):sum() end
      local v0, g0, v1, g1 = both(scalar, table.unpack(inputs))
      assert.close(v0, v1, H.rtol(w:numel()), 1e-6)
      for i, t in ipairs(inputs) do
        local sums = x:numel() // t:numel()
        assert.tensor_near(g0[i], g1[i], H.rtol(sums, 70), 1e-6)
      end
      H.check_op(name, fn, inputs)
    end)
  end

  it("runs a chain as one tape node, its smaller pending operands first", function()
    local nodes
    local xl, bl, sl = ag.leaf(x), ag.leaf(b), ag.leaf(s)
    local y = ((xl + bl) * sl:exp()):relu()
    assert.is_nil(rawget(y, "v")) -- pending until read
    assert.same({ 3, 4, 5, 6 }, y:shape())
    assert.equal(360, y:numel())
    local t = ag.value_of(y)
    assert.is_not_nil(rawget(y, "v"))
    assert.tensor_equal(((x + b) * s:exp()):relu(), t)
    -- through autograd.grad: two nodes (exp of s, then the chain)
    local _, g = ag.grad(function(a, c, d)
      local out = ((a + c) * d:exp()):relu():sum()
      return out
    end, x, b, s)
    assert.equal(3, #g)
    nodes = 0
    for _ in pairs(g) do nodes = nodes + 1 end
    assert.equal(3, nodes)
  end)

  it("gives a value read midway (a reduction) and reused the same gradients", function()
    local function f(a, c)
      local t = (a * c):sigmoid()
      local m = t:mean({ 1, 2, 3 }, true) -- reads t: it runs, later uses take it as an input
      return (t - m):pow(2):sum() + (t * 3):exp():mean()
    end
    local v0, g0, v1, g1 = both(f, x, b)
    assert.close(v0, v1, H.rtol(360), 1e-6)
    for i = 1, 2 do assert.tensor_near(g0[i], g1[i], H.rtol(360, 360), 1e-6) end
  end)

  it("does not depend on the thread count", function()
    local big = glow.randn({ 8, 32, 32, 64 }, 11)
    local bv, sv = glow.randn({ 64 }, 12), glow.randn({ 64 }, 13)
    local w = glow.randn({ 8, 32, 32, 64 }, 14)
    local function f(a, c, d) return (((a + c) * d:exp()):relu() * w):sum() end
    local n = glow.threads()
    glow.set_threads(1)
    local v1, g1 = ag.grad(f, big, bv, sv)
    glow.set_threads(2)
    local v2, g2 = ag.grad(f, big, bv, sv)
    glow.set_threads(n)
    assert.equal(v1, v2)
    for i = 1, 3 do assert.tensor_equal(g1[i], g2[i]) end
  end)

  it("sums the gradient of a large broadcast input with sum_to instead of partial sums", function()
    -- {1, 128, 128, 16} against {16, 128, 128, 16}: 256 chunks of partial
    -- sums would take 64M doubles, so C returns the output-sized gradient
    local a = glow.randn({ 16, 128, 128, 16 }, 21, 0.1)
    local p = glow.randn({ 1, 128, 128, 16 }, 22, 0.1)
    local O = core.ew_ops
    local gs = core.ew_backward({ O.mul, 1, 2, 0, 0 }, { a, p }, glow.ones(a:shape()), { false, true })
    assert.same(a:shape(), gs[2]:shape())
    local _, g = ag.grad(function(u, v) return (u * v):sum() end, a, p)
    assert.same(p:shape(), g[2]:shape())
    assert.tensor_near(a:sum_to(p:shape()), g[2], H.rtol(16), 1e-6)
  end)

  it("raises the unfused op's error where shapes do not broadcast", function()
    local xl = ag.leaf(x)
    local ok, err = pcall(function() return xl + glow.zeros({ 5 }) end)
    assert.is_false(ok)
    assert.matches("do not broadcast", err)
    ok, err = pcall(function() return xl:pow("two") end)
    assert.is_false(ok)
    assert.matches("exponent", err)
  end)

  it("checks the programs it is given", function()
    local O = core.ew_ops
    assert.has_error(function() core.ew_forward({ O.add, 1, 3, 0, 0 }, { x, b }) end,
      "ew_forward: instruction 1: bad registers 1, 3")
    assert.has_error(function() core.ew_forward({ 999, 1, 0, 0, 0 }, { x }) end,
      "ew_forward: instruction 1: unknown op 999")
    assert.has_error(function() core.ew_forward({ O.exp, 1, 0, 0 }, { x }) end,
      "ew_forward: code must hold 5 numbers an instruction, got 4")
    assert.has_error(function() core.ew_forward({ O.add, 1, 2, 0, 0 }, { x, glow.zeros({ 5 }) }) end)
    assert.has_error(function() core.ew_forward({ O.exp, 1, 0, 0, 0 }, { 2 }) end,
      "ew_forward: at least one input must be a tensor")
    -- every input and op must lead to the output (the backward writes each adjoint once)
    assert.has_error(function() core.ew_forward({ O.exp, 1, 0, 0, 0 }, { x, b }) end,
      "ew_forward: register 2 does not lead to the output")
    assert.has_error(function() core.ew_backward({ O.exp, 1, 0, 0, 0, O.exp, 1, 0, 0, 0 }, { x }, x, { true }) end,
      "ew_backward: register 2 does not lead to the output")
  end)

  it("runs autograd.Net's plain forward fused, with the values of the taped one", function()
    local net = ag.Net(function(self, a)
      return ((glow.conv2d(a, self.w) + self.b) * self.s:exp()):relu()
    end)
    net:param("w", glow.randn({ 3, 3, 6, 5 }, 31, 0.2))
    net:param("b", glow.randn({ 5 }, 32)):param("s", glow.randn({ 5 }, 33, 0.1))
    local y = net:forward(x)
    assert.is_true(glow.Tensor.is(y))
    ag.set_fusion(false)
    local y0 = net:forward(x)
    ag.set_fusion(true)
    assert.tensor_equal(y0, y)
    assert.tensor_equal(y, net:forward(x, true))
    local dx = net:backward(x, glow.ones(y:shape()))
    assert.same(x:shape(), dx:shape())
  end)
end)
