local H = require "spec.helper"

local glow = H.glow

local glow_cmd, one_line = H.glow_cmd, H.one_line


--- Every parameter of a and b bitwise equal: the number of tensors that differ.
local function differing(a, b)
  local pa, pb, n = a:parameters(), b:parameters(), 0
  assert.equal(#pa, #pb)
  for i, p in ipairs(pa) do
    assert.equal(p.name, pb[i].name)
    if p.value:max_abs_diff(pb[i].value) ~= 0 then n = n + 1 end
  end
  return n
end

describe("runs through the glow command", function()
  local tmp, data
  local TINY = "--levels 1 --depth 2 --width 8 --warmup 5 --batch 8 --no-progress"
  setup(function()
    tmp = H.tmpdir()
    data = tmp .. "/data"
    H.class_folder(data, 512, 16)
  end)
  teardown(function() H.rmdir(tmp) end)

  it("stops on SIGINT after a step with a checkpoint and exit 130; resumed from it alone, it ends bitwise equal "
    .. "to a run left alone, with each step logged once", function()
    local opts = string.format("--data %s %s --epochs 10", data, TINY)
    local a, b = tmp .. "/left-alone", tmp .. "/interrupted"
    local code, _, stderr = glow_cmd(string.format("train %s --out %s", opts, a), tmp)
    assert.equal(0, code, stderr)
    -- the run in the background; SIGINT once its log has 200 lines (of 640 steps)
    local script = H.shell_env() .. string.format([[
lua5.4 lua/bin/glow train %s --out %s >%s/b.out 2>%s/b.err &
pid=$!
end=$(( $(date +%%s) + 120 ))
while [ "$(cat %s/log.csv 2>/dev/null | wc -l)" -lt 200 ] && [ "$(date +%%s)" -lt $end ]; do sleep 0.01; done
kill -INT $pid
wait $pid
echo "rc=$?"
]], opts, b, tmp, tmp, b)
    H.write(tmp .. "/interrupt.sh", script)
    local p = io.popen("sh " .. tmp .. "/interrupt.sh")
    local res = p:read("a")
    p:close()
    assert.matches("rc=130", res, 1, true, res .. (H.read(tmp .. "/b.out") or "") .. (H.read(tmp .. "/b.err") or ""))
    local err = H.read(tmp .. "/b.err")
    assert.matches("^glow train: SIGINT after step %d+; wrote " .. b:gsub("%p", "%%%0")
      .. "/checkpoint.safetensors; resume with: glow train %-%-resume ", err)
    assert.is_true(one_line(err), err)
    local mid = assert(glow.load(b .. "/checkpoint.safetensors"))
    local stopped = mid.checkpoint.trainer.step
    assert.is_true(stopped >= 150 and stopped < 640, tostring(stopped))

    -- the printed command, as printed
    local resume_cmd = err:match("resume with: glow (train .-)\n")
    code, _, stderr = glow_cmd(resume_cmd, tmp)
    assert.equal(0, code, stderr)
    assert.equal(0, differing(assert(glow.load(a .. "/checkpoint.safetensors")),
      assert(glow.load(b .. "/checkpoint.safetensors"))))
    -- the logs: the same steps once each, with the same losses
    local function steps(path)
      local rows = {}
      for line in io.lines(path) do
        local s, bpd = line:match("^(%d+),%d+,%d+,([^,]+),")
        if s then rows[#rows + 1] = s .. ":" .. bpd end
      end
      return rows
    end
    local sa, sb = steps(a .. "/log.csv"), steps(b .. "/log.csv")
    assert.equal(640, #sa)
    assert.same(sa, sb)
  end)

  it("resumes a finished --max-steps run with zero steps, leaving the parameters bitwise equal", function()
    local out = tmp .. "/capped"
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --max-steps 12 --out %s", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    local before = assert(glow.load(out .. "/checkpoint.safetensors"))
    local stdout
    code, stdout, stderr = glow_cmd(string.format("train --data %s %s --max-steps 12 --resume %s",
      data, TINY, out .. "/checkpoint.safetensors"), tmp)
    assert.equal(0, code, stderr)
    assert.matches("has finished its run (12 steps); nothing to train", stdout, 1, true)
    assert.matches("; 0 steps in", stdout, 1, true)
    local after = assert(glow.load(out .. "/checkpoint.safetensors"))
    assert.equal(0, differing(before, after))
    assert.equal(12, after.checkpoint.trainer.step)
  end)

  it("extends a finished run with the command glow info prints, as printed", function()
    local out = tmp .. "/short"
    local code, _, stderr = glow_cmd(string.format("train --data %s %s --epochs 1 --out %s", data, TINY, out), tmp)
    assert.equal(0, code, stderr)
    local stdout
    code, stdout, stderr = glow_cmd("info " .. out .. "/checkpoint.safetensors", tmp)
    assert.equal(0, code, stderr)
    local extend = stdout:match("extend it: glow (train [^)]+)%)")
    assert.is_string(extend, stdout)
    code, stdout, stderr = glow_cmd(extend, tmp)
    assert.equal(0, code, stderr)
    assert.matches("epoch 2/2 done: train bits/dim [%d.]+  test bits/dim", stdout)
    local m = assert(glow.load(out .. "/checkpoint.safetensors"))
    assert.equal(128, m.checkpoint.trainer.step)
    -- the data came from the checkpoint: the same 512 training images
    assert.matches("glow: 512 train / 16 test images", stdout, 1, true)
  end)

  -- glow pack of Fashion-MNIST enlarged to 64x64 (a pack of 245 MB, seconds
  -- of work) into DIR, sent sig after 0.5 s: its exit code, the ms from the
  -- signal to the end, its stderr
  local function pack_signalled(dir, sig)
    H.mkdir(dir)
    local script = H.shell_env() .. string.format([[
lua5.4 lua/bin/glow pack fashion-mnist %s/f.glowpack --size 64 >%s/p.out 2>%s/p.err &
pid=$!
sleep 0.5
kill -%s $pid
t0=$(date +%%s%%N)
wait $pid
rc=$?
t1=$(date +%%s%%N)
echo "rc=$rc ms=$(( (t1 - t0) / 1000000 ))"
]], dir, tmp, tmp, sig)
    H.write(tmp .. "/pack.sh", script)
    local p = io.popen("sh " .. tmp .. "/pack.sh")
    local res = p:read("a")
    p:close()
    local rc, ms = res:match("rc=(%d+) ms=(%d+)")
    return rc, ms, res .. H.read(tmp .. "/p.err"), H.read(tmp .. "/p.err")
  end

  for _, sig in ipairs { "INT", "TERM" } do
    it("stops glow pack on SIG" .. sig .. " between two images, leaving no file behind", function()
      local dir = tmp .. "/pack-" .. sig
      local rc, ms, says, err = pack_signalled(dir, sig)
      assert.equal("130", rc, says)
      -- (how soon is a timing, not asserted: it stops between two images, and
      -- the whole pack takes seconds; ms is in the message for a failure)
      assert.is_string(ms, says)
      assert.matches("glow pack: SIG" .. sig .. ": stopped; nothing written to " .. dir .. "/f.glowpack", err, 1, true)
      assert.same({}, H.listdir(dir))
    end)
  end

  it("names OUT when a folder stands there (glow pack DIR OUT), before any work", function()
    local out = tmp .. "/isdir.glowpack"
    H.mkdir(out)
    local code, stdout, stderr = glow_cmd(string.format("pack %s/train %s", data, out), tmp)
    assert.equal(1, code, stdout)
    assert.equal("glow pack: cannot write " .. out .. ": Is a directory\n", stderr)
    assert.same({}, H.listdir(out))
    H.rmdir(out)
    for _, name in ipairs(H.listdir(tmp)) do assert.is_nil(name:match("^isdir%.glowpack%.tmp"), name) end
  end)

  it("removes the temporary files of packs into OUT left by processes that are gone, and no other", function()
    local dir = tmp .. "/stale"
    H.mkdir(dir)
    local out = dir .. "/f.glowpack"
    -- a pid that is gone: a shell that has ended
    local p = io.popen("sh -c 'echo $$'")
    local dead = assert(tonumber(p:read("a")))
    p:close()
    -- a live process that holds a flock on one file
    local held = string.format("%s.tmp.%d.Lock12", out, dead)
    H.write(held, "held")
    p = io.popen(string.format("sh -c 'flock -x 9 && exec sleep 60' 9<'%s' >/dev/null 2>&1 & echo $!", held))
    local live = assert(tonumber(p:read("a")))
    p:close()
    -- (wait until it holds the lock: flock -n fails then)
    assert(os.execute(string.format(
      "n=0; while flock -n -x '%s' true && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done", held)))
    local stale = string.format("f.glowpack.tmp.%d.Ab12Cd", dead)
    local kept = {
      string.format("f.glowpack.tmp.%d.Lock12", dead), -- its lock is held
      string.format("f.glowpack.tmp.%d.Live12", live), -- its process runs
      "f.glowpack.tmp.Ab12Cd",                         -- the template before pids
      string.format("f.glowpack.tmp.%d.Ab12C", dead),  -- not the template
      string.format("f.glowpack.tmp.0%d.Ab12Cd", dead),
      string.format("f.glowpack.tmp.%d.Ab12Cd.x", dead),
      string.format("g.glowpack.tmp.%d.Ab12Cd", dead), -- another target's
      string.format("f.glowpack.tmp.%d.Sym123", dead), -- a symlink
      "target",
    }
    for _, name in ipairs(kept) do
      if name ~= kept[1] and not name:match("Sym123") then H.write(dir .. "/" .. name, "x") end
    end
    assert(os.execute(string.format("ln -s target '%s/%s'", dir, kept[8])))
    H.write(dir .. "/" .. stale, "stale")
    local code, stdout, stderr = glow_cmd(string.format("pack %s/train %s", data, out), tmp)
    os.execute("kill " .. live)
    assert.equal(0, code, stderr)
    assert.matches("wrote " .. out, stdout, 1, true)
    assert.equal(string.format("glow pack: removed %s/%s (left by process %d, which is gone)\n", dir, stale, dead),
      stderr)
    table.insert(kept, "f.glowpack")
    table.sort(kept)
    assert.same(kept, H.listdir(dir))
    assert.equal("x", H.read(dir .. "/target"))
  end)
end)
