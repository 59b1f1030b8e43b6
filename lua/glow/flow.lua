--- Flow pieces: ActNorm, InvConv1x1 (plain and LU), Shuffle, Reverse,
--- AffineCoupling, AdditiveCoupling, FlowStep, Squeeze, Split and Flow (a
--- sequence). One protocol for all of them (docs/ARCHITECTURE.md):
---   :forward(x [, ctx]) -> y, logdet {n}
---   :inverse(y [, ctx]) -> x
---   :backward(y, dy [, dlogdet [, ctx]]) -> x, dx
--- backward takes the OUTPUT y and rebuilds the input by the inverse; it
--- accumulates parameter gradients. dlogdet is dL/d(log-density) per image:
--- nil, a number (the same for every image) or a tensor {n}; it weighs the
--- log-determinants and the log-densities the priors inside add to ctx.
--- ctx (a flow.Context) carries what a piece splits off: a Split pushes its
--- latent z2 onto ctx.latents during forward (and, when ctx.score is set,
--- adds its prior's log p(z2 | z1) to ctx.logp), pops it in inverse (or
--- draws it from its prior when none is left) and in backward.
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"
local nn = require "glow.nn"
local prior = require "glow.prior"

local flow = {}
local class = module.class

----------------------------------------------------------------- Context
local Context = util.class("Context")
flow.Context = Context

--- Context{y = labels, score = bool, latents = {z, ...}, temperature = 1,
--- seed = 0, draw = k}: the latents split off (outermost first), the labels
--- the priors condition on, whether forward scores the split latents
--- (ctx.logp, a tensor {n}), and how inverse draws missing latents.
function Context.new(o)
  o = o or {}
  local latents = {}
  for i, z in ipairs(o.latents or {}) do latents[i] = z end
  return setmetatable({ y = o.y, score = o.score, latents = latents, temperature = o.temperature or 1,
    seed = o.seed or 0, draw = o.draw or 1 }, Context)
end

function Context:push(z) self.latents[#self.latents + 1] = z end

--- The last latent pushed and its index (nil when none is left).
function Context:pop()
  local k = #self.latents
  if k == 0 then return nil end
  local z = self.latents[k]
  self.latents[k] = nil
  return z, k
end

--- Add a piece's log-densities {n} to ctx.logp (a copy: the piece's tensor stays its own).
function Context:add_logp(lp)
  if self.logp then self.logp:add_(lp) else self.logp = lp:clone() end
end

--- The seed of the next latent drawn in inverse: seed + draw, draw counting
--- down (a model sets draw to its number of splits: the innermost split
--- draws with seed + that number, the outermost with seed + 1).
function Context:draw_seed()
  local k = self.draw
  self.draw = k - 1
  return self.seed + k
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

local function check_channels(x, c, what)
  util.check_image(x, nil, nil, c, what)
end

----------------------------------------------------------------- ActNorm
local ActNorm = class("ActNorm")
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

