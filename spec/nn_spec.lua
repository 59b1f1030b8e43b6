local H = require "spec.helper"
local glow = H.glow
local nn = glow.nn

--- L = <w, m(x)>: backward(x, w) against finite differences in x and every parameter.
local function check_module(m, x, what, tol)
  local w = glow.randn(m:forward(x):shape(), 77, 1)
  local function loss() return m:forward(x):dot(w) end
  m:zero_grad()
  local dx = m:backward(x, w)
  H.gradcheck(loss, x, dx, { what = what .. " dx", tol = tol })
  for _, p in ipairs(m:parameters()) do
    H.gradcheck(loss, p.value, p.grad, { what = what .. " " .. p.name, tol = tol })
  end
end

describe("nn.Conv2d", function()
  it("starts with N(0, 0.05^2) weights of shape {k, k, cin, cout}", function()
    local c = nn.Conv2d(16, 32, 3, { seed = 1 })
    assert.same({ 3, 3, 16, 32 }, c.weight:shape())
    local t = c.weight:totable()
    local s2 = 0
    for _, v in ipairs(t) do s2 = s2 + v * v end
    -- a sample of 4608: the sample std is within 1/sqrt(2 * 4608) = 1% of 0.05 per sigma
    assert.close(0.05, math.sqrt(s2 / #t), 0.06)
  end)

  for _, k in ipairs { 1, 3 } do
    it("backward matches finite differences for a " .. k .. "x" .. k .. " kernel with bias", function()
      local c = nn.Conv2d(3, 5, k, { bias = true, seed = 2, std = 0.3 })
      H.perturb(c, 0.1, 4)
      check_module(c, H.data({ 2, 3, 5, 3 }, 1), "conv" .. k, 1e-2)
    end)
  end

  it("refuses a kernel size other than 1 or 3", function()
    assert.has_error(function() nn.Conv2d(3, 5, 5) end, "nn.Conv2d: kernel size must be 1 or 3, got 5")
  end)

  it("names both shapes when the input's channels do not fit", function()
    local c = nn.Conv2d(3, 5, 3, { seed = 2 })
    local ok, err = pcall(c.forward, c, H.data({ 1, 4, 4, 2 }, 1))
    assert.is_false(ok)
    assert.matches("conv2d: weight {3, 3, 3, 5} does not fit input {1, 4, 4, 2}", err, 1, true)
  end)
end)

describe("conv2d kernels", function()
  it("the im2col+sgemm path equals the naive reference on odd shapes", function()
    local core = glow.core
    local cases = 0
    for _, k in ipairs { 1, 3 } do
      for _, cin in ipairs { 1, 3, 5, 7, 130 } do
        for _, hw in ipairs { { 1, 1 }, { 3, 2 }, { 9, 7 } } do
          local cout = ({ [1] = 5, [3] = 7, [5] = 130, [7] = 1, [130] = 3 })[cin]
          local x = glow.randn({ 2, hw[1], hw[2], cin }, cin + k, 1)
          local wt = glow.randn({ k, k, cin, cout }, 3 * cin + k, 0.2)
          local b = glow.randn({ cout }, 5, 1)
          local dy = glow.randn({ 2, hw[1], hw[2], cout }, 7, 1)
          local y1 = core.conv2d_forward(x, wt, b)
          local y2 = core.conv2d_forward_naive(x, wt, b)
          local dw1, dw2 = glow.Tensor(wt:shape()), glow.Tensor(wt:shape())
          local db1, db2 = glow.Tensor { cout }, glow.Tensor { cout }
          local dx1 = core.conv2d_backward(x, wt, dy, dw1, db1)
          local dx2 = core.conv2d_backward_naive(x, wt, dy, dw2, db2)
          -- y sums k*k*cin products, dx k*k*cout, dw and db the 2*h*w pixels;
          -- each is bounded by the same sums over the terms' sizes, which
          -- the naive kernels give on |x|, |w|, |b| and |dy|
          local ax, aw, ady = H.abs(x), H.abs(wt), H.abs(dy)
          local my = core.conv2d_forward_naive(ax, aw, H.abs(b))
          local mw, mb = glow.Tensor(wt:shape()), glow.Tensor { cout }
          local mx = core.conv2d_backward_naive(ax, aw, ady, mw, mb)
          assert.tensor_near_terms(y2, y1, H.rtol(k * k * cin), my)
          assert.tensor_near_terms(dx2, dx1, H.rtol(k * k * cout), mx)
          assert.tensor_near_terms(dw2, dw1, H.rtol(2 * hw[1] * hw[2]), mw)
          assert.tensor_near_terms(db2, db1, H.rtol(2 * hw[1] * hw[2]), mb)
          cases = cases + 1
        end
      end
    end
    assert.equal(30, cases)
  end)
end)

describe("nn.ActNorm", function()
  it("initializes to zero mean and unit variance per channel", function()
    local a = nn.ActNorm(3)
    local x = glow.randn({ 4, 5, 5, 3 }, 3, 2.5)
    a:initialize(x)
    local y = a:forward(x):totable()
    for ch = 1, 3 do
      local s, s2, n = 0, 0, 0
      for i = ch, #y, 3 do s, s2, n = s + y[i], s2 + y[i] * y[i], n + 1 end
      -- normalized values are O(1): absolute bounds
      assert.is_near(0, s / n, 1e-5)
      assert.is_near(1, s2 / n, 1e-4)
    end
  end)

  it("backward matches finite differences", function()
    local a = nn.ActNorm(3)
    a:initialize(H.data({ 2, 3, 3, 3 }, 2))
    H.perturb(a, 0.1, 1)
    check_module(a, H.data({ 2, 3, 3, 3 }, 2), "actnorm", 1e-2)
  end)

  it("refuses to run before initialization", function()
    local a = nn.ActNorm(3)
    assert.has_error(function() a:forward(H.data({ 1, 2, 2, 3 }, 1)) end,
      "actnorm: not initialized; call initialize(x) on the model or flow first (data-dependent initialization)")
  end)
end)

describe("nn.ReLU", function()
  it("backward matches finite differences away from the kink", function()
    local x = H.data({ 1, 3, 3, 2 }, 5)
    check_module(nn.ReLU(), x, "relu", 1e-3)
  end)
end)

describe("nn.ZeroConv2d", function()
  it("outputs zeros at start", function()
    local z = nn.ZeroConv2d(3, 4)
    assert.equal(0, z:forward(H.data({ 1, 3, 3, 3 }, 1)):max_abs())
  end)

  it("backward matches finite differences in x, weight, bias and logscale", function()
    local z = nn.ZeroConv2d(3, 4)
    H.perturb(z, 0.1, 3)
    check_module(z, H.data({ 2, 3, 3, 3 }, 1), "zeroconv", 1e-2)
  end)
end)

describe("nn.Sequential", function()
  it("chains modules and backpropagates through all of them", function()
    local s = nn.Sequential { nn.Conv2d(2, 6, 3, { seed = 1 }), nn.ActNorm(6), nn.ReLU(),
      nn.Conv2d(6, 6, 1, { seed = 2 }), nn.ActNorm(6), nn.ReLU(), nn.ZeroConv2d(6, 4) }
    local x = H.data({ 2, 4, 4, 2 }, 1)
    glow.Flow.initialize(s, x)
    H.perturb(s, 0.05, 2)
    check_module(s, x, "sequential", 1e-2)
    local names = {}
    for _, p in ipairs(s:parameters()) do names[#names + 1] = p.name end
    assert.same({ "1.weight", "2.bias", "2.logs", "4.weight", "5.bias", "5.logs", "7.weight",
      "7.bias", "7.logscale" }, names)
  end)

  it("runs an ActNorm followed by a ReLU as one sweep with the values of the two in turn", function()
    -- 4*16*16*96 elements: large enough for the parallel kernels
    local x = H.data({ 4, 16, 16, 96 }, 3)
    local dy = glow.randn({ 4, 16, 16, 96 }, 4, 1)
    local a, r = nn.ActNorm(96), nn.ReLU()
    a:initialize(x)
    H.perturb(a, 0.3, 5)
    local s = nn.Sequential { a, r }
    local y = s:forward(x, true)
    local t = a:forward(x)
    -- the sweep computes the same expression per element as the two modules
    -- (no sums): bitwise the same
    assert.tensor_equal(r:forward(t), y)
    a:zero_grad()
    local dx = s:backward(x, dy)
    local ps = a:parameters()
    local g1 = { ps[1].grad:clone(), ps[2].grad:clone() }
    a:zero_grad()
    local dx2 = a:backward(x, r:backward(t, dy), t)
    assert.tensor_equal(dx2, dx)
    -- the parameter gradients sum over the 4*16*16 pixels, in another order
    assert.tensor_near(ps[1].grad, g1[1], H.rtol(4 * 16 * 16))
    assert.tensor_near(ps[2].grad, g1[2], H.rtol(4 * 16 * 16))
    assert.is_true(g1[2]:max_abs() > 1)
  end)

  it("runs the default coupling network fused, with the module-by-module values", function()
    -- 8 images of 16x16 at width 128: chunks of 2 images, so several per
    -- thread; the backward with the forward output given and recomputed
    local function net(fuse)
      local s = nn.Sequential { nn.Conv2d(3, 128, 3, { seed = 1 }), nn.ActNorm(128), nn.ReLU(),
        nn.Conv2d(128, 128, 1, { seed = 2 }), nn.ActNorm(128), nn.ReLU(), nn.ZeroConv2d(128, 6) }
      s.fuse = fuse
      return s
    end
    local x = H.data({ 8, 16, 16, 3 }, 7)
    local dy = glow.randn({ 8, 16, 16, 6 }, 8, 1)
    local a, b = net(true), net(false)
    glow.Flow.initialize(a, x)
    glow.Flow.initialize(b, x)
    H.perturb(a, 0.1, 9)
    H.perturb(b, 0.1, 9)
    local ya, yb = a:forward(x, true), b:forward(x, true)
    assert.is_true(yb:max_abs() > 0.1)
    -- the sums behind a value: the three convolutions (3*3*3, 128 and 3*3*128
    -- products) and the ActNorm statistics over the 8*16*16 pixels
    local rtol = H.rtol(27, 128, 1152, 2048)
    assert.tensor_near(yb, ya, rtol)
    for _, keep in ipairs { true, false } do
      a:zero_grad()
      b:zero_grad()
      if keep then a:forward(x, true) end
      local dxa, dxb = a:backward(x, dy), b:backward(x, dy)
      -- the backward runs the same sums in reverse; the parameter gradients
      -- sum over the 2048 pixels
      assert.tensor_near(dxb, dxa, rtol)
      local pa, pb = a:parameters(), b:parameters()
      for i = 1, #pa do
        assert.tensor_near(pb[i].grad, pa[i].grad, rtol)
      end
    end
  end)

  it("backpropagates correctly when the path changes between forward and backward", function()
    local s = nn.Sequential { nn.Conv2d(2, 16, 3, { seed = 1 }), nn.ActNorm(16), nn.ReLU(),
      nn.Conv2d(16, 16, 1, { seed = 2 }), nn.ActNorm(16), nn.ReLU(), nn.ZeroConv2d(16, 4) }
    local x = H.data({ 2, 5, 5, 2 }, 3)
    local dy = glow.randn({ 2, 5, 5, 4 }, 4, 1)
    glow.Flow.initialize(s, x)
    H.perturb(s, 0.1, 5)
    s.fuse = false
    local want = s:backward(x, dy)
    for _, first in ipairs { true, false } do
      s.fuse = first
      s:forward(x, true)
      s.fuse = not first
      -- convolutions of 3*3*2, 16 and 3*3*16 products, statistics over 2*5*5 pixels
      assert.tensor_near(want, s:backward(x, dy), H.rtol(18, 16, 144, 50))
    end
  end)
end)
