--- Optimizers over one flat parameter arena: SGD (momentum, Nesterov),
--- Adam and Adamax (bias-corrected), decoupled weight decay, clipping by the
--- global gradient norm, Polyak averaging, and learning-rate schedules
--- composed in Lua. The update itself is one loop in C (glow.core).
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"

local optim = {}

----------------------------------------------------------------- schedules
--- Each schedule maps a step (1-based) to a multiplier of the base lr.
local schedules = {}
optim.schedules = schedules

function schedules.constant() return function() return 1 end end

--- Linear warmup over n steps: step / n, then 1.
function schedules.warmup(n)
  return function(step) return n > 0 and math.min(1, step / n) or 1 end
end

--- gamma ^ floor(step / every)
function schedules.step(every, gamma)
  return function(step) return gamma ^ (step // every) end
end

--- Cosine decay from 1 to min_frac over total steps, then min_frac.
function schedules.cosine(total, min_frac)
  min_frac = min_frac or 0
  return function(step)
    local t = math.min(step, total) / total
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * t))
  end
end

--- Linear decay from 1 to min_frac over total steps, then min_frac.
function schedules.linear(total, min_frac)
  min_frac = min_frac or 0
  return function(step) return min_frac + (1 - min_frac) * (1 - math.min(step, total) / total) end
end

--- Hold 1, then cool down over the last decay_frac of total steps as
--- 1 - sqrt(progress) to min_frac ("warmup-stable-decay" once chained
--- after a warmup): most steps run at the full rate, the cooldown anneals.
function schedules.wsd(total, decay_frac, min_frac)
  decay_frac, min_frac = decay_frac or 0.2, min_frac or 0
  local start = total * (1 - decay_frac)
  return function(step)
    if step <= start then return 1 end
    local t = math.min(1, (step - start) / (total - start))
    return min_frac + (1 - min_frac) * (1 - math.sqrt(t))
  end
end

--- Linear warmup over n steps, then `after` counted from the end of the warmup.
function schedules.chain(n, after)
  return function(step)
    if step <= n then return step / n end
    return after(step - n)
  end
end

local function positive(v, name)
  if v ~= nil and (type(v) ~= "number" or v <= 0 or v ~= v) then
    error("optim: " .. name .. " must be a positive number, got " .. tostring(v), 0)
  end
end

local function build_schedule(o)
  local s = o.schedule or "constant"
  positive(o.step_size, "step_size")
  positive(o.gamma, "gamma")
  if o.warmup ~= nil and (math.type(o.warmup) ~= "integer" or o.warmup < 0) then
    error("optim: warmup must be a non-negative integer (steps), got " .. tostring(o.warmup), 0)
  end
  local after
  if type(s) == "function" then after = s
  elseif s == "constant" then after = schedules.constant()
  elseif s == "step" then after = schedules.step(o.step_size or 10000, o.gamma or 0.5)
  elseif s == "cosine" or s == "wsd" or s == "linear" then
    if not o.total_steps or o.total_steps <= (o.warmup or 0) then
      error("optim: schedule \"" .. s .. "\" needs total_steps larger than warmup", 0)
    end
    local n = o.total_steps - (o.warmup or 0)
    if s == "cosine" then after = schedules.cosine(n, o.min_lr_frac or 0)
    elseif s == "linear" then after = schedules.linear(n, o.min_lr_frac or 0)
    else
      if o.decay_frac ~= nil and (type(o.decay_frac) ~= "number" or not (o.decay_frac > 0 and o.decay_frac <= 1)) then
        error("optim: decay_frac must be in (0, 1], got " .. tostring(o.decay_frac), 0)
      end
      after = schedules.wsd(n, o.decay_frac, o.min_lr_frac or 0)
    end
  else
    error("optim: unknown schedule '" .. tostring(s) .. "' (constant, step, cosine, linear, wsd, or a function)", 0)
  end
  local w = o.warmup or 0
  if w > 0 then return schedules.chain(w, after) end
  return after
end

----------------------------------------------------------------- the optimizer
local Optimizer = util.class("Optimizer")
optim.Optimizer = Optimizer

local COMMON = { lr = true, weight_decay = true, clip = true, warmup = true, schedule = true,
  step_size = true, gamma = true, total_steps = true, min_lr_frac = true, decay_frac = true,
  polyak = true, schedule_start = true }

