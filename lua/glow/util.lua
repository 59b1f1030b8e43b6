--- Small helpers shared by the package: plain classes, option checking,
--- error locations, flat parameter arenas and buffers (the module base is
--- glow.module).
local core = require "glow.core"

local util = {}

--- A class table whose instances find methods in it; Class(...) calls Class.new.
function util.class(name, parent)
  local cls = {}
  cls.__index = cls
  cls.__name = name
  setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return c.new(...) end,
  })
  return cls
end

function util.is_tensor(x)
  return getmetatable(x) == core.Tensor_mt
end

local seed_counter = 0
--- A fresh seed for a layer built by hand without one (deterministic per process).
function util.next_seed()
  seed_counter = seed_counter + 1
  return 7919 * seed_counter
end

--- Move every parameter and gradient of a module tree into two flat arena
--- tensors (value, grad), in parameters() order, and make each parameter a
--- view into them. Idempotent: a flattened module returns its arena.
function util.flatten(m)
  if m._arena then return m._arena.value, m._arena.grad end
  local entries = {}
  local function visit(mod)
    for _, p in ipairs(mod._params or {}) do entries[#entries + 1] = { mod, p } end
    for _, ch in ipairs(mod.children or {}) do visit(ch.module) end
  end
  visit(m)
  local n = 0
  for _, e in ipairs(entries) do n = n + e[1][e[2].name]:numel() end
  local value, grad = core.arena({ math.max(n, 1) }), core.arena({ math.max(n, 1) })
  local off = 0
  for _, e in ipairs(entries) do
    local mod, p = e[1], e[2]
    local v = mod[p.name]
    local shape, k = v:shape(), v:numel()
    local vv = core.view_range(value, off, shape):copy_(v)
    local gv = core.view_range(grad, off, shape):copy_(p.grad)
    mod[p.name], p.value, p.grad = vv, vv, gv
    off = off + k
  end
  m._arena = { value = value, grad = grad }
  -- the per-parameter buffers just replaced live outside Lua's heap, where
  -- the collector cannot see their size: free them now, not cycles later,
  -- and hand their pages back (the arenas that follow are too big to reuse
  -- them)
  collectgarbage()
  core.trim()
  return value, grad
end

--- Fixed buffers (not learned) of a module tree, for checkpoints: a list of
--- {name, owner, field}. A module lists its buffer fields in _buffers; a
--- field holds a tensor or a Lua array of numbers.
function util.buffers(m, prefix, out)
  out = out or {}
  prefix = prefix or ""
  for _, f in ipairs(m._buffers or {}) do out[#out + 1] = { name = prefix .. f, owner = m, field = f } end
  for _, ch in ipairs(m.children or {}) do util.buffers(ch.module, prefix .. ch.name .. ".", out) end
  return out
end

--- Call fn(...) and prefix any error with a location ("step 5, ...").
function util.at(where, fn, ...)
  local r = table.pack(pcall(fn, ...))
  if not r[1] then error(where .. tostring(r[2]), 0) end
  return table.unpack(r, 2, r.n)
end

function util.shapestr(s)
  return "{" .. table.concat(s, ", ") .. "}"
end

--- Raise an error unless t is a tensor {n, h, w, c} with the given h, w, c.
function util.check_image(t, h, w, c, what)
  if not util.is_tensor(t) then
    error(string.format("%s: expected a glow.Tensor, got %s", what, type(t)), 0)
  end
  local s = t:shape()
  if #s ~= 4 or (h and s[2] ~= h) or (w and s[3] ~= w) or (c and s[4] ~= c) then
    error(string.format("%s: got shape %s, expected {n, %s, %s, %s}", what, util.shapestr(s),
      h or "h", w or "w", c or "c"), 0)
  end
  return s
end

--- Check an options table against a table of allowed names.
--- util.int_opt(v, default, what, lo [, hi]) -> v, or default when v is nil;
--- raises "<what> must be an integer >= lo" (or "in lo..hi") otherwise.
function util.int_opt(v, default, what, lo, hi)
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < lo or (hi and v > hi) then
    error(string.format("%s must be an integer%s, got %s", what,
      hi and string.format(" in %d..%d", lo, hi) or string.format(" >= %d", lo), tostring(v)), 0)
  end
  return v
end

function util.check_options(opts, allowed, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", 0) end
  for k in pairs(opts) do
    if allowed[k] == nil then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (known: %s)", what, tostring(k),
        table.concat(names, ", ")), 0)
    end
  end
  return opts
end

--- A dlogdet argument (nil, a number, or a tensor {n}) as a tensor {n}, and
--- the sum over the batch.
function util.dlogdet(d, n)
  if d == nil then return nil, 0 end
  if type(d) == "number" then
    return core.tensor({ n }):fill_(d), d * n
  end
  if d:numel() ~= n then
    error(string.format("dlogdet: expected %d values, got %d", n, d:numel()), 0)
  end
  return d, d:sum()
end

return util
