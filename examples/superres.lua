--- A conditional Glow for 2x super-resolution on Fashion-MNIST, written in
--- Lua with glow's ops and autograd, no C: the model learns p(x at 28x28 |
--- the same image at 14x14). The low-resolution image (2x2 means, upsampled
--- back to 28x28 bilinearly) reaches every coupling through the context
--- (model:log_prob(x, low), ctx.y): each coupling's network sees z1 beside
--- the low-resolution image squeezed to its level's size, and so do the
--- priors (the split's, beside z1, and the top one), each a Gaussian whose
--- mean and log-scale come from a zero-initialized conv3x3. Each level:
--- squeeze, K steps of ActNorm, LU 1x1 convolution and this coupling, then a
--- split (not on the last level). The unconditional twin has the same
--- flow with the library's split prior and learned top prior. The script checks a tiny twin, trains the
--- conditional model and the same model without the low-resolution input
--- for the same steps, reports both test bits/dim, and writes samples at
--- temperature 0.7 beside their inputs (superres.png: rows of inputs,
--- samples and the originals).
---
---   lua5.4 examples/superres.lua [--epochs 1] [--batch 64] [--levels 2] [--depth 4] [--width 64]
---       [--lr 1e-3] [--max-steps N] [--eval-limit N] [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
-- luacheck: ignore 581 (not (a < b) is also true for NaN, on purpose)
-- common.lua beside this file (found from its own path: as a model file it is
-- loaded by the glow command, whose arg[0] is elsewhere)
local C = dofile((debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".") .. "/common.lua")
local glow = C.glow
local ag = glow.autograd

local SPEC = C.merge(C.FIT_OPTIONS, {
  levels = { "int", 2, min = 1 },
  depth = { "int", 4, quick = 2, min = 1 },
  width = { "int", 64, quick = 8, min = 1 },
})

--- The conditioning input of a batch: its 14x14 version, upsampled to 28x28.
local function low_res(x) return glow.upsample2(glow.avg_pool2(x), "bilinear") end

local squeeze = glow.Squeeze()

-- the low-resolution image at level l's size (squeezed l times), once per context
local function cond_at(ctx, l)
  local key = "low_res_" .. l
  if not ctx[key] then
    local t = ctx.y
    for _ = 1, l do t = (squeeze:forward(t)) end
    ctx[key] = t
  end
  return ctx[key]
end

-- conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 to cout (zero at start)
local function net(cin, cout, width, seed)
  local m = ag.Net(function(self, x)
    local h = glow.conv2d(x, self.w1, self.b1):relu()
    h = glow.conv2d(h, self.w2, self.b2):relu()
    return glow.conv2d(h, self.w3, self.b3)
  end)
  m:param("w1", glow.randn({ 3, 3, cin, width }, seed, 0.05)):param("b1", glow.zeros({ width }))
  m:param("w2", glow.randn({ 1, 1, width, width }, seed + 1, 0.05)):param("b2", glow.zeros({ width }))
  m:param("w3", glow.zeros({ 3, 3, width, cout })):param("b3", glow.zeros({ cout }))
  return m
end

--- Glow's affine coupling whose network also sees the low-resolution image
--- (conditional = true) or not.
local function coupling(c, l, width, seed, conditional)
  local c1, c2 = c // 2, c - c // 2
  local function net_in(z1, ctx)
    if conditional then return glow.cat({ z1, cond_at(ctx, l) }, 4) end
    return z1
  end
  local piece = ag.Flow {
    forward = function(self, x, ctx)
      local z1, z2 = x:narrow(4, 1, c1), x:narrow(4, c1 + 1, c2)
      local h = self.net:forward(net_in(z1, ctx))
      local logscale = (h:narrow(4, c2 + 1, c2) + 2):log_sigmoid()
      return glow.cat({ z1, (z2 + h:narrow(4, 1, c2)) * logscale:exp() }, 4), logscale:sum({ 2, 3, 4 })
    end,
    inverse = function(self, y, ctx)
      local y1, y2 = y:narrow(4, 1, c1), y:narrow(4, c1 + 1, c2)
      local h = self.net:forward(net_in(y1, ctx))
      return glow.cat({ y1, y2 / (h:narrow(4, c2 + 1, c2) + 2):sigmoid() - h:narrow(4, 1, c2) }, 4)
    end,
  }
  piece.net = net(c1 + (conditional and 4 ^ l or 0), 2 * c2, width, seed)
  piece.children = { { name = "net", module = piece.net } }
  return piece
end

local LOG2PI = math.log(2 * math.pi)

-- log N(z; mean, exp(logs)^2) per image, and a draw at temperature t
local function gaussian_logp(z, mean, logs)
  local d = (z - mean) * (-logs):exp()
  return (d * d * -0.5 - logs - 0.5 * LOG2PI):sum({ 2, 3, 4 })
end

local function gaussian_sample(shape, mean, logs, opts)
  return mean + glow.randn(shape, opts.seed or 0, 1) * (logs:exp() * (opts.temperature or 1))
end

--- A prior whose mean and log-scale come from a zero-initialized conv3x3 of
--- the low-resolution image at level l's size, beside z1 for a split's prior
--- (c1 channels) or alone for the top prior (c1 = 0): c2 channels scored.
local function cond_prior(c1, c2, l, shape)
  local function moments(self, cond)
    local low = cond.y
    for _ = 1, l do low = (squeeze:forward(low)) end
    local input = c1 > 0 and glow.cat({ cond.z1, low }, 4) or low
    local h = glow.conv2d(input, self.w, self.b) * (self.logscale * 3):exp()
    return h:narrow(4, 1, c2), h:narrow(4, c2 + 1, c2)
  end
  local p = ag.Prior {
    shape = shape,
    log_prob = function(self, z, cond) return gaussian_logp(z, moments(self, cond)) end,
    sample = function(self, s, cond, opts)
      local mean, logs = moments(self, cond)
      return gaussian_sample(s, mean, logs, opts)
    end,
  }
  local cin = c1 + 4 ^ l
  p:param("w", glow.zeros({ 3, 3, cin, 2 * c2 })):param("b", glow.zeros({ 2 * c2 }))
  p:param("logscale", glow.zeros({ 2 * c2 }))
  return p
end

local function model(shape, o, conditional)
  local c = shape[3]
  local levels = {}
  for l = 1, o.levels do
    c = 4 * c
    local pieces = { { "squeeze", glow.Squeeze() } }
    for k = 1, o.depth do
      local seed = o.seed * 1000 + l * 100 + k
      pieces[#pieces + 1] = { "step" .. k, where = "step " .. k, glow.Flow {
        { "actnorm", glow.ActNorm(c) }, { "invconv", glow.InvConv1x1(c, { lu = true, seed = seed }) },
        { "coupling", coupling(c, l, o.width, seed, conditional) } } }
    end
    if l < o.levels then
      local half = c // 2
      pieces[#pieces + 1] = { "split", glow.Split(c, { prior = conditional and cond_prior(half, c - half, l) or nil }) }
      c = half
    end
    levels[l] = glow.Flow(pieces)
  end
  local f = 2 ^ o.levels
  local top = { shape[1] // f, shape[2] // f, c }
  return glow.Model({ levels = levels,
    prior = conditional and cond_prior(0, c, o.levels, top) or glow.prior.Learned(top) }, { shape = shape, n_bits = 8 })
end

C.script("superres", SPEC, function(o, out)
  local tiny = { levels = 2, depth = 1, width = 4, seed = o.seed }
  C.verify(out, function(shape) return model(shape, tiny, true) end, { 8, 8, 1 }, low_res)
  local train, test = C.fashion_mnist(o, "train"), C.fashion_mnist(o, "test")
  local cond_model = model(train:shape(), o, true)
  local plain_model = model(train:shape(), o, false)
  local n = 0
  for _, p in ipairs(cond_model:parameters()) do n = n + p.value:numel() end
  out:say("conditional Glow for 2x super-resolution: levels %d, depth %d, width %d, %d parameters", o.levels,
    o.depth, o.width, n)
  local cond_bpd, result = C.fit(out, cond_model, train, test, o, low_res)
  out:say("conditional test bits/dim, -log p(x | its 14x14 version): %.4f (%d steps)", cond_bpd, result.steps)
  local plain_bpd = C.fit(out, plain_model, train, test, o)
  out:say("the same model without the low-resolution input, test bits/dim: %.4f", plain_bpd)
  local x = test:batch({ 1, 2, 3, 4, 5, 6, 7, 8 }, { seed = 0, n_bits = 8 })
  local low = low_res(x)
  local s = cond_model:sample(8, { y = low, temperature = 0.7, seed = o.seed + 1 })
  out:grid("superres.png", glow.cat({ low, s, x }, 1), 8)
  if not (cond_bpd < plain_bpd) then
    C.fail("the low-resolution input did not help: %.4f against %.4f", cond_bpd, plain_bpd)
  end
  out:say("superres: ok")
end)

-- as a model file: glow train --model examples/superres.lua; each batch's
-- conditioning input is its own low-resolution version
return {
  description = "conditional Glow for 2x super-resolution: p(x | its half-size version)",
  options = { levels = { "int", 2, min = 1 }, depth = { "int", 4, min = 1 }, width = { "int", 64, min = 1 } },
  build = function(o) return model(o.shape, o, true) end,
  condition = function(x) return low_res(x) end,
}
