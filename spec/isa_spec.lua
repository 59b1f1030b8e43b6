local H = require "spec.helper"
local glow = H.glow

local build = os.getenv("GLOW_BUILD") or (H.root .. "build")
-- The sanitizer run preloads ASan into the interpreter; its children here
-- load the same build, but qemu-user cannot host ASan's shadow memory, so
-- the qemu specs load the plain build beside it.
local qemu_build = os.getenv("LD_PRELOAD") and (H.root .. "build") or build

--- Run spec/isa/probe.lua in a child: exit code, how it ended, stdout,
--- stderr. `prefix` goes before lua5.4 (an environment, qemu).
local function probe(prefix, dir)
  local err = os.tmpname()
  -- qemu-user takes the interpreter's full path
  local cmd = string.format("cd %q && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
    .. "%s \"$(command -v lua5.4)\" spec/isa/probe.lua 2>%s", H.root, dir or build, prefix, err)
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, how, code = p:close()
  local stderr = H.read(err) or ""
  os.remove(err)
  return code, how, out, stderr
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The probe's model: 2 levels of 2 steps; each coupling network sums at
-- most 3*3*4, 8 and 3*3*8 products, and the log-density sums 128 terms. The
-- copies for other levels round otherwise (FMA contracts a product and a sum
-- into one rounding; vectors of another width sum in another order).
local RTOL = 4 * H.rtol(36, 8, 72) + H.rtol(128)

local function same_values(want, got, what)
  assert.equal(#want, #got, what)
  for i = 2, #want do
    assert.close(tonumber(want[i]), tonumber(got[i]), RTOL, 0, what .. ", value " .. (i - 1))
  end
end

local function levels()
  local t = {}
  for l in glow.info().isa_levels:gmatch("[^,]+") do t[#t + 1] = l end
  return t
end

describe("glow.info", function()
  it("names the ISA level of the core's kernels beside the BLAS kernel", function()
    local info = glow.info()
    assert.is_string(info.isa)
    assert.is_truthy(("," .. info.isa_levels .. ","):find("," .. info.isa .. ",", 1, true))
    assert.is_truthy(info.isa_chosen_by == "cpu" or info.isa_chosen_by == "GLOW_ISA")
    assert.is_string(info.blas_kernel)
    assert.are_not.equal("none", info.blas_kernel)
    local features = info.isa_features .. " "
    if info.isa == "x86-64" then assert.equal(" ", features) end
    if info.isa == "x86-64-v3" or info.isa == "x86-64-v4" then
      assert.matches(" avx2 ", features)
      assert.matches(" fma ", features)
    end
    if info.isa == "x86-64-v4" then assert.matches(" avx512f ", features) end
  end)
end)

describe("GLOW_ISA", function()
  it("runs every level this CPU has with the same values, and refuses the others in one line", function()
    local code, _, auto = probe("env -u GLOW_ISA")
    assert.equal(0, code)
    auto = lines(auto)
    local ran, best = 0, nil
    for _, level in ipairs(levels()) do
      local c, how, out, err = probe("GLOW_ISA=" .. level)
      assert.equal("exit", how, "GLOW_ISA=" .. level .. " ended by a signal")
      if c == 0 then
        out = lines(out)
        assert.matches("^" .. level:gsub("%-", "%%-") .. " ", out[1])
        same_values(auto, out, "GLOW_ISA=" .. level)
        ran = ran + 1
        best = best or level
      else
        assert.equal(1, c)
        assert.matches("glow: GLOW_ISA=" .. level:gsub("%-", "%%-")
          .. " needs [%w., ]+, which this CPU lacks; unset GLOW_ISA", err)
      end
    end
    -- without GLOW_ISA the best of them is picked (the levels are listed best first)
    assert.is_true(ran >= 1)
    assert.matches("^" .. best:gsub("%-", "%%-") .. " ", auto[1])
  end)

  it("refuses a level this build does not hold, naming those it does", function()
    local code, how, _, err = probe("GLOW_ISA=x86-64-v9")
    assert.equal("exit", how)
    assert.equal(1, code)
    assert.matches("glow: GLOW_ISA=x86-64-v9 is not a level this build holds (" .. glow.info().isa_levels
      .. ", or auto)", err, 1, true)
  end)
end)

describe("on a CPU without AVX (qemu-x86_64 -cpu Nehalem)", function()
  local function qemu(env)
    local p = io.popen("command -v qemu-x86_64")
    local path = p:read("l")
    p:close()
    assert(path, "qemu-x86_64 not found (Debian: apt-get install qemu-user; spec/run.sh installs it)")
    -- a user on such a machine has no OPENBLAS_CORETYPE of a newer CPU set,
    -- and no GLOW_ISA unless given here
    return "env -u OPENBLAS_CORETYPE -u GLOW_ISA -u LD_PRELOAD " .. (env or "") .. " qemu-x86_64 -cpu Nehalem"
  end

  it("loads glow and computes the values of this machine, or refuses in one line; never a signal", function()
    local code, how, out, err = probe(qemu(), qemu_build)
    assert.equal("exit", how, "ended by a signal: " .. err)
    local _, _, host = probe("env -u GLOW_ISA GLOW_ISA=x86-64", qemu_build)
    if code == 0 then
      out = lines(out)
      assert.matches("^x86%-64 Nehalem", out[1])
      same_values(lines(host), out, "under qemu")
    else
      -- a build for one CPU only (GLOW_NATIVE) that needs more than Nehalem has
      assert.equal(1, code)
      assert.matches("glow: this glow.core was built for its build machine's CPU %(GLOW_NATIVE, "
        .. "%-march=native%) and needs [%w., ]+, which this CPU lacks; rebuild without %-DGLOW_NATIVE=ON", err)
    end
    -- the default build holds a copy for the baseline: it must load
    local info = glow.info()
    if ("," .. info.isa_levels .. ","):find(",x86-64,", 1, true) then assert.equal(0, code, err) end
  end)

  it("refuses the build's best level there (GLOW_ISA) with one line naming AVX, not a signal", function()
    local best = levels()[1]
    local code, how, _, err = probe(qemu("GLOW_ISA=" .. best), qemu_build)
    assert.equal("exit", how)
    assert.equal(1, code)
    local first = lines(err)[1]
    assert.matches("glow: GLOW_ISA=" .. best:gsub("%-", "%%-") .. " needs .*avx.*, which this CPU lacks", first)
  end)
end)