local KINDS = {
  sgd = { momentum = true, nesterov = true },
  adam = { betas = true, eps = true },
  adamax = { betas = true, eps = true },
}

local function new(kind, model, opts)
  opts = opts or {}
  local allowed = {}
  for k in pairs(COMMON) do allowed[k] = true end
  for k in pairs(KINDS[kind]) do allowed[k] = true end
  util.check_options(opts, allowed, "glow.optim." .. kind)
  if type(model) ~= "table" or not model.parameters then
    error("glow.optim." .. kind .. ": expected a model (anything with parameters())", 0)
  end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  opts = copy -- later changes to the caller's table do not reach the optimizer
  positive(opts.clip, "clip")
  positive(opts.polyak, "polyak")
  if opts.weight_decay ~= nil and (type(opts.weight_decay) ~= "number" or opts.weight_decay < 0) then
    error("optim: weight_decay must be a number >= 0", 0)
  end
  if opts.betas ~= nil and (type(opts.betas) ~= "table" or type(opts.betas[1]) ~= "number"
      or type(opts.betas[2]) ~= "number") then
    error("optim: betas must be a pair of numbers {b1, b2}", 0)
  end
  -- lr_scale: a factor on the schedule (lowered by the trainer after repeated
  -- non-finite steps); t0: the step the moment estimates started at
  local self = setmetatable({ kind = kind, opts = opts, t = 0, t0 = 0, lr_scale = 1, skipped = 0,
    model = model }, Optimizer)
  self.base_lr = opts.lr or (kind == "sgd" and 0.01 or 1e-3)
  if type(self.base_lr) ~= "number" or self.base_lr <= 0 then
    error("glow.optim." .. kind .. ": lr must be a positive number", 0)
  end
  -- schedule_start: the step a schedule's stage begins at (a finished run
  -- extended by glow.train.run runs a new stage over the added steps)
  self.schedule_start = opts.schedule_start or 0
  if math.type(self.schedule_start) ~= "integer" or self.schedule_start < 0 then
    error("glow.optim." .. kind .. ": schedule_start must be an integer >= 0", 0)
  end
  if opts.total_steps and self.schedule_start > 0 then
    opts.total_steps = opts.total_steps - self.schedule_start
  end
  self.schedule = build_schedule(opts)
  self.value, self.grad = util.flatten(model)
  local n = self.value:numel()
  if kind == "sgd" then
    self.momentum = opts.momentum or 0
    if self.momentum > 0 then self.buf = core.arena({ n }) end
  else
    local b = opts.betas or { 0.9, 0.999 }
    self.b1, self.b2, self.eps = b[1], b[2], opts.eps or 1e-8
    self.m, self.v = core.arena({ n }), core.arena({ n })
  end
  if opts.polyak then
    self.ema = core.arena({ n }):copy_(self.value)
    self.ema_decay = opts.polyak
  end
  return self
end

function optim.SGD(model, opts) return new("sgd", model, opts) end
function optim.Adam(model, opts) return new("adam", model, opts) end
function optim.Adamax(model, opts) return new("adamax", model, opts) end

--- The learning rate at step t (default: the next step). With
--- schedule_start = s, step t runs the schedule's step t - s.
function Optimizer:lr(t)
  return self.base_lr * self.lr_scale * self.schedule((t or self.t + 1) - self.schedule_start)
end

--- One update from the gradients in the arena. Returns {lr, grad_norm, clipped}.
function Optimizer:step()
  self.t = self.t + 1
  local lr = self:lr(self.t)
  if lr ~= lr or lr == math.huge or lr < 0 then
    error(string.format("optim: the schedule gave lr = %s at step %d", tostring(lr), self.t), 0)
  end
  local norm = math.sqrt(core.norm2(self.grad))
  local clipped = false
  if self.opts.clip and norm > self.opts.clip then
    self.grad:scale_(self.opts.clip / norm)
    clipped = true
  end
  local wd = self.opts.weight_decay or 0
  if self.kind == "sgd" then
    core.sgd_update(self.value, self.grad, self.buf, lr, self.momentum, wd, self.opts.nesterov)
  elseif self.kind == "adam" then
    core.adam_update(self.value, self.grad, self.m, self.v, lr, self.b1, self.b2, self.eps, wd,
      self.t - self.t0)
  else
    core.adamax_update(self.value, self.grad, self.m, self.v, lr, self.b1, self.b2, self.eps, wd,
      self.t - self.t0)
  end
  if self.ema then
    -- the decay warms up (1 + t) / (10 + t) -> ema_decay, so the average
    -- does not carry the initial weights for thousands of steps
    core.ema_update(self.ema, self.value, math.min(self.ema_decay, (1 + self.t) / (10 + self.t)))
  end
  return { lr = lr, grad_norm = norm, clipped = clipped }
