--- Plans (glow.autograd, csrc/plan.c): an autograd.Net made of convolutions
--- and elementwise chains over images runs as one C kernel that splits the
--- batch between threads, a few images at a time. Same values as the tape
--- (the same kernels on the same rows), gradients equal to the rounding of
--- their sums and to central differences; a network outside plans keeps the
--- tape, with the same results.
local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd
local core = require "glow.core"

-- count the calls of core.plan_forward / plan_backward during fn
local function plan_calls(fn)
  local f, b = core.plan_forward, core.plan_backward
  local n = 0
  core.plan_forward = function(...) n = n + 1 return f(...) end
  core.plan_backward = function(...) n = n + 1 return b(...) end
  local ok, err = pcall(fn)
  core.plan_forward, core.plan_backward = f, b
  assert(ok, err)
  return n
end

-- a coupling-style network: conv, per-channel affine, ReLU, 1x1 conv, ..., scaled output
local function make_net(cin, cout, w, seed, opts)
  opts = opts or {}
  local net = ag.Net(function(self, x)
    local h = glow.conv2d(x, self.w1, nil, opts.conv1)
    h = ((h + self.b1) * self.s1:exp()):relu()
    h = glow.conv2d(h, self.w2)
    if opts.mask then h = h * opts.mask end
    h = (h * self.s2:exp() + self.b2):tanh()
    return glow.conv2d(h, self.w3, self.b3, opts.conv3) * (self.ls * 3):exp()
  end)
  local k1 = opts.k1 or 3
  net:param("w1", glow.randn({ k1, k1, cin, w }, seed, 0.3))
  net:param("b1", glow.randn({ w }, seed + 1, 0.1)):param("s1", glow.randn({ w }, seed + 2, 0.1))
  net:param("w2", glow.randn({ 1, 1, w, w }, seed + 3, 0.3))
  net:param("b2", glow.randn({ w }, seed + 4, 0.1)):param("s2", glow.randn({ w }, seed + 5, 0.1))
  net:param("w3", glow.randn({ 3, 3, w, cout }, seed + 6, 0.3)):param("b3", glow.randn({ cout }, seed + 7, 0.1))
  net:param("ls", glow.randn({ cout }, seed + 8, 0.1))
  return net
end

-- y, dx and every parameter's gradient of one forward(x, keep) and backward
local function run(net, x, dy, keep)
  local y = net:forward(x, keep)
  net:zero_grad()
  local dx = net:backward(x, dy)
  local gs = {}
  for i, p in ipairs(net:parameters()) do gs[i] = p.grad:clone() end
  return y, dx, gs
end

local function compare(net, x, dy, keep)
  ag.set_plans(false)
  local ok, y0, dx0, g0 = pcall(run, net, x, dy, keep)
  ag.set_plans(true)
  assert(ok, y0)
  local calls
  local y1, dx1, g1
  calls = plan_calls(function() y1, dx1, g1 = run(net, x, dy, keep) end)
  local n = x:numel() // x:shape()[1]
  assert.tensor_near(y0, y1, H.rtol(n), 1e-6)
  assert.tensor_near(dx0, dx1, H.rtol(n, n), 1e-6)
  for i = 1, #g0 do assert.tensor_near(g0[i], g1[i], H.rtol(x:numel(), n), 1e-5) end
  return calls, y1, dx1, g1
end