-- one call into C each (the input's shape is checked there)
function ActNorm:forward(x)
  if self.init_pending or not self.initialized then
    check_channels(x, self.c, "actnorm: input")
    self:check_init(x)
  end
  return core.actnorm_step_forward(x, self.bias, self.logs)
end

function ActNorm:inverse(y)
  return core.actnorm_step_inverse(y, self.bias, self.logs)
end

function ActNorm:backward(y, dy, dlogdet)
  return core.actnorm_step_backward(y, self.bias, self.logs, dy, self.grad.bias, self.grad.logs, dlogdet)
end

----------------------------------------------------------------- InvConv1x1
local InvConv1x1 = class("InvConv1x1")
flow.InvConv1x1 = InvConv1x1

--- InvConv1x1(c [, {lu = true, seed = s}]): y = W x at every pixel, W a
--- seeded random rotation at start; with lu, W = P L (U + diag(sign*exp(log_s))).
function InvConv1x1.new(c, opts)
  opts = util.check_options(opts, { lu = true, seed = true, placeholder = true }, "InvConv1x1")
  local self = setmetatable({ c = c, lu = opts.lu and true or false }, InvConv1x1)
  local seed = opts.seed or util.next_seed()
  -- placeholder = true (glow.load): W = I instead of a random rotation and
  -- its LU factorization (both O(c^3)); the file then overwrites every
  -- parameter and buffer of the permutation
  if opts.placeholder then
    local eye = core.tensor({ c, c })
    for i = 1, c do eye:set((i - 1) * c + i, 1) end
    local perm = {}
    for i = 1, c do perm[i] = i end
    if self.lu then -- W = P L U with P = L = I, U = 0, log_s = 0, sign = 1: W = I
      self.perm, self.sign, self._buffers = perm, core.from(perm, { c }):fill_(1), { "perm", "sign" }
      module.param(self, "l", eye)
      module.param(self, "u", core.tensor({ c, c }))
      module.param(self, "log_s", core.tensor({ c }))
    else
      module.param(self, "weight", eye)
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
    module.param(self, "l", l)
    module.param(self, "u", u)
    module.param(self, "log_s", core.from(log_s, { c }))
  else
    module.param(self, "weight", w)
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

-- one call into C each: W (and its inverse) are formed there
function InvConv1x1:forward(x)
  if self.lu then return core.invconv_lu_step_forward(x, self.l, self.u, self.log_s, self.sign, self.perm) end
  return core.invconv_step_forward(x, self.weight)
end

function InvConv1x1:inverse(y)
  if self.lu then return core.invconv_lu_step_inverse(y, self.l, self.u, self.log_s, self.sign, self.perm) end
  return core.invconv_step_inverse(y, self.weight)
end

function InvConv1x1:backward(y, dy, dlogdet)
  local g = self.grad
  if self.lu then
    return core.invconv_lu_step_backward(y, self.l, self.u, self.log_s, self.sign, self.perm, dy, g.l, g.u,
      g.log_s, dlogdet)
  end
  return core.invconv_step_backward(y, self.weight, dy, g.weight, dlogdet)
end

----------------------------------------------------------------- Shuffle, Reverse
local Permute = class("Permute")

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

--- In training mode (module:training()) the coupling keeps z2, the half of
--- its input it transforms, and backward takes x from it instead of dividing
--- the output by the scale: a scale near zero (sigmoid of a very negative
--- value) would blow the reconstruction error up by its inverse. Rebuilding
--- by inverses then only goes through ActNorm and the 1x1 convolution, one
--- step at a time. With memory mode "store" (module:set_memory) a training
--- forward also keeps z1, the network's output and (inside a
--- glow.nn.Sequential) its activations, and backward uses them instead of
--- recomputing the network.
--- The kept z2 goes outside Lua's heap (core.stash) and comes back in
--- backward with its memory freed at once: kept in the heap over the whole
--- depth of a model, it would also raise how much garbage the collector lets
--- pile up before each cycle, and memory would grow with depth twice over.
local function forward_net(self, z1, z2)
  if not self.is_training then return net_output(self, z1) end
  self._z2 = core.stash(z2)
  if self.memory_mode ~= "store" then return net_output(self, z1) end
  local h = net_output(self, z1, true)
  self._stored = { z1 = z1, h = h }
  return h
end

--- What a coupling's backward starts from: the network's input y1 and output
--- h (kept by a "store" forward, else y's first half and the network run
--- again), the stash of z2 a training forward kept (or nil) and the kept z1.
local function backward_inputs(self, y)
  local s = self._stored
  self._stored = nil
  local y1, h
  if s then
    y1, h = s.z1, s.h
  else
    check_channels(y, self.c, "coupling: input")
    y1 = core.split_channels(y, self.c1)
    h = net_output(self, y1, true)
  end
  local kept = self._z2
  self._z2 = nil
  return y1, h, kept, s and s.z1
end

--- drop what a training forward kept (module:clear)
local function clear_state(self)
  self._stored, self._z2 = nil, nil
  -- a network of the user's own that keeps a cache the way nn.Sequential does
  if type(self.net) == "table" then self.net._cache = nil end
end

local AffineCoupling = class("AffineCoupling")
flow.AffineCoupling = AffineCoupling

--- AffineCoupling(c, {width = w} | {net = m}): z1, z2 = halves of x;
--- (shift, raw) = halves of net(z1); y2 = (z2 + shift) * sigmoid(raw + 2).
function AffineCoupling.new(c, opts) return coupling_new(AffineCoupling, "AffineCoupling", c, opts) end
AffineCoupling.clear_state = clear_state

-- The coupling's own work is one call each (core.affine_step_*, which take
-- the whole input or output and check it); the network is called between.
function AffineCoupling:forward(x)
  check_channels(x, self.c, "coupling: input")
  local z1, z2 = core.split_channels(x, self.c1)
  return core.affine_step_forward(x, forward_net(self, z1, z2), self.c1, self.c, z2)
end

function AffineCoupling:inverse(y)
  check_channels(y, self.c, "coupling: input")
  local y1, y2 = core.split_channels(y, self.c1)
  return core.affine_step_inverse(y, net_output(self, y1), self.c1, self.c, y2)
