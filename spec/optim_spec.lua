local H = require "spec.helper"
local glow = H.glow

--- A stand-in model: one parameter vector with a settable gradient.
local function toy(values)
  local m = { _params = {} }
  m.parameters = glow.Glow.parameters
  require("glow.module").param(m, "w", glow.Tensor.from(values, { #values }))
  return m
end

local function set_grad(opt, g) opt.grad:copy_(glow.Tensor.from(g, { #g })) end

-- The parameters, gradients and rates here are O(1) numbers chosen by hand,
-- so the comparisons are absolute: 1e-6 is 8 float32 ulps at 1, 1e-7 about
-- 7 ulps at 0.2 (Adamax) and 1 to 13 ulps at the averages' values (2/11 to
-- 1); the schedules are computed in double.

describe("glow.optim.SGD", function()
  it("steps w -= lr * g, with momentum w -= lr * (mu * buf + g)", function()
    local m = toy { 1, -2 }
    local opt = glow.optim.SGD(m, { lr = 0.1, momentum = 0.9 })
    set_grad(opt, { 0.5, 1 })
    opt:step()
    assert.is_near(1 - 0.05, m.w:get(1), 1e-6) -- first step: buf = g
    assert.is_near(-2 - 0.1, m.w:get(2), 1e-6)
    set_grad(opt, { 0.5, 1 })
    opt:step()
    -- buf = 0.9 * 0.5 + 0.5 = 0.95; w = 0.95 - 0.1 * 0.95
    assert.is_near(0.95 - 0.095, m.w:get(1), 1e-6)
    assert.is_near(-2.1 - 0.1 * 1.9, m.w:get(2), 1e-6)
  end)

  it("applies decoupled weight decay", function()
    local m = toy { 2 }
    local opt = glow.optim.SGD(m, { lr = 0.1, weight_decay = 0.5 })
    set_grad(opt, { 0 })
    opt:step()
    assert.is_near(2 - 0.1 * 0.5 * 2, m.w:get(1), 1e-6)
  end)
end)

describe("glow.optim.Adam", function()
  it("matches the bias-corrected update computed by hand for three steps", function()
    local m = toy { 1.0, -0.5 }
    local lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    local opt = glow.optim.Adam(m, { lr = lr, betas = { b1, b2 }, eps = eps })
    local w, mm, vv = { 1.0, -0.5 }, { 0, 0 }, { 0, 0 }
    local grads = { { 0.3, -1.0 }, { -0.2, 0.5 }, { 0.1, 2.0 } }
    for t, g in ipairs(grads) do
      set_grad(opt, g)
      opt:step()
      for i = 1, 2 do
        mm[i] = b1 * mm[i] + (1 - b1) * g[i]
        vv[i] = b2 * vv[i] + (1 - b2) * g[i] ^ 2
        local mh, vh = mm[i] / (1 - b1 ^ t), vv[i] / (1 - b2 ^ t)
        w[i] = w[i] - lr * mh / (math.sqrt(vh) + eps)
        assert.is_near(w[i], m.w:get(i), 1e-6)
      end
    end
  end)
end)

describe("glow.optim.Adamax", function()
  it("matches the update computed by hand for three steps", function()
    local m = toy { 0.2 }
    local lr, b1, b2, eps = 0.002, 0.9, 0.999, 1e-8
    local opt = glow.optim.Adamax(m, { lr = lr, betas = { b1, b2 }, eps = eps })
    local w, mm, u = 0.2, 0, 0
    for t, g in ipairs { 0.5, -2.0, 0.25 } do
      set_grad(opt, { g })
      opt:step()
      mm = b1 * mm + (1 - b1) * g
      u = math.max(b2 * u, math.abs(g))
      w = w - lr / (1 - b1 ^ t) * mm / (u + eps)
      assert.is_near(w, m.w:get(1), 1e-7)
    end
  end)
end)

describe("gradient clipping", function()
  it("scales the gradient to the global norm limit", function()
    local m = toy { 0, 0 }
    local opt = glow.optim.SGD(m, { lr = 1, clip = 1 })
    set_grad(opt, { 3, 4 })
    local info = opt:step()
    assert.is_near(5, info.grad_norm, 1e-6)
    assert.is_true(info.clipped)
    assert.is_near(-0.6, m.w:get(1), 1e-6)
    assert.is_near(-0.8, m.w:get(2), 1e-6)
  end)
end)

describe("Polyak averaging", function()
  it("keeps an exponential moving average and swaps it in for evaluation", function()
    local m = toy { 1 }
    local opt = glow.optim.SGD(m, { lr = 1, polyak = 0.5 })
    set_grad(opt, { 1 })
    opt:step() -- w = 0; decay min(0.5, 2 / 11) = 2/11: ema = 2/11 * 1 + 9/11 * 0
    assert.is_near(2 / 11, opt:with_average(function() return m.w:get(1) end), 1e-7)
    for _ = 1, 30 do set_grad(opt, { 0 }) opt:step() end -- w stays 0, ema decays at 0.5 later
    assert.is_near(0, m.w:get(1), 1e-7)
    assert.is_true(opt:with_average(function() return m.w:get(1) end) < 1e-3)
    m.w:set(1, 1)
    opt.ema:set(1, 0)
    set_grad(opt, { 0 })
    opt:step() -- t = 32: decay 0.5 -> ema = 0.5 * 0 + 0.5 * 1
    assert.is_near(0.5, opt:with_average(function() return m.w:get(1) end), 1e-7)
    assert.is_near(1, m.w:get(1), 1e-7)
  end)
end)

describe("learning-rate schedules", function()
  local s = glow.optim.schedules
  it("warm up linearly, then hold, step or cosine-decay", function()
    local w = s.warmup(100)
    assert.is_near(0.01, w(1), 1e-12)
    assert.is_near(0.5, w(50), 1e-12)
    assert.equal(1, w(100))
    assert.equal(1, w(5000))
    local st = s.step(10, 0.5)
    assert.equal(1, st(9))
    assert.equal(0.5, st(10))
    assert.equal(0.25, st(25))
    local c = s.cosine(100, 0.1)
    assert.is_near(1, c(0), 1e-12)
    assert.is_near(0.55, c(50), 1e-12)
    assert.is_near(0.1, c(100), 1e-12)
    assert.is_near(0.1, c(500), 1e-12)
    local l = s.linear(100, 0.1)
    assert.is_near(0.55, l(50), 1e-12)
    assert.is_near(0.1, l(100), 1e-12)
    assert.is_near(0.1, l(200), 1e-12)
    local d = s.wsd(100, 0.2, 0.1) -- hold 80 steps, then 1 - sqrt over 20
    assert.equal(1, d(80))
    assert.is_near(0.1 + 0.9 * (1 - math.sqrt(0.25)), d(85), 1e-12)
    assert.is_near(0.1, d(100), 1e-12)
    assert.is_near(0.1, d(300), 1e-12)
  end)

  it("compose in the optimizer: warmup then the named schedule", function()
    local opt = glow.optim.Adam(toy { 0 }, { lr = 0.1, warmup = 10, schedule = "step", step_size = 5,
      gamma = 0.5 })
    assert.is_near(0.01, opt:lr(1), 1e-12)
    assert.is_near(0.1, opt:lr(10), 1e-12)
    assert.is_near(0.1, opt:lr(14), 1e-12)
    assert.is_near(0.05, opt:lr(15), 1e-12)
    local w = glow.optim.Adam(toy { 0 }, { lr = 1, warmup = 10, schedule = "wsd", total_steps = 110,
      decay_frac = 0.5 })
    assert.is_near(0.5, w:lr(5), 1e-12)
    assert.equal(1, w:lr(60))
    assert.is_near(1 - math.sqrt(0.5), w:lr(85), 1e-12)
    assert.has_error(function() glow.optim.Adam(toy { 0 }, { schedule = "wsd", total_steps = 9, decay_frac = 2 }) end,
      "optim: decay_frac must be in (0, 1], got 2")
    local f = glow.optim.Adam(toy { 0 }, { lr = 1, schedule = function(t) return 1 / t end })
    assert.is_near(0.25, f:lr(4), 1e-12)
  end)

  it("refuses unknown options and schedules", function()
    assert.has_error(function() glow.optim.Adam(toy { 0 }, { learning_rate = 1 }) end,
      "glow.optim.adam: unknown option 'learning_rate' (known: betas, clip, decay_frac, eps, gamma, lr, min_lr_frac, "
      .. "polyak, schedule, schedule_start, step_size, total_steps, warmup, weight_decay)")
    assert.has_error(function() glow.optim.Adam(toy { 0 }, { schedule = "bogus" }) end,
      "optim: unknown schedule 'bogus' (constant, step, cosine, linear, wsd, or a function)")
    assert.has_error(function() glow.optim.SGD(toy { 0 }, { betas = { 0.9, 0.9 } }) end,
      "glow.optim.sgd: unknown option 'betas' (known: clip, decay_frac, gamma, lr, min_lr_frac, momentum, nesterov, "
      .. "polyak, schedule, schedule_start, step_size, total_steps, warmup, weight_decay)")
  end)
end)

describe("the parameter arena", function()
  it("makes every parameter a view into one flat tensor, keeping values", function()
    local m = glow.Glow { shape = { 8, 8, 1 }, levels = 2, depth = 1, width = 8 }
    local before = {}
    for i, p in ipairs(m:parameters()) do before[i] = p.value:clone() end
    local opt = glow.optim.Adam(m, { lr = 1e-3 })
    local n = 0
    for i, p in ipairs(m:parameters()) do
      -- copied into the arena: bitwise
      assert.tensor_equal(before[i], p.value)
      n = n + p.value:numel()
    end
    assert.equal(n, opt.value:numel())
    opt.value:fill_(3)
    assert.equal(3, m:parameters()[1].value:get(1))
  end)
end)
