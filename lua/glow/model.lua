--- The multi-scale Glow model: levels of squeeze -> K flow steps -> split,
--- a top prior (standard normal, learned, class-conditional) and an optional
--- classification head. Structure lives here; the work is in glow.core.
local core = require "glow.core"
local util = require "glow.util"
local flow = require "glow.flow"
local dist = require "glow.distributed"

local LN2 = math.log(2)

----------------------------------------------------------------- TopPrior
local TopPrior = util.class("TopPrior")
TopPrior.parameters = util.parameters

--- TopPrior(h, w, c, {learn_top = bool, classes = k | nil})
function TopPrior.new(h, w, c, opts)
  local self = setmetatable({ h = h, w = w, c = c, learn_top = opts.learn_top, classes = opts.classes },
    TopPrior)
  if self.learn_top then
    util.param(self, "mean", core.tensor({ h, w, c }))
    util.param(self, "logs", core.tensor({ h, w, c }))
  end
  if self.classes then util.param(self, "class", core.tensor({ self.classes, 2 * c })) end
  return self
end

function TopPrior:moments(n, y)
  if not self.learn_top and not self.classes then return nil, nil end
  return core.top_prior_params({ n, self.h, self.w, self.c }, self.mean, self.logs, self.class,
    self.classes and y or nil)
end

function TopPrior:log_prob(z, y)
  local mean, logs = self:moments(z:shape()[1], y)
  return core.gaussian_logp(z, mean, logs)
end

--- dz of dlp * log p(z); parameter gradients accumulate.
function TopPrior:backward(z, y, dlp)
  local n = z:shape()[1]
  local mean, logs = self:moments(n, y)
  if not mean then return core.gaussian_logp_backward(z, nil, nil, dlp) end
  local dmean, dlogs = core.tensor(mean:shape()), core.tensor(logs:shape())
  local dz = core.gaussian_logp_backward(z, mean, logs, dlp, dmean, dlogs)
  local g = {}
  for _, p in ipairs(self._params) do g[p.name] = p.grad end
  core.top_prior_backward(dmean, dlogs, self.classes and y or nil, g.mean, g.logs, g.class)
  return dz
end

function TopPrior:sample(n, y, t, seed)
  local mean, logs = self:moments(n, y)
  return core.gaussian_sample({ n, self.h, self.w, self.c }, mean, logs, t, seed)
end

----------------------------------------------------------------- ClassHead
local ClassHead = util.class("ClassHead")
ClassHead.parameters = util.parameters

--- logits = (spatial mean of the top z) W + b, both zero at start.
function ClassHead.new(c, classes)
  local self = setmetatable({ c = c, classes = classes }, ClassHead)
  util.param(self, "weight", core.tensor({ c, classes }))
  util.param(self, "bias", core.tensor({ classes }))
  return self
end

function ClassHead:forward(z) return core.classifier_forward(z, self.weight, self.bias) end

function ClassHead:backward(z, dlogits)
  return core.classifier_backward(z, self.weight, dlogits, self._params[1].grad, self._params[2].grad)
end

----------------------------------------------------------------- Glow
local Glow = util.class("Glow")
Glow.parameters = util.parameters
Glow.zero_grad = util.zero_grad
Glow.flatten = util.flatten

local OPTIONS = {
  shape = true, levels = true, depth = true, width = true, coupling = true, permutation = true,
  learn_top = true, classes = true, class_weight = true, n_bits = true, seed = true, net = true,
  memory = true,
}

local DEFAULTS = {
  levels = 3, depth = 32, width = 512, coupling = "affine", permutation = "invconv_lu",
  learn_top = true, class_weight = 0.01, n_bits = 8, seed = 0, memory = "auto",
}

--- memory = "auto" stores the coupling networks' activations for backward
--- while they fit in this many bytes, and rebuilds them otherwise.
local STORE_LIMIT = 1024 ^ 3

local function positive_int(v, name)
  if math.type(v) ~= "integer" or v < 1 then
    error(string.format("glow.Glow: option %s must be a positive integer, got %s", name, tostring(v)), 0)
  end
end

