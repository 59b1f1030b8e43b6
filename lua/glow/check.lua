--- glow.check: numerical checks for pieces written by hand or with
--- autograd (the specs use them, and so can a script that prototypes a new
--- piece): a brute-force log-determinant from a finite-difference Jacobian,
--- and gradients against finite differences. Meant for tiny inputs (a few
--- dozen to a few hundred elements): they loop over elements in Lua.
---
--- Both checks differentiate along one coordinate at a time with the same
--- ladder of steps (docs/PROTOTYPING.md, section 3):
---
---   * the first step is scaled to the coordinate, h0 = eps * max(1, |x_i|),
---     and then halved, h_k = h0 / 2^k; the step actually taken is the
---     stored float32 value minus x_i, not the step asked for;
---   * the rounding noise of the map's outputs is measured first, from the
---     residual of a parabola through seven points far closer together than
---     the steps (noise below);
---   * at each pair of steps the central difference is Richardson-
---     extrapolated (its h^2 term cancels), and so are the two one-sided
---     ones (their h term cancels);
---   * each estimate carries an error: the gaps to the other estimates
---     (later steps, the other side) beyond what their noise explains, plus
---     its own noise. On a smooth map the gap between the one-sided
---     estimates is O(h^3); a kink within the step on either side opens it,
---     and so do several kinks, whatever their sides;
---   * the estimate with the smallest error wins. Where both one-sided
---     estimates settle but disagree, a kink lies nearer to x than the
---     smallest step, and the derivative is the slope on one side of it;
---   * halving stops when every estimate is as accurate as asked or quiet
---     (every gap within its noise: a smaller step only adds noise), or
---     after opts.levels steps.
local core = require "glow.core"
local util = require "glow.util"

local check = {}

local U32 = 2 ^ -24 -- float32 unit roundoff: one rounding moves v by at most U32 * |v|
local U64 = 2 ^ -53

local abs, max, sqrt = math.abs, math.max, math.sqrt
local SQRT2 = sqrt(2)

------------------------------------------------------------ linear algebra in double

-- log|det A|, its sign and A^-1 for a d x d matrix given as rows (arrays of
-- doubles): Gauss-Jordan elimination with partial pivoting, in double.
local function logdet_inverse(A, d)
  local a, inv = {}, {}
  for r = 1, d do
    a[r], inv[r] = {}, {}
    for col = 1, d do
      a[r][col] = A[r][col]
      inv[r][col] = r == col and 1 or 0
    end
  end
  local ld, sign = 0, 1
  for col = 1, d do
    local p, pv = col, abs(a[col][col])
    for r = col + 1, d do
      if abs(a[r][col]) > pv then p, pv = r, abs(a[r][col]) end
    end
    if pv == 0 then return -math.huge, 0, nil end
    if p ~= col then
      a[p], a[col] = a[col], a[p]
      inv[p], inv[col] = inv[col], inv[p]
      sign = -sign
    end
    local rowa, rowi = a[col], inv[col]
    local piv = rowa[col]
    ld = ld + math.log(abs(piv))
    if piv < 0 then sign = -sign end
    for k = 1, d do
      rowa[k] = rowa[k] / piv
      rowi[k] = rowi[k] / piv
    end
    for r = 1, d do
      if r ~= col then
        local fct = a[r][col]
        if fct ~= 0 then
          local ra, ri = a[r], inv[r]
          for k = 1, d do
            ra[k] = ra[k] - fct * rowa[k]
            ri[k] = ri[k] - fct * rowi[k]
          end
        end
      end
    end
  end
  return ld, sign, inv
end

------------------------------------------------------------ the ladder of steps

