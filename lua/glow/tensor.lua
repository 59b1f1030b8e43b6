--- glow.tensor: the tensor maths of csrc/ops.c and csrc/linalg.c as
--- glow.Tensor methods, operators and functions. Dimensions are 1-based; a
--- negative one counts from the end. The ops return new tensors; the old
--- in-place methods (add, mul, scale, fill, copy) stay in place, and so do
--- the gradient helpers narrow_add, index_add and scatter_add (they return
--- t). t:sum(), t:mean(), t:max() and t:logsumexp() with no dims return a
--- Lua number, as t:sum() always did. With dims (an integer or an array)
--- they return tensors, the reduced dims removed unless keepdim (all
--- removed: shape {1}). reshape returns a view sharing t's memory; every
--- other shape op copies.
---
--- This module returns the plain functions (on tensors and numbers only);
--- glow.autograd builds on them, and install() puts dispatching versions in
--- the glow table: given an autograd value they record it on the tape.
local core = require "glow.core"

local T = {}
local mt = core.Tensor_mt
local function util_is_tensor(x) return getmetatable(x) == mt end
local function shapestr(s) return "{" .. table.concat(s, ", ") .. "}" end
local methods = mt.__index

--- round rounds half to even (as torch.round and C's rintf: 0.5 -> 0, 1.5 -> 2,
--- -2.5 -> -2); sign gives -1, 1, or the value itself for 0 and NaN.
local UNARY = { "exp", "log", "log1p", "expm1", "sqrt", "abs", "neg", "sigmoid", "log_sigmoid", "tanh",
  "softplus", "relu", "elu", "clamp", "pow", "floor", "ceil", "round", "sign" }
T.UNARY = UNARY

for _, name in ipairs(UNARY) do methods[name] = core[name] end

----------------------------------------------------------------- binary, broadcasting
--- The comparisons x:lt(y), le, gt, ge, eq, ne broadcast like + and give a
--- tensor of 0 and 1 (NaN compares false, except in ne); y may be a number.
local COMPARE = { "lt", "le", "gt", "ge", "eq", "ne" }
T.COMPARE = COMPARE
for _, name in ipairs { "add", "sub", "mul", "div", "maximum", "minimum" } do T[name] = core[name] end
for _, name in ipairs(COMPARE) do T[name], methods[name] = core[name], core[name] end
T.where = core.where
methods.maximum, methods.minimum = core.maximum, core.minimum

-- operators: an operand that is neither a tensor nor a number (an autograd
-- value) takes the operation to glow.autograd
local function operator(name)
  local f = core[name]
  return function(a, b)
    local ma, mb = getmetatable(a), getmetatable(b)
    if (ma ~= nil and ma ~= mt) or (mb ~= nil and mb ~= mt) then return require("glow.autograd")[name](a, b) end
    return f(a, b)
  end
end
mt.__add, mt.__sub, mt.__mul, mt.__div = operator("add"), operator("sub"), operator("mul"), operator("div")
mt.__unm = core.neg

----------------------------------------------------------------- reductions
-- t:sum() with no dims keeps its old kernel (a sum in double); so does the
-- mean with no dims
local old_sum = methods.sum

function methods.sum(t, dims, keepdim)
  if dims == nil then return old_sum(t) end
  return core.reduce_sum(t, dims, keepdim)
end

function methods.mean(t, dims, keepdim)
  if dims == nil then return old_sum(t) / t:numel() end
  return core.reduce_mean(t, dims, keepdim)
end

function methods.max(t, dims, keepdim)
  if dims == nil then return core.reduce_max(t):get(1) end
  return core.reduce_max(t, dims, keepdim)
end

--- logsumexp: stable (the maximum taken out); all -inf gives -inf, any +inf +inf.
function methods.logsumexp(t, dims, keepdim)
  if dims == nil then return core.reduce_logsumexp(t):get(1) end
  return core.reduce_logsumexp(t, dims, keepdim)
end

----------------------------------------------------------------- shape
--- reshape(shape): one entry may be -1 (the size that fits); a VIEW sharing
--- t's memory (writes through either show in both), as t:view.
function methods.reshape(t, shape)
  if not util_is_tensor(t) then error("reshape: argument 1 must be a glow.Tensor, got " .. type(t), 2) end
  if type(shape) ~= "table" then error("reshape: the shape must be a Lua array, got " .. type(shape), 2) end
  local s, known, free = {}, 1, nil
  for i, v in ipairs(shape) do
    s[i] = v
    if v == -1 then
      if free then error("reshape: only one dimension may be -1, in " .. shapestr(shape), 2) end
      free = i
    elseif math.type(v) ~= "integer" or v < 1 then
      error(string.format("reshape: dimension %d of %s must be a positive integer or -1", i, shapestr(shape)), 2)
    else
      known = known * v
    end
  end
  if free then
    if t:numel() % known ~= 0 then
      error(string.format("reshape: %s (%d elements) does not fit %s", shapestr(t:shape()), t:numel(),
        shapestr(shape)), 2)
    end
    s[free] = t:numel() // known
  elseif known ~= t:numel() then
    error(string.format("reshape: %s (%d elements) does not fit %s (%d)", shapestr(t:shape()), t:numel(),
      shapestr(shape), known), 2)
  end
  return t:view(s)
