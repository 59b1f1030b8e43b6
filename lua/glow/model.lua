--- glow.Model: a multi-scale flow model from pieces. The levels run in
--- sequence (each any flow piece, typically glow.Flow{glow.Squeeze(),
--- steps..., glow.Split{...}}), the latents the levels split off travel in a
--- flow.Context, and a top prior scores what comes out of the last level;
--- an optional head (glow.prior.ClassHead) adds a classification loss.
--- encode, decode, log_prob, sample, the loss and its gradient, training
--- steps and evaluation are written here once, for every such model;
--- glow.Glow (lua/glow/glow.lua) is one composition of them.
---
---   local m = glow.Model({levels = {level1, level2}, prior = top [, head = h]},
---                        {shape = {h, w, c}, n_bits = 8 [, classes = k] [, memory = "auto"]})
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"
local flow = require "glow.flow"
local dist = require "glow.distributed"

local LN2 = math.log(2)

local Model = module.class("Model")

--- memory = "auto" stores the coupling networks' activations for backward
--- while activation_bytes(n) is at most this many bytes, and rebuilds them
--- otherwise.
Model.STORE_LIMIT = 1024 ^ 3

--- Model(parts, config [, cls]): parts.levels (an array of flow pieces;
--- their parameters are named "level1.", "level2.", ...), parts.prior (the
--- top prior, named "top.", with shape = {h, w, c}), parts.head (optional,
--- "head.", with loss, backward and classify; needs config.classes);
--- config.shape = {h, w, c} of one image, config.n_bits (default 8),
--- config.classes (the label count, when a piece conditions on labels),
--- config.memory ("auto" (default), "store" or "reversible"). cls is the
--- class of the result, for a subclass such as glow.Glow.
local function check_config(config, head)
  if type(config) ~= "table" then error("glow.Model: config must be a table {shape = {h, w, c}, ...}", 0) end
  local c = {}
  for k, v in pairs(config) do c[k] = v end -- a copy: later changes to the caller's table do not reach the model
  local s = c.shape
  if type(s) ~= "table" or #s ~= 3 then error("glow.Model: config.shape must be {h, w, c}", 0) end
  for i = 1, 3 do
    if math.type(s[i]) ~= "integer" or s[i] < 1 then
      error("glow.Model: config.shape[" .. i .. "] must be a positive integer, got " .. tostring(s[i]), 0)
    end
  end
  c.shape = { s[1], s[2], s[3] }
  c.n_bits = c.n_bits or 8
  if math.type(c.n_bits) ~= "integer" or c.n_bits < 1 or c.n_bits > 8 then
    error("glow.Model: config.n_bits must be an integer in 1..8, got " .. tostring(c.n_bits), 0)
  end
  c.memory = c.memory or "auto"
  if c.memory ~= "auto" and c.memory ~= "store" and c.memory ~= "reversible" then
    error("glow.Model: config.memory must be \"auto\", \"store\" or \"reversible\", got " .. tostring(c.memory), 0)
  end
  if c.classes ~= nil and (math.type(c.classes) ~= "integer" or c.classes < 2) then
    error("glow.Model: config.classes must be an integer >= 2, got " .. tostring(c.classes), 0)
  end
  if head and not c.classes then error("glow.Model: a head needs config.classes", 0) end
  return c
end

