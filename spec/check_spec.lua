local H = require "spec.helper"
local glow = H.glow
local core = require "glow.core"
local ag = glow.autograd
local check = glow.check

-- The check of the checks: glow.check.gradcheck and jacobian_logdet shown
-- catching planted errors in piecewise maps whose kinks sit near the point
-- of evaluation, and passing on the correct ones.

---------------------------------------------------------------- the maps

-- A monotone piecewise-linear map of R^d, y = PL(W x): W a fixed
-- well-conditioned matrix, and PL elementwise, PL(u) = u + sum_k c_k
-- relu(u - t_k), with four knots per coordinate placed around the point of
-- evaluation (offsets between 1.5e-3 and 6e-3 of u_j, so that a step of
-- 1e-2 in any x_i crosses several of them). Returns the map on tensors
-- {1, d}, the same map in plain Lua on arrays of doubles, the point x and
-- the exact log|det J| at x: log|det W| + sum_j log PL'(u_j).
local D = 6
local OFFSETS = { { -6e-3, -2.5e-3, 1.5e-3, 4e-3 }, { -4e-3, -1.5e-3, 2.5e-3, 5e-3 },
  { -5e-3, -2e-3, 2e-3, 6e-3 } }
local SLOPES = { 0.6, -0.4, 0.8, -0.5 } -- PL' goes 1, 1.6, 1.2, 2.0, 1.5 across the knots