end

--- Run fn with the Polyak-averaged weights in place (no-op without polyak).
function Optimizer:with_average(fn, ...)
  -- (nested: the average is already in place)
  if not self.ema or self._averaged then return fn(...) end
  -- one scratch copy outside Lua's heap, reused by every evaluation
  self._saved = self._saved or core.arena({ self.value:numel() })
  local saved = self._saved:copy_(self.value)
  self.value:copy_(self.ema)
  self._averaged = true
  -- the trained weights come back however fn ends
  local _ <close> = module.closing(function()
    self._averaged = nil
    self.value:copy_(saved)
  end)
  return fn(...)
end

--- The state to checkpoint: tensors and a plain table.
function Optimizer:state()
  local tensors = {}
  if self.m then
    tensors[#tensors + 1] = { name = "optim.m", value = self.m }
    tensors[#tensors + 1] = { name = "optim.v", value = self.v }
  end
  if self.buf then tensors[#tensors + 1] = { name = "optim.buf", value = self.buf } end
  if self.ema then tensors[#tensors + 1] = { name = "optim.ema", value = self.ema } end
  return tensors, { kind = self.kind, t = self.t, skipped = self.skipped, t0 = self.t0,
    lr_scale = self.lr_scale }
end

--- Restore from the tensors (name -> tensor) and table written by state().
function Optimizer:load_state(tensors, info)
  if info.kind ~= self.kind then
    return nil, string.format("optimizer state is %s, this optimizer is %s", tostring(info.kind), self.kind)
  end
  -- counts from a file: integers in range, or the schedule and bias correction go wrong
  local steps, skipped, t0, scale = info.t, info.skipped or 0, info.t0 or 0, info.lr_scale or 1
  if math.type(steps) ~= "integer" or steps < 0 or math.type(skipped) ~= "integer" or skipped < 0
    or math.type(t0) ~= "integer" or t0 < 0 or t0 > steps or type(scale) ~= "number"
    or not (scale >= 0 and scale < math.huge) then
    return nil, string.format("optimizer state is corrupt: t = %s, skipped = %s, t0 = %s, lr_scale = %s (want "
      .. "integers t >= t0 >= 0, skipped >= 0, and a finite lr_scale >= 0)", tostring(steps), tostring(skipped),
      tostring(t0), tostring(scale))
  end
  for _, e in ipairs((self:state())) do
    local t = tensors[e.name]
    if not t or t:numel() ~= e.value:numel() then
      return nil, "optimizer state " .. e.name .. " is missing or has another size"
    end
    e.value:copy_(t)
  end
  self.t, self.skipped, self.t0, self.lr_scale = steps, skipped, t0, scale
  return true
end

--- snapshot() -> the step: keep a copy of the weights (and of the Polyak
--- average) to come back to; one buffer, reused by later snapshots.
function Optimizer:snapshot()
  local n = self.value:numel()
  self._snap = self._snap or { value = core.arena({ n }), ema = self.ema and core.arena({ n }) }
  self._snap.value:copy_(self.value)
  if self.ema then self._snap.ema:copy_(self.ema) end
  self._snap.t = self.t
  return self.t
end

--- restore() -> the step of the snapshot (nil without one): the weights
--- (and average) come back from the last snapshot, and the moment estimates
--- start again from zero, bias correction included, as at the start of
--- training (the moments from before the fault may be what led to it). The
--- step count, and with it the schedule, carries on.
function Optimizer:restore()
  local snap = self._snap
  if not snap then return nil end
  self.value:copy_(snap.value)
  if self.ema then self.ema:copy_(snap.ema) end
  for _, k in ipairs { "m", "v", "buf" } do
    if self[k] then self[k]:fill_(0) end
  end
  self.t0 = self.t
  return snap.t
end

return optim
