--- Flow pieces: ActNorm, InvConv1x1 (plain and LU), Shuffle, Reverse,
--- AffineCoupling, AdditiveCoupling, FlowStep, Squeeze, Split and Flow (a
--- sequence). Each has
---   :forward(x) -> y, logdet {n}
---   :inverse(y) -> x
---   :backward(y, dy [, dlogdet]) -> x, dx
--- backward takes the OUTPUT y and rebuilds the input by the inverse; it
--- accumulates parameter gradients. dlogdet is dL/dlogdet: nil, a number
--- (the same for every image) or a tensor {n}.
--- Split differs: forward(x) -> z1, logdet, z2; inverse(z1, z2 | nil, opts);
--- backward(z1, dz1, dlogdet, z2, dz2); its prior adds log_prob(z1, z2) and
--- prior_backward(z1, z2, dlp) -> dz1, dz2.
local core = require "glow.core"
local util = require "glow.util"
local nn = require "glow.nn"

local flow = {}

-- true while flow.placeholders runs: see there
local placeholder = false

--- flow.placeholders(fn, ...) -> fn(...), with every InvConv1x1 built from
--- the identity instead of a random rotation and its LU factorization (both
--- O(c^3) on c channels): for glow.load, whose file then overwrites every
--- parameter and buffer of the permutation.
function flow.placeholders(fn, ...)
  placeholder = true
  local r = table.pack(pcall(fn, ...))
  placeholder = false
  if not r[1] then error(r[2], 0) end
  return table.unpack(r, 2, r.n)
end

local function base(cls)
  cls.parameters = util.parameters
  cls.zero_grad = util.zero_grad
  --- Data-dependent initialization of every ActNorm inside, in order, each
  --- on the output of the layers before it.
  cls.initialize = function(self, x)
    util.walk(self, function(m) if m.check_init and not m.initialized then m.init_pending = true end end)
    local r = table.pack(pcall(self.forward, self, x))
    util.walk(self, function(m) m.init_pending = nil end)
    if not r[1] then error(r[2], 0) end
    return self
  end
  return cls
end

local Flow -- forward declaration: the sequence container, defined below

--- the location prefix of a child in an error message
--- (a named child is a leaf piece that names itself in its messages)
local function sep(ch)
  if getmetatable(ch.module) == Flow then return ch.where .. ", " end
  if ch.named then return "" end
  return ch.where .. ": "
end

local function zeros_n(x) return core.tensor({ x:shape()[1] }) end
local function pixels(x) local s = x:shape() return s[2] * s[3], s[1] end

local function check_channels(x, c, what)
  util.check_image(x, nil, nil, c, what)
end

----------------------------------------------------------------- ActNorm
local ActNorm = base(util.class("ActNorm"))
flow.ActNorm = ActNorm

--- ActNorm(c): y = (x + bias) * exp(logs); logdet = h*w*sum(logs).
--- (the same parameters and init as nn.ActNorm, plus the log-determinant)
function ActNorm.new(c)
  return setmetatable(nn.ActNorm.new(c), ActNorm)
end

ActNorm.check_init = nn.ActNorm.check_init
function ActNorm:initialize(x)
  check_channels(x, self.c, "actnorm: input")
  return nn.ActNorm.initialize(self, x)
end

function ActNorm:forward(x)
  check_channels(x, self.c, "actnorm: input")
  self:check_init(x)
  local y = core.actnorm_forward(x, self.bias, self.logs)
  local pix = pixels(x)
  return y, zeros_n(x):fill(pix * self.logs:sum())
end

function ActNorm:inverse(y)
  check_channels(y, self.c, "actnorm: input")
  return core.actnorm_inverse(y, self.bias, self.logs)
end

function ActNorm:backward(y, dy, dlogdet)
  check_channels(y, self.c, "actnorm: input")
  local pix, n = pixels(y)
  local _, dsum = util.dlogdet(dlogdet, n)
  local g = self._params
  local dx = core.actnorm_backward(y, self.bias, self.logs, dy, g[1].grad, g[2].grad, pix * dsum)
  return core.actnorm_inverse(y, self.bias, self.logs), dx
end