-- The derivative of output j from the ladder's levels 1..n: value, error
-- estimate, what it is ("central", "forward", "backward", "kink": one side
-- of a kink nearer than the smallest step), the step it came from and
-- whether it is quiet: every gap within the noise, so its only error is
-- rounding noise, which a smaller step only makes larger; and its standard
-- error (its largest systematic gap plus its own noise, once each). sig
-- is the rounding noise of one evaluation of output j (a standard
-- deviation). g, when given, is the value the derivative is checked
-- against: at a kink nearer than the smallest step the side nearer to g is
-- taken (the derivative there is the slope of one side); without g, the
-- mean of the two sides with half their gap added to the error.
--
-- Each estimate is a weighted sum of evaluations, so its noise is sig times
-- the root sum of squares of the weights (taken as independent: a slight
-- over-estimate). An estimate is compared with its neighbours on the ladder
-- (the gaps below); a gap counts as systematic (truncation, kinks) by what
-- it exceeds the gap's own noise, and an estimate's error is twice its
-- largest systematic gap plus four times its own noise. Twice: the gap to
-- the next step sees only part of an error that keeps shrinking as the
-- step halves (about 15/16 of it for a smooth map, half of it where kinks
-- leave the differences converging like h). Four times: bounded noise,
-- such as the sawtooth of a sum rounded to a coarse grid, of 4 terms stays
-- within 2 sqrt(3) = 3.5 standard deviations. An estimate is quiet when
-- every gap is within twice its noise.
local OWN, SYS = 4, 2
local function rss(a, b) return sqrt(a * a + b * b) end
local function over(gap, noise) return max(0, abs(gap) - noise) end
local function within(gap, noise) return abs(gap) <= 2 * noise end