end

function AffineCoupling:backward(y, dy, dlogdet)
  local y1, h, kept, z1 = backward_inputs(self, y)
  local x, dx, dh = core.affine_step_backward(y, h, self.c1, self.c, dy, dlogdet, kept, z1)
  local dz1 = util.at("coupling: net: ", self.net.backward, self.net, y1, dh)
  return x, core.add_channels_(dx, dz1)
end

local AdditiveCoupling = class("AdditiveCoupling")
flow.AdditiveCoupling = AdditiveCoupling

--- AdditiveCoupling(c, {width = w} | {net = m}): y2 = z2 + net(z1), logdet 0.
function AdditiveCoupling.new(c, opts) return coupling_new(AdditiveCoupling, "AdditiveCoupling", c, opts) end
AdditiveCoupling.clear_state = clear_state

-- as the affine coupling: its own part one call each (core.additive_step_*)
function AdditiveCoupling:forward(x)
  check_channels(x, self.c, "coupling: input")
  local z1, z2 = core.split_channels(x, self.c1)
  return core.additive_step_forward(x, forward_net(self, z1, z2), self.c1, self.c, z2)
end

function AdditiveCoupling:inverse(y)
  check_channels(y, self.c, "coupling: input")
  local y1 = core.split_channels(y, self.c1)
  return core.additive_step_inverse(y, net_output(self, y1), self.c1, self.c)
end

function AdditiveCoupling:backward(y, dy)
  local y1, h, kept, z1 = backward_inputs(self, y)
  local x, dx, dy2 = core.additive_step_backward(y, h, self.c1, self.c, dy, kept, z1)
  local dz1 = util.at("coupling: net: ", self.net.backward, self.net, y1, dy2)
  return x, core.add_channels_(dx, dz1)
end

----------------------------------------------------------------- Flow (a sequence)
Flow = class("Flow")
flow.Flow = Flow

--- Flow{piece, ...}: the pieces in sequence; the log-determinants add up,
--- and one context travels through all of them. An entry may name its
--- piece: {name, piece [, where = "..."]} (name: in parameter names; where:
--- in error messages, default the name; a named leaf piece names itself in
--- its messages). Unnamed pieces are "step1", "step2", ... ("step 1" in
--- messages), or label .. i with Flow(pieces, label).
function Flow.new(pieces, label)
  local self = setmetatable({ children = {}, label = label or "step" }, Flow)
  for i, p in ipairs(pieces or {}) do
    if getmetatable(p) == nil and type(p[1]) == "string" then
      self.children[i] = { name = p[1], module = p[2], where = p.where or p[1], named = p.where == nil }
    else
      self.children[i] = { name = self.label .. i, module = p, where = self.label .. " " .. i }
    end
  end
  return self
end

--- forward(x [, ctx]) -> y, logdet, ctx (a new context when none is given)
function Flow:forward(x, ctx)
  ctx = ctx or Context.new()
  local logdet
  for _, ch in ipairs(self.children) do
    local ld
    x, ld = util.at(sep(ch), ch.module.forward, ch.module, x, ctx)
    if logdet then logdet:add_(ld) else logdet = ld end
  end
  return x, logdet or zeros_n(x), ctx
end

function Flow:inverse(y, ctx)
  ctx = ctx or Context.new()
  for i = #self.children, 1, -1 do
    local ch = self.children[i]
    y = util.at(sep(ch), ch.module.inverse, ch.module, y, ctx)
  end
  return y
end

function Flow:backward(y, dy, dlogdet, ctx)
  ctx = ctx or Context.new()
  for i = #self.children, 1, -1 do
    local ch = self.children[i]
    y, dy = util.at(sep(ch), ch.module.backward, ch.module, y, dy, dlogdet, ctx)
  end
  return y, dy
end

----------------------------------------------------------------- FlowStep
--- FlowStep(c, {coupling = "affine"|"additive", permutation = "invconv_lu"|
--- "invconv"|"shuffle"|"reverse", width = 512, net = m, seed = s}):
--- ActNorm -> permutation -> coupling. placeholder = true builds the 1x1
--- convolution as the identity (see InvConv1x1).
function flow.FlowStep(c, opts)
  opts = util.check_options(opts, { coupling = true, permutation = true, width = true, net = true,
    seed = true, placeholder = true }, "FlowStep")
  local seed = opts.seed or util.next_seed()
  local perm = opts.permutation or "invconv_lu"
  local p
  if perm == "invconv_lu" or perm == "invconv" then
    p = flow.InvConv1x1(c, { lu = perm == "invconv_lu", seed = seed, placeholder = opts.placeholder })
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
local Squeeze = class("Squeeze")
flow.Squeeze = Squeeze

