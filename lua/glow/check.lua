--- glow.check: numerical checks for pieces written by hand or with
--- autograd (the specs use them, and so can a script that prototypes a new
--- piece): a brute-force log-determinant from a finite-difference Jacobian,
--- and gradients against central finite differences. Meant for tiny inputs
--- (a few dozen elements): they loop over elements in Lua.
local core = require "glow.core"

local check = {}

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
function check.jacobian_logdet(f, x)
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
  local ld = core.slogdet(core.from(flat, { d, d }))
  return ld
end

--- Flatten a list of tensors into one tensor (for Jacobians of multi-output maps).
function check.cat(list)
  local flat = {}
  for _, t in ipairs(list) do
    for _, v in ipairs(t:totable()) do flat[#flat + 1] = v end
  end
  return core.from(flat, { #flat })
end

--- Indices to probe in a tensor of n elements: all when few, else a spread.
function check.probe(n, max)
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
function check.fd(loss, t, i, eps)
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
--- Raises when the worst relative error exceeds tol (unless opts.quiet);
--- returns it and where it was. opts: eps (1e-3), tol (1e-2), max (the
--- number of elements probed, 12), what (a name for the message).
function check.gradcheck(loss, t, g, opts)
  opts = opts or {}
  local eps, tol = opts.eps or 1e-3, opts.tol or 1e-2
  local worst, where = 0, nil
  for _, i in ipairs(check.probe(t:numel(), opts.max)) do
    local c, f, b = check.fd(loss, t, i, eps)
    local ana = g:get(i)
    local scale = math.max(1, math.abs(ana))
    local err = math.abs(c - ana) / scale
    if err > tol and math.abs(f - b) > tol * scale then -- a kink within eps
      -- one-sided differences at eps / 2 and their Richardson extrapolation
      -- (2 f(h/2) - f(h)), which cancels the first-order curvature term on
      -- the side of x that holds no kink
      local _, f2, b2 = check.fd(loss, t, i, eps / 2)
      for _, v in ipairs { f, b, f2, b2, 2 * f2 - f, 2 * b2 - b } do
        err = math.min(err, math.abs(v - ana) / scale)
      end
    end
    if err > worst then
      worst, where = err, string.format("element %d: fd %g (one-sided %g, %g), backward %g", i, c, f, b, ana)
    end
  end
  if worst > tol and not opts.quiet then
    error(string.format("%s: gradient mismatch %g > %g at %s", opts.what or "gradient", worst, tol, tostring(where)), 0)
  end
  return worst, where
end

return check