----------------------------------------------------------------- InvConv1x1
local InvConv1x1 = base(util.class("InvConv1x1"))
flow.InvConv1x1 = InvConv1x1

--- InvConv1x1(c [, {lu = true, seed = s}]): y = W x at every pixel, W a
--- seeded random rotation at start; with lu, W = P L (U + diag(sign*exp(log_s))).
function InvConv1x1.new(c, opts)
  opts = util.check_options(opts, { lu = true, seed = true }, "InvConv1x1")
  local self = setmetatable({ c = c, lu = opts.lu and true or false }, InvConv1x1)
  local seed = opts.seed or util.next_seed()
  if placeholder then
    local eye = core.tensor({ c, c })
    for i = 1, c do eye:set((i - 1) * c + i, 1) end
    local perm = {}
    for i = 1, c do perm[i] = i end
    if self.lu then -- W = P L U with P = L = I, U = 0, log_s = 0, sign = 1: W = I
      self.perm, self.sign, self._buffers = perm, core.from(perm, { c }):fill(1), { "perm", "sign" }
      util.param(self, "l", eye)
      util.param(self, "u", core.tensor({ c, c }))
      util.param(self, "log_s", core.tensor({ c }))
    else
      util.param(self, "weight", eye)
    end
    return self
  end
  local w = core.random_rotation(c, seed)
  if self.lu then
    local perm, l, u = core.lu(w)
    local ut = u:totable()
    local sign, log_s = {}, {}
    for i = 1, c do
      local d = ut[(i - 1) * c + i]
      sign[i] = d < 0 and -1 or 1
      log_s[i] = math.log(math.abs(d))
    end
    for i = 1, c do u:set((i - 1) * c + i, 0) end
    self.perm = perm
    self.sign = core.from(sign, { c })
    self._buffers = { "perm", "sign" }
    util.param(self, "l", l)
    util.param(self, "u", u)
    util.param(self, "log_s", core.from(log_s, { c }))
  else
    util.param(self, "weight", w)
  end
  return self
end

--- The c x c matrix W.
function InvConv1x1:matrix()
  if self.lu then return core.lu_weight(self.l, self.u, self.log_s, self.sign, self.perm) end
  return self.weight
end

function InvConv1x1:logdet_per_pixel(w)
  if self.lu then return self.log_s:sum() end
  local ld = core.slogdet(w)
  return ld
end

function InvConv1x1:forward(x)
  check_channels(x, self.c, "invconv: input")
  local w = self:matrix()
  local pix = pixels(x)
  return core.invconv_forward(x, w), zeros_n(x):fill(pix * self:logdet_per_pixel(w))
end

function InvConv1x1:inverse(y)
  check_channels(y, self.c, "invconv: input")
  return core.invconv_inverse(y, core.inverse(self:matrix()))
end

function InvConv1x1:backward(y, dy, dlogdet)
  check_channels(y, self.c, "invconv: input")
  local pix, n = pixels(y)
  local _, dsum = util.dlogdet(dlogdet, n)
  local w = self:matrix()
  local winv = core.inverse(w)
  local x = core.invconv_inverse(y, winv)
  local dx
  if self.lu then
    local dw = core.tensor({ self.c, self.c })
    dx = core.invconv_backward(x, w, nil, dy, dw, 0)
    local g = self._params
    core.lu_weight_backward(self.l, self.u, self.log_s, self.sign, self.perm, dw,
      g[1].grad, g[2].grad, g[3].grad, pix * dsum)
  else
    dx = core.invconv_backward(x, w, winv, dy, self._params[1].grad, pix * dsum)
  end
  return x, dx
end

----------------------------------------------------------------- Shuffle, Reverse
local Permute = base(util.class("Permute"))

local function permutation(c, perm)
  local self = setmetatable({ c = c, _buffers = { "perm" } }, Permute)
  self:set_perm(perm)
  return self
end

function Permute:set_perm(perm)
  local inv = {}
  for k, p in ipairs(perm) do inv[p] = k end
  self.perm, self.inv = perm, inv
end

function Permute:forward(x)
  check_channels(x, self.c, "permutation: input")
  return core.permute_channels(x, self.perm), zeros_n(x)
end

