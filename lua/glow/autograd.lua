--- glow.autograd: reverse-mode automatic gradients on a tape.
---
--- A user writes a function of tensors with glow's ops (methods such as
--- x:exp(), x:sum(dims), x:narrow(...), operators + - * / and unary -, and
--- functions such as glow.matmul, glow.conv2d, glow.cat, glow.where); run on
--- plain tensors it computes values, run on autograd values it also records
--- every op on a tape, and backward walks the tape in reverse. Every op's
--- work is done in C on whole tensors; Lua records one entry per op.
---
--- Modules written this way fit wherever a hand-written piece fits:
---   autograd.Net(forward)            a network: forward(self, x) -> y
---                                    (a coupling's net, a prior's net)
---   autograd.Flow{forward, inverse}  a flow piece: forward(self, x, ctx) ->
---                                    y, logdet {n}; inverse(self, y, ctx) -> x
---   autograd.Prior{log_prob, sample, shape}  a prior: log_prob(self, z,
---                                    cond) -> {n}; sample(self, shape, cond, opts)
--- Each is a glow.module: register parameters with m:param(name, tensor)
--- (or glow.module.param); inside the functions read them as self.<name>.
--- Their backward tapes the forward (for a flow piece, on the input rebuilt
--- by the inverse, or kept by a training-mode forward) and accumulates the
--- parameters' gradients into their grads, as the built-in pieces do.
---
---   autograd.grad(fn, args...) -> value, {grad per tensor argument}
--- differentiates a function returning a scalar (a tensor of one element or
--- a Lua number) with respect to its tensor arguments.
local core = require "glow.core"
local util = require "glow.util"
local module = require "glow.module"
local F = require "glow.tensor" -- the tensor functions: where, cat, matmul, conv2d, zeros, full, ...

local ag = {}

----------------------------------------------------------------- values and the tape
local Value = {}
local V = {} -- methods
local force, settle -- compute a pending value (fusion, below)
Value.__index = function(x, k)
  if k == "v" then return force(x) end
  return V[k]
end
Value.__name = "autograd.Value"
ag.Value = Value

local function is_value(x) return getmetatable(x) == Value end
ag.is_value = is_value
-- a value whose op has not run yet (fusion, below)
local function is_pending(x) return is_value(x) and rawget(x, "op") ~= nil end
-- a value of a plan's trace: a shape and no tensor (plans, below)
local function is_meta(x) return is_value(x) and rawget(x, "meta") ~= nil end
-- raised where a plan's trace reaches an op that needs a meta value's tensor
local META = setmetatable({}, { __tostring = function() return "autograd: a plan's trace needs a tensor" end })

local tape -- the list of recorded nodes while a backward is being taped

--- A leaf: a tensor whose gradient is wanted.
function ag.leaf(t)
  if not util.is_tensor(t) then error("autograd.leaf: expected a glow.Tensor, got " .. type(t), 2) end
  return setmetatable({ v = t }, Value)
end

--- The tensor of a value (a tensor or number passes through).
local function raw(x) if is_value(x) then return x.v end return x end
ag.value_of = raw

-- record y = op(inputs): rule(g) returns the gradients of the inputs (nil
-- for an input without one)
local function node(y, inputs, rule)
  local out = setmetatable({ v = y, inputs = inputs, rule = rule }, Value)
  if tape then tape[#tape + 1] = out end
  return out
end

local function accumulate(x, g)
  if not is_value(x) or g == nil then return end
  if x.g == nil then
    x.g, x.owned = g, false
  else
    if not x.owned then x.g, x.owned = x.g:clone(), true end
    x.g:add_(g)
  end
end

--- Walk the tape in reverse from the seeds: {{value, grad}, ...}.
local function backprop(nodes, seeds)
  for _, s in ipairs(seeds) do accumulate(s[1], s[2]) end
  for i = #nodes, 1, -1 do
    local n = nodes[i]
    if n.g ~= nil then
      local gs = n.rule(n.g, n)
      for k, x in ipairs(n.inputs) do accumulate(x, gs[k]) end
      n.g = nil -- free as we go
    end
  end
end

--- Run fn(...) recording a tape: returns the tape and fn's results.
local function record(fn, ...)
  local saved = tape
  tape = {}
  local nodes = tape
  local _ <close> = module.closing(function() tape = saved end)
  local r = table.pack(fn(...))
  for i = 1, r.n do
    if is_pending(r[i]) then settle(r[i]) end
  end
  return nodes, r
end

----------------------------------------------------------------- shapes
local function dims_of(d, nd)
  local list = {}
  if d == nil then
    for i = 1, nd do list[i] = i end
  elseif type(d) == "number" then
    list[1] = d
  else
    for i, v in ipairs(d) do list[i] = v end
  end
  for i, v in ipairs(list) do if v < 0 then list[i] = nd + 1 + v end end
  return list
end

-- the shape x had with the reduced dims kept as 1
local function kept_shape(s, dims)
  local k = {}
  for i, v in ipairs(s) do k[i] = v end
  for _, d in ipairs(dims) do k[d] = 1 end
  return k
end

-- a gradient of the shape of target (sum over broadcast dims); nil for a number
local function to_shape(g, target)
  if type(raw(target)) == "number" then return nil end
  local s, gs = raw(target):shape(), g:shape()
  if #s == #gs then
    local same = true
    for i = 1, #s do same = same and s[i] == gs[i] end
    if same then return g end -- nothing was broadcast: g itself, not a copy
  end
  return g:sum_to(s)
end

----------------------------------------------------------------- fusion
-- Elementwise ops on values (the unary functions below, + - * /, maximum,
-- minimum) do not run at once: each makes a pending value that knows its
-- op, operands and shape. The first read of a pending value's tensor (an op
-- that is not elementwise, the end of a taped function, the caller) runs
-- the whole chain under it as ONE fused program in C (core.ew_forward, one
-- pass over the output) and records ONE tape node, whose backward
-- (core.ew_backward) recomputes the chain block by block and returns the
-- gradients of all its inputs in one pass, those of broadcast inputs summed.
-- A pending operand smaller than the output (a per-channel exp(logs)) is
-- computed on its own first, so nothing is recomputed per element.
-- ag.set_fusion(false) runs every op at once, one tensor each.
local EW = core.ew_ops
local FUSED = { exp = true, log = true, log1p = true, expm1 = true, sqrt = true, abs = true, neg = true,
  sigmoid = true, log_sigmoid = true, tanh = true, softplus = true, relu = true, elu = true, clamp = true,
  pow = true, add = true, sub = true, mul = true, div = true, maximum = true, minimum = true }
