local H = require "spec.helper"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("luarocks make", function()
  it("installs into a fresh --tree, and require 'glow' works from /tmp with only luarocks path", function()
    local tree = os.tmpname()
    os.remove(tree)
    -- a plain build: without the sanitizer runtime spec/sanitize.sh preloads
    -- into the interpreter (it would break CMake's compiler checks)
    -- --deps-mode none: argparse and luafilesystem come from Debian's packages
    -- (lua-argparse, lua-filesystem), which luarocks does not count as rocks
    local ok, out = sh(string.format("cd %q && env -u LD_PRELOAD luarocks --lua-version 5.4 make "
      .. "rockspec/glow-scm-1.rockspec --tree %q --deps-mode none", H.root, tree))
    assert(ok, "luarocks make failed:\n" .. out)
    local probe = tree .. "-probe.lua"
    local f = assert(io.open(probe, "w"))
    f:write([[
local g = require "glow"
local m = g.Glow { shape = { 8, 8, 1 }, levels = 1, depth = 1, width = 4 }
print(package.searchpath("glow.core", package.cpath), m.config.levels)
]])
    f:close()
    ok, out = sh(string.format("cd /tmp && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u LD_PRELOAD "
      .. "sh -c 'eval \"$(luarocks --lua-version 5.4 path --tree %s)\" && lua5.4 %s'", tree, probe))
    os.remove(probe)
    assert(ok, "require from /tmp failed:\n" .. out)
    assert.matches(tree .. "/lib/lua/5.4/glow/core.so\t1", out, 1, true)
    -- the rock's `glow` command, in the tree's bin/, runs from /tmp
    local function glow_cmd(args)
      return sh(string.format("cd /tmp && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 "
        .. "-u LD_PRELOAD sh -c 'eval \"$(luarocks --lua-version 5.4 path --tree %s)\" && %s/bin/glow %s'", tree, tree,
        args))
    end
    ok, out = glow_cmd("--help")
    local bad_ok, bad_out, bad_code = glow_cmd("train --width 0")
    sh("rm -rf " .. tree)
    assert(ok, "glow --help failed:\n" .. out)
    assert.matches("Usage: glow <command>", out, 1, true)
    assert.matches("train", out, 1, true)
    assert.is_falsy(bad_ok)
    assert.equal(2, bad_code)
    assert.equal("glow train: option --width must be >= 1, got 0 (see glow train --help)\n", bad_out)
  end)
end)
