local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd

-- Each built-in piece written again with glow's ops and autograd, its
-- parameters copied from the built-in one; outputs, log-determinants,
-- inverses and gradients must agree to 1e-5 relative (norm-wise). The
-- built-in pieces keep their fused kernels; these are their references.

local function copy_params(from, to)
  for _, p in ipairs(from:parameters()) do to:param(p.name, p.value:clone()) end
  return to
end

-- the same loss through both: <w, y> + a * sum(logdet)
local function compare(builtin, mine, x, ctx_of)
  ctx_of = ctx_of or function() return nil end
  local y1, ld1 = builtin:forward(x, ctx_of())
  local y2, ld2 = mine:forward(x, ctx_of())
  assert.tensor_near(y1, y2, 1e-5)
  assert.tensor_near(ld1, ld2, 1e-5, 1e-5)
  assert.tensor_near(builtin:inverse(y1, ctx_of()), mine:inverse(y2, ctx_of()), 1e-5)
  local w = glow.randn(y1:shape(), 3, 1)
  builtin:zero_grad()
  mine:zero_grad()
  local x1, dx1 = builtin:backward(y1, w, 0.7, ctx_of())
  local x2, dx2 = mine:backward(y2, w, 0.7, ctx_of())
  assert.tensor_near(x1, x2, 1e-5)
  assert.tensor_near(dx1, dx2, 1e-5)
  local p2 = mine:parameters()
  for i, p in ipairs(builtin:parameters()) do
    assert.tensor_near(p.grad, p2[i].grad, 1e-5, 0, p.name)
  end
end

local function pixels(x) local s = x:shape() return s[2] * s[3], s[1] end

-- ActNorm: y = (x + b) exp(logs), logdet = h w sum(logs)
local function actnorm()
  return ag.Flow {
    forward = function(self, x)
      local hw, n = pixels(x)
      return (x + self.bias) * self.logs:exp(), (self.logs:sum(1) * hw):expand({ n })
    end,
    inverse = function(self, y) return y * (-self.logs):exp() - self.bias end,
  }
end

-- the default coupling network: conv3x3 -> ActNorm -> ReLU -> conv1x1 -> ActNorm -> ReLU -> ZeroConv3x3
local function default_net()
  return ag.Net(function(p, x)
    local h = glow.conv2d(x, p["1.weight"])
    h = ((h + p["2.bias"]) * p["2.logs"]:exp()):relu()
    h = glow.conv2d(h, p["4.weight"])
    h = ((h + p["5.bias"]) * p["5.logs"]:exp()):relu()
    return glow.conv2d(h, p["7.weight"], p["7.bias"]) * (p["7.logscale"] * 3):exp()
  end)
end

-- the affine coupling around a network: y2 = (z2 + shift) sigmoid(raw + 2)
local function affine(c, net)
  local c1 = c // 2
  local piece = ag.Flow {
    forward = function(self, x)
      local z1, z2 = x:narrow(4, 1, c1), x:narrow(4, c1 + 1, c - c1)
      local h = self.net:forward(z1)
      local shift, raw = h:narrow(4, 1, c - c1), h:narrow(4, c - c1 + 1, c - c1)
      local logscale = (raw + 2):log_sigmoid()
      return glow.cat({ z1, (z2 + shift) * logscale:exp() }, 4), logscale:sum({ 2, 3, 4 })
    end,
    inverse = function(self, y)
      local y1, y2 = y:narrow(4, 1, c1), y:narrow(4, c1 + 1, c - c1)
      local h = self.net:forward(y1)
      local shift, raw = h:narrow(4, 1, c - c1), h:narrow(4, c - c1 + 1, c - c1)
      return glow.cat({ y1, y2 / (raw + 2):sigmoid() - shift }, 4)
    end,
  }
  piece.net = net
  return piece
end

