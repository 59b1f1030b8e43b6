-- Small matrices in batches (csrc/matrix.c): slogdet, logdet, inverse and
-- solve against naive references in double, and their gradients through
-- autograd against central differences.
local H = require "spec.helper"
local glow = H.glow

-- a naive determinant by cofactor expansion (small n), in double
local function det(m, n)
  if n == 1 then return m[1] end
  local s = 0
  for j = 1, n do
    local sub = {}
    for r = 2, n do
      for c = 1, n do if c ~= j then sub[#sub + 1] = m[(r - 1) * n + c] end end
    end
    s = s + ((j % 2 == 1) and 1 or -1) * m[j] * det(sub, n - 1)
  end
  return s
end

-- the k-th matrix of a batch as a flat Lua array
local function matrix(t, k, n)
  local v, out = t:totable(), {}
  for i = 1, n * n do out[i] = v[(k - 1) * n * n + i] end
  return out
end

-- autograd.grad against central differences (spec/helper.lua), 40 elements per input
local function check_grad(name, f, inputs)
  it(name .. ": the gradient matches central finite differences", function()
    H.check_op(name, f, inputs, { max = 40 })
  end)
end

-- well-conditioned: the identity times 2 plus noise
local A = glow.randn({ 3, 4, 4 }, 1, 0.4) + glow.eye(4, 4) * 2
local S = glow.randn({ 2, 3, 3 }, 2, 1)

describe("slogdet and logdet", function()
  it("match a cofactor determinant per matrix of the batch", function()
    for _, m in ipairs { A, S } do
      local n = m:shape()[2]
      local ld, sign = m:slogdet()
      assert.same({ m:shape()[1] }, ld:shape())
      for k = 1, m:shape()[1] do
        local d = det(matrix(m, k, n), n)
        assert.close(math.log(math.abs(d)), ld:get(k), 1e-5, 1e-5, "log|det|")
        assert.equal(d < 0 and -1 or 1, sign:get(k))
        local l = m:logdet():get(k)
        if d < 0 then assert.is_true(l ~= l) else assert.close(math.log(d), l, 1e-5, 1e-5, "logdet") end
      end
    end
  end)
  it("gives -inf and sign 0 for a singular matrix", function()
    local ld, sign = glow.slogdet(glow.Tensor.from({ 1, 2, 2, 4 }, { 2, 2 }))
    assert.equal(-math.huge, ld:get(1))
    assert.equal(0, sign:get(1))
  end)
  check_grad("slogdet", function(a) return (glow.slogdet(a)) end, { S:clone() })
  check_grad("logdet", function(a) return glow.logdet(a) end, { A:clone() })
end)

describe("inverse and solve", function()
  it("inverse times the matrix is the identity, per matrix", function()
    local p = glow.matmul(A, A:inverse())
    assert.tensor_near(glow.eye(4, 4):reshape({ 1, 4, 4 }):expand({ 3, 4, 4 }), p, H.rtol(4, 4) * 10)
  end)
  it("solve gives A X = B for matrix and vector right-hand sides", function()
    local B = glow.randn({ 3, 4, 2 }, 3, 1)
    local X = glow.solve(A, B)
    assert.tensor_near(B, glow.matmul(A, X), H.rtol(4, 4) * 10)
    local b = glow.randn({ 3, 4 }, 4, 1)
    local xv = glow.solve(A, b)
    assert.tensor_near(b, glow.matmul(A, xv:reshape({ 3, 4, 1 })):reshape({ 3, 4 }), H.rtol(4, 4) * 10)
  end)
  it("names the op and the shapes when they do not fit, and a singular matrix", function()
    assert.has_error(function() glow.zeros({ 2, 3 }):inverse() end,
      "inverse: expected square matrices {..., n, n}, got {2, 3}")
    assert.has_error(function() glow.solve(A, glow.zeros({ 3, 3, 2 })) end)
    assert.has_error(function() glow.Tensor.from({ 1, 2, 2, 4 }, { 2, 2 }):inverse() end,
      "inverse: a matrix is singular (a zero pivot)")
  end)
  check_grad("inverse", function(a) return glow.inverse(a) end, { A:clone() })
  check_grad("solve", function(a, b) return glow.solve(a, b) end, { A:clone(), glow.randn({ 3, 4, 2 }, 5, 1) })
  check_grad("solve, vector", function(a, b) return glow.solve(a, b) end, { A:clone(), glow.randn({ 3, 4 }, 6, 1) })
end)