local function piecewise()
  local x = glow.Tensor.from({ 0.31, -0.17, 0.42, 0.05, -0.38, 0.23 }, { 1, D })
  local w = {}
  for r = 1, D do
    for c = 1, D do w[(r - 1) * D + c] = (r == c and 1.5 or 0) + 0.3 * math.sin(7 * r + 3 * c) end
  end
  local Wt = glow.Tensor.from(w, { D, D }) -- u = x Wt, so J = diag(PL'(u)) Wt^T
  local u = glow.matmul(x, Wt):totable()
  local knots, slope = {}, {}
  for k = 1, 4 do
    local t = {}
    for j = 1, D do t[j] = u[j] + OFFSETS[(j - 1) % 3 + 1][k] end
    knots[k] = glow.Tensor.from(t, { 1, D })
  end
  local kt = {}
  for k = 1, 4 do kt[k] = knots[k]:totable() end -- the knots as stored (float32)
  local ld = core.slogdet(Wt)
  for j = 1, D do
    slope[j] = 1
    for k = 1, 4 do if u[j] > kt[k][j] then slope[j] = slope[j] + SLOPES[k] end end
    ld = ld + math.log(slope[j])
  end
  local function f(v)
    local uu = glow.matmul(v, Wt)
    local y = uu
    for k = 1, 4 do y = y + (uu - knots[k]):relu() * SLOPES[k] end
    return y
  end
  local wt = Wt:totable()
  local function f_double(v)
    local y = {}
    for j = 1, D do
      local s = 0
      for i = 1, D do s = s + v[i] * wt[(i - 1) * D + j] end
      y[j] = s
      for k = 1, 4 do y[j] = y[j] + SLOPES[k] * math.max(0, s - kt[k][j]) end
    end
    return y
  end
  return f, f_double, x, ld, slope, wt
end

-- A network of one hidden layer of four ReLUs on x in R^3 whose units 1
-- and 2 switch on at x_1 + 3e-4 and x_1 - 4e-4: two kinks inside one step
-- of 1e-3 (the old default), one on each side. Returns the loss on the
-- tensor x {1, 3}, x and the gradient (autograd, correct).
local function two_kinks()
  local x = glow.Tensor.from({ 0.3, -0.2, 0.5 }, { 1, 3 })
  local w1 = { 0.9, -0.7, 0.4, 0.2, 0.3, 0.5, -0.6, 0.8, -0.4, 0.2, 0.7, -0.5 }
  local W1 = glow.Tensor.from(w1, { 3, 4 })
  local W2 = glow.Tensor.from({ 0.2, 0.15, -0.6, 0.5 }, { 4, 1 })
  local xv, kink, b = x:totable(), { 3e-4, -4e-4, -0.2, -0.3 }, {}
  for j = 1, 4 do
    local pre = 0
    for i = 1, 3 do pre = pre + xv[i] * w1[(i - 1) * 4 + j] end
    b[j] = -pre - w1[j] * kink[j] -- unit j's pre-activation is w1[1][j] * (x_1 - x_1(0) - kink[j])
  end
  local B = glow.Tensor.from(b, { 1, 4 })
  local function net(v) return ag.matmul((ag.matmul(v, W1) + B):relu(), W2):sum({ 1, 2 }) end
  local _, g = ag.grad(net, x)
  return function() return net(x) end, x, g[1]
end

---------------------------------------------------------------- gradcheck

describe("glow.check.gradcheck", function()
  it("passes a correct ReLU network's gradient with two kinks inside one step", function()
    local loss, x, g = two_kinks()
    -- the gradient is the slope of units 3 and 4 alone: 0.4 * -0.6 + 0.2 * 0.5
    assert.close(-0.14, g:get(1), H.rtol(4))
    -- The previous check, at its default step 1e-3, reported a relative
    -- error of 0.018 here (> its 1e-2): the central difference and both
    -- one-sided ones at 1e-3 and 5e-4 each crossed a kink. The ladder
    -- halves the step until no kink lies within it on either side
    for _, eps in ipairs { 1e-3, 1e-2 } do
      local worst, where, info = check.gradcheck(loss, x, g, { eps = eps, rtol = 1e-2, what = "two kinks" })
      assert.is_true(worst <= 1e-2, where)
      assert.equal(3, info.checked)
      assert.equal(0, info.unresolved, where)
    end
    -- and the derivative it found is the slope at x, not an average over a
    -- kink, to within its error estimate: float32 rounding of a loss whose
    -- terms are about 0.5, over steps below the kinks' 3e-4 (1.1e-3 under
    -- OpenBLAS's Prescott kernel, 0.6e-3 under Haswell's)
    local fd, err, kind = check.derivative(loss, x, 1, { eps = 1e-3 })
    assert.equal("central", kind)
    assert.is_true(math.abs(fd - -0.14) <= err and err < 2e-3, fd .. " +- " .. err)
  end)

  it("catches a 1% error in one element of a piecewise-linear map's gradient, knots near x", function()
    local f, _, x, _, slope, wt = piecewise()
    local w = glow.randn({ 1, D }, 3, 1)
    local function loss() return f(x):dot(w) end
    -- dL/dx_i = sum_j Wt[i][j] w_j PL'(u_j), in double
    local wv, g = w:totable(), {}
    for i = 1, D do
      g[i] = 0
      for j = 1, D do g[i] = g[i] + wt[(i - 1) * D + j] * wv[j] * slope[j] end
    end
    local good = glow.Tensor.from(g, { 1, D })
    local worst, where, info = check.gradcheck(loss, x, good, { rtol = 1e-3 })
    -- between the knots the map is linear: what is left is float32
    -- rounding over steps short enough to miss every knot, below 1e-3 of
    -- the gradient
    assert.equal(D, info.checked)
    assert.is_true(worst < 1e-3, where)
    local bad = {}
    for i = 1, D do bad[i] = g[i] end
    bad[4] = bad[4] * 1.01
    local worst_bad, where_bad = check.gradcheck(loss, x, glow.Tensor.from(bad, { 1, D }),
      { rtol = 1e-3, quiet = true })
    -- the planted error, 1e-2 of the element, is over twice what the check
    -- allows it (1e-3 of it plus the finite difference's own error). The
    -- previous check, 1e-3 x max(1, |g|) against the best of its
    -- differences at 1e-3 (all across knots), reported 4.8e-4 and passed it
    assert.is_true(worst_bad > 2e-3, where_bad)
    assert.matches("^element 4:", where_bad)
    assert.matches("gradient mismatch", select(2, pcall(check.gradcheck, loss, x,
      glow.Tensor.from(bad, { 1, D }), { rtol = 1e-3, what = "planted" })), 1, true)
  end)

  it("holds an element near zero to atol + rtol |g|, not to an absolute rtol", function()
    local x = glow.Tensor.from({ 0.3, -0.2 }, { 2 })
    local function loss()
      local v = x:totable()
      return 0.004 * v[1] + v[2] * v[2]
    end
    assert.is_true(check.gradcheck(loss, x, glow.Tensor.from({ 0.004, -0.4 }, { 2 })) < 1e-3)
    -- 0.008 for 0.004: the old tolerance, 1e-2 x max(1, |g|), let it pass
    local worst, where = check.gradcheck(loss, x, glow.Tensor.from({ 0.008, -0.4 }, { 2 }), { quiet = true })
    assert.is_true(worst > 1e-2, where)
    assert.matches("^element 1:", where)
  end)

  it("restores the tensor it perturbs, also when the loss fails", function()
    local x = glow.Tensor.from({ 0.3, -0.2 }, { 2 })
    local calls = 0
    local function loss()
      calls = calls + 1
      if calls > 3 then error("boom", 0) end
      return x:sum()
    end
    assert.equal("boom", select(2, pcall(check.gradcheck, loss, x, glow.Tensor.from({ 1, 1 }, { 2 }))))
    assert.same(glow.Tensor.from({ 0.3, -0.2 }, { 2 }):totable(), x:totable())
  end)
end)

---------------------------------------------------------------- jacobian_logdet

describe("glow.check.jacobian_logdet", function()
  it("resolves a piecewise-linear map with knots near x, where a fixed step of 1e-2 cannot", function()
    local f, _, x, ld = piecewise()
    local brute, err, info = check.jacobian_logdet(f, x)
    assert.close(ld, brute, 0, err, "brute force against the exact log-determinant")
    -- well below the 0.5% the planted error below needs
    assert.is_true(err < 1e-3 * math.abs(ld), "err " .. err)
    assert.is_true(info.levels > 3) -- it had to halve the step below the knots
    -- one central difference at 1e-2 (the old default step) straddles the
    -- knots: off by far more than 0.5%
    local fixed = check.jacobian_logdet(f, x, { levels = 1 })
    assert.is_true(math.abs(fixed - ld) > 0.005 * math.abs(ld), "fixed step " .. fixed .. " exact " .. ld)
  end)

  it("catches a 0.5% log-determinant error of a piecewise-linear piece and passes the correct one", function()
    local f, _, x, ld = piecewise()
    -- the piece as the specs see one: forward gives y and a log-determinant
    for _, case in ipairs { { "correct", 1, true }, { "0.5% high", 1.005, false }, { "0.5% low", 0.995, false } } do
      local reported = ld * case[2]
      local brute, err = check.jacobian_logdet(f, x)
      local ok = math.abs(brute - reported) <= err + H.rtol(D) * math.abs(reported)
      assert.equal(case[3], ok, string.format("%s: reported %.7g, brute force %.7g +- %.2g", case[1], reported,
        brute, err))
    end
  end)

  it("takes the map in double precision on Lua arrays (opts.double)", function()
    local _, fd, x, ld = piecewise()
    local brute, err, info = check.jacobian_logdet(fd, x:totable(), { double = true })
    -- the knots lie 1e-3 and more from x: the ladder from 1e-3 in double
    -- ends below them with only rounding left, 2^-53 relative
    assert.close(ld, brute, 0, 1e-9)
    assert.is_true(err < 1e-8, "err " .. err)
    assert.equal(1, info.sign)
  end)

  it("passes a smooth map and a permutation", function()
    local x = glow.Tensor.from({ 0.2, -0.4, 0.1, 0.7 }, { 4 })
    local function smooth(v) return v:tanh() * 2 + v * 0.5 end
    local exact = 0
    for _, v in ipairs(x:totable()) do
      local th = (math.exp(2 * v) - 1) / (math.exp(2 * v) + 1)
      exact = exact + math.log(2 * (1 - th * th) + 0.5)
    end
    local brute, err = check.jacobian_logdet(smooth, x)
    assert.close(exact, brute, 0, err)
    assert.is_true(err < 1e-4, "err " .. err)
    local perm = check.jacobian_logdet(function(v)
      local t = v:totable()
      return glow.Tensor.from({ t[3], t[1], t[4], t[2] }, { 4 })
    end, x)
    assert.is_near(0, perm, 1e-6)
  end)

  it("catches a 0.5% error in an autograd.Flow piece through the specs' assertion", function()
    -- a coupling written with ops: y2 = PL(z2) * exp(tanh(0.8 z1)), PL with
    -- knots 2e-3 above and 3e-3 below each z2 of the point x, where its
    -- slope is 1.5; the log-determinant reported at x is sum(s) + 4 log 1.5,
    -- planted 0.5% off
    local x = glow.Tensor.from({ 0.31, -0.17, 0.42, 0.05, -0.38, 0.23, 0.12, -0.29 }, { 1, 1, 2, 4 })
    local k1, k2 = x:narrow(4, 3, 2) + 0.002, x:narrow(4, 3, 2) - 0.003
    local function piece(factor)
      return ag.Flow {
        forward = function(_, v)
          local z1, z2 = v:narrow(4, 1, 2), v:narrow(4, 3, 2)
          local s = (z1 * 0.8):tanh()
          local y2 = (z2 + (z2 - k1):relu() * 0.7 + (z2 - k2):relu() * 0.5) * s:exp()
          return glow.cat({ z1, y2 }, 4), (s:sum({ 2, 3, 4 }) + 4 * math.log(1.5)) * factor
        end,
        inverse = function() error("not needed") end,
      }
    end
    local function y_of(v) return (piece(1):forward(v)) end
    H.assert_logdet(y_of, x, select(2, piece(1):forward(x)):get(1), { what = "correct" })
    for _, factor in ipairs { 1.005, 0.995 } do
      local ok, msg = pcall(H.assert_logdet, y_of, x, select(2, piece(factor):forward(x)):get(1))
      assert.is_false(ok)
      assert.matches("log-determinant", tostring(msg), 1, true)
    end
  end)
end)