function Permute:inverse(y)
  check_channels(y, self.c, "permutation: input")
  return core.permute_channels(y, self.inv)
end

function Permute:backward(y, dy)
  return self:inverse(y), core.permute_channels(dy, self.inv)
end

--- Shuffle(c [, {seed = s}]): a fixed random permutation of the channels.
function flow.Shuffle(c, opts)
  opts = util.check_options(opts, { seed = true }, "Shuffle")
  local u = core.rand({ c }, opts.seed or util.next_seed()):totable()
  local perm = {}
  for i = 1, c do perm[i] = i end
  table.sort(perm, function(a, b) return u[a] < u[b] end)
  return permutation(c, perm)
end

--- Reverse(c): the channels in reverse order.
function flow.Reverse(c)
  local perm = {}
  for i = 1, c do perm[i] = c + 1 - i end
  return permutation(c, perm)
end

----------------------------------------------------------------- couplings
local function default_net(c1, cout, width, seed)
  return nn.Sequential {
    nn.Conv2d(c1, width, 3, { seed = seed }),
    nn.ActNorm(width),
    nn.ReLU(),
    nn.Conv2d(width, width, 1, { seed = seed + 1 }),
    nn.ActNorm(width),
    nn.ReLU(),
    nn.ZeroConv2d(width, cout),
  }
end

