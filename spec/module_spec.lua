local H = require "spec.helper"
local glow = H.glow
local module = glow.module

local function tiny_flow()
  return glow.Flow { glow.ActNorm(4), glow.FlowStep(4, { width = 8, seed = 1 }),
    { "split", glow.Split(4) } }
end

describe("glow.module", function()
  describe("parameters and apply", function()
    it("name a child's parameters under its path, in order", function()
      local names = {}
      for _, p in ipairs(tiny_flow():parameters("m.")) do names[#names + 1] = p.name end
      assert.equal("m.step1.bias", names[1])
      assert.equal("m.step1.logs", names[2])
      assert.equal("m.step2.actnorm.bias", names[3])
      assert.equal("m.split.prior.logscale", names[#names])
    end)

    it("visit the module and every descendant depth first", function()
      local seen = {}
      tiny_flow():apply(function(m) seen[#seen + 1] = getmetatable(m).__name end)
      assert.same({ "Flow", "ActNorm", "Flow", "ActNorm", "InvConv1x1", "AffineCoupling", "nn.Sequential",
        "nn.Conv2d", "nn.ActNorm", "nn.ReLU", "nn.Conv2d", "nn.ActNorm", "nn.ReLU", "nn.ZeroConv2d", "Split",
        "SplitPrior" }, seen)
    end)
  end)

  describe("mode switches", function()
    it("reach every descendant, and back", function()
      local f = tiny_flow()
      f:training()
      f:apply(function(m) assert.is_true(m.is_training) end)
      f:evaluate()
      f:apply(function(m) assert.is_nil(m.is_training) end)
      f:set_memory("store")
      f:apply(function(m) assert.equal("store", m.memory_mode) end)
      assert.matches('mode must be "store" or "reversible", got fast', select(2, pcall(f.set_memory, f, "fast")),
        1, true)
    end)

    it("keep what backward needs only in training mode, and clear drops it", function()
      local f = tiny_flow()
      local x = H.data({ 2, 4, 4, 4 }, 1)
      f:initialize(x)
      local coupling = f.children[2].module.children[3].module
      f:forward(x)
      assert.is_nil(coupling._z2)
      f:training():set_memory("store")
      f:forward(x)
      assert.is_truthy(coupling._z2)
      assert.is_truthy(coupling._stored)
      f:clear()
      assert.is_nil(coupling._z2)
      assert.is_nil(coupling._stored)
    end)
  end)

  describe("initialize", function()
    it("initializes every ActNorm in order and leaves nothing pending after an error", function()
      local f = tiny_flow()
      assert.is_false(pcall(f.initialize, f, H.data({ 2, 4, 4, 3 }, 1)))
      f:apply(function(m) assert.is_nil(m.init_pending) end)
      f:initialize(H.data({ 8, 4, 4, 4 }, 2))
      f:apply(function(m) if m.check_init then assert.is_true(m.initialized) end end)
      -- the first ActNorm normalizes its own input: mean 0 per channel
      local y = f.children[1].module:forward(H.data({ 8, 4, 4, 4 }, 2))
      assert.is_true(math.abs(y:sum()) < 1e-4 * y:numel())
    end)
  end)

  describe("closing", function()
    it("runs its function when the scope ends, normally or by an error that goes on", function()
      local log = {}
      local function body(fail)
        local _ <close> = module.closing(function(err) log[#log + 1] = err and "error" or "done" end)
        if fail then error("boom", 0) end
        return "value"
      end
      assert.equal("value", body(false))
      local ok, err = pcall(body, true)
      assert.is_false(ok)
      assert.equal("boom", err)
      assert.same({ "done", "error" }, log)
    end)
  end)
  describe("named gradients", function()
    it("self.grad.<name> is each parameter's gradient, also after flattening into an arena", function()
      local a = glow.ActNorm(3)
      assert.equal(a._params[1].grad, a.grad.bias)
      assert.equal(a._params[2].grad, a.grad.logs)
      assert.is_nil(a.grad.nothing)
      local f = glow.Flow { a }
      glow.optim.SGD(f, { lr = 0.1 }) -- flattens the parameters into one arena
      assert.is_true(a.grad.logs ~= nil and a.grad.logs == a._params[2].grad)
      a.grad.logs:fill_(2)
      assert.same({ 0, 0, 0, 2, 2, 2 }, f._arena.grad:totable())
      assert.has_error(function() a.grad.bias = glow.zeros({ 3 }) end,
        "grad: gradients are registered with module.param, not assigned")
      assert.has_error(function() module.param(a, "bias", glow.zeros({ 3 })) end,
        "module.param: a parameter named bias exists already")
    end)
  end)
end)
