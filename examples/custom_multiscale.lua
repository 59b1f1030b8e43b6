--- A multi-scale flow that glow.Glow cannot express, composed from pieces
--- in a script, with no change to C:
---   level 1: squeeze (28x28x1 -> 14x14x4), K flow steps, then a split that
---            keeps ONE channel and sends three quarters of them out,
---            scored by the split prior conditioned on the kept one;
---   level 2: squeeze (14x14x1 -> 7x7x4), K flow steps, no split;
---   top:     a mixture of Gaussians over the 7x7x4 latent, written here in
---            Lua from the library's learned Gaussian priors (the maths on
---            whole tensors runs in C; Lua only combines one number per
---            image and component).
--- It checks decode(encode(x)) = x, trains on Fashion-MNIST with
--- glow.train.run, checks that the loss falls, reports the test bits/dim
--- and writes samples.
---
---   lua5.4 examples/custom_multiscale.lua [--steps 1875] [--batch 32] [--depth 4] [--width 64]
---       [--components 4] [--lr 1e-3] [--eval-limit 1000] [--temperature 0.7]
---       [--quick] [--out DIR] [--seed 0] [--data-dir DIR]
---
--- Writes DIR/samples.png and DIR/summary.txt (DIR: out/custom_multiscale).
-- luacheck: ignore 581 (not (a < b) is also true for NaN, on purpose)
-- common.lua beside this file (found from its own path: as a model file it is
-- loaded by the glow command, whose arg[0] is elsewhere)
local C = dofile((debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".") .. "/common.lua")
local glow = C.glow

local SPEC = {
  steps = { "int", 1875, quick = 30, min = 2 }, -- 1875: one epoch at batch 32
  batch = { "int", 32, quick = 16, min = 1 },
  depth = { "int", 4, quick = 2, min = 1 },
  width = { "int", 64, quick = 16, min = 1 },
  components = { "int", 4, quick = 3, min = 1 },
  lr = { "number", 1e-3, min = 0 },
  ["eval-limit"] = { "int", 1000, quick = 64, min = 1 },
  temperature = { "number", 0.7, min = 0 },
}

------------------------------------------------------- a mixture of Gaussians
-- p(z) = sum_j pi_j N(z; mean_j, exp(logs_j)^2), each component a learned
-- diagonal Gaussian over the whole latent (glow.prior.Learned), pi =
-- softmax(logits). It follows the prior protocol (docs/ARCHITECTURE.md):
-- log_prob, sample and backward, plus shape; glow.module gives it
-- parameters, zero_grad and the rest.
local Mixture = glow.module.class("MixturePrior")

function Mixture.new(shape, k, seed)
  local self = setmetatable({ shape = shape, k = k, children = {} }, Mixture)
  for j = 1, k do
    local comp = glow.prior.Learned(shape)
    -- components start apart, so they do not learn the same thing
    comp.mean:copy_(glow.randn(shape, seed + j, 0.3))
    self.children[j] = { name = "component" .. j, module = comp }
  end
  glow.module.param(self, "logits", glow.Tensor { k })
  return self
end

-- log pi = log softmax(logits)
function Mixture:logpi()
  local logits = self.logits:totable()
  local top = math.max(table.unpack(logits))
  local s = 0
  for j = 1, self.k do s = s + math.exp(logits[j] - top) end
  local logpi = {}
  for j = 1, self.k do logpi[j] = logits[j] - top - math.log(s) end
  return logpi
end

-- the mixture's log-density per image, the responsibilities
-- r[i][j] = pi_j p_j(z_i) / p(z_i), and log pi
function Mixture:terms(z, cond)
  local n, k = z:shape()[1], self.k
  local logpi, lp = self:logpi(), {}
  for j = 1, k do lp[j] = self.children[j].module:log_prob(z, cond):totable() end
  local out, r = {}, {}
  for i = 1, n do
    local best = -math.huge
    for j = 1, k do best = math.max(best, logpi[j] + lp[j][i]) end
    local sum = 0
    for j = 1, k do sum = sum + math.exp(logpi[j] + lp[j][i] - best) end
    out[i] = best + math.log(sum)
    r[i] = {}
    for j = 1, k do r[i][j] = math.exp(logpi[j] + lp[j][i] - out[i]) end
  end
  return out, r, logpi
end

