--- Plain network pieces for a coupling's NN, composed in Lua:
--- Sequential, Conv2d, ActNorm, ReLU, ZeroConv2d.
--- Each has :forward(x) -> y, :backward(x, dy [, y]) -> dx (parameter
--- gradients accumulate) and :parameters(). The work is done by glow.core.
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"

local nn = {}

----------------------------------------------------------------- Conv2d
local Conv2d = module.class("nn.Conv2d")
nn.Conv2d = Conv2d

--- Conv2d(cin, cout, k [, {bias = false, std = 0.05, seed = ...}]): zero padding, stride 1.
function Conv2d.new(cin, cout, k, opts)
  opts = util.check_options(opts, { bias = true, std = true, seed = true }, "nn.Conv2d")
  k = k or 3
  if k ~= 1 and k ~= 3 then error("nn.Conv2d: kernel size must be 1 or 3, got " .. tostring(k), 2) end
  local self = setmetatable({ cin = cin, cout = cout, k = k }, Conv2d)
  module.param(self, "weight", core.randn({ k, k, cin, cout }, opts.seed or util.next_seed(), opts.std or 0.05))
  if opts.bias then module.param(self, "bias", core.tensor({ cout })) end
  return self
end

function Conv2d:forward(x)
  return core.conv2d_forward(x, self.weight, self.bias)
end

function Conv2d:backward(x, dy)
  return core.conv2d_backward(x, self.weight, dy, self.grad.weight, self.bias and self.grad.bias)
end

----------------------------------------------------------------- ActNorm
local ActNorm = module.class("nn.ActNorm")
nn.ActNorm = ActNorm

--- ActNorm(c): y = (x + bias) * exp(logs) per channel, data-dependent init.
function ActNorm.new(c)
  local self = setmetatable({ c = c, initialized = false }, ActNorm)
  module.param(self, "bias", core.tensor({ c }))
  module.param(self, "logs", core.tensor({ c }))
  return self
end

--- Set bias and logs from a batch: bias = -mean, logs = -log(std + 1e-6).
function ActNorm:initialize(x)
  core.actnorm_init(x, self.bias, self.logs)
  self.initialized = true
  self.init_pending = nil
end

function ActNorm:check_init(x)
  if self.initialized then return end
  if self.init_pending then return self:initialize(x) end
  error("actnorm: not initialized; call initialize(x) on the model or flow first "
    .. "(data-dependent initialization)", 0)
end

function ActNorm:forward(x)
  self:check_init(x)
  return core.actnorm_forward(x, self.bias, self.logs)
end

function ActNorm:backward(x, dy, y)
  y = y or core.actnorm_forward(x, self.bias, self.logs)
  return core.actnorm_backward(y, self.bias, self.logs, dy, self.grad.bias, self.grad.logs, 0)
end

--- forward_relu(x) = ReLU(forward(x)) in one sweep; backward_relu(y, dy)
--- takes that output (Sequential fuses an ActNorm followed by a ReLU).
function ActNorm:forward_relu(x)
  self:check_init(x)
  return core.actnorm_relu_forward(x, self.bias, self.logs)
end

function ActNorm:backward_relu(y, dy)
  return core.actnorm_relu_backward(y, self.bias, self.logs, dy, self.grad.bias, self.grad.logs)
end

----------------------------------------------------------------- ReLU
local ReLU = module.class("nn.ReLU")
nn.ReLU = ReLU

function ReLU.new() return setmetatable({}, ReLU) end
function ReLU:forward(x) return core.relu_forward(x) end
function ReLU:backward(x, dy) return core.relu_backward(x, dy) end

----------------------------------------------------------------- ZeroConv2d
local ZeroConv2d = module.class("nn.ZeroConv2d")
nn.ZeroConv2d = ZeroConv2d

--- ZeroConv2d(cin, cout): a 3x3 conv with bias, output times exp(3 * logscale)
--- per channel; weight, bias and logscale all start at zero.
function ZeroConv2d.new(cin, cout)
  local self = setmetatable({ cin = cin, cout = cout, factor = 3 }, ZeroConv2d)
  module.param(self, "weight", core.tensor({ 3, 3, cin, cout }))
  module.param(self, "bias", core.tensor({ cout }))
  module.param(self, "logscale", core.tensor({ cout }))
  return self
end

function ZeroConv2d:forward(x)
  local h = core.conv2d_forward(x, self.weight, self.bias)
  return core.scale_exp_forward(h, self.logscale, self.factor)
end

function ZeroConv2d:backward(x, dy, y)
  y = y or self:forward(x)
  local g = self.grad
  local dh = core.scale_exp_backward(y, self.logscale, self.factor, dy, g.logscale)
  return core.conv2d_backward(x, self.weight, dh, g.weight, g.bias)
end

----------------------------------------------------------------- Sequential
local Sequential = module.class("nn.Sequential")
nn.Sequential = Sequential

--- Sequential{m1, m2, ...}: applies the modules in order.
function Sequential.new(mods)
  local self = setmetatable({ children = {} }, Sequential)
  for i, m in ipairs(mods or {}) do self:add(m, tostring(i)) end
  return self