describe("plans", function()
  after_each(function() ag.set_plans(true) end)

  local x = glow.randn({ 7, 6, 5, 3 }, 1)

  for _, keep in ipairs { false, true } do
    it("run a convolutional network as a plan, as on the tape (keep = " .. tostring(keep) .. ")", function()
      local net = make_net(3, 4, 16, 10)
      local dy = glow.randn({ 7, 6, 5, 4 }, 2)
      local calls = compare(net, x, dy, keep)
      assert.equal(2, calls) -- one plan forward, one plan backward
    end)
  end

  it("take padding, dilation, kernels of other sizes and a batch-broadcast constant", function()
    local mask = glow.checkerboard({ 1, 4, 3, 16 }, 0)
    local net = make_net(3, 2, 16, 20, { conv1 = { padding = 0 }, conv3 = { padding = 2, dilation = 2 }, mask = mask })
    local calls = compare(net, x, glow.randn({ 7, 4, 3, 2 }, 3), true)
    assert.equal(2, calls)
    local net5 = make_net(3, 2, 8, 30, { k1 = 5 })
    assert.equal(2, (compare(net5, x, glow.randn({ 7, 6, 5, 2 }, 4), false)))
  end)

  it("give gradients that match central differences", function()
    local net = make_net(3, 2, 6, 40)
    local xs = glow.randn({ 3, 4, 4, 3 }, 5)
    local w = glow.randn({ 3, 4, 4, 2 }, 6)
    local function loss() return net:forward(xs):dot(w) end
    net:forward(xs, true)
    net:zero_grad()
    local dx = net:backward(xs, w)
    H.gradcheck(loss, xs, dx, { what = "plan dx" })
    for _, p in ipairs(net:parameters()) do
      H.gradcheck(loss, p.value, p.grad, { what = "plan " .. p.name })
    end
  end)

  it("give the same results on every run with the same threads, and close ones on 1 and 2", function()
    local net = make_net(3, 4, 16, 50)
    local xb = glow.randn({ 16, 8, 8, 3 }, 7)
    local dy = glow.randn({ 16, 8, 8, 4 }, 8)
    local n = glow.threads()
    local _, dx1, g1 = run(net, xb, dy, false)
    local _, dx1b, g1b = run(net, xb, dy, false)
    assert.tensor_equal(dx1, dx1b)
    for i = 1, #g1 do assert.tensor_equal(g1[i], g1b[i]) end
    glow.set_threads(1)
    local _, dx2, g2 = run(net, xb, dy, false)
    glow.set_threads(n)
    -- other chunks of images: other row blocks in the products
    assert.tensor_near(dx1, dx2, H.rtol(16 * 9, 16), 1e-6)
    for i = 1, #g1 do assert.tensor_near(g1[i], g2[i], H.rtol(xb:numel()), 1e-6) end
  end)

  it("leave networks outside plans on the tape, with the same results", function()
    local nets = {
      -- mixes the images of the batch
      ag.Net(function(self, a) return glow.conv2d(a, self.w) - glow.conv2d(a, self.w):mean(1, true) end),
      -- a constant with a batch dim
      ag.Net(function(self, a)
        local h = glow.conv2d(a, self.w)
        return h * glow.full(h:shape(), 0.5)
      end),
      -- an activation of another shape
      ag.Net(function(self, a)
        local s = a:shape()
        return glow.conv2d(a, self.w):reshape({ s[1], s[2] * s[3], 2 }):exp():reshape({ s[1], s[2], s[3], 2 })
      end),
    }
    for i, net in ipairs(nets) do
      net:param("w", glow.randn({ 3, 3, 3, 2 }, 60 + i, 0.3))
      local calls = compare(net, x, glow.randn({ 7, 6, 5, 2 }, 9), i % 2 == 0)
      assert.equal(0, calls)
    end
  end)

  it("leave a network that needs its input's tensor on the tape, before any side effect", function()
    -- a built-in ActNorm waiting for its data-dependent start: the trace must
    -- not start it (from a meta value or a part of the batch)
    local an = glow.nn.ActNorm(2)
    local net = ag.Net(function(self, a) return an:forward(glow.conv2d(a, self.w)) end)
    net.children = { { name = "an", module = an } }
    net:param("w", glow.randn({ 3, 3, 3, 2 }, 70, 0.3))
    local calls = plan_calls(function() net:initialize(x) end)
    assert.equal(0, calls)
    local h = glow.conv2d(x, net.w)
    assert.tensor_near(-h:mean({ 1, 2, 3 }), an.bias, H.rtol(210), 1e-6)
    -- and one that reads its input's tensor
    local reads = ag.Net(function(self, a)
      assert(ag.value_of(a):numel() > 0)
      return (glow.conv2d(a, self.w) + self.b):sigmoid()
    end)
    reads:param("w", glow.randn({ 3, 3, 3, 2 }, 71, 0.3)):param("b", glow.zeros({ 2 }))
    assert.equal(0, (compare(reads, x, glow.randn({ 7, 6, 5, 2 }, 10), false)))
  end)

  it("keep a long chain, and sum a large per-pixel parameter's gradient without partial sums", function()
    local long = ag.Net(function(self, a)
      local h = glow.conv2d(a, self.w)
      for _ = 1, 40 do h = h * 1.01 + self.b end
      return h
    end)
    long:param("w", glow.randn({ 3, 3, 3, 2 }, 80, 0.3)):param("b", glow.randn({ 2 }, 81, 0.01))
    assert.equal(2, (compare(long, x, glow.randn({ 7, 6, 5, 2 }, 11), false)))
    -- {1, 128, 128, 16}: one image a chunk, 16 blocks of partial sums of 262,144 floats
    local pix = ag.Net(function(self, a) return (glow.conv2d(a, self.w) + self.p):tanh() end)
    pix:param("w", glow.randn({ 1, 1, 3, 16 }, 82, 0.3)):param("p", glow.randn({ 1, 128, 128, 16 }, 83, 0.3))
    local xb = glow.randn({ 2, 128, 128, 3 }, 12)
    assert.equal(2, (compare(pix, xb, glow.randn({ 2, 128, 128, 16 }, 13), true)))
  end)

  it("let a network called inside another piece's taping record on that tape", function()
    -- a prior whose network reads a plain tensor: its parameters are the prior's leaves
    local cnet = ag.Net(function(self, a) return (glow.conv2d(a, self.w) + self.b):tanh() end)
    cnet:param("w", glow.randn({ 3, 3, 3, 2 }, 90, 0.3)):param("b", glow.zeros({ 2 }))
    local cond = glow.randn({ 7, 6, 5, 3 }, 14)
    local prior = ag.Prior {
      log_prob = function(self, z) return (z * self.cnet:forward(cond)):sum({ 2, 3, 4 }) end,
      sample = function() end,
    }
    prior.cnet = cnet
    prior.children = { { name = "cnet", module = cnet } }
    local z = glow.randn({ 7, 6, 5, 2 }, 15)
    local function grads()
      prior:zero_grad()
      local dz = prior:backward(z, glow.ones({ 7 }))
      return dz, cnet.grad.w:clone(), cnet.grad.b:clone()
    end
    ag.set_fusion(false)
    local dz0, w0, b0 = grads()
    ag.set_fusion(true)
    local dz1, w1, b1 = grads()
    assert.is_true(w0:abs():max() > 0)
    assert.tensor_near(dz0, dz1, H.rtol(1), 1e-6)
    assert.tensor_near(w0, w1, H.rtol(210), 1e-6)
    assert.tensor_near(b0, b1, H.rtol(210), 1e-6)
  end)

  it("check the plans they are given", function()
    local p = { glow.randn({ 3, 3, 3, 2 }, 1) }
    local plan = { dims = { { 6, 5, 3 }, { 6, 5, 2 } }, out = 2,
      nodes = { { kind = 1, x = 1, w = 1, b = 0, kh = 3, kw = 3, ph = 1, pw = 1, dil = 1 } } }
    assert.same({ 7, 6, 5, 2 }, core.plan_forward(plan, x, p):shape())
    assert.tensor_equal(glow.conv2d(x, p[1]), core.plan_forward(plan, x, p))
    local bad = { dims = plan.dims, out = 2, nodes = { { kind = 1, x = 1, w = 1, b = 0, kh = 3, kw = 3, ph = 0,
      pw = 1, dil = 1 } } }
    assert.has_error(function() core.plan_forward(bad, x, p) end,
      "plan_forward: node 1: the convolution does not fit its slots")
    bad = { dims = plan.dims, out = 3, nodes = plan.nodes }
    assert.has_error(function() core.plan_forward(bad, x, p) end, "plan_forward: output slot 3 out of range")
    bad = { dims = plan.dims, out = 2,
      nodes = { { kind = 2, code = { 1, 1, 0, 0, 0 }, ins = { 1, 2 }, nums = { 0 } } } }
    assert.has_error(function() core.plan_forward(bad, x, p) end, "plan_forward: node 1: input slot 2 out of range")
    assert.has_error(function() core.plan_forward(plan, glow.zeros({ 7, 6, 5, 4 }), p) end,
      "plan_forward: x {7, 6, 5, 4} does not match {n, 6, 5, 3}")
    assert.has_error(function() core.plan_backward(plan, x, glow.zeros({ 7, 6, 5, 3 }), p, { false }) end,
      "plan_backward: dy {7, 6, 5, 3} does not match {n, 6, 5, 2}")
  end)
end)
