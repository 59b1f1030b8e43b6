--- glow.tensor: the tensor maths of csrc/ops.c and csrc/linalg.c as
--- glow.Tensor methods, operators and functions. Dimensions are 1-based; a
--- negative one counts from the end. The ops return new tensors; a method
--- that changes its tensor in place ends in an underscore, as in torch
--- (add_, mul_, scale_, fill_, copy_, zero_, and the gradient helpers
--- narrow_add_, index_add_, scatter_add_; they return t). The old names of
--- the in-place methods raise an error that names both forms, so no script
--- changes meaning silently. t:sum(), t:mean(), t:max() and t:logsumexp() with no dims return a
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

methods.narrow, methods.narrow_add_ = core.narrow, core.narrow_add
methods.expand, methods.sum_to = core.expand, core.sum_to
T.cat = core.cat

--- chunk(n [, dim = 1]): a Lua array of up to n copies along dim, each
--- ceil(size / n) long but the last (fewer pieces when the size runs out),
--- as torch.chunk.
methods.chunk = core.chunk

----------------------------------------------------------------- indexing
methods.index_select, methods.index_add_ = core.index_select, core.index_add
methods.gather, methods.scatter_add_ = core.gather, core.scatter_add
T.checkerboard, T.one_hot = core.checkerboard, core.one_hot

----------------------------------------------------------------- linear algebra
T.matmul = core.matmul

--- conv2d(x, w [, b [, {padding = p, dilation = d}]]): NHWC x, w {kh, kw, cin, cout}, odd kernels.
--- One C entry (csrc/conv.c) picks the kernel from the geometry.
T.conv2d = core.conv2d

--- conv2d_backward(x, w, dy [, opts [, need_b]]) -> dx, dw [, db]: new tensors.
T.conv2d_backward = core.conv2d_grad
T.avg_pool2, T.upsample2, T.upsample2_backward = core.avg_pool2, core.upsample2, core.upsample2_backward
-- t:matmul(b): an autograd value as b takes the product to glow.autograd
function methods.matmul(a, b, ...)
  if getmetatable(b) ~= mt then return require("glow.autograd").matmul(a, b) end
  return core.matmul(a, b, ...)
end

----------------------------------------------------------------- along a dimension
--- cumsum(dim) and cumprod(dim): running sums and products along dim.
methods.cumsum, methods.cumprod = core.cumsum, core.cumprod

--- softmax(dim) and log_softmax(dim), stable (the maximum taken out).
methods.softmax, methods.log_softmax = core.softmax, core.log_softmax

--- sort([dim = -1 [, descending]]) -> values, indices: stable (equal
--- values keep their order), NaN last (first when descending), as torch;
--- indices are 1-based positions along dim, ready for gather.
methods.sort = core.sort
--- argsort([dim = -1 [, descending]]) -> the indices of sort.
function methods.argsort(t, dim, descending)
  local _, idx = core.sort(t, dim, descending)
  return idx
end

local function right_of(opts, what)
  if opts == nil then return false end
  if type(opts) ~= "table" then error(what .. ": options must be a table {right = true}, got " .. type(opts), 3) end
  for k in pairs(opts) do
    if k ~= "right" then error(string.format("%s: unknown option %q", what, tostring(k)), 3) end
  end
  return opts.right and true or false
end

--- searchsorted(boundaries, values [, {right = true}]): for each value the
--- number of boundaries below it (right: at most it), as torch.searchsorted.
--- boundaries {nb} is shared by every value; {..., nb} pairs with values
--- {..., nv} row by row. With 1-based indices the count is the number of
--- the bucket [b_k, b_k+1) that holds the value (right), 0 below the first.
function T.searchsorted(boundaries, values, opts)
  return core.searchsorted(boundaries, values, right_of(opts, "searchsorted"))
end
--- bucketize(values, boundaries {nb} [, {right = true}]) = searchsorted(boundaries, values, opts).
function T.bucketize(values, boundaries, opts)
  if util_is_tensor(boundaries) and #boundaries:shape() ~= 1 then
    error("bucketize: the boundaries must be one-dimensional {nb}, got " .. shapestr(boundaries:shape()), 2)
  end
  return core.searchsorted(boundaries, values, right_of(opts, "bucketize"))
end
methods.bucketize = T.bucketize

