local H = require "spec.helper"
local glow = H.glow
local core = glow.core

--- Naive references over totable(), in double, and the shapes they need.

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do n = n * d end
  return n
end

--- Every index of a shape, row-major, as a 1-based multi-index table.
local function each_index(shape)
  local idx, first = {}, true
  for d = 1, #shape do idx[d] = 1 end
  return function()
    if first then
      first = false
      return idx
    end
    for d = #shape, 1, -1 do
      idx[d] = idx[d] + 1
      if idx[d] <= shape[d] then return idx end
      idx[d] = 1
    end
    return nil
  end
end

--- The flat 1-based offset of multi-index idx (aligned to the right) in shape,
--- broadcasting: a dimension of size 1 is read at 1.
local function offset(shape, idx)
  local o, lead = 0, #idx - #shape
  for d = 1, #shape do
    local i = shape[d] == 1 and 1 or idx[d + lead]
    o = o * shape[d] + (i - 1)
  end
  return o
end

local function batch_of(shape)
  local b = {}
  for d = 1, #shape - 2 do b[d] = shape[d] end
  return b
end

local function broadcast(s1, s2)
  local n, out = math.max(#s1, #s2), {}
  for d = 1, n do
    local a, b = s1[d - (n - #s1)] or 1, s2[d - (n - #s2)] or 1
    assert(a == b or a == 1 or b == 1)
    out[d] = math.max(a, b)
  end
  return out
end

--- op(a) op(b) with broadcast batch dimensions, as a tensor.
local function naive_matmul(a, b, ta, tb)
  local as, bs, av, bv = a:shape(), b:shape(), a:totable(), b:totable()
  local a1, a2, b1, b2 = as[#as - 1], as[#as], bs[#bs - 1], bs[#bs]
  local m, k = a1, a2
  if ta then m, k = a2, a1 end
  local n = tb and b1 or b2
  local ob = broadcast(batch_of(as), batch_of(bs))
  local ab, bb = batch_of(as), batch_of(bs)
  local out, oshape = {}, {}
  for d = 1, #ob do oshape[d] = ob[d] end
  oshape[#ob + 1], oshape[#ob + 2] = m, n
  for idx in each_index(ob) do
    local ao, bo = offset(ab, idx) * a1 * a2, offset(bb, idx) * b1 * b2
    for i = 1, m do
      for j = 1, n do
        local s = 0
        for q = 1, k do
          local x = ta and av[ao + (q - 1) * a2 + i] or av[ao + (i - 1) * a2 + q]
          local y = tb and bv[bo + (j - 1) * b2 + q] or bv[bo + (q - 1) * b2 + j]
          s = s + x * y
        end
        out[#out + 1] = s
      end
    end
  end
  return glow.Tensor.from(out, oshape)
end

--- Sum t {batch..., r, c} over the batch dimensions that target {tbatch..., r, c}
--- broadcast (the reduction of a broadcast operand's gradient).
local function sum_to(t, target)
  local ts, tv = t:shape(), t:totable()
  local out = {}
  for i = 1, numel(target) do out[i] = 0 end
  local tb = batch_of(target)
  local mat = ts[#ts - 1] * ts[#ts]
  local i = 0
  for idx in each_index(batch_of(ts)) do
    local o = offset(tb, idx) * mat
    for e = 1, mat do out[o + e] = out[o + e] + tv[i * mat + e] end
    i = i + 1
  end
  return glow.Tensor.from(out, target)
end

--- conv2d by direct loops: x {n, h, w, cin}, wt {kh, kw, cin, cout}, b {cout} or nil.
local function conv_geom(x, wt, opts)
  local xs, ws = x:shape(), wt:shape()
  local d = opts.dilation or 1
  local ph, pw = (ws[1] - 1) // 2 * d, (ws[2] - 1) // 2 * d
  if type(opts.padding) == "number" then ph, pw = opts.padding, opts.padding end
  return {
    n = xs[1], h = xs[2], w = xs[3], cin = xs[4], kh = ws[1], kw = ws[2], cout = ws[4],
    ph = ph, pw = pw, d = d,
    ho = xs[2] + 2 * ph - d * (ws[1] - 1), wo = xs[3] + 2 * pw - d * (ws[2] - 1),
  }
end

--- Calls fn(xi, wi, yi) for every (input, weight, output) triple of flat
--- 1-based indices that the convolution multiplies together.
local function conv_terms(g, fn)
  for b = 0, g.n - 1 do
    for oi = 0, g.ho - 1 do
      for oj = 0, g.wo - 1 do
        for di = 0, g.kh - 1 do
          local ii = oi - g.ph + di * g.d
          for dj = 0, g.kw - 1 do
            local jj = oj - g.pw + dj * g.d
            if ii >= 0 and ii < g.h and jj >= 0 and jj < g.w then
              local xo = ((b * g.h + ii) * g.w + jj) * g.cin
              local wo = (di * g.kw + dj) * g.cin * g.cout
              local yo = ((b * g.ho + oi) * g.wo + oj) * g.cout
              for c = 0, g.cin - 1 do
                for o = 0, g.cout - 1 do fn(xo + c + 1, wo + c * g.cout + o + 1, yo + o + 1) end
              end
            end
          end
        end
      end
    end
  end
end

local function naive_conv(x, wt, b, opts)
  local g = conv_geom(x, wt, opts)
  local xv, wv, y = x:totable(), wt:totable(), {}
  local bv = b and b:totable()
  for i = 1, g.n * g.ho * g.wo * g.cout do y[i] = bv and bv[(i - 1) % g.cout + 1] or 0 end
  conv_terms(g, function(xi, wi, yi) y[yi] = y[yi] + xv[xi] * wv[wi] end)
  return glow.Tensor.from(y, { g.n, g.ho, g.wo, g.cout })
end

--- The adjoint of naive_conv: dx, dw, db by scattering dy through the same terms.
local function naive_conv_grad(x, wt, dy, opts)
  local g = conv_geom(x, wt, opts)
  local xv, wv, dyv = x:totable(), wt:totable(), dy:totable()
  local dx, dw, db = {}, {}, {}
  for i = 1, #xv do dx[i] = 0 end
  for i = 1, #wv do dw[i] = 0 end
  for o = 1, g.cout do db[o] = 0 end
  for i = 1, #dyv do db[(i - 1) % g.cout + 1] = db[(i - 1) % g.cout + 1] + dyv[i] end
  conv_terms(g, function(xi, wi, yi)
    dx[xi] = dx[xi] + dyv[yi] * wv[wi]
    dw[wi] = dw[wi] + dyv[yi] * xv[xi]
  end)
  return glow.Tensor.from(dx, x:shape()), glow.Tensor.from(dw, wt:shape()),
    glow.Tensor.from(db, { g.cout })
end

--- The 2x resampling maps as lists of terms {out, in, weight} (flat, 1-based)
--- over images {n, h, w, c} (h, w of the small image): forward and adjoint
--- both come from them.
local function bilinear_src(o, len)
  -- PyTorch, align_corners = False: src = (o + 0.5) / 2 - 0.5, clamped at 0
  local src = math.max((o + 0.5) / 2 - 0.5, 0)
  local i0 = math.floor(src)
  local i1 = math.min(i0 + 1, len - 1)
  local l = src - i0
  return i0, i1, 1 - l, l
end

local function resample_terms(mode, n, h, w, c)
  local terms = {}
  local function add(b, oi, oj, i, j, wgt)
    for k = 0, c - 1 do
      terms[#terms + 1] = { ((b * 2 * h + oi) * 2 * w + oj) * c + k + 1, ((b * h + i) * w + j) * c + k + 1, wgt }
    end
  end
  for b = 0, n - 1 do
    for oi = 0, 2 * h - 1 do
      for oj = 0, 2 * w - 1 do
        if mode == "nearest" then
          add(b, oi, oj, oi // 2, oj // 2, 1)
        else
          local r0, r1, wr0, wr1 = bilinear_src(oi, h)
          local c0, c1, wc0, wc1 = bilinear_src(oj, w)
          add(b, oi, oj, r0, c0, wr0 * wc0)
          add(b, oi, oj, r0, c1, wr0 * wc1)
          add(b, oi, oj, r1, c0, wr1 * wc0)
          add(b, oi, oj, r1, c1, wr1 * wc1)
        end
      end
    end
  end
  return terms
end

--- y[out] = sum weight * x[in] (up: small -> large), or its adjoint (large -> small)
local function apply_terms(terms, t, outshape, adjoint)
  local v, out = t:totable(), {}
  for i = 1, numel(outshape) do out[i] = 0 end
  for _, tm in ipairs(terms) do
    if adjoint then
      out[tm[2]] = out[tm[2]] + tm[3] * v[tm[1]]
    else
      out[tm[1]] = out[tm[1]] + tm[3] * v[tm[2]]
    end
  end
  return glow.Tensor.from(out, outshape)
end

--- <w, f(x)> and its gradient check in x
local function check_grad(f, x, dx, w, what, opts)
  opts = opts or {}
  H.gradcheck(function() return f():dot(w) end, x, dx, { what = what, max = opts.max or 12 })
end

describe("matmul", function()
  it("multiplies two matrices as the naive reference does", function()
    local a, b = H.data({ 5, 7 }, 1), H.data({ 7, 3 }, 2)
    local c = core.matmul(a, b)
    assert.same({ 5, 3 }, c:shape())
    assert.tensor_near(naive_matmul(a, b), c, H.rtol(7))
  end)

  it("broadcasts batch dimensions by numpy's rules, a 2-D operand shared by every batch", function()
    local cases = {
      { { 3, 4, 5 }, { 5, 2 } },
      { { 4, 5 }, { 3, 5, 2 } },
      { { 2, 1, 4, 5 }, { 3, 5, 2 } },
      { { 1, 4, 5 }, { 2, 5, 3 } },
      { { 2, 3, 4, 5 }, { 2, 3, 5, 1 } },
    }
    for i, s in ipairs(cases) do
      local a, b = H.data(s[1], 10 + i), H.data(s[2], 20 + i)
      local c = core.matmul(a, b)
      local e = naive_matmul(a, b)
      assert.same(e:shape(), c:shape())
      assert.tensor_near(e, c, H.rtol(5))
    end
  end)

  it("uses the transposes of the last two dimensions when asked", function()
    for _, t in ipairs { { false, false }, { true, false }, { false, true }, { true, true } } do
      local ta, tb = t[1], t[2]
      local a = H.data(ta and { 2, 1, 5, 4 } or { 2, 1, 4, 5 }, 3)
      local b = H.data(tb and { 3, 2, 5 } or { 3, 5, 2 }, 4)
      local c = core.matmul(a, b, ta, tb)
      assert.same({ 2, 3, 4, 2 }, c:shape())
      assert.tensor_near(naive_matmul(a, b, ta, tb), c, H.rtol(5))
    end
  end)

  it("gives each operand's gradient, summed over the batches it was broadcast to", function()
    for _, t in ipairs { { false, false }, { true, false }, { false, true }, { true, true } } do
      local ta, tb = t[1], t[2]
      for _, s in ipairs { { { 3, 4, 5 }, { 5, 2 } }, { { 2, 1, 4, 5 }, { 3, 5, 2 } } } do
        local as, bs = s[1], s[2]
        if ta then as[#as - 1], as[#as] = as[#as], as[#as - 1] end
        if tb then bs[#bs - 1], bs[#bs] = bs[#bs], bs[#bs - 1] end
        local a, b = H.data(as, 5), H.data(bs, 6)
        local dy = glow.randn(core.matmul(a, b, ta, tb):shape(), 7, 1)
        local da, db = core.matmul_backward(a, b, dy, ta, tb)
        assert.same(a:shape(), da:shape())
        assert.same(b:shape(), db:shape())
        -- the naive adjoint: dop(a) = dy op(b)^T, dop(b) = op(a)^T dy
        local ea = ta and naive_matmul(b, dy, tb, true) or naive_matmul(dy, b, false, not tb)
        local eb = tb and naive_matmul(dy, a, true, ta) or naive_matmul(a, dy, not ta, false)
        -- da sums at most 3 batches x 2 columns, db 3 x 4 rows
        assert.tensor_near(sum_to(ea, a:shape()), da, H.rtol(6))
        assert.tensor_near(sum_to(eb, b:shape()), db, H.rtol(12))
        local f = function() return core.matmul(a, b, ta, tb) end
        check_grad(f, a, da, dy, "matmul da")
        check_grad(f, b, db, dy, "matmul db")
      end
    end
  end)

  it("names both shapes when the inner dimensions differ", function()
    assert.has_error(function() core.matmul(glow.Tensor { 2, 3 }, glow.Tensor { 4, 5 }) end,
      "matmul: shapes {2, 3} and {4, 5}: inner dimensions 3 and 4 differ")
    assert.has_error(function() core.matmul(glow.Tensor { 2, 3, 4 }, glow.Tensor { 3, 4, 5 }) end,
      "matmul: shapes {2, 3, 4} and {3, 4, 5}: batch dimensions 2 and 3 do not broadcast")
    assert.has_error(function() core.matmul(glow.Tensor { 3 }, glow.Tensor { 3, 4 }) end,
      "matmul: shapes {3} and {3, 4}: both operands need at least 2 dimensions")
  end)
end)

describe("conv2d", function()
  local geoms = {
    { k = { 1, 1 } }, { k = { 1, 1 }, padding = 1 },
    { k = { 3, 3 } }, { k = { 3, 3 }, padding = 0 }, { k = { 3, 3 }, dilation = 2 },
    { k = { 3, 3 }, padding = 1, dilation = 2 },
    { k = { 5, 5 } }, { k = { 5, 5 }, padding = 1 }, { k = { 5, 5 }, dilation = 2, padding = 3 },
    { k = { 3, 5 } }, { k = { 5, 1 }, padding = 0 },
  }
  local function name(gm)
    return string.format("%dx%d padding %s dilation %d", gm.k[1], gm.k[2], tostring(gm.padding or "same"),
      gm.dilation or 1)
  end

  it("matches the direct loops for kernel sizes 1, 3, 5 over paddings and dilations", function()
    for i, gm in ipairs(geoms) do
      local x = H.data({ 2, 6, 7, 3 }, i)
      local wt = glow.randn({ gm.k[1], gm.k[2], 3, 4 }, 100 + i, 0.3)
      local b = i % 2 == 0 and glow.randn({ 4 }, 200 + i, 1) or nil
      local opts = { padding = gm.padding, dilation = gm.dilation }
      local y = core.conv2d(x, wt, b, opts)
      local e = naive_conv(x, wt, b, opts)
      assert.same(e:shape(), y:shape(), name(gm))
      assert.tensor_near(e, y, H.rtol(gm.k[1] * gm.k[2] * 3 + 1))
    end
  end)

  it("keeps the size with the default \"same\" padding and shrinks it without padding", function()
    local x = H.data({ 1, 8, 6, 2 }, 1)
    assert.same({ 1, 8, 6, 5 }, core.conv2d(x, glow.Tensor { 5, 3, 2, 5 }):shape())
    assert.same({ 1, 8, 6, 5 }, core.conv2d(x, glow.Tensor { 3, 3, 2, 5 }, nil, { dilation = 3 }):shape())
    assert.same({ 1, 4, 4, 5 }, core.conv2d(x, glow.Tensor { 5, 3, 2, 5 }, nil, { padding = 0 }):shape())
  end)

  it("gives dx, dw and db that match the naive adjoint and finite differences", function()
    for i, gm in ipairs(geoms) do
      local x = H.data({ 2, 5, 6, 3 }, 30 + i)
      local wt = glow.randn({ gm.k[1], gm.k[2], 3, 4 }, 300 + i, 0.3)
      local b = glow.randn({ 4 }, 400 + i, 1)
      local opts = { padding = gm.padding, dilation = gm.dilation }
      local dy = glow.randn(core.conv2d(x, wt, b, opts):shape(), 500 + i, 1)
      local dx, dw, db = core.conv2d_grad(x, wt, dy, opts, true)
      local ex, ew, eb = naive_conv_grad(x, wt, dy, opts)
      local pix = dy:numel() / 4
      assert.tensor_near(ex, dx, H.rtol(gm.k[1] * gm.k[2] * 4))
      assert.tensor_near(ew, dw, H.rtol(pix))
      assert.tensor_near(eb, db, H.rtol(pix))
      local f = function() return core.conv2d(x, wt, b, opts) end
      check_grad(f, x, dx, dy, "conv2d dx " .. name(gm))
      check_grad(f, wt, dw, dy, "conv2d dw " .. name(gm))
      check_grad(f, b, db, dy, "conv2d db " .. name(gm))
      local dx2, dw2, db2 = core.conv2d_grad(x, wt, dy, opts)
      assert.is_nil(db2)
      assert.tensor_equal(dx, dx2) -- the same kernel on the same data
      assert.tensor_equal(dw, dw2)
    end
  end)

  it("refuses an even kernel and names the shapes when the channels do not fit", function()
    assert.has_error(function() core.conv2d(glow.Tensor { 1, 4, 4, 3 }, glow.Tensor { 2, 2, 3, 5 }) end,
      "conv2d: weight {2, 2, 3, 5}: kernel 2x2, its sizes must be odd")
    assert.has_error(function() core.conv2d(glow.Tensor { 1, 4, 4, 2 }, glow.Tensor { 3, 3, 3, 5 }) end,
      "conv2d: weight {3, 3, 3, 5} does not fit input {1, 4, 4, 2}: expected {kh, kw, 2, cout}")
    assert.has_error(function()
      core.conv2d(glow.Tensor { 1, 4, 4, 3 }, glow.Tensor { 5, 5, 3, 5 }, nil, { padding = 0 })
    end, "conv2d: input {1, 4, 4, 3}, weight {5, 5, 3, 5}, padding 0, 0, dilation 1: the output would be 0 x 0")
    assert.has_error(function()
      core.conv2d_grad(glow.Tensor { 1, 4, 4, 3 }, glow.Tensor { 3, 3, 3, 5 }, glow.Tensor { 1, 4, 4, 4 })
    end, "conv2d_grad: dy {1, 4, 4, 4} does not match the output {1, 4, 4, 5}")
  end)
end)

describe("avg_pool2", function()
  it("averages each 2x2 block, and its backward spreads a quarter over the block", function()
    local x = H.data({ 2, 4, 6, 3 }, 1)
    local y = core.avg_pool2(x)
    assert.same({ 2, 2, 3, 3 }, y:shape())
    local up = resample_terms("nearest", 2, 2, 3, 3)
    for _, t in ipairs(up) do t[3] = 0.25 end
    assert.tensor_near(apply_terms(up, x, { 2, 2, 3, 3 }, true), y, H.rtol())
    local dy = glow.randn({ 2, 2, 3, 3 }, 2, 1)
    local dx = core.avg_pool2_backward(dy)
    assert.tensor_near(apply_terms(up, dy, { 2, 4, 6, 3 }), dx, H.rtol())
    check_grad(function() return core.avg_pool2(x) end, x, dx, dy, "avg_pool2 dx")
  end)

  it("refuses an odd height or width", function()
    assert.has_error(function() core.avg_pool2(glow.Tensor { 1, 3, 4, 2 }) end,
      "avg_pool2: input {1, 3, 4, 2}: height and width must be even")
  end)
end)

describe("upsample2", function()
  it("repeats each pixel 2x2 in nearest mode", function()
    local x = H.data({ 2, 3, 2, 3 }, 1)
    local y = core.upsample2(x, "nearest")
    assert.same({ 2, 6, 4, 3 }, y:shape())
    assert.tensor_equal(apply_terms(resample_terms("nearest", 2, 3, 2, 3), x, { 2, 6, 4, 3 }), y) -- copies
    assert.tensor_equal(y, core.upsample2(x)) -- nearest is the default
  end)

  it("interpolates as PyTorch's Upsample(scale_factor=2, mode=\"bilinear\") does", function()
    -- torch.nn.Upsample(scale_factor=2, mode="bilinear")(torch.arange(1., 5).view(1, 1, 2, 2))
    local y = core.upsample2(glow.Tensor.from({ 1, 2, 3, 4 }, { 1, 2, 2, 1 }), "bilinear")
    assert.tensor_near(glow.Tensor.from({ 1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5,
      3, 3.25, 3.75, 4 }, { 1, 4, 4, 1 }), y, H.rtol(4))
    for _, s in ipairs { { 2, 3, 5, 2 }, { 1, 1, 1, 3 }, { 1, 1, 4, 1 } } do
      local x = H.data(s, 2)
      local e = apply_terms(resample_terms("bilinear", table.unpack(s)), x, { s[1], 2 * s[2], 2 * s[3], s[4] })
      assert.tensor_near(e, core.upsample2(x, "bilinear"), H.rtol(4))
    end
  end)

  for _, mode in ipairs { "nearest", "bilinear" } do
    it("has the exact adjoint as its " .. mode .. " backward", function()
      local x = H.data({ 2, 3, 4, 2 }, 3)
      local dy = glow.randn({ 2, 6, 8, 2 }, 4, 1)
      local dx = core.upsample2_backward(dy, mode)
      assert.same({ 2, 3, 4, 2 }, dx:shape())
      local e = apply_terms(resample_terms(mode, 2, 3, 4, 2), dy, { 2, 3, 4, 2 }, true)
      assert.tensor_near(e, dx, H.rtol(16))
      check_grad(function() return core.upsample2(x, mode) end, x, dx, dy, "upsample2 " .. mode .. " dx")
    end)
  end

  it("refuses an unknown mode", function()
    assert.has_error(function() core.upsample2(glow.Tensor { 1, 3, 4, 2 }, "cubic") end,
      "upsample2: unknown mode \"cubic\" (expected \"nearest\" or \"bilinear\")")
    assert.has_error(function() core.upsample2_backward(glow.Tensor { 1, 3, 4, 2 }, "nearest") end,
      "upsample2_backward: input {1, 3, 4, 2}: height and width must be even")
  end)
end)