function Mixture:log_prob(z, cond)
  local out = self:terms(z, cond)
  return glow.Tensor.from(out, { #out })
end

function Mixture:backward(z, dlp, cond)
  local _, r, logpi = self:terms(z, cond)
  local n = #r
  local d = dlp:totable()
  local dz, dlogits = nil, {}
  for j = 1, self.k do
    local w, g = {}, 0
    for i = 1, n do
      w[i] = d[i] * r[i][j]
      g = g + d[i] * (r[i][j] - math.exp(logpi[j]))
    end
    dlogits[j] = g
    local dzj = self.children[j].module:backward(z, glow.Tensor.from(w, { n }), cond)
    dz = dz and dz:add_(dzj) or dzj
  end
  self.grad.logits:add_(glow.Tensor.from(dlogits, { self.k }))
  return dz
end

function Mixture:sample(shape, cond, opts)
  local n, per = shape[1], shape[2] * shape[3] * shape[4]
  local one = { 1, shape[2], shape[3], shape[4] }
  -- the component of each image: its own stream, apart from the seeds the
  -- components and the model's splits draw with
  local u = glow.rand({ n }, opts.seed * 31 + 17):totable()
  local logpi = self:logpi()
  local out = glow.Tensor(shape)
  for j = 1, self.k do
    local zj = self.children[j].module:sample(shape, cond,
      { temperature = opts.temperature, seed = opts.seed + 31 * j })
    for i = 1, n do
      -- image i takes component j when u[i] falls in j's slice of [0, 1)
      local lo = 0
      for q = 1, j - 1 do lo = lo + math.exp(logpi[q]) end
      local hi = j == self.k and 1 or lo + math.exp(logpi[j])
      if u[i] >= lo and u[i] < hi then
        glow.core.view_range(out, (i - 1) * per, one):copy_(glow.core.view_range(zj, (i - 1) * per, one))
      end
    end
  end
  return out
end

-- The mixture's backward against central differences on a tiny latent
-- {2, 1, 1, 2}: every element of z and every parameter; the worst error,
-- relative to max(1, |gradient|).
local function check_mixture()
  local m = Mixture.new({ 1, 1, 2 }, 3, 5)
  for i, p in ipairs(m:parameters()) do p.value:add_(glow.randn(p.value:shape(), 9 + i, 0.3)) end
  local z, dlp = glow.randn({ 2, 1, 1, 2 }, 3, 1), glow.Tensor.from({ 0.3, -0.7 }, { 2 })
  local function f() return m:log_prob(z):dot(dlp) end
  m:zero_grad()
  local dz, worst = m:backward(z, dlp), 0
  local function fd(t, i, g)
    local v, h = t:get(i), 1e-2
    t:set(i, v + h)
    local a = f()
    t:set(i, v - h)
    local b = f()
    t:set(i, v)
    worst = math.max(worst, math.abs((a - b) / (2 * h) - g) / math.max(1, math.abs(g)))
  end
  for i = 1, z:numel() do fd(z, i, dz:get(i)) end
  for _, p in ipairs(m:parameters()) do
    for i = 1, p.value:numel() do fd(p.value, i, p.grad:get(i)) end
  end
  return worst
end

----------------------------------------------------------------- the model
local function level(c, o, l, split)
  local pieces = { { "squeeze", glow.Squeeze() } }
  for k = 1, o.depth do
    pieces[#pieces + 1] = { "step" .. k, where = "step " .. k,
      glow.FlowStep(c, { width = o.width, seed = o.seed * 1000 + l * 100 + k }) }
  end
  if split then pieces[#pieces + 1] = { "split", split } end
  return glow.Flow(pieces)
end

-- images of shape {h, w, c} (default 28x28x1; h and w multiples of 4)
local function build(o)
  local s = o.shape or { 28, 28, 1 }
  local c = s[3]
  local level1 = level(4 * c, o, 1, glow.Split(4 * c, { keep = c })) -- three of four channels leave
  local level2 = level(4 * c, o, 2)                                   -- 14x14x1 -> 7x7x4, no split
  local top = Mixture.new({ s[1] // 4, s[2] // 4, 4 * c }, o.components, o.seed * 1000 + 7)
  return glow.Model({ levels = { level1, level2 }, prior = top }, { shape = { s[1], s[2], c }, n_bits = 8 })
end

local function mean(list, from, to)
  local s = 0
  for i = from, to do s = s + list[i] end
  return s / (to - from + 1)
end

C.script("custom_multiscale", SPEC, function(o, out)
  local worst = check_mixture()
  out:say("mixture prior: backward against central differences, worst relative error %.2g", worst)
  if not (worst < 1e-2) then C.fail("the mixture's gradients are off by %g", worst) end
  local train, test = C.fashion_mnist(o, "train"), C.fashion_mnist(o, "test")
  local model = build(o)
  local n = 0
  for _, p in ipairs(model:parameters()) do n = n + p.value:numel() end
  out:say("model: level 1 keeps 1 of 4 channels, level 2 has no split, top prior: a mixture of %d "
    .. "Gaussians; depth %d, width %d, %d parameters", o.components, o.depth, o.width, n)

  local bpd = {}
  local result = glow.train.run { model = model, train = train, batch = o.batch, lr = o.lr,
    warmup = math.min(50, o.steps // 5), max_steps = o.steps, epochs = math.ceil(o.steps * o.batch / train:size()),
    seed = o.seed, eval = false,
    progress = false, on_step = function(st) if not st.skipped then bpd[#bpd + 1] = st.bpd end end }
  if #bpd < 2 then C.fail("training ran %d good steps", #bpd) end

  -- decode(encode(x)) on test images (in [-0.5, 0.5): an absolute bound)
  local x = test:batch({ 1, 2, 3, 4, 5, 6, 7, 8 }, { seed = 0, n_bits = 8 })
  local err = model:decode((model:encode(x))):max_abs_diff(x)
  out:say("decode(encode(x)) max abs error: %.3g", err)
  if not (err < 1e-3) then C.fail("decode(encode(x)) is off by %g", err) end

  local q = math.max(1, #bpd // 10)
  local first, last = mean(bpd, 1, q), mean(bpd, #bpd - q + 1, #bpd)
  out:say("train bits/dim: first %d steps %.4f, last %d steps %.4f (%d steps)", q, first, q, last,
    result.steps)
  if not (last < first) then C.fail("the loss did not fall: %.4f -> %.4f", first, last) end
  out:say("test bits/dim (first %d test images): %.4f", o["eval-limit"],
    model:bits_per_dim(test, { limit = o["eval-limit"] }))
  out:grid("samples.png", model:sample(16, { temperature = o.temperature, seed = o.seed + 1 }), 4)
  out:say("custom multiscale: ok")
end)

-- as a model file: glow train --model examples/custom_multiscale.lua
return {
  description = "two levels, the first keeping one channel in four, and a mixture-of-Gaussians top prior",
  options = { depth = { "int", 4, min = 1 }, width = { "int", 64, min = 1 }, components = { "int", 4, min = 1 } },
  build = build,
}