--- Squeeze(): {n, h, w, c} -> {n, h/2, w/2, 4c}, out[.., k*4 + dy*2 + dx] = in[2i+dy, 2j+dx, k].
function Squeeze.new() return setmetatable({}, Squeeze) end
function Squeeze:forward(x) return core.squeeze(x), zeros_n(x) end
function Squeeze:inverse(y) return core.unsqueeze(y) end
function Squeeze:backward(y, dy) return core.unsqueeze(y), core.unsqueeze(dy) end

----------------------------------------------------------------- Split
local Split = class("Split")
flow.Split = Split
Split.splits = true -- a model counts these to number the latents it draws

--- Split(c [, {keep = c // 2, prior = p}]) or Split{c = c, keep = k, prior = p}:
--- z1 = the first keep channels go on; z2 = the rest leaves the flow through
--- the context, scored by the prior conditioned on z1 (default
--- glow.prior.SplitPrior: (mean, logs) = halves of ZeroConv2d(z1)). Any
--- prior with the protocol of docs/ARCHITECTURE.md plugs in; it gets
--- cond = {z1 = z1, y = labels}.
function Split.new(c, opts)
  if type(c) == "table" then c, opts = c.c, c end
  opts = util.check_options(opts, { c = true, keep = true, prior = true }, "Split")
  if math.type(c) ~= "integer" or c < 2 then error("Split: needs at least 2 channels, got " .. tostring(c), 0) end
  local keep = opts.keep or c // 2
  if math.type(keep) ~= "integer" or keep < 1 or keep >= c then
    error(string.format("Split: keep must be an integer in 1..%d, got %s", c - 1, tostring(keep)), 0)
  end
  local self = setmetatable({ c = c, c1 = keep, c2 = c - keep }, Split)
  self.prior = opts.prior or prior.SplitPrior(self.c1, self.c2)
  self.children = { { name = "prior", module = self.prior } }
  return self
end

function Split:forward(x, ctx)
  check_channels(x, self.c, "split: input")
  ctx = ctx or Context.new()
  local z1, z2 = core.split_channels(x, self.c1)
  ctx:push(z2)
  if ctx.score then
    ctx:add_logp(util.at("split: prior: ", self.prior.log_prob, self.prior, z2, { z1 = z1, y = ctx.y }))
  end
  return z1, zeros_n(x), ctx
end

--- inverse(z1 [, ctx]): z2 is the context's last latent, or when none is
--- left a draw from the prior at ctx.temperature.
function Split:inverse(z1, ctx)
  check_channels(z1, self.c1, "split: z1")
  ctx = ctx or Context.new()
  local s = z1:shape()
  local z2, k = ctx:pop()
  if z2 then
    util.check_image(z2, s[2], s[3], self.c2, "split: zs[" .. k .. "]")
  else
    z2 = util.at("split: prior: ", self.prior.sample, self.prior, { s[1], s[2], s[3], self.c2 },
      { z1 = z1, y = ctx.y }, { temperature = ctx.temperature, seed = ctx:draw_seed() })
  end
  return core.concat_channels(z1, z2)
end

--- backward(z1, dz1, dlogdet, ctx): z2 is the latent forward pushed; when
--- ctx.score is set, dlogdet weighs log p(z2 | z1) too.
function Split:backward(z1, dz1, dlogdet, ctx)
  check_channels(z1, self.c1, "split: z1")
  local z2 = ctx and ctx:pop()
  if not z2 then error("split: backward needs the context its forward pushed z2 onto", 0) end
  local dlp = util.dlogdet(dlogdet, z1:shape()[1])
  local dz2
  if ctx.score and dlp then
    local dcond
    dz2, dcond = util.at("split: prior: ", self.prior.backward, self.prior, z2, dlp, { z1 = z1, y = ctx.y })
    if dcond then dz1 = dcond:add_(dz1) end
  else
    dz2 = core.tensor(z2:shape())
  end
  return core.concat_channels(z1, z2), core.concat_channels(dz1, dz2)
end

-- every piece above also takes autograd values: y and logdet become two tape
-- values whose backward is the piece's own (glow.autograd.builtin)
local ag = require "glow.autograd"
for _, cls in ipairs { ActNorm, InvConv1x1, Permute, AffineCoupling, AdditiveCoupling, Flow, Squeeze, Split } do
  ag.builtin(cls, "flow")
end

return flow