----------------------------------------------------------------- copies
--- pad(pads [, value = 0]): pads = {{before, after}, ...} from dim 1 (later dims unpadded).
methods.pad = core.pad
--- crop(pads): the inverse of pad with the same pads.
methods.crop = core.crop
--- flip(dims): reverse the order along each of dims (an integer or an array).
methods.flip = core.flip
--- roll(shifts, dims): elements shifted cyclically along each dim by its
--- shift (an integer or arrays of equal length), as torch.roll.
--- roll_with(t, shifts, dims, cat): roll with the given cat (autograd's for values)
function T.roll_with(t, shifts, dims, cat)
  if type(shifts) == "number" then shifts, dims = { shifts }, { dims } end
  if type(shifts) ~= "table" or type(dims) ~= "table" or #shifts ~= #dims then
    error("roll: give a shift and a dim, or two arrays of equal length", 2)
  end
  local s, moved = t:shape(), false
  for i, k in ipairs(shifts) do
    local d = dims[i]
    if math.type(d) ~= "integer" or math.type(k) ~= "integer" then
      error("roll: shifts and dims must be integers", 2)
    end
    if d < 0 then d = #s + 1 + d end
    if d < 1 or d > #s then
      error(string.format("roll: dimension %d out of range for %d dimensions", dims[i], #s), 2)
    end
    k = k % s[d]
    if k ~= 0 then t, moved = cat({ t:narrow(d, s[d] - k + 1, k), t:narrow(d, 1, s[d] - k) }, d), true end
  end
  return moved and t or t * 1 -- a new tensor (a value: a new node) when nothing moves
end
function methods.roll(t, shifts, dims) return T.roll_with(t, shifts, dims, T.cat) end
--- triu([k = 0]) and tril([k = 0]): the upper (j - i >= k) or lower (j - i <= k)
--- triangle of the last two dims, zeros elsewhere.
methods.triu, methods.tril = core.triu, core.tril
--- scatter(dim, index, src): a copy with the elements at index along dim
--- replaced by src (gather's inverse; with a repeated index one source wins).
methods.scatter = core.scatter

----------------------------------------------------------------- small matrices
--- slogdet() -> log|det|, sign of square matrices {..., n, n}: tensors {...}
--- ({1} for one matrix). The log comes first (glow's order; torch returns
--- the sign first). LU with partial pivoting in double.
methods.slogdet = core.slogdet_batch
--- logdet(): log det, NaN where det < 0 and -inf where det = 0 (as torch).
function methods.logdet(t)
  local ld, sign = core.slogdet_batch(t)
  return T.where((-sign):relu(), 0 / 0, ld) -- the mask: 1 where sign < 0
end
--- inverse(): the inverses of square matrices {..., n, n}.
methods.inverse = core.inverse_batch
--- solve(A, B) -> X with A X = B: A {..., n, n}, B {..., n, k} or {..., n}.
T.solve = core.solve

----------------------------------------------------------------- retired names
-- The in-place methods' old names: each raises one error naming the
-- in-place method and the pure form (until a release note says otherwise).
local RETIRED = {
  add = { "a:add_(b [, alpha])", "a + b, glow.add(a, b) (a + b * alpha)" },
  mul = { "a:mul_(b)", "a * b, glow.mul(a, b)" },
  scale = { "a:scale_(s)", "a * s" },
  fill = { "a:fill_(v)", "glow.full(shape, v), glow.full_like(a, v)" },
  copy = { "a:copy_(src)", "src:clone()" },
  narrow_add = { "a:narrow_add_(dim, start, src)", "a:clone():narrow_add_(dim, start, src)" },
  index_add = { "a:index_add_(dim, idx, src)", "a:clone():index_add_(dim, idx, src)" },
  scatter_add = { "a:scatter_add_(dim, index, src)", "a:clone():scatter_add_(dim, index, src)" },
}
T.RETIRED = RETIRED
for name, forms in pairs(RETIRED) do
  methods[name] = function()
    error(string.format("glow.Tensor:%s is gone: the in-place method is %s; the pure form is %s", name, forms[1],
      forms[2]), 2)
  end
end

----------------------------------------------------------------- makers
function T.zeros(shape) return core.tensor(shape) end
function T.full(shape, v)
  if type(v) ~= "number" then error("full: the value must be a number, got " .. type(v), 2) end
  return core.tensor(shape):fill_(v)
end
function T.ones(shape) return core.tensor(shape):fill_(1) end
function T.zeros_like(t) return core.tensor(t:shape()) end
function T.ones_like(t) return core.tensor(t:shape()):fill_(1) end
function T.full_like(t, v) return T.full(t:shape(), v) end
--- eye(n [, m]): {n, m} with ones on the diagonal.
T.eye = core.eye

local function num(v, what, name)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then
    error(string.format("%s: %s must be a finite number, got %s", what, name, tostring(v)), 3)
  end
  return v
end

--- arange([start = 0,] stop [, step = 1]): start, start + step, ... up to
--- stop exclusive, as torch.arange.
function T.arange(start, stop, step)
  if stop == nil then start, stop = 0, start end
  step = step or 1
  num(start, "arange", "start")
  num(stop, "arange", "stop")
  num(step, "arange", "step")
  if step == 0 then error("arange: step must not be 0", 2) end
  local n = math.ceil((stop - start) / step)
  if n < 1 then error(string.format("arange: no values from %g to %g by %g", start, stop, step), 2) end
  return core.range(math.tointeger(n), start, step)
end

--- linspace(start, stop, n): n values evenly from start to stop, both included.
function T.linspace(start, stop, n)
  num(start, "linspace", "start")
  num(stop, "linspace", "stop")
  if math.type(n) ~= "integer" or n < 1 then error("linspace: n must be a positive integer, got " .. tostring(n), 2) end
  if n == 1 then return core.range(1, start, 0) end
  local t = core.range(n, start, (stop - start) / (n - 1))
  t:set(n, stop)
  return t
end

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
  for _, name in ipairs { "cumsum", "cumprod", "softmax", "log_softmax", "sort", "argsort", "pad", "crop", "flip",
    "roll", "triu", "tril", "bucketize" } do
    glow[name] = method(name)
  end
  for _, name in ipairs { "scatter", "slogdet", "logdet", "inverse", "solve" } do glow[name] = ag[name] end
  glow.searchsorted = function(boundaries, values, opts)
    return T.searchsorted(ag.value_of(boundaries), ag.value_of(values), opts)
  end
  glow.checkerboard, glow.one_hot = T.checkerboard, T.one_hot
  glow.zeros, glow.ones, glow.full = T.zeros, T.ones, T.full
  glow.zeros_like, glow.ones_like, glow.full_like = T.zeros_like, T.ones_like, T.full_like
  glow.eye, glow.arange, glow.linspace = T.eye, T.arange, T.linspace
end

return T
