local H = require "spec.helper"
local glow = H.glow

-- Checkpoints written by the code before glow.Glow became a composition of
-- pieces (fc88a0a; spec/fixtures/make_checkpoints.lua says how), and the
-- log_prob values that code computed from them.
local DIR = "spec/fixtures/"
local expected = dofile(DIR .. "expected.lua")

local CASES = {
  { name = "conditional-lu", shape = { 4, 4, 2 }, y = { 0, 2, 1 } },
  { name = "additive-shuffle", shape = { 4, 4, 1 } },
  { name = "affine-invconv", shape = { 8, 8, 1 } },
}

local function input(s)
  return glow.rand({ 3, s[1], s[2], s[3] }, 11):add_(glow.Tensor { 3, s[1], s[2], s[3] }:fill_(-0.5))
end

describe("checkpoints from before the module protocol", function()
  for _, case in ipairs(CASES) do
    it("load (" .. case.name .. ") and give the log_prob the old code computed, to 1e-6 relative", function()
      local m, err = glow.load(DIR .. case.name .. ".safetensors")
      assert.is_truthy(m, err)
      local lp = m:log_prob(input(case.shape), case.y):totable()
      for i, want in ipairs(expected[case.name]) do
        assert.close(want, lp[i], 1e-6, 0, case.name .. " image " .. i)
      end
      -- and it still inverts
      local x = input(case.shape)
      assert.tensor_near(x, m:decode((m:encode(x, case.y)), case.y), 1e-5)
    end)
  end
end)
