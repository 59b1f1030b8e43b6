local H = require "spec.helper"

describe("examples/custom_coupling.lua", function()
  it("builds a model around a coupling network composed in Lua, inverts it and gets gradients", function()
    local cmd = string.format("cd %q && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
      .. "lua5.4 examples/custom_coupling.lua 2>&1", H.root, os.getenv("GLOW_BUILD") or (H.root .. "build"))
    local p = io.popen(cmd)
    local out = p:read("a")
    assert(p:close(), out)
    assert.matches("custom coupling: ok", out, 1, true)
    local err = tonumber(out:match("max abs error: (%S+)"))
    assert.is_true(err < 1e-4)
  end)
end)