local function coupling_new(cls, kind, c, opts)
  opts = util.check_options(opts, { width = true, net = true, seed = true }, kind)
  if c < 2 then error(kind .. ": needs at least 2 channels, got " .. tostring(c), 0) end
  local self = setmetatable({ c = c, c1 = c // 2, c2 = c - c // 2 }, cls)
  local cout = cls == flow.AffineCoupling and 2 * self.c2 or self.c2
  self.net = opts.net or default_net(self.c1, cout, opts.width or 512, opts.seed or util.next_seed())
  self.children = { { name = "net", module = self.net } }
  return self
end

local function net_output(self, z1, keep)
  local h = util.at("coupling: net: ", self.net.forward, self.net, z1, keep)
  return h
end

--- In "store" memory mode the model sets store_next before a training
--- forward: the coupling then keeps z1, the network's output and (inside a
--- glow.nn.Sequential) its activations, and backward uses them instead of
--- recomputing the network. Without it, backward recomputes from the output.
--- During a training forward the model sets keep_input on every coupling:
--- the coupling then keeps z2, the half of its input it transforms. Backward
--- takes x from it instead of dividing the output by the scale: a scale
--- near zero (sigmoid of a very negative value) would blow the
--- reconstruction error up by its inverse. Rebuilding by inverses then only
--- goes through ActNorm and the 1x1 convolution, one step at a time.
local function forward_net(self, z1, z2)
  if self.keep_input then self._z2 = z2 end
  if not self.store_next then return net_output(self, z1) end
  local h = net_output(self, z1, true)
  self._stored = { z1 = z1, h = h }
  return h
end

local function backward_net_input(self, y1)
  local s = self._stored
  self._stored = nil
  if s then return s.z1, s.h end
  return y1, net_output(self, y1, true)
end

--- the exact z2 kept by the forward pass, or the one rebuilt from the output
local function input_z2(self, rebuilt)
  local z2 = self._z2
  self._z2 = nil
  return z2 or rebuilt
end

local AffineCoupling = base(util.class("AffineCoupling"))
flow.AffineCoupling = AffineCoupling

--- AffineCoupling(c, {width = w} | {net = m}): z1, z2 = halves of x;
--- (shift, raw) = halves of net(z1); y2 = (z2 + shift) * sigmoid(raw + 2).
function AffineCoupling.new(c, opts) return coupling_new(AffineCoupling, "AffineCoupling", c, opts) end

function AffineCoupling:forward(x)
  check_channels(x, self.c, "coupling: input")
  local z1, z2 = core.split_channels(x, self.c1)
  local y2, ld = core.affine_forward(z2, forward_net(self, z1, z2))
  return core.concat_channels(z1, y2), ld
end

function AffineCoupling:inverse(y)
  check_channels(y, self.c, "coupling: input")
  local y1, y2 = core.split_channels(y, self.c1)
  return core.concat_channels(y1, core.affine_inverse(y2, net_output(self, y1)))
end

function AffineCoupling:backward(y, dy, dlogdet)
  check_channels(y, self.c, "coupling: input")
  local n = y:shape()[1]
  local dld = util.dlogdet(dlogdet, n)
  local y1, y2 = core.split_channels(y, self.c1)
  local dy1, dy2 = core.split_channels(dy, self.c1)
  local h
  y1, h = backward_net_input(self, y1)
  local z2, dz2, dh = core.affine_backward(y2, h, dy2, dld)
  z2 = input_z2(self, z2)
  local dz1 = util.at("coupling: net: ", self.net.backward, self.net, y1, dh)
  dz1:add(dy1)
  return core.concat_channels(y1, z2), core.concat_channels(dz1, dz2)
end

local AdditiveCoupling = base(util.class("AdditiveCoupling"))
flow.AdditiveCoupling = AdditiveCoupling

--- AdditiveCoupling(c, {width = w} | {net = m}): y2 = z2 + net(z1), logdet 0.
function AdditiveCoupling.new(c, opts) return coupling_new(AdditiveCoupling, "AdditiveCoupling", c, opts) end

function AdditiveCoupling:forward(x)
  check_channels(x, self.c, "coupling: input")
  local z1, z2 = core.split_channels(x, self.c1)
  local h = forward_net(self, z1, self.keep_input and z2:clone() or nil)
  return core.concat_channels(z1, z2:add(h)), zeros_n(x)
end

function AdditiveCoupling:inverse(y)
  check_channels(y, self.c, "coupling: input")
  local y1, y2 = core.split_channels(y, self.c1)
  return core.concat_channels(y1, y2:add(net_output(self, y1), -1))
end

function AdditiveCoupling:backward(y, dy)
  check_channels(y, self.c, "coupling: input")
  local y1, y2 = core.split_channels(y, self.c1)
  local dy1, dy2 = core.split_channels(dy, self.c1)
  local h
  y1, h = backward_net_input(self, y1)
  local dz1 = util.at("coupling: net: ", self.net.backward, self.net, y1, dy2)
  dz1:add(dy1)
  return core.concat_channels(y1, input_z2(self, y2:add(h, -1))), core.concat_channels(dz1, dy2)
end

----------------------------------------------------------------- Flow (a sequence)
Flow = base(util.class("Flow"))
flow.Flow = Flow

--- Flow{piece, ...} or Flow{{name, piece}, ...}: the pieces in sequence; the
--- log-determinants add up.
function Flow.new(pieces, label)
  local self = setmetatable({ children = {}, label = label or "step" }, Flow)
  for i, p in ipairs(pieces or {}) do
    if getmetatable(p) == nil and type(p[1]) == "string" then
      self.children[i] = { name = p[1], module = p[2], where = p[1], named = true }
    else
      self.children[i] = { name = self.label .. i, module = p, where = self.label .. " " .. i }
    end
  end
  return self
end

function Flow:forward(x)
  local logdet
  for _, ch in ipairs(self.children) do
    local ld
    x, ld = util.at(sep(ch), ch.module.forward, ch.module, x)
    if logdet then logdet:add(ld) else logdet = ld end
  end
  return x, logdet or zeros_n(x)
end

function Flow:inverse(y)
  for i = #self.children, 1, -1 do
    local ch = self.children[i]
    y = util.at(sep(ch), ch.module.inverse, ch.module, y)
  end
  return y
end

function Flow:backward(y, dy, dlogdet)
  for i = #self.children, 1, -1 do
    local ch = self.children[i]
    y, dy = util.at(sep(ch), ch.module.backward, ch.module,
      y, dy, dlogdet)
  end
  return y, dy
end

----------------------------------------------------------------- FlowStep
--- FlowStep(c, {coupling = "affine"|"additive", permutation = "invconv_lu"|
--- "invconv"|"shuffle"|"reverse", width = 512, net = m, seed = s}):
--- ActNorm -> permutation -> coupling.
function flow.FlowStep(c, opts)
  opts = util.check_options(opts, { coupling = true, permutation = true, width = true, net = true,
    seed = true }, "FlowStep")
  local seed = opts.seed or util.next_seed()
  local perm = opts.permutation or "invconv_lu"
  local p
  if perm == "invconv_lu" then p = flow.InvConv1x1(c, { lu = true, seed = seed })
  elseif perm == "invconv" then p = flow.InvConv1x1(c, { lu = false, seed = seed })
  elseif perm == "shuffle" then p = flow.Shuffle(c, { seed = seed })
  elseif perm == "reverse" then p = flow.Reverse(c)
  else error("FlowStep: unknown permutation '" .. tostring(perm)
    .. "' (invconv_lu, invconv, shuffle, reverse)", 0) end
  local kind = opts.coupling or "affine"
  local copts = { width = opts.width, net = opts.net, seed = seed + 101 }
  local cp
  if kind == "affine" then cp = flow.AffineCoupling(c, copts)
  elseif kind == "additive" then cp = flow.AdditiveCoupling(c, copts)
  else error("FlowStep: unknown coupling '" .. tostring(kind) .. "' (affine, additive)", 0) end
  local pname = perm:match("^invconv") and "invconv" or perm
  return Flow({ { "actnorm", flow.ActNorm(c) }, { pname, p }, { "coupling", cp } })
end

----------------------------------------------------------------- Squeeze
local Squeeze = base(util.class("Squeeze"))
flow.Squeeze = Squeeze

--- Squeeze(): {n, h, w, c} -> {n, h/2, w/2, 4c}, out[.., k*4 + dy*2 + dx] = in[2i+dy, 2j+dx, k].
function Squeeze.new() return setmetatable({}, Squeeze) end
function Squeeze:forward(x) return core.squeeze(x), zeros_n(x) end
function Squeeze:inverse(y) return core.unsqueeze(y) end
function Squeeze:backward(y, dy) return core.unsqueeze(y), core.unsqueeze(dy) end

----------------------------------------------------------------- Split
local Split = base(util.class("Split"))
flow.Split = Split

--- Split(c): z1 = the first c//2 channels go on, z2 = the rest is scored by
--- a learned conditional prior: (mean, logs) = halves of ZeroConv2d(z1).
function Split.new(c)
  if c < 2 then error("Split: needs at least 2 channels, got " .. tostring(c), 0) end
  local self = setmetatable({ c = c, c1 = c // 2, c2 = c - c // 2 }, Split)
  self.prior = nn.ZeroConv2d(self.c1, 2 * self.c2)
  self.children = { { name = "prior", module = self.prior } }
  return self
end

function Split:forward(x)
  check_channels(x, self.c, "split: input")
  local z1, z2 = core.split_channels(x, self.c1)
  return z1, zeros_n(x), z2
end

function Split:moments(z1)
  return core.split_channels(util.at("split: prior: ", self.prior.forward, self.prior, z1), self.c2)
end

--- log p(z2 | z1), a tensor {n}.
function Split:log_prob(z1, z2)
  local mean, logs = self:moments(z1)
  return core.gaussian_logp(z2, mean, logs)
end

--- inverse(z1, z2 | nil [, {temperature = 1, seed = 0}]): z2 is drawn from
--- the prior at the temperature when not given.
function Split:inverse(z1, z2, opts)
  check_channels(z1, self.c1, "split: z1")
  if z2 == nil then
    opts = opts or {}
    local mean, logs = self:moments(z1)
    z2 = core.gaussian_sample(mean:shape(), mean, logs, opts.temperature or 1, opts.seed or 0)
  end
  return core.concat_channels(z1, z2)
end

function Split:backward(z1, dz1, _, z2, dz2)
  return core.concat_channels(z1, z2), core.concat_channels(dz1, dz2)
end

--- Gradients of dlp * log p(z2 | z1): returns dz1, dz2; prior grads accumulate.
function Split:prior_backward(z1, z2, dlp)
  local mean, logs = self:moments(z1)
  local dmean, dlogs = core.tensor(mean:shape()), core.tensor(logs:shape())
  local dz2 = core.gaussian_logp_backward(z2, mean, logs, dlp, dmean, dlogs)
  local dz1 = self.prior:backward(z1, core.concat_channels(dmean, dlogs))
  return dz1, dz2
end

return flow
