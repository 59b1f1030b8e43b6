local H = require "spec.helper"
local glow = H.glow
local ag = glow.autograd

-- a positive tensor, for log, sqrt and pow
local function pos(shape, seed) return glow.rand(shape, seed) + 0.5 end

-- every op through autograd.grad against central finite differences (spec/helper.lua)
local function check(name, f, inputs)
  it(name .. " matches central finite differences", function() H.check_op(name, f, inputs) end)
end

describe("glow.autograd", function()
  describe("elementwise ops", function()
    local x = H.data({ 2, 3, 4 }, 1)
    for _, op in ipairs { "exp", "log1p", "expm1", "abs", "neg", "sigmoid", "log_sigmoid", "tanh", "softplus",
      "relu", "elu" } do
      check(op, function(a) return a[op](a) end, { x:clone() })
    end
    check("log", function(a) return a:log() end, { pos({ 2, 3 }, 2) })
    check("sqrt", function(a) return a:sqrt() end, { pos({ 2, 3 }, 3) })
    check("pow", function(a) return a:pow(2.5) end, { pos({ 2, 3 }, 4) })
    check("clamp", function(a) return a:clamp(-0.2, 0.3) end, { x:clone() })
  end)

  describe("broadcasting binary ops and operators", function()
    check("a + b", function(a, b) return a + b end, { H.data({ 3, 1 }, 1), H.data({ 1, 4 }, 2) })
    check("a - b", function(a, b) return a - b end, { H.data({ 2, 3, 4 }, 1), H.data({ 4 }, 2) })
    check("a * b", function(a, b) return a * b end, { H.data({ 2, 3, 4 }, 1), H.data({ 3, 1 }, 2) })
    check("a / b", function(a, b) return a / b end, { H.data({ 2, 3 }, 1), pos({ 2, 3 }, 2) })
    check("-a * 2 + 1", function(a) return -a * 2 + 1 end, { H.data({ 2, 3 }, 1) })
    check("maximum", function(a, b) return glow.maximum(a, b) end, { H.data({ 2, 3 }, 1), H.data({ 3 }, 2) })
    check("minimum", function(a, b) return glow.minimum(a, b) end, { H.data({ 2, 3 }, 1), H.data({ 3 }, 2) })
  end)

  describe("reductions", function()
    local x = H.data({ 2, 3, 4 }, 5)
    check("sum over dims", function(a) return a:sum({ 1, 3 }) end, { x:clone() })
    check("mean with keepdim", function(a) return a:mean(2, true) end, { x:clone() })
    check("max over the last dim", function(a) return a:max(-1) end, { x:clone() })
    check("logsumexp", function(a) return a:logsumexp(3) end, { x:clone() })
    check("a full sum", function(a) return a:sum({ 1, 2, 3 }) end, { x:clone() })
  end)

  describe("shape and index ops", function()
    local x = H.data({ 2, 3, 4 }, 6)
    check("reshape and permute", function(a) return a:reshape({ 6, 4 }):permute({ 2, 1 }) end, { x:clone() })
    check("transpose", function(a) return a:transpose(1, 3) end, { x:clone() })
    check("narrow", function(a) return a:narrow(3, 2, 2) end, { x:clone() })
    check("cat", function(a, b) return glow.cat({ a, b }, 2) end, { x:clone(), H.data({ 2, 1, 4 }, 7) })
    check("chunk", function(a) local c = a:chunk(2, 3) return c[1] * c[2] end, { x:clone() })
    check("expand", function(a) return a:expand({ 2, 3, 4 }) end, { H.data({ 3, 1 }, 8) })
    check("index_select", function(a) return a:index_select(2, { 3, 1, 3 }) end, { x:clone() })
    check("gather", function(a) return a:gather(3, glow.Tensor.from({ 2, 1, 4, 4, 3, 3 }, { 2, 3, 1 })) end,
      { x:clone() })
    check("where", function(a, b) return glow.where(glow.checkerboard({ 2, 3, 4 }, 0), a, b) end,
      { x:clone(), H.data({ 4 }, 9) })
  end)

  describe("linear algebra", function()
    check("matmul, batched and shared", function(a, b) return glow.matmul(a, b) end,
      { H.data({ 2, 3, 4 }, 1), H.data({ 4, 5 }, 2) })
    check("the matmul method, a tensor on the left",
      function(a, b) return glow.randn({ 3, 4 }, 9, 1):matmul(a):matmul(b) end,
      { H.data({ 4, 5 }, 1), H.data({ 5, 2 }, 2) })
    check("conv2d 3x3 with a bias", function(x, w, b) return glow.conv2d(x, w, b) end,
      { H.data({ 2, 5, 5, 2 }, 3), H.data({ 3, 3, 2, 3 }, 4), H.data({ 3 }, 5) })
    check("conv2d 5x5, dilation 2", function(x, w) return glow.conv2d(x, w, nil, { dilation = 2 }) end,
      { H.data({ 1, 6, 6, 2 }, 3), H.data({ 5, 5, 2, 2 }, 4) })
    check("avg_pool2", function(x) return glow.avg_pool2(x) end, { H.data({ 2, 4, 4, 3 }, 6) })
    check("upsample2 bilinear", function(x) return glow.upsample2(x, "bilinear") end, { H.data({ 1, 3, 3, 2 }, 7) })
    check("upsample2 nearest", function(x) return glow.upsample2(x, "nearest") end, { H.data({ 1, 3, 3, 2 }, 7) })
    check("slogdet", function(w) return ag.slogdet(w) end, { glow.randn({ 4, 4 }, 8, 1) })
  end)

  it("refuses a function that does not return a scalar", function()
    local ok, err = pcall(ag.grad, function(a) return a:exp() end, H.data({ 2, 3 }, 1))
    assert.is_false(ok)
    assert.matches("must return a scalar (one element), got shape {2, 3}", err, 1, true)
  end)
end)