local fusion = true
local MAX_OPS = 30 -- ops in one program: its registers stay within core's 64

--- set_fusion(on): fuse chains of elementwise ops (the default) or not.
function ag.set_fusion(on) fusion = on and true or false end
function ag.fusion() return fusion end

local function shape_of(x)
  if type(x) == "number" then return nil end
  if is_pending(x) then return x.shape_ end
  if is_meta(x) then return x.meta end
  return raw(x):shape()
end

local function numel(s)
  local n = 1
  for _, d in ipairs(s) do n = n * d end
  return n
end

-- the broadcast of shapes a and b (nil for a number), or nil when they do not
local function broadcast_shape(a, b)
  if a == nil then return b end
  if b == nil then return a end
  local na, nb = #a, #b
  local n = na > nb and na or nb
  local out = {}
  for i = 1, n do
    local x, y = a[i - n + na] or 1, b[i - n + nb] or 1
    if x == y or y == 1 then out[i] = x elseif x == 1 then out[i] = y else return nil end
  end
  return out
end

local function cost(x) return is_pending(x) and x.cost_ or 0 end

-- a pending value op(a [, b]); nil when the shapes do not broadcast (the
-- unfused op then raises its usual error)
local function pending(name, a, b, p, q)
  local s = b == nil and shape_of(a) or broadcast_shape(shape_of(a), shape_of(b))
  if s == nil then return nil end
  if cost(a) + cost(b) >= MAX_OPS then -- run the operands first
    if is_pending(a) then settle(a) end
    if is_pending(b) then settle(b) end
  end
  return setmetatable({ op = EW[name], a = a, b = b, p = p or 0, q = q or 0, shape_ = s, n_ = numel(s),
    cost_ = 1 + cost(a) + cost(b), tape_ = tape }, Value)
end