local function check_config(opts)
  util.check_options(opts, OPTIONS, "glow.Glow")
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(opts) do cfg[k] = v end
  local s = cfg.shape
  if type(s) ~= "table" or #s ~= 3 then
    error("glow.Glow: option shape must be {h, w, c}, got " .. tostring(s), 0)
  end
  s = { s[1], s[2], s[3] } -- a copy: later changes to the caller's table do not reach the model
  cfg.shape = s
  for i = 1, 3 do positive_int(s[i], "shape[" .. i .. "]") end
  for _, k in ipairs { "levels", "depth", "width", "n_bits" } do positive_int(cfg[k], k) end
  if cfg.n_bits > 8 then error("glow.Glow: option n_bits must be 1..8, got " .. cfg.n_bits, 0) end
  if cfg.coupling ~= "affine" and cfg.coupling ~= "additive" then
    error("glow.Glow: option coupling must be \"affine\" or \"additive\", got "
      .. tostring(cfg.coupling), 0)
  end
  local perms = { invconv_lu = true, invconv = true, shuffle = true, reverse = true }
  if not perms[cfg.permutation] then
    error("glow.Glow: option permutation must be one of invconv_lu, invconv, shuffle, reverse; got "
      .. tostring(cfg.permutation), 0)
  end
  if type(cfg.learn_top) ~= "boolean" then error("glow.Glow: option learn_top must be a boolean", 0) end
  if cfg.classes ~= nil then
    if math.type(cfg.classes) ~= "integer" or cfg.classes < 2 then
      error("glow.Glow: option classes must be an integer >= 2, got " .. tostring(cfg.classes), 0)
    end
  end
  if type(cfg.class_weight) ~= "number" or cfg.class_weight < 0 then
    error("glow.Glow: option class_weight must be a number >= 0", 0)
  end
  if math.type(cfg.seed) ~= "integer" then error("glow.Glow: option seed must be an integer", 0) end
  if cfg.memory ~= "auto" and cfg.memory ~= "store" and cfg.memory ~= "reversible" then
    error("glow.Glow: option memory must be \"auto\", \"store\" or \"reversible\", got "
      .. tostring(cfg.memory), 0)
  end
  if cfg.net ~= nil and type(cfg.net) ~= "function" then
    error("glow.Glow: option net must be a function(cin, cout, info) returning a network", 0)
  end
  local f = 2 ^ cfg.levels
  if s[1] % f ~= 0 or s[2] % f ~= 0 then
    error(string.format("glow.Glow: image size %dx%d cannot be squeezed %d times (levels = %d): "
      .. "height and width must be divisible by %d", s[1], s[2], cfg.levels, cfg.levels, f), 0)
  end
  return cfg
end

--- A lower bound on the parameter values of a model with this (checked)
--- configuration and the default coupling networks, counted without building
--- it: glow.load compares it with the values a file holds before it
--- allocates anything, so a small file cannot make it build a huge model.
function Glow.min_values(cfg)
  -- floats throughout: no integer wraps, whatever the configuration says
  local h, w, c = cfg.shape[1] + 0.0, cfg.shape[2] + 0.0, cfg.shape[3] + 0.0
  local width, n = cfg.width + 0.0, 0.0
  for l = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    local c1 = c // 2
    local c2 = c - c1
    local out = cfg.coupling == "affine" and 2 * c2 or c2
    -- ActNorm; the network: conv3x3, ActNorm, conv1x1, ActNorm, ZeroConv3x3
    local step = 2.0 * c + 9.0 * c1 * width + 2 * width + width * width + 2 * width + 9.0 * width * out + 2 * out
    if cfg.permutation == "invconv" then step = step + 1.0 * c * c end
    if cfg.permutation == "invconv_lu" then step = step + 2.0 * c * c + c end -- L, U, log_s
    n = n + cfg.depth * step
    if l < cfg.levels then
      n = n + 9.0 * c1 * 2 * c2 -- the split prior's ZeroConv3x3
      c = c1
    end
  end
  if cfg.learn_top then n = n + 2.0 * h * w * c end
  if cfg.classes then n = n + 3.0 * cfg.classes * c end
  return n
end

