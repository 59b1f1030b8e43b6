local H = require "spec.helper"
local glow = H.glow

describe("glow.Tensor", function()
  it("makes zeros of a shape and reports it", function()
    local t = glow.Tensor { 2, 3, 4, 1 }
    assert.same({ 2, 3, 4, 1 }, t:shape())
    assert.equal(24, t:numel())
    assert.equal(0, t:max_abs())
  end)

  it("round-trips a flat Lua array row-major", function()
    local t = glow.Tensor.from({ 1, 2, 3, 4, 5, 6 }, { 2, 3 })
    assert.same({ 1, 2, 3, 4, 5, 6 }, t:totable())
    assert.equal(6, t:get(6))
  end)

  it("adds, scales, copies and clones", function()
    local a = glow.Tensor.from({ 1, 2, 3 }, { 3 })
    local b = glow.Tensor.from({ 10, 20, 30 }, { 3 })
    a:add_(b, 0.5):scale_(2)
    assert.same({ 12, 24, 36 }, a:totable())
    local c = a:clone()
    c:copy_(b)
    assert.same({ 12, 24, 36 }, a:totable())
    assert.same({ 10, 20, 30 }, c:totable())
  end)

  it("makes seeded normal noise with the requested spread", function()
    local r = glow.randn({ 10000 }, 3, 2)
    assert.same(r:totable(), glow.randn({ 10000 }, 3, 2):totable())
    local s2 = r:dot(r) / 10000
    -- the sample variance of 10000 draws: within 1.4% of 4 per sigma
    assert.close(4, s2, 0.05)
  end)

  it("shares memory between a view and its base", function()
    local t = glow.Tensor { 2, 3 }
    local v = t:view { 6 }
    v:set(4, 7)
    assert.equal(7, t:get(4))
    t = nil -- luacheck: ignore
    collectgarbage()
    assert.equal(7, v:get(4))
  end)

  it("detects non-finite values", function()
    local t = glow.Tensor { 3 }
    assert.is_true(t:all_finite())
    t:set(2, 0 / 0)
    assert.is_false(t:all_finite())
  end)

  it("rejects mismatched sizes and bad shapes with the shapes in the message", function()
    assert.has_error(function() glow.Tensor { 2 }:add_(glow.Tensor { 3 }) end,
      "add_: shapes {2} and {3} differ in size")
    assert.has_error(function() glow.Tensor { 2, 0 } end, "shape: dimension 2 must be a positive integer")
    assert.has_error(function() glow.Tensor.from({ 1, 2, 3 }, { 2, 2 }) end,
      "Tensor.from: 3 values do not fill shape {2, 2}")
  end)

  it("prints its shape and values, all of up to 8 and the first and last 3 of more", function()
    assert.equal("glow.Tensor{2, 3}: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]",
      tostring(glow.Tensor.from({ 0.1, 0.2, 0.3, 0.4, 0.5, 0.6 }, { 2, 3 })))
    assert.equal("glow.Tensor{1}: [0]", tostring(glow.Tensor { 1 }))
    assert.equal("glow.Tensor{2, 2, 2}: [1, 2, 3, 4, 5, 6, 7, 8]",
      tostring(glow.Tensor.from({ 1, 2, 3, 4, 5, 6, 7, 8 }, { 2, 2, 2 })))
    local many = {}
    for i = 1, 1000 do many[i] = i / 8 end
    assert.equal("glow.Tensor{10, 100}: [0.125, 0.25, 0.375, ..., 124.8, 124.9, 125]",
      tostring(glow.Tensor.from(many, { 10, 100 })))
    -- 4 significant digits, and the non-finite values by name
    assert.equal("glow.Tensor{6}: [nan, inf, -inf, -0, 1e-20, 1.235e+08]",
      tostring(glow.Tensor.from({ 0 / 0, math.huge, -math.huge, -0.0, 1e-20, 123456789 }, { 6 })))
  end)

  it("refuses a closed tensor wherever it is passed, and says it is closed", function()
    local t = glow.Tensor { 2, 2 }
    do
      local _ <close> = t
    end
    assert.is_true(t:is_closed())
    assert.is_false(glow.Tensor { 1 }:is_closed())
    assert.equal("glow.Tensor (closed)", tostring(t))
    assert.has_error(function() t:get(1) end, "bad argument #1: the tensor is closed")
    assert.has_error(function() glow.Tensor { 2, 2 }:add_(t, 1) end, "bad argument #2: the tensor is closed")
    assert.has_error(function() glow.checkpoint.write("/nonexistent/a.safetensors", { { name = "a", value = t } }) end,
      'checkpoint.write: tensors[1].value ("a") is a closed tensor')
  end)
  describe("in-place methods", function()
    it("end in an underscore, change the tensor and return it", function()
      local a = glow.Tensor.from({ 1, 2, 3 }, { 3 })
      assert.equal(a, a:add_(glow.Tensor.from({ 1, 1, 1 }, { 3 }), 2):mul_(glow.Tensor.from({ 1, 2, 3 }, { 3 })))
      assert.same({ 3, 8, 15 }, a:totable())
      assert.same({ 6, 16, 30 }, a:scale_(2):totable())
      assert.same({ 0, 0, 0 }, a:zero_():totable())
      assert.same({ 7, 7, 7 }, a:fill_(7):totable())
      assert.same({ 1, 2, 3 }, a:copy_(glow.Tensor.from({ 1, 2, 3 }, { 3 })):totable())
    end)
    it("the old names raise one error naming the in-place method and the pure form", function()
      local a, b = glow.Tensor.from({ 1, 2 }, { 2 }), glow.Tensor.from({ 3, 4 }, { 2 })
      assert.has_error(function() a:add(b) end, "glow.Tensor:add is gone: the in-place method is a:add_(b [, alpha]); "
        .. "the pure form is a + b, glow.add(a, b) (a + b * alpha)")
      for _, name in ipairs { "mul", "scale", "fill", "copy", "narrow_add", "index_add", "scatter_add" } do
        local ok, err = pcall(function() return a[name](a, b) end)
        assert.is_false(ok)
        assert.truthy(err:find(name .. "_(", 1, true), err)
        assert.truthy(err:find("the pure form is", 1, true), err)
      end
      assert.same({ 1, 2 }, a:totable()) -- unchanged
    end)
  end)
end)

describe("core.stash", function()
  local core = require "glow.core"
  it("gives back an exact copy once, and refuses a second take", function()
    local t = glow.randn({ 3, 5, 7 }, 4, 1)
    local s = core.stash(t)
    t:fill_(0) -- the stash is a copy
    local back = core.unstash(s)
    assert.same({ 3, 5, 7 }, back:shape())
    assert.same(glow.randn({ 3, 5, 7 }, 4, 1):totable(), back:totable())
    assert.matches("already taken", select(2, pcall(core.unstash, s)))
    assert.has_error(function() core.unstash(t) end)
  end)
end)