function Model.new(parts, config, cls)
  parts = util.check_options(parts, { levels = true, prior = true, head = true }, "glow.Model")
  if type(parts.levels) ~= "table" or #parts.levels == 0 then
    error("glow.Model: levels must be an array of flow pieces", 0)
  end
  local p = parts.prior
  if type(p) ~= "table" or not (p.log_prob and p.sample and p.backward) or type(p.shape) ~= "table" then
    error("glow.Model: prior must have log_prob, sample, backward and shape = {h, w, c}", 0)
  end
  config = check_config(config, parts.head)
  local levels = {}
  for l, lev in ipairs(parts.levels) do levels[l] = { "level" .. l, lev, where = "level " .. l } end
  local s = config.shape
  local self = setmetatable({ config = config, initialized = false, flow = flow.Flow(levels),
    prior = p, head = parts.head, dims = s[1] * s[2] * s[3] }, cls or Model)
  self.levels = parts.levels
  -- the levels' entries are the flow's own: one tree, one set of names
  self.children = {}
  for i, ch in ipairs(self.flow.children) do self.children[i] = ch end
  self.children[#self.children + 1] = { name = "top", module = p }
  if parts.head then self.children[#self.children + 1] = { name = "head", module = parts.head } end
  -- a piece with splits = true sends one latent out of the flow (Split)
  self.n_splits = 0
  self:apply(function(m) if m.splits then self.n_splits = self.n_splits + 1 end end)
  return self
end

--- Inputs outside [-INPUT_BOUND, INPUT_BOUND] are refused (preprocessed
--- images lie in [-0.5, 0.5]).
local INPUT_BOUND = 2
Model.INPUT_BOUND = INPUT_BOUND

function Model:check_input(x, what)
  local s = self.config.shape
  util.check_image(x, s[1], s[2], s[3], what .. ": x")
  local finite, lo, hi = x:finite_range()
  if not finite then error(what .. ": x contains a non-finite value (NaN or inf)", 0) end
  -- preprocessed images lie in [-0.5, 0.5]: raw pixels (0..255) or a wrong
  -- scale would give a meaningless log-density
  if lo < -INPUT_BOUND or hi > INPUT_BOUND then
    error(string.format("%s: x holds values in [%.4g, %.4g], far outside the preprocessed range [-0.5, 0.5]: "
      .. "preprocess images as glow.data's batches do, x = (floor(pixel / 2^(8 - n_bits)) + u) / 2^n_bits - 0.5 "
      .. "with n_bits = %d (docs/FORMAT.md)", what, lo, hi, self.config.n_bits or 8), 0)
  end
  return x:shape()[1]
end

--- y: with config.classes, labels (a Lua array of n integers in [0, classes));
--- otherwise anything, passed unchecked to the pieces and priors as ctx.y
--- and cond.y (a conditioning input of a model's own, e.g. a tensor).
function Model:check_labels(y, n, what, required)
  local classes = self.config.classes
  if not classes then return y end
  if y == nil then
    if required then
      error(what .. ": labels y are required by a class-conditional model (classes = " .. classes .. ")", 0)
    end
    return nil
  end
  if type(y) ~= "table" or #y ~= n then
    error(string.format("%s: y must be a Lua array of %d labels", what, n), 0)
  end
  for i = 1, n do
    local v = y[i]
    if math.type(v) ~= "integer" or v < 0 or v >= classes then
      error(string.format("%s: label y[%d] = %s is not an integer in [0, %d)", what, i, tostring(v), classes), 0)
    end
  end
  return y
end

function Model:check_initialized(what)
  if not self.initialized then
    error(what .. ": the model is not initialized; call model:initialize(x) with a batch first "
      .. "(data-dependent ActNorm initialization)", 0)
  end
end

--- Data-dependent initialization of every ActNorm, in order, from one
--- batch, afresh: the flow runs with its split priors scoring, then the
--- top prior (when it has the labels it needs), so a piece with check_init
--- inside a prior initializes too.
function Model:initialize(x, y)
  local n = self:check_input(x, "initialize")
  y = self:check_labels(y, n, "initialize")
  self:apply(function(m) if m.check_init then m.initialized = false; m.init_pending = true end end)
  local _ <close> = module.closing(function() self:apply(function(m) m.init_pending = nil end) end)
  local z = self.flow:forward(x, flow.Context.new { y = y, score = true })
  if y or not self.config.classes then util.at("top prior: ", self.prior.log_prob, self.prior, z, { y = y }) end
  self.initialized = true
  return self
end

--- encode(x [, y]) -> zs, logdet: the raw latents (outermost first, the top
--- one last) and the flow's log-determinant {n}.
function Model:encode(x, y)
  local n = self:check_input(x, "encode")
  y = self:check_labels(y, n, "encode")
  self:check_initialized("encode")
  local z, logdet, ctx = self.flow:forward(x, flow.Context.new { y = y })
  local zs = ctx.latents
  zs[#zs + 1] = z
  return zs, logdet
end

--- decode(zs [, y]) -> x: the exact inverse of encode.
function Model:decode(zs, y)
  self:check_initialized("decode")
  local L = self.n_splits + 1
  if type(zs) ~= "table" or #zs ~= L then
    error(string.format("decode: zs must be an array of %d tensors (one per level)", L), 0)
  end
  local s = self.prior.shape
  util.check_image(zs[L], s[1], s[2], s[3], "decode: zs[" .. L .. "]")
  local ctx = flow.Context.new { y = y, latents = table.move(zs, 1, L - 1, 1, {}) }
  return util.at("decode: ", self.flow.inverse, self.flow, zs[L], ctx)
end

--- sample(n [, {temperature = 1, y = labels, seed = 0}]) -> x {n, h, w, c}
function Model:sample(n, opts)
  opts = util.check_options(opts, { temperature = true, y = true, seed = true }, "sample")
  if math.type(n) ~= "integer" or n < 1 then error("sample: n must be a positive integer, got " .. tostring(n), 0) end
  self:check_initialized("sample")
  local t = opts.temperature or 1
  if type(t) ~= "number" or t < 0 then error("sample: temperature must be a number >= 0", 0) end
  local seed, y, classes = opts.seed or 0, opts.y, self.config.classes
  if classes and y == nil then
    local u = core.rand({ n }, seed + 7):totable()
    y = {}
    for i = 1, n do y[i] = math.floor(u[i] * classes) end
  end
  y = self:check_labels(y, n, "sample")
  local s, base = self.prior.shape, seed * 7919 + 1
  local z = self.prior:sample({ n, s[1], s[2], s[3] }, { y = y }, { temperature = t, seed = base })
  local ctx = flow.Context.new { y = y, temperature = t, seed = base, draw = self.n_splits }
  return self.flow:inverse(z, ctx)
end

--- The flow and every prior: log p(x) {n}, the top latent, and the context
--- (the split latents, for backward).
function Model:_log_prob(x, y)
  local ctx = flow.Context.new { y = y, score = true }
  local z, lp = self.flow:forward(x, ctx)
  if ctx.logp then lp:add_(ctx.logp) end
  lp:add_(util.at("top prior: ", self.prior.log_prob, self.prior, z, { y = y }))
  return lp, z, ctx
end

--- log_prob(x [, y]) -> tensor {n}: log-density of the preprocessed x, in nats.
function Model:log_prob(x, y)
  local n = self:check_input(x, "log_prob")
  y = self:check_labels(y, n, "log_prob", true)
  self:check_initialized("log_prob")
  return (self:_log_prob(x, y))
end

--- Bits per dimension of each image from log_prob: -lp / (D ln 2) + n_bits.
function Model:bpd_of(lp)
  local t = lp:clone():scale_(-1 / (self.dims * LN2))
  t:add_(core.tensor({ t:numel() }):fill_(self.config.n_bits))
  return t
end

function Model:_loss(x, y, what)
  local n = self:check_input(x, what)
  y = self:check_labels(y, n, what, true)
  self:check_initialized(what)
  local lp, z, ctx = self:_log_prob(x, y)
  local bpd = self:bpd_of(lp):sum() / n
  local stats = { bpd = bpd, loss = bpd }
  if self.head then
    stats.xent = self.head:loss(z, y)
    stats.loss = bpd + self.head.loss_weight * stats.xent
  end
  return stats, n, y, z, ctx
end

--- loss(x [, y]) -> stats {loss, bpd [, xent]}: the objective without gradients.
function Model:loss(x, y)
  local stats = self:_loss(x, y, "loss")
  if self.head then self.head:clear_state() end
  return stats
end

--- Bytes the coupling networks' activations take for a batch of n when
--- stored; nil when unknown (then memory = "auto" stores). glow.Glow
--- counts them from its configuration.
function Model.activation_bytes() return nil end

--- Whether loss_and_grad stores activations for a batch of n.
function Model:stores(n)
  local mode = self.config.memory or "auto"
  if mode == "auto" then
    local bytes = self:activation_bytes(n)
    return bytes == nil or bytes <= Model.STORE_LIMIT
  end
  return mode == "store"
end

--- loss_and_grad(x [, y]) -> stats: the mean negative log-likelihood in
--- bits/dim (plus the head's weighted cross-entropy) and its gradient,
--- accumulated into every parameter's grad; stats.dx is the gradient with
--- respect to x. The forward pass runs in training mode (what backward
--- needs is kept; with memory "store" the networks' activations too), and
--- backward rebuilds the rest by the inverses; the mode the model was in
--- comes back afterwards.
function Model:loss_and_grad(x, y)
  self:check_input(x, "loss_and_grad")
  self:clear() -- anything a failed call left behind
  self:set_memory(self:stores(x:shape()[1]) and "store" or "reversible")
  local was = self.is_training or false
  self:training(true)
  local _ <close> = module.closing(function(err)
    self:training(was)
    if err then self:clear() end
  end)
  local stats, n, z, ctx
  stats, n, y, z, ctx = self:_loss(x, y, "loss_and_grad")
  local g = -1 / (n * self.dims * LN2) -- dL/dlogdet_n = dL/dlogp_n
  local dz = self.prior:backward(z, core.tensor({ n }):fill_(g), { y = y })
  if self.head then dz:add_(self.head:backward(z)) end
  local _, dx = self.flow:backward(z, dz, g, ctx)
  stats.dx = dx
  return stats
end

--- train_step(x, y, opt [, {max_bpd = b}]) -> stats: forward, backward and
--- one optimizer update. A non-finite loss or gradient skips the update
--- (stats.skipped = true, opt.skipped counts them) instead of carrying NaN
--- into the weights; so does a finite loss whose bits/dim exceed max_bpd
--- (stats.exploded = true as well): a loss that explodes while staying
--- finite would otherwise throw the weights far away in one step.
function Model:train_step(x, y, opt, opts)
  if type(opt) ~= "table" or not opt.step then
    error("train_step: opt must be an optimizer from glow.optim", 0)
  end
  opts = util.check_options(opts, { max_bpd = true }, "train_step")
  local max_bpd = opts.max_bpd
  if max_bpd ~= nil and (type(max_bpd) ~= "number" or not (max_bpd > 0)) then -- luacheck: ignore 581
    error("train_step: max_bpd must be a number > 0, got " .. tostring(max_bpd), 0)
  end
  core.fit_threads() -- the cores other work leaves free (glow.adapt_threads)
  self:zero_grad()
  local stats = self:loss_and_grad(x, y)
  stats.dx = nil
  -- under glow.distributed: the global batch's mean gradient on every rank
  dist.average(opt, stats, x:shape()[1])
  local loss = stats.loss
  local exploded = max_bpd and stats.bpd == stats.bpd and stats.bpd > max_bpd
  if exploded or loss ~= loss or loss == math.huge or loss == -math.huge or not opt.grad:all_finite() then
    stats.skipped, stats.exploded = true, exploded or nil
    opt.skipped = opt.skipped + 1
    -- say where: the parameters whose gradients are not finite
    local bad = {}
    for _, p in ipairs(self:parameters()) do
      if not p.grad:all_finite() then bad[#bad + 1] = p.name end
    end
    stats.nonfinite = bad
    return stats
  end
  local info = opt:step()
  stats.lr, stats.grad_norm, stats.clipped = info.lr, info.grad_norm, info.clipped
  return stats
end

--- bits_per_dim(dataset [, {batch = 256, seed = 0, limit = n}]) -> the mean
--- bits/dim over the dataset, one dequantization draw per image from a fixed
--- seed, so the figure is reproducible.
--- condition(x, y) (optional): the model's conditioning input of a batch
--- (as glow.train.run's condition option).
--- distributed = true: under glow.distributed each rank takes its share of
--- every batch, and every rank returns the mean over all ranks' images
--- (a batch with fewer images than ranks is left out; keep batch >= ranks).
function Model:bits_per_dim(dataset, opts)
  opts = util.check_options(opts, { batch = true, seed = true, limit = true, distributed = true, condition = true },
    "bits_per_dim")
  self:check_initialized("bits_per_dim")
  local ranks = opts.distributed and dist.size() > 1 and { dist.rank(), dist.size() } or nil
  local total, count = 0, 0
  for x, y in dataset:batches { size = opts.batch or 256, shuffle = false, seed = opts.seed or 0,
    n_bits = self.config.n_bits, limit = opts.limit, ranks = ranks } do
    core.fit_threads()
    local lp = self:log_prob(x, opts.condition and opts.condition(x, y) or (self.config.classes and y or nil))
    total = total + self:bpd_of(lp):sum()
    count = count + lp:numel()
  end
  if ranks then
    local s = dist.sum { total, count }
    total, count = s[1], s[2]
  end
  if count == 0 then error("bits_per_dim: the dataset is empty", 0) end
  return total / count
end

--- log_prob_classify(x, y) -> log_prob(x, y) {n} and classify(x) {n, classes}
--- from one pass through the flow (what evaluating a class-conditional
--- model takes).
function Model:log_prob_classify(x, y)
  if not self.head then error("log_prob_classify: the model has no classes (build it with classes = k)", 0) end
  local n = self:check_input(x, "log_prob_classify")
  y = self:check_labels(y, n, "log_prob_classify", true)
  self:check_initialized("log_prob_classify")
  local lp, z = self:_log_prob(x, y)
  return lp, self.head:classify(z)
end

--- classify(x) -> tensor {n, classes}: class log-probabilities from the head.
function Model:classify(x)
  if not self.head then error("classify: the model has no classes (build it with classes = k)", 0) end
  self:check_input(x, "classify")
  self:check_initialized("classify")
  local z = self.flow:forward(x, flow.Context.new())
  return self.head:classify(z)
end

-- save, load_tensors and load: glow.persist
for k, v in pairs(require("glow.persist").methods) do Model[k] = v end

return Model