local function estimate(lv, y0, j, sig, g)
  local n = #lv
  local y = y0[j]
  local f, b, c, h = {}, {}, {}, {}
  local nf, nb, nc = {}, {}, {}
  for k = 1, n do
    local L = lv[k]
    local yp, ym = L.yp[j], L.ym[j]
    f[k] = (yp - y) / L.hp
    b[k] = (y - ym) / L.hm
    c[k] = (yp - ym) / (L.hp + L.hm)
    h[k] = (L.hp + L.hm) / 2
    nf[k], nb[k], nc[k] = sig * SQRT2 / L.hp, sig * SQRT2 / L.hm, sig * SQRT2 / (L.hp + L.hm)
  end
  if n == 1 then
    local nfb = rss(nf[1], nb[1])
    local sys = over(f[1] - b[1], nfb) / 2
    return c[1], SYS * sys + OWN * nc[1], "central", h[1], within(f[1] - b[1], nfb), sys + nc[1]
  end
  -- Richardson: the central difference's h^2 term and the one-sided ones'
  -- h term cancel between h_k and h_k+1 (ratios from the steps taken)
  local F, B, R, nF, nB, nR = {}, {}, {}, {}, {}, {}
  for k = 1, n - 1 do
    local r2 = (h[k] / h[k + 1]) ^ 2 - 1
    local rp, rm = lv[k].hp / lv[k + 1].hp - 1, lv[k].hm / lv[k + 1].hm - 1
    F[k] = f[k + 1] + (f[k + 1] - f[k]) / rp
    B[k] = b[k + 1] + (b[k + 1] - b[k]) / rm
    R[k] = c[k + 1] + (c[k + 1] - c[k]) / r2
    nF[k] = rss((1 + 1 / rp) * nf[k + 1], nf[k] / rp)
    nB[k] = rss((1 + 1 / rm) * nb[k + 1], nb[k] / rm)
    nR[k] = rss((1 + 1 / r2) * nc[k + 1], nc[k] / r2)
  end
  -- the central estimate at h_k, against: the gap between the one-sided
  -- estimates at h_k and at h_k / 2 (O(h^3) on a smooth map, a kink's share
  -- otherwise) and every later central estimate (an estimate is off by at
  -- least its gap to a better one). For one kink on one side these bound
  -- R's error: at a fraction t of the step it leaves R off by (1 - t) / 6
  -- of its slope change for t >= 1/2, where the one-sided gap is 1 - t, and
  -- by |1 - 7t/3| / 2 below, where the larger of the gap at h_k, |1 - 3t|,
  -- and the gap at h_k / 2 (t doubled) is more. Without a later step, the
  -- change of the central difference from h_k to h_k / 2 stands in (the
  -- truncation error of the latter, far more than R's own on a smooth map).
  -- Quiet only over three steps
  local best = { err = math.huge }
  for k = 1, n - 1 do
    local gaps = { F[k] - B[k], rss(nF[k], nB[k]) }
    if k < n - 1 then
      gaps[3], gaps[4] = F[k + 1] - B[k + 1], rss(nF[k + 1], nB[k + 1])
      for q = k + 1, n - 1 do
        gaps[#gaps + 1], gaps[#gaps + 2] = R[k] - R[q], rss(nR[k], nR[q])
      end
    else
      gaps[3], gaps[4] = c[k] - c[k + 1], rss(nc[k], nc[k + 1])
    end
    local sys, quiet = 0, k < n - 1
    for q = 1, #gaps, 2 do
      sys = max(sys, over(gaps[q], gaps[q + 1]))
      quiet = quiet and within(gaps[q], gaps[q + 1])
    end
    local e = SYS * sys + OWN * nR[k]
    if e < best.err then
      best = { v = R[k], err = e, kind = "central", h = h[k], quiet = quiet, se = sys + nR[k] }
    end
  end
  -- the one-sided estimates at h_k, against every later one on that side,
  -- at least two (h_k, h_k / 2 and h_k / 4 give the same value where no
  -- kink lies on that side). Two alone can agree by chance: with a kink at
  -- 0.4 h_k on that side, the estimates at h_k and h_k / 2 are both off by a
  -- fifth of the slope change
  local function side(E, nE, kind)
    local s = { err = math.huge }
    for k = 1, n - 3 do
      local sys, quiet = 0, true
      for q = k + 1, n - 1 do
        local gap, nz = E[k] - E[q], rss(nE[k], nE[q])
        sys, quiet = max(sys, over(gap, nz)), quiet and within(gap, nz)
      end
      local e = SYS * sys + OWN * nE[k]
      if e < s.err then s = { v = E[k], err = e, kind = kind, h = h[k], quiet = quiet, se = sys + nE[k] } end
    end
    return s
  end
  local bf, bb = side(F, nF, "forward"), side(B, nB, "backward")
  local one = bf.err <= bb.err and bf or bb
  if best.err <= one.err then return best.v, best.err, best.kind, best.h, best.quiet, best.se end
  local other = one == bf and bb or bf
  -- the other side, where it has not settled, holds a kink that a smaller
  -- step would resolve: this side is the derivative. Where both sides have
  -- settled (each error below a quarter of their gap), they disagree: a
  -- kink lies nearer than the smallest step
  if 4 * other.err >= abs(one.v - other.v) then return one.v, one.err, one.kind, one.h, one.quiet, one.se end
  if g then
    local s = abs(bf.v - g) <= abs(bb.v - g) and bf or bb
    return s.v, s.err, "kink", h[n], false, s.se
  end
  local half = abs(bf.v - bb.v) / 2
  return (bf.v + bb.v) / 2, half + max(bf.err, bb.err), "kink", h[n], false, half + max(bf.se, bb.se)
end

-- Run the ladder along one coordinate. eval(s) returns the outputs (an
-- array) at x + s e_i and the step actually taken. sig[j] is the rounding
-- noise of output j (noise below), target(j, v) the error that satisfies
-- output j, g (optional) the values checked against. An output is done
-- when its error is at most its target or its estimate is quiet; the
-- ladder stops when every output is done or after `levels` steps. Returns,
-- per output j, value, error, kind and step (arrays), the number of levels
-- taken, and the standard errors (an array).
local function ladder(eval, y0, h0, levels, sig, target, g)
  local lv = {}
  local function add()
    local s = h0 / 2 ^ #lv
    local yp, hp = eval(s)
    local ym, hm = eval(-s)
    hm = -hm
    assert(#yp == #y0 and #ym == #y0, "check: the map must give the same number of outputs at every point")
    assert(hp > 0 and hm > 0, "check: the step is lost in the rounding of x")
    lv[#lv + 1] = { hp = hp, hm = hm, yp = yp, ym = ym }
  end
  add()
  if levels > 1 then add() end
  local m = #y0
  local v, e, kind, h, se, done = {}, {}, {}, {}, {}, {}
  while true do
    local unsatisfied = false
    for j = 1, m do
      if not done[j] then
        local quiet
        v[j], e[j], kind[j], h[j], quiet, se[j] = estimate(lv, y0, j, sig[j], g and g[j])
        done[j] = quiet or e[j] <= target(j, v[j])
        if not done[j] then unsatisfied = true end
      end
    end
    if not unsatisfied or #lv >= levels then break end
    add()
  end
  return v, e, kind, h, #lv, se
end

-- The rounding noise of one evaluation of each output (a standard
-- deviation). Along each coordinate i in coords the map is evaluated at
-- x + s e_i for s = +-t, +-2t, +-3t (t = t(i)) and a parabola is fitted to
-- those six values and y(x); the residual is the noise. t is well below the
-- ladder's steps and the parabola takes the map's curvature, while every
-- rounding after x_i has changed (t is hundreds of units in the last place
-- of x_i). Float32 noise is often quantized: a sum rounded to a coarse grid
-- makes a staircase in s, whose residual against a smooth fit is a
-- sawtooth of standard deviation (its step) / sqrt(12); the fit over 6t
-- sees a good part of a tooth, where a second difference at one step can
-- come out nearly constant. Each coordinate leaves 4 degrees of freedom.
-- The noise differs between coordinates (one that feeds every output
-- changes every rounding), so the variances are pooled by their upper
-- quartile over the coordinates, divided by 1.35, the upper quartile of
-- chi^2_4 / 4: a kink within 3t of x along a quarter of them does not move
-- it. At least u |y_j|. Returns sig (per output), own (own[i][j], the
-- variance from coordinate i alone) and the evaluations spent.
local function noise(eval_at, coords, y0, t, u)
  local m = #y0
  local own, var = {}, {}
  for j = 1, m do var[j] = {} end
  for _, i in ipairs(coords) do
    local ss, ys = { 0 }, { y0 }
    for _, mult in ipairs { -3, -2, -1, 1, 2, 3 } do
      local y, st = eval_at(i, mult * t(i))
      ys[#ys + 1], ss[#ss + 1] = y, st
    end
    -- least squares for a + b s + c s^2 by the normal equations, s scaled
    -- to O(1) (a 3x3 solve per coordinate, shared by the outputs)
    local scale = abs(ss[#ss])
    local S = {}
    for q = 1, 7 do S[q] = ss[q] / scale end
    local M = { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } }
    for q = 1, 7 do
      local p = { 1, S[q], S[q] * S[q] }
      for r = 1, 3 do
        for c = 1, 3 do M[r][c] = M[r][c] + p[r] * p[c] end
      end
    end
    local _, _, Minv = logdet_inverse(M, 3)
    own[i] = {}
    for j = 1, m do
      local rhs = { 0, 0, 0 }
      for q = 1, 7 do
        local yq = ys[q][j]
        rhs[1], rhs[2], rhs[3] = rhs[1] + yq, rhs[2] + yq * S[q], rhs[3] + yq * S[q] * S[q]
      end
      local co = {}
      for r = 1, 3 do co[r] = Minv[r][1] * rhs[1] + Minv[r][2] * rhs[2] + Minv[r][3] * rhs[3] end
      local r2 = 0
      for q = 1, 7 do r2 = r2 + (ys[q][j] - co[1] - co[2] * S[q] - co[3] * S[q] * S[q]) ^ 2 end
      own[i][j] = r2 / 4
      var[j][#var[j] + 1] = r2 / 4
    end
  end
  local sig = {}
  for j = 1, m do
    local v = var[j]
    table.sort(v)
    local q = v[math.ceil(0.75 * #v)]
    sig[j] = max(sqrt(q / 1.35), u * abs(y0[j]))
  end
  return sig, own, 6 * #coords
end

------------------------------------------------------------ the checks

-- A loss's value as a Lua number: a number, or a tensor of one element.
local function scalar(l, what)
  if type(l) == "number" then return l end
  if util.is_tensor(l) and l:numel() == 1 then return l:get(1) end
  error(string.format("%s: the loss must return a number or a tensor of one element, got %s", what,
    util.is_tensor(l) and ("a tensor of shape " .. util.shapestr(l:shape())) or type(l)), 0)
end

local function values(t)
  if not util.is_tensor(t) then return t end
  return t:totable()
end

--- Brute-force log|det J| of f: R^d -> R^d at x, with an estimate of its
--- own error. J is assembled column by column with the ladder of steps
--- (the top of this file) and reduced in double by Gauss-Jordan elimination,
--- which also gives J^-1. To first order an error dJ of the entries moves
--- the log-determinant by tr(J^-1 dJ) = sum_ij J^-1_ji dJ_ij. Each entry has
--- a standard error s_ij, its largest systematic gap plus its own noise
--- (the ladder's error e_ij counts these 2 and 4 times over), and
---
---   err = 3 sqrt(sum (J^-1_ji s_ij)^2)   (three standard deviations of a sum
---                                         of independent errors: roundings,
---                                         and kinks of one coordinate each)
---   info.bound = sum |J^-1_ji| e_ij     (every error at its bound, all of
---                                         one sign).
---
--- Checked on the protocol spec's additive and affine couplings and flow
--- step against a second ladder with other steps (eps 1.37e-2), the
--- entries differ by about their e_ij at most (the largest 1.5 times the
--- root sum of squares of both, the 99th percentile 0.9 times), and the
--- log-determinants lie within a fifth of err of the pieces' own.
---
--- opts: eps (the first step relative to max(1, |x_i|): 1e-2, 1e-3 with
--- double), levels (the most steps per column: 8, so the smallest is
--- eps / 128; 30 with double), double (f takes and returns Lua arrays of
--- doubles instead of tensors, and x may be a tensor or an array: for maps
--- written in plain Lua, whose rounding noise is 2^-53 instead of 2^-24,
--- so the steps can shrink much further before noise dominates), detail
--- (info also holds jacobian, errors, kinds and noises: J's rows, their
--- e_ij, each entry's kind of estimate, each output's noise).
---
--- Returns log|det J|, err, info = {bound, sign (of det J), kinks (entries
--- taken at a kink nearer than the smallest step), levels (the most steps a
--- column took), evals (evaluations of f), noise (the largest rounding
--- noise of an output, as estimated)}.
function check.jacobian_logdet(f, x, opts)
  opts = opts or {}
  local double = opts.double
  local u = double and U64 or U32
  local eps = opts.eps or (double and 1e-3 or 1e-2)
  local levels = opts.levels or (double and 30 or 8)
  -- an entry is done when its error is at the scale where rounding noise
  -- and truncation balance for a Richardson-extrapolated central
  -- difference (u^(4/5)), times 8
  local function target(_, v) return 8 * u ^ 0.8 * (1 + abs(v)) end
  local xs = values(x)
  local d = #xs
  local eval_at
  if double then
    eval_at = function(i, s)
      local v = table.move(xs, 1, d, 1, {})
      v[i] = xs[i] + s
      return values(f(v)), v[i] - xs[i]
    end
  else
    eval_at = function(i, s)
      local v = x:clone()
      v:set(i, xs[i] + s)
      local st = v:get(i) - xs[i]
      return f(v):totable(), st
    end
  end
  local y0 = double and values(f(table.move(xs, 1, d, 1, {}))) or f(x:clone()):totable()
  assert(#y0 == d, "jacobian_logdet: the map must keep the dimension, got " .. #y0 .. " outputs for "
    .. d .. " inputs")
  local function h0(i) return eps * max(1, abs(xs[i])) end
  local sig, _, evals = noise(eval_at, check.probe(d, 16), y0, function(i) return h0(i) / 512 end, u)
  evals = evals + 1
  local J, E, S, K = {}, {}, {}, {}
  for r = 1, d do J[r], E[r], S[r], K[r] = {}, {}, {}, {} end
  local kinks, most = 0, 0
  for i = 1, d do
    local v, e, kind, _, n, se = ladder(function(s) return eval_at(i, s) end, y0, h0(i), levels, sig, target)
    evals = evals + 2 * n
    most = max(most, n)
    for r = 1, d do
      J[r][i], E[r][i], S[r][i], K[r][i] = v[r], e[r], se[r], kind[r]
      if kind[r] == "kink" then kinks = kinks + 1 end
    end
  end
  local ld, sign, inv = logdet_inverse(J, d)
  local ss, bound = 0, 0
  if inv then
    for r = 1, d do
      for c = 1, d do
        local w = abs(inv[c][r])
        ss, bound = ss + (w * S[r][c]) ^ 2, bound + w * E[r][c]
      end
    end
  else
    ss, bound = math.huge, math.huge
  end
  local big = 0
  for j = 1, d do big = max(big, sig[j]) end
  local info = { bound = bound, sign = sign, kinks = kinks, levels = most, evals = evals, noise = big }
  if opts.detail then info.jacobian, info.errors, info.kinds, info.noises = J, E, K, sig end
  return ld, 3 * sqrt(ss), info
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
function check.probe(n, max_n)
  max_n = max_n or 12
  local idx = {}
  if n <= max_n then
    for i = 1, n do idx[i] = i end
  else
    for k = 1, max_n do idx[k] = 1 + math.floor((k - 1) * (n - 1) / (max_n - 1)) end
  end
  return idx
end

--- Finite differences of loss() in element i of tensor t at one step:
--- the central one and the two one-sided ones.
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

--- The derivative of loss() in element i of tensor t by the ladder of steps
--- (the top of this file): value, error estimate, kind ("central",
--- "forward", "backward" or "kink"), step, levels taken and evaluations of
--- loss() spent. loss() returns a number or a tensor of one element; t is
--- restored after every evaluation, also when loss() fails. opts: eps (the
--- first step relative to max(1, |t_i|): 1e-2), levels (the most steps: 8,
--- so the smallest is eps / 128), target (the error that ends the halving
--- early: 0), g (the value it is checked against, which picks the side of a
--- kink nearer than the smallest step), noise (the rounding noise of
--- loss(), estimated here when not given), l0 (loss() at t, when known).
function check.derivative(loss, t, i, opts)
  opts = opts or {}
  local x = t:get(i)
  local function eval(s)
    t:set(i, x + s)
    local st = t:get(i) - x
    local ok, l = pcall(loss)
    t:set(i, x)
    if not ok then error(l, 0) end
    return { scalar(l, "derivative") }, st
  end
  local l0 = opts.l0 or scalar(loss(), "derivative")
  local h0 = (opts.eps or 1e-2) * max(1, abs(x))
  local sig, spent = opts.noise, 0
  if not sig then
    local s, _
    s, _, spent = noise(function(_, st) return eval(st) end, { i }, { l0 }, function() return h0 / 512 end, U32)
    sig = s[1]
  end
  local target = opts.target or 0
  local v, e, kind, h, n = ladder(eval, { l0 }, h0, opts.levels or 8, { sig },
    function() return target end, opts.g and { opts.g })
  return v[1], e[1], kind[1], h[1], n, spent + 2 * n
end

--- Compare the analytic gradient tensor g of loss() in t at probed
--- elements with finite differences (check.derivative): element i passes
--- when
---
---   |fd_i - g_i| <= atol + rtol * |g_i| + err_i,
---
--- err_i the finite difference's own error estimate (rounding noise of the
--- loss over the step, truncation, kinks), so that the check claims no more
--- than the finite differences resolve; info.unresolved counts the elements
--- where err_i exceeds atol + rtol |g_i|. The loss's rounding noise is
--- measured at every probed element; each takes its own or the upper
--- quartile over all, whichever is more (it differs between elements: one
--- that feeds every output changes every rounding). Defaults: rtol = 1e-2
--- (opts.tol is the same), atol = 1e-7 * max(1, |loss|) (about
--- a float32 rounding of the loss per unit of the input: it matters only
--- where g_i is near zero). The error reported for an element is relative,
--- |fd_i - g_i| / (|g_i| + (atol + err_i) / rtol), so it passes exactly when
--- that is at most rtol. Raises when the worst exceeds rtol (unless
--- opts.quiet); returns it, where it was (a sentence) and info = {checked,
--- evals, kinks (elements taken at a kink nearer than the smallest step),
--- noise (of the loss), unresolved}. opts: rtol, atol, eps (the first step
--- relative to max(1, |t_i|): 1e-2), levels (the most steps: 8, so the
--- smallest is eps / 128), max (the number of elements probed: 12), what (a
--- name for the message), quiet.
function check.gradcheck(loss, t, g, opts)
  opts = opts or {}
  local rtol = opts.rtol or opts.tol or 1e-2
  local eps = opts.eps or 1e-2
  if g:numel() ~= t:numel() then
    error(string.format("%s: the gradient has shape %s, the tensor %s", opts.what or "gradcheck",
      util.shapestr(g:shape()), util.shapestr(t:shape())), 0)
  end
  local l0 = scalar(loss(), "gradcheck")
  local atol = opts.atol or 1e-7 * max(1, abs(l0))
  local probe = check.probe(t:numel(), opts.max)
  local function eval_at(i, s)
    local x = t:get(i)
    t:set(i, x + s)
    local st = t:get(i) - x
    local ok, l = pcall(loss)
    t:set(i, x)
    if not ok then error(l, 0) end
    return { scalar(l, "gradcheck") }, st
  end
  -- the noise at every probed element, and the upper quartile over them:
  -- each element's own, where it is more
  local sig, own, spent = noise(eval_at, probe, { l0 }, function(i) return eps * max(1, abs(t:get(i))) / 512 end,
    U32)
  local info = { checked = 0, evals = 1 + spent, kinks = 0, noise = sig[1], unresolved = 0 }
  local worst, where = 0, nil
  for _, i in ipairs(probe) do
    local ana = g:get(i)
    local allowed = atol + rtol * abs(ana)
    local fd, e, kind, h, _, n = check.derivative(loss, t, i, { eps = eps, levels = opts.levels or 8,
      target = allowed / 10, g = ana, noise = sqrt(max(sig[1] ^ 2, own[i][1])), l0 = l0 })
    info.checked, info.evals = info.checked + 1, info.evals + n
    if kind == "kink" then info.kinks = info.kinks + 1 end
    if e > allowed then info.unresolved = info.unresolved + 1 end
    local d = abs(fd - ana)
    local err
    if rtol > 0 then
      err = d / (abs(ana) + (atol + e) / rtol)
    else
      err = d / (atol + e)
    end
    if err ~= err then err = math.huge end
    if err > worst or not where then
      worst, where = err, string.format("element %d: fd %.7g +- %.2g (%s, step %.2g), backward %.7g, "
        .. "allowed %.3g = %.2g + %.2g x |backward| + %.2g", i, fd, e, kind, h, ana, allowed + e, atol, rtol, e)
    end
  end
  local limit = rtol > 0 and rtol or 1
  if worst > limit and not opts.quiet then
    error(string.format("%s: gradient mismatch %g > %g at %s", opts.what or "gradient", worst, limit,
      tostring(where)), 0)
  end
  return worst, where, info
end

return check