describe("glow.autograd.Flow", function()
  -- a piece y = 2 x whose forward reports the log-determinant it is given
  local function doubler(logdet_of)
    return ag.Flow { name = "doubler",
      forward = function(_, x) return x * 2, logdet_of(x) end,
      inverse = function(_, y) return y * 0.5 end }
  end
  local x = H.data({ 2, 2, 2, 2 }, 1)

  it("refuses a log-determinant that is not one value per image, at the piece's forward, in one line", function()
    local LN2 = math.log(2)
    local cases = {
      { "a number", function(v) return v:sum() * 0 + 8 * LN2 end },
      { "a tensor {1}", function(v) return v:sum({ 1, 2, 3, 4 }) * 0 + 16 * LN2 end },
      { "a tensor {2, 1}", function(v) return v:sum({ 2, 3, 4 }, true):reshape({ 2, 1 }) * 0 + 8 * LN2 end },
      { "nil", function() return nil end },
    }
    for _, case in ipairs(cases) do
      local want = "doubler: forward's log-determinant is " .. case[1] .. ", expected a tensor {n} = {2} "
        .. "(one per image: reduce with dims, e.g. s:sum({2, 3, 4}))"
      local piece = doubler(case[2])
      local ok, err = pcall(piece.forward, piece, x)
      assert.is_false(ok)
      assert.equal(want, err)
      -- inside a container, prefixed with where it sits, still at forward
      local flow = glow.Flow { glow.Reverse(2), doubler(case[2]) }
      ok, err = pcall(flow.forward, flow, x)
      assert.is_false(ok)
      assert.equal("step 2: " .. want, err)
    end
  end)

  it("takes a log-determinant {n} and back-propagates it", function()
    local piece = doubler(function(v) return v:sum({ 2, 3, 4 }) * 0 + 8 * math.log(2) end)
    local y, ld = piece:forward(x)
    assert.same({ 2 }, ld:shape())
    local xr, dx = piece:backward(y, glow.Tensor(y:shape()):fill_(1), 1)
    assert.tensor_near(x, xr, H.rtol())
    assert.tensor_equal(glow.Tensor(x:shape()):fill_(2), dx) -- 2 exactly: one product by 2
  end)
end)
