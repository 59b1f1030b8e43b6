--- glow.module: the base every piece is built on (flow pieces, Split, the
--- priors, the coupling networks of glow.nn, whole models).
---
--- A module is a table whose class comes from module.class. It may hold
---   _params   its own learned parameters (module.param registers them)
---   _buffers  the names of its fixed, saved fields (permutations, signs)
---   children  an array of {name = ..., module = ...}: its sub-modules, in order
--- and gets from the base:
---   :parameters([prefix]) -> {{name, value, grad}, ...}, children's prefixed "name."
---   :zero_grad()          every gradient to 0 (one fill on a flattened arena)
---   :apply(fn)            fn(m) on the module and every descendant, depth first
---   :initialize(x [, ctx]) data-dependent initialization (ActNorm) of every
---                         piece inside not yet initialized, in order, each on
---                         the output of the pieces before it: a forward pass
---   :training([on])  :evaluate()   training mode, as torch's Container:training()
---   :set_memory(mode)    "store" or "reversible" (see glow.Glow's memory option)
---   :clear()             drop what a forward pass kept for backward
--- Mode switches propagate to every descendant. In training mode a forward
--- pass keeps what backward needs (a coupling keeps the half it transforms;
--- with memory "store" also its network's activations); evaluation keeps
--- nothing, and backward then rebuilds inputs by the inverses.
local core = require "glow.core"

local M = {}

--- module.closing(fn) -> a value for a to-be-closed variable: fn(err) runs
--- when the variable's scope ends, normally (err nil) or by an error (the
--- error goes on after fn). The one cleanup helper of the package:
---   local _ <close> = module.closing(function(err) ... end)
local closing_mt = { __close = function(self, err) self.fn(err) end }
function M.closing(fn) return setmetatable({ fn = fn }, closing_mt) end

local Module = {}
Module.__index = Module
Module.__name = "Module"
M.Module = Module

--- module.class(name [, parent]) -> a class; Class(...) calls Class.new(...).
--- Instances find methods in the class, then the parent, then Module.
function M.class(name, parent)
  local cls = {}
  cls.__index = cls
  cls.__name = name
  setmetatable(cls, { __index = parent or Module, __call = function(c, ...) return c.new(...) end })
  return cls
end

--- Register a learned parameter: self[name] holds the value (a copy outside
--- Lua's heap, see core.arena); its gradient lives beside it. Parameters are
--- listed in registration order.
---
--- self.grad.<name> is that parameter's gradient (as torch/nn keeps
--- gradWeight): a lookup by name that follows the entry, so it stays right
--- when flattening moves the gradient into an arena.
local grad_mt = {
  __index = function(g, name)
    for _, p in ipairs(rawget(g, "_owner")._params) do if p.name == name then return p.grad end end
    return nil -- no such parameter (an optional one, such as a bias left out)
  end,
  __newindex = function() error("grad: gradients are registered with module.param, not assigned", 2) end,
}

function M.param(self, name, value)
  self._params = self._params or {}
  for _, p in ipairs(self._params) do
    if p.name == name then error("module.param: a parameter named " .. tostring(name) .. " exists already", 2) end
  end
  value = core.arena(value:shape()):copy_(value)
  self[name] = value
  self._params[#self._params + 1] = { name = name, value = value, grad = core.arena(value:shape()) }
  if rawget(self, "grad") == nil then rawset(self, "grad", setmetatable({ _owner = self }, grad_mt)) end
end

function Module:parameters(prefix)
  local out = {}
  prefix = prefix or ""
  for _, p in ipairs(self._params or {}) do
    -- the value may have been replaced (loading, flattening); keep the entry in sync
    p.value = self[p.name]
    out[#out + 1] = { name = prefix .. p.name, value = p.value, grad = p.grad }
  end
  for _, ch in ipairs(self.children or {}) do
    for _, p in ipairs(ch.module:parameters(prefix .. ch.name .. ".")) do out[#out + 1] = p end
  end
  return out
end

function Module:zero_grad()
  if self._arena then
    self._arena.grad:fill_(0)
    return
  end
  for _, p in ipairs(self:parameters()) do p.grad:fill_(0) end
end

--- apply(fn): fn(m) on this module and every descendant, depth first, in order.
function Module:apply(fn)
  fn(self)
  for _, ch in ipairs(self.children or {}) do
    local m = ch.module
    if m.apply then m:apply(fn) else M.walk(m, fn) end
  end
  return self
end

--- module.walk(m, fn): apply for any table with children (one that does not
--- inherit from Module, such as a user's own network).
function M.walk(m, fn)
  fn(m)
  for _, ch in ipairs(m.children or {}) do M.walk(ch.module, fn) end
end

function Module:training(on)
  if on == nil then on = true end
  return self:apply(function(m) m.is_training = on or nil end)
end

function Module:evaluate() return self:training(false) end

function Module:set_memory(mode)
  if mode ~= "store" and mode ~= "reversible" then
    error("set_memory: mode must be \"store\" or \"reversible\", got " .. tostring(mode), 2)
  end
  return self:apply(function(m) m.memory_mode = mode end)
end

function Module:clear()
  return self:apply(function(m) if m.clear_state then m:clear_state() end end)
end

--- Data-dependent initialization: every piece with check_init (ActNorm)
--- that is not initialized yet initializes itself from its input during
--- one forward pass (glow.Model:initialize starts them all afresh). A piece
--- that defines its own initialize(x) (a leaf such as ActNorm) overrides
--- this.
function Module:initialize(x, ctx)
  self:apply(function(m) if m.check_init and not m.initialized then m.init_pending = true end end)
  local _ <close> = M.closing(function() self:apply(function(m) m.init_pending = nil end) end)
  if ctx == nil then self:forward(x) else self:forward(x, ctx) end
  return self
end

return M