end

--- drop the activations a forward(x, true) kept (module:clear)
function Sequential:clear_state() self._cache = nil end

function Sequential:add(m, name)
  self.children[#self.children + 1] = { name = name or tostring(#self.children + 1), module = m }
  return self
end

--- An nn.ActNorm directly followed by an nn.ReLU runs as one sweep each way
--- (the same values; the ActNorm's own output is never materialized).
local function fused(children, i)
  local nxt = children[i + 1]
  return nxt ~= nil and getmetatable(children[i].module) == ActNorm
    and getmetatable(nxt.module) == ReLU
end

--- The default coupling network (Conv2d 3x3 without bias, ActNorm, ReLU,
--- Conv2d 1x1 without bias, ActNorm, ReLU, ZeroConv2d) runs as one fused C
--- kernel once its ActNorms are initialized: a few images at a time through
--- all seven, in cache. forward(x, true) keeps the two hidden activations
--- for backward; otherwise backward recomputes them, chunk by chunk.
--- Setting seq.fuse = false keeps it on the module-by-module path.
local function fused_net(self, x)
  local ch = self.children
  if self.fuse == false or #ch ~= 7 then return nil end
  -- checked on every call (children may be replaced in place)
  local m = {}
  for i, c in ipairs(ch) do m[i] = c.module end
  local function is(i, cls) return getmetatable(m[i]) == cls end
  local fusable = is(1, Conv2d) and m[1].k == 3 and not m[1].bias
    and is(2, ActNorm) and is(3, ReLU) and is(4, Conv2d) and m[4].k == 1 and not m[4].bias
    and is(5, ActNorm) and is(6, ReLU) and is(7, ZeroConv2d)
    and m[2].c == m[1].cout and m[4].cin == m[1].cout and m[4].cout == m[1].cout
    and m[5].c == m[1].cout and m[7].cin == m[1].cout
  if not (fusable and m[2].initialized and m[5].initialized) then return nil end
  -- anything unexpected takes the general path, which names the problem
  -- (the weight's shape is read again only when the tensor was replaced)
  local w = ch[1].module.weight
  if self._w_seen ~= w then self._w_seen, self._w_shape = w, w:shape() end
  local shape, ws = x:shape(), self._w_shape
  if #shape ~= 4 or #ws ~= 4 or shape[4] ~= ws[3] then return nil end
  -- looked up on every call: loading or flattening replaces the tensors
  local ps, gs = {}, {}
  for i, p in ipairs(self:parameters()) do ps[i], gs[i] = p.value, p.grad end
  return ps, gs, ch[7].module.factor
end

--- forward(x [, keep]): with keep, the activations stay cached for one
--- backward(x, dy) on the same x, which then does not recompute them.
function Sequential:forward(x, keep)
  local ps, _, factor = fused_net(self, x)
  if ps then
    local y, a1, a2 = core.net_forward(x, ps, factor, keep)
    self._cache = keep and { x, fused = true, y = y, a1 = a1, a2 = a2 } or nil
    return y
  end
  local ch = self.children
  local acts = keep and { x } or nil
  local i = 1
  while i <= #ch do
    local m = ch[i].module
    if fused(ch, i) then
      x = util.at(ch[i].name .. ": ", m.forward_relu, m, x)
      if acts then acts[i + 1], acts[i + 2] = false, x end
      i = i + 2
    else
      x = util.at(ch[i].name .. ": ", m.forward, m, x)
      if acts then acts[i + 1] = x end
      i = i + 1
    end
  end
  self._cache = acts
  return x
end

function Sequential:backward(x, dy)
  local ps, gs, factor = fused_net(self, x)
  if ps then
    local c = self._cache
    self._cache = nil
    if not (c and c.fused and rawequal(c[1], x)) then c = {} end
    return core.net_backward(x, dy, c.y, ps, gs, factor, c.a1, c.a2)
  end
  local acts = self._cache
  if not acts or acts.fused or not rawequal(acts[1], x) then
    self:forward(x, true)
    acts = self._cache
  end
  self._cache = nil
  local ch = self.children
  local i = #ch
  while i >= 1 do
    if acts[i] == false then -- children i - 1 and i: a fused ActNorm and ReLU
      local m = ch[i - 1].module
      dy = util.at(ch[i - 1].name .. ": ", m.backward_relu, m, acts[i + 1], dy)
      acts[i + 1] = nil
      i = i - 2
    else
      local m = ch[i].module
      dy = util.at(ch[i].name .. ": ", m.backward, m, acts[i], dy, acts[i + 1])
      acts[i + 1] = nil
      i = i - 1
    end
  end
  return dy
end

-- every piece above also takes autograd values: one tape node each, whose
-- backward is the piece's own (glow.autograd.builtin)
local ag = require "glow.autograd"
for _, cls in ipairs { Conv2d, ActNorm, ReLU, ZeroConv2d, Sequential } do ag.builtin(cls, "net") end

return nn
