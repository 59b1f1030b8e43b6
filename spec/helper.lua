--- Shared spec helpers: package paths to the build tree, a registered
--- tensor assertion that reports the largest difference, finite-difference
--- gradient checks and a brute-force Jacobian log-determinant.
local root = debug.getinfo(1, "S").source:match("^@(.*)spec/helper%.lua$") or "./"
if root == "" then root = "./" end
local build = os.getenv("GLOW_BUILD") or (root .. "build")
package.path = root .. "lua/?.lua;" .. root .. "lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local say = require "say"
local assert = require "luassert"
local glow = require "glow"

local H = { glow = glow, root = root }

--- Tolerances.
---
--- Tensors are float32: EPS = 2^-23 (about 1.19e-7) is the distance from 1
--- to the next float, and one rounding moves a value by at most EPS/2 of
--- itself. A value that two codes compute in another order (a fused kernel
--- against a naive one, module by module against fused, OpenBLAS's kernel
--- for one CPU against another's, one thread against two) differs by the
--- roundings of the sums behind it: for a sum of n terms, about
--- sqrt(n) * EPS times the size of its terms when the roundings fall at
--- random, n * EPS at worst. So a comparison names the sums a value went
--- through: H.rtol(n1, n2, ...) = 4 * EPS * (sqrt(n1) + sqrt(n2) + ...),
--- one n per chained layer (each adds its own error; the 4 covers two codes
--- rounding independently, with a factor 2 to spare), and 4 * EPS for a
--- value with no sum behind it.
---
--- The error of a sum scales with the size of its terms, not with the sum
--- itself, which cancellation may bring near zero. So tensors are compared
--- norm-wise: the largest difference against rtol times the largest
--- |expected| (Higham's norm-wise relative error), plus an absolute atol
--- (default 0) where the expected values may all be near zero. Scalars are
--- compared element-wise: |actual - expected| <= atol + rtol * |expected|.
--- An absolute tolerance alone (busted's is_near) stays only where the
--- values are known to be O(1); exact equality (tensor_equal) only where
--- the code promises bitwise results (a copy, a deterministic generator,
--- the same kernel on the same data with the same threads), and each such
--- spec says which.
H.EPS = 2 ^ -23

function H.rtol(...)
  local n = select("#", ...)
  if n == 0 then return 4 * H.EPS end
  local s = 0
  for i = 1, n do s = s + math.sqrt((select(i, ...))) end
  return 4 * H.EPS * s
end

--- register assertion `name` with its failure messages
local function register(name, fn, positive, negative)
  say:set("assertion." .. name .. ".positive", positive)
  say:set("assertion." .. name .. ".negative", negative)
  assert:register("assertion", name, fn, "assertion." .. name .. ".positive", "assertion." .. name .. ".negative")
end

--- assert.tensor_near(expected, actual, rtol, atol): the largest |a - e| is at
--- most atol + rtol * max |e|.
local function tensor_near(_, args)
  local e, a, rtol, atol = args[1], args[2], args[3], args[4] or 0
  assert(type(rtol) == "number" and rtol >= 0, "tensor_near: give rtol (see spec/helper.lua)")
  local scale = e:max_abs()
  local allowed = atol + rtol * scale
  local d, at = e:max_abs_diff(a)
  local msg = string.format("%g at element %d, allowed %g = %g + %g x max |expected| %g "
    .. "(expected %.9g, got %.9g)", d, at, allowed, atol, rtol, scale, e:get(at), a:get(at))
  args[1], args[2], args[3], args[4], args.n = msg, nil, nil, nil, 1
  return d <= allowed
end
register("tensor_near", tensor_near, "Tensors differ: largest difference %s",
  "Tensors agree within the tolerance: %s")

--- assert.tensor_near_terms(expected, actual, rtol, mag): element-wise,
--- |a_i - e_i| <= rtol * mag_i, where mag holds the sums of the absolute
--- values of the terms behind each value (the same computation on |inputs|):
--- the component-wise bound, for a sum that cancels to near zero, where
--- nothing else in the tensor gives its scale (a bias gradient with one
--- channel, say).
local function tensor_near_terms(_, args)
  local e, a, rtol, mag = args[1], args[2], args[3], args[4]
  local et, at, mt = e:totable(), a:totable(), mag:totable()
  local worst, where = -1, 1
  for i = 1, #et do
    local r = math.abs(at[i] - et[i]) / (rtol * mt[i])
    if r ~= r then r = math.huge end
    if mt[i] == 0 then r = at[i] == et[i] and 0 or math.huge end
    if r > worst then worst, where = r, i end
  end
  args[1], args[2], args[3], args[4], args.n = string.format("%g x the allowed at element %d: "
    .. "expected %.9g, got %.9g, allowed %g = %g x %g (the sum of the terms' sizes)", worst, where,
    et[where], at[where], rtol * mt[where], rtol, mt[where]), nil, nil, nil, 1
  return worst <= 1
end
register("tensor_near_terms", tensor_near_terms, "Tensors differ: %s",
  "Tensors agree within the tolerance: %s")

--- |t|, element-wise (small tensors: for the component-wise bounds above)
function H.abs(t)
  local v = t:totable()
  for i = 1, #v do v[i] = math.abs(v[i]) end
  return glow.Tensor.from(v, t:shape())
end

--- assert.tensor_equal(expected, actual): bitwise, for the specs where the
--- code promises it (each says why).
local function tensor_equal(_, args)
  local e, a = args[1], args[2]
  local d, at = e:max_abs_diff(a)
  args[1], args[2], args.n = string.format("%g at element %d (expected %.9g, got %.9g)", d, at,
    e:get(at), a:get(at)), nil, 1
  return d == 0
end
register("tensor_equal", tensor_equal, "Tensors are not bitwise equal: largest difference %s",
  "Tensors are bitwise equal: %s")

--- assert.close(expected, actual, rtol, atol [, what]): |a - e| <= atol + rtol * |e|;
--- what, if given, heads the failure message.
local function close(_, args)
  local e, a, rtol, atol, what = args[1], args[2], args[3], args[4] or 0, args[5]
  assert(type(rtol) == "number" and rtol >= 0, "close: give rtol (see spec/helper.lua)")
  local allowed = atol + rtol * math.abs(e)
  local d = math.abs(a - e)
  args[1], args[2], args[3], args[4], args[5], args.n = string.format("%sexpected %.9g, got %.9g: "
    .. "difference %g, allowed %g = %g + %g x |expected|", what and (what .. ": ") or "", e, a, d, allowed,
    atol, rtol), nil, nil, nil, nil, 1
  return d <= allowed
end
register("close", close, "Numbers differ: %s",
  "Numbers agree within the tolerance: %s")

--- The whole content of a file, or nil when it cannot be opened.
function H.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

--- A fresh empty directory under the system temp dir.
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  return p
end

--- Remove a directory made by H.tmpdir.
function H.rmdir(p) os.execute("rm -rf '" .. p .. "'") end

--- Write bytes to a file.
function H.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- Input-like data in [-0.5, 0.5).
function H.data(shape, seed)
  return glow.rand(shape, seed):add(glow.Tensor(shape):fill(-0.5))
end

--- Add N(0, std^2) noise to every parameter so that nothing is at its
--- (often degenerate) initial value.
function H.perturb(m, std, seed)
  for i, p in ipairs(m:parameters()) do
    p.value:add(glow.randn(p.value:shape(), (seed or 1) * 1000 + i, std or 0.1))
  end
end

local function fd_column(f, x, i, eps)
  local xp, xm = x:clone(), x:clone()
  xp:set(i, x:get(i) + eps)
  xm:set(i, x:get(i) - eps)
  local yp, ym = f(xp):totable(), f(xm):totable()
  local col = {}
  for j = 1, #yp do col[j] = (yp[j] - ym[j]) / (2 * eps) end
  return col
end

--- Brute-force log|det J| of f: R^d -> R^d at x by central differences, J
--- assembled as a matrix and reduced by an LU in double. Each column is
--- taken with steps 1e-2 and 1e-3: the larger step has less float32 rounding
--- noise and is used where the two agree; where they disagree a ReLU kink
--- lies within 1e-2 of x along that coordinate, and a smaller step is used.
function H.jacobian_logdet(f, x)
  local d = x:numel()
  local flat = {}
  for i = 1, d do
    local col = fd_column(f, x, i, 1e-2)
    assert(#col == d, "jacobian: the map must keep the dimension")
    local function agree(a, b, tol)
      local diff, big = 0, 0
      for j = 1, d do
        diff = math.max(diff, math.abs(a[j] - b[j]))
        big = math.max(big, math.abs(a[j]))
      end
      return diff <= tol * (1 + big)
    end
    local fine = fd_column(f, x, i, 1e-3)
    if not agree(col, fine, 1e-3) then
      -- a kink within 1e-2; if the 1e-3 column disagrees with a 1e-4 one
      -- too, the kink is within 1e-3 and the 1e-4 column is the clean one
      local finer = fd_column(f, x, i, 1e-4)
      col = agree(fine, finer, 1e-2) and fine or finer
    end
    for r = 1, d do flat[(r - 1) * d + i] = col[r] end
  end
  local ld = glow.core.slogdet(glow.Tensor.from(flat, { d, d }))
  return ld
end

--- Flatten a list of tensors into one tensor (for Jacobians of multi-output maps).
function H.cat(list)
  local flat = {}
  for _, t in ipairs(list) do
    for _, v in ipairs(t:totable()) do flat[#flat + 1] = v end
  end
  return glow.Tensor.from(flat, { #flat })
end

--- Indices to probe in a tensor of n elements: all when few, else a spread.
function H.probe(n, max)
  max = max or 12
  local idx = {}
  if n <= max then
    for i = 1, n do idx[i] = i end
  else
    for k = 1, max do idx[k] = 1 + math.floor((k - 1) * (n - 1) / (max - 1)) end
  end
  return idx
end

--- Finite differences of loss() in element i of tensor t: the central one
--- and the two one-sided ones.
function H.fd(loss, t, i, eps)
  local v = t:get(i)
  local l0 = loss()
  t:set(i, v + eps)
  local lp = loss()
  t:set(i, v - eps)
  local lm = loss()
  t:set(i, v)
  return (lp - lm) / (2 * eps), (lp - l0) / eps, (l0 - lm) / eps
end

--- Compare analytic gradient tensor g of loss() in t at probed elements:
--- |fd - g| <= tol * max(1, |g|). The networks hold ReLUs, so an element may
--- sit within eps of a kink, where the central difference averages two
--- slopes; there the analytic value must match one of the one-sided
--- differences instead (the gradient is the slope on one side of the kink).
--- Returns the worst relative error.
function H.gradcheck(loss, t, g, opts)
  opts = opts or {}
  local eps, tol = opts.eps or 1e-3, opts.tol or 1e-2
  local worst, where = 0, nil
  for _, i in ipairs(H.probe(t:numel(), opts.max)) do
    local c, f, b = H.fd(loss, t, i, eps)
    local ana = g:get(i)
    local scale = math.max(1, math.abs(ana))
    local err = math.abs(c - ana) / scale
    if err > tol and math.abs(f - b) > tol * scale then -- a kink within eps
      -- one-sided differences at eps / 2 and their Richardson extrapolation
      -- (2 f(h/2) - f(h)), which cancels the first-order curvature term on
      -- the side of x that holds no kink
      local _, f2, b2 = H.fd(loss, t, i, eps / 2)
      for _, v in ipairs { f, b, f2, b2, 2 * f2 - f, 2 * b2 - b } do
        err = math.min(err, math.abs(v - ana) / scale)
      end
    end
    if err > worst then
      worst, where = err, string.format("element %d: fd %g (one-sided %g, %g), backward %g", i, c, f, b, ana)
    end
  end
  assert(worst <= tol, string.format("%s: gradient mismatch %g > %g at %s", opts.what or "gradient",
    worst, tol, tostring(where)))
  return worst
end

--- The full check of a flow piece: L = <w, y> + a * sum(logdet). Checks dx
--- from backward(y, w, a) against finite differences in x, and every
--- parameter's grad, and that backward rebuilds x.
function H.check_piece(piece, x, opts)
  opts = opts or {}
  local y0 = piece:forward(x)
  local w = glow.randn(y0:shape(), 99, 1)
  local a = 0.7
  local function loss()
    local y, ld = piece:forward(x)
    return y:dot(w) + a * ld:sum()
  end
  piece:zero_grad()
  local xr, dx = piece:backward(y0, w, a)
  -- the input rebuilt by the inverse, relative to the input's size; the
  -- pieces here are tiny (sums of at most a few dozen products), so 1e-4
  -- leaves a wide margin over the rounding and still catches a wrong inverse
  assert.tensor_near(x, xr, opts.inv_tol or 1e-4)
  H.gradcheck(loss, x, dx, { what = (opts.what or "piece") .. " dx", tol = opts.tol, eps = opts.eps })
  for _, p in ipairs(piece:parameters()) do
    H.gradcheck(loss, p.value, p.grad, { what = (opts.what or "piece") .. " " .. p.name,
      tol = opts.tol, eps = opts.eps })
  end
end

return H
