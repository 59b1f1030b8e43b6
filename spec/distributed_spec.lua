local H = require "spec.helper"
local glow = H.glow
local dist = glow.distributed

local build = os.getenv("GLOW_BUILD") or (H.root .. "build")
local ENV = string.format("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' OMP_NUM_THREADS=1",
  build)

--- mpirun's command line: as root (CI) it needs --allow-run-as-root; more
--- ranks than cores need --oversubscribe.
--- Every run has a time limit (timeout, then SIGKILL 5 s later): a hang
--- fails the spec with exit code 124 instead of stopping the suite.
local IS_ROOT
local function mpirun(np, args, limit)
  if IS_ROOT == nil then
    local p = io.popen("id -u")
    IS_ROOT = p:read("l") == "0"
    p:close()
  end
  return string.format("cd %q && %s timeout -k 5 %d mpirun %s--oversubscribe -np %d -x LUA_PATH -x LUA_CPATH "
    .. "-x OMP_NUM_THREADS lua5.4 %s", H.root, ENV, limit or 120, IS_ROOT and "--allow-run-as-root " or "",
    np, args)
end

local function slurp(path) return H.read(path) or "" end

local function read_numbers(path)
  local t = {}
  for l in io.lines(path) do t[#t + 1] = tonumber(l) end
  return t
end

describe("glow.distributed without mpirun", function()
  it("is rank 0 of 1 and shares everything with itself", function()
    assert.equal(0, dist.rank())
    assert.equal(1, dist.size())
    assert.is_true(dist.is_root())
    assert.same({ 1, 10 }, { dist.share(10) })
  end)

  it("gives each rank a contiguous share of every batch, together the whole batch", function()
    local n = 10
    local dir = H.tmpdir()
    local img, lab = { string.pack(">I4I4I4I4", 0x803, n, 2, 2) }, { string.pack(">I4I4", 0x801, n) }
    for i = 1, n do
      img[#img + 1] = string.rep(string.char(i), 4)
      lab[#lab + 1] = string.char(i % 10)
    end
    H.write(dir .. "/train-images-idx3-ubyte", table.concat(img))
    H.write(dir .. "/train-labels-idx1-ubyte", table.concat(lab))
    local ds = assert(glow.data.fashion_mnist { split = "train", dir = dir })
    H.rmdir(dir)
    local function labels(ranks)
      local out = {}
      for _, y in ds:batches { size = 4, shuffle = true, seed = 2, epoch = 1, ranks = ranks, noise = false } do
        out[#out + 1] = y
      end
      return out
    end
    local whole = labels(nil)
    local r0, r1, r2 = labels { 0, 3 }, labels { 1, 3 }, labels { 2, 3 }
    assert.equal(3, #whole)
    -- batches of 4, 4, 2: the last has fewer images than the 3 ranks and is skipped by all
    assert.equal(2, #r0)
    assert.equal(2, #r2)
    for b = 1, 2 do
      local joined = {}
      for _, part in ipairs { r0[b], r1[b], r2[b] } do
        for _, v in ipairs(part) do joined[#joined + 1] = v end
      end
      assert.same(whole[b], joined)
    end
    assert.has_error(function() labels { 3, 3 } end, "batches: ranks must be {rank, size} with 0 <= rank < size")
  end)
end)

if not dist.available() then
  describe("glow.distributed in a build without MPI", function()
    it("says so when init is called, and everything else works as one process", function()
      local ok, err = pcall(dist.init)
      assert.is_false(ok)
      assert.matches("no MPI component", err, 1, true)
      assert.equal(1, dist.size())
    end)
  end)
else
  describe("glow.distributed under mpirun", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rmdir(dir) end)

    it("2 ranks x 32 images end N steps with the parameters of one process with batch 64 (1e-5)", function()
      local one, two = dir .. "/one.txt", dir .. "/two.txt"
      assert(os.execute(string.format("cd %q && %s lua5.4 spec/mpi/train.lua %q 6 >/dev/null", H.root, ENV, one)))
      assert(os.execute(mpirun(2, string.format("spec/mpi/train.lua %q 6 >/dev/null", two))))
      local a, b = read_numbers(one), read_numbers(two)
      assert.equal(#a, #b)
      assert.is_true(#a > 1000)
      local diff, scale = 0, 0
      for i = 1, #a do
        diff = math.max(diff, math.abs(a[i] - b[i]))
        scale = math.max(scale, math.abs(a[i]))
      end
      assert(diff <= 1e-5 * scale, string.format("largest difference %g, largest parameter %g", diff, scale))
      -- and the steps did move the parameters: the same script stopped after 1 step
      local zero = dir .. "/zero.txt"
      assert(os.execute(string.format("cd %q && %s lua5.4 spec/mpi/train.lua %q 1 >/dev/null", H.root, ENV, zero)))
      local z, moved = read_numbers(zero), 0
      for i = 1, #a do moved = math.max(moved, math.abs(a[i] - z[i])) end
      assert.is_true(moved > 1e-3)
    end)

    it("resumes a checkpoint made by 2 ranks in 1 process, on the same path as 6 steps in one (1e-5)", function()
      local one, a, b = dir .. "/one.txt", dir .. "/a.txt", dir .. "/b.txt"
      assert(os.execute(string.format("cd %q && %s lua5.4 spec/mpi/train.lua %q 6 >/dev/null", H.root, ENV, one)))
      assert(os.execute(mpirun(2, string.format("spec/mpi/train.lua %q 3 1000 >/dev/null", a))))
      assert(os.execute(string.format("cd %q && %s lua5.4 spec/mpi/train.lua %q 6 1000 - %q >/dev/null",
        H.root, ENV, b, a .. ".ckpt")))
      local x, y = read_numbers(one), read_numbers(b)
      local diff, scale = 0, 0
      for i = 1, #x do
        diff = math.max(diff, math.abs(x[i] - y[i]))
        scale = math.max(scale, math.abs(x[i]))
      end
      assert.equal(#x, #y)
      assert(diff <= 1e-5 * scale, string.format("largest difference %g, largest parameter %g", diff, scale))
    end)

    it("refuses a batch smaller than the ranks on every rank, with the reason", function()
      local log = dir .. "/mpirun.log"
      local ok = os.execute(mpirun(3, string.format("spec/mpi/train.lua %q 2 - - - 2 >%q 2>&1", dir .. "/o.txt", log)))
      local said = slurp(log)
      assert.is_falsy(ok, said)
      assert.matches("glow.train.run: batch 2 and eval_batch 256 must not be smaller than the 3 ranks", said, 1, true)
    end)

    it("ends with a message, not a hang, when a rank is killed; the last checkpoint loads", function()
      local out, pids = dir .. "/k.txt", dir .. "/pid"
      local log = dir .. "/mpirun.log"
      -- the job trains "forever" (checkpoints every 3 steps) in the background,
      -- at most 60 s; its process group is killed when the spec ends
      assert(os.execute(string.format("setsid sh -c '%s > %s 2>&1; echo \"rc=$?\" >> %s' & echo $! > %s",
        mpirun(2, string.format("spec/mpi/train.lua %s 1000000 3 %s", out, pids), 60):gsub("'", "'\\''"),
        log, log, dir .. "/job")))
      finally(function()
        local job = tonumber(slurp(dir .. "/job"))
        if job then os.execute("kill -9 -" .. job .. " 2>/dev/null") end
      end)
      local ckpt = out .. ".ckpt"
      local function exists(p)
        local f = io.open(p, "rb")
        if f then f:close() end
        return f ~= nil
      end
      local t0 = glow.core.now()
      while not (exists(ckpt) and exists(pids .. "1")) and glow.core.now() - t0 < 60 do
        os.execute("sleep 0.2")
      end
      assert.is_true(exists(ckpt))
      os.execute("sleep 0.5")
      local pid = io.open(pids .. "1"):read("n")
      assert(os.execute("kill -9 " .. pid))
      local text
      repeat
        os.execute("sleep 0.2")
        text = slurp(log)
      until text:match("rc=%d+") or glow.core.now() - t0 > 90
      local rc = tonumber(text:match("rc=(%d+)"))
      assert.is_not_nil(rc)
      assert.is_true(rc ~= 0 and rc ~= 124, "mpirun ended with " .. tostring(rc) .. " (124: hung until the timeout)")
      assert.matches("rank 1", text, 1, true)
      assert.matches("signal 9", text, 1, true)
      local m, err = glow.load(ckpt)
      assert.is_not_nil(m, err)
      assert.is_true(m.initialized)
    end)
  end)
end
