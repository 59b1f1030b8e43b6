--- glow.tensor: the tensor maths of csrc/ops.c and csrc/linalg.c as
--- glow.Tensor methods, operators and functions. Dimensions are 1-based; a
--- negative one counts from the end. The ops return new tensors; the old
--- in-place methods (add, mul, scale, fill, copy) stay in place, and
--- t:sum(), t:mean(), t:max() and t:logsumexp() with no dims return a Lua
--- number, as t:sum() always did. With dims they return tensors, the
--- reduced dims removed unless keepdim (all removed: shape {1}).
---
--- This module returns the plain functions (on tensors and numbers only);
--- glow.autograd builds on them, and install() puts dispatching versions in
--- the glow table: given an autograd value they record it on the tape.
local core = require "glow.core"

local T = {}
local mt = core.Tensor_mt
local function util_is_tensor(x) return getmetatable(x) == mt end
local methods = mt.__index

local UNARY = { "exp", "log", "log1p", "expm1", "sqrt", "abs", "neg", "sigmoid", "log_sigmoid", "tanh",
  "softplus", "relu", "elu", "clamp", "pow" }
T.UNARY = UNARY

for _, name in ipairs(UNARY) do methods[name] = core[name] end

----------------------------------------------------------------- binary, broadcasting
for _, name in ipairs { "add", "sub", "mul", "div", "maximum", "minimum" } do T[name] = core[name] end
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
local old_sum = methods.sum

local function count(t, dims)
  local s, n = t:shape(), 1
  if type(dims) == "number" then dims = { dims } end
  for _, d in ipairs(dims) do n = n * s[d < 0 and #s + 1 + d or d] end
  return n
end

function methods.sum(t, dims, keepdim)
  if dims == nil then return old_sum(t) end
  return core.reduce_sum(t, dims, keepdim)
end

function methods.mean(t, dims, keepdim)
  if dims == nil then return old_sum(t) / t:numel() end
  return core.reduce_sum(t, dims, keepdim):scale(1 / count(t, dims))
end

function methods.max(t, dims, keepdim)
  if dims == nil then return core.reduce_max(t):get(1) end
  return core.reduce_max(t, dims, keepdim)
end

function methods.logsumexp(t, dims, keepdim)
  local m = core.reduce_max(t, dims, true)
  local r = core.reduce_sum(core.exp(core.sub(t, m)), dims, true)
  r = core.add(core.log(r), m)
  if dims == nil then return r:get(1) end
  if keepdim then return r end
  return core.reduce_sum(r, dims, false) -- drops the dims of size 1
end

----------------------------------------------------------------- shape
--- reshape(shape): one entry may be -1; a view sharing t's memory.
function methods.reshape(t, shape)
  local s, known, free = {}, 1, nil
  for i, v in ipairs(shape) do
    s[i] = v
    if v == -1 then
      if free then error("reshape: only one dimension may be -1", 2) end
      free = i
    else
      known = known * v
    end
  end
  if free then
    if known == 0 or t:numel() % known ~= 0 then
      error(string.format("reshape: %d elements do not fit a shape with -1 and %d more", t:numel(), known), 2)
    end
    s[free] = t:numel() // known
  end
  return t:view(s)
end

methods.permute = core.permute

function methods.transpose(t, i, j)
  local n = #t:shape()
  i, j = i < 0 and n + 1 + i or i, j < 0 and n + 1 + j or j
  local perm = {}
  for d = 1, n do perm[d] = d end
  perm[i], perm[j] = j, i
  return core.permute(t, perm)
end

methods.narrow, methods.narrow_add = core.narrow, core.narrow_add
methods.expand, methods.sum_to = core.expand, core.sum_to
T.cat = core.cat

--- chunk(n, dim): n pieces along dim, each ceil(size / n) long but the last
--- (fewer pieces when the size runs out), as torch.chunk.
function methods.chunk(t, n, dim)
  local s = t:shape()
  local d = dim < 0 and #s + 1 + dim or dim
  local step = (s[d] + n - 1) // n
  local out, start = {}, 1
  while start <= s[d] do
    local len = math.min(step, s[d] - start + 1)
    out[#out + 1] = core.narrow(t, d, start, len)
    start = start + len
  end
  return out
end

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
methods.matmul = core.matmul

----------------------------------------------------------------- makers
function T.zeros(shape) return core.tensor(shape) end
function T.full(shape, v) return core.tensor(shape):fill(v) end
function T.ones(shape) return core.tensor(shape):fill(1) end

--- install(glow, autograd): the functions in the glow table, each taking
--- autograd values as well as tensors.
function T.install(glow, ag)
  for _, name in ipairs(UNARY) do glow[name] = function(x, ...) return x[name](x, ...) end end
  for _, name in ipairs { "add", "sub", "mul", "div", "maximum", "minimum", "where", "cat", "matmul", "conv2d",
    "avg_pool2", "upsample2" } do
    glow[name] = ag[name]
  end
  for _, name in ipairs { "sum", "mean", "max", "logsumexp", "reshape", "permute", "transpose", "narrow", "chunk",
    "expand", "index_select", "gather" } do
    glow[name] = function(x, ...) return x[name](x, ...) end
  end
  glow.checkerboard, glow.one_hot = T.checkerboard, T.one_hot
  glow.zeros, glow.ones, glow.full = T.zeros, T.ones, T.full
end

return T
