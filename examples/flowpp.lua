--- Flow++'s coupling network (Ho, Chen, Srinivas, Duan and Abbeel, 2019)
--- inside Glow's affine coupling, written in Lua with glow's ops and
--- autograd, no C: a conv3x3 in, then gated residual blocks (concat-ELU,
--- conv3x3, concat-ELU, conv3x3 to twice the width, a gate a * sigmoid(b),
--- the residual sum, layer norm over the channels), then a conv3x3 out that
--- starts at zero (so every coupling starts as the identity). glow.Glow
--- takes the network through its net option. The script checks a tiny twin
--- (inverse, brute-force log-determinant, gradients), trains, and reports
--- the test bits/dim.
---
---   lua5.4 examples/flowpp.lua [--epochs 1] [--batch 64] [--levels 2] [--depth 8] [--width 32]
---       [--blocks 1] [--lr 1e-3] [--max-steps N] [--eval-limit N] [--quick] [--out DIR] [--seed 0]
---       [--data-dir DIR]
-- luacheck: ignore 581 (not (a < b) is also true for NaN, on purpose)
-- common.lua beside this file (found from its own path: as a model file it is
-- loaded by the glow command, whose arg[0] is elsewhere)
local C = dofile((debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".") .. "/common.lua")
local glow = C.glow
local ag = glow.autograd

local SPEC = C.merge(C.FIT_OPTIONS, {
  levels = { "int", 2, min = 1 },
  depth = { "int", 8, quick = 2, min = 1 },
  width = { "int", 32, quick = 8, min = 1 },
  blocks = { "int", 1, min = 1 },
})

-- concat-ELU: elu of x and of -x, side by side on the channels
local function concat_elu(x) return glow.cat({ x, -x }, 4):elu() end

-- layer norm over the channels, with a learned gain and bias per channel
local function layer_norm(x, gain, bias)
  local centred = x - x:mean(4, true)
  local var = (centred * centred):mean(4, true)
  return centred / (var + 1e-5):sqrt() * gain + bias
end

local function flowpp_net(cin, cout, width, seed, blocks)
  local net = ag.Net(function(self, x)
    local h = glow.conv2d(x, self.w_in, self.b_in)
    for b = 1, blocks do
      local p = self.blocks[b]
      local a = glow.conv2d(concat_elu(h), p.w1, p.b1)
      a = glow.conv2d(concat_elu(a), p.w2, p.b2)
      local gate = a:chunk(2, 4)
      h = layer_norm(h + gate[1] * gate[2]:sigmoid(), p.gain, p.bias)
    end
    return glow.conv2d(h, self.w_out, self.b_out)
  end)
  net:param("w_in", glow.randn({ 3, 3, cin, width }, seed, 0.05)):param("b_in", glow.zeros({ width }))
  net.blocks, net.children = {}, {}
  for b = 1, blocks do
    local p = glow.autograd.Net(function() end) -- a holder of the block's parameters
    p:param("w1", glow.randn({ 3, 3, 2 * width, width }, seed + 10 * b, 0.05)):param("b1", glow.zeros({ width }))
    p:param("w2", glow.randn({ 3, 3, 2 * width, 2 * width }, seed + 10 * b + 1, 0.05))
    p:param("b2", glow.zeros({ 2 * width }))
    p:param("gain", glow.ones({ width })):param("bias", glow.zeros({ width }))
    net.blocks[b] = p
    net.children[b] = { name = "block" .. b, module = p }
  end
  net:param("w_out", glow.zeros({ 3, 3, width, cout })):param("b_out", glow.zeros({ cout }))
  return net
end

local function model(shape, o)
  return glow.Glow { shape = shape, levels = o.levels, depth = o.depth, width = o.width, seed = o.seed,
    net = function(cin, cout, info) return flowpp_net(cin, cout, info.width, info.seed, o.blocks) end }
end

C.script("flowpp", SPEC, function(o, out)
  C.verify(out, function(shape)
    return model(shape, { levels = 2, depth = 1, width = 4, seed = o.seed, blocks = 1 })
  end, { 8, 8, 1 })
  local train, test = C.fashion_mnist(o, "train"), C.fashion_mnist(o, "test")
  local m = model(train:shape(), o)
  local n = 0
  for _, p in ipairs(m:parameters()) do n = n + p.value:numel() end
  out:say("Glow with Flow++ coupling networks: levels %d, depth %d, width %d, %d gated block(s), %d parameters",
    o.levels, o.depth, o.width, o.blocks, n)
  local bpd, result = C.fit(out, m, train, test, o)
  out:say("test bits/dim: %.4f (%d steps)", bpd, result.steps)
  out:grid("samples.png", m:sample(64, { temperature = 0.7, seed = o.seed + 1 }), 8)
  out:say("flowpp: ok")
end)

-- as a model file: glow train --model examples/flowpp.lua [--model-option width=N ...]
return {
  description = "Glow with Flow++ coupling networks",
  options = { levels = { "int", 2, min = 1 }, depth = { "int", 8, min = 1 }, width = { "int", 32, min = 1 },
    blocks = { "int", 1, min = 1 } },
  build = function(o) return model(o.shape, o) end,
}
