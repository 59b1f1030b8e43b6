--- RealNVP (Dinh, Sohl-Dickstein and Bengio, 2017) on Fashion-MNIST, written
--- in Lua with glow's ops and autograd, no C: checkerboard and channel-wise
--- masked affine couplings with tanh-bounded log-scales, multi-scale.
---   level 1 (28x28x1): 3 checkerboard couplings; squeeze; 3 channel-wise
---                      couplings; the split keeps half (14x14x2)
---   level 2 (14x14x2): the same; the split keeps half (7x7x4)
---   level 3 (7x7x4):   4 checkerboard couplings; a standard normal prior
--- An ActNorm follows every coupling (where the paper has batch norm). Each
--- coupling's network is a small residual conv net with ELUs; its output layer starts
--- at zero, so every coupling starts as the identity. The script checks a
--- tiny twin (inverse, brute-force log-determinant, gradients), trains,
--- and reports the test bits/dim.
---
---   lua5.4 examples/realnvp.lua [--epochs 1] [--batch 64] [--width 32] [--lr 1e-3]
---       [--max-steps N] [--eval-limit N] [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
-- luacheck: ignore 581 (not (a < b) is also true for NaN, on purpose)
-- common.lua beside this file (found from its own path: as a model file it is
-- loaded by the glow command, whose arg[0] is elsewhere)
local C = dofile((debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".") .. "/common.lua")
local glow = C.glow
local ag = glow.autograd

local SPEC = C.merge(C.FIT_OPTIONS, {
  width = { "int", 32, quick = 8, min = 1 },
})

-- conv3x3 -> ELU -> a residual conv3x3 block -> conv3x3 to cout channels
-- (zero at start). ELU rather than ReLU: its slope has no jump, so the
-- finite-difference checks see no kinks.
local function resnet(cin, cout, width, seed)
  local net = ag.Net(function(self, x)
    local h = glow.conv2d(x, self.w1, self.b1):elu()
    h = (glow.conv2d(h, self.w2, self.b2) + h):elu()
    return glow.conv2d(h, self.w3, self.b3)
  end)
  net:param("w1", glow.randn({ 3, 3, cin, width }, seed, 0.05)):param("b1", glow.zeros({ width }))
  net:param("w2", glow.randn({ 3, 3, width, width }, seed + 1, 0.05)):param("b2", glow.zeros({ width }))
  net:param("w3", glow.zeros({ 3, 3, width, cout })):param("b3", glow.zeros({ cout }))
  return net
end

-- s, t from the network's output h (2c channels): s = scale * tanh(raw)
local function scale_shift(self, h, c)
  return h:narrow(4, 1, c):tanh() * self.scale, h:narrow(4, c + 1, c)
end

--- A checkerboard coupling over {h, w, c}: the pixels where the mask is 1
--- condition the affine map of the others.
local function checkerboard(h, w, c, parity, width, seed)
  local keep = glow.checkerboard({ h, w, c }, parity)
  local change = 1 - keep
  local piece = ag.Flow {
    forward = function(self, x)
      local xk = x * keep
      local s, t = scale_shift(self, self.net:forward(xk), c)
      s, t = s * change, t * change
      return xk + (x * s:exp() + t) * change, s:sum({ 2, 3, 4 })
    end,
    inverse = function(self, y)
      local yk = y * keep
      local s, t = scale_shift(self, self.net:forward(yk), c)
      s, t = s * change, t * change
      return yk + ((y - t) * (-s):exp()) * change
    end,
  }
  piece.net = resnet(c, 2 * c, width, seed)
  piece.children = { { name = "net", module = piece.net } }
  piece:param("scale", glow.ones({ c }))
  return piece
end

--- A channel-wise coupling over c channels: one half conditions the affine
--- map of the other (which half alternates with flip).
local function channelwise(c, flip, width, seed)
  local half = c // 2
  local function halves(x)
    local a, b = x:narrow(4, 1, half), x:narrow(4, half + 1, half)
    if flip then return b, a end
    return a, b
  end
  local function join(cond, changed)
    if flip then return glow.cat({ changed, cond }, 4) end
    return glow.cat({ cond, changed }, 4)
  end
  local piece = ag.Flow {
    forward = function(self, x)
      local x1, x2 = halves(x)
      local s, t = scale_shift(self, self.net:forward(x1), half)
      return join(x1, x2 * s:exp() + t), s:sum({ 2, 3, 4 })
    end,
    inverse = function(self, y)
      local y1, y2 = halves(y)
      local s, t = scale_shift(self, self.net:forward(y1), half)
      return join(y1, (y2 - t) * (-s):exp())
    end,
  }
  piece.net = resnet(half, 2 * half, width, seed)
  piece.children = { { name = "net", module = piece.net } }
  piece:param("scale", glow.ones({ half }))
  return piece
end

--- The multi-scale model for images of shape {h, w, c} (h and w multiples of 4).
local function realnvp(shape, width, seed)
  local h, w, c = shape[1], shape[2], shape[3]
  local levels = {}
  for l = 1, 2 do
    local pieces = {}
    local function add(p, cc)
      pieces[#pieces + 1] = p
      pieces[#pieces + 1] = glow.ActNorm(cc)
    end
    for i = 1, 3 do add(checkerboard(h, w, c, i % 2, width, seed + 100 * l + i), c) end
    pieces[#pieces + 1] = glow.Squeeze()
    h, w, c = h // 2, w // 2, 4 * c
    for i = 1, 3 do add(channelwise(c, i % 2 == 0, width, seed + 100 * l + 10 + i), c) end
    pieces[#pieces + 1] = { "split", glow.Split(c) }
    c = c // 2
    levels[l] = glow.Flow(pieces)
  end
  local last = {}
  for i = 1, 4 do
    last[#last + 1] = checkerboard(h, w, c, i % 2, width, seed + 300 + i)
    last[#last + 1] = glow.ActNorm(c)
  end
  levels[3] = glow.Flow(last)
  return glow.Model({ levels = levels, prior = glow.prior.StandardNormal({ h, w, c }) },
    { shape = shape, n_bits = 8 })
end

C.script("realnvp", SPEC, function(o, out)
  C.verify(out, function(shape) return realnvp(shape, 4, o.seed) end, { 8, 8, 1 })
  local train, test = C.fashion_mnist(o, "train"), C.fashion_mnist(o, "test")
  local model = realnvp(train:shape(), o.width, o.seed)
  local n = 0
  for _, p in ipairs(model:parameters()) do n = n + p.value:numel() end
  out:say("RealNVP: 3 levels, 16 couplings (checkerboard and channel-wise), width %d, %d parameters", o.width, n)
  local bpd, result = C.fit(out, model, train, test, o)
  out:say("test bits/dim: %.4f (%d steps)", bpd, result.steps)
  out:grid("samples.png", model:sample(64, { temperature = 0.7, seed = o.seed + 1 }), 8)
  out:say("realnvp: ok")
end)

-- as a model file: glow train --model examples/realnvp.lua [--model-option width=N]
return {
  description = "RealNVP: checkerboard and channel-wise affine couplings, 3 levels",
  options = { width = { "int", 32, min = 1, help = "channels of each coupling's network" } },
  build = function(o) return realnvp(o.shape, o.width, o.seed) end,
}