--- glow.Glow{shape = {h, w, c}, levels, depth, width, coupling, permutation,
--- learn_top, classes, class_weight, n_bits, seed [, net] [, memory]}
--- memory: "reversible" rebuilds every step's input by its inverse during
--- backward and recomputes one coupling network at a time; "store" keeps the
--- networks' activations from the forward pass (faster, memory grows with
--- depth); "auto" (default) stores while that takes at most 1 GiB.
--- net, when given, builds every coupling's network: net(cin, cout, {level =
--- l, step = k, width = w, seed = s}) returns a module from glow.nn pieces (or
--- anything with forward/backward/parameters) mapping cin to cout channels.
function Glow.new(opts)
  if type(opts) ~= "table" then error("glow.Glow: expected an options table", 2) end
  local cfg = check_config(opts)
  local self = setmetatable({ config = cfg, initialized = false, children = {}, levels = {} }, Glow)
  local h, w, c = cfg.shape[1], cfg.shape[2], cfg.shape[3]
  self.dims = h * w * c
  for l = 1, cfg.levels do
    h, w, c = h // 2, w // 2, c * 4
    local steps = {}
    for k = 1, cfg.depth do
      local seed = cfg.seed * 1000003 + l * 10007 + k * 211
      local net
      if cfg.net then
        local c2 = c - c // 2
        net = cfg.net(c // 2, cfg.coupling == "affine" and 2 * c2 or c2,
          { level = l, step = k, width = cfg.width, seed = seed })
      end
      steps[k] = flow.FlowStep(c, { coupling = cfg.coupling, permutation = cfg.permutation,
        width = cfg.width, net = net, seed = seed })
    end
    local level = { squeeze = flow.Squeeze(), steps = flow.Flow(steps, "step"), h = h, w = w, c = c }
    self.children[#self.children + 1] = { name = "level" .. l, module = level.steps }
    if l < cfg.levels then
      level.split = flow.Split(c)
      self.children[#self.children + 1] = { name = "level" .. l .. ".split", module = level.split }
      c = level.split.c1
    end
    self.levels[l] = level
  end
  self.top = TopPrior.new(h, w, c, { learn_top = cfg.learn_top, classes = cfg.classes })
  self.children[#self.children + 1] = { name = "top", module = self.top }
  if cfg.classes then
    self.head = ClassHead.new(c, cfg.classes)
    self.children[#self.children + 1] = { name = "head", module = self.head }
  end
  return self
end

function Glow:check_input(x, what)
  local s = self.config.shape
  util.check_image(x, s[1], s[2], s[3], what .. ": x")
  if not x:all_finite() then error(what .. ": x contains a non-finite value (NaN or inf)", 0) end
  return x:shape()[1]
end

function Glow:check_labels(y, n, what, required)
  if not self.config.classes then return nil end
  if y == nil then
    if required then
      error(what .. ": labels y are required by a class-conditional model (classes = "
        .. self.config.classes .. ")", 0)
    end
    return nil
  end
  if type(y) ~= "table" or #y ~= n then
    error(string.format("%s: y must be a Lua array of %d labels", what, n), 0)
  end
  for i = 1, n do
    local v = y[i]
    if math.type(v) ~= "integer" or v < 0 or v >= self.config.classes then
      error(string.format("%s: label y[%d] = %s is not an integer in [0, %d)", what, i, tostring(v),
        self.config.classes), 0)
    end
  end
  return y
end

function Glow:check_initialized(what)
  if not self.initialized then
    error(what .. ": the model is not initialized; call model:initialize(x) with a batch first "
      .. "(data-dependent ActNorm initialization)", 0)
  end
end

local function level_where(l) return "level " .. l .. ", " end

--- Runs the flow: zs (outermost first), logdet {n}, and z1s (the conditioning
--- input of each split).
function Glow:_encode(x)
  local zs, z1s, logdet = {}, {}, nil
  for l, level in ipairs(self.levels) do
    x = level.squeeze:forward(x)
    local ld
    x, ld = util.at(level_where(l), level.steps.forward, level.steps, x)
    logdet = logdet and logdet:add(ld) or ld
    if level.split then
      local z1, _, z2 = level.split:forward(x)
      zs[l], z1s[l] = z2, z1
      x = z1
    else
      zs[l] = x
    end
  end
  return zs, logdet, z1s
end

--- Data-dependent initialization of every ActNorm, in order, from one batch.
function Glow:initialize(x, y)
  local n = self:check_input(x, "initialize")
  self:check_labels(y, n, "initialize")
  util.walk({ children = self.children }, function(m)
    if m.check_init then m.initialized = false; m.init_pending = true end
  end)
  local ok, err = pcall(self._encode, self, x)
  util.walk({ children = self.children }, function(m) m.init_pending = nil end)
  if not ok then error(err, 0) end
  self.initialized = true
  return self
end

--- encode(x [, y]) -> zs, logdet: raw latents (outermost first) and the flow's log-determinant.
function Glow:encode(x, y)
  local n = self:check_input(x, "encode")
  self:check_labels(y, n, "encode")
  self:check_initialized("encode")
  local zs, logdet = self:_encode(x)
  return zs, logdet
end

--- decode(zs [, y]) -> x: the exact inverse of encode (the flow itself does
--- not depend on y; the argument is accepted for symmetry with encode).
function Glow:decode(zs)
  self:check_initialized("decode")
  local L = #self.levels
  if type(zs) ~= "table" or #zs ~= L then
    error(string.format("decode: zs must be an array of %d tensors (one per level)", L), 0)
  end
  local top = self.top
  util.check_image(zs[L], top.h, top.w, top.c, "decode: zs[" .. L .. "]")
  for l = 1, L - 1 do
    local level = self.levels[l]
    util.check_image(zs[l], level.h, level.w, level.split.c2, "decode: zs[" .. l .. "]")
  end
  return self:_decode(zs[L], function(l) return zs[l] end)
end

--- The flow in reverse from the top latent x; z2_of(l) gives level l's split
--- latent (nil: the split prior samples it with split_opts(l)).
function Glow:_decode(x, z2_of, split_opts)
  for l = #self.levels, 1, -1 do
    local level = self.levels[l]
    if level.split then
      x = util.at(level_where(l), level.split.inverse, level.split, x, z2_of(l), split_opts and split_opts(l))
    end
    x = util.at(level_where(l), level.steps.inverse, level.steps, x)
    x = level.squeeze:inverse(x)
  end
  return x
end

function Glow:_log_prob(x, y)
  local zs, logdet, z1s = self:_encode(x)
  local lp = logdet
  for l, level in ipairs(self.levels) do
    if level.split then lp:add(level.split:log_prob(z1s[l], zs[l])) end
  end
  lp:add(self.top:log_prob(zs[#zs], y))
  return lp, zs, z1s
end

--- log_prob(x [, y]) -> tensor {n}: log-density of the preprocessed x, in nats.
function Glow:log_prob(x, y)
  local n = self:check_input(x, "log_prob")
  y = self:check_labels(y, n, "log_prob", true)
  self:check_initialized("log_prob")
  return (self:_log_prob(x, y))
end

--- Bits per dimension of each image from log_prob: -lp / (D ln 2) + n_bits.
function Glow:bpd_of(lp)
  local t = lp:clone():scale(-1 / (self.dims * LN2))
  local n = t:numel()
  t:add(core.tensor({ n }):fill(self.config.n_bits))
  return t
end

function Glow:_loss(x, y, what)
  local n = self:check_input(x, what)
  y = self:check_labels(y, n, what, true)
  self:check_initialized(what)
  local lp, zs, z1s = self:_log_prob(x, y)
  local bpd = self:bpd_of(lp):sum() / n
  local stats = { bpd = bpd, loss = bpd }
  if self.head then
    local w = self.config.class_weight / LN2
    local _, ce, dlogits = core.log_softmax_xent(self.head:forward(zs[#zs]), y, w)
    stats.xent = ce
    stats.loss = bpd + w * ce
    stats.dlogits = dlogits
  end
  return stats, n, y, zs, z1s
end

--- loss(x [, y]) -> stats {loss, bpd [, xent]}: the objective without gradients.
function Glow:loss(x, y)
  local stats = self:_loss(x, y, "loss")
  stats.dlogits = nil
  return stats
end

--- loss_and_grad(x [, y]) -> stats: the mean negative log-likelihood in
--- bits/dim (plus class_weight * cross-entropy / ln 2 for a conditional
--- model) and its gradient, accumulated into every parameter's grad;
--- stats.dx is the gradient with respect to x.
--- The backward pass rebuilds each step's input by the inverse from the
--- latents, so it stores no activations.
--- Bytes the coupling networks' activations take for a batch of n when
--- stored (memory = "store"): per coupling its input half and output, plus
--- two width-sized tensors for the default network (fused, see
--- glow.nn.Sequential: the outputs of its two ReLUs), or four for a custom
--- one (taken as the default's shape run module by module: each conv output
--- and each fused ActNorm+ReLU output).
function Glow:activation_bytes(n)
  local total = 0
  local hidden = (self.config.net and 4 or 2) * self.config.width
  for _, level in ipairs(self.levels) do
    total = total + 4 * n * level.h * level.w * (hidden + 2 * level.c) * self.config.depth
  end
  return total
end

--- Whether loss_and_grad stores activations for a batch of n.
function Glow:stores(n)
  local mode = self.config.memory
  if mode == "auto" then return self:activation_bytes(n) <= STORE_LIMIT end
  return mode == "store"
end

--- on = true before a training forward (store: whether to keep the
--- networks' activations too), false after it, nil to drop what a failed
--- call left behind.
local function set_store(self, on, store)
  util.walk({ children = self.children }, function(m)
    if m.net then
      m.store_next = (on and store) or nil
      m.keep_input = on or nil
      if on == nil then
        m._stored, m._z2 = nil, nil
        if type(m.net) == "table" then m.net._cache = nil end
      end
    end
  end)
end

function Glow:loss_and_grad(x, y)
  local stats, n, zs, z1s
  self:check_input(x, "loss_and_grad")
  local store = self:stores(x:shape()[1])
  set_store(self, nil) -- drop anything a failed call left behind
  set_store(self, true, store)
  local ok, a, b, c, d, e = pcall(self._loss, self, x, y, "loss_and_grad")
  set_store(self, false)
  if not ok then
    set_store(self, nil)
    error(a, 0)
  end
  stats, n, y, zs, z1s = a, b, c, d, e
  local g = -1 / (n * self.dims * LN2) -- dL/dlogdet_n = dL/dlogp_n
  local dlp = core.tensor({ n }):fill(g)
  local L = #self.levels
  local z = zs[L]
  local dz = self.top:backward(z, y, dlp)
  if self.head then
    dz:add(self.head:backward(z, stats.dlogits))
    stats.dlogits = nil
  end
  for l = L, 1, -1 do
    local level = self.levels[l]
    if level.split then
      local dz1, dz2 = level.split:prior_backward(z1s[l], zs[l], dlp)
      dz1:add(dz)
      z, dz = level.split:backward(z1s[l], dz1, nil, zs[l], dz2)
    end
    z, dz = util.at(level_where(l), level.steps.backward, level.steps, z, dz, g)
    z, dz = level.squeeze:backward(z, dz)
  end
  stats.dx = dz
  return stats
end

--- train_step(x, y, opt) -> stats: forward, backward and one optimizer
--- update. A non-finite loss or gradient skips the update (stats.skipped =
--- true, opt.skipped counts them) instead of carrying NaN into the weights.
function Glow:train_step(x, y, opt)
  if type(opt) ~= "table" or not opt.step then
    error("train_step: opt must be an optimizer from glow.optim", 0)
  end
  self:zero_grad()
  local stats = self:loss_and_grad(x, y)
  stats.dx = nil
  -- under glow.distributed: the global batch's mean gradient on every rank
  dist.average(opt, stats, x:shape()[1])
  local loss = stats.loss
  if loss ~= loss or loss == math.huge or loss == -math.huge or not opt.grad:all_finite() then
    stats.skipped = true
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
--- distributed = true: under glow.distributed each rank takes its share of
--- every batch, and every rank returns the mean over all ranks' images
--- (a batch with fewer images than ranks is left out; keep batch >= ranks).
function Glow:bits_per_dim(dataset, opts)
  opts = util.check_options(opts, { batch = true, seed = true, limit = true, distributed = true },
    "bits_per_dim")
  self:check_initialized("bits_per_dim")
  local ranks = opts.distributed and dist.size() > 1 and { dist.rank(), dist.size() } or nil
  local total, count = 0, 0
  for x, y in dataset:batches { size = opts.batch or 256, shuffle = false, seed = opts.seed or 0,
    n_bits = self.config.n_bits, limit = opts.limit, ranks = ranks } do
    local lp = self:log_prob(x, self.config.classes and y or nil)
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

--- classify(x) -> tensor {n, classes}: class log-probabilities from the head.
function Glow:classify(x)
  if not self.head then error("classify: the model has no classes (build it with classes = k)", 0) end
  self:check_input(x, "classify")
  self:check_initialized("classify")
  local zs = self:_encode(x)
  local logp = core.log_softmax_xent(self.head:forward(zs[#zs]))
  return logp
end

--- sample(n [, {temperature = 1, y = labels, seed = 0}]) -> x {n, h, w, c}
function Glow:sample(n, opts)
  opts = util.check_options(opts, { temperature = true, y = true, seed = true }, "sample")
  positive_int(n, "n (sample)")
  self:check_initialized("sample")
  local t = opts.temperature or 1
  if type(t) ~= "number" or t < 0 then error("sample: temperature must be a number >= 0", 0) end
  local seed = opts.seed or 0
  local y = opts.y
  if self.config.classes and y == nil then
    local u = core.rand({ n }, seed + 7):totable()
    y = {}
    for i = 1, n do y[i] = math.floor(u[i] * self.config.classes) end
  end
  y = self:check_labels(y, n, "sample")
  local x = self.top:sample(n, y, t, seed * 7919 + 1)
  return self:_decode(x, function() return nil end,
    function(l) return { temperature = t, seed = seed * 7919 + 1 + l } end)
end

----------------------------------------------------------------- checkpoints
local FORMAT = "glow-checkpoint-1"

local function config_for_file(cfg)
  local c = {}
  for k, v in pairs(cfg) do if k ~= "net" then c[k] = v end end
  c.custom_net = cfg.net ~= nil
  return c
end

--- save(path [, {optimizer = opt, trainer = table}]) -> true | nil, message.
--- A safetensors file: every parameter under its name, the fixed buffers
--- (LU permutation and signs, shuffles) as "buffer.<name>", the optimizer's
--- moments as "optim.*"; the metadata holds the configuration, whether the
--- model is initialized, and the optimizer's and trainer's state as JSON.
--- Written to a temporary file and renamed into place.
function Glow:save(path, extra)
  extra = util.check_options(extra, { optimizer = true, trainer = true }, "save")
  local json = require "glow.json"
  local ckpt = require "glow.checkpoint"
  local tensors = {}
  for _, p in ipairs(self:parameters()) do tensors[#tensors + 1] = { name = p.name, value = p.value } end
  for _, b in ipairs(util.buffers({ children = self.children })) do
    local v = b.owner[b.field]
    if not util.is_tensor(v) then v = core.from(v, { #v }) end
    tensors[#tensors + 1] = { name = "buffer." .. b.name, value = v }
  end
  local meta = {
    ["glow.format"] = FORMAT,
    ["glow.config"] = json.encode(config_for_file(self.config)),
    ["glow.initialized"] = tostring(self.initialized),
  }
  if extra.optimizer then
    local ot, oinfo = extra.optimizer:state()
    for _, t in ipairs(ot) do tensors[#tensors + 1] = t end
    meta["glow.optimizer"] = json.encode(oinfo)
  end
  if extra.trainer then meta["glow.trainer"] = json.encode(extra.trainer) end
  return ckpt.write(path, tensors, meta)
end

--- Copy a checkpoint's tensors into this model, refusing another architecture.
function Glow:load_tensors(tensors, path)
  local where = "checkpoint " .. tostring(path)
  local function fits(name, want)
    local t = tensors[name]
    if not t then return nil, string.format("%s holds another architecture: no tensor %s", where, name) end
    local a, b = util.shapestr(t:shape()), util.shapestr(want)
    if a ~= b then
      return nil, string.format("%s holds another architecture: %s has shape %s, this model has %s",
        where, name, a, b)
    end
    return t
  end
  local plan = {}
  for _, p in ipairs(self:parameters()) do
    local t, err = fits(p.name, p.value:shape())
    if not t then return nil, err end
    plan[#plan + 1] = { p.value, t }
  end
  local bufs = util.buffers({ children = self.children })
  for _, b in ipairs(bufs) do
    local v = b.owner[b.field]
    local t, err = fits("buffer." .. b.name, util.is_tensor(v) and v:shape() or { #v })
    if not t then return nil, err end
  end
  for _, pair in ipairs(plan) do pair[1]:copy(pair[2]) end
  for _, b in ipairs(bufs) do
    local t, v = tensors["buffer." .. b.name], b.owner[b.field]
    if util.is_tensor(v) then
      v:copy(t)
    else
      local arr = {}
      for i, x in ipairs(t:totable()) do arr[i] = math.tointeger(x) or x end
      if b.owner.set_perm and b.field == "perm" then b.owner:set_perm(arr) else b.owner[b.field] = arr end
    end
  end
  return true
end

--- glow.load(path [, {net = fn, average = true}]) -> model | nil, message.
--- The model carries the checkpoint's optimizer and trainer state in
--- model.checkpoint. average = true loads the Polyak average of the weights
--- (glow.train.run with polyak saves it) instead of the last weights: for
--- evaluation and sampling; such a model cannot resume training.
local function load(path, opts)
  opts = util.check_options(opts, { net = true, average = true }, "glow.load")
  local json = require "glow.json"
  local ckpt = require "glow.checkpoint"
  local tensors, meta = ckpt.read(path)
  if not tensors then return nil, meta end
  if meta["glow.format"] ~= FORMAT then
    return nil, string.format("%s is not a glow checkpoint (format %s)", path, tostring(meta["glow.format"]))
  end
  local cfg, err = json.decode(meta["glow.config"] or "")
  if type(cfg) ~= "table" then return nil, string.format("%s: bad configuration: %s", path, tostring(err)) end
  if cfg.custom_net and not opts.net then
    return nil, path .. " was made with a custom coupling network: pass it as glow.load(path, {net = fn})"
  end
  cfg.custom_net = nil
  cfg.net = opts.net
  local checked, full = pcall(check_config, cfg)
  if not checked then return nil, string.format("%s: %s", path, tostring(full)) end
  if not opts.net then
    local need, have = Glow.min_values(full), 0
    for _, t in pairs(tensors) do have = have + t:numel() end
    if need > have then
      return nil, string.format("%s: its configuration needs at least %.0f parameter values, but the file "
        .. "holds %d: the configuration is corrupt or does not belong to these tensors", path, need, have)
    end
  end
  -- the file overwrites every parameter: skip the permutations' O(c^3) set-up
  local ok, model = pcall(flow.placeholders, Glow.new, cfg)
  if not ok then return nil, string.format("%s: %s", path, tostring(model)) end
  local done, lerr = model:load_tensors(tensors, path)
  if not done then return nil, lerr end
  if opts.average then
    -- the average is one flat vector in the order of model:parameters()
    local ema, params, total = tensors["optim.ema"], model:parameters(), 0
    if not ema then
      return nil, path .. " holds no Polyak average (train with polyak > 0, or load it without average)"
    end
    for _, p in ipairs(params) do total = total + p.value:numel() end
    if ema:numel() ~= total then
      return nil, string.format("%s: its Polyak average holds %d values, the model %d", path, ema:numel(), total)
    end
    local off = 0
    for _, p in ipairs(params) do
      p.value:copy(core.view_range(ema, off, p.value:shape()))
      off = off + p.value:numel()
    end
    model.averaged = true
  end
  model.initialized = meta["glow.initialized"] == "true"
  if model.initialized then
    util.walk({ children = model.children }, function(m) if m.check_init then m.initialized = true end end)
  end
  model.checkpoint = {
    tensors = tensors,
    optimizer = meta["glow.optimizer"] and json.decode(meta["glow.optimizer"]),
    trainer = meta["glow.trainer"] and json.decode(meta["glow.trainer"]),
  }
  return model
end

--- model:load(path) -> true | nil, message: parameters from a checkpoint of
--- the same architecture.
function Glow:load(path)
  local tensors, meta = require("glow.checkpoint").read(path)
  if not tensors then return nil, meta end
  local ok, err = self:load_tensors(tensors, path)
  if not ok then return nil, err end
  self.initialized = meta["glow.initialized"] == "true"
  if self.initialized then
    util.walk({ children = self.children }, function(m) if m.check_init then m.initialized = true end end)
  end
  return true
end

return { Glow = Glow, TopPrior = TopPrior, ClassHead = ClassHead, load = load }