describe("built-in pieces against their autograd formulation", function()
  local x = H.data({ 2, 4, 4, 4 }, 1)

  it("ActNorm", function()
    local b = glow.ActNorm(4)
    b:initialize(x)
    H.perturb(b, 0.1, 1)
    compare(b, copy_params(b, actnorm()), x)
  end)

  it("InvConv1x1 (plain and LU)", function()
    for _, lu in ipairs { false, true } do
      local b = glow.InvConv1x1(4, { lu = lu, seed = 3 })
      H.perturb(b, 0.1, 2)
      local W = b:matrix():clone()
      local mine = ag.Flow {
        forward = function(self, v)
          local hw, n = pixels(v)
          return glow.matmul(v, self.w:transpose(1, 2)), (ag.slogdet(self.w) * hw):expand({ n })
        end,
        inverse = function(self, y) return glow.matmul(y, glow.core.inverse(self.w):transpose(1, 2)) end,
      }
      if not lu then mine:param("w", W) end
      if not lu then compare(b, mine, x) else
        -- W = P L (U + diag(sign exp(log_s))): L unit lower, U strictly upper, P the rows perm
        local lower = glow.Tensor.from({ 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0 }, { 4, 4 })
        local eye = glow.Tensor.from({ 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1 }, { 4, 4 })
        local upper = lower:transpose(1, 2)
        local function weight(self)
          local L = self.l * lower + eye
          local U = self.u * upper + eye * (self.log_s:exp() * b.sign)
          return glow.matmul(L, U):index_select(1, b.perm)
        end
        local mlu = ag.Flow {
          forward = function(self, v)
            local hw, n = pixels(v)
            return glow.matmul(v, weight(self):transpose(1, 2)), (self.log_s:sum(1) * hw):expand({ n })
          end,
          inverse = function(self, y)
            return glow.matmul(y, glow.core.inverse(weight(self)):transpose(1, 2))
          end,
        }
        compare(b, copy_params(b, mlu), x)
      end
    end
  end)

  it("the default coupling network, module by module and fused", function()
    local b = glow.AffineCoupling(4, { width = 8, seed = 5 })
    b.net.children[2].module:initialize(glow.core.conv2d_forward(x:narrow(4, 1, 2), b.net.children[1].module.weight))
    b.net.children[5].module.initialized = true
    H.perturb(b, 0.1, 4)
    local net = copy_params(b.net, default_net())
    local z1 = x:narrow(4, 1, 2)
    assert.tensor_near(b.net:forward(z1), net:forward(z1), 1e-5)
    local dy = glow.randn({ 2, 4, 4, 4 }, 9, 1)
    b.net:zero_grad()
    net:zero_grad()
    assert.tensor_near(b.net:backward(z1, dy), net:backward(z1, dy), 1e-5)
    local p2 = net:parameters()
    for i, p in ipairs(b.net:parameters()) do assert.tensor_near(p.grad, p2[i].grad, 1e-5, 0, p.name) end
  end)

  it("AffineCoupling with the default network", function()
    local b = glow.AffineCoupling(4, { width = 8, seed = 5 })
    b:initialize(x)
    H.perturb(b, 0.1, 5)
    local mine = affine(4, copy_params(b.net, default_net()))
    mine.children = { { name = "net", module = mine.net } }
    compare(b, mine, x)
  end)

  it("AdditiveCoupling with the default network", function()
    local b = glow.AdditiveCoupling(4, { width = 8, seed = 7 })
    b:initialize(x)
    H.perturb(b, 0.1, 8)
    local mine = ag.Flow {
      forward = function(self, v)
        local z1, z2 = v:narrow(4, 1, 2), v:narrow(4, 3, 2)
        return glow.cat({ z1, z2 + self.net:forward(z1) }, 4), glow.zeros({ v:shape()[1] })
      end,
      inverse = function(self, y)
        local y1, y2 = y:narrow(4, 1, 2), y:narrow(4, 3, 2)
        return glow.cat({ y1, y2 - self.net:forward(y1) }, 4)
      end,
    }
    mine.net = copy_params(b.net, default_net())
    mine.children = { { name = "net", module = mine.net } }
    compare(b, mine, x)
  end)

  it("Shuffle and Reverse", function()
    for _, b in ipairs { glow.Shuffle(4, { seed = 3 }), glow.Reverse(4) } do
      local inv = {}
      for i, p in ipairs(b.perm) do inv[p] = i end
      local mine = ag.Flow {
        forward = function(_, v) return v:index_select(4, b.perm), glow.zeros({ v:shape()[1] }) end,
        inverse = function(_, y) return y:index_select(4, inv) end,
      }
      compare(b, mine, x)
    end
  end)

  it("the learned top prior", function()
    local tp = glow.prior.Learned({ 4, 4, 4 })
    H.perturb(tp, 0.1, 9)
    local mine = ag.Prior {
      log_prob = function(self, z)
        local d = (z - self.mean) * (-self.logs):exp()
        return (-(d * d) * 0.5 - self.logs - 0.5 * math.log(2 * math.pi)):sum({ 2, 3, 4 })
      end,
      sample = function() error("not used") end,
    }
    copy_params(tp, mine)
    assert.tensor_near(tp:log_prob(x), mine:log_prob(x), 1e-5)
    local dlp = glow.Tensor.from({ 0.3, -0.8 }, { 2 })
    tp:zero_grad()
    mine:zero_grad()
    assert.tensor_near(tp:backward(x, dlp), mine:backward(x, dlp), 1e-5)
    local p2 = mine:parameters()
    for i, p in ipairs(tp:parameters()) do assert.tensor_near(p.grad, p2[i].grad, 1e-5, 0, p.name) end
  end)

  it("Squeeze", function()
    local mine = ag.Flow {
      forward = function(_, v)
        local s = v:shape()
        local y = v:reshape({ s[1], s[2] // 2, 2, s[3] // 2, 2, s[4] }):permute({ 1, 2, 4, 6, 3, 5 })
        return y:reshape({ s[1], s[2] // 2, s[3] // 2, 4 * s[4] }), glow.zeros({ s[1] })
      end,
      inverse = function(_, y)
        local s = y:shape()
        local v = y:reshape({ s[1], s[2], s[3], s[4] // 4, 2, 2 }):permute({ 1, 2, 5, 3, 6, 4 })
        return v:reshape({ s[1], 2 * s[2], 2 * s[3], s[4] // 4 })
      end,
    }
    compare(glow.Squeeze(), mine, x)
  end)

  it("the split prior and the learned top prior", function()
    local sp = glow.prior.SplitPrior(2, 2)
    H.perturb(sp, 0.1, 6)
    local mine = ag.Prior {
      log_prob = function(self, z, cond)
        local h = glow.conv2d(cond.z1, self.weight, self.bias) * (self.logscale * 3):exp()
        local mean, logs = h:narrow(4, 1, 2), h:narrow(4, 3, 2)
        local d = (z - mean) * (-logs):exp()
        return (-(d * d) * 0.5 - logs - 0.5 * math.log(2 * math.pi)):sum({ 2, 3, 4 })
      end,
      sample = function() error("not used") end,
    }
    copy_params(sp, mine)
    local z1, z2 = x:narrow(4, 1, 2), x:narrow(4, 3, 2)
    local cond = { z1 = z1 }
    assert.tensor_near(sp:log_prob(z2, cond), mine:log_prob(z2, cond), 1e-5)
    local dlp = glow.Tensor.from({ 0.3, -0.8 }, { 2 })
    sp:zero_grad()
    mine:zero_grad()
    local a, a1 = sp:backward(z2, dlp, cond)
    local b2, b1 = mine:backward(z2, dlp, cond)
    assert.tensor_near(a, b2, 1e-5)
    assert.tensor_near(a1, b1, 1e-5)
    local p2 = mine:parameters()
    for i, p in ipairs(sp:parameters()) do assert.tensor_near(p.grad, p2[i].grad, 1e-5, 0, p.name) end
  end)
end)
