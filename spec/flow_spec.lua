local H = require "spec.helper"
local glow = H.glow

-- a tiny input: {1, 4, 4, 4} = 64 elements
local function x0(seed) return H.data({ 1, 4, 4, 4 }, seed or 3) end

-- every piece's inverse, log-determinant and gradients: spec/protocol_spec.lua

describe("Split", function()
  local function ready_split(opts)
    local s = glow.Split(4, opts)
    H.perturb(s, 0.1, 3)
    return s, x0()
  end

  it("sends z1 on, pushes z2 onto the context, and inverse concatenates them back", function()
    local s, x = ready_split()
    local z1, ld, ctx = s:forward(x)
    assert.same({ 1, 4, 4, 2 }, z1:shape())
    assert.equal(1, #ctx.latents)
    assert.same({ 1, 4, 4, 2 }, ctx.latents[1]:shape())
    assert.equal(0, ld:get(1))
    -- a split and a concatenation copy values: bitwise
    assert.tensor_equal(x, s:inverse(z1, ctx))
    assert.equal(0, #ctx.latents)
  end)

  it("keeps the number of channels asked for", function()
    local s, x = ready_split { keep = 1 }
    local z1, _, ctx = s:forward(x)
    assert.same({ 1, 4, 4, 1 }, z1:shape())
    assert.same({ 1, 4, 4, 3 }, ctx.latents[1]:shape())
    assert.tensor_equal(x, s:inverse(z1, ctx))
    assert.matches("Split: keep must be an integer in 1..3, got 4", select(2, pcall(glow.Split, 4, { keep = 4 })),
      1, true)
  end)

  it("is volume-preserving: logdet 0 equals log|det J| of x -> (z1, z2)", function()
    local s, x = ready_split()
    -- the brute-force log-determinant of a permutation: 0 within its own
    -- error estimate, which must be below 1e-3 (H.assert_logdet)
    H.assert_logdet(function(v)
      local z1, _, ctx = s:forward(v)
      return H.cat { z1, ctx.latents[1] }
    end, x, 0)
  end)

  it("samples z2 from its prior at temperature 0 as the prior mean", function()
    local s, x = ready_split()
    local z1 = s:forward(x)
    local mean = s.prior:moments(z1)
    local x2 = s:inverse(z1, glow.Context { temperature = 0 })
    local _, _, ctx = s:forward(x2)
    -- z2 = mean + 0 * noise, then split off again: a copy, up to the
    -- rounding of the mean itself
    assert.tensor_near(mean, ctx.latents[1], H.rtol())
  end)

  it("scores z2 by its prior into ctx.logp, and backward matches finite differences", function()
    local s, x = ready_split()
    local function loss()
      local ctx = glow.Context { score = true }
      local z1 = s:forward(x, ctx)
      return 0.9 * ctx.logp:sum() + 0.3 * z1:sum()
    end
    local ctx = glow.Context { score = true }
    local z1 = s:forward(x, ctx)
    s:zero_grad()
    local xr, dx = s:backward(z1, glow.Tensor(z1:shape()):fill_(0.3), 0.9, ctx)
    assert.tensor_equal(x, xr)
    H.gradcheck(loss, x, dx, { what = "split dx", tol = 1e-2 })
    for _, p in ipairs(s:parameters()) do
      H.gradcheck(loss, p.value, p.grad, { what = "split " .. p.name, tol = 1e-2 })
    end
  end)
end)

describe("Flow", function()
  it("composes pieces by hand and prefixes errors with where they sit", function()
    local f = glow.Flow { glow.ActNorm(4), glow.InvConv1x1(4, { lu = true, seed = 1 }),
      glow.AffineCoupling(4, { width = 8, seed = 2 }) }
    f:initialize(x0())
    H.perturb(f, 0.1, 9)
    local y = f:forward(x0())
    assert.tensor_near(x0(), f:inverse(y), H.rtol(18, 8, 72, 4, 4))
    H.check_piece(f, x0(), { what = "flow", tol = 2e-2 })
    local ok, err = pcall(f.forward, f, H.data({ 1, 4, 4, 3 }, 1))
    assert.is_false(ok)
    assert.matches("step 1: actnorm: input: got shape {1, 4, 4, 3}, expected {n, h, w, 4}", err, 1, true)
  end)

  it("refuses to run an ActNorm that was never initialized", function()
    local f = glow.Flow { glow.ActNorm(4) }
    local ok, err = pcall(f.forward, f, x0())
    assert.is_false(ok)
    assert.matches("not initialized", err, 1, true)
  end)
end)