end

methods.permute, methods.transpose = core.permute, core.transpose

methods.narrow, methods.narrow_add = core.narrow, core.narrow_add
methods.expand, methods.sum_to = core.expand, core.sum_to
T.cat = core.cat

--- chunk(n [, dim = 1]): a Lua array of up to n copies along dim, each
--- ceil(size / n) long but the last (fewer pieces when the size runs out),
--- as torch.chunk.
methods.chunk = core.chunk

----------------------------------------------------------------- indexing
methods.index_select, methods.index_add = core.index_select, core.index_add
methods.gather, methods.scatter_add = core.gather, core.scatter_add
T.checkerboard, T.one_hot = core.checkerboard, core.one_hot

----------------------------------------------------------------- linear algebra
T.matmul = core.matmul

-- A 1x1 or 3x3 kernel with "same" padding and no dilation takes the fast
-- kernels the built-in networks use (csrc/conv.c: direct 3x3, GEMM 1x1);
-- any other goes through im2col and GEMM (csrc/linalg.c).
local function fast(w, opts)
  local s = w:shape()
  if #s ~= 4 or s[1] ~= s[2] or (s[1] ~= 1 and s[1] ~= 3) then return false end
  if opts == nil then return true end
  local p = opts.padding
  return (opts.dilation or 1) == 1 and (p == nil or p == "same" or p == (s[1] - 1) // 2)
end

--- conv2d(x, w [, b [, {padding = p, dilation = d}]]): NHWC x, w {kh, kw, cin, cout}, odd kernels.
function T.conv2d(x, w, b, opts)
  if util_is_tensor(x) and fast(w, opts) then return core.conv2d_forward(x, w, b) end
  return core.conv2d(x, w, b, opts)
end

--- conv2d_backward(x, w, dy [, opts [, need_b]]) -> dx, dw [, db]: new tensors.
function T.conv2d_backward(x, w, dy, opts, need_b)
  if fast(w, opts) then
    local s = w:shape()
    local dw, db = core.tensor(s), need_b and core.tensor({ s[4] }) or nil
    local dx = core.conv2d_backward(x, w, dy, dw, db, true)
    return dx, dw, db
  end
  return core.conv2d_grad(x, w, dy, opts, need_b)
end
T.avg_pool2, T.upsample2, T.upsample2_backward = core.avg_pool2, core.upsample2, core.upsample2_backward
-- t:matmul(b): an autograd value as b takes the product to glow.autograd
function methods.matmul(a, b, ...)
  if getmetatable(b) ~= mt then return require("glow.autograd").matmul(a, b) end
  return core.matmul(a, b, ...)
end

----------------------------------------------------------------- makers
function T.zeros(shape) return core.tensor(shape) end
function T.full(shape, v)
  if type(v) ~= "number" then error("full: the value must be a number, got " .. type(v), 2) end
  return core.tensor(shape):fill(v)
end
function T.ones(shape) return core.tensor(shape):fill(1) end

--- install(glow, autograd): the functions in the glow table, each taking
--- autograd values as well as tensors.
function T.install(glow, ag)
  -- glow.<name>(x, ...) = x:<name>(...) for a tensor or an autograd value
  local function method(name)
    return function(x, ...)
      if getmetatable(x) ~= mt and not ag.is_value(x) then
        error(string.format("%s: argument 1 must be a glow.Tensor, got %s", name, type(x)), 2)
      end
      return x[name](x, ...)
    end
  end
  for _, name in ipairs(UNARY) do glow[name] = method(name) end
  for _, name in ipairs { "add", "sub", "mul", "div", "maximum", "minimum", "where", "cat", "matmul", "conv2d",
    "avg_pool2", "upsample2" } do
    glow[name] = ag[name]
  end
  for _, name in ipairs(COMPARE) do glow[name] = ag[name] end
  for _, name in ipairs { "sum", "mean", "max", "logsumexp", "reshape", "permute", "transpose", "narrow", "chunk",
    "expand", "index_select", "gather" } do
    glow[name] = method(name)
  end
  glow.checkerboard, glow.one_hot = T.checkerboard, T.one_hot
  glow.zeros, glow.ones, glow.full = T.zeros, T.ones, T.full
end

return T
