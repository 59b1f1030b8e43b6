--- A coupling whose network is composed in Lua, with no change to C:
--- conv3x3 -> a residual block of two 3x3 convolutions -> ZeroConv2d.
--- Builds a Glow model with it, encodes, decodes and takes gradients.
---
---   lua5.4 examples/custom_coupling.lua
local glow = require "glow"
local nn = glow.nn

-- A residual block: y = x + conv(relu(conv(relu(x)))). Any table with
-- forward(x), backward(x, dy) and parameters() fits in a glow.nn.Sequential.
local Residual = {}
Residual.__index = Residual

function Residual.new(c, seed)
  local self = setmetatable({}, Residual)
  self.inner = nn.Sequential {
    nn.ReLU(), nn.Conv2d(c, c, 3, { seed = seed, bias = true }),
    nn.ReLU(), nn.Conv2d(c, c, 3, { seed = seed + 1, bias = true }),
  }
  self.children = { { name = "inner", module = self.inner } }
  return self
end

function Residual:forward(x)
  return self.inner:forward(x):add_(x)
end

function Residual:backward(x, dy)
  return self.inner:backward(x, dy):add_(dy)
end

function Residual:parameters(prefix)
  return self.inner:parameters((prefix or "") .. "inner.")
end

local function residual_net(cin, cout, info)
  local w = info.width
  return nn.Sequential {
    nn.Conv2d(cin, w, 3, { seed = info.seed }),
    nn.ActNorm(w),
    Residual.new(w, info.seed + 7),
    nn.ZeroConv2d(w, cout),
  }
end

local model = glow.Glow {
  shape = { 16, 16, 3 }, levels = 2, depth = 4, width = 16, net = residual_net, seed = 1,
}
-- the same network can also go into a single coupling by hand:
local single = glow.AffineCoupling(8, { net = residual_net(4, 8, { width = 16, seed = 3 }) })
assert(single.net)

local x = glow.rand({ 8, 16, 16, 3 }, 1):add_(glow.Tensor { 8, 16, 16, 3 }:fill_(-0.5))
model:initialize(x)
-- move every parameter off its initial value, so no coupling is the identity
for i, p in ipairs(model:parameters()) do p.value:add_(glow.randn(p.value:shape(), i, 0.02)) end

local zs, logdet = model:encode(x)
local err = model:decode(zs):max_abs_diff(x)
print(string.format("latents: %d levels, logdet[1] = %.3f", #zs, logdet:get(1)))
print(string.format("decode(encode(x)) max abs error: %.3g", err))
assert(err < 1e-4, "the custom coupling does not invert")

model:zero_grad()
local stats = model:loss_and_grad(x)
local n, norm2 = 0, 0
for _, p in ipairs(model:parameters()) do
  n = n + p.value:numel()
  norm2 = norm2 + p.grad:dot(p.grad)
end
print(string.format("bits/dim %.4f; gradient over %d parameters, norm %.4g", stats.bpd, n, math.sqrt(norm2)))
assert(norm2 > 0 and norm2 == norm2, "no gradient")
local names = {}
for _, p in ipairs(model:parameters()) do
  if p.name:match("inner") then names[#names + 1] = p.name end
end
print("residual block parameters, e.g. " .. names[1])
print("custom coupling: ok")
