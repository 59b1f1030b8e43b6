-- One world: every built-in piece (the glow.nn networks, the flow pieces,
-- the priors) inside autograd.Net / autograd.Flow, mixed with ops. Each
-- records one tape node whose backward is its own kernel: the values equal
-- the direct call's, and the gradients (input and every parameter, the
-- built-in piece's included) match central finite differences.
local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd

-- an autograd.Net around network piece m, with ops before and after it
local function net_around(m)
  local net = ag.Net(function(self, x) return self.m:forward(x:tanh()) * 1.5 + 0.25 end)
  net.m = m
  net.children = { { name = "m", module = m } }
  return net
end

local function check_net(name, make, cin)
  it(name .. " inside autograd.Net: the direct call's values and finite-difference gradients", function()
    local m = make()
    local x = H.data({ 2, 4, 4, cin }, 3)
    if m.initialize then m:initialize(x:tanh()) end
    H.perturb(m, 0.1, 5)
    local net = net_around(m)
    local direct = m:forward(x:tanh()) * 1.5 + 0.25
    local kept = net:forward(x, true) -- taped
    assert.tensor_near(direct, kept, 1e-6)
    local w = glow.randn(direct:shape(), 9, 1)
    local function loss() return (net:forward(x) * w):sum() end
    net:zero_grad()
    local dx = net:backward(x, w)
    H.gradcheck(loss, x, dx, { what = name .. " dx" })
    local ps = net:parameters()
    assert.is_true(#ps == #m:parameters())
    for _, p in ipairs(ps) do H.gradcheck(loss, p.value, p.grad, { what = name .. " " .. p.name }) end
  end)
end

-- an autograd.Flow around flow piece p: x * 1.5 -> p -> * 2, with those
-- scalings' log-determinants added to p's
local function flow_around(p, d, with_ctx)
  local f = ag.Flow {
    forward = function(self, x, ctx)
      local y, ld = self.p:forward(x * 1.5, with_ctx and self.ctx or ctx)
      return y * 2, ld + d * (math.log(1.5) + math.log(2))
    end,
    inverse = function(self, y, ctx) return self.p:inverse(y * 0.5, with_ctx and self.ctx or ctx) / 1.5 end,
  }
  f.p = p
  f.ctx = with_ctx and glow.Context.new() or nil
  f.children = { { name = "p", module = p } }
  return f
end

local function check_flow(name, make, shape, opts)
  opts = opts or {}
  it(name .. " inside autograd.Flow: the direct call's values and finite-difference gradients", function()
    local p = make()
    local x = H.data(shape, 4)
    if p.initialize then p:initialize(x * 1.5) end
    H.perturb(p, 0.1, 6)
    local d = shape[2] * shape[3] * shape[4]
    if opts.split then d = d // 2 end
    local f = flow_around(p, d, opts.split)
    -- the taped values against the direct call
    local yd, ldd = p:forward(x * 1.5, opts.split and glow.Context.new() or nil)
    local ty, tld
    ag.grad(function(v)
      local y, ld = f.fwd(f, v, nil)
      ty, tld = ag.value_of(y), ag.value_of(ld)
      return y:sum({ 1, 2, 3, 4 }) + ld:sum(1)
    end, x)
    assert.tensor_near(yd * 2, ty, 1e-6)
    assert.tensor_near(ldd + d * (math.log(1.5) + math.log(2)), tld, 1e-6)
    H.check_piece(f, x, { what = name })
  end)
end

describe("glow.nn pieces inside autograd.Net", function()
  check_net("nn.Conv2d 3x3", function() return glow.nn.Conv2d(3, 4, 3, { seed = 1 }) end, 3)
  check_net("nn.Conv2d 1x1 without bias", function() return glow.nn.Conv2d(3, 4, 1, { seed = 2, bias = false }) end, 3)
  check_net("nn.ActNorm", function() return glow.nn.ActNorm(3) end, 3)
  check_net("nn.ReLU", function() return glow.nn.ReLU() end, 3)
  check_net("nn.ZeroConv2d", function() return glow.nn.ZeroConv2d(3, 4) end, 3)
  local function default_net(fuse)
    return function()
      local s = glow.nn.Sequential {
        glow.nn.Conv2d(2, 6, 3, { seed = 3, bias = false }), glow.nn.ActNorm(6), glow.nn.ReLU(),
        glow.nn.Conv2d(6, 6, 1, { seed = 4, bias = false }), glow.nn.ActNorm(6), glow.nn.ReLU(),
        glow.nn.ZeroConv2d(6, 4) }
      s.fuse = fuse
      return s
    end
  end
  check_net("the fused default coupling network", default_net(nil), 2)
  check_net("the default network module by module", default_net(false), 2)
end)

describe("flow pieces inside autograd.Flow", function()
  check_flow("ActNorm", function() return glow.ActNorm(4) end, { 2, 3, 3, 4 })
  check_flow("InvConv1x1", function() return glow.InvConv1x1(4, { seed = 1 }) end, { 2, 3, 3, 4 })
  check_flow("InvConv1x1 LU", function() return glow.InvConv1x1(4, { lu = true, seed = 2 }) end, { 2, 3, 3, 4 })
  check_flow("Shuffle", function() return glow.Shuffle(4, { seed = 3 }) end, { 2, 3, 3, 4 })
  check_flow("Reverse", function() return glow.Reverse(4) end, { 2, 3, 3, 4 })
  check_flow("AffineCoupling", function() return glow.AffineCoupling(4, { width = 6, seed = 4 }) end, { 2, 3, 3, 4 })
  check_flow("AdditiveCoupling", function() return glow.AdditiveCoupling(4, { width = 6, seed = 5 }) end,
    { 2, 3, 3, 4 })
  check_flow("FlowStep (a glow.Flow of three)", function() return glow.FlowStep(4, { width = 6, seed = 6 }) end,
    { 2, 3, 3, 4 })
  check_flow("Squeeze", function() return glow.Squeeze() end, { 2, 4, 4, 2 })
  check_flow("Split", function() return glow.Split(4) end, { 2, 3, 3, 4 }, { split = true })

  it("a built-in piece's logdet alone still reaches its backward", function()
    local p = glow.ActNorm(3)
    p:initialize(H.data({ 2, 2, 2, 3 }, 1))
    H.perturb(p, 0.1, 2)
    p:zero_grad()
    ag.grad(function(v) local _, ld = p:forward(v) return ld:sum(1) end, H.data({ 2, 2, 2, 3 }, 1))
    -- d/dlogs of sum(logdet) = n * h * w per channel
    assert.same({ 8, 8, 8 }, p.grad.logs:totable())
  end)
end)

describe("the priors on the tape", function()
  it("SplitPrior: log_prob of values z and cond.z1 against the direct call and finite differences", function()
    local pr = glow.prior.SplitPrior(2, 3)
    H.perturb(pr, 0.1, 7)
    local z, z1 = H.data({ 2, 3, 3, 3 }, 1), H.data({ 2, 3, 3, 2 }, 2)
    local wn = glow.Tensor.from({ 0.7, -1.3 }, { 2 })
    local direct = pr:log_prob(z, { z1 = z1 }):dot(wn)
    local function f(a, b) return (pr:log_prob(a, { z1 = b }) * wn):sum(1) end
    pr:zero_grad()
    local value, g = ag.grad(f, z, z1)
    assert.close(direct, value, 1e-6, 1e-6, "value")
    local function loss() return pr:log_prob(z, { z1 = z1 }):dot(wn) end
    H.gradcheck(loss, z, g[1], { what = "dz" })
    H.gradcheck(loss, z1, g[2], { what = "dz1" })
    for _, p in ipairs(pr:parameters()) do H.gradcheck(loss, p.value, p.grad, { what = p.name }) end
  end)

  it("a learned, class-conditional top prior inside autograd.Net-like code", function()
    local pr = glow.prior.ClassConditional({ 2, 2, 3 }, 4)
    H.perturb(pr, 0.1, 8)
    local z, y = H.data({ 2, 2, 2, 3 }, 3), { 1, 3 }
    local wn = glow.Tensor.from({ 1.1, -0.4 }, { 2 })
    local function f(a) return (pr:log_prob(a:tanh(), { y = y }) * wn):sum(1) end
    pr:zero_grad()
    local value, g = ag.grad(f, z)
    local function loss() return pr:log_prob(z:tanh(), { y = y }):dot(wn) end
    assert.close(loss(), value, 1e-6, 1e-6, "value")
    H.gradcheck(loss, z, g[1], { what = "dz" })
    for _, p in ipairs(pr:parameters()) do H.gradcheck(loss, p.value, p.grad, { what = p.name }) end
  end)
end)