-- the program under pending value x: code {op, a, b, p, q, ...}, its
-- inputs (values, tensors, numbers) and, per input, the value or nil
local function compile(x)
  local n = x.n_
  local ins, ops, seen = {}, {}, {}
  local function visit(o)
    if type(o) == "number" then
      ops[#ops + 1] = o
      return { input = #ops }
    end
    local r = seen[o]
    if r then return r end
    if is_pending(o) and o.n_ < n then settle(o) end -- smaller: computed on its own
    if is_pending(o) then
      local ra = visit(o.a)
      local rb = o.b ~= nil and visit(o.b) or nil
      ins[#ins + 1] = { o, ra, rb }
      r = { ins = #ins }
    else
      ops[#ops + 1] = o
      r = { input = #ops }
    end
    seen[o] = r
    return r
  end
  visit(x)
  local nin, code = #ops, {}
  local function reg(r) return r.input or nin + r.ins end
  for k, e in ipairs(ins) do
    local o = e[1]
    local j = 5 * (k - 1)
    code[j + 1], code[j + 2], code[j + 3], code[j + 4], code[j + 5] = o.op, reg(e[2]), e[3] and reg(e[3]) or 0, o.p, o.q
  end
  return code, ops
end

-- Run pending value x: its chain as one program and one tape node. In a
-- plan's trace, a chain that reaches a meta value becomes a meta node
-- itself (the program and its inputs recorded, nothing computed).
function settle(x)
  if rawget(x, "op") == nil then return end
  local code, ops = compile(x)
  local meta = false
  for _, o in ipairs(ops) do meta = meta or is_meta(o) end
  local t, shape = x.tape_, x.shape_
  local function done()
    x.op, x.a, x.b, x.p, x.q, x.shape_, x.n_, x.cost_, x.tape_ = nil, nil, nil, nil, nil, nil, nil, nil, nil
  end
  if meta then
    done()
    x.meta, x.inputs, x.ew = shape, ops, code
    if t then t[#t + 1] = x end
    return
  end
  local inputs, want = {}, {}
  for i, o in ipairs(ops) do
    inputs[i] = raw(o)
    want[i] = is_value(o)
  end
  local y = core.ew_forward(code, inputs) -- on an error x stays pending
  done()
  rawset(x, "v", y)
  if t then
    x.inputs = ops
    x.ew = code -- what a plan needs (plans, below)
    x.rule = function(g)
      local gs = core.ew_backward(code, inputs, g, want)
      for i, gi in pairs(gs) do
        local s = inputs[i]:shape()
        if gi:numel() ~= inputs[i]:numel() then gs[i] = gi:sum_to(s) end
      end
      return gs
    end
    t[#t + 1] = x
  end
end

function force(x)
  settle(x)
  if is_meta(x) then error(META, 0) end
  return rawget(x, "v")
end

----------------------------------------------------------------- elementwise ops
-- on tensors, the operators + - * / run the broadcasting kernels (out of place)
local UNARY = {
  exp = function(g, _, y) return g * y end,
  log = function(g, x) return g / x end,
  log1p = function(g, x) return g / (x + 1) end,
  expm1 = function(g, _, y) return g * (y + 1) end,
  sqrt = function(g, _, y) return g / (y * 2) end,
  abs = function(g, x) return g * (x / (x:abs() + 1e-30)) end,
  neg = function(g) return -g end,
  sigmoid = function(g, _, y) return g * (y * (1 - y)) end,
  log_sigmoid = function(g, x) return g * (-x):sigmoid() end,
  tanh = function(g, _, y) return g * (1 - y * y) end,
  softplus = function(g, x) return g * x:sigmoid() end,
  relu = function(g, _, y) return F.where(y, g, 0) end,
  elu = function(g, x, y, alpha) return F.where(x:relu(), g, g * (y + (alpha or 1))) end,
  clamp = function(g, x, y) return F.where(y - x, 0, g) end,
  pow = function(g, x, _, p) return g * (x:pow(p - 1) * p) end,
}
-- piecewise constant: a zero gradient (the value stays on the tape)
for _, name in ipairs { "floor", "ceil", "round", "sign" } do
  UNARY[name] = function(g) return F.zeros(g:shape()) end
end

-- the parameters of a fused unary op: p, q (see glow.h's glow_ew_ins); nil
-- when its arguments are not numbers (the unfused op raises the error)
local FUSED_ARGS = {
  elu = function(alpha) if alpha == nil or type(alpha) == "number" then return alpha or 1, 0 end end,
  clamp = function(lo, hi)
    if (lo == nil or type(lo) == "number") and (hi == nil or type(hi) == "number") then
      return lo or -math.huge, hi or math.huge
    end
  end,
  pow = function(p) if type(p) == "number" then return p, p - 1 end end,
}

for name, rule in pairs(UNARY) do
  V[name] = function(x, ...)
    if fusion and FUSED[name] then
      local p, q = 0, 0
      if FUSED_ARGS[name] then p, q = FUSED_ARGS[name](...) end
      if p ~= nil then return pending(name, x, nil, p, q) end
    end
    local y = x.v[name](x.v, ...)
    local args = table.pack(...)
    return node(y, { x }, function(g, out) return { rule(g, x.v, out.v, table.unpack(args, 1, args.n)) } end)
  end
end

----------------------------------------------------------------- binary ops (broadcasting)
local BINARY = {
  add = function(g) return g, g end,
  sub = function(g) return g, -g end,
  mul = function(g, a, b) return g * b, g * a end,
  div = function(g, a, b) return g / b, -(g * a) / (b * b) end,
  -- ties send the gradient to b
  maximum = function(g, a, b)
    local m = F.maximum(a, b) - b
    return F.where(m, g, 0), F.where(m, 0, g)
  end,
  minimum = function(g, a, b)
    local m = F.minimum(a, b) - b
    return F.where(m, g, 0), F.where(m, 0, g)
  end,
}

for name, rule in pairs(BINARY) do
  local fwd = F[name]
  ag[name] = function(a, b)
    if not is_value(a) and not is_value(b) then return fwd(a, b) end
    if fusion and (type(a) == "number" or type(b) == "number" or util.is_tensor(a) or util.is_tensor(b)
        or (is_value(a) and is_value(b))) then
      local y = pending(name, a, b)
      if y then return y end
    end
    local av, bv = raw(a), raw(b)
    return node(fwd(av, bv), { a, b }, function(g)
      local ga, gb = rule(g, av, bv)
      return { is_value(a) and to_shape(ga, av) or nil, is_value(b) and to_shape(gb, bv) or nil }
    end)
  end
end
V.maximum, V.minimum = ag.maximum, ag.minimum

-- the comparisons are not differentiable: a plain 0/1 tensor of the raw values
for _, name in ipairs(F.COMPARE) do
  local fwd = F[name]
  ag[name] = function(a, b) return fwd(raw(a), raw(b)) end
  V[name] = ag[name]
end
Value.__add = ag.add
Value.__sub = ag.sub
Value.__mul = ag.mul
Value.__div = ag.div
Value.__unm = function(x) return x:neg() end

----------------------------------------------------------------- reductions
-- With no dims a value reduces to a tensor of one element (a plain tensor
-- gives a Lua number); the scalar stays on the tape.
local function reduction(name, rule)
  V[name] = function(x, dims, keepdim)
    local s = x.v:shape()
    local d = dims_of(dims, #s)
    local y = x.v[name](x.v, d, keepdim)
    return node(y, { x }, function(g, out)
      local k = kept_shape(s, d)
      return { rule(g:reshape(k):expand(s), x.v, out.v:reshape(k):expand(s), d, s) }
    end)
  end
end

reduction("sum", function(g) return g end)
reduction("mean", function(g, _, _, d, s)
  local count = 1
  for _, i in ipairs(d) do count = count * s[i] end
  return g * (1 / count)
end)
reduction("max", function(g, x, m) return F.where(x - m, 0, g) end)
reduction("logsumexp", function(g, x, lse) return g * (x - lse):exp() end)

----------------------------------------------------------------- shape ops
function V:reshape(shape)
  local s = self.v:shape()
  return node(self.v:reshape(shape), { self }, function(g) return { g:reshape(s) } end)
end

function V:permute(perm)
  local inv = {}
  for i, p in ipairs(perm) do inv[p] = i end
  return node(self.v:permute(perm), { self }, function(g) return { g:permute(inv) } end)
end

function V:transpose(i, j)
  return node(self.v:transpose(i, j), { self }, function(g) return { g:transpose(i, j) } end)
end

function V:expand(shape)
  local s = self.v:shape()
  return node(self.v:expand(shape), { self }, function(g) return { g:sum_to(s) } end)
end

function V:narrow(dim, start, length)
  local s = self.v:shape()
  return node(self.v:narrow(dim, start, length), { self }, function(g)
    return { F.zeros(s):narrow_add_(dim, start, g) }
  end)
end

function V:chunk(n, dim)
  local s = self.v:shape()
  dim = dim or 1
  local d = dim < 0 and #s + 1 + dim or dim
  local parts, out, start = self.v:chunk(n, d), {}, 1
  for i, p in ipairs(parts) do
    local from = start
    out[i] = node(p, { self }, function(g) return { F.zeros(s):narrow_add_(d, from, g) } end)
    start = start + p:shape()[d]
  end
  return out
end

function V:index_select(dim, idx)
  local s = self.v:shape()
  return node(self.v:index_select(dim, idx), { self }, function(g)
    return { F.zeros(s):index_add_(dim, idx, g) }
  end)
end

function V:gather(dim, index)
  local s = self.v:shape()
  return node(self.v:gather(dim, index), { self }, function(g)
    return { F.zeros(s):scatter_add_(dim, index, g) }
  end)
end

function V:shape()
  local s = rawget(self, "shape_") or rawget(self, "meta")
  if s then return { table.unpack(s) } end
  return self.v:shape()
end
function V:numel()
  local m = rawget(self, "meta")
  return rawget(self, "n_") or (m and numel(m)) or self.v:numel()
end

function ag.cat(list, dim)
  local any, vals = false, {}
  for i, x in ipairs(list) do
    any = any or is_value(x)
    vals[i] = raw(x)
  end
  local y = F.cat(vals, dim)
  if not any then return y end
  dim = dim or 1
  local d = dim < 0 and #y:shape() + 1 + dim or dim
  return node(y, list, function(g)
    local gs, start = {}, 1
    for i, v in ipairs(vals) do
      local len = v:shape()[d]
      if is_value(list[i]) then gs[i] = g:narrow(d, start, len) end
      start = start + len
    end
    return gs
  end)
end

function ag.where(mask, a, b)
  mask = raw(mask)
  if not is_value(a) and not is_value(b) then return F.where(mask, a, b) end
  local av, bv = raw(a), raw(b)
  return node(F.where(mask, av, bv), { a, b }, function(g)
    return { is_value(a) and to_shape(F.where(mask, g, 0), av) or nil,
      is_value(b) and to_shape(F.where(mask, 0, g), bv) or nil }
  end)
end

----------------------------------------------------------------- linear algebra
function ag.matmul(a, b)
  if not is_value(a) and not is_value(b) then return F.matmul(a, b) end
  local av, bv = raw(a), raw(b)
  return node(F.matmul(av, bv), { a, b }, function(g)
    local da, db = core.matmul_backward(av, bv, g)
    return { is_value(a) and da or nil, is_value(b) and db or nil }
  end)
end

--- conv2d(x, w [, b [, opts]]): NHWC x, w {kh, kw, cin, cout}, opts {padding, dilation}.
function ag.conv2d(x, w, b, opts)
  if is_pending(x) then settle(x) end
  if is_meta(x) then -- a plan's trace: the output's shape only
    local ws = raw(w):shape()
    local ho, wo = core.conv2d_size(x.meta, ws, opts, raw(b))
    local n = setmetatable({ meta = { x.meta[1], ho, wo, ws[4] }, inputs = { x, w, b }, conv = opts or true }, Value)
    if tape then tape[#tape + 1] = n end
    return n
  end
  local xv, wv, bv = raw(x), raw(w), raw(b)
  local y = F.conv2d(xv, wv, bv, opts)
  if not is_value(x) and not is_value(w) and not is_value(b) then return y end
  local n = node(y, { x, w, b }, function(g)
    local dx, dw, db = F.conv2d_backward(xv, wv, g, opts, is_value(b))
    return { dx, dw, db }
  end)
  n.conv = opts or true -- what a plan needs (plans, below)
  return n
end

function ag.avg_pool2(x)
  if not is_value(x) then return F.avg_pool2(x) end
  return node(F.avg_pool2(x.v), { x }, function(g) return { F.upsample2(g, "nearest") * 0.25 } end)
end

function ag.upsample2(x, mode)
  if not is_value(x) then return F.upsample2(x, mode) end
  return node(F.upsample2(x.v, mode), { x }, function(g) return { F.upsample2_backward(g, mode) } end)
end

V.matmul = ag.matmul

----------------------------------------------------------------- along a dimension, copies
-- one input: V[name](x, ...) records y = x:name(...) with rule(g, x, y, ...)
local function op1(name, rule)
  V[name] = function(x, ...)
    local args = table.pack(...)
    local y = x.v[name](x.v, ...)
    return node(y, { x }, function(g, out) return { rule(g, x.v, out.v, table.unpack(args, 1, args.n)) } end)
  end
end

op1("cumsum", function(g, _, _, dim) return core.cumsum(g, dim, true) end)
op1("cumprod", function(g, x, _, dim) return core.cumprod_backward(x, g, dim) end)
op1("softmax", function(g, _, y, dim) return y * (g - (g * y):sum(dim, true)) end)
op1("log_softmax", function(g, _, y, dim) return g - y:exp() * g:sum(dim, true) end)
op1("pad", function(g, _, _, pads) return g:crop(pads) end)
op1("crop", function(g, _, _, pads) return g:pad(pads) end)
op1("flip", function(g, _, _, dims) return g:flip(dims) end)
op1("triu", function(g, _, _, k) return g:triu(k) end)
op1("tril", function(g, _, _, k) return g:tril(k) end)

--- sort on a value: the values taped (their gradient goes back to where
--- each came from), the indices a plain tensor.
function V:sort(dim, descending)
  local s = self.v:shape()
  local y, idx = self.v:sort(dim, descending)
  local d = dim or -1
  if d < 0 then d = #s + 1 + d end
  return node(y, { self }, function(g) return { F.zeros(s):scatter_add_(d, idx, g) } end), idx
end
-- not differentiable: plain tensors from the values
function V:argsort(dim, descending) return self.v:argsort(dim, descending) end
function V:bucketize(boundaries, opts) return F.bucketize(self.v, raw(boundaries), opts) end

function V:roll(shifts, dims) return F.roll_with(self, shifts, dims, ag.cat) end

--- scatter(dim, index, src): gradients as for unique indices (as torch).
function ag.scatter(x, dim, index, src)
  if not is_value(x) and not is_value(src) then return raw(x):scatter(dim, index, src) end
  local xv, sv = raw(x), raw(src)
  return node(xv:scatter(dim, index, sv), { x, src }, function(g)
    return { is_value(x) and g:scatter(dim, index, F.zeros(index:shape())) or nil,
      is_value(src) and g:gather(dim, index) or nil }
  end)
end
V.scatter = ag.scatter

----------------------------------------------------------------- small matrices
-- the last two dims swapped
local function mT(t)
  local nd = #t:shape()
  return t:transpose(nd - 1, nd)
end
-- g {...} (a batch of scalars) as {..., 1, 1} against matrices a {..., n, n}
local function per_matrix(g, a)
  local s, k = a:shape(), {}
  for i = 1, #s - 2 do k[i] = s[i] end
  k[#k + 1], k[#k + 2] = 1, 1
  return g:reshape(k)
end

--- slogdet(a) -> log|det a|, sign for a {..., n, n}: the log taped (its
--- gradient is a^-T), the sign a plain tensor.
function ag.slogdet(a)
  local ld, sign = raw(a):slogdet()
  if not is_value(a) then return ld, sign end
  return node(ld, { a }, function(g) return { mT(a.v:inverse()) * per_matrix(g, a.v) } end), sign
end
V.slogdet = ag.slogdet

function ag.logdet(a)
  local y = raw(a):logdet()
  if not is_value(a) then return y end
  return node(y, { a }, function(g) return { mT(a.v:inverse()) * per_matrix(g, a.v) } end)
end
V.logdet = ag.logdet

--- inverse(a): d(a^-1) = -a^-1 da a^-1, so da = -Y^T g Y^T.
function ag.inverse(a)
  if not is_value(a) then return raw(a):inverse() end
  local y = a.v:inverse()
  return node(y, { a }, function(g)
    local yt = mT(y)
    return { -F.matmul(F.matmul(yt, g), yt) }
  end)
end
V.inverse = ag.inverse

--- solve(a, b) -> x = a^-1 b: db = solve(a^T, g), da = -db x^T.
function ag.solve(a, b)
  local av, bv = raw(a), raw(b)
  local x = F.solve(av, bv)
  if not is_value(a) and not is_value(b) then return x end
  return node(x, { a, b }, function(g)
    local db = F.solve(mT(av), g)
    local da
    if is_value(a) then
      local vec = #bv:shape() == #av:shape() - 1
      local d2, x2 = db, x
      if vec then
        local s = db:shape()
        s[#s + 1] = 1
        d2, x2 = db:reshape(s), x:reshape(s)
      end
      da = -F.matmul(d2, mT(x2))
    end
    return { da, is_value(b) and db or nil }
  end)
end

----------------------------------------------------------------- differentiation
local function scalar_seed(y)
  if type(y) == "number" then return nil end
  if raw(y):numel() ~= 1 then
    error("autograd.grad: the function must return a scalar (one element), got shape "
      .. util.shapestr(raw(y):shape()), 0)
  end
  return F.full(raw(y):shape(), 1)
end

--- grad(fn, args...) -> fn's value, {the gradient of each tensor argument}.
function ag.grad(fn, ...)
  local args = table.pack(...)
  local vals = {}
  for i = 1, args.n do vals[i] = util.is_tensor(args[i]) and ag.leaf(args[i]) or args[i] end
  local nodes, r = record(fn, table.unpack(vals, 1, args.n))
  local y = r[1]
  local seed = scalar_seed(y)
  if seed then backprop(nodes, { { y, seed } }) end
  local grads = {}
  for i = 1, args.n do
    if is_value(vals[i]) then grads[i] = vals[i].g or F.zeros(args[i]:shape()) end
  end
  local out = raw(y)
  return util.is_tensor(out) and out:numel() == 1 and out:totable()[1] or out, grads
end

----------------------------------------------------------------- built-in pieces on the tape
-- The classes ag.builtin made tape-aware: their parameters stay tensors
-- (their fused kernels need them) and their backward accumulates the
-- parameters' gradients itself.
local builtin = setmetatable({}, { __mode = "k" })

local function is_builtin(m) return builtin[getmetatable(m)] ~= nil end
ag.is_builtin = is_builtin

--- ag.builtin(cls, kind): a built-in piece's class takes autograd values as
--- well as tensors. Given a value, its forward runs its own kernel on the
--- value's tensor and records ONE tape node whose backward is the piece's
--- own hand-written backward (the parameters' gradients accumulate into
--- their grads, as in training). kind:
---   "net"   forward(x [, keep]) -> y; backward(x, dy) -> dx (glow.nn)
---   "flow"  forward(x, ctx) -> y, logdet [, ctx]; backward(y, dy, dlogdet, ctx)
---           -> x, dx (flow pieces): y and logdet are two values
---   "prior" log_prob(z, cond) -> {n}; backward(z, dlp, cond) -> dz [, dz1]
---           (z and cond.z1 may be values)
function ag.builtin(cls, kind)
  builtin[cls] = kind
  if kind == "net" then
    local fwd = cls.forward
    cls.forward = function(self, x, keep)
      if not is_value(x) then return fwd(self, x, keep) end
      local xv = x.v
      -- keep: the activations stay for the backward of this node (a second
      -- call on another input before it makes that backward recompute them);
      -- with no tape recording, no backward comes
      local y = fwd(self, xv, tape ~= nil)
      return node(y, { x }, function(g) return { self:backward(xv, g) } end)
    end
  elseif kind == "flow" then
    local fwd = cls.forward
    cls.forward = function(self, x, ctx)
      if not is_value(x) then return fwd(self, x, ctx) end
      local y, ld, c = fwd(self, x.v, ctx)
      local dld = {}
      local yn = node(y, { x }, function(g)
        local _, dx = self:backward(y, g, dld[1], ctx or c)
        return { dx }
      end)
      -- the logdet node runs before y's in the backward walk: it hands its
      -- gradient to y's node (and wakes it when y itself got none)
      local ln = node(ld, { yn }, function(g)
        dld[1] = g
        -- y's users ran before this node: only a y nobody used needs waking
        if yn.g == nil then return { F.zeros(y:shape()) } end
        return {}
      end)
      return yn, ln, c
    end
  elseif kind == "prior" then
    local lp = cls.log_prob
    cls.log_prob = function(self, z, cond)
      local z1 = cond and cond.z1
      if not is_value(z) and not is_value(z1) then return lp(self, z, cond) end
      local zv, c = raw(z), cond and { z1 = raw(z1), y = cond.y }
      return node(lp(self, zv, c), { z, z1 }, function(g)
        local dz, dz1 = self:backward(zv, g, c)
        return { dz, dz1 }
      end)
    end
  else
    error("autograd.builtin: kind must be \"net\", \"flow\" or \"prior\", got " .. tostring(kind), 2)
  end
  return cls
end

----------------------------------------------------------------- modules
-- Run fn with the parameters of the module and of every module inside it
-- as leaves (restored afterwards, also on an error): returns the tape, the
-- leaves and fn's results. Modules inside are autograd modules, plain
-- tables whose methods use glow's ops, or built-in pieces: those keep
-- their tensors and record their own nodes (ag.builtin).
local function walk_own(m, fn)
  if is_builtin(m) then return end
  fn(m)
  for _, ch in ipairs(m.children or {}) do walk_own(ch.module, fn) end
end

local function taped(self, fn, ...)
  local leaves = {}
  walk_own(self, function(m)
    for _, p in ipairs(m._params or {}) do
      local leaf = ag.leaf(m[p.name])
      leaves[#leaves + 1] = { m = m, p = p, leaf = leaf }
      m[p.name] = leaf
    end
  end)
  local _ <close> = module.closing(function()
    for _, l in ipairs(leaves) do l.m[l.p.name] = l.leaf.v end
  end)
  local nodes, r = record(fn, self, ...)
  return nodes, leaves, r
end

local function collect(leaves)
  for _, l in ipairs(leaves) do if l.leaf.g then l.p.grad:add_(l.leaf.g) end end
end

local function param_method(self, name, value)
  module.param(self, name, value)
  return self
end

----------------------------------------------------------------- plans
-- A network whose activations are all images {n, h, w, c} made by
-- convolutions and elementwise chains from its input, with parameters that
-- do not depend on the batch, treats each image on its own: it runs as one
-- C kernel (core.plan_forward/plan_backward, csrc/plan.c) that splits the
-- batch between the threads and takes a few images at a time through every
-- node in cache, as the fused default network does. Every call traces the
-- network on a meta value to find its nodes (so a script's constants and
-- branches are those of this call); a node of another kind, an activation
-- of another shape, or a constant with a batch dim keeps the tape.
-- Values computed from parameters alone (exp(logs)) enter the plan as
-- parameters; their gradients go back through that part of the tape.
local plans = true

--- set_plans(on): run such networks as plans (the default) or on the tape.
function ag.set_plans(on) plans = on and true or false end

-- {h, w, c} of a value of the trace {n, h, w, c}, or nil
local function image_dims(v, n)
  local s = rawget(v, "meta")
  if not s then
    local t = rawget(v, "v")
    s = util.is_tensor(t) and t:shape()
  end
  if s and #s == 4 and s[1] == n then return { s[2], s[3], s[4] } end
  return nil
end

-- the plan from a trace of fn on xl (a meta value), n its batch size; nil
-- when the network does not fit one
local function plan_of_trace(self, xl, n)
  local nodes, leaves, r = taped(self, self.fn, xl)
  local trace = { nodes = nodes, leaves = leaves }
  local leaf_of = {}
  for _, l in ipairs(leaves) do leaf_of[l.leaf] = l end
  -- which values depend on the input: those are activations, the rest parameters
  local act = { [xl] = true }
  local slot, dims, pnodes = { [xl] = 1 }, { image_dims(xl, n) }, {}
  local params, grads, pindex, derived = {}, {}, {}, {}
  local function param(o)
    if pindex[o] then return pindex[o] end
    local t, g
    if util.is_tensor(o) then
      t, g = o, false
    elseif leaf_of[o] then
      t, g = o.v, leaf_of[o].p.grad
    elseif is_value(o) and not act[o] and not is_meta(o) then -- computed from parameters alone
      t = o.v
      g = F.zeros(t:shape())
      derived[#derived + 1] = { o, g }
    else
      return nil
    end
    if #t:shape() > 4 then return nil end
    params[#params + 1], grads[#grads + 1] = t, g
    pindex[o] = #params
    return #params
  end
  for _, nd in ipairs(nodes) do
    local dep = false
    for _, i in ipairs(nd.inputs) do dep = dep or act[i] == true end
    if dep then
      act[nd] = true
      local d = image_dims(nd, n)
      if not d then return nil end
      local spec
      if nd.conv then
        local cx, cw, cb = nd.inputs[1], nd.inputs[2], nd.inputs[3]
        local w = not act[cw] and param(cw)
        local b = cb == nil and 0 or (not act[cb] and param(cb))
        if not (slot[cx] and w and b) then return nil end
        local ws, xd = raw(cw):shape(), dims[slot[cx]]
        local dil = type(nd.conv) == "table" and nd.conv.dilation or 1
        spec = { kind = 1, x = slot[cx], w = w, b = b, kh = ws[1], kw = ws[2], dil = dil,
          ph = (d[1] - xd[1] + dil * (ws[1] - 1)) // 2, pw = (d[2] - xd[2] + dil * (ws[2] - 1)) // 2 }
      elseif nd.ew then
        local ins, nums = {}, {}
        for j, o in ipairs(nd.inputs) do
          local kind, idx = 3, 0
          if type(o) == "number" then
            nums[j] = o
          elseif slot[o] then
            kind, idx = 1, slot[o]
          else
            -- a parameter of a program broadcasts over the batch
            local ts = is_meta(o) and o.meta or raw(o):shape()
            kind, idx = 2, not act[o] and #ts <= 4 and (#ts < 4 or ts[1] == 1) and param(o)
            if not idx then return nil end
          end
          ins[2 * j - 1], ins[2 * j] = kind, idx
          nums[j] = nums[j] or 0
        end
        spec = { kind = 2, code = nd.ew, ins = ins, nums = nums }
      else
        return nil
      end
      pnodes[#pnodes + 1] = spec
      dims[#dims + 1] = d
      slot[nd] = #dims
    end
  end
  local out = slot[r[1]]
  -- within core.plan_*'s limits
  if not out or #pnodes > 1024 or #params > 4096 then return nil end
  return { plan = { dims = dims, nodes = pnodes, out = out }, params = params, grads = grads, derived = derived,
    trace = trace }
end

-- the networks whose trace on a meta value failed: they stay on the tape
local no_meta = setmetatable({}, { __mode = "k" })

-- The plan of net self for input x, or nil. The trace runs the function on
-- a meta value: shapes only, nothing computed but what depends on the
-- parameters alone. A network that needs its input's tensor somewhere (an op
-- outside plans, a built-in piece) stops there, before any side effect of
-- that op, and stays on the tape from then on.
local function build_plan(self, x)
  local s = x:shape()
  if not (plans and fusion) or #s ~= 4 or s[1] < 2 or no_meta[self] then return nil end
  local ok, p = pcall(plan_of_trace, self, setmetatable({ meta = s }, Value), s[1])
  if ok then return p end
  if p == META then no_meta[self] = true end -- another error: the tape raises it again
  return nil
end

-- the backward of a plan: dx; the parameters' gradients accumulate, those
-- of values computed from parameters back through the traced tape
local function plan_backward(p, x, dy, stored)
  local dx = core.plan_backward(p.plan, x, dy, p.params, p.grads, stored)
  if #p.derived > 0 then
    backprop(p.trace.nodes, p.derived)
    collect(p.trace.leaves)
  end
  return dx
end

--- autograd.Net(forward): a network from forward(self, x) -> y written with
--- glow's ops; net:param(name, tensor) registers a parameter. It has
--- forward(x), backward(x, dy) -> dx (gradients accumulate) and parameters:
--- a coupling's network (glow.AffineCoupling(c, {net = net})) or any other.
local Net = module.class("autograd.Net")
ag.Net = Net
Net.param = param_method

function Net.new(forward)
  if type(forward) ~= "function" then error("autograd.Net: expected a function forward(self, x)", 2) end
  return setmetatable({ fn = forward }, Net)
end

-- tape fn on x (a tensor): {xl, nodes, leaves, y}
local function tape_on(self, x)
  local xl = ag.leaf(x)
  local nodes, leaves, r = taped(self, self.fn, xl)
  return { xl = xl, nodes = nodes, leaves = leaves, y = r[1] }
end

-- backward of one taping: the parameters' gradients accumulate; returns dx
local function backward_of(t, x, dy)
  backprop(t.nodes, { { t.y, dy } })
  collect(t.leaves)
  local dx = t.xl.g
  if dx == nil then return F.zeros(x:shape()) end
  -- gradients pass through some rules uncopied: never hand the caller its own dy back
  if rawequal(dx, dy) then dx = dx:clone() end
  return dx
end

--- forward(x [, keep]): with keep, the forward is taped and kept for one
--- backward(x, dy) on the same x, which then does not run it again (a
--- coupling asks for that when it needs the output in its backward too).
function Net:forward(x, keep)
  self._tape = nil
  -- inside another piece's taping (its parameters are that tape's leaves):
  -- the ops go on that tape
  if tape ~= nil and not keep then return self.fn(self, x) end
  local p = util.is_tensor(x) and build_plan(self, x)
  if p then
    if not keep then return (core.plan_forward(p.plan, x, p.params)) end
    local y, store = core.plan_forward(p.plan, x, p.params, true)
    p.x, p.store = x, store
    self._tape = p
    return y
  end
  if not keep then
    -- on values with no tape: the elementwise chains run fused, nothing is recorded
    if not fusion or not util.is_tensor(x) then return self.fn(self, x) end
    return raw(self.fn(self, ag.leaf(x)))
  end
  local t = tape_on(self, x)
  t.x = x
  self._tape = t
  return raw(t.y)
end

function Net:backward(x, dy)
  local t = self._tape
  self._tape = nil
  if not (t and rawequal(t.x, x)) then t = util.is_tensor(x) and build_plan(self, x) or tape_on(self, x) end
  if t.plan then return plan_backward(t, x, dy, t.store) end
  return backward_of(t, x, dy)
end

function Net:clear_state() self._tape = nil end

--- autograd.Flow{forward = fn(self, x, ctx) -> y, logdet, inverse = fn(self,
--- y, ctx) -> x}: a flow piece. Its backward rebuilds the input by the
--- inverse (memory mode "reversible", or outside training), or takes the one
--- a training forward kept (memory mode "store"), tapes the forward on it
--- and back-propagates dy and dlogdet: one piece at a time, so with
--- "reversible" memory stays flat in depth.
local Flow = module.class("autograd.Flow")
ag.Flow = Flow
Flow.param = param_method

function Flow.new(o)
  if type(o) ~= "table" or type(o.forward) ~= "function" or type(o.inverse) ~= "function" then
    error("autograd.Flow: expected {forward = function(self, x, ctx), inverse = function(self, y, ctx)}", 2)
  end
  return setmetatable({ fwd = o.forward, inv = o.inverse, label = o.name or "autograd flow" }, Flow)
end

-- A forward's log-determinant must be a tensor {n}, one per image of x:
-- anything else (a Lua number from a sum without dims, {1}, {n, 1}) would
-- broadcast in a container's sum and fail only in backward, far from here.
local function check_logdet(self, ld, x)
  local n = raw(x):shape()[1]
  local t = raw(ld)
  local s = util.is_tensor(t) and t:shape()
  if s and #s == 1 and s[1] == n then return end
  local got = s and ("a tensor " .. util.shapestr(s)) or type(ld) == "number" and "a number" or tostring(ld)
  error(string.format("%s: forward's log-determinant is %s, expected a tensor {n} = {%d} "
    .. "(one per image: reduce with dims, e.g. s:sum({2, 3, 4}))", self.label, got, n), 0)
end

function Flow:forward(x, ctx)
  if self.is_training and self.memory_mode == "store" then self._x = x end
  local y, ld = self.fwd(self, x, ctx)
  check_logdet(self, ld, x)
  return y, ld
end

function Flow:inverse(y, ctx) return self.inv(self, y, ctx) end

function Flow:clear_state() self._x = nil end

function Flow:backward(y, dy, dlogdet, ctx)
  local x = self._x or self.inv(self, y, ctx)
  self._x = nil
  local xl = ag.leaf(x)
  local nodes, leaves, r = taped(self, self.fwd, xl, ctx)
  check_logdet(self, r[2], x)
  local seeds = { { r[1], dy } }
  local n = x:shape()[1]
  local d = util.dlogdet(dlogdet, n)
  if d and is_value(r[2]) then seeds[2] = { r[2], d } end
  backprop(nodes, seeds)
  collect(leaves)
  local dx = xl.g
  if dx == nil then return x, F.zeros(x:shape()) end
  if rawequal(dx, dy) then dx = dx:clone() end
  return x, dx
end

--- autograd.Prior{log_prob = fn(self, z, cond) -> {n}, sample = fn(self,
--- shape, cond, opts) -> z, shape = {h, w, c} (for a top prior)}: a prior;
--- backward(z, dlp, cond) -> dz, dz1 (dz1 when cond.z1 is given).
local Prior = module.class("autograd.Prior")
ag.Prior = Prior
Prior.param = param_method

function Prior.new(o)
  if type(o) ~= "table" or type(o.log_prob) ~= "function" or type(o.sample) ~= "function" then
    error("autograd.Prior: expected {log_prob = function(self, z, cond), sample = function(self, shape, cond, opts)}",
      2)
  end
  return setmetatable({ lp = o.log_prob, draw = o.sample, shape = o.shape }, Prior)
end

function Prior:log_prob(z, cond) return self.lp(self, z, cond) end
function Prior:sample(shape, cond, opts) return self.draw(self, shape, cond, opts or {}) end

function Prior:backward(z, dlp, cond)
  local zl = ag.leaf(z)
  local c, z1 = cond, nil
  if cond and cond.z1 then
    z1 = ag.leaf(cond.z1)
    c = { y = cond.y, z1 = z1 }
  end
  local nodes, leaves, r = taped(self, self.lp, zl, c)
  local n = z:shape()[1]
  backprop(nodes, { { r[1], util.dlogdet(dlp, n) } })
  collect(leaves)
  local dz = zl.g or F.zeros(z:shape())
  if z1 then return dz, z1.g or F.zeros(cond.z1:shape()) end
  return dz
end

return ag
